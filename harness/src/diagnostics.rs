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

/// Render every diagnostic of `report` as text. A problem inside an included fragment
/// names the fragment's file:line:col, then each including line
/// (`included from scenarios/x.yaml:12:5`).
pub fn render(report: &FileReport) -> Vec<String> {
    report
        .diagnostics
        .iter()
        .flat_map(|problem| {
            let source = problem.span.source;
            let Some(file) = source
                .checked_sub(1)
                .and_then(|index| report.included.get(index as usize))
            else {
                return render_parts(&report.path, &report.source, std::slice::from_ref(problem));
            };
            let mut notes = Vec::new();
            let mut from = Some(file.included_from);
            let mut depth = 0;
            while let Some(span) = from.take() {
                let (path, parent) = match span.source.checked_sub(1) {
                    Some(index) => match report.included.get(index as usize) {
                        Some(outer) => (outer.path.as_path(), Some(outer.included_from)),
                        None => (report.path.as_path(), None),
                    },
                    None => (report.path.as_path(), None),
                };
                let note = format!(
                    "included from {}:{}:{}",
                    path.display(),
                    span.start.line,
                    span.start.column
                );
                notes.push(note);
                depth += 1;
                if depth <= dockproof::scenario::include::MAX_INCLUDE_DEPTH {
                    from = parent;
                }
            }
            render_with_notes(
                &file.path,
                &file.source,
                std::slice::from_ref(problem),
                &notes,
            )
        })
        .collect()
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
    render_with_notes(path, source, diagnostics, &[])
}

/// [`render_parts`] with `extra` notes after each problem's own (where it was included).
fn render_with_notes(
    path: &std::path::Path,
    source: &str,
    diagnostics: &[dockproof::scenario::Diagnostic],
    extra: &[String],
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
            notes.extend(extra.iter().cloned());
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
