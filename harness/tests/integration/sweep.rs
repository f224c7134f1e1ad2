//! The run's final sweep lists only what the backend's ledger says can be there
//! (`backend::ledger`): nothing after a run that removed every container it made and made
//! nothing else, the containers after a create that did not answer with an id or a
//! removal that failed, and the kinds of resources the run asked for. A wrapper in front
//! of fake-docker logs every call (`DOCKPROOF_FAKE_SERVER=0`: each call is a process), so
//! each test sees the calls the run made, in order.

use crate::support;

/// Run `scenario` (relative to the repository) on the fake behind a logging wrapper with
/// `extra` arguments; the exit code and every call, as its space-joined argv.
fn traced_run(scenario: &str, extra: &[&str]) -> (std::process::Output, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls.log");
    let wrapper = dir.path().join("fake-docker");
    support::write_script(
        &wrapper,
        &format!(
            "echo \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            support::fake_docker().display()
        ),
    )
    .unwrap();
    let output = std::process::Command::new(support::dockproof())
        .current_dir(support::root())
        .env_remove("FAKE_DOCKER_STATE")
        .env("DOCKPROOF_FAKE_SERVER", "0")
        .args(["run", "--no-history", "--backend", "fake", "--fake-docker"])
        .arg(&wrapper)
        .arg("--fake-images")
        .arg(support::root().join("fixtures/fake-images"))
        .arg("--work-dir")
        .arg(dir.path().join("work"))
        .args(extra)
        .arg(scenario)
        .output()
        .unwrap();
    let calls = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    (output, calls)
}

/// The calls starting with `prefix`.
fn calls_of<'c>(calls: &'c [String], prefix: &str) -> Vec<&'c str> {
    calls
        .iter()
        .filter(|call| call.starts_with(prefix))
        .map(String::as_str)
        .collect()
}

const LISTINGS: [&str; 4] = ["ps ", "network ls ", "volume ls ", "image ls "];

fn listed(calls: &[String]) -> Vec<&str> {
    LISTINGS
        .iter()
        .filter(|prefix| !calls_of(calls, prefix).is_empty())
        .map(|prefix| prefix.trim_end())
        .collect()
}

#[test]
fn a_run_that_removed_every_container_it_made_lists_nothing() {
    let (output, calls) = traced_run("scenarios/job-happy-path.yaml", &[]);
    support::assert_exit(&output, 0);
    let created = calls_of(&calls, "create ").len();
    assert!(created > 0, "no container was created: {calls:#?}");
    assert_eq!(
        calls_of(&calls, "rm ").len(),
        created,
        "each container is removed once: {calls:#?}"
    );
    assert_eq!(listed(&calls), Vec::<&str>::new(), "{calls:#?}");
}

#[test]
fn a_create_that_did_not_answer_with_an_id_leaves_the_containers_listed() {
    // The first create is refused (image_not_found): whether the daemon made a container
    // is not known from dockproof's side, so the sweep looks.
    let (output, calls) = traced_run("scenarios/faults/image-missing.yaml", &[]);
    support::assert_exit(&output, 0);
    assert_eq!(listed(&calls), ["ps"], "{calls:#?}");
    let last = calls.last().map(String::as_str).unwrap_or_default();
    assert!(
        last.starts_with("ps "),
        "the listing is the run's last call: {calls:#?}"
    );
}

#[test]
fn a_container_whose_removal_failed_is_listed_and_swept() {
    // `rm:no-stop`: the scenario's removal fails; the run's sweep (no fault) removes it.
    let (output, calls) = traced_run("scenarios/faults/cleanup-failed.yaml", &[]);
    support::assert_exit(&output, 0);
    assert_eq!(listed(&calls), ["ps"], "{calls:#?}");
    let position = |prefix: &str| calls.iter().rposition(|call| call.starts_with(prefix));
    let (Some(listing), Some(removal)) = (position("ps "), position("rm ")) else {
        panic!("no listing or no removal: {calls:#?}");
    };
    assert!(
        removal > listing,
        "the container is removed after the listing found it: {calls:#?}"
    );
    // The job container (the one started): its removal failed once, then the sweep's.
    let started = calls_of(&calls, "start ");
    let id = started
        .first()
        .and_then(|call| call.split(' ').next_back())
        .unwrap_or_else(|| panic!("nothing was started: {calls:#?}"));
    assert_eq!(
        calls
            .iter()
            .filter(|call| call.starts_with("rm ") && call.ends_with(id))
            .count(),
        2,
        "{calls:#?}"
    );
}

#[test]
fn the_kinds_a_run_asked_for_are_listed_and_no_others() {
    // The copy transport makes a labelled volume per scenario (and removes it): volumes
    // are listed, networks and images are not.
    let (output, calls) = traced_run(
        "scenarios/job-happy-path.yaml",
        &["--workspace-transport", "copy"],
    );
    support::assert_exit(&output, 0);
    assert!(
        !calls_of(&calls, "volume create ").is_empty(),
        "no volume was made: {calls:#?}"
    );
    assert_eq!(listed(&calls), ["volume ls"], "{calls:#?}");
    // Images: fake-docker's live in its state directory, never listed; the real-daemon
    // trials `docker-*::build-*` (leftovers) sweep a labelled image an interrupted build left.
}
