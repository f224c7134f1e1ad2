//! `dockproof canary` on fleets of fake hosts: the gate decides go/no-go from
//! each host's runs, and a host with a fault profile is named when it fails it.

mod support;

use assert_cmd::Command;
use predicates::prelude::*;

/// `dockproof canary` over `hosts`, `repeat` times, on the happy-path job.
fn canary(history: &std::path::Path, hosts: &[&str], repeat: u32) -> Command {
    let mut command = Command::new(support::dockproof());
    command
        .current_dir(support::root())
        .env("DOCKPROOF_HISTORY", history)
        .arg("canary")
        .arg("--no-history");
    for host in hosts {
        command.args(["--host", host]);
    }
    command
        .args(["--repeat", &repeat.to_string(), "--fake-docker"])
        .arg(support::fake_docker())
        .arg("scenarios/job-happy-path.yaml");
    command
}

#[test]
fn a_fleet_with_one_host_failing_a_fifth_of_its_runs_is_no_go_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    // w3's every fifth container start exits at once with code 1: one run in five fails.
    let hosts = [
        "fake://w1",
        "fake://w2",
        "fake://w3?faults=run:exit-immediately:every=5",
    ];
    canary(&dir.path().join("history.sqlite"), &hosts, 5)
        .assert()
        .code(1)
        .stdout(predicate::str::is_match(r"(?m)^w1\s+5\s+100\.0%").unwrap())
        .stdout(predicate::str::is_match(r"(?m)^w2\s+5\s+100\.0%").unwrap())
        .stdout(predicate::str::is_match(r"(?m)^w3\s+5\s+80\.0%").unwrap())
        .stdout(predicate::str::is_match(r"(?m)^NO-GO: .*host w3").unwrap())
        .stdout(
            predicate::str::is_match(r"(?m)^NO-GO: .*host w[12]\b")
                .unwrap()
                .not(),
        );
}

#[test]
fn a_healthy_fleet_is_go() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = ["fake://w1", "fake://w2", "fake://w3"];
    canary(&dir.path().join("history.sqlite"), &hosts, 5)
        .assert()
        .success()
        .stdout(predicate::str::is_match(r"(?m)^w3\s+5\s+100\.0%").unwrap())
        .stdout(predicate::str::contains("GO: every host met the gates"));
}

#[test]
fn a_probabilistic_fault_profile_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = ["fake://w1?faults=run:exit-immediately:p=0.5,seed=7"];
    let run = || {
        let output = canary(&dir.path().join("history.sqlite"), &hosts, 6)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let row = stdout
            .lines()
            .find(|line| line.starts_with("w1 "))
            .map(|line| {
                line.split_whitespace()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" ")
            });
        (output.status.code(), row)
    };
    let first = run();
    assert_eq!(first, run(), "the same seed gives the same runs");
    assert_eq!(first.0, Some(1), "p=0.5 fails some of 6 runs: {first:?}");
}
