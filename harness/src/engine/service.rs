//! Service, HTTP and log steps: long-running containers with published
//! ports, readiness (Docker health, TCP, HTTP), probes and log conditions.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::https::{self, ClientSettings};
use super::{ScenarioRun, backend_finding, env_list, finding, texts};
use crate::backend::daemon::Reach;
use crate::backend::{Backend, BackendError, ContainerSpec, Healthcheck, PublishedPort};
use crate::category::Category;
use crate::check::{self, Finding};
use crate::hostports;
use crate::record::{HealthChange, ServiceContext};
use crate::scenario::model::parse_port;
use crate::scenario::template::{self, ServiceAddress};
use crate::scenario::{HttpSpec, ServiceSpec};

/// The header fake-docker sets on its answer to a request a replayed service's recording
/// does not have (the body says which).
const UNRECORDED_HEADER: &str = "x-fake-docker-unrecorded";
/// How long a service may take to become ready when the step does not say.
const DEFAULT_READY_WITHIN: Duration = Duration::from_secs(30);
/// How often readiness is polled.
const POLL: Duration = Duration::from_millis(200);
/// Deadline for all attempts of an http step when it does not say.
const DEFAULT_HTTP_DEADLINE: Duration = Duration::from_secs(30);
/// Time one HTTP request may take when no latency budget is set.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What "ready" means for one service.
enum Readiness {
    Running,
    Healthy,
    Tcp(u16),
    Http(String),
    /// This text in the container's stdout or stderr.
    Log(String),
    /// The container exited with this code (a one-shot container).
    Exit(i64),
}

/// Container port → host port, from an inspect document's `NetworkSettings.Ports`.
pub(super) fn published_ports(inspect: &Value) -> BTreeMap<u16, u16> {
    published_bindings(inspect)
        .into_iter()
        .map(|(container, (_, host))| (container, host))
        .collect()
}

/// Container port → (host address as the daemon bound it, e.g. `0.0.0.0`; host port).
pub(super) fn published_bindings(inspect: &Value) -> BTreeMap<u16, (String, u16)> {
    let mut ports = BTreeMap::new();
    for (key, bindings) in inspect
        .pointer("/NetworkSettings/Ports")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let Some(container) = key
            .split('/')
            .next()
            .and_then(|port| port.parse::<u16>().ok())
        else {
            continue;
        };
        let host = bindings
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|binding| {
                let port = binding
                    .get("HostPort")
                    .and_then(Value::as_str)
                    .and_then(|port| port.parse::<u16>().ok())?;
                let ip = binding
                    .get("HostIp")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                Some((ip.to_owned(), port))
            })
            .next();
        if let Some(host) = host {
            ports.insert(container, host);
        }
    }
    ports
}

pub(super) fn health_status(inspect: &Value) -> Option<String> {
    inspect
        .pointer("/State/Health/Status")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Add `inspect`'s health status to a service's timeline if it changed; `started` is when
/// the timeline's clock began (the service's start, or compose `up`). Docker's health
/// status always begins as `starting` when the container starts: a first observation that
/// is already past it (the container was polled late, e.g. through a slow remote daemon)
/// is preceded by that `starting`, timed at the container's `State.StartedAt`.
pub(super) fn note_health_change(context: &mut ServiceContext, inspect: &Value, started: Instant) {
    let Some(status) = health_status(inspect) else {
        return;
    };
    if context.health_status == status {
        return;
    }
    let now_ms = started.elapsed().as_millis() as u64;
    if context.health.is_empty() && status != "starting" {
        let container_started = inspect
            .pointer("/State/StartedAt")
            .and_then(Value::as_str)
            .and_then(|at| humantime::parse_rfc3339_weak(at).ok());
        let clock_began = std::time::SystemTime::now().checked_sub(started.elapsed());
        let at_ms = match (container_started, clock_began) {
            (Some(container), Some(began)) => container
                .duration_since(began)
                .map_or(0, |since| since.as_millis() as u64)
                .min(now_ms),
            _ => 0,
        };
        context.health.push(HealthChange {
            status: "starting".to_owned(),
            at_ms,
        });
    }
    context.health_status = status.clone();
    context.health.push(HealthChange {
        status,
        at_ms: now_ms,
    });
}

pub(super) fn last_health_output(inspect: &Value) -> String {
    inspect
        .pointer("/State/Health/Log")
        .and_then(Value::as_array)
        .and_then(|log| log.last())
        .and_then(|entry| entry.get("Output"))
        .and_then(Value::as_str)
        .map(|text| text.trim().to_owned())
        .unwrap_or_default()
}

impl ScenarioRun<'_> {
    pub(super) async fn service(
        &mut self,
        pointer: &str,
        service: &ServiceSpec,
    ) -> Result<(), Vec<Finding>> {
        let backend = self.backend.as_ref();
        let service_pointer = format!("{pointer}/service");
        let image_pointer = format!("{service_pointer}/image");
        self.context
            .fixtures
            .ensure(backend, &service.image)
            .await
            .map_err(|error| backend_finding(&error, &image_pointer))?;

        let daemon_is_local = backend.daemon_host().is_local();
        let mut ports = Vec::new();
        for (index, port) in service.ports.iter().enumerate() {
            let port_pointer = format!("{service_pointer}/ports/{index}");
            let (host_ip, host_port, container_port) =
                parse_port(&template::render(&port.0, &self.vars))
                    .map_err(|problem| finding(Category::ConfigInvalid, &port_pointer, problem))?;
            // Ask before binding, so a taken port is a clear `port_conflict` naming its holder.
            // Only this machine's ports can be asked about: a daemon elsewhere answers for its own.
            if host_port != 0
                && daemon_is_local
                && !hostports::is_free(hostports::probe_address(host_ip.as_deref()), host_port)
            {
                let holder = hostports::holder(host_port)
                    .map(|holder| format!(", held by {holder}"))
                    .unwrap_or_default();
                return Err(finding(
                    Category::PortConflict,
                    &port_pointer,
                    format!("host port {host_port} is already in use{holder}"),
                ));
            }
            ports.push(PublishedPort {
                host_ip,
                host_port,
                container_port,
            });
        }
        let healthcheck = service.healthcheck.as_ref().map(|check| Healthcheck {
            cmd: texts(&check.cmd, &self.vars),
            interval: check
                .interval
                .map_or(Duration::from_secs(1), |interval| interval.0),
            timeout: check
                .timeout
                .map_or(Duration::from_secs(2), |timeout| timeout.0),
            retries: check.retries.unwrap_or(3),
            start_period: check.start_period.map_or(Duration::ZERO, |period| period.0),
        });
        let mut labels = BTreeMap::new();
        labels.insert("dockproof.run".to_owned(), self.context.run_id.clone());
        self.keep_label(&mut labels);
        labels.insert("dockproof.scenario".to_owned(), self.slug.clone());
        let mounts = match &service.workspace {
            Some(mount) => vec![
                self.workspace_mount(&service.image, mount, &image_pointer)
                    .await?,
            ],
            None => Vec::new(),
        };
        let spec = ContainerSpec {
            name: format!(
                "dockproof-{}-{}-{}",
                self.context.names_id,
                self.slug,
                super::slug(&service.name)
            ),
            image: service.image.clone(),
            cmd: service.cmd.as_ref().map(|cmd| texts(cmd, &self.vars)),
            entrypoint: service
                .entrypoint
                .as_ref()
                .map(|entrypoint| texts(entrypoint, &self.vars)),
            env: env_list(&service.env, &self.vars),
            user: service.user.clone(),
            mounts,
            labels,
            memory_bytes: service.limits.memory.map(|size| size.0),
            cpus: service.limits.cpus,
            pids_limit: service.limits.pids,
            read_only_rootfs: service.security.read_only,
            no_new_privileges: service.security.no_new_privileges,
            network: service.security.network.clone(),
            ports,
            healthcheck,
            ..ContainerSpec::default()
        };
        // Recording: the workspace as the service will find it.
        let before = if self.context.recordings.observes() {
            match &service.workspace {
                Some(_) => match self.workspace().entries() {
                    Ok(entries) => Some(entries),
                    Err(error) => {
                        self.recording_problem = Some(error.to_string());
                        None
                    }
                },
                None => Some(Vec::new()),
            }
        } else {
            None
        };
        let id = self
            .backend
            .create(&spec)
            .await
            .map_err(|error| self.create_finding(&error, &image_pointer))?;
        self.containers.push(id.clone());
        self.named.insert(service.name.clone(), id.clone());
        if let Some(mount) = &service.workspace {
            self.note_transport();
            self.workspace_attached(&id, &spec, mount, &service_pointer)
                .await?;
            self.live = Some(id.clone());
        }
        let backend = self.backend.as_ref();
        self.verify_applied(&spec, &id, &service_pointer).await?;
        let started = Instant::now();
        backend.start(&id).await.map_err(|error| {
            // A daemon elsewhere refuses a taken port here: point at the port it names.
            let at = conflicting_port(&error, &spec.ports).map_or_else(
                || format!("{service_pointer}/ports"),
                |index| format!("{service_pointer}/ports/{index}"),
            );
            backend_finding(&error, &at)
        })?;

        let inspect = backend
            .inspect_json(&id)
            .await
            .map_err(|error| backend_finding(&error, &service_pointer))?;
        let bindings = published_bindings(&inspect);
        let published = published_ports(&inspect);
        if let Some(before) = before {
            self.observe_service_for_recording(pointer, service, &spec, &id, &before)
                .await;
        }
        let backend = self.backend.as_ref();
        let reached = reach_all(backend, &bindings)
            .await
            .map_err(|error| backend_finding(&error, &format!("{service_pointer}/ports")))?;
        let first = spec
            .ports
            .first()
            .and_then(|port| reached.get(&port.container_port).cloned());
        self.vars.services.insert(
            service.name.clone(),
            ServiceAddress {
                host: first.as_ref().map_or_else(
                    || backend.daemon_host().host_here(),
                    |reach| reach.host.clone(),
                ),
                port: first.map_or(0, |reach| reach.port),
            },
        );
        let context = ServiceContext {
            image: service.image.clone(),
            container_id: id.clone(),
            ports: published
                .iter()
                .map(|(container, host)| (format!("{container}/tcp"), *host))
                .collect(),
            ..ServiceContext::default()
        };
        self.record
            .context
            .services
            .insert(service.name.clone(), context);

        let wait = service.wait.clone().unwrap_or_default();
        let readiness = if wait.healthy {
            Readiness::Healthy
        } else if let Some(port) = wait.tcp {
            Readiness::Tcp(port)
        } else if let Some(path) = wait.http {
            Readiness::Http(path)
        } else if let Some(text) = wait.log {
            Readiness::Log(template::render(&text, &self.vars))
        } else if let Some(code) = wait.exit {
            Readiness::Exit(code)
        } else if health_status(&inspect).is_some() {
            Readiness::Healthy
        } else {
            Readiness::Running
        };
        let within = wait.within.map_or(DEFAULT_READY_WITHIN, |within| within.0);
        let result = self
            .wait_ready(
                &service.name,
                &id,
                &reached,
                readiness,
                started,
                within,
                &service_pointer,
            )
            .await;
        if let Some(context) = self.record.context.services.get_mut(&service.name) {
            context.ready = result.is_ok();
            context.ready_ms = if result.is_ok() {
                started.elapsed().as_millis() as u64
            } else {
                0
            };
        }
        result
    }

    /// Keep a started service for the recording: its call now; its health timeline and
    /// the exchanges probes make with it are added before cleanup.
    async fn observe_service_for_recording(
        &mut self,
        pointer: &str,
        service: &ServiceSpec,
        spec: &ContainerSpec,
        id: &str,
        before: &[dockproof_recording::Entry],
    ) {
        let logs = crate::backend::Logs {
            stdout: Default::default(),
            stderr: Default::default(),
        };
        let recorded_before = self.recorded.len();
        self.observe_for_recording(
            pointer,
            &service.image,
            spec,
            id,
            service.workspace.as_deref(),
            before,
            0,
            &Default::default(),
            false,
            &logs,
        )
        .await;
        if self.recorded.len() == recorded_before {
            return;
        }
        let index = self.recorded.len() - 1;
        self.recorded[index].outcome.ended = dockproof_recording::Ended::StillRunning;
        self.recorded[index].outcome.workspace.clear();
        self.recorded_detached.insert(
            id.to_owned(),
            (
                index,
                service.image.clone(),
                service.workspace.clone().unwrap_or_default(),
            ),
        );
        let first_port = spec.ports.first().map_or(0, |port| port.container_port);
        self.recorded_services
            .insert(service.name.clone(), (index, first_port));
    }

    /// Keep an HTTP exchange with a recorded service (record, record --check).
    #[allow(clippy::too_many_arguments)]
    fn note_exchange(
        &mut self,
        service: &str,
        port: Option<u16>,
        method: &str,
        path: &str,
        request_body: Option<&[u8]>,
        status: u16,
        headers: &reqwest::header::HeaderMap,
        checked: &[String],
        body: &[u8],
    ) {
        let Some((_, first_port)) = self.recorded_services.get(service).copied() else {
            return;
        };
        let kept: Vec<(String, String)> = headers
            .iter()
            .filter(|(name, _)| crate::recordings::kept_header(name.as_str(), checked))
            .filter_map(|(name, value)| {
                value
                    .to_str()
                    .ok()
                    .map(|value| (name.as_str().to_owned(), value.to_owned()))
            })
            .collect();
        let mut blobs = std::mem::take(&mut self.blobs);
        let exchange = crate::recordings::exchange(
            port.unwrap_or(first_port),
            method,
            path,
            request_body,
            status,
            &kept,
            body,
            &self.masker,
            &mut blobs,
        );
        self.blobs = blobs;
        self.recorded_exchanges.push((service.to_owned(), exchange));
    }

    #[allow(clippy::too_many_arguments)]
    async fn wait_ready(
        &mut self,
        name: &str,
        id: &str,
        reached: &BTreeMap<u16, Reach>,
        readiness: Readiness,
        started: Instant,
        within: Duration,
        pointer: &str,
    ) -> Result<(), Vec<Finding>> {
        let backend = std::sync::Arc::clone(&self.backend);
        let deadline = started + within;
        let wait_pointer = format!("{pointer}/wait");
        let host_port = |container: u16| reached.get(&container);
        let client = https::plain_client(POLL * 5)
            .map_err(|error| finding(Category::ConfigInvalid, &wait_pointer, error.to_string()))?;
        loop {
            let inspect = backend
                .inspect_json(id)
                .await
                .map_err(|error| backend_finding(&error, pointer))?;
            if let Some(context) = self.record.context.services.get_mut(name) {
                note_health_change(context, &inspect, started);
            }
            let running = inspect
                .pointer("/State/Running")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if !running {
                let code = inspect
                    .pointer("/State/ExitCode")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                if let Readiness::Exit(expected) = readiness {
                    if let Some(context) = self.record.context.services.get_mut(name) {
                        context.exit_code = Some(code);
                    }
                    if code == expected {
                        return Ok(());
                    }
                    let logs = backend.logs(id, self.context.capture, None).await.ok();
                    let tail = logs
                        .map(|logs| {
                            self.masker
                                .tail_lines(&logs.stderr.text, logs.stderr.truncated, 3)
                                .join(" | ")
                        })
                        .unwrap_or_default();
                    return Err(finding(
                        Category::NonzeroExit,
                        &wait_pointer,
                        format!(
                            "service `{name}` exited with code {code}, expected {expected}; stderr: {tail}"
                        ),
                    ));
                }
                let logs = backend.logs(id, self.context.capture, None).await.ok();
                let tail = logs
                    .map(|logs| {
                        self.masker
                            .tail_lines(&logs.stderr.text, logs.stderr.truncated, 3)
                            .join(" | ")
                    })
                    .unwrap_or_default();
                return Err(finding(
                    if code == 0 {
                        Category::HealthFailed
                    } else {
                        Category::NonzeroExit
                    },
                    pointer,
                    format!(
                        "service `{name}` exited with code {code} before it was ready; stderr: {tail}"
                    ),
                ));
            }
            let ready = match &readiness {
                Readiness::Running => true,
                // Ready once it has exited, above.
                Readiness::Exit(_) => false,
                Readiness::Log(text) => {
                    let logs = backend
                        .logs(id, self.context.capture, None)
                        .await
                        .map_err(|error| backend_finding(&error, pointer))?;
                    logs.stdout.text.contains(text.as_str())
                        || logs.stderr.text.contains(text.as_str())
                }
                Readiness::Healthy => match health_status(&inspect).as_deref() {
                    Some("healthy") => true,
                    Some("unhealthy") => {
                        let output = last_health_output(&inspect);
                        return Err(finding(
                            Category::HealthFailed,
                            &wait_pointer,
                            format!("service `{name}` became unhealthy; last check said: {output}"),
                        ));
                    }
                    Some(_) => false,
                    None => {
                        return Err(finding(
                            Category::HealthFailed,
                            &wait_pointer,
                            format!("service `{name}` has no healthcheck to wait for"),
                        ));
                    }
                },
                Readiness::Tcp(port) => match host_port(*port) {
                    Some(reach) => {
                        tokio::net::TcpStream::connect((reach.host.as_str(), reach.port))
                            .await
                            .is_ok()
                    }
                    None => {
                        return Err(finding(
                            Category::ConfigInvalid,
                            &wait_pointer,
                            format!("container port {port} is not published"),
                        ));
                    }
                },
                Readiness::Http(path) => {
                    let Some(reach) = reached.values().next() else {
                        return Err(finding(
                            Category::ConfigInvalid,
                            &wait_pointer,
                            "no published port to probe",
                        ));
                    };
                    let url = format!("{}{path}", base_url(reach, "http"));
                    match client.get(&url).send().await {
                        Ok(response) if response.headers().contains_key(UNRECORDED_HEADER) => {
                            let message = response.text().await.unwrap_or_default();
                            return Err(finding(
                                Category::ConfigInvalid,
                                &wait_pointer,
                                format!("service `{name}`: {message}"),
                            ));
                        }
                        Ok(response) if response.status().is_success() => {
                            let status = response.status().as_u16();
                            let headers = response.headers().clone();
                            let body = response.bytes().await.unwrap_or_default();
                            let port = reached.keys().next().copied();
                            self.note_exchange(
                                name,
                                port,
                                "GET",
                                path,
                                None,
                                status,
                                &headers,
                                &[],
                                &body,
                            );
                            true
                        }
                        _ => false,
                    }
                }
            };
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let what = match &readiness {
                    Readiness::Healthy => format!(
                        "healthy (health: {})",
                        health_status(&inspect).unwrap_or_default()
                    ),
                    Readiness::Tcp(port) => format!("accepting connections on port {port}"),
                    Readiness::Http(path) => format!("answering {path} with 2xx"),
                    Readiness::Running => "running".into(),
                    Readiness::Log(text) => format!(
                        "ready: its output never showed {:?}",
                        self.masker.mask(text)
                    ),
                    Readiness::Exit(code) => {
                        format!("done: it was still running, expected exit code {code}")
                    }
                };
                return Err(finding(
                    Category::HealthFailed,
                    &wait_pointer,
                    format!(
                        "service `{name}` was not {what} within {}",
                        humantime::format_duration(within)
                    ),
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    pub(super) async fn http(
        &mut self,
        pointer: &str,
        http: &HttpSpec,
    ) -> Result<(), Vec<Finding>> {
        let http_pointer = format!("{pointer}/http");
        let url = match (&http.service, &http.url) {
            (Some(name), _) => {
                let reach = self.service_reach(name, http.port, &http_pointer).await?;
                // A service probed with TLS settings speaks TLS on its port.
                let scheme = if http.tls.is_some() { "https" } else { "http" };
                format!(
                    "{}{}",
                    base_url(&reach, scheme),
                    http.path.as_deref().unwrap_or("/")
                )
            }
            (None, Some(url)) => format!(
                "{}{}",
                template::render(url, &self.vars),
                http.path.as_deref().unwrap_or("")
            ),
            (None, None) => {
                return Err(finding(
                    Category::ConfigInvalid,
                    &http_pointer,
                    "no `service` or `url`",
                ));
            }
        };
        let method = reqwest::Method::from_bytes(
            http.method
                .as_deref()
                .unwrap_or("GET")
                .to_ascii_uppercase()
                .as_bytes(),
        )
        .map_err(|_| {
            finding(
                Category::ConfigInvalid,
                format!("{http_pointer}/method"),
                "not an HTTP method",
            )
        })?;
        let expect = &http.expect;
        let timeout = expect.max_latency.map_or(REQUEST_TIMEOUT, |latency| {
            latency.0 + Duration::from_secs(5)
        });
        let settings = ClientSettings {
            tls: http.tls.as_ref(),
            base_dir: &self.loaded.base_dir,
            proxy: http
                .proxy
                .as_ref()
                .map(|proxy| template::render(proxy, &self.vars)),
        };
        let (client, url) = https::client_for(&url, timeout, &settings)
            .await
            .map_err(|error| {
                let at = if http.proxy.is_some() && matches!(error, https::ClientError::Proxy(..)) {
                    format!("{http_pointer}/proxy")
                } else {
                    format!("{http_pointer}/tls")
                };
                finding(Category::ConfigInvalid, at, error.to_string())
            })?;
        if http.tls.as_ref().is_some_and(|tls| tls.insecure)
            && !self.record.context.insecure_tls.contains(&url)
        {
            // Said in the record (and so the JSON report): this answer's sender was not checked.
            self.record.context.insecure_tls.push(url.clone());
        }
        let attempts = http.attempts.unwrap_or(1).max(1);
        let deadline = Instant::now()
            + http
                .deadline
                .map_or(DEFAULT_HTTP_DEADLINE, |deadline| deadline.0);
        let mut backoff = http
            .backoff
            .map_or(Duration::from_millis(200), |backoff| backoff.0);
        for round in 0..http.repeat.unwrap_or(1).max(1) {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let findings = self
                    .probe(&client, &method, &url, http, &http_pointer)
                    .await;
                if findings.is_empty() {
                    break;
                }
                if attempt >= attempts || Instant::now() + backoff > deadline {
                    let mut findings = findings;
                    if http.repeat.unwrap_or(1) > 1 {
                        findings[0].message = format!(
                            "request {} of {}: {}",
                            round + 1,
                            http.repeat.unwrap_or(1),
                            findings[0].message
                        );
                    }
                    return Err(findings);
                }
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
            }
        }
        Ok(())
    }

    /// Where to call service `name` from here: its published `container_port` (or the
    /// service's address, else its first published port), as the daemon has it published now.
    async fn service_reach(
        &self,
        name: &str,
        container_port: Option<u16>,
        pointer: &str,
    ) -> Result<Reach, Vec<Finding>> {
        let service_pointer = format!("{pointer}/service");
        let no_port = || {
            finding(
                Category::ConfigInvalid,
                &service_pointer,
                format!("service `{name}` has no published port to call"),
            )
        };
        self.record.context.services.get(name).ok_or_else(no_port)?;
        let (Some(id), Some(port)) = (self.named.get(name), container_port) else {
            // No port asked for: the service's own address (its first published port).
            return self
                .vars
                .services
                .get(name)
                .filter(|address| address.port != 0)
                .map(|address| Reach {
                    host: address.host.clone(),
                    port: address.port,
                })
                .ok_or_else(no_port);
        };
        let inspect = self
            .backend
            .inspect_json(id)
            .await
            .map_err(|error| backend_finding(&error, &service_pointer))?;
        let (binding, host_port) = published_bindings(&inspect)
            .remove(&port)
            .ok_or_else(no_port)?;
        self.backend
            .reach_port(&binding, host_port)
            .await
            .map_err(|error| backend_finding(&error, &service_pointer))
    }

    async fn probe(
        &mut self,
        client: &reqwest::Client,
        method: &reqwest::Method,
        url: &str,
        http: &HttpSpec,
        pointer: &str,
    ) -> Vec<Finding> {
        let expect = &http.expect;
        let expect_pointer = format!("{pointer}/expect");
        let mut request = client.request(method.clone(), url);
        for (name, value) in &http.headers {
            request = request.header(name, template::render(value, &self.vars));
        }
        let mut request_body = None;
        if let Some(json) = &http.json {
            request_body = serde_json::to_vec(json).ok();
            request = request.json(json);
        } else if let Some(body) = &http.body {
            let body = template::render(body, &self.vars);
            request_body = Some(body.as_bytes().to_vec());
            request = request.body(body);
        }
        let sent = Instant::now();
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                return finding(
                    Category::HttpCheckFailed,
                    pointer,
                    format!("{method} {url} failed: {}", https::error_chain(&error)),
                );
            }
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = match response.text().await {
            Ok(body) => body,
            Err(error) => {
                return finding(
                    Category::HttpCheckFailed,
                    pointer,
                    format!("{method} {url}: reading the body failed: {error}"),
                );
            }
        };
        let latency = sent.elapsed();
        // fake-docker replaying a service the recording of which lacks this request.
        if headers.contains_key(UNRECORDED_HEADER) {
            return finding(
                Category::ConfigInvalid,
                pointer,
                format!("{method} {url}: {body}"),
            );
        }
        if let Some(service) = &http.service
            && self.context.recordings.observes()
        {
            let checked: Vec<String> = expect.headers.keys().cloned().collect();
            self.note_exchange(
                service,
                http.port,
                method.as_str(),
                http.path.as_deref().unwrap_or("/"),
                request_body.as_deref(),
                status,
                &headers,
                &checked,
                body.as_bytes(),
            );
        }
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        self.output.http_body = Some(body.clone());
        let findings = check::http(
            &expect_pointer,
            expect,
            status,
            &header,
            &body,
            latency,
            &self.masker,
        );
        findings
            .into_iter()
            .map(|mut found| {
                found.message = format!("{method} {url}: {}", found.message);
                found
            })
            .collect()
    }
}

/// `SCHEME://HOST:PORT` (an IPv6 host in brackets).
fn base_url(reach: &Reach, scheme: &str) -> String {
    if reach.host.contains(':') {
        format!("{scheme}://[{}]:{}", reach.host, reach.port)
    } else {
        format!("{scheme}://{}:{}", reach.host, reach.port)
    }
}

/// Where each published port is reached from here (container port → address).
pub(super) async fn reach_all(
    backend: &dyn Backend,
    bindings: &BTreeMap<u16, (String, u16)>,
) -> Result<BTreeMap<u16, Reach>, BackendError> {
    let mut reached = BTreeMap::new();
    for (container, (binding, port)) in bindings {
        reached.insert(*container, backend.reach_port(binding, *port).await?);
    }
    Ok(reached)
}

/// Which of `ports` a daemon's port-conflict refusal names (`Bind for 0.0.0.0:8080 failed`).
fn conflicting_port(error: &BackendError, ports: &[PublishedPort]) -> Option<usize> {
    if error.category() != Category::PortConflict {
        return None;
    }
    let text = error.to_string();
    ports.iter().position(|port| {
        port.host_port != 0 && text.contains(&format!(":{} failed", port.host_port))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_published_ports_and_health_from_inspect() {
        let inspect = json!({
            "State": {"Health": {"Status": "starting", "Log": [{"Output": "connection refused\n"}]}},
            "NetworkSettings": {"Ports": {
                "8080/tcp": [{"HostIp": "0.0.0.0", "HostPort": "49153"}, {"HostIp": "::", "HostPort": "49153"}],
                "9090/tcp": null
            }}
        });
        assert_eq!(published_ports(&inspect), [(8080, 49153)].into());
        // The binding as the daemon made it: `0.0.0.0` stands for its host, never dialled.
        assert_eq!(
            published_bindings(&inspect),
            [(8080, ("0.0.0.0".to_owned(), 49153))].into()
        );
        assert_eq!(health_status(&inspect).as_deref(), Some("starting"));
        let ports = [
            PublishedPort {
                host_ip: None,
                host_port: 0,
                container_port: 80,
            },
            PublishedPort {
                host_ip: None,
                host_port: 49153,
                container_port: 8080,
            },
        ];
        // docker 20.10's refusal of a taken port, as a daemon elsewhere answers it.
        let refused = BackendError::PortConflict {
            message: "driver failed programming external connectivity on endpoint x: Bind for 0.0.0.0:49153 failed: port is already allocated".into(),
        };
        assert_eq!(conflicting_port(&refused, &ports), Some(1));
        let other = BackendError::NotRunning {
            container: "x".into(),
        };
        assert_eq!(conflicting_port(&other, &ports), None);
        assert_eq!(last_health_output(&inspect), "connection refused");
    }
}
