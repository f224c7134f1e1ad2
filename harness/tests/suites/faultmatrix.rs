//! The fault matrix on a real daemon: a run interrupted with SIGINT, a run killed
//! with SIGKILL and then reaped by `dockproof clean`, a container that ignores
//! SIGTERM past its timeout, a workspace on a full filesystem, and the daemon
//! restarting mid-run (its socket and connections, see `RestartingDaemon`), and daemon
//! sockets that never answer or answer garbage (`LyingDaemon`). After each,
//! nothing the run created is left (containers, networks and volumes labelled with
//! its run id, directories in its work dir), and the reports name what happened.
//!
//! Real-daemon tests: ignored when no daemon answers, unless DOCKPROOF_REQUIRE_DOCKER=1.

use crate::support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::{Failed, Trial};

const SLOW: &str = "name: slow\nsteps:\n  - run: { image: dockproof/job-runner:1, cmd: [sleep, 120], timeout: 5m }\n";

/// A unique run id for one test.
fn run_id(name: &str) -> String {
    format!("fm-{name}-{}", std::process::id())
}

/// Objects of kind `container`/`network`/`volume` carrying `dockproof.run=ID`.
fn labelled(kind: &str, run: &str) -> Result<Vec<String>, Failed> {
    let mut args = vec![
        kind.to_owned(),
        "ls".into(),
        "-q".into(),
        "--filter".into(),
        format!("label=dockproof.run={run}"),
    ];
    if kind == "container" {
        args.insert(2, "-a".into());
    }
    let output = Command::new("docker")
        .args(&args)
        .output()
        .map_err(|error| error.to_string())?;
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect())
}

/// What the run left: labelled objects, and entries of the work dir besides the history database.
fn leftovers(run: &str, work: &Path) -> Result<Vec<String>, Failed> {
    let mut left = support::labelled_leftovers(&format!("dockproof.run={run}"))?;
    let history = support::history_db(work).display().to_string();
    if let Ok(entries) = std::fs::read_dir(work) {
        left.extend(
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path().display().to_string())
                .filter(|path| !path.starts_with(&history)),
        );
    }
    Ok(left)
}

/// Wait until the run's container exists.
fn wait_for_container(run: &str) -> Result<(), Failed> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while labelled("container", run)?.is_empty() {
        if Instant::now() > deadline {
            return Err(format!("run {run} never created its container").into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    Ok(())
}

/// The run exited with `code` and its stdout says every one of `words`; else `what`
/// failed, with its output.
fn expect_output(output: &Output, code: i32, words: &[&str], what: &str) -> Result<(), Failed> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    if output.status.code() == Some(code) && words.iter().all(|word| stdout.contains(word)) {
        Ok(())
    } else {
        Err(failed(what, output))
    }
}

/// A trial's failure: `what` went wrong, with the command's output.
fn failed(what: &str, output: &Output) -> Failed {
    format!("{what}\n{}", support::describe(output)).into()
}

fn expect_clean(run: &str, work: &Path, what: &str, output: &Output) -> Result<(), Failed> {
    let left = leftovers(run, work)?;
    if left.is_empty() {
        Ok(())
    } else {
        Err(failed(&format!("{what} left {left:?} behind"), output))
    }
}

/// `scenario` (a file written into `dir`) and the work dir of a run in `dir`.
fn write_scenario(
    dir: &Path,
    name: &str,
    text: &str,
) -> Result<(std::path::PathBuf, std::path::PathBuf), Failed> {
    let scenario = dir.join(name);
    std::fs::write(&scenario, text).map_err(|error| error.to_string())?;
    Ok((scenario, dir.join("work")))
}

/// SIGINT to a running `dockproof`, then its output once it has ended.
fn interrupt(child: std::process::Child) -> Result<Output, Failed> {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .map_err(|error| error.to_string())?;
    Ok(child
        .wait_with_output()
        .map_err(|error| error.to_string())?)
}

/// `dockproof run --run-id RUN SCENARIO` in the background, its output discarded.
fn spawn_quiet(
    backend: &str,
    work: &Path,
    run: &str,
    scenario: &Path,
) -> Result<std::process::Child, Failed> {
    Ok(support::dockproof_on(backend, work)
        .args(["--run-id", run])
        .arg(scenario)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|error| error.to_string())?)
}

/// SIGKILL to a running `dockproof`, waited for.
fn kill(mut child: std::process::Child) -> Result<(), Failed> {
    child.kill().map_err(|error| error.to_string())?;
    let _ = child.wait();
    Ok(())
}

/// `dockproof clean --backend BACKEND --run RUN --work-dir WORK`.
fn clean(backend: &str, run: &str, work: &Path) -> Result<Output, Failed> {
    Ok(Command::new(support::dockproof())
        .args(["clean", "--backend", backend, "--run", run, "--work-dir"])
        .arg(work)
        .output()
        .map_err(|error| error.to_string())?)
}

/// The JSON report at `json`, or an error saying `what` with the run's output.
fn json_report(json: &Path, what: &str, output: &Output) -> Result<serde_json::Value, Failed> {
    Ok(std::fs::read(json)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| format!("{what}\n{}", support::describe(output)))?)
}

/// SIGINT mid-run: exit 1, the scenario reported interrupted in the console and JUnit, nothing left.
fn sigint(backend: &str) -> Result<(), Failed> {
    support::ensure_fixture_image("dockproof/job-runner:1")?;
    let dir = tempfile::tempdir().map_err(|error| error.to_string())?;
    let (scenario, work) = write_scenario(dir.path(), "slow.yaml", SLOW)?;
    let (run, junit) = (
        run_id(&format!("int-{backend}")),
        dir.path().join("junit.xml"),
    );
    let child = support::dockproof_on(backend, &work)
        .args(["--run-id", &run, "--junit"])
        .arg(&junit)
        .arg(&scenario)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| error.to_string())?;
    wait_for_container(&run)?;
    let output = interrupt(child)?;
    expect_output(
        &output,
        1,
        &["INTR slow"],
        "an interrupted run exits 1 and says INTR",
    )?;
    let xml = std::fs::read_to_string(&junit)
        .map_err(|error| format!("no JUnit report after SIGINT: {error}"))?;
    if !xml.contains("type=\"interrupted\"") {
        return Err(format!("the JUnit report does not mark the case interrupted:\n{xml}").into());
    }
    expect_clean(&run, &work, "SIGINT", &output)
}

/// SIGKILL mid-run leaves the container; `dockproof clean --run ID` reaps it and the run dir.
fn sigkill_then_clean(backend: &str) -> Result<(), Failed> {
    support::ensure_fixture_image("dockproof/job-runner:1")?;
    let dir = tempfile::tempdir().map_err(|error| error.to_string())?;
    let (scenario, work) = write_scenario(dir.path(), "slow.yaml", SLOW)?;
    let run = run_id(&format!("kill-{backend}"));
    let child = spawn_quiet(backend, &work, &run, &scenario)?;
    wait_for_container(&run)?;
    kill(child)?;
    if labelled("container", &run)?.is_empty() {
        return Err("after SIGKILL the container should still be there for `clean` to find".into());
    }
    let output = clean(backend, &run, &work)?;
    expect_output(
        &output,
        0,
        &["removed 1 container(s) and 1 director(ies)"],
        "`dockproof clean` after SIGKILL",
    )?;
    expect_clean(&run, &work, "SIGKILL + clean", &output)
}

/// A container that ignores SIGTERM is killed after the grace period: `timeout`, exit 137, nothing left.
fn ignores_sigterm(backend: &str) -> Result<(), Failed> {
    support::ensure_fixture_image("dockproof/job-runner:1")?;
    let dir = tempfile::tempdir().map_err(|error| error.to_string())?;
    let (run, work) = (run_id(&format!("term-{backend}")), dir.path().join("work"));
    let output = support::dockproof_on(backend, &work)
        .args(["--run-id", &run])
        .arg(support::root().join("scenarios/job-timeout-sigterm-ignored.yaml"))
        .output()
        .map_err(|error| error.to_string())?;
    expect_output(
        &output,
        0,
        &[],
        "the shipped SIGTERM-ignored scenario must pass (timeout, then kill: 137)",
    )?;
    expect_clean(&run, &work, "a container ignoring SIGTERM", &output)
}

/// A workspace on a full filesystem: `workspace_limit_exceeded` naming the device, nothing left.
fn filesystem_full(backend: &str) -> Result<(), Failed> {
    support::ensure_fixture_image("dockproof/job-runner:1")?;
    let dir = tempfile::tempdir().map_err(|error| error.to_string())?;
    let small = dir.path().join("small-fs");
    std::fs::create_dir_all(&small).map_err(|error| error.to_string())?;
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&small)
        .output()
        .map_err(|error| format!("cannot run mount: {error}"))?;
    if !mounted.status.success() {
        return Err(format!(
            "cannot mount a 1 MiB tmpfs (root needed): {}",
            String::from_utf8_lossy(&mounted.stderr)
        )
        .into());
    }
    let result = (|| {
        let scenario = dir.path().join("big.yaml");
        std::fs::write(&scenario, "name: big-input\nstage:\n  - { generate: { bytes: 4MiB, seed: 1 }, to: inputs/blob.bin }\nsteps:\n  - run: { image: dockproof/job-runner:1, cmd: [job] }\n")
            .map_err(|error| error.to_string())?;
        let run = run_id(&format!("full-{backend}"));
        let output = support::dockproof_on(backend, &small)
            .args(["--run-id", &run, "--no-history"])
            .arg(&scenario)
            .output()
            .map_err(|error| error.to_string())?;
        expect_output(
            &output,
            1,
            &["workspace_limit_exceeded", "No space left on device"],
            "a full workspace filesystem is workspace_limit_exceeded",
        )?;
        expect_clean(&run, &small, "a full workspace filesystem", &output)
    })();
    let _ = Command::new("umount").arg(&small).output();
    result
}

/// A compose stack brought up, then a step that outlasts what the test allows it.
fn stack_then_sleep(timeout: &str) -> String {
    let file = support::root().join("fixtures/compose/live-busybox/docker-compose.yml");
    format!(
        "name: stack\nrequires: [compose]\ntimeout: {timeout}\nsteps:\n  - compose: {{ up: {{ file: {} }} }}\n  - run: {{ image: dockproof/job-runner:1, cmd: [sleep, 120], timeout: 5m }}\n",
        file.display()
    )
}

/// Wait until the run's compose stack and the step after it are up (4 running containers:
/// 3 services, 1 run). Running only: the workspace-transport probe is a labelled container
/// that is created and removed, never started, and counting it once let the kill come
/// before the run step's container existed.
fn wait_for_stack(run: &str) -> Result<(), Failed> {
    let deadline = Instant::now() + Duration::from_secs(90);
    let running = || -> Result<usize, Failed> {
        let output = Command::new("docker")
            .args(["container", "ls", "-q", "--filter"])
            .arg(format!("label=dockproof.run={run}"))
            .args(["--filter", "status=running"])
            .output()
            .map_err(|error| error.to_string())?;
        Ok(String::from_utf8_lossy(&output.stdout).lines().count())
    };
    while running()? < 4 {
        if Instant::now() > deadline {
            return Err(format!("run {run} never brought its stack up").into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// SIGINT while a compose stack is up: the runner's sweep removes its containers, network and volume by label.
fn sigint_compose(backend: &str) -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(|error| error.to_string())?;
    let (scenario, work) = write_scenario(dir.path(), "stack.yaml", &stack_then_sleep("5m"))?;
    let run = run_id(&format!("cint-{backend}"));
    let child = support::dockproof_on(backend, &work)
        .args(["--run-id", &run])
        .arg(&scenario)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| error.to_string())?;
    wait_for_stack(&run)?;
    if labelled("network", &run)?.is_empty() || labelled("volume", &run)?.is_empty() {
        return Err("the stack's network and volume should carry the run label".into());
    }
    let output = interrupt(child)?;
    expect_output(
        &output,
        1,
        &["INTR stack"],
        "an interrupted run exits 1 and says INTR",
    )?;
    expect_clean(&run, &work, "SIGINT with a compose stack up", &output)
}

/// SIGKILL while a compose stack is up leaves it; `dockproof clean --run ID` reaps containers, network and volume.
fn sigkill_compose_then_clean(backend: &str) -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(|error| error.to_string())?;
    let (scenario, work) = write_scenario(dir.path(), "stack.yaml", &stack_then_sleep("5m"))?;
    let run = run_id(&format!("ckill-{backend}"));
    let child = spawn_quiet(backend, &work, &run, &scenario)?;
    wait_for_stack(&run)?;
    kill(child)?;
    let output = clean(backend, &run, &work)?;
    expect_output(
        &output,
        0,
        &[
            "removed 4 container(s)",
            "removed network ",
            "removed volume ",
        ],
        "`dockproof clean` after SIGKILL with a compose stack up",
    )?;
    expect_clean(
        &run,
        &work,
        "SIGKILL + clean with a compose stack up",
        &output,
    )
}

/// The scenario's timeout strikes while the stack is up: `timeout`, and the project is taken down all the same.
fn timeout_compose(backend: &str) -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(|error| error.to_string())?;
    let (scenario, work) = write_scenario(dir.path(), "stack.yaml", &stack_then_sleep("25s"))?;
    let run = run_id(&format!("ctime-{backend}"));
    let output = support::dockproof_on(backend, &work)
        .args(["--run-id", &run])
        .arg(&scenario)
        .output()
        .map_err(|error| error.to_string())?;
    expect_output(
        &output,
        1,
        &["timeout: the scenario ran past its timeout"],
        "a scenario timing out with its stack up fails as `timeout`",
    )?;
    expect_clean(
        &run,
        &work,
        "a scenario timeout with a compose stack up",
        &output,
    )
}

/// A stand-in for the daemon's socket that can "restart": while down, its socket file
/// is gone (a new connection is refused, as with a stopped dockerd) and every open
/// connection is cut; then it listens again. Each connection is forwarded to the real
/// daemon. The daemon itself is shared with every other test running, so it is not
/// restarted for real; what a restart does to a client (connections dropped, the socket
/// gone, running containers stopped, then the daemon back) is reproduced instead.
struct RestartingDaemon {
    socket: std::path::PathBuf,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    connections: std::sync::Arc<std::sync::Mutex<Vec<std::os::unix::net::UnixStream>>>,
    accepting: Option<std::thread::JoinHandle<()>>,
}

impl RestartingDaemon {
    fn start(dir: &Path) -> Result<Self, Failed> {
        use std::os::unix::net::{UnixListener, UnixStream};
        use std::sync::atomic::Ordering;
        let socket = dir.join("docker.sock");
        let daemon = support::daemon_socket();
        let listen = |path: &Path| -> std::io::Result<UnixListener> {
            let listener = UnixListener::bind(path)?;
            listener.set_nonblocking(true)?;
            Ok(listener)
        };
        let mut listener = Some(
            listen(&socket)
                .map_err(|error| format!("cannot listen on {}: {error}", socket.display()))?,
        );
        let (down, stop) = (std::sync::Arc::default(), std::sync::Arc::default());
        let connections: std::sync::Arc<std::sync::Mutex<Vec<UnixStream>>> =
            std::sync::Arc::default();
        let accepting = {
            let (socket, down, stop, connections) = (
                socket.clone(),
                std::sync::Arc::clone(&down),
                std::sync::Arc::clone(&stop),
                std::sync::Arc::clone(&connections),
            );
            std::thread::spawn(move || {
                let down: &std::sync::atomic::AtomicBool = &down;
                let stop: &std::sync::atomic::AtomicBool = &stop;
                while !stop.load(Ordering::SeqCst) {
                    if down.load(Ordering::SeqCst) {
                        if listener.take().is_some() {
                            let _ = std::fs::remove_file(&socket);
                            for connection in connections.lock().unwrap().drain(..) {
                                let _ = connection.shutdown(std::net::Shutdown::Both);
                            }
                        }
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                    if listener.is_none() {
                        listener = listen(&socket).ok();
                    }
                    let accepted = listener.as_ref().map(UnixListener::accept);
                    let Some(Ok((client, _))) = accepted else {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    let Ok(upstream) = UnixStream::connect(&daemon) else {
                        continue;
                    };
                    let _ = client.set_nonblocking(false);
                    let mut kept = connections.lock().unwrap();
                    let (Ok(client_copy), Ok(upstream_copy)) =
                        (client.try_clone(), upstream.try_clone())
                    else {
                        continue;
                    };
                    kept.extend([client_copy, upstream_copy]);
                    for (mut from, mut to) in [
                        (client.try_clone(), upstream.try_clone()),
                        (upstream.try_clone(), client.try_clone()),
                    ]
                    .into_iter()
                    .filter_map(|(from, to)| Some((from.ok()?, to.ok()?)))
                    {
                        std::thread::spawn(move || {
                            let _ = std::io::copy(&mut from, &mut to);
                            let _ = to.shutdown(std::net::Shutdown::Write);
                        });
                    }
                }
            })
        };
        Ok(RestartingDaemon {
            socket,
            down,
            stop,
            connections,
            accepting: Some(accepting),
        })
    }

    fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Stop answering: the socket file goes, open connections are cut.
    fn go_down(&self) -> Result<(), Failed> {
        self.down.store(true, std::sync::atomic::Ordering::SeqCst);
        self.settle(false)
    }

    /// Listen again.
    fn come_back(&self) -> Result<(), Failed> {
        self.down.store(false, std::sync::atomic::Ordering::SeqCst);
        self.settle(true)
    }

    /// Wait until the socket file is there (or gone).
    fn settle(&self, there: bool) -> Result<(), Failed> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.socket.exists() != there {
            if Instant::now() > deadline {
                return Err(format!(
                    "the stand-in daemon socket {} did not {}",
                    self.socket.display(),
                    if there { "come back" } else { "go away" }
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

impl Drop for RestartingDaemon {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            let _ = connection.shutdown(std::net::Shutdown::Both);
        }
        if let Some(accepting) = self.accepting.take() {
            let _ = accepting.join();
        }
    }
}

/// The daemon "restarts" while a job runs (see `RestartingDaemon`): the run fails as
/// `daemon_unavailable` (not as the job's own failure), and once the daemon is back,
/// `dockproof clean --run ID` reaps whatever cleanup could not reach.
fn daemon_restart(backend: &str) -> Result<(), Failed> {
    support::ensure_fixture_image("dockproof/job-runner:1")?;
    let dir = tempfile::tempdir().map_err(|error| error.to_string())?;
    let (scenario, work) = write_scenario(dir.path(), "slow.yaml", SLOW)?;
    let daemon = RestartingDaemon::start(dir.path())?;
    let (run, json) = (
        run_id(&format!("restart-{backend}")),
        dir.path().join("report.json"),
    );
    let child = support::dockproof_on(backend, &work)
        .env("DOCKER_HOST", daemon.host())
        .args(["--run-id", &run, "--json"])
        .arg(&json)
        .arg(&scenario)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| error.to_string())?;
    wait_for_container(&run)?;
    daemon.go_down()?;
    // What dockerd does to running containers when it stops (no live-restore).
    for container in labelled("container", &run)? {
        let _ = Command::new("docker")
            .args(["stop", "--time", "1", &container])
            .output();
    }
    let output = child
        .wait_with_output()
        .map_err(|error| error.to_string())?;
    daemon.come_back()?;
    let report = json_report(&json, "no JSON report after the daemon went away", &output)?;
    let category = &report["scenarios"][0]["failure"]["category"];
    if output.status.code() != Some(1) || category != "daemon_unavailable" {
        return Err(failed(
            &format!("a daemon gone mid-run is daemon_unavailable (got {category})"),
            &output,
        ));
    }
    let cleaned = Command::new(support::dockproof())
        .env("DOCKER_HOST", daemon.host())
        .args(["clean", "--backend", backend, "--run", &run, "--work-dir"])
        .arg(&work)
        .output()
        .map_err(|error| error.to_string())?;
    if !cleaned.status.success() {
        return Err(failed(
            "`dockproof clean` once the daemon is back",
            &cleaned,
        ));
    }
    expect_clean(
        &run,
        &work,
        "a daemon restart mid-run, then clean",
        &cleaned,
    )
}

/// How a stand-in daemon socket answers (`LyingDaemon`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lie {
    /// Accepts every connection and never answers.
    Silence,
    /// Answers every request `200 OK` with an HTML body: HTTP, not the Engine API's JSON.
    NotJson,
    /// Answers every request with bytes that are not HTTP.
    NotHttp,
}

/// A socket in place of the daemon's that accepts connections and then lies (see `Lie`).
struct LyingDaemon {
    socket: std::path::PathBuf,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    accepting: Option<std::thread::JoinHandle<()>>,
}

impl LyingDaemon {
    fn start(dir: &Path, lie: Lie) -> Result<Self, Failed> {
        use std::io::{Read, Write};
        use std::os::unix::net::UnixListener;
        use std::sync::atomic::Ordering;
        let socket = dir.join(format!("lying-{lie:?}.sock").to_lowercase());
        let listener = UnixListener::bind(&socket)
            .map_err(|error| format!("cannot listen on {}: {error}", socket.display()))?;
        listener
            .set_nonblocking(true)
            .map_err(|error| error.to_string())?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let accepting = {
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut held = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let Ok((mut client, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    let _ = client.set_nonblocking(false);
                    if lie == Lie::Silence {
                        held.push(client);
                        continue;
                    }
                    std::thread::spawn(move || {
                        let _ = client.set_read_timeout(Some(Duration::from_secs(5)));
                        let mut request = Vec::new();
                        let mut buffer = [0u8; 4096];
                        while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                            match client.read(&mut buffer) {
                                Ok(0) | Err(_) => return,
                                Ok(read) => request.extend_from_slice(&buffer[..read]),
                            }
                        }
                        let body = "<html><body>I am not dockerd</body></html>";
                        let answer = match lie {
                            Lie::NotJson => format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                                body.len(),
                                if request.starts_with(b"HEAD") {
                                    ""
                                } else {
                                    body
                                }
                            ),
                            _ => "garbage, not HTTP at all\r\n\r\n".to_owned(),
                        };
                        let _ = client.write_all(answer.as_bytes());
                    });
                }
            })
        };
        Ok(LyingDaemon {
            socket,
            stop,
            accepting: Some(accepting),
        })
    }

    fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }
}

impl Drop for LyingDaemon {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(accepting) = self.accepting.take() {
            let _ = accepting.join();
        }
    }
}

/// A run against a lying daemon socket: exit 1, `daemon_unavailable` (with `words` in the
/// message) and the whole run, cleanup and sweep included, over within `bound`.
fn lying_daemon(
    backend: &str,
    lie: Lie,
    daemon_timeout: Option<&str>,
    bound: Duration,
    words: &str,
) -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(|error| error.to_string())?;
    let (scenario, work) = write_scenario(dir.path(), "slow.yaml", SLOW)?;
    let daemon = LyingDaemon::start(dir.path(), lie)?;
    let (run, json) = (
        run_id(&format!("lie-{lie:?}-{backend}").to_lowercase()),
        dir.path().join("report.json"),
    );
    let mut command = support::dockproof_on(backend, &work);
    command
        .env("DOCKER_HOST", daemon.host())
        .env_remove("DOCKPROOF_DAEMON_TIMEOUT")
        .args(["--run-id", &run, "--json"])
        .arg(&json)
        .arg(&scenario);
    if let Some(timeout) = daemon_timeout {
        command.args(["--daemon-timeout", timeout]);
    }
    let started = Instant::now();
    let output = command.output().map_err(|error| error.to_string())?;
    let took = started.elapsed();
    let report = json_report(&json, "no JSON report", &output)?;
    let failure = &report["scenarios"][0]["failure"];
    let message = failure["message"].as_str().unwrap_or_default();
    if output.status.code() != Some(1)
        || failure["category"] != "daemon_unavailable"
        || !message.contains(words)
    {
        return Err(failed(
            &format!(
                "a daemon that {lie:?} is daemon_unavailable saying `{words}` (got {failure})"
            ),
            &output,
        ));
    }
    if took > bound {
        return Err(failed(
            &format!("the run took {took:?}, more than {bound:?}"),
            &output,
        ));
    }
    Ok(())
}

/// The lying daemons' trials: (name, lie, `--daemon-timeout` (none: the default, 30 s),
/// the bound the run ends within, words its `daemon_unavailable` message says).
const LYING_DAEMONS: [(&str, Lie, Option<&str>, Duration, &str); 4] = [
    // A socket that accepts and never answers, with `--daemon-timeout 3s`: over in well under 20 s.
    (
        "daemon-never-answers",
        Lie::Silence,
        Some("3s"),
        Duration::from_secs(20),
        "did not answer",
    ),
    // The same with the default timeout (30 s): over within 60 s, not the 10 minutes it took.
    (
        "daemon-never-answers-default-timeout",
        Lie::Silence,
        None,
        Duration::from_secs(60),
        "within 30s",
    ),
    // HTTP answers whose body is not JSON: daemon_unavailable, not a job verdict.
    (
        "daemon-answers-non-json",
        Lie::NotJson,
        Some("3s"),
        Duration::from_secs(20),
        "not the Engine API",
    ),
    // Answers that are not HTTP: daemon_unavailable, not a job verdict.
    (
        "daemon-answers-non-http",
        Lie::NotHttp,
        Some("3s"),
        Duration::from_secs(20),
        "not the Engine API",
    ),
];

type Test = fn(&str) -> Result<(), Failed>;

/// This file's trials, run by `suites/main.rs`.
pub fn trials() -> Vec<Trial> {
    let tests: [(&str, Test); 5] = [
        ("sigint-mid-run", sigint),
        ("sigkill-then-clean", sigkill_then_clean),
        ("container-ignores-sigterm", ignores_sigterm),
        ("workspace-filesystem-full", filesystem_full),
        ("daemon-restart-mid-run", daemon_restart),
    ];
    let mut trials = Vec::new();
    for (name, test) in tests {
        for backend in ["docker-cli", "docker-api"] {
            trials.push(support::real_daemon_trial(
                format!("fault-matrix::{name}::{backend}"),
                move || test(backend),
            ));
        }
    }
    for (name, lie, daemon_timeout, bound, words) in LYING_DAEMONS {
        for backend in ["docker-cli", "docker-api"] {
            trials.push(support::real_daemon_trial(
                format!("fault-matrix::{name}::{backend}"),
                move || lying_daemon(backend, lie, daemon_timeout, bound, words),
            ));
        }
    }
    let compose_tests: [(&str, Test); 3] = [
        ("sigint-compose-stack-up", sigint_compose),
        ("sigkill-compose-then-clean", sigkill_compose_then_clean),
        ("timeout-compose-stack-up", timeout_compose),
    ];
    for (name, test) in compose_tests {
        for backend in ["docker-cli", "docker-api"] {
            trials.push(support::compose_trial(
                format!("fault-matrix::{name}::{backend}"),
                move || test(backend),
            ));
        }
    }
    trials
}
