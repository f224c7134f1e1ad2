//! A command the fake image does not model (busybox `sh` on dockproof/job-runner:1):
//! the scenario is skipped on the fake with fake-docker's exact reason, counted as
//! skipped in every report, unless it expects `command_not_found`, which it then gets.
//! Fake backend only; the real backends run `scenarios/job-shell-command.yaml` in
//! `tests/suites/scenarios.rs`.

use crate::support;

use std::path::Path;

const REASON: &str = "fake image dockproof/job-runner:1 has no program `sh`: run it on a real daemon, or record it — see docs/fake-docker.md#commands-the-fake-does-not-model";

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

#[test]
fn a_shell_command_is_skipped_on_the_fake_with_the_reason_in_every_report() {
    let work = tempfile::tempdir().expect("tempdir");
    let out = work.path();
    let output = support::dockproof_fake(out)
        .arg("--json")
        .arg(out.join("report.json"))
        .arg("--junit")
        .arg(out.join("junit.xml"))
        .arg("--markdown")
        .arg(out.join("report.md"))
        .arg("--html")
        .arg(out.join("report.html"))
        .arg(support::root().join("scenarios/job-shell-command.yaml"))
        .output()
        .expect("run dockproof");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains(&format!("skipped: {REASON}")), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_str(&read(&out.join("report.json"))).expect("JSON report");
    assert_eq!(json["scenarios"][0]["outcome"], "skipped", "{json}");
    let junit = read(&out.join("junit.xml"));
    assert!(junit.contains("skipped=\"1\""), "{junit}");
    assert!(junit.contains("has no program `sh`"), "{junit}");
    assert!(read(&out.join("report.md")).contains("skipped"));
    assert!(read(&out.join("report.html")).contains("skipped"));
}

#[test]
fn a_scenario_expecting_command_not_found_gets_it() {
    let work = tempfile::tempdir().expect("tempdir");
    let scenario = work.path().join("expects.yaml");
    std::fs::write(
        &scenario,
        "name: expects-command-not-found\nsteps:\n  - run:\n      image: dockproof/job-runner:1\n      cmd: [sh, -c, \"exit 0\"]\n    expect_failure: command_not_found\n",
    )
    .expect("write scenario");
    let report = work.path().join("report.json");
    let output = support::dockproof_fake(work.path())
        .arg("--json")
        .arg(&report)
        .arg(&scenario)
        .output()
        .expect("run dockproof");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let json: serde_json::Value = serde_json::from_str(&read(&report)).expect("JSON report");
    assert_eq!(json["scenarios"][0]["outcome"], "passed", "{json}");
    assert_eq!(
        json["scenarios"][0]["steps"][0]["failure"]["category"], "command_not_found",
        "{json}"
    );
}
