//! Fault scenarios end to end: `fake_faults` scenarios pass on the fake and are
//! reported skipped (JUnit `<skipped>`, exit 0) by a real backend, which cannot
//! inject faults.

use crate::support;

use assert_cmd::Command;
use assert_cmd::assert::OutputAssertExt;
use predicates::prelude::*;

#[test]
fn every_fault_scenario_passes_on_the_fake() {
    let work = tempfile::tempdir().unwrap();
    let junit = work.path().join("junit.xml");
    let output = support::dockproof_fake(work.path())
        .arg("--no-history")
        .arg("--junit")
        .arg(&junit)
        .arg("scenarios/faults")
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        support::describe(&output)
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains(r#"failures="0""#) && xml.contains(r#"skipped="0""#),
        "{xml}"
    );
}

#[test]
fn a_real_backend_skips_fake_only_scenarios_with_the_reason() {
    let work = tempfile::tempdir().unwrap();
    let junit = work.path().join("junit.xml");
    // No daemon is needed: the scenario is skipped before anything talks to Docker.
    Command::new(support::dockproof())
        .current_dir(support::root())
        .env("DOCKER_HOST", "unix:///nonexistent.sock")
        .args([
            "run",
            "--no-history",
            "--backend",
            "docker-cli",
            "--work-dir",
        ])
        .arg(work.path())
        .arg("--junit")
        .arg(&junit)
        .arg("scenarios/faults/oom-killed.yaml")
        .assert()
        .success()
        .stdout(predicate::str::contains("SKIP fault-oom-killed"))
        .stdout(predicate::str::contains("skipped: needs the fake backend"))
        .stdout(predicate::str::contains("0 passed, 0 failed, 1 skipped"));
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains(r#"<skipped message="needs the fake backend"#),
        "{xml}"
    );
}

#[test]
fn a_scenario_level_expected_failure_that_does_not_happen_fails() {
    let work = tempfile::tempdir().unwrap();
    let scenario = work.path().join("s.yaml");
    std::fs::write(
        &scenario,
        "name: expects-cleanup-failure\nexpect_failure: cleanup_failed\nsteps:\n  - run: { image: \"dockproof/job-runner:1\", cmd: [echo, hi] }\n",
    )
    .unwrap();
    support::dockproof_fake(work.path())
        .arg("--no-history")
        .arg(&scenario)
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "assertion_failed: expected the scenario to fail with `cleanup_failed`, but it passed",
        ));
}

#[test]
fn every_error_category_has_a_shipped_scenario_expecting_it() {
    let mut expected = std::collections::BTreeSet::new();
    for path in support::shipped_scenarios() {
        let Some(loaded) = dockproof::scenario::load_file(&path).scenario else {
            panic!("{} does not load", path.display());
        };
        expected.extend(loaded.scenario.expect_failure);
        expected.extend(
            loaded
                .scenario
                .steps
                .iter()
                .filter_map(|step| step.expect_failure),
        );
    }
    // `internal_error` is dockproof's own bug (a panic): no scenario can ask for one.
    let missing: Vec<&str> = dockproof::category::Category::ALL
        .iter()
        .filter(|category| **category != dockproof::category::Category::InternalError)
        .filter(|category| !expected.contains(*category))
        .map(|category| category.as_str())
        .collect();
    assert!(
        missing.is_empty(),
        "no shipped scenario expects: {missing:?}"
    );
}

#[test]
fn a_compose_scenario_is_skipped_without_compose_with_the_reason() {
    // The API backend needs no `docker` binary: with an empty PATH neither the compose
    // plugin nor docker-compose can be found, and no daemon is asked anything.
    let work = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    Command::new(support::dockproof())
        .current_dir(support::root())
        .env("PATH", empty.path())
        .env("DOCKPROOF_HISTORY", support::history_db(work.path()))
        .args(["run", "--backend", "docker-api", "--work-dir"])
        .arg(work.path())
        .arg(support::root().join("scenarios/compose/live-stack.yaml"))
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "skipped: no docker compose found (install docker-compose or the compose plugin)",
        ))
        .stdout(predicate::str::contains("0 passed, 0 failed, 1 skipped"));
}

#[test]
fn a_compose_scenario_is_skipped_by_the_fake_with_the_reason() {
    let work = tempfile::tempdir().unwrap();
    support::dockproof_fake(work.path())
        .arg(support::root().join("scenarios/compose/live-stack.yaml"))
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "skipped: needs a real Docker daemon (`requires: [real_daemon]` or `[compose]`",
        ))
        .stdout(predicate::str::contains("0 passed, 0 failed, 1 skipped"));
}
