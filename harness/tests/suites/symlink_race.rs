//! A job that swaps workspace paths between a file and a symlink to a host file while
//! dockproof stages, uploads, checksums, collects and walks them never gets a host file
//! read or written (issue 13, item 1).
//!
//! A host sentinel (mode 0600, known content) sits outside the workspace. A flipper swaps
//! `x` between a regular file and a symlink to the sentinel, and `d` between a directory
//! and a symlink to the sentinel's directory, as fast as it can, while dockproof works on
//! `x`, `d/sentinel` and `d/new`. Afterwards the sentinel's content, mode and mtime are
//! unchanged, nothing was created next to it, and its content appears in nothing dockproof
//! read, stored (filestore) or reported.
//!
//! - fake: the flipper is a thread of this test (on the fake backend a job is a host
//!   process sharing the workspace, which is what the thread is), swapping with
//!   `renameat2(RENAME_EXCHANGE)`; the race runs against the workspace API the engine
//!   uses, then end to end through `dockproof run --backend fake` on generated scenarios.
//! - docker-cli: the flipper is a detached busybox container (`ln -sfn`/`mv`/`rm`/`mkdir`
//!   in a shell loop) with the workspace mounted, started with the docker CLI, racing the
//!   workspace API, then end to end through `dockproof run --backend docker-cli` with the
//!   flipper as a `service` step of each scenario.
//!
//! A job-made 1,000-deep tree and a 100,000-entry tree end as `workspace_limit_exceeded`
//! at the run step, with a report and nothing left behind, not as a crash.

use crate::support;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dockproof::workspace::{Collected, Limits, Workspace, WorkspaceError, sha256_collected};
use libtest_mimic::{Failed, Trial};

/// Flips each backend must reach (the bar).
const MIN_FLIPS: u64 = 10_000;
/// Operations each workspace-API race makes at least.
const MIN_OPERATIONS: u64 = 5_000;

/// A host file outside every workspace, and what it must still be at the end.
struct Sentinel {
    dir: tempfile::TempDir,
    content: String,
    mode: u32,
    mtime: (i64, i64),
    ino: u64,
}

impl Sentinel {
    fn plant() -> Sentinel {
        let dir = tempfile::Builder::new()
            .prefix("wsjail-host-")
            .tempdir()
            .unwrap();
        let content = format!(
            "wsjail host sentinel {} {:?}: must never be read or written\n",
            std::process::id(),
            Instant::now()
        );
        let path = dir.path().join("sentinel");
        std::fs::write(&path, &content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        // Readable by the container's root through the symlink if anything followed it.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let metadata = std::fs::metadata(&path).unwrap();
        Sentinel {
            content,
            mode: metadata.mode(),
            mtime: (metadata.mtime(), metadata.mtime_nsec()),
            ino: metadata.ino(),
            dir,
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("sentinel")
    }

    /// Fails unless the sentinel is untouched and alone in its directory.
    fn check_untouched(&self) -> Result<(), String> {
        let path = self.path();
        let metadata = std::fs::metadata(&path).map_err(|error| format!("sentinel: {error}"))?;
        let content = std::fs::read_to_string(&path).map_err(|e| format!("sentinel: {e}"))?;
        if content != self.content {
            return Err(format!("the host sentinel was overwritten: {content:?}"));
        }
        if metadata.mode() != self.mode || metadata.ino() != self.ino {
            return Err(format!(
                "the host sentinel's mode or inode changed: {:o} (was {:o})",
                metadata.mode(),
                self.mode
            ));
        }
        if (metadata.mtime(), metadata.mtime_nsec()) != self.mtime {
            return Err("the host sentinel's mtime changed: it was written".into());
        }
        let names: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        if names != ["sentinel"] {
            return Err(format!(
                "files appeared next to the host sentinel: {names:?}"
            ));
        }
        Ok(())
    }

    /// Fails if the sentinel's content is in any file below `dir` (symlinks not followed).
    fn check_absent_below(&self, dir: &Path) -> Result<u64, String> {
        let needle = self.content.trim_end().as_bytes();
        let mut stack = vec![dir.to_path_buf()];
        let mut files = 0;
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_dir() {
                    stack.push(entry.path());
                } else if kind.is_file() {
                    files += 1;
                    let bytes = std::fs::read(entry.path()).unwrap_or_default();
                    if bytes.windows(needle.len()).any(|window| window == needle) {
                        return Err(format!(
                            "the host sentinel's content is in {}",
                            entry.path().display()
                        ));
                    }
                }
            }
        }
        Ok(files)
    }
}

fn c_path(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap()
}

/// Swap two names atomically (both must exist).
fn exchange(a: &CString, b: &CString) -> bool {
    // SAFETY: both are valid NUL-terminated paths; renameat2 only reads them.
    unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        ) == 0
    }
}

/// Set up `x`/`x.alt` (file and symlink to the sentinel) and `d`/`d.alt` (directory and
/// symlink to the sentinel's directory) in `workspace`, as a job would.
fn plant_flip_pairs(workspace: &Path, sentinel: &Sentinel) {
    // O_CREAT|O_EXCL: never through a symlink already there (the test must not write the
    // sentinel itself).
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(workspace.join("x"))
    {
        let _ = std::io::Write::write_all(&mut file, b"job data\n");
    }
    let _ = std::os::unix::fs::symlink(sentinel.path(), workspace.join("x.alt"));
    let _ = std::fs::create_dir(workspace.join("d"));
    let _ = std::os::unix::fs::symlink(sentinel.dir.path(), workspace.join("d.alt"));
}

/// A host-process flipper: swaps the pairs in every workspace `find` returns until `stop`.
fn spawn_flipper(
    sentinel: Arc<Sentinel>,
    find: impl Fn() -> Vec<PathBuf> + Send + 'static,
    stop: Arc<AtomicBool>,
    flips: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut known: Vec<(PathBuf, [CString; 4])> = Vec::new();
        let mut round = 0u64;
        while !stop.load(Ordering::Relaxed) {
            if round.is_multiple_of(64) {
                for workspace in find() {
                    if known.iter().all(|(path, _)| *path != workspace) {
                        let _ = std::fs::write(workspace.join(".flip"), "");
                        plant_flip_pairs(&workspace, &sentinel);
                        let names =
                            ["x", "x.alt", "d", "d.alt"].map(|n| c_path(&workspace.join(n)));
                        known.push((workspace, names));
                    }
                }
                known.retain(|(path, _)| path.exists());
            }
            round += 1;
            if known.is_empty() {
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
            for (workspace, [x, x_alt, d, d_alt]) in &known {
                for (a, b) in [(x, x_alt), (d, d_alt)] {
                    if exchange(a, b) {
                        flips.fetch_add(1, Ordering::Relaxed);
                    } else if workspace.join(".flip").exists() {
                        // dockproof replaced one of the pair: plant it again (not once the
                        // workspace is being removed: dockproof renames it first, so
                        // `.flip` is gone from this path — a job's containers are gone
                        // by then).
                        plant_flip_pairs(workspace, &sentinel);
                    }
                }
            }
        }
    })
}

/// What the workspace-API race saw.
#[derive(Debug, Default)]
struct Tally {
    operations: u64,
    succeeded: u64,
    refused_outside: u64,
    refused_other: u64,
    io_errors: u64,
}

impl Tally {
    fn count(&mut self, result: Result<(), WorkspaceError>) {
        self.operations += 1;
        match result {
            Ok(()) => self.succeeded += 1,
            Err(WorkspaceError::UnsafePath { reason, .. }) if reason.contains("outside") => {
                self.refused_outside += 1
            }
            Err(WorkspaceError::UnsafePath { .. }) => self.refused_other += 1,
            // A name swapped between two steps of one operation (gone, not a directory).
            Err(_) => self.io_errors += 1,
        }
    }
}

/// Stage, collect + checksum + read, and walk `x`, `d/sentinel`, `d/new` until `done`,
/// failing as soon as anything read holds the sentinel's content.
fn race_workspace_api(
    workspace: &Workspace,
    sentinel: &Sentinel,
    done: impl Fn(&Tally) -> bool,
) -> Result<Tally, String> {
    let needle = sentinel.content.trim_end().as_bytes().to_vec();
    let mut tally = Tally::default();
    let collect = |relative: &str| -> Result<Result<(), WorkspaceError>, String> {
        Ok(match workspace.collect(relative) {
            Ok(Collected::File(mut file, _)) => {
                let (_, _sha256) = sha256_collected(&mut file).map_err(|e| e.to_string())?;
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut file, &mut bytes).map_err(|e| e.to_string())?;
                if bytes.windows(needle.len()).any(|window| window == needle) {
                    return Err(format!("collecting `{relative}` read the host sentinel"));
                }
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(error) => Err(error),
        })
    };
    let mut round = 0u64;
    while !done(&tally) {
        round += 1;
        let staged = b"staged by dockproof\n";
        tally.count(workspace.write("x", &mut staged.as_slice()).map(drop));
        tally.count(collect("x")?);
        tally.count(
            workspace
                .write("d/sentinel", &mut staged.as_slice())
                .map(drop),
        );
        tally.count(collect("d/sentinel")?);
        tally.count(workspace.write("d/new", &mut staged.as_slice()).map(drop));
        if round.is_multiple_of(8) {
            tally.count(workspace.usage().map(drop));
        }
    }
    Ok(tally)
}

fn check(condition: bool, message: impl FnOnce() -> String) -> Result<(), Failed> {
    if condition {
        Ok(())
    } else {
        Err(message().into())
    }
}

fn fake_workspace_api_race() -> Result<(), Failed> {
    let sentinel = Arc::new(Sentinel::plant());
    let parent = tempfile::tempdir()?;
    let workspace = Workspace::create(parent.path(), "dockproof-ws-race-", Limits::default())?;
    let root = workspace.root().to_path_buf();
    let stop = Arc::new(AtomicBool::new(false));
    let flips = Arc::new(AtomicU64::new(0));
    let flipper = spawn_flipper(
        sentinel.clone(),
        move || vec![root.clone()],
        stop.clone(),
        flips.clone(),
    );
    let started = Instant::now();
    let tally = race_workspace_api(&workspace, &sentinel, |tally| {
        (tally.operations >= MIN_OPERATIONS * 4 && flips.load(Ordering::Relaxed) >= MIN_FLIPS * 4)
            || started.elapsed() > Duration::from_secs(60)
    });
    stop.store(true, Ordering::Relaxed);
    flipper.join().map_err(|_| "the flipper panicked")?;
    let tally = tally?;
    let flips = flips.load(Ordering::Relaxed);
    eprintln!("fake workspace-API race: {flips} flips, {tally:?}");
    sentinel.check_untouched()?;
    sentinel.check_absent_below(workspace.root())?;
    check(flips >= MIN_FLIPS, || format!("only {flips} flips"))?;
    check(tally.operations >= MIN_OPERATIONS, || {
        format!("only {tally:?}")
    })?;
    // Both outcomes happened: the race really raced.
    check(tally.succeeded > 0 && tally.refused_outside > 0, || {
        format!("the race never hit both states: {tally:?}")
    })?;
    workspace.remove()?;
    Ok(())
}

/// Everything in the workspace directories of the runs below `work_dir`: live
/// workspaces and any a removal left half done (`.removing-dockproof-ws-*`).
fn leftovers_below(work_dir: &Path) -> Vec<PathBuf> {
    let Ok(runs) = std::fs::read_dir(work_dir) else {
        return Vec::new();
    };
    runs.flatten()
        .filter_map(|run| std::fs::read_dir(run.path().join("workspaces")).ok())
        .flat_map(|entries| entries.flatten().map(|entry| entry.path()))
        .collect()
}

/// Live workspace directories below `work_dir` (`<run dir>/workspaces/dockproof-ws-*`).
fn workspaces_below(work_dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(runs) = std::fs::read_dir(work_dir) else {
        return found;
    };
    for run in runs.flatten() {
        let Ok(workspaces) = std::fs::read_dir(run.path().join("workspaces")) else {
            continue;
        };
        for workspace in workspaces.flatten() {
            if workspace
                .file_name()
                .to_string_lossy()
                .starts_with("dockproof-ws-")
            {
                found.push(workspace.path());
            }
        }
    }
    found
}

/// Scenarios that stage, upload and check the flipped paths; `prelude` starts each one.
fn write_race_scenarios(dir: &Path, count: usize, prelude: &str, run: &str) -> PathBuf {
    let scenarios = dir.join("scenarios");
    std::fs::create_dir_all(&scenarios).unwrap();
    for index in 0..count {
        let mut steps = String::from(prelude);
        for round in 0..4 {
            steps.push_str(&format!(
                "  - stage: [{{ text: \"staged {round}\\n\", to: x }}]\n\
                 \x20 - upload: {{ from: x, to: race/{index}/{round}/x }}\n\
                 \x20 - stage: [{{ text: \"staged {round}\\n\", to: d/sentinel }}, {{ text: \"new\\n\", to: d/new }}]\n\
                 \x20 - upload: {{ from: d/sentinel, to: race/{index}/{round}/d }}\n\
                 \x20 - run: {run}\n\
                 \x20   expect:\n\
                 \x20     files:\n\
                 \x20       - {{ path: x, text: {{ contains: staged }} }}\n\
                 \x20       - {{ path: d/sentinel, text: {{ contains: staged }} }}\n"
            ));
        }
        std::fs::write(
            scenarios.join(format!("race-{index:03}.yaml")),
            format!("name: race-{index:03}\nsteps:\n{steps}"),
        )
        .unwrap();
    }
    scenarios
}

/// Reports, logs and everything left under `work_dir` hold no sentinel content; the run
/// ended with a verdict (0 or 1), not a crash; every scenario has a testcase.
fn check_run(
    output: &std::process::Output,
    sentinel: &Sentinel,
    dir: &Path,
    scenarios: usize,
) -> Result<(), Failed> {
    check(matches!(output.status.code(), Some(0 | 1)), || {
        format!(
            "the run did not end with a verdict: {}",
            support::describe(output)
        )
    })?;
    sentinel.check_untouched()?;
    let files = sentinel.check_absent_below(dir)?;
    let needle = sentinel.content.trim_end();
    check(
        !String::from_utf8_lossy(&output.stdout).contains(needle)
            && !String::from_utf8_lossy(&output.stderr).contains(needle),
        || "the sentinel's content is in dockproof's output".into(),
    )?;
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json"))?)?;
    let text = json.to_string();
    let testcases = std::fs::read_to_string(dir.join("junit.xml"))?
        .matches("<testcase")
        .count();
    check(testcases == scenarios, || {
        format!("{testcases} testcases for {scenarios} scenarios")
    })?;
    eprintln!(
        "end to end: {files} files checked; summary {}; {} refusals through a symlink reported; exit {:?}",
        json["summary"],
        text.matches("resolves outside the workspace through a symlink")
            .count(),
        output.status.code()
    );
    Ok(())
}

fn report_args(command: &mut std::process::Command, dir: &Path) {
    command
        .arg("--json")
        .arg(dir.join("report.json"))
        .arg("--junit")
        .arg(dir.join("junit.xml"))
        .arg("--html")
        .arg(dir.join("report.html"))
        .arg("--markdown")
        .arg(dir.join("report.md"))
        .arg("--logs-dir")
        .arg(dir.join("logs"))
        .args(["--jobs", "4"]);
}

fn fake_end_to_end_race() -> Result<(), Failed> {
    const SCENARIOS: usize = 24;
    let sentinel = Arc::new(Sentinel::plant());
    let dir = tempfile::tempdir()?;
    let work = dir.path().join("work");
    std::fs::create_dir(&work)?;
    // A short sleep first, so the flipper is at work before the first stage.
    let scenarios = write_race_scenarios(
        dir.path(),
        SCENARIOS,
        "  - run: { image: dockproof/job-runner:1, cmd: [sleep, \"0.2\"] }\n",
        "{ image: dockproof/job-runner:1, cmd: [\"true\"] }",
    );
    let stop = Arc::new(AtomicBool::new(false));
    let flips = Arc::new(AtomicU64::new(0));
    let watched = work.clone();
    let flipper = spawn_flipper(
        sentinel.clone(),
        move || workspaces_below(&watched),
        stop.clone(),
        flips.clone(),
    );
    let mut command = support::dockproof_fake(&work);
    report_args(&mut command, dir.path());
    let output = command.arg(&scenarios).output()?;
    stop.store(true, Ordering::Relaxed);
    flipper.join().map_err(|_| "the flipper panicked")?;
    let flips = flips.load(Ordering::Relaxed);
    eprintln!("fake end to end: {flips} flips");
    check_run(&output, &sentinel, dir.path(), SCENARIOS)?;
    check(flips >= MIN_FLIPS, || format!("only {flips} flips"))?;
    let left = leftovers_below(&work);
    check(left.is_empty(), || {
        format!("workspaces were left behind: {left:?}")
    })?;
    Ok(())
}

const IMAGE: &str = "dockproof/job-runner:1";
const LABEL: &str = "wsjail.test=symlink_race";

/// The busybox flipper loop: `x` file <-> symlink to the sentinel, `d` directory <->
/// symlink to its directory; successful flips are counted to `$OUT/count` every 200 flips
/// and at the end, which comes when `$OUT/stop` exists or the workspace's `.flip` marker
/// is gone (dockproof removed the workspace).
fn flipper_script(sentinel: &Sentinel, workspace: &str, out: &str) -> String {
    format!(
        "cd {workspace} || exit 1\n\
         i=0\n\
         while [ ! -e {out}/stop ] && [ -e .flip ]; do\n\
         \x20 ln -sfn {target} x.l && mv -f x.l x && i=$((i+1))\n\
         \x20 echo job > x.f && mv -f x.f x && i=$((i+1))\n\
         \x20 rm -rf d && ln -sfn {dir} d && i=$((i+1))\n\
         \x20 rm -f d && mkdir d && i=$((i+1))\n\
         \x20 [ $((i % 200)) -lt 4 ] && echo $i > {out}/count\n\
         done\n\
         echo $i > {out}/count\n",
        target = sentinel.path().display(),
        dir = sentinel.dir.path().display(),
    )
}

fn docker(args: &[&str]) -> Result<String, String> {
    let output = std::process::Command::new("docker")
        .args(args)
        .output()
        .map_err(|error| format!("docker: {error}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(format!("docker {args:?}: {}", support::describe(&output)))
    }
}

fn read_count(out: &Path) -> u64 {
    std::fs::read_to_string(out.join("count"))
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0)
}

/// Removes the containers this test labelled, whatever happened.
struct LabelledContainers;

impl Drop for LabelledContainers {
    fn drop(&mut self) {
        if let Ok(ids) = docker(&["ps", "-aq", "--filter", &format!("label={LABEL}")]) {
            for id in ids.lines().filter(|id| !id.is_empty()) {
                let _ = docker(&["rm", "-f", id]);
            }
        }
    }
}

fn docker_workspace_api_race() -> Result<(), Failed> {
    support::ensure_fixture_image(IMAGE)?;
    let _cleanup = LabelledContainers;
    let sentinel = Sentinel::plant();
    let parent = tempfile::tempdir()?;
    let workspace = Workspace::create(parent.path(), "dockproof-ws-race-", Limits::default())?;
    std::fs::write(workspace.root().join(".flip"), "")?;
    let out = tempfile::Builder::new().prefix("wsjail-out-").tempdir()?;
    std::fs::set_permissions(out.path(), std::fs::Permissions::from_mode(0o777))?;
    let mount = |host: &Path, container: &str| format!("{}:{container}", host.display());
    let script = flipper_script(&sentinel, "/w", "/out");
    let id = docker(&[
        "run",
        "-d",
        "--label",
        LABEL,
        "-v",
        &mount(workspace.root(), "/w"),
        "-v",
        &mount(out.path(), "/out"),
        IMAGE,
        "sh",
        "-c",
        &script,
    ])?;
    let started = Instant::now();
    let tally = race_workspace_api(&workspace, &sentinel, |tally| {
        (tally.operations >= MIN_OPERATIONS && read_count(out.path()) >= MIN_FLIPS)
            || started.elapsed() > Duration::from_secs(110)
    });
    std::fs::write(out.path().join("stop"), "")?;
    let _ = docker(&["wait", &id]);
    let flips = read_count(out.path());
    let logs = docker(&["logs", &id]).unwrap_or_default();
    let _ = docker(&["rm", "-f", &id]);
    let tally = tally?;
    eprintln!(
        "docker-cli workspace-API race: {flips} flips in {:?}, {tally:?}",
        started.elapsed()
    );
    sentinel.check_untouched()?;
    sentinel.check_absent_below(workspace.root())?;
    check(flips >= MIN_FLIPS, || {
        format!("only {flips} flips; flipper: {logs}")
    })?;
    check(tally.operations >= MIN_OPERATIONS, || {
        format!("only {tally:?}")
    })?;
    check(tally.succeeded > 0 && tally.refused_outside > 0, || {
        format!("the race never hit both states: {tally:?}")
    })?;
    workspace.remove()?;
    Ok(())
}

/// Starts a flipper container (docker CLI) on `workspace`, its count going to `out`.
fn start_flipper_container(
    sentinel: &Sentinel,
    workspace: &Path,
    out: &Path,
) -> Result<String, String> {
    std::fs::create_dir_all(out).map_err(|error| error.to_string())?;
    std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o777))
        .map_err(|error| error.to_string())?;
    let script = flipper_script(sentinel, "/w", "/out");
    docker(&[
        "run",
        "-d",
        "--label",
        LABEL,
        "-v",
        &format!("{}:/w", workspace.display()),
        "-v",
        &format!("{}:/out", out.display()),
        IMAGE,
        "sh",
        "-c",
        &script,
    ])
}

fn docker_end_to_end_race() -> Result<(), Failed> {
    const SCENARIOS: usize = 8;
    support::ensure_fixture_image(IMAGE)?;
    let _cleanup = LabelledContainers;
    let sentinel = Arc::new(Sentinel::plant());
    let dir = tempfile::tempdir()?;
    let work = dir.path().join("work");
    std::fs::create_dir(&work)?;
    let out = dir.path().join("out");
    // Each scenario first gives its flipper (started by this test with the docker CLI as
    // soon as the workspace appears) two seconds to get going.
    let scenarios = write_race_scenarios(
        dir.path(),
        SCENARIOS,
        &format!("  - run: {{ image: {IMAGE}, cmd: [sleep, \"2\"] }}\n"),
        &format!("{{ image: {IMAGE}, cmd: [\"true\"] }}"),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (stop, work, out, sentinel) =
            (stop.clone(), work.clone(), out.clone(), sentinel.clone());
        std::thread::spawn(move || -> Result<Vec<String>, String> {
            let mut started: Vec<PathBuf> = Vec::new();
            let mut ids = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                for workspace in workspaces_below(&work) {
                    if started.contains(&workspace) {
                        continue;
                    }
                    let _ = std::fs::write(workspace.join(".flip"), "");
                    let counts = out.join(started.len().to_string());
                    ids.push(start_flipper_container(&sentinel, &workspace, &counts)?);
                    started.push(workspace);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(ids)
        })
    };
    let mut command = support::dockproof_real(&work);
    report_args(&mut command, dir.path());
    let output = command.arg(&scenarios).output()?;
    stop.store(true, Ordering::Relaxed);
    let ids = watcher.join().map_err(|_| "the watcher panicked")??;
    let mut flips = 0;
    for (index, id) in ids.iter().enumerate() {
        let counts = out.join(index.to_string());
        let _ = std::fs::write(counts.join("stop"), "");
        let _ = docker(&["wait", id]);
        flips += read_count(&counts);
        let _ = docker(&["rm", "-f", id]);
    }
    eprintln!(
        "docker-cli end to end: {flips} flips by {} flipper containers",
        ids.len()
    );
    check_run(&output, &sentinel, dir.path(), SCENARIOS)?;
    check(ids.len() == SCENARIOS, || {
        format!("{} flippers for {SCENARIOS} scenarios", ids.len())
    })?;
    check(flips >= MIN_FLIPS / 10, || format!("only {flips} flips"))?;
    Ok(())
}

/// A tree `depth` levels deep, or one directory with `entries` files, built in `at`.
fn build_tree(at: &Path, depth: usize, entries: usize) {
    let mut path = at.to_path_buf();
    std::fs::create_dir_all(&path).unwrap();
    for _ in 0..depth {
        path.push("d");
        std::fs::create_dir(&path).unwrap();
    }
    for index in 0..entries {
        std::fs::File::create(at.join(format!("f{index}"))).unwrap();
    }
}

/// A job leaves a 1,000-deep tree, another a 100,000-entry one: each run step ends as
/// `workspace_limit_exceeded` with a report, nothing is left, nothing crashes. On the
/// fake, the trees (built beforehand) are moved into the workspace while the job sleeps;
/// on docker-cli, the job makes them with busybox.
fn deep_and_wide_trees(backend: &str) -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let work = dir.path().join("work");
    std::fs::create_dir(&work)?;
    let scenarios = dir.path().join("scenarios");
    std::fs::create_dir(&scenarios)?;
    let (deep_cmd, wide_cmd) = if backend == "fake" {
        ("[sleep, \"1\"]".to_owned(), "[sleep, \"1\"]".to_owned())
    } else {
        support::ensure_fixture_image(IMAGE)?;
        (
            "[sh, -c, \"mkdir -p $(printf 'd/%.0s' $(seq 1000))\"]".to_owned(),
            "[sh, -c, \"mkdir w && cd w && seq 100000 | xargs touch\"]".to_owned(),
        )
    };
    for (name, cmd) in [("deep-tree", &deep_cmd), ("wide-tree", &wide_cmd)] {
        std::fs::write(
            scenarios.join(format!("{name}.yaml")),
            format!(
                "name: {name}\nsteps:\n  - run: {{ image: {IMAGE}, cmd: {cmd} }}\n  - stage: [{{ text: \"after\\n\", to: after.txt }}]\n"
            ),
        )?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mover = (backend == "fake").then(|| {
        let trees = dir.path().join("trees");
        build_tree(&trees.join("deep"), 1000, 0);
        build_tree(&trees.join("wide"), 0, 100_000);
        let (stop, work) = (stop.clone(), work.clone());
        std::thread::spawn(move || {
            let mut moved = 0;
            while moved < 2 && !stop.load(Ordering::Relaxed) {
                for workspace in workspaces_below(&work) {
                    let name = workspace
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                        .into_owned();
                    for (tree, prefix) in [
                        ("deep", "dockproof-ws-deep-tree-"),
                        ("wide", "dockproof-ws-wide-tree-"),
                    ] {
                        if name.starts_with(prefix)
                            && std::fs::rename(trees.join(tree), workspace.join(tree)).is_ok()
                        {
                            moved += 1;
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            moved
        })
    });
    let mut command = if backend == "fake" {
        let mut command = support::dockproof_fake(&work);
        // The workspaces in the work dir itself, not on a tmpfs: the trees are moved in
        // with a rename, which needs them on the same filesystem.
        command.env("DOCKPROOF_FAKE_TMPFS", "0");
        command
    } else {
        support::dockproof_real(&work)
    };
    let started = Instant::now();
    let output = command
        .arg("--json")
        .arg(dir.path().join("report.json"))
        .arg(&scenarios)
        .output()?;
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    if let Some(mover) = mover {
        let moved = mover.join().map_err(|_| "the mover panicked")?;
        check(moved == 2, || format!("only {moved} trees were moved in"))?;
    }
    check(output.status.code() == Some(1), || {
        format!(
            "expected exit 1 (checks failed): {}",
            support::describe(&output)
        )
    })?;
    let report = std::fs::read_to_string(dir.path().join("report.json"))?;
    let json: serde_json::Value = serde_json::from_str(&report)?;
    let text = json.to_string();
    for expected in [
        "the workspace tree is more than 128 levels deep",
        "the workspace tree is more than 50000 entries",
    ] {
        check(text.contains(expected), || {
            format!("the report does not say `{expected}`: {text}")
        })?;
    }
    check(
        text.matches("workspace_limit_exceeded").count() >= 2,
        || format!("not both workspace_limit_exceeded: {text}"),
    )?;
    let left = leftovers_below(&work);
    check(left.is_empty(), || {
        format!("a workspace was left behind: {left:?}")
    })?;
    eprintln!("{backend}: deep and wide trees refused in {elapsed:?}");
    Ok(())
}

/// One trial at a time: the flippers are CPU-bound, and a busybox flipper starved by a
/// concurrent trial on a small machine makes too few flips in its time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alone(trial: fn() -> Result<(), Failed>) -> impl FnOnce() -> Result<(), Failed> {
    move || {
        let _guard = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        trial()
    }
}

/// This file's trials, run by `suites/main.rs`.
pub fn trials() -> Vec<Trial> {
    let trials = vec![
        Trial::test(
            "fake: workspace API races a flipper thread",
            alone(fake_workspace_api_race),
        ),
        Trial::test(
            "fake: dockproof run races a flipper thread",
            alone(fake_end_to_end_race),
        ),
        support::real_daemon_trial(
            "docker-cli: workspace API races a flipper container",
            alone(docker_workspace_api_race),
        ),
        support::real_daemon_trial(
            "docker-cli: dockproof run races flipper containers",
            alone(docker_end_to_end_race),
        ),
        Trial::test(
            "fake: deep and wide job-made trees",
            alone(|| deep_and_wide_trees("fake")),
        ),
        support::real_daemon_trial(
            "docker-cli: deep and wide job-made trees",
            alone(|| deep_and_wide_trees("docker-cli")),
        ),
    ];
    trials
}
