//! `fake-docker __serve`: quick calls are answered by the server itself (pid 0), the
//! others by a forked child (its own pid); either way a call sees exactly its own
//! environment, and what one call set is gone for the next.

use std::io::Read;
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

fn call(server: &Server, args: &[&str], env: &[(&str, &str)]) -> Answer {
    let request = Request {
        args: args.iter().map(|arg| arg.as_bytes().to_vec()).collect(),
        env: env
            .iter()
            .map(|(name, value)| (name.as_bytes().to_vec(), value.as_bytes().to_vec()))
            .collect(),
    }
    .encode();
    let (mut stdout_reader, stdout_writer) = std::io::pipe().unwrap();
    let (mut stderr_reader, stderr_writer) = std::io::pipe().unwrap();
    let mut connection = UnixStream::connect(&server.socket).unwrap();
    send_with_fds(
        &connection,
        &request,
        [stdout_writer.as_raw_fd(), stderr_writer.as_raw_fd()],
    );
    drop((stdout_writer, stderr_writer));
    let mut pid = [0u8; 4];
    connection.read_exact(&mut pid).unwrap();
    let mut code = [0u8; 4];
    connection.read_exact(&mut code).unwrap();
    let (mut stdout, mut stderr) = (String::new(), String::new());
    stdout_reader.read_to_string(&mut stdout).unwrap();
    stderr_reader.read_to_string(&mut stderr).unwrap();
    Answer {
        pid: u32::from_le_bytes(pid),
        code: i32::from_le_bytes(code),
        stdout,
        stderr,
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
    // `start` runs a container and `wait` blocks: each gets a process of its own.
    let started = call(&server, &["start", "quick"], &env);
    assert_eq!(started.code, 0, "{}", started.stderr);
    assert!(started.pid > 0);
    let waited = call(&server, &["wait", "quick"], &env);
    assert_eq!((waited.code, waited.stdout.as_str()), (0, "0\n"));
    assert!(waited.pid > 0);
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
