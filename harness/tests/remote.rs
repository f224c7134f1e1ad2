//! dockproof against a daemon on "another machine", made on this host: dockproof runs in
//! a network namespace of its own (a veth pair, a /30 from 169.254.0.0/16 the test picks
//! and checks unused, no default route) and a mount namespace whose TMPDIR is a private
//! tmpfs, so the daemon can see none of dockproof's files and 127.0.0.1 is not the
//! daemon's host. The daemon is reached on the host side of the veth: over `tcp://`
//! through a forwarder to its unix socket that this test runs (bound only to that
//! address), over `tcp://` with mutual TLS, and over `ssh://` to an sshd this test starts
//! on that address (whose `docker system dial-stdio` reaches the local daemon).
//!
//! Every shipped scenario that runs on a real daemon is run locally and there, on
//! docker-cli and docker-api, and must reach the same verdict with the same record
//! (timings, ids and ports aside). Afterwards nothing labelled with the run may be left on
//! the daemon, and nothing may have appeared under the machine's TMPDIR on the daemon's
//! side (a bind mount of a path the daemon does not have makes it, empty, as root). Two
//! machines make a two-host fleet for `run --host` and `canary`. `record --host` records
//! a scenario there, the fake replays it, and `record --check` with two hosts checks it on
//! each (`remote::record::*`).
//!
//! Real-daemon tests: ignored when no daemon answers, unless DOCKPROOF_REQUIRE_DOCKER=1;
//! they also need root, iproute2, util-linux and openssh (server and client), whose
//! absence fails them under DOCKPROOF_REQUIRE_DOCKER=1 and ignores them otherwise.

mod support;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::{Value, json};
use support::netns::RemoteMachine;
use support::sshd::{self, Sshd, Tools};

/// How a machine reaches the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Tcp,
    Tls,
    Ssh,
}

impl Via {
    fn name(self) -> &'static str {
        match self {
            Via::Tcp => "tcp",
            Via::Tls => "tls",
            Via::Ssh => "ssh",
        }
    }
}

/// A remote machine with the daemon's endpoints on the host side of its veth. Dropping it
/// stops the forwarders (their runtime), the sshd, and removes the namespace and veth.
struct Topology {
    machine: RemoteMachine,
    /// The forwarders' runtime: dropped, every listener and connection ends.
    runtime: tokio::runtime::Runtime,
    /// Files of the endpoints (certificates, keys, ssh config): host-side, not the machine's TMPDIR.
    dir: tempfile::TempDir,
    endpoint: Endpoint,
    /// Held for its drop.
    _sshd: Option<Sshd>,
}

/// What the machine sets to reach the daemon.
struct Endpoint {
    docker_host: String,
    env: Vec<(String, String)>,
    /// A directory put first on PATH (the ssh wrapper).
    path_first: Option<PathBuf>,
}

impl Topology {
    fn create(via: Via) -> Result<Topology, Failed> {
        // Each machine of this process gets its own number, so trials may run side by side.
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let machine = RemoteMachine::create(NEXT.fetch_add(1, Ordering::Relaxed))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|error| error.to_string())?;
        let dir = tempfile::Builder::new()
            .prefix("remotenet-endpoint-")
            .tempdir()
            .map_err(|error| error.to_string())?;
        let host_side = IpAddr::V4(machine.host_side);
        let (endpoint, sshd) = match via {
            Via::Tcp => {
                let address = runtime.block_on(support::tls::tcp_endpoint(host_side))?;
                (
                    Endpoint {
                        docker_host: format!("tcp://{address}"),
                        env: Vec::new(),
                        path_first: None,
                    },
                    None,
                )
            }
            Via::Tls => {
                let pki =
                    support::tls::pki("remotenet", host_side).map_err(|error| error.to_string())?;
                let address = runtime.block_on(support::tls::tls_endpoint(&pki, host_side))?;
                let certs = support::tls::cert_dir(dir.path(), "certs", &pki.ca, &pki.client)
                    .map_err(|error| error.to_string())?;
                (
                    Endpoint {
                        docker_host: format!("tcp://{address}"),
                        env: vec![
                            ("DOCKER_TLS_VERIFY".into(), "1".into()),
                            ("DOCKER_CERT_PATH".into(), certs.display().to_string()),
                        ],
                        path_first: None,
                    },
                    None,
                )
            }
            Via::Ssh => {
                let tools = sshd::tools()?;
                let (endpoint, sshd) = ssh_endpoint(&tools, dir.path(), host_side)?;
                (endpoint, Some(sshd))
            }
        };
        Ok(Topology {
            machine,
            runtime,
            dir,
            endpoint,
            _sshd: sshd,
        })
    }

    /// `dockproof run` on `backend`, on the machine, against the daemon through the endpoint.
    fn dockproof(&self, subcommand: &str, backend: &str) -> Command {
        let mut command = self.machine.command(support::dockproof());
        command
            .current_dir(support::root())
            .env("DOCKER_HOST", &self.endpoint.docker_host)
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .env("DOCKPROOF_HISTORY", self.dir.path().join("history.db"))
            .envs(self.endpoint.env.iter().map(|(key, value)| (key, value)))
            .arg(subcommand)
            .args(["--backend", backend]);
        if let Some(first) = &self.endpoint.path_first {
            command.env("PATH", path_with(first));
        }
        command
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // Listeners and open connections end with the runtime; the namespace goes with `machine`.
        let runtime = std::mem::replace(
            &mut self.runtime,
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("an empty runtime builds"),
        );
        runtime.shutdown_background();
    }
}

/// PATH with `first` in front.
fn path_with(first: &Path) -> std::ffi::OsString {
    std::env::join_paths(
        std::iter::once(first.to_path_buf()).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )),
    )
    .unwrap_or_default()
}

/// An sshd on `listen` whose only authorised key is one made here, and an `ssh` wrapper
/// that trusts only its host key.
fn ssh_endpoint(tools: &Tools, dir: &Path, listen: IpAddr) -> Result<(Endpoint, Sshd), Failed> {
    let host_key = dir.join("host_key");
    let host_public = sshd::keygen(tools, &host_key)?;
    let client_public = sshd::keygen(tools, &dir.join("client_key"))?;
    let authorized = dir.join("authorized_keys");
    std::fs::write(&authorized, format!("{client_public}\n")).map_err(|error| error.to_string())?;
    let sshd = sshd::start_sshd(tools, dir, listen, &host_key, &authorized)?;
    let known = dir.join("known_hosts");
    std::fs::write(&known, format!("[{listen}]:{} {host_public}\n", sshd.port))
        .map_err(|error| error.to_string())?;
    let bin = sshd::ssh_wrapper(
        tools,
        dir,
        "bin",
        &sshd::client_config(&listen.to_string(), &dir.join("client_key"), &known),
    )?;
    let user = sshd::run(Command::new("id").arg("-un"), "id -un")?;
    // The remote `docker` does not see our DOCKER_HOST: name the socket when it is not the default.
    let socket = std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|host| host.strip_prefix("unix://").map(str::to_owned))
        .unwrap_or_default();
    Ok((
        Endpoint {
            docker_host: format!("ssh://{user}@{listen}:{}{socket}", sshd.port),
            env: Vec::new(),
            path_first: Some(bin),
        },
        sshd,
    ))
}

/// The suite the `*-suite` trials run: every shipped scenario, or (to look into one while
/// debugging) the paths in `DOCKPROOF_REMOTE_SCENARIOS`, space-separated.
fn suite_paths() -> Vec<&'static str> {
    static PATHS: OnceLock<Vec<&'static str>> = OnceLock::new();
    PATHS
        .get_or_init(|| match std::env::var("DOCKPROOF_REMOTE_SCENARIOS") {
            Ok(paths) if !paths.trim().is_empty() => paths
                .split_whitespace()
                .map(|path| &*Box::leak(path.to_owned().into_boxed_str()))
                .collect(),
            _ => vec!["scenarios"],
        })
        .clone()
}

/// A test failure's message.
fn text(failed: &Failed) -> String {
    failed.message().unwrap_or("failed").to_owned()
}

/// A unique run id for one dockproof run of this test process.
fn run_id(what: &str) -> String {
    format!("remotenet{}-{what}", std::process::id())
}

/// Run `command` (a `dockproof run`) with `--run-id ID --json PATH` and the scenarios;
/// the parsed JSON report, or why there is none.
fn report_of(
    mut command: Command,
    id: &str,
    json: &Path,
    scenarios: &[&str],
) -> Result<Value, Failed> {
    let output = command
        .args(["--run-id", id, "--jobs", "2", "--json"])
        .arg(json)
        .args(scenarios)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("cannot run dockproof: {error}"))?;
    // Exit 0 (all passed) and 1 (some failed) both leave a report to compare.
    if !matches!(output.status.code(), Some(0 | 1)) {
        return Err(format!(
            "dockproof did not run the suite\n{}",
            support::describe(&output)
        )
        .into());
    }
    let text = std::fs::read_to_string(json)
        .map_err(|error| format!("no JSON report ({error})\n{}", support::describe(&output)))?;
    serde_json::from_str(&text).map_err(|error| format!("unreadable JSON report: {error}").into())
}

/// What must be the same locally and remotely for one scenario: the verdict, where it
/// points, each step's outcome, and the record without timings, ids and ports.
fn fingerprint(scenario: &Value) -> Value {
    let record = &scenario["record"];
    let docker = &record["context"]["docker"];
    let steps: Vec<Value> = scenario["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|step| {
            json!({
                "kind": step["kind"],
                "outcome": step["outcome"],
                "category": step["failure"]["category"],
            })
        })
        .collect();
    let services: BTreeMap<String, Value> = record["context"]["services"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, service)| {
            (
                name.clone(),
                // Not its health status: when readiness is a TCP or HTTP answer, that status
                // is whatever the healthcheck had said by then (timing). Its ports only when
                // it became ready: a service that exits at once may be gone before the
                // daemon is asked for them, or not yet (timing).
                json!({
                    "ready": service["ready"],
                    "ports": if service["ready"] == true {
                        json!(service["ports"].as_object().map(|ports| ports.keys().cloned().collect::<Vec<_>>()))
                    } else {
                        Value::Null
                    },
                }),
            )
        })
        .collect();
    json!({
        "outcome": scenario["outcome"],
        "category": scenario["failure"]["category"],
        "steps": steps,
        "status": record["status"],
        "artifacts": record["result"]["artifacts"],
        "bytesIn": record["metrics"]["filestore"]["bytesIn"],
        "bytesOut": record["metrics"]["filestore"]["bytesOut"],
        "exitCode": docker["exitCode"],
        "oomKilled": docker["oomKilled"],
        "timedOut": docker["timedOut"],
        // Without the transport: `auto` rightly picks `bind` here and `copy` there (checked
        // by `transports_are`).
        "workspace": without(&docker["workspace"], "transport"),
        "logTail": docker["logTail"],
        "services": services,
    })
}

/// `value` without the object key `key`.
fn without(value: &Value, key: &str) -> Value {
    let mut value = value.clone();
    if let Some(object) = value.as_object_mut() {
        object.remove(key);
    }
    value
}

/// Every scenario of `report` that decided a workspace transport decided `expected`, and
/// at least one did (`auto`: `bind` where the daemon sees dockproof's files, `copy` on
/// the remote machine).
fn transports_are(report: &Value, expected: &str, where_: &str) -> Result<(), Failed> {
    let mut decided = 0;
    let mut wrong = Vec::new();
    for scenario in report["scenarios"].as_array().into_iter().flatten() {
        let transport = &scenario["record"]["context"]["docker"]["workspace"]["transport"];
        if let Some(transport) = transport.as_str() {
            decided += 1;
            if transport != expected {
                wrong.push(format!("{}: {transport}", scenario["name"]));
            }
        }
    }
    if decided == 0 {
        return Err(format!("{where_}: no scenario recorded a workspace transport").into());
    }
    if !wrong.is_empty() {
        return Err(format!(
            "{where_}: `auto` should have picked `{expected}` for every scenario, but: {}",
            wrong.join(", ")
        )
        .into());
    }
    Ok(())
}

/// Scenario name → fingerprint, for the scenarios a real backend ran (not skipped).
fn fingerprints(report: &Value) -> BTreeMap<String, Value> {
    report["scenarios"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|scenario| scenario["outcome"] != "skipped")
        .filter_map(|scenario| {
            let mut print = fingerprint(scenario);
            // Not compared (it names ports, addresses and paths): shown when they differ.
            print["message"] = scenario["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(std::iter::once(scenario))
                .filter_map(|part| part["failure"]["message"].as_str())
                .collect::<Vec<_>>()
                .join(" | ")
                .into();
            Some((scenario["name"].as_str()?.to_owned(), print))
        })
        .collect()
}

/// Scenario name → fingerprint.
type Fingerprints = BTreeMap<String, Value>;

/// The local run of the whole suite on `backend`, made once per test process.
fn local_suite(backend: &'static str) -> Result<BTreeMap<String, Value>, Failed> {
    static RUNS: OnceLock<Mutex<BTreeMap<&'static str, Result<Fingerprints, String>>>> =
        OnceLock::new();
    let runs = RUNS.get_or_init(Default::default);
    let mut runs = runs.lock().map_err(|_| "a local run panicked")?;
    if let Some(done) = runs.get(backend) {
        return done.clone().map_err(Failed::from);
    }
    let result = (|| -> Result<BTreeMap<String, Value>, Failed> {
        let work = tempfile::tempdir().map_err(|error| error.to_string())?;
        let id = run_id(&format!("local-{backend}"));
        let report = report_of(
            support::dockproof_on(backend, work.path()),
            &id,
            &work.path().join("local.json"),
            &suite_paths(),
        )?;
        leftovers(&id, &report)?;
        transports_are(&report, "bind", "the local run")?;
        Ok(fingerprints(&report))
    })()
    .map_err(|error| text(&error));
    runs.insert(backend, result.clone());
    result.map_err(Failed::from)
}

/// Fails when anything labelled with run `id` (or its compose projects) is on the daemon.
fn leftovers(id: &str, report: &Value) -> Result<(), Failed> {
    let mut labels = vec![format!("dockproof.run={id}")];
    for scenario in report["scenarios"].as_array().into_iter().flatten() {
        if let Some(project) = scenario["record"]["context"]["compose"]["project"].as_str() {
            labels.push(format!("com.docker.compose.project={project}"));
        }
    }
    for label in &labels {
        let left = support::labelled_leftovers(label)?;
        if !left.is_empty() {
            return Err(format!("left on the daemon with {label}: {left:?}").into());
        }
    }
    Ok(())
}

/// Nothing may have appeared under the machine's TMPDIR on the daemon's side.
fn no_daemon_side_files(machine: &RemoteMachine) -> Result<(), Failed> {
    let made = machine.daemon_side_leftovers();
    if made.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the daemon's side made {} path(s) under the machine's TMPDIR ({}), e.g. {:?}: \
             bind mounts of dockproof's files, which the daemon cannot see",
            made.len(),
            machine.daemon_side_tmp().display(),
            &made[..made.len().min(5)]
        )
        .into())
    }
}

/// A trial's verdict from every problem it found (each a line of the failure).
fn verdict(problems: Vec<String>) -> Result<(), Failed> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n").into())
    }
}

/// Compare two suites' fingerprints; every difference, named.
fn compare(
    local: &BTreeMap<String, Value>,
    remote: &BTreeMap<String, Value>,
) -> Result<(), Failed> {
    let without_message = |print: &Value| {
        let mut print = print.clone();
        print["message"] = Value::Null;
        print
    };
    let mut differences = Vec::new();
    for (name, expected) in local {
        match remote.get(name) {
            None => differences.push(format!("{name}: not run remotely")),
            Some(found) if without_message(found) != without_message(expected) => {
                differences.push(format!("{name}:\n  local  {expected}\n  remote {found}"))
            }
            Some(_) => {}
        }
    }
    for name in remote.keys().filter(|name| !local.contains_key(*name)) {
        differences.push(format!("{name}: run remotely only"));
    }
    if differences.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {} scenarios differ between the local and the remote run:\n{}",
            differences.len(),
            local.len(),
            differences.join("\n")
        )
        .into())
    }
}

/// The topology is what it claims: the machine's files are not the daemon's, and a port
/// the daemon publishes answers at the host side of the veth and not at the machine's
/// 127.0.0.1.
fn topology_is_remote() -> Result<(), Failed> {
    support::ensure_fixture_image("dockproof/web:1")?;
    let topology = Topology::create(Via::Tcp)?;
    let machine = &topology.machine;
    // A file written in the machine's TMPDIR is not on the daemon's side.
    let wrote = machine
        .command("sh")
        .args([
            "-c",
            r#"echo remotenet > "$TMPDIR/marker" && test -s "$TMPDIR/marker""#,
        ])
        .status()
        .map_err(|error| error.to_string())?;
    if !wrote.success() {
        return Err("cannot write in the machine's TMPDIR".into());
    }
    no_daemon_side_files(machine)?;
    // A published port: at the host side, yes; at the machine's loopback, no.
    let id = run_id("topology");
    let label = format!("dockproof.run={id}");
    let container = sshd::run(
        Command::new("docker").args([
            "run",
            "-d",
            "--rm",
            "--label",
            &label,
            "-p",
            "0:8080",
            "dockproof/web:1",
        ]),
        "docker run dockproof/web:1",
    )?;
    let result = (|| -> Result<(), Failed> {
        let port = sshd::run(
            Command::new("docker").args(["port", &container, "8080/tcp"]),
            "docker port",
        )?;
        let port: u16 = port
            .lines()
            .next()
            .and_then(|line| line.rsplit(':').next())
            .and_then(|port| port.parse().ok())
            .ok_or_else(|| format!("no port in `docker port`: {port}"))?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !machine.connects(&machine.host_side.to_string(), port)? {
            if std::time::Instant::now() > deadline {
                return Err(format!(
                    "port {port} published by the daemon does not answer at {} from the machine",
                    machine.host_side
                )
                .into());
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        if machine.connects("127.0.0.1", port)? {
            return Err(format!(
                "port {port} answers at 127.0.0.1 inside the machine: it is not remote"
            )
            .into());
        }
        Ok(())
    })();
    let _ = Command::new("docker")
        .args(["rm", "-f", &container])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    result?;
    leftovers(&id, &Value::Null)
}

/// The shipped scenarios a `*-core` trial runs on the machine: one of each thing a daemon
/// elsewhere changes (a job's workspace in and out over `copy`, a published port answering
/// at the daemon's address, a compose stack healthy and unhealthy through the endpoint's
/// transport, a build context uploaded), with the names the reports give them.
const CORE: [(&str, &str); 5] = [
    ("scenarios/job-happy-path.yaml", "job-happy-path"),
    (
        "scenarios/service-validation/healthy-service.yaml",
        "service-healthy",
    ),
    ("scenarios/compose/live-stack.yaml", "compose-live-stack"),
    (
        "scenarios/compose/live-unhealthy.yaml",
        "compose-live-unhealthy",
    ),
    ("scenarios/build/multi-stage.yaml", "build-multi-stage"),
];

/// How much of the shipped suite a trial runs on the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coverage {
    /// Every shipped scenario (one endpoint per backend: the suite's semantics on a daemon
    /// elsewhere do not depend on how it is reached).
    Whole,
    /// [`CORE`]: the other endpoints, where what differs is the way to the daemon.
    Core,
}

/// The suite `coverage` names on `backend` on a machine reaching the daemon `via`: the
/// same verdicts and records as the local run of those scenarios, nothing left on the
/// daemon, nothing made on its side.
fn suite(via: Via, backend: &'static str, coverage: Coverage) -> Result<(), Failed> {
    let mut local = local_suite(backend)?;
    let paths = match coverage {
        Coverage::Whole => suite_paths(),
        Coverage::Core => {
            local.retain(|name, _| CORE.iter().any(|(_, core)| core == name));
            if local.len() != CORE.len() {
                return Err(format!(
                    "the local run has {} of the core scenarios {:?}: a shipped scenario was renamed? (update CORE)",
                    local.len(),
                    CORE.map(|(_, name)| name)
                )
                .into());
            }
            CORE.iter().map(|(path, _)| *path).collect()
        }
    };
    let topology = Topology::create(via)?;
    let id = run_id(&format!("{}-{backend}", via.name()));
    let json = topology.dir.path().join("remote.json");
    let mut command = topology.dockproof("run", backend);
    command.args(["--fixture-images", "fixtures/images"]);
    let report = report_of(command, &id, &json, &paths)?;
    let remote = fingerprints(&report);
    let problems: Vec<String> = [
        compare(&local, &remote),
        transports_are(&report, "copy", "the remote run"),
        leftovers(&id, &report),
        no_daemon_side_files(&topology.machine),
    ]
    .iter()
    .filter_map(|result| result.as_ref().err().map(text))
    .collect();
    drop(topology);
    verdict(problems)
}

/// Two machines, one fleet: dockproof on the first reaches the daemon at both machines'
/// host sides (a route to the second's), through `run --host` and `canary`.
fn fleet(backend: &'static str) -> Result<(), Failed> {
    let first = Topology::create(Via::Tcp)?;
    let second = Topology::create(Via::Tcp)?;
    // The first machine reaches the second's host side through its own veth: the host
    // answers for all its addresses on any interface.
    let route = Command::new("ip")
        .args(["-n", &first.machine.name, "route", "add"])
        .arg(format!("{}/32", second.machine.host_side))
        .args(["via", &first.machine.host_side.to_string()])
        .status()
        .map_err(|error| error.to_string())?;
    if !route.success() {
        return Err("cannot add the route to the second machine's host side".into());
    }
    let hosts = [
        format!("a={}", first.endpoint.docker_host),
        format!("b={}", second.endpoint.docker_host),
    ];
    let id = run_id(&format!("fleet-{backend}"));
    let json = first.dir.path().join("fleet.json");
    let mut command = first.dockproof("run", backend);
    command.args(["--fixture-images", "fixtures/images"]);
    for host in &hosts {
        command.args(["--host", host]);
    }
    let report = report_of(
        command,
        &id,
        &json,
        &[
            "scenarios/job-happy-path.yaml",
            "scenarios/service-validation/healthy-service.yaml",
        ],
    )?;
    let passed = report["summary"]["passed"].as_u64();
    let names: Vec<&str> = report["scenarios"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|scenario| scenario["name"].as_str())
        .collect();
    let mut problems = Vec::new();
    if passed != Some(4) {
        problems.push(format!(
            "run --host a --host b: {passed:?} of 4 passed ({names:?}): {}",
            serde_json::to_string_pretty(&report["scenarios"]).unwrap_or_default()
        ));
    }
    if let Err(error) = leftovers(&id, &report) {
        problems.push(text(&error));
    }
    // The canary gate over the same two hosts.
    let mut canary = first.dockproof("canary", backend);
    canary
        .args(["--fixture-images", "fixtures/images", "--no-history"])
        .args(hosts.iter().flat_map(|host| ["--host", host.as_str()]))
        .args(CORE.map(|(path, _)| path));
    let output = canary
        .stdin(Stdio::null())
        .output()
        .map_err(|error| error.to_string())?;
    if output.status.code() != Some(0) {
        problems.push(format!(
            "canary on hosts a and b must say go (exit 0):\n{}",
            support::describe(&output)
        ));
    }
    for topology in [&first, &second] {
        if let Err(error) = no_daemon_side_files(&topology.machine) {
            problems.push(text(&error));
        }
    }
    verdict(problems)
}

/// `record --host` on a daemon elsewhere: the machine records the shipped CSV job on
/// host `m` (its workspace copied, nothing on the daemon's side), the fake replays that
/// recording with the job's verdict, and `record --check --host a --host b` checks it
/// on both hosts, a finding per host per scenario: none, then (the recorded stdout
/// edited) drift on each, exit 1.
fn record_on_a_remote_host(backend: &'static str) -> Result<(), Failed> {
    support::ensure_fixture_image("dockproof/job-runner:1")?;
    let topology = Topology::create(Via::Tcp)?;
    let dir = topology.dir.path();
    let recordings = dir.join("recordings");
    let scenario = "scenarios/job-recorded-csv.yaml";
    let host = |name: &str| format!("{name}={}", topology.endpoint.docker_host);
    let record_run_id = |json: &str| {
        run_id(&format!(
            "record-{backend}-{}",
            json.trim_end_matches(".json")
        ))
    };
    let dockproof = |subcommand: &str, check: bool, hosts: &[&str], json: &str| {
        let mut command = topology.dockproof(subcommand, backend);
        command
            .args(["--run-id", &record_run_id(json)])
            .args(["--fixture-images", "fixtures/images", "--recordings"])
            .arg(&recordings)
            .arg("--json")
            .arg(dir.join(json));
        if check {
            command.arg("--check");
        }
        for name in hosts {
            command.args(["--host", &host(name)]);
        }
        command.arg(scenario).stdin(Stdio::null());
        command
            .output()
            .map_err(|error| Failed::from(format!("cannot run dockproof: {error}")))
    };
    let outcomes = |json: &str| -> Result<Vec<(String, String)>, Failed> {
        let text = std::fs::read_to_string(dir.join(json)).map_err(|error| error.to_string())?;
        let report: Value = serde_json::from_str(&text).map_err(|error| error.to_string())?;
        Ok(report["scenarios"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|scenario| {
                (
                    scenario["name"].as_str().unwrap_or_default().to_owned(),
                    format!(
                        "{} {}",
                        scenario["outcome"].as_str().unwrap_or_default(),
                        scenario["failure"]["message"].as_str().unwrap_or_default()
                    ),
                )
            })
            .collect())
    };
    let mut problems = Vec::new();
    let recorded = dockproof("record", false, &["m"], "record.json")?;
    let file = recordings.join("job-recorded-csv/recording.json");
    if recorded.status.code() != Some(0) || !file.is_file() {
        return Err(format!(
            "record --host m on the remote daemon must write {}\n{}",
            file.display(),
            support::describe(&recorded)
        )
        .into());
    }
    let names = outcomes("record.json")?;
    if names.len() != 1 || names[0].0 != "m/job-recorded-csv" || !names[0].1.starts_with("passed") {
        problems.push(format!("record --host m reported {names:?}"));
    }
    // The fake replays what the remote daemon did (no daemon needed: run here).
    let replay = Command::new(support::dockproof())
        .current_dir(support::root())
        .env("DOCKPROOF_HISTORY", dir.join("history.db"))
        .args(["run", "--backend", "fake", "--fake-docker"])
        .arg(support::fake_docker())
        .arg("--recordings")
        .arg(&recordings)
        .arg("--json")
        .arg(dir.join("replay.json"))
        .arg(scenario)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| error.to_string())?;
    let replayed = outcomes("replay.json").unwrap_or_default();
    if replay.status.code() != Some(0) || replayed.len() != 1 || replayed[0].1 != "passed " {
        problems.push(format!(
            "the remote recording must replay on the fake: {replayed:?}\n{}",
            support::describe(&replay)
        ));
    }
    let checked = dockproof("record", true, &["a", "b"], "check.json")?;
    let found = outcomes("check.json").unwrap_or_default();
    let clean = found
        == [
            ("a/job-recorded-csv".to_owned(), "passed ".to_owned()),
            ("b/job-recorded-csv".to_owned(), "passed ".to_owned()),
        ];
    if checked.status.code() != Some(0) || !clean {
        problems.push(format!(
            "record --check --host a --host b must pass on both: {found:?}\n{}",
            support::describe(&checked)
        ));
    }
    let recorded_text = std::fs::read_to_string(&file).map_err(|error| error.to_string())?;
    let edited = recorded_text.replace("rows=5 total=60.00", "rows=5 total=61.00");
    if edited == recorded_text {
        problems.push("the recorded stdout was not found to edit".into());
    }
    std::fs::write(&file, edited).map_err(|error| error.to_string())?;
    let drifted = dockproof("record", true, &["a", "b"], "drift.json")?;
    let found = outcomes("drift.json").unwrap_or_default();
    let both_drift = found.len() == 2
        && found
            .iter()
            .zip(["a/", "b/"])
            .all(|((name, outcome), host)| {
                name.starts_with(host)
                    && outcome.starts_with("failed recording drift")
                    && outcome.contains("stdout differs")
            });
    if drifted.status.code() != Some(1) || !both_drift {
        problems.push(format!(
            "an edited recording must drift on each host (exit 1): {found:?}\n{}",
            support::describe(&drifted)
        ));
    }
    for json in ["record.json", "check.json", "drift.json"] {
        if let Err(error) = leftovers(&record_run_id(json), &Value::Null) {
            problems.push(text(&error));
        }
    }
    if let Err(error) = no_daemon_side_files(&topology.machine) {
        problems.push(text(&error));
    }
    verdict(problems)
}

/// Host bind mounts name the daemon's files: from the machine, a compose file binding
/// `./data` fails `up` as `config_invalid` at its line (and starts nothing), and a CST
/// config's `bindMounts` make `dockproof cst` exit 2 naming the line.
fn host_binds_refused(backend: &'static str) -> Result<(), Failed> {
    let topology = Topology::create(Via::Tcp)?;
    let dir = topology.dir.path();
    std::fs::write(
        dir.join("docker-compose.yml"),
        "services:\n  app:\n    image: dockproof/job-runner:1\n    command: [sleep, \"60\"]\n    volumes:\n      - store:/store\n      - ./data:/data\nvolumes:\n  store: {}\n",
    )
    .map_err(|error| error.to_string())?;
    std::fs::write(
        dir.join("binds.yaml"),
        "name: remote-host-binds\nrequires: [compose]\nsteps:\n  - compose:\n      up: { file: docker-compose.yml, within: 30s }\n",
    )
    .map_err(|error| error.to_string())?;
    let id = run_id(&format!("binds-{backend}"));
    let mut command = topology.dockproof("run", backend);
    command.args(["--fixture-images", "fixtures/images"]);
    let scenario = dir.join("binds.yaml");
    let report = report_of(
        command,
        &id,
        &dir.join("binds.json"),
        &[scenario.to_str().ok_or("temp path is not UTF-8")?],
    )?;
    let failure = &report["scenarios"][0]["failure"];
    let message = failure["message"].as_str().unwrap_or_default();
    let mut problems = Vec::new();
    if failure["category"] != "config_invalid" || !message.contains("docker-compose.yml:7:") {
        problems.push(format!(
            "compose with `./data:/data` on a daemon elsewhere must fail as config_invalid at docker-compose.yml:7: {failure}"
        ));
    }
    if let Err(error) = leftovers(&id, &report) {
        problems.push(text(&error));
    }
    let output = topology
        .dockproof("cst", backend)
        .args([
            "--image",
            "dockproof/job-runner:1",
            "fixtures/cst/every-field.yaml",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|error| error.to_string())?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.code() != Some(2)
        || !stderr.contains("every-field.yaml:16:")
        || !stderr.contains("bind mount")
    {
        problems.push(format!(
            "dockproof cst with bindMounts on a daemon elsewhere must exit 2 naming every-field.yaml:16:\n{}",
            support::describe(&output)
        ));
    }
    if let Err(error) = no_daemon_side_files(&topology.machine) {
        problems.push(text(&error));
    }
    verdict(problems)
}

/// Why these tests cannot run here, if so (besides a daemon).
fn missing_tools() -> Option<String> {
    support::netns::unavailable().or_else(|| sshd::tools().err())
}

fn main() {
    let mut args = Arguments::from_args();
    // Each trial runs a whole suite (itself -j 2) on a machine of 2 cores shared with the
    // daemon: one at a time unless asked otherwise, so timeouts measure the scenarios.
    if args.test_threads.is_none() {
        args.test_threads = Some(1);
    }
    let missing = missing_tools();
    if let Some(reason) = &missing
        && !support::docker_required()
    {
        eprintln!("remote topology tests ignored: {reason}");
    }
    let mut trials: Vec<Trial> = Vec::new();
    let mut add = |name: String, test: Box<dyn FnOnce() -> Result<(), Failed> + Send>| {
        let reason = missing.clone();
        let trial = support::real_daemon_trial(name, move || match reason {
            Some(reason) => Err(format!("DOCKPROOF_REQUIRE_DOCKER=1 but {reason}").into()),
            None => test(),
        });
        trials.push(if missing.is_some() && !support::docker_required() {
            trial.with_ignored_flag(true)
        } else {
            trial
        });
    };
    add(
        "remote::topology-is-remote".into(),
        Box::new(topology_is_remote),
    );
    for backend in ["docker-cli", "docker-api"] {
        // The whole suite once per backend, through the endpoint furthest from a local
        // socket (the CLI's own ssh, the API's TLS); the core scenarios through the others.
        let whole = if backend == "docker-cli" {
            Via::Ssh
        } else {
            Via::Tls
        };
        for via in [Via::Tcp, Via::Tls, Via::Ssh] {
            let (coverage, what) = if via == whole {
                (Coverage::Whole, "suite")
            } else {
                (Coverage::Core, "core")
            };
            add(
                format!("remote::{}::{backend}-{what}", via.name()),
                Box::new(move || suite(via, backend, coverage)),
            );
        }
        add(
            format!("remote::fleet::{backend}"),
            Box::new(move || fleet(backend)),
        );
        add(
            format!("remote::host-binds-refused::{backend}"),
            Box::new(move || host_binds_refused(backend)),
        );
        add(
            format!("remote::record::{backend}"),
            Box::new(move || record_on_a_remote_host(backend)),
        );
    }
    libtest_mimic::run(&args, trials).exit();
}
