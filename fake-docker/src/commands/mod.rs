//! Command dispatch and the shared shapes of docker's answers.

mod build;
mod cp;
mod create;
mod exec;
mod imageio;
mod images;
mod inspect_json;
mod lifecycle;
mod listing;
mod network;
mod query;
mod stats;

use thiserror::Error;

use crate::flags::{CommandSpec, ParseError, Parsed};
use crate::image::{Image, ImageError};
use crate::state::{StateDir, StateError};
use crate::supervisor;

/// A failure that is the fake's own fault or environment, not a docker answer.
#[derive(Debug, Error)]
pub enum CommandError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Spawn(#[from] supervisor::SpawnError),
}

/// What a command returns: its exit code, or an internal failure.
pub type Outcome = Result<i32, CommandError>;

pub use crate::console::{daemon_error, err, out};
pub use lifecycle::{Waiter, served_wait};
pub use stats::{StatsStream, served_stats};

/// Runs a parsed command; its exit code.
pub type Handler = fn(&CommandSpec, &Parsed) -> Outcome;

fn registry() -> Vec<(&'static CommandSpec, Handler)> {
    vec![
        (&create::CREATE, create::create as Handler),
        (&create::RUN, create::run),
        (&lifecycle::START, lifecycle::start),
        (&lifecycle::STOP, lifecycle::stop),
        (&lifecycle::KILL, lifecycle::kill),
        (&lifecycle::WAIT, lifecycle::wait),
        (&lifecycle::RM, lifecycle::rm),
        (&exec::EXEC, exec::exec),
        (&query::LOGS, query::logs),
        (&query::PS, query::ps),
        (&query::INSPECT, query::inspect),
        (&query::CONTAINER_INSPECT, query::container_inspect),
        (&query::IMAGE_INSPECT, query::image_inspect),
        (&query::VERSION, query::version),
        (&query::INFO, query::info),
        (&images::IMAGES, images::images),
        (&images::IMAGE_LS, images::images),
        (&images::IMAGE_LIST, images::images),
        (&images::RMI, images::rmi),
        (&images::IMAGE_RM, images::rmi),
        (&images::IMAGE_REMOVE, images::rmi),
        (&images::PULL, images::pull),
        (&images::TAG, images::tag),
        (&images::IMAGE_TAG, images::tag),
        (&images::IMAGE_PULL, images::pull),
        (&stats::PORT, stats::port),
        (&cp::CP, cp::cp),
        (&imageio::SAVE, imageio::save),
        (&imageio::IMAGE_SAVE, imageio::save),
        (&imageio::COMMIT, imageio::commit),
        (&imageio::CONTAINER_COMMIT, imageio::commit),
        (&cp::CONTAINER_CP, cp::cp),
        (&build::BUILD, build::build),
        (&build::IMAGE_BUILD, build::build),
        (&stats::STATS, stats::stats),
        (&network::NETWORK_CREATE, network::network_create),
        (&network::NETWORK_RM, network::network_rm),
        (&network::NETWORK_REMOVE, network::network_rm),
        (&network::NETWORK_LS, network::network_ls),
        (&network::NETWORK_LIST, network::network_ls),
        (&network::NETWORK_INSPECT, network::network_inspect),
        (&network::VOLUME_CREATE, network::volume_create),
        (&network::VOLUME_RM, network::volume_rm),
        (&network::VOLUME_REMOVE, network::volume_rm),
        (&network::VOLUME_LS, network::volume_ls),
        (&network::VOLUME_LIST, network::volume_ls),
        (&network::VOLUME_INSPECT, network::volume_inspect),
    ]
}

/// Management commands: `docker GROUP SUBCOMMAND`.
const GROUPS: &[(&str, &str)] = &[
    ("container", "Manage containers"),
    ("image", "Manage images"),
    ("network", "Manage networks"),
    ("volume", "Manage volumes"),
];

/// `docker GROUP` help: its subcommands.
fn group_help(group: &str, about: &str) -> String {
    let mut text = format!("Usage:  docker {group} COMMAND\n\n{about}\n\nCommands:\n");
    let prefix = format!("{group} ");
    for (spec, _) in registry() {
        if let Some(sub) = spec.name.strip_prefix(&prefix) {
            text.push_str(&format!("  {sub:<11} {}\n", spec.about));
        }
    }
    text.push_str(&format!(
        "\nRun 'docker {group} COMMAND --help' for more information on a command.\n"
    ));
    text
}

/// Commands of the docker CLI 28 that fake-docker does not model: they are refused with
/// that reason (exit 1, like an unknown command), never answered as an unknown command (docker has them) nor
/// as a silent success.
const UNMODELLED_COMMANDS: &[&str] = &[
    "attach",
    "builder",
    "buildx",
    "checkpoint",
    "compose",
    "config",
    "context",
    "diff",
    "events",
    "export",
    "history",
    "import",
    "init",
    "load",
    "login",
    "logout",
    "manifest",
    "node",
    "pause",
    "plugin",
    "push",
    "rename",
    "restart",
    "search",
    "secret",
    "service",
    "stack",
    "swarm",
    "system",
    "top",
    "trust",
    "unpause",
    "update",
    "container attach",
    "container diff",
    "container export",
    "container pause",
    "container prune",
    "container rename",
    "container restart",
    "container top",
    "container unpause",
    "container update",
    "image history",
    "image import",
    "image load",
    "image prune",
    "image push",
    "network connect",
    "network disconnect",
    "network prune",
    "volume prune",
    "volume update",
];

/// The refusal of a docker command fake-docker does not model.
fn unmodelled_command(name: &str) -> UsageError {
    UsageError {
        code: 1,
        stderr: format!(
            "fake-docker does not model `docker {name}`: run it on a real daemon (docs/fake-docker.md#what-the-fake-models-and-what-it-refuses)\n"
        ),
        argument: name.to_string(),
    }
}

/// Global options docker accepts before the command; the fake ignores their values.
const GLOBAL_VALUE_FLAGS: &[&str] = &[
    "-H",
    "--host",
    "-c",
    "--context",
    "--config",
    "-l",
    "--log-level",
];
const GLOBAL_BOOL_FLAGS: &[&str] = &["-D", "--debug", "--tls", "--tlsverify"];

/// What an argument list asks for, decided before anything runs.
#[derive(Debug)]
pub enum Invocation {
    /// Help printed on stdout, exit 0 (`docker`, `docker --help`, `docker run --help`).
    Help(String),
    /// Help docker prints on stderr with exit 0 (measured: a bare `docker network`).
    GroupHelp(String),
    /// `docker --version`.
    Version,
    /// A command with its parsed flags and positionals.
    Command {
        spec: &'static CommandSpec,
        handler: Handler,
        parsed: Parsed,
    },
}

/// An argument list docker refuses before running anything: what it prints on stderr,
/// its exit code (125 for a bad flag, 1 for an unknown command or a wrong number of
/// arguments) and the argument the message names.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{stderr}")]
pub struct UsageError {
    pub code: i32,
    /// The offending flag, command or value, as it appears in `stderr`.
    pub argument: String,
    pub stderr: String,
}

/// Parses `args` (without the program name) the way the docker CLI does: global options,
/// management groups, the command's flags and its number of positionals. Pure: nothing is
/// printed and no state is touched.
pub fn parse(args: &[String]) -> Result<Invocation, UsageError> {
    let mut index = 0;
    while let Some(arg) = args.get(index) {
        let flag = arg.split('=').next().unwrap_or(arg);
        if GLOBAL_VALUE_FLAGS.contains(&flag) {
            index += if arg.contains('=') { 1 } else { 2 };
        } else if GLOBAL_BOOL_FLAGS.contains(&flag) || arg.starts_with("--tls") {
            index += 1;
        } else {
            break;
        }
    }
    let rest = &args[index.min(args.len())..];
    let Some(first) = rest.first() else {
        return Ok(Invocation::Help(top_help()));
    };
    match first.as_str() {
        "--help" | "-h" | "help" => return Ok(Invocation::Help(top_help())),
        "--version" | "-v" => return Ok(Invocation::Version),
        _ => {}
    }
    let registry = registry();
    // Management commands (`image rm`, `network ls`, `container X`).
    let (name, command_args) = match GROUPS.iter().find(|(group, _)| group == first) {
        Some((group, about)) => match rest.get(1).map(String::as_str) {
            None => return Ok(Invocation::GroupHelp(group_help(group, about))),
            Some("--help" | "-h") => return Ok(Invocation::Help(group_help(group, about))),
            Some(sub) => {
                let full = format!("{group} {sub}");
                if registry.iter().any(|(spec, _)| spec.name == full) {
                    (full, &rest[2..])
                } else if *group == "container" && matches!(sub, "ls" | "list") {
                    ("ps".to_string(), &rest[2..])
                } else if UNMODELLED_COMMANDS.contains(&full.as_str()) {
                    return Err(unmodelled_command(&full));
                } else if *group == "container" && registry.iter().any(|(spec, _)| spec.name == sub)
                {
                    (sub.to_string(), &rest[2..])
                } else {
                    return Err(UsageError {
                        code: 1,
                        stderr: format!(
                            "docker: unknown command: docker {full}\n\nUsage:  docker {group}{}\n\nRun 'docker {group} --help' for more information\n",
                            // Measured: only `volume`'s usage line names COMMAND.
                            if *group == "volume" { " COMMAND" } else { "" }
                        ),
                        argument: full,
                    });
                }
            }
        },
        None => (first.clone(), &rest[1..]),
    };
    // Every command goes through this one lookup: the place to hook per-command checks.
    let Some((spec, handler)) = registry.into_iter().find(|(spec, _)| spec.name == name) else {
        if UNMODELLED_COMMANDS.contains(&name.as_str()) {
            return Err(unmodelled_command(&name));
        }
        return Err(UsageError {
            code: 1,
            stderr: format!(
                "docker: unknown command: docker {name}\n\nRun 'docker --help' for more information\n"
            ),
            argument: name,
        });
    };
    match spec.parse(command_args) {
        Ok(parsed) => Ok(Invocation::Command {
            spec,
            handler,
            parsed,
        }),
        Err(ParseError::Help) => Ok(Invocation::Help(spec.help())),
        Err(ParseError::Usage { message, argument }) => Err(UsageError {
            code: 125,
            stderr: spec.usage_error(&message),
            argument,
        }),
        Err(ParseError::Arity(text)) => Err(UsageError {
            code: 1,
            stderr: text,
            argument: spec.name.to_string(),
        }),
    }
}

/// Checks the values of `run`/`create` flags that docker refuses before contacting the
/// daemon (`--memory`, `--cpus`, integers, durations, `-p`, `--pull`): the same check
/// those commands make first. Other commands have nothing to check here.
pub fn check_values(spec: &CommandSpec, parsed: &Parsed) -> Result<(), UsageError> {
    if spec.name == create::CREATE.name || spec.name == create::RUN.name {
        create::check_values(spec, parsed)
    } else {
        Ok(())
    }
}

/// The most a quick call ([`is_quick`]) may print: its answer must fit in a pipe's
/// buffer (64 KiB on Linux), so the call server that runs it in its own process never
/// waits on a reader.
pub const QUICK_OUTPUT: u64 = 32 * 1024;

/// Whether `args` is a call that neither blocks nor prints more than [`QUICK_OUTPUT`]
/// bytes, nor changes anything of the process that runs it: inspecting, listing,
/// creating, the log of a small container, removing containers that are not running.
/// The call server (`serve.rs`) answers such calls in its own process instead of forking
/// one; the answer is the same. Global flags (`-H`, `--config`) and anything that fails
/// to parse are not quick (they are answered by a fork, as always).
pub fn is_quick(args: &[String]) -> bool {
    if args.first().is_none_or(|first| first.starts_with('-')) {
        return false;
    }
    let Ok(Invocation::Command { spec, parsed, .. }) = parse(args) else {
        return false;
    };
    let few = parsed.positionals.len() <= 4;
    match spec.name {
        "create" => check_values(spec, &parsed).is_ok(),
        "inspect" | "container inspect" | "image inspect" => few,
        "ps" | "version" => true,
        "logs" => {
            few && !parsed.bool("follow")
                && !parsed.bool("timestamps")
                && !parsed.bool("details")
                && parsed.positionals.iter().all(|name| {
                    container_now(name).is_some_and(|(container, state)| {
                        std::fs::metadata(state.log_path(&container.id))
                            .is_ok_and(|log| log.len() <= QUICK_OUTPUT)
                    })
                })
        }
        // Removing a running container stops it first, which waits.
        "rm" => {
            few && parsed.positionals.iter().all(|name| {
                container_now(name).is_some_and(|(container, _)| {
                    container.state.status != crate::state::Status::Running
                        && !container.state.starting
                })
            })
        }
        _ => false,
    }
}

/// The container `name` names in this process's state directory, as it is now.
fn container_now(name: &str) -> Option<(crate::state::Container, StateDir)> {
    let state = StateDir::from_env().ok()?;
    let container = crate::state::find_container(&state, name).ok()??;
    Some((container, state))
}

/// Runs the CLI with `args` (without the program name) and returns the exit code.
pub fn main(args: &[String]) -> i32 {
    match args.first().map(String::as_str) {
        Some(supervisor::SUPERVISE) => {
            return supervisor::supervise(args.get(1).map_or("", String::as_str));
        }
        Some(supervisor::PROGRAM) => {
            return supervisor::program_main(args.get(1).map_or("", String::as_str));
        }
        _ => {}
    }
    // The global `-H`/`--host` (before the command) names the daemon, as DOCKER_HOST does.
    for (index, arg) in args.iter().enumerate() {
        if let Some(host) = arg
            .strip_prefix("--host=")
            .or_else(|| arg.strip_prefix("-H="))
        {
            crate::faults::set_host_flag(host);
            break;
        }
        if (arg == "-H" || arg == "--host")
            && let Some(host) = args.get(index + 1)
        {
            crate::faults::set_host_flag(host);
            break;
        }
        if !arg.starts_with('-') {
            break;
        }
    }
    let (spec, handler, parsed) = match parse(args) {
        Ok(Invocation::Help(text)) => {
            out(&text);
            return 0;
        }
        Ok(Invocation::GroupHelp(text)) => {
            err(&text);
            return 0;
        }
        Ok(Invocation::Version) => {
            out(&format!(
                "Docker version {}, build fake\n",
                crate::SERVER_VERSION
            ));
            return 0;
        }
        Ok(Invocation::Command {
            spec,
            handler,
            parsed,
        }) => (spec, handler, parsed),
        Err(usage) => {
            err(&usage.stderr);
            return usage.code;
        }
    };
    // Fault injection (FAKE_DOCKER_FAULTS): may answer the command itself.
    if let crate::faults::Decision::Exit(code) = crate::faults::dispatch(spec.name, &parsed) {
        return code;
    }
    match handler(spec, &parsed) {
        Ok(code) => code,
        Err(error) => failed(&error),
    }
}

/// What a command that failed with `error` prints and exits with.
pub fn failed(error: &CommandError) -> i32 {
    err(&format!("fake-docker: {error}\n"));
    125
}

fn top_help() -> String {
    let mut text = String::from(
        "\nUsage:  docker [OPTIONS] COMMAND\n\nA self-sufficient runtime for containers (fake-docker: deterministic, no daemon)\n\nCommands:\n",
    );
    for (spec, _) in registry() {
        if !spec.name.contains(' ') {
            text.push_str(&format!("  {:<14} {}\n", spec.name, spec.about));
        }
    }
    text.push_str("\nManagement Commands:\n");
    for (group, about) in GROUPS {
        text.push_str(&format!("  {group:<14} {about}\n"));
    }
    text.push_str("\nRun 'docker COMMAND --help' for more information on a command.\n");
    text
}

/// Loads the images named by `FAKE_DOCKER_IMAGES`, as `rmi`/`pull`/`build` left them.
pub fn load_images() -> Result<Vec<Image>, CommandError> {
    let state = StateDir::from_env()?;
    Ok(crate::imagestore::visible(&state, load_definitions()?)?)
}

/// Every fake image definition, whatever `rmi` did to it.
pub fn load_definitions() -> Result<Vec<Image>, ImageError> {
    crate::image::load_all(&crate::images_spec())
}

/// Finds an image by reference or ID.
pub fn find_image<'i>(images: &'i [Image], name: &str) -> Option<&'i Image> {
    images.iter().find(|image| image.matches(name))
}

pub use crate::state::find_container;
