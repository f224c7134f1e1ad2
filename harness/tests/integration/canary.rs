//! `dockproof canary` on fleets of fake hosts: the gate decides go/no-go from
//! each host's runs, and a host with a fault profile is named when it fails it.

use crate::support;

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

#[test]
fn a_canary_whose_only_scenario_is_skipped_is_no_go_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("needs-daemon.yaml");
    std::fs::write(
        &scenario,
        "name: needs-daemon\ntags: [canary]\nrequires: [real_daemon]\nsteps:\n  - run: { image: dockproof/job-runner:1, cmd: [\"true\"] }\n",
    )
    .unwrap();
    Command::new(support::dockproof())
        .current_dir(support::root())
        .env("DOCKPROOF_HISTORY", dir.path().join("history.sqlite"))
        .args(["canary", "--no-history", "--fake-docker"])
        .arg(support::fake_docker())
        .arg(&scenario)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "warning: host local skipped needs-daemon (",
        ))
        .stdout(predicate::str::contains(
            "NO-GO: host local ran no scenario",
        ));
}

#[test]
fn a_gates_file_names_unknown_keys_and_categories_at_their_lines() {
    let dir = tempfile::tempdir().unwrap();
    let gates = dir.path().join("gates.yaml");
    std::fs::write(
        &gates,
        "min_success_rate: 0.9\nmax_p95_start: 100\nmax_failures:\n  oom: 0\n  timeout: 1\n",
    )
    .unwrap();
    let message = dockproof::canary::read_gates(&gates).unwrap_err();
    let file = gates.display();
    assert!(
        message.contains(&format!("{file}:2:1: unknown gate `max_p95_start`"))
            && message.contains("did you mean `max_p95_start_ms`?"),
        "{message}"
    );
    assert!(
        message.contains(&format!("{file}:4:3: unknown failure category `oom`"))
            && message.contains("did you mean `oom_killed`?"),
        "{message}"
    );
    assert!(
        !message.contains("`timeout`"),
        "timeout is a category: {message}"
    );
    std::fs::write(&gates, "min_success_rate: 95\n").unwrap();
    let message = dockproof::canary::read_gates(&gates).unwrap_err();
    assert!(
        message.contains(":1:19: min_success_rate 95 is not a share"),
        "{message}"
    );
    std::fs::write(
        &gates,
        "max_failures: { oom_killed: 0 }\nno_regression: false\n",
    )
    .unwrap();
    assert!(dockproof::canary::read_gates(&gates).is_ok());
}

#[test]
fn the_canary_writes_its_decision_every_gate_and_the_baseline_as_reports() {
    let dir = tempfile::tempdir().unwrap();
    let gates = dir.path().join("gates.yaml");
    std::fs::write(&gates, "max_failures: { nonzero_exit: 0 }\n").unwrap();
    let reports = dir.path().join("reports");
    let summary = dir.path().join("summary.md");
    let hosts = ["fake://w1", "fake://w2?faults=run:exit-immediately:every=2"];
    canary(&dir.path().join("history.sqlite"), &hosts, 2)
        .arg("--gates")
        .arg(&gates)
        .arg("--report-dir")
        .arg(&reports)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .assert()
        .code(1);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reports.join("canary.json")).unwrap())
            .unwrap();
    assert_eq!(json["decision"], "NO-GO");
    let failed: Vec<(String, String)> = json["gates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|check| check["passed"] == false)
        .map(|check| {
            (
                check["host"].as_str().unwrap().to_owned(),
                check["gate"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        failed.contains(&("w2".into(), "max_failures.nonzero_exit".into()))
            && failed.iter().all(|(host, _)| host == "w2"),
        "{failed:?}"
    );
    let gate = json["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|check| check["host"] == "w2" && check["gate"] == "min_success_rate")
        .unwrap();
    assert_eq!(gate["threshold"], "≥ 95.0%");
    assert_eq!(gate["measured"], "50.0%");
    let markdown = std::fs::read_to_string(reports.join("canary.md")).unwrap();
    assert!(markdown.starts_with("### Canary: NO-GO"), "{markdown}");
    assert_eq!(std::fs::read_to_string(&summary).unwrap(), markdown);
    let junit = std::fs::read_to_string(reports.join("canary-junit.xml")).unwrap();
    let document = roxmltree::Document::parse(&junit).unwrap();
    let failures = document
        .descendants()
        .filter(|node| node.has_tag_name("failure"))
        .count();
    assert_eq!(failures, failed.len(), "{junit}");
}
