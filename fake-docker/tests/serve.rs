//! `fake-docker __serve`: quick calls are answered by the server itself (pid 0), a
//! wait for one container too (from its loop, while it serves other calls), the
//! others by a forked child (its own pid); either way a call sees exactly its own
//! environment and what a spawned `fake-docker` would give, and what one call set is
//! gone for the next.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use fake_docker::serve::Request;

/// A running server on a socket in its own directory; killed when dropped.
struct Server {
    child: Child,
    socket: PathBuf,
    state: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("socket");
    let state = dir.path().join("state");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fake-docker"))
        .arg("__serve")
        .arg(&socket)
        .env("FAKE_DOCKER_STATE", &state)
        .env_remove("FAKE_DOCKER_IMAGES")
        .env_remove("FAKE_DOCKER_FAULTS")
        .env_remove("FAKE_DOCKER_FAULTS_FILE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = [0u8; 6];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut ready)
        .unwrap();
    assert_eq!(&ready, b"ready\n");
    Server {
        child,
        socket,
        state,
        _dir: dir,
    }
}

/// What one call gave: the pid the server named, the exit code, stdout and stderr.
struct Answer {
    pid: u32,
    code: i32,
    stdout: String,
    stderr: String,
}

fn images() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/fake-images")
        .display()
        .to_string()
}

/// A call sent and its pid read; [`Begun::finish`] reads the rest.
struct Begun {
    connection: UnixStream,
    stdout: std::io::PipeReader,
    stderr: std::io::PipeReader,
    pid: u32,
}

impl Begun {
    fn finish(mut self) -> Answer {
        let mut code = [0u8; 4];
        self.connection.read_exact(&mut code).unwrap();
        let (mut stdout, mut stderr) = (String::new(), String::new());
        self.stdout.read_to_string(&mut stdout).unwrap();
        self.stderr.read_to_string(&mut stderr).unwrap();
        Answer {
            pid: self.pid,
            code: i32::from_le_bytes(code),
            stdout,
            stderr,
        }
    }
}

fn call(server: &Server, args: &[&str], env: &[(&str, &str)]) -> Answer {
    begin(server, args, env).finish()
}

fn begin(server: &Server, args: &[&str], env: &[(&str, &str)]) -> Begun {
    begin_with_backlog(server, args, env, 0)
}

/// [`begin`] with `backlog` bytes already waiting in the call's stdout pipe, as from a
/// caller that has not read for a while (they come first in what the call gives).
fn begin_with_backlog(
    server: &Server,
    args: &[&str],
    env: &[(&str, &str)],
    backlog: usize,
) -> Begun {
    let request = Request {
        args: args.iter().map(|arg| arg.as_bytes().to_vec()).collect(),
        env: env
            .iter()
            .map(|(name, value)| (name.as_bytes().to_vec(), value.as_bytes().to_vec()))
            .collect(),
    }
    .encode();
    let (stdout_reader, mut stdout_writer) = std::io::pipe().unwrap();
    let (stderr_reader, stderr_writer) = std::io::pipe().unwrap();
    stdout_writer.write_all(&vec![b'.'; backlog]).unwrap();
    let mut connection = UnixStream::connect(&server.socket).unwrap();
    // A server that stops answering fails the test instead of hanging it.
    connection
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    send_with_fds(
        &connection,
        &request,
        [stdout_writer.as_raw_fd(), stderr_writer.as_raw_fd()],
    );
    drop((stdout_writer, stderr_writer));
    let mut pid = [0u8; 4];
    connection.read_exact(&mut pid).unwrap();
    Begun {
        connection,
        stdout: stdout_reader,
        stderr: stderr_reader,
        pid: u32::from_le_bytes(pid),
    }
}

/// The whole request in one `sendmsg`, with the two descriptors attached.
fn send_with_fds(connection: &UnixStream, bytes: &[u8], fds: [RawFd; 2]) {
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut _,
        iov_len: bytes.len(),
    };
    let mut control = [0u64; 8];
    // SAFETY: a zeroed msghdr is valid; the pointers set below outlive the call.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = &mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    // SAFETY: computing the control message size for two descriptors.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of_val(&fds) as u32) } as usize;
    message.msg_controllen = space as _;
    // SAFETY: writing one SCM_RIGHTS header into `control`, which is large enough.
    unsafe {
        let header = libc::CMSG_FIRSTHDR(&message);
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(&fds) as u32) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(header).cast(), 2);
    }
    // SAFETY: sendmsg of buffers this function owns.
    let sent = unsafe { libc::sendmsg(connection.as_raw_fd(), &message, 0) };
    assert_eq!(sent, bytes.len() as isize, "one sendmsg takes the request");
}

#[test]
fn quick_calls_are_answered_in_the_server_and_the_others_by_a_fork() {
    let server = start();
    let images = images();
    let env = [("FAKE_DOCKER_IMAGES", images.as_str())];
    let created = call(
        &server,
        &["create", "--name", "quick", "dockproof/job-runner:1", "job"],
        &env,
    );
    assert_eq!((created.code, created.pid), (0, 0), "{}", created.stderr);
    let id = created.stdout.trim().to_owned();
    assert_eq!(id.len(), 64, "{}", created.stdout);
    let inspected = call(
        &server,
        &["inspect", "--format", "{{.State.Status}}", "quick"],
        &env,
    );
    assert_eq!(
        (inspected.pid, inspected.code, inspected.stdout.as_str()),
        (0, 0, "created\n")
    );
    // `start` runs a container: it gets a process of its own; a wait for one container
    // is answered by the server when the container ends.
    let started = call(&server, &["start", "quick"], &env);
    assert_eq!(started.code, 0, "{}", started.stderr);
    assert!(started.pid > 0);
    let waited = call(&server, &["wait", "quick"], &env);
    assert_eq!(
        (waited.pid, waited.code, waited.stdout.as_str()),
        (0, 0, "0\n")
    );
    let logs = call(&server, &["logs", "quick"], &env);
    assert_eq!((logs.pid, logs.code), (0, 0), "{}", logs.stderr);
    assert!(logs.stderr.contains("job"), "{}", logs.stderr);
    // A missing container's answer is docker's, from the server as from a fork.
    let missing = call(&server, &["inspect", "no-such"], &env);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("No such object: no-such"),
        "{}",
        missing.stderr
    );
    let removed = call(&server, &["rm", "--force", "quick"], &env);
    assert_eq!(
        (removed.pid, removed.code, removed.stdout.as_str()),
        (0, 0, "quick\n")
    );
    assert!(!server.state.join("containers").join(&id).exists());
}

#[test]
fn a_calls_environment_is_its_own_and_gone_for_the_next() {
    let server = start();
    let images = images();
    let with_images = [("FAKE_DOCKER_IMAGES", images.as_str())];
    let created = call(
        &server,
        &["create", "--name", "env", "dockproof/job-runner:1"],
        &with_images,
    );
    assert_eq!((created.pid, created.code), (0, 0), "{}", created.stderr);
    // The images came from that call's environment only: without it the server's own
    // (the built-in default) is back.
    let without = call(
        &server,
        &[
            "image",
            "inspect",
            "--format",
            "{{.Id}}",
            "dockproof/job-runner:1",
        ],
        &[],
    );
    let with = call(
        &server,
        &[
            "image",
            "inspect",
            "--format",
            "{{.Id}}",
            "dockproof/job-runner:1",
        ],
        &with_images,
    );
    assert_eq!((with.pid, with.code), (0, 0), "{}", with.stderr);
    assert_eq!(without.pid, 0);
    assert_ne!(
        (without.code, without.stdout.as_str()),
        (with.code, with.stdout.as_str()),
        "the second call still saw the first call's FAKE_DOCKER_IMAGES"
    );
    // A call with fault injection is forked (a fault fires once per process), and fires.
    let faulted = call(
        &server,
        &["inspect", "env"],
        &[
            ("FAKE_DOCKER_IMAGES", images.as_str()),
            ("FAKE_DOCKER_FAULTS", "inspect:daemon-unreachable"),
        ],
    );
    assert!(faulted.pid > 0);
    assert_ne!(faulted.code, 0);
    assert!(
        faulted
            .stderr
            .contains("Cannot connect to the Docker daemon"),
        "{}",
        faulted.stderr
    );
    // ... and leaves nothing behind in the server.
    let after = call(&server, &["inspect", "--format", "{{.Name}}", "env"], &[]);
    assert_eq!(
        (after.pid, after.code, after.stdout.as_str()),
        (0, 0, "/env\n")
    );
}

#[test]
fn the_switch_forks_every_call() {
    let server = start();
    let images = images();
    let env = [
        ("FAKE_DOCKER_IMAGES", images.as_str()),
        ("FAKE_DOCKER_SERVE_QUICK", "0"),
    ];
    let created = call(
        &server,
        &["create", "--name", "forked", "dockproof/job-runner:1"],
        &env,
    );
    assert_eq!(created.code, 0, "{}", created.stderr);
    assert!(
        created.pid > 0,
        "a quick call was not forked with the switch off"
    );
}

/// `fake-docker ARGS` run as its own process against the server's state, for comparison.
fn spawned(server: &Server, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_fake-docker"))
        .args(args)
        .env("FAKE_DOCKER_STATE", &server.state)
        .env("FAKE_DOCKER_IMAGES", images())
        .env_remove("FAKE_DOCKER_FAULTS")
        .env_remove("FAKE_DOCKER_FAULTS_FILE")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Creates and starts a job-runner container `name` running `job` with `flags`, for
/// `seconds` (`JOB_SLEEP`).
fn running_job(server: &Server, env: &[(&str, &str)], name: &str, seconds: u32, flags: &[&str]) {
    let sleep = format!("JOB_SLEEP={seconds}");
    let mut create = vec!["create", "--name", name, "-e", &sleep];
    create.extend_from_slice(flags);
    create.extend_from_slice(&["dockproof/job-runner:1", "job"]);
    for args in [&create[..], &["start", name]] {
        let answer = call(server, args, env);
        assert_eq!(answer.code, 0, "{args:?}: {}", answer.stderr);
    }
}

#[test]
fn a_wait_is_answered_by_the_server_when_its_container_ends_and_others_are_served_meanwhile() {
    let server = start();
    let images = images();
    let env = [("FAKE_DOCKER_IMAGES", images.as_str())];
    running_job(&server, &env, "slow", 2, &["-e", "JOB_EXIT_CODE=3"]);
    let waiting = begin(&server, &["wait", "slow"], &env);
    assert_eq!(
        waiting.pid, 0,
        "a wait for one container has no process of its own"
    );
    // A caller that gives up hangs up; the server goes on.
    drop(begin(&server, &["wait", "slow"], &env));
    // The server answers other calls while the wait is pending: the container still runs.
    let meanwhile = call(
        &server,
        &["inspect", "--format", "{{.State.Status}}", "slow"],
        &env,
    );
    assert_eq!(
        (meanwhile.pid, meanwhile.code, meanwhile.stdout.as_str()),
        (0, 0, "running\n"),
        "{}",
        meanwhile.stderr
    );
    let waited = waiting.finish();
    assert_eq!(
        (waited.code, waited.stdout.as_str(), waited.stderr.as_str()),
        (0, "3\n", ""),
        "the container's own exit code, once it ended"
    );
    let ended = call(
        &server,
        &["inspect", "--format", "{{.State.Status}}", "slow"],
        &env,
    );
    assert_eq!(ended.stdout, "exited\n");
    // What a spawned `fake-docker wait` gives for the same container.
    let (code, stdout, stderr) = spawned(&server, &["wait", "slow"]);
    assert_eq!(
        (waited.code, waited.stdout, waited.stderr),
        (code, stdout, stderr)
    );
    // A missing container, or several: a process of its own, as before, same answer.
    let missing = call(&server, &["wait", "no-such"], &env);
    assert!(missing.pid > 0);
    assert_eq!(
        (missing.code, missing.stdout, missing.stderr),
        spawned(&server, &["wait", "no-such"])
    );
    let several = call(&server, &["wait", "slow", "slow"], &env);
    assert!(several.pid > 0);
    assert_eq!((several.code, several.stdout.as_str()), (0, "3\n3\n"));
}

#[test]
fn a_stats_stream_is_stepped_by_the_server_and_gives_what_the_command_gives() {
    let server = start();
    let images = images();
    let env = [("FAKE_DOCKER_IMAGES", images.as_str())];
    running_job(&server, &env, "sampled", 2, &["--memory", "64m"]);
    let format = "{{.Name}} {{.MemUsage}} {{.PIDs}}";
    let streaming = begin(&server, &["stats", "--format", format, "sampled"], &env);
    assert_eq!(streaming.pid, 0, "stats has no process of its own");
    // Served meanwhile: a one-frame stats while the container runs.
    let once = call(
        &server,
        &["stats", "--no-stream", "--format", format, "sampled"],
        &env,
    );
    assert_eq!(
        (once.pid, once.code, once.stdout.as_str()),
        (0, 0, "sampled 1MiB / 64MiB 1\n"),
        "{}",
        once.stderr
    );
    // The stream ends when the container does: its running frame, then a stopped one.
    let streamed = streaming.finish();
    assert_eq!(streamed.code, 0, "{}", streamed.stderr);
    assert_eq!(
        streamed.stdout.lines().next(),
        Some("sampled 1MiB / 64MiB 1"),
        "{}",
        streamed.stdout
    );
    assert_eq!(
        streamed.stdout.lines().last(),
        Some("sampled 0B / 0B 0"),
        "{}",
        streamed.stdout
    );
    // A missing container: the command's answer, from the server as from a process.
    let missing = call(&server, &["stats", "--no-stream", "no-such"], &env);
    assert_eq!(missing.pid, 0);
    assert_eq!(
        (missing.code, missing.stdout, missing.stderr),
        spawned(&server, &["stats", "--no-stream", "no-such"])
    );
    // Every running container (no names): a process of its own.
    let all = call(&server, &["stats", "--no-stream"], &env);
    assert!(all.pid > 0);
}

#[test]
fn a_caller_that_does_not_read_stalls_its_own_stream_not_the_server() {
    let server = start();
    let images = images();
    let env = [("FAKE_DOCKER_IMAGES", images.as_str())];
    running_job(&server, &env, "unread", 2, &[]);
    // The pipe is all but full (64 KiB on Linux, 10 bytes left): a frame written now
    // would block the server until the caller reads.
    let backlog = 64 * 1024 - 10;
    let mut streaming = begin_with_backlog(
        &server,
        &["stats", "--format", "{{.Name}} {{.MemUsage}}", "unread"],
        &env,
        backlog,
    );
    assert_eq!(streaming.pid, 0);
    // Other calls are answered meanwhile, and the stream is not done while its container runs.
    let meanwhile = call(
        &server,
        &["inspect", "--format", "{{.State.Status}}", "unread"],
        &env,
    );
    assert_eq!(
        (meanwhile.code, meanwhile.stdout.as_str()),
        (0, "running\n")
    );
    let waited = call(&server, &["wait", "unread"], &env);
    assert_eq!((waited.code, waited.stdout.as_str()), (0, "0\n"));
    // The container has ended; the stream still has had no room to say so.
    streaming
        .connection
        .set_read_timeout(Some(std::time::Duration::from_millis(300)))
        .unwrap();
    let mut code = [0u8; 4];
    let early = streaming.connection.read_exact(&mut code);
    assert!(early.is_err(), "the stream ended without writing its frame");
    streaming
        .connection
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    // The caller reads: the stream goes on, gives its last frame and ends.
    let mut drained = vec![0u8; backlog];
    streaming.stdout.read_exact(&mut drained).unwrap();
    let answer = streaming.finish();
    assert_eq!(
        (answer.code, answer.stdout.as_str()),
        (0, "unread 0B / 0B\n"),
        "{}",
        answer.stderr
    );
}

#[test]
fn a_forked_call_does_not_hold_a_stepped_calls_output_open() {
    let server = start();
    let images = images();
    let env = [("FAKE_DOCKER_IMAGES", images.as_str())];
    running_job(&server, &env, "short", 1, &[]);
    running_job(&server, &env, "long", 5, &[]);
    // Stepped: a wait for the short one; forked meanwhile: a follow of the long one,
    // which lives until that container ends.
    let waiting = begin(&server, &["wait", "short"], &env);
    assert_eq!(waiting.pid, 0);
    let mut following = begin(&server, &["logs", "--follow", "long"], &env);
    assert!(following.pid > 0);
    // The wait's output ends when the wait does, not when the follow's process does.
    let waited = waiting.finish();
    assert_eq!((waited.code, waited.stdout.as_str()), (0, "0\n"));
    following
        .connection
        .set_read_timeout(Some(std::time::Duration::from_millis(100)))
        .unwrap();
    let mut code = [0u8; 4];
    assert!(
        following.connection.read_exact(&mut code).is_err(),
        "the follow had ended: the wait's output was held open until then"
    );
    following
        .connection
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    assert_eq!(following.finish().code, 0);
}
