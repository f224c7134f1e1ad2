//! docker-cli learns how an attached run ended from the daemon's `die` event (one
//! `docker events` process per run, `backend::exits`) instead of a `docker inspect` per
//! container, and falls back to `inspect` when the events do not come. A wrapper in front
//! of the real docker CLI logs every call; a second one also swallows `docker events` (it
//! prints nothing, as a daemon whose clock is far off ours would replay nothing): the
//! run's verdicts and exit codes must be the same both ways. The fixture image's check
//! comes from the same events (the digest label its `create` event carries): no
//! `docker image inspect` with events, one without.

use std::path::Path;

use libtest_mimic::{Failed, Trial};

use crate::support;

fn fail(message: impl std::fmt::Display) -> Failed {
    Failed::from(message.to_string())
}

const SCENARIO: &str = "name: exit-events
steps:
  - run:
      image: dockproof/job-runner:1
      cmd: [sh, -c, \"echo failing; exit 3\"]
    expect: { exit_code: 3, stdout: { contains: failing } }
  - run:
      image: dockproof/job-runner:1
      cmd: [sh, -c, \"echo done\"]
    expect: { exit_code: 0, stdout: { contains: done } }
";

/// A wrapper logging each call's argv to `log`; with `swallow_events`, `docker events`
/// prints nothing (and waits to be killed).
fn wrapper(dir: &Path, log: &Path, swallow_events: bool) -> Result<std::path::PathBuf, Failed> {
    let path = dir.join(if swallow_events {
        "docker-deaf"
    } else {
        "docker-logged"
    });
    let swallow = if swallow_events {
        "if [ \"$1\" = events ]; then exec sleep 600; fi\n"
    } else {
        ""
    };
    support::write_script(
        &path,
        &format!(
            "echo \"$*\" >> '{}'\n{swallow}exec docker \"$@\"\n",
            log.display()
        ),
    )
    .map_err(fail)?;
    Ok(path)
}

/// Run the scenario through `docker` (it passes only if each step's exit code is the
/// expected one); the exit code in the record (the last step's) and the calls made.
fn run(dir: &Path, docker: &Path, log: &Path) -> Result<(Vec<i64>, Vec<String>), Failed> {
    let scenario = dir.join("exit-events.yaml");
    std::fs::write(&scenario, SCENARIO).map_err(fail)?;
    let work = dir.join("work");
    let json = dir.join("report.json");
    std::fs::write(log, "").map_err(fail)?;
    let output = support::dockproof_real(&work)
        .arg("--docker")
        .arg(docker)
        .arg("--json")
        .arg(&json)
        .arg(&scenario)
        .output()
        .map_err(fail)?;
    if output.status.code() != Some(0) {
        return Err(fail(format!(
            "the run must pass:\n{}",
            support::describe(&output)
        )));
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).map_err(fail)?).map_err(fail)?;
    // Each step's expectation checks its exit code (3, then 0); the record keeps the last.
    let codes = report["scenarios"][0]["record"]["context"]["docker"]["exitCode"]
        .as_i64()
        .into_iter()
        .collect();
    let calls = std::fs::read_to_string(log)
        .map_err(fail)?
        .lines()
        .map(str::to_owned)
        .collect();
    Ok((codes, calls))
}

fn inspects(calls: &[String]) -> usize {
    calls
        .iter()
        .filter(|call| call.starts_with("inspect --type container"))
        .count()
}

fn image_inspects(calls: &[String]) -> usize {
    calls
        .iter()
        .filter(|call| call.starts_with("image inspect"))
        .count()
}

fn ends_come_from_events_and_inspect_stands_in() -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(fail)?;
    let log = dir.path().join("calls.log");
    let logged = wrapper(dir.path(), &log, false)?;
    // The fixture as its sources are (built now if it was not), so the runs below check it.
    run(dir.path(), &logged, &log)?;
    let (codes, calls) = run(dir.path(), &logged, &log)?;
    if calls
        .iter()
        .filter(|call| call.starts_with("events "))
        .count()
        != 1
    {
        return Err(fail(format!("one events process per run: {calls:#?}")));
    }
    if inspects(&calls) != 0 {
        return Err(fail(format!(
            "the runs' ends were inspected, not read from the events: {calls:#?}"
        )));
    }
    if image_inspects(&calls) != 0 {
        return Err(fail(format!(
            "the fixture was inspected, not checked by its create event: {calls:#?}"
        )));
    }
    let deaf = wrapper(dir.path(), &log, true)?;
    let started = std::time::Instant::now();
    let (deaf_codes, deaf_calls) = run(dir.path(), &deaf, &log)?;
    if inspects(&deaf_calls) != 2 || image_inspects(&deaf_calls) != 1 {
        return Err(fail(format!(
            "without events each run's end and the fixture are inspected: {deaf_calls:#?}"
        )));
    }
    // One bounded wait (the first create's event), none after.
    if started.elapsed() > std::time::Duration::from_secs(20) {
        return Err(fail(format!(
            "the run without events took {:?}",
            started.elapsed()
        )));
    }
    if codes != deaf_codes {
        return Err(fail(format!(
            "exit codes differ: {codes:?} from events, {deaf_codes:?} from inspect"
        )));
    }
    Ok(())
}

pub fn trials() -> Vec<Trial> {
    vec![support::real_daemon_trial(
        "docker-cli::ends-come-from-events-and-inspect-stands-in",
        ends_come_from_events_and_inspect_stands_in,
    )]
}
