//! A reference recorded on a real daemon, replayed against fake-docker without one:
//! each case of `fixtures/conformance/recorded.json` is a list of docker argument
//! lists and what the real CLI answered to the last (exit code, stdout, stderr),
//! normalised (IDs, times, host ports). fake-docker must answer the same, byte for
//! byte after the same normalisation. This keeps what `cargo xtask conformance`
//! measured (issue 15: inspect documents, the CLI's typed view, `-t`, refusals) true
//! on machines without Docker.
//!
//! Re-record on a machine with the fixture images built (`cargo xtask conformance`
//! builds them): `FAKE_DOCKER_RECORD=1 cargo test -p fake-docker --test recorded`;
//! review the diff of the JSON file.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use regex::Regex;
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn recorded_path() -> PathBuf {
    root().join("fixtures/conformance/recorded.json")
}

/// The cases: (name, steps). Names of containers, networks and volumes start with
/// `fidelity-rec-` and containers carry the label `fidelity-rec`, for clean-up.
fn cases() -> Vec<(&'static str, Vec<Vec<&'static str>>)> {
    let job = "dockproof/job-runner:1";
    let web = "dockproof/web:1";
    vec![
        (
            "inspect-created-container",
            vec![
                vec![
                    "create",
                    "--name",
                    "fidelity-rec-1",
                    "--label",
                    "fidelity-rec=1",
                    job,
                    "echo",
                    "hi",
                ],
                vec!["inspect", "fidelity-rec-1"],
            ],
        ),
        (
            "inspect-exited-container",
            vec![
                vec![
                    "run",
                    "--name",
                    "fidelity-rec-2",
                    "--label",
                    "fidelity-rec=1",
                    "-e",
                    "A=b",
                    job,
                    "false",
                ],
                vec!["inspect", "fidelity-rec-2"],
            ],
        ),
        (
            "inspect-created-web-with-limits",
            vec![
                vec![
                    "create",
                    "--name",
                    "fidelity-rec-3",
                    "--label",
                    "fidelity-rec=1",
                    "-p",
                    "127.0.0.1::8080",
                    "--memory",
                    "64m",
                    "--read-only",
                    "--cap-drop",
                    "ALL",
                    web,
                ],
                vec!["inspect", "fidelity-rec-3"],
            ],
        ),
        (
            "image-inspect-job-runner",
            vec![vec!["image", "inspect", job]],
        ),
        ("image-inspect-web", vec![vec!["image", "inspect", web]]),
        (
            "typed-view-go-printing",
            vec![
                vec![
                    "create",
                    "--name",
                    "fidelity-rec-4",
                    "--label",
                    "fidelity-rec=1",
                    web,
                ],
                vec![
                    "inspect",
                    "--format",
                    "{{.State}}|{{.HostConfig.RestartPolicy}}|{{.Config.Entrypoint}}|{{.Config.ExposedPorts}}|{{.Config.Healthcheck}}|{{json .HostConfig}}|{{json .NetworkSettings}}",
                    "fidelity-rec-4",
                ],
            ],
        ),
        (
            "image-typed-config-and-raw-fallback",
            vec![vec![
                "image",
                "inspect",
                "--format",
                "{{json .Config}} {{.Config.Entrypoint}} {{.Config.Hostname}}",
                job,
            ]],
        ),
        (
            "image-typed-config",
            vec![vec![
                "image",
                "inspect",
                "--format",
                "{{.Config}}|{{json .Config}}",
                job,
            ]],
        ),
        (
            "run-tty-merges-stderr-with-crlf",
            vec![vec![
                "run",
                "--rm",
                "-t",
                "--label",
                "fidelity-rec=1",
                job,
                "cat",
                "/no/such/file",
            ]],
        ),
        (
            "network-inspect-none",
            vec![vec!["network", "inspect", "none"]],
        ),
        (
            "volume-inspect",
            vec![
                vec![
                    "volume",
                    "create",
                    "--label",
                    "fidelity-rec=1",
                    "fidelity-rec-5",
                ],
                vec!["volume", "inspect", "fidelity-rec-5"],
            ],
        ),
        ("tag-lowercase-rule", vec![vec!["tag", job, "UPPER:1"]]),
        (
            "restart-policy-refused-by-the-daemon",
            vec![vec![
                "create",
                "--label",
                "fidelity-rec=1",
                "--restart",
                "always:3",
                job,
                "true",
            ]],
        ),
        (
            "ps-field-the-context-lacks",
            vec![
                vec![
                    "create",
                    "--name",
                    "fidelity-rec-6",
                    "--label",
                    "fidelity-rec=1",
                    job,
                    "true",
                ],
                vec![
                    "ps",
                    "-a",
                    "--filter",
                    "label=fidelity-rec",
                    "--format",
                    "{{.Names}} {{.Nosuch}}",
                ],
            ],
        ),
        (
            "container-inspect-missing",
            vec![vec!["container", "inspect", "fidelity-rec-nosuch"]],
        ),
        (
            "inspect-missing-with-template",
            vec![vec![
                "inspect",
                "--format",
                "{{.Id}}",
                "fidelity-rec-nosuch",
            ]],
        ),
    ]
}

fn normalise(text: &str) -> String {
    let rules = [
        (r"sha256:[0-9a-f]{64}", "<image-id>"),
        (r"\b[0-9a-f]{64}\b", "<id>"),
        (r"\b[0-9a-f]{12}\b", "<short-id>"),
        (
            r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})",
            "<time>",
        ),
        (
            r#"(\d+\.\d+\.\d+\.\d+:|\]:|"HostPort":\s?"|HostPort:)\d{4,5}\b"#,
            "${1}<port>",
        ),
    ];
    let mut text = text.to_owned();
    for (pattern, replacement) in rules {
        let Ok(pattern) = Regex::new(pattern) else {
            panic!("bad normalisation pattern {pattern}");
        };
        text = pattern.replace_all(&text, replacement).into_owned();
    }
    text
}

/// Runs one step; (exit code, stdout, stderr).
fn run(program: &Path, args: &[&str], envs: &[(&str, &Path)]) -> (i32, String, String) {
    let output = Command::new(program)
        .args(args)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_os_str())))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs a case's steps; the normalised answer to the last.
fn answer(program: &Path, steps: &[Vec<&str>], envs: &[(&str, &Path)]) -> Value {
    let mut last = (0, String::new(), String::new());
    for step in steps {
        last = run(program, step, envs);
    }
    json!({ "exit": last.0, "stdout": normalise(&last.1), "stderr": normalise(&last.2) })
}

fn clean_real() {
    let docker = Path::new("docker");
    let (_, listed, _) = run(
        docker,
        &["ps", "-aq", "--filter", "label=fidelity-rec"],
        &[],
    );
    let ids: Vec<&str> = listed.split_whitespace().collect();
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(ids);
        run(docker, &args, &[]);
    }
    run(docker, &["volume", "rm", "fidelity-rec-5"], &[]);
}

#[test]
fn fake_docker_answers_like_the_recorded_real_cli() {
    let cases = cases();
    if std::env::var_os("FAKE_DOCKER_RECORD").is_some() {
        let mut recorded = serde_json::Map::new();
        for (name, steps) in &cases {
            clean_real();
            recorded.insert(
                (*name).to_string(),
                json!({ "steps": steps, "real": answer(Path::new("docker"), steps, &[]) }),
            );
        }
        clean_real();
        let text = serde_json::to_string_pretty(&Value::Object(recorded))
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(recorded_path(), text + "\n").unwrap_or_else(|e| panic!("{e}"));
    }
    let text = std::fs::read_to_string(recorded_path())
        .unwrap_or_else(|e| panic!("{}: {e}", recorded_path().display()));
    let recorded: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let fake = PathBuf::from(env!("CARGO_BIN_EXE_fake-docker"));
    let images = root().join("fixtures/fake-images");
    let mut differing = Vec::new();
    for (name, steps) in &cases {
        let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let envs = [
            ("FAKE_DOCKER_STATE", state.path()),
            ("FAKE_DOCKER_IMAGES", images.as_path()),
        ];
        let got = answer(&fake, steps, &envs);
        let Some(expected) = recorded.get(*name).map(|case| &case["real"]) else {
            differing.push(format!(
                "{name}: not recorded (run with FAKE_DOCKER_RECORD=1)"
            ));
            continue;
        };
        if got != *expected {
            differing.push(format!("{name}:\n  real: {expected}\n  fake: {got}"));
        }
    }
    assert!(
        differing.is_empty(),
        "fake-docker differs from the recorded real CLI:\n{}",
        differing.join("\n")
    );
}
