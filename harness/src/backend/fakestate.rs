//! Where the fake's "daemon" keeps its runtime state during a run.
//!
//! fake-docker's state directory is what a daemon keeps in `/run`: container records,
//! each container's root tree, logs, counters. A job scenario creates and deletes a few
//! dozen files there; on a disk file system that churn costs more than the rest of the
//! scenario (inode allocation and journal work), on a tmpfs it is memory. So a run's
//! state is a private directory on a tmpfs (`$XDG_RUNTIME_DIR`, else `/dev/shm`, when
//! it is a writable tmpfs), reached through the symlink `RUN_DIR/fake-docker-state`:
//! every path dockproof prints or hands over (`FAKE_DOCKER_STATE=RUN_DIR/fake-docker-state
//! fake-docker inspect ID` after `--keep-failed`) stays true, and removing the run
//! directory ([`release`]) removes the state it points to. Without a tmpfs the state
//! is that directory itself, as before. `FAKE_DOCKER_STATE` set by the user wins.
//!
//! The fake's job workspaces churn files the same way (a workspace, its inputs and
//! outputs, made and removed per scenario) and are only ever seen by fake containers,
//! which are processes on this machine: they live on the same tmpfs, behind the symlink
//! `RUN_DIR/workspaces` ([`prepare_workspaces`]). On a disk without a journal that churn
//! cost a third of the fake's throughput (benchmarks.md, row 3). A workspace is bounded
//! by its `max_bytes`, like a container's log here.
//!
//! The run's filestore (`RUN_DIR/filestore`, where uploads go) and the `--env-file`
//! files of its calls (`RUN_DIR/scratch`) are made on the same tmpfs for the fake: a job
//! scenario creates a directory and two or three files there, and on a disk file system
//! that has just deleted many files (a bench, a CI machine) creating an inode costs more
//! than the rest of the scenario (`recently_deleted` in ext4's inode allocation: 14% of
//! the CPU of 1,000 fake job scenarios, benchmarks.md row 3). The filestore lives as long
//! as the run directory, so what a run uploads is held in memory until the run ends:
//! a suite that uploads more than the tmpfs holds fails its uploads with "No space left
//! on device" — set `DOCKPROOF_FAKE_TMPFS=0`, which keeps all four on disk, in the run
//! directory itself.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The state's name inside a run directory (a directory, or a symlink to one).
pub const STATE_NAME: &str = "fake-docker-state";

/// The workspaces' directory inside a run directory (a directory, or a symlink to one).
pub const WORKSPACES_NAME: &str = "workspaces";

/// The fake run's filestore inside a run directory (a directory, or a symlink to one).
pub const FILESTORE_NAME: &str = "filestore";

/// Where the fake backend's `--env-file` files are written, inside a run directory (a
/// directory, or a symlink to one).
pub const SCRATCH_NAME: &str = "scratch";

/// Every name [`prepare_named`] may have made a symlink in a run directory.
const NAMES: [&str; 4] = [STATE_NAME, WORKSPACES_NAME, FILESTORE_NAME, SCRATCH_NAME];

/// `DOCKPROOF_FAKE_TMPFS=0`: the fake's state, workspaces, filestore and scratch files
/// stay on disk.
pub const SWITCH: &str = "DOCKPROOF_FAKE_TMPFS";

/// Prefix of the private directories made on a tmpfs; [`release`] removes nothing else.
const TARGET_PREFIX: &str = "dockproof-fake-state-";

/// The file in a tmpfs directory naming the symlink that leads to it.
const LINK_MARK: &str = ".dockproof-link";

/// The private tmpfs directories whose run directory is gone: each names the symlink
/// that led to it ([`LINK_MARK`]), and that symlink no longer does (the run directory
/// was removed without `dockproof clean`, as a killed run's temporary directory is). A
/// directory without the mark (made by an older dockproof, or still being set up) is
/// never one. `dockproof clean` removes them.
pub fn orphans() -> Vec<PathBuf> {
    let mut found = Vec::new();
    for candidate in candidates() {
        let Ok(entries) = std::fs::read_dir(&candidate) else {
            continue;
        };
        for entry in entries.flatten() {
            let target = entry.path();
            let ours = entry
                .file_name()
                .to_string_lossy()
                .starts_with(TARGET_PREFIX)
                && entry.file_type().is_ok_and(|kind| kind.is_dir());
            if !ours {
                continue;
            }
            let Ok(mark) = std::fs::read(target.join(LINK_MARK)) else {
                continue;
            };
            let link = PathBuf::from(std::ffi::OsStr::from_bytes(&mark));
            if std::fs::read_link(&link).ok().as_deref() != Some(target.as_path()) {
                found.push(target);
            }
        }
    }
    found.sort();
    found
}

/// The state directory for a run (or one host of a run) whose directory is `run_dir`:
/// `run_dir/fake-docker-state`, made a symlink to a new private directory on a tmpfs
/// when one is usable (else left for fake-docker to create as a plain directory).
pub fn prepare(run_dir: &Path) -> PathBuf {
    prepare_named(run_dir, STATE_NAME)
}

/// The fake's workspaces directory for a run (or one host of it) whose directory is
/// `run_dir`: `run_dir/workspaces`, a symlink to a private directory on a tmpfs when one
/// is usable (else left to be created as a plain directory).
pub fn prepare_workspaces(run_dir: &Path) -> PathBuf {
    prepare_named(run_dir, WORKSPACES_NAME)
}

/// The fake run's filestore for a run (or one host of it) whose directory is `run_dir`:
/// `run_dir/filestore`, a symlink to a private directory on a tmpfs when one is usable
/// (else left to be created as a plain directory, by the filestore).
pub fn prepare_filestore(run_dir: &Path) -> PathBuf {
    prepare_named(run_dir, FILESTORE_NAME)
}

/// The directory for the fake backend's `--env-file` files in a run (or one host of
/// it): `run_dir/scratch`, on a tmpfs when one is usable, else a plain directory. Made
/// here in both cases (nothing else creates it).
pub fn prepare_scratch(run_dir: &Path) -> std::io::Result<PathBuf> {
    let dir = prepare_named(run_dir, SCRATCH_NAME);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// `run_dir/name`, made a symlink to a new private directory on a tmpfs when one is
/// usable and not switched off.
fn prepare_named(run_dir: &Path, name: &str) -> PathBuf {
    let link = run_dir.join(name);
    if std::fs::symlink_metadata(&link).is_ok() {
        return link;
    }
    if std::env::var_os(SWITCH).is_some_and(|value| value == "0") {
        return link;
    }
    for candidate in candidates() {
        let Ok(target) = tempfile::Builder::new()
            .prefix(TARGET_PREFIX)
            .tempdir_in(&candidate)
        else {
            continue;
        };
        let target = target.keep();
        if std::os::unix::fs::symlink(&target, &link).is_ok() {
            // Written after the link exists: a directory with the mark and no link back
            // to it is an orphan ([`orphans`]); one without the mark is never taken.
            if let Ok(absolute) = std::path::absolute(&link) {
                let _ = std::fs::write(
                    target.join(LINK_MARK),
                    absolute.as_os_str().as_encoded_bytes(),
                );
            }
            return link;
        }
        let _ = std::fs::remove_dir(&target);
        break;
    }
    link
}

/// Remove the tmpfs directories the state symlinks in `run_dir` (and its `host-*`
/// directories) point to; the symlinks themselves go with the run directory.
pub fn release(run_dir: &Path) {
    for name in NAMES {
        release_one(&run_dir.join(name));
    }
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with("host-")
            && entry.file_type().is_ok_and(|kind| kind.is_dir())
        {
            for name in NAMES {
                release_one(&entry.path().join(name));
            }
        }
    }
}

/// Remove what the symlink `link` points to, if it is one of ours.
fn release_one(link: &Path) {
    let Ok(target) = std::fs::read_link(link) else {
        return;
    };
    let ours = target.is_absolute()
        && target
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with(TARGET_PREFIX))
        && std::fs::symlink_metadata(&target).is_ok_and(|meta| meta.is_dir());
    if ours {
        let _ = crate::workspace::remove_tree(&target);
    }
}

/// Writable tmpfs directories to hold the state, best first.
fn candidates() -> Vec<PathBuf> {
    std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from("/dev/shm")])
        .filter(|dir| dir.is_absolute() && is_tmpfs(dir))
        .collect()
}

/// Whether `dir` is on a tmpfs (memory, nothing written to a disk).
fn is_tmpfs(dir: &Path) -> bool {
    nix::sys::statfs::statfs(dir)
        .is_ok_and(|stats| stats.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_is_reached_through_the_run_dir_and_released_with_it() {
        let run_dir = tempfile::tempdir().unwrap();
        let state = prepare(run_dir.path());
        assert_eq!(state, run_dir.path().join(STATE_NAME));
        std::fs::create_dir_all(state.join("containers")).unwrap();
        std::fs::write(state.join("containers/record"), "x").unwrap();
        let target = std::fs::read_link(&state).ok();
        assert_eq!(target.is_some(), !candidates().is_empty());
        // Preparing again keeps what is there.
        assert_eq!(prepare(run_dir.path()), state);
        assert!(state.join("containers/record").is_file());
        release(run_dir.path());
        if let Some(target) = target {
            assert!(!target.exists(), "{} is still there", target.display());
        } else {
            assert!(state.join("containers/record").is_file());
        }
    }

    #[test]
    fn workspaces_are_reached_through_the_run_dir_and_released_with_it() {
        let run_dir = tempfile::tempdir().unwrap();
        let host = run_dir.path().join("host-a");
        std::fs::create_dir(&host).unwrap();
        let mut targets = Vec::new();
        for dir in [run_dir.path(), host.as_path()] {
            let workspaces = prepare_workspaces(dir);
            assert_eq!(workspaces, dir.join(WORKSPACES_NAME));
            // What the engine does with it: a workspace made inside.
            let workspace = crate::workspace::Workspace::create(
                &workspaces,
                "dockproof-ws-",
                crate::workspace::Limits::default(),
            )
            .unwrap();
            std::fs::write(workspace.root().join("out.txt"), "x").unwrap();
            let target = std::fs::read_link(&workspaces).ok();
            assert_eq!(target.is_some(), !candidates().is_empty());
            targets.extend(target);
            std::mem::forget(workspace);
        }
        release(run_dir.path());
        for target in targets {
            assert!(!target.exists(), "{} is still there", target.display());
        }
    }

    #[tokio::test]
    async fn the_filestore_and_scratch_files_are_reached_through_the_run_dir_and_released_with_it()
    {
        let run_dir = tempfile::tempdir().unwrap();
        let filestore = prepare_filestore(run_dir.path());
        assert_eq!(filestore, run_dir.path().join(FILESTORE_NAME));
        let scratch = prepare_scratch(run_dir.path()).unwrap();
        assert_eq!(scratch, run_dir.path().join(SCRATCH_NAME));
        assert!(
            scratch.is_dir(),
            "the scratch directory is made in every case"
        );
        // What the run does with them: an upload, an env file.
        let store = crate::filestore::Filestore::local(&filestore).unwrap();
        store
            .put("jobs/1/summary.json", b"{}".to_vec())
            .await
            .unwrap();
        assert!(filestore.join("jobs/1/summary.json").is_file());
        std::fs::write(scratch.join("dockproof-env-x"), "A=1").unwrap();
        let targets: Vec<PathBuf> = [&filestore, &scratch]
            .into_iter()
            .filter_map(|link| std::fs::read_link(link).ok())
            .collect();
        assert_eq!(targets.len(), if candidates().is_empty() { 0 } else { 2 });
        for target in &targets {
            assert!(is_tmpfs(target), "{} is not on a tmpfs", target.display());
        }
        drop(store);
        release(run_dir.path());
        for target in targets {
            assert!(!target.exists(), "{} is still there", target.display());
        }
    }

    #[test]
    fn a_directory_whose_run_directory_is_gone_is_an_orphan() {
        if candidates().is_empty() {
            return;
        }
        let kept = tempfile::tempdir().unwrap();
        let gone = tempfile::tempdir().unwrap();
        let live = std::fs::read_link(prepare(kept.path())).unwrap();
        let orphan = std::fs::read_link(prepare_workspaces(gone.path())).unwrap();
        assert!(!orphans().contains(&live));
        assert!(!orphans().contains(&orphan));
        // The run directory removed by something else: its link goes, the target stays.
        drop(gone);
        assert!(orphan.is_dir());
        assert!(orphans().contains(&orphan));
        assert!(!orphans().contains(&live));
        // Without the mark (an older dockproof's, or one being set up): never taken.
        std::fs::remove_file(orphan.join(LINK_MARK)).unwrap();
        assert!(!orphans().contains(&orphan));
        std::fs::remove_dir_all(&orphan).unwrap();
        release(kept.path());
    }

    #[test]
    fn a_symlink_to_anything_else_is_not_followed() {
        let run_dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::write(elsewhere.path().join("precious"), "x").unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), run_dir.path().join(STATE_NAME)).unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), run_dir.path().join(WORKSPACES_NAME)).unwrap();
        release(run_dir.path());
        assert!(elsewhere.path().join("precious").is_file());
    }
}
