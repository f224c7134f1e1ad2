//! A Markdown summary (for `$GITHUB_STEP_SUMMARY` and pull-request comments).

use super::ReportOptions;
use crate::events::Outcome;
use crate::runner::RunOutcome;

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
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
        "### dockproof on `{}`\n\n**{passed} passed, {failed} failed** (run `{}`)\n\n",
        options.backend, options.run_id
    );
    text.push_str("| scenario | result | category | details |\n|---|---|---|---|\n");
    for report in &outcome.reports {
        let (category, details) = match &report.failure {
            Some(failure) => {
                let location = failure
                    .location
                    .as_ref()
                    .map(|location| format!("`{location}` "))
                    .unwrap_or_default();
                (
                    format!("`{}`", failure.category),
                    format!("{location}{}", cell(&failure.message)),
                )
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
