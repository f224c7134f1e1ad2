//! `dockproof clean`: reap what a killed run left behind — containers, networks,
//! volumes and images labelled `dockproof.run`, and `dockproof-*` temporary
//! directories (with the fake backend's containers that live in them).
//!
//! `--run ID` matches exactly: the label value `ID` (never a prefix), and the run
//! directories `dockproof-ID.XXXXXX` (see [`crate::run_id`]), so cleaning `ci-7` leaves
//! `ci-7-retry` alone.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::backend::cli::CliBackend;
use crate::backend::sweep::{self, SweepPlan};
use crate::backend::{Backend, ResourceKind};
use crate::run_id;

/// What to reap.
#[derive(Debug, Clone, Default)]
pub struct CleanOptions {
    /// Only what this run created (default: every run's leftovers).
    pub run_id: Option<String>,
    /// Only what is at least this old.
    pub older_than: Option<Duration>,
    /// Say what would be removed without removing it.
    pub dry_run: bool,
    /// Runs that are still alive (see [`live_runs`]): nothing of theirs is removed.
    pub live: Vec<LiveRunInfo>,
    /// Remove live runs' leftovers too (`--force`): no directory is kept for being held.
    pub force: bool,
}

/// A run that is still going: its id and the pid that holds its run directory's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRunInfo {
    pub run_id: String,
    pub pid: u32,
}

/// The runs under `dir` that are still alive: their run directory's `live.lock` is held
/// (see [`run_id::LiveRun`]). A run on another machine sharing the daemon has no
/// directory here, so it cannot be seen: give `--run ID` there.
pub fn live_runs(dir: &Path) -> Vec<LiveRunInfo> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut live: Vec<LiveRunInfo> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let run = run_id::of_dir(&name)?.to_owned();
            let pid = run_id::live_pid(&entry.path())?;
            Some(LiveRunInfo { run_id: run, pid })
        })
        .collect();
    live.sort_by(|a, b| a.run_id.cmp(&b.run_id));
    live.dedup();
    live
}

/// What was (or would be) removed, and what could not be.
#[derive(Debug, Default)]
pub struct CleanReport {
    pub containers: Vec<String>,
    /// Networks, volumes (a compose project's) and images built for a run, as
    /// `network NAME` / `volume NAME` / `image ID`.
    pub resources: Vec<String>,
    pub directories: Vec<PathBuf>,
    /// Live runs left alone, said once each.
    pub kept: Vec<LiveRunInfo>,
    pub problems: Vec<String>,
}

impl CleanReport {
    fn keep(&mut self, run: &LiveRunInfo) {
        if !self.kept.contains(run) {
            self.kept.push(run.clone());
        }
    }
}

fn old_enough(created: Option<SystemTime>, older_than: Option<Duration>) -> bool {
    match (older_than, created) {
        (None, _) => true,
        (Some(age), Some(created)) => SystemTime::now()
            .duration_since(created)
            .is_ok_and(|elapsed| elapsed >= age),
        // Without a creation time, be careful: keep it.
        (Some(_), None) => false,
    }
}

/// Remove containers carrying the run label through `backend`.
pub async fn containers(backend: &dyn Backend, options: &CleanOptions, report: &mut CleanReport) {
    if let Some(run) = &options.run_id
        && let Some(live) = options.live.iter().find(|live| &live.run_id == run)
    {
        report.keep(live);
        return;
    }
    let label = match &options.run_id {
        Some(run) => format!("dockproof.run={run}"),
        None => "dockproof.run".to_owned(),
    };
    // Everything labelled, less what the live runs labelled.
    let mut spared: Vec<String> = Vec::new();
    for live in &options.live {
        match backend
            .list_labelled(&format!("dockproof.run={}", live.run_id))
            .await
        {
            Ok(ids) => spared.extend(ids),
            Err(error) => {
                report.problems.push(format!(
                    "cannot list the containers of live run {} on `{}`: {error}",
                    live.run_id,
                    backend.name()
                ));
                return;
            }
        }
    }
    let listed = match sweep::labelled_containers(backend, &label).await {
        Ok(listed) => listed,
        Err(error) => {
            report.problems.push(format!(
                "cannot list containers on `{}`: {error}",
                backend.name()
            ));
            return;
        }
    };
    let mut chosen = Vec::new();
    for id in listed {
        if spared.contains(&id) {
            continue;
        }
        let created = backend.inspect_json(&id).await.ok().and_then(|inspect| {
            inspect["Created"]
                .as_str()
                .and_then(|text| humantime::parse_rfc3339_weak(text).ok())
        });
        if old_enough(created, options.older_than) {
            chosen.push(id);
        }
    }
    // A compose project's networks and volumes, and images built for a run, carry the label
    // too; they can go once their containers are gone. With an age filter they stay: a
    // younger run may still be using them. A live run's stay too.
    let mut spared_resources: Vec<(ResourceKind, String)> = Vec::new();
    if options.older_than.is_none() {
        for kind in ResourceKind::ALL {
            for live in &options.live {
                if let Ok(names) = backend
                    .list_labelled_resources(kind, &format!("dockproof.run={}", live.run_id))
                    .await
                {
                    spared_resources.extend(names.into_iter().map(|name| (kind, name)));
                }
            }
        }
    }
    let plan = SweepPlan {
        resources: options.older_than.is_none(),
        dry_run: options.dry_run,
        spared: &spared_resources,
    };
    let swept = sweep::sweep(backend, &label, chosen, plan).await;
    report.resources.extend(swept.resource_names());
    report.containers.extend(swept.containers);
    report.problems.extend(swept.problems);
}

/// The `dockproof-*` entries of `dir` that `options` selects: with a run id, that run's
/// directories only (`dockproof-ID.XXXXXX`, the id matched whole).
fn leftover_directories(dir: &Path, options: &CleanOptions) -> Vec<PathBuf> {
    let selected = |name: &str| match &options.run_id {
        Some(run) => run_id::of_dir(name) == Some(run.as_str()),
        None => name.starts_with(run_id::DIR_PREFIX),
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .filter(|entry| selected(&entry.file_name().to_string_lossy()))
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
        .filter(|entry| {
            old_enough(
                entry.metadata().and_then(|meta| meta.modified()).ok(),
                options.older_than,
            )
        })
        .map(|entry| entry.path())
        .collect();
    found.sort();
    found
}

/// Remove leftover temporary directories under `dir`; fake-docker containers
/// still running from a run directory are removed first.
pub async fn directories(
    dir: &Path,
    fake_docker: Option<&Path>,
    options: &CleanOptions,
    report: &mut CleanReport,
) {
    for path in leftover_directories(dir, options) {
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(live) = options
            .live
            .iter()
            .find(|live| run_id::of_dir(&name) == Some(live.run_id.as_str()))
        {
            report.keep(live);
            continue;
        }
        // Any other directory a live process holds (a canary's fake host state).
        if !options.force
            && let Some(pid) = run_id::live_pid(&path)
        {
            report.keep(&LiveRunInfo { run_id: name, pid });
            continue;
        }
        let state = path.join("fake-docker-state");
        if let Some(program) = fake_docker.filter(|_| state.is_dir()) {
            // Everything in a run directory's fake state belongs to that run.
            let backend = CliBackend::new(
                "fake",
                program,
                vec![("FAKE_DOCKER_STATE".into(), state.into_os_string())],
            );
            let everything = CleanOptions {
                run_id: None,
                older_than: None,
                dry_run: options.dry_run,
                live: Vec::new(),
                force: false,
            };
            containers(&backend, &everything, report).await;
        }
        if !options.dry_run {
            // The fake's state on a tmpfs, which the run directory links to.
            crate::backend::fakestate::release(&path);
        }
        remove_directory(path, options.dry_run, report);
    }
    // The fake's tmpfs directories whose run directory was removed by something else
    // (a killed run's temporary directory deleted): nothing else would ever take them.
    if options.run_id.is_none() && options.older_than.is_none() {
        for orphan in crate::backend::fakestate::orphans() {
            remove_directory(orphan, options.dry_run, report);
        }
    }
}

/// Remove `path` (unless `dry_run`) and report it removed, or why it could not be. A
/// directory that went while this ran (a live run under --force finishing and removing
/// its own) is gone, which is what was asked.
fn remove_directory(path: PathBuf, dry_run: bool, report: &mut CleanReport) {
    if !dry_run
        && let Err(error) = crate::workspace::remove_tree(&path)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        report
            .problems
            .push(format!("cannot remove {}: {error}", path.display()));
        return;
    }
    report.directories.push(path);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_directories_by_run_and_age() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "dockproof-r1.abc",
            "dockproof-r1-retry.ghi",
            "dockproof-r2.def",
            "dockproof-build-xyz",
            "other",
        ] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
        }
        let names = |options: &CleanOptions| -> Vec<String> {
            leftover_directories(dir.path(), options)
                .iter()
                .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(
            names(&CleanOptions::default()),
            [
                "dockproof-build-xyz",
                "dockproof-r1-retry.ghi",
                "dockproof-r1.abc",
                "dockproof-r2.def"
            ]
        );
        // Exactly that run: not `r1-retry`, whose id merely starts with `r1`.
        assert_eq!(
            names(&CleanOptions {
                run_id: Some("r1".into()),
                ..CleanOptions::default()
            }),
            ["dockproof-r1.abc"]
        );
        assert_eq!(
            names(&CleanOptions {
                run_id: Some("r1-retry".into()),
                ..CleanOptions::default()
            }),
            ["dockproof-r1-retry.ghi"]
        );
        assert!(
            names(&CleanOptions {
                older_than: Some(Duration::from_secs(3600)),
                ..CleanOptions::default()
            })
            .is_empty()
        );
    }

    #[tokio::test]
    async fn a_live_run_is_kept_and_an_ended_one_removed() {
        let dir = tempfile::tempdir().unwrap();
        let live_dir = dir.path().join("dockproof-live-1.abc");
        let ended_dir = dir.path().join("dockproof-ended-1.def");
        std::fs::create_dir(&live_dir).unwrap();
        std::fs::create_dir(&ended_dir).unwrap();
        let claim = run_id::LiveRun::claim(&live_dir).unwrap();
        // The ended run had claimed its directory too, and let go (as a killed run's
        // lock is let go by the kernel).
        drop(run_id::LiveRun::claim(&ended_dir).unwrap());
        let live = live_runs(dir.path());
        assert_eq!(
            live,
            [LiveRunInfo {
                run_id: "live-1".into(),
                pid: std::process::id()
            }]
        );
        for run in [None, Some("live-1".to_owned())] {
            let options = CleanOptions {
                run_id: run,
                live: live.clone(),
                ..CleanOptions::default()
            };
            let mut report = CleanReport::default();
            directories(dir.path(), None, &options, &mut report).await;
            assert!(live_dir.is_dir(), "a live run's directory was removed");
            assert_eq!(report.kept, live);
        }
        assert!(!ended_dir.exists(), "the ended run's directory stays");
        // Once the run ends, it goes.
        drop(claim);
        let options = CleanOptions {
            live: live_runs(dir.path()),
            ..CleanOptions::default()
        };
        let mut report = CleanReport::default();
        directories(dir.path(), None, &options, &mut report).await;
        assert!(!live_dir.exists());
        assert!(report.kept.is_empty());
    }
}
