//! `dockproof cst`: container-structure-test files run unchanged, on the fake
//! and (when a daemon answers) on real Docker, with identical verdicts.

use crate::support;
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
    let mut command = Command::new(support::dockproof());
    command
        .current_dir(support::root())
        .env_remove("FAKE_DOCKER_STATE")
        .args(["cst", "--no-history", "--backend", backend])
        .arg("--fake-docker")
        .arg(support::fake_docker())
        .arg("--fake-images")
        .arg(support::root().join("fixtures/fake-images"))
        .arg("--fixture-images")
        .arg(support::root().join("fixtures/images"))
        .arg("--work-dir")
        .arg(work_dir);
    command
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// (test name, passed) per JUnit test case, in report order.
fn verdicts(junit: &Path) -> Vec<(String, bool)> {
    let text = std::fs::read_to_string(junit).unwrap();
    let document = roxmltree::Document::parse(&text).unwrap();
    document
        .descendants()
        .filter(|node| node.has_tag_name("testcase"))
        .map(|case| {
            (
                case.attribute("name").unwrap_or_default().to_owned(),
                !case.children().any(|child| child.has_tag_name("failure")),
            )
        })
        .collect()
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
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        support::describe(&output)
    );
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
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "failing.yaml",
        "schemaVersion: 2.0.0\ncommandTests:\n  - name: wrong output\n    command: echo\n    args: [a]\n    expectedOutput: [b]\n    exitCode: 2\nfileExistenceTests:\n  - name: absent\n    path: /nope\nmetadataTest:\n  exposedPorts: [\"8080\"]\n",
    );
    let output = cst("fake", dir.path())
        .args(["--image", "dockproof/job-runner:1"])
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        support::describe(&output)
    );
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
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
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
    let output = cst("fake", dir.path())
        .args(["--image", "dockproof/job-runner:1", "--junit"])
        .arg(&junit)
        .arg(&config)
        .arg(&unreadable)
        .arg(&nulls)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        support::describe(&output)
    );
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
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "empty.yaml",
        "schemaVersion: 2.0.0\nfileExistenceTests:\n",
    );
    let junit = dir.path().join("junit.xml");
    let output = cst("fake", dir.path())
        .args(["--image", "dockproof/job-runner:1", "--junit"])
        .arg(&junit)
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        support::describe(&output)
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("No tests run! Check config file format."),
        "{}",
        support::describe(&output)
    );
    assert!(junit.exists(), "JUnit is always written");
}

fn a_json_config_ignores_unknown_keys_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "lenient.json",
        r#"{"schemaVersion": "2.0.0", "extra": 1, "fileExistenceTests": [{"name": "sh", "path": "/bin/sh", "colour": "red"}]}"#,
    );
    let output = cst("fake", dir.path())
        .args(["--image", "dockproof/job-runner:1"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        support::describe(&output)
    );
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
    let dir = tempfile::tempdir().unwrap();
    let failing = write(
        dir.path(),
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
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        support::describe(&output)
    );
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
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        support::describe(&output)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}", support::describe(&output)));
    assert_eq!(json["Pass"], 0);
    assert_eq!(json["Fail"], 1);
    assert_eq!(json["Total"], 1);
    assert_eq!(json["Results"][0]["Name"], "Command Test: two errors");
    assert_eq!(
        json["Results"][0]["Errors"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(json["Results"][0]["Stdout"], "a<b\n");
    let output = cst_test_command(dir.path())
        .args([
            "-i",
            "dockproof/job-runner:1",
            "-q",
            "-o",
            "junit",
            "--junit-suite-name",
            "mine",
            "-c",
        ])
        .arg(&failing)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty(), "{}", support::describe(&output));
    let output = cst_test_command(dir.path())
        .args([
            "-i",
            "dockproof/job-runner:1",
            "-o",
            "junit",
            "--junit-suite-name",
            "mine",
            "-c",
        ])
        .arg(&failing)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&output.stdout).contains(r#"<testsuite name="mine">"#),
        "{}",
        support::describe(&output)
    );
    // No config at all is a usage error.
    let output = cst_test_command(dir.path())
        .args(["-i", "dockproof/job-runner:1"])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        support::describe(&output)
    );
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
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        support::describe(&output)
    );
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
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        support::describe(&output)
    );
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
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
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
            &["--driver", "host", "--metadata", "m.json", "--force"][..],
            2,
            "has no host driver",
        ),
        (
            &["--image-from-oci-layout", "/nonexistent"][..],
            2,
            "cannot read an OCI layout",
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
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        support::describe(&output)
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("is not a file"),
        "{}",
        support::describe(&output)
    );
    // The image's own platform passes.
    let output = run(&["--platform", "linux/amd64"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        support::describe(&output)
    );
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
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
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
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        support::describe(&output)
    );
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
    let config = support::root().join("fixtures/cst/job-runner.yaml");
    let run = |runtime: &str| {
        cst_real(
            dir.path(),
            &[
                "--image",
                "dockproof/job-runner:1",
                "--config",
                config.to_str().unwrap(),
                "--runtime",
                runtime,
                "--output",
                "json",
            ],
        )
    };
    let output = run("runc");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        support::describe(&output)
    );
    let output = run("cstdrop-no-such-runtime");
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        support::describe(&output)
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("cstdrop-no-such-runtime"),
        "{}",
        support::describe(&output)
    );
}

/// `--driver tar --image PATH.tar` reads a `docker save` archive (no daemon image): the
/// file tests as with the daemon's image, every command test "error in setup" under its
/// bare name, as CST's tar driver.
fn tar_driver_reads_a_saved_archive() {
    support::ensure_fixture_image("dockproof/job-runner:1").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("job-runner.tar");
    let saved = Command::new("docker")
        .args(["save", "-o"])
        .arg(&archive)
        .arg("dockproof/job-runner:1")
        .output()
        .unwrap();
    assert!(saved.status.success(), "{}", support::describe(&saved));
    let config = support::root().join("fixtures/cst/job-runner.yaml");
    let output = cst_real(
        dir.path(),
        &[
            "--driver",
            "tar",
            "--image",
            archive.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--output",
            "json",
        ],
    );
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        support::describe(&output)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}", support::describe(&output)));
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

/// This file's trials, run by `suites/main.rs`.
pub fn trials() -> Vec<Trial> {
    let fake_tests: [(&str, fn()); 11] = [
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
    let real_tests: [(&str, fn()); 3] = [
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
