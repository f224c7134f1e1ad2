//! The dockproof binary end to end: exit codes, diagnostics, reports.

use crate::support::{self, write};

use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;

fn dockproof() -> Command {
    let mut command = Command::new(support::dockproof());
    command.current_dir(support::root());
    command
}

#[test]
fn check_reports_every_problem_with_file_line_column_and_exit_2() {
    let (_dir, bad) = support::temp_file(
        "bad.yaml",
        "name: bad\nsteps:\n  - run:\n      imgae: dockproof/job-runner:1\n      limits: { memory: lots }\n",
    );
    let shown = bad.display().to_string();
    dockproof()
        .arg("check")
        .arg(&bad)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "{shown}:4:7: unknown key `imgae`"
        )))
        .stderr(predicate::str::contains("hint: did you mean `image`?"))
        .stderr(predicate::str::contains(format!(
            "{shown}:3:5: missing required key `image`"
        )))
        .stderr(predicate::str::contains(format!(
            "{shown}:5:25: \"lots\" is not a valid size"
        )))
        .stderr(predicate::str::contains(
            "3 problem(s) in scenario files; nothing was run",
        ));
}

#[test]
fn run_refuses_an_invalid_scenario_with_exit_2_before_running() {
    let (_dir, bad) = support::temp_file("bad.yaml", "name: [unclosed\n");
    let shown = bad.display().to_string();
    dockproof()
        .args(["run", "--backend", "fake"])
        .arg(&bad)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!("{shown}:")))
        .stdout(predicate::str::contains("passed").not());
}

#[test]
fn check_accepts_the_shipped_suite() {
    dockproof()
        .args(["check", "scenarios"])
        .assert()
        .success()
        .stdout(predicate::str::contains("valid"));
}

#[test]
fn schema_is_valid_json_and_matches_the_checked_in_copy() {
    let output = dockproof().arg("schema").output().unwrap();
    assert!(output.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let checked_in: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(support::root().join("docs/scenario.schema.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(printed, checked_in, "docs/scenario.schema.json is stale");
}

/// `dockproof schema | head -1`: stdout closed before (or while) the schema is written is a
/// quiet exit 0, never a panic (issue 18, item 9). The pipe's read end is dropped before
/// the process starts, so every write meets a broken pipe.
#[test]
fn a_closed_stdout_is_a_quiet_exit() {
    for args in [&["schema"][..], &["check", "scenarios"][..]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let output = std::process::Command::new(support::dockproof())
            .current_dir(support::root())
            .args(args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// Durations are strict (issue 18, item 6): `5M` (months to humantime), `5 sec` and a bare
/// number are load errors at their line and column, each with the spelling to use.
#[test]
fn loose_durations_are_load_errors_with_the_right_spelling() {
    let (dir, file) = support::temp_file(
        "loose.yaml",
        "name: loose\ntimeout: 5M\nsteps:\n  - run: { image: dockproof/job-runner:1, cmd: [job], timeout: 5 sec }\n",
    );
    let bare = write(
        dir.path(),
        "bare.yaml",
        "name: bare\ntimeout: 30\nsteps:\n  - run: { image: dockproof/job-runner:1, cmd: [job] }\n",
    );
    let shown = file.display().to_string();
    dockproof()
        .arg("check")
        .arg(&file)
        .arg(&bare)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "{shown}:2:10: `5M` is not a duration"
        )))
        .stderr(predicate::str::contains("hint: write `5m`"))
        .stderr(predicate::str::contains(format!("{shown}:4:")))
        .stderr(predicate::str::contains("hint: write `5s`"))
        .stderr(predicate::str::contains(format!("{}:2:10", bare.display())))
        .stderr(predicate::str::contains("a duration needs its unit: `30s`"));
}

/// `--report-dir DIR` alone writes every report format there (issue 18, item 9); with
/// `--report` only the formats named.
#[test]
fn a_report_dir_alone_writes_every_format() {
    let dir = tempfile::tempdir().unwrap();
    // The shipped job-happy-path scenario on the fake, with the flags given.
    let happy_path = |flags: &[&std::ffi::OsStr]| {
        dockproof()
            .args([
                "run",
                "--backend",
                "fake",
                "--no-history",
                "--filter",
                "job-happy-path",
            ])
            .arg("--work-dir")
            .arg(dir.path().join("work"))
            .args(flags)
            .arg("scenarios")
            .assert()
    };
    let all = dir.path().join("all");
    happy_path(&["--report-dir".as_ref(), all.as_ref()]).code(0);

    for file in ["junit.xml", "report.json", "summary.md", "report.html"] {
        assert!(
            all.join(file).is_file(),
            "{file} missing in {}",
            all.display()
        );
    }
    let some = dir.path().join("some");
    happy_path(&[
        "--report".as_ref(),
        "junit".as_ref(),
        "--report-dir".as_ref(),
        some.as_ref(),
    ])
    .code(0);
    assert!(some.join("junit.xml").is_file());
    assert!(!some.join("report.json").exists());
}

#[test]
fn usage_errors_exit_2() {
    dockproof()
        .args(["run", "--backend", "podman"])
        .assert()
        .code(2);
    dockproof()
        .args([
            "run",
            "--fake-docker",
            "/nonexistent/fake-docker",
            "--tag",
            "no-such-tag",
            "scenarios",
        ])
        .assert()
        .code(2);
}

const PASSING: &str = "\
name: echo-passes
steps:
  - run:
      image: dockproof/job-runner:1
      cmd: [echo, hello, world]
    expect:
      stdout: { equals: \"hello world\\n\" }
";

const FAILING: &str = "\
name: echo-fails
steps:
  - run:
      image: dockproof/job-runner:1
      cmd: [echo, hello]
    expect:
      stdout: { contains: goodbye }
  - telemetry:
      - { pointer: /status, equals: succeeded }
";

#[test]
fn a_failing_expectation_exits_1_and_is_reported_in_junit_with_its_category() {
    let (dir, passing) = support::temp_file("passing.yaml", PASSING);
    let failing = write(dir.path(), "failing.yaml", FAILING);
    let junit = dir.path().join("junit.xml");
    let mut command = Command::from_std(support::dockproof_fake(dir.path()));
    command
        .arg("--junit")
        .arg(&junit)
        .arg(&passing)
        .arg(&failing)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("PASS echo-passes"))
        .stdout(predicate::str::contains("FAIL echo-fails"))
        .stdout(predicate::str::contains(format!(
            "{}:7:27: assertion_failed",
            failing.display()
        )))
        .stdout(predicate::str::is_match(r"(?m)^1 passed, 1 failed in \d+(ms|\.\d\ds)$").unwrap());

    let xml = std::fs::read_to_string(&junit).unwrap();
    let document = roxmltree::Document::parse(&xml).expect("the JUnit report is well-formed XML");
    let suite = document
        .descendants()
        .find(|node| node.has_tag_name("testsuite"))
        .expect("a testsuite");
    assert_eq!(suite.attribute("tests"), Some("2"));
    assert_eq!(suite.attribute("failures"), Some("1"));
    let failure = document
        .descendants()
        .find(|node| node.has_tag_name("failure"))
        .expect("a failure element");
    assert_eq!(failure.attribute("type"), Some("assertion_failed"));
    // The message says what failed, not only the category's generic hint (issue 18, item 4).
    let message = failure.attribute("message").unwrap();
    assert!(message.starts_with("assertion_failed: "), "{message}");
    assert!(message.contains("stdout"), "{message}");
    let case = failure.parent().unwrap();
    assert_eq!(case.attribute("name"), Some("echo-fails"));
    // Where CI viewers link the case: the file and the failing line.
    assert_eq!(
        case.attribute("file"),
        Some(failing.display().to_string().as_str())
    );
    assert_eq!(case.attribute("line"), Some("7"));
    let out = case
        .children()
        .find(|node| node.has_tag_name("system-out"))
        .expect("the log tail in system-out");
    assert_eq!(out.text(), Some("hello\n"));
}

#[test]
fn fake_reports_are_byte_identical_across_20_runs() {
    const RUNS: usize = 20;
    const AT_ONCE: usize = 4;
    let run_once = || {
        let dir = tempfile::tempdir().unwrap();
        let (junit, json) = (dir.path().join("junit.xml"), dir.path().join("report.json"));
        let mut command = Command::from_std(support::dockproof_fake(dir.path()));
        command
            .arg("--junit")
            .arg(&junit)
            .arg("--json")
            .arg(&json)
            .arg("scenarios")
            .assert()
            .success();
        (
            std::fs::read(&junit).unwrap(),
            std::fs::read(&json).unwrap(),
        )
    };
    let mut outputs = Vec::new();
    for _ in 0..RUNS / AT_ONCE {
        let batch: Vec<_> = (0..AT_ONCE).map(|_| std::thread::spawn(run_once)).collect();
        outputs.extend(batch.into_iter().map(|handle| handle.join().unwrap()));
    }
    let first_difference = |a: &[u8], b: &[u8]| {
        let (a, b) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
        a.lines()
            .zip(b.lines())
            .find(|(x, y)| x != y)
            .map(|(x, y)| format!("\n  run 1: {x}\n  this:  {y}"))
            .unwrap_or_default()
    };
    for (index, (junit, json)) in outputs.iter().enumerate().skip(1) {
        assert!(
            *junit == outputs[0].0,
            "run {} wrote a different JUnit report than run 1{}",
            index + 1,
            first_difference(&outputs[0].0, junit)
        );
        assert!(
            *json == outputs[0].1,
            "run {} wrote a different JSON report than run 1{}",
            index + 1,
            first_difference(&outputs[0].1, json)
        );
    }
}

/// The fake backend's calls go to one `fake-docker __serve` process (forked per call)
/// unless `DOCKPROOF_FAKE_SERVER=0`; either way the shipped suite (faults, failures,
/// services, recordings) gives the same reports, byte for byte. A wrapper script in
/// front of fake-docker logs how it is started, so the test knows which way was taken.
#[test]
fn the_fake_server_gives_the_reports_a_process_per_call_gives() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("invocations.log");
    let wrapper = dir.path().join("fake-docker");
    support::write_script(
        &wrapper,
        &format!(
            "echo \"$1\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            support::fake_docker().display()
        ),
    )
    .unwrap();
    let run = |server: &str| {
        let work = dir.path().join(format!("work-{server}"));
        std::fs::create_dir_all(&work).unwrap();
        std::fs::write(&log, "").unwrap();
        let (junit, json) = (work.join("junit.xml"), work.join("report.json"));
        let output = std::process::Command::new(support::dockproof())
            .current_dir(support::root())
            .env_remove("FAKE_DOCKER_STATE")
            .env("DOCKPROOF_FAKE_SERVER", server)
            .args(["run", "--no-history", "--backend", "fake", "--fake-docker"])
            .arg(&wrapper)
            .arg("--fake-images")
            .arg(support::root().join("fixtures/fake-images"))
            .arg("--work-dir")
            .arg(&work)
            .arg("--junit")
            .arg(&junit)
            .arg("--json")
            .arg(&json)
            .arg("scenarios")
            .output()
            .unwrap();
        support::assert_exit(&output, 0);
        let started = std::fs::read_to_string(&log).unwrap();
        (
            std::fs::read(&junit).unwrap(),
            std::fs::read(&json).unwrap(),
            started,
        )
    };
    let (served_junit, served_json, served_started) = run("1");
    let (spawned_junit, spawned_json, spawned_started) = run("0");
    let verbs = |started: &str, verb: &str| started.lines().filter(|line| *line == verb).count();
    assert_eq!(verbs(&served_started, "__serve"), 1, "{served_started}");
    for verb in ["create", "start", "wait", "inspect", "logs", "rm"] {
        assert_eq!(
            verbs(&served_started, verb),
            0,
            "{verb} went through the server"
        );
        assert!(
            verbs(&spawned_started, verb) > 0,
            "{verb} was spawned without the server"
        );
    }
    assert_eq!(verbs(&spawned_started, "__serve"), 0);
    assert!(served_junit == spawned_junit, "the JUnit reports differ");
    assert!(
        served_json == spawned_json,
        "the JSON reports differ:\n{}",
        String::from_utf8_lossy(&served_json)
            .lines()
            .zip(String::from_utf8_lossy(&spawned_json).lines())
            .find(|(a, b)| a != b)
            .map(|(a, b)| format!("  served:  {a}\n  spawned: {b}"))
            .unwrap_or_default()
    );
}

#[test]
fn the_json_report_holds_the_job_record() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let mut command = Command::from_std(support::dockproof_fake(dir.path()));
    command
        .arg("--json")
        .arg(&json)
        .arg("scenarios/job-happy-path.yaml")
        .assert()
        .success();
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let record = &report["scenarios"][0]["record"];
    assert_eq!(record["status"], "succeeded");
    assert_eq!(record["context"]["docker"]["exitCode"], 0);
    assert!(record["metrics"]["filestore"]["bytesIn"].as_u64().unwrap() > 0);
    assert!(record["metrics"]["filestore"]["bytesOut"].as_u64().unwrap() > 0);
    assert_eq!(
        record["metrics"]["docker"]["startMs"], 0,
        "timings are normalised on the fake"
    );
    assert_eq!(report["summary"]["passed"], 1);
}

/// What a run left in its work dir besides the history database it was pointed at.
fn left_behind(work: &Path) -> Vec<String> {
    let history = support::history_db(work).display().to_string();
    std::fs::read_dir(work)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| !path.display().to_string().starts_with(&history))
        .map(|path| path.display().to_string())
        .collect()
}

/// A job printing 96 MiB on stdout: the whole log lands in `--logs-dir`, the
/// record keeps the right last lines, and dockproof's peak memory stays far
/// below the log's size (only a bounded tail is held).
#[test]
fn a_huge_stdout_is_streamed_to_a_file_with_only_a_tail_in_memory() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let lines = 96 * 1024;
    let source = dir.path().join("big.log");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&source).unwrap());
    let padding = "x".repeat(1024 - 15);
    for number in 0..lines {
        writeln!(file, "line {number:08} {padding}").unwrap();
    }
    file.flush().unwrap();
    drop(file);
    let scenario = write(
        dir.path(),
        "big-log.yaml",
        "name: big-log\nworkspace: { max_bytes: 256MiB, max_files: 4 }\nstage:\n  - { from: big.log, to: inputs/big.log }\nsteps:\n  - run:\n      image: dockproof/job-runner:1\n      cmd: [cat, /workspace/inputs/big.log]\n    expect: { stdout: { contains: \"line 00098303 \" } }\n",
    );
    let json = dir.path().join("report.json");
    let logs = dir.path().join("logs");
    let mut command = support::dockproof_fake(&dir.path().join("work"));
    command
        .arg("--json")
        .arg(&json)
        .arg("--logs-dir")
        .arg(&logs)
        .arg(&scenario);
    command.stdout(std::process::Stdio::null());
    let mut child = command.spawn().unwrap();
    // The high-water mark of dockproof's own memory (not of the processes it runs), sampled until it exits.
    let mut peak_kib = 0u64;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        let status_file =
            std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
        if let Some(kib) = status_file
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| {
                value
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
        {
            peak_kib = peak_kib.max(kib);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    assert!(status.success(), "dockproof failed: {status}");

    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let docker = &report["scenarios"][0]["record"]["context"]["docker"];
    let tail: Vec<&str> = docker["logTail"]["stdout"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| line.as_str().unwrap())
        .collect();
    assert_eq!(tail.len(), 20);
    assert!(
        tail[19].starts_with(&format!("line {:08} ", lines - 1)),
        "{}",
        &tail[19][..20]
    );
    assert!(
        tail[0].starts_with(&format!("line {:08} ", lines - 20)),
        "{}",
        &tail[0][..20]
    );
    let expected = std::fs::read(&source).unwrap();
    assert_eq!(docker["logFiles"]["stdoutBytes"], expected.len() as u64);
    let logged = std::fs::read(docker["logFiles"]["stdout"].as_str().unwrap()).unwrap();
    assert!(
        logged == expected,
        "the log file differs from what the job printed"
    );
    assert!(peak_kib > 0, "dockproof's memory was never sampled");
    assert!(
        peak_kib < 64 << 10,
        "dockproof peaked at {} MiB for a 96 MiB log",
        peak_kib >> 10
    );
}

#[test]
fn nothing_is_left_in_the_work_dir_after_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let mut command = Command::from_std(support::dockproof_fake(&work));
    command.args([
        "scenarios/job-happy-path.yaml",
        "scenarios/job-timeout-sigterm-ignored.yaml",
        "scenarios/exec-into-detached.yaml",
    ]);
    command.assert().success();
    assert_eq!(
        left_behind(&work),
        Vec::<String>::new(),
        "the run left files behind"
    );
}

#[test]
fn ctrl_c_cancels_cleans_up_and_still_writes_the_junit_report() {
    let (dir, slow) = support::temp_file(
        "slow.yaml",
        "name: slow\nsteps:\n  - run: { image: dockproof/job-runner:1, cmd: [sleep, 60] }\n",
    );
    let work = dir.path().join("work");
    let junit = dir.path().join("junit.xml");
    let mut command = support::dockproof_fake(&work);
    command
        .arg("--junit")
        .arg(&junit)
        .arg(&slow)
        .stdout(std::process::Stdio::piped());
    let child = command.spawn().unwrap();
    // Wait until the container runs, then press Ctrl-C.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::read_dir(&work).map_or(true, |entries| entries.count() == 0)
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(700));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    support::assert_exit(&output, 1);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("INTR slow"), "{stdout}");
    assert!(
        stdout.contains("0 passed, 0 failed, 1 interrupted"),
        "{stdout}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    let document = roxmltree::Document::parse(&xml).unwrap();
    let error = document
        .descendants()
        .find(|node| node.has_tag_name("error"))
        .expect("an error element");
    assert_eq!(error.attribute("type"), Some("interrupted"));
    assert_eq!(
        left_behind(&work),
        Vec::<String>::new(),
        "the interrupted run left files behind"
    );
}

/// `dockproof lint FILE` (dockproof's rules only) → the (rule, line) pairs it prints
/// (`file:line:column: RULE …`), and its exit code.
fn lint(file: &str) -> (Vec<(String, usize)>, Option<i32>) {
    let output = dockproof()
        .args(["lint", "--no-hadolint", file])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let found = stdout
        .lines()
        .map(|line| {
            let rest = line
                .strip_prefix(&format!("{file}:"))
                .unwrap_or_else(|| panic!("`{line}` does not start with `{file}:`"));
            let (position, rest) = rest.split_once(": ").unwrap();
            let (number, _column) = position.split_once(':').unwrap();
            let rule = rest.split_whitespace().next().unwrap().to_owned();
            (rule, number.parse().unwrap())
        })
        .collect();
    (found, output.status.code())
}

/// A file (below the directory given), the findings expected in it as `RULE:LINE`
/// separated by spaces (as `lint` prints them), and the exit code.
type LintCase<'a> = (&'a str, &'a str, i32);

fn assert_lint(directory: &str, cases: &[LintCase<'_>]) {
    for (file, expected, code) in cases {
        let file = format!("{directory}/{file}");
        let expected: Vec<(String, usize)> = expected
            .split_whitespace()
            .map(|finding| {
                let (rule, line) = finding.split_once(':').expect("RULE:LINE");
                (rule.to_owned(), line.parse().expect("a line number"))
            })
            .collect();
        assert_eq!(lint(&file), (expected, Some(*code)), "{file}");
    }
}

#[test]
fn lint_flags_each_broken_dockerfile_at_the_right_line() {
    assert_lint(
        "fixtures/dockerfiles",
        &[
            ("good.Dockerfile", "", 0),
            ("latest-base.Dockerfile", "DF001:2 DF001:4", 1),
            ("root-user.Dockerfile", "DF002:4", 1),
            ("no-healthcheck.Dockerfile", "DF003:3", 1),
            ("add-instead-of-copy.Dockerfile", "DF004:3", 0),
            ("secret-env.Dockerfile", "DF005:3 DF005:5", 1),
            ("shell-form-cmd.Dockerfile", "DF006:6", 1),
            ("copy-without-chown.Dockerfile", "DF007:5", 0),
            ("nginx-stopsignal.Dockerfile", "DF008:8", 0),
        ],
    );
}

#[test]
fn lint_flags_each_broken_compose_file_at_the_right_line() {
    assert_lint(
        "fixtures/compose",
        &[
            ("seed-001/docker-compose.yml", "", 0),
            ("broken-no-healthcheck/docker-compose.yml", "DC001:28", 1),
            (
                "broken-depends-on/docker-compose.yml",
                "DC003:36 DC003:37",
                1,
            ),
            ("broken-socket-in-runner/docker-compose.yml", "DC004:81", 1),
        ],
    );
}

#[test]
fn lint_refuses_what_it_cannot_read() {
    let (_dir, notes) = support::temp_file("notes.txt", "hello\n");
    dockproof()
        .arg("lint")
        .arg(&notes)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "neither a Dockerfile nor a compose file",
        ));
    dockproof()
        .args(["lint", "/nonexistent/Dockerfile"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("failed to read"));
}

/// PIDs of processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
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

#[test]
fn clean_reaps_what_a_killed_run_left_behind() {
    let (dir, slow) = support::temp_file(
        "slow.yaml",
        "name: slow\nsteps:\n  - run: { image: dockproof/job-runner:1, cmd: [sleep, 120] }\n",
    );
    let work = dir.path().join("work");
    let mut child = support::dockproof_fake(&work)
        .args(["--run-id", "killed1"])
        .arg(&slow)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the fake container runs, then kill dockproof without a chance to clean up.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let run_dir = loop {
        let found = std::fs::read_dir(&work)
            .ok()
            .and_then(|mut entries| entries.next())
            .and_then(Result::ok)
            .map(|entry| entry.path());
        if let Some(run_dir) = found.filter(|path| {
            !processes_mentioning(&path.join("fake-docker-state").display().to_string()).is_empty()
        }) {
            break run_dir;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run never started its container"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    let state = run_dir.join("fake-docker-state").display().to_string();
    assert!(
        !processes_mentioning(&state).is_empty(),
        "the killed run's container should still be running"
    );

    dockproof()
        .args([
            "clean",
            "--backend",
            "fake",
            "--run",
            "killed1",
            "--work-dir",
        ])
        .arg(&work)
        .arg("--fake-docker")
        .arg(support::fake_docker())
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "removed 1 container(s) and 1 director(ies)",
        ));
    assert!(!run_dir.exists(), "the run directory is still there");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !processes_mentioning(&state).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the container process outlived `dockproof clean`"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn github_actions_get_annotations_a_step_summary_and_an_html_timeline() {
    let (dir, failing) = support::temp_file("failing.yaml", FAILING);
    let (summary, html) = (
        dir.path().join("summary.md"),
        dir.path().join("report.html"),
    );
    std::fs::write(&summary, "earlier step\n").unwrap();
    let mut command = Command::from_std(support::dockproof_fake(dir.path()));
    command
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .arg("--html")
        .arg(&html)
        .arg(&failing)
        .assert()
        .code(1)
        .stdout(predicate::str::contains(format!(
            "::error file={},line=7,col=27,title=echo-fails%3A assertion_failed::stdout does not contain",
            failing.display()
        )));
    let summary = std::fs::read_to_string(&summary).unwrap();
    assert!(
        summary.starts_with("earlier step\n### dockproof on `fake`"),
        "{summary}"
    );
    assert!(
        summary.contains("| echo-fails | ❌ failed | `assertion_failed` |"),
        "{summary}"
    );
    let html = std::fs::read_to_string(&html).unwrap();
    assert!(
        html.starts_with("<!DOCTYPE html>")
            && html.contains("echo-fails")
            && html.contains("stdout does not contain &quot;goodbye&quot;"),
        "{html}"
    );
}

#[test]
fn runs_are_recorded_and_history_shows_rates_and_flaky_scenarios() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.sqlite");
    let scenario = write(
        dir.path(),
        "flip.yaml",
        PASSING.replace("echo-passes", "flip").as_str(),
    );
    let recorded_run = || {
        Command::from_std(support::dockproof_fake(dir.path()))
            .arg("--history")
            .arg(&db)
            .arg(&scenario)
            .assert()
    };
    recorded_run().success();
    // The same file, now expecting something else: a different input, so not flaky.
    std::fs::write(&scenario, FAILING.replace("echo-fails", "flip")).unwrap();
    recorded_run().code(1);
    dockproof()
        .arg("history")
        .arg("--db")
        .arg(&db)
        .assert()
        .success()
        .stdout(predicate::str::is_match(r"(?m)^flip\s+2\s+1\s+50\.0%\s+failed\s*$").unwrap())
        .stdout(predicate::str::is_match(r"(?m)^local \(fake\)\s+2\s+1\s+50\.0%").unwrap());
    dockproof()
        .args(["history", "--db"])
        .arg(dir.path().join("none.sqlite"))
        .assert()
        .code(2);
}

#[test]
fn the_canary_gate_says_go_or_no_go_per_host() {
    let dir = tempfile::tempdir().unwrap();
    let canary = |extra: &[&str]| {
        let mut command = Command::new(support::dockproof());
        command
            .current_dir(support::root())
            .env("DOCKPROOF_HISTORY", dir.path().join("history.sqlite"))
            .args([
                "canary",
                "--repeat",
                "2",
                "--host",
                "fake://f1",
                "--host",
                "fake://f2",
                "--fake-docker",
            ])
            .arg(support::fake_docker())
            .args(extra)
            .arg("scenarios/job-happy-path.yaml")
            .arg("scenarios/unknown-image.yaml");
        command
    };
    canary(&[])
        .assert()
        .success()
        .stdout(predicate::str::is_match(r"(?m)^f1\s+4\s+100\.0%").unwrap())
        .stdout(predicate::str::is_match(r"(?m)^f2\s+4\s+100\.0%").unwrap())
        .stdout(predicate::str::contains("GO: every host met the gates"));
    let gates = write(dir.path(), "gates.yaml", "max_p95_start_ms: 0\n");
    canary(&["--gates", gates.to_str().unwrap()])
        .assert()
        .code(1)
        .stdout(
            predicate::str::is_match(
                r"(?m)^NO-GO: host f1 p95 container start \d+ ms > 0 ms; host f2 p95",
            )
            .unwrap(),
        );
    let bad_gates = write(dir.path(), "bad.yaml", "min_success: 0.5\n");
    canary(&["--gates", bad_gates.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "bad.yaml:1:1: unknown gate `min_success`",
        ))
        .stderr(predicate::str::contains("did you mean `min_success_rate`?"));
}

const LEAKY: &str = r#"name: leaky-token
secrets:
  token: { env: DOCKPROOF_TEST_TOKEN }
steps:
  - run:
      image: dockproof/job-runner:1
      cmd: [echo, "using {{ secret.token }} now"]
      env: { RUNNER_TOKEN: "{{ secret.token }}" }
    expect:
      stdout: { equals: "something else" }
"#;

#[test]
fn a_secret_value_appears_in_no_output_and_no_report() {
    const TOKEN: &str = "tok-8f14e45fceea167a";
    let (dir, scenario) = support::temp_file("leaky.yaml", LEAKY);
    let reports = dir.path().join("reports");
    let mut command = Command::from_std(support::dockproof_fake(dir.path()));
    let output = command
        .env("DOCKPROOF_TEST_TOKEN", TOKEN)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", dir.path().join("step-summary.md"))
        .args(["--report", "junit,json,markdown,html", "--report-dir"])
        .arg(&reports)
        .arg("--logs-dir")
        .arg(reports.join("logs"))
        .arg(&scenario)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "the expectation fails: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("using *** now"),
        "the failure shows the output, masked:\n{stdout}"
    );
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&reports)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    // --logs-dir holds a directory per scenario, a file per stream and step.
    let logs: Vec<std::path::PathBuf> = std::fs::read_dir(reports.join("logs").join("leaky-token"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert!(
        logs.iter().any(|log| std::fs::read_to_string(log)
            .unwrap()
            .contains("using *** now")),
        "the whole stdout log is there, masked: {logs:?}"
    );
    files.extend(logs);
    files.push(dir.path().join("step-summary.md"));
    files.push(support::history_db(dir.path()));
    assert_eq!(
        files.len(),
        8,
        "every report and both log files were written: {files:?}"
    );
    for text in [output.stdout.clone(), output.stderr.clone()]
        .into_iter()
        .chain(files.iter().map(|file| std::fs::read(file).unwrap()))
    {
        let text = String::from_utf8_lossy(&text);
        assert!(!text.contains(TOKEN), "the token leaked:\n{text}");
    }
}

#[test]
fn an_unset_secret_is_a_config_error_at_its_line() {
    let (dir, scenario) = support::temp_file("leaky.yaml", LEAKY);
    let mut command = Command::from_std(support::dockproof_fake(dir.path()));
    command
        .env_remove("DOCKPROOF_TEST_TOKEN")
        .arg(&scenario)
        .assert()
        .code(1)
        .stdout(predicate::str::contains(format!("{}:3:10: config_invalid: secret `token`: environment variable `DOCKPROOF_TEST_TOKEN` is not set", scenario.display())));
}

#[test]
fn an_undeclared_secret_is_rejected_at_load() {
    let (_dir, scenario) = support::temp_file(
        "undeclared.yaml",
        "name: u\nsteps:\n  - run:\n      image: x\n      env: { T: \"{{ secret.nope }}\" }\n",
    );
    dockproof()
        .arg("check")
        .arg(&scenario)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "{}:5:17: unknown secret `nope`",
            scenario.display()
        )))
        .stderr(predicate::str::contains("none are declared"));
}

#[test]
fn the_suite_runs_on_every_host_with_results_per_host() {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("junit.xml");
    let mut command = Command::from_std(support::dockproof_fake(&dir.path().join("work")));
    command
        .args([
            "--host",
            "fake://a",
            "--host",
            "fake://b?faults=start:exit-immediately",
            "--junit",
        ])
        .arg(&junit)
        .arg("scenarios/job-happy-path.yaml")
        .assert()
        .code(1)
        .stdout(predicate::str::contains("dockproof: host a\n"))
        .stdout(predicate::str::contains("dockproof: host b\n"))
        .stdout(predicate::str::is_match(r"(?m)^1 passed, 1 failed in \d+(ms|\.\d\ds)$").unwrap());
    let xml = std::fs::read_to_string(&junit).unwrap();
    let document = roxmltree::Document::parse(&xml).unwrap();
    let cases: Vec<(&str, bool)> = document
        .descendants()
        .filter(|node| node.has_tag_name("testcase"))
        .map(|case| {
            (
                case.attribute("name").unwrap(),
                case.children().any(|child| child.has_tag_name("failure")),
            )
        })
        .collect();
    assert_eq!(
        cases,
        [("a/job-happy-path", false), ("b/job-happy-path", true)]
    );
}

/// A web service asked for /api/items, then for /nope; the last step checks `stderr` of a log window.
fn log_window_scenario(since: &str, stderr_condition: &str) -> String {
    format!(
        "name: window\nsteps:\n  - service: {{ name: web, image: dockproof/web:1, ports: ['0:8080'], wait: {{ healthy: true, within: 30s }} }}\n  - {{ name: items, http: {{ service: web, path: /api/items }} }}\n  - http: {{ service: web, path: /nope, expect: {{ status: 404 }} }}\n  - logs:\n      container: web\n      since: {since}\n      within: 2s\n      stderr: {{ {stderr_condition} }}\n"
    )
}

#[test]
fn a_log_window_holds_only_what_was_written_after_its_step_began() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, text: String| {
        let scenario = write(dir.path(), name, &text);
        let json = dir.path().join(format!("{name}.json"));
        let mut command = Command::from_std(support::dockproof_fake(dir.path()));
        let assert = command.arg("--json").arg(&json).arg(&scenario).assert();
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        (assert, report)
    };
    // The request before the window is in the whole log but not in the window.
    let (assert, _) = run(
        "whole.yaml",
        log_window_scenario("items", "contains: 'GET /api/items 200'"),
    );
    assert.success();
    let (assert, report) = run(
        "excluded.yaml",
        log_window_scenario("previous_step", "contains: 'GET /api/items 200'"),
    );
    assert.code(1);
    let failure = &report["scenarios"][0]["failure"];
    assert_eq!(failure["category"], "assertion_failed", "{report:#}");
    let message = failure["message"].as_str().unwrap();
    assert!(
        message.contains("since the previous step began")
            && message.contains("read until 2s had passed"),
        "{message}"
    );
    assert_eq!(
        failure["location"]["line"], 10,
        "the failing condition's line: {report:#}"
    );
    let (assert, _) = run(
        "included.yaml",
        log_window_scenario(
            "previous_step",
            "contains: 'GET /nope 404', not_contains: 'GET /api/items'",
        ),
    );
    assert.success();
}

/// A step whose three expectations fail: each expectation is a finding of its own, at its
/// own line, in every report (issue 18, item 3). Before, they were one message at the
/// first one's line, so GitHub showed one annotation.
const THREE_FAILED: &str = "\
name: three-failed
steps:
  - run:
      image: dockproof/job-runner:1
      cmd: [echo, hello]
    expect:
      exit_code: 3
      stdout:
        contains: goodbye
      stderr:
        contains: warning
";

#[test]
fn three_failed_expectations_are_three_findings_at_their_lines_in_every_report() {
    let (dir, scenario) = support::temp_file("three.yaml", THREE_FAILED);
    let reports = dir.path().join("reports");
    let mut command = Command::from_std(support::dockproof_fake(dir.path()));
    let output = command
        .env("GITHUB_ACTIONS", "true")
        .env_remove("GITHUB_STEP_SUMMARY")
        .arg("--report-dir")
        .arg(&reports)
        .arg(&scenario)
        .output()
        .unwrap();
    support::assert_exit(&output, 1);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // (line, category) of each expectation: exit_code, stdout.contains, stderr.contains.
    let expected = [
        (7, "assertion_failed"),
        (9, "assertion_failed"),
        (11, "assertion_failed"),
    ];
    let annotations: Vec<&str> = stdout
        .lines()
        .chain(stderr.lines())
        .filter(|line| line.starts_with("::error file="))
        .collect();
    assert_eq!(annotations.len(), 3, "{annotations:#?}\n{stdout}\n{stderr}");
    for ((line, category), annotation) in expected.iter().zip(&annotations) {
        assert!(
            annotation.contains(&format!(",line={line},"))
                && annotation.contains(&format!("three-failed%3A {category}")),
            "expected line {line} ({category}): {annotation}"
        );
    }
    // The console names each at its line.
    for (line, category) in expected {
        let at = format!("{}:{line}:", scenario.display());
        assert!(
            stdout
                .lines()
                .any(|text| text.contains(&at) && text.contains(category)),
            "no console line for {at} {category}:\n{stdout}"
        );
    }
    // JUnit: the first in the message (with how many more), each at its line in the body.
    let xml = std::fs::read_to_string(reports.join("junit.xml")).unwrap();
    let document = roxmltree::Document::parse(&xml).unwrap();
    let failure = document
        .descendants()
        .find(|node| node.has_tag_name("failure"))
        .expect("a failure element");
    let message = failure.attribute("message").unwrap();
    assert!(
        message.starts_with("assertion_failed: exit code 0, expected 3")
            && message.ends_with("(and 2 more failed expectations)"),
        "{message}"
    );
    let body = failure.text().unwrap_or_default();
    for (line, category) in expected {
        assert!(
            body.contains(&format!("{}:{line}:", scenario.display())) && body.contains(category),
            "{line} {category} missing in the JUnit body:\n{body}"
        );
    }
    assert_eq!(failure.parent().unwrap().attribute("line"), Some("7"));
    // The unnamed step is listed once as `step 1: run`, not `step 1: step 1: run`.
    assert!(body.contains("\n  step 1: run [FAILED]"), "{body}");
    assert!(!body.contains("step 1: step 1"), "{body}");
    // JSON: the first finding, and the other two as `further`, each with its location.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reports.join("report.json")).unwrap())
            .unwrap();
    let failure = &json["scenarios"][0]["failure"];
    assert_eq!(failure["location"]["line"], 7, "{failure:#}");
    let further = failure["further"].as_array().expect("further findings");
    let lines: Vec<_> = further
        .iter()
        .map(|f| f["location"]["line"].clone())
        .collect();
    assert_eq!(lines, [9, 11], "{failure:#}");
    // Markdown and HTML carry each location.
    for file in ["summary.md", "report.html"] {
        let text = std::fs::read_to_string(reports.join(file)).unwrap();
        for (line, _) in expected {
            assert!(
                text.contains(&format!("three.yaml:{line}:")),
                "{file} lacks line {line}:\n{text}"
            );
        }
    }
}

/// dockproof installed as the README says (both binaries in one `bin` directory, no
/// checkout anywhere near), started in a fresh directory of its own.
fn installed(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for program in [support::dockproof(), support::fake_docker()] {
        std::fs::copy(&program, bin.join(program.file_name().unwrap())).unwrap();
    }
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    (bin.join("dockproof"), repo)
}

/// A command of the installed dockproof in `cwd`, with nothing from this checkout or the
/// environment telling it where things are.
fn installed_command(program: &Path, cwd: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(program);
    command
        .current_dir(cwd)
        .env("DOCKPROOF_HISTORY", cwd.join("history.db"));
    for variable in [
        "DOCKPROOF_BACKEND",
        "DOCKPROOF_FAKE_DOCKER",
        "DOCKPROOF_PROJECT",
        "FAKE_DOCKER_IMAGES",
        "FAKE_DOCKER_STATE",
        "GITHUB_ACTIONS",
    ] {
        command.env_remove(variable);
    }
    command
}

#[test]
fn init_then_run_passes_in_a_fresh_directory_outside_the_checkout() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        !dir.path().starts_with(support::root()),
        "the test directory must be outside the checkout"
    );
    let (dockproof, repo) = installed(dir.path());
    let init = installed_command(&dockproof, &repo)
        .arg("init")
        .output()
        .unwrap();
    support::assert_exit(&init, 0);
    for file in [
        "dockproof.toml",
        "scenarios/hello-job.yaml",
        "fixtures/orders.csv",
        ".github/workflows/dockproof.yml",
    ] {
        assert!(repo.join(file).is_file(), "init did not write {file}");
    }
    // From a subdirectory: the project file is found above, its paths are its own.
    let sub = repo.join("src/deep");
    std::fs::create_dir_all(&sub).unwrap();
    let run = installed_command(&dockproof, &sub)
        .arg("run")
        .output()
        .unwrap();
    support::assert_exit(&run, 0);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("PASS hello-job"), "{stdout}");
    let junit = std::fs::read_to_string(repo.join("target/dockproof/junit.xml"))
        .expect("the project's reports, beside the project file");
    assert!(junit.contains("name=\"hello-job\""), "{junit}");
    assert!(
        !sub.join("target").exists(),
        "reports went to the working directory"
    );

    // A second init overwrites nothing and names what is there.
    let again = installed_command(&dockproof, &repo)
        .arg("init")
        .output()
        .unwrap();
    support::assert_exit(&again, 2);
    assert!(String::from_utf8_lossy(&again.stderr).contains("dockproof.toml exists already"));
}

#[test]
fn project_settings_apply_where_no_flag_was_given_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let (dockproof, repo) = installed(dir.path());
    std::fs::create_dir_all(repo.join("suite")).unwrap();
    std::fs::create_dir_all(repo.join("elsewhere")).unwrap();
    write(&repo.join("suite"), "passing.yaml", PASSING);
    write(&repo.join("elsewhere"), "failing.yaml", FAILING);
    write(
        &repo,
        "dockproof.toml",
        "scenarios = [\"suite\"]\nfake_images = [\"builtin\"]\n[reports]\nformats = [\"junit\"]\ndir = \"out\"\n",
    );
    let sub = repo.join("elsewhere");
    // The file's scenarios and report dir, resolved against the file from a subdirectory.
    let run = installed_command(&dockproof, &sub)
        .arg("run")
        .output()
        .unwrap();
    support::assert_exit(&run, 0);
    assert!(repo.join("out/junit.xml").is_file());
    assert!(
        !repo.join("out/report.json").exists(),
        "only the listed format"
    );
    // A path on the command line wins over the file's list (and is the shell's: relative
    // to the working directory); so does --report-dir.
    let run = installed_command(&dockproof, &sub)
        .args(["run", "failing.yaml", "--report-dir", "mine"])
        .output()
        .unwrap();
    support::assert_exit(&run, 1);
    assert!(String::from_utf8_lossy(&run.stdout).contains("FAIL echo-fails"));
    assert!(sub.join("mine/junit.xml").is_file());
    // --no-project: the defaults again (no scenarios dir here: a usage error).
    let run = installed_command(&dockproof, &repo)
        .args(["--no-project", "run"])
        .output()
        .unwrap();
    support::assert_exit(&run, 2);
}

#[test]
fn a_bad_project_file_is_a_located_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let (dockproof, repo) = installed(dir.path());
    let file = write(
        &repo,
        "dockproof.toml",
        "scenarios = [\"suite\"]\nscenario = [\"typo\"]\n",
    );
    let run = installed_command(&dockproof, &repo)
        .arg("run")
        .output()
        .unwrap();
    support::assert_exit(&run, 2);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains(&format!("{}:2:1: unknown field `scenario`", file.display()))
            && stderr.contains("did you mean `scenarios`?"),
        "{stderr}"
    );
    write(&repo, "dockproof.toml", "backend = \"docker\"\n");
    let run = installed_command(&dockproof, &repo)
        .arg("check")
        .output()
        .unwrap();
    support::assert_exit(&run, 2);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains(":1:11: unknown variant `docker`"),
        "{stderr}"
    );
}

#[test]
fn the_project_file_schema_matches_the_checked_in_copy() {
    let output = dockproof()
        .args(["schema", "--project-file"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let schema: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let checked_in: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(support::root().join("docs/project.schema.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        schema, checked_in,
        "docs/project.schema.json is stale: dockproof schema --project-file > docs/project.schema.json"
    );
    // The starter file the schema describes is valid against it.
    assert!(
        schema["properties"]["fake_images"].is_object(),
        "{schema:#}"
    );
}

/// `xmllint`, or `None` when it is missing and may be (a failure under
/// DOCKPROOF_REQUIRE_DOCKER=1, which `.ci/run` sets after installing libxml2-utils).
fn xmllint() -> Option<&'static str> {
    let found = std::process::Command::new("xmllint")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if found {
        return Some("xmllint");
    }
    assert!(
        std::env::var_os("DOCKPROOF_REQUIRE_DOCKER").is_none(),
        "xmllint is required under DOCKPROOF_REQUIRE_DOCKER=1 (apt-get install libxml2-utils)"
    );
    eprintln!("skipped: xmllint not installed");
    None
}

#[test]
fn junit_reports_validate_against_the_jenkins_schema() {
    let Some(xmllint) = xmllint() else { return };
    let dir = tempfile::tempdir().unwrap();
    // A pass, a failure with three findings, a skip and a scenario whose retry passed.
    let scenarios = [
        write(dir.path(), "passing.yaml", PASSING),
        write(dir.path(), "three.yaml", THREE_FAILED),
        write(
            dir.path(),
            "skipped.yaml",
            "name: needs-daemon\nrequires: [real_daemon]\nsteps:\n  - run: { image: dockproof/job-runner:1, cmd: [\"true\"] }\n",
        ),
    ];
    let junit = dir.path().join("junit.xml");
    let output = support::dockproof_fake(dir.path())
        .arg("--junit")
        .arg(&junit)
        .args(&scenarios)
        .output()
        .unwrap();
    support::assert_exit(&output, 1);
    let jenkins =
        std::fs::read_to_string(support::root().join("fixtures/junit/junit-10.xsd")).unwrap();
    // The schema does not declare `file`/`line` on a testcase: with it as it is, the
    // report is refused (so this validation is real), with exactly those two added it
    // must pass.
    let validate = |schema: &str| {
        let path = dir.path().join("schema.xsd");
        std::fs::write(&path, schema).unwrap();
        std::process::Command::new(xmllint)
            .args(["--noout", "--schema"])
            .arg(&path)
            .arg(&junit)
            .output()
            .unwrap()
    };
    let strict = validate(&jenkins);
    assert!(
        !strict.status.success() && String::from_utf8_lossy(&strict.stderr).contains("'file'"),
        "the unmodified schema accepted file/line: {}",
        support::describe(&strict)
    );
    let anchor = "<xs:attribute name=\"group\" type=\"xs:string\"/>\n        </xs:complexType>\n    </xs:element>\n\n    <xs:element name=\"testsuite\">";
    assert_eq!(
        jenkins.matches(anchor).count(),
        1,
        "the testcase declaration moved"
    );
    let extended = jenkins.replace(
        anchor,
        &anchor.replacen(
            "/>",
            "/>\n            <xs:attribute name=\"file\" type=\"xs:string\"/>\n            <xs:attribute name=\"line\" type=\"xs:string\"/>",
            1,
        ),
    );
    // What the CI viewers' parsers read (from their source): mikepenz/action-junit-report
    // takes a case's file and line from `testcase@file`/`@line` and its text from the
    // first `<failure message>`; dorny/test-reporter's java-junit parser reads
    // `testsuite@name`, `@time` and `testcase@name`, `@classname`, `@time` with
    // parseFloat (a missing time shows as NaN) and `<failure message>`.
    let report = std::fs::read_to_string(&junit).unwrap();
    let document = roxmltree::Document::parse(&report).unwrap();
    for suite in document
        .descendants()
        .filter(|n| n.has_tag_name("testsuite"))
    {
        assert!(suite.attribute("name").is_some());
        assert!(
            suite
                .attribute("time")
                .is_some_and(|t| t.parse::<f64>().is_ok()),
            "{report}"
        );
    }
    for case in document
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
    {
        for attribute in ["name", "classname", "file", "line", "time"] {
            assert!(
                case.attribute(attribute).is_some(),
                "{attribute} missing:\n{report}"
            );
        }
        assert!(case.attribute("time").unwrap().parse::<f64>().is_ok());
        assert!(case.attribute("line").unwrap().parse::<u32>().is_ok());
        let failures: Vec<_> = case
            .children()
            .filter(|n| n.has_tag_name("failure"))
            .collect();
        assert!(
            failures.len() <= 1,
            "the parsers read only the first <failure>"
        );
        if let Some(failure) = failures.first() {
            assert!(failure.attribute("message").is_some_and(|m| !m.is_empty()));
        }
    }
    let checked = validate(&extended);
    assert!(
        checked.status.success(),
        "the JUnit report does not validate: {}\n{}",
        support::describe(&checked),
        std::fs::read_to_string(&junit).unwrap()
    );
}

/// The action's `runs.steps` entry named `name`, and its inputs' defaults.
fn action_step(
    name: &str,
) -> (
    serde_json::Value,
    serde_json::Map<String, serde_json::Value>,
) {
    let text = std::fs::read_to_string(support::root().join("action.yml")).unwrap();
    let action = dockproof::scenario::yaml::parse(&text).unwrap().value;
    let step = action["runs"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|step| step["name"] == name)
        .unwrap_or_else(|| panic!("action.yml has no step `{name}`"))
        .clone();
    let inputs = action["inputs"].as_object().unwrap().clone();
    (step, inputs)
}

/// `${{ inputs.NAME }}` of a step's `env:` with `given` over the inputs' defaults.
fn action_env(
    step: &serde_json::Value,
    inputs: &serde_json::Map<String, serde_json::Value>,
    given: &[(&str, &str)],
) -> Vec<(String, String)> {
    step["env"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(variable, expression)| {
            let expression = expression.as_str().unwrap();
            let input = expression
                .strip_prefix("${{ inputs.")
                .and_then(|rest| rest.strip_suffix(" }}"))
                .unwrap_or_else(|| panic!("{variable}: {expression} is not an input"));
            assert!(inputs.contains_key(input), "{input} is not declared");
            let value = given
                .iter()
                .find(|(name, _)| *name == input)
                .map(|(_, value)| (*value).to_owned())
                .unwrap_or_else(|| inputs[input]["default"].as_str().unwrap().to_owned());
            (variable.clone(), value)
        })
        .collect()
}

#[test]
fn the_github_action_runs_a_users_suite_as_a_workflow_would() {
    let (step, inputs) = action_step("Run dockproof");
    // Every `uses: ./` in the project's workflows passes only inputs the action declares.
    for entry in std::fs::read_dir(support::root().join(".github/workflows")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let workflow = dockproof::scenario::yaml::parse(&text).unwrap().value;
        for job in workflow["jobs"].as_object().unwrap().values() {
            for uses in job["steps"].as_array().unwrap() {
                if uses["uses"] != "./" {
                    continue;
                }
                for key in uses["with"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| k)
                {
                    assert!(
                        inputs.contains_key(key),
                        "the workflow passes unknown input {key}"
                    );
                }
            }
        }
    }
    // The step's script, run by bash as the runner does, in a user's repository with the
    // installed binaries on PATH.
    let script = step["run"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let (dockproof, repo) = installed(dir.path());
    let init = installed_command(&dockproof, &repo)
        .arg("init")
        .output()
        .unwrap();
    support::assert_exit(&init, 0);
    let path = format!(
        "{}:{}",
        dockproof.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |given: &[(&str, &str)]| {
        let mut command = std::process::Command::new("bash");
        command
            .args(["-e", "-c", &script])
            .current_dir(&repo)
            .env("PATH", &path)
            .env("DOCKPROOF_HISTORY", repo.join("history.db"))
            .env_remove("GITHUB_ACTIONS")
            .env_remove("DOCKPROOF_BACKEND")
            .envs(action_env(&step, &inputs, given));
        command.output().unwrap()
    };
    let output = run(&[]);
    support::assert_exit(&output, 0);
    for file in ["junit.xml", "report.json", "summary.md", "report.html"] {
        assert!(repo.join("target/dockproof").join(file).is_file(), "{file}");
    }
    let output = run(&[
        ("partition", "hash:2/2"),
        ("report-formats", "junit"),
        ("report-dir", "shard"),
    ]);
    support::assert_exit(&output, 0);
    assert!(repo.join("shard/junit.xml").is_file());
    assert!(!repo.join("shard/report.json").exists());
    let output = run(&[("canary-hosts", "local"), ("canary-repeat", "2")]);
    support::assert_exit(&output, 0);
    assert!(String::from_utf8_lossy(&output.stdout).contains("GO: every host met the gates"));
    let decision = std::fs::read_to_string(repo.join("target/dockproof/canary.json")).unwrap();
    assert!(decision.contains("\"decision\": \"GO\""), "{decision}");
    // A failing suite fails the step.
    write(&repo.join("scenarios"), "failing.yaml", FAILING);
    let output = run(&[]);
    support::assert_exit(&output, 1);
}

#[test]
fn lint_reads_the_project_files_lint_section_and_lint_config_wins() {
    let dir = tempfile::tempdir().unwrap();
    let (dockproof, repo) = installed(dir.path());
    write(
        &repo,
        "Dockerfile",
        "FROM alpine:3.19@sha256:0000000000000000000000000000000000000000000000000000000000000000\nCMD [\"true\"]\n",
    );
    let lint = |extra: &[&str]| {
        installed_command(&dockproof, &repo)
            .args(["lint", "--no-hadolint"])
            .args(extra)
            .arg("Dockerfile")
            .output()
            .unwrap()
    };
    let without = lint(&[]);
    support::assert_exit(&without, 1);
    assert!(String::from_utf8_lossy(&without.stdout).contains("DF002"));
    write(&repo, "dockproof.toml", "[lint]\ndisable = [\"DF002\"]\n");
    let with = lint(&[]);
    support::assert_exit(&with, 0);
    assert!(!String::from_utf8_lossy(&with.stdout).contains("DF002"));
    // --lint-config replaces the section.
    let config = write(&repo, "lint.yaml", "disable: [DF001]\n");
    let explicit = lint(&["--lint-config", config.to_str().unwrap()]);
    support::assert_exit(&explicit, 1);
    assert!(String::from_utf8_lossy(&explicit.stdout).contains("DF002"));
}

/// ```yaml blocks of a Markdown text, with the line each starts on.
fn yaml_blocks(text: &str) -> Vec<(usize, String)> {
    fenced_blocks(text, "yaml")
}

/// The README and every Markdown page in docs/, sorted.
fn documentation() -> Vec<std::path::PathBuf> {
    let root = support::root();
    let mut documents = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "md") {
            documents.push(path);
        }
    }
    documents.sort();
    documents
}

/// The fenced blocks of `language` in a Markdown text, with the line each starts on.
fn fenced_blocks(text: &str, language: &str) -> Vec<(usize, String)> {
    let fence = format!("```{language}");
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (index, line) in text.lines().enumerate() {
        match &mut current {
            None if line.trim_start() == fence => current = Some((index + 2, String::new())),
            Some(_) if line.trim_start() == "```" => blocks.extend(current.take()),
            Some((_, block)) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// A documentation YAML block as a whole scenario: a scenario or a fragment with
/// `steps:` (given a name), a list of steps (put under `steps:`), or scenario-level keys
/// only (given a name and one step). Other blocks (fake images, gates…) are `None`.
fn as_scenario(block: &str) -> Option<String> {
    const SCENARIO_KEYS: [&str; 8] = [
        "fake_faults:",
        "docker_host:",
        "expect_failure:",
        "secrets:",
        "requires:",
        "workspace:",
        "tags:",
        "timeout:",
    ];
    let first = block
        .lines()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))?;
    // An include fragment (`params:`/`steps:`): the shipped fragments it shows are loaded
    // by the shipped scenarios that include them.
    if block.lines().any(|l| l.starts_with("params:")) {
        return None;
    }
    let named = |body: String| {
        if body.lines().any(|l| l.starts_with("name:")) {
            body
        } else {
            format!("name: doc-example\n{body}")
        }
    };
    if block.lines().any(|l| l.starts_with("steps:")) {
        Some(named(block.to_owned()))
    } else if first.starts_with("- ") {
        let indented: String = block.lines().map(|l| format!("  {l}\n")).collect();
        Some(format!("name: doc-example\nsteps:\n{indented}"))
    } else if SCENARIO_KEYS.iter().any(|key| first.starts_with(key)) {
        Some(named(format!(
            "{block}steps:\n  - run: {{ image: dockproof/job-runner:1, cmd: [job] }}\n"
        )))
    } else {
        None
    }
}

/// Every scenario example in the README and docs/ (a YAML block with top-level `steps:`,
/// a list of steps, or scenario-level keys) loads as written: a fragment without `name:` is given one, and its relative paths
/// resolve against the document's own directory (`../fixtures/…` from docs/ is the
/// repository's fixtures/, as from scenarios/). An example that does not parse, or names
/// a key or a fixture that does not exist, fails here (issue 18, item 10).
#[test]
fn every_scenario_example_in_the_docs_loads() {
    let root = support::root();
    let documents = documentation();
    let mut loaded = 0;
    let mut problems = Vec::new();
    for document in &documents {
        let text = std::fs::read_to_string(document).unwrap();
        for (line, block) in yaml_blocks(&text) {
            let Some(source) = as_scenario(&block) else {
                continue;
            };
            // A fragment's paths are relative to the scenario it would be in: a
            // README step example reads like one in scenarios/.
            let base = if block.lines().any(|l| l.starts_with("steps:")) {
                document.parent().unwrap().to_path_buf()
            } else {
                root.join("scenarios")
            };
            let (scenario, diagnostics) = dockproof::scenario::load::load_str(&source, &base);
            if scenario.is_none() || !diagnostics.is_empty() {
                problems.push(format!(
                    "{}:{line}: {:?}",
                    document.strip_prefix(&root).unwrap().display(),
                    diagnostics
                        .iter()
                        .map(|d| d.message.clone())
                        .collect::<Vec<_>>()
                ));
            }
            loaded += 1;
        }
    }
    assert!(
        problems.is_empty(),
        "examples that do not load:\n{}",
        problems.join("\n")
    );
    assert!(
        loaded >= 7,
        "only {loaded} scenario examples found: the extraction broke"
    );
}

#[test]
fn a_step_running_a_while_is_announced_on_a_console_without_progress_display() {
    let (dir, scenario) = support::temp_file(
        "slow.yaml",
        "name: slow\nsteps:\n  - name: wait for the batch\n    run: { image: dockproof/job-runner:1, cmd: [sleep, \"6\"] }\n",
    );
    let output = support::dockproof_fake(dir.path())
        .arg(&scenario)
        .output()
        .unwrap();
    support::assert_exit(&output, 0);
    let stdout = String::from_utf8_lossy(&output.stdout);
    // The first announcement comes at 5 s of the step; on a loaded machine the line may
    // be printed a little later (its whole seconds), and the scenario may take longer than
    // its 6 s sleep, never less.
    assert!(
        regex::Regex::new(r"(?m)^    slow: `wait for the batch` running for [5-9]\.00s$")
            .unwrap()
            .is_match(&stdout),
        "{stdout}"
    );
    let took: f64 = regex::Regex::new(r"PASS slow \((\d+\.\d+)s\)")
        .unwrap()
        .captures(&stdout)
        .and_then(|found| found[1].parse().ok())
        .unwrap_or_else(|| panic!("no duration on the PASS line:\n{stdout}"));
    assert!(took >= 6.0, "took {took}s:\n{stdout}");
}

/// A container the scenario's own cleanup could not remove (`rm:no-stop`), that the
/// final sweep then removed.
const STUCK: &str = "\
name: stuck-container
fake_faults: \"rm:no-stop\"
steps:
  - run: { image: dockproof/job-runner:1, cmd: [sleep, \"300\"], detach: true, container: stuck }
";

#[test]
fn the_left_behind_warning_names_the_scenarios_and_not_those_that_expected_it() {
    let (dir, stuck) = support::temp_file("stuck.yaml", STUCK);
    let output = support::dockproof_fake(dir.path())
        .arg(&stuck)
        .output()
        .unwrap();
    support::assert_exit(&output, 1);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "warning: removed 1 container(s) that scenarios left behind: stuck-container"
        ),
        "{stderr}"
    );
    // The shipped scenario that expects cleanup_failed leaves the same container on
    // purpose: it passes, and no warning is printed for it.
    let expected = support::root().join("scenarios/faults/cleanup-failed.yaml");
    let output = support::dockproof_fake(dir.path())
        .arg(&expected)
        .output()
        .unwrap();
    support::assert_exit(&output, 0);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("left behind"), "{stderr}");
}

/// Every `dockproof.toml` example in the docs (```toml blocks), every gates-file example
/// (a YAML block with `min_success_rate:`) and every lint config example (with
/// `failure-threshold:`) is read by the real loaders.
#[test]
fn every_project_file_and_gates_example_in_the_docs_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for document in &documentation() {
        let text = std::fs::read_to_string(document).unwrap();
        for (line, block) in fenced_blocks(&text, "toml") {
            let file = write(dir.path(), "dockproof.toml", &block);
            if let Err(error) = dockproof::project::Project::load(&file) {
                panic!(
                    "{}:{line}: a dockproof.toml example: {error}\n{block}",
                    document.display()
                );
            }
            checked += 1;
        }
        for (line, block) in yaml_blocks(&text) {
            if block.lines().any(|l| l.starts_with("failure-threshold:")) {
                let file = dir.path().join("lint.yaml");
                std::fs::write(&file, &block).unwrap();
                if let Err(error) = dockproof::lint::config::LintConfig::load(&file) {
                    panic!(
                        "{}:{line}: a lint config example: {error}",
                        document.display()
                    );
                }
                checked += 1;
                continue;
            }
            if !block.lines().any(|l| l.starts_with("min_success_rate:")) {
                continue;
            }
            let file = dir.path().join("gates.yaml");
            std::fs::write(&file, &block).unwrap();
            if let Err(error) = dockproof::canary::read_gates(&file) {
                panic!("{}:{line}: a gates example: {error}", document.display());
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 3,
        "only {checked} examples found: the extraction broke"
    );
}

#[test]
fn loose_and_zero_sizes_are_load_errors_with_the_right_spelling() {
    let (_dir, file) = support::temp_file(
        "sizes.yaml",
        "name: sizes\nworkspace: { max_bytes: 5M }\nsteps:\n  - run:\n      image: dockproof/job-runner:1\n      cmd: [job]\n      limits: { memory: 0 }\n  - build:\n      context: ../fixtures/build/root-user\n      expect: { max_size: 16mb }\n",
    );
    let shown = file.display().to_string();
    let output = dockproof().arg("check").arg(&file).output().unwrap();
    support::assert_exit(&output, 2);
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        format!("{shown}:2:25"),
        "hint: write `5MiB`".to_owned(),
        format!("{shown}:7:"),
        "a `memory` of zero makes no sense".to_owned(),
        "Docker reads a memory limit of 0 as no limit".to_owned(),
        format!("{shown}:10:"),
        "hint: write `16MB`".to_owned(),
    ] {
        assert!(
            stderr.contains(&expected),
            "missing {expected:?}:\n{stderr}"
        );
    }
}

fn fake_json_report(work: &Path, name: &str, args: &[&str]) -> serde_json::Value {
    let json = work.join(name);
    Command::from_std(support::dockproof_fake(work))
        .arg("--json")
        .arg(&json)
        .args(args)
        .assert()
        .success();
    serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap()
}

/// Issue 20's bar: one scenario run with `--var tag=1` and with `--var tag=2` uses the two
/// values (the job prints them, the record holds them); `--vars-file` gives them too and
/// `--var` wins over it; an undefined variable is a load error at its line.
#[test]
fn variables_from_the_command_line_reach_the_job_and_the_record() {
    let dir = tempfile::tempdir().unwrap();
    for tag in ["1", "2"] {
        let var = format!("tag={tag}");
        let report = fake_json_report(
            dir.path(),
            &format!("report-{tag}.json"),
            &["--var", &var, "scenarios/variables.yaml"],
        );
        let record = &report["scenarios"][0]["record"];
        assert_eq!(record["context"]["vars"]["tag"], tag, "{record:#}");
        assert_eq!(record["context"]["vars"]["runner_tag"], "1");
        assert_eq!(
            record["context"]["docker"]["image"],
            "dockproof/job-runner:1"
        );
        let stdout = record["context"]["docker"]["logTail"]["stdout"].to_string();
        assert!(
            stdout.contains(&format!("job build-{tag}: starting")),
            "{stdout}"
        );
    }
    let vars_file = dir.path().join("vars.yaml");
    std::fs::write(&vars_file, "tag: 7\n").unwrap();
    let vars_file = vars_file.display().to_string();
    let report = fake_json_report(
        dir.path(),
        "file.json",
        &["--vars-file", &vars_file, "scenarios/variables.yaml"],
    );
    assert_eq!(
        report["scenarios"][0]["record"]["context"]["vars"]["tag"],
        "7"
    );
    let report = fake_json_report(
        dir.path(),
        "both.json",
        &[
            "--vars-file",
            &vars_file,
            "--var",
            "tag=8",
            "scenarios/variables.yaml",
        ],
    );
    assert_eq!(
        report["scenarios"][0]["record"]["context"]["vars"]["tag"],
        "8"
    );
    let scenario = dir.path().join("undefined.yaml");
    std::fs::write(
        &scenario,
        "name: undefined-var\nsteps:\n  - run: { image: 'dockproof/job-runner:{{ vars.nope }}' }\n",
    )
    .unwrap();
    Command::from_std(support::dockproof_fake(dir.path()))
        .arg(&scenario)
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("undefined.yaml:3:19: undefined variable `vars.nope`")
                .and(predicate::str::contains("--var nope=VALUE")),
        );
    Command::from_std(support::dockproof_fake(dir.path()))
        .args(["--var", "no-equals", "scenarios/variables.yaml"])
        .assert()
        .code(2);
}

/// Issue 20's bar: a value captured from one step's stdout is used by the next (the
/// shipped scenario checks the job's output); captured values are in the record, and one
/// cut from a secret is masked there like the secret.
#[test]
fn a_value_captured_from_stdout_is_used_by_the_next_step_and_masked_when_secret() {
    let dir = tempfile::tempdir().unwrap();
    let report = fake_json_report(dir.path(), "report.json", &["scenarios/step-outputs.yaml"]);
    let scenario = &report["scenarios"][0];
    assert_eq!(scenario["outcome"], "passed", "{scenario:#}");
    let captures = &scenario["record"]["context"]["captures"];
    assert_eq!(captures["issue.ticket"], "T-20261202");
    assert_eq!(
        captures["job.summary"],
        r#"{"job":"T-20261202","inputs":1,"status":"ok"}"#
    );
    assert_eq!(captures["session.prefix"], "***", "{captures:#}");
    // `file_sha256:` is the staged file's own digest (read on the blocking pool).
    use sha2::Digest;
    assert_eq!(
        captures["job.digest"],
        hex::encode(sha2::Sha256::digest(b"a,b\n1,2\n")),
        "{captures:#}"
    );
    // A `file_sha256:` of a file the job did not write fails the step at that capture.
    let missing = dir.path().join("missing-digest.yaml");
    std::fs::write(
        &missing,
        "name: missing-digest\nsteps:\n  - name: job\n    run: { image: dockproof/job-runner:1, cmd: [echo, hi] }\n    capture:\n      digest: { file_sha256: outputs/none.txt }\n",
    )
    .unwrap();
    let json = dir.path().join("missing.json");
    Command::from_std(support::dockproof_fake(dir.path()))
        .arg("--json")
        .arg(&json)
        .arg(&missing)
        .assert()
        .code(1);
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let failure = &report["scenarios"][0]["failure"];
    assert_eq!(failure["category"], "assertion_failed", "{failure}");
    assert_eq!(
        failure["message"],
        "cannot capture `digest`: `outputs/none.txt` does not exist in the workspace",
        "{failure}"
    );
    assert_eq!(
        (&failure["location"]["line"], &failure["location"]["column"]),
        (&serde_json::json!(6), &serde_json::json!(30)),
        "{failure}"
    );
    // A reference to a capture no earlier step makes is a load error at its line.
    let scenario = dir.path().join("unknown-capture.yaml");
    std::fs::write(
        &scenario,
        "name: unknown-capture\nsteps:\n  - run: { image: dockproof/job-runner:1, cmd: [echo, '{{ steps.nope.value }}'] }\n",
    )
    .unwrap();
    Command::from_std(support::dockproof_fake(dir.path()))
        .arg(&scenario)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "unknown-capture.yaml:3:55: no earlier step captures `nope.value`",
        ));
}

/// Issue 20's bar for includes: a fragment included by two scenarios (in different
/// directories, with different parameters) reports a problem inside it at the fragment's
/// file:line:col for both, each with its own including line; include problems (a missing
/// fragment, an unknown parameter) are reported at the include's line; exit 2.
#[test]
fn a_problem_in_a_fragment_is_reported_at_its_line_for_every_includer() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("suite/nested")).unwrap();
    std::fs::create_dir_all(root.join("suite/fragments")).unwrap();
    std::fs::write(root.join("dockproof.toml"), "").unwrap();
    // Line 6, column 16: a duration spelt wrong inside the fragment.
    write(
        &root.join("suite/fragments"),
        "web.fragment.yaml",
        "params:\n  image: {}\nsteps:\n  - run:\n      image: \"{{ params.image }}\"\n      timeout: 5 sec\n",
    );
    write(
        &root.join("suite"),
        "first.yaml",
        "name: first\nsteps:\n  - include:\n      file: fragments/web.fragment.yaml\n      with: { image: \"dockproof/job-runner:1\" }\n",
    );
    write(
        &root.join("suite/nested"),
        "second.yaml",
        "name: second\nsteps:\n  - run: { image: dockproof/job-runner:1 }\n  - include: { file: ../fragments/web.fragment.yaml, with: { image: x } }\n",
    );
    let output = dockproof()
        .current_dir(root)
        .args(["check", "suite"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let at_fragment = "suite/fragments/web.fragment.yaml:6:16: `5 sec` is not a duration";
    assert_eq!(stderr.matches(at_fragment).count(), 2, "{stderr}");
    assert!(
        stderr.contains("included from suite/first.yaml:4:13"),
        "{stderr}"
    );
    assert!(
        stderr.contains("included from suite/nested/second.yaml:4:22"),
        "{stderr}"
    );
    // Fixed in the fragment, both load; a missing fragment and an unknown parameter are
    // errors at the including line.
    write(
        &root.join("suite/fragments"),
        "web.fragment.yaml",
        "params:\n  image: {}\nsteps:\n  - run:\n      image: \"{{ params.image }}\"\n      timeout: 5s\n",
    );
    dockproof()
        .current_dir(root)
        .args(["check", "suite"])
        .assert()
        .success();
    write(
        &root.join("suite"),
        "third.yaml",
        "name: third\nsteps:\n  - include: { file: fragments/nope.fragment.yaml }\n  - include: { file: fragments/web.fragment.yaml, with: { image: x, tag: y } }\n",
    );
    let output = dockproof()
        .current_dir(root)
        .args(["check", "suite/third.yaml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "suite/third.yaml:3:22: cannot include `fragments/nope.fragment.yaml`: no such file"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "suite/third.yaml:4:69: `fragments/web.fragment.yaml` has no parameter `tag`"
        ),
        "{stderr}"
    );
}

/// Issue 20 item 4: a matrix runs as one JUnit case per combination, named with its
/// values in a fixed order, and a failing combination fails only its own case.
#[test]
fn a_matrix_is_one_junit_case_per_combination_and_fails_only_the_failing_one() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = write(
        dir.path(),
        "matrix.yaml",
        "name: exits\nmatrix:\n  code: [\"0\", \"3\"]\n  who: [ann, bob]\nsteps:\n  - run:\n      image: dockproof/job-runner:1\n      env: { JOB_EXIT_CODE: \"{{ vars.code }}\", JOB_ID: \"{{ vars.who }}\" }\n    expect: { stdout: { contains: \"job {{ vars.who }}: starting\" } }\n",
    );
    let junit = dir.path().join("junit.xml");
    let output = support::dockproof_fake(&dir.path().join("work"))
        .arg("--junit")
        .arg(&junit)
        .arg(&scenario)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        support::describe(&output)
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    let cases: Vec<(&str, bool)> = xml
        .split("<testcase ")
        .skip(1)
        .map(|case| {
            let name = case
                .split_once("name=\"")
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(name, _)| name)
                .unwrap_or_default();
            let body = case.split("</testcase>").next().unwrap_or_default();
            (name, body.contains("<failure"))
        })
        .collect();
    assert_eq!(
        cases,
        [
            ("exits [code=0, who=ann]", false),
            ("exits [code=0, who=bob]", false),
            ("exits [code=3, who=ann]", true),
            ("exits [code=3, who=bob]", true),
        ],
        "{xml}"
    );
    // `--var` giving a matrix key: a load error at that key.
    dockproof()
        .arg("check")
        .args(["--var", "who=eve"])
        .arg(&scenario)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "matrix.yaml:4:3: `--var`/`--vars-file` give `who`, a key of this matrix",
        ));
    // Over 64 combinations: a load error at `matrix:` with the sizes.
    let big = write(
        dir.path(),
        "big.yaml",
        "name: big\nmatrix:\n  a: [1, 2, 3, 4, 5, 6, 7, 8, 9]\n  b: [1, 2, 3, 4, 5, 6, 7, 8]\nsteps:\n  - run: { image: dockproof/job-runner:1 }\n",
    );
    dockproof()
        .arg("check")
        .arg(&big)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "big.yaml:2:1: the matrix has more than 64 combinations (a: 9 × b: 8)",
        ));
}
