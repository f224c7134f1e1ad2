//! The workspace transport: how a job's workspace reaches its container and how what the
//! job wrote comes back. `bind` mounts the local workspace directory (the daemon must see
//! dockproof's files); `copy` keeps the workspace in a volume on the daemon, uploads the
//! local workspace into it before a container step and downloads it back after, into the
//! local workspace: the mirror every check reads. `auto` decides per host, by proof.
//!
//! What comes back is untrusted: [`unpack_checked`] validates every tar entry (its type,
//! that its path and a symlink's target stay beneath the workspace, the running totals
//! against the limits) before anything of it is written, and writes into a staging
//! directory that replaces the mirror only when the whole archive passed.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::backend::{Backend, BackendError, ContainerSpec, Mount, MountSource};
use crate::category::Category;
use crate::workspace::{Limits, Usage, WorkspaceError};

/// What comes back from a container when the scenario sets no `max_bytes`: a job that
/// fills its workspace with 10 GiB does not make dockproof copy 10 GiB.
pub const DEFAULT_COPY_BACK_MAX_BYTES: u64 = 4 << 30;

/// How the user asked the transport to be chosen (`--workspace-transport`, a host's
/// `transport=`, a scenario's `workspace.transport`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TransportChoice {
    /// Probe the daemon once per host per run: `bind` when it sees a marker written
    /// locally through a bind mount, `copy` otherwise.
    #[default]
    Auto,
    Bind,
    Copy,
}

impl std::str::FromStr for TransportChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "auto" => Ok(TransportChoice::Auto),
            "bind" => Ok(TransportChoice::Bind),
            "copy" => Ok(TransportChoice::Copy),
            other => Err(format!(
                "`{other}` is not a workspace transport: use auto, bind or copy"
            )),
        }
    }
}

impl std::fmt::Display for TransportChoice {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            TransportChoice::Auto => "auto",
            TransportChoice::Bind => "bind",
            TransportChoice::Copy => "copy",
        })
    }
}

/// The transport a host uses, once decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Bind,
    Copy,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Bind => "bind",
            Transport::Copy => "copy",
        }
    }
}

/// A host's transport for one run: fixed, or probed once (the first container step asks)
/// and the answer kept for every later scenario of the run on that host.
#[derive(Debug, Default)]
pub struct TransportPolicy {
    choice: TransportChoice,
    decided: tokio::sync::OnceCell<Transport>,
}

impl TransportPolicy {
    pub fn new(choice: TransportChoice) -> Self {
        TransportPolicy {
            choice,
            decided: tokio::sync::OnceCell::new(),
        }
    }

    /// What the user asked for.
    pub fn choice(&self) -> TransportChoice {
        self.choice
    }

    /// The transport, when it is known without a probe container: chosen, decided
    /// already, or (`auto`) a local daemon the kernel says shares our files (remembered,
    /// as [`decide`](Self::decide) would). `None`: only a probe can tell.
    pub async fn decide_without_probe(&self, backend: &dyn Backend) -> Option<Transport> {
        match self.choice {
            TransportChoice::Bind => Some(Transport::Bind),
            TransportChoice::Copy => Some(Transport::Copy),
            TransportChoice::Auto => {
                if let Some(decided) = self.decided.get() {
                    return Some(*decided);
                }
                let socket = backend.daemon_socket()?;
                if !daemon_shares_our_files(&socket).await {
                    return None;
                }
                Some(*self.decided.get_or_init(|| async { Transport::Bind }).await)
            }
        }
    }

    /// The transport to use; `auto` probes the daemon the first time (see [`probe`]),
    /// creating one never-started container from `image` (already on the daemon).
    pub async fn decide(
        &self,
        backend: &dyn Backend,
        image: &str,
        work_dir: &Path,
        run_id: &str,
    ) -> Result<Transport, BackendError> {
        if let Some(transport) = self.decide_without_probe(backend).await {
            return Ok(transport);
        }
        self.decided
            .get_or_try_init(|| probe(backend, image, work_dir, run_id))
            .await
            .copied()
    }
}

/// How long connecting to the daemon's socket may take before the question is left to the probe.
const PEER_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether the daemon listening on the unix socket `socket` sees exactly the files this
/// process sees, by asking the kernel rather than the daemon: the socket's peer
/// (`SO_PEERCRED`: the process that listens on it) is an executable named `dockerd`, in
/// this process's mount namespace, with this process's root directory. A bind mount of
/// any directory of ours is then that directory, and no probe container is needed (the
/// probe costs three docker CLI calls). Whatever is not certain is `false` and left to
/// the probe: a peer in another PID namespace (the kernel reports pid 0: dockproof in a
/// container with the host's socket), a forwarder (ssh, socat, a desktop VM's proxy), a
/// socket systemd listens on, a rootless daemon (its own mount namespace), an unreadable
/// `/proc`.
pub async fn daemon_shares_our_files(socket: &Path) -> bool {
    let connected =
        tokio::time::timeout(PEER_TIMEOUT, tokio::net::UnixStream::connect(socket)).await;
    let Ok(Ok(stream)) = connected else {
        return false;
    };
    let Some(pid) = stream
        .peer_cred()
        .ok()
        .and_then(|credentials| credentials.pid())
        .filter(|pid| *pid > 0)
    else {
        return false;
    };
    drop(stream);
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let is_dockerd = fs::read_link(proc.join("exe"))
        .is_ok_and(|exe| exe.file_name().is_some_and(|name| name == "dockerd"));
    let same_namespace = match (
        fs::read_link(proc.join("ns/mnt")),
        fs::read_link("/proc/self/ns/mnt"),
    ) {
        (Ok(theirs), Ok(ours)) => theirs == ours,
        _ => false,
    };
    let same_root = match (fs::metadata(proc.join("root")), fs::metadata("/")) {
        (Ok(theirs), Ok(ours)) => theirs.dev() == ours.dev() && theirs.ino() == ours.ino(),
        _ => false,
    };
    is_dockerd && same_namespace && same_root
}

/// Where the probe's marker directory is mounted in the probe container.
const PROBE_MOUNT: &str = "/dockproof-transport-probe";

/// Whether the daemon sees dockproof's files: a fresh directory under `work_dir` (the
/// run's own) holding a random marker is bind-mounted (`--mount type=bind`, read-only)
/// into a container that is created, never started, and removed; the marker is read back
/// through the daemon (`docker cp`). The same bytes → `bind`. A daemon that cannot see
/// the directory refuses the create (`bind source path does not exist`) and creates
/// nothing on its side; a different directory of the same name (another machine's) gives
/// other bytes → `copy`. A forwarded socket, a tunnel on `tcp://127.0.0.1` and a daemon in
/// another mount namespace all come out by what the daemon sees, not by its address.
pub async fn probe(
    backend: &dyn Backend,
    image: &str,
    work_dir: &Path,
    run_id: &str,
) -> Result<Transport, BackendError> {
    let local = |message: String| BackendError::Config { message };
    fs::create_dir_all(work_dir)
        .map_err(|error| local(format!("cannot create {}: {error}", work_dir.display())))?;
    let dir = tempfile::Builder::new()
        .prefix("dockproof-transport-probe-")
        .tempdir_in(work_dir)
        .map_err(|error| local(format!("cannot create a probe directory: {error}")))?;
    let token = {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_nanos()),
        );
        hasher.write_u32(std::process::id());
        format!("{:016x}", hasher.finish())
    };
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
        .and_then(|()| fs::write(dir.path().join("marker"), &token))
        .map_err(|error| local(format!("cannot write the probe marker: {error}")))?;
    let mut labels = std::collections::BTreeMap::new();
    labels.insert("dockproof.run".to_owned(), run_id.to_owned());
    let spec = ContainerSpec {
        name: format!("dockproof-{run_id}-transport-probe-{}", &token[..8]),
        image: image.to_owned(),
        mounts: vec![Mount {
            source: MountSource::BindExisting(dir.path().to_path_buf()),
            container: PROBE_MOUNT.to_owned(),
            read_only: true,
        }],
        labels,
        ..ContainerSpec::default()
    };
    let id = match backend.create(&spec).await {
        Ok(id) => id,
        Err(error)
            if error
                .to_string()
                .contains("bind source path does not exist") =>
        {
            return Ok(Transport::Copy);
        }
        Err(error) => return Err(error),
    };
    let seen = backend
        .copy_from(&id, &format!("{PROBE_MOUNT}/marker"))
        .await;
    backend.remove(&id).await?;
    let seen = match seen {
        Ok(archive) => marker_in(&archive).is_some_and(|marker| marker == token.as_bytes()),
        Err(_) => false,
    };
    Ok(if seen {
        Transport::Bind
    } else {
        Transport::Copy
    })
}

/// The first regular file's bytes in a small tar archive (at most 4 KiB of it).
fn marker_in(archive: &[u8]) -> Option<Vec<u8>> {
    let mut archive = tar::Archive::new(archive);
    for entry in archive.entries().ok()? {
        let entry = entry.ok()?;
        if entry.header().entry_type().is_file() {
            let mut bytes = Vec::new();
            entry.take(4096).read_to_end(&mut bytes).ok()?;
            return Some(bytes);
        }
    }
    None
}

/// Why moving a workspace to or from a container failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// An entry is refused, a limit is exceeded, or the local mirror cannot be written.
    #[error("copying the workspace back: {0}")]
    Workspace(#[from] WorkspaceError),
    /// The archive ended inside a file: fewer bytes arrived than the daemon announced.
    #[error(
        "copying the workspace back: `{path}` arrived with {arrived} of the {announced} bytes the archive announced (the transfer was cut short)"
    )]
    Truncated {
        path: String,
        announced: u64,
        arrived: u64,
    },
    /// The archive is not a readable tar stream (a damaged header, garbage).
    #[error("copying the workspace back: the archive from the container is damaged: {message}")]
    Archive { message: String },
    /// The daemon (or the docker CLI) failed the copy.
    #[error("copying the workspace {direction} the container failed: {source}")]
    Backend {
        direction: &'static str,
        source: BackendError,
    },
}

impl TransportError {
    /// The failure category this error is reported under.
    pub fn category(&self) -> Category {
        match self {
            TransportError::Workspace(error) => error.category(),
            // What arrived differs from what was sent: the same as a file whose sha256 or
            // size is not what it should be.
            TransportError::Truncated { .. } | TransportError::Archive { .. } => {
                Category::ChecksumMismatch
            }
            // A full disk on either side cannot hold the workspace: as when staging fills
            // the local disk (`WorkspaceError::category`).
            TransportError::Backend { source, .. }
                if source
                    .to_string()
                    .to_ascii_lowercase()
                    .contains("no space left on device") =>
            {
                Category::WorkspaceLimitExceeded
            }
            TransportError::Backend { source, .. } => source.category(),
        }
    }
}

fn io_error<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> WorkspaceError + 'a {
    move |source| WorkspaceError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Write the tree at `root` as a tar archive to the file `archive`, every entry under
/// `top/` (the base name of the container path it goes to), `top/` itself first with mode
/// 0777: extracted into the mount's parent, it makes the volume's root writable for any
/// container user (a volume starts root-owned 0755). Files keep their bytes and modes;
/// owners are root's. Only directories, regular files and symlinks are in a mirror.
pub fn pack(root: &Path, top: &str, archive: &Path) -> Result<(), WorkspaceError> {
    let file = fs::File::create(archive).map_err(io_error("create", archive))?;
    let mut builder = tar::Builder::new(io::BufWriter::new(file));
    builder.follow_symlinks(false);
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(0o777);
    header.set_size(0);
    header.set_mtime(0);
    builder
        .append_data(&mut header, format!("{top}/"), io::empty())
        .map_err(io_error("write", archive))?;
    pack_dir(&mut builder, root, Path::new(top), archive)?;
    builder
        .into_inner()
        .and_then(|mut writer| io::Write::flush(&mut writer))
        .map_err(io_error("write", archive))
}

fn pack_dir(
    builder: &mut tar::Builder<io::BufWriter<fs::File>>,
    dir: &Path,
    inside: &Path,
    archive: &Path,
) -> Result<(), WorkspaceError> {
    let mut entries: Vec<fs::DirEntry> = fs::read_dir(dir)
        .map_err(io_error("list", dir))?
        .collect::<Result<_, _>>()
        .map_err(io_error("list", dir))?;
    // A stable order: the same workspace gives the same archive.
    entries.sort_by_key(fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let name = inside.join(entry.file_name());
        let metadata = fs::symlink_metadata(&path).map_err(io_error("inspect", &path))?;
        let mut header = tar::Header::new_gnu();
        header.set_mode(metadata.mode() & 0o777);
        header.set_mtime(u64::try_from(metadata.mtime()).unwrap_or(0));
        let kind = metadata.file_type();
        if kind.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            builder
                .append_data(&mut header, &name, io::empty())
                .map_err(io_error("write", archive))?;
            pack_dir(builder, &path, &name, archive)?;
        } else if kind.is_symlink() {
            let target = fs::read_link(&path).map_err(io_error("read", &path))?;
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            builder
                .append_link(&mut header, &name, &target)
                .map_err(io_error("write", archive))?;
        } else if kind.is_file() {
            let file = fs::File::open(&path).map_err(io_error("open", &path))?;
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(metadata.len());
            builder
                .append_data(&mut header, &name, file)
                .map_err(io_error("write", archive))?;
        }
        // Anything else never gets into a mirror (`unpack_checked` refuses it).
    }
    Ok(())
}

/// `path` lexically, `..` resolved; `None` when it climbs above its start.
fn normalized(path: &Path) -> Option<PathBuf> {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.iter().collect())
}

fn refused(path: &str, reason: impl Into<String>) -> TransportError {
    TransportError::Workspace(WorkspaceError::UnsafePath {
        path: path.to_owned(),
        reason: reason.into(),
    })
}

fn archive_error(error: &io::Error) -> TransportError {
    TransportError::Archive {
        message: error.to_string(),
    }
}

/// Unpack a tar stream of a container directory named `top` (as `docker cp
/// CONTAINER:/workspace -` writes it: `workspace/`, `workspace/inputs/a.csv`, ...) into
/// the empty directory `staging`, checking each entry before anything of it is written:
/// only directories, regular files and symlinks whose target stays beneath the
/// workspace; no path that is absolute, climbs with `..`, lies outside `top/` or goes
/// through a symlink; the running count of files and bytes within `limits` (and
/// [`DEFAULT_COPY_BACK_MAX_BYTES`]). A size over the limit is refused from the entry's
/// header, before its data is read. On a refusal the usage counted so far comes back
/// with the error; `staging` then holds a partial tree for the caller to remove.
pub fn unpack_checked(
    reader: impl Read,
    top: &str,
    staging: &Path,
    limits: Limits,
) -> Result<Usage, (TransportError, Usage)> {
    let mut usage = Usage::default();
    let mut directories: Vec<(PathBuf, u32)> = Vec::new();
    let result = unpack_entries(reader, top, staging, limits, &mut usage, &mut directories);
    // Directory modes last, deepest first: a read-only directory is still written into.
    if result.is_ok() {
        directories.sort_by_key(|(path, _)| std::cmp::Reverse(path.components().count()));
        for (path, mode) in directories {
            if let Err(error) = fs::set_permissions(&path, fs::Permissions::from_mode(mode)) {
                return Err((
                    TransportError::Workspace(io_error("set permissions of", &path)(error)),
                    usage,
                ));
            }
        }
    }
    result.map(|()| usage).map_err(|error| (error, usage))
}

fn unpack_entries(
    reader: impl Read,
    top: &str,
    staging: &Path,
    limits: Limits,
    usage: &mut Usage,
    directories: &mut Vec<(PathBuf, u32)>,
) -> Result<(), TransportError> {
    let max_bytes = limits.max_bytes.unwrap_or(DEFAULT_COPY_BACK_MAX_BYTES);
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(|error| archive_error(&error))? {
        let mut entry = entry.map_err(|error| archive_error(&error))?;
        let raw = entry.path_bytes();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let Ok(text) = std::str::from_utf8(&raw) else {
            return Err(refused(&shown, "is not a UTF-8 path"));
        };
        let path = Path::new(text);
        if path.is_absolute() {
            return Err(refused(&shown, "is an absolute path in the archive"));
        }
        let mut components = Vec::new();
        for component in path.components() {
            match component {
                Component::Normal(part) => components.push(part),
                Component::CurDir => {}
                _ => return Err(refused(&shown, "climbs out of the workspace with `..`")),
            }
        }
        if components
            .first()
            .is_none_or(|first| *first != std::ffi::OsStr::new(top))
        {
            return Err(refused(
                &shown,
                format!("is not beneath `{top}/`, the directory that was copied"),
            ));
        }
        let relative: PathBuf = components[1..].iter().collect();
        let shown = relative.display().to_string();
        let kind = entry.header().entry_type();
        let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
        if relative.as_os_str().is_empty() {
            if kind.is_dir() {
                continue;
            }
            return Err(refused(&shown, "the workspace itself is not a directory"));
        }
        let destination = staging.join(&relative);
        // Never write through a symlink: every ancestor must be a real directory made here.
        if let Some(parent) = relative.parent() {
            let mut walked = staging.to_path_buf();
            for part in parent.components() {
                walked.push(part);
                match fs::symlink_metadata(&walked) {
                    Ok(metadata) if metadata.is_dir() => {}
                    Ok(_) => {
                        return Err(refused(
                            &shown,
                            "lies beneath a symlink or a file in the archive",
                        ));
                    }
                    Err(_) => {
                        fs::create_dir(&walked).map_err(io_error("create", &walked))?;
                        fs::set_permissions(&walked, fs::Permissions::from_mode(0o777))
                            .map_err(io_error("set permissions of", &walked))?;
                    }
                }
            }
        }
        if fs::symlink_metadata(&destination).is_ok() && !kind.is_dir() {
            return Err(refused(&shown, "appears twice in the archive"));
        }
        match kind {
            tar::EntryType::Directory => {
                match fs::symlink_metadata(&destination) {
                    Ok(metadata) if metadata.is_dir() => {}
                    Ok(_) => return Err(refused(&shown, "appears twice in the archive")),
                    Err(_) => {
                        fs::create_dir(&destination).map_err(io_error("create", &destination))?
                    }
                }
                fs::set_permissions(&destination, fs::Permissions::from_mode(0o777))
                    .map_err(io_error("set permissions of", &destination))?;
                directories.push((destination, mode));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry
                    .header()
                    .size()
                    .map_err(|error| archive_error(&error))?;
                usage.files += 1;
                usage.bytes = usage.bytes.saturating_add(size);
                let over_files = limits.max_files.filter(|limit| usage.files > *limit);
                let limit = if usage.bytes > max_bytes {
                    Some(match limits.max_bytes {
                        Some(limit) => format!("max_bytes {limit}"),
                        None => format!(
                            "{max_bytes} bytes copied back without a max_bytes (DEFAULT_COPY_BACK_MAX_BYTES)"
                        ),
                    })
                } else {
                    over_files.map(|limit| format!("max_files {limit}"))
                };
                if let Some(limit) = limit {
                    return Err(TransportError::Workspace(WorkspaceError::LimitExceeded {
                        files: usage.files,
                        bytes: usage.bytes,
                        limit,
                    }));
                }
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .mode(0o600)
                    .open(&destination)
                    .map_err(io_error("create", &destination))?;
                let arrived = io::copy(&mut (&mut entry).take(size), &mut file).map_err(
                    |error| match error.kind() {
                        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                            TransportError::Workspace(io_error("write", &destination)(error))
                        }
                        _ => archive_error(&error),
                    },
                )?;
                if arrived != size {
                    return Err(TransportError::Truncated {
                        path: shown,
                        announced: size,
                        arrived,
                    });
                }
                file.set_permissions(fs::Permissions::from_mode(mode))
                    .map_err(io_error("set permissions of", &destination))?;
            }
            tar::EntryType::Symlink => {
                let Some(target) = entry.link_name().ok().flatten() else {
                    return Err(refused(&shown, "is a symlink without a readable target"));
                };
                let target = target.into_owned();
                let inside = !target.is_absolute()
                    && normalized(&relative.parent().unwrap_or(Path::new("")).join(&target))
                        .is_some();
                if !inside {
                    return Err(refused(
                        &shown,
                        format!(
                            "is a symlink to `{}`, outside the workspace; it is refused, not copied",
                            target.display()
                        ),
                    ));
                }
                std::os::unix::fs::symlink(&target, &destination)
                    .map_err(io_error("create", &destination))?;
            }
            tar::EntryType::Link => {
                return Err(refused(
                    &shown,
                    "is a hard link; another name may lie outside the workspace, so it is refused",
                ));
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                return Err(refused(
                    &shown,
                    "is a device node, not a regular file; it is refused, not copied",
                ));
            }
            tar::EntryType::Fifo => {
                return Err(refused(
                    &shown,
                    "is a FIFO, not a regular file; it is refused, not copied",
                ));
            }
            other => {
                return Err(refused(
                    &shown,
                    format!("is a tar entry of type {other:?}, which a workspace does not hold"),
                ));
            }
        }
    }
    Ok(())
}

/// Replace the contents of the mirror `root` with those of `staging` (same filesystem),
/// then remove `staging`.
pub fn replace_contents(root: &Path, staging: &Path) -> Result<(), WorkspaceError> {
    for entry in fs::read_dir(root).map_err(io_error("list", root))? {
        let path = entry.map_err(io_error("list", root))?.path();
        let removed = if fs::symlink_metadata(&path).is_ok_and(|metadata| metadata.is_dir()) {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.map_err(io_error("remove", &path))?;
    }
    for entry in fs::read_dir(staging).map_err(io_error("list", staging))? {
        let entry = entry.map_err(io_error("list", staging))?;
        let to = root.join(entry.file_name());
        fs::rename(entry.path(), &to).map_err(io_error("move into the workspace", &to))?;
    }
    fs::remove_dir(staging).map_err(io_error("remove", staging))
}

/// A `Read` over chunks arriving on a channel (a backend's copy stream), for the tar
/// reader on a blocking thread. Dropping it tells the sender to stop.
pub struct ChannelReader {
    receiver: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    current: bytes::Bytes,
}

impl ChannelReader {
    pub fn new(receiver: tokio::sync::mpsc::Receiver<bytes::Bytes>) -> Self {
        ChannelReader {
            receiver,
            current: bytes::Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.receiver.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let count = buffer.len().min(self.current.len());
        buffer[..count].copy_from_slice(&self.current.split_to(count));
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar archive built entry by entry with raw headers (no validation on this side).
    struct Archive(tar::Builder<Vec<u8>>);

    impl Archive {
        fn new() -> Self {
            let mut archive = Archive(tar::Builder::new(Vec::new()));
            archive.dir("workspace/");
            archive
        }
        fn header(kind: tar::EntryType, name: &str, size: u64) -> tar::Header {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(kind);
            header.set_size(size);
            header.set_mode(0o644);
            // Raw bytes: `set_path` would refuse `..` itself.
            let bytes = header.as_old_mut().name.as_mut();
            bytes[..name.len()].copy_from_slice(name.as_bytes());
            header.set_cksum();
            header
        }
        fn dir(&mut self, name: &str) -> &mut Self {
            let header = Self::header(tar::EntryType::Directory, name, 0);
            self.0.append(&header, io::empty()).unwrap();
            self
        }
        fn file(&mut self, name: &str, content: &[u8]) -> &mut Self {
            let header = Self::header(tar::EntryType::Regular, name, content.len() as u64);
            self.0.append(&header, content).unwrap();
            self
        }
        fn link(&mut self, kind: tar::EntryType, name: &str, target: &str) -> &mut Self {
            let mut header = Self::header(kind, name, 0);
            header.set_link_name(target).unwrap();
            header.set_cksum();
            self.0.append(&header, io::empty()).unwrap();
            self
        }
        fn special(&mut self, kind: tar::EntryType, name: &str) -> &mut Self {
            let header = Self::header(kind, name, 0);
            self.0.append(&header, io::empty()).unwrap();
            self
        }
        fn bytes(&mut self) -> Vec<u8> {
            std::mem::replace(&mut self.0, tar::Builder::new(Vec::new()))
                .into_inner()
                .unwrap()
        }
    }

    fn unpack(bytes: &[u8], limits: Limits) -> (tempfile::TempDir, Result<Usage, TransportError>) {
        let dir = tempfile::tempdir().unwrap();
        let result = unpack_checked(bytes, "workspace", dir.path(), limits).map_err(|(e, _)| e);
        (dir, result)
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut found = Vec::new();
        for entry in walk(dir) {
            found.push(entry.strip_prefix(dir).unwrap().display().to_string());
        }
        found.sort();
        found
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut all = Vec::new();
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            all.push(path.clone());
            if fs::symlink_metadata(&path).unwrap().is_dir() {
                all.extend(walk(&path));
            }
        }
        all
    }

    #[test]
    fn a_workspace_round_trips_with_bytes_modes_and_inner_symlinks() {
        let source = tempfile::tempdir().unwrap();
        fs::create_dir(source.path().join("outputs")).unwrap();
        fs::write(source.path().join("outputs/run.sh"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(
            source.path().join("outputs/run.sh"),
            fs::Permissions::from_mode(0o750),
        )
        .unwrap();
        fs::write(source.path().join("data.bin"), [0u8, 1, 2, 255]).unwrap();
        std::os::unix::fs::symlink("outputs/run.sh", source.path().join("latest")).unwrap();
        let out = tempfile::tempdir().unwrap();
        let archive = out.path().join("ws.tar");
        pack(source.path(), "workspace", &archive).unwrap();
        let bytes = fs::read(&archive).unwrap();
        let (dir, usage) = unpack(&bytes, Limits::default());
        assert_eq!(
            usage.unwrap(),
            Usage {
                files: 2,
                bytes: 14
            }
        );
        assert_eq!(
            files_in(dir.path()),
            ["data.bin", "latest", "outputs", "outputs/run.sh"]
        );
        assert_eq!(
            fs::read(dir.path().join("data.bin")).unwrap(),
            [0u8, 1, 2, 255]
        );
        let mode = fs::metadata(dir.path().join("outputs/run.sh"))
            .unwrap()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o750);
        assert_eq!(
            fs::read_link(dir.path().join("latest")).unwrap(),
            Path::new("outputs/run.sh")
        );
    }

    /// Each hostile entry is refused, and nothing of it (nor anything after it) is written.
    #[test]
    fn hostile_entries_are_refused_before_anything_is_written() {
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "symlink to /etc/shadow",
                Archive::new()
                    .link(tar::EntryType::Symlink, "workspace/shadow", "/etc/shadow")
                    .file("workspace/after.txt", b"x")
                    .bytes(),
                "path `shadow` is a symlink to `/etc/shadow`, outside the workspace",
            ),
            (
                "symlink climbing out",
                Archive::new()
                    .link(tar::EntryType::Symlink, "workspace/a/up", "../../..")
                    .bytes(),
                "is a symlink to `../../..`, outside the workspace",
            ),
            (
                "../ entry",
                Archive::new()
                    .file("workspace/../escaped.txt", b"gotcha")
                    .bytes(),
                "climbs out of the workspace with `..`",
            ),
            (
                "entry outside the copied directory",
                Archive::new().file("etc/passwd", b"root").bytes(),
                "is not beneath `workspace/`",
            ),
            (
                "device",
                Archive::new()
                    .special(tar::EntryType::Char, "workspace/zero")
                    .bytes(),
                "path `zero` is a device node",
            ),
            (
                "fifo",
                Archive::new()
                    .special(tar::EntryType::Fifo, "workspace/pipe")
                    .bytes(),
                "path `pipe` is a FIFO",
            ),
            (
                "hard link",
                Archive::new()
                    .file("workspace/a", b"a")
                    .link(tar::EntryType::Link, "workspace/b", "workspace/a")
                    .bytes(),
                "path `b` is a hard link",
            ),
            (
                "through a symlink",
                Archive::new()
                    .link(tar::EntryType::Symlink, "workspace/d", ".")
                    .file("workspace/d/x", b"x")
                    .bytes(),
                "path `d/x` lies beneath a symlink",
            ),
        ];
        for (name, bytes, expected) in cases {
            let (dir, result) = unpack(&bytes, Limits::default());
            let error = result.expect_err(name);
            assert_eq!(error.category(), Category::ConfigInvalid, "{name}");
            assert!(error.to_string().contains(expected), "{name}: {error}");
            let written = files_in(dir.path());
            assert!(
                !written.iter().any(|path| path.contains("shadow")
                    || path.contains("after")
                    || path.contains("zero")
                    || path.contains("pipe")
                    || path.ends_with('b')
                    || path.contains("d/x")),
                "{name}: {written:?}"
            );
        }
        assert!(!Path::new("/tmp/escaped.txt").exists());
    }

    /// A 10 GiB file is refused from its header: its data is never read (there is none).
    #[test]
    fn an_oversize_file_is_refused_from_its_header() {
        let mut header = Archive::header(tar::EntryType::Regular, "workspace/huge.bin", 10 << 30);
        header.set_cksum();
        let mut bytes = Archive::new().bytes();
        // Drop the end-of-archive blocks, then the header alone: no data follows.
        bytes.truncate(512);
        bytes.extend_from_slice(header.as_bytes());
        let (dir, result) = unpack(&bytes, Limits::default());
        let error = result.unwrap_err();
        assert_eq!(error.category(), Category::WorkspaceLimitExceeded);
        assert!(error.to_string().contains("10737418240 bytes"), "{error}");
        assert!(files_in(dir.path()).is_empty());
        let (_dir, result) = unpack(
            &Archive::new().file("workspace/a", b"12345678901").bytes(),
            Limits {
                max_bytes: Some(10),
                max_files: None,
            },
        );
        assert!(result.unwrap_err().to_string().contains("max_bytes 10"));
    }

    #[test]
    fn too_many_files_are_refused_with_the_count_so_far() {
        let bytes = Archive::new()
            .file("workspace/a", b"1")
            .file("workspace/b", b"2")
            .file("workspace/c", b"3")
            .bytes();
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            max_bytes: None,
            max_files: Some(2),
        };
        let (error, usage) =
            unpack_checked(bytes.as_slice(), "workspace", dir.path(), limits).unwrap_err();
        assert_eq!(error.category(), Category::WorkspaceLimitExceeded);
        assert_eq!(usage, Usage { files: 3, bytes: 3 });
        assert!(!dir.path().join("c").exists());
    }

    #[test]
    fn a_transfer_cut_short_is_a_checksum_mismatch() {
        let mut bytes = Archive::new().file("workspace/a.txt", &[7u8; 2000]).bytes();
        bytes.truncate(512 + 512 + 1000);
        let (_dir, result) = unpack(&bytes, Limits::default());
        let error = result.unwrap_err();
        assert_eq!(error.category(), Category::ChecksumMismatch, "{error}");
        assert!(
            error.to_string().contains("1000 of the 2000 bytes"),
            "{error}"
        );
    }

    #[test]
    fn a_full_disk_reported_by_the_copy_is_a_workspace_limit() {
        let full = TransportError::Backend {
            direction: "into",
            source: BackendError::Command {
                command: "docker cp".into(),
                code: 1,
                stderr: "Error processing tar file(exit status 1): write /workspace/a: no space left on device".into(),
            },
        };
        assert_eq!(full.category(), Category::WorkspaceLimitExceeded);
    }

    #[test]
    fn replacing_the_mirror_keeps_only_what_came_back() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("gone.txt"), "deleted by the job").unwrap();
        fs::create_dir(root.path().join("old")).unwrap();
        let staging = root.path().join("../").join(format!(
            "staging-{}",
            root.path().file_name().unwrap().to_string_lossy()
        ));
        fs::create_dir(&staging).unwrap();
        fs::write(staging.join("new.txt"), "written by the job").unwrap();
        replace_contents(root.path(), &staging).unwrap();
        assert_eq!(files_in(root.path()), ["new.txt"]);
        assert!(!staging.exists());
    }
}
