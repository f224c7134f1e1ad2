//! Mapping container paths onto host paths through bind mounts and a private root.

use std::path::PathBuf;

/// A bind mount (`-v HOST:CONTAINER[:ro]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: PathBuf,
    pub destination: String,
    pub read_only: bool,
}

/// The filesystem a container's program sees.
#[derive(Debug, Clone)]
pub struct ContainerFs {
    /// Host directory standing in for `/`.
    pub root: PathBuf,
    /// `--read-only`.
    pub root_read_only: bool,
    pub mounts: Vec<Mount>,
}

/// Where a container path lives on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub host: PathBuf,
    pub read_only: bool,
}

/// Makes `path` absolute against `workdir` and removes `.`/`..` lexically.
pub fn normalize(workdir: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        format!(
            "{}/{}",
            if workdir.is_empty() { "/" } else { workdir },
            path
        )
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
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

/// The part of `path` below `prefix`, when `prefix` is `path` or one of its ancestors.
fn strip_container_prefix<'p>(path: &'p str, prefix: &str) -> Option<&'p str> {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        return Some(path.trim_start_matches('/'));
    }
    let rest = path.strip_prefix(prefix)?;
    if rest.is_empty() {
        Some("")
    } else {
        rest.strip_prefix('/')
    }
}

impl ContainerFs {
    /// Resolves a container path; the longest matching mount wins, else the private root.
    pub fn resolve(&self, workdir: &str, path: &str) -> Resolved {
        let absolute = normalize(workdir, path);
        let best = self
            .mounts
            .iter()
            .filter_map(|mount| {
                let destination = normalize("/", &mount.destination);
                strip_container_prefix(&absolute, &destination)
                    .map(|rest| (destination.len(), mount, rest.to_string()))
            })
            .max_by_key(|(length, _, _)| *length);
        match best {
            Some((_, mount, rest)) => Resolved {
                host: join_relative(&mount.source, &rest),
                read_only: mount.read_only,
            },
            None => Resolved {
                host: join_relative(&self.root, absolute.trim_start_matches('/')),
                read_only: self.root_read_only,
            },
        }
    }
}

fn join_relative(base: &std::path::Path, rest: &str) -> PathBuf {
    if rest.is_empty() {
        base.to_path_buf()
    } else {
        base.join(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs() -> ContainerFs {
        ContainerFs {
            root: PathBuf::from("/state/root"),
            root_read_only: true,
            mounts: vec![
                Mount {
                    source: PathBuf::from("/host/ws"),
                    destination: "/workspace".into(),
                    read_only: false,
                },
                Mount {
                    source: PathBuf::from("/host/in"),
                    destination: "/workspace/inputs/".into(),
                    read_only: true,
                },
            ],
        }
    }

    #[test]
    fn normalizes_lexically() {
        assert_eq!(normalize("/w", "a/../b/./c"), "/w/b/c");
        assert_eq!(normalize("/w", "/x/.."), "/");
        assert_eq!(normalize("", "a"), "/a");
        assert_eq!(normalize("/", "../../a"), "/a");
    }

    #[test]
    fn longest_mount_wins() {
        let fs = fs();
        assert_eq!(
            fs.resolve("/", "/workspace/inputs/a.txt"),
            Resolved {
                host: "/host/in/a.txt".into(),
                read_only: true
            }
        );
        assert_eq!(
            fs.resolve("/workspace", "outputs/x"),
            Resolved {
                host: "/host/ws/outputs/x".into(),
                read_only: false
            }
        );
        assert_eq!(
            fs.resolve("/", "/workspace"),
            Resolved {
                host: "/host/ws".into(),
                read_only: false
            }
        );
    }

    #[test]
    fn other_paths_use_private_root() {
        let fs = fs();
        assert_eq!(
            fs.resolve("/", "/workspaces/x"),
            Resolved {
                host: "/state/root/workspaces/x".into(),
                read_only: true
            }
        );
        assert_eq!(
            fs.resolve("/tmp", "f"),
            Resolved {
                host: "/state/root/tmp/f".into(),
                read_only: true
            }
        );
    }
}
