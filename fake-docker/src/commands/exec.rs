//! `docker exec`: runs an image program inside a running container's context.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use super::{Outcome, daemon_error, err, find_container, out};
use crate::flags::{Arity, CommandSpec, Flag, Kind, Parsed};
use crate::paths::normalize;
use crate::program::{self, Context, ExecCheck, Invocation, StdOutput, StdinSource, check_exec};
use crate::state::{StateDir, Status};
use crate::supervisor;

/// `docker exec`.
pub const EXEC: CommandSpec = CommandSpec {
    name: "exec",
    usage: "exec [OPTIONS] CONTAINER COMMAND [ARG...]",
    about: "Execute a command in a running container",
    flags: &[
        Flag {
            long: "env",
            short: Some('e'),
            kind: Kind::Value("list"),
            help: "Set environment variables",
        },
        Flag {
            long: "env-file",
            short: None,
            kind: Kind::Value("list"),
            help: "Read in a file of environment variables",
        },
        Flag {
            long: "workdir",
            short: Some('w'),
            kind: Kind::Value("string"),
            help: "Working directory inside the container",
        },
        Flag {
            long: "user",
            short: Some('u'),
            kind: Kind::Value("string"),
            help: "Username or UID (format: \"<name|uid>[:<group|gid>]\")",
        },
        Flag {
            long: "detach",
            short: Some('d'),
            kind: Kind::Bool,
            help: "Detached mode: run command in the background",
        },
        Flag {
            long: "interactive",
            short: Some('i'),
            kind: Kind::Bool,
            help: "Keep STDIN open even if not attached",
        },
        Flag {
            long: "tty",
            short: Some('t'),
            kind: Kind::Bool,
            help: "Allocate a pseudo-TTY",
        },
        Flag {
            long: "privileged",
            short: None,
            kind: Kind::Bool,
            help: "Give extended privileges to the command",
        },
    ],
    interspersed: false,
    arity: Arity::AtLeast(2),
};

/// The real CLI prints an OCI exec failure on stdout, not stderr, ending in `\r\n`
/// (measured: docs/real-docker-cli.md), so the fake does too.
fn oci_exec_failure(reason: &str) -> String {
    format!(
        "OCI runtime exec failed: exec failed: unable to start container process: {reason}: unknown\r\n"
    )
}

/// `docker exec`.
pub fn exec(_spec: &CommandSpec, parsed: &Parsed) -> Outcome {
    let name = &parsed.positionals[0];
    let argv = &parsed.positionals[1..];
    // Read on the client before anything else, as the CLI does.
    let env_file_entries = match super::create::read_env_files(&parsed.all("env-file")) {
        Ok(entries) => entries,
        Err(message) => {
            err(&format!("{message}\n"));
            return Ok(1);
        }
    };
    // Measured: `exec -it` with a stdin that is no terminal stops in the CLI, exit 1.
    if parsed.bool("tty")
        && parsed.bool("interactive")
        && !std::io::IsTerminal::is_terminal(&std::io::stdin())
    {
        err("the input device is not a TTY\n");
        return Ok(1);
    }
    let state = StateDir::from_env()?;
    let Some(container) = find_container(&state, name)? else {
        daemon_error(&format!("No such container: {name}"));
        return Ok(1);
    };
    if container.state.status != Status::Running {
        daemon_error(&format!("Container {} is not running", container.id));
        return Ok(1);
    }
    let image = supervisor::image_of(&container)?;
    let programs = image
        .as_ref()
        .map(|i| i.programs.clone())
        .unwrap_or_default();
    // A command the image has no program for may have been recorded on a real daemon:
    // a matching recorded exec is replayed, one that does not match refuses the exec.
    if !parsed.bool("detach") && image.as_ref().is_none_or(|i| i.program(&argv[0]).is_none()) {
        let mut env: std::collections::BTreeMap<String, String> =
            crate::expand::env_vars(&env_file_entries)
                .into_iter()
                .collect();
        for entry in parsed.all("env") {
            match entry.split_once('=') {
                Some((key, value)) => {
                    env.insert(key.to_string(), value.to_string());
                }
                None => {
                    if let Ok(value) = std::env::var(entry) {
                        env.insert(entry.to_string(), value);
                    }
                }
            }
        }
        let call = crate::replay::ExecCall {
            argv,
            env,
            user: parsed.last("user").unwrap_or_default().to_string(),
            workdir: parsed.last("workdir").unwrap_or_default().to_string(),
        };
        match crate::replay::select_exec(&container, &call) {
            crate::replay::Selection::Play(replay) => {
                return Ok(crate::replay::play_exec(&container, &replay));
            }
            crate::replay::Selection::Refuse(reason) => {
                err(&format!("{reason}\n"));
                return Ok(125);
            }
            crate::replay::Selection::NotRecorded => {}
        }
    }
    let fs = crate::state::container_fs(&state, &container);
    // Measured: the runtime changes to the working directory before it looks the
    // command up, so a missing directory fails even for a command the fake refuses.
    let workdir = match parsed.last("workdir") {
        Some(dir) => normalize(&container.workdir, dir),
        None if container.workdir.is_empty() => "/".to_string(),
        None => container.workdir.clone(),
    };
    if !fs.resolve("/", &workdir).host.is_dir() {
        out(&oci_exec_failure(&format!(
            "chdir to cwd (\"{workdir}\") set in config.json failed: no such file or directory"
        )));
        return Ok(126);
    }
    if let Some(reason) = image.as_ref().and_then(|i| i.unmodelled(&argv[0])) {
        err(&format!("fake-docker: {reason}\n"));
        return Ok(125);
    }
    match check_exec(&fs, &container.workdir, &argv[0], &programs) {
        ExecCheck::Runnable => {}
        ExecCheck::PermissionDenied => {
            out(&oci_exec_failure(&format!(
                "exec: \"{}\": permission denied",
                argv[0]
            )));
            return Ok(126);
        }
        ExecCheck::NotFound => {
            out(&oci_exec_failure(&format!(
                "exec: \"{}\": executable file not found in $PATH",
                argv[0]
            )));
            return Ok(126);
        }
    }
    let Some(program) = image.as_ref().and_then(|i| i.program(&argv[0])) else {
        return Ok(126);
    };
    if parsed.bool("detach") {
        return spawn_detached(parsed, &env_file_entries, name, argv, &workdir);
    }
    let mut vars = crate::expand::env_vars(&container.env);
    vars.extend(crate::expand::env_vars(&env_file_entries));
    for entry in parsed.all("env") {
        match entry.split_once('=') {
            Some((key, value)) => {
                vars.insert(key.to_string(), value.to_string());
            }
            None => {
                if let Ok(value) = std::env::var(entry) {
                    vars.insert(entry.to_string(), value);
                }
            }
        }
    }
    let mut invocation = Invocation {
        fs,
        workdir,
        vars,
        args: argv[1..].to_vec(),
        on_ready: None,
        context: Context {
            memory_limit: container.memory,
            oom_marker: None,
            // What an exec allocates is not shown by `stats` (the fake keeps the main program's count).
            usage_file: None,
            stdin: if parsed.bool("interactive") {
                StdinSource::Inherit
            } else {
                StdinSource::Empty
            },
            programs,
            http: image.as_ref().map(|i| i.http.clone()).unwrap_or_default(),
        },
        allocated: 0,
        trap: None,
    };
    if parsed.bool("tty") {
        return Ok(program::run(
            program,
            &mut invocation,
            &mut program::TtyOutput(&mut StdOutput),
        ));
    }
    Ok(program::run(program, &mut invocation, &mut StdOutput))
}

/// `exec -d`: the same exec, attached, in a detached process with no output.
fn spawn_detached(
    parsed: &Parsed,
    env_file_entries: &[String],
    name: &str,
    argv: &[String],
    workdir: &str,
) -> Outcome {
    let Ok(exe) = std::env::current_exe() else {
        err("fake-docker: cannot find its own executable for exec -d\n");
        return Ok(126);
    };
    let mut command = Command::new(exe);
    command.arg("exec").arg("-w").arg(workdir);
    // Values from env files go by name through the environment, as dockproof passes
    // them: the env file may be gone by the time the detached exec starts.
    for entry in env_file_entries {
        let (key, value) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
        command.env(key, value).arg("-e").arg(key);
    }
    for entry in parsed.all("env") {
        command.arg("-e").arg(entry);
    }
    command.arg(name).args(argv);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    match command.spawn() {
        Ok(_) => Ok(0),
        Err(e) => {
            err(&format!("fake-docker: cannot start exec -d: {e}\n"));
            Ok(126)
        }
    }
}
