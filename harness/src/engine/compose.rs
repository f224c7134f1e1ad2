//! `compose` steps: a docker compose project on the real daemon, brought up
//! and waited for until every service is healthy, a service's process killed
//! to see its restart policy bring it back, and taken down with its volumes,
//! checking that nothing of the project is left. `down` also runs at the end
//! of every scenario that left a project up (failure and timeout included); a
//! run cut short by Ctrl-C is swept by the `dockproof.run` label every
//! container, network and volume of the project carries.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::service::{
    health_status, last_health_output, note_health_change, published_bindings, published_ports,
    reach_all,
};
use super::{ScenarioRun, backend_finding, finding};
use crate::backend::{Backend, BackendError, ContainerSpec, ResourceKind};
use crate::category::Category;
use crate::check::Finding;
use crate::compose::{self, ComposeError, Project};
use crate::record::{ComposeRecord, KillRecord, Leftovers, ServiceContext};
use crate::scenario::template::ServiceAddress;
use crate::scenario::{ComposeAction, ComposeDown, ComposeKill, ComposeUp};
use crate::transport::Transport;

/// How long every service may take to become healthy when the step does not say.
const DEFAULT_UP_WITHIN: Duration = Duration::from_secs(60);
/// How long a killed service may take to come back when the step does not say.
const DEFAULT_KILL_WITHIN: Duration = Duration::from_secs(30);
/// What `up` may take beyond the health deadline (creating networks, volumes, containers).
const UP_SLACK: Duration = Duration::from_secs(120);
/// How long `down` may take besides the containers' stop grace.
const DOWN_TIMEOUT: Duration = Duration::from_secs(120);
/// Compose's own stop grace, used when `down` does not say.
const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);
/// How often health is polled.
const POLL: Duration = Duration::from_millis(200);
/// The image whose `kill` sends the signal, unless the step names another.
pub const DEFAULT_KILL_HELPER: &str = "dockproof/job-runner:1";
/// How long the helper that sends the signal may run.
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// The scenario's compose project while it is up.
pub(super) struct ComposeState {
    project: Project,
    /// The generated override file, removed with the project.
    override_file: PathBuf,
    /// When `up` began: health timeline times count from here.
    started: Instant,
    /// The services `up` starts (those of active profiles).
    services: Vec<String>,
    /// Services that run to completion: done once they have exited 0.
    one_shot: BTreeSet<String>,
    /// Over `ssh://`, the tunnel compose reaches the daemon through; closed with the project.
    _tunnel: Option<crate::backend::ssh::Tunnel>,
}

impl ComposeState {
    /// The compose project's name.
    pub(super) fn project_name(&self) -> &str {
        &self.project.name
    }
}

/// Compose's environment with an `ssh://` daemon replaced by a unix socket of ours that
/// leads there (an [`ssh::Tunnel`](crate::backend::ssh::Tunnel): one authenticated
/// connection, a multiplexed session per API connection). Compose tools that dial ssh by
/// themselves open a new ssh connection per API call (docker-compose 1.29 does), which on
/// a real remote host costs seconds per call and runs scenarios past their timeouts.
async fn tunnelled(
    mut env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
) -> Result<
    (
        Vec<(std::ffi::OsString, std::ffi::OsString)>,
        Option<crate::backend::ssh::Tunnel>,
    ),
    String,
> {
    let host = env
        .iter()
        .rev()
        .find(|(key, _)| key == "DOCKER_HOST")
        .map(|(_, value)| value.to_string_lossy().into_owned())
        .or_else(|| std::env::var("DOCKER_HOST").ok())
        .unwrap_or_default();
    if !host.starts_with("ssh://") {
        return Ok((env, None));
    }
    let target = crate::backend::ssh::SshTarget::parse(&host).map_err(|error| error.to_string())?;
    let tunnel = crate::backend::ssh::Tunnel::open(target)
        .await
        .map_err(|error| error.to_string())?;
    env.retain(|(key, _)| key != "DOCKER_HOST" && key != "DOCKER_CONTEXT");
    env.push((
        "DOCKER_HOST".into(),
        format!("unix://{}", tunnel.socket().display()).into(),
    ));
    Ok((env, Some(tunnel)))
}

fn compose_finding(error: &ComposeError, pointer: &str) -> Vec<Finding> {
    finding(error.category(), pointer, error.to_string())
}

fn text(inspect: &Value, pointer: &str) -> String {
    inspect
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn restart_count(inspect: &Value) -> i64 {
    inspect
        .pointer("/RestartCount")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

fn running(inspect: &Value) -> bool {
    inspect
        .pointer("/State/Running")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Whether a container is where `up` and `kill` want it: running, and healthy when it has a healthcheck.
fn ready(inspect: &Value) -> bool {
    running(inspect) && health_status(inspect).is_none_or(|status| status == "healthy")
}

/// A container's state in words, for messages: `running (health: starting)`, `exited (1)`, ...
fn describe_state(inspect: &Value) -> String {
    let status = text(inspect, "/State/Status");
    let status = if status == "exited" {
        format!(
            "exited ({})",
            inspect
                .pointer("/State/ExitCode")
                .and_then(Value::as_i64)
                .unwrap_or(0)
        )
    } else {
        status
    };
    match health_status(inspect) {
        Some(health) => format!("{status} (health: {health})"),
        None => status,
    }
}

impl ScenarioRun<'_> {
    pub(super) async fn compose(
        &mut self,
        pointer: &str,
        action: &ComposeAction,
    ) -> Result<(), Vec<Finding>> {
        let compose_pointer = format!("{pointer}/compose");
        match action {
            ComposeAction::Up(up) => self.compose_up(&format!("{compose_pointer}/up"), up).await,
            ComposeAction::Kill(kill) => {
                let step = pointer.rsplit('/').next().unwrap_or("0").to_owned();
                self.compose_kill(&format!("{compose_pointer}/kill"), kill, &step)
                    .await
            }
            ComposeAction::Down(down) => {
                let down_pointer = format!("{compose_pointer}/down");
                let Some(state) = self.compose.take() else {
                    return Err(finding(
                        Category::ConfigInvalid,
                        &down_pointer,
                        "no compose project is up",
                    ));
                };
                self.compose_down(state, down, &down_pointer).await
            }
        }
    }

    async fn compose_up(&mut self, pointer: &str, up: &ComposeUp) -> Result<(), Vec<Finding>> {
        let file_pointer = format!("{pointer}/file");
        if self.compose.is_some() {
            return Err(finding(
                Category::ConfigInvalid,
                pointer,
                "a compose project is already up",
            ));
        }
        let Some(tool) = compose::detect().await else {
            return Err(finding(
                Category::ConfigInvalid,
                pointer,
                compose::NOT_FOUND,
            ));
        };
        let env = self
            .backend
            .daemon_env()
            .map_err(|reason| finding(Category::ConfigInvalid, pointer, reason))?;
        let (env, tunnel) = tunnelled(env)
            .await
            .map_err(|reason| finding(Category::DaemonUnavailable, pointer, reason))?;
        let path = self.loaded.base_dir.join(&up.file);
        let parsed = compose::parse_file(&path).map_err(|problem| {
            finding(
                Category::ConfigInvalid,
                &file_pointer,
                format!("{}:{problem}", path.display()),
            )
        })?;
        let active = parsed.active_services(&up.profiles);
        for (index, name) in up.one_shot.iter().enumerate() {
            if !active.iter().any(|service| &service.name == name) {
                return Err(finding(
                    Category::ConfigInvalid,
                    format!("{pointer}/one_shot/{index}"),
                    format!("the compose file has no started service `{name}`"),
                ));
            }
        }
        for image in active.iter().filter_map(|service| service.image.as_deref()) {
            // Fixture images are built on demand; no registry is asked for anything.
            self.context
                .fixtures
                .ensure(self.backend.as_ref(), image)
                .await
                .map_err(|error| backend_finding(&error, &file_pointer))?;
        }
        let probe_image = active.iter().find_map(|service| service.image.clone());
        if let Some(bind) = parsed.host_binds.first()
            && !self
                .daemon_sees_our_files(probe_image.as_deref(), &file_pointer)
                .await?
        {
            return Err(finding(
                Category::ConfigInvalid,
                &file_pointer,
                format!(
                    "{}:{}:{}: service `{}` bind-mounts the host path `{}`, which names a path on the daemon's machine; this host's daemon does not see dockproof's files (workspace transport `copy`), so it would mount a directory of its own (created empty if missing) instead; use a named volume (`NAME:TARGET`, declared under top-level `volumes:`), or run it against a daemon that shares this machine's files",
                    path.display(),
                    bind.line,
                    bind.column,
                    bind.service,
                    bind.source,
                ),
            ));
        }
        let name = compose::project_name(&self.context.run_id, &self.slug);
        // docker compose makes containers, networks, volumes and images with the run's
        // label outside the backend: the final sweep lists them all.
        for backend in [self.backend.as_ref(), self.context.backend.as_ref()] {
            if let Some(ledger) = backend.ledger() {
                ledger.outside();
            }
        }
        let mut labels = BTreeMap::new();
        labels.insert("dockproof.run".to_owned(), self.context.run_id.clone());
        labels.insert("dockproof.scenario".to_owned(), self.slug.clone());
        self.keep_label(&mut labels);
        // Images compose builds carry no compose label of their own: this one finds them at `down`.
        labels.insert(compose::BUILT_BY_LABEL.to_owned(), name.clone());
        std::fs::create_dir_all(&self.context.work_dir).map_err(|error| {
            finding(
                Category::ConfigInvalid,
                pointer,
                format!("cannot create {}: {error}", self.context.work_dir.display()),
            )
        })?;
        let mut project = Project::prepare(
            tool.clone(),
            name.clone(),
            &path,
            &parsed,
            &labels,
            &self.context.work_dir,
            env,
        )
        .map_err(|error| compose_finding(&error, pointer))?;
        project.profiles = up.profiles.clone();
        let override_file = project.files.last().cloned().unwrap_or_default();
        let services: Vec<String> = active.iter().map(|service| service.name.clone()).collect();
        let inactive: Vec<String> = parsed
            .services
            .iter()
            .filter(|service| !services.contains(&service.name))
            .map(|service| service.name.clone())
            .collect();
        let one_shot: BTreeSet<String> = parsed
            .run_to_completion()
            .into_iter()
            .chain(up.one_shot.iter().cloned())
            .filter(|name| services.contains(name))
            .collect();
        self.record.context.compose = Some(ComposeRecord {
            project: name,
            tool: tool.describe(),
            file: up.file.clone(),
            services: services.clone(),
            inactive,
            ..ComposeRecord::default()
        });
        // Known before `up` runs, so whatever happens next the project is taken down.
        let started = Instant::now();
        self.compose = Some(ComposeState {
            project: project.clone(),
            override_file,
            started,
            services,
            one_shot,
            _tunnel: tunnel,
        });

        let within = up.within.map_or(DEFAULT_UP_WITHIN, |within| within.0);
        // `up -d` itself waits for `depends_on: condition: service_healthy`; an unhealthy
        // dependency fails it, and the services' health is still recorded.
        let up_result = project.run(&["up", "--detach"], within + UP_SLACK).await;
        let observed = self.observe_project(pointer).await;
        if let Err(error) = up_result {
            return Err(compose_finding(&error, pointer));
        }
        let containers = observed?;
        self.wait_project_ready(pointer, &containers, started + within, within)
            .await
    }

    /// Whether the daemon sees the files dockproof sees, so that host paths (a compose
    /// file's or a CST config's bind mounts) mean the same to it: the host's workspace
    /// transport is `bind` (probed with `image` under `auto`). Without an image to probe
    /// with, by the daemon's address.
    pub(super) async fn daemon_sees_our_files(
        &mut self,
        image: Option<&str>,
        pointer: &str,
    ) -> Result<bool, Vec<Finding>> {
        match image {
            Some(image) => Ok(self.transport(image, pointer).await? == Transport::Bind),
            None => Ok(self.backend.daemon_host().is_local()),
        }
    }

    /// Find the project's containers, one per service, and record each as a service
    /// (`context.services.NAME`, names for later steps, `{{ service.NAME.port }}`).
    async fn observe_project(
        &mut self,
        pointer: &str,
    ) -> Result<BTreeMap<String, String>, Vec<Finding>> {
        let backend = std::sync::Arc::clone(&self.backend);
        let Some(state) = &self.compose else {
            return Ok(BTreeMap::new());
        };
        let label = format!("{}={}", compose::PROJECT_LABEL, state.project.name);
        let ids = backend
            .list_labelled(&label)
            .await
            .map_err(|error| backend_finding(&error, pointer))?;
        let mut containers = BTreeMap::new();
        for id in ids {
            let inspect = backend
                .inspect_json(&id)
                .await
                .map_err(|error| backend_finding(&error, pointer))?;
            let labels = inspect.pointer("/Config/Labels");
            let label = |name: &str| {
                labels
                    .and_then(|labels| labels.get(name))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            if label(compose::ONEOFF_LABEL).eq_ignore_ascii_case("true") {
                continue;
            }
            let service = label(compose::SERVICE_LABEL);
            self.named.insert(service.clone(), id.clone());
            let context = ServiceContext {
                image: text(&inspect, "/Config/Image"),
                container_id: id.clone(),
                ..ServiceContext::default()
            };
            self.record
                .context
                .services
                .insert(service.clone(), context);
            self.note_ports(&service, &inspect)
                .await
                .map_err(|error| backend_finding(&error, pointer))?;
            self.note_health(&service, &inspect);
            containers.insert(service, id);
        }
        Ok(containers)
    }

    /// Add a health change to a service's timeline, if its status changed.
    fn note_health(&mut self, service: &str, inspect: &Value) {
        let Some(started) = self.compose.as_ref().map(|state| state.started) else {
            return;
        };
        if let Some(context) = self.record.context.services.get_mut(service) {
            note_health_change(context, inspect, started);
        }
    }

    async fn wait_project_ready(
        &mut self,
        pointer: &str,
        containers: &BTreeMap<String, String>,
        deadline: Instant,
        within: Duration,
    ) -> Result<(), Vec<Finding>> {
        let expected: Vec<String> = self
            .compose
            .as_ref()
            .map(|state| state.services.clone())
            .unwrap_or_default();
        let missing: Vec<&String> = expected
            .iter()
            .filter(|service| !containers.contains_key(*service))
            .collect();
        if !missing.is_empty() {
            let names: Vec<&str> = missing.iter().map(|name| name.as_str()).collect();
            return Err(finding(
                Category::HealthFailed,
                pointer,
                format!("`up` left no container for: {}", names.join(", ")),
            ));
        }
        let started = self
            .compose
            .as_ref()
            .map_or_else(Instant::now, |state| state.started);
        let one_shot = self
            .compose
            .as_ref()
            .map(|state| state.one_shot.clone())
            .unwrap_or_default();
        let mut pending: BTreeMap<String, String> = containers.clone();
        loop {
            let mut states = Vec::new();
            for (service, id) in &pending {
                let inspect = self
                    .backend
                    .inspect_json(id)
                    .await
                    .map_err(|error| backend_finding(&error, pointer))?;
                states.push((service.clone(), inspect));
            }
            for (service, inspect) in &states {
                self.note_health(service, inspect);
                if health_status(inspect).as_deref() == Some("unhealthy") {
                    return Err(finding(
                        Category::HealthFailed,
                        pointer,
                        format!(
                            "compose service `{service}` became unhealthy; last check said: {}",
                            last_health_output(inspect)
                        ),
                    ));
                }
                if one_shot.contains(service) && text(inspect, "/State/Status") == "exited" {
                    let code = inspect
                        .pointer("/State/ExitCode")
                        .and_then(Value::as_i64)
                        .unwrap_or(-1);
                    if let Some(context) = self.record.context.services.get_mut(service) {
                        context.exit_code = Some(code);
                    }
                    if code != 0 {
                        let id = &containers[service];
                        let logs = self.backend.logs(id, self.context.capture, None).await.ok();
                        let tail = logs
                            .map(|logs| {
                                self.masker
                                    .tail_lines(&logs.stderr.text, logs.stderr.truncated, 3)
                                    .join(" | ")
                            })
                            .unwrap_or_default();
                        return Err(finding(
                            Category::NonzeroExit,
                            pointer,
                            format!(
                                "compose service `{service}` runs to completion, and exited with code {code}; stderr: {tail}"
                            ),
                        ));
                    }
                    pending.remove(service);
                    if let Some(context) = self.record.context.services.get_mut(service) {
                        context.ready = true;
                        context.ready_ms = started.elapsed().as_millis() as u64;
                    }
                    continue;
                }
                if ready(inspect) {
                    pending.remove(service);
                    if let Some(context) = self.record.context.services.get_mut(service) {
                        context.ready = true;
                        context.ready_ms = started.elapsed().as_millis() as u64;
                    }
                }
            }
            if pending.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let waiting: Vec<String> = states
                    .iter()
                    .filter(|(service, _)| pending.contains_key(service))
                    .map(|(service, inspect)| format!("`{service}` {}", describe_state(inspect)))
                    .collect();
                return Err(finding(
                    Category::HealthFailed,
                    pointer,
                    format!(
                        "not every compose service was healthy within {}: {}",
                        humantime::format_duration(within),
                        waiting.join(", ")
                    ),
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// SIGKILL a service's main process the way a crash would (not `docker kill`: the daemon
    /// counts that as a manual stop and its restart policy leaves the container down, measured
    /// on Docker 20.10): a helper container in the daemon host's PID namespace sends the signal
    /// to the process the daemon reports. Then the restart count must go up and the container
    /// be running, and healthy with a healthcheck, within the deadline.
    async fn compose_kill(
        &mut self,
        pointer: &str,
        kill: &ComposeKill,
        step: &str,
    ) -> Result<(), Vec<Finding>> {
        let service_pointer = format!("{pointer}/service");
        let within = kill.within.map_or(DEFAULT_KILL_WITHIN, |within| within.0);
        if self.compose.is_none() {
            return Err(finding(
                Category::ConfigInvalid,
                pointer,
                "no compose project is up",
            ));
        }
        let Some(id) = self.named.get(&kill.service).cloned() else {
            return Err(finding(
                Category::ConfigInvalid,
                &service_pointer,
                format!(
                    "the compose project has no container for `{}`",
                    kill.service
                ),
            ));
        };
        let backend = std::sync::Arc::clone(&self.backend);
        let before = backend
            .inspect_json(&id)
            .await
            .map_err(|error| backend_finding(&error, pointer))?;
        let policy = text(&before, "/HostConfig/RestartPolicy/Name");
        if matches!(policy.as_str(), "" | "no") {
            return Err(finding(
                Category::HealthFailed,
                &service_pointer,
                format!(
                    "compose service `{}` has no restart policy: nothing would bring it back",
                    kill.service
                ),
            ));
        }
        let pid = before
            .pointer("/State/Pid")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if !running(&before) || pid <= 0 {
            return Err(finding(
                Category::HealthFailed,
                &service_pointer,
                format!(
                    "compose service `{}` is not running ({})",
                    kill.service,
                    describe_state(&before)
                ),
            ));
        }
        let restarts_before = restart_count(&before);
        let mut record = KillRecord {
            service: kill.service.clone(),
            container_id: id.clone(),
            restart_count_before: restarts_before,
            restart_count_after: restarts_before,
            ..KillRecord::default()
        };

        let helper = kill
            .helper_image
            .clone()
            .unwrap_or_else(|| DEFAULT_KILL_HELPER.to_owned());
        let helper_pointer = if kill.helper_image.is_some() {
            format!("{pointer}/helper_image")
        } else {
            pointer.to_owned()
        };
        self.context
            .fixtures
            .ensure(backend.as_ref(), &helper)
            .await
            .map_err(|error| backend_finding(&error, &helper_pointer))?;
        let mut labels = BTreeMap::new();
        labels.insert("dockproof.run".to_owned(), self.context.run_id.clone());
        labels.insert("dockproof.scenario".to_owned(), self.slug.clone());
        let spec = ContainerSpec {
            name: format!(
                "dockproof-{}-{}-{step}-kill-{}",
                self.context.run_id,
                self.slug,
                super::slug(&kill.service)
            ),
            image: helper.clone(),
            entrypoint: Some(vec!["kill".to_owned()]),
            cmd: Some(vec!["-KILL".to_owned(), pid.to_string()]),
            user: Some("0".to_owned()),
            network: Some("none".to_owned()),
            pid_mode: Some("host".to_owned()),
            labels,
            ..ContainerSpec::default()
        };
        let killed_at = Instant::now();
        let helper_result = self.run_helper(backend.as_ref(), &spec).await;
        helper_result.map_err(|message| {
            finding(
                Category::NonzeroExit,
                &helper_pointer,
                format!("the helper that kills `{}` failed: {message}", kill.service),
            )
        })?;

        let deadline = killed_at + within;
        loop {
            let inspect = backend
                .inspect_json(&id)
                .await
                .map_err(|error| backend_finding(&error, pointer))?;
            self.note_health(&kill.service, &inspect);
            record.restart_count_after = restart_count(&inspect);
            let restarted = record.restart_count_after > restarts_before;
            if restarted && ready(&inspect) {
                // A restarted container gets new host ports for ephemeral mappings: later steps use these.
                self.note_ports(&kill.service, &inspect)
                    .await
                    .map_err(|error| backend_finding(&error, pointer))?;
                record.recovered = true;
                record.recovered_ms = killed_at.elapsed().as_millis() as u64;
                self.push_kill(record);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let restart = if restarted {
                    "it was restarted"
                } else {
                    "it was not restarted"
                };
                let message = format!(
                    "compose service `{}` did not come back within {} after its process was killed: {restart} (restart count {restarts_before} → {}, restart policy `{policy}`), now {}",
                    kill.service,
                    humantime::format_duration(within),
                    record.restart_count_after,
                    describe_state(&inspect)
                );
                self.push_kill(record);
                return Err(finding(Category::HealthFailed, pointer, message));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Record a service's published ports (again) for `http` steps and `{{ service.NAME.port }}`.
    /// The address is where the first one is reached from here (the daemon's host).
    async fn note_ports(&mut self, service: &str, inspect: &Value) -> Result<(), BackendError> {
        let published = published_ports(inspect);
        let reached = reach_all(self.backend.as_ref(), &published_bindings(inspect)).await?;
        let first = reached.values().next();
        self.vars.services.insert(
            service.to_owned(),
            ServiceAddress {
                host: first.map_or_else(
                    || self.backend.daemon_host().host_here(),
                    |reach| reach.host.clone(),
                ),
                port: first.map_or(0, |reach| reach.port),
            },
        );
        if let Some(context) = self.record.context.services.get_mut(service) {
            context.ports = published
                .iter()
                .map(|(container, host)| (format!("{container}/tcp"), *host))
                .collect();
        }
        Ok(())
    }

    fn push_kill(&mut self, record: KillRecord) {
        if let Some(compose) = self.record.context.compose.as_mut() {
            compose.kills.push(record);
        }
    }

    /// Create, start, wait for and remove a short helper container; `Err` with what it said when it fails.
    async fn run_helper(
        &mut self,
        backend: &dyn Backend,
        spec: &ContainerSpec,
    ) -> Result<(), String> {
        let id = backend
            .create(spec)
            .await
            .map_err(|error| error.to_string())?;
        // Until it is removed below, the scenario's cleanup would remove it too.
        self.containers.push(id.clone());
        let outcome = async {
            backend
                .start(&id)
                .await
                .map_err(|error| error.to_string())?;
            let code = tokio::time::timeout(HELPER_TIMEOUT, backend.wait(&id))
                .await
                .map_err(|_| {
                    format!(
                        "it did not finish within {}",
                        humantime::format_duration(HELPER_TIMEOUT)
                    )
                })?
                .map_err(|error| error.to_string())?;
            if code == 0 {
                return Ok(());
            }
            let stderr = backend
                .logs(&id, self.context.capture, None)
                .await
                .map(|logs| logs.stderr.tail_lines(3).join(" | "))
                .unwrap_or_default();
            Err(format!("exit code {code}: {stderr}"))
        }
        .await;
        if backend.remove(&id).await.is_ok() {
            self.containers.retain(|container| *container != id);
        }
        outcome
    }

    /// `down -v --remove-orphans --rmi local`, then count what is left of the project; anything
    /// left is removed by label and the step fails as `cleanup_failed`.
    async fn compose_down(
        &mut self,
        state: ComposeState,
        down: &ComposeDown,
        pointer: &str,
    ) -> Result<(), Vec<Finding>> {
        match self
            .tear_down(state, down.stop_grace.map(|grace| grace.0))
            .await
        {
            Ok(()) => Ok(()),
            Err((category, message)) => Err(finding(category, pointer, message)),
        }
    }

    /// Take the project down and check that nothing of it is left; the category and message when not.
    pub(super) async fn tear_down(
        &mut self,
        state: ComposeState,
        stop_grace: Option<Duration>,
    ) -> Result<(), (Category, String)> {
        let grace = stop_grace.unwrap_or(DEFAULT_STOP_GRACE);
        let seconds = grace.as_secs_f64().ceil().max(0.0) as u64;
        let seconds = seconds.to_string();
        let down = state
            .project
            .run(
                &[
                    "down",
                    "--volumes",
                    "--remove-orphans",
                    "--rmi",
                    "local",
                    "--timeout",
                    &seconds,
                ],
                DOWN_TIMEOUT + grace * state.services.len().max(1) as u32,
            )
            .await;
        // What compose built for the project goes with it (`--rmi local` spares images named by `image:`).
        let built = format!("{}={}", compose::BUILT_BY_LABEL, state.project.name);
        let backend = self.backend.as_ref();
        for image in backend
            .list_labelled_resources(ResourceKind::Image, &built)
            .await
            .unwrap_or_default()
        {
            let _ = backend.remove_resource(ResourceKind::Image, &image).await;
        }
        let label = format!("{}={}", compose::PROJECT_LABEL, state.project.name);
        let left = self.leftovers(&label).await;
        let _ = std::fs::remove_file(&state.override_file);
        if let Some(compose) = self.record.context.compose.as_mut() {
            compose.down = left.as_ref().ok().copied();
        }
        let mut problems = Vec::new();
        if let Err(error) = &down {
            problems.push(format!("`down` failed: {error}"));
        }
        match left {
            Ok(left) if left == Leftovers::default() => {}
            Ok(left) => {
                problems.push(format!(
                    "project {} left {} containers, {} networks, {} volumes after `down` (removed by label now)",
                    state.project.name, left.containers, left.networks, left.volumes
                ));
                self.remove_labelled(&label).await;
            }
            Err(error) => problems.push(format!(
                "cannot list what is left of project {}: {error}",
                state.project.name
            )),
        }
        if problems.is_empty() {
            return Ok(());
        }
        let category = match &down {
            Err(error @ ComposeError::Timeout { .. }) | Err(error @ ComposeError::Spawn { .. }) => {
                error.category()
            }
            _ => Category::CleanupFailed,
        };
        Err((category, problems.join("; ")))
    }

    /// Containers, networks and volumes carrying `label`.
    async fn leftovers(&self, label: &str) -> Result<Leftovers, crate::backend::BackendError> {
        let backend = self.backend.as_ref();
        Ok(Leftovers {
            containers: backend.list_labelled(label).await?.len(),
            networks: backend
                .list_labelled_resources(ResourceKind::Network, label)
                .await?
                .len(),
            volumes: backend
                .list_labelled_resources(ResourceKind::Volume, label)
                .await?
                .len(),
        })
    }

    /// Remove every container, then network, then volume carrying `label` (errors ignored: the caller reports).
    async fn remove_labelled(&self, label: &str) {
        crate::backend::sweep::sweep_label(self.backend.as_ref(), label).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ready_means_running_and_healthy_when_there_is_a_healthcheck() {
        let healthy = json!({"State": {"Running": true, "Status": "running", "Health": {"Status": "healthy"}}});
        let starting = json!({"State": {"Running": true, "Status": "running", "Health": {"Status": "starting"}}});
        let plain = json!({"State": {"Running": true, "Status": "running"}});
        let exited = json!({"State": {"Running": false, "Status": "exited", "ExitCode": 137}});
        assert!(ready(&healthy) && ready(&plain));
        assert!(!ready(&starting) && !ready(&exited));
        assert_eq!(describe_state(&starting), "running (health: starting)");
        assert_eq!(describe_state(&exited), "exited (137)");
    }
}
