//! CI output is inert (issue 13, item 6): under `GITHUB_ACTIONS=true`, nothing a
//! container prints or a scenario file holds may reach dockproof's stdout or stderr
//! as a workflow command. The only lines that begin with `::` are dockproof's own
//! `::error file=…`/`::error title=…` annotations, and no line holds `##[`.

use std::path::{Path, PathBuf};
use std::process::Command;

mod support;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A CST command test whose container prints workflow commands, and fails.
const HOSTILE_CST: &str = r#"schemaVersion: 2.0.0
commandTests:
  - name: "prints commands ##[warning]name"
    command: echo
    args: ["ok\n::error::pwned\n  ::warning file=x.rs,line=1::also\n\u00ad::notice::soft hyphen\nsee ##[error]legacy"]
    expectedOutput: ["goodbye"]
"#;

fn cst(dir: &Path, config: &Path, github_actions: bool) -> std::process::Output {
    let mut command = Command::new(support::dockproof());
    command
        .current_dir(support::root())
        .env_remove("FAKE_DOCKER_STATE")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_STEP_SUMMARY")
        .args(["cst", "--no-history", "--backend", "fake"])
        .arg("--fake-docker")
        .arg(support::fake_docker())
        .arg("--fake-images")
        .arg(support::root().join("fixtures/fake-images"))
        .arg("--work-dir")
        .arg(dir)
        .args(["--image", "dockproof/job-runner:1"])
        .arg(config);
    if github_actions {
        command.env("GITHUB_ACTIONS", "true");
    }
    command.output().expect("dockproof runs")
}

/// Lines the Actions runner would act on: `::` after leading whitespace (ignoring
/// the characters its comparison skips), or `##[` anywhere.
fn command_lines(text: &str) -> Vec<String> {
    text.split(['\n', '\r'])
        .filter(|line| {
            let visible: String = line
                .chars()
                .filter(|character| !matches!(character, '\u{AD}' | '\u{200B}'..='\u{200F}'))
                .collect();
            visible.trim_start().starts_with("::") || visible.contains("##[")
        })
        .map(str::to_owned)
        .collect()
}

/// dockproof's own annotation: `::error` with properties, one line.
fn is_own_annotation(line: &str) -> bool {
    line.starts_with("::error file=") || line.starts_with("::error title=")
}

#[test]
fn container_output_in_a_cst_failure_issues_no_workflow_command() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "hostile.yaml", HOSTILE_CST);

    // Outside GitHub Actions the output is shown as it is: the test can see the attack.
    let plain = cst(dir.path(), &config, false);
    assert_eq!(
        plain.status.code(),
        Some(1),
        "{}",
        support::describe(&plain)
    );
    let stdout = String::from_utf8_lossy(&plain.stdout);
    assert!(
        command_lines(&stdout)
            .iter()
            .any(|line| line.trim_start() == "::error::pwned"),
        "the container's line is not in the plain output, so this test proves nothing:\n{stdout}"
    );

    let ci = cst(dir.path(), &config, true);
    assert_eq!(ci.status.code(), Some(1), "{}", support::describe(&ci));
    let stdout = String::from_utf8_lossy(&ci.stdout);
    let stderr = String::from_utf8_lossy(&ci.stderr);
    let mut own = 0;
    for line in command_lines(&stdout).iter().chain(&command_lines(&stderr)) {
        assert!(
            is_own_annotation(line),
            "a line the runner would act on: {line:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        );
        assert!(!line.contains("##["), "{line:?}");
        own += 1;
    }
    assert!(own >= 1, "dockproof's own annotation is missing:\n{stdout}");
    // The text is still there to read, defused.
    assert!(stdout.contains("|     ::error::pwned"), "{stdout}");
    assert!(stdout.contains("see # #[error]legacy"), "{stdout}");
}

#[test]
fn scenario_names_and_run_output_issue_no_workflow_command() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = write(
        dir.path(),
        "hostile.yaml",
        "name: \"x ##[error]name\"\nsteps:\n  - run:\n      image: dockproof/job-runner:1\n      env: { JOB_ID: \"1\\n::error::pwned\\n##[warning]w\" }\n    expect:\n      stdout: { contains: goodbye }\n",
    );
    let summary = dir.path().join("summary.md");
    let mut command = support::dockproof_fake(dir.path());
    command
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .arg(&scenario);
    let output = command.output().expect("dockproof runs");
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        support::describe(&output)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stdout.contains("::error::pwned"),
        "the job's output is not shown:\n{stdout}"
    );
    for line in command_lines(&stdout).iter().chain(&command_lines(&stderr)) {
        assert!(
            is_own_annotation(line) && !line.contains("##["),
            "a line the runner would act on: {line:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        );
    }
    let summary = std::fs::read_to_string(&summary).unwrap();
    assert!(!summary.contains("##["), "{summary}");
    assert!(summary.contains("x \\#\\#\\[error\\]name"), "{summary}");
}
