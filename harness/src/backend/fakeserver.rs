//! dockproof's end of `fake-docker __serve` (see fake-docker's `serve.rs`): one
//! fake-docker process started per run, each CLI call a fork of it instead of a new
//! process, or run by the server itself when it is quick (pid 0). What a call sees (arguments, environment, stdout, stderr, exit code) is
//! what a spawned `fake-docker ARGS` sees; only the process start is saved. Set
//! `DOCKPROOF_FAKE_SERVER=0` to spawn every call instead.

use std::ffi::OsStr;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::UnixStream;
use tokio::net::unix::pipe;

use crate::process::{Child, Command, Input, Output};

/// How long the server may take to say it is listening.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The variable that turns the server off (`0`): every call is then a new process.
pub const SWITCH: &str = "DOCKPROOF_FAKE_SERVER";

/// Whether this process's environment lets the fake backend use a server.
pub fn enabled() -> bool {
    std::env::var_os(SWITCH).is_none_or(|value| value != "0")
}

/// A running `fake-docker __serve`; ended (SIGKILL) when dropped, and by itself when
/// dockproof exits (its stdin, a pipe from here, closes).
#[derive(Debug)]
pub struct FakeServer {
    socket: PathBuf,
    _child: Child,
    _dir: tempfile::TempDir,
}

impl FakeServer {
    /// Start `program __serve` on a socket in a new private directory and wait until it
    /// listens. `env` (`FAKE_DOCKER_STATE`) is added to its environment, which every call
    /// starts from: the containers it forks carry it, as spawned ones did, so they are
    /// found by their state directory in `/proc/PID/environ`. What differs between calls
    /// must not be in it (a call only adds to the server's environment).
    pub async fn start(
        program: &Path,
        env: &[(std::ffi::OsString, std::ffi::OsString)],
    ) -> std::io::Result<FakeServer> {
        // Created 0700: only this user can connect (calls carry environment values).
        let dir = tempfile::Builder::new()
            .prefix("dockproof-fake-")
            .tempdir()?;
        let socket = dir.path().join("socket");
        // Its own process group (a Ctrl-C at the terminal reaches dockproof, which
        // decides), killed with the calls it forked when this is dropped.
        let mut child = Command::new(program)
            .arg("__serve")
            .arg(&socket)
            .envs(env.iter().map(|(key, value)| (key, value)))
            .stdin(Input::Piped)
            .stderr(Output::Null)
            .spawn()
            .map_err(std::io::Error::other)?;
        let stdout = child.take_stdout().expect("stdout is piped");
        let mut line = String::new();
        let said = tokio::time::timeout(
            READY_TIMEOUT,
            tokio::io::BufReader::new(stdout).read_line(&mut line),
        )
        .await;
        if !matches!(said, Ok(Ok(_))) || line.trim() != "ready" {
            return Err(std::io::Error::other(format!(
                "`{} __serve` did not start (it said {:?})",
                program.display(),
                line.trim()
            )));
        }
        Ok(FakeServer {
            socket,
            _child: child,
            _dir: dir,
        })
    }

    /// Run `fake-docker ARGS` with `env` added to the server's environment (dockproof's own).
    pub async fn call<'e>(
        &self,
        args: &[String],
        env: impl Iterator<Item = (&'e OsStr, &'e OsStr)>,
    ) -> std::io::Result<ServedCall> {
        let request = encode(args, env);
        let (stdout_reader, stdout_writer) = std::io::pipe()?;
        let (stderr_reader, stderr_writer) = std::io::pipe()?;
        let connection = UnixStream::connect(&self.socket).await?;
        let fds = [stdout_writer.as_raw_fd(), stderr_writer.as_raw_fd()];
        let sent = connection
            .async_io(Interest::WRITABLE, || {
                send_with_fds(&connection, &request, fds)
            })
            .await?;
        // Ours are closed: the streams end when the call's process (and what it leaves
        // holding them, as the CLI's would) is done.
        drop((stdout_writer, stderr_writer));
        let mut connection = connection;
        connection.write_all(&request[sent..]).await?;
        let mut pid = [0u8; 4];
        connection.read_exact(&mut pid).await?;
        Ok(ServedCall {
            stdout: Some(pipe::Receiver::from_owned_fd(OwnedFd::from(stdout_reader))?),
            stderr: Some(pipe::Receiver::from_owned_fd(OwnedFd::from(stderr_reader))?),
            connection,
            pid: u32::from_le_bytes(pid),
            done: false,
        })
    }
}

/// A call the server is running: its output streams and, from [`ServedCall::wait`], its
/// exit code. Dropped before the end, its process is killed (as `kill_on_drop` would).
#[derive(Debug)]
pub struct ServedCall {
    pub stdout: Option<pipe::Receiver>,
    pub stderr: Option<pipe::Receiver>,
    connection: UnixStream,
    pid: u32,
    done: bool,
}

impl ServedCall {
    /// The call's exit code; a call whose process died without one (a signal) gives 255.
    pub async fn wait(&mut self) -> std::io::Result<i32> {
        let mut code = [0u8; 4];
        let read = self.connection.read_exact(&mut code).await;
        self.done = true;
        match read {
            Ok(_) => Ok(i32::from_le_bytes(code)),
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => Ok(255),
            Err(error) => Err(error),
        }
    }
}

impl Drop for ServedCall {
    fn drop(&mut self) {
        if !self.done
            && let Ok(pid) = i32::try_from(self.pid)
            && pid > 0
        {
            // The call's own process, which has not reported its end.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// The request's bytes (see fake-docker's `serve.rs`).
fn encode<'e>(args: &[String], env: impl Iterator<Item = (&'e OsStr, &'e OsStr)>) -> Vec<u8> {
    let mut body = Vec::new();
    let field = |bytes: &[u8], body: &mut Vec<u8>| {
        body.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        body.extend_from_slice(bytes);
    };
    body.extend_from_slice(&(args.len() as u32).to_le_bytes());
    for arg in args {
        field(arg.as_bytes(), &mut body);
    }
    let env: Vec<_> = env.collect();
    body.extend_from_slice(&(env.len() as u32).to_le_bytes());
    for (name, value) in env {
        field(name.as_bytes(), &mut body);
        field(value.as_bytes(), &mut body);
    }
    let mut wire = (body.len() as u32).to_le_bytes().to_vec();
    wire.extend_from_slice(&body);
    wire
}

/// One `sendmsg` of (the start of) `bytes` with `fds` attached; how many bytes went.
fn send_with_fds(connection: &UnixStream, bytes: &[u8], fds: [RawFd; 2]) -> std::io::Result<usize> {
    let slices = [IoSlice::new(bytes)];
    // Room for two descriptors, aligned as the kernel wants.
    let mut control = [0u64; 8];
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of_val(&fds) as u32) } as usize;
    // SAFETY: a zeroed msghdr is valid; every pointer set below outlives the call.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = slices.as_ptr().cast_mut().cast();
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    message.msg_controllen = space as _;
    // SAFETY: filling the one control message the buffer has room for.
    unsafe {
        let header = libc::CMSG_FIRSTHDR(&message);
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(&fds) as u32) as _;
        std::ptr::copy_nonoverlapping(
            fds.as_ptr().cast::<u8>(),
            libc::CMSG_DATA(header),
            std::mem::size_of_val(&fds),
        );
    }
    // SAFETY: sendmsg over buffers that live through the call.
    let sent = unsafe {
        libc::sendmsg(
            connection.as_raw_fd(),
            &message,
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    };
    if sent < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(sent as usize)
}
