//! Recordings: what a container did on a real daemon, kept so that fake-docker can
//! replay it and `dockproof record --check` can tell when reality has drifted.
//!
//! One recording per scenario, in a directory (`recordings/SCENARIO/` by default):
//! `recording.json` (this crate's [`Recording`], pretty JSON with a `version`) and
//! `blobs/SHA256`, the content-addressed bytes too large (or not text) to sit inline.
//! dockproof writes and compares recordings; fake-docker matches a container against
//! them ([`differences`]) and plays the outcome. Both compute the workspace
//! fingerprint with [`fingerprint`], so they agree on it by construction.
//! See docs/recordings.md.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

mod tree;
pub use tree::{
    MAX_TREE_CONTENT_BYTES, MAX_TREE_ENTRIES, RecordedImage, TreeEntry, clean, tree_differences,
};

/// The format version this code writes. Version 2 added `execs` and the
/// `still_running` end (detached containers); version 3 added `images` (the file trees
/// of the images `cst:` steps tested); version 4 names an image committed from a CST
/// setup container by that container's step ([`committed_image`]) instead of its ID,
/// which is new every time; an older file is read as it is.
pub const FORMAT_VERSION: u32 = 4;
/// The oldest format version this code reads.
pub const OLDEST_FORMAT_VERSION: u32 = 1;
/// The recording file in a recording directory.
pub const FILE_NAME: &str = "recording.json";
/// The content-addressed blobs in a recording directory.
pub const BLOB_DIR: &str = "blobs";
/// Content up to this many bytes (and valid UTF-8) is kept inline.
pub const INLINE_MAX: usize = 4096;
/// The largest `recording.json` read (an untrusted file).
pub const MAX_FILE_BYTES: u64 = 8 << 20;
/// The largest blob read or written.
pub const MAX_BLOB_BYTES: u64 = 64 << 20;
/// All blobs of one recording together.
pub const MAX_TOTAL_BLOB_BYTES: u64 = 256 << 20;
/// What stands for a secret value in a recording (the same as in reports).
pub const SECRET_PLACEHOLDER: &str = "***";
/// A workspace walk stops with an error past this many entries or levels.
pub const MAX_WALK_ENTRIES: usize = 50_000;
pub const MAX_WALK_DEPTH: usize = 128;

/// How a recording names an image committed from the container of `step` (a CST command
/// test's `setup` command): `committed:/steps/0/cst/commandTests/3/setup/0`. The
/// daemon gives such an image a new ID every time, so neither the ID nor a reference
/// could match a replay or a re-run; the setup's step can, since the fake knows which
/// recorded container it replayed before committing it.
pub fn committed_image(step: &str) -> String {
    format!("{COMMITTED_PREFIX}{step}")
}

/// The prefix of [`committed_image`] names.
pub const COMMITTED_PREFIX: &str = "committed:";

/// Why a recording could not be read, written or applied.
#[derive(Debug, Error)]
pub enum RecordingError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}:{line}:{column}: not a recording: {message} (expected the format of docs/recordings.md, version {FORMAT_VERSION}); re-record with `dockproof record`"
    )]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "{path}: recording format version {found} is not supported (this build reads versions {OLDEST_FORMAT_VERSION} to {FORMAT_VERSION}); re-record with `dockproof record`"
    )]
    Version { path: PathBuf, found: u32 },
    #[error("{path}: {what} is {size} bytes, over the limit of {limit}")]
    TooLarge {
        path: PathBuf,
        what: &'static str,
        size: u64,
        limit: u64,
    },
    #[error(
        "{path}: blob {sha256} is damaged (its bytes hash to {actual}); re-record with `dockproof record`"
    )]
    BadBlob {
        path: PathBuf,
        sha256: String,
        actual: String,
    },
    #[error("unsafe path `{path}` in a recording: {reason}")]
    UnsafePath { path: String, reason: &'static str },
    #[error("workspace walk of {path} stopped: more than {limit} {what}")]
    WalkLimit {
        path: PathBuf,
        what: &'static str,
        limit: usize,
    },
}

/// Everything one scenario's containers did, in the order they ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recording {
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// The scenario's name.
    pub scenario: String,
    pub containers: Vec<RecordedContainer>,
    /// Images the scenario's `build` steps made, in order (compared by the drift check;
    /// the fake builds from the Dockerfile as before).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub builds: Vec<RecordedBuild>,
    /// Commands `exec` steps ran in the containers above, in order (version 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub execs: Vec<RecordedExec>,
    /// Images the scenario's `cst:` steps tested, with their file trees (version 3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<RecordedImage>,
}

/// A command an `exec` step ran in a running container, and what it did.
///
/// Its `call` is matched like a container's, with `image` the container's image,
/// `env` the exec's own variables only (`--env`), `user` and `workdir` the exec's
/// `--user` and `--workdir` (empty when not given), no limits, and `workspace` the
/// container's workspace mount as the command found it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedExec {
    /// The `exec` step, as a JSON pointer.
    pub step: String,
    /// The container it ran in: its position in `containers`, from 1.
    pub container: usize,
    pub call: Call,
    /// Always `ended: exited` (an exec that timed out or could not start is not recorded).
    pub outcome: Outcome,
}

/// An image a `build` step made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedBuild {
    /// The step, as a JSON pointer.
    pub step: String,
    /// `docker image inspect`'s `Config` fields (as in [`Call::image_config`]), without
    /// the run's own label.
    pub image_config: BTreeMap<String, serde_json::Value>,
    /// What the build was given; the fake replays a build whose call matches (version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<BuildCall>,
    /// The image's `Size` in bytes, as `docker image inspect` shows it (version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// What identifies a build: a replay needs all of it to match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildCall {
    /// The Dockerfile's path in the context (`Dockerfile` unless the step names another).
    pub dockerfile: String,
    /// `--build-arg`s by name (a value that held a secret is stored masked).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The build context as the builder got it: every file (the Dockerfile included),
    /// fingerprinted like a workspace (`mount` is `.`).
    pub context: WorkspaceInput,
}

/// Why a recorded build does not match a build now, one line per difference.
pub fn build_differences(recorded: &BuildCall, now: &BuildCall) -> Vec<String> {
    let mut found = Vec::new();
    if recorded.dockerfile != now.dockerfile {
        found.push(format!(
            "Dockerfile differs: recorded `{}`, now `{}`",
            recorded.dockerfile, now.dockerfile
        ));
    }
    if recorded.target != now.target {
        found.push(format!(
            "target differs: recorded {:?}, now {:?}",
            recorded.target, now.target
        ));
    }
    let names: std::collections::BTreeSet<&String> =
        recorded.args.keys().chain(now.args.keys()).collect();
    for name in names {
        match (recorded.args.get(name), now.args.get(name)) {
            (Some(old), Some(new)) if old == new || masked_matches(old, new) => {}
            (old, new) => {
                let shown = |value: Option<&String>| {
                    value.map_or("unset".to_owned(), |value| format!("`{value}`"))
                };
                // A recorded secret is never shown as its value now.
                let now_shown = if old.is_some_and(|old| old.contains(SECRET_PLACEHOLDER)) {
                    new.map(|_| format!("`{SECRET_PLACEHOLDER}`"))
                        .unwrap_or_else(|| "unset".into())
                } else {
                    shown(new)
                };
                found.push(format!(
                    "build arg {name} differs: recorded {}, now {now_shown}",
                    shown(old)
                ));
            }
        }
    }
    found.extend(
        workspace_differences(&recorded.context, &now.context)
            .into_iter()
            .map(|line| line.replacen("workspace", "context", 1)),
    );
    found
}

/// One container: the call that made it, and what happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedContainer {
    /// The scenario step that ran it, as a JSON pointer (`/steps/0`).
    pub step: String,
    pub call: Call,
    pub outcome: Outcome,
    /// A service's Docker health statuses in the order dockproof saw them change
    /// (`starting`, `healthy`…); replayed one per health-check interval (version 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health: Vec<String>,
    /// The HTTP exchanges the scenario's probes made with it, one per distinct request
    /// (the answer last seen), sorted; the fake answers exactly these (version 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<Exchange>,
}

/// One HTTP request a probe made to a recorded service, and the answer it got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exchange {
    /// The container port it was published from.
    pub port: u16,
    /// `GET`, `POST`…
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    /// The request body's sha256, when it had one (the body itself is not kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_sha256: Option<String>,
    pub status: u16,
    /// The answer's headers that matter: `Content-Type` and each one the scenario
    /// checks (lowercase names); the rest (dates, lengths, request IDs) vary.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The answer's body (masked), at most [`MAX_HTTP_BODY`] bytes.
    pub body: Content,
}

/// The most of one recorded HTTP answer's body kept (a probe reads at most this much).
pub const MAX_HTTP_BODY: usize = 1 << 20;

impl Exchange {
    /// Whether this exchange answers `method path` with a request body hashing to `request_sha256`.
    pub fn answers(
        &self,
        port: u16,
        method: &str,
        path: &str,
        request_sha256: Option<&str>,
    ) -> bool {
        self.port == port
            && self.method.eq_ignore_ascii_case(method)
            && self.path == path
            && self.request_sha256.as_deref() == request_sha256
    }
}

/// What identifies a container run: a replay needs all of it to match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Call {
    /// The image reference as the scenario names it.
    pub image: String,
    /// The image's ID on the daemon that recorded it (not compared by a replay: the
    /// fake's IDs are its own; the drift check reports it when it changed).
    pub image_id: String,
    /// The image's configuration as `docker image inspect` shows it (`Config`: Cmd,
    /// Entrypoint, Env, User, WorkingDir, Labels, ExposedPorts, Volumes, Healthcheck).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub image_config: BTreeMap<String, serde_json::Value>,
    /// The process the container ran: entrypoint then command, as the daemon resolved them.
    pub argv: Vec<String>,
    /// The container's whole environment (image env with the scenario's on top), by name.
    pub env: BTreeMap<String, String>,
    /// Names in `env` whose value held a secret: stored masked (`***`), and any value
    /// matches the placeholder when replayed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_env: Vec<String>,
    pub user: String,
    pub workdir: String,
    #[serde(default)]
    pub limits: Limits,
    /// The workspace as it was when the container started.
    pub workspace: Option<WorkspaceInput>,
}

/// Limits and options that change what a container does.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<i64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

/// The staged workspace a container saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceInput {
    /// Where it was mounted in the container.
    pub mount: String,
    /// [`fingerprint`] of its entries.
    pub fingerprint: String,
    /// Its entries, for naming what differs (path → `kind mode size sha256`).
    pub entries: BTreeMap<String, String>,
}

/// How the container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ended {
    /// It exited by itself (replayed at once).
    Exited,
    /// It was still running at its step's timeout and was stopped (replayed as a
    /// container that runs until it is stopped, then ends with the recorded code).
    StoppedAfterTimeout,
    /// A detached container still running when the scenario's steps were done (replayed
    /// as one that runs until it is removed; `exit_code` is not observed and is 0).
    StillRunning,
}

/// What the container did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    pub exit_code: i64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oom_killed: bool,
    pub ended: Ended,
    pub stdout: Stream,
    pub stderr: Stream,
    /// What it changed in the workspace, sorted by path.
    pub workspace: Vec<Change>,
}

/// One output stream: the bytes kept (the tail dockproof's checks read) and its length.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stream {
    /// The whole stream's length in bytes.
    pub total_bytes: u64,
    /// The kept bytes (all of them unless `total_bytes` is larger), masked.
    pub kept: Content,
}

/// Bytes, inline when short text, else a blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Inline { text: String },
    Blob { sha256: String, size: u64 },
}

impl Content {
    /// Inline text when short UTF-8, else a blob put into `blobs`.
    pub fn of(bytes: &[u8], blobs: &mut Blobs) -> Content {
        match std::str::from_utf8(bytes) {
            Ok(text) if bytes.len() <= INLINE_MAX => Content::Inline {
                text: text.to_owned(),
            },
            _ => {
                let sha256 = sha256_hex(bytes);
                blobs.0.insert(sha256.clone(), bytes.to_vec());
                Content::Blob {
                    sha256,
                    size: bytes.len() as u64,
                }
            }
        }
    }

    /// The bytes, reading a blob from the recording directory `dir`.
    pub fn bytes(&self, dir: &Path) -> Result<Vec<u8>, RecordingError> {
        match self {
            Content::Inline { text } => Ok(text.as_bytes().to_vec()),
            Content::Blob { sha256, size } => read_blob(dir, sha256, *size),
        }
    }
}

/// Blobs gathered while a recording is made, by sha256.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Blobs(pub BTreeMap<String, Vec<u8>>);

/// A workspace change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    pub path: String,
    pub change: ChangeKind,
    pub kind: EntryKind,
    /// Permission bits in octal (`0644`); absent for a removal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// A file's bytes (masked when `masked`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// A symlink's target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The file held a secret: `content` is the masked bytes, `sha256` and `size` theirs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub masked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Added,
    Changed,
    Removed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    /// A FIFO, device or socket: fingerprinted by name only, never replayed.
    Other,
}

/// One workspace entry as seen by a walk (the root itself excluded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Relative path, `/`-separated.
    pub path: String,
    pub kind: EntryKind,
    /// Permission bits (with setuid/setgid/sticky).
    pub mode: u32,
    /// A file's size (0 otherwise).
    pub size: u64,
    /// A file's sha256, a symlink's target, else empty.
    pub digest: String,
}

impl Entry {
    /// The entry as a workspace fingerprint sees it: a directory's mode is left out (a
    /// workspace copied into a volume gets the daemon's umask on its directories, and a
    /// directory's mode does not change what a job reads).
    fn fingerprinted(&self) -> Entry {
        let mut entry = self.clone();
        if entry.kind == EntryKind::Dir {
            entry.mode = 0;
        }
        entry
    }

    fn summary(&self) -> String {
        let entry = self.fingerprinted();
        format!(
            "{:?} {:04o} {} {}",
            entry.kind, entry.mode, entry.size, entry.digest
        )
        .to_lowercase()
    }
}

/// `sha256:` + the hash of the entries sorted by path, one JSON line each (directories
/// without their mode).
pub fn fingerprint(entries: &[Entry]) -> String {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut hasher = Sha256::new();
    for entry in sorted {
        let line = serde_json::to_string(&entry.fingerprinted()).unwrap_or_default();
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// The [`WorkspaceInput`] for entries mounted at `mount`.
pub fn workspace_input(mount: &str, entries: &[Entry]) -> WorkspaceInput {
    WorkspaceInput {
        mount: mount.to_owned(),
        fingerprint: fingerprint(entries),
        entries: entries
            .iter()
            .map(|entry| (entry.path.clone(), entry.summary()))
            .collect(),
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `map_err` for an I/O error while doing `action` on `path`.
fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RecordingError {
    let path = path.to_path_buf();
    move |source| RecordingError::Io {
        action,
        path,
        source,
    }
}

/// Walks a directory without following symlinks (fake-docker's view of a mount source;
/// dockproof walks its workspace through its own directory handle), bounded.
pub fn walk(root: &Path) -> Result<Vec<Entry>, RecordingError> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let mut entries = Vec::new();
    let mut stack: Vec<(PathBuf, String, usize)> = vec![(root.to_path_buf(), String::new(), 0)];
    while let Some((dir, prefix, depth)) = stack.pop() {
        for item in std::fs::read_dir(&dir).map_err(io("list", &dir))? {
            let item = item.map_err(io("list", &dir))?;
            let name = item.file_name().to_string_lossy().into_owned();
            let relative = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let path = item.path();
            let metadata = std::fs::symlink_metadata(&path).map_err(io("inspect", &path))?;
            let mode = metadata.permissions().mode() & 0o7777;
            let file_type = metadata.file_type();
            let (kind, size, digest) = if file_type.is_dir() {
                if depth + 1 >= MAX_WALK_DEPTH {
                    return Err(RecordingError::WalkLimit {
                        path: root.to_path_buf(),
                        what: "levels",
                        limit: MAX_WALK_DEPTH,
                    });
                }
                stack.push((path.clone(), relative.clone(), depth + 1));
                (EntryKind::Dir, 0, String::new())
            } else if file_type.is_symlink() {
                let target = std::fs::read_link(&path).map_err(io("read", &path))?;
                (EntryKind::Symlink, 0, target.to_string_lossy().into_owned())
            } else if file_type.is_file() {
                let mut file = std::fs::File::open(&path).map_err(io("open", &path))?;
                let mut hasher = Sha256::new();
                let mut buffer = vec![0u8; 64 << 10];
                let mut size = 0u64;
                loop {
                    let read = file.read(&mut buffer).map_err(io("read", &path))?;
                    if read == 0 {
                        break;
                    }
                    size += read as u64;
                    hasher.update(&buffer[..read]);
                }
                (EntryKind::File, size, hex::encode(hasher.finalize()))
            } else {
                let _ = file_type.is_fifo();
                (EntryKind::Other, 0, String::new())
            };
            entries.push(Entry {
                path: relative,
                kind,
                mode,
                size,
                digest,
            });
            if entries.len() > MAX_WALK_ENTRIES {
                return Err(RecordingError::WalkLimit {
                    path: root.to_path_buf(),
                    what: "entries",
                    limit: MAX_WALK_ENTRIES,
                });
            }
        }
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(entries)
}

/// What changed from `before` to `after`, sorted by path; `read` gives a new file's
/// bytes (already masked) and whether masking changed them.
pub fn diff(
    before: &[Entry],
    after: &[Entry],
    blobs: &mut Blobs,
    mut read: impl FnMut(&str) -> Option<(Vec<u8>, bool)>,
) -> Vec<Change> {
    let before: BTreeMap<&str, &Entry> = before.iter().map(|e| (e.path.as_str(), e)).collect();
    let after_map: BTreeMap<&str, &Entry> = after.iter().map(|e| (e.path.as_str(), e)).collect();
    let mut changes = Vec::new();
    for (path, entry) in &after_map {
        let change = match before.get(path) {
            None => ChangeKind::Added,
            Some(old) if old != entry => ChangeKind::Changed,
            Some(_) => continue,
        };
        let mut recorded = Change {
            path: (*path).to_owned(),
            change,
            kind: entry.kind,
            mode: Some(format!("{:04o}", entry.mode)),
            size: None,
            sha256: None,
            content: None,
            target: None,
            masked: false,
        };
        match entry.kind {
            EntryKind::File => {
                if let Some((bytes, masked)) = read(path) {
                    recorded.size = Some(bytes.len() as u64);
                    recorded.sha256 = Some(sha256_hex(&bytes));
                    recorded.masked = masked;
                    recorded.content = Some(Content::of(&bytes, blobs));
                } else {
                    recorded.size = Some(entry.size);
                    recorded.sha256 = Some(entry.digest.clone());
                }
            }
            EntryKind::Symlink => recorded.target = Some(entry.digest.clone()),
            EntryKind::Dir | EntryKind::Other => {}
        }
        changes.push(recorded);
    }
    for (path, entry) in &before {
        if !after_map.contains_key(path) {
            changes.push(Change {
                path: (*path).to_owned(),
                change: ChangeKind::Removed,
                kind: entry.kind,
                mode: None,
                size: None,
                sha256: None,
                content: None,
                target: None,
                masked: false,
            });
        }
    }
    changes.sort_by(|a, b| a.path.cmp(&b.path));
    changes
}

/// Why a recorded container does not match a call, one line per difference
/// (`env JOB_ID differs: recorded `a`, now `b``); empty when it matches.
pub fn differences(recorded: &Call, now: &Call) -> Vec<String> {
    let mut found = Vec::new();
    if recorded.image != now.image {
        found.push(format!(
            "image differs: recorded `{}`, now `{}`",
            recorded.image, now.image
        ));
    }
    // An argument that held a secret is stored masked: its `***` matches any text.
    let same_argv = recorded.argv.len() == now.argv.len()
        && recorded
            .argv
            .iter()
            .zip(&now.argv)
            .all(|(old, new)| old == new || masked_matches(old, new));
    if !same_argv {
        found.push(format!(
            "command differs: recorded `{}`, now `{}`",
            quote_argv(&recorded.argv),
            quote_argv(&now.argv)
        ));
    }
    let names: std::collections::BTreeSet<&String> =
        recorded.env.keys().chain(now.env.keys()).collect();
    for name in names {
        match (recorded.env.get(name), now.env.get(name)) {
            (Some(old), Some(new)) => {
                let secret = recorded.secret_env.contains(name);
                let same = if secret {
                    masked_matches(old, new)
                } else {
                    old == new
                };
                if !same {
                    // A secret's value is never shown, only that it differs.
                    let shown = if secret || now.secret_env.contains(name) {
                        SECRET_PLACEHOLDER
                    } else {
                        new
                    };
                    found.push(format!(
                        "env {name} differs: recorded `{old}`, now `{shown}`"
                    ));
                }
            }
            (Some(old), None) => {
                found.push(format!("env {name} differs: recorded `{old}`, now unset"))
            }
            (None, Some(new)) => {
                let shown = if now.secret_env.contains(name) {
                    SECRET_PLACEHOLDER
                } else {
                    new
                };
                found.push(format!("env {name} differs: recorded unset, now `{shown}`"))
            }
            (None, None) => {}
        }
    }
    if recorded.user != now.user {
        found.push(format!(
            "user differs: recorded `{}`, now `{}`",
            recorded.user, now.user
        ));
    }
    if recorded.workdir != now.workdir {
        found.push(format!(
            "workdir differs: recorded `{}`, now `{}`",
            recorded.workdir, now.workdir
        ));
    }
    if recorded.limits != now.limits {
        found.push(format!(
            "limits differ: recorded {}, now {}",
            serde_json::to_string(&recorded.limits).unwrap_or_default(),
            serde_json::to_string(&now.limits).unwrap_or_default()
        ));
    }
    match (&recorded.workspace, &now.workspace) {
        (Some(old), Some(new)) if old.mount != new.mount => found.push(format!(
            "workspace mount differs: recorded `{}`, now `{}`",
            old.mount, new.mount
        )),
        (Some(old), Some(new)) if old.fingerprint != new.fingerprint => {
            found.extend(workspace_differences(old, new));
        }
        (Some(_), None) => found.push("workspace differs: recorded mounted, now none".into()),
        (None, Some(_)) => found.push("workspace differs: recorded none, now mounted".into()),
        _ => {}
    }
    found
}

/// Each workspace file that differs (`workspace file PATH differs: …`), or the
/// fingerprints when no single file is named; empty when the fingerprints agree.
fn workspace_differences(old: &WorkspaceInput, new: &WorkspaceInput) -> Vec<String> {
    if old.fingerprint == new.fingerprint {
        return Vec::new();
    }
    let mut named = Vec::new();
    let paths: std::collections::BTreeSet<&String> =
        old.entries.keys().chain(new.entries.keys()).collect();
    for path in paths {
        match (old.entries.get(path), new.entries.get(path)) {
            (Some(a), Some(b)) if a != b => named.push(format!(
                "workspace file {path} differs: recorded `{a}`, now `{b}`"
            )),
            (Some(_), None) => named.push(format!(
                "workspace file {path} differs: recorded, now missing"
            )),
            (None, Some(_)) => named.push(format!(
                "workspace file {path} differs: not recorded, now present"
            )),
            _ => {}
        }
    }
    if named.is_empty() {
        named.push(format!(
            "workspace differs: recorded fingerprint {}, now {}",
            old.fingerprint, new.fingerprint
        ));
    }
    named
}

/// Whether `value` fits `pattern`, where each `***` in the pattern stands for any text.
pub fn masked_matches(pattern: &str, value: &str) -> bool {
    let parts: Vec<&str> = pattern.split(SECRET_PLACEHOLDER).collect();
    if parts.len() == 1 {
        return pattern == value;
    }
    let (first, rest) = (parts[0], &parts[1..]);
    let Some(mut remaining) = value.strip_prefix(first) else {
        return false;
    };
    let last = rest.len() - 1;
    for (index, part) in rest.iter().enumerate() {
        if index == last {
            return remaining.ends_with(part);
        }
        match remaining.find(part) {
            Some(at) => remaining = &remaining[at + part.len()..],
            None => return false,
        }
    }
    true
}

fn quote_argv(argv: &[String]) -> String {
    serde_json::to_string(argv).unwrap_or_default()
}

impl Recording {
    /// Read `DIR/recording.json`, bounded, checking the version.
    pub fn load(dir: &Path) -> Result<Recording, RecordingError> {
        let path = dir.join(FILE_NAME);
        let bytes = read_bounded(&path, MAX_FILE_BYTES, "the recording file")?;
        // The version first, so that a newer format is named as such, not as a parse error.
        if let Ok(head) = serde_json::from_slice::<VersionOnly>(&bytes)
            && !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&head.version)
        {
            return Err(RecordingError::Version {
                path,
                found: head.version,
            });
        }
        serde_json::from_slice(&bytes).map_err(|error| RecordingError::Parse {
            line: error.line(),
            column: error.column(),
            message: error.to_string(),
            path,
        })
    }

    /// The file's bytes: pretty JSON with a final newline (stable, diff-friendly).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text.into_bytes()
    }

    /// Write `DIR/recording.json` and the blobs it names (only when their bytes
    /// changed, so an unchanged re-recording touches nothing), removing blobs no longer
    /// named.
    pub fn save(&self, dir: &Path, blobs: &Blobs) -> Result<(), RecordingError> {
        let total: u64 = blobs.0.values().map(|bytes| bytes.len() as u64).sum();
        if total > MAX_TOTAL_BLOB_BYTES {
            return Err(RecordingError::TooLarge {
                path: dir.to_path_buf(),
                what: "the recording's blobs",
                size: total,
                limit: MAX_TOTAL_BLOB_BYTES,
            });
        }
        let blob_dir = dir.join(BLOB_DIR);
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        if !blobs.0.is_empty() {
            std::fs::create_dir_all(&blob_dir).map_err(io("create", &blob_dir))?;
        }
        for (sha256, bytes) in &blobs.0 {
            let path = blob_dir.join(sha256);
            if std::fs::read(&path).is_ok_and(|old| old == *bytes) {
                continue;
            }
            write_atomic(&path, bytes)?;
        }
        if let Ok(listing) = std::fs::read_dir(&blob_dir) {
            for item in listing.flatten() {
                let name = item.file_name().to_string_lossy().into_owned();
                if !blobs.0.contains_key(&name) {
                    let _ = std::fs::remove_file(item.path());
                }
            }
        }
        let path = dir.join(FILE_NAME);
        let bytes = self.to_bytes();
        if std::fs::read(&path).is_ok_and(|old| old == bytes) {
            return Ok(());
        }
        write_atomic(&path, &bytes)
    }
}

#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RecordingError> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, bytes).map_err(io("write", &temporary))?;
    std::fs::rename(&temporary, path).map_err(io("write", path))
}

fn read_bounded(path: &Path, limit: u64, what: &'static str) -> Result<Vec<u8>, RecordingError> {
    let file = std::fs::File::open(path).map_err(io("open", path))?;
    let metadata = file.metadata().map_err(io("inspect", path))?;
    if !metadata.is_file() {
        return Err(RecordingError::Io {
            action: "read",
            path: path.to_path_buf(),
            source: std::io::Error::other("not a regular file"),
        });
    }
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(io("read", path))?;
    if bytes.len() as u64 > limit {
        return Err(RecordingError::TooLarge {
            path: path.to_path_buf(),
            what,
            size: metadata.len(),
            limit,
        });
    }
    Ok(bytes)
}

/// A blob's bytes, checked against its name and recorded size.
pub fn read_blob(dir: &Path, sha256: &str, size: u64) -> Result<Vec<u8>, RecordingError> {
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(RecordingError::UnsafePath {
            path: sha256.to_owned(),
            reason: "a blob is named by its 64-hex sha256",
        });
    }
    let path = dir.join(BLOB_DIR).join(sha256);
    let bytes = read_bounded(&path, size.min(MAX_BLOB_BYTES), "a blob")?;
    let actual = sha256_hex(&bytes);
    if actual != sha256 {
        return Err(RecordingError::BadBlob {
            path,
            sha256: sha256.to_owned(),
            actual,
        });
    }
    Ok(bytes)
}

/// Refuses a recorded workspace path that is absolute, empty or climbs with `..`.
pub fn check_relative(path: &str) -> Result<(), RecordingError> {
    let refuse = |reason| RecordingError::UnsafePath {
        path: path.to_owned(),
        reason,
    };
    if path.is_empty() || path.starts_with('/') {
        return Err(refuse("it must be relative to the workspace"));
    }
    if path
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(refuse("it must be a plain path without `.`, `..` or `//`"));
    }
    if path.contains('\0') {
        return Err(refuse("it holds a NUL byte"));
    }
    Ok(())
}

/// Applies recorded workspace changes beneath `root` (fake-docker's replay): removals,
/// then directories, files and symlinks; never through a symlink.
pub fn apply(root: &Path, dir: &Path, changes: &[Change]) -> Result<(), RecordingError> {
    use std::os::unix::fs::PermissionsExt;
    for change in changes {
        check_relative(&change.path)?;
        // No parent may be a symlink: the path must stay beneath the root.
        let mut parent = root.to_path_buf();
        let parts: Vec<&str> = change.path.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            parent.push(part);
            if std::fs::symlink_metadata(&parent).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(RecordingError::UnsafePath {
                    path: change.path.clone(),
                    reason: "a parent directory is a symlink",
                });
            }
        }
    }
    let mut removals: Vec<&Change> = changes
        .iter()
        .filter(|change| change.change == ChangeKind::Removed)
        .collect();
    removals.sort_by(|a, b| b.path.cmp(&a.path));
    for change in removals {
        let path = root.join(&change.path);
        let result = if change.kind == EntryKind::Dir {
            std::fs::remove_dir(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match result {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(io("remove", &path)(error)),
        }
    }
    for change in changes {
        if change.change == ChangeKind::Removed {
            continue;
        }
        let path = root.join(&change.path);
        let mode = change
            .mode
            .as_deref()
            .and_then(|mode| u32::from_str_radix(mode, 8).ok());
        match change.kind {
            EntryKind::Dir => {
                std::fs::create_dir_all(&path).map_err(io("create", &path))?;
            }
            EntryKind::File => {
                let bytes = match &change.content {
                    Some(content) => content.bytes(dir)?,
                    None => continue,
                };
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(io("create", parent))?;
                }
                if std::fs::symlink_metadata(&path).is_ok_and(|m| !m.is_file()) {
                    let _ = std::fs::remove_file(&path);
                }
                std::fs::write(&path, &bytes).map_err(io("write", &path))?;
            }
            EntryKind::Symlink => {
                let _ = std::fs::remove_file(&path);
                if let Some(target) = &change.target {
                    std::os::unix::fs::symlink(target, &path).map_err(io("link", &path))?;
                }
                continue;
            }
            EntryKind::Other => continue,
        }
        if let Some(mode) = mode {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .map_err(io("chmod", &path))?;
        }
    }
    Ok(())
}

/// What differs between a recording and a fresh run of the same scenario (the drift
/// check): per container, the call and the outcome; empty when nothing drifted.
pub fn drift(
    recorded: &Recording,
    recorded_dir: &Path,
    fresh: &Recording,
    fresh_blobs: &Blobs,
) -> Vec<String> {
    let mut found = Vec::new();
    count_difference(
        &mut found,
        "built",
        "image(s)",
        fresh.builds.len(),
        recorded.builds.len(),
    );
    for (index, (old, new)) in recorded.builds.iter().zip(&fresh.builds).enumerate() {
        let at = format!("build {} ({})", index + 1, new.step);
        if let (Some(old_call), Some(new_call)) = (&old.call, &new.call) {
            found.extend(at_each(&at, build_differences(old_call, new_call)));
        }
        found.extend(at_each(
            &at,
            config_differences(&old.image_config, &new.image_config),
        ));
    }
    count_difference(
        &mut found,
        "ran",
        "container(s)",
        fresh.containers.len(),
        recorded.containers.len(),
    );
    for (index, (old, new)) in recorded
        .containers
        .iter()
        .zip(&fresh.containers)
        .enumerate()
    {
        let at = format!("container {} ({})", index + 1, new.step);
        found.extend(at_each(&at, differences(&old.call, &new.call)));
        found.extend(at_each(
            &at,
            config_differences(&old.call.image_config, &new.call.image_config),
        ));
        outcome_differences(
            &at,
            &old.outcome,
            &new.outcome,
            recorded_dir,
            fresh_blobs,
            &mut found,
        );
        if old.health != new.health {
            found.push(format!(
                "{at}: health timeline differs: recorded {:?}, now {:?}",
                old.health, new.health
            ));
        }
        exchange_differences(&at, old, new, recorded_dir, fresh_blobs, &mut found);
    }
    let images: std::collections::BTreeSet<&str> = recorded
        .images
        .iter()
        .chain(&fresh.images)
        .map(|image| image.image.as_str())
        .collect();
    for reference in images {
        let at = format!("image {reference}");
        let find = |list: &'_ [RecordedImage]| -> Option<RecordedImage> {
            list.iter().find(|image| image.image == reference).cloned()
        };
        match (find(&recorded.images), find(&fresh.images)) {
            (Some(old), Some(new)) => {
                found.extend(at_each(
                    &at,
                    config_differences(&old.image_config, &new.image_config),
                ));
                found.extend(tree_differences(&at, &old, &new));
                for entry in &old.tree {
                    let Some(fresh_entry) = new.tree.iter().find(|e| e.path == entry.path) else {
                        continue;
                    };
                    let (Some(a), Some(b)) = (&entry.content, &fresh_entry.content) else {
                        continue;
                    };
                    let old_bytes = a.bytes(recorded_dir).ok();
                    let new_bytes = fresh_bytes(b, fresh_blobs);
                    if old_bytes != new_bytes {
                        found.push(format!(
                            "{at}: file {} content differs: recorded {}, now {}",
                            entry.path,
                            shown(
                                old_bytes.as_deref(),
                                old_bytes.as_ref().map_or(0, Vec::len) as u64
                            ),
                            shown(
                                new_bytes.as_deref(),
                                new_bytes.as_ref().map_or(0, Vec::len) as u64
                            )
                        ));
                    }
                }
            }
            (Some(_), None) => found.push(format!("{at}: recorded, not tested now")),
            (None, Some(_)) => found.push(format!("{at}: tested now, not recorded")),
            (None, None) => {}
        }
    }
    count_difference(
        &mut found,
        "ran",
        "exec(s)",
        fresh.execs.len(),
        recorded.execs.len(),
    );
    for (index, (old, new)) in recorded.execs.iter().zip(&fresh.execs).enumerate() {
        let at = format!("exec {} ({})", index + 1, new.step);
        if old.container != new.container {
            found.push(format!(
                "{at}: container differs: recorded container {}, now {}",
                old.container, new.container
            ));
        }
        found.extend(at_each(&at, differences(&old.call, &new.call)));
        outcome_differences(
            &at,
            &old.outcome,
            &new.outcome,
            recorded_dir,
            fresh_blobs,
            &mut found,
        );
    }
    found
}

/// `differences`, each said of `at` (`at: difference`).
fn at_each(at: &str, differences: Vec<String>) -> impl Iterator<Item = String> + '_ {
    differences
        .into_iter()
        .map(move |difference| format!("{at}: {difference}"))
}

/// "the scenario `did` N `what`, the recording has M" when the counts differ.
fn count_difference(found: &mut Vec<String>, did: &str, what: &str, fresh: usize, recorded: usize) {
    if fresh != recorded {
        found.push(format!(
            "the scenario {did} {fresh} {what}, the recording has {recorded}"
        ));
    }
}

/// Fresh content's bytes: inline, or among the blobs gathered by the fresh run.
fn fresh_bytes(content: &Content, fresh_blobs: &Blobs) -> Option<Vec<u8>> {
    match content {
        Content::Inline { text } => Some(text.as_bytes().to_vec()),
        Content::Blob { sha256, .. } => fresh_blobs.0.get(sha256).cloned(),
    }
}

/// What differs between a service's recorded HTTP exchanges and fresh ones.
fn exchange_differences(
    at: &str,
    old: &RecordedContainer,
    new: &RecordedContainer,
    recorded_dir: &Path,
    fresh_blobs: &Blobs,
    found: &mut Vec<String>,
) {
    let key = |e: &Exchange| {
        (
            e.port,
            e.method.clone(),
            e.path.clone(),
            e.request_sha256.clone(),
        )
    };
    let old_map: BTreeMap<_, &Exchange> = old.http.iter().map(|e| (key(e), e)).collect();
    let new_map: BTreeMap<_, &Exchange> = new.http.iter().map(|e| (key(e), e)).collect();
    let keys: std::collections::BTreeSet<_> = old_map.keys().chain(new_map.keys()).collect();
    for request in keys {
        let name = format!(
            "{at}: HTTP {} {} (port {})",
            request.1, request.2, request.0
        );
        match (old_map.get(request), new_map.get(request)) {
            (Some(a), Some(b)) => {
                if a.status != b.status {
                    found.push(format!(
                        "{name}: status differs: recorded {}, now {}",
                        a.status, b.status
                    ));
                }
                if a.headers != b.headers {
                    found.push(format!(
                        "{name}: headers differ: recorded {:?}, now {:?}",
                        a.headers, b.headers
                    ));
                }
                let old_bytes = a.body.bytes(recorded_dir).ok();
                let new_bytes = fresh_bytes(&b.body, fresh_blobs);
                if old_bytes != new_bytes {
                    let length =
                        |bytes: &Option<Vec<u8>>| bytes.as_ref().map_or(0, Vec::len) as u64;
                    found.push(format!(
                        "{name}: body differs: recorded {}, now {}",
                        shown(old_bytes.as_deref(), length(&old_bytes)),
                        shown(new_bytes.as_deref(), length(&new_bytes))
                    ));
                }
            }
            (Some(_), None) => found.push(format!("{name}: recorded, not made now")),
            (None, Some(_)) => found.push(format!("{name}: made now, not recorded")),
            (None, None) => {}
        }
    }
}

/// What differs between a recorded outcome and a fresh one, each prefixed with `at`.
fn outcome_differences(
    at: &str,
    o: &Outcome,
    n: &Outcome,
    recorded_dir: &Path,
    fresh_blobs: &Blobs,
    found: &mut Vec<String>,
) {
    if o.exit_code != n.exit_code {
        found.push(format!(
            "{at}: exit code differs: recorded {}, now {}",
            o.exit_code, n.exit_code
        ));
    }
    if o.oom_killed != n.oom_killed {
        found.push(format!(
            "{at}: OOM kill differs: recorded {}, now {}",
            o.oom_killed, n.oom_killed
        ));
    }
    if o.ended != n.ended {
        found.push(format!(
            "{at}: end differs: recorded {:?}, now {:?}",
            o.ended, n.ended
        ));
    }
    for (name, a, b) in [
        ("stdout", &o.stdout, &n.stdout),
        ("stderr", &o.stderr, &n.stderr),
    ] {
        let old_bytes = a.kept.bytes(recorded_dir).ok();
        let new_bytes = fresh_bytes(&b.kept, fresh_blobs);
        if a.total_bytes != b.total_bytes || old_bytes != new_bytes {
            found.push(format!(
                "{at}: {name} differs: recorded {}, now {}",
                shown(old_bytes.as_deref(), a.total_bytes),
                shown(new_bytes.as_deref(), b.total_bytes)
            ));
        }
    }
    let old_changes: BTreeMap<&str, &Change> =
        o.workspace.iter().map(|c| (c.path.as_str(), c)).collect();
    let new_changes: BTreeMap<&str, &Change> =
        n.workspace.iter().map(|c| (c.path.as_str(), c)).collect();
    let paths: std::collections::BTreeSet<&&str> =
        old_changes.keys().chain(new_changes.keys()).collect();
    for path in paths {
        let (a, b) = (old_changes.get(*path), new_changes.get(*path));
        let same = match (a, b) {
            (Some(a), Some(b)) => {
                a.change == b.change
                    && a.kind == b.kind
                    && a.mode == b.mode
                    && a.sha256 == b.sha256
                    && a.target == b.target
            }
            _ => false,
        };
        if !same {
            found.push(format!(
                "{at}: workspace result {path} differs: recorded {}, now {}",
                describe_change(a.copied()),
                describe_change(b.copied())
            ));
        }
    }
}

/// `image config KEY differs: recorded A, now B` for each field that differs.
fn config_differences(
    old: &BTreeMap<String, serde_json::Value>,
    new: &BTreeMap<String, serde_json::Value>,
) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter(|key| old.get(*key) != new.get(*key))
        .map(|key| {
            format!(
                "image config {key} differs: recorded {}, now {}",
                old.get(key).map_or("unset".into(), |v| v.to_string()),
                new.get(key).map_or("unset".into(), |v| v.to_string())
            )
        })
        .collect()
}

fn shown(bytes: Option<&[u8]>, total: u64) -> String {
    match bytes {
        Some(bytes) => {
            let text = String::from_utf8_lossy(bytes);
            let mut short: String = text.chars().take(120).collect();
            if short.len() < text.len() {
                short.push('…');
            }
            format!(
                "{} ({total} bytes)",
                serde_json::to_string(&short).unwrap_or_default()
            )
        }
        None => format!("unreadable ({total} bytes)"),
    }
}

fn describe_change(change: Option<&Change>) -> String {
    match change {
        None => "no change".into(),
        Some(change) => format!(
            "{:?} {:?}{}{}",
            change.change,
            change.kind,
            change
                .mode
                .as_ref()
                .map_or(String::new(), |mode| format!(" mode {mode}")),
            change.sha256.as_ref().map_or(String::new(), |sha| format!(
                " sha256 {}",
                &sha[..sha.len().min(12)]
            ))
        )
        .to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file `path` added with the content `x` (mode 0644), as a recording holds it.
    fn added_file_x(path: &str) -> Change {
        Change {
            path: path.into(),
            change: ChangeKind::Added,
            kind: EntryKind::File,
            mode: Some("0644".into()),
            size: Some(1),
            sha256: None,
            content: Some(Content::Inline { text: "x".into() }),
            target: None,
            masked: false,
        }
    }

    fn call() -> Call {
        Call {
            image: "dockproof/job-runner:1".into(),
            image_id: "sha256:aa".into(),
            image_config: BTreeMap::new(),
            argv: vec!["sh".into(), "-c".into(), "echo hi".into()],
            env: BTreeMap::from([
                ("JOB_ID".into(), "a".into()),
                ("TOKEN".into(), "Bearer ***".into()),
            ]),
            secret_env: vec!["TOKEN".into()],
            user: String::new(),
            workdir: "/workspace".into(),
            limits: Limits::default(),
            workspace: None,
        }
    }

    #[test]
    fn a_differing_env_value_is_named_with_both_values() {
        let mut now = call();
        now.env.insert("JOB_ID".into(), "b".into());
        now.env.insert("TOKEN".into(), "Bearer s3cret-value".into());
        assert_eq!(
            differences(&call(), &now),
            vec!["env JOB_ID differs: recorded `a`, now `b`".to_owned()]
        );
    }

    #[test]
    fn a_secret_differing_outside_its_placeholder_is_named_without_its_value() {
        let mut now = call();
        now.env.insert("TOKEN".into(), "Basic s3cret-value".into());
        let found = differences(&call(), &now);
        assert_eq!(
            found,
            vec!["env TOKEN differs: recorded `Bearer ***`, now `***`".to_owned()]
        );
    }

    #[test]
    fn a_masked_argument_matches_the_secret_it_stood_for() {
        let mut old = call();
        old.argv = vec!["login".into(), "--token=***".into()];
        let mut now = call();
        now.argv = vec!["login".into(), "--token=s3cret".into()];
        assert!(differences(&old, &now).is_empty());
        now.argv = vec!["logout".into(), "--token=s3cret".into()];
        assert_eq!(differences(&old, &now).len(), 1);
    }

    #[test]
    fn masked_patterns_match_any_text_in_place_of_the_placeholder() {
        assert!(masked_matches("***", "anything"));
        assert!(masked_matches("a***b***c", "a-x-b-y-c"));
        assert!(!masked_matches("a***b", "a-x-c"));
        assert!(!masked_matches("plain", "plainer"));
    }

    #[test]
    fn a_changed_workspace_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("in.csv"), "a,b\n").unwrap();
        let before = walk(dir.path()).unwrap();
        std::fs::write(dir.path().join("in.csv"), "a,c\n").unwrap();
        let after = walk(dir.path()).unwrap();
        let mut old = call();
        old.workspace = Some(workspace_input("/workspace", &before));
        let mut now = call();
        now.workspace = Some(workspace_input("/workspace", &after));
        let found = differences(&old, &now);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("workspace file in.csv differs"),
            "{found:?}"
        );
    }

    #[test]
    fn diff_then_apply_reproduces_the_after_state() {
        let dir = tempfile::tempdir().unwrap();
        let recording = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("gone.txt"), "x").unwrap();
        std::fs::write(dir.path().join("same.txt"), "s").unwrap();
        let before = walk(dir.path()).unwrap();
        let replay = tempfile::tempdir().unwrap();
        std::fs::write(replay.path().join("gone.txt"), "x").unwrap();
        std::fs::write(replay.path().join("same.txt"), "s").unwrap();
        std::fs::remove_file(dir.path().join("gone.txt")).unwrap();
        std::fs::create_dir(dir.path().join("out")).unwrap();
        std::fs::write(dir.path().join("out/big.bin"), vec![7u8; 10_000]).unwrap();
        std::fs::write(dir.path().join("out/small.txt"), "hello\n").unwrap();
        let after = walk(dir.path()).unwrap();
        let mut blobs = Blobs::default();
        let changes = diff(&before, &after, &mut blobs, |path| {
            std::fs::read(dir.path().join(path))
                .ok()
                .map(|b| (b, false))
        });
        assert_eq!(blobs.0.len(), 1);
        let saved = Recording {
            version: FORMAT_VERSION,
            scenario: "s".into(),
            containers: Vec::new(),
            builds: Vec::new(),
            execs: Vec::new(),
            images: Vec::new(),
        };
        saved.save(recording.path(), &blobs).unwrap();
        apply(replay.path(), recording.path(), &changes).unwrap();
        // Directory modes follow the umask on both sides; compare files and kinds.
        assert_eq!(
            fingerprint(&walk(replay.path()).unwrap()),
            fingerprint(&after)
        );
    }

    #[test]
    fn apply_refuses_paths_that_climb_out() {
        let dir = tempfile::tempdir().unwrap();
        let change = added_file_x("../escape");
        assert!(matches!(
            apply(dir.path(), dir.path(), &[change]),
            Err(RecordingError::UnsafePath { .. })
        ));
    }

    #[test]
    fn a_newer_version_is_named_and_garbage_is_located() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE_NAME),
            r#"{"version": 9, "scenario": "s", "containers": []}"#,
        )
        .unwrap();
        let error = Recording::load(dir.path()).unwrap_err().to_string();
        assert!(error.contains("version 9 is not supported"), "{error}");
        std::fs::write(
            dir.path().join(FILE_NAME),
            "{\n  \"version\": 1,\n  \"nope\": 2\n}",
        )
        .unwrap();
        let error = Recording::load(dir.path()).unwrap_err().to_string();
        assert!(error.contains(":3:"), "{error}");
    }

    /// Untrusted recording files: thousands of mutations of a valid one (bytes flipped,
    /// cut, duplicated), deep nesting and an oversized file are refused or read, never a
    /// panic, within the size bound.
    #[test]
    fn mutated_and_hostile_recording_files_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        let mut container_call = call();
        container_call.workspace = Some(workspace_input(
            "/workspace",
            &[Entry {
                path: "in.csv".into(),
                kind: EntryKind::File,
                mode: 0o644,
                size: 3,
                digest: "ab".repeat(32),
            }],
        ));
        let valid = Recording {
            version: FORMAT_VERSION,
            scenario: "s".into(),
            containers: vec![RecordedContainer {
                step: "/steps/0".into(),
                call: container_call,
                health: Vec::new(),
                http: Vec::new(),
                outcome: Outcome {
                    exit_code: 0,
                    oom_killed: false,
                    ended: Ended::Exited,
                    stdout: Stream {
                        total_bytes: 3,
                        kept: Content::Inline {
                            text: "hi\n".into(),
                        },
                    },
                    stderr: Stream {
                        total_bytes: 0,
                        kept: Content::Blob {
                            sha256: "cd".repeat(32),
                            size: 9,
                        },
                    },
                    workspace: Vec::new(),
                },
            }],
            builds: Vec::new(),
            execs: Vec::new(),
            images: Vec::new(),
        }
        .to_bytes();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let path = dir.path().join(FILE_NAME);
        let mut loaded = 0;
        for _ in 0..3000 {
            let mut bytes = valid.clone();
            for _ in 0..=(next() % 4) {
                let at = (next() as usize) % bytes.len().max(1);
                match next() % 3 {
                    0 => bytes[at] = next() as u8,
                    1 => bytes.truncate(at),
                    _ => {
                        let end = (at + (next() as usize % 64)).min(bytes.len());
                        let copy = bytes[at..end].to_vec();
                        bytes.splice(at..at, copy);
                    }
                }
                if bytes.is_empty() {
                    break;
                }
            }
            std::fs::write(&path, &bytes).unwrap();
            if Recording::load(dir.path()).is_ok() {
                loaded += 1;
            }
        }
        assert!(loaded < 3000, "no mutation was refused");
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        std::fs::write(&path, deep).unwrap();
        assert!(Recording::load(dir.path()).is_err());
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(MAX_FILE_BYTES + 1).unwrap();
        assert!(matches!(
            Recording::load(dir.path()),
            Err(RecordingError::TooLarge { .. })
        ));
    }

    #[test]
    fn apply_never_writes_through_a_symlinked_parent() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("out")).unwrap();
        let change = added_file_x("out/planted.txt");
        assert!(matches!(
            apply(root.path(), root.path(), &[change]),
            Err(RecordingError::UnsafePath { .. })
        ));
        assert!(!outside.path().join("planted.txt").exists());
        for bad in ["/etc/passwd", "a/../b", "", "a//b", "./a"] {
            assert!(check_relative(bad).is_err(), "{bad}");
        }
    }

    fn exec_outcome(stdout: &str) -> Outcome {
        Outcome {
            exit_code: 0,
            oom_killed: false,
            ended: Ended::Exited,
            stdout: Stream {
                total_bytes: stdout.len() as u64,
                kept: Content::Inline {
                    text: stdout.into(),
                },
            },
            stderr: Stream {
                total_bytes: 0,
                kept: Content::Inline {
                    text: String::new(),
                },
            },
            workspace: Vec::new(),
        }
    }

    /// The drift check compares execs too: a different output and a missing exec are named.
    #[test]
    fn a_drifted_exec_is_named() {
        let recording = |stdout: &str, execs: usize| Recording {
            version: FORMAT_VERSION,
            scenario: "s".into(),
            containers: Vec::new(),
            builds: Vec::new(),
            images: Vec::new(),
            execs: (0..execs)
                .map(|_| RecordedExec {
                    step: "/steps/2".into(),
                    container: 1,
                    call: call(),
                    outcome: exec_outcome(stdout),
                })
                .collect(),
        };
        let dir = tempfile::tempdir().unwrap();
        let old = recording("v1\n", 1);
        assert!(drift(&old, dir.path(), &old, &Blobs::default()).is_empty());
        let found = drift(&old, dir.path(), &recording("v2\n", 1), &Blobs::default());
        assert_eq!(
            found,
            vec![
                "exec 1 (/steps/2): stdout differs: recorded \"v1\\n\" (3 bytes), now \"v2\\n\" (3 bytes)"
                    .to_owned()
            ]
        );
        let found = drift(&old, dir.path(), &recording("v1\n", 0), &Blobs::default());
        assert_eq!(
            found,
            vec!["the scenario ran 0 exec(s), the recording has 1"]
        );
    }

    /// A version 1 file (no execs, no `still_running`) is still read; a later one is not.
    #[test]
    fn a_version_1_recording_is_still_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE_NAME),
            r#"{"version": 1, "scenario": "s", "containers": []}"#,
        )
        .unwrap();
        let loaded = Recording::load(dir.path()).unwrap();
        assert_eq!(loaded.version, 1);
        assert!(loaded.execs.is_empty());
        std::fs::write(
            dir.path().join(FILE_NAME),
            format!(
                r#"{{"version": {}, "scenario": "s", "containers": []}}"#,
                FORMAT_VERSION + 1
            ),
        )
        .unwrap();
        let error = Recording::load(dir.path()).unwrap_err().to_string();
        assert!(error.contains("versions 1 to 4"), "{error}");
    }

    #[test]
    fn a_damaged_blob_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = vec![1u8; 5000];
        let sha = sha256_hex(&bytes);
        std::fs::create_dir(dir.path().join(BLOB_DIR)).unwrap();
        std::fs::write(dir.path().join(BLOB_DIR).join(&sha), vec![2u8; 5000]).unwrap();
        assert!(matches!(
            read_blob(dir.path(), &sha, 5000),
            Err(RecordingError::BadBlob { .. })
        ));
    }
}
