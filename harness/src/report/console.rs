//! The console view: a line per finished scenario (with its failure and
//! where in the scenario file it is), then `N passed, N failed`.

use std::io::Write;

use tokio::sync::mpsc::UnboundedReceiver;

use crate::events::{Event, Outcome, ScenarioReport};
use crate::runner::RunOutcome;

/// Print events as they arrive until the run finishes.
pub async fn follow(mut events: UnboundedReceiver<Event>, mut out: impl Write) {
    let mut total = 0;
    let mut done = 0;
    while let Some(event) = events.recv().await {
        match event {
            Event::RunStarted { run_id, backend, scenarios } => {
                total = scenarios;
                let _ = writeln!(out, "dockproof: running {scenarios} scenario(s) on `{backend}` (run {run_id})");
            }
            Event::ScenarioFinished(report) => {
                done += 1;
                let _ = write_scenario(&mut out, &report, done, total);
            }
            Event::RunFinished { interrupted: true } => {
                let _ = writeln!(out, "dockproof: interrupted; removed what the run had created");
            }
            Event::ScenarioStarted { .. } | Event::StepFinished { .. } | Event::RunFinished { .. } => {}
        }
        let _ = out.flush();
    }
}

fn write_scenario(out: &mut impl Write, report: &ScenarioReport, done: usize, total: usize) -> std::io::Result<()> {
    let width = total.to_string().len();
    let label = match report.outcome {
        Outcome::Passed if report.flaky() => "FLKY",
        Outcome::Passed => "PASS",
        Outcome::Failed => "FAIL",
        Outcome::Skipped => "SKIP",
        Outcome::Interrupted => "INTR",
    };
    writeln!(out, "[{done:>width$}/{total}] {label} {}", report.name)?;
    for (attempt, earlier) in report.earlier_attempts.iter().enumerate() {
        writeln!(out, "    attempt {} failed: {}: {}", attempt + 1, earlier.category, earlier.message)?;
    }
    if report.outcome == Outcome::Passed {
        return Ok(());
    }
    if report.outcome == Outcome::Interrupted {
        writeln!(out, "    interrupted before it finished; what it created was removed")?;
    }
    if let Some(reason) = &report.skip_reason {
        writeln!(out, "    skipped: {reason}")?;
    }
    if let Some(failure) = &report.failure {
        let location = failure.location.as_ref().map(|location| format!("{location}: ")).unwrap_or_default();
        writeln!(out, "    {location}{}: {}", failure.category, failure.message)?;
        writeln!(out, "    hint: {}", failure.hint)?;
    }
    for line in report.stderr_tail.iter().rev().take(5).collect::<Vec<_>>().into_iter().rev() {
        writeln!(out, "    stderr| {line}")?;
    }
    Ok(())
}

/// The closing line: `N passed, N failed` (plus interrupted ones, when any).
pub fn summary_line(outcome: &RunOutcome) -> String {
    let (passed, failed, _) = outcome.counts();
    let interrupted = outcome.reports.iter().filter(|report| report.outcome == Outcome::Interrupted).count();
    let flaky = outcome.reports.iter().filter(|report| report.flaky()).count();
    let skipped = outcome.reports.iter().filter(|report| report.outcome == Outcome::Skipped).count();
    let mut line = format!("{passed} passed, {failed} failed");
    if skipped > 0 {
        line.push_str(&format!(", {skipped} skipped"));
    }
    if flaky > 0 {
        line.push_str(&format!(", {flaky} flaky"));
    }
    if interrupted > 0 {
        line.push_str(&format!(", {interrupted} interrupted"));
    }
    line
}
