//! An image's files as CST sees them, from tar archives: what `docker cp
//! CONTAINER:PATH -` returns (the container driver) or the layers of `docker
//! save` (the tar driver). Both become the same `FileInfo`, so a check cannot
//! tell where a file came from.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

/// What kind of file an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    /// A Unix socket (only the host driver meets one).
    Socket,
}

/// A file's metadata, as a tar header gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub kind: Kind,
    /// Permission bits plus setuid/setgid/sticky (`0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// A symlink's target.
    pub link: String,
}

impl FileInfo {
    /// Go's `os.FileMode.String()` of the `FileInfo` Go's tar reader makes,
    /// which CST compares `permissions` with: `-rwxr-xr-x`, `drwxr-xr-x`,
    /// `Lrwxrwxrwx`, `urwxr-xr-x` (setuid), `dtrwxrwxrwx` (sticky).
    pub fn mode_string(&self) -> String {
        let mut text = String::new();
        // Go's order: d a l T L D p S u g c t ?
        if self.kind == Kind::Dir {
            text.push('d');
        }
        if self.kind == Kind::Symlink {
            text.push('L');
        }
        if matches!(self.kind, Kind::CharDevice | Kind::BlockDevice) {
            text.push('D');
        }
        if self.kind == Kind::Fifo {
            text.push('p');
        }
        if self.kind == Kind::Socket {
            text.push('S');
        }
        if self.mode & 0o4000 != 0 {
            text.push('u');
        }
        if self.mode & 0o2000 != 0 {
            text.push('g');
        }
        if self.kind == Kind::CharDevice {
            text.push('c');
        }
        if self.mode & 0o1000 != 0 {
            text.push('t');
        }
        if text.is_empty() {
            text.push('-');
        }
        for (index, letter) in "rwxrwxrwx".chars().enumerate() {
            text.push(if self.mode & (1 << (8 - index)) != 0 {
                letter
            } else {
                '-'
            });
        }
        text
    }

    fn from_header(header: &tar::Header) -> Option<FileInfo> {
        let kind = match header.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::Link => {
                Kind::File
            }
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink,
            tar::EntryType::Char => Kind::CharDevice,
            tar::EntryType::Block => Kind::BlockDevice,
            tar::EntryType::Fifo => Kind::Fifo,
            _ => return None,
        };
        let link = header
            .link_name()
            .ok()
            .flatten()
            .map(|link| link.to_string_lossy().into_owned())
            .unwrap_or_default();
        Some(FileInfo {
            kind,
            mode: header.mode().unwrap_or(0) & 0o7777,
            uid: header.uid().unwrap_or(0),
            gid: header.gid().unwrap_or(0),
            link,
        })
    }
}

/// Why an archive could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("cannot read the archive: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a `docker save` archive: {0}")]
    NotSaved(String),
    /// An entry that could reach outside the image's root, or that an image never holds.
    #[error("the saved image is refused: {archive}: entry `{entry}` {reason}")]
    Refused {
        archive: String,
        entry: String,
        reason: String,
    },
    /// More entries or bytes than `docs/limits.md` allows.
    #[error("the saved image is refused: {archive}: {what}; {hint}")]
    Limit {
        archive: String,
        what: String,
        hint: String,
    },
}

/// Entries of the outer `docker save` archive (layers, configs, manifests): a real one
/// holds a few per layer.
pub const MAX_SAVED_ENTRIES: u64 = 100_000;
/// Entries of all layers of an image together (a Debian image holds about 10,000).
pub const MAX_IMAGE_ENTRIES: u64 = 1_000_000;
/// `manifest.json` and the image configuration are read whole: at most this many bytes each.
pub const MAX_SAVED_JSON_BYTES: u64 = 16 << 20;
/// A file read for a content or license test is read whole: at most this many bytes.
pub const MAX_CONTENT_BYTES: u64 = 256 << 20;

/// A regular file's bytes: held (read from `docker cp`), or where they lie in a saved
/// image's archive, read only when a test asks for them.
#[derive(Debug, Clone)]
pub enum Content {
    Bytes(Arc<Vec<u8>>),
    InArchive {
        archive: Arc<std::fs::File>,
        offset: u64,
        len: u64,
    },
}

impl Content {
    /// The bytes, read at most [`MAX_CONTENT_BYTES`] of them.
    pub fn load(&self) -> Result<Arc<Vec<u8>>, String> {
        match self {
            Content::Bytes(bytes) => Ok(bytes.clone()),
            Content::InArchive {
                archive,
                offset,
                len,
            } => {
                if *len > MAX_CONTENT_BYTES {
                    return Err(format!(
                        "the file is {len} bytes; dockproof reads at most {MAX_CONTENT_BYTES} bytes of a file for a test"
                    ));
                }
                let mut bytes = Vec::new();
                Slice::new(archive.clone(), *offset, *len)
                    .read_to_end(&mut bytes)
                    .map_err(|error| format!("cannot read the saved image: {error}"))?;
                if bytes.len() as u64 != *len {
                    return Err("the saved image is cut short".to_owned());
                }
                Ok(Arc::new(bytes))
            }
        }
    }
}

/// One file of an archive: its metadata and (for regular files) where its bytes are.
#[derive(Debug, Clone)]
pub struct Node {
    pub info: FileInfo,
    pub content: Option<Content>,
}

/// The entries of a `docker cp` archive of one path, keyed by their name in the archive.
pub fn read_copy_archive(bytes: &[u8]) -> Result<Vec<(String, Node)>, FilesError> {
    let mut archive = tar::Archive::new(bytes);
    let mut entries = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = entry
            .path()?
            .to_string_lossy()
            .trim_end_matches('/')
            .to_owned();
        let Some(info) = FileInfo::from_header(entry.header()) else {
            continue;
        };
        let content = if entry.header().entry_type() == tar::EntryType::Regular {
            let mut content = Vec::new();
            entry.read_to_end(&mut content)?;
            Some(Content::Bytes(Arc::new(content)))
        } else {
            None
        };
        entries.push((name, Node { info, content }));
    }
    Ok(entries)
}

/// What a streamed `docker cp` archive of one path is read for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// The entry named `base` (the path itself): its metadata only.
    Stat,
    /// The entry named `base` and, for a regular file, its bytes (at most [`MAX_CONTENT_BYTES`]).
    Content,
}

/// The entry named `base` of a `docker cp` archive read as it streams: reading stops at
/// that entry (for [`Want::Content`], after its bytes), so a directory as large as the
/// image's root costs one header, not the archive (issue 17 item 7). `None` when the
/// archive has no such entry.
pub fn stream_entry(reader: impl Read, base: &str, want: Want) -> Result<Option<Node>, FilesError> {
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        let name = clean(&name);
        let Some(info) = FileInfo::from_header(entry.header()) else {
            continue;
        };
        if name.trim_start_matches('/') != base || info.kind == Kind::CharDevice {
            continue;
        }
        let content =
            if want == Want::Content && entry.header().entry_type() == tar::EntryType::Regular {
                let len = entry.header().size()?;
                if len > MAX_CONTENT_BYTES {
                    return Err(FilesError::Limit {
                        archive: "docker cp".to_owned(),
                        what: format!("the file is {len} bytes"),
                        hint: format!(
                            "dockproof reads at most {MAX_CONTENT_BYTES} bytes of a file for a test"
                        ),
                    });
                }
                let mut content = Vec::new();
                (&mut entry).take(len).read_to_end(&mut content)?;
                Some(Content::Bytes(Arc::new(content)))
            } else {
                None
            };
        return Ok(Some(Node { info, content }));
    }
    Ok(None)
}

/// The directories directly inside the path of a `docker cp` archive, read as it streams:
/// headers only, no entry's bytes held.
pub fn stream_child_dirs(reader: impl Read) -> Result<Vec<String>, FilesError> {
    let mut archive = tar::Archive::new(reader);
    let mut dirs = Vec::new();
    let mut count: u64 = 0;
    for entry in archive.entries()? {
        let entry = entry?;
        count += 1;
        if count > MAX_IMAGE_ENTRIES {
            return Err(FilesError::Limit {
                archive: "docker cp".to_owned(),
                what: format!("more than {MAX_IMAGE_ENTRIES} entries"),
                hint: "see docs/limits.md".to_owned(),
            });
        }
        let name = entry
            .path()?
            .to_string_lossy()
            .trim_end_matches('/')
            .to_owned();
        if entry.header().entry_type() == tar::EntryType::Directory
            && name.split('/').count() == 2
            && let Some(child) = name.split('/').nth(1)
        {
            dirs.push(child.to_owned());
        }
    }
    Ok(dirs)
}

/// An image's root filesystem and configuration, from `docker save`.
#[derive(Debug, Default)]
pub struct SavedImage {
    /// Absolute paths (`/bin/sh`; the root is `/`).
    pub nodes: BTreeMap<String, Node>,
    /// The image configuration's `config` object (Env, Cmd, Entrypoint, ...).
    pub config: serde_json::Value,
}

/// `/a/./b/` → `/a/b`; `..` stays inside the root (shared with recorded image trees).
pub use dockproof_recording::clean;

fn parent_of(path: &str) -> String {
    match path.rfind('/') {
        Some(0) | None => "/".to_owned(),
        Some(index) => path[..index].to_owned(),
    }
}

/// A window `[offset, offset + len)` of a file, read with positioned reads (so any
/// number of windows share one descriptor) and seekable within itself.
struct Slice {
    file: Arc<std::fs::File>,
    offset: u64,
    len: u64,
    position: u64,
}

impl Slice {
    fn new(file: Arc<std::fs::File>, offset: u64, len: u64) -> Slice {
        Slice {
            file,
            offset,
            len,
            position: 0,
        }
    }
}

impl Read for Slice {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt as _;
        let left = self.len.saturating_sub(self.position);
        let want = usize::try_from(left.min(buffer.len() as u64)).unwrap_or(buffer.len());
        if want == 0 {
            return Ok(0);
        }
        let count = self
            .file
            .read_at(&mut buffer[..want], self.offset + self.position)?;
        self.position += count as u64;
        Ok(count)
    }
}

impl std::io::Seek for Slice {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            std::io::SeekFrom::Start(at) => Some(at),
            std::io::SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
            std::io::SeekFrom::End(delta) => self.len.checked_add_signed(delta),
        };
        match target {
            Some(at) if at <= self.len => {
                self.position = at;
                Ok(at)
            }
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "an entry runs past the end of its archive",
            )),
        }
    }
}

/// An entry of the outer `docker save` archive: where its bytes are, or what it links to.
#[derive(Debug, Clone)]
enum SavedEntry {
    Dir,
    File { offset: u64, len: u64 },
    Symlink(String),
}

/// The checked names of a tar entry path: relative, no `..`, no empty name;
/// `Err` says why not.
fn checked_parts(raw: &[u8]) -> Result<Vec<String>, &'static str> {
    let Ok(text) = std::str::from_utf8(raw) else {
        return Err("is not a UTF-8 path");
    };
    if text.starts_with('/') {
        return Err("is an absolute path; an archive entry must stay beneath its root");
    }
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("climbs out of the archive's root with `..`"),
            other => parts.push(other.to_owned()),
        }
    }
    Ok(parts)
}

/// `link` (a link's target) taken from the directory `base`, `..` resolved; `Err` when it
/// is absolute or climbs above the root.
fn joined_inside(base: &[String], link: &[u8]) -> Result<Vec<String>, &'static str> {
    let Ok(text) = std::str::from_utf8(link) else {
        return Err("is not a UTF-8 path");
    };
    if text.starts_with('/') {
        return Err("is an absolute path; an archive entry must stay beneath its root");
    }
    let mut parts = base.to_vec();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err("climbs out of the archive's root with `..`");
                }
            }
            other => parts.push(other.to_owned()),
        }
    }
    Ok(parts)
}

/// The outer archive of `docker save`, indexed without writing anything: every entry
/// checked (names beneath the root, only directories, regular files and symlinks or hard
/// links that stay inside, data within the file, a bounded count).
struct SavedIndex {
    file: Arc<std::fs::File>,
    shown: String,
    entries: BTreeMap<String, SavedEntry>,
}

impl SavedIndex {
    fn read(path: &Path) -> Result<SavedIndex, FilesError> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let shown = path.display().to_string();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)?;
        let metadata = file.metadata()?;
        if !metadata.is_file() {
            return Err(FilesError::NotSaved(format!(
                "{shown} is not a regular file"
            )));
        }
        let total = metadata.len();
        let file = Arc::new(file);
        let refused = |entry: &str, reason: &str| FilesError::Refused {
            archive: shown.clone(),
            entry: entry.to_owned(),
            reason: reason.to_owned(),
        };
        let mut entries = BTreeMap::new();
        let mut archive = tar::Archive::new(Slice::new(file.clone(), 0, total));
        let mut count = 0u64;
        for entry in archive.entries_with_seek()? {
            let entry = entry?;
            count += 1;
            if count > MAX_SAVED_ENTRIES {
                return Err(FilesError::Limit {
                    archive: shown.clone(),
                    what: format!("more than {MAX_SAVED_ENTRIES} entries"),
                    hint: "`docker save` writes a few per layer; this is not an image archive"
                        .to_owned(),
                });
            }
            let raw = entry.path_bytes();
            let name = String::from_utf8_lossy(&raw).into_owned();
            let parts = checked_parts(&raw).map_err(|reason| refused(&name, reason))?;
            let key = parts.join("/");
            let len = entry.size();
            let offset = entry.raw_file_position();
            if offset.checked_add(len).is_none_or(|end| end > total) {
                return Err(refused(
                    &name,
                    &format!("says it holds {len} bytes, past the end of the {total}-byte archive"),
                ));
            }
            let value = match entry.header().entry_type() {
                tar::EntryType::Directory => SavedEntry::Dir,
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    SavedEntry::File { offset, len }
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let link = entry
                        .link_name_bytes()
                        .ok_or_else(|| refused(&name, "is a link without a target"))?;
                    let hard = entry.header().entry_type() == tar::EntryType::Link;
                    let base = if hard {
                        &[][..]
                    } else {
                        &parts[..parts.len().saturating_sub(1)]
                    };
                    let target = joined_inside(base, &link).map_err(|reason| {
                        refused(
                            &name,
                            &format!(
                                "links to `{}`, which {reason}",
                                String::from_utf8_lossy(&link)
                            ),
                        )
                    })?;
                    let target = target.join("/");
                    if hard {
                        match entries.get(&target) {
                            Some(found @ SavedEntry::File { .. }) => found.clone(),
                            _ => {
                                return Err(refused(
                                    &name,
                                    &format!(
                                        "is a hard link to `{target}`, which no earlier regular file of the archive is"
                                    ),
                                ));
                            }
                        }
                    } else {
                        SavedEntry::Symlink(target)
                    }
                }
                other => {
                    return Err(refused(
                        &name,
                        &format!(
                            "is a tar entry of type {other:?}; `docker save` writes only directories, files and links"
                        ),
                    ));
                }
            };
            if key.is_empty() {
                continue;
            }
            if let Some(previous) = entries.insert(key, value)
                && !matches!(previous, SavedEntry::Dir)
            {
                return Err(refused(&name, "appears twice in the archive"));
            }
        }
        Ok(SavedIndex {
            file,
            shown,
            entries,
        })
    }

    /// The regular file at `name`, through the archive's own symlinks (at most 40).
    fn file(&self, name: &str) -> Result<(u64, u64), FilesError> {
        let mut current = name.to_owned();
        for _ in 0..40 {
            match self.entries.get(&current) {
                Some(SavedEntry::File { offset, len }) => return Ok((*offset, *len)),
                Some(SavedEntry::Symlink(target)) => current = target.clone(),
                _ => {
                    return Err(FilesError::NotSaved(format!(
                        "{}: no file `{name}` in the archive",
                        self.shown
                    )));
                }
            }
        }
        Err(FilesError::NotSaved(format!(
            "{}: `{name}`: too many levels of symbolic links",
            self.shown
        )))
    }

    fn json(&self, name: &str) -> Result<serde_json::Value, FilesError> {
        let (offset, len) = self.file(name)?;
        if len > MAX_SAVED_JSON_BYTES {
            return Err(FilesError::Limit {
                archive: self.shown.clone(),
                what: format!("`{name}` is {len} bytes, more than {MAX_SAVED_JSON_BYTES}"),
                hint: "an image's manifest and configuration are a few kilobytes".to_owned(),
            });
        }
        let mut bytes = Vec::new();
        Slice::new(self.file.clone(), offset, len).read_to_end(&mut bytes)?;
        serde_json::from_slice(&bytes)
            .map_err(|error| FilesError::NotSaved(format!("{name}: {error}")))
    }
}

impl SavedImage {
    /// Read a `docker save` archive (legacy layout and OCI layout alike: manifest.json
    /// names config and layers). Nothing is extracted: the archive is indexed, every
    /// entry of it and of its layers checked, and file contents are read from it only
    /// when a test asks (see `docs/limits.md`, "Saved images").
    pub fn read(path: &Path) -> Result<SavedImage, FilesError> {
        let index = SavedIndex::read(path)?;
        let manifest = index.json("manifest.json")?;
        let first = manifest
            .get(0)
            .ok_or_else(|| FilesError::NotSaved("manifest.json lists no image".into()))?;
        let config_name = first
            .get("Config")
            .and_then(|name| name.as_str())
            .ok_or_else(|| FilesError::NotSaved("no Config in manifest.json".into()))?;
        let config = index.json(
            &checked_parts(config_name.as_bytes())
                .map_err(|reason| {
                    FilesError::NotSaved(format!("manifest.json: Config `{config_name}` {reason}"))
                })?
                .join("/"),
        )?;
        let mut image = SavedImage {
            nodes: BTreeMap::new(),
            config: config
                .get("config")
                .cloned()
                .unwrap_or(serde_json::Value::Null),
        };
        image.nodes.insert(
            "/".into(),
            Node {
                info: FileInfo {
                    kind: Kind::Dir,
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                    link: String::new(),
                },
                content: None,
            },
        );
        let layers = first
            .get("Layers")
            .and_then(|layers| layers.as_array())
            .cloned()
            .unwrap_or_default();
        let mut count = 0u64;
        for layer in layers {
            let name = layer
                .as_str()
                .ok_or_else(|| FilesError::NotSaved("a layer name is not a string".into()))?;
            let key = checked_parts(name.as_bytes())
                .map_err(|reason| {
                    FilesError::NotSaved(format!("manifest.json: layer `{name}` {reason}"))
                })?
                .join("/");
            let (offset, len) = index.file(&key)?;
            image.apply_layer(&index.file, &index.shown, name, offset, len, &mut count)?;
        }
        Ok(image)
    }

    /// The root of an image of no layers yet (an OCI layout's is built layer by layer).
    pub(crate) fn empty(config: serde_json::Value) -> SavedImage {
        let mut image = SavedImage {
            nodes: BTreeMap::new(),
            config,
        };
        image.nodes.insert(
            "/".into(),
            Node {
                info: FileInfo {
                    kind: Kind::Dir,
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                    link: String::new(),
                },
                content: None,
            },
        );
        image
    }

    /// Apply the uncompressed layer `[offset, offset + len)` of `file` (shown as
    /// `archive`, the layer as `layer`): every entry checked, nothing written.
    pub(crate) fn apply_layer(
        &mut self,
        file: &Arc<std::fs::File>,
        archive: &str,
        layer: &str,
        offset: u64,
        len: u64,
        count: &mut u64,
    ) -> Result<(), FilesError> {
        let mut head = [0u8; 2];
        let mut probe = Slice::new(file.clone(), offset, len);
        if probe.read(&mut head)? == 2 && head == [0x1f, 0x8b] {
            return Err(FilesError::NotSaved(format!(
                "{layer} is compressed; docker save writes plain layers"
            )));
        }
        let shown = format!("{archive}: layer {layer}");
        let refused = |entry: &str, reason: String| FilesError::Refused {
            archive: shown.clone(),
            entry: entry.to_owned(),
            reason,
        };
        let mut entries = tar::Archive::new(Slice::new(file.clone(), offset, len));
        for entry in entries.entries_with_seek()? {
            let entry = entry?;
            *count += 1;
            if *count > MAX_IMAGE_ENTRIES {
                return Err(FilesError::Limit {
                    archive: shown.clone(),
                    what: format!("the image's layers hold more than {MAX_IMAGE_ENTRIES} entries"),
                    hint: "use the docker driver (no `--driver tar`), which reads only the files a test names".to_owned(),
                });
            }
            let raw = entry.path_bytes();
            let name = String::from_utf8_lossy(&raw).into_owned();
            let parts = checked_parts(&raw).map_err(|reason| refused(&name, reason.to_owned()))?;
            let path = format!("/{}", parts.join("/"));
            let size = entry.size();
            let at = entry.raw_file_position();
            if at.checked_add(size).is_none_or(|end| end > len) {
                return Err(refused(
                    &name,
                    format!("says it holds {size} bytes, past the end of the {len}-byte layer"),
                ));
            }
            // Nothing of a layer is written anywhere, but a name beneath a symlink would
            // mean a file outside the directory it names: refuse it as Docker refuses it.
            let mut ancestor = String::new();
            for part in &parts[..parts.len().saturating_sub(1)] {
                ancestor.push('/');
                ancestor.push_str(part);
                if self
                    .nodes
                    .get(&ancestor)
                    .is_some_and(|node| node.info.kind == Kind::Symlink)
                {
                    return Err(refused(
                        &name,
                        format!(
                            "lies beneath `{ancestor}`, a symlink; an image layer never writes through one"
                        ),
                    ));
                }
            }
            let base = parts.last().cloned().unwrap_or_default();
            let parent = parent_of(&path);
            if base == ".wh..wh..opq" {
                let prefix = if parent == "/" {
                    "/".to_owned()
                } else {
                    format!("{parent}/")
                };
                self.nodes
                    .retain(|key, _| !key.starts_with(&prefix) || *key == parent);
                continue;
            }
            if let Some(hidden) = base.strip_prefix(".wh.") {
                let gone = if parent == "/" {
                    format!("/{hidden}")
                } else {
                    format!("{parent}/{hidden}")
                };
                let prefix = format!("{gone}/");
                self.nodes
                    .retain(|key, _| *key != gone && !key.starts_with(&prefix));
                continue;
            }
            if path == "/" {
                continue;
            }
            let kind = entry.header().entry_type();
            let Some(mut info) = FileInfo::from_header(entry.header()) else {
                return Err(refused(
                    &name,
                    format!("is a tar entry of type {kind:?}, which an image layer does not hold"),
                ));
            };
            let content = match kind {
                tar::EntryType::Link => {
                    // A hard link: the target's bytes under this entry's metadata.
                    let link = entry.link_name_bytes().unwrap_or_default();
                    let target = joined_inside(&[], &link).map_err(|reason| {
                        refused(
                            &name,
                            format!(
                                "is a hard link to `{}`, which {reason}",
                                String::from_utf8_lossy(&link)
                            ),
                        )
                    })?;
                    let target = format!("/{}", target.join("/"));
                    info.link.clear();
                    match self.nodes.get(&target) {
                        Some(node) if node.info.kind == Kind::File => node.content.clone(),
                        _ => {
                            return Err(refused(
                                &name,
                                format!(
                                    "is a hard link to `{target}`, which is no regular file of the image"
                                ),
                            ));
                        }
                    }
                }
                tar::EntryType::Regular | tar::EntryType::Continuous => Some(Content::InArchive {
                    archive: file.clone(),
                    offset: offset + at,
                    len: size,
                }),
                // FIFOs and devices are metadata here: nothing is ever created.
                _ => None,
            };
            if info.kind != Kind::Dir {
                // A file replacing a directory replaces its whole subtree.
                let prefix = format!("{path}/");
                self.nodes.retain(|key, _| !key.starts_with(&prefix));
            }
            self.nodes.insert(path, Node { info, content });
        }
        Ok(())
    }

    /// Resolve every component but the last through symlinks, as `docker cp` does.
    pub fn resolve_parent(&self, path: &str) -> String {
        let path = clean(path);
        if path == "/" {
            return path;
        }
        let parent = parent_of(&path);
        let base = path.rsplit('/').next().unwrap_or_default();
        let resolved = self.resolve(&parent, 0);
        if resolved == "/" {
            format!("/{base}")
        } else {
            format!("{resolved}/{base}")
        }
    }

    /// Resolve a path through every symlink (at most 40, like Linux).
    fn resolve(&self, path: &str, depth: usize) -> String {
        let mut current = String::from("/");
        let path = clean(path);
        let parts: Vec<&str> = path.split('/').filter(|part| !part.is_empty()).collect();
        for (index, part) in parts.iter().enumerate() {
            let next = if current == "/" {
                format!("/{part}")
            } else {
                format!("{current}/{part}")
            };
            match self.nodes.get(&next) {
                Some(node) if node.info.kind == Kind::Symlink && depth < 40 => {
                    let target = if node.info.link.starts_with('/') {
                        node.info.link.clone()
                    } else {
                        format!("{current}/{}", node.info.link)
                    };
                    let rest = parts[index + 1..].join("/");
                    return self.resolve(&format!("{target}/{rest}"), depth + 1);
                }
                _ => current = next,
            }
        }
        clean(&current)
    }

    /// The entry at `path` (not following a final symlink), like `docker cp` would archive it.
    pub fn stat(&self, path: &str) -> Option<&Node> {
        self.nodes.get(&self.resolve_parent(path))
    }

    /// The directories directly inside `path`.
    pub fn dirs_in(&self, path: &str) -> Option<Vec<String>> {
        let dir = self.resolve(path, 0);
        if self.nodes.get(&dir).map(|node| node.info.kind) != Some(Kind::Dir) {
            return None;
        }
        let prefix = if dir == "/" {
            "/".to_owned()
        } else {
            format!("{dir}/")
        };
        Some(
            self.nodes
                .range(prefix.clone()..)
                .take_while(|(key, _)| key.starts_with(&prefix))
                .filter(|(key, node)| {
                    !key[prefix.len()..].contains('/') && node.info.kind == Kind::Dir
                })
                .map(|(key, _)| key[prefix.len()..].to_owned())
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(kind: Kind, mode: u32) -> FileInfo {
        FileInfo {
            kind,
            mode,
            uid: 0,
            gid: 0,
            link: String::new(),
        }
    }

    #[test]
    fn mode_strings_are_go_file_mode_strings() {
        assert_eq!(info(Kind::File, 0o644).mode_string(), "-rw-r--r--");
        assert_eq!(info(Kind::Dir, 0o755).mode_string(), "drwxr-xr-x");
        assert_eq!(info(Kind::Symlink, 0o777).mode_string(), "Lrwxrwxrwx");
        assert_eq!(info(Kind::File, 0o4755).mode_string(), "urwxr-xr-x");
        assert_eq!(info(Kind::Dir, 0o1777).mode_string(), "dtrwxrwxrwx");
        assert_eq!(info(Kind::CharDevice, 0o666).mode_string(), "Dcrw-rw-rw-");
    }

    fn layer(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, kind, link, content) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_mode(if *kind == tar::EntryType::Directory {
                0o755
            } else {
                0o644
            });
            header.set_size(content.len() as u64);
            if !link.is_empty() {
                header.set_link_name(link).unwrap();
            }
            builder.append_data(&mut header, name, *content).unwrap();
        }
        builder.into_inner().unwrap()
    }

    /// A tar entry written byte for byte (the `tar` builder refuses hostile names).
    fn raw_entry(
        builder: &mut tar::Builder<Vec<u8>>,
        name: &str,
        kind: tar::EntryType,
        link: &str,
        content: &[u8],
        size: u64,
    ) {
        let mut header = tar::Header::new_gnu();
        header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        header.as_gnu_mut().unwrap().linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_entry_type(kind);
        header.set_mode(0o644);
        header.set_size(size);
        header.set_cksum();
        builder.append(&header, content).unwrap();
    }

    fn raw_layer(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, kind, link, content) in entries {
            raw_entry(
                &mut builder,
                name,
                *kind,
                link,
                content,
                content.len() as u64,
            );
        }
        builder.into_inner().unwrap()
    }

    /// A `docker save` archive of `layers`, in a directory of its own; reads it and
    /// checks that nothing beside it appeared (no write anywhere).
    fn read_saved(layers: &[Vec<u8>]) -> Result<SavedImage, FilesError> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut names = Vec::new();
        for (index, layer) in layers.iter().enumerate() {
            let name = format!("l{index}/layer.tar");
            raw_entry(
                &mut builder,
                &name,
                tar::EntryType::Regular,
                "",
                layer,
                layer.len() as u64,
            );
            names.push(format!("\"{name}\""));
        }
        let config = br#"{"config":{"Env":["A=1"]}}"#;
        raw_entry(
            &mut builder,
            "c.json",
            tar::EntryType::Regular,
            "",
            config,
            config.len() as u64,
        );
        let manifest = format!(r#"[{{"Config":"c.json","Layers":[{}]}}]"#, names.join(","));
        raw_entry(
            &mut builder,
            "manifest.json",
            tar::EntryType::Regular,
            "",
            manifest.as_bytes(),
            manifest.len() as u64,
        );
        read_outer(builder.into_inner().unwrap())
    }

    fn read_outer(bytes: Vec<u8>) -> Result<SavedImage, FilesError> {
        let outside = tempfile::tempdir().unwrap();
        let dir = outside.path().join("in");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("saved.tar"), bytes).unwrap();
        let read = SavedImage::read(&dir.join("saved.tar"));
        let mut left: Vec<_> = walk(outside.path());
        left.sort();
        assert_eq!(
            left,
            ["in", "in/saved.tar"],
            "reading the archive wrote files"
        );
        read
    }

    fn walk(root: &Path) -> Vec<String> {
        let mut found = Vec::new();
        let mut pending = vec![root.to_path_buf()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                found.push(path.strip_prefix(root).unwrap().display().to_string());
                if std::fs::symlink_metadata(&path).unwrap().is_dir() {
                    pending.push(path);
                }
            }
        }
        found
    }

    fn refusal(result: Result<SavedImage, FilesError>) -> String {
        match result {
            Err(error @ (FilesError::Refused { .. } | FilesError::Limit { .. })) => {
                error.to_string()
            }
            Err(other) => panic!("expected a refusal, got {other}"),
            Ok(_) => panic!("expected a refusal, the archive was read"),
        }
    }

    #[test]
    fn hostile_layer_entries_are_refused_with_their_name_and_nothing_is_written() {
        use tar::EntryType::{Directory, Link, Regular, Symlink};
        type Entry<'a> = (&'a str, tar::EntryType, &'a str, &'a [u8]);
        let cases: Vec<(Vec<Entry>, &str)> = vec![
            (
                vec![("../x", Regular, "", b"x")],
                "entry `../x` climbs out of the archive's root",
            ),
            (
                vec![("a/../../x", Regular, "", b"x")],
                "entry `a/../../x` climbs out",
            ),
            (
                vec![("/etc/x", Regular, "", b"x")],
                "entry `/etc/x` is an absolute path",
            ),
            (
                vec![("a", Symlink, "/", b""), ("a/etc/x", Regular, "", b"x")],
                "entry `a/etc/x` lies beneath `/a`, a symlink",
            ),
            (
                vec![
                    ("etc/", Directory, "", b""),
                    ("etc/x", Link, "../../etc/passwd", b""),
                ],
                "entry `etc/x` is a hard link to `../../etc/passwd`, which climbs out",
            ),
            (
                vec![("x", Link, "/etc/passwd", b"")],
                "entry `x` is a hard link to `/etc/passwd`, which is an absolute path",
            ),
            (
                vec![("x", Link, "etc/shadow", b"")],
                "entry `x` is a hard link to `/etc/shadow`, which is no regular file of the image",
            ),
        ];
        for (entries, expected) in cases {
            let message = refusal(read_saved(&[raw_layer(&entries)]));
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
            assert!(message.contains("layer l0/layer.tar"), "{message}");
        }
        // A GNU sparse entry (docker never writes one) is an error of the archive.
        let sparse = raw_layer(&[("s", tar::EntryType::GNUSparse, "", b"")]);
        assert!(read_saved(&[sparse]).is_err());
    }

    #[test]
    fn an_entry_announcing_more_bytes_than_its_archive_holds_is_refused_before_reading() {
        // A 10 GiB header over a few bytes of data, in a layer and in the outer archive.
        let mut builder = tar::Builder::new(Vec::new());
        raw_entry(
            &mut builder,
            "big",
            tar::EntryType::Regular,
            "",
            b"tiny",
            10 << 30,
        );
        let layer = builder.into_inner().unwrap();
        let message = refusal(read_saved(&[layer]));
        assert!(
            message.contains("entry `big` says it holds 10737418240 bytes, past the end"),
            "{message}"
        );

        let mut builder = tar::Builder::new(Vec::new());
        raw_entry(
            &mut builder,
            "manifest.json",
            tar::EntryType::Regular,
            "",
            b"[]",
            10 << 30,
        );
        let message = refusal(read_outer(builder.into_inner().unwrap()));
        assert!(
            message.contains("entry `manifest.json` says it holds 10737418240 bytes"),
            "{message}"
        );
    }

    #[test]
    fn hostile_outer_entries_are_refused() {
        use tar::EntryType::{Fifo, Link, Regular, Symlink};
        let cases: Vec<(&str, tar::EntryType, &str, &str)> = vec![
            (
                "../manifest.json",
                Regular,
                "",
                "climbs out of the archive's root",
            ),
            ("/manifest.json", Regular, "", "is an absolute path"),
            (
                "manifest.json",
                Symlink,
                "/etc/passwd",
                "links to `/etc/passwd`, which is an absolute path",
            ),
            (
                "manifest.json",
                Symlink,
                "../../etc/passwd",
                "links to `../../etc/passwd`, which climbs out",
            ),
            (
                "manifest.json",
                Link,
                "/etc/passwd",
                "links to `/etc/passwd`, which is an absolute path",
            ),
            (
                "manifest.json",
                Link,
                "nothing",
                "is a hard link to `nothing`, which no earlier regular file",
            ),
            ("fifo", Fifo, "", "is a tar entry of type Fifo"),
            (
                "dev",
                tar::EntryType::Char,
                "",
                "is a tar entry of type Char",
            ),
        ];
        for (name, kind, link, expected) in cases {
            let mut builder = tar::Builder::new(Vec::new());
            raw_entry(&mut builder, name, kind, link, b"", 0);
            let message = refusal(read_outer(builder.into_inner().unwrap()));
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        }
    }

    #[test]
    fn a_layer_shared_through_a_relative_symlink_is_read() {
        // `docker save` (20.10) writes a repeated layer as `ID/layer.tar -> ../ID0/layer.tar`.
        let layer = raw_layer(&[("data", tar::EntryType::Regular, "", b"hello")]);
        let mut builder = tar::Builder::new(Vec::new());
        raw_entry(&mut builder, "a/", tar::EntryType::Directory, "", b"", 0);
        let size = layer.len() as u64;
        raw_entry(
            &mut builder,
            "a/layer.tar",
            tar::EntryType::Regular,
            "",
            &layer,
            size,
        );
        raw_entry(&mut builder, "b/", tar::EntryType::Directory, "", b"", 0);
        raw_entry(
            &mut builder,
            "b/layer.tar",
            tar::EntryType::Symlink,
            "../a/layer.tar",
            b"",
            0,
        );
        let config = br#"{"config":{}}"#;
        raw_entry(
            &mut builder,
            "c.json",
            tar::EntryType::Regular,
            "",
            config,
            config.len() as u64,
        );
        let manifest = br#"[{"Config":"c.json","Layers":["a/layer.tar","b/layer.tar"]}]"#;
        let size = manifest.len() as u64;
        raw_entry(
            &mut builder,
            "manifest.json",
            tar::EntryType::Regular,
            "",
            manifest,
            size,
        );
        let image = read_outer(builder.into_inner().unwrap()).unwrap();
        let content = image.stat("/data").unwrap().content.clone().unwrap();
        assert_eq!(content.load().unwrap().as_slice(), b"hello");
    }

    #[test]
    fn more_outer_entries_than_the_limit_are_refused() {
        let mut builder = tar::Builder::new(Vec::new());
        for index in 0..=MAX_SAVED_ENTRIES {
            raw_entry(
                &mut builder,
                &format!("d{index}/"),
                tar::EntryType::Directory,
                "",
                b"",
                0,
            );
        }
        let message = refusal(read_outer(builder.into_inner().unwrap()));
        assert!(message.contains("more than 100000 entries"), "{message}");
    }

    #[test]
    fn fifos_and_devices_in_a_layer_are_metadata_and_contents_are_read_on_demand() {
        use tar::EntryType::{Char, Fifo, Regular};
        let layer = raw_layer(&[
            ("pipe", Fifo, "", b""),
            ("null", Char, "", b""),
            ("data", Regular, "", b"hello"),
        ]);
        let image = read_saved(&[layer]).unwrap();
        assert_eq!(
            image.stat("/pipe").unwrap().info.mode_string(),
            "prw-r--r--"
        );
        assert_eq!(image.stat("/null").unwrap().info.kind, Kind::CharDevice);
        assert!(image.stat("/pipe").unwrap().content.is_none());
        let content = image.stat("/data").unwrap().content.clone().unwrap();
        assert!(matches!(content, Content::InArchive { len: 5, .. }));
        assert_eq!(content.load().unwrap().as_slice(), b"hello");
    }

    #[test]
    fn layers_apply_in_order_with_whiteouts_and_symlinked_parents() {
        let dir = tempfile::tempdir().unwrap();
        let one = layer(&[
            ("usr/", tar::EntryType::Directory, "", b""),
            ("usr/bin/", tar::EntryType::Directory, "", b""),
            ("usr/bin/tool", tar::EntryType::Regular, "", b"v1"),
            ("usr/bin/old", tar::EntryType::Regular, "", b"x"),
            ("bin", tar::EntryType::Symlink, "usr/bin", b""),
        ]);
        let two = layer(&[
            ("usr/bin/.wh.old", tar::EntryType::Regular, "", b""),
            ("usr/bin/tool", tar::EntryType::Regular, "", b"v2"),
        ]);
        std::fs::create_dir(dir.path().join("l1")).unwrap();
        std::fs::create_dir(dir.path().join("l2")).unwrap();
        std::fs::write(dir.path().join("l1/layer.tar"), one).unwrap();
        std::fs::write(dir.path().join("l2/layer.tar"), two).unwrap();
        std::fs::write(dir.path().join("c.json"), r#"{"config":{"Env":["A=1"]}}"#).unwrap();
        std::fs::write(
            dir.path().join("manifest.json"),
            r#"[{"Config":"c.json","Layers":["l1/layer.tar","l2/layer.tar"]}]"#,
        )
        .unwrap();
        let saved = dir.path().join("saved.tar");
        let mut builder = tar::Builder::new(std::fs::File::create(&saved).unwrap());
        for name in ["l1/layer.tar", "l2/layer.tar", "c.json", "manifest.json"] {
            builder
                .append_path_with_name(dir.path().join(name), name)
                .unwrap();
        }
        builder.finish().unwrap();
        drop(builder);
        let image = SavedImage::read(&saved).unwrap();
        assert_eq!(image.config["Env"][0], "A=1");
        assert_eq!(
            image
                .stat("/bin/tool")
                .unwrap()
                .content
                .as_ref()
                .map(|content| content.load().unwrap().to_vec()),
            Some(b"v2".to_vec())
        );
        assert!(image.stat("/usr/bin/old").is_none());
        assert_eq!(image.stat("/bin").unwrap().info.kind, Kind::Symlink);
        assert_eq!(image.dirs_in("/usr").unwrap(), ["bin"]);
    }
}
