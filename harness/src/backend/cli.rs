//! The CLI backend: drives a docker-compatible binary (`fake-docker` or the
//! real `docker`) with argv lists, bounded output and a timeout per call, and
//! translates its exit codes and stderr into typed errors.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::exits::ExitWatch;
use super::fakeserver::FakeServer;
use super::{
    Backend, BackendError, Capture, CaptureLimits, Captured, Complaint, ContainerSpec,
    ContainerState, DaemonWatch, ExecOutput, ExecRequest, LogCapture, LogFiles, Logs, ResourceKind,
    StatsSample, is_command_not_found,
};
use crate::process::{self, Input};

/// How long a control command (create, start, inspect, ...) may take.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(120);
/// How long an image build may take.
const BUILD_TIMEOUT: Duration = Duration::from_secs(600);
/// Largest archive `copy_from` reads (a file or directory tree out of a container).
const COPY_LIMIT: u64 = 512 << 20;
/// How long a workspace copy into or out of a container may take.
const COPY_TIMEOUT: Duration = Duration::from_secs(600);
/// How long an attached run that ended with 0 waits for its `die` event before asking
/// `inspect` (and no longer waiting for events in the run): the event is sent as the
/// run's wait returns, so it is normally there already.
const EXIT_EVENT_WAIT: Duration = Duration::from_secs(1);
/// The same for a run that ended otherwise (it may not have started: no event will come).
const FAILED_EXIT_EVENT_WAIT: Duration = Duration::from_millis(20);
/// How long a created container's `create` event is waited for (to read its image's
/// fixture digest from it) before the image is inspected instead (and events are no
/// longer waited for in the run): the daemon sends it before its create answers, and the
/// watch replays it if it subscribed later, so it is normally there already.
const CREATE_EVENT_WAIT: Duration = Duration::from_secs(1);
/// Output kept from control commands.
const CONTROL_OUTPUT: CaptureLimits = CaptureLimits { max_bytes: 1 << 20 };

/// A docker-compatible command-line program.
#[derive(Debug, Clone)]
pub struct CliBackend {
    name: String,
    program: PathBuf,
    env: Vec<(OsString, OsString)>,
    /// Where `--env-file` files are written (the run's directory, so `clean` finds
    /// one a killed run left behind).
    scratch_dir: PathBuf,
    /// Bounds every call on a daemon that stops answering; none for the fake, which has
    /// no daemon (and whose fault counters must not see probes).
    watch: Option<Arc<DaemonWatch>>,
    /// Where the daemon's published ports are reached (its ssh forwards, kept for the run).
    ports: std::sync::Arc<super::daemon::PortReach>,
    /// fake-docker's server, started at the first call and shared by the backends
    /// [`Backend::with_overrides`] makes (`None` inside: switched off, or it did not start).
    server: Arc<tokio::sync::OnceCell<Option<Arc<FakeServer>>>>,
    /// What this backend asked its daemon to make (shared with its overridden copies).
    ledger: Arc<super::ledger::Ledger>,
    /// The daemon's container events, read for the ends of attached runs (real daemons;
    /// started with the first create; `None` inside: switched off or it did not start).
    exits: Arc<tokio::sync::OnceCell<Option<Arc<ExitWatch>>>>,
}

/// A CLI call under way: a process of its own, or a call fake-docker's server runs.
enum Running {
    Process(process::Child),
    Served(super::fakeserver::ServedCall),
}

type Stream = Box<dyn AsyncRead + Unpin + Send>;

impl Running {
    /// The call's stdout and stderr (once).
    fn streams(&mut self) -> (Stream, Stream) {
        match self {
            Running::Process(child) => (
                Box::new(child.take_stdout().expect("stdout is piped")),
                Box::new(child.take_stderr().expect("stderr is piped")),
            ),
            Running::Served(call) => (
                Box::new(call.stdout.take().expect("stdout is taken once")),
                Box::new(call.stderr.take().expect("stderr is taken once")),
            ),
        }
    }

    /// Its exit code; a CLI killed by a signal reports 128 + signal, as a shell would.
    async fn code(&mut self, program: &Path) -> Result<i32, BackendError> {
        match self {
            Running::Process(child) => child.wait().await.map_err(BackendError::from),
            Running::Served(call) => call.wait().await.map_err(|source| BackendError::Spawn {
                program: program.display().to_string(),
                source,
            }),
        }
    }
}

/// What one invocation produced.
#[derive(Debug)]
struct Output {
    code: i32,
    stdout: Captured,
    stderr: Captured,
}

impl CliBackend {
    /// A backend named `name` that runs `program` with extra environment `env`.
    pub fn new(
        name: impl Into<String>,
        program: impl Into<PathBuf>,
        env: Vec<(OsString, OsString)>,
    ) -> Self {
        let name = name.into();
        let watch = (name != "fake").then(|| Arc::new(DaemonWatch::default()));
        let ports = std::sync::Arc::new(super::daemon::PortReach::new(Self::locate(&name, &env)));
        CliBackend {
            name,
            program: program.into(),
            env,
            scratch_dir: std::env::temp_dir(),
            watch,
            ports,
            server: Arc::default(),
            ledger: Arc::default(),
            exits: Arc::default(),
        }
    }

    /// fake-docker's server, started on first use: the fake only, unless switched off
    /// (`DOCKPROOF_FAKE_SERVER=0`); a server that cannot start leaves every call spawned.
    async fn server(&self) -> Option<&FakeServer> {
        if !self.is_fake() || !super::fakeserver::enabled() {
            return None;
        }
        self.server
            .get_or_init(|| async {
                // Only the state directory, which every backend sharing the server has
                // alike: a scenario's faults, recordings or DOCKER_HOST (with_overrides)
                // reach the calls that carry them, never the server's other calls.
                let state: Vec<_> = self
                    .env
                    .iter()
                    .filter(|(key, _)| key == "FAKE_DOCKER_STATE")
                    .cloned()
                    .collect();
                FakeServer::start(&self.program, &state)
                    .await
                    .ok()
                    .map(Arc::new)
            })
            .await
            .as_deref()
    }

    /// Start a call: through fake-docker's server when there is one, else a process.
    async fn start_call(&self, args: &[String], hidden: &Hidden) -> Result<Running, BackendError> {
        if let Some(server) = self.server().await {
            let env =
                self.env
                    .iter()
                    .map(|(key, value)| (key.as_os_str(), value.as_os_str()))
                    .chain(hidden.env.iter().map(|(key, value)| {
                        (std::ffi::OsStr::new(key), std::ffi::OsStr::new(value))
                    }));
            // A call the server did not take (it is gone) never ran: it is spawned instead.
            if let Ok(call) = server.call(args, env).await {
                return Ok(Running::Served(call));
            }
        }
        self.spawn(args, hidden).map(Running::Process)
    }

    /// Where the daemon of a backend `name` run with `env` is: fake-docker's containers
    /// are processes on this machine whatever its DOCKER_HOST says.
    fn locate(name: &str, env: &[(OsString, OsString)]) -> super::daemon::DaemonHost {
        if name == "fake" {
            super::daemon::DaemonHost::Local
        } else {
            super::daemon::DaemonHost::for_cli(env)
        }
    }

    /// The same backend giving the daemon `timeout` to answer any call before it is
    /// `daemon_unavailable` (default [`super::DEFAULT_DAEMON_TIMEOUT`]; the fake has no daemon).
    pub fn with_daemon_timeout(mut self, timeout: Duration) -> Self {
        if self.watch.is_some() {
            self.watch = Some(Arc::new(DaemonWatch::new(timeout)));
        }
        self
    }

    /// Run `call` under the daemon watch (if any), probing with `docker version`.
    async fn watched<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        match &self.watch {
            Some(watch) => watch.guard(call, || self.probe()).await,
            None => call.await,
        }
    }

    /// Ask the daemon something it answers at once; anything but "unreachable" is an answer.
    async fn probe(&self) -> Result<(), BackendError> {
        let args = strings(["version", "--format", "{{.Server.Version}}"]);
        let output = self
            .invoke_unwatched(&args, &Hidden::default(), None, CONTROL_OUTPUT)
            .await?;
        if output.code == 0 {
            return Ok(());
        }
        match self.classify(&args, "daemon", &output) {
            error @ BackendError::DaemonUnavailable { .. } => Err(error),
            _ => Ok(()),
        }
    }

    /// Write `--env-file` files in `dir` (the run directory) rather than the temp dir.
    pub fn with_scratch_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.scratch_dir = dir.into();
        self
    }

    /// The exit watch, started on first use (see [`super::exits`]): real daemons only,
    /// unless switched off (`DOCKPROOF_EXIT_EVENTS=0`); `None` when its process did not start.
    async fn exit_watch(&self) -> Option<&Arc<ExitWatch>> {
        if !self.attaches() || std::env::var_os("DOCKPROOF_EXIT_EVENTS").is_some_and(|v| v == "0") {
            return None;
        }
        self.exits
            .get_or_init(|| async {
                let args = strings([
                    "events",
                    "--since",
                    super::exits::REPLAY,
                    "--format",
                    "{{json .}}",
                    "--filter",
                    "type=container",
                    "--filter",
                    "label=dockproof.run",
                    "--filter",
                    "event=create",
                    "--filter",
                    "event=start",
                    "--filter",
                    "event=die",
                    "--filter",
                    "event=oom",
                ]);
                // Its stderr is not read: to /dev/null, so it can never fill a pipe and
                // stop the events.
                let mut child = self
                    .command(&args, &Hidden::default())
                    .stderr(process::Output::Null)
                    .spawn()
                    .ok()?;
                let stdout = child.take_stdout()?;
                Some(ExitWatch::start(stdout, child))
            })
            .await
            .as_ref()
    }

    /// Whether this is fake-docker (no real daemon behind it).
    fn is_fake(&self) -> bool {
        self.name == "fake"
    }

    /// The program this backend runs.
    pub fn program(&self) -> &Path {
        &self.program
    }

    fn describe(&self, args: &[String]) -> String {
        let program = self
            .program
            .file_name()
            .unwrap_or(self.program.as_os_str())
            .to_string_lossy();
        let verb: Vec<&str> = args.iter().take(2).map(String::as_str).collect();
        format!("{program} {}", verb.join(" "))
    }

    /// The program with `args` (and `hidden`'s values in its environment), stdout and
    /// stderr piped.
    fn command(&self, args: &[String], hidden: &Hidden) -> process::Command {
        let mut command = process::Command::new(&self.program)
            .args(args)
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .envs(hidden.env.iter().map(|(key, value)| (key, value)));
        let chosen = |key: &str| {
            std::env::var_os(key).is_some()
                || self.env.iter().any(|(name, _)| name == key)
                || hidden.env.iter().any(|(name, _)| name == key)
        };
        if !self.is_fake() && one_thread_suffices(args) && !chosen("GOMAXPROCS") {
            command = command.env("GOMAXPROCS", "1");
        }
        // The watchers run beside the calls a run waits for (the start, the create):
        // their Go start-up (~12 ms of CPU each) yields to those on a busy machine.
        if matches!(args.first().map(String::as_str), Some("stats" | "events")) {
            command.background()
        } else {
            command
        }
    }

    /// Start the program with `args` (and `hidden`'s values in its environment) in its
    /// own process group, killed with the group when dropped before its end.
    fn spawn(&self, args: &[String], hidden: &Hidden) -> Result<process::Child, BackendError> {
        self.command(args, hidden)
            .spawn()
            .map_err(BackendError::from)
    }

    async fn invoke(
        &self,
        args: &[String],
        timeout: Option<Duration>,
        limits: CaptureLimits,
    ) -> Result<Output, BackendError> {
        self.invoke_hidden(args, &Hidden::default(), timeout, limits)
            .await
    }

    /// [`CliBackend::invoke`] with values handed over outside argv.
    async fn invoke_hidden(
        &self,
        args: &[String],
        hidden: &Hidden,
        timeout: Option<Duration>,
        limits: CaptureLimits,
    ) -> Result<Output, BackendError> {
        self.watched(self.invoke_unwatched(args, hidden, timeout, limits))
            .await
    }

    async fn invoke_unwatched(
        &self,
        args: &[String],
        hidden: &Hidden,
        timeout: Option<Duration>,
        limits: CaptureLimits,
    ) -> Result<Output, BackendError> {
        let captures = (
            LogCapture::new(limits.max_bytes),
            LogCapture::new(limits.max_bytes),
        );
        let (code, stdout, stderr) = self.run_into(args, hidden, timeout, captures).await?;
        Ok(Output {
            code,
            stdout: stdout.finish().await,
            stderr: stderr.finish().await,
        })
    }

    /// Run the program, feeding its stdout and stderr into `captures` as they
    /// arrive, under the daemon watch; returns the exit code and the captures.
    async fn invoke_into(
        &self,
        args: &[String],
        hidden: &Hidden,
        timeout: Option<Duration>,
        captures: (LogCapture, LogCapture),
    ) -> Result<(i32, LogCapture, LogCapture), BackendError> {
        self.watched(self.run_into(args, hidden, timeout, captures))
            .await
    }

    async fn run_into(
        &self,
        args: &[String],
        hidden: &Hidden,
        timeout: Option<Duration>,
        (stdout_capture, stderr_capture): (LogCapture, LogCapture),
    ) -> Result<(i32, LogCapture, LogCapture), BackendError> {
        let mut child = self.start_call(args, hidden).await?;
        let (stdout, stderr) = child.streams();
        let run = async {
            tokio::join!(
                read_into_log(stdout, stdout_capture),
                read_into_log(stderr, stderr_capture),
                child.code(&self.program)
            )
        };
        let (stdout, stderr, status) = match timeout {
            Some(limit) => {
                tokio::time::timeout(limit, run)
                    .await
                    .map_err(|_| BackendError::Timeout {
                        command: self.describe(args),
                        timeout: limit,
                    })?
            }
            None => run.await,
        };
        let code = status?;
        Ok((code, stdout, stderr))
    }

    /// Run a command whose stdout is binary (a tar stream): at most `limit` bytes of it, stderr bounded.
    async fn invoke_bytes(
        &self,
        args: &[String],
        timeout: Duration,
        limit: u64,
    ) -> Result<(i32, Vec<u8>, Captured), BackendError> {
        self.watched(self.run_bytes(args, timeout, limit)).await
    }

    async fn run_bytes(
        &self,
        args: &[String],
        timeout: Duration,
        limit: u64,
    ) -> Result<(i32, Vec<u8>, Captured), BackendError> {
        let mut child = self.start_call(args, &Hidden::default()).await?;
        let (stdout, stderr) = child.streams();
        let run = async {
            let mut bytes = Vec::new();
            let read = async {
                let mut limited = stdout.take(limit + 1);
                limited.read_to_end(&mut bytes).await
            };
            let (read, stderr, status) = tokio::join!(
                read,
                read_into(stderr, Capture::new(CONTROL_OUTPUT.max_bytes)),
                child.code(&self.program)
            );
            (read.map(|_| bytes), stderr.finish(), status)
        };
        let (bytes, stderr, status) =
            tokio::time::timeout(timeout, run)
                .await
                .map_err(|_| BackendError::Timeout {
                    command: self.describe(args),
                    timeout,
                })?;
        let bytes = bytes.map_err(|source| BackendError::Spawn {
            program: self.program.display().to_string(),
            source,
        })?;
        let code = status?;
        if bytes.len() as u64 > limit {
            return Err(BackendError::Command {
                command: self.describe(args),
                code: 0,
                stderr: format!("output larger than {limit} bytes"),
            });
        }
        Ok((code, bytes, stderr))
    }

    /// Run a control command; a non-zero exit becomes the most specific error its stderr allows.
    async fn control(&self, args: &[String], subject: &str) -> Result<Output, BackendError> {
        let output = self
            .invoke(args, Some(CONTROL_TIMEOUT), CONTROL_OUTPUT)
            .await?;
        if output.code == 0 {
            return Ok(output);
        }
        Err(self.classify(args, subject, &output))
    }

    fn classify(&self, args: &[String], subject: &str, output: &Output) -> BackendError {
        let stderr = output.stderr.text.trim();
        let lower = stderr.to_ascii_lowercase();
        if let Some(message) = not_engine_api(stderr) {
            return BackendError::DaemonUnavailable { message };
        }
        if is_daemon_unavailable(&lower) {
            return BackendError::DaemonUnavailable {
                message: daemon_message(stderr),
            };
        }
        if is_connection_lost(&lower) {
            return BackendError::DaemonUnavailable {
                message: format!(
                    "the connection to the daemon broke during `{}` ({stderr}): was the daemon stopped or restarted?",
                    self.describe(args)
                ),
            };
        }
        // fake-docker refusing a call its recordings do not describe: never guessed.
        if let Some(start) = stderr.find("no recording matches this container") {
            return BackendError::Config {
                message: first_line(&stderr[start..]),
            };
        }
        if let Some(reason) = super::unmodelled_reason(stderr) {
            return BackendError::NotModelled {
                reason: reason.to_owned(),
            };
        }
        if lower.starts_with("fake-docker: invalid fault specification") {
            return BackendError::Config {
                message: first_line(stderr),
            };
        }
        match Complaint::of(&lower) {
            Some(Complaint::ImageNotFound) => BackendError::ImageNotFound {
                image: subject.to_owned(),
                message: last_line(stderr),
            },
            Some(Complaint::CommandNotFound) => BackendError::CommandNotFound {
                message: first_line(stderr),
            },
            Some(Complaint::NoSuchContainer) => BackendError::NoSuchContainer {
                container: subject.to_owned(),
            },
            Some(Complaint::NotRunning) => BackendError::NotRunning {
                container: subject.to_owned(),
            },
            Some(Complaint::PortConflict) => BackendError::PortConflict {
                message: last_line(stderr),
            },
            None => BackendError::Command {
                command: self.describe(args),
                code: output.code,
                stderr: stderr.to_owned(),
            },
        }
    }
}

/// The CLI's complaint when what answers at the daemon's address is not the Engine API:
/// not HTTP at all (`malformed HTTP response`), or HTTP whose body is not the JSON the CLI
/// expects (Go's JSON decoder: `invalid character '<' looking for beginning of value`).
/// Only a complaint that is the CLI's whole stderr counts (besides the builder's banner and
/// Go's log line about unsolicited bytes), so a build log that mentions JSON does not.
/// Measured with docker CLI 28 against stand-in sockets (tests/suites/faultmatrix.rs).
fn not_engine_api(stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|line| {
            !is_builder_banner(line)
                && !line.starts_with("Sending build context")
                && !line.contains("Unsolicited response received on idle HTTP channel")
        })
        .collect();
    let unsolicited = stderr.contains("Unsolicited response received on idle HTTP channel");
    let [line] = lines.as_slice() else {
        return unsolicited
            .then(|| format!("{}: {}", super::watch::NOT_ENGINE_API, first_line(stderr)));
    };
    let lower = line.to_ascii_lowercase();
    let json = lower.starts_with("invalid character ")
        || lower == "unexpected end of json input"
        || lower.starts_with("json: cannot unmarshal");
    let http = lower.contains("malformed http") || lower.contains("transport connection broken");
    (json || http || unsolicited).then(|| format!("{}: {line}", super::watch::NOT_ENGINE_API))
}

fn is_daemon_unavailable(lower_stderr: &str) -> bool {
    lower_stderr.contains("cannot connect to the docker daemon")
        || lower_stderr.contains("is the docker daemon running")
        || lower_stderr.contains("error during connect")
}

/// The CLI's whole complaint is that its connection to the daemon ended mid-answer (seen
/// when dockerd stops under a running `docker wait`: `unexpected EOF`). Only a one-line
/// stderr counts, so a build log or a daemon error that merely mentions EOF does not.
fn is_connection_lost(lower_stderr: &str) -> bool {
    !lower_stderr.contains('\n')
        && (lower_stderr == "unexpected eof"
            || lower_stderr.ends_with(": unexpected eof")
            || lower_stderr.ends_with("connection reset by peer")
            || lower_stderr.ends_with("broken pipe"))
}

/// The legacy builder's deprecation banner: noise, not part of a failure.
fn is_builder_banner(line: &str) -> bool {
    line.starts_with("DEPRECATED: The legacy builder")
        || line
            .trim_start()
            .starts_with("Install the buildx component")
        || line
            .trim_start()
            .starts_with("https://docs.docker.com/go/buildx")
        || line.trim().is_empty()
}

/// The line of the CLI's stderr that says why the daemon cannot be reached, not the
/// legacy builder's banner before it. For an `ssh://` host that line ends with what ssh
/// said (`stderr=…`), which may go on over more lines: their last one, ssh's verdict
/// (`Host key verification failed.`), is kept too.
fn daemon_message(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !is_builder_banner(line))
        .collect();
    let at = lines
        .iter()
        .position(|line| is_daemon_unavailable(&line.to_ascii_lowercase()))
        .unwrap_or(0);
    let Some(line) = lines.get(at) else {
        return String::new();
    };
    match lines[at + 1..].last() {
        Some(last) if line.contains("stderr=") => format!("{line} … {last}"),
        _ => (*line).to_owned(),
    }
}

/// Milliseconds from `created` to `started` and from `started` to `finished` (RFC 3339
/// timestamps from an inspect); `None` unless the container started after its creation,
/// the run time `None` until it finished (Docker's zero time is before any creation).
fn daemon_timings(
    created: Option<&str>,
    started: Option<&str>,
    finished: Option<&str>,
) -> Option<(u64, Option<u64>)> {
    let parse = |text: Option<&str>| humantime::parse_rfc3339_weak(text?).ok();
    let (created, started) = (parse(created)?, parse(started)?);
    let start = started.duration_since(created).ok()?;
    let run = parse(finished)
        .and_then(|finished| finished.duration_since(started).ok())
        .map(|run| run.as_millis() as u64);
    Some((start.as_millis() as u64, run))
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

fn last_line(text: &str) -> String {
    text.lines().last().unwrap_or_default().to_owned()
}

use process::read_into;

/// Read `stream` to its end into `capture` (a read error ends it, as an end would).
async fn read_into_log(mut stream: impl AsyncRead + Unpin, mut capture: LogCapture) -> LogCapture {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => capture.push(&buffer[..read]).await,
        }
    }
    capture
}

/// Values handed to the docker CLI outside its command line, which any user can read
/// in `/proc/PID/cmdline`: the flags that name them, the values for the CLI's own
/// environment (`/proc/PID/environ` is readable by its owner only), and the env file
/// (mode 0600, removed when this is dropped).
#[derive(Default)]
struct Hidden {
    args: Vec<String>,
    env: Vec<(String, String)>,
    _file: Option<tempfile::NamedTempFile>,
}

/// Longest line the docker CLI reads from an env file (Go's `bufio.Scanner` default), with margin.
const ENV_FILE_LINE: usize = 60 * 1024;

/// Whether the docker CLI (or the fake) reads variable `name` itself, so that setting
/// it in the CLI's environment would change what the CLI does rather than pass a value.
fn read_by_the_cli(name: &str, own: &[(OsString, OsString)]) -> bool {
    let upper = name.to_ascii_uppercase();
    ["DOCKER_", "BUILDKIT_", "BUILDX_", "FAKE_DOCKER_"]
        .iter()
        .any(|prefix| upper.starts_with(prefix))
        || ["HOME", "PATH", "TMPDIR", "XDG_CONFIG_HOME"].contains(&upper.as_str())
        || own.iter().any(|(key, _)| key == name)
}

/// Whether `name` can be set in a process environment at all.
fn settable(name: &str, value: &str) -> bool {
    !name.is_empty() && !name.contains(['=', '\0']) && !value.contains('\0')
}

/// Whether `name=value` survives the docker CLI's env-file reader as it is (one
/// line; leading blanks and `#` lines are dropped there; lines have a length limit).
fn fits_env_file(name: &str, value: &str) -> bool {
    !value.contains(['\n', '\r', '\0'])
        && !name.is_empty()
        && !name.starts_with('#')
        && !name.contains(|c: char| c.is_whitespace() || c == '=' || c == '\0')
        && name.len() + value.len() < ENV_FILE_LINE
}

/// How `env` reaches `docker create`/`docker exec` without its values on the command
/// line: single-line values in an `--env-file` (0600, in `dir`, removed after the
/// call); multi-line ones (which an env file cannot hold) as `--env NAME` with the value
/// in the CLI's own environment. A multi-line value for a name the CLI reads itself
/// (`DOCKER_HOST`, `HOME`, ...) could only go on the command line: it is refused.
fn hide_env(
    env: &[(String, String)],
    own: &[(OsString, OsString)],
    dir: &Path,
) -> Result<Hidden, BackendError> {
    let mut hidden = Hidden::default();
    if env.is_empty() {
        return Ok(hidden);
    }
    // A later entry for a name wins, as with repeated `--env` flags.
    let mut latest: Vec<&(String, String)> = Vec::new();
    for entry in env {
        latest.retain(|earlier| earlier.0 != entry.0);
        latest.push(entry);
    }
    let mut lines = String::new();
    for (name, value) in latest {
        if fits_env_file(name, value) {
            lines.push_str(&format!("{name}={value}\n"));
        } else if settable(name, value) && !read_by_the_cli(name, own) {
            hidden.args.extend(["--env".to_owned(), name.clone()]);
            hidden.env.push((name.clone(), value.clone()));
        } else {
            return Err(BackendError::Config {
                message: format!(
                    "environment variable `{name}`: its value cannot go in an env file (it has a line break, a NUL or is over {ENV_FILE_LINE} bytes) and `{name}` cannot be handed to the docker CLI through its own environment (the CLI reads it itself); it would have to be on the docker command line, where every user of the host can read it. Rename the variable, or use the docker-api backend"
                ),
            });
        }
    }
    if !lines.is_empty() {
        let file_error = |error: std::io::Error| BackendError::Config {
            message: format!("cannot write an env file in {}: {error}", dir.display()),
        };
        // tempfile creates it with mode 0600 and removes it when dropped.
        let mut file = tempfile::Builder::new()
            .prefix("dockproof-env-")
            .tempfile_in(dir)
            .map_err(file_error)?;
        std::io::Write::write_all(&mut file, lines.as_bytes()).map_err(file_error)?;
        std::io::Write::flush(&mut file).map_err(file_error)?;
        let mut args = vec!["--env-file".to_owned(), file.path().display().to_string()];
        args.append(&mut hidden.args);
        hidden.args = args;
        hidden._file = Some(file);
    }
    Ok(hidden)
}

/// Whether the docker CLI does `args` as well with one thread for its Go code
/// (`GOMAXPROCS=1`): every call that asks or tells the daemon something and prints a
/// little (create, rm, inspect, ps, kill, the `events` and `stats` watchers, ...).
/// The Go runtime starts fewer threads, so each such process costs about a quarter less
/// CPU (`docker ps -q`, `perf stat -r 60`: 13.1 → 9.8 ms of task-clock) and a create,
/// start --attach, rm sequence ran 14 ms faster (median of 25 interleaved rounds, 379 →
/// 365 ms). The calls that stream data keep Go's default: a `start --attach` of 400 MB
/// of output took 3.5% longer on one thread.
fn one_thread_suffices(args: &[String]) -> bool {
    const STREAMING: [&str; 14] = [
        "start", "run", "attach", "logs", "exec", "cp", "build", "save", "load", "import",
        "export", "pull", "push", "compose",
    ];
    let mut words = args.iter().map(String::as_str);
    let verb = match words.next() {
        // `docker container logs`, `docker image save`: the verb is the second word.
        Some("container" | "image" | "builder") => words.next(),
        verb => verb,
    };
    verb.is_some_and(|verb| {
        !verb.is_empty() && !verb.starts_with('-') && !STREAMING.contains(&verb)
    })
}

/// How build args reach `docker build` without their values on the command line:
/// `--build-arg NAME`, the value in the CLI's environment (the CLI looks a bare name
/// up there). A build arg named like a variable the CLI reads itself is refused.
fn hide_build_args(
    build_args: &[(String, String)],
    own: &[(OsString, OsString)],
) -> Result<Hidden, BackendError> {
    let mut hidden = Hidden::default();
    for (name, value) in build_args {
        if !settable(name, value) || read_by_the_cli(name, own) {
            return Err(BackendError::Config {
                message: format!(
                    "build arg `{name}` cannot be handed to the docker CLI through its environment (the CLI reads a variable of that name itself, or the name or value cannot be set there); it would have to be on the docker command line, where every user of the host can read it. Rename it, or use the docker-api backend"
                ),
            });
        }
        hidden.args.extend(["--build-arg".to_owned(), name.clone()]);
        hidden.env.retain(|(earlier, _)| earlier != name);
        hidden.env.push((name.clone(), value.clone()));
    }
    Ok(hidden)
}

fn strings<const N: usize>(items: [&str; N]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

/// The `docker create` arguments for `spec` (everything as argv, no shell), with
/// `env_args` (from [`hide_env`]) in place of the environment's values.
pub fn create_args(spec: &ContainerSpec, env_args: &[String]) -> Vec<String> {
    let mut args = strings(["create", "--pull", "never", "--name"]);
    args.push(spec.name.clone());
    for (key, value) in &spec.labels {
        args.extend(["--label".to_owned(), format!("{key}={value}")]);
    }
    args.extend(env_args.iter().cloned());
    for mount in &spec.mounts {
        if let Some(flag) = mount.mount_flag() {
            args.extend(["--mount".to_owned(), flag]);
        } else if let super::MountSource::Bind(host) = &mount.source {
            let mode = if mount.read_only { ":ro" } else { "" };
            args.extend([
                "--volume".to_owned(),
                format!("{}:{}{mode}", host.display(), mount.container),
            ]);
        }
    }
    if let Some(workdir) = &spec.workdir {
        args.extend(["--workdir".to_owned(), workdir.clone()]);
    }
    if let Some(user) = &spec.user {
        args.extend(["--user".to_owned(), user.clone()]);
    }
    if let Some(memory) = spec.memory_bytes {
        args.extend(["--memory".to_owned(), memory.to_string()]);
    }
    if let Some(cpus) = spec.cpus {
        args.extend(["--cpus".to_owned(), cpus.to_string()]);
    }
    if let Some(pids) = spec.pids_limit {
        args.extend(["--pids-limit".to_owned(), pids.to_string()]);
    }
    if spec.read_only_rootfs {
        args.push("--read-only".to_owned());
    }
    if spec.no_new_privileges {
        args.extend(["--security-opt".to_owned(), "no-new-privileges".to_owned()]);
    }
    if let Some(network) = &spec.network {
        args.extend(["--network".to_owned(), network.clone()]);
    }
    for capability in &spec.cap_drop {
        args.extend(["--cap-drop".to_owned(), capability.clone()]);
    }
    for mount in &spec.tmpfs {
        args.extend(["--tmpfs".to_owned(), mount.clone()]);
    }
    if let Some(entrypoint) = &spec.entrypoint {
        // The CLI takes one word; an empty one clears the image's ENTRYPOINT.
        args.extend([
            "--entrypoint".to_owned(),
            entrypoint.first().cloned().unwrap_or_default(),
        ]);
    }
    if spec.privileged {
        args.push("--privileged".to_owned());
    }
    for capability in &spec.cap_add {
        args.extend(["--cap-add".to_owned(), capability.clone()]);
    }
    if let Some(pid) = &spec.pid_mode {
        args.extend(["--pid".to_owned(), pid.clone()]);
    }
    if let Some(runtime) = &spec.runtime {
        args.extend(["--runtime".to_owned(), runtime.clone()]);
    }
    for port in &spec.ports {
        let host = match (&port.host_ip, port.host_port) {
            (Some(ip), 0) => format!("{ip}::"),
            (Some(ip), host) => format!("{ip}:{host}:"),
            (None, 0) => String::new(),
            (None, host) => format!("{host}:"),
        };
        args.extend([
            "--publish".to_owned(),
            format!("{host}{}", port.container_port),
        ]);
    }
    if let Some(check) = &spec.healthcheck {
        // The docker CLI takes the check as one string run by the container's shell;
        // each argument is single-quoted so it stays one word there.
        let command: Vec<String> = check
            .cmd
            .iter()
            .map(|arg| format!("'{}'", arg.replace('\'', "'\\''")))
            .collect();
        args.extend(["--health-cmd".to_owned(), command.join(" ")]);
        args.extend([
            "--health-interval".to_owned(),
            format!("{}ms", check.interval.as_millis()),
        ]);
        args.extend([
            "--health-timeout".to_owned(),
            format!("{}ms", check.timeout.as_millis()),
        ]);
        args.extend(["--health-retries".to_owned(), check.retries.to_string()]);
        args.extend([
            "--health-start-period".to_owned(),
            format!("{}ms", check.start_period.as_millis()),
        ]);
    }
    args.push(spec.image.clone());
    // `--entrypoint` takes one word: the rest of a longer entrypoint goes before the command.
    if let Some(entrypoint) = &spec.entrypoint {
        args.extend(entrypoint.iter().skip(1).cloned());
    }
    if let Some(cmd) = &spec.cmd {
        args.extend(cmd.iter().cloned());
    }
    args
}

/// The `docker exec` arguments for `request`, with `env_args` (from [`hide_env`])
/// in place of the environment's values.
pub fn exec_args(request: &ExecRequest, env_args: &[String]) -> Vec<String> {
    let mut args = vec!["exec".to_owned()];
    args.extend(env_args.iter().cloned());
    if let Some(workdir) = &request.workdir {
        args.extend(["--workdir".to_owned(), workdir.clone()]);
    }
    if let Some(user) = &request.user {
        args.extend(["--user".to_owned(), user.clone()]);
    }
    args.push(request.container.clone());
    args.extend(request.cmd.iter().cloned());
    args
}

#[async_trait]
impl Backend for CliBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn ledger(&self) -> Option<&super::ledger::Ledger> {
        Some(&self.ledger)
    }

    async fn sees_create_labels(&self) -> bool {
        self.exit_watch().await.is_some_and(|watch| watch.is_live())
    }

    async fn digest_at_create(&self, container: &str) -> Option<Option<String>> {
        let watch = self.exit_watch().await?;
        match watch.created(container, CREATE_EVENT_WAIT).await {
            Some(seen) => Some(seen.fixture_digest),
            None => {
                // Missed: no more waiting for events in this run.
                watch.give_up();
                None
            }
        }
    }

    fn with_overrides(
        &self,
        overrides: &super::ScenarioOverrides,
    ) -> Result<std::sync::Arc<dyn Backend>, String> {
        let fake = self.is_fake();
        let mut env = self.env.clone();
        if let Some(faults) = &overrides.fake_faults {
            if !fake {
                return Err(super::fake_only_reason(&self.name));
            }
            env.push(("FAKE_DOCKER_FAULTS".into(), faults.into()));
            env.push((
                "FAKE_DOCKER_FAULTS_SCOPE".into(),
                overrides.scope.clone().into(),
            ));
        }
        if let Some(dir) = &overrides.recordings
            && fake
        {
            env.push(("FAKE_DOCKER_RECORDINGS".into(), dir.clone().into()));
        }
        // Another daemon gets its own watch (with the same timeout): this one may be fine.
        let watch = match (&overrides.docker_host, &self.watch) {
            (Some(_), Some(watch)) => Some(Arc::new(DaemonWatch::new(watch.timeout()))),
            _ => self.watch.clone(),
        };
        let ports = match &overrides.docker_host {
            Some(host) => {
                env.push(("DOCKER_HOST".into(), host.into()));
                std::sync::Arc::new(super::daemon::PortReach::new(Self::locate(
                    &self.name, &env,
                )))
            }
            None => self.ports.clone(),
        };
        Ok(std::sync::Arc::new(CliBackend {
            name: self.name.clone(),
            program: self.program.clone(),
            env,
            scratch_dir: self.scratch_dir.clone(),
            watch,
            ports,
            server: self.server.clone(),
            ledger: self.ledger.clone(),
            // Another daemon's events are another stream.
            exits: match &overrides.docker_host {
                Some(_) => Arc::default(),
                None => self.exits.clone(),
            },
        }))
    }

    async fn ping(&self) -> Result<String, BackendError> {
        let args = strings(["version", "--format", "{{.Server.Version}}"]);
        let output = self
            .control(&args, "daemon")
            .await
            .map_err(|error| match error {
                BackendError::Command { stderr, .. } => BackendError::DaemonUnavailable {
                    message: daemon_message(&stderr),
                },
                other => other,
            })?;
        Ok(output.stdout.text.trim().to_owned())
    }

    async fn image_exists(&self, image: &str) -> Result<bool, BackendError> {
        let args = vec![
            "image".into(),
            "inspect".into(),
            "--format".into(),
            "{{.Id}}".into(),
            image.to_owned(),
        ];
        match self.control(&args, image).await {
            Ok(_) => Ok(true),
            Err(BackendError::ImageNotFound { .. }) => Ok(false),
            Err(error) => Err(error),
        }
    }

    async fn build_image(&self, context: &Path, tag: &str) -> Result<(), BackendError> {
        let request = super::BuildRequest {
            context: context.to_path_buf(),
            tag: tag.to_owned(),
            ..Default::default()
        };
        self.build(&request).await
    }

    async fn build(&self, request: &super::BuildRequest) -> Result<(), BackendError> {
        self.ledger.making(ResourceKind::Image);
        // --force-rm: a failed step's intermediate container is removed too (the
        // legacy builder keeps it otherwise, unlabelled, for ever).
        let mut args = vec![
            "build".to_owned(),
            "--force-rm".to_owned(),
            "--tag".to_owned(),
            request.tag.clone(),
        ];
        if let Some(dockerfile) = &request.dockerfile {
            args.extend([
                "--file".to_owned(),
                request.context.join(dockerfile).display().to_string(),
            ]);
        }
        let hidden = hide_build_args(&request.args, &self.env)?;
        args.extend(hidden.args.iter().cloned());
        if let Some(target) = &request.target {
            args.extend(["--target".to_owned(), target.clone()]);
        }
        for (key, value) in &request.labels {
            args.extend(["--label".to_owned(), format!("{key}={value}")]);
        }
        args.push(request.context.display().to_string());
        let output = self
            .invoke_hidden(&args, &hidden, Some(BUILD_TIMEOUT), CONTROL_OUTPUT)
            .await?;
        if output.code == 0 {
            return Ok(());
        }
        if let Some(message) = not_engine_api(&output.stderr.text) {
            return Err(BackendError::DaemonUnavailable { message });
        }
        let lower = output.stderr.text.to_ascii_lowercase();
        if is_daemon_unavailable(&lower) {
            return Err(BackendError::DaemonUnavailable {
                message: daemon_message(&output.stderr.text),
            });
        }
        // fake-docker refusing a build its recordings do not describe: never guessed.
        if let Some(start) = output.stderr.text.find("no recording matches this build") {
            return Err(BackendError::Config {
                message: first_line(&output.stderr.text[start..]),
            });
        }
        // The legacy builder reports steps on stdout and the failure on stderr;
        // BuildKit puts everything on stderr. Keep both, in that order.
        let mut log = output.stdout.tail_lines(40);
        log.extend(
            output
                .stderr
                .tail_lines(20)
                .into_iter()
                .filter(|line| !is_builder_banner(line)),
        );
        Err(BackendError::BuildFailed {
            image: request.tag.clone(),
            message: log.join("\n"),
        })
    }

    async fn image_inspect_json(&self, image: &str) -> Result<serde_json::Value, BackendError> {
        let args = vec!["image".into(), "inspect".into(), image.to_owned()];
        let output = self.control(&args, image).await?;
        let mut documents: serde_json::Value = serde_json::from_str(output.stdout.text.trim())
            .map_err(|error| BackendError::Command {
                command: self.describe(&args),
                code: 0,
                stderr: format!("unreadable image inspect JSON: {error}"),
            })?;
        match documents.get_mut(0) {
            Some(document) => Ok(document.take()),
            None => Err(BackendError::ImageNotFound {
                image: image.to_owned(),
                message: "no such image".into(),
            }),
        }
    }

    async fn pull_image(&self, image: &str, platform: Option<&str>) -> Result<(), BackendError> {
        let mut args = vec!["pull".to_owned(), "--quiet".to_owned()];
        if let Some(platform) = platform {
            args.extend(["--platform".to_owned(), platform.to_owned()]);
        }
        args.push(image.to_owned());
        self.control(&args, image).await.map(|_| ())
    }

    async fn remove_image(&self, image: &str) -> Result<(), BackendError> {
        // `--no-prune`: the untagged parents are the build cache another run's build of
        // the same context may be standing on right now (see `Backend::remove_image`).
        let args = vec![
            "image".into(),
            "rm".into(),
            "--force".into(),
            "--no-prune".into(),
            image.to_owned(),
        ];
        match self.control(&args, image).await {
            Ok(_) | Err(BackendError::ImageNotFound { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, BackendError> {
        // Removed when `hidden` drops, after the CLI has read it (or the call was cancelled).
        let hidden = hide_env(&spec.env, &self.env, &self.scratch_dir)?;
        let args = create_args(spec, &hidden.args);
        // Subscribed before the first container exists (its events are replayed anyway).
        let _ = self.exit_watch().await;
        let creating = self.ledger.creating();
        let output = self
            .invoke_hidden(&args, &hidden, Some(CONTROL_TIMEOUT), CONTROL_OUTPUT)
            .await?;
        if output.code != 0 {
            return Err(self.classify(&args, &spec.image, &output));
        }
        let id = output.stdout.text.trim().to_owned();
        creating.created(&id);
        Ok(id)
    }

    async fn start(&self, container: &str) -> Result<(), BackendError> {
        self.control(&["start".into(), container.to_owned()], container)
            .await
            .map(drop)
    }

    async fn wait(&self, container: &str) -> Result<i64, BackendError> {
        let args = vec!["wait".to_owned(), container.to_owned()];
        let output = self.invoke(&args, None, CONTROL_OUTPUT).await?;
        if output.code != 0 {
            return Err(self.classify(&args, container, &output));
        }
        let text = output.stdout.text.trim();
        text.parse().map_err(|_| BackendError::Command {
            command: self.describe(&args),
            code: output.code,
            stderr: format!("unexpected output {text:?}"),
        })
    }

    async fn stop(&self, container: &str, grace: Duration) -> Result<(), BackendError> {
        let seconds = grace.as_secs_f64().ceil().max(0.0) as u64;
        let args = vec![
            "stop".into(),
            "-t".into(),
            seconds.to_string(),
            container.to_owned(),
        ];
        self.control(&args, container).await.map(drop)
    }

    async fn kill(&self, container: &str) -> Result<(), BackendError> {
        match self
            .control(&["kill".into(), container.to_owned()], container)
            .await
        {
            Ok(_) | Err(BackendError::NotRunning { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    async fn logs(
        &self,
        container: &str,
        limits: CaptureLimits,
        files: Option<&LogFiles>,
    ) -> Result<Logs, BackendError> {
        let args = vec!["logs".to_owned(), container.to_owned()];
        let captures = LogFiles::captures(files, limits)?;
        let (code, stdout, stderr) = self
            .invoke_into(&args, &Hidden::default(), Some(CONTROL_TIMEOUT), captures)
            .await?;
        if code != 0 {
            let output = Output {
                code,
                stdout: stdout.finish().await,
                stderr: stderr.finish().await,
            };
            return Err(self.classify(&args, container, &output));
        }
        Logs::finish(stdout, stderr).await
    }

    async fn inspect(&self, container: &str) -> Result<ContainerState, BackendError> {
        let args = vec![
            "inspect".into(),
            "--type".into(),
            "container".into(),
            "--format".into(),
            "{{json .State}} {{json .Created}}".into(),
            container.to_owned(),
        ];
        let output = self.control(&args, container).await?;
        let unreadable = |error: serde_json::Error| BackendError::Command {
            command: self.describe(&args),
            code: 0,
            stderr: format!("unreadable state JSON: {error}"),
        };
        // `Created` is one JSON string (no blanks); the state before it may hold blanks.
        let text = output.stdout.text.trim();
        let (state, created) = text.rsplit_once(' ').unwrap_or((text, "null"));
        let state: serde_json::Value = serde_json::from_str(state).map_err(unreadable)?;
        let created: serde_json::Value = serde_json::from_str(created).map_err(unreadable)?;
        let daemon_timings = if self.is_fake() {
            // The fake's timestamps are fixed: they say nothing about time.
            None
        } else {
            daemon_timings(
                created.as_str(),
                state["StartedAt"].as_str(),
                state["FinishedAt"].as_str(),
            )
        };
        Ok(ContainerState {
            status: state["Status"].as_str().unwrap_or_default().to_owned(),
            running: state["Running"].as_bool().unwrap_or(false),
            exit_code: state["ExitCode"].as_i64().unwrap_or(0),
            oom_killed: state["OOMKilled"].as_bool().unwrap_or(false),
            error: state["Error"].as_str().unwrap_or_default().to_owned(),
            daemon_timings,
        })
    }

    fn attaches(&self) -> bool {
        // The fake's calls are cheap (its server), and its `start` delay is what
        // `faults/slow-start` measures apart from the run.
        !self.is_fake()
    }

    /// `docker start --attach` (attach, start, stream both outputs, exit with the
    /// container's code), then one inspect: whether it started at all, its exit code as the
    /// daemon recorded it (not the CLI's, which a CLI failure shares), OOM and timings.
    async fn start_attached(
        &self,
        container: &str,
        limits: CaptureLimits,
        files: Option<&LogFiles>,
    ) -> Result<super::Attached, super::AttachError> {
        use super::AttachError;
        let args = vec![
            "start".to_owned(),
            "--attach".to_owned(),
            container.to_owned(),
        ];
        let captures = LogFiles::captures(files, limits).map_err(AttachError::Run)?;
        let (code, stdout, stderr) = self
            .invoke_into(&args, &Hidden::default(), None, captures)
            .await
            .map_err(AttachError::Run)?;
        let logs = Logs::finish(stdout, stderr)
            .await
            .map_err(AttachError::Run)?;
        // How it ended, from its `die` event when the watch has it (a container that
        // never started has none: its start event is asked for too), else from inspect.
        let from_events = match self.exit_watch().await {
            Some(watch) => {
                let wait = if code == 0 {
                    EXIT_EVENT_WAIT
                } else {
                    FAILED_EXIT_EVENT_WAIT
                };
                let seen = watch.died(container, wait).await;
                if seen.is_none() && code == 0 {
                    // Missed (a daemon clock far off ours, a rolled-over event log): no
                    // more waiting in this run.
                    watch.give_up();
                }
                seen.filter(|seen| seen.started_ns.is_some())
                    .and_then(|seen| seen.state())
            }
            None => None,
        };
        let state = match from_events {
            Some(state) => state,
            None => self.inspect(container).await.map_err(AttachError::Run)?,
        };
        let cli_failure = || {
            let output = Output {
                code,
                stdout: logs.stdout.clone(),
                stderr: logs.stderr.clone(),
            };
            self.classify(&args, container, &output)
        };
        if code != 0 && state.status == "created" {
            // Never ran: all the CLI printed is its own (the daemon's refusal).
            return Err(AttachError::Start(cli_failure()));
        }
        if state.running {
            // The CLI ended and the container did not: the attachment broke.
            return Err(AttachError::Run(cli_failure()));
        }
        Ok(super::Attached {
            exit_code: state.exit_code,
            logs,
            started_at: None,
            state: Some(state),
        })
    }

    async fn exec(
        &self,
        request: &ExecRequest,
        timeout: Duration,
        limits: CaptureLimits,
    ) -> Result<ExecOutput, BackendError> {
        let hidden = hide_env(&request.env, &self.env, &self.scratch_dir)?;
        let args = exec_args(request, &hidden.args);
        let output = self
            .invoke_hidden(&args, &hidden, Some(timeout), limits)
            .await?;
        // The docker CLI's own failures (not the command's) are recognisable by
        // their message: on stderr, except OCI exec failures, which the real CLI
        // prints on stdout.
        let lower = output.stderr.text.to_ascii_lowercase();
        if output.code == 126 && is_command_not_found(&output.stdout.text.to_ascii_lowercase()) {
            return Err(BackendError::CommandNotFound {
                message: first_line(&output.stdout.text),
            });
        }
        let cli_failed = (output.code == 126 && is_command_not_found(&lower))
            || (output.code == 125 && super::unmodelled_reason(&output.stderr.text).is_some())
            // fake-docker refusing an exec its recordings do not describe.
            || (output.code == 125
                && output
                    .stderr
                    .text
                    .contains("no recording matches this container"))
            || (output.code == 1
                && (lower.contains("is not running") || lower.contains("no such container")))
            || is_daemon_unavailable(&lower)
            || (output.code == 1
                && output.stdout.text.is_empty()
                && not_engine_api(&output.stderr.text).is_some());
        if cli_failed {
            return Err(self.classify(&args, &request.container, &output));
        }
        Ok(ExecOutput {
            exit_code: i64::from(output.code),
            stdout: output.stdout,
            stderr: output.stderr,
        })
    }

    async fn remove(&self, container: &str) -> Result<(), BackendError> {
        let args = vec![
            "rm".into(),
            "--force".into(),
            "--volumes".into(),
            container.to_owned(),
        ];
        match self.control(&args, container).await {
            Ok(_) | Err(BackendError::NoSuchContainer { .. }) => {
                self.ledger.removed(container);
                if let Some(Some(watch)) = self.exits.get() {
                    watch.forget(container);
                }
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    async fn copy_from(&self, container: &str, path: &str) -> Result<Vec<u8>, BackendError> {
        let args = vec![
            "cp".to_owned(),
            format!("{container}:{path}"),
            "-".to_owned(),
        ];
        let (code, bytes, stderr) = self
            .invoke_bytes(&args, CONTROL_TIMEOUT, COPY_LIMIT)
            .await?;
        if code != 0 {
            let output = Output {
                code,
                stdout: Captured::default(),
                stderr,
            };
            return Err(self.classify(&args, container, &output));
        }
        Ok(bytes)
    }

    async fn copy_from_stream(
        &self,
        container: &str,
        path: &str,
        sink: tokio::sync::mpsc::Sender<bytes::Bytes>,
    ) -> Result<(), BackendError> {
        let args = vec![
            "cp".to_owned(),
            format!("{container}:{path}"),
            "-".to_owned(),
        ];
        let mut child = self.spawn(&args, &Hidden::default())?;
        let stdout = child.take_stdout().expect("stdout is piped");
        let stderr = child.take_stderr().expect("stderr is piped");
        let run = async {
            let forward = async {
                let mut stdout = stdout;
                let mut buffer = vec![0u8; 256 * 1024];
                loop {
                    match stdout.read(&mut buffer).await {
                        Ok(0) | Err(_) => return true,
                        Ok(read) => {
                            let chunk = bytes::Bytes::copy_from_slice(&buffer[..read]);
                            if sink.send(chunk).await.is_err() {
                                // The reader refused the archive: stop the copy here.
                                return false;
                            }
                        }
                    }
                }
            };
            let (complete, stderr) = tokio::join!(
                forward,
                read_into(stderr, Capture::new(CONTROL_OUTPUT.max_bytes))
            );
            (complete, stderr.finish())
        };
        let (complete, stderr) =
            tokio::time::timeout(COPY_TIMEOUT, run)
                .await
                .map_err(|_| BackendError::Timeout {
                    command: self.describe(&args),
                    timeout: COPY_TIMEOUT,
                })?;
        if !complete {
            child.kill_group();
            let _ = child.wait().await;
            return Ok(());
        }
        let code = child.wait().await?;
        if code != 0 {
            let output = Output {
                code,
                stdout: Captured::default(),
                stderr,
            };
            return Err(self.classify(&args, container, &output));
        }
        Ok(())
    }

    async fn copy_to(
        &self,
        container: &str,
        path: &str,
        archive: &Path,
    ) -> Result<(), BackendError> {
        let args = vec![
            "cp".to_owned(),
            "-".to_owned(),
            format!("{container}:{path}"),
        ];
        let file = std::fs::File::open(archive).map_err(|source| BackendError::Spawn {
            program: format!("{} (reading {})", self.program.display(), archive.display()),
            source,
        })?;
        let mut child = self
            .command(&args, &Hidden::default())
            .stdin(Input::File(file))
            .spawn()?;
        let finished = child
            .finish(
                COPY_TIMEOUT,
                Capture::new(CONTROL_OUTPUT.max_bytes),
                Capture::new(CONTROL_OUTPUT.max_bytes),
            )
            .await?;
        if finished.success() {
            return Ok(());
        }
        let output = Output {
            code: finished.code,
            stdout: Captured::default(),
            stderr: finished.stderr,
        };
        Err(self.classify(&args, container, &output))
    }

    async fn create_volume(
        &self,
        name: &str,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), BackendError> {
        self.ledger.making(ResourceKind::Volume);
        let mut args = vec!["volume".to_owned(), "create".to_owned()];
        for (key, value) in labels {
            args.extend(["--label".to_owned(), format!("{key}={value}")]);
        }
        args.push(name.to_owned());
        self.control(&args, name).await.map(drop)
    }

    async fn save_image(&self, image: &str, destination: &Path) -> Result<(), BackendError> {
        let args = vec![
            "save".to_owned(),
            "--output".to_owned(),
            destination.display().to_string(),
            image.to_owned(),
        ];
        let output = self
            .invoke(&args, Some(BUILD_TIMEOUT), CONTROL_OUTPUT)
            .await?;
        if output.code != 0 {
            return Err(self.classify(&args, image, &output));
        }
        Ok(())
    }

    async fn load_image(&self, archive: &Path) -> Result<(), BackendError> {
        self.ledger.making(ResourceKind::Image);
        let shown = archive.display().to_string();
        let args = vec![
            "load".to_owned(),
            "--quiet".to_owned(),
            "--input".to_owned(),
            shown.clone(),
        ];
        let output = self
            .invoke(&args, Some(BUILD_TIMEOUT), CONTROL_OUTPUT)
            .await?;
        if output.code != 0 {
            return Err(self.classify(&args, &shown, &output));
        }
        Ok(())
    }

    async fn commit(&self, container: &str) -> Result<String, BackendError> {
        self.ledger.making(ResourceKind::Image);
        let args = vec!["commit".to_owned(), container.to_owned()];
        let output = self.control(&args, container).await?;
        Ok(output.stdout.text.trim().to_owned())
    }

    async fn inspect_json(&self, container: &str) -> Result<serde_json::Value, BackendError> {
        let args = vec![
            "inspect".into(),
            "--type".into(),
            "container".into(),
            container.to_owned(),
        ];
        let output = self.control(&args, container).await?;
        let mut documents: serde_json::Value = serde_json::from_str(output.stdout.text.trim())
            .map_err(|error| BackendError::Command {
                command: self.describe(&args),
                code: 0,
                stderr: format!("unreadable inspect JSON: {error}"),
            })?;
        match documents.get_mut(0) {
            Some(document) => Ok(document.take()),
            None => Err(BackendError::NoSuchContainer {
                container: container.to_owned(),
            }),
        }
    }

    async fn stats(
        &self,
        container: &str,
        sink: &mut (dyn FnMut(StatsSample) + Send),
    ) -> Result<(), BackendError> {
        // Streaming: one process for the whole run, a frame about every second.
        let args = vec![
            "stats".to_owned(),
            "--no-trunc".to_owned(),
            "--format".to_owned(),
            "{{json .}}".to_owned(),
            container.to_owned(),
        ];
        let mut child = self.start_call(&args, &Hidden::default()).await?;
        let (mut stdout, stderr) = child.streams();
        let frames = async {
            let (mut pending, mut buffer) = (String::new(), vec![0u8; 16 * 1024]);
            while let Ok(read @ 1..) = stdout.read(&mut buffer).await {
                pending.push_str(&String::from_utf8_lossy(&buffer[..read]));
                // Whole frames only: the rest waits for the next read.
                let Some(end) = pending.rfind('}') else {
                    continue;
                };
                for sample in super::stats::parse_cli_frames(&pending[..=end]) {
                    if sample.is_live() {
                        sink(sample);
                    }
                }
                pending.drain(..=end);
            }
        };
        let (_, stderr, status) = tokio::join!(
            frames,
            read_into(stderr, Capture::new(CONTROL_OUTPUT.max_bytes)),
            child.code(&self.program)
        );
        match status? {
            0 => Ok(()),
            code => {
                let output = Output {
                    code,
                    stdout: Captured::default(),
                    stderr: stderr.finish(),
                };
                Err(self.classify(&args, container, &output))
            }
        }
    }

    async fn list_labelled(&self, label: &str) -> Result<Vec<String>, BackendError> {
        let args = vec![
            "ps".into(),
            "--all".into(),
            "--quiet".into(),
            "--no-trunc".into(),
            "--filter".into(),
            format!("label={label}"),
        ];
        let output = self.control(&args, label).await?;
        Ok(output
            .stdout
            .text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect())
    }

    async fn list_labelled_resources(
        &self,
        kind: ResourceKind,
        label: &str,
    ) -> Result<Vec<String>, BackendError> {
        if self.is_fake() && kind == ResourceKind::Image {
            // What fake-docker builds lives in its state directory, inside the run
            // directory: no image to list (its networks and volumes are listed).
            return Ok(Vec::new());
        }
        let mut args = vec![kind.as_str().into(), "ls".into(), "--quiet".into()];
        if kind == ResourceKind::Image {
            args.push("--no-trunc".into());
        }
        args.extend(["--filter".into(), format!("label={label}")]);
        let output = self.control(&args, label).await?;
        let mut listed: Vec<String> = Vec::new();
        for line in output.stdout.text.lines().map(str::trim) {
            // An image tagged twice is listed twice.
            if !line.is_empty() && !listed.iter().any(|seen| seen == line) {
                listed.push(line.to_owned());
            }
        }
        Ok(listed)
    }

    async fn remove_resource(&self, kind: ResourceKind, name: &str) -> Result<(), BackendError> {
        if kind == ResourceKind::Image {
            return self.remove_image(name).await;
        }
        let mut args = vec![kind.as_str().to_owned(), "rm".to_owned()];
        if kind == ResourceKind::Volume {
            args.push("--force".to_owned());
        }
        args.push(name.to_owned());
        match self.control(&args, name).await {
            Ok(_) | Err(BackendError::NoSuchContainer { .. }) => Ok(()),
            Err(BackendError::Command { stderr, .. })
                if stderr.to_ascii_lowercase().contains("not found") =>
            {
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    fn daemon_env(&self) -> Result<Vec<(OsString, OsString)>, String> {
        if self.is_fake() {
            return Err(super::real_daemon_only_reason(&self.name));
        }
        // What this backend hands the docker CLI (`DOCKER_HOST`, `DOCKER_CONTEXT`) reaches the same daemon for compose.
        Ok(self.env.clone())
    }

    fn daemon_host(&self) -> super::daemon::DaemonHost {
        self.ports.daemon_host().clone()
    }

    fn daemon_socket(&self) -> Option<PathBuf> {
        if self.is_fake() {
            return None;
        }
        super::daemon::cli_unix_socket(&self.env)
    }

    async fn reach_port(
        &self,
        binding: &str,
        port: u16,
    ) -> Result<super::daemon::Reach, BackendError> {
        // The docker CLI dials ssh by itself: forwards go over a connection of our own.
        self.ports
            .reach(binding, port, None)
            .await
            .map_err(super::daemon::ReachError::into_backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Mount, MountSource};

    #[test]
    fn create_passes_everything_as_argv() {
        let spec = ContainerSpec {
            name: "dp-1".into(),
            image: "img:1".into(),
            cmd: Some(vec!["job".into(), "a b; rm -rf /".into()]),
            env: vec![("A".into(), "1 2".into())],
            workdir: Some("/workspace".into()),
            user: Some("1000:1000".into()),
            mounts: vec![Mount {
                source: MountSource::Bind("/tmp/ws".into()),
                container: "/workspace".into(),
                read_only: false,
            }],
            labels: [("dockproof.run".to_owned(), "r1".to_owned())].into(),
            memory_bytes: Some(64 << 20),
            cpus: Some(0.5),
            pids_limit: Some(64),
            read_only_rootfs: true,
            no_new_privileges: true,
            network: Some("none".into()),
            ports: vec![
                crate::backend::PublishedPort {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: 0,
                    container_port: 8080,
                },
                crate::backend::PublishedPort {
                    host_ip: None,
                    host_port: 9000,
                    container_port: 90,
                },
            ],
            healthcheck: Some(crate::backend::Healthcheck {
                cmd: vec!["wget".into(), "-q".into(), "it's".into()],
                interval: Duration::from_secs(1),
                timeout: Duration::from_millis(1500),
                retries: 3,
                start_period: Duration::ZERO,
            }),
            ..Default::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let hidden = hide_env(&spec.env, &[], dir.path()).unwrap();
        let args = create_args(&spec, &hidden.args);
        let joined = args.join(" ");
        let env_file = hidden._file.as_ref().unwrap().path().display().to_string();
        assert!(
            joined.starts_with(&format!(
                "create --pull never --name dp-1 --label dockproof.run=r1 --env-file {env_file} --volume"
            )),
            "{joined}"
        );
        assert_eq!(std::fs::read_to_string(&env_file).unwrap(), "A=1 2\n");
        assert!(joined.contains("--volume /tmp/ws:/workspace --workdir /workspace --user 1000:1000 --memory 67108864 --cpus 0.5 --pids-limit 64 --read-only --security-opt no-new-privileges --network none --publish 127.0.0.1::8080 --publish 9000:90"), "{joined}");
        assert!(joined.contains("--health-cmd 'wget' '-q' 'it'\\''s' --health-interval 1000ms --health-timeout 1500ms --health-retries 3 --health-start-period 0ms img:1"), "{joined}");
        assert_eq!(args.last().unwrap(), "a b; rm -rf /");
    }

    /// Single-line values go to a 0600 env file that is removed afterwards; a
    /// multi-line value goes by name with its value in the CLI's environment; nothing
    /// of any value is in argv; a multi-line value for a name the CLI reads is refused.
    #[test]
    fn env_values_and_build_args_never_reach_argv() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let pem = "-----BEGIN KEY-----\nAAAA\n-----END KEY-----\n".to_owned();
        let env = vec![
            ("TOKEN".to_owned(), "tok \"quoted\" \\ $x".to_owned()),
            ("KEY".to_owned(), pem.clone()),
            ("TOKEN".to_owned(), "later-wins".to_owned()),
            ("HOME".to_owned(), "/home/job".to_owned()),
        ];
        let hidden = hide_env(&env, &[], dir.path()).unwrap();
        let file = hidden._file.as_ref().unwrap().path().to_path_buf();
        assert_eq!(
            hidden.args,
            ["--env-file", &file.display().to_string(), "--env", "KEY"]
        );
        assert_eq!(hidden.env, [("KEY".to_owned(), pem.clone())]);
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "TOKEN=later-wins\nHOME=/home/job\n"
        );
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(file.starts_with(dir.path()));
        drop(hidden);
        assert!(!file.exists(), "the env file is removed after the call");

        let refused = hide_env(
            &[("DOCKER_HOST".to_owned(), "a\nb".to_owned())],
            &[],
            dir.path(),
        );
        assert!(matches!(refused, Err(BackendError::Config { .. })));
        assert!(hide_env(&[], &[], dir.path()).unwrap()._file.is_none());

        let build = hide_build_args(&[("NPM_TOKEN".to_owned(), pem.clone())], &[]).unwrap();
        assert_eq!(build.args, ["--build-arg", "NPM_TOKEN"]);
        assert_eq!(build.env, [("NPM_TOKEN".to_owned(), pem)]);
        let own = [(OsString::from("FAKE_X"), OsString::new())];
        assert!(hide_build_args(&[("DOCKER_CONFIG".into(), "x".into())], &own).is_err());
        assert!(hide_build_args(&[("FAKE_X".into(), "x".into())], &own).is_err());
    }

    #[test]
    fn calls_that_only_talk_to_the_daemon_run_the_cli_on_one_thread() {
        let words = |line: &str| line.split(' ').map(str::to_owned).collect::<Vec<_>>();
        for line in [
            "create --name x img",
            "rm --force c",
            "events --since 10s",
            "stats --no-trunc c",
            "image inspect img",
            "container inspect c",
            "volume create v",
        ] {
            assert!(one_thread_suffices(&words(line)), "{line}");
        }
        for line in [
            "start --attach c",
            "run --rm img",
            "logs c",
            "cp c:/a -",
            "build -t x .",
            "image save img",
            "container logs c",
            "compose up",
            "--version",
            "",
        ] {
            assert!(!one_thread_suffices(&words(line)), "{line}");
        }
    }

    #[tokio::test]
    async fn the_one_thread_setting_reaches_the_cli_unless_chosen_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("docker");
        std::fs::write(&program, "#!/bin/sh\necho \"$1 ${GOMAXPROCS-unset}\"\n").unwrap();
        std::fs::set_permissions(
            &program,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let seen = |backend: CliBackend, verb: &'static str| async move {
            let output = backend
                .invoke(&[verb.to_owned()], None, CaptureLimits::default())
                .await
                .unwrap();
            output.stdout.text.trim().to_owned()
        };
        let backend = || CliBackend::new("docker-cli", &program, vec![]);
        assert_eq!(seen(backend(), "create").await, "create 1");
        assert_eq!(seen(backend(), "start").await, "start unset");
        // A user's own choice (here the backend's environment) is left alone.
        let chosen = CliBackend::new(
            "docker-cli",
            &program,
            vec![("GOMAXPROCS".into(), "3".into())],
        );
        assert_eq!(seen(chosen, "create").await, "create 3");
        // fake-docker is no Go program.
        assert_eq!(
            seen(CliBackend::new("fake", &program, vec![]), "create").await,
            "create unset"
        );
    }

    #[test]
    fn classifies_real_cli_messages() {
        let backend = CliBackend::new("test", "docker", vec![]);
        let output = |code, stderr: &str| Output {
            code,
            stdout: Captured::default(),
            stderr: Captured::from_text(stderr),
        };
        let args = vec!["start".to_owned(), "c".to_owned()];
        let cases = [
            (
                "Cannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon running?",
                "daemon_unavailable",
            ),
            (
                "Error response from daemon: No such image: nosuch:1",
                "image_not_found",
            ),
            (
                "Error response from daemon: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: \"nosuchcmd\": executable file not found in $PATH: unknown\nError: failed to start containers: t1",
                "command_not_found",
            ),
            // `docker wait` when the daemon's socket goes away under it (tests/suites/faultmatrix.rs, measured).
            ("unexpected EOF", "daemon_unavailable"),
            (
                "error waiting for container: read unix @->/var/run/docker.sock: read: connection reset by peer",
                "daemon_unavailable",
            ),
            // Several lines merely mentioning EOF are no lost connection.
            (
                "Step 3/4 : RUN tar -x\ntar: unexpected EOF\nThe command returned a non-zero code: 1",
                "nonzero_exit",
            ),
        ];
        for (stderr, category) in cases {
            let error = backend.classify(&args, "c", &output(1, stderr));
            assert_eq!(error.category().as_str(), category, "{stderr}");
        }
        assert!(matches!(
            backend.classify(
                &args,
                "c",
                &output(1, "Error response from daemon: No such container: c")
            ),
            BackendError::NoSuchContainer { .. }
        ));
    }

    #[test]
    fn an_unreachable_ssh_host_is_reported_with_what_ssh_said_not_the_builder_banner() {
        // `docker build` against DOCKER_HOST=ssh://root@127.0.0.1:1 (docker CLI 28), measured.
        let stderr = "DEPRECATED: The legacy builder is deprecated and will be removed in a future release.\n            Install the buildx component to build images with BuildKit:\n            https://docs.docker.com/go/buildx/\n\nerror during connect: Post \"http://docker.example.com/v1.50/build\": command [ssh -o ConnectTimeout=30 -T -l root -p 1 -- 127.0.0.1 docker system dial-stdio] has exited with exit status 255, make sure the URL is valid, and Docker 18.09 or later is installed on the remote host: stderr=ssh: connect to host 127.0.0.1 port 1: Connection refused\n";
        let message = daemon_message(stderr);
        assert!(
            message.starts_with("error during connect:") && message.ends_with("Connection refused"),
            "{message}"
        );
        assert_eq!(
            daemon_message("DEPRECATED: The legacy builder is deprecated\nsomething else\n"),
            "something else"
        );
        // A changed host key: ssh's banner runs over many lines, its verdict is the last.
        let stderr = "error during connect: Get \"http://docker.example.com/v1.50/version\": command [ssh -T -- h docker system dial-stdio] has exited with exit status 255, make sure the URL is valid, and Docker 18.09 or later is installed on the remote host: stderr=@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n@@@@@@@@\nHost key for [127.0.0.1]:2222 has changed and you have requested strict checking.\nHost key verification failed.\n";
        let message = daemon_message(stderr);
        assert!(
            message.starts_with("error during connect:")
                && message.ends_with("stderr=@@@@@@@@ … Host key verification failed."),
            "{message}"
        );
    }

    #[test]
    fn daemon_timings_come_from_the_inspects_timestamps() {
        let created = Some("2026-12-02T11:20:10.100000000Z");
        let started = Some("2026-12-02T11:20:10.350000000Z");
        assert_eq!(
            daemon_timings(created, started, Some("2026-12-02T11:20:11.350000000Z")),
            Some((250, Some(1000)))
        );
        // Still running: Docker's zero time as FinishedAt.
        assert_eq!(
            daemon_timings(created, started, Some("0001-01-01T00:00:00Z")),
            Some((250, None))
        );
        // Never started.
        assert_eq!(
            daemon_timings(created, Some("0001-01-01T00:00:00Z"), None),
            None
        );
        assert_eq!(daemon_timings(None, started, None), None);
    }

    #[test]
    fn a_cleared_entrypoint_privileges_and_capabilities_are_flags() {
        let spec = ContainerSpec {
            name: "c".into(),
            image: "img".into(),
            cmd: Some(vec!["echo".into(), "hi".into()]),
            entrypoint: Some(Vec::new()),
            privileged: true,
            cap_add: vec!["NET_ADMIN".into()],
            ..Default::default()
        };
        let args = create_args(&spec, &[]);
        let joined = args.join(" ");
        assert!(
            joined.contains("--entrypoint  --privileged --cap-add NET_ADMIN img echo hi"),
            "{joined}"
        );
    }
}
