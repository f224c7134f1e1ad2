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

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed};

/// The programs the test needs besides docker.
#[derive(Clone)]
struct Tools {
    sshd: PathBuf,
    ssh: PathBuf,
    keygen: PathBuf,
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// `sshd` (usually in /usr/sbin, which is not on every PATH), `ssh` and `ssh-keygen`, or what is missing.
fn tools() -> Result<Tools, String> {
    let sshd = ["/usr/sbin/sshd", "/usr/local/sbin/sshd"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
        .or_else(|| on_path("sshd"));
    match (sshd, on_path("ssh"), on_path("ssh-keygen")) {
        (Some(sshd), Some(ssh), Some(keygen)) => Ok(Tools { sshd, ssh, keygen }),
        (sshd, ssh, keygen) => {
            let missing: Vec<&str> = [
                (sshd.is_none(), "sshd (openssh-server)"),
                (ssh.is_none(), "ssh (openssh-client)"),
                (keygen.is_none(), "ssh-keygen (openssh-client)"),
            ]
            .into_iter()
            .filter_map(|(absent, name)| absent.then_some(name))
            .collect();
            Err(format!(
                "the ssh tests need {}: apt-get install openssh-server openssh-client",
                missing.join(", ")
            ))
        }
    }
}

fn run(command: &mut Command, what: &str) -> Result<String, Failed> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("{what}: {error}"))?;
    if !output.status.success() {
        return Err(format!("{what} failed: {}", support::describe(&output)).into());
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn keygen(tools: &Tools, path: &Path) -> Result<String, Failed> {
    run(
        Command::new(&tools.keygen)
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "dockproof-test",
                "-f",
            ])
            .arg(path),
        "ssh-keygen",
    )?;
    Ok(std::fs::read_to_string(path.with_extension("pub"))
        .map_err(|error| error.to_string())?
        .trim()
        .to_owned())
}

/// A loopback port nothing listens on (just released).
fn free_port() -> Result<u16, Failed> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|error| error.to_string())?;
    Ok(listener
        .local_addr()
        .map_err(|error| error.to_string())?
        .port())
}

/// An sshd this test started and stops (killed by its handle on drop).
struct Sshd {
    child: Child,
    port: u16,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sshd(
    tools: &Tools,
    dir: &Path,
    host_key: &Path,
    authorized: &Path,
) -> Result<Sshd, Failed> {
    // sshd insists on its privilege separation directory, which only its init script makes.
    if tools.sshd.starts_with("/usr/sbin") && !Path::new("/run/sshd").is_dir() {
        std::fs::create_dir_all("/run/sshd")
            .map_err(|error| format!("sshd needs /run/sshd: {error}"))?;
    }
    let port = free_port()?;
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "ListenAddress 127.0.0.1\nPort {port}\nHostKey {}\nPermitRootLogin prohibit-password\nPubkeyAuthentication yes\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nAuthorizedKeysFile {}\nStrictModes no\n\
             PidFile {}\nUsePAM no\nLogLevel VERBOSE\n",
            host_key.display(),
            authorized.display(),
            dir.join("sshd.pid").display()
        ),
    )
    .map_err(|error| error.to_string())?;
    let log = std::fs::File::create(dir.join("sshd.log")).map_err(|error| error.to_string())?;
    let child = Command::new(&tools.sshd)
        .arg("-D")
        .arg("-f")
        .arg(&config)
        .arg("-e")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|error| format!("cannot start {}: {error}", tools.sshd.display()))?;
    let mut sshd = Sshd { child, port };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = sshd.child.try_wait() {
            let log = std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default();
            return Err(format!("sshd exited with {status}:\n{log}").into());
        }
        if Instant::now() > deadline {
            return Err("sshd did not listen within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(sshd)
}

/// A directory holding an `ssh` that runs the real one with `config`: put first on PATH,
/// it is what the docker CLI and dockproof's tunnel run.
fn ssh_wrapper(tools: &Tools, dir: &Path, name: &str, config: &str) -> Result<PathBuf, Failed> {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join(name);
    std::fs::create_dir_all(&bin).map_err(|error| error.to_string())?;
    let config_path = bin.join("ssh_config");
    std::fs::write(&config_path, config).map_err(|error| error.to_string())?;
    let wrapper = bin.join("ssh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec '{}' -F '{}' \"$@\"\n",
            tools.ssh.display(),
            config_path.display()
        ),
    )
    .map_err(|error| error.to_string())?;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
        .map_err(|error| error.to_string())?;
    Ok(bin)
}

fn client_config(identity: &Path, known_hosts: &Path) -> String {
    format!(
        "Host 127.0.0.1\n  IdentityFile {}\n  IdentitiesOnly yes\n  IdentityAgent none\n  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n  \
         StrictHostKeyChecking yes\n  LogLevel ERROR\n",
        identity.display(),
        known_hosts.display()
    )
}

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
    let sshd = start_sshd(tools, root, &host_key, &authorized)?;
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
        &client_config(&root.join("client_key"), &known),
    )?;
    let stranger = ssh_wrapper(
        tools,
        root,
        "stranger",
        &client_config(&root.join("stranger_key"), &known),
    )?;
    let spoofed = ssh_wrapper(
        tools,
        root,
        "spoofed",
        &client_config(&root.join("client_key"), &impostor),
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

fn main() {
    let args = Arguments::from_args();
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
    libtest_mimic::run(&args, trials).exit();
}
