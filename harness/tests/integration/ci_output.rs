//! CI output is inert (issue 13, item 6): under `GITHUB_ACTIONS=true`, nothing a
//! container prints or a scenario file holds may reach dockproof's stdout or stderr
//! as a workflow command. The only lines that begin with `::` are dockproof's own
//! `::error file=…`/`::error title=…` annotations, and no line holds `##[`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support;

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

/// Every `print!`/`println!`/`eprint!`/`eprintln!` in the harness's code outside tests,
/// as `(file, the call with its whitespace runs made single spaces)`. Calls through `inert_println!`,
/// `inert_eprintln!` or `report::inert` are not listed (they are inert).
fn raw_prints() -> Vec<(String, String)> {
    let root = support::root().join("harness/src");
    let mut found = Vec::new();
    let mut pending = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if path.extension().is_none_or(|ext| ext != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // Test modules sit at the end of a file.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            let file = path.strip_prefix(&root).unwrap().display().to_string();
            let bytes = code.as_bytes();
            let mut at = 0;
            // The next `print…` or `out!(` (the command line's `println!`).
            let next = |from: usize| match (code[from..].find("print"), code[from..].find("out!("))
            {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            while let Some(offset) = next(at) {
                let start = at + offset;
                at = start + 3;
                let macro_start = if code[..start].ends_with('e') {
                    start - 1
                } else {
                    start
                };
                let before = code[..macro_start].chars().next_back().unwrap_or(' ');
                if before.is_alphanumeric() || before == '_' {
                    // `inert_println!`, `writeln!`, `sprint…`: not a raw print.
                    continue;
                }
                let name_end = start
                    + code[start..]
                        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .unwrap_or(0);
                // `out!` is the command line's `println!` that survives a closed stdout.
                if !matches!(&code[start..name_end], "print" | "println" | "out")
                    || !code[name_end..].starts_with("!(")
                {
                    continue;
                }
                // The call up to its closing parenthesis (strings with parentheses are rare
                // enough in these calls to count them as code).
                let mut depth = 0;
                let mut end = name_end + 1;
                for (index, byte) in bytes.iter().enumerate().skip(name_end + 1) {
                    match byte {
                        b'(' => depth += 1,
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                end = index + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                let call = code[macro_start..end]
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                if call.contains("inert::text(") {
                    continue;
                }
                found.push((file.clone(), call));
            }
        }
    }
    found.sort();
    found
}

/// Prints that carry no text a container, a daemon, a scenario or a user can choose:
/// constants, counts and dockproof's own annotations. Anything else must go through
/// `dockproof::inert_println!`/`inert_eprintln!` (or `report::inert`).
const ALLOWED_PRINTS: &[(&str, &str)] = &[
    // Counts and constant text.
    (
        "cst_cli.rs",
        r#"eprintln!( "WARNING: Using the host driver runs tests directly on the machine\nthat this binary is being run on, and can potentially corrupt your system.\nBe sure you know what you're doing before continuing!\n\nContinue? (y/n)" )"#,
    ),
    ("cst_cli.rs", r#"eprintln!("Forcing test run!")"#),
    (
        "cst_cli.rs",
        r#"eprintln!("Please type yes or no to continue or exit")"#,
    ),
    (
        "cst_cli.rs",
        r#"eprintln!("error reading input from stdin (pass --force to run without asking)")"#,
    ),
    ("cst_cli.rs", r#"eprintln!("error: aborted by user")"#),
    (
        "cst_cli.rs",
        r#"eprintln!( "warning: removed {} container(s) that tests left behind", outcome.swept )"#,
    ),
    (
        "cst_cli.rs",
        r#"out!("No tests run! Check config file format.")"#,
    ),
    (
        "cst_cli.rs",
        r#"eprintln!("error: {refused} problem(s) in CST files; nothing was run")"#,
    ),
    (
        "cst_cli.rs",
        r#"out!("{}", report::console::summary_line(&outcome))"#,
    ),
    (
        "fleet.rs",
        r#"out!( "canary: {} scenario(s) × {} repeat(s) on {} host(s)", scenarios.len(), args.repeat, hosts.len() )"#,
    ),
    ("fleet.rs", r#"out!("GO: every host met the gates")"#),
    (
        "main.rs",
        r#"eprintln!("error: cannot start the async runtime: {error}")"#,
    ),
    (
        "main.rs",
        r#"eprintln!("error: no history database: pass --db PATH or set DOCKPROOF_HISTORY")"#,
    ),
    (
        "main.rs",
        r#"eprintln!("error: {problems} problem(s) in scenario files; nothing was run")"#,
    ),
    (
        "main.rs",
        r#"out!( "{verb} {} container(s) and {} director(ies)", report.containers.len(), report.directories.len() )"#,
    ),
    (
        "main.rs",
        r#"out!("{}", text.expect("the schema serialises"))"#,
    ),
    (
        "main.rs",
        r#"out!("{title:<width$} runs passed success last flaky")"#,
    ),
    (
        "main.rs",
        r#"out!("{} scenario file(s) valid", loaded.len())"#,
    ),
    ("main.rs", r#"out!()"#),
    (
        "run.rs",
        r#"eprintln!( "dockproof: stopping without cleanup; run `docker ps -a --filter label=dockproof.run` to find leftovers" )"#,
    ),
    (
        "run.rs",
        r#"eprintln!("dockproof: interrupted, cleaning up (press Ctrl-C again to stop at once)")"#,
    ),
    (
        "setup.rs",
        r#"out!( "{} in {}", finished.summary_line(), dockproof::report::console::short_duration(finished.elapsed) )"#,
    ),
    (
        "main.rs",
        r#"eprintln!( "error: `dockproof record` needs a real daemon: pass --backend docker-cli or --backend docker-api (the fake replays recordings, it cannot make them)\n = hint: DOCKPROOF_BACKEND=docker-cli dockproof record SCENARIOS" )"#,
    ),
    (
        "main.rs",
        r#"eprintln!( "error: `dockproof record` runs on one daemon: use --backend/DOCKER_HOST (or --context) instead of --host" )"#,
    ),
    // dockproof's own `::error` annotations (`report::github`, which encodes their text).
    ("setup.rs", r#"out!("{line}")"#),
];

#[test]
fn every_print_of_the_harness_is_inert_or_carries_no_outside_text() {
    let unexpected: Vec<String> = raw_prints()
        .into_iter()
        .filter(|(file, call)| !ALLOWED_PRINTS.contains(&(file.as_str(), call.as_str())))
        .map(|(file, call)| format!("(\"{file}\", r#\"{call}\"#),"))
        .collect();
    assert!(
        unexpected.is_empty(),
        "these prints are not made inert under GitHub Actions; use \
         `dockproof::inert_println!`/`inert_eprintln!`, or, if they carry no outside \
         text, add them to ALLOWED_PRINTS:\n{}",
        unexpected.join("\n")
    );
}

/// Run `command` with and without `GITHUB_ACTIONS=true`: without, `marker` must reach the
/// output at the start of a line (so the path is really taken); with, no line may be a
/// workflow command except dockproof's own annotations, and the marker is still shown.
fn assert_inert(what: &str, make: &dyn Fn() -> Command, marker: &str) {
    let plain = make()
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .expect("dockproof runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&plain.stdout),
        String::from_utf8_lossy(&plain.stderr)
    );
    assert!(
        command_lines(&text)
            .iter()
            .any(|line| line.trim_start().starts_with(marker)),
        "{what}: `{marker}` does not start a line without GITHUB_ACTIONS, so this case proves nothing:\n{text}"
    );
    let ci = make()
        .env("GITHUB_ACTIONS", "true")
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .expect("dockproof runs");
    assert_eq!(ci.status.code(), plain.status.code(), "{what}");
    let stdout = String::from_utf8_lossy(&ci.stdout);
    let stderr = String::from_utf8_lossy(&ci.stderr);
    for line in command_lines(&stdout).iter().chain(&command_lines(&stderr)) {
        assert!(
            is_own_annotation(line),
            "{what}: a line the runner would act on: {line:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        );
    }
    assert!(
        format!("{stdout}{stderr}").contains(&format!("|{marker}")),
        "{what}: the hostile text is not shown defused:\n{stdout}\n{stderr}"
    );
}

/// Names, paths and daemon messages reaching the warning and error lines of every
/// command (history, hash, report writing, cst's backend errors) are inert too.
#[test]
fn hostile_names_paths_and_daemon_messages_on_warning_paths_issue_no_workflow_command() {
    let dir = tempfile::tempdir().unwrap();

    // A scenario name recorded in the history, printed by `dockproof history`.
    let db = dir.path().join("history.db");
    let scenario = write(
        dir.path(),
        "named.yaml",
        "name: \"::error::pwned-history\"\nsteps:\n  - run:\n      image: dockproof/job-runner:1\n    expect:\n      stdout: { contains: goodbye }\n",
    );
    let recorded = support::dockproof_fake(dir.path())
        .env("DOCKPROOF_HISTORY", &db)
        .arg(&scenario)
        .output()
        .unwrap();
    assert_eq!(
        recorded.status.code(),
        Some(1),
        "{}",
        support::describe(&recorded)
    );
    assert_inert(
        "history table",
        &|| {
            let mut command = Command::new(support::dockproof());
            command.args(["history", "--db"]).arg(&db);
            command
        },
        "::error::pwned-history",
    );

    // A history database path that does not exist.
    assert_inert(
        "history path",
        &|| {
            let mut command = Command::new(support::dockproof());
            command
                .args(["history", "--db"])
                .arg(dir.path().join("x\n::error::pwned-db"));
            command
        },
        "::error::pwned-db",
    );

    // A file name printed by `dockproof hash`, read or not.
    let hashed = write(dir.path(), "a\n::error::pwned-hash", "x");
    assert_inert(
        "hash",
        &|| {
            let mut command = Command::new(support::dockproof());
            command
                .arg("hash")
                .arg(&hashed)
                .arg(dir.path().join("b\n::error::pwned-missing"));
            command
        },
        "::error::pwned-hash",
    );

    // A report path that cannot be written (its parent is a file).
    let blocker = write(dir.path(), "blocker", "");
    assert_inert(
        "report path",
        &|| {
            let mut command = support::dockproof_fake(dir.path());
            command
                .arg("--junit")
                .arg(blocker.join("\n::error::pwned-junit/j.xml"))
                .arg(&scenario);
            command
        },
        "::error::pwned-junit",
    );

    // An image name quoted back by the (fake) daemon in `dockproof cst`'s error line.
    let config = write(
        dir.path(),
        "cst.yaml",
        "schemaVersion: 2.0.0\nfileExistenceTests:\n  - name: sh\n    path: /bin/sh\n",
    );
    assert_inert(
        "cst daemon message",
        &|| {
            let mut command = Command::new(support::dockproof());
            command
                .current_dir(support::root())
                .env_remove("FAKE_DOCKER_STATE")
                .args(["cst", "--no-history", "--backend", "fake"])
                .arg("--fake-docker")
                .arg(support::fake_docker())
                .arg("--fake-images")
                .arg(support::root().join("fixtures/fake-images"))
                .arg("--work-dir")
                .arg(dir.path())
                .args(["--image", "nothing:1\n::error::pwned-image"])
                .arg(&config);
            command
        },
        "::error::pwned-image",
    );
}
