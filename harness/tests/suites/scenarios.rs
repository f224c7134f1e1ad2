//! The shipped scenario suite as tests: one test per scenario per backend.
//!
//! `fake::NAME` runs on fake-docker; `docker-cli::NAME` (through the docker
//! CLI) and `docker-api::NAME` (through the Engine API) run on the real
//! daemon and then prove the fake reaches the same verdict with the same
//! observations. Real-daemon tests are ignored when no daemon answers, unless
//! `DOCKPROOF_REQUIRE_DOCKER=1` (then they fail). Scenarios with `fake_faults`
//! (fault injection only fake-docker can do) are ignored on real backends. Scenarios
//! with `requires:` (compose stacks) are the mirror: the fake must report them skipped
//! with the reason, and the real backends must pass them (there is nothing to compare
//! with the fake) and leave no container, network or volume of the run or the compose
//! project behind; without docker compose they are ignored, or fail under
//! `DOCKPROOF_REQUIRE_DOCKER=1`. Filter with
//! `cargo test --test suites -- fake::`, `-- docker-cli::` or `-- docker-api::`.

use crate::support;

use std::path::Path;

use libtest_mimic::{Failed, Trial};
use serde_json::{Value, json};

fn run_report(
    mut command: std::process::Command,
    scenario: &Path,
    work: &Path,
    report: &Path,
) -> Result<Value, Failed> {
    let output = command
        .arg("--json")
        .arg(report)
        .arg("--jobs")
        .arg("1")
        .arg(scenario)
        .output()
        .map_err(|error| format!("cannot run dockproof: {error}"))?;
    if output.status.code() != Some(0) {
        return Err(format!("the scenario did not pass\n{}", support::describe(&output)).into());
    }
    let text =
        std::fs::read_to_string(report).map_err(|error| format!("no JSON report: {error}"))?;
    let _ = work;
    let report: Value =
        serde_json::from_str(&text).map_err(|error| format!("unreadable JSON report: {error}"))?;
    // A scenario the fake skips must say why: the only reason a scenario without
    // `requires:` or `fake_faults` may be skipped is a command fake-docker does not model.
    if report["scenarios"][0]["outcome"] == "skipped" {
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !stdout.contains(UNMODELLED_SKIP) {
            return Err(format!(
                "skipped without the reason `{UNMODELLED_SKIP}…`\n{}",
                support::describe(&output)
            )
            .into());
        }
    }
    Ok(report)
}

/// How the console reports a scenario skipped for a command fake-docker does not model.
const UNMODELLED_SKIP: &str = "skipped: fake image dockproof/";

/// What must be identical between the fake and a real daemon for one scenario file:
/// each scenario of the report (one, or one per matrix combination).
fn fingerprint(report: &Value) -> Value {
    report["scenarios"]
        .as_array()
        .into_iter()
        .flatten()
        .map(scenario_fingerprint)
        .collect()
}

/// [`fingerprint`] of one scenario of a report.
fn scenario_fingerprint(scenario: &Value) -> Value {
    let record = &scenario["record"];
    let docker = &record["context"]["docker"];
    let steps: Vec<Value> = scenario["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|step| json!({"kind": step["kind"], "outcome": step["outcome"], "category": step["failure"]["category"]}))
        .collect();
    json!({
        "name": scenario["name"],
        "outcome": scenario["outcome"],
        "steps": steps,
        "status": record["status"],
        "artifacts": record["result"]["artifacts"],
        "bytesIn": record["metrics"]["filestore"]["bytesIn"],
        "bytesOut": record["metrics"]["filestore"]["bytesOut"],
        "exitCode": docker["exitCode"],
        "oomKilled": docker["oomKilled"],
        "timedOut": docker["timedOut"],
        "workspace": docker["workspace"],
        "logTail": docker["logTail"],
    })
}

/// Builds the `dockproof run` command for one backend, given the work dir.
type RunCommand = fn(&Path) -> std::process::Command;

/// The real-daemon backends, each with the command that selects it.
const REAL_BACKENDS: [(&str, RunCommand); 2] = [
    ("docker-cli", support::dockproof_real),
    ("docker-api", support::dockproof_api),
];

/// Run `scenario` on a real daemon and on the fake; both must pass with the same observations.
fn real_matches_fake(real_command: RunCommand, scenario: &Path) -> Result<(), Failed> {
    let work = tempfile::tempdir().map_err(|error| error.to_string())?;
    let real = run_report(
        real_command(work.path()),
        scenario,
        work.path(),
        &work.path().join("real.json"),
    )?;
    let fake = run_report(
        support::dockproof_fake(work.path()),
        scenario,
        work.path(),
        &work.path().join("fake.json"),
    )?;
    // Skipped on the fake (a command it does not model, reason checked by `run_report`):
    // there is nothing to compare, and the real daemon must pass it.
    if fake["scenarios"][0]["outcome"] == "skipped" {
        return match real["scenarios"][0]["outcome"].as_str() {
            Some("passed") => Ok(()),
            other => Err(format!("skipped on the fake, {other:?} on the real daemon").into()),
        };
    }
    let (real, fake) = (fingerprint(&real), fingerprint(&fake));
    if real != fake {
        return Err(format!(
            "the fake and the real daemon disagree\n--- real\n{}\n--- fake\n{}",
            serde_json::to_string_pretty(&real).unwrap_or_default(),
            serde_json::to_string_pretty(&fake).unwrap_or_default()
        )
        .into());
    }
    Ok(())
}

/// A `requires:` scenario on the fake: skipped, with the reason, exit 0.
fn fake_skips(scenario: &Path) -> Result<(), Failed> {
    let work = tempfile::tempdir().map_err(|error| error.to_string())?;
    let report_path = work.path().join("report.json");
    let output = support::dockproof_fake(work.path())
        .arg("--json")
        .arg(&report_path)
        .arg(scenario)
        .output()
        .map_err(|error| format!("cannot run dockproof: {error}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if output.status.code() != Some(0) || !stdout.contains("skipped: needs a real Docker daemon") {
        return Err(format!(
            "the fake did not skip it with the reason\n{}",
            support::describe(&output)
        )
        .into());
    }
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(&report_path).map_err(|error| error.to_string())?,
    )
    .map_err(|error| error.to_string())?;
    match report["scenarios"][0]["outcome"].as_str() {
        Some("skipped") => Ok(()),
        other => Err(format!("outcome {other:?}, expected skipped").into()),
    }
}

/// A `requires:` scenario on a real backend: it must pass (not be skipped), and afterwards
/// nothing labelled with its run id or its compose project may be left on the daemon.
fn real_passes_and_leaves_nothing(backend: &str, scenario: &Path) -> Result<(), Failed> {
    let work = tempfile::tempdir().map_err(|error| error.to_string())?;
    // Unique per process, backend and scenario: the trials run in parallel.
    let stem: String = support::scenario_id(scenario)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let run_id = format!("t{}-{backend}-{stem}", std::process::id());
    let mut command = support::dockproof_on(backend, work.path());
    command.args(["--run-id", &run_id]);
    let report = run_report(
        command,
        scenario,
        work.path(),
        &work.path().join("report.json"),
    )?;
    let outcome = &report["scenarios"][0]["outcome"];
    if outcome != "passed" {
        return Err(format!(
            "outcome {outcome}, expected passed (skipped means no compose was found)"
        )
        .into());
    }
    let mut labels = vec![format!("dockproof.run={run_id}")];
    if let Some(project) =
        report["scenarios"][0]["record"]["context"]["compose"]["project"].as_str()
    {
        labels.push(format!("com.docker.compose.project={project}"));
    }
    for label in &labels {
        let left = support::labelled_leftovers(label)?;
        if !left.is_empty() {
            return Err(format!("left behind with {label}: {left:?}").into());
        }
    }
    Ok(())
}

/// This file's trials, run by `suites/main.rs`.
pub fn trials() -> Vec<Trial> {
    let mut trials = Vec::new();
    for scenario in support::shipped_scenarios() {
        let stem = support::scenario_id(&scenario);
        let fake_scenario = scenario.clone();
        let loaded = dockproof::scenario::load_file(&scenario).scenario;
        if loaded
            .as_ref()
            .is_some_and(|loaded| loaded.scenario.needs_real_daemon())
        {
            let needs_compose = loaded
                .as_ref()
                .is_some_and(|loaded| loaded.scenario.needs_compose());
            trials.push(
                Trial::test(format!("fake::{stem}"), move || fake_skips(&fake_scenario))
                    .with_kind("fake"),
            );
            for (backend, _) in REAL_BACKENDS {
                let scenario = scenario.clone();
                let test = move || real_passes_and_leaves_nothing(backend, &scenario);
                trials.push(if needs_compose {
                    support::compose_trial(format!("{backend}::{stem}"), test)
                } else {
                    support::real_daemon_trial(format!("{backend}::{stem}"), test)
                });
            }
            continue;
        }
        trials.push(
            Trial::test(format!("fake::{stem}"), move || {
                let work = tempfile::tempdir().map_err(|error| error.to_string())?;
                run_report(
                    support::dockproof_fake(work.path()),
                    &fake_scenario,
                    work.path(),
                    &work.path().join("report.json"),
                )
                .map(drop)
            })
            .with_kind("fake"),
        );
        // A scenario with `fake_faults` needs fake-docker's fault injection: real backends
        // report it skipped, so there is nothing to compare; its real-daemon tests are ignored.
        let fake_only = loaded.is_some_and(|loaded| loaded.scenario.fake_faults.is_some());
        for (backend, real_command) in REAL_BACKENDS {
            let scenario = scenario.clone();
            let trial = support::real_daemon_trial(format!("{backend}::{stem}"), move || {
                real_matches_fake(real_command, &scenario)
            });
            trials.push(if fake_only {
                trial.with_ignored_flag(true)
            } else {
                trial
            });
        }
    }
    trials
}
