//! `fake-docker __serve SOCKET`: many CLI calls for one process start.
//!
//! A caller that makes thousands of short calls (dockproof's fake backend) pays most of
//! their cost in starting and ending a process (exec, the dynamic loader, the runtime's
//! set-up, page faults on a fresh image). This server is started once: it listens on a
//! Unix socket and, for each connection, forks a child that runs exactly what
//! `fake-docker ARGS...` would run, with the caller's stdout and stderr (passed as file
//! descriptors) and the caller's environment. The child is a copy of a process that never
//! ran a command, so it starts from the same blank state a fresh process has; it is not
//! `exec`'d, which is where the saving is. Containers stay real processes (the child
//! spawns supervisors exactly as the CLI does).
//!
//! Quick calls (`commands::is_quick`: inspecting, listing, creating, a small log,
//! removing a stopped container; no fault injection) are not forked at all: the server
//! runs them itself, with the call's environment and streams put in place for the call
//! and put back after it, one at a time. They neither block nor print more than a pipe
//! holds, so a caller that does not read yet cannot stall the server; and they leave
//! nothing in the process that a later call (forked or not) would see: no fault fired,
//! no `-H` given, the environment restored (`tests/serve.rs`).
//!
//! A `wait` for one existing container and a `stats` of one to four containers
//! (`commands::served_wait`, `commands::served_stats`) are not forked either: the pid
//! is answered as 0 and the server's loop steps the call when its next step is due (the
//! pace of the command: [`crate::commands::Waiter`], [`crate::commands::StatsStream`]),
//! serving other calls in between; what a step prints goes to the call's stdout, and
//! when it is done the call's code is answered. A step waits while the caller's stdout
//! pipe has less than [`STEP_ROOM`] free (the server never blocks on a caller that does
//! not read). A caller that gives up hangs up, and its call is dropped. The waiting and
//! the sampling process per container were two forks in five of a job scenario's
//! (benchmarks.md, row 3).
//!
//! Protocol, one call per connection: the caller sends a request (below) with two file
//! descriptors attached (`SCM_RIGHTS`: the call's stdout and stderr); the server answers
//! the pid of the process running the call (`u32` LE; 0 for a quick call the server
//! runs itself, which nothing may kill) and, when the command is done, its exit code
//! (`i32` LE). An end of stream without the code means the child died (a signal).
//!
//! Request: `u32` LE length of the rest, then `u32` count of arguments, each a `u32`
//! length and bytes, then `u32` count of environment entries, each a name and a value
//! encoded the same way. At most [`MAX_REQUEST`] bytes.
//!
//! The server ends when its stdin reaches end of file (the caller is gone).

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

/// Hidden subcommand name.
pub const SERVE: &str = "__serve";

/// Largest request accepted (arguments and environment together).
pub const MAX_REQUEST: usize = 16 << 20;

/// Most arguments or environment entries in one request.
const MAX_ITEMS: u32 = 1 << 20;

/// `FAKE_DOCKER_SERVE_QUICK=0` (in the server's or a call's environment): fork every
/// call, quick or not (for comparison, and to rule the quick path out when debugging).
pub const QUICK_SWITCH: &str = "FAKE_DOCKER_SERVE_QUICK";

/// How long a connected caller may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One decoded call.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub args: Vec<Vec<u8>>,
    pub env: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Request {
    /// The bytes of this request on the wire, length prefix included.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        let field = |bytes: &[u8], body: &mut Vec<u8>| {
            body.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            body.extend_from_slice(bytes);
        };
        body.extend_from_slice(&(self.args.len() as u32).to_le_bytes());
        for arg in &self.args {
            field(arg, &mut body);
        }
        body.extend_from_slice(&(self.env.len() as u32).to_le_bytes());
        for (name, value) in &self.env {
            field(name, &mut body);
            field(value, &mut body);
        }
        let mut wire = (body.len() as u32).to_le_bytes().to_vec();
        wire.extend_from_slice(&body);
        wire
    }

    /// Decodes a request body (without its length prefix); `None` if it is malformed.
    pub fn decode(body: &[u8]) -> Option<Request> {
        let mut at = 0usize;
        let number = |at: &mut usize| -> Option<u32> {
            let bytes = body.get(*at..at.checked_add(4)?)?;
            *at += 4;
            Some(u32::from_le_bytes(bytes.try_into().ok()?))
        };
        let field = |at: &mut usize, length: u32| -> Option<Vec<u8>> {
            let end = at.checked_add(length as usize)?;
            let bytes = body.get(*at..end)?.to_vec();
            *at = end;
            Some(bytes)
        };
        let count = number(&mut at).filter(|count| *count <= MAX_ITEMS)?;
        let mut args = Vec::new();
        for _ in 0..count {
            let length = number(&mut at)?;
            args.push(field(&mut at, length)?);
        }
        let count = number(&mut at).filter(|count| *count <= MAX_ITEMS)?;
        let mut env = Vec::new();
        for _ in 0..count {
            let length = number(&mut at)?;
            let name = field(&mut at, length)?;
            let length = number(&mut at)?;
            let value = field(&mut at, length)?;
            env.push((name, value));
        }
        (at == body.len()).then_some(Request { args, env })
    }
}

/// Body of `fake-docker __serve SOCKET`: bind, say `ready` on stdout, serve until stdin ends.
pub fn serve(socket: &str) -> i32 {
    let listener = match UnixListener::bind(socket) {
        Ok(listener) => listener,
        Err(error) => {
            crate::console::err(&format!(
                "fake-docker: cannot listen on {socket}: {error}\n"
            ));
            return 125;
        }
    };
    crate::console::out("ready\n");
    // Nothing more goes to the caller's pipe: it sees end of file after `ready`.
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        // SAFETY: dup2 onto fd 1 with a valid open descriptor.
        unsafe { libc::dup2(null.as_raw_fd(), 1) };
    }
    // Children are reaped by the kernel: the server never waits for them (a call's
    // end is reported by the child itself).
    // SAFETY: setting a signal disposition; no handler runs.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    let mut calls: Vec<Stepped> = Vec::new();
    loop {
        let mut polled: Vec<libc::pollfd> = [listener.as_raw_fd(), 0]
            .into_iter()
            .chain(calls.iter().map(|call| call.connection.as_raw_fd()))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // Until the next step is due (rounded up: never a busy loop), or forever.
        let timeout = calls.iter().map(|call| call.due).min().map_or(-1, |due| {
            let left = due.saturating_duration_since(Instant::now());
            i32::try_from(left.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX)
        });
        // SAFETY: poll over `polled.len()` valid pollfd entries.
        let ready = unsafe { libc::poll(polled.as_mut_ptr(), polled.len() as _, timeout) };
        if ready < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        if polled[1].revents != 0 {
            // The caller closed its end (or is gone): nothing more will come.
            let mut byte = [0u8; 1];
            if !matches!(std::io::stdin().read(&mut byte), Ok(1..)) {
                break;
            }
        }
        // A stepped call's caller sends nothing after its request: its connection
        // readable means it hung up (it gave up), and the call ends with it.
        let mut hung_up = polled[2..].iter().map(|entry| entry.revents != 0);
        calls.retain(|_| !hung_up.next().unwrap_or(false));
        if polled[0].revents & libc::POLLIN != 0
            && let Ok((connection, _)) = listener.accept()
        {
            handle(&listener, connection, &mut calls);
        }
        step_calls(&mut calls);
    }
    let _ = std::fs::remove_file(socket);
    0
}

/// A call the server runs from its loop, a step at a time, instead of forking: a
/// `docker wait CONTAINER` ([`crate::commands::served_wait`]) or a `docker stats`
/// stream ([`crate::commands::served_stats`]), stepped when due at the pace their
/// commands keep.
struct Stepped {
    connection: UnixStream,
    stdout: OwnedFd,
    stderr: OwnedFd,
    job: Job,
    due: Instant,
}

/// What a [`Stepped`] call does.
enum Job {
    Wait(crate::commands::Waiter),
    Stats(crate::commands::StatsStream),
}

/// Room a step needs in the caller's stdout pipe (a stats frame is a few hundred bytes
/// per container): with less, the step waits for the caller to read, so the server never
/// blocks on a full pipe.
const STEP_ROOM: usize = 16 << 10;

/// Steps the calls that are due: one that is done (a waited container ended, a stats
/// stream's containers stopped, or an error, printed as the command prints it) reports
/// its code, as that command's process would; the others are due again after their
/// next pause.
fn step_calls(calls: &mut Vec<Stepped>) {
    let now = Instant::now();
    calls.retain_mut(|call| {
        if call.due > now {
            return true;
        }
        if !has_room(&call.stdout) {
            call.due = Instant::now() + Duration::from_millis(10);
            return true;
        }
        let job = &mut call.job;
        let stepped = with_streams(&call.stdout, &call.stderr, || match job {
            Job::Wait(waiter) => match waiter.check() {
                Ok(Some(exit_code)) => {
                    crate::commands::out(&format!("{exit_code}\n"));
                    Some(0)
                }
                Ok(None) => None,
                Err(error) => Some(crate::commands::failed(&error)),
            },
            Job::Stats(stream) => stream
                .step()
                .unwrap_or_else(|error| Some(crate::commands::failed(&error))),
        });
        // A step that panicked ends the call as a panicking command's process would.
        let code = match stepped {
            Some(None) => {
                let pause = match &mut call.job {
                    Job::Wait(waiter) => waiter.next_pause(),
                    Job::Stats(stream) => stream.next_pause(),
                };
                call.due = Instant::now() + pause;
                return true;
            }
            Some(Some(code)) => code,
            None => PANICKED,
        };
        let _ = call.connection.write_all(&code.to_le_bytes());
        false
    });
}

/// The code of a call whose command panicked (Rust's exit code for a panic).
const PANICKED: i32 = 101;

/// Whether the pipe `fd` (the caller's stdout) has room for a step's output; anything
/// that is not a pipe (a file) always has.
fn has_room(fd: &OwnedFd) -> bool {
    let mut queued: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int; F_GETPIPE_SZ reads nothing.
    let (asked, size) = unsafe {
        (
            libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut queued),
            libc::fcntl(fd.as_raw_fd(), libc::F_GETPIPE_SZ),
        )
    };
    if asked < 0 || size < 0 {
        return true;
    }
    (size as usize).saturating_sub(queued.max(0) as usize) >= STEP_ROOM
}

/// Reads one request and answers it here (a quick call), keeps it to step from the loop
/// (a wait or stats stream), or forks the child that runs it; the server's copies of the
/// call's streams are closed when it is done with them.
fn handle(listener: &UnixListener, mut connection: UnixStream, calls: &mut Vec<Stepped>) {
    let _ = connection.set_read_timeout(Some(REQUEST_TIMEOUT));
    let Some((first, fds)) = receive_with_fds(&connection) else {
        return;
    };
    let Some(request) = read_request(&mut connection, first) else {
        return;
    };
    let [stdout, stderr] = fds;
    match run_here(&mut connection, &stdout, &stderr, &request) {
        Served::Answered => return,
        Served::Stepped(job) => {
            // No process of its own: nothing to kill, the caller hangs up instead.
            if connection.write_all(&0u32.to_le_bytes()).is_ok() {
                calls.push(Stepped {
                    connection,
                    stdout,
                    stderr,
                    job,
                    due: Instant::now(),
                });
            }
            return;
        }
        Served::Forked => {}
    }
    // SAFETY: this process has one thread (the server never starts one), so the child
    // may run anything; it is a copy that has run only quick calls, which leave nothing
    // behind (`run_here`), and steps, whose streams it drops first.
    match unsafe { libc::fork() } {
        0 => {
            // SAFETY: the listener's descriptor is the child's to close.
            unsafe { libc::close(listener.as_raw_fd()) };
            // The stepped calls' connections and streams are the server's: a child that
            // kept them (a `logs --follow`, an `exec`) would hold back the end of
            // another call's output until it exits.
            calls.clear();
            let code = run_child(&mut connection, &stdout, &stderr, &request);
            std::process::exit(code);
        }
        -1 => {
            let error = std::io::Error::last_os_error();
            let mut stderr = std::fs::File::from(stderr);
            let _ = writeln!(stderr, "fake-docker: the server cannot fork: {error}");
            // No pid and no code: the caller sees the end of the stream.
        }
        _ => {}
    }
}

/// Answers a quick call ([`crate::commands::is_quick`]) in this process, without a fork:
/// the call's environment is put in place and its streams on descriptors 1 and 2 for
/// the call, then both are put back. Its pid is given as 0 (there is no process of its
/// own to kill). `false` (nothing done, nothing sent) when the call needs a process of
/// its own: it may block or print more than a pipe holds, or fault injection is on (a
/// fault fires once per process). A quick call prints at most what a pipe's buffer
/// holds, so the server never waits on the caller's reading.
fn run_here(
    connection: &mut UnixStream,
    stdout: &OwnedFd,
    stderr: &OwnedFd,
    request: &Request,
) -> Served {
    let args: Vec<String> = request
        .args
        .iter()
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect();
    let saved = CallEnvironment::apply(&request.env);
    let faults = [crate::faults::FAULTS_ENV, crate::faults::FAULTS_FILE_ENV]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()));
    let switched_off = std::env::var_os(QUICK_SWITCH).is_some_and(|value| value == "0");
    if faults || switched_off {
        saved.restore();
        return Served::Forked;
    }
    if !crate::commands::is_quick(&args) {
        // The state directory a stepped call reads is the call's (its environment's).
        let job = crate::commands::served_wait(&args)
            .map(Job::Wait)
            .or_else(|| crate::commands::served_stats(&args).map(Job::Stats));
        saved.restore();
        return job.map_or(Served::Forked, Served::Stepped);
    }
    if connection.write_all(&0u32.to_le_bytes()).is_err() {
        saved.restore();
        return Served::Answered;
    }
    let code = with_streams(stdout, stderr, || crate::commands::main(&args)).unwrap_or(PANICKED);
    saved.restore();
    let _ = connection.write_all(&code.to_le_bytes());
    Served::Answered
}

/// What the server did with a call.
enum Served {
    /// Ran it and reported its code.
    Answered,
    /// A wait or stats stream, stepped from the loop until it is done ([`Stepped`]).
    Stepped(Job),
    /// Nothing yet: the call needs a process of its own.
    Forked,
}

/// Runs `call` in this process with `stdout` and `stderr` on descriptors 1 and 2, put
/// back afterwards; what it returned (`None` if it panicked).
fn with_streams<R>(stdout: &OwnedFd, stderr: &OwnedFd, call: impl FnOnce() -> R) -> Option<R> {
    let _ = std::io::stdout().flush();
    // Close-on-exec copies: a supervisor forked by the call (it closes what an exec
    // would) does not keep them.
    // SAFETY: fcntl and dup2 on descriptors this process holds open; 1 and 2 are put
    // back below before anything else runs (one thread).
    let kept = unsafe {
        [
            libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3),
            libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3),
        ]
    };
    // SAFETY: as above.
    unsafe {
        libc::dup2(stdout.as_raw_fd(), 1);
        libc::dup2(stderr.as_raw_fd(), 2);
    }
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).ok();
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: as above; a descriptor dup could not make stays as it is.
    unsafe {
        for (target, kept) in [(1, kept[0]), (2, kept[1])] {
            if kept >= 0 {
                libc::dup2(kept, target);
                libc::close(kept);
            }
        }
    }
    result
}

/// The server's environment as it was before a call's variables were put in place.
struct CallEnvironment(Vec<(std::ffi::OsString, Option<std::ffi::OsString>)>);

impl CallEnvironment {
    /// Puts `env` in place (as a forked child would), remembering what it replaced.
    fn apply(env: &[(Vec<u8>, Vec<u8>)]) -> CallEnvironment {
        let mut saved = Vec::new();
        for (name, value) in env {
            let name = std::ffi::OsStr::from_bytes(name);
            // What `set_var` would panic on (an empty name, `=` or NUL): skipped.
            let bytes = name.as_encoded_bytes();
            if bytes.is_empty() || bytes.contains(&b'=') || bytes.contains(&0) || value.contains(&0)
            {
                continue;
            }
            saved.push((name.to_owned(), std::env::var_os(name)));
            // SAFETY: this process has a single thread.
            unsafe { std::env::set_var(name, std::ffi::OsStr::from_bytes(value)) };
        }
        CallEnvironment(saved)
    }

    /// Puts back what [`CallEnvironment::apply`] replaced (in reverse: a name given twice
    /// gets its first previous value back).
    fn restore(self) {
        for (name, previous) in self.0.into_iter().rev() {
            // SAFETY: this process has a single thread.
            match previous {
                Some(value) => unsafe { std::env::set_var(&name, value) },
                None => unsafe { std::env::remove_var(&name) },
            }
        }
    }
}

/// In the forked child: become `fake-docker ARGS` with the caller's streams and environment.
fn run_child(
    connection: &mut UnixStream,
    stdout: &OwnedFd,
    stderr: &OwnedFd,
    request: &Request,
) -> i32 {
    // SAFETY: restoring the default disposition so this child's own children are waited for.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
    let null = std::fs::File::open("/dev/null");
    // SAFETY: dup2 onto the standard descriptors with valid open descriptors.
    unsafe {
        if let Ok(null) = &null {
            libc::dup2(null.as_raw_fd(), 0);
        }
        libc::dup2(stdout.as_raw_fd(), 1);
        libc::dup2(stderr.as_raw_fd(), 2);
    }
    for (name, value) in &request.env {
        let name = std::ffi::OsStr::from_bytes(name);
        let value = std::ffi::OsStr::from_bytes(value);
        if !name.is_empty() && !name.as_encoded_bytes().contains(&b'=') {
            // SAFETY: this process has a single thread.
            unsafe { std::env::set_var(name, value) };
        }
    }
    let _ = connection.write_all(&std::process::id().to_le_bytes());
    let args: Vec<String> = request
        .args
        .iter()
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect();
    let code = std::panic::catch_unwind(|| crate::commands::main(&args)).unwrap_or(101);
    let _ = std::io::stdout().flush();
    let _ = connection.write_all(&code.to_le_bytes());
    code
}

/// Reads the rest of the request after the `first` bytes that came with the descriptors.
fn read_request(connection: &mut UnixStream, mut first: Vec<u8>) -> Option<Request> {
    while first.len() < 4 {
        let mut more = [0u8; 4];
        let read = connection.read(&mut more[..4 - first.len()]).ok()?;
        if read == 0 {
            return None;
        }
        first.extend_from_slice(&more[..read]);
    }
    let length = u32::from_le_bytes(first[..4].try_into().ok()?) as usize;
    if length > MAX_REQUEST {
        return None;
    }
    let mut body = first.split_off(4);
    if body.len() > length {
        return None;
    }
    let have = body.len();
    body.resize(length, 0);
    connection.read_exact(&mut body[have..]).ok()?;
    Request::decode(&body)
}

/// One `recvmsg`: the bytes that came and exactly two descriptors (else `None`, and
/// whatever came is closed).
fn receive_with_fds(connection: &UnixStream) -> Option<(Vec<u8>, [OwnedFd; 2])> {
    let mut data = vec![0u8; 64 * 1024];
    // Room for two descriptors (aligned as the kernel wants).
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: a zeroed msghdr is valid; the pointers set below outlive the call.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = &mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    message.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: recvmsg into buffers this function owns.
    let read =
        unsafe { libc::recvmsg(connection.as_raw_fd(), &mut message, libc::MSG_CMSG_CLOEXEC) };
    if read <= 0 {
        return None;
    }
    let mut fds: Vec<OwnedFd> = Vec::new();
    // SAFETY: walking the control messages the kernel wrote into `control`.
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(&message);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SCM_RIGHTS {
                let bytes = (*header).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let data = libc::CMSG_DATA(header).cast::<RawFd>();
                for index in 0..bytes / std::mem::size_of::<RawFd>() {
                    let fd = std::ptr::read_unaligned(data.add(index));
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
            header = libc::CMSG_NXTHDR(&message, header);
        }
    }
    if message.msg_flags & libc::MSG_CTRUNC != 0 {
        return None;
    }
    let fds: [OwnedFd; 2] = fds.try_into().ok()?;
    data.truncate(read as usize);
    Some((data, fds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_malformed_ones_are_refused() {
        let request = Request {
            args: vec![b"ps".to_vec(), b"--all".to_vec(), vec![0xff, b'x']],
            env: vec![(b"FAKE_DOCKER_STATE".to_vec(), b"/tmp/s".to_vec())],
        };
        let wire = request.encode();
        let length = u32::from_le_bytes(wire[..4].try_into().unwrap()) as usize;
        assert_eq!(length, wire.len() - 4);
        assert_eq!(Request::decode(&wire[4..]), Some(request));
        // Cut short, one byte too many, an absurd count.
        assert_eq!(Request::decode(&wire[4..wire.len() - 1]), None);
        let mut longer = wire[4..].to_vec();
        longer.push(0);
        assert_eq!(Request::decode(&longer), None);
        assert_eq!(Request::decode(&u32::MAX.to_le_bytes()), None);
        assert_eq!(Request::decode(&[]), None);
    }
}
