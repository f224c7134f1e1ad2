//! A Markdown summary (for `$GITHUB_STEP_SUMMARY` and pull-request comments).

use super::ReportOptions;
use crate::events::Outcome;
use crate::runner::RunOutcome;

/// Untrusted text (scenario names, messages quoting container output) as literal
/// Markdown in a table cell: line breaks become spaces and every character that
/// could start markup, HTML (`<img onerror=…>`, `<script>`), an entity, a code span
/// or a cell boundary is backslash-escaped (CommonMark escapes any ASCII punctuation).
fn cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '\n' | '\r' => out.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '!' | '&' | '#' => {
                out.push('\\');
                out.push(character);
            }
            other => out.push(other),
        }
    }
    out
}

/// Untrusted text as a code span: fenced with more backticks than it holds in a row
/// (so it cannot close the span early), `|` escaped so it stays in its table cell
/// (GitHub applies that escape inside code spans too), line breaks as spaces.
fn code(text: &str) -> String {
    let text = text.replace(['\n', '\r'], " ").replace('|', "\\|");
    let longest_run = text
        .split(|character| character != '`')
        .map(str::len)
        .max()
        .unwrap_or(0);
    let fence = "`".repeat(longest_run + 1);
    // A space on each side keeps a leading or trailing backtick out of the fence.
    if longest_run > 0 {
        format!("{fence} {text} {fence}")
    } else {
        format!("{fence}{text}{fence}")
    }
}

fn icon(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Passed => "✅ passed",
        Outcome::Failed => "❌ failed",
        Outcome::Skipped => "⏭ skipped",
        Outcome::Interrupted => "⏹ interrupted",
    }
}

/// The summary as Markdown.
pub fn render(outcome: &RunOutcome, options: &ReportOptions) -> String {
    let (passed, failed, _) = outcome.counts();
    let mut text = format!(
        "### dockproof on {}\n\n**{passed} passed, {failed} failed** (run {})\n\n",
        code(&options.backend),
        code(&options.run_id)
    );
    text.push_str("| scenario | result | category | details |\n|---|---|---|---|\n");
    for report in super::failures_first(&outcome.reports) {
        let (category, details) = match &report.failure {
            Some(failure) => {
                // Every failed expectation of the step, each at its line.
                let details = failure
                    .findings()
                    .map(|finding| {
                        let location = finding
                            .location
                            .as_ref()
                            .map(|location| format!("{} ", code(&location.to_string())))
                            .unwrap_or_default();
                        let category = if failure.further.is_empty() {
                            String::new()
                        } else {
                            format!("{} ", code(&finding.category.to_string()))
                        };
                        format!("{location}{category}{}", cell(&finding.message))
                    })
                    .collect::<Vec<_>>()
                    .join("<br>");
                (code(&failure.category.to_string()), details)
            }
            None => (String::new(), String::new()),
        };
        let result = if report.flaky() {
            format!(
                "⚠️ flaky ({} failed attempt(s))",
                report.earlier_attempts.len()
            )
        } else {
            icon(report.outcome).to_owned()
        };
        text.push_str(&format!(
            "| {} | {result} | {category} | {details} |\n",
            cell(&report.name)
        ));
    }
    text
}

/// Append the summary to `path` (GitHub's step summary file is shared by steps).
pub fn append(
    path: &std::path::Path,
    outcome: &RunOutcome,
    options: &ReportOptions,
) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(render(outcome, options).as_bytes())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::category::Category;
    use crate::events::{Failure, Location, ScenarioReport};

    pub(crate) fn hostile_outcome() -> RunOutcome {
        let mut failure = Failure::new(
            Category::NonzeroExit,
            "exit 1: <script>alert(1)</script>\n::error::pwned | `tick` **bold** [link](http://x) &amp;",
        );
        failure.location = Some(Location {
            file: "dir/odd`|name.yaml".into(),
            line: 3,
            column: 5,
        });
        RunOutcome {
            reports: vec![ScenarioReport {
                name: "<img src=x onerror=alert(1)> | `x`".into(),
                file: "odd.yaml".into(),
                tags: vec![],
                outcome: Outcome::Failed,
                failure: Some(failure),
                skip_reason: None,
                earlier_attempts: vec![],
                steps: vec![],
                record: Default::default(),
                stdout_tail: vec!["<script>x</script>".into()],
                stderr_tail: vec![],
                duration: std::time::Duration::ZERO,
            }],
            interrupted: false,
            swept: 0,
            swept_resources: Vec::new(),
            left_behind: Vec::new(),
        }
    }

    #[test]
    fn names_and_messages_cannot_inject_html_markup_or_cells() {
        let options = ReportOptions {
            run_id: "r`1".into(),
            backend: "fake".into(),
            deterministic: true,
        };
        let text = render(&hostile_outcome(), &options);
        let row = text
            .lines()
            .find(|line| line.contains("onerror"))
            .expect("the scenario's row");
        // No raw HTML: every `<` is escaped.
        assert!(!row.contains(" <") && !row.contains("|<"), "{row}");
        assert_eq!(
            row.matches('<').count(),
            row.matches("\\<").count(),
            "{row}"
        );
        // Still four cells: every `|` inside the text is escaped.
        let unescaped_pipes = row.len() - row.replace('|', "").len() - row.matches("\\|").count();
        assert_eq!(unescaped_pipes, 5, "{row}");
        // The container's line break is gone, so `::error::` cannot start a line.
        assert!(!text.lines().any(|line| line.trim_start().starts_with("::")));
        // The location's backtick cannot close its code span early.
        assert!(row.contains("`` dir/odd`\\|name.yaml:3:5 ``"), "{row}");
        assert!(text.contains("(run `` r`1 ``)"), "{text}");
    }

    #[test]
    fn code_spans_outlast_the_backticks_inside() {
        assert_eq!(code("plain"), "`plain`");
        assert_eq!(code("a``b"), "``` a``b ```");
        assert_eq!(cell("a_b*c"), "a\\_b\\*c");
    }
}
