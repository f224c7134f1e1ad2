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
}

/// One file of an archive: its metadata and (for regular files) its bytes.
#[derive(Debug, Clone)]
pub struct Node {
    pub info: FileInfo,
    pub content: Option<Arc<Vec<u8>>>,
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
            Some(Arc::new(content))
        } else {
            None
        };
        entries.push((name, Node { info, content }));
    }
    Ok(entries)
}

/// An image's root filesystem and configuration, from `docker save`.
#[derive(Debug, Default)]
pub struct SavedImage {
    /// Absolute paths (`/bin/sh`; the root is `/`).
    pub nodes: BTreeMap<String, Node>,
    /// The image configuration's `config` object (Env, Cmd, Entrypoint, ...).
    pub config: serde_json::Value,
}

/// `/a/./b/` → `/a/b`; `..` stays inside the root.
pub fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

fn parent_of(path: &str) -> String {
    match path.rfind('/') {
        Some(0) | None => "/".to_owned(),
        Some(index) => path[..index].to_owned(),
    }
}

impl SavedImage {
    /// Read a `docker save` archive (legacy layout and OCI layout alike: manifest.json names config and layers).
    pub fn read(path: &Path) -> Result<SavedImage, FilesError> {
        let dir = tempfile::tempdir()?;
        tar::Archive::new(std::fs::File::open(path)?).unpack(dir.path())?;
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json"))?)
                .map_err(|error| FilesError::NotSaved(format!("manifest.json: {error}")))?;
        let first = manifest
            .get(0)
            .ok_or_else(|| FilesError::NotSaved("manifest.json lists no image".into()))?;
        let config_name = first
            .get("Config")
            .and_then(|name| name.as_str())
            .ok_or_else(|| FilesError::NotSaved("no Config in manifest.json".into()))?;
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(config_name))?)
                .map_err(|error| FilesError::NotSaved(format!("{config_name}: {error}")))?;
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
        for layer in layers {
            let name = layer
                .as_str()
                .ok_or_else(|| FilesError::NotSaved("a layer name is not a string".into()))?;
            image.apply_layer(&dir.path().join(name))?;
        }
        Ok(image)
    }

    fn apply_layer(&mut self, layer: &Path) -> Result<(), FilesError> {
        let file = std::fs::File::open(layer)?;
        let mut head = [0u8; 2];
        let gzipped = {
            use std::io::Read as _;
            let mut probe = std::fs::File::open(layer)?;
            probe.read(&mut head)? == 2 && head == [0x1f, 0x8b]
        };
        if gzipped {
            return Err(FilesError::NotSaved(format!(
                "{} is compressed; docker save writes plain layers",
                layer.display()
            )));
        }
        let mut archive = tar::Archive::new(file);
        for entry in archive.entries()? {
            let mut entry = entry?;
            let path = clean(&entry.path()?.to_string_lossy());
            let base = path.rsplit('/').next().unwrap_or_default().to_owned();
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
            let Some(mut info) = FileInfo::from_header(entry.header()) else {
                continue;
            };
            let content = match entry.header().entry_type() {
                tar::EntryType::Link => {
                    // A hard link: the target's bytes under this entry's metadata.
                    info.link.clear();
                    self.nodes
                        .get(&clean(
                            &entry
                                .link_name()?
                                .map(|link| link.to_string_lossy().into_owned())
                                .unwrap_or_default(),
                        ))
                        .and_then(|node| node.content.clone())
                }
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let mut content = Vec::new();
                    entry.read_to_end(&mut content)?;
                    Some(Arc::new(content))
                }
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
                .as_deref()
                .map(Vec::as_slice),
            Some(&b"v2"[..])
        );
        assert!(image.stat("/usr/bin/old").is_none());
        assert_eq!(image.stat("/bin").unwrap().info.kind, Kind::Symlink);
        assert_eq!(image.dirs_in("/usr").unwrap(), ["bin"]);
    }
}
