//! `create` and `run`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::{CommandError, Outcome, daemon_error, err, find_image, load_images, out};
use crate::flags::{Arity, CommandSpec, Flag, Kind, Parsed};
use crate::image::{Image, normalize_reference, repository_of};
use crate::logfile::{self, Stream};
use crate::size;
use crate::state::{Container, MountRecord, RunState, StateDir, Status, container_id};

const fn value(
    long: &'static str,
    short: Option<char>,
    kind: &'static str,
    help: &'static str,
) -> Flag {
    Flag {
        long,
        short,
        kind: Kind::Value(kind),
        help,
    }
}

const fn boolean(long: &'static str, short: Option<char>, help: &'static str) -> Flag {
    Flag {
        long,
        short,
        kind: Kind::Bool,
        help,
    }
}

const CONTAINER_FLAGS: &[Flag] = &[
    value("name", None, "string", "Assign a name to the container"),
    boolean(
        "rm",
        None,
        "Automatically remove the container and its associated anonymous volumes when it exits",
    ),
    value("env", Some('e'), "list", "Set environment variables"),
    value("volume", Some('v'), "list", "Bind mount a volume"),
    value(
        "workdir",
        Some('w'),
        "string",
        "Working directory inside the container",
    ),
    value(
        "user",
        Some('u'),
        "string",
        "Username or UID (format: <name|uid>[:<group|gid>])",
    ),
    value("label", Some('l'), "list", "Set meta data on a container"),
    value("memory", Some('m'), "bytes", "Memory limit"),
    value(
        "memory-swap",
        None,
        "bytes",
        "Swap limit equal to memory plus swap: '-1' to enable unlimited swap",
    ),
    value("cpus", None, "decimal", "Number of CPUs"),
    value(
        "pids-limit",
        None,
        "int",
        "Tune container pids limit (set -1 for unlimited)",
    ),
    boolean(
        "read-only",
        None,
        "Mount the container's root filesystem as read only",
    ),
    value("security-opt", None, "list", "Security Options"),
    value("cap-drop", None, "list", "Drop Linux capabilities"),
    value(
        "network",
        None,
        "network",
        "Connect a container to a network",
    ),
    value(
        "net",
        None,
        "network",
        "Connect a container to a network (deprecated spelling)",
    ),
    value(
        "entrypoint",
        None,
        "string",
        "Overwrite the default ENTRYPOINT of the image",
    ),
    value(
        "pull",
        None,
        "string",
        "Pull image before creating (\"always\", \"missing\", \"never\")",
    ),
    value(
        "stop-timeout",
        None,
        "int",
        "Timeout (in seconds) to stop a container",
    ),
    value("hostname", Some('h'), "string", "Container host name"),
    value(
        "platform",
        None,
        "string",
        "Set platform if server is multi-platform capable",
    ),
    value("tmpfs", None, "list", "Mount a tmpfs directory"),
    value(
        "publish",
        Some('p'),
        "list",
        "Publish a container's port(s) to the host",
    ),
    boolean("init", None, "Run an init inside the container"),
    boolean(
        "interactive",
        Some('i'),
        "Keep STDIN open even if not attached",
    ),
    boolean("tty", Some('t'), "Allocate a pseudo-TTY"),
    boolean(
        "detach",
        Some('d'),
        "Run container in background and print container ID",
    ),
    boolean("quiet", Some('q'), "Suppress the pull output"),
];

/// `docker create`.
pub const CREATE: CommandSpec = CommandSpec {
    name: "create",
    usage: "create [OPTIONS] IMAGE [COMMAND] [ARG...]",
    about: "Create a new container",
    flags: CONTAINER_FLAGS,
    interspersed: false,
    arity: Arity::AtLeast(1),
};

/// `docker run`.
pub const RUN: CommandSpec = CommandSpec {
    name: "run",
    usage: "run [OPTIONS] IMAGE [COMMAND] [ARG...]",
    about: "Create and run a new container from an image",
    flags: CONTAINER_FLAGS,
    interspersed: false,
    arity: Arity::AtLeast(1),
};

/// How create/run failed, before printing.
enum CreateFailure {
    /// Exit 125 with the usage text (already formatted).
    Usage(String),
    /// A daemon answer; `preamble` is printed first (the "Unable to find image" line).
    Daemon {
        preamble: String,
        message: String,
    },
    Internal(CommandError),
}

impl From<CommandError> for CreateFailure {
    fn from(error: CommandError) -> Self {
        CreateFailure::Internal(error)
    }
}

impl From<crate::state::StateError> for CreateFailure {
    fn from(error: crate::state::StateError) -> Self {
        CreateFailure::Internal(error.into())
    }
}

fn daemon(message: String) -> CreateFailure {
    CreateFailure::Daemon {
        preamble: String::new(),
        message,
    }
}

/// Prints a failure as `create` (exit 1) or `run` (exit 125) does.
fn report(spec: &CommandSpec, failure: CreateFailure) -> Outcome {
    match failure {
        CreateFailure::Usage(text) => {
            err(&text);
            Ok(125)
        }
        CreateFailure::Daemon { preamble, message } => {
            err(&preamble);
            if spec.name == "run" {
                err(&format!(
                    "docker: Error response from daemon: {message}\n\nRun 'docker run --help' for more information\n"
                ));
                Ok(125)
            } else {
                daemon_error(&message);
                Ok(1)
            }
        }
        CreateFailure::Internal(error) => Err(error),
    }
}

/// Docker's NanoCPUs parsing (a rational number times 1e9, which must be whole).
fn parse_cpus(text: &str) -> Result<i64, String> {
    let rational = || format!("failed to parse {text} as a rational number");
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits_ok(whole) || !digits_ok(fraction) {
        return Err(rational());
    }
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > 9 {
        return Err("value is too precise".to_string());
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| rational())?
    };
    let fraction_nanos: i64 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<9}").parse().map_err(|_| rational())?
    };
    whole
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(fraction_nanos))
        .ok_or_else(rational)
}

fn parse_int(text: &str) -> Result<i64, String> {
    text.parse::<i64>()
        .map_err(|_| format!("strconv.ParseInt: parsing \"{text}\": invalid syntax"))
}

/// Replaces same-named entries and appends new ones, like the daemon merges env.
fn merge_env(image_env: &[String], container_env: &[String]) -> Vec<String> {
    let mut merged: Vec<String> = image_env.to_vec();
    for entry in container_env {
        let key = entry.split('=').next().unwrap_or(entry);
        match merged.iter_mut().find(|e| e.split('=').next() == Some(key)) {
            Some(existing) => *existing = entry.clone(),
            None => merged.push(entry.clone()),
        }
    }
    merged
}

/// `-e K` takes K from the caller's environment, or is dropped when unset.
fn env_entries(values: &[&str]) -> Vec<String> {
    values
        .iter()
        .filter_map(|v| {
            if v.contains('=') {
                Some(v.to_string())
            } else {
                std::env::var(v).ok().map(|value| format!("{v}={value}"))
            }
        })
        .collect()
}

fn valid_name(name: &str) -> bool {
    let name = name.strip_prefix('/').unwrap_or(name);
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
    first_ok && name.len() >= 2 && bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

fn parse_volume(state: &StateDir, text: &str) -> Result<MountRecord, String> {
    let parts: Vec<&str> = text.split(':').collect();
    let (source, destination, mode) = match parts.as_slice() {
        [source, destination] => (*source, *destination, ""),
        [source, destination, mode] => (*source, *destination, *mode),
        _ => return Err(format!("invalid volume specification: '{text}'")),
    };
    if !destination.starts_with('/') {
        return Err(format!(
            "invalid volume specification: '{text}': invalid mount config for type \"bind\": invalid mount path: '{destination}' mount path must be absolute"
        ));
    }
    let read_only = mode.split(',').any(|m| m == "ro");
    if !mode
        .split(',')
        .all(|m| matches!(m, "" | "ro" | "rw" | "z" | "Z"))
    {
        return Err(format!("invalid mode: {mode}"));
    }
    let source_path = if source.starts_with('/') {
        PathBuf::from(source)
    } else {
        // A named volume: kept in the state directory, like the daemon's volume store.
        state.root().join("volumes").join(source)
    };
    // The daemon creates a missing bind source as a directory.
    if !source_path.exists() {
        let _ = std::fs::create_dir_all(&source_path);
    }
    Ok(MountRecord {
        source: source_path,
        destination: destination.to_string(),
        read_only,
        mode: mode.to_string(),
    })
}

/// Everything decided from the flags before the image is consulted.
struct Request {
    name: Option<String>,
    image_name: String,
    command: Vec<String>,
    pull: String,
}

fn parse_request(spec: &CommandSpec, parsed: &Parsed) -> Result<Request, CreateFailure> {
    let usage = |long: &str, value: &str, why: String| {
        CreateFailure::Usage(spec.invalid_value(long, value, &why))
    };
    if let Some(memory) = parsed.last("memory") {
        size::parse_ram_size(memory).map_err(|e| usage("memory", memory, e.to_string()))?;
    }
    if let Some(cpus) = parsed.last("cpus") {
        parse_cpus(cpus).map_err(|e| usage("cpus", cpus, e))?;
    }
    for long in ["pids-limit", "stop-timeout"] {
        if let Some(text) = parsed.last(long) {
            parse_int(text).map_err(|e| usage(long, text, e))?;
        }
    }
    let pull = parsed.last("pull").unwrap_or("missing").to_string();
    if !matches!(pull.as_str(), "always" | "missing" | "never") {
        return Err(CreateFailure::Usage(spec.usage_error(&format!(
            "invalid pull option: '{pull}': must be one of \"always\", \"missing\" or \"never\""
        ))));
    }
    let image_name = parsed.positionals.first().cloned().unwrap_or_default();
    Ok(Request {
        name: parsed.last("name").map(str::to_string),
        image_name,
        command: parsed.positionals.iter().skip(1).cloned().collect(),
        pull,
    })
}

fn build_container(
    state: &StateDir,
    parsed: &Parsed,
    request: &Request,
    image: &Image,
    name: String,
    sequence: u64,
) -> Result<Container, CreateFailure> {
    let (entrypoint, cmd) = match parsed.last("entrypoint") {
        Some(entrypoint) => {
            let entrypoint: Vec<String> = if entrypoint.is_empty() {
                vec![]
            } else {
                vec![entrypoint.to_string()]
            };
            (Some(entrypoint), request.command.clone())
        }
        None => {
            let cmd = if request.command.is_empty() {
                image.config.cmd.clone()
            } else {
                request.command.clone()
            };
            let entrypoint =
                (!image.config.entrypoint.is_empty()).then(|| image.config.entrypoint.clone());
            (entrypoint, cmd)
        }
    };
    let mut argv: Vec<String> = entrypoint.clone().unwrap_or_default();
    argv.extend(cmd.iter().cloned());
    if argv.is_empty() {
        return Err(daemon("No command specified".to_string()));
    }
    let workdir = parsed
        .last("workdir")
        .map(str::to_string)
        .unwrap_or_else(|| image.config.workdir.clone());
    if !workdir.is_empty() && !workdir.starts_with('/') {
        return Err(daemon(format!(
            "the working directory '{workdir}' is invalid, it needs to be an absolute path"
        )));
    }
    let network_mode = parsed
        .last("network")
        .or_else(|| parsed.last("net"))
        .unwrap_or("default")
        .to_string();
    if !matches!(
        network_mode.as_str(),
        "default" | "bridge" | "host" | "none"
    ) {
        return Err(daemon(format!("network {network_mode} not found")));
    }
    let memory = match parsed.last("memory") {
        Some(text) => size::parse_ram_size(text).unwrap_or(0),
        None => 0,
    };
    if memory > 0 && memory < 6 * 1024 * 1024 {
        return Err(daemon("Minimum memory limit allowed is 6MB".to_string()));
    }
    let mut labels: BTreeMap<String, String> = image.config.labels.clone();
    for label in parsed.all("label") {
        let (key, value) = label.split_once('=').unwrap_or((label, ""));
        labels.insert(key.to_string(), value.to_string());
    }
    let mut mounts = Vec::new();
    let mut binds = Vec::new();
    for volume in parsed.all("volume") {
        mounts.push(parse_volume(state, volume).map_err(daemon)?);
        binds.push(volume.to_string());
    }
    let auto_remove = parsed.bool("rm");
    Ok(Container {
        id: container_id(&name),
        name,
        sequence,
        image_name: request.image_name.clone(),
        image_id: image.id.clone(),
        path: argv[0].clone(),
        args: argv[1..].to_vec(),
        user: parsed
            .last("user")
            .map(str::to_string)
            .unwrap_or_else(|| image.config.user.clone()),
        env: merge_env(&image.config.env, &env_entries(&parsed.all("env"))),
        cmd,
        entrypoint: entrypoint.filter(|e| !e.is_empty()),
        workdir,
        labels,
        binds,
        mounts,
        network_mode,
        auto_remove,
        cli_removes: false,
        read_only: parsed.bool("read-only"),
        security_opt: parsed
            .all("security-opt")
            .iter()
            .map(|s| s.to_string())
            .collect(),
        memory,
        nano_cpus: parsed
            .last("cpus")
            .and_then(|c| parse_cpus(c).ok())
            .unwrap_or(0),
        pids_limit: parsed
            .last("pids-limit")
            .and_then(|p| parse_int(p).ok())
            .filter(|p| *p > 0),
        stop_timeout: parsed.last("stop-timeout").and_then(|p| parse_int(p).ok()),
        state: RunState {
            status: Status::Created,
            pid: 0,
            supervisor_pid: 0,
            exit_code: 0,
            error: String::new(),
            started: false,
            finished: false,
            starting: false,
        },
    })
}

/// Creates the container record; the common part of `create` and `run`.
fn create_container(
    spec: &CommandSpec,
    parsed: &Parsed,
    cli_removes: bool,
) -> Result<Container, CreateFailure> {
    let request = parse_request(spec, parsed)?;
    let images = load_images().map_err(CommandError::from)?;
    let reference = normalize_reference(&request.image_name);
    let Some(image) = find_image(&images, &request.image_name) else {
        if request.pull == "never" {
            return Err(daemon(format!("No such image: {reference}")));
        }
        return Err(CreateFailure::Daemon {
            preamble: format!("Unable to find image '{reference}' locally\n"),
            message: format!(
                "pull access denied for {}, repository does not exist or may require 'docker login': denied: requested access to the resource is denied",
                repository_of(&reference)
            ),
        });
    };
    if let Some(name) = &request.name
        && !valid_name(name)
    {
        return Err(daemon(format!(
            "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    let state = StateDir::from_env()?;
    let _lock = state.lock()?;
    let existing = state.all()?;
    let sequence = existing.iter().map(|c| c.sequence).max().unwrap_or(0) + 1;
    let name = match &request.name {
        Some(name) => {
            let name = name.strip_prefix('/').unwrap_or(name).to_string();
            if let Some(other) = existing.iter().find(|c| c.name == name) {
                return Err(daemon(format!(
                    "Conflict. The container name \"/{name}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                    other.id
                )));
            }
            name
        }
        None => loop {
            let candidate = format!("fake_{}", state.next_counter()?);
            if !existing.iter().any(|c| c.name == candidate) {
                break candidate;
            }
        },
    };
    let mut container = build_container(&state, parsed, &request, image, name, sequence)?;
    container.cli_removes = cli_removes && container.auto_remove;
    state.save(&container)?;
    let root = state.rootfs_path(&container.id);
    std::fs::create_dir_all(&root).map_err(|source| crate::state::StateError::Io {
        action: "create",
        path: root.clone(),
        source,
    })?;
    Ok(container)
}

/// `docker create`.
pub fn create(spec: &CommandSpec, parsed: &Parsed) -> Outcome {
    match create_container(spec, parsed, false) {
        Ok(container) => {
            out(&format!("{}\n", container.id));
            Ok(0)
        }
        Err(failure) => report(spec, failure),
    }
}

/// `docker run`.
pub fn run(spec: &CommandSpec, parsed: &Parsed) -> Outcome {
    let detach = parsed.bool("detach");
    let container = match create_container(spec, parsed, !detach) {
        Ok(container) => container,
        Err(failure) => return report(spec, failure),
    };
    let state = StateDir::from_env()?;
    let supervisor = match super::lifecycle::start_one(&state, &container.id)? {
        Ok(child) => child,
        Err(message) => {
            err(&format!(
                "docker: Error response from daemon: {message}\n\nRun 'docker run --help' for more information\n"
            ));
            if container.auto_remove {
                let _lock = state.lock()?;
                state.remove(&container.id)?;
            }
            // Docker's exit code for "command not found" / "cannot invoke".
            return Ok(if message.contains("executable file not found") {
                127
            } else {
                126
            });
        }
    };
    if detach {
        out(&format!("{}\n", container.id));
        return Ok(0);
    }
    let code = follow_until_exit(&state, &container.id, supervisor)?;
    if container.auto_remove {
        let _lock = state.lock()?;
        state.remove(&container.id)?;
    }
    Ok(code)
}

/// Streams a container's log to stdout/stderr until it exits; returns its exit code.
pub(super) fn follow_until_exit(
    state: &StateDir,
    id: &str,
    supervisor: Option<std::process::Child>,
) -> Result<i32, CommandError> {
    let mut supervisor = supervisor;
    let log = state.log_path(id);
    let mut offset = 0u64;
    loop {
        // Look at the state before reading, so output written before the exit is not lost.
        let current = state.load(id)?;
        let finished = current
            .as_ref()
            .is_none_or(|c| c.state.status != Status::Running && !c.state.starting);
        for (stream, bytes) in logfile::read_new(&log, &mut offset).unwrap_or_default() {
            let text = String::from_utf8_lossy(&bytes);
            match stream {
                Stream::Stdout => out(&text),
                Stream::Stderr => err(&text),
            }
        }
        if finished {
            return Ok(current.map_or(0, |c| c.state.exit_code));
        }
        if let Some(child) = supervisor.as_mut() {
            // Reap the supervisor when it is done so it does not linger as a zombie.
            if let Ok(Some(_)) = child.try_wait() {
                supervisor = None;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_like_docker() {
        assert_eq!(parse_cpus("0.5"), Ok(500_000_000));
        assert_eq!(parse_cpus("2"), Ok(2_000_000_000));
        assert_eq!(parse_cpus(".25"), Ok(250_000_000));
        assert_eq!(
            parse_cpus("x"),
            Err("failed to parse x as a rational number".into())
        );
        assert_eq!(
            parse_cpus("0.0000000001"),
            Err("value is too precise".into())
        );
    }

    #[test]
    fn env_merges_like_the_daemon() {
        let image = vec!["PATH=/bin".to_string(), "A=1".to_string()];
        let container = vec!["A=2".to_string(), "B=3".to_string()];
        assert_eq!(
            merge_env(&image, &container),
            vec!["PATH=/bin", "A=2", "B=3"]
        );
    }

    #[test]
    fn names_follow_docker_rules() {
        assert!(valid_name("t1"));
        assert!(valid_name("dockproof-run_1.a"));
        assert!(!valid_name("-x"));
        assert!(!valid_name("a b"));
        assert!(!valid_name("a"));
    }
}
