//! The per-job workspace: a fresh directory that inputs are staged into and
//! that is mounted into the container. It enforces its limits and never lets
//! a path escape it: after creation, every access is made through a directory
//! handle (`cap-std`), resolved beneath it, and checked on the opened descriptor.

use std::fs;
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use cap_fs_ext::DirExt;
use cap_std::fs::{
    Dir, FileTypeExt as _, MetadataExt as _, OpenOptions, OpenOptionsExt as _, PermissionsExt as _,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::category::Category;
use crate::paths::check_relative_path;

/// Why a workspace operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("path `{path}` {reason}")]
    UnsafePath { path: String, reason: String },
    #[error("the workspace holds {files} files and {bytes} bytes, over its limit of {limit}")]
    LimitExceeded {
        files: u64,
        bytes: u64,
        limit: String,
    },
    /// The tree a job left is bigger than dockproof walks (`MAX_WALK_DEPTH`, `MAX_WALK_ENTRIES`).
    #[error(
        "the workspace tree is more than {limit} {what}, more than dockproof walks; it is not \
         counted further (a job that needs a bigger tree should archive it into one file)"
    )]
    WalkLimit { what: &'static str, limit: u64 },
    #[error("failed to {action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

impl WorkspaceError {
    /// The failure category this error is reported under.
    pub fn category(&self) -> Category {
        match self {
            WorkspaceError::UnsafePath { .. } => Category::ConfigInvalid,
            WorkspaceError::LimitExceeded { .. } | WorkspaceError::WalkLimit { .. } => {
                Category::WorkspaceLimitExceeded
            }
            // The filesystem holding the workspace is full: the job's workspace cannot hold
            // what it needs, whatever the scenario says its limit is.
            WorkspaceError::Io { source, .. }
                if matches!(
                    source.kind(),
                    io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
                ) =>
            {
                Category::WorkspaceLimitExceeded
            }
            WorkspaceError::Io { .. } => Category::ConfigInvalid,
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

/// Why a file dockproof would read or write is refused although its path is fine: it is
/// not a regular file (a FIFO would block the reader forever, a device node is not the
/// job's data and reading `/dev/zero` never ends), or it is a regular file with more than
/// one name. A hard link's other names cannot be found in general, so one may lie
/// outside the workspace (a host file linked in); writing or reading it would reach
/// that file. Directories pass: callers decide what a directory means.
pub fn special_file_reason(metadata: &fs::Metadata) -> Option<String> {
    let kind = metadata.file_type();
    special_kind_reason(
        kind.is_fifo(),
        kind.is_char_device(),
        kind.is_block_device(),
        kind.is_socket(),
        kind.is_file(),
        metadata.nlink(),
    )
}

fn special_kind_reason(
    fifo: bool,
    char_device: bool,
    block_device: bool,
    socket: bool,
    file: bool,
    nlink: u64,
) -> Option<String> {
    let what = if fifo {
        "a FIFO"
    } else if char_device {
        "a character device"
    } else if block_device {
        "a block device"
    } else if socket {
        "a socket"
    } else if file && nlink > 1 {
        return Some(format!(
            "is a hard link ({nlink} names); another name may lie outside the workspace, so it is refused (copy the file instead of linking it)"
        ));
    } else {
        return None;
    };
    Some(format!(
        "is {what}, not a regular file; it is refused, not read or written"
    ))
}

/// Opens `path` for reading without blocking on a FIFO and without side effects of
/// opening a device: its type and link count are checked before it is opened (following
/// symlinks) and again on the open descriptor, so a swap in between is caught too.
/// `shown` is the path as the scenario names it, for the error.
fn open_checked(
    path: &Path,
    shown: &str,
) -> Result<Option<(fs::File, fs::Metadata)>, WorkspaceError> {
    let refuse = |reason: String| WorkspaceError::UnsafePath {
        path: shown.to_owned(),
        reason,
    };
    let before = match fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(WorkspaceError::Io {
                action: "inspect",
                path: path.to_path_buf(),
                source: error,
            });
        }
    };
    if let Some(reason) = special_file_reason(&before) {
        return Err(refuse(reason));
    }
    if before.is_dir() {
        return Ok(Some((
            fs::File::open(path).map_err(io_error("open", path))?,
            before,
        )));
    }
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io_error("open", path))?;
    let after = file.metadata().map_err(io_error("inspect", path))?;
    if let Some(reason) = special_file_reason(&after) {
        return Err(refuse(reason));
    }
    Ok(Some((file, after)))
}

/// Opens a fixture file to stage or seed: a regular file with one name (see
/// `special_file_reason`); symlinks are followed, the scenario's author chose them.
/// `shown` is the path as the scenario writes it.
pub fn open_fixture(path: &Path, shown: &str) -> Result<fs::File, WorkspaceError> {
    match open_checked(path, shown)? {
        Some((file, metadata)) if metadata.is_file() => Ok(file),
        Some(_) => Err(WorkspaceError::UnsafePath {
            path: shown.to_owned(),
            reason: "is a directory, not a file".into(),
        }),
        None => Err(WorkspaceError::Io {
            action: "open",
            path: path.to_path_buf(),
            source: io::ErrorKind::NotFound.into(),
        }),
    }
}

/// What a workspace path holds when dockproof collects it (an `upload`, a file check).
#[derive(Debug)]
pub enum Collected {
    Missing,
    Directory,
    /// A regular file with one name, open for reading, and its size.
    File(fs::File, u64),
}

/// A file put into the workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StagedFile {
    /// Workspace-relative path.
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// Limits a workspace must stay within.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    pub max_bytes: Option<u64>,
    pub max_files: Option<u64>,
}

/// Files and bytes currently in a workspace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub files: u64,
    pub bytes: u64,
}

/// How deep below its root dockproof walks a workspace. A job can make a directory tree of
/// any depth; deeper than this is a `workspace_limit_exceeded` failure, not a walk that
/// grows with the job.
pub const MAX_WALK_DEPTH: usize = 128;

/// How many entries (files, directories, links, anything) dockproof looks at in one walk of
/// a workspace; more is a `workspace_limit_exceeded` failure.
pub const MAX_WALK_ENTRIES: u64 = 50_000;

/// A job workspace directory, removed by `remove` or when dropped.
///
/// Every access after creation goes through `root`, a directory handle opened once: paths
/// are resolved beneath it by `cap-std` (`openat2(RESOLVE_BENEATH)` on Linux), so a symlink
/// a job plants or swaps in can never lead a read, write, chmod or walk out of the
/// workspace, whatever it does between a check and an open. What is checked is the opened
/// descriptor, never the name again.
#[derive(Debug)]
pub struct Workspace {
    /// The host path, for mounts and messages only: nothing is opened through it.
    path: PathBuf,
    root: Dir,
    limits: Limits,
    removed: bool,
}

/// Whether `error` is cap-std refusing a path that leads out of the directory handle (a
/// symlink to an absolute path or through `..` above the root).
fn is_escape(error: &io::Error) -> bool {
    // cap-std reports an escape as PermissionDenied without an OS error code; an OS
    // EACCES carries its code.
    error.kind() == io::ErrorKind::PermissionDenied && error.raw_os_error().is_none()
}

const OUTSIDE: &str = "resolves outside the workspace through a symlink";

impl Workspace {
    /// Create a fresh, empty workspace under `parent`.
    pub fn create(parent: &Path, prefix: &str, limits: Limits) -> Result<Self, WorkspaceError> {
        fs::create_dir_all(parent).map_err(io_error("create", parent))?;
        let path = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(parent)
            .map_err(io_error("create a workspace in", parent))?
            .keep();
        let root = match Dir::open_ambient_dir(&path, cap_std::ambient_authority()) {
            Ok(root) => root,
            Err(source) => {
                let _ = fs::remove_dir(&path);
                return Err(WorkspaceError::Io {
                    action: "open",
                    path,
                    source,
                });
            }
        };
        let workspace = Workspace {
            path,
            root,
            limits,
            removed: false,
        };
        // Containers may run as any user (`user: 1000:1000`): they must be able to write.
        let handle = workspace
            .root
            .try_clone()
            .map_err(io_error("open", &workspace.path))?;
        make_shared(handle, &workspace.path)?;
        Ok(workspace)
    }

    /// The workspace directory on the host (what is mounted into containers).
    pub fn root(&self) -> &Path {
        &self.path
    }

    /// The limits this workspace enforces.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The size of the regular file at `relative`, if there is one, looked up beneath
    /// the root without following a final symlink (a symlink, a missing path or a path
    /// leading out count as 0: nothing there would be replaced).
    pub fn existing_file_len(&self, relative: &str) -> u64 {
        if Self::check_path(relative).is_err() {
            return 0;
        }
        self.root
            .symlink_metadata(relative)
            .ok()
            .filter(cap_std::fs::Metadata::is_file)
            .map_or(0, |metadata| metadata.len())
    }

    /// Refuses a workspace-relative path that is absolute, has `..` or is otherwise not
    /// a plain relative path (before anything is opened).
    fn check_path(relative: &str) -> Result<(), WorkspaceError> {
        check_relative_path(relative).map_err(|reason| WorkspaceError::UnsafePath {
            path: relative.to_owned(),
            reason: reason.to_owned(),
        })
    }

    /// Maps an error from an access beneath the root: an escape is a refusal.
    fn beneath_error(
        &self,
        action: &'static str,
        relative: &str,
    ) -> impl FnOnce(io::Error) -> WorkspaceError + '_ {
        let relative = relative.to_owned();
        move |source| {
            if is_escape(&source) {
                WorkspaceError::UnsafePath {
                    path: relative,
                    reason: OUTSIDE.to_owned(),
                }
            } else {
                WorkspaceError::Io {
                    action,
                    path: self.path.join(relative),
                    source,
                }
            }
        }
    }

    /// Open `relative` to collect it. A job may leave anything in its workspace: a FIFO
    /// (reading it would hang), a device node, a hard link to a file elsewhere, a symlink
    /// out; those are refused (`special_file_reason`), and the checks are made on the
    /// opened descriptor, so swapping the path after a check changes nothing.
    pub fn collect(&self, relative: &str) -> Result<Collected, WorkspaceError> {
        Self::check_path(relative)?;
        let refuse = |reason: String| WorkspaceError::UnsafePath {
            path: relative.to_owned(),
            reason,
        };
        // A first look, so that a device node or FIFO left in place is never opened at all.
        match self.root.metadata(relative) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Ok(Collected::Missing);
            }
            Err(error) => return Err(self.beneath_error("inspect", relative)(error)),
            Ok(metadata) => {
                if let Some(reason) = special_reason(&metadata) {
                    return Err(refuse(reason));
                }
            }
        }
        let mut options = OpenOptions::new();
        options
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
        let file = match self.root.open_with(relative, &options) {
            Ok(file) => file.into_std(),
            // Gone since the first look: the job removed it.
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Ok(Collected::Missing);
            }
            Err(error) => return Err(self.beneath_error("open", relative)(error)),
        };
        let opened = file
            .metadata()
            .map_err(io_error("inspect", &self.path.join(relative)))?;
        if let Some(reason) = special_file_reason(&opened) {
            return Err(refuse(reason));
        }
        Ok(if opened.is_dir() {
            Collected::Directory
        } else {
            Collected::File(file, opened.len())
        })
    }

    /// Write `content` to `relative`, creating parent directories, and record it.
    /// Something already there is overwritten only if it is a regular file with one
    /// name: a job that ran earlier may have left a FIFO, a device node or a hard link to
    /// a file outside the workspace where an input goes, or a symlink out.
    pub fn write(
        &self,
        relative: &str,
        content: &mut dyn Read,
    ) -> Result<StagedFile, WorkspaceError> {
        Self::check_path(relative)?;
        let as_path = Path::new(relative);
        // A file where a directory must go is the scenario contradicting itself: say so
        // in workspace terms (the host path of a temp dir helps nobody and is not stable).
        for ancestor in as_path
            .ancestors()
            .skip(1)
            .filter(|a| !a.as_os_str().is_empty())
        {
            if self
                .root
                .metadata(ancestor)
                .is_ok_and(|metadata| metadata.is_file())
            {
                return Err(WorkspaceError::UnsafePath {
                    path: relative.to_owned(),
                    reason: format!(
                        "is below `{}`, which is a file in the workspace",
                        ancestor.display()
                    ),
                });
            }
        }
        if let Some(parent) = as_path.parent().filter(|p| !p.as_os_str().is_empty()) {
            self.create_shared_dirs(relative, parent)?;
        }
        let refuse = |reason: String| WorkspaceError::UnsafePath {
            path: relative.to_owned(),
            reason,
        };
        match self.root.metadata(relative) {
            Ok(existing) => {
                if let Some(reason) = special_reason(&existing) {
                    return Err(refuse(reason));
                }
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(self.beneath_error("inspect", relative)(error)),
        }
        // Not truncated on open: the descriptor is checked first (a swap since the look
        // above is caught), and O_NONBLOCK keeps a FIFO from blocking the open.
        let mut options = OpenOptions::new();
        options
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o666)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
        let host_path = self.path.join(relative);
        let mut file = self
            .root
            .open_with(relative, &options)
            .map_err(self.beneath_error("create", relative))?
            .into_std();
        let opened = file.metadata().map_err(io_error("inspect", &host_path))?;
        if let Some(reason) = special_file_reason(&opened) {
            return Err(refuse(reason));
        }
        file.set_len(0).map_err(io_error("truncate", &host_path))?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 64 * 1024];
        let mut bytes = 0u64;
        loop {
            let read = content
                .read(&mut buffer)
                .map_err(io_error("read the source of", &host_path))?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            file.write_all(&buffer[..read])
                .map_err(io_error("write", &host_path))?;
            bytes += read as u64;
        }
        // On the descriptor (fchmod): the name may point elsewhere by now.
        file.set_permissions(fs::Permissions::from_mode(0o666))
            .map_err(io_error("set permissions of", &host_path))?;
        Ok(StagedFile {
            path: relative.to_owned(),
            bytes,
            sha256: hex::encode(hasher.finalize()),
        })
    }

    /// Create the directories of `parent` (a prefix of `relative`) that are missing, each
    /// open to everyone, beneath the root.
    fn create_shared_dirs(&self, relative: &str, parent: &Path) -> Result<(), WorkspaceError> {
        let mut prefix = PathBuf::new();
        for component in parent.components() {
            prefix.push(component);
            match self.root.metadata(&prefix) {
                Ok(metadata) if metadata.is_dir() => continue,
                Ok(_) => {
                    return Err(WorkspaceError::UnsafePath {
                        path: relative.to_owned(),
                        reason: format!(
                            "is below `{}`, which is not a directory in the workspace",
                            prefix.display()
                        ),
                    });
                }
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(self.beneath_error("inspect", relative)(error)),
            }
            match self.root.create_dir(&prefix) {
                Ok(()) => {}
                // Made by someone else since the look above: what it is is checked below.
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
                Err(error) => return Err(self.beneath_error("create", relative)(error)),
            }
            let made = self
                .root
                .open_dir(&prefix)
                .map_err(self.beneath_error("open", relative))?;
            make_shared(made, &self.path.join(&prefix))?;
        }
        Ok(())
    }

    /// Count the regular files and their bytes, walking the tree without following
    /// symlinks, at most `MAX_WALK_DEPTH` deep and `MAX_WALK_ENTRIES` entries.
    pub fn usage(&self) -> Result<Usage, WorkspaceError> {
        let mut usage = Usage::default();
        let mut entries = 0u64;
        let io = |action| io_error(action, &self.path);
        let start = self.root.try_clone().map_err(io("open"))?;
        let listing = self.root.entries().map_err(io("list"))?;
        // An explicit stack: one open directory per level, never a call per level.
        let mut stack: Vec<(Dir, cap_std::fs::ReadDir)> = vec![(start, listing)];
        loop {
            let depth = stack.len();
            let Some((dir, listing)) = stack.last_mut() else {
                break;
            };
            let Some(entry) = listing.next() else {
                stack.pop();
                continue;
            };
            let entry = entry.map_err(io("list"))?;
            entries += 1;
            if entries > MAX_WALK_ENTRIES {
                return Err(WorkspaceError::WalkLimit {
                    what: "entries",
                    limit: MAX_WALK_ENTRIES,
                });
            }
            let kind = match entry.file_type() {
                Ok(kind) => kind,
                // Removed while we looked: nothing to count.
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(io("inspect")(error)),
            };
            if kind.is_dir() {
                if depth >= MAX_WALK_DEPTH {
                    return Err(WorkspaceError::WalkLimit {
                        what: "levels deep",
                        limit: MAX_WALK_DEPTH as u64,
                    });
                }
                // Not followed if it became a symlink since it was listed.
                let child = match dir.open_dir_nofollow(entry.file_name()) {
                    Ok(child) => child,
                    Err(error) if vanished(&error) => continue,
                    Err(error) => return Err(io("open")(error)),
                };
                let listing = child.entries().map_err(io("list"))?;
                stack.push((child, listing));
            } else if kind.is_file() {
                match entry.metadata() {
                    Ok(metadata) if metadata.is_file() => {
                        usage.files += 1;
                        usage.bytes = usage.bytes.saturating_add(metadata.len());
                    }
                    Ok(_) => {}
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                    Err(error) => return Err(io("inspect")(error)),
                }
            }
        }
        Ok(usage)
    }

    /// Every entry (files with their sha256, directories, symlinks with their target) with
    /// its permission bits, walked beneath the root like `usage` (no symlink followed,
    /// `MAX_WALK_DEPTH`/`MAX_WALK_ENTRIES`), sorted by path: what recordings fingerprint
    /// and diff (`dockproof_recording::Entry`).
    pub fn entries(&self) -> Result<Vec<dockproof_recording::Entry>, WorkspaceError> {
        use dockproof_recording::{Entry, EntryKind};
        let mut found = Vec::new();
        let io = |action| io_error(action, &self.path);
        let start = self.root.try_clone().map_err(io("open"))?;
        let listing = self.root.entries().map_err(io("list"))?;
        let mut stack: Vec<(Dir, cap_std::fs::ReadDir, String)> =
            vec![(start, listing, String::new())];
        loop {
            let depth = stack.len();
            let Some((dir, listing, prefix)) = stack.last_mut() else {
                break;
            };
            let Some(entry) = listing.next() else {
                stack.pop();
                continue;
            };
            let entry = entry.map_err(io("list"))?;
            if found.len() as u64 >= MAX_WALK_ENTRIES {
                return Err(WorkspaceError::WalkLimit {
                    what: "entries",
                    limit: MAX_WALK_ENTRIES,
                });
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let relative = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let metadata = match entry.metadata() {
                Ok(metadata) => metadata,
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(io("inspect")(error)),
            };
            let mode = metadata.permissions().mode() & 0o7777;
            let kind = metadata.file_type();
            let (kind, size, digest) = if kind.is_dir() {
                if depth >= MAX_WALK_DEPTH {
                    return Err(WorkspaceError::WalkLimit {
                        what: "levels deep",
                        limit: MAX_WALK_DEPTH as u64,
                    });
                }
                let child = match dir.open_dir_nofollow(entry.file_name()) {
                    Ok(child) => child,
                    Err(error) if vanished(&error) => continue,
                    Err(error) => return Err(io("open")(error)),
                };
                let listing = child.entries().map_err(io("list"))?;
                stack.push((child, listing, relative.clone()));
                (EntryKind::Dir, 0, String::new())
            } else if kind.is_symlink() {
                let target = dir
                    .read_link_contents(entry.file_name())
                    .map_err(io("read"))?;
                (EntryKind::Symlink, 0, target.to_string_lossy().into_owned())
            } else if kind.is_file() {
                match self.collect(&relative)? {
                    Collected::File(mut file, _) => {
                        let (size, sha256) = sha256_collected(&mut file)
                            .map_err(io_error("read", &self.path.join(&relative)))?;
                        (EntryKind::File, size, sha256)
                    }
                    Collected::Missing | Collected::Directory => continue,
                }
            } else {
                (EntryKind::Other, 0, String::new())
            };
            found.push(Entry {
                path: relative,
                kind,
                mode,
                size,
                digest,
            });
        }
        found.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(found)
    }

    /// The bytes of the regular file at `relative`, at most `limit` of them (`None` when
    /// it is not a regular file or is larger).
    pub fn read_file(&self, relative: &str, limit: u64) -> Result<Option<Vec<u8>>, WorkspaceError> {
        match self.collect(relative)? {
            Collected::File(file, size) if size <= limit => {
                let mut bytes = Vec::new();
                file.take(limit + 1)
                    .read_to_end(&mut bytes)
                    .map_err(io_error("read", &self.path.join(relative)))?;
                Ok((bytes.len() as u64 <= limit).then_some(bytes))
            }
            _ => Ok(None),
        }
    }

    /// Fail if the workspace is over its limits.
    pub fn check_limits(&self) -> Result<Usage, WorkspaceError> {
        let usage = self.usage()?;
        let over_bytes = self.limits.max_bytes.filter(|limit| usage.bytes > *limit);
        let over_files = self.limits.max_files.filter(|limit| usage.files > *limit);
        let limit = match (over_bytes, over_files) {
            (Some(limit), _) => format!("max_bytes {limit}"),
            (None, Some(limit)) => format!("max_files {limit}"),
            (None, None) => return Ok(usage),
        };
        Err(WorkspaceError::LimitExceeded {
            files: usage.files,
            bytes: usage.bytes,
            limit,
        })
    }

    /// Leave the workspace in place (`--keep-failed`): dropping no longer removes it.
    /// Returns where it is.
    pub fn keep(mut self) -> PathBuf {
        self.removed = true;
        self.path.clone()
    }

    /// Remove the workspace now, reporting failure (dropping also removes it, silently).
    pub fn remove(mut self) -> Result<(), WorkspaceError> {
        self.removed = true;
        let path = self.retire();
        // A few rounds: something that was still writing through an open directory may
        // refill it between the two.
        let mut rounds = 0;
        loop {
            remove_contents(&self.root).map_err(io_error("remove", &path))?;
            match fs::remove_dir(&path) {
                Err(error) if error.raw_os_error() == Some(libc::ENOTEMPTY) && rounds < 3 => {
                    rounds += 1;
                }
                result => return result.map_err(io_error("remove", &path)),
            }
        }
    }

    /// Take the workspace out of its name before removing it (one rename, in its own
    /// directory): whatever finds it by path from then on — a host-side process of the
    /// job, a listing of the run's workspaces — sees it gone, not half removed, and
    /// cannot refill it by name while the removal, which works on the open handle, runs.
    /// A removal cut short leaves `.removing-<name>`, plainly not a live workspace.
    /// Returns the path the directory now has (its own if the rename failed).
    fn retire(&self) -> PathBuf {
        let (Some(parent), Some(name)) = (self.path.parent(), self.path.file_name()) else {
            return self.path.clone();
        };
        let mut retired = std::ffi::OsString::from(".removing-");
        retired.push(name);
        let retired = parent.join(retired);
        match fs::rename(&self.path, &retired) {
            Ok(()) => retired,
            Err(_) => self.path.clone(),
        }
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        if !self.removed {
            let path = self.retire();
            let _ = remove_contents(&self.root);
            let _ = fs::remove_dir(&path);
        }
    }
}

/// Whether an open failed because the entry is no longer the directory it was listed as
/// (removed, or swapped for a symlink or a file).
fn vanished(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::ENOENT | libc::ELOOP | libc::ENOTDIR)
    ) || error.kind() == io::ErrorKind::NotFound
}

/// The refusal reason for what a path beneath the root holds (cap-std's metadata).
fn special_reason(metadata: &cap_std::fs::Metadata) -> Option<String> {
    let kind = metadata.file_type();
    special_kind_reason(
        kind.is_fifo(),
        kind.is_char_device(),
        kind.is_block_device(),
        kind.is_socket(),
        kind.is_file(),
        metadata.nlink(),
    )
}

/// Opens `dir` to everyone (0777), through its handle (`.` cannot be swapped for a link).
fn make_shared(dir: Dir, shown: &Path) -> Result<(), WorkspaceError> {
    dir.set_permissions(".", cap_std::fs::Permissions::from_mode(0o777))
        .map_err(io_error("set permissions of", shown))
}

/// Everything below `root` removed, without recursion and without following symlinks:
/// a subdirectory's subdirectories are moved up to `root` (a rename beneath the same
/// handle) before it is emptied and removed, so only a handful of descriptors are open
/// and no stack grows with the depth a job gave its tree.
pub fn remove_contents(root: &Dir) -> io::Result<()> {
    let mut moved = 0u64;
    let mut idle_passes = 0u32;
    let mut passes = 0u64;
    loop {
        // A bounded batch of names per pass: the listing changes as directories move up.
        let names: Vec<(std::ffi::OsString, bool)> = root
            .entries()?
            .take(4096)
            .filter_map(|entry| entry.ok())
            .map(|entry| {
                let is_dir = entry.file_type().is_ok_and(|kind| kind.is_dir());
                (entry.file_name(), is_dir)
            })
            .collect();
        if names.is_empty() {
            return Ok(());
        }
        // Something keeps refilling the tree or an entry cannot go: give up, bounded. A
        // pass moves every directory one level up, so a million passes empty a tree
        // a million levels deep.
        passes += 1;
        if idle_passes > 16 || passes > 1_000_000 {
            return Err(io::Error::other(
                "entries remain after repeated passes (a process still writing there?)",
            ));
        }
        let mut progress = false;
        for (name, is_dir) in names {
            if !is_dir {
                progress |= removed(root.remove_file(&name))?;
                continue;
            }
            let child = match root.open_dir_nofollow(&name) {
                Ok(child) => child,
                Err(error) if vanished(&error) => {
                    // Swapped for a symlink or a file since it was listed: unlink that.
                    progress |= removed(root.remove_file(&name))?;
                    continue;
                }
                Err(error) => return Err(error),
            };
            for entry in child.entries()? {
                let entry = entry?;
                let inner = entry.file_name();
                if !entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                    progress |= removed(child.remove_file(&inner))?;
                    continue;
                }
                // Up to the root under a fresh name, emptied on a later pass.
                loop {
                    moved += 1;
                    let target = format!(".dockproof-removing-{moved}");
                    match child.rename(&inner, root, &target) {
                        Ok(()) => {
                            progress = true;
                            break;
                        }
                        Err(error)
                            if matches!(
                                error.raw_os_error(),
                                Some(libc::EEXIST | libc::ENOTEMPTY | libc::ENOTDIR)
                            ) => {}
                        Err(error) => {
                            removed(Err(error))?;
                            break;
                        }
                    }
                }
            }
            match root.remove_dir(&name) {
                Ok(()) => progress = true,
                // Refilled meanwhile: the next pass sees it again.
                Err(error) if error.raw_os_error() == Some(libc::ENOTEMPTY) => {}
                Err(error) => progress |= removed(Err(error))?,
            }
        }
        idle_passes = if progress { 0 } else { idle_passes + 1 };
    }
}

/// Remove the directory `path` and everything below it the way `remove_contents` does (no
/// recursion, no symlink followed): for trees a job may have shaped, such as a run
/// directory left by a killed run.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    let root = Dir::open_ambient_dir(path, cap_std::ambient_authority())?;
    remove_contents(&root)?;
    drop(root);
    fs::remove_dir(path)
}

/// Whether something was removed; an entry already gone is not an error.
fn removed(result: io::Result<()>) -> io::Result<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error),
    }
}

/// Deterministic pseudo-random bytes (splitmix64): the same size and seed give
/// the same bytes on every machine and every version of dockproof.
pub struct Generated {
    state: u64,
    remaining: u64,
    pending: [u8; 8],
    pending_len: usize,
}

impl Generated {
    pub fn new(bytes: u64, seed: u64) -> Self {
        Generated {
            state: seed,
            remaining: bytes,
            pending: [0; 8],
            pending_len: 0,
        }
    }

    fn next_word(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Read for Generated {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let wanted = (buffer.len() as u64).min(self.remaining) as usize;
        for byte in &mut buffer[..wanted] {
            if self.pending_len == 0 {
                self.pending = self.next_word().to_le_bytes();
                self.pending_len = 8;
            }
            *byte = self.pending[8 - self.pending_len];
            self.pending_len -= 1;
        }
        self.remaining -= wanted as u64;
        Ok(wanted)
    }
}

/// sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> io::Result<(u64, String)> {
    sha256_reader(&mut fs::File::open(path)?)
}

/// sha256 of a collected file, streamed, leaving it positioned at its start again.
pub fn sha256_collected(file: &mut fs::File) -> io::Result<(u64, String)> {
    let digest = sha256_reader(file)?;
    file.rewind()?;
    Ok(digest)
}

fn sha256_reader(file: &mut dyn Read) -> io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut bytes = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        bytes += read as u64;
    }
    Ok((bytes, hex::encode(hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace(limits: Limits) -> (tempfile::TempDir, Workspace) {
        let parent = tempfile::tempdir().unwrap();
        let workspace = Workspace::create(parent.path(), "ws-", limits).unwrap();
        (parent, workspace)
    }

    #[test]
    fn writes_files_and_records_their_checksum() {
        let (_parent, ws) = workspace(Limits::default());
        let staged = ws.write("inputs/a.txt", &mut "hello\n".as_bytes()).unwrap();
        assert_eq!(staged.bytes, 6);
        assert_eq!(
            staged.sha256,
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
        );
        assert_eq!(ws.usage().unwrap(), Usage { files: 1, bytes: 6 });
    }

    #[test]
    fn staging_below_a_file_is_a_config_error_in_workspace_terms() {
        let (_parent, ws) = workspace(Limits::default());
        ws.write("inputs", &mut "x".as_bytes()).unwrap();
        let error = ws
            .write("inputs/deeper/a.csv", &mut "y".as_bytes())
            .unwrap_err();
        assert_eq!(error.category(), Category::ConfigInvalid);
        assert_eq!(
            error.to_string(),
            "path `inputs/deeper/a.csv` is below `inputs`, which is a file in the workspace"
        );
    }

    #[test]
    fn generated_bytes_are_deterministic() {
        let mut first = Vec::new();
        Generated::new(1000, 7).read_to_end(&mut first).unwrap();
        // Reading in odd-sized pieces gives the same bytes.
        let mut second = Vec::new();
        let mut generator = Generated::new(1000, 7);
        let mut piece = [0u8; 3];
        loop {
            let read = generator.read(&mut piece).unwrap();
            if read == 0 {
                break;
            }
            second.extend_from_slice(&piece[..read]);
        }
        let mut other = Vec::new();
        Generated::new(1000, 8).read_to_end(&mut other).unwrap();
        assert_eq!(first.len(), 1000);
        assert_eq!(first, second);
        assert_ne!(first, other);
    }

    #[test]
    fn rejects_paths_that_leave_the_workspace() {
        let (_parent, ws) = workspace(Limits::default());
        for path in ["/etc/passwd", "a/../../x"] {
            assert!(matches!(
                ws.write(path, &mut "x".as_bytes()),
                Err(WorkspaceError::UnsafePath { .. })
            ));
            assert!(matches!(
                ws.collect(path),
                Err(WorkspaceError::UnsafePath { .. })
            ));
        }
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("file"), "host").unwrap();
        std::os::unix::fs::symlink(outside.path(), ws.root().join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("file"), ws.root().join("file-link"))
            .unwrap();
        // Relative links climbing out are refused as well as absolute ones.
        std::os::unix::fs::symlink("../../../../../../../../../../..", ws.root().join("up"))
            .unwrap();
        for path in ["link/file", "file-link", "up/etc/passwd", "link/new/deeper"] {
            let error = ws.write(path, &mut "overwritten".as_bytes()).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("path `{path}` resolves outside the workspace through a symlink")
            );
            assert_eq!(error.category(), Category::ConfigInvalid);
            let error = ws.collect(path).unwrap_err();
            assert!(
                error.to_string().contains("outside the workspace"),
                "{error}"
            );
        }
        assert_eq!(
            fs::read_to_string(outside.path().join("file")).unwrap(),
            "host"
        );
        assert!(!outside.path().join("new").exists());
        // A symlink that stays inside is followed.
        fs::create_dir(ws.root().join("inputs")).unwrap();
        std::os::unix::fs::symlink("inputs", ws.root().join("inside")).unwrap();
        ws.write("inside/a.txt", &mut "in".as_bytes()).unwrap();
        assert_eq!(
            fs::read_to_string(ws.root().join("inputs/a.txt")).unwrap(),
            "in"
        );
    }

    #[test]
    fn walks_are_bounded_in_depth_and_entries_and_removal_needs_no_recursion() {
        let (_parent, ws) = workspace(Limits::default());
        // Deeper than PATH_MAX allows by name: built one level at a time through handles.
        let mut dir = Dir::open_ambient_dir(ws.root(), cap_std::ambient_authority()).unwrap();
        for _ in 0..3000 {
            dir.create_dir("deep-directory-name").unwrap();
            dir = dir.open_dir("deep-directory-name").unwrap();
        }
        dir.write("bottom.txt", "x").unwrap();
        // On a small stack: a recursive walk or removal of 3,000 levels would overflow it.
        let ws = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let error = ws.usage().unwrap_err();
                assert_eq!(error.category(), Category::WorkspaceLimitExceeded);
                assert_eq!(
                    error.to_string(),
                    format!(
                        "the workspace tree is more than {MAX_WALK_DEPTH} levels deep, more than dockproof walks; it is not counted further (a job that needs a bigger tree should archive it into one file)"
                    )
                );
                ws
            })
            .unwrap()
            .join()
            .unwrap();
        let root = ws.root().to_path_buf();
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || ws.remove().unwrap())
            .unwrap()
            .join()
            .unwrap();
        assert!(!root.exists());

        let (_parent, ws) = workspace(Limits::default());
        for index in 0..MAX_WALK_ENTRIES {
            fs::write(ws.root().join(format!("f{index}")), "").unwrap();
        }
        assert_eq!(ws.usage().unwrap().files, MAX_WALK_ENTRIES);
        fs::write(ws.root().join("one-more"), "").unwrap();
        let error = ws.usage().unwrap_err();
        assert!(
            error.to_string().contains("more than 50000 entries"),
            "{error}"
        );
        ws.remove().unwrap();
    }

    /// Runs `f` on a thread; fails the test if it takes longer than 10 s (a hang).
    fn within<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || sender.send(f()));
        receiver
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("finished without hanging")
    }

    fn mkfifo(path: &Path) {
        nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
    }

    fn refusal(error: WorkspaceError) -> String {
        assert_eq!(error.category(), Category::ConfigInvalid);
        assert!(
            matches!(error, WorkspaceError::UnsafePath { .. }),
            "{error:?}"
        );
        error.to_string()
    }

    #[test]
    fn staging_over_a_fifo_or_a_hard_link_is_refused_and_touches_nothing() {
        let (_parent, ws) = workspace(Limits::default());
        mkfifo(&ws.root().join("pipe"));
        let outside = tempfile::tempdir().unwrap();
        let host_file = outside.path().join("host.txt");
        fs::write(&host_file, "host data").unwrap();
        fs::hard_link(&host_file, ws.root().join("linked")).unwrap();
        let ws = std::sync::Arc::new(ws);
        let shared = ws.clone();
        let fifo = within(move || shared.write("pipe", &mut "x".as_bytes()).unwrap_err());
        assert_eq!(
            refusal(fifo),
            "path `pipe` is a FIFO, not a regular file; it is refused, not read or written"
        );
        let link = ws
            .write("linked", &mut "overwritten".as_bytes())
            .unwrap_err();
        assert!(refusal(link).starts_with(
            "path `linked` is a hard link (2 names); another name may lie outside the workspace"
        ));
        assert_eq!(fs::read_to_string(&host_file).unwrap(), "host data");
        // An ordinary file is overwritten (truncated first).
        ws.write("plain", &mut "a longer first text".as_bytes())
            .unwrap();
        let staged = ws.write("plain", &mut "short".as_bytes()).unwrap();
        assert_eq!(
            (
                staged.bytes,
                fs::read_to_string(ws.root().join("plain")).unwrap()
            ),
            (5, "short".to_string())
        );
    }

    #[test]
    fn collecting_refuses_fifos_and_hard_links_without_reading_them() {
        let (_parent, ws) = workspace(Limits::default());
        mkfifo(&ws.root().join("out.fifo"));
        fs::write(ws.root().join("a.txt"), "data").unwrap();
        fs::hard_link(ws.root().join("a.txt"), ws.root().join("b.txt")).unwrap();
        fs::create_dir(ws.root().join("dir")).unwrap();
        fs::write(ws.root().join("ok.txt"), "fine").unwrap();
        // Symlinks inside the workspace are followed, to the FIFO too: still refused.
        std::os::unix::fs::symlink("out.fifo", ws.root().join("to-fifo")).unwrap();
        let ws = std::sync::Arc::new(ws);
        for name in ["out.fifo", "to-fifo"] {
            let shared = ws.clone();
            let error = within(move || shared.collect(name).unwrap_err());
            assert!(refusal(error).contains("is a FIFO, not a regular file"));
        }
        for name in ["a.txt", "b.txt"] {
            assert!(refusal(ws.collect(name).unwrap_err()).contains("is a hard link (2 names)"));
        }
        assert!(matches!(ws.collect("missing").unwrap(), Collected::Missing));
        assert!(matches!(ws.collect("dir").unwrap(), Collected::Directory));
        let Collected::File(mut file, size) = ws.collect("ok.txt").unwrap() else {
            panic!("a regular file")
        };
        assert_eq!(size, 4);
        let (bytes, sha256) = sha256_collected(&mut file).unwrap();
        let mut again = String::new();
        file.read_to_string(&mut again).unwrap();
        assert_eq!((bytes, again.as_str()), (4, "fine"));
        assert_eq!(sha256, sha256_file(&ws.root().join("ok.txt")).unwrap().1);
    }

    #[test]
    fn fixtures_must_be_regular_files_with_one_name() {
        let dir = tempfile::tempdir().unwrap();
        let error = within(|| open_fixture(Path::new("/dev/zero"), "/dev/zero").unwrap_err());
        assert_eq!(
            refusal(error),
            "path `/dev/zero` is a character device, not a regular file; it is refused, not read or written"
        );
        mkfifo(&dir.path().join("pipe"));
        let pipe = dir.path().join("pipe");
        assert!(
            refusal(within(move || open_fixture(&pipe, "pipe").unwrap_err())).contains("is a FIFO")
        );
        fs::write(dir.path().join("data.csv"), "a,b\n").unwrap();
        let mut file = open_fixture(&dir.path().join("data.csv"), "data.csv").unwrap();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        assert_eq!(text, "a,b\n");
        fs::hard_link(dir.path().join("data.csv"), dir.path().join("again.csv")).unwrap();
        assert!(
            refusal(open_fixture(&dir.path().join("data.csv"), "data.csv").unwrap_err())
                .contains("is a hard link (2 names)")
        );
        assert!(matches!(
            open_fixture(&dir.path().join("nope"), "nope"),
            Err(WorkspaceError::Io { .. })
        ));
    }

    #[test]
    fn enforces_limits() {
        let (_parent, ws) = workspace(Limits {
            max_bytes: Some(10),
            max_files: Some(2),
        });
        ws.write("a", &mut "12345".as_bytes()).unwrap();
        ws.check_limits().unwrap();
        ws.write("b", &mut "123456".as_bytes()).unwrap();
        let error = ws.check_limits().unwrap_err();
        assert_eq!(error.category(), Category::WorkspaceLimitExceeded);
        assert!(error.to_string().contains("max_bytes 10"), "{error}");
    }

    #[test]
    fn a_full_filesystem_is_a_workspace_limit_not_a_config_error() {
        let full = WorkspaceError::Io {
            action: "write",
            path: "w/x".into(),
            source: io::Error::from_raw_os_error(28),
        };
        assert_eq!(full.category(), Category::WorkspaceLimitExceeded);
        let denied = WorkspaceError::Io {
            action: "write",
            path: "w/x".into(),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        assert_eq!(denied.category(), Category::ConfigInvalid);
    }
}
