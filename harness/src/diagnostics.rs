//! Rendering scenario-file diagnostics for people: the location, the line
//! with the problem marked, what was expected and a hint.

use codespan_reporting::diagnostic::{Diagnostic, Label};
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term::{self, Config};

use dockproof::scenario::FileReport;

/// Print every diagnostic of `report` to stderr.
pub fn emit(report: &FileReport) {
    // The file's own lines are quoted: under GitHub Actions they must not act as commands.
    let mut out = dockproof::report::inert::InertWriter::for_ci(std::io::stderr().lock());
    for line in render(report) {
        use std::io::Write;
        let _ = out.write_all(line.as_bytes());
    }
}

/// Render every diagnostic of `report` as text.
pub fn render(report: &FileReport) -> Vec<String> {
    render_parts(&report.path, &report.source, &report.diagnostics)
}

/// Print diagnostics of any file (scenario or CST) to stderr.
pub fn emit_parts(
    path: &std::path::Path,
    source: &str,
    diagnostics: &[dockproof::scenario::Diagnostic],
) {
    use std::io::Write;
    let mut out = dockproof::report::inert::InertWriter::for_ci(std::io::stderr().lock());
    for line in render_parts(path, source, diagnostics) {
        let _ = out.write_all(line.as_bytes());
    }
}

/// Render diagnostics about the file `path` whose text is `source`.
pub fn render_parts(
    path: &std::path::Path,
    source: &str,
    diagnostics: &[dockproof::scenario::Diagnostic],
) -> Vec<String> {
    struct View<'a> {
        source: &'a str,
    }
    let report = View { source };
    let name = path.display().to_string();
    let file = SimpleFile::new(name.clone(), report.source);
    let config = Config::default();
    diagnostics
        .iter()
        .map(|problem| {
            let mut notes = Vec::new();
            if let Some(expected) = &problem.expected {
                notes.push(format!("expected: {expected}"));
            }
            if let Some(hint) = &problem.hint {
                notes.push(format!("hint: {hint}"));
            }
            let start = problem.span.start;
            if start.line == 0 || report.source.is_empty() {
                let mut text = format!("error: {name}: {}\n", problem.message);
                for note in &notes {
                    text.push_str(&format!("  = {note}\n"));
                }
                return text;
            }
            let end = problem
                .span
                .end
                .offset
                .max(start.offset + 1)
                .min(report.source.len())
                .max(start.offset);
            let message = format!(
                "{name}:{}:{}: {}",
                start.line, start.column, problem.message
            );
            let diagnostic = Diagnostic::error()
                .with_message(message)
                .with_labels(vec![Label::primary((), start.offset..end)])
                .with_notes(notes);
            let mut text = String::new();
            if term::emit_to_string(&mut text, &config, &file, &diagnostic).is_err() {
                text = format!(
                    "error: {name}:{}:{}: {}\n",
                    start.line, start.column, problem.message
                );
            }
            text
        })
        .collect()
}
