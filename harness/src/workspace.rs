//! The per-job workspace: a fresh directory that inputs are staged into and
//! that is mounted into the container. It enforces its limits and never lets
//! a path escape it.

use std::fs;
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::category::Category;
use crate::scenario::load::check_relative_path;

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
            WorkspaceError::LimitExceeded { .. } => Category::WorkspaceLimitExceeded,
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
    let what = if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_file() && metadata.nlink() > 1 {
        return Some(format!(
            "is a hard link ({} names); another name may lie outside the workspace, so it is refused (copy the file instead of linking it)",
            metadata.nlink()
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

/// A job workspace directory, removed when dropped.
#[derive(Debug)]
pub struct Workspace {
    dir: tempfile::TempDir,
    limits: Limits,
}

impl Workspace {
    /// Create a fresh, empty workspace under `parent`.
    pub fn create(parent: &Path, prefix: &str, limits: Limits) -> Result<Self, WorkspaceError> {
        fs::create_dir_all(parent).map_err(io_error("create", parent))?;
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(parent)
            .map_err(io_error("create a workspace in", parent))?;
        // Containers may run as any user (`user: 1000:1000`): they must be able to write.
        make_shared(dir.path())?;
        Ok(Workspace { dir, limits })
    }

    /// The workspace directory on the host.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The limits this workspace enforces.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The host path for a workspace-relative path, refusing anything that
    /// leaves the workspace (absolute paths, `..`, symlinks pointing outside).
    pub fn resolve(&self, relative: &str) -> Result<PathBuf, WorkspaceError> {
        let unsafe_path = |reason: &str| WorkspaceError::UnsafePath {
            path: relative.to_owned(),
            reason: reason.to_owned(),
        };
        check_relative_path(relative).map_err(unsafe_path)?;
        let root = self
            .root()
            .canonicalize()
            .map_err(io_error("resolve", self.root()))?;
        let joined = root.join(relative);
        // Walk up to the deepest existing ancestor: symlinks can only hide there.
        let mut existing = joined.as_path();
        while fs::symlink_metadata(existing).is_err() {
            existing = existing.parent().unwrap_or(&root);
        }
        let real = existing
            .canonicalize()
            .map_err(|_| unsafe_path("is a dangling symlink"))?;
        if !real.starts_with(&root) {
            return Err(unsafe_path(
                "resolves outside the workspace through a symlink",
            ));
        }
        Ok(joined)
    }

    /// Open `relative` to collect it. A job may leave anything in its workspace: a FIFO
    /// (reading it would hang), a device node, a hard link to a file elsewhere; those are
    /// refused (`special_file_reason`), as are paths that leave the workspace.
    pub fn collect(&self, relative: &str) -> Result<Collected, WorkspaceError> {
        let path = self.resolve(relative)?;
        Ok(match open_checked(&path, relative)? {
            None => Collected::Missing,
            Some((_, metadata)) if metadata.is_dir() => Collected::Directory,
            Some((file, metadata)) => Collected::File(file, metadata.len()),
        })
    }

    /// Write `content` to `relative`, creating parent directories, and record it.
    /// Something already there is overwritten only if it is a regular file with one
    /// name: a job that ran earlier may have left a FIFO, a device node or a hard link to
    /// a file outside the workspace where an input goes.
    pub fn write(
        &self,
        relative: &str,
        content: &mut dyn Read,
    ) -> Result<StagedFile, WorkspaceError> {
        let path = self.resolve(relative)?;
        // A file where a directory must go is the scenario contradicting itself: say so
        // in workspace terms (the host path of a temp dir helps nobody and is not stable).
        for ancestor in Path::new(relative)
            .ancestors()
            .skip(1)
            .filter(|a| !a.as_os_str().is_empty())
        {
            if self.root().join(ancestor).is_file() {
                return Err(WorkspaceError::UnsafePath {
                    path: relative.to_owned(),
                    reason: format!(
                        "is below `{}`, which is a file in the workspace",
                        ancestor.display()
                    ),
                });
            }
        }
        if let Some(parent) = path.parent() {
            create_shared_dirs(self.root(), parent)?;
        }
        let refuse = |reason: String| WorkspaceError::UnsafePath {
            path: relative.to_owned(),
            reason,
        };
        if let Ok(existing) = fs::metadata(&path)
            && let Some(reason) = special_file_reason(&existing)
        {
            return Err(refuse(reason));
        }
        // Not truncated on open: the descriptor is checked first (a swap since the check
        // above is caught), and O_NONBLOCK keeps a FIFO from blocking the open.
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&path)
            .map_err(io_error("create", &path))?;
        let opened = file.metadata().map_err(io_error("inspect", &path))?;
        if let Some(reason) = special_file_reason(&opened) {
            return Err(refuse(reason));
        }
        file.set_len(0).map_err(io_error("truncate", &path))?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 64 * 1024];
        let mut bytes = 0u64;
        loop {
            let read = content
                .read(&mut buffer)
                .map_err(io_error("read the source of", &path))?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            file.write_all(&buffer[..read])
                .map_err(io_error("write", &path))?;
            bytes += read as u64;
        }
        file.set_permissions(fs::Permissions::from_mode(0o666))
            .map_err(io_error("set permissions of", &path))?;
        Ok(StagedFile {
            path: relative.to_owned(),
            bytes,
            sha256: hex::encode(hasher.finalize()),
        })
    }

    /// Count the regular files and their bytes.
    pub fn usage(&self) -> Result<Usage, WorkspaceError> {
        let mut usage = Usage::default();
        walk(self.root(), &mut usage)?;
        Ok(usage)
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

    /// Remove the workspace now, reporting failure (dropping also removes it, silently).
    pub fn remove(self) -> Result<(), WorkspaceError> {
        let path = self.root().to_path_buf();
        self.dir.close().map_err(io_error("remove", &path))
    }
}

fn make_shared(path: &Path) -> Result<(), WorkspaceError> {
    fs::set_permissions(path, fs::Permissions::from_mode(0o777))
        .map_err(io_error("set permissions of", path))
}

fn create_shared_dirs(root: &Path, dir: &Path) -> Result<(), WorkspaceError> {
    if dir == root || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_shared_dirs(root, parent)?;
    }
    fs::create_dir(dir).map_err(io_error("create", dir))?;
    make_shared(dir)
}

fn walk(dir: &Path, usage: &mut Usage) -> Result<(), WorkspaceError> {
    for entry in fs::read_dir(dir).map_err(io_error("list", dir))? {
        let entry = entry.map_err(io_error("list", dir))?;
        let kind = entry
            .file_type()
            .map_err(io_error("inspect", &entry.path()))?;
        if kind.is_dir() {
            walk(&entry.path(), usage)?;
        } else if kind.is_file() {
            usage.files += 1;
            usage.bytes += entry
                .metadata()
                .map_err(io_error("inspect", &entry.path()))?
                .len();
        }
    }
    Ok(())
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
        assert!(matches!(
            ws.resolve("/etc/passwd"),
            Err(WorkspaceError::UnsafePath { .. })
        ));
        assert!(matches!(
            ws.resolve("a/../../x"),
            Err(WorkspaceError::UnsafePath { .. })
        ));
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), ws.root().join("link")).unwrap();
        let error = ws.resolve("link/file").unwrap_err();
        assert!(
            error.to_string().contains("outside the workspace"),
            "{error}"
        );
        assert_eq!(error.category(), Category::ConfigInvalid);
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
