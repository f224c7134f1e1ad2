//! `dockproof cst`: container-structure-test files run unchanged, on the fake
//! and (when a daemon answers) on real Docker, with identical verdicts.

use crate::support::{self, write};
use libtest_mimic::Trial;

use std::path::{Path, PathBuf};
use std::process::Command;

const FIXTURES: [(&str, &str); 4] = [
    ("dockproof/job-runner:1", "fixtures/cst/job-runner.yaml"),
    ("dockproof/job-runner:1", "fixtures/cst/job-runner-v1.yaml"),
    ("dockproof/job-runner:1", "fixtures/cst/every-field.yaml"),
    ("dockproof/web:1", "fixtures/cst/web.yaml"),
];

/// `dockproof cst` on `backend` with this checkout's fixtures, no history.
fn cst(backend: &str, work_dir: &Path) -> Command {
    support::cst_command(backend, work_dir)
}

/// `dockproof cst --image dockproof/job-runner:1 [--junit JUNIT] CONFIG…` on the fake.
fn job_runner_on_the_fake(
    dir: &Path,
    junit: Option<&Path>,
    configs: &[&Path],
) -> std::process::Output {
    let mut command = cst("fake", dir);
    command.args(["--image", "dockproof/job-runner:1"]);
    if let Some(junit) = junit {
        command.arg("--junit").arg(junit);
    }
    command.args(configs).output().unwrap()
}

/// (test name, passed) per JUnit test case, in report order.
fn verdicts(junit: &Path) -> Vec<(String, bool)> {
    support::junit_verdicts(junit).unwrap()
}

/// Run one fixture config; returns the verdicts from its JUnit report.
fn run_fixture(backend: &str, driver: &str, image: &str, config: &str) -> Vec<(String, bool)> {
    run_fixture_as(backend, driver, image, config, None)
}

fn run_fixture_as(
    backend: &str,
    driver: &str,
    image: &str,
    config: &str,
    run_id: Option<&str>,
) -> Vec<(String, bool)> {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("junit.xml");
    let mut command = cst(backend, dir.path());
    if let Some(run_id) = run_id {
        command.args(["--run-id", run_id]);
    }
    let output = command
        .args(["--driver", driver, "--image", image, "--junit"])
        .arg(&junit)
        .arg(config)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{backend}/{driver} {config}: {}",
        support::describe(&output)
    );
    verdicts(&junit)
}

fn fixture_configs_pass_on_the_fake_with_both_drivers_and_the_same_verdicts() {
    for (image, config) in FIXTURES {
        let docker = run_fixture("fake", "docker", image, config);
        let tar = run_fixture("fake", "tar", image, config);
        assert!(
            !docker.is_empty() && docker.iter().all(|(_, passed)| *passed),
            "{config}: {docker:?}"
        );
        assert_eq!(
            docker, tar,
            "{config}: the tar driver must agree with the container driver"
        );
    }
}

fn junit_has_cst_test_names_and_the_attributes_ci_consumers_need() {
    let dir = tempfile::tempdir().unwrap();
    let (junit, json) = (dir.path().join("junit.xml"), dir.path().join("report.json"));
    let output = cst("fake", dir.path())
        .args(["--image", "dockproof/web:1", "--junit"])
        .arg(&junit)
        .arg("--json")
        .arg(&json)
        .arg("fixtures/cst/web.yaml")
        .output()
        .unwrap();
    support::assert_exit(&output, 0);
    let text = std::fs::read_to_string(&junit).unwrap();
    let document = roxmltree::Document::parse(&text).unwrap();
    let suite = document
        .descendants()
        .find(|node| node.has_tag_name("testsuite"))
        .expect("a suite");
    for attribute in ["name", "tests", "failures", "errors"] {
        assert!(
            suite.attribute(attribute).is_some(),
            "testsuite lacks `{attribute}`: {text}"
        );
    }
    assert_eq!(suite.attribute("tests"), Some("8"));
    let names: Vec<String> = verdicts(&junit).into_iter().map(|(name, _)| name).collect();
    assert_eq!(
        names,
        [
            "Command Test: web exits at once when told to",
            "Command Test: echo runs as the image user",
            "File Content Test: handler serves the health route",
            "File Existence Test: web script",
            "File Existence Test: request handler",
            "File Existence Test: static busybox",
            "File Existence Test: no shell history",
            "Metadata Test",
        ]
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(report.to_string().contains("Metadata Test"), "{report}");
}

fn a_failing_test_exits_1_with_cst_messages_and_its_line() {
    let (dir, config) = support::temp_file(
        "failing.yaml",
        "schemaVersion: 2.0.0\ncommandTests:\n  - name: wrong output\n    command: echo\n    args: [a]\n    expectedOutput: [b]\n    exitCode: 2\nfileExistenceTests:\n  - name: absent\n    path: /nope\nmetadataTest:\n  exposedPorts: [\"8080\"]\n",
    );
    let output = job_runner_on_the_fake(dir.path(), None, &[&config]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    support::assert_exit(&output, 1);
    let shown = config.display().to_string();
    assert!(
        stdout.contains(&format!(
            "{shown}:3:5: assertion_failed: Expected string 'b' not found in output 'a"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "Test 'wrong output' exited with incorrect error code. Expected: 2, Actual: 0"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("Error examining file in container: File /nope not found in image"),
        "{stdout}"
    );
    assert!(stdout.contains("Port 8080 not found in config"), "{stdout}");
    assert!(stdout.contains("0 passed, 3 failed"), "{stdout}");
}

fn an_invalid_entry_fails_alone_with_its_line_and_the_rest_runs() {
    let (dir, config) = support::temp_file(
        "invalid.yaml",
        "schemaVersion: 2.0.0\nfileExistenceTests:\n  - name: a\n    path: /a\n    isExecutableBy: everybody\n  - name: sh\n    path: /bin/sh\ncommandTests:\n  - name: b\n    comand: echo\n  - name: typed\n    command: echo\n    exitCode: [1]\n  - name: hello\n    command: echo\n    args: [hello]\n    expectedOutput: [hello]\n",
    );
    // A file CST itself cannot parse (an unknown top-level key) is one failed result.
    let unreadable = write(
        dir.path(),
        "unreadable.yaml",
        "schemaVersion: 2.0.0\nfileExistenceTest:\n  - name: typo\n    path: /bin/sh\n",
    );
    // Nulls are defaults and YAML 1.1 booleans are booleans, as yaml.v2 reads them.
    let nulls = write(
        dir.path(),
        "nulls.yaml",
        "schemaVersion: 2.0.0\ncommandTests:\nfileContentTests: ~\nfileExistenceTests:\n  - name: no shell history\n    path: /root/.ash_history\n    shouldExist: no\n    uid: null\n",
    );
    let junit = dir.path().join("junit.xml");
    let output = job_runner_on_the_fake(dir.path(), Some(&junit), &[&config, &unreadable, &nulls]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    support::assert_exit(&output, 1);
    // Every problem is shown at once, each at its line.
    let shown = config.display().to_string();
    for expected in [
        format!("{shown}:10:5: unknown field `comand`"),
        format!("{shown}:5:21: `everybody` is not a valid isExecutableBy"),
        format!("{shown}:13:15: invalid type: sequence, expected i64"),
        format!(
            "{}:2:1: unknown field `fileExistenceTest`",
            unreadable.display()
        ),
    ] {
        assert!(stderr.contains(&expected), "no `{expected}` in\n{stderr}");
    }
    assert!(stderr.contains("owner, group, other or any"), "{stderr}");
    // The rest ran, in CST's order per file, and JUnit has every result.
    assert_eq!(
        verdicts(&junit),
        [
            ("b".to_owned(), false),
            ("typed".to_owned(), false),
            ("Command Test: hello".to_owned(), true),
            ("a".to_owned(), false),
            ("File Existence Test: sh".to_owned(), true),
            (format!("Config File: {}", unreadable.display()), false),
            ("File Existence Test: no shell history".to_owned(), true),
        ]
    );
}

fn a_config_without_tests_fails_as_cst_does() {
    let (dir, config) =
        support::temp_file("empty.yaml", "schemaVersion: 2.0.0\nfileExistenceTests:\n");
    let junit = dir.path().join("junit.xml");
    let output = job_runner_on_the_fake(dir.path(), Some(&junit), &[&config]);
    support::assert_exit(&output, 1);
    support::assert_stdout_contains(&output, "No tests run! Check config file format.");
    assert!(junit.exists(), "JUnit is always written");
}

fn a_json_config_ignores_unknown_keys_with_a_warning() {
    let (dir, config) = support::temp_file(
        "lenient.json",
        r#"{"schemaVersion": "2.0.0", "extra": 1, "fileExistenceTests": [{"name": "sh", "path": "/bin/sh", "colour": "red"}]}"#,
    );
    let output = job_runner_on_the_fake(dir.path(), None, &[&config]);
    support::assert_exit(&output, 0);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown key `extra` ignored"), "{stderr}");
    assert!(stderr.contains("unknown key `colour` ignored"), "{stderr}");
}

/// `dockproof cst test …` with `--backend fake` added: CST's command line.
fn cst_test_command(dir: &Path) -> Command {
    let mut command = Command::new(support::dockproof());
    command
        .current_dir(support::root())
        .env_remove("FAKE_DOCKER_STATE")
        .args(["cst", "test", "--no-history", "--backend", "fake"])
        .arg("--fake-docker")
        .arg(support::fake_docker())
        .arg("--fake-images")
        .arg(support::root().join("fixtures/fake-images"))
        .arg("--work-dir")
        .arg(dir);
    command
}

fn cst_command_line_and_report_formats() {
    let (dir, failing) = support::temp_file(
        "failing.yaml",
        "schemaVersion: 2.0.0\ncommandTests:\n  - name: two errors\n    command: echo\n    args: [\"a<b\"]\n    expectedOutput: [x, y]\n",
    );
    let report = dir.path().join("report.xml");
    let output = cst_test_command(dir.path())
        .args(["--image", "dockproof/job-runner:1", "--config"])
        .arg(&failing)
        .arg("-c")
        .arg(support::root().join("fixtures/cst/job-runner.yaml"))
        .args(["--output", "junit", "--test-report"])
        .arg(&report)
        .output()
        .unwrap();
    support::assert_exit(&output, 1);
    let junit = std::fs::read_to_string(&report).unwrap();
    assert!(
        junit.starts_with(
            r#"<?xml version="1.0" encoding="UTF-8"?><testsuites failures="1" tests="#
        ),
        "{junit}"
    );
    assert!(
        junit.contains(r#"<testsuite name="container-structure-test.test">"#),
        "{junit}"
    );
    // One <failure> per CST error string, the output escaped as Go's encoding/xml does.
    let case = junit
        .split("<testcase ")
        .find(|case| case.starts_with(r#"name="Command Test: two errors""#))
        .unwrap_or_else(|| panic!("{junit}"));
    assert_eq!(case.matches("<failure>").count(), 2, "{case}");
    assert!(
        case.contains("<system-out>a&lt;b&#xA;</system-out>"),
        "{case}"
    );
    // The fake's CST reports are byte-identical run to run (no timings).
    assert!(case.contains(r#"time="0""#), "{case}");

    // --output json on stdout, CST's summary object; --junit-suite-name; -q.
    let output = cst_test_command(dir.path())
        .args(["-i", "dockproof/job-runner:1", "-c"])
        .arg(&failing)
        .args(["-o", "json"])
        .output()
        .unwrap();
    support::assert_exit(&output, 1);
    let json = stdout_json(&output);
    assert_eq!(json["Pass"], 0);
    assert_eq!(json["Fail"], 1);
    assert_eq!(json["Total"], 1);
    assert_eq!(json["Results"][0]["Name"], "Command Test: two errors");
    assert_eq!(
        json["Results"][0]["Errors"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(json["Results"][0]["Stdout"], "a<b\n");
    let junit_suite_named_mine = |quiet: &[&str]| {
        cst_test_command(dir.path())
            .args(["-i", "dockproof/job-runner:1"])
            .args(quiet)
            .args(["-o", "junit", "--junit-suite-name", "mine", "-c"])
            .arg(&failing)
            .output()
            .unwrap()
    };
    let output = junit_suite_named_mine(&["-q"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty(), "{}", support::describe(&output));
    let output = junit_suite_named_mine(&[]);
    support::assert_stdout_contains(&output, r#"<testsuite name="mine">"#);
    // No config at all is a usage error.
    let output = cst_test_command(dir.path())
        .args(["-i", "dockproof/job-runner:1"])
        .output()
        .unwrap();
    support::assert_exit(&output, 2);
}

fn runs_are_recorded_in_the_history_under_cst_names() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.sqlite");
    let mut command = cst("fake", dir.path());
    let args: Vec<String> = command
        .get_args()
        .map(|arg| arg.to_string_lossy().into_owned())
        .filter(|arg| arg != "--no-history")
        .collect();
    command = Command::new(support::dockproof());
    command
        .current_dir(support::root())
        .env_remove("FAKE_DOCKER_STATE")
        .args(args);
    let output = command
        .args(["--image", "dockproof/web:1", "--history"])
        .arg(&db)
        .arg("fixtures/cst/web.yaml")
        .output()
        .unwrap();
    support::assert_exit(&output, 0);
    let shown = Command::new(support::dockproof())
        .args(["history", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains("Metadata Test") && text.contains("File Existence Test: web script"),
        "{text}"
    );
}

fn a_scenario_step_checks_its_cst_file_at_load_with_the_cst_line() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "bad-cst.yaml",
        "schemaVersion: 2.0.0\nfileExistenceTests:\n  - name: x\n    pth: /x\n",
    );
    let scenario = write(
        dir.path(),
        "scenario.yaml",
        "name: uses-cst\nsteps:\n  - cst:\n      image: dockproof/web:1\n      config: bad-cst.yaml\n",
    );
    let output = Command::new(support::dockproof())
        .current_dir(support::root())
        .arg("check")
        .arg(&scenario)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    support::assert_exit(&output, 2);
    assert!(
        stderr.contains(&format!("{}:5:15:", scenario.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{}:4:5: unknown field `pth`",
            dir.path().join("bad-cst.yaml").display()
        )),
        "{stderr}"
    );
}

fn host_variables_pass_through_only_when_listed_and_set() {
    let (dir, config) = support::temp_file(
        "host-env.yaml",
        "schemaVersion: 2.0.0\ncontainerRunOptions:\n  envVars: [JOB_EXIT_CODE, DOCKPROOF_UNSET_VARIABLE]\ncommandTests:\n  - name: exit code from the host\n    command: job\n    exitCode: 5\n",
    );
    let run = |value: Option<&str>| {
        let mut command = cst("fake", dir.path());
        command
            .args(["--image", "dockproof/job-runner:1"])
            .arg(&config)
            .env_remove("DOCKPROOF_UNSET_VARIABLE");
        match value {
            Some(value) => command.env("JOB_EXIT_CODE", value),
            None => command.env_remove("JOB_EXIT_CODE"),
        };
        command.output().unwrap().status.code()
    };
    assert_eq!(run(Some("5")), Some(0));
    assert_eq!(run(None), Some(1));
}

/// One fixture config on a real backend gives the fake's verdicts, and leaves no container behind.
fn real_matches_fake(backend: &str, driver: &str, image: &str, config: &str) {
    let fake = run_fixture("fake", "docker", image, config);
    let stem = Path::new(config)
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let run_id = format!("cst-test-{backend}-{driver}-{stem}-{}", std::process::id());
    assert_eq!(
        run_fixture_as(backend, driver, image, config, Some(&run_id)),
        fake,
        "{config} on {backend}/{driver}"
    );
    let label = format!("label=dockproof.run={run_id}");
    let leftovers = Command::new("docker")
        .args(["ps", "-aq", "--filter", &label])
        .output()
        .unwrap();
    assert!(
        leftovers.stdout.is_empty(),
        "containers left: {}",
        String::from_utf8_lossy(&leftovers.stdout)
    );
}

/// CST's flags dockproof refuses (exit 2, saying what to do), those CST itself treats as
/// fatal (exit 1, CST's words), and `--platform` checked against the image.
fn cst_flags_refused_or_fatal_as_cst() {
    let dir = tempfile::tempdir().unwrap();
    let config = support::root().join("fixtures/cst/job-runner.yaml");
    let run = |extra: &[&str]| {
        cst_test_command(dir.path())
            .args(["--image", "dockproof/job-runner:1", "--config"])
            .arg(&config)
            .args(extra)
            .output()
            .unwrap()
    };
    for (extra, code, words) in [
        (
            &["--image-from-oci-layout", "/nonexistent"][..],
            2,
            "cannot be used with",
        ),
        (
            &["--pull", "--driver", "tar"][..],
            1,
            "image pull not supported when not using Docker driver",
        ),
        (
            &["--platform", "linux/riscv64"][..],
            1,
            "image with reference dockproof/job-runner:1 was found but its platform (linux/amd64) does not match the specified platform (linux/riscv64)",
        ),
    ] {
        let output = run(extra);
        assert_eq!(
            output.status.code(),
            Some(code),
            "{extra:?}: {}",
            support::describe(&output)
        );
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(words),
            "{extra:?}: {}",
            support::describe(&output)
        );
    }
    let output = cst_test_command(dir.path())
        .args([
            "--driver",
            "tar",
            "--image",
            "/nonexistent/image.tar",
            "--config",
        ])
        .arg(&config)
        .output()
        .unwrap();
    support::assert_exit(&output, 2);
    support::assert_stderr_contains(&output, "is not a file");
    // The image's own platform passes.
    let output = run(&["--platform", "linux/amd64"]);
    support::assert_exit(&output, 0);
}

/// `dockproof cst test` on the real daemon (docker-api) with `extra`.
fn cst_real(dir: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(support::dockproof())
        .current_dir(support::root())
        .args(["cst", "test", "--no-history", "--backend", "docker-api"])
        .arg("--fixture-images")
        .arg(support::root().join("fixtures/images"))
        .arg("--work-dir")
        .arg(dir)
        .args(extra)
        .output()
        .unwrap()
}

/// `cst_real` on `fixtures/cst/job-runner.yaml`: the image flags (`source`), the
/// config, then `extra`.
fn cst_real_job_runner(dir: &Path, source: &[&str], extra: &[&str]) -> std::process::Output {
    let config = support::root().join("fixtures/cst/job-runner.yaml");
    let mut args = source.to_vec();
    args.extend_from_slice(&["--config", config.to_str().unwrap()]);
    args.extend_from_slice(extra);
    cst_real(dir, &args)
}

/// A finished command's stdout as JSON (its output shown when it is not JSON).
fn stdout_json(output: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}", support::describe(output)))
}

/// `dockproof/job-runner:1` (built when missing) saved by `docker save` into `dir`.
fn saved_job_runner(dir: &Path) -> PathBuf {
    support::ensure_fixture_image("dockproof/job-runner:1").unwrap();
    let archive = dir.join("job-runner.tar");
    let saved = Command::new("docker")
        .args(["save", "-o"])
        .arg(&archive)
        .arg("dockproof/job-runner:1")
        .output()
        .unwrap();
    assert!(saved.status.success(), "{}", support::describe(&saved));
    archive
}

fn docker_ids(args: &[&str]) -> Vec<String> {
    let output = Command::new("docker").args(args).output().unwrap();
    assert!(output.status.success(), "{}", support::describe(&output));
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// `--save` keeps every container and committed image of the run and prints how to
/// remove them; the printed commands remove them all.
fn save_keeps_containers_and_images_and_says_how_to_remove_them() {
    support::ensure_fixture_image("dockproof/job-runner:1").unwrap();
    let (dir, config) = support::temp_file(
        "save.yaml",
        "schemaVersion: 2.0.0\ncommandTests:\n  - name: with setup\n    setup: [[touch, /workspace/x]]\n    command: ls\n    args: [/workspace/x]\nfileExistenceTests:\n  - name: sh\n    path: /bin/sh\n",
    );
    let run_id = format!("cst-save-{}", std::process::id());
    let output = cst_real(
        dir.path(),
        &[
            "--image",
            "dockproof/job-runner:1",
            "--config",
            config.to_str().unwrap(),
            "--save",
            "--run-id",
            &run_id,
        ],
    );
    support::assert_exit(&output, 0);
    let label = format!("label=dockproof.run={run_id}");
    let containers = docker_ids(&["ps", "-aq", "--filter", &label]);
    let images = docker_ids(&["images", "-q", "--filter", &label]);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    // Remove them before asserting, so a failure leaves nothing behind.
    let removal: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("docker rm") || line.starts_with("docker rmi"))
        .collect();
    for command in &removal {
        let _ = Command::new("sh").args(["-c", command]).output();
    }
    // The setup container, the committed image, the test's container, the file test's.
    assert_eq!(
        containers.len(),
        3,
        "containers kept: {containers:?}\n{stderr}"
    );
    assert_eq!(images.len(), 1, "images kept: {images:?}\n{stderr}");
    assert_eq!(removal.len(), 2, "{stderr}");
    assert!(docker_ids(&["ps", "-aq", "--filter", &label]).is_empty());
    assert!(docker_ids(&["images", "-q", "--filter", &label]).is_empty());
}

/// `--runtime` reaches every container: the default runtime by name passes, an unknown
/// one is the daemon's refusal in every command test.
fn runtime_reaches_the_containers() {
    support::ensure_fixture_image("dockproof/job-runner:1").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = |runtime: &str| {
        cst_real_job_runner(
            dir.path(),
            &["--image", "dockproof/job-runner:1"],
            &["--runtime", runtime, "--output", "json"],
        )
    };
    let output = run("runc");
    support::assert_exit(&output, 0);
    let output = run("cstdrop-no-such-runtime");
    support::assert_exit(&output, 1);
    support::assert_stdout_contains(&output, "cstdrop-no-such-runtime");
}

/// `--driver tar --image PATH.tar` reads a `docker save` archive (no daemon image): the
/// file tests as with the daemon's image, every command test "error in setup" under its
/// bare name, as CST's tar driver.
fn tar_driver_reads_a_saved_archive() {
    let dir = tempfile::tempdir().unwrap();
    let archive = saved_job_runner(dir.path());
    let output = cst_real_job_runner(
        dir.path(),
        &["--driver", "tar", "--image", archive.to_str().unwrap()],
        &["--output", "json"],
    );
    support::assert_exit(&output, 1);
    let json = stdout_json(&output);
    let results = json["Results"].as_array().unwrap();
    let mut commands = 0;
    for result in results {
        let name = result["Name"].as_str().unwrap();
        let errors = result["Errors"].to_string();
        if errors.contains("Tar driver is unable to process commands") {
            commands += 1;
            assert!(!name.contains(": "), "a command test is named bare: {name}");
            assert!(errors.contains("error in setup: "), "{errors}");
        } else {
            assert_eq!(result["Pass"], true, "{result}");
        }
    }
    assert!(commands > 0 && commands < results.len(), "{json}");
}

/// `dockproof cst test` with the host driver: no daemon, no image (`DOCKER_HOST` names
/// nothing), `--metadata` for the configuration; `extra` after the common flags.
fn cst_host(dir: &Path, config: &Path, metadata: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(support::dockproof());
    command
        .current_dir(dir)
        .env(
            "DOCKER_HOST",
            "unix:///nonexistent/dockproof-host-driver.sock",
        )
        .env_remove("DOCKPROOF_HOST_DRIVER_TEST")
        .args([
            "cst",
            "test",
            "--no-history",
            "--driver",
            "host",
            "--metadata",
        ])
        .arg(metadata)
        .arg("--config")
        .arg(config)
        .arg("--work-dir")
        .arg(dir)
        .args(extra);
    command
}

/// The host driver (CST's `--driver host`): commands spawned here from their argv,
/// files read here, `--metadata` as the configuration, no daemon touched; CST's
/// confirmation unless `--force`; CST's argument checks.
fn host_driver_runs_the_tests_on_this_machine() {
    use std::os::unix::fs::PermissionsExt as _;
    let (dir, data) = support::temp_file("data", "hello\n");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o640)).unwrap();
    let config = support::root().join("fixtures/cst/oracle/host.yaml");
    // A second file: the environment CST's process keeps reaches it; a program that
    // cannot start fails its test (CST stops the whole run there).
    let second = write(
        dir.path(),
        "second.yaml",
        "schemaVersion: 2.0.0\ncommandTests:\n  - name: the first file's globals are still set\n    command: printenv\n    args: [DOCKPROOF_HOST_DRIVER_TEST]\n    expectedOutput: ['^global\\n$']\n  - name: no such program\n    command: no-such-program-dockproof-host\n",
    );
    let metadata = write(
        dir.path(),
        "metadata.json",
        r#"{"architecture":"amd64","config":{"Env":["FROM_METADATA=from-metadata"],"ExposedPorts":{"8080/tcp":{}}}}"#,
    );
    let output = cst_host(
        dir.path(),
        &config,
        &metadata,
        &["--force", "--output", "json", "--config"],
    )
    .arg(&second)
    .output()
    .unwrap();
    support::assert_exit(&output, 1);
    let json = stdout_json(&output);
    let verdicts: Vec<(String, bool)> = json["Results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|result| {
            (
                result["Name"].as_str().unwrap().to_owned(),
                result["Pass"].as_bool().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("Command Test: setup writes a file the command reads", true),
        (
            "Command Test: a test's envVars outlive it until the teardowns",
            true,
        ),
        (
            "Command Test: arguments are substituted from the metadata's Env only",
            true,
        ),
        (
            "Command Test: metadata env substitutes into arguments",
            true,
        ),
        ("Command Test: exit code", false),
        ("Command Test: stderr and excluded output", true),
        ("File Content Test: data content", true),
        (
            "File Content Test: $ is the end of the text, as in Go",
            false,
        ),
        ("File Content Test: data excluded", false),
        ("File Content Test: missing content", false),
        (
            "File Existence Test: teardown ran before the file tests",
            true,
        ),
        ("File Existence Test: data", true),
        ("File Existence Test: data wrong mode", false),
        ("File Existence Test: data is not executable", false),
        ("File Existence Test: missing", false),
        ("Metadata Test", true),
        ("Command Test: the first file's globals are still set", true),
        ("Command Test: no such program", false),
    ];
    let expected: Vec<(String, bool)> = expected
        .iter()
        .map(|(name, pass)| ((*name).to_owned(), *pass))
        .collect();
    assert_eq!(verdicts, expected, "{}", support::describe(&output));
    let text = json.to_string();
    assert!(text.contains("Expected: 4, Actual: 3"), "{text}");
    assert!(
        text.contains(
            "Error examining file in container: lstat nothing-here: no such file or directory"
        ),
        "{text}"
    );
    assert!(
        text.contains("error starting command: no-such-program-dockproof-host: "),
        "{text}"
    );
    assert!(!dir.path().join("made").exists(), "the teardown ran");
    // The warning went to stderr, not into the JSON.
    assert!(String::from_utf8_lossy(&output.stderr).contains("WARNING: Using the host driver"));

    // Without --force: CST's question; the end of stdin is a no.
    let output = cst_host(dir.path(), &config, &metadata, &[])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    support::assert_exit(&output, 1);
    support::assert_stderr_contains(&output, "aborted by user");
    assert!(output.stdout.is_empty() && !dir.path().join("made").exists());
    // A yes on stdin runs the tests.
    let mut child = cst_host(dir.path(), &config, &metadata, &["-q"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(b"yes\n").unwrap();
    }
    let output = child.wait_with_output().unwrap();
    support::assert_exit(&output, 1);
    assert!(!String::from_utf8_lossy(&output.stderr).contains("aborted"));

    // CST's argument checks.
    for (args, words) in [
        (
            &["cst", "test", "--driver", "host", "--config", "c.yaml"][..],
            "Please provide path to image metadata file",
        ),
        (
            &[
                "cst",
                "test",
                "--driver",
                "host",
                "--metadata",
                "m.json",
                "--image",
                "x",
                "--config",
                "c.yaml",
            ][..],
            "Cannot provide both image path and metadata file",
        ),
        (
            &[
                "cst",
                "test",
                "--metadata",
                "m.json",
                "--image",
                "x",
                "--config",
                "c.yaml",
            ][..],
            "Cannot provide both image path and metadata file",
        ),
    ] {
        let output = Command::new(support::dockproof())
            .current_dir(dir.path())
            .args(args)
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            support::describe(&output)
        );
        support::assert_stderr_contains(&output, words);
    }
    // A metadata file that is not an image configuration: named, before anything runs.
    let bad = write(dir.path(), "bad.json", "Env: [A=1]");
    let output = cst_host(dir.path(), &config, &bad, &["--force"])
        .output()
        .unwrap();
    support::assert_exit(&output, 2);
    support::assert_stderr_contains(&output, "bad.json: not JSON");
}

/// `--image-from-oci-layout DIR`: an OCI layout (made here from the fixture image's
/// `docker save`, gzip and plain layers) gives, with `--driver tar`, result by result,
/// the verdicts the same image's `docker save` archive gives; with the docker driver it
/// is loaded into the daemon under its reference (as CST does) and gives the image's.
fn oci_layout_with_the_tar_and_docker_drivers() {
    let dir = tempfile::tempdir().unwrap();
    let archive = saved_job_runner(dir.path());
    let layout = dir.path().join("layout");
    // The docker driver loads the layout under this name (removed at the end).
    let reference = format!("dockproof-test-oci/job-runner:{}", std::process::id());
    support::oci::layout_from_saved(&archive, &layout, &reference);
    let verdicts = |source: &[&str], code: i32| {
        let output = cst_real_job_runner(dir.path(), source, &["--output", "json"]);
        support::assert_exit(&output, code);
        let json = stdout_json(&output);
        json["Results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|result| {
                (
                    result["Name"].as_str().unwrap().to_owned(),
                    result["Pass"].as_bool().unwrap(),
                    result["Errors"]
                        .to_string()
                        .contains("Tar driver is unable to process commands"),
                )
            })
            .collect::<Vec<_>>()
    };
    let from_archive = verdicts(
        &["--driver", "tar", "--image", archive.to_str().unwrap()],
        1,
    );
    let from_layout = verdicts(
        &[
            "--driver",
            "tar",
            "--image-from-oci-layout",
            layout.to_str().unwrap(),
        ],
        1,
    );
    assert_eq!(from_layout, from_archive);
    assert!(
        from_layout.iter().any(|(_, pass, _)| *pass),
        "{from_layout:?}"
    );
    assert!(
        from_layout.iter().any(|(_, _, refused)| *refused),
        "{from_layout:?}"
    );
    let from_image = verdicts(&["--image", "dockproof/job-runner:1"], 0);
    let loaded = verdicts(&["--image-from-oci-layout", layout.to_str().unwrap()], 0);
    let removed = Command::new("docker")
        .args(["rmi", &reference])
        .output()
        .unwrap();
    assert_eq!(loaded, from_image);
    assert!(removed.status.success(), "{}", support::describe(&removed));

    // A layout whose manifest blob was altered is refused, naming the digest.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest = layout.join("blobs/sha256").join(&digest[7..]);
    let mut bytes = std::fs::read(&manifest).unwrap();
    bytes.push(b' ');
    std::fs::write(&manifest, bytes).unwrap();
    let output = cst_real_job_runner(
        dir.path(),
        &[
            "--driver",
            "tar",
            "--image-from-oci-layout",
            layout.to_str().unwrap(),
        ],
        &[],
    );
    support::assert_exit(&output, 1);
    support::assert_stdout_contains(&output, "does not match its descriptor");
    // The docker driver checks the layout before loading it: CST's fatal error, exit 1.
    let output = cst_real_job_runner(
        dir.path(),
        &["--image-from-oci-layout", layout.to_str().unwrap()],
        &[],
    );
    support::assert_exit(&output, 1);
    support::assert_stderr_contains(&output, "does not match its descriptor");
}

/// This file's trials, run by `suites/main.rs`.
pub fn trials() -> Vec<Trial> {
    let fake_tests: [(&str, fn()); 12] = [
        (
            "host::host_driver_runs_the_tests_on_this_machine",
            host_driver_runs_the_tests_on_this_machine,
        ),
        (
            "fake::cst_flags_refused_or_fatal_as_cst",
            cst_flags_refused_or_fatal_as_cst,
        ),
        (
            "fake::a_scenario_step_checks_its_cst_file_at_load_with_the_cst_line",
            a_scenario_step_checks_its_cst_file_at_load_with_the_cst_line,
        ),
        (
            "fake::runs_are_recorded_in_the_history_under_cst_names",
            runs_are_recorded_in_the_history_under_cst_names,
        ),
        (
            "fake::fixture_configs_pass_with_both_drivers_and_the_same_verdicts",
            fixture_configs_pass_on_the_fake_with_both_drivers_and_the_same_verdicts,
        ),
        (
            "fake::junit_has_cst_test_names_and_the_attributes_ci_consumers_need",
            junit_has_cst_test_names_and_the_attributes_ci_consumers_need,
        ),
        (
            "fake::a_failing_test_exits_1_with_cst_messages_and_its_line",
            a_failing_test_exits_1_with_cst_messages_and_its_line,
        ),
        (
            "fake::an_invalid_entry_fails_alone_with_its_line_and_the_rest_runs",
            an_invalid_entry_fails_alone_with_its_line_and_the_rest_runs,
        ),
        (
            "fake::a_config_without_tests_fails_as_cst_does",
            a_config_without_tests_fails_as_cst_does,
        ),
        (
            "fake::cst_command_line_and_report_formats",
            cst_command_line_and_report_formats,
        ),
        (
            "fake::a_json_config_ignores_unknown_keys_with_a_warning",
            a_json_config_ignores_unknown_keys_with_a_warning,
        ),
        (
            "fake::host_variables_pass_through_only_when_listed_and_set",
            host_variables_pass_through_only_when_listed_and_set,
        ),
    ];
    let mut trials: Vec<Trial> = fake_tests
        .into_iter()
        .map(|(name, test)| {
            Trial::test(name, move || {
                test();
                Ok(())
            })
            .with_kind("fake")
        })
        .collect();
    for (image, config) in FIXTURES {
        let stem = Path::new(config)
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        for (backend, driver) in [
            ("docker-cli", "docker"),
            ("docker-cli", "tar"),
            ("docker-api", "docker"),
        ] {
            trials.push(support::real_daemon_trial(
                format!("{backend}::{driver}::{stem}"),
                move || {
                    real_matches_fake(backend, driver, image, config);
                    Ok(())
                },
            ));
        }
    }
    let real_tests: [(&str, fn()); 4] = [
        (
            "docker-api::oci_layout_with_the_tar_and_docker_drivers",
            oci_layout_with_the_tar_and_docker_drivers,
        ),
        (
            "docker-api::save_keeps_containers_and_images_and_says_how_to_remove_them",
            save_keeps_containers_and_images_and_says_how_to_remove_them,
        ),
        (
            "docker-api::runtime_reaches_the_containers",
            runtime_reaches_the_containers,
        ),
        (
            "docker-api::tar_driver_reads_a_saved_archive",
            tar_driver_reads_a_saved_archive,
        ),
    ];
    for (name, test) in real_tests {
        trials.push(support::real_daemon_trial(name, move || {
            test();
            Ok(())
        }));
    }
    trials
}
