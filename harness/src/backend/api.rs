//! The Engine API backend: talks to the daemon over its HTTP API with bollard
//! (no `docker` binary needed), a timeout per call and bounded output, and
//! translates the daemon's answers into the same typed errors, with the same
//! categories, as the CLI backend does for the same situation.
//!
//! The daemon is found like the docker CLI finds it: `DOCKER_HOST` (unix or
//! tcp; TLS with `DOCKER_TLS_VERIFY`/`DOCKER_CERT_PATH`; ssh through
//! [`super::ssh::Tunnel`]), else the local socket. The API version is negotiated
//! on first use, so older daemons work.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::errors::Error as ApiError;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, ExecConfig, HealthConfig, HostConfig, PortBinding};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, KillContainerOptionsBuilder,
    ListContainersOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptionsBuilder, StatsOptionsBuilder, StopContainerOptionsBuilder,
};
use futures::StreamExt;
use tokio::sync::OnceCell;

use super::{
    Backend, BackendError, BuildRequest, Capture, CaptureLimits, Complaint, ContainerSpec,
    ContainerState, DaemonWatch, ExecOutput, ExecRequest, LogFiles, Logs, ResourceKind,
    StatsSample, is_command_not_found,
};

/// How long a control call (create, start, inspect, ...) may take.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(120);
/// How long an image build may take (context upload included).
const BUILD_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a workspace copy into or out of a container may take.
const COPY_TIMEOUT: Duration = Duration::from_secs(600);
/// Build log kept for a failure message.
const BUILD_LOG: CaptureLimits = CaptureLimits { max_bytes: 1 << 20 };

/// A Docker daemon reached through its Engine API.
#[derive(Debug)]
pub struct ApiBackend {
    name: String,
    /// `DOCKER_HOST`-style address; `None` reads the environment.
    host: Option<String>,
    /// A directory with `ca.pem`, `cert.pem`, `key.pem` for mutual TLS (a context's).
    tls: Option<std::path::PathBuf>,
    /// Connected and version-negotiated on first use (negotiation needs the runtime).
    client: OnceCell<Connection>,
    /// Bounds every call on a daemon that stops answering (see [`super::watch`]).
    watch: Arc<DaemonWatch>,
    /// Where the daemon's published ports are reached (over ssh: through the tunnel's connection).
    ports: std::sync::Arc<super::daemon::PortReach>,
    /// What this backend asked its daemon to make (shared with its overridden copies).
    ledger: Arc<super::ledger::Ledger>,
}

/// A negotiated client, and for an `ssh://` host the tunnel it talks through.
#[derive(Debug)]
struct Connection {
    docker: Docker,
    /// Kept as long as the client: dropping it ends the ssh sessions.
    tunnel: Option<super::ssh::Tunnel>,
}

impl ApiBackend {
    /// A backend named `name` for the daemon the environment points at (`DOCKER_HOST`, TLS variables).
    pub fn from_env(name: impl Into<String>) -> Self {
        let address = std::env::var("DOCKER_HOST").unwrap_or_default();
        ApiBackend {
            name: name.into(),
            host: None,
            tls: None,
            client: OnceCell::new(),
            watch: Arc::new(DaemonWatch::default()),
            ports: reach_for(&address),
            ledger: Arc::default(),
        }
    }

    /// A backend named `name` for a docker context's endpoint (its own TLS material, if any).
    pub fn for_endpoint(name: impl Into<String>, endpoint: super::context::Endpoint) -> Self {
        ApiBackend {
            name: name.into(),
            ports: reach_for(&endpoint.host),
            host: Some(endpoint.host),
            tls: endpoint.tls,
            client: OnceCell::new(),
            watch: Arc::new(DaemonWatch::default()),
            ledger: Arc::default(),
        }
    }

    /// A backend named `name` for the daemon at `host` (`unix:///...`, `tcp://...`; TLS still from the environment).
    pub fn for_host(name: impl Into<String>, host: impl Into<String>) -> Self {
        let host = host.into();
        ApiBackend {
            name: name.into(),
            ports: reach_for(&host),
            host: Some(host),
            tls: None,
            client: OnceCell::new(),
            watch: Arc::new(DaemonWatch::default()),
            ledger: Arc::default(),
        }
    }

    /// The same backend giving the daemon `timeout` to answer any call before it is
    /// `daemon_unavailable` (default [`super::DEFAULT_DAEMON_TIMEOUT`]).
    pub fn with_daemon_timeout(mut self, timeout: Duration) -> Self {
        self.watch = Arc::new(DaemonWatch::new(timeout));
        self
    }

    /// Run one API call within `limit`, under the daemon watch; its error becomes a
    /// `BackendError` about `subject`.
    async fn call<T>(
        &self,
        operation: &'static str,
        subject: &str,
        limit: Duration,
        call: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<T, BackendError> {
        self.watched(bounded(operation, subject, limit, call)).await
    }

    /// Run `call` under the daemon watch, probing with `/_ping`.
    async fn watched<T>(
        &self,
        call: impl Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        self.watch.guard(call, || self.probe()).await
    }

    /// Ask the daemon something it answers at once; anything but "unreachable" is an answer.
    async fn probe(&self) -> Result<(), BackendError> {
        let Some(connection) = self.client.get() else {
            // Still connecting: that is bounded on its own (see `docker`).
            return Ok(());
        };
        match connection.docker.ping().await {
            Ok(_) => Ok(()),
            Err(error) => match classify(&error, "ping the daemon", "daemon") {
                unavailable @ BackendError::DaemonUnavailable { .. } => Err(unavailable),
                _ => Ok(()),
            },
        }
    }

    async fn docker(&self) -> Result<&Docker, BackendError> {
        if let Some(connection) = self.client.get() {
            return Ok(&connection.docker);
        }
        if let Some(error) = self.watch.gone() {
            return Err(error);
        }
        // Connecting (and over ssh, authenticating) and negotiating the version are
        // answered at once by a daemon: the daemon timeout bounds them as a whole.
        let connect = self.client.get_or_try_init(|| async {
            // An explicit host, else DOCKER_HOST as the docker CLI reads it.
            let host = self.host.clone().or_else(|| {
                std::env::var("DOCKER_HOST")
                    .ok()
                    .filter(|host| !host.is_empty())
            });
            if let Some(host) = host.filter(|host| host.starts_with("ssh://")) {
                return Self::connect_over_ssh(&host).await;
            }
            let docker = match (&self.host, &self.tls) {
                (Some(host), Some(tls)) => Docker::connect_with_ssl(
                    host,
                    &tls.join("key.pem"),
                    &tls.join("cert.pem"),
                    &tls.join("ca.pem"),
                    CONTROL_TIMEOUT.as_secs(),
                    bollard::API_DEFAULT_VERSION,
                ),
                (Some(host), None) => Docker::connect_with_host(host),
                (None, _) => Docker::connect_with_defaults(),
            }
            .map_err(|error| daemon_unavailable(&error))?;
            Ok(Connection {
                docker: negotiate(docker).await?,
                tunnel: None,
            })
        });
        let connection = match tokio::time::timeout(self.watch.timeout(), connect).await {
            Ok(result) => result.map_err(|error| self.watch.noted_error(error))?,
            Err(_) => return Err(self.watch.no_answer("the version negotiation")),
        };
        Ok(&connection.docker)
    }

    /// The daemon of an `ssh://` host, through a tunnel (authenticated here, so a refusal
    /// is reported with what ssh said); TLS settings do not apply, as with the docker CLI.
    async fn connect_over_ssh(host: &str) -> Result<Connection, BackendError> {
        let unavailable = |error: super::ssh::SshError| BackendError::DaemonUnavailable {
            message: error.to_string(),
        };
        let target = super::ssh::SshTarget::parse(host).map_err(unavailable)?;
        let tunnel = super::ssh::Tunnel::open(target)
            .await
            .map_err(unavailable)?;
        let socket = tunnel.socket().display().to_string();
        let docker = Docker::connect_with_unix(
            &socket,
            CONTROL_TIMEOUT.as_secs(),
            bollard::API_DEFAULT_VERSION,
        )
        .map_err(|error| daemon_unavailable(&error))?;
        let docker = match negotiate(docker).await {
            Ok(docker) => docker,
            Err(error) => return Err(tunnel.explain(error).await),
        };
        Ok(Connection {
            docker,
            tunnel: Some(tunnel),
        })
    }

    /// `error`, explained by what ssh said when the daemon is reached over ssh.
    async fn explain(&self, error: BackendError) -> BackendError {
        match self
            .client
            .get()
            .and_then(|connection| connection.tunnel.as_ref())
        {
            Some(tunnel) => tunnel.explain(error).await,
            None => error,
        }
    }
}

/// Port reach for the daemon at `address` (`DOCKER_HOST` syntax).
fn reach_for(address: &str) -> std::sync::Arc<super::daemon::PortReach> {
    std::sync::Arc::new(super::daemon::PortReach::new(
        super::daemon::DaemonHost::from_address(address),
    ))
}

/// The client with its API version negotiated with the daemon.
async fn negotiate(docker: Docker) -> Result<Docker, BackendError> {
    // bollard's own limit is on each response's headers; ours (per call) is tighter,
    // except for builds, whose context upload counts against it.
    let docker = docker.with_timeout(BUILD_TIMEOUT);
    bounded(
        "negotiate the API version",
        "daemon",
        CONTROL_TIMEOUT,
        docker.negotiate_version(),
    )
    .await
}

/// Run one API call within `limit`; its error becomes a `BackendError` about `subject`.
async fn bounded<T>(
    operation: &'static str,
    subject: &str,
    limit: Duration,
    call: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, BackendError> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result.map_err(|error| classify(&error, operation, subject)),
        Err(_) => Err(BackendError::Timeout {
            command: format!("Engine API: {operation}"),
            timeout: limit,
        }),
    }
}

/// Whether hyper gave up on the answer because it is not HTTP (one of hyper's parse
/// errors among the error's causes: `invalid HTTP status-code parsed`, `message head is
/// too large`, ...), rather than because the connection failed.
fn is_not_http(error: &(dyn std::error::Error + 'static)) -> bool {
    let lower = with_causes(error).to_ascii_lowercase();
    lower.contains("invalid http") || lower.contains("message head is too large")
}

fn daemon_unavailable(error: &ApiError) -> BackendError {
    BackendError::DaemonUnavailable {
        message: with_causes(error),
    }
}

/// An error's message followed by each of its causes' (`a: b: c`), skipping a cause
/// whose text its parent already shows: hyper's "client error (Connect)" says nothing of
/// what failed underneath, which is where an ssh or TLS failure's own words are.
fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        let text = error.to_string();
        if !text.is_empty() && !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = error.source();
    }
    message
}

/// Translate an API error into the error the CLI backend reports for the same situation.
pub fn classify(error: &ApiError, operation: &'static str, subject: &str) -> BackendError {
    match error {
        ApiError::DockerResponseServerError {
            status_code,
            message,
        } => classify_response(*status_code, message, operation, subject),
        ApiError::DockerStreamError { error } => classify_response(500, error, operation, subject),
        ApiError::RequestTimeoutError => BackendError::Timeout {
            command: format!("Engine API: {operation}"),
            timeout: BUILD_TIMEOUT,
        },
        // An answer, but not the Engine API's: not JSON, or JSON of another shape, or no
        // API version. Nothing said about the job: the daemon is not usable.
        ApiError::JsonDataError { .. }
        | ApiError::JsonSerdeError { .. }
        | ApiError::APIVersionParseError { .. }
        | ApiError::StrParseError { .. }
        | ApiError::HttpHeaderNotFoundError(_)
        | ApiError::HttpHeaderToStrError { .. } => BackendError::DaemonUnavailable {
            message: format!("{}: {}", super::watch::NOT_ENGINE_API, with_causes(error)),
        },
        ApiError::HyperLegacyError { .. } | ApiError::HyperResponseError { .. }
            if is_not_http(error) =>
        {
            BackendError::DaemonUnavailable {
                message: format!("{}: {}", super::watch::NOT_ENGINE_API, with_causes(error)),
            }
        }
        // Transport failures: nothing (or nothing that speaks HTTP) answers at DOCKER_HOST.
        ApiError::HyperLegacyError { .. }
        | ApiError::HyperResponseError { .. }
        | ApiError::IOError { .. }
        | ApiError::SocketNotFoundError(_)
        | ApiError::UnsupportedURISchemeError { .. }
        | ApiError::InvalidURIError { .. }
        | ApiError::URLParseError { .. } => daemon_unavailable(error),
        ApiError::NoHomePathError
        | ApiError::CertPathError { .. }
        | ApiError::CertMultipleKeys { .. }
        | ApiError::CertParseError { .. }
        | ApiError::NoNativeCertsError { .. }
        | ApiError::LoadNativeCertsErrors { .. } => daemon_unavailable(error),
        other => BackendError::Api {
            operation,
            status: 0,
            message: other.to_string(),
        },
    }
}

/// The daemon's error answers, by message first (as the CLI backend reads the
/// CLI's stderr, which carries the same messages), then by status.
fn classify_response(
    status: u16,
    message: &str,
    operation: &'static str,
    subject: &str,
) -> BackendError {
    match Complaint::of(&message.to_ascii_lowercase()) {
        Some(Complaint::ImageNotFound) => BackendError::ImageNotFound {
            image: subject.to_owned(),
            message: message.trim().to_owned(),
        },
        Some(Complaint::CommandNotFound) => BackendError::CommandNotFound {
            message: first_line(message),
        },
        Some(Complaint::NoSuchContainer) => BackendError::NoSuchContainer {
            container: subject.to_owned(),
        },
        Some(Complaint::NotRunning) => BackendError::NotRunning {
            container: subject.to_owned(),
        },
        Some(Complaint::PortConflict) => BackendError::PortConflict {
            message: message.trim().to_owned(),
        },
        None => BackendError::Api {
            operation,
            status,
            message: message.trim().to_owned(),
        },
    }
}

fn first_line(text: &str) -> String {
    text.trim()
        .lines()
        .next()
        .unwrap_or_default()
        .trim_end()
        .to_owned()
}

/// The create body for `spec`: the same container `cli::create_args` asks the docker CLI for.
pub fn create_body(spec: &ContainerSpec) -> ContainerCreateBody {
    let mut binds = Vec::new();
    let mut mounts = Vec::new();
    for mount in &spec.mounts {
        let (typ, source) = match &mount.source {
            super::MountSource::Bind(host) => {
                let mode = if mount.read_only { ":ro" } else { "" };
                binds.push(format!("{}:{}{mode}", host.display(), mount.container));
                continue;
            }
            // `Mounts`, not `Binds`: a source the daemon cannot see is refused, not created.
            super::MountSource::BindExisting(host) => {
                (bollard::models::MountType::BIND, host.display().to_string())
            }
            super::MountSource::Volume(name) => (bollard::models::MountType::VOLUME, name.clone()),
        };
        mounts.push(bollard::models::Mount {
            target: Some(mount.container.clone()),
            source: Some(source),
            typ: Some(typ),
            read_only: mount.read_only.then_some(true),
            ..Default::default()
        });
    }
    let mut exposed_ports = Vec::new();
    let mut port_bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for port in &spec.ports {
        let key = format!("{}/tcp", port.container_port);
        if !exposed_ports.contains(&key) {
            exposed_ports.push(key.clone());
        }
        // Host port 0 (or none) lets the daemon pick a free one, like `--publish 8080`.
        let binding = PortBinding {
            host_ip: port.host_ip.clone(),
            host_port: (port.host_port != 0).then(|| port.host_port.to_string()),
        };
        port_bindings
            .entry(key)
            .or_default()
            .get_or_insert_with(Vec::new)
            .push(binding);
    }
    let healthcheck = spec.healthcheck.as_ref().map(|check| HealthConfig {
        // Exec form: argv as given, no shell in between.
        test: Some(
            std::iter::once("CMD".to_owned())
                .chain(check.cmd.iter().cloned())
                .collect(),
        ),
        interval: Some(nanoseconds(check.interval)),
        timeout: Some(nanoseconds(check.timeout)),
        retries: Some(i64::from(check.retries)),
        start_period: Some(nanoseconds(check.start_period)),
        start_interval: None,
    });
    let host_config = HostConfig {
        binds: (!binds.is_empty()).then_some(binds),
        mounts: (!mounts.is_empty()).then_some(mounts),
        memory: spec
            .memory_bytes
            .map(|bytes| i64::try_from(bytes).unwrap_or(i64::MAX)),
        nano_cpus: spec.cpus.map(|cpus| (cpus * 1e9).round() as i64),
        pids_limit: spec.pids_limit,
        readonly_rootfs: spec.read_only_rootfs.then_some(true),
        security_opt: spec
            .no_new_privileges
            .then(|| vec!["no-new-privileges".to_owned()]),
        network_mode: spec.network.clone(),
        port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
        privileged: spec.privileged.then_some(true),
        pid_mode: spec.pid_mode.clone(),
        runtime: spec.runtime.clone(),
        cap_add: (!spec.cap_add.is_empty()).then(|| spec.cap_add.clone()),
        cap_drop: (!spec.cap_drop.is_empty()).then(|| spec.cap_drop.clone()),
        // `PATH[:OPTIONS]`, as the CLI's --tmpfs takes it.
        tmpfs: (!spec.tmpfs.is_empty()).then(|| {
            spec.tmpfs
                .iter()
                .map(|mount| match mount.split_once(':') {
                    Some((path, options)) => (path.to_owned(), options.to_owned()),
                    None => (mount.clone(), String::new()),
                })
                .collect()
        }),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        // None keeps the image's CMD.
        cmd: spec.cmd.clone(),
        env: (!spec.env.is_empty()).then(|| {
            spec.env
                .iter()
                .map(|(key, value)| format!("{key}={value}"))
                .collect()
        }),
        labels: (!spec.labels.is_empty()).then(|| {
            spec.labels
                .iter()
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect()
        }),
        working_dir: spec.workdir.clone(),
        user: spec.user.clone(),
        exposed_ports: (!exposed_ports.is_empty()).then_some(exposed_ports),
        healthcheck,
        // An empty entrypoint is sent as `[""]`, which the daemon reads as "none" (what `--entrypoint ""` sends).
        entrypoint: spec.entrypoint.as_ref().map(|entrypoint| {
            if entrypoint.is_empty() {
                vec![String::new()]
            } else {
                entrypoint.clone()
            }
        }),
        host_config: Some(host_config),
        ..Default::default()
    }
}

fn nanoseconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

/// The exec configuration for `request` (stdout and stderr attached, no TTY).
pub fn exec_config(request: &ExecRequest) -> ExecConfig {
    ExecConfig {
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        cmd: Some(request.cmd.clone()),
        env: (!request.env.is_empty()).then(|| {
            request
                .env
                .iter()
                .map(|(key, value)| format!("{key}={value}"))
                .collect()
        }),
        working_dir: request.workdir.clone(),
        user: request.user.clone(),
        ..Default::default()
    }
}

/// The build context as a tar archive, the way the docker CLI sends it:
/// every file, directory and symlink (not followed), modes kept, owned by root.
pub fn context_tar(dir: &Path) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    append_tree(&mut builder, dir, Path::new(""))?;
    builder.into_inner()
}

fn append_tree(
    builder: &mut tar::Builder<Vec<u8>>,
    dir: &Path,
    prefix: &Path,
) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let name = prefix.join(entry.file_name());
        let metadata = std::fs::symlink_metadata(&path)?;
        let mut header = tar::Header::new_gnu();
        header.set_metadata_in_mode(&metadata, tar::HeaderMode::Complete);
        header.set_uid(0);
        header.set_gid(0);
        let kind = metadata.file_type();
        if kind.is_dir() {
            header.set_size(0);
            builder.append_data(&mut header, &name, std::io::empty())?;
            append_tree(builder, &path, &name)?;
        } else if kind.is_symlink() {
            header.set_size(0);
            builder.append_link(&mut header, &name, std::fs::read_link(&path)?)?;
        } else if kind.is_file() {
            builder.append_data(&mut header, &name, std::fs::File::open(&path)?)?;
        }
        // Sockets and FIFOs cannot be sent; the docker CLI skips them too.
    }
    Ok(())
}

/// The `State` part of an inspect document, as the CLI backend reads it.
fn container_state(inspect: &serde_json::Value) -> ContainerState {
    let state = &inspect["State"];
    ContainerState {
        status: state["Status"].as_str().unwrap_or_default().to_owned(),
        running: state["Running"].as_bool().unwrap_or(false),
        exit_code: state["ExitCode"].as_i64().unwrap_or(0),
        oom_killed: state["OOMKilled"].as_bool().unwrap_or(false),
        error: state["Error"].as_str().unwrap_or_default().to_owned(),
        daemon_timings: None,
    }
}

fn to_json(
    value: &impl serde::Serialize,
    operation: &'static str,
) -> Result<serde_json::Value, BackendError> {
    serde_json::to_value(value).map_err(|error| BackendError::Api {
        operation,
        status: 0,
        message: format!("unreadable answer: {error}"),
    })
}

#[async_trait]
impl Backend for ApiBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn ledger(&self) -> Option<&super::ledger::Ledger> {
        Some(&self.ledger)
    }

    fn with_overrides(
        &self,
        overrides: &super::ScenarioOverrides,
    ) -> Result<std::sync::Arc<dyn Backend>, String> {
        if overrides.fake_faults.is_some() {
            return Err(super::fake_only_reason(&self.name));
        }
        Ok(std::sync::Arc::new(match &overrides.docker_host {
            // Another daemon gets its own watch (with the same timeout): this one may be fine.
            Some(host) => ApiBackend {
                ledger: self.ledger.clone(),
                ..ApiBackend::for_host(self.name.clone(), host.clone())
                    .with_daemon_timeout(self.watch.timeout())
            },
            None => ApiBackend {
                name: self.name.clone(),
                host: self.host.clone(),
                tls: self.tls.clone(),
                client: OnceCell::new(),
                watch: Arc::clone(&self.watch),
                ports: self.ports.clone(),
                ledger: self.ledger.clone(),
            },
        }))
    }

    async fn ping(&self) -> Result<String, BackendError> {
        let docker = self.docker().await?;
        let version = match self
            .call(
                "read the daemon version",
                "daemon",
                CONTROL_TIMEOUT,
                docker.version(),
            )
            .await
        {
            Ok(version) => version,
            Err(error) => {
                return Err(match self.explain(error).await {
                    BackendError::Api { message, .. } => {
                        BackendError::DaemonUnavailable { message }
                    }
                    other => other,
                });
            }
        };
        Ok(version.version.unwrap_or_default())
    }

    async fn image_exists(&self, image: &str) -> Result<bool, BackendError> {
        let docker = self.docker().await?;
        match self
            .call(
                "inspect an image",
                image,
                CONTROL_TIMEOUT,
                docker.inspect_image(image),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(BackendError::ImageNotFound { .. }) => Ok(false),
            Err(error) => Err(error),
        }
    }

    async fn build_image(&self, context: &Path, tag: &str) -> Result<(), BackendError> {
        let request = BuildRequest {
            context: context.to_path_buf(),
            tag: tag.to_owned(),
            ..Default::default()
        };
        self.build(&request).await
    }

    async fn build(&self, request: &BuildRequest) -> Result<(), BackendError> {
        self.ledger.making(ResourceKind::Image);
        let docker = self.docker().await?;
        let build_failed = |message: String| BackendError::BuildFailed {
            image: request.tag.clone(),
            message,
        };
        let context = request.context.clone();
        let body = tokio::task::spawn_blocking(move || context_tar(&context))
            .await
            .map_err(|error| build_failed(format!("cannot pack the build context: {error}")))?
            .map_err(|error| {
                build_failed(format!(
                    "cannot pack the build context {}: {error}",
                    request.context.display()
                ))
            })?;
        let mut options = BuildImageOptionsBuilder::new()
            .t(&request.tag)
            .dockerfile(request.dockerfile.as_deref().unwrap_or("Dockerfile"))
            .rm(true)
            // Also remove a failed step's intermediate container (kept otherwise, unlabelled).
            .forcerm(true);
        if !request.args.is_empty() {
            options = options.buildargs(
                &request
                    .args
                    .iter()
                    .cloned()
                    .collect::<HashMap<String, String>>(),
            );
        }
        if let Some(target) = &request.target {
            options = options.target(target);
        }
        if !request.labels.is_empty() {
            options = options.labels(
                &request
                    .labels
                    .iter()
                    .map(|(key, value)| (key.clone(), value.clone()))
                    .collect::<HashMap<_, _>>(),
            );
        }
        let options = options.build();

        // The legacy builder's log ("Step 2/5 : RUN ...") as the CLI prints it, then the error.
        let mut log = Capture::new(BUILD_LOG.max_bytes);
        let run = async {
            let mut stream =
                docker.build_image(options, None, Some(bollard::body_full(body.into())));
            while let Some(item) = stream.next().await {
                match item {
                    Ok(info) => {
                        if let Some(text) = &info.stream {
                            log.push(text.as_bytes());
                        }
                    }
                    Err(error) => return Err(error),
                }
            }
            Ok(())
        };
        let watched = self.watched(async { Ok(run.await) });
        let result = tokio::time::timeout(BUILD_TIMEOUT, watched)
            .await
            .map_err(|_| BackendError::Timeout {
                command: "Engine API: build an image".into(),
                timeout: BUILD_TIMEOUT,
            })??;
        let Err(error) = result else { return Ok(()) };
        // As with the CLI: only an unreachable daemon (or a timeout) is not a build failure.
        match classify(&error, "build an image", &request.tag) {
            unavailable @ (BackendError::DaemonUnavailable { .. }
            | BackendError::Timeout { .. }) => Err(unavailable),
            _ => {
                let reason = match &error {
                    ApiError::DockerStreamError { error } => error.clone(),
                    ApiError::DockerResponseServerError { message, .. } => message.clone(),
                    other => other.to_string(),
                };
                let mut lines = log.finish().tail_lines(40);
                lines.extend(reason.lines().map(str::to_owned));
                Err(build_failed(lines.join("\n")))
            }
        }
    }

    async fn image_inspect_json(&self, image: &str) -> Result<serde_json::Value, BackendError> {
        let docker = self.docker().await?;
        let inspect = self
            .call(
                "inspect an image",
                image,
                CONTROL_TIMEOUT,
                docker.inspect_image(image),
            )
            .await?;
        to_json(&inspect, "inspect an image")
    }

    async fn pull_image(&self, image: &str, platform: Option<&str>) -> Result<(), BackendError> {
        let docker = self.docker().await?;
        let mut options =
            bollard::query_parameters::CreateImageOptionsBuilder::new().from_image(image);
        if let Some(platform) = platform {
            options = options.platform(platform);
        }
        let options = options.build();
        let pull = async {
            // The progress documents are read to the end; an error document ends the pull.
            let mut stream = docker.create_image(Some(options), None, None);
            while let Some(progress) = stream.next().await {
                progress?;
            }
            Ok(())
        };
        bounded("pull an image", image, COPY_TIMEOUT, pull).await
    }

    async fn remove_image(&self, image: &str) -> Result<(), BackendError> {
        let docker = self.docker().await?;
        // `noprune`: the untagged parents are the build cache another run's build of the
        // same context may be standing on right now (see `Backend::remove_image`).
        let options = RemoveImageOptionsBuilder::new()
            .force(true)
            .noprune(true)
            .build();
        match self
            .call(
                "remove an image",
                image,
                CONTROL_TIMEOUT,
                docker.remove_image(image, Some(options), None),
            )
            .await
        {
            Ok(_) | Err(BackendError::ImageNotFound { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, BackendError> {
        let docker = self.docker().await?;
        let options = CreateContainerOptionsBuilder::new()
            .name(&spec.name)
            .build();
        let creating = self.ledger.creating();
        let created = self
            .call(
                "create a container",
                &spec.image,
                CONTROL_TIMEOUT,
                docker.create_container(Some(options), create_body(spec)),
            )
            .await?;
        creating.created(&created.id);
        Ok(created.id)
    }

    async fn start(&self, container: &str) -> Result<(), BackendError> {
        let docker = self.docker().await?;
        self.call(
            "start a container",
            container,
            CONTROL_TIMEOUT,
            docker.start_container(container, None),
        )
        .await
    }

    async fn wait(&self, container: &str) -> Result<i64, BackendError> {
        let docker = self.docker().await?;
        // No time limit on purpose (the engine puts the step's timeout around it), but
        // watched: a daemon that stops answering ends it.
        let wait = async {
            let mut stream = docker.wait_container(container, None);
            match stream.next().await {
                Some(Ok(answer)) => Ok(answer.status_code),
                // bollard reports a non-zero exit as an error; for us it is the result.
                Some(Err(ApiError::DockerContainerWaitError { code, .. })) => Ok(code),
                Some(Err(error)) => Err(classify(&error, "wait for a container", container)),
                None => Err(BackendError::Api {
                    operation: "wait for a container",
                    status: 0,
                    message: "the daemon closed the wait without an exit code".into(),
                }),
            }
        };
        self.watched(wait).await
    }

    async fn stop(&self, container: &str, grace: Duration) -> Result<(), BackendError> {
        let docker = self.docker().await?;
        let seconds = grace.as_secs_f64().ceil().clamp(0.0, f64::from(i32::MAX)) as i32;
        let options = StopContainerOptionsBuilder::new().t(seconds).build();
        let limit = grace + CONTROL_TIMEOUT;
        self.call(
            "stop a container",
            container,
            limit,
            docker.stop_container(container, Some(options)),
        )
        .await
    }

    async fn kill(&self, container: &str) -> Result<(), BackendError> {
        let docker = self.docker().await?;
        let options = KillContainerOptionsBuilder::new().signal("KILL").build();
        match self
            .call(
                "kill a container",
                container,
                CONTROL_TIMEOUT,
                docker.kill_container(container, Some(options)),
            )
            .await
        {
            Ok(()) | Err(BackendError::NotRunning { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    async fn logs(
        &self,
        container: &str,
        limits: CaptureLimits,
        files: Option<&LogFiles>,
    ) -> Result<Logs, BackendError> {
        let docker = self.docker().await?;
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .follow(false)
            .build();
        let (mut stdout, mut stderr) = LogFiles::captures(files, limits)?;
        let read = async {
            let mut stream = docker.logs(container, Some(options));
            while let Some(item) = stream.next().await {
                match item? {
                    bollard::container::LogOutput::StdErr { message } => {
                        stderr.push(&message).await;
                    }
                    bollard::container::LogOutput::StdOut { message }
                    | bollard::container::LogOutput::Console { message } => {
                        stdout.push(&message).await;
                    }
                    bollard::container::LogOutput::StdIn { .. } => {}
                }
            }
            Ok(())
        };
        self.call("read a container's logs", container, CONTROL_TIMEOUT, read)
            .await?;
        Logs::finish(stdout, stderr).await
    }

    async fn inspect(&self, container: &str) -> Result<ContainerState, BackendError> {
        Ok(container_state(&self.inspect_json(container).await?))
    }

    async fn exec(
        &self,
        request: &ExecRequest,
        timeout: Duration,
        limits: CaptureLimits,
    ) -> Result<ExecOutput, BackendError> {
        let docker = self.docker().await?;
        let container = request.container.as_str();
        let created = self
            .call(
                "create an exec",
                container,
                CONTROL_TIMEOUT,
                docker.create_exec(container, exec_config(request)),
            )
            .await?;
        let (mut stdout, mut stderr) = (
            Capture::new(limits.max_bytes),
            Capture::new(limits.max_bytes),
        );
        let run = async {
            let start = StartExecOptions {
                detach: false,
                tty: false,
                output_capacity: None,
            };
            let started = self
                .call(
                    "start an exec",
                    container,
                    CONTROL_TIMEOUT,
                    docker.start_exec(&created.id, Some(start)),
                )
                .await?;
            if let StartExecResults::Attached { mut output, .. } = started {
                while let Some(item) = output.next().await {
                    match item
                        .map_err(|error| classify(&error, "read an exec's output", container))?
                    {
                        bollard::container::LogOutput::StdErr { message } => stderr.push(&message),
                        bollard::container::LogOutput::StdOut { message }
                        | bollard::container::LogOutput::Console { message } => {
                            stdout.push(&message)
                        }
                        bollard::container::LogOutput::StdIn { .. } => {}
                    }
                }
            }
            // The output ends when the process does; the exit code may trail it briefly
            // (or for long, if the process closed its output early: the timeout bounds that).
            let mut pause = Duration::from_millis(10);
            loop {
                let inspect = self
                    .call(
                        "inspect an exec",
                        container,
                        CONTROL_TIMEOUT,
                        docker.inspect_exec(&created.id),
                    )
                    .await?;
                if let (Some(false), Some(code)) = (inspect.running, inspect.exit_code) {
                    return Ok(code);
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(250));
            }
        };
        let exit_code = match tokio::time::timeout(timeout, self.watched(run)).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(BackendError::Timeout {
                    command: format!("Engine API: exec in {container}"),
                    timeout,
                });
            }
        };
        let (stdout, stderr) = (stdout.finish(), stderr.finish());
        // Measured on dockerd 20.10 (API 1.41): a missing command still starts the
        // exec; its inspect says exit code 126 and the OCI error arrives on stdout,
        // exactly what `docker exec` prints (see cli.rs).
        if exit_code == 126 && is_command_not_found(&stdout.text.to_ascii_lowercase()) {
            return Err(BackendError::CommandNotFound {
                message: first_line(&stdout.text),
            });
        }
        Ok(ExecOutput {
            exit_code,
            stdout,
            stderr,
        })
    }

    async fn remove(&self, container: &str) -> Result<(), BackendError> {
        let docker = self.docker().await?;
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match self
            .call(
                "remove a container",
                container,
                CONTROL_TIMEOUT,
                docker.remove_container(container, Some(options)),
            )
            .await
        {
            Ok(()) | Err(BackendError::NoSuchContainer { .. }) => {
                self.ledger.removed(container);
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    async fn copy_from(&self, container: &str, path: &str) -> Result<Vec<u8>, BackendError> {
        let docker = self.docker().await?;
        let options = bollard::query_parameters::DownloadFromContainerOptionsBuilder::new()
            .path(path)
            .build();
        let collect = async {
            let mut stream = docker.download_from_container(container, Some(options));
            let mut bytes = Vec::new();
            while let Some(chunk) = stream.next().await {
                bytes.extend_from_slice(&chunk?);
            }
            Ok(bytes)
        };
        self.call(
            "copy from the container",
            container,
            CONTROL_TIMEOUT,
            collect,
        )
        .await
    }

    async fn copy_from_stream(
        &self,
        container: &str,
        path: &str,
        sink: tokio::sync::mpsc::Sender<bytes::Bytes>,
    ) -> Result<(), BackendError> {
        let docker = self.docker().await?;
        let options = bollard::query_parameters::DownloadFromContainerOptionsBuilder::new()
            .path(path)
            .build();
        let forward = async {
            let mut stream = docker.download_from_container(container, Some(options));
            while let Some(chunk) = stream.next().await {
                if sink.send(chunk?).await.is_err() {
                    // The reader refused the archive: dropping the stream ends the request.
                    break;
                }
            }
            Ok(())
        };
        bounded("copy from the container", container, COPY_TIMEOUT, forward).await
    }

    async fn copy_to(
        &self,
        container: &str,
        path: &str,
        archive: &Path,
    ) -> Result<(), BackendError> {
        let docker = self.docker().await?;
        let file = std::fs::File::open(archive).map_err(|error| BackendError::Api {
            operation: "copy into the container",
            status: 0,
            message: format!("{}: {error}", archive.display()),
        })?;
        // The archive is read a piece at a time as the request body goes out.
        let chunks = futures::stream::unfold(Some(file), |file| async move {
            let mut file = file?;
            let mut buffer = vec![0u8; 256 * 1024];
            match std::io::Read::read(&mut file, &mut buffer) {
                Ok(0) => None,
                Ok(read) => {
                    buffer.truncate(read);
                    Some((Ok(bytes::Bytes::from(buffer)), Some(file)))
                }
                Err(error) => Some((Err(error), None)),
            }
        });
        let options = bollard::query_parameters::UploadToContainerOptionsBuilder::new()
            .path(path)
            .build();
        bounded(
            "copy into the container",
            container,
            COPY_TIMEOUT,
            docker.upload_to_container(container, Some(options), bollard::body_try_stream(chunks)),
        )
        .await
    }

    async fn create_volume(
        &self,
        name: &str,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), BackendError> {
        self.ledger.making(ResourceKind::Volume);
        let docker = self.docker().await?;
        let request = bollard::models::VolumeCreateRequest {
            name: Some(name.to_owned()),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        bounded(
            "create a volume",
            name,
            CONTROL_TIMEOUT,
            docker.create_volume(request),
        )
        .await
        .map(drop)
    }

    async fn save_image(&self, image: &str, destination: &Path) -> Result<(), BackendError> {
        use tokio::io::AsyncWriteExt;
        let docker = self.docker().await?;
        let mut file = tokio::fs::File::create(destination)
            .await
            .map_err(|error| BackendError::Api {
                operation: "save the image",
                status: 0,
                message: format!("{}: {error}", destination.display()),
            })?;
        let write = async {
            let mut stream = docker.export_image(image);
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                file.write_all(&chunk).await.map_err(ApiError::from)?;
            }
            file.flush().await.map_err(ApiError::from)?;
            Ok(())
        };
        self.call("save the image", image, BUILD_TIMEOUT, write)
            .await
    }

    async fn load_image(&self, archive: &Path) -> Result<(), BackendError> {
        use tokio::io::AsyncReadExt as _;
        self.ledger.making(ResourceKind::Image);
        let docker = self.docker().await?;
        let shown = archive.display().to_string();
        let file = tokio::fs::File::open(archive)
            .await
            .map_err(|error| BackendError::Api {
                operation: "load the image",
                status: 0,
                message: format!("{shown}: {error}"),
            })?;
        // The archive streams to the daemon in 256 KiB chunks: never held in memory.
        let body = futures::stream::unfold(file, |mut file| async move {
            let mut buffer = vec![0u8; 256 * 1024];
            match file.read(&mut buffer).await {
                Ok(0) => None,
                Ok(read) => {
                    buffer.truncate(read);
                    Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buffer)), file))
                }
                Err(error) => Some((Err(error), file)),
            }
        });
        let load = async {
            let options = bollard::query_parameters::ImportImageOptionsBuilder::new()
                .quiet(true)
                .build();
            let mut answers = docker.import_image_stream(options, body, None);
            while let Some(answer) = answers.next().await {
                answer?;
            }
            Ok(())
        };
        self.call("load the image", &shown, BUILD_TIMEOUT, load)
            .await
    }

    async fn commit(&self, container: &str) -> Result<String, BackendError> {
        self.ledger.making(ResourceKind::Image);
        let docker = self.docker().await?;
        let options = bollard::query_parameters::CommitContainerOptionsBuilder::new()
            .container(container)
            .build();
        let response = self
            .call(
                "commit the container",
                container,
                CONTROL_TIMEOUT,
                docker.commit_container(options, bollard::models::ContainerConfig::default()),
            )
            .await?;
        Ok(response.id)
    }

    async fn inspect_json(&self, container: &str) -> Result<serde_json::Value, BackendError> {
        let docker = self.docker().await?;
        let inspect = self
            .call(
                "inspect a container",
                container,
                CONTROL_TIMEOUT,
                docker.inspect_container(container, None),
            )
            .await?;
        to_json(&inspect, "inspect a container")
    }

    async fn stats(
        &self,
        container: &str,
        sink: &mut (dyn FnMut(StatsSample) + Send),
    ) -> Result<(), BackendError> {
        let docker = self.docker().await?;
        // Streaming, as `docker stats` does: a document about every second while it runs.
        let options = StatsOptionsBuilder::new()
            .stream(true)
            .one_shot(false)
            .build();
        let mut stream = docker.stats(container, Some(options));
        while let Some(item) = stream.next().await {
            let document =
                item.map_err(|error| classify(&error, "read a container's stats", container))?;
            if let Some(sample) = super::stats::from_api(&document) {
                sink(sample);
            }
        }
        Ok(())
    }

    async fn list_labelled(&self, label: &str) -> Result<Vec<String>, BackendError> {
        let docker = self.docker().await?;
        let filters = HashMap::from([("label", vec![label])]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let listed = self
            .call(
                "list containers",
                label,
                CONTROL_TIMEOUT,
                docker.list_containers(Some(options)),
            )
            .await?;
        Ok(listed
            .into_iter()
            .filter_map(|summary| summary.id)
            .collect())
    }

    async fn list_labelled_resources(
        &self,
        kind: ResourceKind,
        label: &str,
    ) -> Result<Vec<String>, BackendError> {
        let docker = self.docker().await?;
        let filters = HashMap::from([("label", vec![label])]);
        match kind {
            ResourceKind::Network => {
                let options = bollard::query_parameters::ListNetworksOptionsBuilder::new()
                    .filters(&filters)
                    .build();
                let listed = self
                    .call(
                        "list networks",
                        label,
                        CONTROL_TIMEOUT,
                        docker.list_networks(Some(options)),
                    )
                    .await?;
                Ok(listed
                    .into_iter()
                    .filter_map(|network| network.id.or(network.name))
                    .collect())
            }
            ResourceKind::Volume => {
                let options = bollard::query_parameters::ListVolumesOptionsBuilder::new()
                    .filters(&filters)
                    .build();
                let listed = self
                    .call(
                        "list volumes",
                        label,
                        CONTROL_TIMEOUT,
                        docker.list_volumes(Some(options)),
                    )
                    .await?;
                Ok(listed
                    .volumes
                    .unwrap_or_default()
                    .into_iter()
                    .map(|volume| volume.name)
                    .collect())
            }
            ResourceKind::Image => {
                let options = bollard::query_parameters::ListImagesOptionsBuilder::new()
                    .filters(&filters)
                    .build();
                let listed = self
                    .call(
                        "list images",
                        label,
                        CONTROL_TIMEOUT,
                        docker.list_images(Some(options)),
                    )
                    .await?;
                let mut ids: Vec<String> = listed.into_iter().map(|image| image.id).collect();
                ids.dedup();
                Ok(ids)
            }
        }
    }

    async fn remove_resource(&self, kind: ResourceKind, name: &str) -> Result<(), BackendError> {
        if kind == ResourceKind::Image {
            return self.remove_image(name).await;
        }
        let docker = self.docker().await?;
        let result = match kind {
            ResourceKind::Network => {
                self.call(
                    "remove a network",
                    name,
                    CONTROL_TIMEOUT,
                    docker.remove_network(name),
                )
                .await
            }
            ResourceKind::Image => return self.remove_image(name).await,
            ResourceKind::Volume => {
                let options = bollard::query_parameters::RemoveVolumeOptionsBuilder::new()
                    .force(true)
                    .build();
                self.call(
                    "remove a volume",
                    name,
                    CONTROL_TIMEOUT,
                    docker.remove_volume(name, Some(options)),
                )
                .await
            }
        };
        match result {
            Ok(()) | Err(BackendError::NoSuchContainer { .. }) => Ok(()),
            Err(BackendError::Api { status: 404, .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    fn daemon_host(&self) -> super::daemon::DaemonHost {
        self.ports.daemon_host().clone()
    }

    fn daemon_socket(&self) -> Option<std::path::PathBuf> {
        // As `docker()` connects: the explicit host, else DOCKER_HOST, else the default socket.
        let host = self.host.clone().or_else(|| {
            std::env::var("DOCKER_HOST")
                .ok()
                .filter(|host| !host.is_empty())
        });
        super::daemon::unix_socket(host.as_deref())
    }

    async fn reach_port(
        &self,
        binding: &str,
        port: u16,
    ) -> Result<super::daemon::Reach, BackendError> {
        // Over ssh, forwards share the API tunnel's connection (opened here if not yet).
        let lent = if matches!(self.ports.daemon_host(), super::daemon::DaemonHost::Ssh(_)) {
            self.docker().await?;
            self.client
                .get()
                .and_then(|connection| connection.tunnel.as_ref())
                .map(super::ssh::Tunnel::master)
        } else {
            None
        };
        self.ports
            .reach(binding, port, lent)
            .await
            .map_err(super::daemon::ReachError::into_backend)
    }

    fn daemon_env(&self) -> Result<Vec<(std::ffi::OsString, std::ffi::OsString)>, String> {
        // Without an explicit host the API backend reads the environment, as compose will.
        let mut env = Vec::new();
        if let Some(host) = &self.host {
            // DOCKER_HOST wins over a DOCKER_CONTEXT the environment may name, as in the CLI.
            env.push(("DOCKER_HOST".into(), host.into()));
        }
        if let Some(tls) = &self.tls {
            env.push(("DOCKER_TLS_VERIFY".into(), "1".into()));
            env.push(("DOCKER_CERT_PATH".into(), tls.into()));
        }
        Ok(env)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Healthcheck, Mount, MountSource, PublishedPort};

    fn server(status_code: u16, message: &str) -> ApiError {
        ApiError::DockerResponseServerError {
            status_code,
            message: message.to_owned(),
        }
    }

    #[test]
    fn classifies_measured_daemon_answers_like_the_cli_backend() {
        // Answers recorded from dockerd 20.10.24 (API 1.41).
        let cases = [
            (
                server(404, "No such image: dockproof/no-such-image:1"),
                "image_not_found",
            ),
            (
                server(404, "no such image: x:1: No such image: x:1"),
                "image_not_found",
            ),
            (
                server(
                    400,
                    "failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: \"nosuchcmd\": executable file not found in $PATH: unknown",
                ),
                "command_not_found",
            ),
            (server(404, "No such container: nosuch"), "nonzero_exit"),
            (server(409, "Container abc is not running"), "nonzero_exit"),
            (
                server(
                    500,
                    "driver failed programming external connectivity on endpoint web: Bind for 0.0.0.0:8080 failed: port is already allocated",
                ),
                "port_conflict",
            ),
            (
                ApiError::SocketNotFoundError("/nope.sock".into()),
                "daemon_unavailable",
            ),
            (
                ApiError::IOError {
                    err: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
                },
                "daemon_unavailable",
            ),
            (
                ApiError::UnsupportedURISchemeError {
                    uri: "ftp://x".into(),
                },
                "daemon_unavailable",
            ),
            (ApiError::RequestTimeoutError, "timeout"),
            (server(500, "something else"), "nonzero_exit"),
        ];
        for (error, category) in cases {
            let classified = classify(&error, "start a container", "c1");
            assert_eq!(
                classified.category().as_str(),
                category,
                "{error} → {classified:?}"
            );
        }
        assert!(
            matches!(classify(&server(404, "No such container: c1"), "start a container", "c1"), BackendError::NoSuchContainer { container } if container == "c1")
        );
        assert!(matches!(
            classify(
                &server(
                    409,
                    "Cannot kill container: c1: Container c1 is not running"
                ),
                "kill a container",
                "c1"
            ),
            BackendError::NotRunning { .. }
        ));
        let other = classify(&server(500, "something else\n"), "start a container", "c1");
        assert_eq!(
            other.to_string(),
            "the Engine API refused to start a container (HTTP 500): something else"
        );
    }

    #[test]
    fn create_body_matches_the_cli_arguments() {
        let spec = ContainerSpec {
            name: "dp-1".into(),
            image: "img:1".into(),
            cmd: Some(vec!["job".into(), "a b; rm -rf /".into()]),
            env: vec![("A".into(), "1 2".into())],
            workdir: Some("/workspace".into()),
            user: Some("1000:1000".into()),
            mounts: vec![
                Mount {
                    source: MountSource::Bind("/tmp/ws".into()),
                    container: "/workspace".into(),
                    read_only: false,
                },
                Mount {
                    source: MountSource::Bind("/tmp/in".into()),
                    container: "/in".into(),
                    read_only: true,
                },
            ],
            labels: [("dockproof.run".to_owned(), "r1".to_owned())].into(),
            memory_bytes: Some(64 << 20),
            cpus: Some(0.5),
            pids_limit: Some(64),
            read_only_rootfs: true,
            no_new_privileges: true,
            network: Some("none".into()),
            ports: vec![
                PublishedPort {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: 0,
                    container_port: 8080,
                },
                PublishedPort {
                    host_ip: None,
                    host_port: 9000,
                    container_port: 90,
                },
            ],
            healthcheck: Some(Healthcheck {
                cmd: vec!["wget".into(), "-q".into(), "it's".into()],
                interval: Duration::from_secs(1),
                timeout: Duration::from_millis(1500),
                retries: 3,
                start_period: Duration::ZERO,
            }),
            ..Default::default()
        };
        let body = serde_json::to_value(create_body(&spec)).unwrap();
        assert_eq!(body["Image"], "img:1");
        assert_eq!(body["Cmd"], serde_json::json!(["job", "a b; rm -rf /"]));
        assert_eq!(body["Env"], serde_json::json!(["A=1 2"]));
        assert_eq!(body["Labels"], serde_json::json!({"dockproof.run": "r1"}));
        assert_eq!(body["WorkingDir"], "/workspace");
        assert_eq!(body["User"], "1000:1000");
        assert_eq!(
            body["ExposedPorts"],
            serde_json::json!({"8080/tcp": {}, "90/tcp": {}})
        );
        assert_eq!(
            body["Healthcheck"],
            serde_json::json!({"Test": ["CMD", "wget", "-q", "it's"], "Interval": 1_000_000_000i64, "Timeout": 1_500_000_000i64, "Retries": 3, "StartPeriod": 0})
        );
        let host = &body["HostConfig"];
        assert_eq!(
            host["Binds"],
            serde_json::json!(["/tmp/ws:/workspace", "/tmp/in:/in:ro"])
        );
        assert_eq!(host["Memory"], 64 << 20);
        assert_eq!(host["NanoCpus"], 500_000_000);
        assert_eq!(host["PidsLimit"], 64);
        assert_eq!(host["ReadonlyRootfs"], true);
        assert_eq!(
            host["SecurityOpt"],
            serde_json::json!(["no-new-privileges"])
        );
        assert_eq!(host["NetworkMode"], "none");
        assert_eq!(
            host["PortBindings"],
            serde_json::json!({"8080/tcp": [{"HostIp": "127.0.0.1"}], "90/tcp": [{"HostPort": "9000"}]})
        );
    }

    #[test]
    fn a_minimal_spec_keeps_the_image_defaults() {
        let spec = ContainerSpec {
            name: "dp-2".into(),
            image: "img:1".into(),
            ..Default::default()
        };
        let body = serde_json::to_value(create_body(&spec)).unwrap();
        // No Cmd (the image's CMD runs), no empty lists that would override the image.
        for key in [
            "Cmd",
            "Env",
            "Labels",
            "WorkingDir",
            "User",
            "ExposedPorts",
            "Healthcheck",
        ] {
            assert!(body.get(key).is_none(), "{key} in {body}");
        }
        let host = &body["HostConfig"];
        for key in [
            "Binds",
            "Memory",
            "NanoCpus",
            "PidsLimit",
            "ReadonlyRootfs",
            "SecurityOpt",
            "NetworkMode",
            "PortBindings",
        ] {
            assert!(host.get(key).is_none(), "{key} in {host}");
        }
    }

    #[test]
    fn exec_config_attaches_output_and_passes_argv() {
        let request = ExecRequest {
            container: "c".into(),
            cmd: vec!["cat".into(), "a b".into()],
            env: vec![("A".into(), "1".into())],
            workdir: Some("/w".into()),
            user: Some("1000:1000".into()),
        };
        let config = serde_json::to_value(exec_config(&request)).unwrap();
        assert_eq!(config["Cmd"], serde_json::json!(["cat", "a b"]));
        assert_eq!(config["Env"], serde_json::json!(["A=1"]));
        assert_eq!(
            (
                config["AttachStdout"].clone(),
                config["AttachStderr"].clone()
            ),
            (true.into(), true.into())
        );
        assert_eq!(
            (config["WorkingDir"].clone(), config["User"].clone()),
            ("/w".into(), "1000:1000".into())
        );
    }

    #[test]
    fn context_tar_keeps_modes_and_symlinks_and_is_owned_by_root() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/tool"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            dir.path().join("bin/tool"),
            std::fs::Permissions::from_mode(0o750),
        )
        .unwrap();
        std::os::unix::fs::symlink("tool", dir.path().join("bin/alias")).unwrap();

        let bytes = context_tar(dir.path()).unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let header = entry.header();
            assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0));
            let path = entry.path().unwrap().display().to_string();
            let detail = match header.entry_type() {
                tar::EntryType::Symlink => {
                    format!("-> {}", header.link_name().unwrap().unwrap().display())
                }
                _ => format!("{:o}", header.mode().unwrap() & 0o777),
            };
            seen.push(format!("{path} {detail}"));
        }
        assert_eq!(
            seen,
            [
                "Dockerfile 644",
                "bin 755",
                "bin/alias -> tool",
                "bin/tool 750"
            ]
        );
    }

    #[tokio::test]
    async fn an_absent_daemon_is_daemon_unavailable() {
        let backend = ApiBackend::for_host("docker-api", "unix:///nonexistent/dockproof.sock");
        let error = backend.ping().await.unwrap_err();
        assert_eq!(error.category().as_str(), "daemon_unavailable", "{error}");
    }

    #[test]
    fn reads_the_state_like_the_cli_backend() {
        let inspect = serde_json::json!({"State": {"Status": "exited", "Running": false, "ExitCode": 127, "OOMKilled": false, "Error": "exec: \"x\": executable file not found"}});
        let state = container_state(&inspect);
        assert_eq!(
            (state.status.as_str(), state.running, state.exit_code),
            ("exited", false, 127)
        );
        assert!(state.error.contains("executable file not found"));
    }

    #[test]
    fn a_cleared_entrypoint_is_sent_as_one_empty_word() {
        let spec = ContainerSpec {
            entrypoint: Some(Vec::new()),
            privileged: true,
            cap_add: vec!["NET_ADMIN".into()],
            ..Default::default()
        };
        let body = create_body(&spec);
        assert_eq!(body.entrypoint, Some(vec![String::new()]));
        let host = body.host_config.expect("a host config");
        assert_eq!(
            (host.privileged, host.cap_add),
            (Some(true), Some(vec!["NET_ADMIN".to_owned()]))
        );
        assert_eq!(create_body(&ContainerSpec::default()).entrypoint, None);
    }
}
