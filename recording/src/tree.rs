//! An image's file tree, recorded for the CST tests that read it (format version 3 on).
//!
//! A `cst:` step on a real daemon leaves, per image it tested, every entry of the
//! image's root: path, kind, mode, owner, size, sha256 (a file), target (a symlink).
//! Contents are kept only for the files a check reads (file content tests, license
//! files; symlinks followed), each bounded by [`MAX_TREE_CONTENT_BYTES`]. fake-docker
//! makes the image's root from it (a file without kept content is as many zero bytes
//! as it had), and dockproof refuses, on the fake, a check that would read a file whose
//! content was not kept: it is never guessed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Content, EntryKind};

/// At most this many entries of one image's tree are recorded.
pub const MAX_TREE_ENTRIES: usize = crate::MAX_WALK_ENTRIES;
/// The most of one file's content a recording keeps for a check.
pub const MAX_TREE_CONTENT_BYTES: u64 = 16 << 20;
/// Symlinks followed while resolving a path, as Linux does.
const MAX_LINKS: usize = 40;

/// An image a `cst:` step tested: its configuration and its file tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedImage {
    /// The reference as the scenario names it.
    pub image: String,
    /// The daemon's image ID (kept for the reader; neither replay nor drift compares it).
    pub image_id: String,
    /// `docker image inspect`'s `Config` fields, as in [`crate::Call::image_config`].
    pub image_config: BTreeMap<String, serde_json::Value>,
    /// `Size` of `docker image inspect`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Every entry of the image's root, sorted by path (`/bin/sh`).
    pub tree: Vec<TreeEntry>,
}

/// One entry of an image's root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeEntry {
    /// Absolute, `/`-separated, no trailing slash.
    pub path: String,
    pub kind: EntryKind,
    /// Permission bits with setuid/setgid/sticky, octal (`0755`).
    pub mode: String,
    pub uid: u64,
    pub gid: u64,
    /// A file's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// A file's sha256 (of its bytes in the image, not masked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// A symlink's target, as written in the link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The bytes, only for a file a check reads (masked when they held a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
}

impl TreeEntry {
    /// The permission bits.
    pub fn mode_bits(&self) -> u32 {
        u32::from_str_radix(&self.mode, 8).unwrap_or(0o755)
    }

    /// `kind mode uid:gid size sha256|target`, for naming a difference.
    fn summary(&self) -> String {
        let what = match self.kind {
            EntryKind::Symlink => format!("-> {}", self.target.as_deref().unwrap_or_default()),
            _ => self
                .sha256
                .as_deref()
                .map_or(String::new(), |sha| sha[..sha.len().min(12)].to_owned()),
        };
        format!(
            "{} {} {}:{} {} {what}",
            format!("{:?}", self.kind).to_lowercase(),
            self.mode,
            self.uid,
            self.gid,
            self.size.unwrap_or(0)
        )
        .trim_end()
        .to_owned()
    }
}

/// `/a/./b//c/` → `/a/b/c`; `..` stays inside the root.
pub fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}

impl RecordedImage {
    fn entry(&self, path: &str) -> Option<&TreeEntry> {
        self.tree
            .binary_search_by(|entry| entry.path.as_str().cmp(path))
            .ok()
            .map(|index| &self.tree[index])
    }

    /// The entry a read of `path` reaches: symlinks followed (also in parent
    /// directories), a relative target taken from the link's directory.
    pub fn resolve(&self, path: &str) -> Result<&TreeEntry, String> {
        let mut pending: Vec<String> = clean(path)
            .split('/')
            .filter(|part| !part.is_empty())
            .map(str::to_owned)
            .collect();
        pending.reverse();
        let mut current = String::new();
        let mut links = 0;
        while let Some(part) = pending.pop() {
            let next = clean(&format!("{current}/{part}"));
            let entry = self
                .entry(&next)
                .ok_or_else(|| format!("{path} is not in the recorded image"))?;
            if entry.kind == EntryKind::Symlink {
                links += 1;
                if links > MAX_LINKS {
                    return Err(format!("too many levels of symbolic links at {path}"));
                }
                let target = entry.target.as_deref().unwrap_or_default();
                let base = if target.starts_with('/') {
                    String::new()
                } else {
                    current.clone()
                };
                let mut parts: Vec<String> = clean(&format!("{base}/{target}"))
                    .split('/')
                    .filter(|part| !part.is_empty())
                    .map(str::to_owned)
                    .collect();
                parts.reverse();
                pending.extend(parts);
                current = String::new();
            } else {
                current = next;
            }
        }
        self.entry(&clean(&current))
            .ok_or_else(|| format!("{path} is not in the recorded image"))
    }

    /// The directories directly inside `path` (for a license test's `/usr/share/doc`).
    pub fn dirs_in(&self, path: &str) -> Vec<String> {
        let prefix = format!("{}/", clean(path).trim_end_matches('/'));
        self.tree
            .iter()
            .filter(|entry| entry.kind == EntryKind::Dir)
            .filter_map(|entry| entry.path.strip_prefix(&prefix))
            .filter(|rest| !rest.is_empty() && !rest.contains('/'))
            .map(str::to_owned)
            .collect()
    }

    /// Each of `reads` (paths a check reads) whose content this recording does not
    /// keep, with why: a replay would have to guess it.
    pub fn unrecorded_reads(&self, reads: &[String]) -> Vec<String> {
        reads
            .iter()
            .filter_map(|path| match self.resolve(path) {
                // A missing file or a directory reads the same on the fake.
                Err(_) => None,
                Ok(entry) if entry.kind != EntryKind::File || entry.content.is_some() => None,
                Ok(entry) => Some(if entry.path == clean(path) {
                    format!("{path} (its content was not recorded: no check read it)")
                } else {
                    format!(
                        "{path} (read through {}, whose content was not recorded: no check read it)",
                        entry.path
                    )
                }),
            })
            .collect()
    }
}

/// What differs between a recorded image tree and a fresh one: entries added,
/// removed or changed (kind, mode, owner, size, sha256, target), and contents kept
/// by one and not the other; at most 20 named, then how many more.
pub fn tree_differences(at: &str, old: &RecordedImage, new: &RecordedImage) -> Vec<String> {
    let old_map: BTreeMap<&str, &TreeEntry> =
        old.tree.iter().map(|e| (e.path.as_str(), e)).collect();
    let new_map: BTreeMap<&str, &TreeEntry> =
        new.tree.iter().map(|e| (e.path.as_str(), e)).collect();
    let paths: std::collections::BTreeSet<&&str> = old_map.keys().chain(new_map.keys()).collect();
    let mut found = Vec::new();
    for path in paths {
        let line = match (old_map.get(*path), new_map.get(*path)) {
            (Some(a), Some(b)) if a.summary() != b.summary() => format!(
                "{at}: file {path} differs: recorded `{}`, now `{}`",
                a.summary(),
                b.summary()
            ),
            (Some(a), Some(b)) if a.content.is_some() != b.content.is_some() => {
                if b.content.is_some() {
                    format!(
                        "{at}: file {path}: a check reads its content now, the recording does not keep it"
                    )
                } else {
                    format!(
                        "{at}: file {path}: the recording keeps its content, no check reads it now"
                    )
                }
            }
            (Some(a), None) => format!(
                "{at}: file {path} differs: recorded `{}`, now missing",
                a.summary()
            ),
            (None, Some(b)) => format!(
                "{at}: file {path} differs: not recorded, now `{}`",
                b.summary()
            ),
            _ => continue,
        };
        found.push(line);
    }
    if found.len() > 20 {
        let more = found.len() - 20;
        found.truncate(20);
        found.push(format!("{at}: {more} more file(s) differ"));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: EntryKind, target: Option<&str>, content: bool) -> TreeEntry {
        TreeEntry {
            path: path.into(),
            kind,
            mode: "0755".into(),
            uid: 0,
            gid: 0,
            size: (kind == EntryKind::File).then_some(3),
            sha256: (kind == EntryKind::File).then(|| "ab".repeat(32)),
            target: target.map(str::to_owned),
            content: content.then(|| Content::Inline {
                text: "hi\n".into(),
            }),
        }
    }

    fn image() -> RecordedImage {
        let mut tree = vec![
            entry("/bin", EntryKind::Dir, None, false),
            entry("/bin/busybox", EntryKind::File, None, false),
            entry("/bin/sh", EntryKind::Symlink, Some("busybox"), false),
            entry("/etc", EntryKind::Symlink, Some("/opt/etc"), false),
            entry("/opt", EntryKind::Dir, None, false),
            entry("/opt/etc", EntryKind::Dir, None, false),
            entry("/opt/etc/motd", EntryKind::File, None, true),
            entry("/usr/share/doc/a", EntryKind::Dir, None, false),
            entry("/usr/share/doc/a/copyright", EntryKind::File, None, true),
            entry("/loop", EntryKind::Symlink, Some("/loop"), false),
        ];
        tree.sort_by(|a, b| a.path.cmp(&b.path));
        RecordedImage {
            image: "x:1".into(),
            image_id: "sha256:aa".into(),
            image_config: BTreeMap::new(),
            size: None,
            tree,
        }
    }

    #[test]
    fn paths_resolve_through_symlinks_in_parents_and_at_the_end() {
        let image = image();
        assert_eq!(image.resolve("/bin/sh").unwrap().path, "/bin/busybox");
        assert_eq!(image.resolve("/etc/motd").unwrap().path, "/opt/etc/motd");
        assert_eq!(
            image.resolve("/etc/../bin/./sh").unwrap().path,
            "/bin/busybox"
        );
        assert!(image.resolve("/nope").is_err());
        assert!(
            image
                .resolve("/loop")
                .unwrap_err()
                .contains("too many levels")
        );
        assert_eq!(image.dirs_in("/usr/share/doc"), vec!["a".to_owned()]);
    }

    /// A read of a file whose content was not kept is named (the fake would have to
    /// guess it); a kept one, a missing one and a directory are not.
    #[test]
    fn reads_of_unkept_contents_are_named() {
        let image = image();
        let reads: Vec<String> = ["/etc/motd", "/bin/sh", "/missing", "/opt", "/bin/busybox"]
            .map(str::to_owned)
            .to_vec();
        let found = image.unrecorded_reads(&reads);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].starts_with("/bin/sh (read through /bin/busybox"),
            "{found:?}"
        );
        assert!(
            found[1].starts_with("/bin/busybox (its content"),
            "{found:?}"
        );
    }

    #[test]
    fn a_changed_tree_is_named_entry_by_entry() {
        let old = image();
        let mut new = image();
        new.tree[1].mode = "0700".into();
        new.tree.retain(|entry| entry.path != "/opt/etc/motd");
        let found = tree_differences("image x:1", &old, &new);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].contains("file /bin/busybox differs: recorded `file 0755"),
            "{found:?}"
        );
        assert!(
            found[1].contains("/opt/etc/motd differs: recorded"),
            "{found:?}"
        );
        assert!(tree_differences("i", &old, &old).is_empty());
    }
}
