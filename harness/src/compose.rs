//! docker compose on a real daemon: finding the tool (the `docker compose`
//! plugin, else `docker-compose`), reading what a compose file declares,
//! the per-run project name, the override file that labels everything the
//! project creates with `dockproof.run`, and running compose commands with
//! argv lists, a timeout and bounded output.
//!
//! Compose v1 (Debian's `docker-compose` 1.29) cannot add labels from its
//! command line, so the labels travel in a generated override file (JSON, which
//! YAML reads) passed as a second `-f`: every service, every non-external
//! network (the implicit `default` one too) and every non-external volume.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::OnceCell;

use crate::backend::Captured;
use crate::category::Category;
use crate::process::{self, Output, ProcessError};
use crate::scenario::yaml::{self, SourceSpan};

/// Compose's label naming a project; every container, network and volume it creates carries it.
pub const PROJECT_LABEL: &str = "com.docker.compose.project";
/// The label (value: the project name) on everything dockproof's override labels, and so on
/// the images compose builds for the project, which compose itself does not label.
pub const BUILT_BY_LABEL: &str = "dockproof.compose-project";
/// Compose's label naming a container's service.
pub const SERVICE_LABEL: &str = "com.docker.compose.service";
/// Compose's label marking `run` containers (not a service's own).
pub const ONEOFF_LABEL: &str = "com.docker.compose.oneoff";
/// The message of a scenario skipped because neither compose is installed.
pub const NOT_FOUND: &str =
    "no docker compose found (install docker-compose or the compose plugin)";

/// How long `version` may take while looking for the tool.
const DETECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Output kept of each stream of a compose command.
const OUTPUT_LIMIT: usize = 1 << 20;

/// Why a compose command failed.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("{NOT_FOUND}")]
    NotFound,
    #[error("failed to run `{program}`: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("`{command}` did not finish within {}", humantime::format_duration(*timeout))]
    Timeout { command: String, timeout: Duration },
    #[error("`{command}` failed with exit code {code}: {stderr}")]
    Failed {
        command: String,
        code: i32,
        stderr: String,
    },
    #[error("cannot write the compose override file {path}: {source}")]
    Override {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ComposeError {
    /// The failure category: read from compose's own message where it says what went wrong.
    pub fn category(&self) -> Category {
        match self {
            ComposeError::NotFound | ComposeError::Override { .. } => Category::ConfigInvalid,
            ComposeError::Spawn { .. } => Category::DaemonUnavailable,
            ComposeError::Timeout { .. } => Category::Timeout,
            ComposeError::Failed { stderr, .. } => classify(stderr),
        }
    }
}

/// The category of a failed compose command, from its stderr (v1 and v2 wordings).
pub fn classify(stderr: &str) -> Category {
    let lower = stderr.to_ascii_lowercase();
    if lower.contains("couldn't connect to docker daemon")
        || lower.contains("cannot connect to the docker daemon")
        || lower.contains("error during connect")
        || lower.contains("is the docker daemon running")
    {
        Category::DaemonUnavailable
    } else if lower.contains("is unhealthy") || lower.contains("dependency failed to start") {
        Category::HealthFailed
    } else if lower.contains("pull access denied")
        || lower.contains("no such image")
        || lower.contains("manifest unknown")
        || lower.contains("repository does not exist")
    {
        Category::ImageNotFound
    } else if lower.contains("port is already allocated")
        || lower.contains("address already in use")
    {
        Category::PortConflict
    } else if (lower.contains("oci runtime") || lower.contains("exec:"))
        && lower.contains("executable file not found")
    {
        Category::CommandNotFound
    } else if lower.contains("is invalid")
        || lower.contains("unsupported config option")
        || lower.contains("additional properties are not allowed")
        || lower.contains("validating")
        || lower.contains("no such service")
    {
        Category::ConfigInvalid
    } else {
        Category::NonzeroExit
    }
}

/// Which compose was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeTool {
    /// `docker` (the plugin) or `docker-compose`.
    pub program: PathBuf,
    /// Arguments before compose's own: `["compose"]` for the plugin.
    pub prefix: Vec<String>,
    /// What `version --short` said.
    pub version: String,
}

impl ComposeTool {
    /// `docker compose 2.24.5` or `docker-compose 1.29.2`, for records and messages.
    pub fn describe(&self) -> String {
        let program = self.program.display().to_string();
        let words: Vec<&str> = std::iter::once(program.as_str())
            .chain(self.prefix.iter().map(String::as_str))
            .collect();
        format!("{} {}", words.join(" "), self.version)
    }
}

/// The compose on this machine, looked for once per process: the `docker compose`
/// plugin first, then `docker-compose`. `None` when neither answers `version`.
pub async fn detect() -> Option<ComposeTool> {
    static TOOL: OnceCell<Option<ComposeTool>> = OnceCell::const_new();
    TOOL.get_or_init(|| async {
        let candidates = [
            (PathBuf::from("docker"), vec!["compose".to_owned()]),
            (PathBuf::from("docker-compose"), Vec::new()),
        ];
        for (program, prefix) in candidates {
            if let Some(tool) = probe(program, prefix).await {
                return Some(tool);
            }
        }
        None
    })
    .await
    .clone()
}

/// Environment variables through which Python's `requests` (docker-compose 1.x) picks a
/// CA bundle over the one a TLS daemon's `DOCKER_CERT_PATH` names.
const CA_BUNDLE_VARIABLES: [&str; 2] = ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"];

/// Whether `program prefix… version --short` answers; the tool if it does.
async fn probe(program: PathBuf, prefix: Vec<String>) -> Option<ComposeTool> {
    let output = process::Command::new(&program)
        .args(&prefix)
        .args(["version", "--short"])
        .stderr(Output::Null)
        .output(DETECT_TIMEOUT, 4096)
        .await
        .ok()?;
    let version = output.stdout.text.trim().trim_start_matches('v').to_owned();
    // `docker compose` without the plugin prints the CLI's usage and fails; a version starts with a digit.
    (output.success() && version.starts_with(|c: char| c.is_ascii_digit())).then_some(ComposeTool {
        program,
        prefix,
        version,
    })
}

/// A service as the compose file declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeService {
    pub name: String,
    pub image: Option<String>,
    /// Whether the file gives it a healthcheck (the image may have one too).
    pub healthcheck: bool,
    /// `restart:`, if set.
    pub restart: Option<String>,
    /// Whether compose builds its image (`build:`): the image then carries the run label too.
    pub build: bool,
    /// `profiles:`: a service with some is started only when one of them is active.
    pub profiles: Vec<String>,
    /// `depends_on:` as (service, condition); the list form means `service_started`.
    pub depends_on: Vec<(String, String)>,
}

impl ComposeService {
    /// Whether `up` starts this service with `active` profiles.
    pub fn is_active(&self, active: &[String]) -> bool {
        self.profiles.is_empty() || self.profiles.iter().any(|profile| active.contains(profile))
    }
}

impl ComposeFile {
    /// The services `up` starts with `active` profiles.
    pub fn active_services(&self, active: &[String]) -> Vec<&ComposeService> {
        self.services
            .iter()
            .filter(|service| service.is_active(active))
            .collect()
    }

    /// Services another depends on with `condition: service_completed_successfully`: one-shot
    /// services, done when they have exited 0.
    pub fn run_to_completion(&self) -> std::collections::BTreeSet<String> {
        self.services
            .iter()
            .flat_map(|service| &service.depends_on)
            .filter(|(_, condition)| condition == "service_completed_successfully")
            .map(|(dependency, _)| dependency.clone())
            .collect()
    }
}

/// A service's `depends_on`: a list of names, or a mapping of name → `{ condition }`.
fn depends_on(service: &Value) -> Vec<(String, String)> {
    match service.get("depends_on") {
        Some(Value::Array(names)) => names
            .iter()
            .filter_map(Value::as_str)
            .map(|name| (name.to_owned(), "service_started".to_owned()))
            .collect(),
        Some(Value::Object(entries)) => entries
            .iter()
            .map(|(name, entry)| {
                let condition = entry
                    .get("condition")
                    .and_then(Value::as_str)
                    .unwrap_or("service_started");
                (name.clone(), condition.to_owned())
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A service's `profiles:` (names; anything else in the list is not a profile).
fn profiles(service: &Value) -> Vec<String> {
    service
        .get("profiles")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// What a compose file declares that dockproof needs: services, and the networks
/// and volumes the project will create (external ones are not the project's).
#[derive(Debug, Clone, PartialEq)]
pub struct ComposeFile {
    /// The file's `version:` (compose v1 wants the override file to say the same).
    pub version: Option<Value>,
    pub services: Vec<ComposeService>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
    /// Whether some service uses the implicit `default` network.
    pub default_network: bool,
    /// Services' bind mounts of host paths (`./data:/data`, `type: bind`), in file order.
    pub host_binds: Vec<HostBind>,
}

/// A service volume that mounts a path of the daemon's filesystem: it only holds what
/// the compose file means when the daemon sees the same files as dockproof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostBind {
    pub service: String,
    /// The path as written (`./data`, `/srv/x`, `~/y`, `${DIR}`).
    pub source: String,
    pub line: usize,
    pub column: usize,
}

/// The host path a service volume entry binds, if it binds one: short syntax
/// `SOURCE:TARGET[:MODE]` whose source is a path (not a volume name), or long syntax
/// with `type: bind`. `/data` alone is an anonymous volume, not a bind.
fn bound_host_path(entry: &Value) -> Option<String> {
    match entry {
        Value::String(text) => {
            let (source, _) = text.split_once(':')?;
            let is_path = source.starts_with(['/', '.', '~']) || source.contains("${");
            is_path.then(|| source.to_owned())
        }
        Value::Object(long) => {
            let bind = long.get("type").and_then(Value::as_str) == Some("bind");
            bind.then(|| {
                long.get("source")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            })
        }
        _ => None,
    }
}

/// A compose file that cannot be used, with where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct ComposeFileError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl ComposeFileError {
    fn at(span: SourceSpan, message: impl Into<String>) -> Self {
        ComposeFileError {
            line: span.start.line.max(1),
            column: span.start.column.max(1),
            message: message.into(),
        }
    }
}

fn not_external(entry: &Value) -> bool {
    // `external: true`, or the older `external: { name: … }`.
    !matches!(
        entry.get("external"),
        Some(Value::Bool(true) | Value::Object(_))
    )
}

/// Read a compose file's text.
pub fn parse(text: &str) -> Result<ComposeFile, ComposeFileError> {
    let located =
        yaml::parse(text).map_err(|error| ComposeFileError::at(error.span, error.with_hint()))?;
    let document = &located.value;
    let spans = &located.spans;
    let Some(services) = document.get("services").and_then(Value::as_object) else {
        return Err(ComposeFileError::at(
            spans.value(""),
            "no top-level `services:` mapping",
        ));
    };
    if services.is_empty() {
        return Err(ComposeFileError::at(
            spans.value("/services"),
            "`services:` is empty",
        ));
    }
    let mut parsed = ComposeFile {
        version: document.get("version").cloned(),
        services: Vec::new(),
        networks: Vec::new(),
        volumes: Vec::new(),
        default_network: false,
        host_binds: Vec::new(),
    };
    for (name, service) in services {
        let pointer = format!("/services/{}", yaml::escape_segment(name));
        if !service.is_object() {
            return Err(ComposeFileError::at(
                spans.value(&pointer),
                format!("service `{name}` is not a mapping"),
            ));
        }
        if service.get("image").is_none() && service.get("build").is_none() {
            return Err(ComposeFileError::at(
                spans.key(&pointer),
                format!("service `{name}` has neither `image` nor `build`"),
            ));
        }
        let disabled = service
            .pointer("/healthcheck/disable")
            .and_then(Value::as_bool)
            == Some(true);
        parsed.services.push(ComposeService {
            name: name.clone(),
            image: service
                .get("image")
                .and_then(Value::as_str)
                .map(str::to_owned),
            healthcheck: service.get("healthcheck").is_some() && !disabled,
            restart: service
                .get("restart")
                .and_then(Value::as_str)
                .map(str::to_owned),
            build: service.get("build").is_some(),
            profiles: profiles(service),
            depends_on: depends_on(service),
        });
        for (index, entry) in service
            .get("volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(source) = bound_host_path(entry) {
                let span = spans.value(&format!("{pointer}/volumes/{index}"));
                parsed.host_binds.push(HostBind {
                    service: name.clone(),
                    source,
                    line: span.start.line.max(1),
                    column: span.start.column.max(1),
                });
            }
        }
        let mode = service.get("network_mode").and_then(Value::as_str);
        if service.get("networks").is_none() && mode.is_none() {
            parsed.default_network = true;
        }
    }
    parsed.services.sort_by(|a, b| a.name.cmp(&b.name));
    for (key, target) in [
        ("networks", &mut parsed.networks),
        ("volumes", &mut parsed.volumes),
    ] {
        if let Some(declared) = document.get(key).and_then(Value::as_object) {
            target.extend(
                declared
                    .iter()
                    .filter(|(_, entry)| entry.is_null() || not_external(entry))
                    .map(|(name, _)| name.clone()),
            );
        }
    }
    Ok(parsed)
}

/// Read a compose file from disk.
pub fn parse_file(path: &Path) -> Result<ComposeFile, ComposeFileError> {
    let text = crate::input_file::read_config(path).map_err(|error| ComposeFileError {
        line: 1,
        column: 1,
        message: format!("cannot read it: {error}"),
    })?;
    parse(&text)
}

/// The project name for a scenario of a run: unique per run, so parallel runs
/// (and the same scenario on several backends at once) never share a project.
/// Lowercase letters, digits and `-`, as compose v1 and v2 both accept.
pub fn project_name(run_id: &str, scenario_slug: &str) -> String {
    let clean = |text: &str| -> String {
        let mut out = String::new();
        for character in text.chars() {
            if character.is_ascii_alphanumeric() {
                out.push(character.to_ascii_lowercase());
            } else if !out.ends_with('-') {
                out.push('-');
            }
        }
        out.trim_matches('-').to_owned()
    };
    format!("dockproof-{}-{}", clean(run_id), clean(scenario_slug))
}

/// The override document: `labels` on every service, every image compose builds
/// (`build.labels`, so `sweep` and `clean` find it by the run label), every project
/// network (the implicit `default` one when a service uses it) and every project volume.
pub fn override_document(file: &ComposeFile, labels: &BTreeMap<String, String>) -> Value {
    let labels: Map<String, Value> = labels
        .iter()
        .map(|(key, value)| (key.clone(), Value::String(value.clone())))
        .collect();
    let labelled = || json!({ "labels": labels.clone() });
    let mut document = Map::new();
    if let Some(version) = &file.version {
        document.insert("version".into(), version.clone());
    }
    document.insert(
        "services".into(),
        Value::Object(
            file.services
                .iter()
                .map(|service| {
                    let mut entry = labelled();
                    if service.build {
                        // Merged into the file's `build:` (a string context or a mapping) by v1 and v2.
                        entry["build"] = labelled();
                    }
                    (service.name.clone(), entry)
                })
                .collect(),
        ),
    );
    let mut networks: Map<String, Value> = file
        .networks
        .iter()
        .map(|name| (name.clone(), labelled()))
        .collect();
    if file.default_network && !networks.contains_key("default") {
        networks.insert("default".into(), labelled());
    }
    if !networks.is_empty() {
        document.insert("networks".into(), Value::Object(networks));
    }
    if !file.volumes.is_empty() {
        document.insert(
            "volumes".into(),
            Value::Object(
                file.volumes
                    .iter()
                    .map(|name| (name.clone(), labelled()))
                    .collect(),
            ),
        );
    }
    Value::Object(document)
}

/// What a compose command printed.
#[derive(Debug)]
pub struct ComposeOutput {
    pub stdout: Captured,
    pub stderr: Captured,
}

/// One compose project: the tool, its name, its files (the scenario's and the override).
#[derive(Debug, Clone)]
pub struct Project {
    pub tool: ComposeTool,
    pub name: String,
    pub files: Vec<PathBuf>,
    /// Environment that points compose at the backend's daemon.
    pub env: Vec<(OsString, OsString)>,
    /// Profiles made active (`--profile`) on every command.
    pub profiles: Vec<String>,
}

impl Project {
    /// Write the override next to the run's files (`dir`) and describe the project.
    pub fn prepare(
        tool: ComposeTool,
        name: String,
        file: &Path,
        parsed: &ComposeFile,
        labels: &BTreeMap<String, String>,
        dir: &Path,
        env: Vec<(OsString, OsString)>,
    ) -> Result<Project, ComposeError> {
        let path = dir.join(format!("{name}.override.json"));
        let text = serde_json::to_string_pretty(&override_document(parsed, labels))
            .expect("a JSON value always serialises");
        std::fs::write(&path, text).map_err(|source| ComposeError::Override {
            path: path.clone(),
            source,
        })?;
        Ok(Project {
            tool,
            name,
            files: vec![file.to_path_buf(), path],
            env,
            profiles: Vec::new(),
        })
    }

    /// The whole argv after the program: prefix, global options, then `args`.
    pub fn argv(&self, args: &[&str]) -> Vec<String> {
        let mut argv = self.tool.prefix.clone();
        argv.extend([
            "--ansi".to_owned(),
            "never".to_owned(),
            "--project-name".to_owned(),
            self.name.clone(),
        ]);
        for file in &self.files {
            argv.extend(["--file".to_owned(), file.display().to_string()]);
        }
        for profile in &self.profiles {
            argv.extend(["--profile".to_owned(), profile.clone()]);
        }
        argv.extend(args.iter().map(|arg| (*arg).to_owned()));
        argv
    }

    /// Run `compose … ARGS` within `timeout`; a non-zero exit is `Failed` with stderr's tail.
    pub async fn run(
        &self,
        args: &[&str],
        timeout: Duration,
    ) -> Result<ComposeOutput, ComposeError> {
        let argv = self.argv(args);
        let mut words = vec![self.tool.program.display().to_string()];
        words.extend(self.tool.prefix.iter().cloned());
        words.extend(args.first().map(|arg| (*arg).to_owned()));
        let described = words.join(" ");
        let mut command = process::Command::new(&self.tool.program).args(&argv);
        let tls = ["DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY"]
            .iter()
            .any(|name| {
                self.env.iter().any(|(key, _)| key == name) || std::env::var_os(name).is_some()
            });
        if tls {
            // Python's requests lets these win over the daemon's CA from DOCKER_CERT_PATH, so
            // docker-compose 1.x fails verification where a machine sets them for other
            // servers (docker/docker-py#2433, docker/compose#2770); they are not the daemon's.
            for variable in CA_BUNDLE_VARIABLES {
                command = command.env_remove(variable);
            }
        }
        // Its own process group (a Ctrl-C at the terminal reaches dockproof, which tears
        // down), killed with what compose started on timeout or when the step is dropped.
        let finished = command
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .output(timeout, OUTPUT_LIMIT)
            .await
            .map_err(|error| match error {
                ProcessError::Spawn { program, source }
                | ProcessError::Wait { program, source } => ComposeError::Spawn { program, source },
                ProcessError::Timeout { timeout, .. } => ComposeError::Timeout {
                    command: described.clone(),
                    timeout,
                },
            })?;
        let code = finished.code;
        let output = ComposeOutput {
            stdout: finished.stdout,
            stderr: finished.stderr,
        };
        if code == 0 {
            return Ok(output);
        }
        Err(ComposeError::Failed {
            command: described,
            code,
            stderr: output.stderr.tail_lines(12).join("\n"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STACK: &str = "\
version: '3.8'
services:
  db:
    image: example/db:1
    healthcheck: { test: [CMD, true] }
    restart: always
    volumes: [data:/data]
  web:
    image: example/web:1
    networks: [front]
  host-tool:
    build: .
    network_mode: host
networks:
  front: {}
  shared: { external: true }
volumes:
  data:
  outside: { external: true }
";

    #[test]
    fn host_bind_mounts_are_found_at_their_line() {
        let text = "\
services:
  app:
    image: example/app:1
    volumes:
      - data:/data
      - ./conf:/etc/app:ro
      - /cache
      - type: bind
        source: /srv/x
        target: /x
      - { type: volume, source: data, target: /y }
  side:
    image: example/side:1
    volumes: [\"${HOME}/y:/y\", \"~/z:/z\"]
volumes:
  data:
";
        let parsed = parse(text).unwrap();
        let found: Vec<(&str, &str, usize)> = parsed
            .host_binds
            .iter()
            .map(|bind| (bind.service.as_str(), bind.source.as_str(), bind.line))
            .collect();
        assert_eq!(
            found,
            [
                ("app", "./conf", 6),
                ("app", "/srv/x", 8),
                ("side", "${HOME}/y", 14),
                ("side", "~/z", 14)
            ]
        );
        assert!(parse(STACK).unwrap().host_binds.is_empty());
    }

    fn labels() -> BTreeMap<String, String> {
        [
            ("dockproof.run".to_owned(), "r1".to_owned()),
            ("dockproof.scenario".to_owned(), "live".to_owned()),
        ]
        .into()
    }

    #[test]
    fn reads_services_and_the_project_networks_and_volumes() {
        let file = parse(STACK).unwrap();
        let names: Vec<&str> = file
            .services
            .iter()
            .map(|service| service.name.as_str())
            .collect();
        assert_eq!(names, ["db", "host-tool", "web"]);
        assert_eq!(
            file.services[0],
            ComposeService {
                name: "db".into(),
                image: Some("example/db:1".into()),
                healthcheck: true,
                restart: Some("always".into()),
                build: false,
                profiles: Vec::new(),
                depends_on: Vec::new(),
            }
        );
        assert!(!file.services[2].healthcheck);
        assert_eq!(file.networks, ["front"]);
        assert_eq!(file.volumes, ["data"]);
        assert!(file.default_network, "db uses the implicit default network");
        assert_eq!(file.version, Some(json!("3.8")));
    }

    #[test]
    fn profiles_and_depends_on_conditions_are_read() {
        let file = parse(
            "services:\n  migrate:\n    image: x:1\n  web:\n    image: x:1\n    depends_on:\n      migrate: { condition: service_completed_successfully }\n      cache: { condition: service_healthy }\n  cache:\n    image: x:1\n  worker:\n    image: x:1\n    depends_on: [cache]\n  debug:\n    image: x:1\n    profiles: [debug, tools]\n",
        )
        .unwrap();
        let active = |profiles: &[&str]| -> Vec<String> {
            let profiles: Vec<String> = profiles.iter().map(|p| (*p).to_owned()).collect();
            file.active_services(&profiles)
                .iter()
                .map(|service| service.name.clone())
                .collect()
        };
        assert_eq!(active(&[]), ["cache", "migrate", "web", "worker"]);
        assert_eq!(
            active(&["tools"]),
            ["cache", "debug", "migrate", "web", "worker"]
        );
        assert_eq!(
            file.run_to_completion().into_iter().collect::<Vec<_>>(),
            ["migrate"]
        );
        let worker = file.services.iter().find(|s| s.name == "worker").unwrap();
        assert_eq!(
            worker.depends_on,
            [("cache".to_owned(), "service_started".to_owned())]
        );
    }

    #[test]
    fn the_override_labels_every_service_network_and_volume_the_project_creates() {
        let document = override_document(&parse(STACK).unwrap(), &labels());
        let expected_labels = json!({ "dockproof.run": "r1", "dockproof.scenario": "live" });
        assert_eq!(
            document["version"],
            json!("3.8"),
            "compose v1 refuses files of different versions"
        );
        for service in ["db", "web", "host-tool"] {
            assert_eq!(
                document["services"][service]["labels"], expected_labels,
                "{service}"
            );
        }
        // The image compose builds is the run's too; a pulled image is not labelled.
        assert_eq!(
            document["services"]["host-tool"]["build"]["labels"],
            expected_labels
        );
        assert!(document["services"]["db"].get("build").is_none());
        assert_eq!(document["networks"]["default"]["labels"], expected_labels);
        assert_eq!(document["networks"]["front"]["labels"], expected_labels);
        assert_eq!(document["volumes"]["data"]["labels"], expected_labels);
        // External objects are not the project's: compose refuses labels on them, and `down` leaves them.
        assert!(
            document["networks"].get("shared").is_none()
                && document["volumes"].get("outside").is_none(),
            "{document:#}"
        );
        assert_eq!(document["networks"].as_object().unwrap().len(), 2);
    }

    #[test]
    fn without_a_version_or_a_default_network_the_override_says_nothing_of_them() {
        let file =
            parse("services:\n  a:\n    image: x:1\n    networks: [n]\nnetworks:\n  n: {}\n")
                .unwrap();
        let document = override_document(&file, &labels());
        assert!(
            document.get("version").is_none() && document.get("volumes").is_none(),
            "{document:#}"
        );
        assert_eq!(
            document["networks"]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["n"]
        );
    }

    #[test]
    fn unusable_files_are_reported_at_their_line() {
        assert_eq!(
            parse("volumes: {}\n").unwrap_err().message,
            "no top-level `services:` mapping"
        );
        let error =
            parse("services:\n  a:\n    image: x:1\n  b:\n    restart: always\n").unwrap_err();
        assert_eq!(
            (error.line, error.message.as_str()),
            (4, "service `b` has neither `image` nor `build`")
        );
        let error = parse("services:\n  a: [\n").unwrap_err();
        assert!(error.line >= 2, "{error}");
    }

    #[test]
    fn project_names_are_unique_per_run_and_compose_safe() {
        assert_eq!(
            project_name("r6740a3b2f1c2d", "compose-live-stack"),
            "dockproof-r6740a3b2f1c2d-compose-live-stack"
        );
        assert_eq!(project_name("Fleet_W1-3", "x"), "dockproof-fleet-w1-3-x");
        assert_ne!(project_name("r1", "s"), project_name("r2", "s"));
    }

    #[test]
    fn the_project_argv_names_the_project_and_both_files() {
        let project = Project {
            tool: ComposeTool {
                program: "docker".into(),
                prefix: vec!["compose".into()],
                version: "2.24.5".into(),
            },
            name: "dockproof-r1-s".into(),
            files: vec!["/s/docker-compose.yml".into(), "/w/o.json".into()],
            env: Vec::new(),
            profiles: Vec::new(),
        };
        assert_eq!(
            project.argv(&["up", "-d"]).join(" "),
            "compose --ansi never --project-name dockproof-r1-s --file /s/docker-compose.yml --file /w/o.json up -d"
        );
        let with_profiles = Project {
            profiles: vec!["debug".into()],
            ..project.clone()
        };
        assert_eq!(
            with_profiles.argv(&["down"]).join(" "),
            "compose --ansi never --project-name dockproof-r1-s --file /s/docker-compose.yml --file /w/o.json --profile debug down"
        );
        assert_eq!(project.tool.describe(), "docker compose 2.24.5");
    }

    #[test]
    fn compose_messages_map_to_categories() {
        for (stderr, category) in [
            (
                "ERROR: for web  Container \"abc\" is unhealthy.",
                Category::HealthFailed,
            ),
            (
                "dependency failed to start: container x is unhealthy",
                Category::HealthFailed,
            ),
            (
                "ERROR: Couldn't connect to Docker daemon at http+docker://localhost - is it running?",
                Category::DaemonUnavailable,
            ),
            (
                "ERROR: pull access denied for nosuch/img, repository does not exist",
                Category::ImageNotFound,
            ),
            (
                "Bind for 0.0.0.0:8080 failed: port is already allocated",
                Category::PortConflict,
            ),
            (
                "ERROR: The Compose file './x.yml' is invalid because:\nservices.a.restart contains an invalid type",
                Category::ConfigInvalid,
            ),
            (
                "ERROR: for a  Cannot start service a: something else",
                Category::NonzeroExit,
            ),
        ] {
            assert_eq!(classify(stderr), category, "{stderr}");
        }
    }
}
