//! The per-job workspace: a fresh directory that inputs are staged into and
//! that is mounted into the container. It enforces its limits and never lets
//! a path escape it.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
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
    LimitExceeded { files: u64, bytes: u64, limit: String },
    #[error("failed to {action} `{path}`: {source}")]
    Io { action: &'static str, path: PathBuf, source: io::Error },
}

impl WorkspaceError {
    /// The failure category this error is reported under.
    pub fn category(&self) -> Category {
        match self {
            WorkspaceError::UnsafePath { .. } => Category::ConfigInvalid,
            WorkspaceError::LimitExceeded { .. } => Category::WorkspaceLimitExceeded,
            // The filesystem holding the workspace is full: the job's workspace cannot hold
            // what it needs, whatever the scenario says its limit is.
            WorkspaceError::Io { source, .. } if matches!(source.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded) => {
                Category::WorkspaceLimitExceeded
            }
            WorkspaceError::Io { .. } => Category::ConfigInvalid,
        }
    }
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> WorkspaceError + 'a {
    move |source| WorkspaceError::Io { action, path: path.to_path_buf(), source }
}

/// A file put into the workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
        let unsafe_path = |reason: &str| WorkspaceError::UnsafePath { path: relative.to_owned(), reason: reason.to_owned() };
        check_relative_path(relative).map_err(unsafe_path)?;
        let root = self.root().canonicalize().map_err(io_error("resolve", self.root()))?;
        let joined = root.join(relative);
        // Walk up to the deepest existing ancestor: symlinks can only hide there.
        let mut existing = joined.as_path();
        while fs::symlink_metadata(existing).is_err() {
            existing = existing.parent().unwrap_or(&root);
        }
        let real = existing.canonicalize().map_err(|_| unsafe_path("is a dangling symlink"))?;
        if !real.starts_with(&root) {
            return Err(unsafe_path("resolves outside the workspace through a symlink"));
        }
        Ok(joined)
    }

    /// Write `content` to `relative`, creating parent directories, and record it.
    pub fn write(&self, relative: &str, content: &mut dyn Read) -> Result<StagedFile, WorkspaceError> {
        let path = self.resolve(relative)?;
        // A file where a directory must go is the scenario contradicting itself: say so
        // in workspace terms (the host path of a temp dir helps nobody and is not stable).
        for ancestor in Path::new(relative).ancestors().skip(1).filter(|a| !a.as_os_str().is_empty()) {
            if self.root().join(ancestor).is_file() {
                return Err(WorkspaceError::UnsafePath {
                    path: relative.to_owned(),
                    reason: format!("is below `{}`, which is a file in the workspace", ancestor.display()),
                });
            }
        }
        if let Some(parent) = path.parent() {
            create_shared_dirs(self.root(), parent)?;
        }
        let mut file = fs::File::create(&path).map_err(io_error("create", &path))?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 64 * 1024];
        let mut bytes = 0u64;
        loop {
            let read = content.read(&mut buffer).map_err(io_error("read the source of", &path))?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            file.write_all(&buffer[..read]).map_err(io_error("write", &path))?;
            bytes += read as u64;
        }
        file.set_permissions(fs::Permissions::from_mode(0o666)).map_err(io_error("set permissions of", &path))?;
        Ok(StagedFile { path: relative.to_owned(), bytes, sha256: hex::encode(hasher.finalize()) })
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
        Err(WorkspaceError::LimitExceeded { files: usage.files, bytes: usage.bytes, limit })
    }

    /// Remove the workspace now, reporting failure (dropping also removes it, silently).
    pub fn remove(self) -> Result<(), WorkspaceError> {
        let path = self.root().to_path_buf();
        self.dir.close().map_err(io_error("remove", &path))
    }
}

fn make_shared(path: &Path) -> Result<(), WorkspaceError> {
    fs::set_permissions(path, fs::Permissions::from_mode(0o777)).map_err(io_error("set permissions of", path))
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
        let kind = entry.file_type().map_err(io_error("inspect", &entry.path()))?;
        if kind.is_dir() {
            walk(&entry.path(), usage)?;
        } else if kind.is_file() {
            usage.files += 1;
            usage.bytes += entry.metadata().map_err(io_error("inspect", &entry.path()))?.len();
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
        Generated { state: seed, remaining: bytes, pending: [0; 8], pending_len: 0 }
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
    let mut file = fs::File::open(path)?;
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
        assert_eq!(staged.sha256, "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
        assert_eq!(ws.usage().unwrap(), Usage { files: 1, bytes: 6 });
    }

    #[test]
    fn staging_below_a_file_is_a_config_error_in_workspace_terms() {
        let (_parent, ws) = workspace(Limits::default());
        ws.write("inputs", &mut "x".as_bytes()).unwrap();
        let error = ws.write("inputs/deeper/a.csv", &mut "y".as_bytes()).unwrap_err();
        assert_eq!(error.category(), Category::ConfigInvalid);
        assert_eq!(error.to_string(), "path `inputs/deeper/a.csv` is below `inputs`, which is a file in the workspace");
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
        assert!(matches!(ws.resolve("/etc/passwd"), Err(WorkspaceError::UnsafePath { .. })));
        assert!(matches!(ws.resolve("a/../../x"), Err(WorkspaceError::UnsafePath { .. })));
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), ws.root().join("link")).unwrap();
        let error = ws.resolve("link/file").unwrap_err();
        assert!(error.to_string().contains("outside the workspace"), "{error}");
        assert_eq!(error.category(), Category::ConfigInvalid);
    }

    #[test]
    fn enforces_limits() {
        let (_parent, ws) = workspace(Limits { max_bytes: Some(10), max_files: Some(2) });
        ws.write("a", &mut "12345".as_bytes()).unwrap();
        ws.check_limits().unwrap();
        ws.write("b", &mut "123456".as_bytes()).unwrap();
        let error = ws.check_limits().unwrap_err();
        assert_eq!(error.category(), Category::WorkspaceLimitExceeded);
        assert!(error.to_string().contains("max_bytes 10"), "{error}");
    }

    #[test]
    fn a_full_filesystem_is_a_workspace_limit_not_a_config_error() {
        let full = WorkspaceError::Io { action: "write", path: "w/x".into(), source: io::Error::from_raw_os_error(28) };
        assert_eq!(full.category(), Category::WorkspaceLimitExceeded);
        let denied = WorkspaceError::Io { action: "write", path: "w/x".into(), source: io::Error::from(io::ErrorKind::PermissionDenied) };
        assert_eq!(denied.category(), Category::ConfigInvalid);
    }
}
