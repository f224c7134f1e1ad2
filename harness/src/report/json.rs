//! The JSON report: every scenario with its steps, failure and job record.

use serde_json::{Value, json};

use super::ReportOptions;
use crate::runner::RunOutcome;

/// Fields of the job record that differ from run to run: timings, and how many stats
/// samples fell within the run (about one a second).
const TIMING_POINTERS: [&str; 3] = [
    "/metrics/docker/startMs",
    "/metrics/docker/runMs",
    "/metrics/docker/resources/samples",
];

/// Zero what differs from run to run in a record: timings and assigned host ports.
fn normalise_record(record: &mut Value) {
    for pointer in TIMING_POINTERS {
        if let Some(timing) = record.pointer_mut(pointer) {
            *timing = json!(0);
        }
    }
    for service in record
        .pointer_mut("/context/services")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|services| services.values_mut())
    {
        service["readyMs"] = json!(0);
        for port in service["ports"]
            .as_object_mut()
            .into_iter()
            .flat_map(|ports| ports.values_mut())
        {
            *port = json!(0);
        }
        for change in service["health"].as_array_mut().into_iter().flatten() {
            change["atMs"] = json!(0);
        }
    }
}

/// The report as a JSON value.
pub fn render(outcome: &RunOutcome, options: &ReportOptions) -> Value {
    let (passed, failed, other) = outcome.counts();
    let scenarios: Vec<Value> = outcome
        .reports
        .iter()
        .map(|report| {
            let mut value = serde_json::to_value(report).expect("reports always serialise");
            if options.deterministic {
                normalise_record(&mut value["record"]);
            } else {
                value["durationMs"] = json!(report.duration.as_millis() as u64);
                for (step, report_step) in value["steps"]
                    .as_array_mut()
                    .into_iter()
                    .flatten()
                    .zip(&report.steps)
                {
                    step["durationMs"] = json!(report_step.duration.as_millis() as u64);
                }
            }
            value
        })
        .collect();
    json!({
        "runId": options.run_id,
        "backend": options.backend,
        "interrupted": outcome.interrupted,
        "summary": { "passed": passed, "failed": failed, "other": other, "total": outcome.reports.len() },
        "scenarios": scenarios,
    })
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
    let mut text = serde_json::to_string_pretty(&render(outcome, options))
        .expect("JSON values always serialise");
    text.push('\n');
    std::fs::write(path, text)
}
