//! `ssh://[user@]host[:port][/socket]` daemons for the Engine API backend, reached the
//! way the docker CLI reaches them: the system `ssh` runs `docker system dial-stdio` (with
//! `--host unix:///socket` when the address has a path) on the remote host, whose stdin and stdout are then a connection to the remote daemon. The
//! user's ssh configuration (`~/.ssh/config`, keys, agent, known hosts) applies as it
//! does for `docker -H ssh://…`.
//!
//! A [`Tunnel`] authenticates once (an ssh ControlMaster in a private directory, so a
//! failure is reported with ssh's own words before any API call), then serves a unix
//! socket there: each connection bollard opens to it becomes one multiplexed
//! `ssh … docker system dial-stdio` session. The master is told to exit when the tunnel
//! is dropped and exits by itself after 60 idle seconds (`ControlPersist=60`) should
//! dockproof be killed; each session ends when its connection does.
//!
//! (bollard's own `ssh` feature is not used: in 0.21 it hands `user@host:port` to ssh
//! as the destination, which ssh reads as a host name `host:port`, so an address with a
//! port cannot be reached; and it starts a master per pooled connection that persists
//! for ever.)

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::process::{self, Input, Output, ProcessError};

/// The ssh program (looked up on `PATH`, as the docker CLI does).
const SSH: &str = "ssh";
/// How long the first connection (TCP, key exchange, authentication) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// What ssh says is kept up to this many bytes (its tail).
const STDERR_LIMIT: usize = 4096;
/// Where port forwards listen on this machine.
const LOCAL_FORWARD_HOST: &str = "127.0.0.1";
/// Local ports tried for one forward (the remote port's own number first).
const FORWARD_ATTEMPTS: usize = 4;
/// How long the master may take to set up a forward.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

/// Where an `ssh://` address points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// The address as given.
    pub url: String,
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    /// The remote daemon's socket (the address's path), when not the remote default.
    pub socket: Option<String>,
}

/// Why an `ssh://` daemon cannot be reached.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("`{url}` is not an ssh address (ssh://[user@]host[:port][/socket]): {reason}")]
    InvalidUrl { url: String, reason: &'static str },
    #[error("cannot make a private directory for the ssh connection to {url}: {source}")]
    Private { url: String, source: std::io::Error },
    #[error("cannot run `{SSH}` for {url}: {source}")]
    Spawn { url: String, source: std::io::Error },
    #[error("ssh to {url} failed ({status}): {said} (try `{retry}`)")]
    Refused {
        url: String,
        status: String,
        said: String,
        retry: String,
    },
    #[error("ssh to {url} did not connect within {timeout:?} (try `{retry}`)")]
    Timeout {
        url: String,
        timeout: Duration,
        retry: String,
    },
    #[error("cannot forward a local port to {remote} over ssh to {url}: {said}")]
    Forward {
        url: String,
        remote: String,
        said: String,
    },
    #[error(
        "the Engine API on {url} could not be reached over ssh ({detail}); `{retry}` said: {said}"
    )]
    Session {
        url: String,
        detail: String,
        said: String,
        retry: String,
    },
}

impl SshTarget {
    /// Parse `ssh://[user@]host[:port][/socket]` (IPv6 hosts in brackets); like the docker
    /// CLI, no password, query or fragment; a path is the remote daemon's unix socket.
    pub fn parse(url: &str) -> Result<SshTarget, SshError> {
        let invalid = |reason| SshError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let rest = url
            .strip_prefix("ssh://")
            .ok_or_else(|| invalid("it does not start with ssh://"))?;
        if rest.contains(['?', '#']) {
            return Err(invalid("a query or fragment is not supported"));
        }
        let (rest, socket) = match rest.find('/') {
            Some(slash) => (&rest[..slash], Some(&rest[slash..])),
            None => (rest, None),
        };
        // The path becomes a word of the remote command line: plain characters only.
        let plain = |c: char| c.is_ascii_alphanumeric() || "/._-".contains(c);
        let socket = match socket {
            None | Some("/") => None,
            Some(path) if path.chars().all(plain) => Some(path.to_owned()),
            Some(_) => {
                return Err(invalid(
                    "the socket path may hold only letters, digits and / . _ -",
                ));
            }
        };
        let (user, host_port) = match rest.rsplit_once('@') {
            Some((user, _)) if user.contains(':') => {
                return Err(invalid("a password in the address is not supported"));
            }
            Some(("", _)) => return Err(invalid("the user before `@` is empty")),
            Some((user, host_port)) => (Some(user.to_owned()), host_port),
            None => (None, rest),
        };
        let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| invalid("an IPv6 host lacks its closing `]`"))?;
            match after {
                "" => (host, None),
                _ => (
                    host,
                    Some(
                        after
                            .strip_prefix(':')
                            .ok_or_else(|| invalid("only `:port` may follow `]`"))?,
                    ),
                ),
            }
        } else {
            match host_port.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (host_port, None),
            }
        };
        if host.is_empty() {
            return Err(invalid("the host is empty"));
        }
        if host.starts_with('-') || host.contains(char::is_whitespace) {
            return Err(invalid("the host is not a host name"));
        }
        let port = match port {
            None => None,
            Some(port) => Some(
                port.parse::<u16>()
                    .ok()
                    .filter(|port| *port != 0)
                    .ok_or_else(|| invalid("the port is not a number from 1 to 65535"))?,
            ),
        };
        Ok(SshTarget {
            url: url.to_owned(),
            user,
            host: host.to_owned(),
            port,
            socket,
        })
    }

    /// `-l USER -p PORT -- HOST`: who and where, as ssh options.
    fn destination(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(user) = &self.user {
            args.extend(["-l".to_owned(), user.clone()]);
        }
        if let Some(port) = self.port {
            args.extend(["-p".to_owned(), port.to_string()]);
        }
        args.extend(["--".to_owned(), self.host.clone()]);
        args
    }

    /// The remote command: the docker CLI's own.
    fn remote_command(&self) -> Vec<String> {
        let mut words = vec!["docker".to_owned()];
        if let Some(socket) = &self.socket {
            words.extend(["--host".to_owned(), format!("unix://{socket}")]);
        }
        words.extend(["system", "dial-stdio"].map(String::from));
        words
    }

    /// The command a person can run to see what dockproof sees.
    pub fn retry_command(&self) -> String {
        let mut words = vec![SSH.to_owned(), "-o".into(), "BatchMode=yes".into()];
        words.extend(self.destination());
        words.extend(self.remote_command());
        words.join(" ")
    }
}

/// An authenticated ssh connection to a host (a ControlMaster in a private directory):
/// API sessions and port forwards are multiplexed over it. It is told to exit on drop.
#[derive(Debug)]
pub struct Master {
    target: SshTarget,
    /// Holds the control socket (and, for a [`Tunnel`], the API socket); removed on drop.
    dir: tempfile::TempDir,
    /// Once a forward exists: a session (`cat` reading our pipe) that keeps the master
    /// from exiting after `ControlPersist`'s idle time, which would close the forwards.
    /// Killed on drop; should dockproof die, the pipe closes, the session ends, and the
    /// master exits 60 s later as before.
    keepalive: Mutex<Option<process::Child>>,
}

impl Master {
    /// Authenticate to `target`: a refusal is reported with ssh's own words.
    pub async fn open(target: SshTarget) -> Result<Master, SshError> {
        let private = |source| SshError::Private {
            url: target.url.clone(),
            source,
        };
        let dir = tempfile::Builder::new()
            .prefix("dockproof-ssh-")
            .tempdir()
            .map_err(private)?;
        let control = dir.path().join("control");
        let log = dir.path().join("master.log");
        let master = process::Command::new(SSH)
            .arg("-M")
            .arg("-S")
            .arg(&control)
            .arg("-E")
            .arg(&log)
            .args([
                "-f",
                "-N",
                "-o",
                "ControlPersist=60",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=30",
            ])
            .args(target.destination())
            .stdout(Output::Null)
            // With -f the master keeps whatever it inherits open: its words go to the log.
            .stderr(Output::Null);
        // The master detaches (`-f`: a session of its own), so it outlives this call; a
        // timeout kills the ssh that is still authenticating, with its group.
        let code = match master.output(CONNECT_TIMEOUT, 0).await {
            Ok(finished) => finished.code,
            Err(ProcessError::Timeout { .. }) => {
                return Err(SshError::Timeout {
                    url: target.url.clone(),
                    timeout: CONNECT_TIMEOUT,
                    retry: target.retry_command(),
                });
            }
            Err(ProcessError::Spawn { source, .. } | ProcessError::Wait { source, .. }) => {
                return Err(SshError::Spawn {
                    url: target.url.clone(),
                    source,
                });
            }
        };
        if code != 0 {
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            let said = tail(said.trim(), STDERR_LIMIT);
            let said = if said.is_empty() {
                "(ssh printed nothing)".to_owned()
            } else {
                said.replace('\n', " / ")
            };
            let status = if code > 128 {
                format!("ssh ended by signal {}", code - 128)
            } else {
                format!("ssh exited with {code}")
            };
            return Err(SshError::Refused {
                url: target.url.clone(),
                status,
                said,
                retry: target.retry_command(),
            });
        }
        Ok(Master {
            target,
            dir,
            keepalive: Mutex::new(None),
        })
    }

    /// The control socket the master listens on.
    fn control(&self) -> PathBuf {
        self.dir.path().join("control")
    }

    /// Start the keepalive session, unless it runs.
    fn keep_alive(&self) -> Result<(), SshError> {
        let Ok(mut keepalive) = self.keepalive.lock() else {
            return Ok(());
        };
        let running = keepalive
            .as_mut()
            .is_some_and(|child| child.try_wait().is_ok_and(|code| code.is_none()));
        if running {
            return Ok(());
        }
        let child = process::Command::new(SSH)
            .arg("-S")
            .arg(self.control())
            .args(["-o", "ControlMaster=no", "-o", "BatchMode=yes", "-T"])
            .args(self.target.destination())
            .arg("cat")
            .stdin(Input::Piped)
            .stdout(Output::Null)
            .stderr(Output::Null)
            .spawn()
            .map_err(|error| match error {
                ProcessError::Spawn { source, .. } | ProcessError::Wait { source, .. } => {
                    SshError::Spawn {
                        url: self.target.url.clone(),
                        source,
                    }
                }
                ProcessError::Timeout { command, .. } => SshError::Spawn {
                    url: self.target.url.clone(),
                    source: std::io::Error::other(command),
                },
            })?;
        *keepalive = Some(child);
        Ok(())
    }

    /// Forward a port on this machine's loopback to `remote_host:remote_port` as seen from
    /// the ssh host (`ssh -O forward -L`, over this master); returns the local port. The
    /// remote port number is kept when it is free here, so a port a scenario reads
    /// (`{{ service.NAME.port }}`) means the same on both sides; otherwise another free one.
    pub async fn forward(&self, remote_host: &str, remote_port: u16) -> Result<u16, SshError> {
        self.keep_alive()?;
        let target = if remote_host.contains(':') {
            format!("[{remote_host}]")
        } else {
            remote_host.to_owned()
        };
        let mut said = String::new();
        for attempt in 0..FORWARD_ATTEMPTS {
            let local = if attempt == 0 {
                remote_port
            } else {
                match free_loopback_port() {
                    Some(port) => port,
                    None => continue,
                }
            };
            if attempt == 0 && !loopback_port_is_free(local) {
                continue;
            }
            let spec = format!("{LOCAL_FORWARD_HOST}:{local}:{target}:{remote_port}");
            let command = process::Command::new(SSH)
                .arg("-S")
                .arg(self.control())
                .args(["-o", "BatchMode=yes", "-O", "forward", "-L", &spec])
                .args(self.target.destination())
                .stdout(Output::Null);
            let output = match command.output(FORWARD_TIMEOUT, STDERR_LIMIT).await {
                Ok(output) => output,
                Err(ProcessError::Timeout { .. }) => {
                    said = format!("`ssh -O forward` did not answer within {FORWARD_TIMEOUT:?}");
                    continue;
                }
                Err(ProcessError::Spawn { source, .. } | ProcessError::Wait { source, .. }) => {
                    return Err(SshError::Spawn {
                        url: self.target.url.clone(),
                        source,
                    });
                }
            };
            if output.success() {
                return Ok(local);
            }
            said = tail(output.stderr.text.trim(), STDERR_LIMIT).replace('\n', " / ");
        }
        Err(SshError::Forward {
            url: self.target.url.clone(),
            remote: format!("{target}:{remote_port}"),
            said,
        })
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        stop_master(&self.control());
    }
}

/// Whether TCP `port` can be bound on this machine's loopback right now.
fn loopback_port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind((LOCAL_FORWARD_HOST, port)).is_ok()
}

/// A loopback port nothing listens on (just released).
fn free_loopback_port() -> Option<u16> {
    std::net::TcpListener::bind((LOCAL_FORWARD_HOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .ok()
}

/// A unix socket that leads to the daemon of an `ssh://` host.
#[derive(Debug)]
pub struct Tunnel {
    master: Master,
    accept: JoinHandle<()>,
    /// What the last ssh session that failed said.
    failure: Arc<Mutex<Option<String>>>,
}

impl Tunnel {
    /// Authenticate to `target` (a ControlMaster) and serve the API socket. Needs a tokio runtime.
    pub async fn open(target: SshTarget) -> Result<Tunnel, SshError> {
        let master = Master::open(target).await?;
        let socket = master.dir.path().join("docker.sock");
        let listener = UnixListener::bind(&socket).map_err(|source| SshError::Private {
            url: master.target.url.clone(),
            source,
        })?;
        let failure = Arc::new(Mutex::new(None));
        let accept = tokio::spawn(serve(
            listener,
            Arc::new(dial_command(&master.target, &master.control())),
            failure.clone(),
        ));
        Ok(Tunnel {
            master,
            accept,
            failure,
        })
    }

    /// The unix socket bollard connects to.
    pub fn socket(&self) -> PathBuf {
        self.master.dir.path().join("docker.sock")
    }

    /// The ssh connection the tunnel runs over (for port forwards).
    pub fn master(&self) -> &Master {
        &self.master
    }

    /// `error` (the daemon could not be reached, or answered nonsense), explained by what
    /// ssh said: a failing session records that as it ends, which may be just after the
    /// client saw the connection break, so this waits for it a little.
    pub async fn explain(&self, error: super::BackendError) -> super::BackendError {
        let detail = match &error {
            super::BackendError::DaemonUnavailable { message }
            | super::BackendError::Api { message, .. } => message.clone(),
            _ => return error,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            let said = self.failure.lock().ok().and_then(|failure| failure.clone());
            if let Some(said) = said {
                let error = SshError::Session {
                    url: self.master.target.url.clone(),
                    detail,
                    said,
                    retry: self.master.target.retry_command(),
                };
                return super::BackendError::DaemonUnavailable {
                    message: error.to_string(),
                };
            }
            if tokio::time::Instant::now() >= deadline {
                return error;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        // Ends the sessions (their tasks own the ssh children, killed when dropped); the
        // master is told to exit when `master` drops.
        self.accept.abort();
    }
}

/// Ask the master behind `control` to exit (it is not our child: `-f` detached it).
/// The one program not run through [`crate::process`]: a `Drop` cannot await, and
/// `ssh -O exit` only talks to the local control socket, answering at once.
fn stop_master(control: &Path) {
    if control.exists() {
        let _ = std::process::Command::new(SSH)
            .arg("-S")
            .arg(control)
            .args(["-O", "exit", "dockproof-tunnel"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The argv of one session: `docker system dial-stdio` through the master (or, should it
/// have gone idle and exited, through a new connection of its own).
fn dial_command(target: &SshTarget, control: &Path) -> Vec<std::ffi::OsString> {
    let mut argv: Vec<std::ffi::OsString> = vec!["-S".into(), control.into()];
    argv.extend(
        [
            "-o",
            "ControlMaster=no",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=30",
            "-T",
        ]
        .map(Into::into),
    );
    argv.extend(target.destination().into_iter().map(Into::into));
    argv.extend(target.remote_command().into_iter().map(Into::into));
    argv
}

/// Accept API connections until aborted; each becomes an ssh session. Aborting drops the
/// sessions' tasks, which kills their ssh processes.
async fn serve(
    listener: UnixListener,
    argv: Arc<Vec<std::ffi::OsString>>,
    failure: Arc<Mutex<Option<String>>>,
) {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    sessions.spawn(session(stream, argv.clone(), failure.clone()));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
}

/// Carry one API connection over `ssh … docker system dial-stdio`.
async fn session(
    stream: UnixStream,
    argv: Arc<Vec<std::ffi::OsString>>,
    failure: Arc<Mutex<Option<String>>>,
) {
    let record = |said: String| {
        if let Ok(mut failure) = failure.lock() {
            *failure = Some(said);
        }
    };
    let spawned = process::Command::new(SSH)
        .args(argv.iter())
        .stdin(Input::Piped)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) => return record(error.to_string()),
    };
    let (Some(mut stdin), Some(mut stdout), Some(stderr)) =
        (child.take_stdin(), child.take_stdout(), child.take_stderr())
    else {
        return record("ssh started without its pipes".to_owned());
    };
    let (mut from_client, mut to_client) = stream.into_split();
    // The client's requests go up until it closes its side; then ssh's stdin closes, and
    // the remote dial-stdio (and so ssh) ends.
    let upload = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from_client, &mut stdin).await;
    });
    let said = tokio::spawn(read_tail(stderr));
    let _ = tokio::io::copy(&mut stdout, &mut to_client).await;
    // ssh closed its stdout: it is ending. What it said is recorded before the client sees
    // the end, so a failed call can be explained by it.
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    let said = said.await.unwrap_or_default();
    if let Ok(Ok(code)) = status
        && code != 0
    {
        let said = if said.trim().is_empty() {
            format!("ssh exited with {code}")
        } else {
            said.trim().replace('\n', " / ")
        };
        record(said);
    }
    upload.abort();
    let _ = to_client.shutdown().await;
}

/// The last `STDERR_LIMIT` bytes of a stream, read to its end.
async fn read_tail(mut stream: impl tokio::io::AsyncRead + Unpin) -> String {
    let mut kept = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(read) = stream.read(&mut buffer).await {
        if read == 0 {
            break;
        }
        kept.extend_from_slice(&buffer[..read]);
        if kept.len() > 2 * STDERR_LIMIT {
            kept.drain(..kept.len() - STDERR_LIMIT);
        }
    }
    tail(&String::from_utf8_lossy(&kept), STDERR_LIMIT)
}

fn tail(text: &str, limit: usize) -> String {
    let mut start = text.len().saturating_sub(limit);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ssh_addresses_like_the_docker_cli() {
        let target = SshTarget::parse("ssh://root@10.0.0.5:2222").unwrap();
        assert_eq!(
            (target.user.as_deref(), target.host.as_str(), target.port),
            (Some("root"), "10.0.0.5", Some(2222))
        );
        assert_eq!(
            target.destination(),
            ["-l", "root", "-p", "2222", "--", "10.0.0.5"]
        );
        let target = SshTarget::parse("ssh://builder").unwrap();
        assert_eq!(
            (
                target.user,
                target.host.as_str(),
                target.port,
                target.socket
            ),
            (None, "builder", None, None)
        );
        let target = SshTarget::parse("ssh://builder:22/run/user/1000/docker.sock").unwrap();
        assert_eq!(
            (target.host.as_str(), target.socket.as_deref()),
            ("builder", Some("/run/user/1000/docker.sock"))
        );
        assert!(target.retry_command().ends_with(
            "-- builder docker --host unix:///run/user/1000/docker.sock system dial-stdio"
        ));
        assert_eq!(SshTarget::parse("ssh://builder/").unwrap().socket, None);
        let target = SshTarget::parse("ssh://me@[::1]:22").unwrap();
        assert_eq!(
            (target.user.as_deref(), target.host.as_str(), target.port),
            (Some("me"), "::1", Some(22))
        );
        assert_eq!(SshTarget::parse("ssh://[fe80::1]").unwrap().host, "fe80::1");
        for bad in [
            "tcp://h:2376",
            "ssh://",
            "ssh://me:secret@h",
            "ssh://@h",
            "ssh://h/x;reboot",
            "ssh://h/a b",
            "ssh://h?x=1",
            "ssh://h:0",
            "ssh://h:port",
            "ssh://h:70000",
            "ssh://-oProxyCommand=x",
            "ssh://[::1",
            "ssh://[::1]x",
        ] {
            assert!(
                matches!(SshTarget::parse(bad), Err(SshError::InvalidUrl { .. })),
                "{bad} must be refused"
            );
        }
    }

    #[test]
    fn the_retry_command_is_the_docker_clis_session() {
        let target = SshTarget::parse("ssh://ops@worker-1:2200").unwrap();
        assert_eq!(
            target.retry_command(),
            "ssh -o BatchMode=yes -l ops -p 2200 -- worker-1 docker system dial-stdio"
        );
        let argv = dial_command(&target, Path::new("/tmp/x/control"));
        let argv: Vec<String> = argv
            .iter()
            .map(|word| word.to_string_lossy().into_owned())
            .collect();
        assert_eq!(argv[..2], ["-S", "/tmp/x/control"]);
        assert!(
            argv.ends_with(&["--", "worker-1", "docker", "system", "dial-stdio"].map(String::from)),
            "{argv:?}"
        );
    }

    #[test]
    fn tails_keep_whole_characters() {
        assert_eq!(tail("héllo", 4), "llo");
        assert_eq!(tail("abc", 10), "abc");
    }
}
