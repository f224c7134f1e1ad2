//! Record on a real daemon, replay on the fake, drift caught (docs/recordings.md).
//!
//! `fake::` trials replay the shipped recording of `scenarios/job-recorded-csv.yaml`
//! (made on the local daemon): same verdict every time, byte-identical reports across
//! 20 runs, a changed input or env refused with the difference named, faults injected
//! into a replayed job. `docker-cli::`/`docker-api::` trials need a real daemon (ignored
//! without one unless `DOCKPROOF_REQUIRE_DOCKER=1`): the replay gives the real run's
//! verdict and job record (timings and container ID aside), the shipped recording has not
//! drifted, a rebuilt image with a different output is drift (exit 1, in every report
//! format), a changed build is drift, re-recording an unchanged scenario changes no
//! byte, no secret value reaches any recording file, a recorded timeout replays as a timeout, and an image the fake
//! has no definition of replays from its recording alone.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use libtest_mimic::{Failed, Trial};
use serde_json::Value;

const SHIPPED: &str = "scenarios/job-recorded-csv.yaml";
const SHIPPED_EXEC: &str = "job-recorded-exec";
const SHIPPED_SERVICE: &str = "service-recorded-web";
/// The shipped CST example: image, config, and the recording its scenario made.
const CST_IMAGE: &str = "dockproof/report:1";
const CST_CONFIG: &str = "fixtures/cst/report.yaml";
const CST_RECORDING: &str = "scenarios/recordings/cst-recorded-report";

/// Every shipped scenario that has a recording beside it, with its recording directory:
/// the CI drift check and the re-recording check cover each of them.
fn recorded_scenarios() -> Vec<(PathBuf, PathBuf)> {
    support::shipped_scenarios()
        .into_iter()
        .filter_map(|path| {
            let loaded = dockproof::scenario::load_file(&path).scenario?;
            let dir = dockproof::recordings::dir_for(&loaded, None);
            dir.join("recording.json").is_file().then_some((path, dir))
        })
        .collect()
}

fn check(condition: bool, message: impl FnOnce() -> String) -> Result<(), Failed> {
    if condition {
        Ok(())
    } else {
        Err(message().into())
    }
}

fn json(path: &Path) -> Result<Value, Failed> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    serde_json::from_str(&text).map_err(|error| format!("{}: {error}", path.display()).into())
}

fn run(mut command: Command) -> Result<Output, Failed> {
    command
        .output()
        .map_err(|error| format!("cannot run dockproof: {error}").into())
}

/// `dockproof record [--check]` on a real backend.
fn record_command(backend: &str, work: &Path, check: bool) -> Command {
    let mut command = Command::new(support::dockproof());
    command
        .current_dir(support::root())
        .env("DOCKPROOF_HISTORY", support::history_db(work))
        .arg("record")
        .args(["--backend", backend])
        .arg("--fixture-images")
        .arg(support::root().join("fixtures/images"))
        .arg("--work-dir")
        .arg(work);
    if check {
        command.arg("--check");
    }
    command
}

/// Copies the shipped scenario and its recording into `dir`, with the CSV fixture
/// copied beside it (so a test may change it), the scenario text passed through `edit`.
fn copy_shipped(dir: &Path, edit: impl Fn(String) -> String) -> Result<PathBuf, Failed> {
    copy_shipped_named(dir, "job-recorded-csv", edit)
}

/// [`copy_shipped`] for the shipped scenario `name`.
fn copy_shipped_named(
    dir: &Path,
    name: &str,
    edit: impl Fn(String) -> String,
) -> Result<PathBuf, Failed> {
    let root = support::root();
    let text = std::fs::read_to_string(root.join(format!("scenarios/{name}.yaml")))
        .map_err(|e| e.to_string())?;
    let text = text.replace("../fixtures/inputs/orders.csv", "orders.csv");
    std::fs::copy(
        root.join("fixtures/inputs/orders.csv"),
        dir.join("orders.csv"),
    )
    .map_err(|e| e.to_string())?;
    let scenario = dir.join(format!("{name}.yaml"));
    std::fs::write(&scenario, edit(text)).map_err(|e| e.to_string())?;
    let target = dir.join(format!("recordings/{name}"));
    std::fs::create_dir_all(&target).map_err(|e| e.to_string())?;
    let shipped = root.join(format!("scenarios/recordings/{name}"));
    for entry in std::fs::read_dir(shipped).map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        if entry.path().is_file() {
            std::fs::copy(entry.path(), target.join(entry.file_name()))
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(scenario)
}

/// The shipped recorded scenarios replay on the fake: all passed (none skipped), with
/// the recorded output, and the same JUnit and JSON bytes in 20 runs, 4 at a time.
fn replay_is_byte_identical() -> Result<(), Failed> {
    const RUNS: usize = 20;
    const AT_ONCE: usize = 4;
    let recorded: Vec<PathBuf> = recorded_scenarios()
        .into_iter()
        .map(|(path, _)| path)
        .collect();
    check(recorded.len() >= 2, || {
        format!("expected the shipped recorded scenarios, found {recorded:?}")
    })?;
    let run_once = move || -> Result<(Vec<u8>, Vec<u8>), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (junit, report) = (dir.path().join("junit.xml"), dir.path().join("report.json"));
        let output = support::dockproof_fake(dir.path())
            .arg("--junit")
            .arg(&junit)
            .arg("--json")
            .arg(&report)
            .args(&recorded)
            .output()
            .map_err(|e| e.to_string())?;
        if output.status.code() != Some(0) {
            return Err(support::describe(&output));
        }
        Ok((
            std::fs::read(&junit).map_err(|e| e.to_string())?,
            std::fs::read(&report).map_err(|e| e.to_string())?,
        ))
    };
    let mut outputs = Vec::new();
    for _ in 0..RUNS / AT_ONCE {
        let batch: Vec<_> = (0..AT_ONCE)
            .map(|_| std::thread::spawn(run_once.clone()))
            .collect();
        for handle in batch {
            outputs.push(handle.join().map_err(|_| "a run panicked")??);
        }
    }
    let report: Value = serde_json::from_slice(&outputs[0].1).map_err(|e| e.to_string())?;
    for scenario in report["scenarios"].as_array().into_iter().flatten() {
        check(scenario["outcome"] == "passed", || {
            format!("the replay did not pass: {scenario}")
        })?;
    }
    let Some(scenario) = report["scenarios"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|scenario| scenario["name"] == "job-recorded-csv")
    else {
        return Err(format!("job-recorded-csv did not run: {report}").into());
    };
    let stdout = &scenario["record"]["context"]["docker"]["logTail"]["stdout"];
    check(stdout.to_string().contains("rows=5 total=60.00"), || {
        format!("the recorded output was not replayed: {stdout}")
    })?;
    for (index, (junit, report)) in outputs.iter().enumerate().skip(1) {
        check(*junit == outputs[0].0, || {
            format!("run {} wrote a different JUnit report", index + 1)
        })?;
        check(*report == outputs[0].1, || {
            format!("run {} wrote a different JSON report", index + 1)
        })?;
    }
    Ok(())
}

/// A replay refused for a call the recording does not describe: exit 1, config_invalid,
/// the message naming each `needles`.
fn refused(scenario: &Path, work: &Path, needles: &[&str]) -> Result<(), Failed> {
    let report = work.join("report.json");
    let output = run({
        let mut command = support::dockproof_fake(work);
        command.arg("--json").arg(&report).arg(scenario);
        command
    })?;
    check(output.status.code() == Some(1), || {
        format!("expected exit 1\n{}", support::describe(&output))
    })?;
    let report = json(&report)?;
    let failure = &report["scenarios"][0]["failure"];
    check(failure["category"] == "config_invalid", || {
        format!("expected config_invalid: {failure}")
    })?;
    let message = failure["message"].as_str().unwrap_or_default();
    for needle in needles {
        check(message.contains(needle), || {
            format!("the refusal does not say `{needle}`: {message}")
        })?;
    }
    Ok(())
}

fn a_changed_input_is_refused() -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let scenario = copy_shipped(dir.path(), |text| text)?;
    let csv = dir.path().join("orders.csv");
    let mut text = std::fs::read_to_string(&csv).map_err(|e| e.to_string())?;
    text.push_str("1006,hooli,widget,1,2.50\n");
    std::fs::write(&csv, text).map_err(|e| e.to_string())?;
    refused(
        &scenario,
        dir.path(),
        &[
            "no recording matches this container",
            "workspace file inputs/orders.csv differs",
            "dockproof record",
        ],
    )
}

fn a_changed_env_is_refused() -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let scenario = copy_shipped(dir.path(), |text| {
        text.replace(
            "        JOB_ID: \"{{ job.id }}\"\n",
            "        JOB_ID: \"{{ job.id }}\"\n        REGION: eu-west\n",
        )
    })?;
    refused(
        &scenario,
        dir.path(),
        &["env REGION differs: recorded unset, now `eu-west`"],
    )
}

/// An exec the recording does not describe is refused, naming the difference.
fn a_changed_exec_env_is_refused() -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let scenario = copy_shipped_named(dir.path(), SHIPPED_EXEC, |text| {
        text.replace("MODE: batch", "MODE: stream")
    })?;
    refused(
        &scenario,
        dir.path(),
        &[
            "no recording matches this container: exec",
            "env MODE differs: recorded `batch`, now `stream`",
            "dockproof record",
        ],
    )
}

/// A probe of a replayed service that the recording does not have is refused with the
/// request named (config_invalid), never answered by a guess.
fn a_probe_the_recording_lacks_is_refused() -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let scenario = copy_shipped_named(dir.path(), SHIPPED_SERVICE, |text| {
        text.replace("path: /nope", "path: /other")
    })?;
    refused(
        &scenario,
        dir.path(),
        &[
            "no recording matches this request: GET /other on container port 8080",
            "recorded: GET /api/items, GET /nope",
            "dockproof record",
        ],
    )
}

/// A replayed service's health is its recorded timeline: the shipped recording replays
/// starting then healthy (the scenario passes); the same recording edited to end
/// unhealthy makes the replay's wait fail with health_failed.
fn the_replayed_service_plays_its_recorded_health() -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let scenario = copy_shipped_named(dir.path(), SHIPPED_SERVICE, |text| text)?;
    let report = dir.path().join("report.json");
    let replay = |report: &Path| {
        run({
            let mut command = support::dockproof_fake(dir.path());
            command.arg("--json").arg(report).arg(&scenario);
            command
        })
    };
    let output = replay(&report)?;
    check(output.status.code() == Some(0), || {
        support::describe(&output)
    })?;
    let health = &json(&report)?["scenarios"][0]["record"]["context"]["services"]["web"]["health"];
    let statuses: Vec<&str> = health
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|change| change["status"].as_str())
        .collect();
    check(statuses == ["starting", "healthy"], || {
        format!("expected the recorded timeline: {health}")
    })?;
    let file = dir
        .path()
        .join(format!("recordings/{SHIPPED_SERVICE}/recording.json"));
    let text = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
    let edited = text.replace("\"healthy\"\n      ]", "\"unhealthy\"\n      ]");
    check(edited != text, || {
        "the shipped timeline was not found".into()
    })?;
    std::fs::write(&file, edited).map_err(|e| e.to_string())?;
    let output = replay(&report)?;
    check(output.status.code() == Some(1), || {
        support::describe(&output)
    })?;
    let failure = &json(&report)?["scenarios"][0]["failure"];
    check(
        failure["category"] == "health_failed"
            && failure["message"]
                .as_str()
                .is_some_and(|message| message.contains("became unhealthy")),
        || format!("expected health_failed (became unhealthy): {failure}"),
    )
}

/// The shipped build replays on the fake from its recording (its image checks pass on
/// the recorded config); a changed file in the build context is refused, naming it.
fn a_changed_build_context_is_refused_naming_it() -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let root = support::root();
    let context = dir.path().join("ctx");
    std::fs::create_dir(&context).map_err(|e| e.to_string())?;
    for file in ["Dockerfile", "VERSION"] {
        std::fs::copy(
            root.join("fixtures/build/recorded-report").join(file),
            context.join(file),
        )
        .map_err(|e| e.to_string())?;
    }
    let text = std::fs::read_to_string(root.join("scenarios/build/recorded-image.yaml"))
        .map_err(|e| e.to_string())?
        .replace("../../fixtures/build/recorded-report", "ctx");
    let scenario = dir.path().join("recorded-image.yaml");
    std::fs::write(&scenario, text).map_err(|e| e.to_string())?;
    let recording = dir.path().join("recordings/build-recorded-image");
    std::fs::create_dir_all(&recording).map_err(|e| e.to_string())?;
    std::fs::copy(
        root.join("scenarios/build/recordings/build-recorded-image/recording.json"),
        recording.join("recording.json"),
    )
    .map_err(|e| e.to_string())?;
    let output = run({
        let mut command = support::dockproof_fake(dir.path());
        command.arg(&scenario);
        command
    })?;
    check(output.status.code() == Some(0), || {
        format!(
            "the recorded build did not replay\n{}",
            support::describe(&output)
        )
    })?;
    std::fs::write(context.join("VERSION"), "report 1.5.0\n").map_err(|e| e.to_string())?;
    refused(
        &scenario,
        dir.path(),
        &[
            "no recording matches this build",
            "context file VERSION differs",
            "dockproof record",
        ],
    )
}

/// Faults apply to a replayed service: a port conflict injected at its start.
fn an_injected_port_conflict_hits_the_replayed_service() -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let scenario = copy_shipped_named(dir.path(), SHIPPED_SERVICE, |text| {
        text.replace(
            "timeout: 1m\n",
            "timeout: 1m\nfake_faults: \"start:port-allocated\"\n",
        )
    })?;
    let report = dir.path().join("report.json");
    let output = run({
        let mut command = support::dockproof_fake(dir.path());
        command.arg("--json").arg(&report).arg(&scenario);
        command
    })?;
    check(output.status.code() == Some(1), || {
        format!("expected exit 1\n{}", support::describe(&output))
    })?;
    let failure = &json(&report)?["scenarios"][0]["failure"];
    check(failure["category"] == "port_conflict", || {
        format!("expected port_conflict: {failure}")
    })
}

/// Faults apply to replayed containers: an OOM kill injected into the recorded job.
fn an_injected_oom_hits_the_replayed_job() -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let scenario = copy_shipped(dir.path(), |text| {
        text.replace("timeout: 1m\n", "timeout: 1m\nfake_faults: \"start:oom\"\n")
    })?;
    let report = dir.path().join("report.json");
    let output = run({
        let mut command = support::dockproof_fake(dir.path());
        command.arg("--json").arg(&report).arg(&scenario);
        command
    })?;
    check(output.status.code() == Some(1), || {
        format!("expected exit 1\n{}", support::describe(&output))
    })?;
    let report = json(&report)?;
    let failure = &report["scenarios"][0]["failure"];
    check(failure["category"] == "oom_killed", || {
        format!("expected oom_killed: {failure}")
    })
}

/// The shipped recordings (every shipped scenario with one) still describe the local
/// daemon's images: none skipped, none drifted.
fn shipped_recording_has_not_drifted(backend: &'static str) -> Result<(), Failed> {
    support::ensure_fixture_image("dockproof/job-runner:1")?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let recorded = recorded_scenarios();
    let output = run({
        let mut command = record_command(backend, dir.path(), true);
        command.args(recorded.iter().map(|(path, _)| path));
        command
    })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = format!("{} passed, 0 failed", recorded.len());
    check(
        output.status.code() == Some(0) && stdout.contains(&summary),
        || {
            format!(
                "the shipped recordings drifted (expected `{summary}`)\n{}",
                support::describe(&output)
            )
        },
    )
}

/// Re-recording the shipped scenarios, unchanged, on the same images writes exactly the
/// shipped bytes (every file of every recording).
fn re_recording_the_shipped_scenarios_changes_no_byte(backend: &'static str) -> Result<(), Failed> {
    support::ensure_fixture_image("dockproof/job-runner:1")?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let fresh = dir.path().join("fresh");
    let recorded = recorded_scenarios();
    let output = run({
        let mut command = record_command(backend, dir.path(), false);
        command
            .arg("--recordings")
            .arg(&fresh)
            .args(recorded.iter().map(|(path, _)| path));
        command
    })?;
    check(output.status.code() == Some(0), || {
        format!("re-recording failed\n{}", support::describe(&output))
    })?;
    for (_, shipped) in &recorded {
        let Some(name) = shipped.file_name() else {
            continue;
        };
        let (old, new) = (
            without_image_ids(files(shipped)),
            without_image_ids(files(&fresh.join(name))),
        );
        check(old == new, || {
            let line = old
                .iter()
                .zip(&new)
                .find(|(a, b)| a != b)
                .and_then(|((path, a), (_, b))| {
                    let (a, b) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
                    a.lines()
                        .zip(b.lines())
                        .find(|(x, y)| x != y)
                        .map(|(x, y)| format!("{}: shipped {x}, now {y}", path.display()))
                })
                .unwrap_or_else(|| format!("{} file(s) shipped, {} now", old.len(), new.len()));
            format!("re-recording {} changed it: {line}", shipped.display())
        })?;
    }
    Ok(())
}

/// Builds `tag` from a context whose `report` program prints `line`.
fn build_report_image(context: &Path, tag: &str, line: &str) -> Result<(), Failed> {
    // FROM scratch with the host's static busybox (as the fixture images are): nothing
    // inherited from a shared tag that other runs on the daemon may rebuild.
    std::fs::copy("/bin/busybox", context.join("busybox")).map_err(|e| e.to_string())?;
    std::fs::write(
        context.join("Dockerfile"),
        format!(
            "FROM scratch\nCOPY busybox /bin/busybox\nCOPY report /report\nENTRYPOINT [\"/bin/busybox\", \"sh\", \"/report\"]\nWORKDIR /workspace\nLABEL dockproof.test=record tag={tag}\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let script = format!("echo '{line}'\necho \"$1\" > \"$1.out\"\n");
    std::fs::write(context.join("report"), script).map_err(|e| e.to_string())?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        context.join("report"),
        std::fs::Permissions::from_mode(0o755),
    )
    .map_err(|e| e.to_string())?;
    let output = Command::new("docker")
        .args(["build", "-q", "-t", tag])
        .arg(context)
        .output()
        .map_err(|e| e.to_string())?;
    check(output.status.success(), || {
        format!("docker build failed\n{}", support::describe(&output))
    })
}

/// Removes the test's image on every path.
struct ImageGuard(String);

impl Drop for ImageGuard {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", "-f", &self.0]).output();
    }
}

/// Every file under `dir`, by relative path, with its bytes.
/// The recording files with every `image_id` value blanked: a fixture image built on
/// another day (or machine) from the same context has another ID (its config holds the
/// build time), while everything a replay or the drift check relies on is the same.
/// Re-recording on the very same image changes not even the ID
/// (`a-rebuilt-image-drifts` re-records its own image and requires identical bytes).
fn without_image_ids(files: Vec<(PathBuf, Vec<u8>)>) -> Vec<(PathBuf, Vec<u8>)> {
    let pattern =
        regex::bytes::Regex::new(r#""image_id": "sha256:[0-9a-f]{64}""#).expect("a valid pattern");
    files
        .into_iter()
        .map(|(path, bytes)| {
            let blanked = pattern.replace_all(&bytes, &b"\"image_id\": \"sha256:...\""[..]);
            (path, blanked.into_owned())
        })
        .collect()
}

fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap_or_default();
                found.push((path.strip_prefix(dir).unwrap_or(&path).to_path_buf(), bytes));
            }
        }
    }
    found.sort();
    found
}

/// Record a job on `record-…:1`, re-record it (no byte changes), rebuild the image with
/// a different output: `record --check` exits 1 with the drift in JSON, JUnit and
/// Markdown.
fn a_rebuilt_image_drifts(backend: &'static str) -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let tag = format!("record-drift-{}-{backend}:1", std::process::id());
    let _guard = ImageGuard(tag.clone());
    let context = dir.path().join("context");
    std::fs::create_dir(&context).map_err(|e| e.to_string())?;
    build_report_image(&context, &tag, "report v1")?;
    let scenario = dir.path().join("drift.yaml");
    std::fs::write(
        &scenario,
        format!(
            "name: record-drift\nstage:\n  - {{ generate: {{ bytes: 64, seed: 3 }}, to: in.bin }}\nsteps:\n  - run:\n      image: {tag}\n      cmd: [in.bin]\n    expect:\n      stdout: {{ contains: report }}\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let record = |check_mode: bool, reports: bool| -> Result<Output, Failed> {
        let mut command = record_command(backend, dir.path(), check_mode);
        if reports {
            command
                .arg("--json")
                .arg(dir.path().join("report.json"))
                .arg("--junit")
                .arg(dir.path().join("junit.xml"))
                .arg("--markdown")
                .arg(dir.path().join("summary.md"));
        }
        command.arg(&scenario);
        run(command)
    };
    let first = record(false, false)?;
    check(first.status.code() == Some(0), || {
        format!("recording failed\n{}", support::describe(&first))
    })?;
    let recording = dir.path().join("recordings/record-drift");
    let before = files(&recording);
    check(!before.is_empty(), || "no recording was written".into())?;
    // An image no fake definition describes runs on the fake from its recording alone.
    let replay_report = dir.path().join("replay.json");
    let replay = run({
        let mut command = support::dockproof_fake(dir.path());
        command.arg("--json").arg(&replay_report).arg(&scenario);
        command
    })?;
    check(replay.status.code() == Some(0), || {
        format!(
            "the user's image did not replay on the fake\n{}",
            support::describe(&replay)
        )
    })?;
    let replayed = json(&replay_report)?;
    check(replayed["scenarios"][0]["outcome"] == "passed", || {
        format!("expected passed on the fake: {}", replayed["scenarios"][0])
    })?;
    let again = record(false, false)?;
    check(again.status.code() == Some(0), || support::describe(&again))?;
    let after = files(&recording);
    check(after == before, || {
        let first_difference = before
            .iter()
            .zip(&after)
            .find(|(a, b)| a != b)
            .map(|((path, a), (_, b))| {
                let (a, b) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
                let line = a
                    .lines()
                    .zip(b.lines())
                    .find(|(x, y)| x != y)
                    .map(|(x, y)| format!("\n  before: {x}\n  after:  {y}"))
                    .unwrap_or_default();
                format!("{}{line}", path.display())
            })
            .unwrap_or_else(|| format!("{} file(s) before, {} after", before.len(), after.len()));
        format!("re-recording an unchanged scenario changed the recording: {first_difference}")
    })?;
    let unchanged = record(true, false)?;
    check(unchanged.status.code() == Some(0), || {
        format!("no drift expected yet\n{}", support::describe(&unchanged))
    })?;
    build_report_image(&context, &tag, "report v2")?;
    let drifted = record(true, true)?;
    check(drifted.status.code() == Some(1), || {
        format!("expected exit 1 on drift\n{}", support::describe(&drifted))
    })?;
    let report = json(&dir.path().join("report.json"))?;
    let failure = &report["scenarios"][0]["failure"];
    let message = failure["message"].as_str().unwrap_or_default();
    check(
        failure["category"] == "assertion_failed"
            && message.contains("recording drift")
            && message.contains("stdout differs")
            && message.contains("report v2"),
        || format!("the drift is not named: {failure}"),
    )?;
    for file in ["junit.xml", "summary.md"] {
        let text = std::fs::read_to_string(dir.path().join(file)).map_err(|e| e.to_string())?;
        check(text.contains("recording drift"), || {
            format!("{file} does not report the drift:\n{text}")
        })?;
    }
    check(files(&recording) == before, || {
        "the check rewrote the recording".into()
    })
}

/// A secret (env, stdout, stderr, a workspace file, a long output held as a blob; a
/// detached container's env and logs; an exec's env, output and file) is in no
/// recording file, and the recording still replays with the secret in the env.
fn no_secret_in_any_recording_file(backend: &'static str) -> Result<(), Failed> {
    support::ensure_fixture_image("dockproof/job-runner:1")?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let secret = format!("rec-secret-{}-XyZ", std::process::id());
    let scenario = dir.path().join("secret.yaml");
    std::fs::write(
        &scenario,
        "name: record-secret\nsecrets:\n  token: { env: RECORD_TEST_TOKEN }\nsteps:\n  - run:\n      image: dockproof/job-runner:1\n      cmd: [sh, -c, 'echo \"token=$TOKEN\"; echo \"$TOKEN\" >&2; echo \"$TOKEN\" > token.txt; i=0; while [ $i -lt 300 ]; do echo \"line $i $TOKEN\"; i=$((i+1)); done > big.txt']\n      env: { TOKEN: \"Bearer {{ secret.token }}\" }\n  - run:\n      image: dockproof/job-runner:1\n      cmd: [sh, -c, 'echo \"worker $TOKEN\"; exec sleep 300']\n      env: { TOKEN: \"{{ secret.token }}\" }\n      detach: true\n      container: worker\n  - logs: { container: worker, stdout: { contains: worker }, within: 10s }\n  - exec:\n      container: worker\n      cmd: [sh, -c, 'echo \"exec $SECRET\"; echo \"$SECRET\" > exec-token.txt']\n      env: { SECRET: \"{{ secret.token }}\" }\n",
    )
    .map_err(|e| e.to_string())?;
    let output = run({
        let mut command = record_command(backend, dir.path(), false);
        command.env("RECORD_TEST_TOKEN", &secret).arg(&scenario);
        command
    })?;
    check(output.status.code() == Some(0), || {
        format!("recording failed\n{}", support::describe(&output))
    })?;
    let recording = dir.path().join("recordings/record-secret");
    let found = files(&recording);
    check(found.len() >= 2, || {
        format!("expected the recording and a blob, found {found:?}")
    })?;
    for (path, bytes) in &found {
        let text = String::from_utf8_lossy(bytes);
        check(!text.contains(&secret), || {
            format!("{} holds the secret", path.display())
        })?;
    }
    // The placeholder matches the value when replayed on the fake.
    let replay = run({
        let mut command = support::dockproof_fake(dir.path());
        command.env("RECORD_TEST_TOKEN", &secret).arg(&scenario);
        command
    })?;
    check(replay.status.code() == Some(0), || {
        format!("the replay failed\n{}", support::describe(&replay))
    })
}

/// A job stopped at its timeout on the daemon replays as one: the fake's container runs
/// until the same timeout stops it, so the verdict (timeout, exit 137) is the recorded one.
fn a_recorded_timeout_replays_as_a_timeout(backend: &'static str) -> Result<(), Failed> {
    support::ensure_fixture_image("dockproof/job-runner:1")?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let scenario = dir.path().join("timeout.yaml");
    std::fs::write(
        &scenario,
        "name: record-timeout\nsteps:\n  - run:\n      image: dockproof/job-runner:1\n      cmd: [sh, -c, 'echo started; sleep 30']\n      timeout: 2s\n      stop_grace: 1s\n    expect_failure: timeout\n",
    )
    .map_err(|e| e.to_string())?;
    let output = run({
        let mut command = record_command(backend, dir.path(), false);
        command.arg(&scenario);
        command
    })?;
    check(output.status.code() == Some(0), || {
        format!("recording failed\n{}", support::describe(&output))
    })?;
    let started = std::time::Instant::now();
    let report = dir.path().join("fake.json");
    let replay = run({
        let mut command = support::dockproof_fake(dir.path());
        command.arg("--json").arg(&report).arg(&scenario);
        command
    })?;
    check(replay.status.code() == Some(0), || {
        format!(
            "the replay did not time out as recorded\n{}",
            support::describe(&replay)
        )
    })?;
    let report = json(&report)?;
    let docker = &report["scenarios"][0]["record"]["context"]["docker"];
    check(
        docker["timedOut"] == true && docker["exitCode"] == 137,
        || format!("expected a timeout with exit 137: {docker}"),
    )?;
    check(
        started.elapsed() < std::time::Duration::from_secs(20),
        || "the replay took the recorded job's whole sleep".into(),
    )
}

/// A `build` step's image config is recorded; a Dockerfile that now makes a different
/// image is drift.
fn a_changed_build_drifts(backend: &'static str) -> Result<(), Failed> {
    support::ensure_fixture_image("dockproof/job-runner:1")?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let context = dir.path().join("ctx");
    std::fs::create_dir(&context).map_err(|e| e.to_string())?;
    let dockerfile = |stage: &str| {
        std::fs::write(
            context.join("Dockerfile"),
            format!(
                "FROM dockproof/job-runner:1\nENV STAGE={stage}\nLABEL team=etl\nCMD [\"job\"]\n"
            ),
        )
    };
    dockerfile("one").map_err(|e| e.to_string())?;
    let scenario = dir.path().join("build.yaml");
    std::fs::write(
        &scenario,
        "name: record-build\nsteps:\n  - build:\n      context: ctx\n",
    )
    .map_err(|e| e.to_string())?;
    let record = |check_mode: bool| -> Result<Output, Failed> {
        let mut command = record_command(backend, dir.path(), check_mode);
        command
            .arg("--json")
            .arg(dir.path().join("report.json"))
            .arg(&scenario);
        run(command)
    };
    let first = record(false)?;
    check(first.status.code() == Some(0), || support::describe(&first))?;
    let text = std::fs::read_to_string(dir.path().join("recordings/record-build/recording.json"))
        .map_err(|e| e.to_string())?;
    check(
        text.contains("STAGE=one") && !text.contains("dockproof.run"),
        || format!("the build's config is not recorded as expected:\n{text}"),
    )?;
    let same = record(true)?;
    check(same.status.code() == Some(0), || {
        format!("an unchanged build drifted\n{}", support::describe(&same))
    })?;
    dockerfile("two").map_err(|e| e.to_string())?;
    let drifted = record(true)?;
    check(drifted.status.code() == Some(1), || {
        format!("expected exit 1\n{}", support::describe(&drifted))
    })?;
    let report = json(&dir.path().join("report.json"))?;
    let message = report["scenarios"][0]["failure"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    check(
        message.contains("build 1 (/steps/0): image config Env differs")
            && message.contains("STAGE=two"),
        || format!("the build drift is not named: {message}"),
    )
}

/// The Bar: the shipped job run for real and replayed on the fake gives the same
/// verdict, steps and job record, all but the container ID and timings.
fn replay_gives_the_real_job_record(backend: &'static str) -> Result<(), Failed> {
    support::ensure_fixture_image("dockproof/job-runner:1")?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let report = |mut command: Command, name: &str| -> Result<Value, Failed> {
        let path = dir.path().join(name);
        let output = run({
            command.arg("--json").arg(&path).arg(SHIPPED);
            command
        })?;
        check(output.status.code() == Some(0), || {
            support::describe(&output)
        })?;
        let mut scenario = json(&path)?["scenarios"][0].clone();
        // Timings (the fake's reports leave them out), the container ID, and resource
        // samples: the daemon samples about once a second, so whether a short job got one
        // is timing (docker-api caught one in CI, the replay none); they are not replayed.
        for (parent, key) in [
            ("/record/context/docker", "containerId"),
            ("/record/metrics/docker", "startMs"),
            ("/record/metrics/docker", "runMs"),
            ("/record/metrics/docker", "resources"),
            ("", "durationMs"),
        ] {
            if let Some(Value::Object(map)) = scenario.pointer_mut(parent) {
                map.remove(key);
            }
        }
        if let Some(steps) = scenario["steps"].as_array_mut() {
            for step in steps {
                if let Some(map) = step.as_object_mut() {
                    map.remove("durationMs");
                }
            }
        }
        Ok(scenario)
    };
    let real = report(support::dockproof_on(backend, dir.path()), "real.json")?;
    let fake = report(support::dockproof_fake(dir.path()), "fake.json")?;
    check(real["outcome"] == "passed", || format!("real: {real}"))?;
    check(real == fake, || {
        format!(
            "the replay differs from the real run\n--- real\n{}\n--- fake\n{}",
            serde_json::to_string_pretty(&real).unwrap_or_default(),
            serde_json::to_string_pretty(&fake).unwrap_or_default()
        )
    })
}

/// `record` needs a real daemon: on the fake it is a usage error (exit 2), nothing run.
fn record_on_the_fake_is_a_usage_error() -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let output = run({
        let mut command = Command::new(support::dockproof());
        command
            .current_dir(support::root())
            .args(["record", "--backend", "fake", "--no-history", "--work-dir"])
            .arg(dir.path())
            .arg(SHIPPED);
        command
    })?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    check(
        output.status.code() == Some(2) && stderr.contains("needs a real daemon"),
        || support::describe(&output),
    )
}

/// `record --check` over scenarios with and without recordings checks the recorded one
/// and skips the other with the reason.
fn check_skips_a_scenario_without_a_recording(backend: &'static str) -> Result<(), Failed> {
    support::ensure_fixture_image("dockproof/job-runner:1")?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let output = run({
        let mut command = record_command(backend, dir.path(), true);
        command.arg(SHIPPED).arg("scenarios/job-shell-command.yaml");
        command
    })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    check(
        output.status.code() == Some(0)
            && stdout.contains("1 passed, 0 failed, 1 skipped")
            && stdout.contains("no recording at"),
        || support::describe(&output),
    )
}

/// `record --host`: one host to write on; several only with `--check`; never the fake
/// (exit 2, nothing run, each named).
fn record_host_usage_errors() -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "--backend",
                "docker-cli",
                "--host",
                "a=tcp://192.0.2.1:2375",
                "--host",
                "b=tcp://192.0.2.2:2375",
            ],
            "records on one host, not 2 (a, b): pass a single --host",
        ),
        (
            &["--backend", "docker-cli", "--host", "fake://f1"],
            "host `f1` is the fake",
        ),
        (
            &["--backend", "fake", "--host", "local"],
            "host `local` is the fake",
        ),
        (
            &[
                "--check",
                "--backend",
                "docker-api",
                "--host",
                "a=tcp://192.0.2.1:2375",
                "--host",
                "fake://f2",
            ],
            "host `f2` is the fake",
        ),
    ];
    for (args, needle) in cases {
        let output = run({
            let mut command = Command::new(support::dockproof());
            command
                .current_dir(support::root())
                .args(["record", "--no-history", "--work-dir"])
                .arg(dir.path())
                .args(args)
                .arg(SHIPPED);
            command
        })?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        check(
            output.status.code() == Some(2) && stderr.contains(needle) && output.stdout.is_empty(),
            || {
                format!(
                    "record {args:?}: expected exit 2 saying {needle:?}\n{}",
                    support::describe(&output)
                )
            },
        )?;
    }
    Ok(())
}

/// A CST command test with `setup` (its test command runs on the image committed from
/// the setup container, whose ID is new every time): recorded on the daemon, it names
/// that image by the setup's step; it replays on the fake with the same verdicts (in a
/// scenario and through `dockproof cst`), re-recording changes no byte, and rebuilding the image with another output is drift.
fn a_cst_setup_replays_and_drifts(backend: &'static str) -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let tag = format!("record-cst-setup-{}-{backend}:1", std::process::id());
    let _guard = ImageGuard(tag.clone());
    let context = dir.path().join("context");
    std::fs::create_dir(&context).map_err(|e| e.to_string())?;
    build_report_image(&context, &tag, "report v1")?;
    std::fs::write(
        dir.path().join("setup.yaml"),
        "schemaVersion: 2.0.0\ncommandTests:\n  - name: setup state persists into the test\n    setup:\n      - [/bin/busybox, sh, -c, 'echo prepared > /prepared']\n      - [/bin/busybox, sh, -c, 'echo again >> /prepared']\n    command: /bin/busybox\n    args: [sh, -c, '/bin/busybox cat /prepared; /bin/busybox sh /report x']\n    expectedOutput: ['^prepared\\nagain\\nreport v1\\n$']\n  - name: no setup\n    command: /bin/busybox\n    args: [sh, /report, y]\n    expectedOutput: ['report v1']\n",
    )
    .map_err(|e| e.to_string())?;
    let scenario = dir.path().join("cst-setup.yaml");
    std::fs::write(
        &scenario,
        format!("name: record-cst-setup\nsteps:\n  - cst:\n      image: {tag}\n      config: setup.yaml\n"),
    )
    .map_err(|e| e.to_string())?;
    let record = |check_mode: bool, json_report: Option<&Path>| -> Result<Output, Failed> {
        let mut command = record_command(backend, dir.path(), check_mode);
        if let Some(path) = json_report {
            command.arg("--json").arg(path);
        }
        command.arg(&scenario);
        run(command)
    };
    let first = record(false, None)?;
    check(first.status.code() == Some(0), || {
        format!("recording failed\n{}", support::describe(&first))
    })?;
    let recording = dir.path().join("recordings/record-cst-setup");
    let recorded = json(&recording.join("recording.json"))?;
    let images: Vec<(String, String)> = recorded["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|container| {
            (
                container["step"].as_str().unwrap_or_default().to_owned(),
                container["call"]["image"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    let setup = "/steps/0/cst/commandTests/0/setup";
    let expected = vec![
        (
            "/steps/0/cst/commandTests/0".to_owned(),
            format!("committed:{setup}/1"),
        ),
        (format!("{setup}/0"), tag.clone()),
        (format!("{setup}/1"), format!("committed:{setup}/0")),
        ("/steps/0/cst/commandTests/1".to_owned(), tag.clone()),
    ];
    check(images == expected, || {
        format!("recorded containers and their images: {images:?}, expected {expected:?}")
    })?;
    let before = files(&recording);
    let replay_report = dir.path().join("replay.json");
    let replay = run({
        let mut command = support::dockproof_fake(dir.path());
        command.arg("--json").arg(&replay_report).arg(&scenario);
        command
    })?;
    let replayed = json(&replay_report)?;
    check(
        replay.status.code() == Some(0) && replayed["scenarios"][0]["outcome"] == "passed",
        || {
            format!(
                "the CST setup did not replay on the fake: {}\n{}",
                replayed["scenarios"][0],
                support::describe(&replay)
            )
        },
    )?;
    // `dockproof cst` replays the same recording (the CST CLI on the fake).
    let cst = run({
        let mut command = support::cst_command("fake", dir.path());
        command
            .arg("--recordings")
            .arg(&recording)
            .args(["--image", &tag])
            .arg(dir.path().join("setup.yaml"));
        command
    })?;
    check(cst.status.code() == Some(0), || {
        format!(
            "dockproof cst --backend fake --recordings did not replay the setup\n{}",
            support::describe(&cst)
        )
    })?;
    let again = record(false, None)?;
    check(again.status.code() == Some(0), || support::describe(&again))?;
    check(files(&recording) == before, || {
        "re-recording the unchanged CST config changed the recording".into()
    })?;
    let unchanged = record(true, None)?;
    check(unchanged.status.code() == Some(0), || {
        format!("no drift expected yet\n{}", support::describe(&unchanged))
    })?;
    build_report_image(&context, &tag, "report v2")?;
    let report = dir.path().join("drift.json");
    let drifted = record(true, Some(&report))?;
    let failure = json(&report)?["scenarios"][0]["failure"].clone();
    let message = failure["message"].as_str().unwrap_or_default();
    check(
        drifted.status.code() == Some(1)
            && message.contains("recording drift")
            && message.contains("container 1 (/steps/0/cst/commandTests/0): stdout differs")
            && message.contains("report v2"),
        || {
            format!(
                "expected the drift of the test after setup: {failure}\n{}",
                support::describe(&drifted)
            )
        },
    )
}

/// What a `dockproof cst` run gave: its exit code, its JUnit verdicts, its output.
type CstRun = (Option<i32>, Vec<(String, bool)>, Output);

/// `dockproof cst` of `config` on the CST example's image on `backend` (on the fake:
/// replayed from the shipped recording).
fn cst_verdicts(backend: &str, config: &Path) -> Result<CstRun, Failed> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let junit = dir.path().join("junit.xml");
    let mut command = support::cst_command(backend, dir.path());
    if backend == "fake" {
        command
            .arg("--recordings")
            .arg(support::root().join(CST_RECORDING));
    }
    command
        .args(["--image", CST_IMAGE, "--junit"])
        .arg(&junit)
        .arg(config);
    let output = run(command)?;
    let verdicts = if junit.is_file() {
        support::junit_verdicts(&junit)?
    } else {
        Vec::new()
    };
    Ok((output.status.code(), verdicts, output))
}

/// The shipped CST config passes on the fake from its scenario's recording alone (no
/// fake definition of the image): files from the recorded tree, metadata from the
/// recorded config, command tests replayed. A content test of a file whose content was
/// not recorded is refused before anything runs (exit 2, the file named), and a command
/// the recording does not hold fails its test as `config_invalid`, naming the difference.
fn the_cst_config_replays_from_its_recording() -> Result<(), Failed> {
    let config = support::root().join(CST_CONFIG);
    let (code, verdicts, output) = cst_verdicts("fake", &config)?;
    check(
        code == Some(0) && verdicts.len() == 11 && verdicts.iter().all(|(_, passed)| *passed),
        || format!("{verdicts:?}\n{}", support::describe(&output)),
    )?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let text = std::fs::read_to_string(&config).map_err(|e| e.to_string())?;
    let unkept = dir.path().join("unkept.yaml");
    let edited = text.replace(
        "    path: /usr/local/bin/report\n    expectedContents",
        "    path: /bin/sh\n    expectedContents",
    );
    check(edited != text, || "the content test was not edited".into())?;
    std::fs::write(&unkept, edited).map_err(|e| e.to_string())?;
    let (code, _, output) = cst_verdicts("fake", &unkept)?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    check(
        code == Some(2)
            && stderr
                .contains("/bin/sh (read through /bin/busybox, whose content was not recorded"),
        || {
            format!(
                "expected a refusal naming /bin/sh\n{}",
                support::describe(&output)
            )
        },
    )?;
    let changed = dir.path().join("changed.yaml");
    let edited = text.replace("args: [a, b, c]", "args: [a, b]");
    check(edited != text, || "the command test was not edited".into())?;
    std::fs::write(&changed, edited).map_err(|e| e.to_string())?;
    let (code, verdicts, output) = cst_verdicts("fake", &changed)?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let failed: Vec<&String> = verdicts
        .iter()
        .filter(|(_, passed)| !passed)
        .map(|(name, _)| name)
        .collect();
    check(
        code == Some(1)
            && failed == ["Command Test: report counts its arguments as csv"]
            && stdout.contains("config_invalid")
            && stdout.contains("no recording matches this container: command differs"),
        || format!("{failed:?}\n{}", support::describe(&output)),
    )
}

/// On a real daemon the shipped CST config gives, test by test, the verdicts its
/// replay on the fake gives.
fn the_cst_config_gives_the_replayed_verdicts(backend: &'static str) -> Result<(), Failed> {
    support::ensure_fixture_image(CST_IMAGE)?;
    let config = support::root().join(CST_CONFIG);
    let (code, real, output) = cst_verdicts(backend, &config)?;
    let (_, replayed, _) = cst_verdicts("fake", &config)?;
    check(
        code == Some(0) && real.len() == 11 && real == replayed,
        || {
            format!(
                "real {real:?}\nreplayed {replayed:?}\n{}",
                support::describe(&output)
            )
        },
    )
}

/// A trial on a real backend: its name after `BACKEND::`, and its body.
type RealTrial = (&'static str, fn(&'static str) -> Result<(), Failed>);
/// A trial on the fake: its name after `fake::`, and its body.
type FakeTrial = (&'static str, fn() -> Result<(), Failed>);

/// This file's trials, run by `suites/main.rs`.
pub fn trials() -> Vec<Trial> {
    let fake: [FakeTrial; 12] = [
        (
            "replay-is-byte-identical-across-20-runs",
            replay_is_byte_identical,
        ),
        (
            "a-changed-input-file-is-refused-naming-it",
            a_changed_input_is_refused,
        ),
        (
            "a-changed-env-is-refused-naming-it",
            a_changed_env_is_refused,
        ),
        (
            "a-changed-exec-env-is-refused-naming-it",
            a_changed_exec_env_is_refused,
        ),
        (
            "a-probe-the-recording-lacks-is-refused",
            a_probe_the_recording_lacks_is_refused,
        ),
        (
            "the-replayed-service-plays-its-recorded-health",
            the_replayed_service_plays_its_recorded_health,
        ),
        (
            "an-injected-port-conflict-hits-the-replayed-service",
            an_injected_port_conflict_hits_the_replayed_service,
        ),
        (
            "a-changed-build-context-is-refused-naming-it",
            a_changed_build_context_is_refused_naming_it,
        ),
        (
            "an-injected-oom-hits-the-replayed-job",
            an_injected_oom_hits_the_replayed_job,
        ),
        (
            "record-on-the-fake-is-a-usage-error",
            record_on_the_fake_is_a_usage_error,
        ),
        (
            "the-cst-config-replays-from-its-recording",
            the_cst_config_replays_from_its_recording,
        ),
        ("record-host-usage-errors", record_host_usage_errors),
    ];
    let real: [RealTrial; 10] = [
        (
            "shipped-recording-has-not-drifted",
            shipped_recording_has_not_drifted,
        ),
        (
            "re-recording-the-shipped-scenarios-changes-no-byte",
            re_recording_the_shipped_scenarios_changes_no_byte,
        ),
        ("a-rebuilt-image-drifts", a_rebuilt_image_drifts),
        (
            "no-secret-in-any-recording-file",
            no_secret_in_any_recording_file,
        ),
        (
            "replay-gives-the-real-job-record",
            replay_gives_the_real_job_record,
        ),
        (
            "check-skips-a-scenario-without-a-recording",
            check_skips_a_scenario_without_a_recording,
        ),
        ("a-changed-build-drifts", a_changed_build_drifts),
        (
            "the-cst-config-gives-the-replayed-verdicts",
            the_cst_config_gives_the_replayed_verdicts,
        ),
        (
            "a-recorded-timeout-replays-as-a-timeout",
            a_recorded_timeout_replays_as_a_timeout,
        ),
        (
            "a-cst-setup-replays-and-drifts",
            a_cst_setup_replays_and_drifts,
        ),
    ];
    let mut trials: Vec<Trial> = fake
        .into_iter()
        .map(|(name, test)| Trial::test(format!("fake::{name}"), test))
        .collect();
    for backend in ["docker-cli", "docker-api"] {
        trials.extend(real.into_iter().map(|(name, test)| {
            support::real_daemon_trial(format!("{backend}::{name}"), move || test(backend))
        }));
    }
    trials
}
