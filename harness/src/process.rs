//! The one way dockproof starts another program (docker, docker compose, ssh, git,
//! hadolint, container-structure-test): an argv list (never a shell), its own process
//! group, a timeout, output captured within a bound, and the whole group killed when the
//! call is dropped or times out.
//!
//! - **argv only**: [`Command`] takes a program and its arguments; nothing is parsed by
//!   a shell, so no argument can become a second command.
//! - **its own process group** (`setpgid(0, 0)` in the child): a Ctrl-C typed at the
//!   terminal reaches dockproof only, which decides what to stop; and what the program
//!   forks (a compose plugin, a shell's children) can be killed with it.
//! - **kill on drop**: a [`Child`] dropped before its exit was seen (a timeout, a cancelled
//!   step, a panic) sends SIGKILL to its whole group, grandchildren included; tokio then
//!   reaps the leader in the background.
//! - **a timeout**: [`Child::finish`] and [`Command::output`] give up after it, kill the
//!   group and return [`ProcessError::Timeout`] naming the command.
//! - **bounded capture**: output goes through [`Capture`], which keeps the **last**
//!   `max_bytes` of each stream (the end of a log is what explains a failure), starting
//!   at a line boundary, and counts the rest: [`Captured::truncated`] and
//!   [`Captured::total_bytes`] say that, and how much, was left out.
//! - **exit codes as a shell gives them**: a program killed by a signal reports
//!   `128 + signal` ([`exit_code`]), so SIGKILL is 137 everywhere.
//!
//! A group is only signalled while its leader has not been reaped (its process id, and
//! so the group id, cannot have been reused), or while the capture still reads pipes that
//! a member of the group holds open.
//!
//! ```no_run
//! # async fn example() -> Result<(), dockproof::process::ProcessError> {
//! use std::time::Duration;
//! let finished = dockproof::process::Command::new("docker")
//!     .args(["version", "--format", "{{.Server.Version}}"])
//!     .output(Duration::from_secs(30), 64 * 1024)
//!     .await?;
//! // `code` is the exit code, or 128 + signal; stdout is its last 64 KiB at most.
//! let server_version = finished.success().then(|| finished.stdout.text.trim());
//! # Ok(())
//! # }
//! ```

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::backend::capture::{Capture, Captured};

/// Why a program could not be run to its end.
#[derive(Debug, Error)]
pub enum ProcessError {
    /// The program could not be started (not found, not executable, no resources).
    #[error("cannot start `{program}`: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// It did not finish in time; it was killed with its process group.
    #[error(
        "`{command}` did not finish within {}; it was killed with everything it started",
        humantime::format_duration(*timeout)
    )]
    Timeout { command: String, timeout: Duration },
    /// Its exit could not be waited for (an OS error).
    #[error("cannot wait for `{program}`: {source}")]
    Wait {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// What a program's standard input is.
#[derive(Debug, Default)]
pub enum Input {
    /// `/dev/null`.
    #[default]
    Null,
    /// This open file (an archive for `docker cp -`).
    File(std::fs::File),
    /// A pipe, taken with [`Child::take_stdin`] (a keepalive session's, say).
    Piped,
}

/// Where a program's stdout or stderr goes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// A pipe to dockproof, read by [`Child::finish`] or taken with [`Child::take_stdout`].
    #[default]
    Piped,
    /// `/dev/null`.
    Null,
}

/// A program to run: what, with which arguments and environment.
#[derive(Debug)]
pub struct Command {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    env_remove: Vec<OsString>,
    stdin: Input,
    stdout: Output,
    stderr: Output,
    /// Run at this niceness (`setpriority`), not the caller's.
    niceness: Option<i32>,
}

/// The niceness of [`Command::background`] processes.
pub const BACKGROUND_NICENESS: i32 = 10;

impl Command {
    /// `program` (a path, or a name looked up in `PATH`), no arguments, stdin `/dev/null`.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Command {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            env_remove: Vec::new(),
            stdin: Input::Null,
            stdout: Output::Piped,
            stderr: Output::Piped,
            niceness: None,
        }
    }

    /// One more argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// More arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|arg| arg.as_ref().to_owned()));
        self
    }

    /// One more environment variable (on top of dockproof's own environment).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// More environment variables.
    pub fn envs<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (key, value) in vars {
            self = self.env(key, value);
        }
        self
    }

    /// A variable of dockproof's environment the program must not see.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env_remove.push(key.as_ref().to_owned());
        self
    }

    /// Its standard input.
    pub fn stdin(mut self, input: Input) -> Self {
        self.stdin = input;
        self
    }

    /// Where its stdout goes.
    pub fn stdout(mut self, output: Output) -> Self {
        self.stdout = output;
        self
    }

    /// Where its stderr goes.
    pub fn stderr(mut self, output: Output) -> Self {
        self.stderr = output;
        self
    }

    /// The program, as errors name it.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// The program's file name and first argument (`docker logs`), as a timeout names it.
    pub fn describe(&self) -> String {
        describe(&self.program, self.args.first().map(OsString::as_os_str))
    }

    /// Run it at a lower CPU priority ([`BACKGROUND_NICENESS`], threads included): a
    /// watcher beside the calls a run waits for (`docker stats`, `docker events`), whose
    /// start should not take the CPU from them on a busy machine.
    pub fn background(mut self) -> Self {
        self.niceness = Some(BACKGROUND_NICENESS);
        self
    }

    /// Start it in a process group of its own.
    pub fn spawn(self) -> Result<Child, ProcessError> {
        let mut command = tokio::process::Command::new(&self.program);
        if let Some(niceness) = self.niceness {
            // SAFETY: the closure runs in the forked child before exec and only makes
            // one async-signal-safe system call; its failure is ignored (the process
            // then runs at the caller's priority, as any other).
            unsafe {
                command.pre_exec(move || {
                    libc::setpriority(libc::PRIO_PROCESS, 0, niceness);
                    Ok(())
                });
            }
        }
        command.args(&self.args);
        for key in &self.env_remove {
            command.env_remove(key);
        }
        command.envs(self.env.iter().map(|(key, value)| (key, value)));
        command.stdin(match self.stdin {
            Input::Null => Stdio::null(),
            Input::File(file) => Stdio::from(file),
            Input::Piped => Stdio::piped(),
        });
        let stdio = |output: Output| match output {
            Output::Piped => Stdio::piped(),
            Output::Null => Stdio::null(),
        };
        command.stdout(stdio(self.stdout));
        command.stderr(stdio(self.stderr));
        // Its own group: a Ctrl-C at the terminal reaches dockproof, which decides; and
        // the group can be killed as one.
        command.process_group(0);
        // Should the group kill below fail, the leader is still killed (and reaped).
        command.kill_on_drop(true);
        let shown = describe(&self.program, self.args.first().map(OsString::as_os_str));
        let child = command.spawn().map_err(|source| ProcessError::Spawn {
            program: self.program.display().to_string(),
            source,
        })?;
        // Always set for a child not yet waited for; `None` would mean it was reaped.
        let group = child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .map(Pid::from_raw);
        Ok(Child {
            inner: child,
            group,
            program: self.program.display().to_string(),
            command: shown,
            exited: false,
        })
    }

    /// Run it to its end within `timeout`, each stream captured within `max_bytes`.
    pub async fn output(
        self,
        timeout: Duration,
        max_bytes: usize,
    ) -> Result<Finished, ProcessError> {
        let mut child = self.spawn()?;
        child
            .finish(timeout, Capture::new(max_bytes), Capture::new(max_bytes))
            .await
    }
}

/// A program that ran to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// Its exit code; `128 + signal` when a signal ended it.
    pub code: i32,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    pub stdout: Captured,
    pub stderr: Captured,
}

impl Finished {
    /// Whether it exited with 0.
    pub fn success(&self) -> bool {
        self.code == 0
    }
}

/// A running program, leader of its own process group: the group is killed when this
/// is dropped before the program's exit was seen.
#[derive(Debug)]
pub struct Child {
    inner: tokio::process::Child,
    group: Option<Pid>,
    program: String,
    command: String,
    /// Whether its exit was seen (the leader reaped): its group is not signalled after.
    exited: bool,
}

impl Child {
    /// Its process id (the id of its group too).
    pub fn id(&self) -> Option<u32> {
        self.group.and_then(|pid| u32::try_from(pid.as_raw()).ok())
    }

    /// Its stdin pipe, with [`Input::Piped`] (once).
    pub fn take_stdin(&mut self) -> Option<tokio::process::ChildStdin> {
        self.inner.stdin.take()
    }

    /// Its stdout pipe (once).
    pub fn take_stdout(&mut self) -> Option<tokio::process::ChildStdout> {
        self.inner.stdout.take()
    }

    /// Its stderr pipe (once).
    pub fn take_stderr(&mut self) -> Option<tokio::process::ChildStderr> {
        self.inner.stderr.take()
    }

    /// Wait for its exit (no timeout: the caller bounds it, or drops this to kill it).
    pub async fn wait(&mut self) -> Result<i32, ProcessError> {
        let status = self
            .inner
            .wait()
            .await
            .map_err(|source| ProcessError::Wait {
                program: self.program.clone(),
                source,
            })?;
        self.exited = true;
        Ok(exit_code(status))
    }

    /// Whether it has exited (its code if so), without waiting.
    pub fn try_wait(&mut self) -> Result<Option<i32>, ProcessError> {
        let status = self.inner.try_wait().map_err(|source| ProcessError::Wait {
            program: self.program.clone(),
            source,
        })?;
        if status.is_some() {
            self.exited = true;
        }
        Ok(status.map(exit_code))
    }

    /// SIGKILL to its whole group (nothing once its exit was seen).
    pub fn kill_group(&mut self) {
        if self.exited {
            return;
        }
        if let Some(group) = self.group {
            // ESRCH (the group is gone) is what was wanted.
            let _ = killpg(group, Signal::SIGKILL);
        }
    }

    /// Read its piped stdout and stderr into `stdout` and `stderr` while waiting for its
    /// exit, all within `timeout`; on timeout the group is killed.
    pub async fn finish(
        &mut self,
        timeout: Duration,
        stdout: Capture,
        stderr: Capture,
    ) -> Result<Finished, ProcessError> {
        let out = self.take_stdout();
        let err = self.take_stderr();
        let run = async {
            tokio::join!(
                read_optional(out, stdout),
                read_optional(err, stderr),
                self.inner.wait()
            )
        };
        let (stdout, stderr, status) = match tokio::time::timeout(timeout, run).await {
            Ok(done) => done,
            Err(_) => {
                self.kill_group();
                // Reaped now rather than by tokio's orphan queue: a killed leader is quick.
                let _ = self.inner.wait().await;
                self.exited = true;
                return Err(ProcessError::Timeout {
                    command: self.command.clone(),
                    timeout,
                });
            }
        };
        let status = status.map_err(|source| ProcessError::Wait {
            program: self.program.clone(),
            source,
        })?;
        self.exited = true;
        Ok(Finished {
            code: exit_code(status),
            signal: std::os::unix::process::ExitStatusExt::signal(&status),
            stdout: stdout.finish(),
            stderr: stderr.finish(),
        })
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // Before its exit was seen the leader is at worst a zombie: its id (the group's)
        // is still taken, so the signal reaches this group and no other.
        self.kill_group();
    }
}

/// The code a shell would give: the exit code, or `128 + signal` for a signal.
pub fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// `docker logs`: the program's file name and its first argument.
fn describe(program: &Path, first: Option<&OsStr>) -> String {
    let name = program
        .file_name()
        .unwrap_or(program.as_os_str())
        .to_string_lossy();
    match first {
        Some(first) => format!("{name} {}", first.to_string_lossy()),
        None => name.into_owned(),
    }
}

async fn read_optional(stream: Option<impl AsyncRead + Unpin>, capture: Capture) -> Capture {
    match stream {
        Some(stream) => read_into(stream, capture).await,
        None => capture,
    }
}

/// Read `stream` to its end into `capture` (a read error ends it, as an end would).
pub async fn read_into(mut stream: impl AsyncRead + Unpin, mut capture: Capture) -> Capture {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => capture.push(&buffer[..read]),
        }
    }
    capture
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether process `pid` still exists (a zombie counts as gone: it runs nothing).
    fn alive(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => {
                // The state follows the command name's closing parenthesis.
                let state = stat
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.trim_start().chars().next());
                state != Some('Z')
            }
            Err(_) => false,
        }
    }

    /// Waits (bounded) until `pid` is gone; whether it went.
    async fn gone(pid: i32) -> bool {
        for _ in 0..200 {
            if !alive(pid) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// A shell that starts a grandchild (`sleep 300` in the background), prints its pid and
    /// waits. `sh` is only the program under test here; dockproof never runs one.
    fn with_grandchild() -> Command {
        Command::new("sh").args(["-c", "sleep 300 & echo $!; wait"])
    }

    async fn first_line(child: &mut Child) -> i32 {
        use tokio::io::AsyncBufReadExt;
        let stdout = child.take_stdout().unwrap();
        let mut line = String::new();
        tokio::io::BufReader::new(stdout)
            .read_line(&mut line)
            .await
            .unwrap();
        line.trim().parse().unwrap()
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_group_grandchild_included() {
        // The grandchild holds the stdout pipe: without the group kill the capture would
        // wait for it, and the test would hang on `sleep 300`.
        let command = Command::new("sh").args(["-c", "sleep 30 & echo $! >&2; wait"]);
        let mut child = command.spawn().unwrap();
        let leader = child.id().unwrap() as i32;
        // Without the group kill, `finish` would wait for the shell, which waits 30 s.
        let error = tokio::time::timeout(
            Duration::from_secs(10),
            child.finish(
                Duration::from_millis(300),
                Capture::new(1024),
                Capture::new(1024),
            ),
        )
        .await
        .expect("the timeout killed the group and returned at once")
        .unwrap_err();
        assert!(
            matches!(&error, ProcessError::Timeout { command, .. } if command == "sh -c"),
            "{error:?}"
        );
        assert!(error.to_string().contains("300ms"), "{error}");
        assert!(
            gone(leader).await,
            "the leader {leader} survived the timeout"
        );
        // Its grandchild's pid is the group's other member: none may be left (a SIGKILL
        // takes effect when the process is next scheduled: on a loaded machine, a moment).
        let mut members = group_members(leader);
        for _ in 0..200 {
            if members.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            members = group_members(leader);
        }
        assert!(members.is_empty(), "left in the group: {members:?}");
    }

    /// Processes whose group is `group` (from /proc).
    fn group_members(group: i32) -> Vec<i32> {
        let mut members = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let Some((_, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // state ppid pgrp …
            if fields.get(2) == Some(&group.to_string().as_str()) && fields[0] != "Z" {
                members.push(pid);
            }
        }
        members
    }

    #[tokio::test]
    async fn dropping_a_running_child_kills_its_group() {
        let mut child = with_grandchild().spawn().unwrap();
        let leader = child.id().unwrap() as i32;
        let grandchild = first_line(&mut child).await;
        assert!(alive(grandchild));
        drop(child);
        assert!(
            gone(grandchild).await,
            "grandchild {grandchild} survived the drop"
        );
        assert!(gone(leader).await, "leader {leader} survived the drop");
    }

    #[tokio::test]
    async fn a_finished_child_leaves_what_left_its_group_alone() {
        // `setsid` puts the background sleep in a session (and group) of its own, as
        // `ssh -f` does with its master: the program's exit was seen, so nothing is killed.
        let command = Command::new("sh").args(["-c", "setsid sleep 5 >/dev/null 2>&1 & echo $!"]);
        let mut child = command.spawn().unwrap();
        let finished = child
            .finish(Duration::from_secs(10), Capture::new(64), Capture::new(64))
            .await
            .unwrap();
        assert_eq!(finished.code, 0);
        let detached: i32 = finished.stdout.text.trim().parse().unwrap();
        drop(child);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(alive(detached), "a process outside the group was killed");
        let _ = nix::sys::signal::kill(Pid::from_raw(detached), Signal::SIGKILL);
    }

    #[tokio::test]
    async fn output_is_bounded_and_keeps_the_tail() {
        // 200,000 numbered lines on stdout, one line on stderr.
        let command = Command::new("sh").args(["-c", "seq 1 200000; echo done >&2; exit 3"]);
        let finished = command.output(Duration::from_secs(30), 4096).await.unwrap();
        assert_eq!(finished.code, 3);
        assert!(!finished.success());
        assert!(finished.stdout.truncated);
        assert!(finished.stdout.text.len() <= 4096);
        let expected: u64 = (1..=200_000u64)
            .map(|n| n.to_string().len() as u64 + 1)
            .sum();
        assert_eq!(finished.stdout.total_bytes, expected);
        assert!(
            finished.stdout.text.ends_with("199999\n200000\n"),
            "{}",
            &finished.stdout.text[finished.stdout.text.len() - 20..]
        );
        assert!(
            finished
                .stdout
                .text
                .starts_with(|c: char| c.is_ascii_digit()),
            "the tail starts on a line"
        );
        assert_eq!(finished.stderr.text, "done\n");
        assert!(!finished.stderr.truncated);
    }

    #[tokio::test]
    async fn a_signal_is_128_plus_its_number() {
        let command = Command::new("sh").args(["-c", "kill -TERM $$"]);
        let finished = command.output(Duration::from_secs(10), 64).await.unwrap();
        assert_eq!(finished.code, 128 + 15);
        assert_eq!(finished.signal, Some(15));
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = Pid::from_raw(child.id().unwrap() as i32);
        nix::sys::signal::kill(pid, Signal::SIGKILL).unwrap();
        assert_eq!(child.wait().await.unwrap(), 137);
    }

    #[tokio::test]
    async fn a_background_process_runs_niced_threads_and_all() {
        let niceness = |command: Command| async move {
            let finished = command.output(Duration::from_secs(10), 256).await.unwrap();
            let text = finished.stdout.text;
            text.trim()
                .parse::<i32>()
                .unwrap_or_else(|_| panic!("`nice` printed {text:?}"))
        };
        let ours = niceness(Command::new("nice")).await;
        let background = niceness(Command::new("nice").background()).await;
        assert!(
            background >= BACKGROUND_NICENESS && background > ours.min(18),
            "ours {ours}, background {background}"
        );
        // What it starts later inherits it (as the threads a Go program starts do).
        let threaded = Command::new("sh").args(["-c", "nice & wait"]).background();
        assert!(niceness(threaded).await >= BACKGROUND_NICENESS);
    }

    #[tokio::test]
    async fn a_program_that_cannot_start_is_named() {
        let error = Command::new("/nonexistent/dockproof-no-such-tool")
            .arg("version")
            .output(Duration::from_secs(5), 64)
            .await
            .unwrap_err();
        assert!(matches!(error, ProcessError::Spawn { .. }), "{error:?}");
        let message = error.to_string();
        assert!(
            message.starts_with("cannot start `/nonexistent/dockproof-no-such-tool`: "),
            "{message}"
        );
    }

    #[tokio::test]
    async fn arguments_reach_the_program_unparsed() {
        // A shell would run the second command; argv hands it over as one word.
        let finished = Command::new("echo")
            .args(["a; echo injected", "$(id)"])
            .output(Duration::from_secs(5), 1024)
            .await
            .unwrap();
        assert_eq!(finished.stdout.text, "a; echo injected $(id)\n");
    }

    #[tokio::test]
    async fn environment_is_added_and_removed() {
        let finished = Command::new("env")
            .env("DOCKPROOF_PROCESS_TEST", "added")
            .env_remove("PATH")
            .output(Duration::from_secs(5), 1 << 16)
            .await
            .unwrap();
        assert!(
            finished
                .stdout
                .text
                .lines()
                .any(|line| line == "DOCKPROOF_PROCESS_TEST=added")
        );
        assert!(
            !finished
                .stdout
                .text
                .lines()
                .any(|line| line.starts_with("PATH="))
        );
    }

    #[test]
    fn exit_codes_are_a_shells() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
        assert_eq!(exit_code(ExitStatus::from_raw(2 << 8)), 2);
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
        assert_eq!(exit_code(ExitStatus::from_raw(15)), 143);
    }
}
