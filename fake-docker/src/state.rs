//! The state directory: container records, logs and private roots, shared by every
//! invocation. Mutations happen under one exclusive file lock; records are replaced
//! atomically (temp file + rename), so readers never see half a record.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::health::{HealthConfig, HealthState};
use crate::paths::{ContainerFs, Mount};
use crate::ports::{PortRequest, Published};

/// A state-directory operation that failed.
#[derive(Debug, Error)]
pub enum StateError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corrupt container record {path}: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// Lifecycle status, as `State.Status` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Exited,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
        }
    }
}

/// Runtime state of a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunState {
    pub status: Status,
    /// Pid of the program process while running, else 0.
    pub pid: u32,
    /// Pid of the supervisor while running, else 0.
    pub supervisor_pid: u32,
    pub exit_code: i32,
    pub error: String,
    pub started: bool,
    pub finished: bool,
    /// Set while a `start` is handing the container to its supervisor.
    pub starting: bool,
    /// The program was killed for going over `--memory` (`State.OOMKilled`).
    #[serde(default)]
    pub oom_killed: bool,
    /// `State.Health`, while a health check is configured and the container has started.
    #[serde(default)]
    pub health: Option<HealthState>,
    /// Host ports bound while running (`NetworkSettings.Ports`).
    #[serde(default)]
    pub published: Vec<Published>,
    /// The IPv4 address on its network, given at start (`NetworkSettings.IPAddress`).
    #[serde(default)]
    pub ip_address: String,
}

impl RunState {
    /// The state of a container that was just created.
    pub fn created() -> RunState {
        RunState {
            status: Status::Created,
            pid: 0,
            supervisor_pid: 0,
            exit_code: 0,
            error: String::new(),
            started: false,
            finished: false,
            starting: false,
            oom_killed: false,
            health: None,
            published: Vec::new(),
            ip_address: String::new(),
        }
    }
}

/// A bind mount as recorded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MountRecord {
    pub source: PathBuf,
    pub destination: String,
    pub read_only: bool,
    pub mode: String,
    /// The named volume mounted (`Type: volume`), else a bind mount.
    #[serde(default)]
    pub volume: Option<String>,
    /// Given with `--mount` (listed in `HostConfig.Mounts`), not `-v`.
    #[serde(default)]
    pub mount_flag: bool,
}

/// Everything `create` decided about a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    pub name: String,
    /// Creation order, for `ps` (newest first).
    pub sequence: u64,
    /// The image as the user named it.
    pub image_name: String,
    pub image_id: String,
    pub path: String,
    pub args: Vec<String>,
    pub user: String,
    pub env: Vec<String>,
    pub cmd: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub workdir: String,
    pub labels: BTreeMap<String, String>,
    pub binds: Vec<String>,
    pub mounts: Vec<MountRecord>,
    pub network_mode: String,
    pub auto_remove: bool,
    /// `run --rm` attached: the CLI removes the container, not the supervisor, so it can
    /// still read the exit code.
    pub cli_removes: bool,
    pub read_only: bool,
    pub security_opt: Vec<String>,
    pub memory: i64,
    pub nano_cpus: i64,
    pub pids_limit: Option<i64>,
    pub stop_timeout: Option<i64>,
    /// `-p` requests (`HostConfig.PortBindings`).
    #[serde(default)]
    pub port_requests: Vec<PortRequest>,
    /// Image and `-p`/`--expose` ports (`Config.ExposedPorts`), e.g. `80/tcp`.
    #[serde(default)]
    pub exposed_ports: Vec<String>,
    /// The effective health check (image's, overridden by `--health-*`).
    #[serde(default)]
    pub healthcheck: Option<HealthConfig>,
    #[serde(default)]
    pub cap_drop: Vec<String>,
    #[serde(default)]
    pub cap_add: Vec<String>,
    /// `--tmpfs PATH[:OPTIONS]`.
    #[serde(default)]
    pub tmpfs: BTreeMap<String, String>,
    /// `-i`: stdin is kept open (`Config.OpenStdin`).
    #[serde(default)]
    pub open_stdin: bool,
    /// `-i` without `-d`: the CLI attaches its stdin (`Config.AttachStdin`, `StdinOnce`).
    #[serde(default)]
    pub attach_stdin: bool,
    /// `create`, or `run` without `-d`: the CLI attaches stdout and stderr
    /// (`Config.AttachStdout`, `AttachStderr`).
    #[serde(default)]
    pub attach_output: bool,
    /// `-t`: a pseudo-TTY (`Config.Tty`): the program's stdout and stderr are one
    /// stream, with `\r\n` line ends.
    #[serde(default)]
    pub tty: bool,
    /// How many filesystem layers its image has (`GraphDriver.Data.LowerDir`).
    #[serde(default)]
    pub image_layers: usize,
    /// Its image's size (`inspect -s`: `SizeRootFs`).
    #[serde(default)]
    pub image_size: u64,
    /// `--hostname` (`Config.Hostname`; else the short ID).
    #[serde(default)]
    pub hostname: Option<String>,
    /// `--privileged` (recorded: no masked or read-only paths).
    #[serde(default)]
    pub privileged: bool,
    /// `--init` (`HostConfig.Init`).
    #[serde(default)]
    pub init: bool,
    /// `--memory-swap` (`-1` unlimited); the daemon's default is twice `--memory`.
    #[serde(default)]
    pub memory_swap: Option<i64>,
    /// The recorded container this one replays (decided by `start`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<crate::recordings::ReplayRef>,
    pub state: RunState,
}

impl Container {
    pub fn short_id(&self) -> &str {
        &self.id[..12.min(self.id.len())]
    }

    /// The container command: entrypoint then cmd.
    pub fn argv(&self) -> Vec<String> {
        let mut argv = Vec::new();
        argv.push(self.path.clone());
        argv.extend(self.args.iter().cloned());
        argv
    }
}

/// `sha256("fake-docker/container/" + name)` in hex.
/// Whether this fake acts as a daemon on another machine (`FAKE_DOCKER_REMOTE=1`): host
/// paths in bind mounts are not dockproof's files but its own (`remote-root/` in the state
/// directory), so a `--mount type=bind` of a client directory is refused and a `--volume`
/// of one binds an empty directory it creates, as a remote daemon does.
pub fn remote_mode() -> bool {
    std::env::var("FAKE_DOCKER_REMOTE").is_ok_and(|value| value == "1" || value == "true")
}

pub fn container_id(name: &str) -> String {
    hex::encode(Sha256::digest(
        format!("fake-docker/container/{name}").as_bytes(),
    ))
}

/// How a name or ID lookup ended.
pub enum Lookup {
    Found(Box<Container>),
    Missing,
    Ambiguous,
}

/// Holds the state lock until dropped.
pub struct Lock {
    _file: File,
}

/// Handle on the state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

fn io<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> StateError + 'p {
    move |source| StateError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

impl StateDir {
    /// Opens `FAKE_DOCKER_STATE` (default `$TMPDIR/fake-docker-state`), creating it.
    pub fn from_env() -> Result<StateDir, StateError> {
        let root = std::env::var_os("FAKE_DOCKER_STATE")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("fake-docker-state"));
        StateDir::open(root)
    }

    /// Opens a state directory at `root`, creating it.
    pub fn open(root: PathBuf) -> Result<StateDir, StateError> {
        let containers = root.join("containers");
        std::fs::create_dir_all(&containers).map_err(io("create", &containers))?;
        // An absolute root keeps paths valid for supervisors started from other cwds. A
        // path that is absolute already is kept as given (not resolved): a root reached
        // through a symlink (dockproof's run directory linking to a tmpfs) stays the path
        // its supervisors carry, so they are found by the path that was handed over.
        let root = if root.is_absolute() {
            root
        } else {
            std::fs::canonicalize(&root).map_err(io("resolve", &root))?
        };
        Ok(StateDir { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Takes the exclusive state lock (blocking).
    pub fn lock(&self) -> Result<Lock, StateError> {
        let path = self.root.join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io("open", &path))?;
        file.lock().map_err(io("lock", &path))?;
        Ok(Lock { _file: file })
    }

    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("log")
    }

    /// The FIFO a `-i` container's program reads its stdin from.
    pub fn stdin_path(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("stdin")
    }

    /// Bytes the container's program holds with `alloc`, as `stats` reports them.
    pub fn usage_path(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("usage")
    }

    /// Marker the program leaves when it is OOM-killed.
    pub fn oom_marker(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("oom")
    }

    /// Where `commit` keeps the images it makes (definitions plus root snapshots).
    pub fn committed_dir(&self) -> PathBuf {
        self.root.join("committed")
    }

    pub fn rootfs_path(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("root")
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("config.json")
    }

    /// Reads a container record; `None` if it does not exist (any more).
    pub fn load(&self, id: &str) -> Result<Option<Container>, StateError> {
        let path = self.record_path(id);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("read", &path)(e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StateError::Corrupt { path, source })
    }

    /// Writes a record atomically. Call with the lock held.
    pub fn save(&self, container: &Container) -> Result<(), StateError> {
        let dir = self.container_dir(&container.id);
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let path = self.record_path(&container.id);
        let temp = dir.join(format!("config.json.tmp.{}", std::process::id()));
        let bytes = serde_json::to_vec_pretty(container).map_err(|source| StateError::Corrupt {
            path: path.clone(),
            source,
        })?;
        std::fs::write(&temp, bytes).map_err(io("write", &temp))?;
        std::fs::rename(&temp, &path).map_err(io("rename", &temp))
    }

    /// Deletes a container and everything it owns. Call with the lock held.
    pub fn remove(&self, id: &str) -> Result<(), StateError> {
        let dir = self.container_dir(id);
        // Remove the record first so a half-deleted directory is never listed.
        match std::fs::remove_file(self.record_path(id)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("remove", &dir)(e)),
        }
        make_writable(&dir);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("remove", &dir)(e)),
        }
    }

    /// All container records, newest first.
    pub fn all(&self) -> Result<Vec<Container>, StateError> {
        let dir = self.root.join("containers");
        let mut containers = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io("list", &dir))? {
            let entry = entry.map_err(io("list", &dir))?;
            let id = entry.file_name().to_string_lossy().into_owned();
            if let Some(container) = self.load(&id)? {
                containers.push(container);
            }
        }
        containers.sort_by_key(|c| std::cmp::Reverse(c.sequence));
        Ok(containers)
    }

    /// Finds a container by full ID, exact name (with or without `/`), or unique ID prefix.
    pub fn find(&self, reference: &str) -> Result<Lookup, StateError> {
        if reference.is_empty() {
            return Ok(Lookup::Missing);
        }
        let all = self.all()?;
        let name = reference.strip_prefix('/').unwrap_or(reference);
        if let Some(found) = all.iter().find(|c| c.id == reference || c.name == name) {
            return Ok(Lookup::Found(Box::new(found.clone())));
        }
        let mut matches = all.into_iter().filter(|c| c.id.starts_with(reference));
        match (matches.next(), matches.next()) {
            (Some(found), None) => Ok(Lookup::Found(Box::new(found))),
            (Some(_), Some(_)) => Ok(Lookup::Ambiguous),
            _ => Ok(Lookup::Missing),
        }
    }

    /// Next `fake_<n>` counter value. Call with the lock held.
    pub fn next_counter(&self) -> Result<u64, StateError> {
        self.next_named_counter("counter")
    }

    /// Next value of a named counter file. Call with the lock held.
    pub fn next_named_counter(&self, file: &str) -> Result<u64, StateError> {
        let path = self.root.join(file);
        let current = match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse::<u64>().unwrap_or(0),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io("read", &path)(e)),
        };
        let next = current + 1;
        write_atomic(&path, next.to_string().as_bytes())?;
        Ok(next)
    }

    /// Reads a JSON document kept in the state root (`networks.json`, ...); default if absent.
    pub fn read_doc<T: serde::de::DeserializeOwned + Default>(
        &self,
        file: &str,
    ) -> Result<T, StateError> {
        let path = self.root.join(file);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| StateError::Corrupt { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
            Err(e) => Err(io("read", &path)(e)),
        }
    }

    /// Replaces a JSON document in the state root atomically. Call with the lock held.
    pub fn write_doc<T: Serialize>(&self, file: &str, value: &T) -> Result<(), StateError> {
        let path = self.root.join(file);
        let bytes = serde_json::to_vec_pretty(value).map_err(|source| StateError::Corrupt {
            path: path.clone(),
            source,
        })?;
        write_atomic(&path, &bytes)
    }
}

/// Writes `bytes` to a temp file beside `path`, then renames it over `path`: a reader
/// never sees half a file, and one listing the directory for `*.yaml` (the image store's
/// definitions, `crate::image`) never sees the temp file (it ends in `.tmp.PID.N`).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Unique per write: the fake's server runs many commands in one process.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let write = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let temp = path.with_file_name(format!("{name}.tmp.{}.{write}", std::process::id()));
    std::fs::write(&temp, bytes).map_err(io("write", &temp))?;
    std::fs::rename(&temp, path).map_err(|error| {
        let _ = std::fs::remove_file(&temp);
        io("rename", &temp)(error)
    })
}

impl StateDir {
    /// Whether any record is `running` or starting.
    pub fn any_running(&self) -> Result<bool, StateError> {
        Ok(self
            .all()?
            .iter()
            .any(|c| c.state.status == Status::Running || c.state.starting))
    }
}

/// Private roots may hold read-only directories made by tests; make them deletable.
fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if let Ok(meta) = std::fs::symlink_metadata(&path)
            && meta.is_dir()
        {
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755));
            make_writable(&path);
        }
    }
}

/// Finds a container; `None` (after nothing printed) if missing or ambiguous.
pub fn find_container(state: &StateDir, name: &str) -> Result<Option<Container>, StateError> {
    Ok(match state.find(name)? {
        Lookup::Found(container) => Some(*container),
        Lookup::Missing | Lookup::Ambiguous => None,
    })
}

/// The filesystem a container's program sees.
pub fn container_fs(state: &StateDir, container: &Container) -> ContainerFs {
    ContainerFs {
        root: state.rootfs_path(&container.id),
        root_read_only: container.read_only,
        mounts: container
            .mounts
            .iter()
            .map(|m| Mount {
                source: m.source.clone(),
                destination: m.destination.clone(),
                read_only: m.read_only,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic() {
        let id = container_id("t1");
        assert_eq!(id.len(), 64);
        assert_eq!(id, container_id("t1"));
        assert_ne!(id, container_id("t2"));
    }

    #[test]
    fn counter_increments() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let state = StateDir::open(dir.path().to_path_buf()).unwrap_or_else(|e| panic!("{e}"));
        let _lock = state.lock().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(state.next_counter().ok(), Some(1));
        assert_eq!(state.next_counter().ok(), Some(2));
    }
}
