//! Backends translate "run this container" into Docker operations. A backend
//! never asserts anything: it reports what happened, or a typed error.

pub mod api;
pub mod capture;
pub mod cli;
pub mod context;
pub mod daemon;
pub mod exits;
pub mod fakeserver;
pub mod fakestate;
pub mod ledger;
pub mod ssh;
pub mod stats;
pub mod sweep;
pub mod watch;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;

use crate::category::Category;

/// The image label holding the digest of the build context a fixture image was built
/// from (`crate::fixtures`); containers carry it as their image's label.
pub const FIXTURE_DIGEST_LABEL: &str = "dockproof.fixture-digest";

pub use capture::{Capture, Captured, LogCapture};
pub use stats::StatsSample;
pub use watch::{DEFAULT_DAEMON_TIMEOUT, DaemonWatch};

/// A mount into a container: a host directory or a named volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: MountSource,
    pub container: String,
    pub read_only: bool,
}

/// What a mount puts at its container path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSource {
    /// A host directory as `--volume` binds it: a source the daemon cannot see is created
    /// there, empty and root-owned (what CST's `bindMounts` and compose expect).
    Bind(PathBuf),
    /// A host directory as `--mount type=bind` binds it: a source the daemon cannot see
    /// is refused at create (`bind source path does not exist`) and nothing is created.
    /// The job workspace uses it, so a daemon on another machine fails loudly.
    BindExisting(PathBuf),
    /// A named volume on the daemon (the `copy` workspace transport).
    Volume(String),
}

impl Mount {
    /// The `--mount` value for a `BindExisting` or `Volume` mount, `None` for a `Bind`.
    pub fn mount_flag(&self) -> Option<String> {
        let (kind, source) = match &self.source {
            MountSource::Bind(_) => return None,
            MountSource::BindExisting(path) => ("bind", path.display().to_string()),
            MountSource::Volume(name) => ("volume", name.clone()),
        };
        let read_only = if self.read_only { ",readonly" } else { "" };
        Some(format!(
            "type={kind},source={source},target={}{read_only}",
            self.container
        ))
    }
}

/// A published port: `host_ip:host_port` on the host → `container_port` (TCP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedPort {
    /// Host address to bind (default: all addresses).
    pub host_ip: Option<String>,
    /// Host port; 0 lets the daemon pick a free one.
    pub host_port: u16,
    pub container_port: u16,
}

/// A container healthcheck (`docker run --health-*`).
#[derive(Debug, Clone, PartialEq)]
pub struct Healthcheck {
    /// The check command, as argv.
    pub cmd: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
}

/// Everything needed to create a container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    /// `None` keeps the image's CMD.
    pub cmd: Option<Vec<String>>,
    pub env: Vec<(String, String)>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub mounts: Vec<Mount>,
    pub labels: BTreeMap<String, String>,
    pub memory_bytes: Option<u64>,
    pub cpus: Option<f64>,
    pub pids_limit: Option<i64>,
    pub read_only_rootfs: bool,
    pub no_new_privileges: bool,
    pub network: Option<String>,
    pub ports: Vec<PublishedPort>,
    /// Overrides the image's HEALTHCHECK.
    pub healthcheck: Option<Healthcheck>,
    /// `Some` replaces the image's ENTRYPOINT (`Some(vec![])` clears it, like `--entrypoint ""`).
    pub entrypoint: Option<Vec<String>>,
    /// `--privileged`.
    pub privileged: bool,
    /// Capabilities added to the default set (`--cap-add`).
    pub cap_add: Vec<String>,
    /// Linux capabilities to drop.
    pub cap_drop: Vec<String>,
    /// tmpfs mounts: `PATH` or `PATH:OPTIONS`.
    pub tmpfs: Vec<String>,
    /// PID namespace (`--pid`), e.g. `host`.
    pub pid_mode: Option<String>,
    /// The OCI runtime (`--runtime`, `HostConfig.Runtime`); `None` is the daemon's default.
    pub runtime: Option<String>,
}

impl ContainerSpec {
    /// Whether it asks for any limit, security option or user the daemon could silently ignore.
    pub fn asks_for_enforcement(&self) -> bool {
        self.memory_bytes.is_some()
            || self.cpus.is_some()
            || self.pids_limit.is_some()
            || self.read_only_rootfs
            || self.no_new_privileges
            || self.network.is_some()
            || self.user.is_some()
            || !self.cap_drop.is_empty()
            || !self.tmpfs.is_empty()
            || self.entrypoint.is_some()
    }
}

/// A command to run in a running container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecRequest {
    pub container: String,
    pub cmd: Vec<String>,
    pub env: Vec<(String, String)>,
    pub workdir: Option<String>,
    pub user: Option<String>,
}

/// What an exec produced.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    pub exit_code: i64,
    pub stdout: Captured,
    pub stderr: Captured,
}

/// A container's logs, split by stream.
#[derive(Debug, Clone)]
pub struct Logs {
    pub stdout: Captured,
    pub stderr: Captured,
}

/// The parts of a container's state dockproof reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerState {
    pub status: String,
    pub running: bool,
    pub exit_code: i64,
    pub oom_killed: bool,
    /// The daemon's error for a container that failed to start.
    pub error: String,
    /// Milliseconds from create to started and (once it ended) from started to finished,
    /// by the daemon's own timestamps (`Created`, `State.StartedAt`, `State.FinishedAt`),
    /// when the backend read them and they are real (the fake's are fixed).
    pub daemon_timings: Option<(u64, Option<u64>)>,
}

/// What [`Backend::start_attached`] saw: the exit code and the logs.
#[derive(Debug, Clone)]
pub struct Attached {
    pub exit_code: i64,
    pub logs: Logs,
    /// When the start was confirmed, if the backend saw that apart from the exit.
    pub started_at: Option<std::time::Instant>,
    /// The stopped container's state, when the backend read it already.
    pub state: Option<ContainerState>,
}

/// Why [`Backend::start_attached`] failed.
#[derive(Debug)]
pub enum AttachError {
    /// The container did not start.
    Start(BackendError),
    /// It started; waiting for it or reading its logs failed.
    Run(BackendError),
}

/// Why a backend operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("cannot reach the Docker daemon: {message}")]
    DaemonUnavailable { message: String },
    #[error("image `{image}` not found: {message}")]
    ImageNotFound { image: String, message: String },
    #[error("the command is not in the image: {message}")]
    CommandNotFound { message: String },
    /// fake-docker refused a command its image definition does not model (the real
    /// image may well have it): the scenario is skipped on the fake with this reason.
    #[error("{reason}")]
    NotModelled { reason: String },
    #[error("no such container `{container}`")]
    NoSuchContainer { container: String },
    #[error("container `{container}` is not running")]
    NotRunning { container: String },
    #[error("building image `{image}` failed: {message}")]
    BuildFailed { image: String, message: String },
    #[error("`{command}` failed with exit code {code}: {stderr}")]
    Command {
        command: String,
        code: i32,
        stderr: String,
    },
    #[error("failed to run `{program}`: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("`{command}` did not finish within {timeout:?}")]
    Timeout { command: String, timeout: Duration },
    #[error("a host port is already in use: {message}")]
    PortConflict { message: String },
    #[error("the Engine API refused to {operation} (HTTP {status}): {message}")]
    Api {
        operation: &'static str,
        status: u16,
        message: String,
    },
    #[error("the `{backend}` backend cannot {operation} yet")]
    Unsupported {
        backend: String,
        operation: &'static str,
    },
    /// The backend refused its own configuration (e.g. an invalid fault specification).
    #[error("invalid backend configuration: {message}")]
    Config { message: String },
    #[error("cannot write the log file {message}")]
    LogFile { message: String },
}

impl BackendError {
    /// The failure category this error is reported under.
    pub fn category(&self) -> Category {
        match self {
            BackendError::DaemonUnavailable { .. } | BackendError::Spawn { .. } => {
                Category::DaemonUnavailable
            }
            BackendError::ImageNotFound { .. } => Category::ImageNotFound,
            // Only a scenario expecting command_not_found gets this as its verdict;
            // any other is skipped on the fake with the reason (see `unmodelled_reason`).
            BackendError::CommandNotFound { .. } | BackendError::NotModelled { .. } => {
                Category::CommandNotFound
            }
            BackendError::BuildFailed { .. } => Category::BuildFailed,
            BackendError::Timeout { .. } => Category::Timeout,
            BackendError::PortConflict { .. } => Category::PortConflict,
            BackendError::Unsupported { .. }
            | BackendError::Config { .. }
            | BackendError::LogFile { .. } => Category::ConfigInvalid,
            BackendError::NoSuchContainer { .. }
            | BackendError::NotRunning { .. }
            | BackendError::Command { .. }
            | BackendError::Api { .. } => Category::NonzeroExit,
        }
    }
}

/// What a daemon's error message says, read the same way whether it came as the CLI's
/// stderr or as an Engine API answer (both carry the daemon's words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Complaint {
    ImageNotFound,
    CommandNotFound,
    NoSuchContainer,
    NotRunning,
    PortConflict,
}

impl Complaint {
    /// The complaint in `lower` (a lowercased message), if it is one of these.
    pub(crate) fn of(lower: &str) -> Option<Complaint> {
        if lower.contains("no such image")
            || lower.contains("unable to find image")
            || lower.contains("pull access denied")
        {
            Some(Complaint::ImageNotFound)
        } else if is_command_not_found(lower) {
            Some(Complaint::CommandNotFound)
        } else if lower.contains("no such container") || lower.contains("no such object") {
            Some(Complaint::NoSuchContainer)
        } else if lower.contains("is not running") {
            Some(Complaint::NotRunning)
        } else if lower.contains("port is already allocated")
            || lower.contains("address already in use")
        {
            Some(Complaint::PortConflict)
        } else {
            None
        }
    }
}

/// fake-docker's refusal of a command its image definition does not model, in a
/// message: `fake image IMAGE has no program `NAME`: run it on a real daemon, or
/// record it — see …` (up to the end of that line).
pub fn unmodelled_reason(message: &str) -> Option<&str> {
    let start = message.find("fake image ")?;
    let reason = &message[start..];
    let reason = reason.lines().next().unwrap_or(reason);
    let reason = reason.split("; ").next().unwrap_or(reason).trim_end();
    (reason.contains(" has no program `") && reason.contains("run it on a real daemon"))
        .then_some(reason)
}

/// The OCI runtime's "cannot execute" messages, in a lowercased message (a failed start,
/// or an exec's output).
pub(crate) fn is_command_not_found(lower: &str) -> bool {
    (lower.contains("oci runtime") || lower.contains("exec:"))
        && (lower.contains("executable file not found")
            || lower.contains("no such file or directory"))
}

/// Per-scenario changes to how a backend reaches Docker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScenarioOverrides {
    /// Fault rules for fake-docker (`FAKE_DOCKER_FAULTS`): only the fake honours them.
    pub fake_faults: Option<String>,
    /// Another daemon address (`DOCKER_HOST` syntax).
    pub docker_host: Option<String>,
    /// Keeps this scenario's fault call counters apart from other scenarios' (its name).
    pub scope: String,
    /// The scenario's recording directory, replayed by fake-docker (`FAKE_DOCKER_RECORDINGS`);
    /// real backends ignore it.
    pub recordings: Option<std::path::PathBuf>,
}

impl ScenarioOverrides {
    /// Whether nothing is overridden.
    pub fn is_empty(&self) -> bool {
        self.fake_faults.is_none() && self.docker_host.is_none() && self.recordings.is_none()
    }
}

/// What a scenario needs that a backend cannot give it: the scenario is skipped with this reason.
pub fn fake_only_reason(backend: &str) -> String {
    format!(
        "needs the fake backend (`fake_faults` injects faults only fake-docker can produce); `{backend}` skips it"
    )
}

/// Daemon objects besides containers that dockproof lists by label and removes
/// (a compose project's networks and volumes, images built for a run). Declared in the
/// order they can be removed ([`ResourceKind::ALL`]), which their `Ord` follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ResourceKind {
    Network,
    Volume,
    /// An image built for one run (build steps, compose `build:`, CST commits), labelled
    /// with it; never a fixture image, which carries no run label and is shared by runs.
    Image,
}

impl ResourceKind {
    /// Every kind, in the order they can be removed once the containers are gone.
    pub const ALL: [ResourceKind; 3] = [
        ResourceKind::Network,
        ResourceKind::Volume,
        ResourceKind::Image,
    ];

    /// The docker CLI's word for it (`docker network`, `docker volume`, `docker image`).
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Network => "network",
            ResourceKind::Volume => "volume",
            ResourceKind::Image => "image",
        }
    }
}

/// Why a scenario needing a real daemon is skipped on the fake.
pub fn real_daemon_only_reason(backend: &str) -> String {
    format!(
        "needs a real Docker daemon (`requires: [real_daemon]` or `[compose]`; fake-docker runs no compose); `{backend}` skips it"
    )
}

/// An image build.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuildRequest {
    /// The context directory (holding everything the Dockerfile copies).
    pub context: PathBuf,
    /// The Dockerfile, relative to the context (default `Dockerfile`).
    pub dockerfile: Option<String>,
    pub tag: String,
    pub args: Vec<(String, String)>,
    pub target: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// Limits on how much output is kept in memory.
#[derive(Debug, Clone, Copy)]
pub struct CaptureLimits {
    /// Bytes of each stream kept (the tail is kept when a stream is longer).
    pub max_bytes: usize,
}

impl Default for CaptureLimits {
    fn default() -> Self {
        CaptureLimits { max_bytes: 8 << 20 }
    }
}

/// Where a container's whole log goes, stream by stream, besides the tail kept in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFiles {
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    /// The scenario's secrets, masked in the files as they are written.
    pub masker: crate::secrets::Masker,
}

impl From<crate::process::ProcessError> for BackendError {
    fn from(error: crate::process::ProcessError) -> Self {
        use crate::process::ProcessError;
        match error {
            ProcessError::Spawn { program, source } | ProcessError::Wait { program, source } => {
                BackendError::Spawn { program, source }
            }
            ProcessError::Timeout { command, timeout } => {
                BackendError::Timeout { command, timeout }
            }
        }
    }
}

impl LogFiles {
    /// Two captures bounded by `limits`, writing to these files (masked, on blocking
    /// threads: a log may be gigabytes). Needs a tokio runtime.
    pub fn captures(
        files: Option<&LogFiles>,
        limits: CaptureLimits,
    ) -> Result<(LogCapture, LogCapture), BackendError> {
        let Some(files) = files else {
            return Ok((
                LogCapture::new(limits.max_bytes),
                LogCapture::new(limits.max_bytes),
            ));
        };
        let open = |path: &std::path::Path| {
            LogCapture::with_file(limits.max_bytes, path, &files.masker).map_err(|error| {
                BackendError::LogFile {
                    message: format!("{}: {error}", path.display()),
                }
            })
        };
        Ok((open(&files.stdout)?, open(&files.stderr)?))
    }
}

impl Logs {
    /// The logs of two finished captures (their files complete on disk); a log file that
    /// could not be written is an error.
    pub async fn finish(stdout: LogCapture, stderr: LogCapture) -> Result<Logs, BackendError> {
        let (stdout, stderr) = tokio::join!(stdout.finish(), stderr.finish());
        let logs = Logs { stdout, stderr };
        for captured in [&logs.stdout, &logs.stderr] {
            if let Some(message) = &captured.file_error {
                return Err(BackendError::LogFile {
                    message: message.clone(),
                });
            }
        }
        Ok(logs)
    }
}

/// The Docker operations dockproof needs. Implementations translate them to
/// a docker-compatible CLI (real or fake) or to the Engine API.
#[async_trait]
pub trait Backend: Send + Sync {
    /// A short name for reports (`fake`, `docker-cli`, `docker-api`).
    fn name(&self) -> &str;
    /// What this backend has asked its daemon to make ([`ledger::Ledger`]), which a sweep
    /// of the run's label needs list no more than; `None`: not kept, list everything.
    fn ledger(&self) -> Option<&ledger::Ledger> {
        None
    }
    /// Whether [`Backend::digest_at_create`] can answer (it watches the daemon's events).
    async fn sees_create_labels(&self) -> bool {
        false
    }
    /// The [`FIXTURE_DIGEST_LABEL`] the daemon's `create` event of `container` carried
    /// (its labels: its image's merged with its own), waiting a moment for the event:
    /// `Some(None)` when the event had none; `None` when the event did not come (or
    /// this backend does not watch events): ask the daemon about the image instead.
    async fn digest_at_create(&self, _container: &str) -> Option<Option<String>> {
        None
    }
    /// The daemon's version, or why it cannot be reached.
    async fn ping(&self) -> Result<String, BackendError>;
    /// Whether the image exists locally.
    async fn image_exists(&self, image: &str) -> Result<bool, BackendError>;
    /// Build `tag` from a context directory holding a Dockerfile.
    async fn build_image(&self, context: &std::path::Path, tag: &str) -> Result<(), BackendError>;
    /// Create a container; returns its ID.
    async fn create(&self, spec: &ContainerSpec) -> Result<String, BackendError>;
    async fn start(&self, container: &str) -> Result<(), BackendError>;
    /// Wait for the container to exit; returns its exit code.
    async fn wait(&self, container: &str) -> Result<i64, BackendError>;
    /// SIGTERM, then SIGKILL after `grace`.
    async fn stop(&self, container: &str, grace: Duration) -> Result<(), BackendError>;
    async fn kill(&self, container: &str) -> Result<(), BackendError>;
    /// The container's logs: the tail of each stream in memory (bounded by
    /// `limits`) and, with `files`, every byte streamed to those files.
    async fn logs(
        &self,
        container: &str,
        limits: CaptureLimits,
        files: Option<&LogFiles>,
    ) -> Result<Logs, BackendError>;
    async fn inspect(&self, container: &str) -> Result<ContainerState, BackendError>;
    /// Whether [`Backend::start_attached`] is cheaper than `start`, `wait`, `inspect` and
    /// `logs` apart (the docker CLI: one `docker start --attach` and one inspect); the
    /// engine then uses it for attached runs, the state it returns included.
    fn attaches(&self) -> bool {
        false
    }
    /// Start a created container and wait for its exit, its logs read as it runs or
    /// after (the tail bounded by `limits`, every byte to `files`). A refused start is
    /// [`AttachError::Start`]. By default `start`, `wait` and `logs`, one after the other.
    async fn start_attached(
        &self,
        container: &str,
        limits: CaptureLimits,
        files: Option<&LogFiles>,
    ) -> Result<Attached, AttachError> {
        self.start(container).await.map_err(AttachError::Start)?;
        let started_at = std::time::Instant::now();
        let exit_code = self.wait(container).await.map_err(AttachError::Run)?;
        let logs = self
            .logs(container, limits, files)
            .await
            .map_err(AttachError::Run)?;
        Ok(Attached {
            exit_code,
            logs,
            started_at: Some(started_at),
            state: None,
        })
    }
    /// Run a command in a running container, killing the exec after `timeout`.
    async fn exec(
        &self,
        request: &ExecRequest,
        timeout: Duration,
        limits: CaptureLimits,
    ) -> Result<ExecOutput, BackendError>;
    /// Remove a container, running or not.
    async fn remove(&self, container: &str) -> Result<(), BackendError>;
    /// IDs of all containers carrying `label` (`key=value`).
    async fn list_labelled(&self, label: &str) -> Result<Vec<String>, BackendError>;
    /// Build an image; a failed build is `BuildFailed` with the build log's tail.
    async fn build(&self, request: &BuildRequest) -> Result<(), BackendError> {
        let _ = request;
        Err(BackendError::Unsupported {
            backend: self.name().to_owned(),
            operation: "build images with options",
        })
    }
    /// The image's inspect document, shaped like Docker's (Size, Config, ...).
    async fn image_inspect_json(&self, image: &str) -> Result<serde_json::Value, BackendError> {
        let _ = image;
        Err(BackendError::Unsupported {
            backend: self.name().to_owned(),
            operation: "inspect images as JSON",
        })
    }
    /// Remove an image (gone already is fine), never its untagged parents: with the
    /// classic builder those are the build cache, and another run building the same
    /// context at the same time stands on them (pruning them failed its build with
    /// "failed to get digest ... no such file or directory" in CI). Images a run builds
    /// end in a `LABEL dockproof.run=ID` step, so the parents carry no run label and the
    /// run's own image is all that is its.
    async fn remove_image(&self, image: &str) -> Result<(), BackendError> {
        let _ = image;
        Err(BackendError::Unsupported {
            backend: self.name().to_owned(),
            operation: "remove images",
        })
    }
    /// Pull `image` from its registry (`docker pull [--platform P] IMAGE`).
    async fn pull_image(&self, image: &str, platform: Option<&str>) -> Result<(), BackendError> {
        let _ = (image, platform);
        Err(BackendError::Unsupported {
            backend: self.name().to_owned(),
            operation: "pull images",
        })
    }
    /// A tar archive of `path` in the container (created or running), as `docker cp CONTAINER:PATH -` writes it.
    async fn copy_from(&self, container: &str, path: &str) -> Result<Vec<u8>, BackendError> {
        let _ = (container, path);
        Err(BackendError::Unsupported {
            backend: self.name().to_owned(),
            operation: "copy files out of containers",
        })
    }
    /// Stream a tar archive of `path` in the container into `sink`, chunk by chunk, as
    /// `docker cp CONTAINER:PATH -` writes it. When the receiving end is dropped (the
    /// reader refused an entry), the copy stops and this returns `Ok`: the reader decided.
    async fn copy_from_stream(
        &self,
        container: &str,
        path: &str,
        sink: tokio::sync::mpsc::Sender<bytes::Bytes>,
    ) -> Result<(), BackendError> {
        let bytes = self.copy_from(container, path).await?;
        let _ = sink.send(bytes.into()).await;
        Ok(())
    }
    /// Extract the tar archive in the file `archive` into `path` in the container (created
    /// or running), as `docker cp - CONTAINER:PATH` does; `path` must be a directory.
    async fn copy_to(
        &self,
        container: &str,
        path: &str,
        archive: &std::path::Path,
    ) -> Result<(), BackendError> {
        let _ = (container, path, archive);
        Err(BackendError::Unsupported {
            backend: self.name().to_owned(),
            operation: "copy files into containers",
        })
    }
    /// Create a named volume carrying `labels` (there already is fine).
    async fn create_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), BackendError> {
        let _ = (name, labels);
        Err(BackendError::Unsupported {
            backend: self.name().to_owned(),
            operation: "create volumes",
        })
    }
    /// Write the image as `docker save` does (manifest.json, config, layer tars) to the file `destination`.
    async fn save_image(
        &self,
        image: &str,
        destination: &std::path::Path,
    ) -> Result<(), BackendError> {
        let _ = (image, destination);
        Err(BackendError::Unsupported {
            backend: self.name().to_owned(),
            operation: "save images",
        })
    }
    /// Load a `docker save` archive (the file `archive`) into the daemon, as `docker load` does.
    async fn load_image(&self, archive: &std::path::Path) -> Result<(), BackendError> {
        let _ = archive;
        Err(BackendError::Unsupported {
            backend: self.name().to_owned(),
            operation: "load images",
        })
    }
    /// Commit a container's filesystem and configuration as a new untagged image; returns its ID.
    async fn commit(&self, container: &str) -> Result<String, BackendError> {
        let _ = container;
        Err(BackendError::Unsupported {
            backend: self.name().to_owned(),
            operation: "commit containers",
        })
    }
    /// This backend with a scenario's overrides applied; `Err(reason)` when it cannot honour
    /// them, and the scenario is reported skipped with that reason.
    fn with_overrides(
        &self,
        overrides: &ScenarioOverrides,
    ) -> Result<std::sync::Arc<dyn Backend>, String> {
        let _ = overrides;
        Err(format!(
            "the `{}` backend cannot apply per-scenario settings (`fake_faults`, `docker_host`)",
            self.name()
        ))
    }
    /// Feed `sink` a sample of the container's resource usage each time the daemon has one
    /// (about once a second), until the container stops or the caller drops the future.
    /// Frames of a container that is not running are not passed on.
    async fn stats(
        &self,
        container: &str,
        sink: &mut (dyn FnMut(StatsSample) + Send),
    ) -> Result<(), BackendError> {
        let _ = (container, sink);
        Err(BackendError::Unsupported {
            backend: self.name().to_owned(),
            operation: "sample resource usage",
        })
    }
    /// The container's full inspect document, shaped like Docker's (State, Config, HostConfig, NetworkSettings, ...).
    async fn inspect_json(&self, container: &str) -> Result<serde_json::Value, BackendError> {
        let _ = container;
        Err(BackendError::Unsupported {
            backend: self.name().to_owned(),
            operation: "inspect containers as JSON",
        })
    }
    /// Names (images: IDs, each once) of the networks, volumes or images carrying `label` (`key=value` or `key`).
    async fn list_labelled_resources(
        &self,
        kind: ResourceKind,
        label: &str,
    ) -> Result<Vec<String>, BackendError> {
        let _ = (kind, label);
        Err(BackendError::Unsupported {
            backend: self.name().to_owned(),
            operation: "list networks and volumes",
        })
    }
    /// Remove a network, volume or image (gone already is fine; an image even if tagged twice).
    async fn remove_resource(&self, kind: ResourceKind, name: &str) -> Result<(), BackendError> {
        let _ = (kind, name);
        Err(BackendError::Unsupported {
            backend: self.name().to_owned(),
            operation: "remove networks and volumes",
        })
    }
    /// The environment another docker client (docker compose) needs to reach this backend's
    /// daemon (`DOCKER_HOST`, TLS variables, `DOCKER_CONTEXT`); `Err(reason)` when there is no
    /// real daemon to reach, and a scenario that needs one is skipped with the reason.
    fn daemon_env(&self) -> Result<Vec<(std::ffi::OsString, std::ffi::OsString)>, String> {
        Err(real_daemon_only_reason(self.name()))
    }
    /// Which machine the daemon runs on, by its address (this one unless told otherwise).
    fn daemon_host(&self) -> daemon::DaemonHost {
        daemon::DaemonHost::Local
    }
    /// The unix socket the daemon is reached at, when it is one (`None`: tcp, ssh, the
    /// fake, or not known): what the workspace transport asks the kernel about (see
    /// [`crate::transport::TransportPolicy::decide`]).
    fn daemon_socket(&self) -> Option<std::path::PathBuf> {
        None
    }
    /// Where to connect, from this machine, for the port the daemon published as
    /// `binding:port` (inspect's `HostIp` and `HostPort`): on the daemon's host, through an
    /// ssh forward when the daemon is behind ssh.
    async fn reach_port(&self, binding: &str, port: u16) -> Result<daemon::Reach, BackendError> {
        Ok(daemon::PortReach::new(daemon::DaemonHost::Local)
            .reach(binding, port, None)
            .await
            .map_err(daemon::ReachError::into_backend)?)
    }
}
