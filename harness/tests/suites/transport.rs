//! The workspace transport (issue 14 items 1, 2, 5).
//!
//! `fake-remote::*` runs on fake-docker acting as a daemon on another machine
//! (`FAKE_DOCKER_REMOTE=1`: it does not see dockproof's files): the whole shipped suite
//! must reach the same verdicts there as on the ordinary fake, `auto` must pick `copy`
//! (a forced `bind` fails there). `docker-cli::copy::*` / `docker-api::copy::*` run the
//! job scenarios on the real daemon with `--workspace-transport copy` and check nothing
//! labelled with the run is left; `docker-*::probe-picks-bind-locally` proves `auto`
//! keeps the fast path locally; `docker-*::auto-asks-the-kernel-not-a-probe-container`
//! that a local dockerd sharing dockproof's mount namespace needs no probe container and
//! `docker-*::a-forwarded-socket-is-probed` that a unix socket forwarded by another process
//! (its peer is not dockerd) is still probed; `docker-*::copy-back-refuses-a-symlink-to-etc-shadow` is
//! the end-to-end refusal of a hostile entry.

use crate::support;

use std::path::Path;

use libtest_mimic::{Failed, Trial};
use serde_json::Value;

/// The job scenarios issue 14 names, run over `copy` on the real daemon.
const JOB_SCENARIOS: [&str; 6] = [
    "job-happy-path.yaml",
    "checksum-mismatch.yaml",
    "job-nonzero-exit.yaml",
    "workspace-too-many-files.yaml",
    "exec-into-detached.yaml",
    "ephemeral-runner.yaml",
];

fn json_report(mut command: std::process::Command, report: &Path) -> Result<Value, Failed> {
    let output = command
        .arg("--json")
        .arg(report)
        .output()
        .map_err(|error| format!("cannot run dockproof: {error}"))?;
    let text = std::fs::read_to_string(report)
        .map_err(|error| format!("no JSON report ({error})\n{}", support::describe(&output)))?;
    serde_json::from_str(&text).map_err(|error| format!("unreadable JSON report: {error}").into())
}

/// Each scenario's outcome and each step's outcome and failure category, by name.
fn verdicts(report: &Value) -> Vec<(String, Value)> {
    let mut all: Vec<(String, Value)> = report["scenarios"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|scenario| {
            let steps: Vec<Value> = scenario["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|step| serde_json::json!([step["outcome"], step["failure"]["category"]]))
                .collect();
            (
                scenario["name"].as_str().unwrap_or_default().to_owned(),
                serde_json::json!({
                    "outcome": scenario["outcome"],
                    "category": scenario["failure"]["category"],
                    "steps": steps,
                }),
            )
        })
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

/// The shipped suite on the fake, then on the fake in remote mode (`auto`): same verdicts.
fn remote_fake_matches_local_fake() -> Result<(), Failed> {
    let work = tempfile::tempdir().map_err(|error| error.to_string())?;
    let local = json_report(
        {
            let mut command = support::dockproof_fake(work.path());
            command.env_remove("FAKE_DOCKER_REMOTE").arg("scenarios");
            command
        },
        &work.path().join("local.json"),
    )?;
    let remote = json_report(
        {
            let mut command = support::dockproof_fake(work.path());
            command.env("FAKE_DOCKER_REMOTE", "1").args([
                "--workspace-transport",
                "auto",
                "scenarios",
            ]);
            command
        },
        &work.path().join("remote.json"),
    )?;
    let (local, remote) = (verdicts(&local), verdicts(&remote));
    if local.len() < 20 {
        return Err(format!("only {} scenarios ran on the fake", local.len()).into());
    }
    let differing: Vec<String> = local
        .iter()
        .zip(&remote)
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("{}: local {} / remote {} {}", a.0, a.1, b.0, b.1))
        .collect();
    if local.len() != remote.len() || !differing.is_empty() {
        return Err(format!(
            "{} scenarios locally, {} in remote mode; differing verdicts:\n{}",
            local.len(),
            remote.len(),
            differing.join("\n")
        )
        .into());
    }
    Ok(())
}

/// On the remote fake a forced `bind` cannot work (the daemon does not see the
/// workspace: `--mount type=bind` is refused), and `auto` passes: it chose `copy`.
fn auto_picks_copy_on_the_remote_fake() -> Result<(), Failed> {
    let work = tempfile::tempdir().map_err(|error| error.to_string())?;
    let run = |transport: &str, report: &str| {
        let mut command = support::dockproof_fake(work.path());
        command.env("FAKE_DOCKER_REMOTE", "1").args([
            "--workspace-transport",
            transport,
            "scenarios/job-happy-path.yaml",
        ]);
        json_report(command, &work.path().join(report))
    };
    let bind = run("bind", "bind.json")?;
    let failure = &bind["scenarios"][0]["failure"];
    let message = failure["message"].as_str().unwrap_or_default().to_owned();
    if failure["category"] != "config_invalid"
        || !message.contains("the daemon does not see the workspace directory")
        || !message.contains("bind source path does not exist")
    {
        return Err(format!(
            "a forced bind on the remote fake did not fail as a remote daemon does: {message:?}"
        )
        .into());
    }
    let auto = run("auto", "auto.json")?;
    if auto["scenarios"][0]["outcome"] != "passed" {
        return Err(format!("auto on the remote fake: {}", auto["scenarios"][0]).into());
    }
    Ok(())
}

/// One job scenario over `copy` on a real backend: passes, nothing of the run left.
fn real_copy(backend: &'static str, scenario: &'static str) -> Result<(), Failed> {
    support::ensure_fixture_image("dockproof/job-runner:1")?;
    let work = tempfile::tempdir().map_err(|error| error.to_string())?;
    let run_id = format!(
        "transport-copy-{}-{}",
        backend,
        std::process::id() ^ scenario.len() as u32
    );
    let mut command = support::dockproof_on(backend, work.path());
    command
        .args(["--workspace-transport", "copy", "--run-id", &run_id])
        .arg(format!("scenarios/{scenario}"));
    let output = command
        .output()
        .map_err(|error| format!("cannot run dockproof: {error}"))?;
    if output.status.code() != Some(0) {
        return Err(format!(
            "the scenario did not pass over copy\n{}",
            support::describe(&output)
        )
        .into());
    }
    let left = support::labelled_leftovers(&format!("dockproof.run={run_id}"))?;
    if !left.is_empty() {
        return Err(format!("left on the daemon: {left:?}").into());
    }
    Ok(())
}

/// `auto`'s probe on the local daemon: it sees dockproof's files, so `bind`; the probe
/// leaves no container and removes its directory.
fn probe_picks_bind_locally(backend: &'static str) -> Result<(), Failed> {
    support::ensure_fixture_image("dockproof/job-runner:1")?;
    let work = tempfile::tempdir().map_err(|error| error.to_string())?;
    let run_id = format!("transport-probe-{backend}-{}", std::process::id());
    let daemon: std::sync::Arc<dyn dockproof::backend::Backend> = match backend {
        "docker-cli" => std::sync::Arc::new(dockproof::backend::cli::CliBackend::new(
            "docker-cli",
            "docker",
            Vec::new(),
        )),
        _ => std::sync::Arc::new(dockproof::backend::api::ApiBackend::from_env("docker-api")),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| error.to_string())?;
    let transport = runtime
        .block_on(dockproof::transport::probe(
            daemon.as_ref(),
            "dockproof/job-runner:1",
            work.path(),
            &run_id,
        ))
        .map_err(|error| error.to_string())?;
    if transport != dockproof::transport::Transport::Bind {
        return Err(format!("the local daemon was probed as {transport:?}").into());
    }
    let left = support::labelled_leftovers(&format!("dockproof.run={run_id}"))?;
    let dirs: Vec<_> = std::fs::read_dir(work.path())
        .map_err(|error| error.to_string())?
        .collect();
    if !left.is_empty() || !dirs.is_empty() {
        return Err(format!(
            "the probe left {left:?} and {} entries in its work dir",
            dirs.len()
        )
        .into());
    }
    Ok(())
}

/// A job that leaves a symlink to /etc/shadow in its workspace: over `copy` the copy-back
/// refuses it (config_invalid, naming the entry) and the scenario expecting that passes.
fn copy_back_refuses_a_symlink(backend: &'static str) -> Result<(), Failed> {
    support::ensure_fixture_image("dockproof/job-runner:1")?;
    let work = tempfile::tempdir().map_err(|error| error.to_string())?;
    let scenario = work.path().join("hostile-symlink.yaml");
    std::fs::write(
        &scenario,
        r#"name: hostile-symlink
workspace: { transport: copy }
stage:
  - { text: "in\n", to: inputs/a.txt }
steps:
  - run:
      image: dockproof/job-runner:1
      cmd: [sh, -c, "ln -s /etc/shadow /workspace/shadow && echo secret > /workspace/after.txt"]
    expect_failure: config_invalid
"#,
    )
    .map_err(|error| error.to_string())?;
    let run_id = format!("transport-hostile-{backend}-{}", std::process::id());
    let mut command = support::dockproof_on(backend, work.path());
    command.args(["--run-id", &run_id]).arg(&scenario);
    let report = json_report(command, &work.path().join("report.json"))?;
    let scenario = &report["scenarios"][0];
    let message = scenario["steps"][1]["failure"]["message"]
        .as_str()
        .unwrap_or_default();
    if scenario["outcome"] != "passed"
        || !message.contains("path `shadow` is a symlink to `/etc/shadow`, outside the workspace")
    {
        return Err(format!("unexpected result: {scenario}").into());
    }
    let left = support::labelled_leftovers(&format!("dockproof.run={run_id}"))?;
    if !left.is_empty() {
        return Err(format!("left on the daemon: {left:?}").into());
    }
    Ok(())
}

/// The names of the containers the daemon created for run `run_id` since `since` (unix
/// seconds), from `docker events`, which also sees a container created and removed again.
fn created_for_run(run_id: &str, since: u64) -> Result<Vec<String>, Failed> {
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|error| error.to_string())?
        .as_secs()
        + 1;
    let output = std::process::Command::new("docker")
        .args(["events", "--since", &since.to_string(), "--until"])
        .arg(until.to_string())
        .args(["--filter", "type=container", "--filter", "event=create"])
        .args(["--filter", &format!("label=dockproof.run={run_id}")])
        .args(["--format", "{{.Actor.Attributes.name}}"])
        .output()
        .map_err(|error| format!("cannot run docker events: {error}"))?;
    if !output.status.success() {
        return Err(format!("docker events failed\n{}", support::describe(&output)).into());
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect())
}

fn unix_now() -> Result<u64, Failed> {
    Ok(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|error| error.to_string())?
        .as_secs())
}

/// `job-happy-path.yaml` under `auto` with `DOCKER_HOST` set to `docker_host` (`None`: as
/// the environment has it): it must pass and record `bind`; the names of the containers
/// the run created.
fn auto_run(
    backend: &'static str,
    run_id: &str,
    docker_host: Option<&str>,
) -> Result<Vec<String>, Failed> {
    support::ensure_fixture_image("dockproof/job-runner:1")?;
    let work = tempfile::tempdir().map_err(|error| error.to_string())?;
    let since = unix_now()?;
    let mut command = support::dockproof_on(backend, work.path());
    if let Some(host) = docker_host {
        command.env("DOCKER_HOST", host);
    }
    command
        .args(["--workspace-transport", "auto", "--run-id", run_id])
        .arg("scenarios/job-happy-path.yaml");
    let report = json_report(command, &work.path().join("report.json"))?;
    let scenario = &report["scenarios"][0];
    let transport = &scenario["record"]["context"]["docker"]["workspace"]["transport"];
    if scenario["outcome"] != "passed" || transport != "bind" {
        return Err(
            format!("expected a pass over bind, got transport {transport}: {scenario}").into(),
        );
    }
    let created = created_for_run(run_id, since)?;
    if created.is_empty() {
        return Err("docker events shows no container created by the run".into());
    }
    Ok(created)
}

/// The local daemon is a `dockerd` in this mount namespace (as `.ci/run` starts it): `auto`
/// asks the kernel (`SO_PEERCRED`, `/proc`) and creates no probe container.
fn auto_asks_the_kernel_locally(backend: &'static str) -> Result<(), Failed> {
    let socket = support::daemon_socket();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| error.to_string())?;
    if !runtime.block_on(dockproof::transport::daemon_shares_our_files(&socket)) {
        return Err(format!(
            "the daemon at {} is not seen as a dockerd sharing this mount namespace (this trial needs one, as .ci/run starts it)",
            socket.display()
        )
        .into());
    }
    let run_id = format!("transport-kernel-{backend}-{}", std::process::id());
    let created = auto_run(backend, &run_id, None)?;
    if let Some(probe) = created.iter().find(|name| name.contains("transport-probe")) {
        return Err(format!("a probe container was created anyway: {probe}").into());
    }
    Ok(())
}

/// A unix socket that forwards every connection to `target`, as ssh -L or socat would:
/// its peer is this test process, not dockerd. Stops when dropped.
struct SocketForwarder {
    path: std::path::PathBuf,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    _dir: tempfile::TempDir,
}

impl SocketForwarder {
    fn start(target: std::path::PathBuf) -> Result<SocketForwarder, Failed> {
        use std::os::unix::net::{UnixListener, UnixStream};
        let dir = tempfile::tempdir().map_err(|error| error.to_string())?;
        let path = dir.path().join("forwarded.sock");
        let listener = UnixListener::bind(&path).map_err(|error| error.to_string())?;
        listener
            .set_nonblocking(true)
            .map_err(|error| error.to_string())?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    continue;
                };
                let Ok(daemon) = UnixStream::connect(&target) else {
                    continue;
                };
                let _ = client.set_nonblocking(false);
                let pump = |mut from: UnixStream, mut to: UnixStream| {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                };
                if let (Ok(client_read), Ok(daemon_read)) = (client.try_clone(), daemon.try_clone())
                {
                    pump(client_read, daemon);
                    pump(daemon_read, client);
                }
            }
        });
        Ok(SocketForwarder {
            path,
            stop,
            _dir: dir,
        })
    }
}

impl Drop for SocketForwarder {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The same local daemon behind a forwarded unix socket: the kernel names the forwarder,
/// not dockerd, so `auto` does not trust the address and runs the probe (which then sees
/// the files: `bind`).
fn a_forwarded_socket_is_probed(backend: &'static str) -> Result<(), Failed> {
    let forwarder = SocketForwarder::start(support::daemon_socket())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| error.to_string())?;
    if runtime.block_on(dockproof::transport::daemon_shares_our_files(
        &forwarder.path,
    )) {
        return Err("a forwarded socket was taken for the daemon itself".into());
    }
    let run_id = format!("transport-forwarded-{backend}-{}", std::process::id());
    let host = format!("unix://{}", forwarder.path.display());
    let created = auto_run(backend, &run_id, Some(&host))?;
    if !created.iter().any(|name| name.contains("transport-probe")) {
        return Err(
            format!("no probe container behind the forwarded socket: created {created:?}").into(),
        );
    }
    let left = support::labelled_leftovers(&format!("dockproof.run={run_id}"))?;
    if !left.is_empty() {
        return Err(format!("left on the daemon: {left:?}").into());
    }
    Ok(())
}

/// This file's trials, run by `suites/main.rs`.
pub fn trials() -> Vec<Trial> {
    let mut trials = vec![
        Trial::test(
            "fake-remote::suite-matches-local-fake",
            remote_fake_matches_local_fake,
        ),
        Trial::test(
            "fake-remote::auto-picks-copy",
            auto_picks_copy_on_the_remote_fake,
        ),
    ];
    for backend in ["docker-cli", "docker-api"] {
        for scenario in JOB_SCENARIOS {
            let stem = scenario.trim_end_matches(".yaml");
            trials.push(support::real_daemon_trial(
                format!("{backend}::copy::{stem}"),
                move || real_copy(backend, scenario),
            ));
        }
        trials.push(support::real_daemon_trial(
            format!("{backend}::probe-picks-bind-locally"),
            move || probe_picks_bind_locally(backend),
        ));
        trials.push(support::real_daemon_trial(
            format!("{backend}::auto-asks-the-kernel-not-a-probe-container"),
            move || auto_asks_the_kernel_locally(backend),
        ));
        trials.push(support::real_daemon_trial(
            format!("{backend}::a-forwarded-socket-is-probed"),
            move || a_forwarded_socket_is_probed(backend),
        ));
        trials.push(support::real_daemon_trial(
            format!("{backend}::copy-back-refuses-a-symlink-to-etc-shadow"),
            move || copy_back_refuses_a_symlink(backend),
        ));
    }
    trials
}
