//! Command dispatch and the shared shapes of docker's answers.

mod build;
mod cp;
mod create;
mod exec;
mod imageio;
mod images;
mod lifecycle;
mod listing;
mod network;
mod query;
mod stats;

use std::io::Write;

use thiserror::Error;

use crate::flags::{CommandSpec, ParseError, Parsed};
use crate::image::{Image, ImageError};
use crate::state::{Container, Lookup, StateDir, StateError};
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

/// Prints to stdout, ignoring a closed pipe.
pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

/// Prints to stderr.
pub fn err(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr
        .write_all(text.as_bytes())
        .and_then(|()| stderr.flush());
}

/// `Error response from daemon: ...` on its own line.
pub fn daemon_error(message: &str) {
    err(&format!("Error response from daemon: {message}\n"));
}

type Handler = fn(&CommandSpec, &Parsed) -> Outcome;

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
        out(&top_help());
        return 0;
    };
    match first.as_str() {
        "--help" | "-h" | "help" => {
            out(&top_help());
            return 0;
        }
        "--version" | "-v" => {
            out(&format!(
                "Docker version {}, build fake\n",
                crate::SERVER_VERSION
            ));
            return 0;
        }
        _ => {}
    }
    let registry = registry();
    // Management commands (`image rm`, `network ls`, `container X`).
    let (name, command_args) = match GROUPS.iter().find(|(group, _)| group == first) {
        Some((group, about)) => match rest.get(1).map(String::as_str) {
            None => {
                // Measured: `docker network` prints its help on stderr and exits 0.
                err(&group_help(group, about));
                return 0;
            }
            Some("--help" | "-h") => {
                out(&group_help(group, about));
                return 0;
            }
            Some(sub) => {
                let full = format!("{group} {sub}");
                if registry.iter().any(|(spec, _)| spec.name == full) {
                    (full, &rest[2..])
                } else if *group == "container" && registry.iter().any(|(spec, _)| spec.name == sub)
                {
                    (sub.to_string(), &rest[2..])
                } else {
                    err(&format!(
                        "docker: unknown command: docker {full}\n\nUsage:  docker {group}\n\nRun 'docker {group} --help' for more information\n"
                    ));
                    return 1;
                }
            }
        },
        None => (first.clone(), &rest[1..]),
    };
    // Every command goes through this one lookup: the place to hook per-command checks.
    let Some((spec, handler)) = registry.iter().find(|(spec, _)| spec.name == name) else {
        err(&format!(
            "docker: unknown command: docker {name}\n\nRun 'docker --help' for more information\n"
        ));
        return 1;
    };
    let parsed = match spec.parse(command_args) {
        Ok(parsed) => parsed,
        Err(ParseError::Help) => {
            out(&spec.help());
            return 0;
        }
        Err(ParseError::Usage(message)) => {
            err(&spec.usage_error(&message));
            return 125;
        }
        Err(ParseError::Arity(text)) => {
            err(&text);
            return 1;
        }
    };
    // Fault injection (FAKE_DOCKER_FAULTS): may answer the command itself.
    if let crate::faults::Decision::Exit(code) = crate::faults::dispatch(spec.name, &parsed) {
        return code;
    }
    match handler(spec, &parsed) {
        Ok(code) => code,
        Err(error) => {
            err(&format!("fake-docker: {error}\n"));
            125
        }
    }
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

/// Finds a container; `None` (after nothing printed) if missing or ambiguous.
pub fn find_container(state: &StateDir, name: &str) -> Result<Option<Container>, StateError> {
    Ok(match state.find(name)? {
        Lookup::Found(container) => Some(*container),
        Lookup::Missing | Lookup::Ambiguous => None,
    })
}
