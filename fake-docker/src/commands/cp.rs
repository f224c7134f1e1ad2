//! `docker cp`: files and directories between a container's filesystem and the host,
//! or a tar stream (`-`), with the real CLI's errors.

use std::path::{Path, PathBuf};

use super::{Outcome, daemon_error, err, find_container};
use crate::faults::{FaultKind, fired};
use crate::flags::{Arity, CommandSpec, Flag, Kind, Parsed};
use crate::paths::normalize;
use crate::state::container_fs;
use crate::state::{Container, StateDir};

/// `docker cp`.
pub const CP: CommandSpec = CommandSpec {
    name: "cp",
    usage: "cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\ndocker cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
    about: "Copy files/folders between a container and the local filesystem",
    flags: &[
        Flag {
            long: "archive",
            short: Some('a'),
            kind: Kind::Bool,
            help: "Archive mode (copy all uid/gid information)",
        },
        Flag {
            long: "follow-link",
            short: Some('L'),
            kind: Kind::Bool,
            help: "Always follow symbol link in SRC_PATH",
        },
        Flag {
            long: "quiet",
            short: Some('q'),
            kind: Kind::Bool,
            help: "Suppress progress output during copy",
        },
    ],
    interspersed: true,
    arity: Arity::Exactly(2),
};

/// `docker container cp`.
pub const CONTAINER_CP: CommandSpec = CommandSpec {
    name: "container cp",
    usage: "container cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\ndocker cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
    ..CP
};

/// `NAME:PATH` → Some((NAME, PATH)); local paths (absolute, `.`-relative, or no colon)
/// → None, as the docker CLI splits them.
fn split_container(arg: &str) -> Option<(&str, &str)> {
    if arg.starts_with('/') || arg.starts_with('.') {
        return None;
    }
    arg.split_once(':')
}

/// The path the CLI names when a local copy source is missing (measured): it resolves
/// the parent directory's symlinks first, so a missing directory on the way is named
/// by itself (`lstat /cwd/a` for `./a/b`), and a missing file is the resolved parent,
/// a separator and the name (`lstat //x` for `/x`, as Go's string joining makes it).
fn missing_source_path(path: &Path) -> String {
    let text = path.to_string_lossy();
    let (dir, base) = match text.rfind('/') {
        Some(index) => (&text[..=index], &text[index + 1..]),
        None => ("", text.as_ref()),
    };
    // The first component of the directory that does not exist.
    let mut walked = String::new();
    for component in dir.split('/').filter(|c| !c.is_empty() && *c != ".") {
        walked.push('/');
        walked.push_str(component);
        if std::fs::symlink_metadata(&walked).is_err() {
            return walked;
        }
    }
    let resolved = std::fs::canonicalize(if dir.is_empty() { "/" } else { dir })
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| dir.trim_end_matches('/').to_string());
    if base.is_empty() {
        resolved
    } else {
        format!("{resolved}/{base}")
    }
}

fn absolute(path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

/// Copies like `copy_tree` and returns where the copy is.
fn copy_to(from: &Path, to: PathBuf) -> std::io::Result<PathBuf> {
    copy_tree(from, &to).map(|()| to)
}

/// After a copy out of a container: the `truncate`/`corrupt` faults damage the copied
/// files silently (exit 0); `disk-full` cuts the first file in half and fails as the CLI
/// does when the host disk fills up.
fn faults_after_copy_out(copied: &Path) -> i32 {
    let files = crate::faults::files_under(copied);
    if fired(FaultKind::DiskFull).is_some() {
        if let Some(first) = files.first() {
            let _ = halve(first);
            err(&format!(
                "write {}: no space left on device\n",
                first.display()
            ));
        } else {
            err(&format!(
                "write {}: no space left on device\n",
                copied.display()
            ));
        }
        return 1;
    }
    for file in &files {
        if let Err(e) = crate::faults::damage_copy(file) {
            err(&format!("{e}\n"));
            return 1;
        }
    }
    0
}

/// After a copy into a container (`copied` on the host, `container_path` inside): the
/// daemon's tar extraction runs out of space.
fn faults_after_copy_in(copied: &Path, container_path: &str) -> i32 {
    if fired(FaultKind::DiskFull).is_none() {
        return 0;
    }
    let files = crate::faults::files_under(copied);
    let inside = match files.first() {
        Some(first) => {
            let _ = halve(first);
            let relative = first.strip_prefix(copied).unwrap_or(Path::new(""));
            Path::new(container_path)
                .join(relative)
                .display()
                .to_string()
        }
        None => container_path.to_string(),
    };
    daemon_error(&format!(
        "Error processing tar file(exit status 1): write {}: no space left on device",
        inside.trim_end_matches('/')
    ));
    1
}

/// The `truncate`/`corrupt` faults on a tar stream out of a container: `truncate` cuts
/// the stream inside the first file's data after `bytes=` (default half) of it, as a
/// transfer that breaks off; `corrupt` flips the first byte of that data. Exit 0 both.
fn damage_stream(archive: &mut Vec<u8>) {
    let Some((data, size)) = crate::tar::first_file_data(archive) else {
        return;
    };
    if let Some(fault) = fired(FaultKind::Truncate) {
        let keep = fault.bytes.unwrap_or(size / 2).min(size);
        archive.truncate(data + usize::try_from(keep).unwrap_or(0));
    } else if fired(FaultKind::Corrupt).is_some() && size > 0 {
        archive[data] ^= 0xff;
    }
}

/// Cuts a file to half its length (what was written before the disk filled up).
fn halve(path: &Path) -> std::io::Result<()> {
    let length = std::fs::metadata(path)?.len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .set_len(length / 2)
}

/// Recursively copies a file or directory.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    if from.is_dir() {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        std::fs::copy(from, to).map(|_| ())
    }
}

fn base_name(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    trimmed
        .rsplit('/')
        .next()
        .filter(|b| !b.is_empty())
        .unwrap_or("/")
        .to_string()
}

/// `docker cp`.
pub fn cp(_spec: &CommandSpec, parsed: &Parsed) -> Outcome {
    let source = &parsed.positionals[0];
    let destination = &parsed.positionals[1];
    match (split_container(source), split_container(destination)) {
        (Some(_), Some(_)) => {
            err("copying between containers is not supported\n");
            Ok(1)
        }
        (None, None) => {
            err("must specify at least one container source\n");
            Ok(1)
        }
        (Some((name, path)), None) => {
            let state = StateDir::from_env()?;
            let Some(container) = find_container(&state, name)? else {
                daemon_error(&format!("No such container: {name}"));
                return Ok(1);
            };
            Ok(from_container(&state, &container, name, path, destination))
        }
        (None, Some((name, path))) => {
            let state = StateDir::from_env()?;
            let Some(container) = find_container(&state, name)? else {
                daemon_error(&format!("No such container: {name}"));
                return Ok(1);
            };
            Ok(into_container(
                &state,
                &container,
                source,
                destination,
                path,
            ))
        }
    }
}

/// Owners the container's image gives its `files:` (everything else is root's), by host path.
fn image_owners(
    state: &StateDir,
    container: &Container,
) -> std::collections::HashMap<PathBuf, (u64, u64)> {
    let root = state.rootfs_path(&container.id);
    let images = super::load_definitions().unwrap_or_default();
    let Some(image) = images.iter().find(|image| image.id == container.image_id) else {
        return Default::default();
    };
    image
        .files
        .iter()
        .map(|(path, file)| {
            (
                root.join(path.trim_start_matches('/')),
                (file.uid, file.gid),
            )
        })
        .collect()
}

fn from_container(
    state: &StateDir,
    container: &Container,
    name: &str,
    path: &str,
    destination: &str,
) -> i32 {
    let fs = container_fs(state, container);
    let container_path = normalize("/", path);
    let host = fs.resolve("/", &container_path).host;
    if host.symlink_metadata().is_err() {
        daemon_error(&format!(
            "Could not find the file {container_path} in container {name}"
        ));
        return 1;
    }
    if destination == "-" {
        if fired(FaultKind::DiskFull).is_some() {
            err("write /dev/stdout: no space left on device\n");
            return 1;
        }
        let owners = image_owners(state, container);
        let owner = |path: &Path| owners.get(path).copied().unwrap_or((0, 0));
        let mut archive = Vec::new();
        let result =
            crate::tar::write_tree_owned(&mut archive, &host, &base_name(&container_path), &owner)
                .and_then(|()| crate::tar::finish(&mut archive));
        if let Err(e) = result {
            err(&format!("{e}\n"));
            return 1;
        }
        damage_stream(&mut archive);
        return match std::io::Write::write_all(&mut std::io::stdout().lock(), &archive) {
            Ok(()) => 0,
            Err(e) => {
                err(&format!("{e}\n"));
                1
            }
        };
    }
    let target = absolute(destination);
    let cleaned = absolute(destination.trim_end_matches('/'));
    if let Some(parent) = cleaned.parent()
        && !parent.is_dir()
    {
        err(&format!(
            "invalid output path: directory \"{}\" does not exist\n",
            parent.display()
        ));
        return 1;
    }
    let trailing = destination.ends_with('/');
    let target_display = format!("{}{}", cleaned.display(), if trailing { "/" } else { "" });
    let result = match std::fs::metadata(&cleaned) {
        Ok(meta) if meta.is_dir() => copy_to(&host, cleaned.join(base_name(&container_path))),
        Ok(_) if trailing => {
            err(&format!("stat {target_display}: not a directory\n"));
            return 1;
        }
        Ok(_) if host.is_dir() => {
            err("cannot copy directory\n");
            return 1;
        }
        Ok(_) => copy_to(&host, cleaned.clone()),
        Err(_) if trailing => {
            err(&format!(
                "stat {target_display}: no such file or directory\n"
            ));
            return 1;
        }
        Err(_) => copy_to(&host, target.clone()),
    };
    match result {
        Ok(copied) => faults_after_copy_out(&copied),
        Err(e) => {
            err(&format!("{e}\n"));
            1
        }
    }
}

fn into_container(
    state: &StateDir,
    container: &Container,
    source: &str,
    destination: &str,
    path: &str,
) -> i32 {
    let fs = container_fs(state, container);
    let container_path = normalize("/", path);
    let resolved = fs.resolve("/", &container_path);
    if resolved.read_only {
        daemon_error("container rootfs is marked read-only");
        return 1;
    }
    let host = resolved.host;
    if source == "-" {
        if !host.is_dir() {
            err(&format!(
                "destination \"{destination}\" must be a directory\n"
            ));
            return 1;
        }
        if fired(FaultKind::DiskFull).is_some() {
            daemon_error(&format!(
                "Error processing tar file(exit status 1): write {container_path}: no space left on device"
            ));
            return 1;
        }
        // Each entry lands where the container sees its path: through its mounts (an
        // archive extracted at `/` with a `workspace/` entry reaches a volume there).
        let place = |relative: &Path| {
            let inside = format!(
                "{}/{}",
                container_path.trim_end_matches('/'),
                relative.display()
            );
            fs.resolve("/", &inside).host
        };
        return match crate::tar::extract_with(&mut std::io::stdin().lock(), &place) {
            Ok(()) => 0,
            Err(e) => {
                err(&format!("{e}\n"));
                1
            }
        };
    }
    let local = absolute(source);
    let Ok(local_meta) = std::fs::symlink_metadata(&local) else {
        err(&format!(
            "lstat {}: no such file or directory\n",
            missing_source_path(&local)
        ));
        return 1;
    };
    let result = match std::fs::metadata(&host) {
        Ok(meta) if meta.is_dir() => copy_to(&local, host.join(base_name(source))).map(|copied| {
            (
                copied,
                format!(
                    "{}/{}",
                    container_path.trim_end_matches('/'),
                    base_name(source)
                ),
            )
        }),
        Ok(_) if local_meta.is_dir() || path.ends_with('/') => {
            err("cannot copy directory\n");
            return 1;
        }
        Ok(_) => copy_to(&local, host.clone()).map(|copied| (copied, container_path.clone())),
        Err(_) => {
            let parent_ok = host.parent().is_some_and(Path::is_dir);
            if path.ends_with('/') || !parent_ok {
                err("no such directory\n");
                return 1;
            }
            copy_to(&local, host.clone()).map(|copied| (copied, container_path.clone()))
        }
    };
    match result {
        Ok((copied, inside)) => faults_after_copy_in(&copied, &inside),
        Err(e) => {
            err(&format!("{e}\n"));
            1
        }
    }
}
