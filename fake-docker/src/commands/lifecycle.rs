//! `start`, `stop`, `kill`, `wait`, `rm`.

use std::time::{Duration, Instant};

use super::{CommandError, Outcome, daemon_error, err, find_container, out};
use crate::flags::{Arity, CommandSpec, Flag, Kind, Parsed};
use crate::program::{ExecCheck, check_exec};
use crate::state::{Container, StateDir, Status};
use crate::supervisor;

const POLL: Duration = Duration::from_millis(10);
/// The first polls of a wait are this short: most fake programs end within milliseconds,
/// and a 10 ms poll was most of a short scenario's wait.
const FIRST_POLL: Duration = Duration::from_millis(1);
/// How many polls are short before they are [`POLL`] long (about 20 ms of them).
const FIRST_POLLS: u32 = 20;

/// The pause between a wait's polls: [`FIRST_POLL`] at first, then [`POLL`].
#[derive(Debug, Default)]
struct Pauses {
    taken: u32,
}

impl Pauses {
    /// The next pause's length.
    fn next(&mut self) -> Duration {
        self.taken = self.taken.saturating_add(1);
        if self.taken <= FIRST_POLLS {
            FIRST_POLL
        } else {
            POLL
        }
    }

    fn pause(&mut self) {
        std::thread::sleep(self.next());
    }
}
/// How long to wait for a SIGKILLed program to be recorded as exited.
const KILL_GRACE: Duration = Duration::from_secs(30);

/// `docker start`.
pub const START: CommandSpec = CommandSpec {
    name: "start",
    usage: "start [OPTIONS] CONTAINER [CONTAINER...]",
    about: "Start one or more stopped containers",
    flags: &[
        Flag {
            long: "attach",
            short: Some('a'),
            kind: Kind::Bool,
            help: "Attach STDOUT/STDERR and forward signals",
        },
        Flag {
            long: "interactive",
            short: Some('i'),
            kind: Kind::Bool,
            help: "Attach container's STDIN",
        },
    ],
    interspersed: true,
    arity: Arity::AtLeast(1),
};

/// `docker stop`.
pub const STOP: CommandSpec = CommandSpec {
    name: "stop",
    usage: "stop [OPTIONS] CONTAINER [CONTAINER...]",
    about: "Stop one or more running containers",
    flags: &[
        Flag {
            long: "timeout",
            short: Some('t'),
            kind: Kind::Value("int"),
            help: "Seconds to wait before killing the container",
        },
        Flag {
            long: "time",
            short: None,
            kind: Kind::Value("int"),
            help: "Seconds to wait before killing the container (deprecated)",
        },
        Flag {
            long: "signal",
            short: Some('s'),
            kind: Kind::Value("string"),
            help: "Signal to send to the container",
        },
    ],
    interspersed: true,
    arity: Arity::AtLeast(1),
};

/// `docker kill`.
pub const KILL: CommandSpec = CommandSpec {
    name: "kill",
    usage: "kill [OPTIONS] CONTAINER [CONTAINER...]",
    about: "Kill one or more running containers",
    flags: &[Flag {
        long: "signal",
        short: Some('s'),
        kind: Kind::Value("string"),
        help: "Signal to send to the container",
    }],
    interspersed: true,
    arity: Arity::AtLeast(1),
};

/// `docker wait`.
pub const WAIT: CommandSpec = CommandSpec {
    name: "wait",
    usage: "wait CONTAINER [CONTAINER...]",
    about: "Block until one or more containers stop, then print their exit codes",
    flags: &[],
    interspersed: true,
    arity: Arity::AtLeast(1),
};

/// `docker rm`.
pub const RM: CommandSpec = CommandSpec {
    name: "rm",
    usage: "rm [OPTIONS] CONTAINER [CONTAINER...]",
    about: "Remove one or more containers",
    flags: &[
        Flag {
            long: "force",
            short: Some('f'),
            kind: Kind::Bool,
            help: "Force the removal of a running container (uses SIGKILL)",
        },
        Flag {
            long: "volumes",
            short: Some('v'),
            kind: Kind::Bool,
            help: "Remove anonymous volumes associated with the container",
        },
        Flag {
            long: "link",
            short: Some('l'),
            kind: Kind::Bool,
            help: "Remove the specified link",
        },
    ],
    interspersed: true,
    arity: Arity::AtLeast(1),
};

/// The OCI runtime's answer when the command is not in the image.
pub fn not_found_message(command: &str) -> String {
    oci_create_failure(&format!(
        "exec: \"{command}\": executable file not found in $PATH"
    ))
}

/// A start the daemon refused: its message (recorded as `State.Error`) and the exit
/// code `docker run` gives for it (127 not found, 126 not executable, else 125).
pub struct StartFailure {
    pub message: String,
    pub run_code: i32,
    /// The fake's own refusal (a command it does not model), printed as `fake-docker: …`.
    pub unmodelled: bool,
}

/// Records a refused start on the container (status stays `created` when it never ran).
fn refuse(
    state: &StateDir,
    container: &mut Container,
    message: String,
    exit_code: i32,
    run_code: i32,
) -> Result<StartFailure, CommandError> {
    container.state.exit_code = exit_code;
    container.state.error = message.clone();
    container.state.starting = false;
    state.save(container)?;
    Ok(StartFailure {
        message,
        run_code,
        unmodelled: false,
    })
}

/// Starts a container. `Ok(Err(failure))` is a daemon error (already recorded);
/// `Ok(Ok(Some(child)))` is the new supervisor; `Ok(Ok(None))` means it was running.
pub fn start_one(
    state: &StateDir,
    id: &str,
) -> Result<Result<Option<supervisor::Supervisor>, StartFailure>, CommandError> {
    {
        let _lock = state.lock()?;
        let Some(mut container) = state.load(id)? else {
            return Ok(Err(StartFailure {
                message: format!("No such container: {id}"),
                run_code: 125,
                unmodelled: false,
            }));
        };
        if container.state.status == Status::Running || container.state.starting {
            drop(_lock);
            wait_until(state, id, |c| !c.state.starting);
            return Ok(Ok(None));
        }
        if crate::objects::find_network(state, &container.network_mode)?.is_none() {
            let message = format!("network {} not found", container.network_mode);
            return Ok(Err(refuse(state, &mut container, message, 128, 125)?));
        }
        let image = supervisor::image_of(&container)?;
        // A command without a program may have been recorded on a real daemon: a matching
        // recording is replayed, a recording that does not match refuses the start.
        let has_program = image
            .as_ref()
            .is_some_and(|i| i.program(&container.path).is_some());
        container.replay = None;
        if !has_program {
            match crate::replay::select(&container) {
                crate::replay::Selection::Play(replay) => container.replay = Some(replay),
                crate::replay::Selection::Refuse(reason) => {
                    let mut failure = refuse(state, &mut container, reason, 127, 125)?;
                    failure.unmodelled = true;
                    return Ok(Err(failure));
                }
                crate::replay::Selection::NotRecorded => {}
            }
        }
        if container.replay.is_some() {
            // Played from its recording: the image's programs and files are not asked.
        } else if let Some(reason) = image.as_ref().and_then(|i| i.unmodelled(&container.path)) {
            // Not the daemon's answer: the fake cannot know what the real command does.
            let mut failure = refuse(state, &mut container, reason, 127, 125)?;
            failure.unmodelled = true;
            return Ok(Err(failure));
        }
        if container.replay.is_none()
            && let Some(message) = image
                .as_ref()
                .and_then(|i| user_problem(i, &container.user))
        {
            return Ok(Err(refuse(state, &mut container, message, 128, 125)?));
        }
        let programs = image.map(|i| i.programs).unwrap_or_default();
        let fs = crate::state::container_fs(state, &container);
        let runnable = if container.replay.is_some() {
            ExecCheck::Runnable
        } else {
            check_exec(&fs, &container.workdir, &container.path, &programs)
        };
        match runnable {
            ExecCheck::Runnable => {}
            ExecCheck::PermissionDenied => {
                let message =
                    oci_create_failure(&format!("exec: \"{}\": permission denied", container.path));
                return Ok(Err(refuse(state, &mut container, message, 126, 126)?));
            }
            ExecCheck::NotFound => {
                let message = not_found_message(&container.path);
                return Ok(Err(refuse(state, &mut container, message, 127, 127)?));
            }
        }
        if crate::faults::fired(crate::faults::FaultKind::PortAllocated).is_some() {
            let message = injected_port_conflict(&container);
            return Ok(Err(refuse(state, &mut container, message, 128, 125)?));
        }
        supervisor::ensure_workdir(state, &container);
        container.state.starting = true;
        state.save(&container)?;
    }
    match supervisor::spawn(state, id) {
        Ok(child) => Ok(Ok(Some(child))),
        Err(error) => {
            let _lock = state.lock()?;
            let message = match &error {
                supervisor::SpawnError::Handshake(text) => text.clone(),
                other => other.to_string(),
            };
            if let Some(mut container) = state.load(id)? {
                container.state.published.clear();
                return Ok(Err(refuse(state, &mut container, message, 128, 125)?));
            }
            Ok(Err(StartFailure {
                message,
                run_code: 125,
                unmodelled: false,
            }))
        }
    }
}

/// The daemon's refusal of a `--user` (or image USER) naming a user or group the image's
/// `/etc/passwd` / `/etc/group` lacks (measured: the fixture images have no passwd file,
/// and `--user root` fails there too); numeric IDs need no entry.
fn user_problem(image: &crate::image::Image, user: &str) -> Option<String> {
    if user.is_empty() {
        return None;
    }
    let (name, group) = user.split_once(':').unwrap_or((user, ""));
    let listed = |file: &str, entry: &str| {
        image.files.get(file).is_some_and(|f| {
            f.content
                .lines()
                .any(|line| line.split(':').next() == Some(entry))
        })
    };
    let numeric = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !numeric(name) && !listed("/etc/passwd", name) {
        return Some(format!(
            "unable to find user {name}: no matching entries in passwd file"
        ));
    }
    if !group.is_empty() && !numeric(group) && !listed("/etc/group", group) {
        return Some(format!(
            "unable to find group {group}: no matching entries in group file"
        ));
    }
    None
}

/// The daemon's answer for a taken host port (`port-allocated` fault): the first
/// published host port, else the first exposed container port.
fn injected_port_conflict(container: &Container) -> String {
    let port = container
        .port_requests
        .iter()
        .map(|request| request.host_port.clone())
        .find(|port| !port.is_empty() && port != "0")
        .or_else(|| {
            let exposed = container.exposed_ports.first()?;
            Some(exposed.split('/').next().unwrap_or(exposed).to_string())
        })
        .unwrap_or_else(|| "80".to_string());
    format!(
        "driver failed programming external connectivity on endpoint {} ({}): Bind for 0.0.0.0:{port} failed: port is already allocated",
        container.name,
        crate::objects::object_id("endpoint", &container.name)
    )
}

/// The OCI runtime's create failure around `reason`.
pub fn oci_create_failure(reason: &str) -> String {
    format!(
        "failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: {reason}: unknown"
    )
}

/// Polls the record until `done` holds or the container is gone; returns the last record.
fn wait_until(state: &StateDir, id: &str, done: impl Fn(&Container) -> bool) -> Option<Container> {
    let mut pauses = Pauses::default();
    loop {
        match state.load(id) {
            Ok(Some(container)) if !done(&container) => {}
            Ok(found) => return found,
            Err(_) => return None,
        }
        pauses.pause();
    }
}

/// Like `wait_until`, giving up after `limit`.
fn wait_until_for(
    state: &StateDir,
    id: &str,
    limit: Duration,
    done: impl Fn(&Container) -> bool,
) -> bool {
    let deadline = Instant::now() + limit;
    let mut pauses = Pauses::default();
    loop {
        match state.load(id) {
            Ok(Some(container)) if !done(&container) => {}
            _ => return true,
        }
        if Instant::now() >= deadline {
            return false;
        }
        pauses.pause();
    }
}

fn not_running(container: &Container) -> bool {
    container.state.status != Status::Running && !container.state.starting
}

/// Signal names and numbers docker accepts (`KILL`, `SIGKILL`, `9`).
pub fn parse_signal(text: &str) -> Option<i32> {
    if let Ok(number) = text.parse::<i32>() {
        return (1..=64).contains(&number).then_some(number);
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    Some(match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "ALRM" => libc::SIGALRM,
        "STOP" => libc::SIGSTOP,
        "CONT" => libc::SIGCONT,
        "WINCH" => libc::SIGWINCH,
        _ => return None,
    })
}

fn send(pid: u32, signal: i32) {
    let (Ok(pid), Ok(signal)) = (
        libc::pid_t::try_from(pid),
        nix::sys::signal::Signal::try_from(signal),
    ) else {
        return;
    };
    if pid == 0 {
        return;
    }
    // A stale pid yields ESRCH, which is ignored: the process is gone already.
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
}

/// SIGKILLs a running container and waits until its exit is recorded.
pub fn kill_and_wait(state: &StateDir, container: &Container) {
    send(container.state.pid, libc::SIGKILL);
    wait_until_for(state, &container.id, KILL_GRACE, not_running);
}

/// `docker start`.
pub fn start(_spec: &CommandSpec, parsed: &Parsed) -> Outcome {
    let state = StateDir::from_env()?;
    let attach = parsed.bool("attach");
    if attach && parsed.positionals.len() > 1 {
        err("you cannot start and attach multiple containers at once\n");
        return Ok(1);
    }
    let mut failed = Vec::new();
    for name in &parsed.positionals {
        let Some(container) = find_container(&state, name)? else {
            daemon_error(&format!("No such container: {name}"));
            failed.push(name.clone());
            continue;
        };
        // `start -a` shows this run's output only, not what earlier runs logged.
        let logged = std::fs::metadata(state.log_path(&container.id)).map_or(0, |m| m.len());
        match start_one(&state, &container.id)? {
            // `start -a` streams the output instead of the name and exits with the code.
            Ok(supervisor) if attach => {
                return follow_until_exit(&state, &container.id, supervisor, logged);
            }
            Ok(_) => out(&format!("{name}\n")),
            Err(failure) if failure.unmodelled => {
                err(&format!("fake-docker: {}\n", failure.message));
                failed.push(name.clone());
            }
            Err(failure) => {
                daemon_error(&failure.message);
                failed.push(name.clone());
            }
        }
    }
    if failed.is_empty() {
        Ok(0)
    } else {
        err(&format!(
            "Error: failed to start containers: {}\n",
            failed.join(", ")
        ));
        Ok(1)
    }
}

/// `docker stop`.
pub fn stop(spec: &CommandSpec, parsed: &Parsed) -> Outcome {
    let timeout_text = parsed.last("timeout").or_else(|| parsed.last("time"));
    let timeout = match timeout_text {
        Some(text) => match text.parse::<i64>() {
            Ok(seconds) => Some(seconds),
            Err(_) => {
                let long = if parsed.last("timeout").is_some() {
                    "timeout"
                } else {
                    "time"
                };
                err(&spec.invalid_value(
                    long,
                    text,
                    &format!("strconv.ParseInt: parsing \"{text}\": invalid syntax"),
                ));
                return Ok(125);
            }
        },
        None => None,
    };
    let signal = match parsed.last("signal") {
        Some(text) => match parse_signal(text) {
            Some(signal) => signal,
            None => {
                daemon_error(&format!("Invalid signal: {text}"));
                return Ok(1);
            }
        },
        None => libc::SIGTERM,
    };
    let state = StateDir::from_env()?;
    let mut code = 0;
    for name in &parsed.positionals {
        let Some(container) = find_container(&state, name)? else {
            daemon_error(&format!("No such container: {name}"));
            code = 1;
            continue;
        };
        if container.state.status == Status::Running {
            let grace = timeout.or(container.stop_timeout).unwrap_or(10);
            if no_stop() {
                // The daemon waits out the grace, kills, and never sees the exit.
                std::thread::sleep(Duration::from_secs(grace.max(0) as u64));
                daemon_error(&format!(
                    "cannot stop container: {name}: {}",
                    crate::faults::NO_EXIT_EVENT
                ));
                code = 1;
                continue;
            }
            send(container.state.pid, signal);
            let limit = if grace < 0 {
                Duration::MAX / 4
            } else {
                Duration::from_secs(grace as u64)
            };
            if !wait_until_for(&state, &container.id, limit, not_running) {
                kill_and_wait(&state, &container);
            }
        }
        out(&format!("{name}\n"));
    }
    Ok(code)
}

/// `docker kill`.
pub fn kill(_spec: &CommandSpec, parsed: &Parsed) -> Outcome {
    let signal_text = parsed.last("signal").unwrap_or("KILL");
    let Some(signal) = parse_signal(signal_text) else {
        daemon_error(&format!("Invalid signal: {signal_text}"));
        return Ok(1);
    };
    let state = StateDir::from_env()?;
    let mut code = 0;
    for name in &parsed.positionals {
        let Some(container) = find_container(&state, name)? else {
            daemon_error(&format!(
                "Cannot kill container: {name}: No such container: {name}"
            ));
            code = 1;
            continue;
        };
        if container.state.status != Status::Running {
            daemon_error(&format!(
                "Cannot kill container: {name}: Container {} is not running",
                container.id
            ));
            code = 1;
            continue;
        }
        if no_stop() {
            daemon_error(&format!(
                "Cannot kill container: {name}: {}",
                crate::faults::NO_EXIT_EVENT
            ));
            code = 1;
            continue;
        }
        send(container.state.pid, signal);
        if signal == libc::SIGKILL {
            // The daemon waits for a SIGKILLed container to be gone before answering.
            wait_until_for(&state, &container.id, KILL_GRACE, not_running);
        }
        out(&format!("{name}\n"));
    }
    Ok(code)
}

/// Whether the `no-stop` fault fired for this `stop`/`kill`/`rm`.
fn no_stop() -> bool {
    crate::faults::fired(crate::faults::FaultKind::NoStop).is_some()
}

/// Whether a process exists (a zombie counts as existing).
fn alive(pid: u32) -> bool {
    // No signal: kill(2) only checks for existence and permission.
    libc::pid_t::try_from(pid).is_ok_and(|pid| {
        pid != 0 && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
    })
}

/// Records a container whose supervisor vanished (e.g. was SIGKILLed) as exited 137.
fn reconcile(state: &StateDir, id: &str) -> Result<(), CommandError> {
    let _lock = state.lock()?;
    if let Some(mut container) = state.load(id)?
        && container.state.status == Status::Running
        && !alive(container.state.supervisor_pid)
    {
        send(container.state.pid, libc::SIGKILL);
        container.state.status = Status::Exited;
        container.state.exit_code = 137;
        container.state.pid = 0;
        container.state.supervisor_pid = 0;
        container.state.finished = true;
        state.save(&container)?;
    }
    Ok(())
}

/// `docker wait`.
pub fn wait(_spec: &CommandSpec, parsed: &Parsed) -> Outcome {
    let state = StateDir::from_env()?;
    let mut code = 0;
    for name in &parsed.positionals {
        let Some(container) = find_container(&state, name)? else {
            daemon_error(&format!("No such container: {name}"));
            code = 1;
            continue;
        };
        let mut waiter = Waiter::new(&state, &container);
        let exit_code = loop {
            if let Some(exit_code) = waiter.check()? {
                break exit_code;
            }
            std::thread::sleep(waiter.next_pause());
        };
        out(&format!("{exit_code}\n"));
    }
    Ok(code)
}

/// One container's `docker wait`, a check at a time: the `wait` command checks and
/// pauses in turn; `fake-docker __serve` checks between other calls, without a process
/// of its own ([`served_wait`]). Both ask the same thing at the same pace.
#[derive(Debug)]
pub struct Waiter {
    state: StateDir,
    id: String,
    /// The code to report if the container is removed meanwhile (`--rm`): the one it
    /// was last seen with.
    seen_code: i32,
    checks: u64,
    pauses: Pauses,
}

impl Waiter {
    /// Waits for `container` (as found in `state`).
    pub fn new(state: &StateDir, container: &Container) -> Waiter {
        Waiter {
            state: state.clone(),
            id: container.id.clone(),
            seen_code: container.state.exit_code,
            checks: 0,
            pauses: Pauses::default(),
        }
    }

    /// The container's exit code once it no longer runs (or is gone), else `None`. Every
    /// hundredth check also looks for a supervisor that died without recording the end.
    pub fn check(&mut self) -> Result<Option<i32>, CommandError> {
        match self.state.load(&self.id)? {
            Some(current) if !not_running(&current) => {
                self.checks += 1;
                if self.checks.is_multiple_of(100) {
                    reconcile(&self.state, &self.id)?;
                }
                Ok(None)
            }
            Some(current) => Ok(Some(current.state.exit_code)),
            None => Ok(Some(self.seen_code)),
        }
    }

    /// How long to wait before the next check.
    pub fn next_pause(&mut self) -> Duration {
        self.pauses.next()
    }
}

/// A `docker wait` that a server can answer itself: `args` name exactly one existing
/// container (in this process's state directory) and nothing else. Anything else (several
/// containers, one that is missing, flags, help) is left to the `wait` command.
pub fn served_wait(args: &[String]) -> Option<Waiter> {
    let Ok(super::Invocation::Command { spec, parsed, .. }) = super::parse(args) else {
        return None;
    };
    if spec.name != WAIT.name || args.len() != 2 || parsed.positionals.len() != 1 {
        return None;
    }
    let state = StateDir::from_env().ok()?;
    let container = find_container(&state, &parsed.positionals[0]).ok()??;
    Some(Waiter::new(&state, &container))
}

/// `docker rm`.
pub fn rm(_spec: &CommandSpec, parsed: &Parsed) -> Outcome {
    let force = parsed.bool("force");
    let state = StateDir::from_env()?;
    let mut code = 0;
    for name in &parsed.positionals {
        let Some(container) = find_container(&state, name)? else {
            // Measured (CLI 28.2.2): `rm -f` of a missing container prints the daemon's
            // "No such container" on stderr too, but exits 0.
            daemon_error(&format!("No such container: {name}"));
            if !force {
                code = 1;
            }
            continue;
        };
        if container.state.status == Status::Running || container.state.starting {
            if !force {
                daemon_error(&format!(
                    "You cannot remove a running container {}. Stop the container before attempting removal or force remove",
                    container.id
                ));
                code = 1;
                continue;
            }
            wait_until(&state, &container.id, |c| !c.state.starting);
            if no_stop() {
                daemon_error(&format!(
                    "Could not kill running container {}, cannot remove - {}",
                    container.id,
                    crate::faults::NO_EXIT_EVENT
                ));
                code = 1;
                continue;
            }
            if let Some(current) = state.load(&container.id)? {
                kill_and_wait(&state, &current);
            }
        }
        {
            let _lock = state.lock()?;
            state.remove(&container.id)?;
        }
        out(&format!("{name}\n"));
    }
    Ok(code)
}
/// Streams a container's log to stdout/stderr until it exits; returns its exit code.
pub(super) fn follow_until_exit(
    state: &StateDir,
    id: &str,
    supervisor: Option<supervisor::Supervisor>,
    from: u64,
) -> Result<i32, CommandError> {
    let mut supervisor = supervisor;
    let log = state.log_path(id);
    let mut offset = from;
    let mut pauses = Pauses::default();
    loop {
        // Look at the state before reading, so output written before the exit is not lost.
        let current = state.load(id)?;
        let finished = current
            .as_ref()
            .is_none_or(|c| c.state.status != Status::Running && !c.state.starting);
        for (stream, bytes) in crate::logfile::read_new(&log, &mut offset).unwrap_or_default() {
            let text = String::from_utf8_lossy(&bytes);
            match stream {
                crate::logfile::Stream::Stdout => out(&text),
                crate::logfile::Stream::Stderr => err(&text),
            }
        }
        if finished {
            return Ok(current.map_or(0, |c| c.state.exit_code));
        }
        if let Some(child) = supervisor.as_mut() {
            // Reap the supervisor when it is done so it does not linger as a zombie.
            if child.try_wait() {
                supervisor = None;
            }
        }
        pauses.pause();
    }
}
