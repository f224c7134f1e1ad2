//! Containers as real processes.
//!
//! `start` spawns `fake-docker __supervise ID` in a new session. The supervisor forks
//! the container's program (what `fake-docker __program ID` runs: the program, writing its
//! own log; a fork, not a second exec of the binary), records the
//! container `running` with the program's pid, tells `start` it is ready, waits for the
//! program and records its exit: the exit code, or 128 + signal.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use thiserror::Error;

use crate::expand::env_vars;
use crate::faults::FaultKind;
use crate::handshake::{ENDED, answer, program_ready};
use crate::image::{self, Image};
use crate::logfile::{LogWriter, Stream};
use crate::program::{self, Context, Invocation, StdinSource};
use crate::state::{Container, StateDir, StateError, Status, container_fs};

/// Hidden subcommand names.
pub const SUPERVISE: &str = "__supervise";
pub const PROGRAM: &str = "__program";

/// A supervisor that could not be started.
#[derive(Debug, Error)]
pub enum SpawnError {
    #[error("cannot find the fake-docker executable: {0}")]
    CurrentExe(std::io::Error),
    #[error("cannot spawn the container supervisor: {0}")]
    Spawn(std::io::Error),
    #[error("the container supervisor failed: {0}")]
    Handshake(String),
}

/// A container's supervisor, as `start` (or `run`) sees it: a process in a session of
/// its own, reaped by [`Supervisor::try_wait`] by callers that stay around.
#[derive(Debug)]
pub struct Supervisor {
    pid: libc::pid_t,
}

impl Supervisor {
    /// Whether the supervisor has ended (it is reaped then).
    pub fn try_wait(&mut self) -> bool {
        let mut status = 0;
        // SAFETY: a non-blocking wait for our own child into a local.
        let waited = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
        waited != 0
    }
}

/// Spawns a detached supervisor for `id` and returns once it has recorded the container
/// running (or failed). A single-threaded caller (every CLI call and every call of the
/// server) forks it; otherwise it is `fake-docker __supervise ID`, a new process.
pub fn spawn(state: &StateDir, id: &str) -> Result<Supervisor, SpawnError> {
    let (pid, mut pipe): (libc::pid_t, Box<dyn Read>) = if single_threaded() {
        let (pid, pipe) = fork_supervisor(state, id).map_err(SpawnError::Spawn)?;
        (pid, Box::new(pipe))
    } else {
        let (pid, pipe) = exec_supervisor(state, id)?;
        (pid, Box::new(pipe))
    };
    let mut answer = String::new();
    // EOF comes when the supervisor closes its end after answering (or dies).
    let _ = pipe.read_to_string(&mut answer);
    let supervisor = Supervisor { pid };
    match answer.trim() {
        "ok" => Ok(supervisor),
        "" => Err(SpawnError::Handshake(
            "it exited before the container was running".into(),
        )),
        other => Err(SpawnError::Handshake(
            other.trim_start_matches("error ").to_string(),
        )),
    }
}

/// `fake-docker __supervise ID` in a new session: its pid and the pipe it answers on.
fn exec_supervisor(
    state: &StateDir,
    id: &str,
) -> Result<(libc::pid_t, std::process::ChildStdout), SpawnError> {
    let exe = std::env::current_exe().map_err(SpawnError::CurrentExe)?;
    let mut command = Command::new(exe);
    command
        .arg(SUPERVISE)
        .arg(id)
        .env("FAKE_DOCKER_STATE", state.root())
        .envs(crate::faults::supervisor_env())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child: Child = command.spawn().map_err(SpawnError::Spawn)?;
    let pid = libc::pid_t::try_from(child.id()).unwrap_or(libc::pid_t::MAX);
    let pipe = child.stdout.take().ok_or_else(|| {
        SpawnError::Spawn(std::io::Error::other(
            "the supervisor's stdout is not piped",
        ))
    })?;
    Ok((pid, pipe))
}

/// The supervisor as a fork of this (single-threaded) process, in a session of its own,
/// with the environment and descriptors `fake-docker __supervise ID` would have.
fn fork_supervisor(
    state: &StateDir,
    id: &str,
) -> std::io::Result<(libc::pid_t, std::io::PipeReader)> {
    use std::os::fd::AsRawFd;
    let env = crate::faults::supervisor_env();
    let null = std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    let (reader, writer) = std::io::pipe()?;
    // SAFETY: the caller is single-threaded (checked), so the child may run anything.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()),
        0 => {
            // SAFETY: setsid and dup2 onto the standard descriptors with valid ones.
            unsafe {
                libc::setsid();
                libc::dup2(null.as_raw_fd(), 0);
                libc::dup2(writer.as_raw_fd(), 1);
                libc::dup2(null.as_raw_fd(), 2);
                libc::signal(libc::SIGCHLD, libc::SIG_DFL);
            }
            drop((reader, writer, null));
            close_inherited();
            // SAFETY: this process has a single thread.
            unsafe {
                std::env::set_var("FAKE_DOCKER_STATE", state.root());
                for (name, value) in env {
                    std::env::set_var(name, value);
                }
            }
            let code = std::panic::catch_unwind(|| supervise(id)).unwrap_or(101);
            std::process::exit(code)
        }
        pid => Ok((pid, reader)),
    }
}

/// Whether this process runs one thread (a fork of it is then a whole copy).
fn single_threaded() -> bool {
    std::fs::read_dir("/proc/self/task").is_ok_and(|tasks| tasks.count() == 1)
}

/// In a forked child standing for a new process: closes the descriptors an `exec` would
/// have (those marked close-on-exec: the caller's pipes, sockets and files), so the
/// child holds nothing its parent's callers wait to see closed.
fn close_inherited() {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<libc::c_int> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: reading and closing descriptors of this process that nothing here owns
        // any more (the child runs no destructor of its parent's values).
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 && flags & libc::FD_CLOEXEC != 0 {
                libc::close(fd);
            }
        }
    }
}

/// Exit code for a finished process: its code, or 128 + the signal that ended it.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(255)
}

/// Body of `fake-docker __supervise ID`.
pub fn supervise(id: &str) -> i32 {
    match supervise_inner(id) {
        Ok(()) => 0,
        Err(message) => {
            answer(&format!("error {message}"));
            1
        }
    }
}

fn supervise_inner(id: &str) -> Result<(), String> {
    let state = StateDir::from_env().map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(state.oom_marker(id));
    // A restarted container's program starts with nothing allocated.
    let _ = std::fs::remove_file(state.usage_path(id));
    // Ports first: a taken host port fails the start before the program runs, like docker.
    let listeners = crate::netbind::reserve(&state, id)?;
    // An injected runtime fault (FAKE_DOCKER_FAULTS, decided by `start`/`run`).
    let fault = crate::faults::handed_down();
    if let Some(fault) = fault.as_ref().filter(|f| f.kind == FaultKind::SlowStart) {
        std::thread::sleep(fault.delay.unwrap_or(std::time::Duration::from_secs(5)));
    }
    match fault.as_ref().map(|f| (f.kind, f)) {
        Some((FaultKind::ExitImmediately, fault)) => {
            return exit_at_start(
                &state,
                id,
                fault.code.unwrap_or(1),
                false,
                fault.log.as_deref(),
            );
        }
        // The kernel kills the container the moment it starts (SIGKILL, OOMKilled).
        Some((FaultKind::Oom, _)) => return exit_at_start(&state, id, 137, true, None),
        _ => {}
    }
    let diagnostics = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(state.container_dir(id).join("supervisor.log"))
        .map_err(|e| e.to_string())?;
    let (mut pipe, child) = ProgramProcess::fork(id, diagnostics).map_err(|e| e.to_string())?;
    // The program closes this pipe once it has set up (or ended); see `Invocation::on_ready`.
    let mut said = Vec::new();
    let _ = pipe.read_to_end(&mut said);
    drop(pipe);
    let recorded = (|| -> Result<bool, StateError> {
        let _lock = state.lock()?;
        let Some(mut container) = state.load(id)? else {
            return Ok(false);
        };
        container.state.ip_address = allocate_ip(&state, &container)?;
        container.state.status = Status::Running;
        container.state.pid = child.id();
        container.state.supervisor_pid = std::process::id();
        container.state.exit_code = 0;
        container.state.error.clear();
        container.state.started = true;
        container.state.finished = false;
        container.state.starting = false;
        container.state.oom_killed = false;
        container.state.health = container
            .healthcheck
            .as_ref()
            .filter(|h| !h.is_none())
            .map(|_| crate::health::HealthState::starting());
        state.save(&container)?;
        Ok(true)
    })();
    match recorded {
        Ok(true) => {}
        Ok(false) => {
            child.kill();
            let _ = child.wait();
            return Err("the container was removed while starting".into());
        }
        Err(e) => {
            child.kill();
            let _ = child.wait();
            return Err(e.to_string());
        }
    }
    // A program that ended without blocking is recorded exited before `start` returns, so
    // what `inspect` says right after `start` does not depend on timing.
    if said == ENDED {
        let code = child.wait().map(exit_code).unwrap_or(255);
        let oom = code == 137 && state.oom_marker(id).exists();
        record_exit(&state, id, code, oom).map_err(|e| e.to_string())?;
        answer("ok");
        return Ok(());
    }
    answer("ok");
    if let Ok(Some(container)) = state.load(id) {
        let image = image_of(&container).ok().flatten();
        crate::netbind::serve(listeners, &container, image.as_ref(), log_sink(&state, id));
        if let Some(replay) = &container.replay {
            // A replayed container's health is its recorded timeline, not a check run here.
            crate::replay::play_health(&state, &container, replay);
        } else if let Some(image) = image {
            crate::healthloop::start(&state, &container, &image);
        }
    }
    let code = match child.wait() {
        Ok(status) => exit_code(status),
        Err(_) => 255,
    };
    let oom = code == 137 && state.oom_marker(id).exists();
    record_exit(&state, id, code, oom).map_err(|e| e.to_string())
}

/// The container's program: a fork of the supervisor running [`program_main`] (what
/// `fake-docker __program ID` runs), so a container costs no second exec of the binary.
struct ProgramProcess {
    pid: libc::pid_t,
}

impl ProgramProcess {
    /// Fork the program of container `id`: stdin `/dev/null`, stdout the returned pipe
    /// (the ready handshake), stderr `diagnostics`. The supervisor has one thread here
    /// (its threads start after the program runs), so the child may run anything.
    fn fork(
        id: &str,
        diagnostics: std::fs::File,
    ) -> std::io::Result<(std::io::PipeReader, ProgramProcess)> {
        use std::os::fd::AsRawFd;
        let null = std::fs::File::open("/dev/null")?;
        let (reader, writer) = std::io::pipe()?;
        // SAFETY: the supervisor is single-threaded at this point (see above).
        match unsafe { libc::fork() } {
            -1 => Err(std::io::Error::last_os_error()),
            0 => {
                // SAFETY: dup2 onto the standard descriptors with valid open descriptors; the
                // supervisor's own stdout (its answer to `start`) is replaced, not shared.
                unsafe {
                    libc::dup2(null.as_raw_fd(), 0);
                    libc::dup2(writer.as_raw_fd(), 1);
                    libc::dup2(diagnostics.as_raw_fd(), 2);
                }
                drop((reader, writer, null, diagnostics));
                close_inherited();
                let code = std::panic::catch_unwind(|| program_main(id)).unwrap_or(101);
                std::process::exit(code)
            }
            pid => Ok((reader, ProgramProcess { pid })),
        }
    }

    fn id(&self) -> u32 {
        self.pid.unsigned_abs()
    }

    fn kill(&self) {
        // SAFETY: signalling our own child, which has not been waited for.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
    }

    /// Waits for the program to end.
    fn wait(&self) -> std::io::Result<std::process::ExitStatus> {
        let mut status = 0;
        loop {
            // SAFETY: waiting for our own child into a local.
            let waited = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if waited == self.pid {
                return Ok(std::process::ExitStatus::from_raw(status));
            }
            let error = std::io::Error::last_os_error();
            if error.kind() != std::io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
    }
}

/// The `exit-immediately` and `oom` faults: the container is recorded started, then
/// exited with `code` (and `log` on stderr), before `start` returns; its program never runs.
fn exit_at_start(
    state: &StateDir,
    id: &str,
    code: i32,
    oom: bool,
    log: Option<&str>,
) -> Result<(), String> {
    if let Some(line) = log
        && let Ok(mut log) = LogWriter::open(&state.log_path(id))
    {
        let _ = log.write(Stream::Stderr, format!("{line}\n").as_bytes());
    }
    (|| -> Result<(), StateError> {
        let _lock = state.lock()?;
        if let Some(mut container) = state.load(id)? {
            container.state.started = true;
            container.state.starting = false;
            container.state.error.clear();
            state.save(&container)?;
        }
        Ok(())
    })()
    .map_err(|e| e.to_string())?;
    record_exit(state, id, code, oom).map_err(|e| e.to_string())?;
    answer("ok");
    Ok(())
}

/// Appends lines to a container's log as stderr records (the HTTP server's request log).
fn log_sink(state: &StateDir, id: &str) -> crate::http::LogSink {
    let path = state.log_path(id);
    std::sync::Arc::new(move |line: &str| {
        if let Ok(mut log) = LogWriter::open(&path) {
            let _ = log.write(Stream::Stderr, format!("{line}\n").as_bytes());
        }
    })
}

fn record_exit(state: &StateDir, id: &str, code: i32, oom: bool) -> Result<(), StateError> {
    let _lock = state.lock()?;
    let Some(mut container) = state.load(id)? else {
        return Ok(());
    };
    container.state.status = Status::Exited;
    container.state.exit_code = code;
    container.state.oom_killed = oom;
    container.state.published.clear();
    container.state.pid = 0;
    container.state.supervisor_pid = 0;
    container.state.finished = true;
    if container.auto_remove && !container.cli_removes {
        state.remove(id)
    } else {
        state.save(&container)
    }
}

/// Finds the image a container was created from.
pub fn image_of(container: &Container) -> Result<Option<Image>, image::ImageError> {
    if let Some(image) = image::load_by_id(&crate::images_spec(), &container.image_id)? {
        return Ok(Some(image));
    }
    let images = image::load_all(&crate::images_spec())?;
    Ok(images
        .iter()
        .find(|i| i.id == container.image_id)
        .or_else(|| images.iter().find(|i| i.matches(&container.image_name)))
        .cloned())
}

/// The address a starting container gets on its network: the lowest host address
/// that is not the gateway and no other running container there has (the daemon's IPAM hands out the
/// first free one); none on `host`, `none` or a network without a subnet.
fn allocate_ip(
    state: &StateDir,
    container: &crate::state::Container,
) -> Result<String, StateError> {
    let name = if container.network_mode == "default" {
        "bridge"
    } else {
        container.network_mode.as_str()
    };
    let Some(network) = crate::objects::find_network(state, name)? else {
        return Ok(String::new());
    };
    if network.host_address(1).is_none() {
        // No subnet (`none`, `host`): no address, whoever else runs there.
        return Ok(String::new());
    }
    let mode_of = |mode: &str| {
        if mode == "default" {
            "bridge".to_string()
        } else {
            mode.to_string()
        }
    };
    let taken: Vec<String> = state
        .all()?
        .into_iter()
        .filter(|c| {
            c.id != container.id
                && (c.state.status == Status::Running || c.state.starting)
                && mode_of(&c.network_mode) == network.name
        })
        .map(|c| c.state.ip_address)
        .collect();
    // Measured: the first free address from `.1` that is not the gateway (`.2` with the
    // default gateway, `.1` with `--gateway` elsewhere).
    let gateway = network.gateway();
    Ok((1..65_534)
        .filter_map(|n| network.host_address(n))
        .find(|address| !taken.contains(address) && gateway.as_ref() != Some(address))
        .unwrap_or_default())
}

/// Body of `fake-docker __program ID`: runs the container's program into its log.
pub fn program_main(id: &str) -> i32 {
    // This process stands for the container's PID 1: signals without a handler are ignored.
    program::become_pid_one();
    let state = match StateDir::from_env() {
        Ok(state) => state,
        Err(e) => {
            eprintln!("fake-docker: {e}");
            return 127;
        }
    };
    let mut log = match LogWriter::open(&state.log_path(id)) {
        Ok(log) => log,
        Err(e) => {
            eprintln!("fake-docker: cannot open log: {e}");
            return 127;
        }
    };
    let fail = |log: &mut LogWriter, message: String| {
        let _ = log.write(
            Stream::Stderr,
            format!("fake-docker: {message}\n").as_bytes(),
        );
        127
    };
    let container = match state.load(id) {
        Ok(Some(container)) => container,
        Ok(None) => return fail(&mut log, "container record vanished".into()),
        Err(e) => return fail(&mut log, e.to_string()),
    };
    let image = match image_of(&container) {
        Ok(Some(image)) => image,
        Ok(None) => {
            return fail(
                &mut log,
                format!("image {} is no longer defined", container.image_name),
            );
        }
        Err(e) => return fail(&mut log, e.to_string()),
    };
    // A recorded container (matched by `start`) plays its recording; faults still apply.
    if let Some(replay) = &container.replay {
        if crate::faults::handed_down().is_some_and(|f| f.kind == FaultKind::Hang) {
            return hang();
        }
        return crate::replay::play(&container, replay, &mut log);
    }
    let Some(program) = image.program(&container.path) else {
        return fail(&mut log, format!("{}: not found", container.path));
    };
    if crate::faults::handed_down().is_some_and(|f| f.kind == FaultKind::Hang) {
        return hang();
    }
    let stdin = if container.open_stdin {
        StdinSource::Fifo(state.stdin_path(id))
    } else {
        StdinSource::Empty
    };
    let mut invocation = Invocation {
        fs: container_fs(&state, &container),
        workdir: container.workdir.clone(),
        vars: env_vars(&container.env),
        args: container.args.clone(),
        on_ready: Some(Box::new(program_ready)),
        context: Context {
            memory_limit: container.memory,
            oom_marker: Some(state.oom_marker(id)),
            usage_file: Some(state.usage_path(id)),
            stdin,
            programs: image.programs.clone(),
            http: image.http.clone(),
        },
        allocated: 0,
        trap: None,
    };
    if container.tty {
        program::run(program, &mut invocation, &mut program::TtyOutput(&mut log))
    } else {
        program::run(program, &mut invocation, &mut log)
    }
}

/// The `hang` fault: a program that never ends and ignores SIGTERM (only SIGKILL ends it).
fn hang() -> i32 {
    // SAFETY: setting a signal disposition to SIG_IGN touches no Rust state.
    unsafe {
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
    }
    program_ready(program::Ready::Blocked);
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// Creates the working directory the way the daemon does before a process starts.
pub fn ensure_workdir(state: &StateDir, container: &Container) {
    if container.workdir.is_empty() {
        return;
    }
    let resolved = container_fs(state, container).resolve("/", &container.workdir);
    let _ = std::fs::create_dir_all(Path::new(&resolved.host));
}
