//! Nothing left, nothing shared (issue 13, item 4): run ids are unique per invocation
//! (also on the fake), `dockproof clean --run ID` takes exactly that run, and images
//! built for a run (build steps, compose `build:`) carry its label and go on every path
//! (interrupt, SIGKILL + clean), as do their `dockproof-build-*` contexts.
//!
//! The fake trials always run; the real-daemon ones are ignored without a daemon unless
//! DOCKPROOF_REQUIRE_DOCKER=1. Every assertion on the shared daemon filters by the run
//! id (or the image tag) the test made itself.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::{Failed, Trial};

fn fail(message: impl std::fmt::Display) -> Failed {
    message.to_string().into()
}

/// PIDs of processes whose command line or environment mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains(needle)
                || String::from_utf8_lossy(&environ).contains(needle)
        })
        .collect()
}

/// The run directories in `work` (`dockproof-ID.XXXXXX`) with their run ids.
fn run_dirs(work: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(work) else {
        return Vec::new();
    };
    let mut found: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let id = dockproof::run_id::of_dir(&name)?.to_owned();
            Some((id, entry.path()))
        })
        .collect();
    found.sort();
    found
}

/// Whether the fake container of the run in `run_dir` is running: fake-docker lists it as
/// running in that run's state, and a process (its supervisor) mentions the state dir. (A
/// process alone is not enough: the `fake-docker create` call that is still making the
/// container mentions it too, and a run killed then leaves no container to clean.)
fn fake_container_running(run_dir: &Path) -> bool {
    let state = run_dir.join("fake-docker-state");
    let listed = Command::new(support::fake_docker())
        .env("FAKE_DOCKER_STATE", &state)
        .args(["ps", "--quiet"])
        .output()
        .is_ok_and(|output| output.status.success() && !output.stdout.trim_ascii().is_empty());
    listed && !processes_mentioning(&state.display().to_string()).is_empty()
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Result<(), Failed> {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            return Err(fail(format!("timed out waiting until {what}")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn write(dir: &Path, name: &str, text: &str) -> Result<PathBuf, Failed> {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(fail)?;
    Ok(path)
}

const FAKE_SLOW: &str =
    "name: slow\nsteps:\n  - run: { image: dockproof/job-runner:1, cmd: [sleep, 8] }\n";

fn spawn_fake(work: &Path, scenario: &Path, extra: &[&str]) -> Result<Child, Failed> {
    support::dockproof_fake(work)
        .args(extra)
        .arg(scenario)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(fail)
}

fn clean_fake(work: &Path, run: &str) -> Result<Output, Failed> {
    clean_fake_runs(work, Some(run))
}

/// `dockproof clean --backend fake` in `work`: of run `run`, or of every run.
fn clean_fake_runs(work: &Path, run: Option<&str>) -> Result<Output, Failed> {
    let mut command = Command::new(support::dockproof());
    command.args(["clean", "--backend", "fake"]);
    if let Some(run) = run {
        command.args(["--run", run]);
    }
    command
        .arg("--work-dir")
        .arg(work)
        .arg("--fake-docker")
        .arg(support::fake_docker())
        .output()
        .map_err(fail)
}

/// Two runs of the same suite at once on the fake get different run ids (same suite
/// part), separate directories, and cleaning up after one (killed) leaves the other
/// running to a pass.
fn fake_concurrent_runs_are_apart() -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(fail)?;
    let scenario = write(dir.path(), "slow.yaml", FAKE_SLOW)?;
    let work = dir.path().join("work");
    let mut first = spawn_fake(&work, &scenario, &[])?;
    let second = spawn_fake(&work, &scenario, &[])?;
    wait_until(
        "both runs have their container running",
        Duration::from_secs(30),
        || {
            let dirs = run_dirs(&work);
            dirs.len() == 2 && dirs.iter().all(|(_, path)| fake_container_running(path))
        },
    )?;
    let dirs = run_dirs(&work);
    let (ids, paths): (Vec<String>, Vec<PathBuf>) = dirs.into_iter().unzip();
    if ids[0] == ids[1] {
        return Err(fail(format!("two runs share the run id {}", ids[0])));
    }
    let suite = |id: &str| id.rsplit_once('-').map(|(suite, _)| suite.to_owned());
    if suite(&ids[0]) != suite(&ids[1]) || !ids[0].starts_with("fake-") {
        return Err(fail(format!(
            "both ids should be the suite id plus a random part: {ids:?}"
        )));
    }
    // Which directory is the first run's: its container's supervisor is its child's child,
    // so ask the console instead once it is done; here, kill the first and clean by its id.
    first.kill().map_err(fail)?;
    let _ = first.wait();
    let killed_output = first
        .stdout
        .take()
        .map(|mut stdout| {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
            text
        })
        .unwrap_or_default();
    let (killed, kept) = if killed_output.contains(&format!("(run {})", ids[0])) {
        (0, 1)
    } else if killed_output.contains(&format!("(run {})", ids[1])) {
        (1, 0)
    } else {
        return Err(fail(format!(
            "the killed run did not say its id: {killed_output:?}"
        )));
    };
    let cleaned = clean_fake(&work, &ids[killed])?;
    if !cleaned.status.success()
        || !String::from_utf8_lossy(&cleaned.stdout)
            .contains("removed 1 container(s) and 1 director(ies)")
    {
        return Err(fail(format!(
            "clean --run {}\n{}",
            ids[killed],
            support::describe(&cleaned)
        )));
    }
    if paths[killed].exists() || !paths[kept].exists() || !fake_container_running(&paths[kept]) {
        return Err(fail(format!(
            "clean --run {} must take that run's directory and container and nothing of run {}",
            ids[killed], ids[kept]
        )));
    }
    let output = second.wait_with_output().map_err(fail)?;
    if !output.status.success() {
        return Err(fail(format!(
            "the other run must still pass after the first was cleaned\n{}",
            support::describe(&output)
        )));
    }
    Ok(())
}

/// Two completed runs of the same suite: different run ids on the console, byte-identical reports.
fn fake_reports_identical_ids_differ() -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(fail)?;
    let scenario = support::root().join("scenarios/job-happy-path.yaml");
    let runs: Vec<(Child, PathBuf)> = (0..2)
        .map(|index| {
            let json = dir.path().join(format!("report-{index}.json"));
            let child = spawn_fake(
                &dir.path().join("work"),
                &scenario,
                &["--json", &json.display().to_string()],
            )?;
            Ok((child, json))
        })
        .collect::<Result<_, Failed>>()?;
    let mut ids = Vec::new();
    let mut reports = Vec::new();
    for (child, json) in runs {
        let output = child.wait_with_output().map_err(fail)?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let id = stdout
            .split("(run ")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .ok_or_else(|| {
                fail(format!(
                    "no run id on the console\n{}",
                    support::describe(&output)
                ))
            })?
            .to_owned();
        ids.push(id);
        reports.push(std::fs::read(&json).map_err(fail)?);
    }
    if ids[0] == ids[1] {
        return Err(fail(format!("both runs were {}", ids[0])));
    }
    if reports[0] != reports[1] {
        return Err(fail("the two runs' JSON reports differ"));
    }
    let report = String::from_utf8_lossy(&reports[0]);
    if ids.iter().any(|id| report.contains(id.as_str())) {
        return Err(fail("a fake report shows a run's own id, not the suite id"));
    }
    Ok(())
}

/// `clean --run ci-7` takes run `ci-7` and leaves the live run `ci-7-retry` alone.
fn fake_clean_matches_exactly() -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(fail)?;
    let scenario = write(dir.path(), "slow.yaml", FAKE_SLOW)?;
    let work = dir.path().join("work");
    let mut killed = spawn_fake(&work, &scenario, &["--run-id", "ci-7"])?;
    let retry = spawn_fake(&work, &scenario, &["--run-id", "ci-7-retry"])?;
    wait_until(
        "both runs have their container running",
        Duration::from_secs(30),
        || {
            let dirs = run_dirs(&work);
            dirs.len() == 2 && dirs.iter().all(|(_, path)| fake_container_running(path))
        },
    )?;
    killed.kill().map_err(fail)?;
    let _ = killed.wait();
    let cleaned = clean_fake(&work, "ci-7")?;
    let left: Vec<String> = run_dirs(&work).into_iter().map(|(id, _)| id).collect();
    if !cleaned.status.success() || left != ["ci-7-retry"] {
        return Err(fail(format!(
            "clean --run ci-7 must leave exactly ci-7-retry, left {left:?}\n{}",
            support::describe(&cleaned)
        )));
    }
    let output = retry.wait_with_output().map_err(fail)?;
    if !output.status.success() {
        return Err(fail(format!(
            "ci-7-retry must still pass\n{}",
            support::describe(&output)
        )));
    }
    Ok(())
}

/// Images on the real daemon carrying `dockproof.run=RUN`.
/// `dockproof clean` leaves a live run alone (its run directory's `live.lock` is held):
/// without `--run` and with it; `--force` cleans it anyway.
fn fake_clean_keeps_a_live_run() -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(fail)?;
    let scenario = write(dir.path(), "slow.yaml", FAKE_SLOW)?;
    let work = dir.path().join("work");
    let live = spawn_fake(&work, &scenario, &["--run-id", "live-1"])?;
    wait_until("the run's container runs", Duration::from_secs(30), || {
        run_dirs(&work)
            .iter()
            .any(|(_, path)| fake_container_running(path))
    })?;
    let everything = Command::new(support::dockproof())
        .args(["clean", "--backend", "fake", "--work-dir"])
        .arg(&work)
        .arg("--fake-docker")
        .arg(support::fake_docker())
        .output()
        .map_err(fail)?;
    let that_run = clean_fake(&work, "live-1")?;
    for (what, cleaned) in [("clean", &everything), ("clean --run live-1", &that_run)] {
        let stdout = String::from_utf8_lossy(&cleaned.stdout);
        if !cleaned.status.success() || !stdout.contains("kept run live-1: still running") {
            return Err(fail(format!(
                "`{what}` must keep the live run and say so\n{}",
                support::describe(cleaned)
            )));
        }
    }
    let left: Vec<String> = run_dirs(&work).into_iter().map(|(id, _)| id).collect();
    if left != ["live-1"] {
        return Err(fail(format!("the live run's directory is gone: {left:?}")));
    }
    let output = live.wait_with_output().map_err(fail)?;
    if !output.status.success() {
        return Err(fail(format!(
            "the live run must still pass\n{}",
            support::describe(&output)
        )));
    }
    // --force takes a live run too.
    let mut forced = spawn_fake(&work, &scenario, &["--run-id", "live-2"])?;
    wait_until(
        "the second run's container runs",
        Duration::from_secs(30),
        || {
            run_dirs(&work)
                .iter()
                .any(|(_, path)| fake_container_running(path))
        },
    )?;
    let cleaned = Command::new(support::dockproof())
        .args([
            "clean",
            "--backend",
            "fake",
            "--run",
            "live-2",
            "--force",
            "--work-dir",
        ])
        .arg(&work)
        .arg("--fake-docker")
        .arg(support::fake_docker())
        .output()
        .map_err(fail)?;
    let _ = forced.kill();
    let _ = forced.wait();
    // (After the kill the run's own directory may be half there again: what counts is
    // that clean took the live run's container and directory.)
    let stdout = String::from_utf8_lossy(&cleaned.stdout);
    if !cleaned.status.success()
        || !stdout.contains("removed 1 container(s)")
        || !stdout.contains("/dockproof-live-2.")
    {
        return Err(fail(format!(
            "`clean --run live-2 --force` must remove the live run's directory\n{}",
            support::describe(&cleaned)
        )));
    }
    Ok(())
}

/// On a real daemon, `clean --run ID` of a live run keeps its container; once the run
/// ends, nothing of it is left. (No `clean` without `--run` here: the daemon is shared
/// with other trials, whose runs live in other work dirs.)
fn clean_keeps_a_live_run(backend: &str) -> Result<(), Failed> {
    support::ensure_fixture_image("dockproof/job-runner:1").map_err(fail)?;
    let dir = tempfile::tempdir().map_err(fail)?;
    let scenario = write(dir.path(), "slow.yaml", FAKE_SLOW)?;
    let work = dir.path().join("work");
    let run = format!("live-{}-{}", backend.replace('-', ""), std::process::id());
    let child = support::dockproof_on(backend, &work)
        .args(["--run-id", &run])
        .arg(&scenario)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(fail)?;
    let label = format!("dockproof.run={run}");
    wait_until(
        "the run's container exists",
        Duration::from_secs(60),
        || {
            support::labelled_leftovers(&label)
                .is_ok_and(|left| left.iter().any(|item| item.starts_with("container ")))
        },
    )?;
    let cleaned = Command::new(support::dockproof())
        .args(["clean", "--backend", backend, "--run", &run, "--work-dir"])
        .arg(&work)
        .output()
        .map_err(fail)?;
    // Kept and nothing removed; the run passing below shows its container was left to
    // finish (a container removed under it fails the run). (Whether the container is still
    // listed now is a race with the job's own end.)
    let stdout = String::from_utf8_lossy(&cleaned.stdout);
    if !cleaned.status.success()
        || !stdout.contains(&format!("kept run {run}: still running"))
        || !stdout.contains("removed 0 container(s) and 0 director(ies)")
    {
        return Err(fail(format!(
            "`clean --run {run}` must keep the live run's container\n{}",
            support::describe(&cleaned)
        )));
    }
    let output = child.wait_with_output().map_err(fail)?;
    if !output.status.success() {
        return Err(fail(format!(
            "the live run must still pass\n{}",
            support::describe(&output)
        )));
    }
    let left = support::labelled_leftovers(&label).map_err(fail)?;
    if !left.is_empty() {
        return Err(fail(format!("the run left {left:?}")));
    }
    Ok(())
}

fn labelled_images(run: &str) -> Result<Vec<String>, Failed> {
    let output = Command::new("docker")
        .args(["image", "ls", "--quiet", "--filter"])
        .arg(format!("label=dockproof.run={run}"))
        .output()
        .map_err(fail)?;
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(str::to_owned)
        .collect())
}

/// Everything of `run` left on the daemon (containers, networks, volumes, images) and in `work`
/// (besides the history database), and any `dockproof-build-*` context holding `marker`
/// in the system temp dir.
fn leftovers(run: &str, work: &Path, marker: &str) -> Result<Vec<String>, Failed> {
    let mut left = support::labelled_leftovers(&format!("dockproof.run={run}")).map_err(fail)?;
    left.extend(
        labelled_images(run)?
            .into_iter()
            .map(|id| format!("image {id}")),
    );
    let history = support::history_db(work).display().to_string();
    if let Ok(entries) = std::fs::read_dir(work) {
        left.extend(
            entries
                .flatten()
                .map(|entry| entry.path().display().to_string())
                .filter(|path| !path.starts_with(&history)),
        );
    }
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        left.extend(
            entries
                .flatten()
                .filter(|entry| {
                    entry
                        .file_name()
                        .to_string_lossy()
                        .starts_with("dockproof-build-")
                })
                .map(|entry| entry.path().join(marker))
                .filter(|path| path.exists())
                .map(|path| path.display().to_string()),
        );
    }
    Ok(left)
}

/// A build step (slow enough to be seen) whose image the next step runs for two minutes.
fn build_scenario(dir: &Path, tag: &str, marker: &str) -> Result<PathBuf, Failed> {
    let context = dir.join("context");
    std::fs::create_dir_all(&context).map_err(fail)?;
    write(&context, marker, "marks this test's build context\n")?;
    write(
        &context,
        "Dockerfile",
        &format!("FROM dockproof/job-runner:1\nCOPY {marker} /{marker}\nRUN sleep 2\n"),
    )?;
    write(
        dir,
        "build.yaml",
        &format!(
            "name: built\nsteps:\n  - build: {{ context: context, tag: \"{tag}\" }}\n  - run: {{ image: \"{tag}\", cmd: [sleep, 120], timeout: 5m }}\n"
        ),
    )
}

/// Start a build scenario on `backend`; returns once the build context was seen under the
/// run's directory and the built image's container runs (with the image labelled).
fn start_build_run(
    backend: &str,
    dir: &Path,
    run: &str,
    tag: &str,
    marker: &str,
) -> Result<Child, Failed> {
    support::ensure_fixture_image("dockproof/job-runner:1").map_err(fail)?;
    let scenario = build_scenario(dir, tag, marker)?;
    let work = dir.join("work");
    let child = support::dockproof_on(backend, &work)
        .args(["--run-id", run])
        .arg(&scenario)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(fail)?;
    // The context is copied under the run's directory, where `clean` finds it.
    let mut seen_context = false;
    wait_until(
        "the built image's container runs",
        Duration::from_secs(120),
        || {
            seen_context |= run_dirs(&work).iter().any(|(_, path)| {
                std::fs::read_dir(path.join("workspaces")).is_ok_and(|entries| {
                    entries.flatten().any(|entry| {
                        entry
                            .file_name()
                            .to_string_lossy()
                            .starts_with("dockproof-build-")
                            && entry.path().join(marker).exists()
                    })
                })
            });
            // The run's container, and the image built for it listed by its label (the
            // daemon may list the image a moment after a container of it shows).
            support::labelled_leftovers(&format!("dockproof.run={run}"))
                .is_ok_and(|left| left.iter().any(|item| item.starts_with("container ")))
                && labelled_images(run).is_ok_and(|images| !images.is_empty())
        },
    )
    .map_err(|error| {
        fail(format!(
            "{} (or the image built for run {run} never carried its label)",
            error.message().unwrap_or("timed out")
        ))
    })?;
    if !seen_context {
        return Err(fail(
            "the build context was never seen under the run's directory",
        ));
    }
    if labelled_images(run)?.is_empty() {
        return Err(fail(format!(
            "the image built for run {run} does not carry its label"
        )));
    }
    Ok(child)
}

fn names(backend: &str, what: &str) -> (String, String, String) {
    let pid = std::process::id();
    (
        format!("leftovers-{what}-{backend}-{pid}"),
        format!("leftovers/{what}-{backend}:{pid}"),
        format!("leftovers-marker-{what}-{backend}-{pid}"),
    )
}

/// SIGINT after a build: exit 1, and the sweep removes the built image with the container.
fn build_sigint(backend: &str) -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(fail)?;
    let (run, tag, marker) = names(backend, "bint");
    let child = start_build_run(backend, dir.path(), &run, &tag, &marker)?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .map_err(fail)?;
    let output = child.wait_with_output().map_err(fail)?;
    if output.status.code() != Some(1)
        || !String::from_utf8_lossy(&output.stdout).contains("INTR built")
    {
        return Err(fail(format!(
            "an interrupted run exits 1 and says INTR\n{}",
            support::describe(&output)
        )));
    }
    let left = leftovers(&run, &dir.path().join("work"), &marker)?;
    if !left.is_empty() {
        return Err(fail(format!(
            "SIGINT after a build left {left:?}\n{}",
            support::describe(&output)
        )));
    }
    Ok(())
}

/// SIGKILL after a build leaves container and image; `clean --run ID` removes both and the run dir.
fn build_sigkill_then_clean(backend: &str) -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(fail)?;
    let (run, tag, marker) = names(backend, "bkill");
    let mut child = start_build_run(backend, dir.path(), &run, &tag, &marker)?;
    child.kill().map_err(fail)?;
    let _ = child.wait();
    if labelled_images(&run)?.is_empty() {
        return Err(fail(
            "after SIGKILL the built image should still be there for `clean`",
        ));
    }
    let work = dir.path().join("work");
    let cleaned = Command::new(support::dockproof())
        .args(["clean", "--backend", backend, "--run", &run, "--work-dir"])
        .arg(&work)
        .output()
        .map_err(fail)?;
    let stdout = String::from_utf8_lossy(&cleaned.stdout);
    if !cleaned.status.success() || !stdout.contains("removed image ") {
        return Err(fail(format!(
            "`dockproof clean --run {run}`\n{}",
            support::describe(&cleaned)
        )));
    }
    let left = leftovers(&run, &work, &marker)?;
    if !left.is_empty() {
        return Err(fail(format!(
            "SIGKILL + clean left {left:?}\n{}",
            support::describe(&cleaned)
        )));
    }
    Ok(())
}

/// A compose service with `build:` (no `image:`): its image carries the run label through the
/// override's `build.labels`; `down` removes it, and so does the sweep after SIGINT.
fn compose_build(backend: &str) -> Result<(), Failed> {
    support::ensure_fixture_image("dockproof/job-runner:1").map_err(fail)?;
    let dir = tempfile::tempdir().map_err(fail)?;
    let stack = dir.path().join("stack");
    std::fs::create_dir_all(&stack).map_err(fail)?;
    write(
        &stack,
        "Dockerfile",
        "FROM dockproof/job-runner:1\nCMD [\"sh\", \"-c\", \"trap 'exit 0' TERM; while true; do sleep 1 & wait $!; done\"]\n",
    )?;
    write(
        &stack,
        "docker-compose.yml",
        "version: \"3.8\"\nservices:\n  idle:\n    build: .\n",
    )?;
    let file = stack.join("docker-compose.yml");
    let work = dir.path().join("work");

    // up, then down: nothing of the run left, the built image included.
    let (run, _, marker) = names(backend, "cdown");
    let scenario = write(
        dir.path(),
        "down.yaml",
        &format!(
            "name: built-stack\nrequires: [compose]\nsteps:\n  - compose: {{ up: {{ file: {} }} }}\n  - compose: {{ down: {{ stop_grace: 1s }} }}\n",
            file.display()
        ),
    )?;
    let output = support::dockproof_on(backend, &work)
        .args(["--run-id", &run])
        .arg(&scenario)
        .output()
        .map_err(fail)?;
    if !output.status.success() {
        return Err(fail(format!(
            "up then down must pass\n{}",
            support::describe(&output)
        )));
    }
    let left = leftovers(&run, &work, &marker)?;
    if !left.is_empty() {
        return Err(fail(format!("up then down left {left:?}")));
    }

    // up, a long step, SIGINT: the image is labelled while the stack is up, then swept.
    let (run, _, marker) = names(backend, "cint");
    let scenario = write(
        dir.path(),
        "interrupted.yaml",
        &format!(
            "name: built-stack\nrequires: [compose]\nsteps:\n  - compose: {{ up: {{ file: {} }} }}\n  - run: {{ image: dockproof/job-runner:1, cmd: [sleep, 120], timeout: 5m }}\n",
            file.display()
        ),
    )?;
    let child = support::dockproof_on(backend, &work)
        .args(["--run-id", &run])
        .arg(&scenario)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(fail)?;
    wait_until(
        "the stack and the step after it run",
        Duration::from_secs(120),
        || {
            support::labelled_leftovers(&format!("dockproof.run={run}")).is_ok_and(|left| {
                left.iter()
                    .filter(|item| item.starts_with("container "))
                    .count()
                    >= 2
            })
        },
    )?;
    if labelled_images(&run)?.is_empty() {
        return Err(fail(
            "the image compose built carries no dockproof.run label",
        ));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .map_err(fail)?;
    let output = child.wait_with_output().map_err(fail)?;
    let left = leftovers(&run, &work, &marker)?;
    if output.status.code() != Some(1) || !left.is_empty() {
        return Err(fail(format!(
            "SIGINT with a built stack up: exit 1 and nothing left (left {left:?})\n{}",
            support::describe(&output)
        )));
    }
    Ok(())
}

/// The bar of issue 19 item 4: SIGTERM (what a CI runner sends on cancel) to a run with a
/// built image, a detached container, a service and a compose stack (with an image it
/// built) up, and a long step running. The scenario's own cleanup removes all of it: exit
/// 1 with INTR, nothing labelled with the run left (images included), and the run's final
/// sweep found nothing (it says what it removes: "removed … that scenarios left behind").
fn sigterm_cleans_up_before_the_sweep(backend: &str) -> Result<(), Failed> {
    support::ensure_fixture_image("dockproof/job-runner:1").map_err(fail)?;
    let dir = tempfile::tempdir().map_err(fail)?;
    let (run, tag, marker) = names(backend, "term");
    let context = dir.path().join("context");
    std::fs::create_dir_all(&context).map_err(fail)?;
    write(&context, &marker, "marks this test's build context\n")?;
    write(
        &context,
        "Dockerfile",
        &format!("FROM dockproof/job-runner:1\nCOPY {marker} /{marker}\n"),
    )?;
    let stack = dir.path().join("stack");
    std::fs::create_dir_all(&stack).map_err(fail)?;
    write(
        &stack,
        "Dockerfile",
        "FROM dockproof/job-runner:1\nCMD [\"sleep\", \"300\"]\n",
    )?;
    write(
        &stack,
        "docker-compose.yml",
        "services:\n  idle:\n    build: .\n",
    )?;
    let scenario = write(
        dir.path(),
        "term.yaml",
        &format!(
            "name: sigterm-everything\nrequires: [compose]\nsteps:\n  - build: {{ context: context, tag: \"{tag}\" }}\n  - run: {{ image: \"{tag}\", cmd: [sleep, 300], detach: true, container: worker }}\n  - service: {{ name: svc, image: dockproof/job-runner:1, cmd: [sleep, 300] }}\n  - compose: {{ up: {{ file: {} }} }}\n  - name: the long step\n    run: {{ image: dockproof/job-runner:1, cmd: [sleep, 300], timeout: 5m }}\n",
            stack.join("docker-compose.yml").display()
        ),
    )?;
    let work = dir.path().join("work");
    let mut child = support::dockproof_on(backend, &work)
        .args(["--run-id", &run])
        .arg(&scenario)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(fail)?;
    // Four containers of the run: the detached one, the service, the stack's, the long step's.
    let waited = wait_until(
        "the detached container, the service, the stack and the long step run",
        Duration::from_secs(180),
        || {
            // A run that ended (e.g. refused the scenario) will not get there.
            matches!(child.try_wait(), Ok(Some(_)))
                || support::labelled_leftovers(&format!("dockproof.run={run}")).is_ok_and(|left| {
                    left.iter()
                        .filter(|item| item.starts_with("container "))
                        .count()
                        >= 4
                })
        },
    );
    if let Err(error) = waited {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let output = child.wait_with_output().map_err(fail)?;
        return Err(fail(format!(
            "{}\n{}",
            error.message().unwrap_or("timed out"),
            support::describe(&output)
        )));
    }
    if let Ok(Some(status)) = child.try_wait() {
        let output = child.wait_with_output().map_err(fail)?;
        return Err(fail(format!(
            "the run ended ({status}) before the long step\n{}",
            support::describe(&output)
        )));
    }
    if labelled_images(&run)?.len() < 2 {
        return Err(fail(format!(
            "the built image and the stack's image carry the run label {run}"
        )));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .map_err(fail)?;
    let output = child.wait_with_output().map_err(fail)?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let left = leftovers(&run, &work, &marker)?;
    if output.status.code() != Some(1) || !stdout.contains("INTR sigterm-everything") {
        return Err(fail(format!(
            "SIGTERM: exit 1 and INTR\n{}",
            support::describe(&output)
        )));
    }
    if !left.is_empty() {
        return Err(fail(format!(
            "SIGTERM left {left:?}\n{}",
            support::describe(&output)
        )));
    }
    if stderr.contains("left behind") {
        return Err(fail(format!(
            "the final sweep had to remove what the scenario's own cleanup should have\n{}",
            support::describe(&output)
        )));
    }
    Ok(())
}

type Test = fn(&str) -> Result<(), Failed>;

const KEEP_FAILING: &str = "name: keep-me-probe\nsteps:\n  - run: { image: dockproof/job-runner:1, cmd: [sleep, \"30\"], detach: true, container: worker }\n  - run: { image: dockproof/job-runner:1, env: { JOB_EXIT_CODE: \"3\" } }\n";
const KEEP_PASSING: &str = "name: clean-me-probe\nsteps:\n  - run: { image: dockproof/job-runner:1, cmd: [sleep, \"30\"], detach: true, container: worker }\n  - exec: { container: worker, cmd: [\"true\"] }\n";

/// The containers labelled with run `run`: (id, its `dockproof.scenario`, its
/// `dockproof.keep-failed`), through `docker` (fake-docker with `state`, or the real CLI).
fn run_containers(
    run: &str,
    state: Option<&Path>,
) -> Result<Vec<(String, String, String)>, Failed> {
    let docker = || {
        let mut command = match state {
            Some(state) => {
                let mut command = Command::new(support::fake_docker());
                command.env("FAKE_DOCKER_STATE", state);
                command
            }
            None => Command::new("docker"),
        };
        command.stdin(Stdio::null());
        command
    };
    let listed = docker()
        .args(["ps", "--all", "--quiet", "--no-trunc", "--filter"])
        .arg(format!("label=dockproof.run={run}"))
        .output()
        .map_err(fail)?;
    let mut found = Vec::new();
    for id in String::from_utf8_lossy(&listed.stdout).split_whitespace() {
        let inspect = docker().args(["inspect", id]).output().map_err(fail)?;
        let document: serde_json::Value = serde_json::from_slice(&inspect.stdout).map_err(fail)?;
        let label = |name: &str| {
            document[0]["Config"]["Labels"][name]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        found.push((
            id.to_owned(),
            label("dockproof.scenario"),
            label("dockproof.keep-failed"),
        ));
    }
    Ok(found)
}

/// `--keep-failed` (issue 20 item 8): of two scenarios, the failed one's containers (a
/// detached worker still running, the failed job) and workspace stay, labelled kept; the
/// passing one's are removed, and the final sweep leaves the kept ones alone. The end of
/// the run says how to inspect and remove them, and `dockproof clean --run ID` does.
fn keep_failed(backend: &str) -> Result<(), Failed> {
    keep_failed_asked(backend, false)
}

/// [`keep_failed`] asked for by `keep_failed = true` in the project file instead of the
/// flag (issue 20 item 9).
fn keep_failed_from_the_project_file() -> Result<(), Failed> {
    keep_failed_asked("fake", true)
}

fn keep_failed_asked(backend: &str, by_project_file: bool) -> Result<(), Failed> {
    if backend != "fake" {
        support::ensure_fixture_image("dockproof/job-runner:1")?;
    }
    let dir = tempfile::tempdir().map_err(fail)?;
    let failing = write(dir.path(), "keep.yaml", KEEP_FAILING)?;
    let passing = write(dir.path(), "pass.yaml", KEEP_PASSING)?;
    let work = dir.path().join("work");
    let run = format!("probe-keep-{backend}-{}", std::process::id());
    let mut command = if backend == "fake" {
        support::dockproof_fake(&work)
    } else {
        support::dockproof_on(backend, &work)
    };
    if by_project_file {
        let project = write(dir.path(), "dockproof.toml", "keep_failed = true\n")?;
        command.arg("--project").arg(project);
    } else {
        command.arg("--keep-failed");
    }
    let output = command
        .args(["--run-id", &run])
        .arg(&failing)
        .arg(&passing)
        .output()
        .map_err(fail)?;
    let text = support::describe(&output);
    let said = [
        format!("kept for debugging (--keep-failed), run {run}"),
        "scenario `keep-me-probe`".to_owned(),
        format!("dockproof clean --run {run}"),
    ];
    if output.status.code() != Some(1)
        || said.iter().any(|line| !text.contains(line.as_str()))
        || text.contains("scenario `clean-me-probe`")
    {
        return Err(fail(format!(
            "the run must fail and list what it kept of keep-me-probe only:\n{text}"
        )));
    }
    let dirs = run_dirs(&work);
    let Some((_, run_dir)) = dirs.iter().find(|(id, _)| *id == run) else {
        return Err(fail(format!(
            "the kept run directory is gone: {dirs:?}\n{text}"
        )));
    };
    let state = (backend == "fake").then(|| run_dir.join("fake-docker-state"));
    let kept = run_containers(&run, state.as_deref())?;
    if kept.len() != 2
        || kept
            .iter()
            .any(|(_, scenario, keep)| scenario != "keep-me-probe" || keep != "true")
    {
        let _ = cleanup_kept(backend, &work, &run);
        return Err(fail(format!(
            "exactly keep-me-probe's two containers must stay, labelled kept: {kept:?}\n{text}"
        )));
    }
    let workspace = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("workspace "))
        .map(PathBuf::from);
    if !workspace.as_ref().is_some_and(|path| path.is_dir()) {
        let _ = cleanup_kept(backend, &work, &run);
        return Err(fail(format!(
            "the kept workspace must be there: {workspace:?}\n{text}"
        )));
    }
    let cleaned = cleanup_kept(backend, &work, &run)?;
    let dir_left = run_dir.exists();
    // The fake's containers live in the run directory's state: gone with it (listing them
    // now would make fake-docker create an empty state there again).
    let left = if backend == "fake" {
        Vec::new()
    } else {
        run_containers(&run, None)?
    };
    if !cleaned.status.success() || !left.is_empty() || dir_left {
        return Err(fail(format!(
            "clean --run {run} must remove the kept containers and the run directory, left {left:?} (dir there: {dir_left})\n{}",
            support::describe(&cleaned)
        )));
    }
    Ok(())
}

fn cleanup_kept(backend: &str, work: &Path, run: &str) -> Result<Output, Failed> {
    if backend == "fake" {
        return clean_fake(work, run);
    }
    Command::new(support::dockproof())
        .args(["clean", "--run", run, "--work-dir"])
        .arg(work)
        .output()
        .map_err(fail)
}

/// A build step tagging with `{{ run.id }}`, a run of the image (rendered the same way)
/// whose entrypoint fails, so the scenario fails and `--keep-failed` keeps the image.
const RUN_ID_TAG: &str = "name: run-id-tag-probe
steps:
  - build:
      context: ctx
      tag: \"dockproof/probe-run-id-tag:{{ run.id }}\"
  - run:
      image: \"dockproof/probe-run-id-tag:{{ run.id }}\"
    expect: { exit_code: 0 }
";

/// Whether the daemon has an image tagged `reference`.
fn image_exists(reference: &str) -> Result<bool, Failed> {
    let output = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", reference])
        .output()
        .map_err(fail)?;
    Ok(output.status.success())
}

/// Two runs of one scenario that builds a tag made with `{{ run.id }}`, the first's image
/// still there (kept by `--keep-failed`, as a concurrent run's would be) while the second
/// runs and cleans up: the second builds, runs and removes its own image and leaves the
/// first's alone; the tag in the record is the rendered one. With a fixed tag (what the
/// shipped build scenarios had) the second run's `image rm --force` took the first's tag
/// from under it, which is how both real backends' trials of one scenario failed in CI.
fn run_id_tags_keep_runs_apart(backend: &str) -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(fail)?;
    let context = dir.path().join("ctx");
    std::fs::create_dir(&context).map_err(fail)?;
    std::fs::copy(
        support::root().join("fixtures/build/entrypoint/Dockerfile"),
        context.join("Dockerfile"),
    )
    .map_err(fail)?;
    let scenario = write(dir.path(), "tag.yaml", RUN_ID_TAG)?;
    let work = dir.path().join("work");
    let ids = ["a", "b"].map(|which| format!("probe-tag-{which}-{backend}-{}", std::process::id()));
    let tags = ids
        .clone()
        .map(|id| format!("dockproof/probe-run-id-tag:{id}"));
    let report = dir.path().join("report.json");
    let run = |id: &str, keep: bool| {
        let mut command = support::dockproof_on(backend, &work);
        if keep {
            command.arg("--keep-failed");
        }
        command
            .args(["--run-id", id, "--json"])
            .arg(&report)
            .arg(&scenario)
            .output()
            .map_err(fail)
    };
    let first = run(&ids[0], true)?;
    let result = (|| {
        let text = support::describe(&first);
        // The run step fails (the image's entrypoint is `false`), on the rendered tag.
        let recorded: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&report).map_err(fail)?).map_err(fail)?;
        let image = &recorded["scenarios"][0]["record"]["context"]["docker"]["image"];
        if first.status.code() != Some(1) || image != tags[0].as_str() {
            return Err(fail(format!(
                "the first run must fail at its run step of {}, the record says {image}:\n{text}",
                tags[0]
            )));
        }
        if !image_exists(&tags[0])? {
            return Err(fail(format!("the first run built no {}:\n{text}", tags[0])));
        }
        let second = run(&ids[1], false)?;
        let text = support::describe(&second);
        if second.status.code() != Some(1) {
            return Err(fail(format!(
                "the second run must fail at its run step:\n{text}"
            )));
        }
        if image_exists(&tags[1])? {
            return Err(fail(format!("the second run left its image {}", tags[1])));
        }
        if !image_exists(&tags[0])? {
            return Err(fail(format!(
                "the second run removed the first run's image {}:\n{text}",
                tags[0]
            )));
        }
        Ok(())
    })();
    let cleaned = cleanup_kept(backend, &work, &ids[0]);
    result?;
    let cleaned = cleaned?;
    if !cleaned.status.success() || image_exists(&tags[0])? {
        return Err(fail(format!(
            "`dockproof clean --run {}` must remove the kept image:\n{}",
            ids[0],
            support::describe(&cleaned)
        )));
    }
    Ok(())
}

/// A build whose steps are this test's own (a label with the process id): no other
/// build shares its cache.
const PRUNE_PROBE_DOCKERFILE: &str = "# dockproof-context: /bin/busybox busybox
FROM scratch
COPY busybox /bin/busybox
LABEL probe=PROBE
RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo PROBE > /probe\"]
CMD [\"/bin/busybox\", \"cat\", \"/probe\"]
";

/// Removing the image a run built leaves its untagged parents (the build cache): with
/// them pruned, a second run building the same context at that moment lost the image
/// its next step stood on ("failed to get digest ... no such file or directory", seen
/// in CI when both real backends re-recorded the shipped build scenario at once). The
/// check: after the run, the intermediate images of the steps after `LABEL probe=...`
/// (they inherit the label; the run's own image, with its `dockproof.run` label on
/// top, is gone) are still there.
fn image_removal_keeps_the_build_cache(backend: &str) -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(fail)?;
    let context = dir.path().join("ctx");
    std::fs::create_dir(&context).map_err(fail)?;
    let probe = format!("prune-{backend}-{}", std::process::id());
    std::fs::write(
        context.join("Dockerfile"),
        PRUNE_PROBE_DOCKERFILE.replace("PROBE", &probe),
    )
    .map_err(fail)?;
    let scenario = write(
        dir.path(),
        "prune.yaml",
        "name: prune-probe\nsteps:\n  - build: { context: ctx }\n",
    )?;
    let output = support::dockproof_on(backend, &dir.path().join("work"))
        .arg(&scenario)
        .output()
        .map_err(fail)?;
    let listed = Command::new("docker")
        .args(["image", "ls", "--all", "--quiet", "--filter"])
        .arg(format!("label=probe={probe}"))
        .output()
        .map_err(fail)?;
    let kept: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    // This test's leftovers go (children first, as listed).
    for id in &kept {
        let _ = Command::new("docker")
            .args(["image", "rm", "--force", id])
            .output();
    }
    if output.status.code() != Some(0) {
        return Err(fail(format!(
            "the build scenario must pass:\n{}",
            support::describe(&output)
        )));
    }
    // LABEL, RUN and CMD: three intermediate images.
    if !listed.status.success() || kept.len() != 3 {
        return Err(fail(format!(
            "after the run the build cache must be there (3 intermediate images labelled probe={probe}), found {kept:?}"
        )));
    }
    Ok(())
}

/// A kept fake run whose run directory is then deleted by something else (as a
/// killed run's temporary directory is): its state, workspaces, filestore and scratch
/// files on the tmpfs would
/// stay in memory until a reboot; `dockproof clean` removes them, and only them.
fn fake_clean_takes_orphaned_tmpfs_directories() -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(fail)?;
    let failing = write(dir.path(), "keep.yaml", KEEP_FAILING)?;
    let work = dir.path().join("work");
    let run = format!("probe-orphan-{}", std::process::id());
    let output = support::dockproof_fake(&work)
        .args(["--keep-failed", "--run-id", &run])
        .arg(&failing)
        .output()
        .map_err(fail)?;
    let dirs = run_dirs(&work);
    let Some((_, run_dir)) = dirs.iter().find(|(id, _)| *id == run) else {
        return Err(fail(format!(
            "no kept run directory:\n{}",
            support::describe(&output)
        )));
    };
    let names = ["fake-docker-state", "workspaces", "filestore", "scratch"];
    let targets: Vec<PathBuf> = names
        .iter()
        .filter_map(|name| std::fs::read_link(run_dir.join(name)).ok())
        .collect();
    if targets.is_empty() {
        // No usable tmpfs here: nothing can be orphaned.
        return cleanup_kept("fake", &work, &run).map(drop);
    }
    if targets.len() != names.len() {
        let _ = cleanup_kept("fake", &work, &run);
        return Err(fail(format!(
            "with a tmpfs, each of {names:?} must lead to one, found {targets:?}"
        )));
    }
    // The kept containers are stopped (their processes write to the state), then the
    // run directory goes behind dockproof's back.
    let state = run_dir.join("fake-docker-state");
    for (id, _, _) in run_containers(&run, Some(&state))? {
        let _ = Command::new(support::fake_docker())
            .env("FAKE_DOCKER_STATE", &state)
            .args(["rm", "--force", &id])
            .output();
    }
    std::fs::remove_dir_all(run_dir).map_err(fail)?;
    if !targets.iter().all(|target| target.is_dir()) {
        return Err(fail(format!(
            "the tmpfs directories went with the run directory: {targets:?}"
        )));
    }
    let empty = dir.path().join("elsewhere");
    std::fs::create_dir(&empty).map_err(fail)?;
    let cleaned = clean_fake_runs(&empty, None)?;
    let left: Vec<&PathBuf> = targets.iter().filter(|target| target.exists()).collect();
    if !cleaned.status.success() || !left.is_empty() {
        return Err(fail(format!(
            "clean must remove the orphaned {left:?}:\n{}",
            support::describe(&cleaned)
        )));
    }
    Ok(())
}

/// This file's trials, run by `suites/main.rs`.
pub fn trials() -> Vec<Trial> {
    let mut trials = vec![
        Trial::test(
            "fake::concurrent-runs-of-one-suite-are-apart",
            fake_concurrent_runs_are_apart,
        ),
        Trial::test(
            "fake::reports-identical-run-ids-differ",
            fake_reports_identical_ids_differ,
        ),
        Trial::test(
            "fake::clean-run-matches-exactly",
            fake_clean_matches_exactly,
        ),
        Trial::test("fake::clean-keeps-a-live-run", fake_clean_keeps_a_live_run),
        Trial::test(
            "fake::clean-takes-orphaned-tmpfs-directories",
            fake_clean_takes_orphaned_tmpfs_directories,
        ),
        Trial::test(
            "fake::keep-failed-keeps-exactly-the-failed-scenario",
            || keep_failed("fake"),
        ),
        Trial::test(
            "fake::keep-failed-from-the-project-file",
            keep_failed_from_the_project_file,
        ),
    ];
    let real: [(&str, Test); 6] = [
        ("build-sigint", build_sigint),
        (
            "image-removal-keeps-the-build-cache",
            image_removal_keeps_the_build_cache,
        ),
        ("run-id-tags-keep-runs-apart", run_id_tags_keep_runs_apart),
        ("build-sigkill-then-clean", build_sigkill_then_clean),
        ("clean-keeps-a-live-run", clean_keeps_a_live_run),
        ("keep-failed-keeps-exactly-the-failed-scenario", keep_failed),
    ];
    for (name, test) in real {
        for backend in ["docker-cli", "docker-api"] {
            trials.push(support::real_daemon_trial(
                format!("{backend}::{name}"),
                move || test(backend),
            ));
        }
    }
    for backend in ["docker-cli", "docker-api"] {
        trials.push(support::compose_trial(
            format!("{backend}::compose-build-labelled-and-removed"),
            move || compose_build(backend),
        ));
        trials.push(support::compose_trial(
            format!("{backend}::sigterm-cleans-up-before-the-sweep"),
            move || sigterm_cleans_up_before_the_sweep(backend),
        ));
    }
    trials
}
