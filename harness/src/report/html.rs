//! One self-contained HTML file: a timeline per scenario (steps, durations,
//! failures with their scenario line, service health, log tails).

use super::ReportOptions;
use crate::events::{Outcome, ScenarioReport};
use crate::runner::RunOutcome;

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

fn class(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Passed => "passed",
        Outcome::Failed => "failed",
        Outcome::Skipped => "skipped",
        Outcome::Interrupted => "interrupted",
    }
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:2em;color:#222}h1{font-size:1.4em}\
.summary{margin-bottom:1.5em}details{border:1px solid #ddd;border-radius:6px;margin:.6em 0;padding:.4em .8em}\
summary{cursor:pointer;font-weight:600}.passed{color:#1a7f37}.failed{color:#cf222e}.skipped,.interrupted{color:#9a6700}\
table{border-collapse:collapse;margin:.5em 0}td,th{border-bottom:1px solid #eee;padding:.25em .6em;text-align:left;vertical-align:top}\
.bar{display:inline-block;height:.7em;background:#8c959f;border-radius:2px}pre{background:#f6f8fa;padding:.6em;overflow:auto;max-height:20em}\
.hint{color:#57606a}";

fn scenario(report: &ScenarioReport, deterministic: bool) -> String {
    let mut html = String::new();
    let open = if report.outcome == Outcome::Passed {
        ""
    } else {
        " open"
    };
    html.push_str(&format!(
        "<details{open}><summary><span class=\"{}\">{}</span> {}</summary>\n",
        class(report.outcome),
        class(report.outcome),
        escape(&report.name)
    ));
    html.push_str(&format!(
        "<div class=\"hint\">{}</div>\n",
        escape(&report.file.display().to_string())
    ));
    for failure in report.failure.iter().flat_map(|failure| failure.findings()) {
        let location = failure
            .location
            .as_ref()
            .map(|location| format!("{location}: "))
            .unwrap_or_default();
        html.push_str(&format!(
            "<p class=\"failed\"><b>{}</b> {}{}</p><p class=\"hint\">hint: {}</p>\n",
            failure.category,
            escape(&location),
            escape(&failure.message),
            escape(&failure.hint)
        ));
    }
    let longest = report
        .steps
        .iter()
        .map(|step| step.duration.as_millis())
        .max()
        .unwrap_or(0)
        .max(1);
    html.push_str("<table><tr><th>step</th><th>result</th><th>time</th><th>details</th></tr>\n");
    for step in &report.steps {
        let time = if deterministic {
            String::new()
        } else {
            let width = (step.duration.as_millis() * 200 / longest).max(1);
            format!(
                "<span class=\"bar\" style=\"width:{width}px\"></span> {} ms",
                step.duration.as_millis()
            )
        };
        let details = match (&step.failure, step.expected_failure) {
            (Some(failure), Some(expected)) if failure.category == expected => {
                format!("failed as expected with <code>{expected}</code>")
            }
            (Some(failure), _) => format!(
                "<code>{}</code> {}",
                failure.category,
                escape(&failure.message)
            ),
            (None, _) => String::new(),
        };
        html.push_str(&format!(
            "<tr><td>{}</td><td class=\"{}\">{}</td><td>{time}</td><td>{details}</td></tr>\n",
            escape(&step.name),
            class(step.outcome),
            class(step.outcome)
        ));
    }
    html.push_str("</table>\n");
    for (name, service) in &report.record.context.services {
        let timeline: Vec<String> = service
            .health
            .iter()
            .map(|change| {
                if deterministic {
                    change.status.clone()
                } else {
                    format!("{} @{} ms", change.status, change.at_ms)
                }
            })
            .collect();
        html.push_str(&format!(
            "<p>service <b>{}</b>: health {}</p>\n",
            escape(name),
            escape(&timeline.join(" → "))
        ));
    }
    for (label, lines) in [
        ("stdout", &report.stdout_tail),
        ("stderr", &report.stderr_tail),
    ] {
        if !lines.is_empty() {
            html.push_str(&format!(
                "<div>{label} (tail)</div><pre>{}</pre>\n",
                escape(&lines.join("\n"))
            ));
        }
    }
    html.push_str("</details>\n");
    html
}

/// The report as one HTML document.
pub fn render(outcome: &RunOutcome, options: &ReportOptions) -> String {
    let (passed, failed, _) = outcome.counts();
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>dockproof: {passed} passed, {failed} failed</title><style>{STYLE}</style></head><body>\n<h1>dockproof on {}</h1>\n<div class=\"summary\"><b>{passed} passed, {failed} failed</b> · run {}</div>\n",
        escape(&options.backend),
        escape(&options.run_id)
    );
    for report in super::failures_first(&outcome.reports) {
        html.push_str(&scenario(report, options.deterministic));
    }
    html.push_str("</body></html>\n");
    html
}

/// Write the report to `path`.
pub fn write(
    path: &std::path::Path,
    outcome: &RunOutcome,
    options: &ReportOptions,
) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, render(outcome, options))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_messages_and_output_are_escaped() {
        let options = ReportOptions {
            run_id: "<b>run</b>".into(),
            backend: "fake".into(),
            deterministic: true,
        };
        let html = render(&crate::report::markdown::tests::hostile_outcome(), &options);
        for raw in ["<img", "<script>", "<b>run"] {
            assert!(!html.contains(raw), "{raw} in {html}");
        }
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
        assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"), "{html}");
    }
}
