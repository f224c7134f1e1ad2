//! `create` and `run`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{CommandError, Outcome, UsageError, daemon_error, err, find_image, load_images, out};
use crate::flags::{Arity, CommandSpec, Flag, Kind, Parsed};
use crate::health::{HealthConfig, parse_duration};
use crate::image::{Image, normalize_reference, repository_of};
use crate::ports::{PortRequest, parse_publish};
use crate::size;
use crate::state::{Container, MountRecord, RunState, StateDir, container_id};

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
    value(
        "env-file",
        None,
        "list",
        "Read in a file of environment variables",
    ),
    value("volume", Some('v'), "list", "Bind mount a volume"),
    value(
        "mount",
        None,
        "mount",
        "Attach a filesystem mount to the container",
    ),
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
    value("cap-add", None, "list", "Add Linux capabilities"),
    boolean(
        "privileged",
        None,
        "Give extended privileges to this container",
    ),
    value("expose", None, "list", "Expose a port or a range of ports"),
    value(
        "health-cmd",
        None,
        "string",
        "Command to run to check health",
    ),
    value(
        "health-interval",
        None,
        "duration",
        "Time between running the check (ms|s|m|h) (default 0s)",
    ),
    value(
        "health-timeout",
        None,
        "duration",
        "Maximum time to allow one check to run (ms|s|m|h) (default 0s)",
    ),
    value(
        "health-retries",
        None,
        "int",
        "Consecutive failures needed to report unhealthy",
    ),
    value(
        "health-start-period",
        None,
        "duration",
        "Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)",
    ),
    boolean(
        "no-healthcheck",
        None,
        "Disable any container-specified HEALTHCHECK",
    ),
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
        "restart",
        None,
        "string",
        "Restart policy to apply when a container exits (default \"no\")",
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
    /// Exit 125 with the usage text.
    Usage(UsageError),
    /// A daemon answer; `preamble` is printed first (the "Unable to find image" line).
    Daemon {
        preamble: String,
        message: String,
    },
    Internal(CommandError),
    /// Something fake-docker does not model: the reason, exit 125.
    Unmodelled(String),
}

impl From<CommandError> for CreateFailure {
    fn from(error: CommandError) -> Self {
        CreateFailure::Internal(error)
    }
}

impl From<UsageError> for CreateFailure {
    fn from(error: UsageError) -> Self {
        CreateFailure::Usage(error)
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

/// Whether `--platform` names the platform of the fake's images (linux/amd64).
fn native_platform(platform: &str) -> bool {
    let mut parts = platform.split('/');
    let os = parts.next().unwrap_or_default().to_ascii_lowercase();
    let arch = parts.next().unwrap_or("amd64").to_ascii_lowercase();
    os == "linux" && matches!(arch.as_str(), "amd64" | "x86_64" | "x86-64")
}

/// `--security-opt` values the docker CLI itself refuses (measured: `bogus` →
/// `Invalid --security-opt: "bogus"`; `seccomp=/missing.json` → the CLI cannot open it).
fn cli_security_opt_problem(option: &str) -> Option<String> {
    let (key, value) = match option.split_once(['=', ':']) {
        Some(pair) => pair,
        None if option == "no-new-privileges" => return None,
        None => return Some(format!("Invalid --security-opt: {option:?}")),
    };
    if key == "seccomp"
        && value != "unconfined"
        && value != "builtin"
        && let Err(e) = std::fs::metadata(value)
    {
        let reason = if e.kind() == std::io::ErrorKind::NotFound {
            "no such file or directory".to_string()
        } else {
            e.to_string()
        };
        return Some(format!(
            "opening seccomp profile ({value}) failed: open {value}: {reason}"
        ));
    }
    None
}

/// The number of CPUs the daemon counts (its process's CPU affinity, as Go's NumCPU).
fn host_cpus() -> i64 {
    // SAFETY: a zeroed cpu_set_t is valid; sched_getaffinity only writes into it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            return i64::from(libc::CPU_COUNT(&set)).max(1);
        }
    }
    std::thread::available_parallelism().map_or(1, |n| i64::try_from(n.get()).unwrap_or(1))
}

/// The host-config limits the daemon refuses at create (measured on 20.10: exit 125 for
/// `run`, 1 for `create`, with these messages).
/// The daemon's answer to a `--restart` policy: its refusal of an invalid one (measured
/// on 20.10), or `None` for `no`. Any other valid policy is `Err`: the fake does not
/// model restarting containers, and says so rather than accept it silently.
fn restart_problem(parsed: &Parsed) -> Result<Option<String>, String> {
    let Some(policy) = parsed.last("restart").filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let (name, count) = match policy.split_once(':') {
        Some((name, count)) => (name, count.parse::<i64>().ok()),
        None => (policy, None),
    };
    match (name, count) {
        ("no", None) => Ok(None),
        (_, Some(count)) if count < 0 => Ok(Some("maximum retry count cannot be negative".into())),
        ("always" | "unless-stopped" | "no", Some(_)) => Ok(Some(format!(
            "maximum retry count cannot be used with restart policy '{name}'"
        ))),
        ("always" | "unless-stopped" | "on-failure", _) => Err(format!(
            "fake-docker does not model `--restart {policy}` (restarting containers): run it on a real daemon"
        )),
        _ => Ok(Some(format!("invalid restart policy '{name}'"))),
    }
}

fn daemon_limit_problem(parsed: &Parsed) -> Option<String> {
    if let Some(nano) = parsed.last("cpus").and_then(|c| parse_cpus(c).ok()) {
        let cpus = host_cpus();
        if nano != 0 && (nano < 10_000_000 || nano > cpus.saturating_mul(1_000_000_000)) {
            return Some(format!(
                "Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
            ));
        }
    }
    let memory = parsed
        .last("memory")
        .and_then(|m| size::parse_ram_size(m).ok())
        .unwrap_or(0);
    if memory > 0 && memory < 6 * 1024 * 1024 {
        return Some("Minimum memory limit allowed is 6MB".into());
    }
    let swap = parsed
        .last("memory-swap")
        .and_then(|m| {
            if m == "-1" {
                Some(-1)
            } else {
                size::parse_ram_size(m).ok()
            }
        })
        .unwrap_or(0);
    if swap > 0 && memory == 0 {
        return Some(
            "You should always set the Memory limit when using Memoryswap limit, see usage".into(),
        );
    }
    if swap > 0 && swap < memory {
        return Some(
            "Minimum memoryswap limit should be larger than memory limit, see usage".into(),
        );
    }
    // The daemon's parse of each `key=value` option (its message counts the split parts).
    const KNOWN: [&str; 6] = [
        "label",
        "apparmor",
        "seccomp",
        "no-new-privileges",
        "systempaths",
        "writable-cgroups",
    ];
    for option in parsed.all("security-opt") {
        if let Some((key, _)) = option.split_once(['=', ':'])
            && !KNOWN.contains(&key)
        {
            let parts = option.split(['=', ':']).count().min(2);
            return Some(format!("invalid --security-opt {parts}: {option:?}"));
        }
    }
    None
}

/// Prints a failure as `create` (exit 1) or `run` (exit 125) does.
fn report(spec: &CommandSpec, failure: CreateFailure) -> Outcome {
    match failure {
        CreateFailure::Usage(usage) => {
            err(&usage.stderr);
            Ok(usage.code)
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
        CreateFailure::Unmodelled(reason) => {
            err(&format!("{reason}\n"));
            Ok(125)
        }
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

/// The container's env first, as given, then each image entry whose name the container
/// does not set: the daemon's `merge(userConf, imageConf)` (measured: `-e A=1` on an image
/// with `PATH` inspects as `["A=1","PATH=…"]`).
fn merge_env(image_env: &[String], container_env: &[String]) -> Vec<String> {
    let key = |entry: &str| entry.split('=').next().unwrap_or_default().to_string();
    let mut merged = container_env.to_vec();
    for entry in image_env {
        if !container_env.iter().any(|own| key(own) == key(entry)) {
            merged.push(entry.clone());
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

/// `--env-file` files as the docker CLI reads them: a line per variable, leading
/// whitespace dropped, blank and `#` lines skipped, the value taken as it is after
/// the first `=` (no quotes, no escapes); a bare name takes the value from the
/// environment (and is left out when unset there).
pub(crate) fn read_env_files(paths: &[&str]) -> Result<Vec<String>, String> {
    let mut entries = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|error| {
            let reason = match error.kind() {
                std::io::ErrorKind::NotFound => "no such file or directory".to_owned(),
                std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
                _ => error.to_string(),
            };
            format!("open {path}: {reason}")
        })?;
        for line in text.lines() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.split_once('=') {
                Some((name, value)) => entries.push(format!("{}={value}", name.trim_start())),
                None => entries.extend(
                    std::env::var(line.trim())
                        .ok()
                        .map(|value| format!("{}={value}", line.trim())),
                ),
            }
        }
    }
    Ok(entries)
}

fn valid_name(name: &str) -> bool {
    let name = name.strip_prefix('/').unwrap_or(name);
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
    first_ok && name.len() >= 2 && bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// Where the daemon finds a host path: the path itself, or with `FAKE_DOCKER_REMOTE=1`
/// (a daemon on another machine, which does not see the client's files) the same path
/// below `remote-root/` in the state directory, the daemon's own filesystem.
pub fn host_path(state: &StateDir, path: &str) -> PathBuf {
    if crate::state::remote_mode() {
        state
            .root()
            .join("remote-root")
            .join(path.trim_start_matches('/'))
    } else {
        PathBuf::from(path)
    }
}

/// A `--mount` value (`type=bind|volume,source=…,target=…[,readonly]`), as the daemon reads
/// it: a bind source that does not exist is refused, not created.
fn parse_mount(state: &StateDir, text: &str) -> Result<MountRecord, String> {
    let mut kind = "volume";
    let mut source = None;
    let mut target = None;
    let mut read_only = false;
    for field in text.split(',') {
        let (key, value) = field.split_once('=').unwrap_or((field, ""));
        match key {
            "type" => kind = if value == "bind" { "bind" } else { "volume" },
            "source" | "src" => source = Some(value.to_string()),
            "target" | "dst" | "destination" => target = Some(value.to_string()),
            "readonly" | "ro" => read_only = value.is_empty() || value == "true" || value == "1",
            _ => {
                return Err(format!(
                    "invalid argument \"{text}\" for \"--mount\" flag: unexpected key '{key}' in '{field}'"
                ));
            }
        }
    }
    let Some(target) = target else {
        return Err("invalid mount config: must specify a target".to_string());
    };
    let source = source.unwrap_or_default();
    let source_path = if kind == "bind" {
        let path = host_path(state, &source);
        if !path.exists() {
            return Err(format!(
                "invalid mount config for type \"bind\": bind source path does not exist: {source}"
            ));
        }
        path
    } else if crate::objects::valid_volume_name(&source) {
        crate::objects::volume_data(state, &source)
    } else {
        return Err(format!(
            "create {source}: \"{source}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        ));
    };
    if kind == "volume" {
        let _ = std::fs::create_dir_all(&source_path);
    }
    let volume = (kind == "volume").then(|| source.clone());
    Ok(MountRecord {
        source: source_path,
        destination: target,
        read_only,
        // Measured: a `--mount` shows no mode, read-only or not (RW says it).
        mode: String::new(),
        volume,
        mount_flag: true,
    })
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
        host_path(state, source)
    } else if crate::objects::valid_volume_name(source) {
        // A named volume: kept in the state directory, like the daemon's volume store.
        crate::objects::volume_data(state, source)
    } else {
        // A relative source is a volume name, created by the daemon's volume store, which
        // refuses `../x` as `volume create` does (measured there: docs/real-docker-cli.md).
        // The fake used to create `../x` outside its state directory.
        return Err(format!(
            "create {source}: \"{source}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        ));
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
        volume: (!source.starts_with('/')).then(|| source.to_string()),
        mount_flag: false,
    })
}

/// Everything decided from the flags before the image is consulted.
struct Request {
    name: Option<String>,
    image_name: String,
    command: Vec<String>,
    pull: String,
    port_requests: Vec<PortRequest>,
    /// `--env-file` entries, read on the client as the CLI does.
    env_file_entries: Vec<String>,
}

/// The flag values docker refuses before contacting the daemon; the first check of
/// `create`/`run` (see `commands::check_values`).
pub(super) fn check_values(spec: &CommandSpec, parsed: &Parsed) -> Result<(), UsageError> {
    parse_request(spec, parsed).map(drop)
}

fn parse_request(spec: &CommandSpec, parsed: &Parsed) -> Result<Request, UsageError> {
    // The message quotes the value; that is what it names.
    let usage = |long: &str, value: &str, why: String| UsageError {
        code: 125,
        stderr: spec.invalid_value(long, value, &why),
        argument: value.to_string(),
    };
    let env_file_entries =
        read_env_files(&parsed.all("env-file")).map_err(|message| UsageError {
            code: 125,
            argument: "--env-file".into(),
            stderr: format!(
                "docker: {message}\n\nRun 'docker {} --help' for more information\n",
                spec.name
            ),
        })?;
    if let Some(memory) = parsed.last("memory") {
        size::parse_ram_size(memory).map_err(|e| usage("memory", memory, e.to_string()))?;
    }
    if let Some(cpus) = parsed.last("cpus") {
        parse_cpus(cpus).map_err(|e| usage("cpus", cpus, e))?;
    }
    // Measured: the CLI refuses a non-integer retry count and `--restart` with `--rm`.
    if let Some(policy) = parsed.last("restart") {
        let cli_error = |message: &str| UsageError {
            code: 125,
            argument: "--restart".into(),
            stderr: format!(
                "docker: {message}\n\nRun 'docker {} --help' for more information\n",
                spec.name
            ),
        };
        if let Some((_, count)) = policy.split_once(':')
            && count.parse::<i64>().is_err()
        {
            return Err(cli_error(
                "invalid restart policy format: maximum retry count must be an integer",
            ));
        }
        if parsed.bool("rm") && !matches!(policy, "" | "no") {
            return Err(cli_error(
                "conflicting options: cannot specify both --restart and --rm",
            ));
        }
    }
    for long in ["pids-limit", "stop-timeout", "health-retries"] {
        if let Some(text) = parsed.last(long) {
            parse_int(text).map_err(|e| usage(long, text, e))?;
        }
    }
    for long in ["health-interval", "health-timeout", "health-start-period"] {
        if let Some(text) = parsed.last(long) {
            parse_duration(text).map_err(|e| usage(long, text, e))?;
        }
    }
    for option in parsed.all("security-opt") {
        if let Some(problem) = cli_security_opt_problem(option) {
            return Err(UsageError {
                code: 125,
                stderr: format!(
                    "docker: {problem}\n\nRun 'docker {} --help' for more information\n",
                    spec.name
                ),
                argument: option.to_string(),
            });
        }
    }
    let mut port_requests = Vec::new();
    for text in parsed.all("publish") {
        let request = parse_publish(text).map_err(|e| UsageError {
            code: 125,
            stderr: format!(
                "docker: {}\n\nRun 'docker {} --help' for more information\n",
                e.0, spec.name
            ),
            argument: e.1,
        })?;
        port_requests.push(request);
    }
    let pull = parsed.last("pull").unwrap_or("missing").to_string();
    if !matches!(pull.as_str(), "always" | "missing" | "never") {
        return Err(UsageError {
            code: 125,
            stderr: spec.usage_error(&format!(
                "invalid pull option: '{pull}': must be one of \"always\", \"missing\" or \"never\""
            )),
            argument: pull,
        });
    }
    let image_name = parsed.positionals.first().cloned().unwrap_or_default();
    Ok(Request {
        name: parsed.last("name").map(str::to_string),
        image_name,
        command: parsed.positionals.iter().skip(1).cloned().collect(),
        pull,
        port_requests,
        env_file_entries,
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
    // Measured: create accepts an unknown network; start refuses it.
    let network_mode = parsed
        .last("network")
        .or_else(|| parsed.last("net"))
        .unwrap_or("default")
        .to_string();
    let memory = match parsed.last("memory") {
        Some(text) => size::parse_ram_size(text).unwrap_or(0),
        None => 0,
    };
    if memory > 0 && memory < 6 * 1024 * 1024 {
        return Err(daemon("Minimum memory limit allowed is 6MB".to_string()));
    }
    let mut labels: BTreeMap<String, String> = image.labels();
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
    for mount in parsed.all("mount") {
        mounts.push(parse_mount(state, mount).map_err(daemon)?);
    }
    let auto_remove = parsed.bool("rm");
    let mut exposed_ports = image.exposed();
    for text in parsed.all("expose") {
        exposed_ports.push(crate::ports::normalize_port(text));
    }
    exposed_ports.extend(
        request
            .port_requests
            .iter()
            .map(|r| r.container_port.clone()),
    );
    exposed_ports.sort();
    exposed_ports.dedup();
    let interactive = parsed.bool("interactive");
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
        env: merge_env(&image.config.env, &{
            // The CLI reads env files first, then `--env`: a later entry wins.
            let mut entries = request.env_file_entries.clone();
            entries.extend(env_entries(&parsed.all("env")));
            entries
        }),
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
        port_requests: request.port_requests.clone(),
        exposed_ports,
        healthcheck: healthcheck(parsed, image.healthcheck.as_ref()),
        cap_drop: capabilities(&parsed.all("cap-drop")),
        cap_add: capabilities(&parsed.all("cap-add")),
        tmpfs: parsed
            .all("tmpfs")
            .iter()
            .map(|t| match t.split_once(':') {
                Some((path, options)) => (path.to_string(), options.to_string()),
                None => (t.to_string(), String::new()),
            })
            .collect(),
        open_stdin: interactive,
        attach_stdin: interactive && !parsed.bool("detach"),
        attach_output: !parsed.bool("detach"),
        tty: parsed.bool("tty"),
        image_layers: image.layers,
        image_size: image.size,
        hostname: parsed.last("hostname").map(str::to_string),
        privileged: parsed.bool("privileged"),
        init: parsed.bool("init"),
        memory_swap: parsed.last("memory-swap").and_then(|text| {
            if text == "-1" {
                Some(-1)
            } else {
                size::parse_ram_size(text).ok()
            }
        }),
        replay: None,
        state: RunState::created(),
    })
}

/// `NET_RAW` → `CAP_NET_RAW` (measured); `ALL` stays.
fn capabilities(values: &[&str]) -> Vec<String> {
    values
        .iter()
        .map(|c| {
            let upper = c.to_ascii_uppercase();
            if upper == "ALL" || upper.starts_with("CAP_") {
                upper
            } else {
                format!("CAP_{upper}")
            }
        })
        .collect()
}

/// The image's health check with `--health-*` applied on top.
fn healthcheck(parsed: &Parsed, image: Option<&HealthConfig>) -> Option<HealthConfig> {
    if parsed.bool("no-healthcheck") {
        return Some(HealthConfig {
            test: vec!["NONE".to_string()],
            ..HealthConfig::default()
        });
    }
    let mut config = image.cloned().unwrap_or_default();
    let mut touched = image.is_some();
    if let Some(command) = parsed.last("health-cmd") {
        config.test = vec!["CMD-SHELL".to_string(), command.to_string()];
        touched = true;
    }
    let duration = |long: &str| parsed.last(long).and_then(|t| parse_duration(t).ok());
    if let Some(ns) = duration("health-interval") {
        config.interval_ns = ns;
        touched = true;
    }
    if let Some(ns) = duration("health-timeout") {
        config.timeout_ns = ns;
        touched = true;
    }
    if let Some(ns) = duration("health-start-period") {
        config.start_period_ns = ns;
        touched = true;
    }
    if let Some(retries) = parsed
        .last("health-retries")
        .and_then(|t| parse_int(t).ok())
    {
        config.retries = retries;
        touched = true;
    }
    touched.then_some(config)
}

/// Creates the container record; the common part of `create` and `run`.
fn create_container(
    spec: &CommandSpec,
    parsed: &Parsed,
    cli_removes: bool,
) -> Result<Container, CreateFailure> {
    let request = parse_request(spec, parsed)?;
    // Measured: `run -it` with a stdin that is no terminal stops in the CLI, exit 1,
    // before anything is created (`-t` alone runs).
    if spec.name == "run"
        && parsed.bool("tty")
        && parsed.bool("interactive")
        && !std::io::IsTerminal::is_terminal(&std::io::stdin())
    {
        return Err(CreateFailure::Usage(UsageError {
            code: 1,
            stderr: "the input device is not a TTY\n".to_string(),
            argument: String::new(),
        }));
    }
    let images = load_images()?;
    let reference = normalize_reference(&request.image_name);
    // An image of another platform than the fake's (linux/amd64) is not there locally.
    let other_platform = parsed.last("platform").is_some_and(|p| !native_platform(p));
    let found = find_image(&images, &request.image_name).filter(|_| !other_platform);
    let Some(image) = found else {
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
    if let Some(message) = daemon_limit_problem(parsed) {
        return Err(daemon(message));
    }
    match restart_problem(parsed) {
        Ok(None) => {}
        Ok(Some(message)) => return Err(daemon(message)),
        Err(refusal) => return Err(CreateFailure::Unmodelled(refusal)),
    }
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
    let named_mounts: Vec<String> = parsed
        .all("mount")
        .iter()
        .filter(|mount| !mount.split(',').any(|field| field == "type=bind"))
        .filter_map(|mount| {
            mount.split(',').find_map(|field| {
                field
                    .strip_prefix("source=")
                    .or_else(|| field.strip_prefix("src="))
                    .map(str::to_string)
            })
        })
        .collect();
    for volume in parsed
        .all("volume")
        .into_iter()
        .map(|volume| volume.split(':').next().unwrap_or_default().to_string())
        .chain(named_mounts)
    {
        let source = volume.as_str();
        if !source.is_empty() && !source.starts_with('/') {
            crate::objects::ensure_volume(
                &state,
                crate::objects::Volume {
                    name: source.to_string(),
                    driver: "local".to_string(),
                    labels: BTreeMap::new(),
                    options: BTreeMap::new(),
                },
            )?;
        }
    }
    state.save(&container)?;
    let root = state.rootfs_path(&container.id);
    std::fs::create_dir_all(&root).map_err(|source| crate::state::StateError::Io {
        action: "create",
        path: root.clone(),
        source,
    })?;
    install_files(&root, image)?;
    if container.open_stdin {
        make_fifo(&state.stdin_path(&container.id))?;
    }
    Ok(container)
}

/// Copies the image's `files:` (and a committed image's root snapshot) into a new
/// container's private root.
pub(crate) fn install_files(
    root: &std::path::Path,
    image: &Image,
) -> Result<(), crate::state::StateError> {
    use crate::image::{FileType, RecordedBytes};
    use std::os::unix::fs::PermissionsExt;
    // Directory modes last: a read-only directory must not keep its entries out.
    let mut directories = Vec::new();
    for (path, file) in &image.files {
        let host = root.join(path.trim_start_matches('/'));
        let io = |source| crate::state::StateError::Io {
            action: "install",
            path: host.clone(),
            source,
        };
        if let Some(parent) = host.parent() {
            create_dirs(root, parent).map_err(io)?;
        }
        match file.kind {
            FileType::File => {
                match &file.recorded {
                    Some(RecordedBytes::Bytes(bytes)) => std::fs::write(&host, bytes),
                    Some(RecordedBytes::Zeros(size)) => {
                        std::fs::File::create(&host).and_then(|made| made.set_len(*size))
                    }
                    None => std::fs::write(&host, &file.content),
                }
                .map_err(io)?;
                std::fs::set_permissions(&host, std::fs::Permissions::from_mode(file.mode_bits()))
                    .map_err(io)?;
            }
            FileType::Dir => {
                create_dirs(root, &host).map_err(io)?;
                directories.push((host.clone(), file.mode_bits()));
            }
            FileType::Symlink => {
                let _ = std::fs::remove_file(&host);
                std::os::unix::fs::symlink(file.target.as_deref().unwrap_or_default(), &host)
                    .map_err(io)?;
            }
        }
    }
    for (host, mode) in directories.into_iter().rev() {
        std::fs::set_permissions(&host, std::fs::Permissions::from_mode(mode)).map_err(
            |source| crate::state::StateError::Io {
                action: "install",
                path: host.clone(),
                source,
            },
        )?;
    }
    if let Some(snapshot) = &image.rootfs {
        crate::tar::copy_tree(snapshot, root).map_err(|source| crate::state::StateError::Io {
            action: "copy the committed root of",
            path: snapshot.clone(),
            source,
        })?;
    }
    Ok(())
}

/// `mkdir -p` whose new directories are 0755 whatever the umask, as image layers have them.
fn create_dirs(root: &std::path::Path, dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if dir.is_dir() || dir == root {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs(root, parent)?;
    }
    std::fs::create_dir(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
}

/// Creates the FIFO that carries an attached `-i` CLI's stdin to the program.
fn make_fifo(path: &std::path::Path) -> Result<(), crate::state::StateError> {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).map_err(|e| {
        crate::state::StateError::Io {
            action: "create fifo",
            path: path.to_path_buf(),
            source: std::io::Error::from(e),
        }
    })
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
    // Measured: `run -d` prints the ID even when the start then fails.
    if detach {
        out(&format!("{}\n", container.id));
    }
    let supervisor = match super::lifecycle::start_one(&state, &container.id)? {
        Ok(child) => child,
        Err(failure) => {
            if failure.unmodelled {
                err(&format!("fake-docker: {}\n", failure.message));
            } else {
                err(&format!(
                    "docker: Error response from daemon: {}\n\nRun 'docker run --help' for more information\n",
                    failure.message
                ));
            }
            if container.auto_remove {
                let _lock = state.lock()?;
                state.remove(&container.id)?;
            }
            return Ok(failure.run_code);
        }
    };
    if detach {
        return Ok(0);
    }
    if container.attach_stdin {
        forward_stdin(state.stdin_path(&container.id));
    }
    let code = super::lifecycle::follow_until_exit(&state, &container.id, supervisor, 0)?;
    if container.auto_remove {
        let _lock = state.lock()?;
        state.remove(&container.id)?;
    }
    Ok(code)
}

/// Copies this process's stdin into the container's FIFO, in the background; end of
/// input closes the FIFO, which the program sees as end of file.
fn forward_stdin(fifo: PathBuf) {
    std::thread::spawn(move || {
        // Opening blocks until the program opens the FIFO for reading (if it ever does).
        if let Ok(mut writer) = std::fs::OpenOptions::new().write(true).open(&fifo) {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut writer);
        }
    });
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
            vec!["A=2", "B=3", "PATH=/bin"]
        );
    }

    #[test]
    fn a_volume_source_that_is_no_volume_name_is_refused_not_created() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let state = StateDir::open(dir.path().join("state")).unwrap_or_else(|e| panic!("{e}"));
        let error = parse_volume(&state, "../../escape:/x")
            .err()
            .unwrap_or_default();
        assert!(error.starts_with("create ../../escape: \"../../escape\" includes invalid characters for a local volume name"), "{error}");
        // `state/volumes/../../escape` is `escape` beside the state directory.
        assert!(!dir.path().join("escape").exists());
        let mount = parse_volume(&state, "data:/data:ro").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mount.source, crate::objects::volume_data(&state, "data"));
        assert!(mount.read_only && mount.source.is_dir());
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
