//! dockproof against a daemon reached over ssh (`DOCKER_HOST=ssh://user@127.0.0.1:PORT`),
//! on the docker CLI and the Engine API backends. The test runs its own `sshd` on a
//! loopback port with keys made here (ssh-keygen: a host key, an authorised client key,
//! a key the server does not know), and points the system `ssh` at a client config of
//! its own through a wrapper first on `PATH` (`ssh -F CONFIG "$@"`; ssh reads the
//! passwd entry's home, not `$HOME`, so the user's own ~/.ssh is neither used nor
//! touched). The remote end is this machine, whose `docker system dial-stdio` reaches
//! the local daemon — so what is tested for real is the ssh transport of each backend.
//!
//! Real-daemon tests: ignored when no daemon answers, unless DOCKPROOF_REQUIRE_DOCKER=1;
//! they also need `sshd`, `ssh` and `ssh-keygen`, whose absence fails them under
//! DOCKPROOF_REQUIRE_DOCKER=1 and ignores them otherwise.

use crate::support;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Command;

use libtest_mimic::{Failed, Trial};
use support::sshd::{Tools, client_config, free_port, keygen, run, ssh_wrapper, start_sshd, tools};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The daemon socket the local docker uses, as the ssh address's path when it is not the
/// remote default (the remote `docker` does not see our DOCKER_HOST).
fn socket_path() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|host| host.strip_prefix("unix://").map(str::to_owned))
        .unwrap_or_default()
}

/// Containers, networks and volumes labelled with run `run` (a dockproof run leaves none).
fn labelled(run: &str) -> Result<Vec<String>, Failed> {
    Ok(support::labelled_leftovers(&format!(
        "dockproof.run={run}"
    ))?)
}

/// One dockproof run of the happy path on `backend` with `host`, `bin` first on PATH;
/// returns its exit code, its JSON report and its output.
fn dockproof(
    backend: &str,
    host: &str,
    bin: &Path,
    work: &Path,
    run_id: &str,
) -> Result<(Option<i32>, serde_json::Value, String), Failed> {
    let path = std::env::join_paths(std::iter::once(bin.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .map_err(|error| error.to_string())?;
    let json = work.with_extension("json");
    let output = support::dockproof_on(backend, work)
        .env("PATH", path)
        .env("DOCKER_HOST", host)
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_TLS_VERIFY")
        .args(["--run-id", run_id, "--json"])
        .arg(&json)
        .arg("scenarios/job-happy-path.yaml")
        .output()
        .map_err(|error| error.to_string())?;
    let text = support::describe(&output);
    let report = std::fs::read_to_string(&json)
        .map_err(|error| format!("no JSON report ({error}):\n{text}"))?;
    let report = serde_json::from_str(&report)
        .map_err(|error| format!("unreadable JSON report ({error}):\n{text}"))?;
    Ok((output.status.code(), report, text))
}

fn failure_category(report: &serde_json::Value) -> Option<&str> {
    report["scenarios"][0]["failure"]["category"].as_str()
}

fn over_ssh(backend: &'static str, tools: &Tools) -> Result<(), Failed> {
    support::ensure_fixture_image("dockproof/job-runner:1")?;
    let dir = tempfile::tempdir().map_err(|error| error.to_string())?;
    let root = dir.path();
    let host_key = root.join("host_key");
    let host_public = keygen(tools, &host_key)?;
    let client_public = keygen(tools, &root.join("client_key"))?;
    keygen(tools, &root.join("stranger_key"))?;
    let other_host_public = keygen(tools, &root.join("other_host_key"))?;
    let authorized = root.join("authorized_keys");
    std::fs::write(&authorized, format!("{client_public}\n")).map_err(|error| error.to_string())?;
    let sshd = start_sshd(tools, root, LOOPBACK, &host_key, &authorized)?;
    let port = sshd.port;
    // Only the server's real host key is trusted (StrictHostKeyChecking yes).
    let known = root.join("known_hosts");
    std::fs::write(&known, format!("[127.0.0.1]:{port} {host_public}\n"))
        .map_err(|error| error.to_string())?;
    let impostor = root.join("known_hosts_other");
    std::fs::write(
        &impostor,
        format!("[127.0.0.1]:{port} {other_host_public}\n"),
    )
    .map_err(|error| error.to_string())?;
    let good = ssh_wrapper(
        tools,
        root,
        "good",
        &client_config("127.0.0.1", &root.join("client_key"), &known),
    )?;
    let stranger = ssh_wrapper(
        tools,
        root,
        "stranger",
        &client_config("127.0.0.1", &root.join("stranger_key"), &known),
    )?;
    let spoofed = ssh_wrapper(
        tools,
        root,
        "spoofed",
        &client_config("127.0.0.1", &root.join("client_key"), &impostor),
    )?;
    let user = run(Command::new("id").arg("-un"), "id -un")?;
    let host = format!("ssh://{user}@127.0.0.1:{port}{}", socket_path());
    let run_id = |case: &str| format!("ssh-{backend}-{case}-{}", std::process::id());
    let sshd_log = || std::fs::read_to_string(root.join("sshd.log")).unwrap_or_default();

    let id = run_id("good");
    let (code, report, output) = dockproof(backend, &host, &good, &root.join("work-good"), &id)?;
    if code != Some(0) || report["summary"]["passed"] != 1 {
        return Err(format!("{backend} with DOCKER_HOST={host} must pass the happy path:\n{output}\n--- sshd log\n{}", sshd_log()).into());
    }
    // The run went through our sshd: it logged the client key's acceptance.
    if !sshd_log().contains("Accepted publickey for") {
        return Err(format!("{backend} passed but sshd accepted no key: the run did not go over ssh\n--- sshd log\n{}", sshd_log()).into());
    }
    let left = labelled(&id)?;
    if !left.is_empty() {
        return Err(format!("{backend} over ssh left {left:?} behind").into());
    }

    // Refusals: nothing listening, a key the server does not accept, a host key that is not the one trusted.
    let closed = free_port()?;
    let cases = [
        (
            "closed-port",
            format!("ssh://{user}@127.0.0.1:{closed}"),
            &good,
            "Connection refused",
        ),
        ("unknown-key", host.clone(), &stranger, "Permission denied"),
        (
            "wrong-host-key",
            host.clone(),
            &spoofed,
            "Host key verification failed",
        ),
    ];
    for (case, address, bin, ssh_said) in cases {
        let id = run_id(case);
        let (code, report, output) = dockproof(
            backend,
            &address,
            bin,
            &root.join(format!("work-{case}")),
            &id,
        )?;
        if code != Some(1) || failure_category(&report) != Some("daemon_unavailable") {
            return Err(format!("{backend} with {case} ({address}) must fail as daemon_unavailable (exit 1):\n{output}").into());
        }
        let message = report["scenarios"][0]["failure"]["message"]
            .as_str()
            .unwrap_or_default();
        if !message.contains(ssh_said) {
            return Err(format!("{backend} with {case}: the failure must say what ssh said ({ssh_said:?}), got {message:?}").into());
        }
        let left = labelled(&id)?;
        if !left.is_empty() {
            return Err(format!("{backend} with {case} left {left:?} behind").into());
        }
    }
    drop(sshd);
    Ok(())
}

/// This file's trials, run by `suites/main.rs`.
pub fn trials() -> Vec<Trial> {
    let tools = tools();
    if let Err(reason) = &tools
        && !support::docker_required()
    {
        eprintln!("ssh tests ignored: {reason}");
    }
    let mut trials = Vec::new();
    for backend in ["docker-cli", "docker-api"] {
        let tools = tools.clone();
        let missing = tools.is_err();
        let trial = support::real_daemon_trial(
            format!("ssh::{backend}-happy-path-and-refusals"),
            move || match tools {
                Ok(tools) => over_ssh(backend, &tools),
                Err(reason) => Err(format!("DOCKPROOF_REQUIRE_DOCKER=1 but {reason}").into()),
            },
        );
        trials.push(if missing && !support::docker_required() {
            trial.with_ignored_flag(true)
        } else {
            trial
        });
    }
    trials
}
