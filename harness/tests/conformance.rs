//! The differential conformance suite: every case of
//! `fixtures/conformance/cases.yaml` runs against fake-docker and against the
//! real docker CLI, each from a fresh state holding only the fixture image,
//! and must give the same exit code, stdout and first line of stderr (after
//! normalising IDs, timestamps, ages and sizes). One test per case; they need
//! a daemon, so they are ignored without one unless DOCKPROOF_REQUIRE_DOCKER=1.
//! `cargo xtask conformance` runs them with the daemon required.

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed};
use regex::Regex;
use serde_json::Value;

const IMAGE: &str = "dockproof/job-runner:1";
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
struct Step {
    args: Vec<String>,
    compare: Vec<String>,
    sort: bool,
}

#[derive(Debug, Clone)]
struct Case {
    name: String,
    steps: Vec<Step>,
}

/// One docker-compatible program and the environment it runs in.
struct Side {
    label: &'static str,
    program: PathBuf,
    env: Vec<(String, String)>,
}

#[derive(Debug, PartialEq)]
struct Observed {
    exit: Option<i32>,
    stdout: String,
    stderr: String,
}

fn load_cases() -> Vec<Case> {
    let path = support::root().join("fixtures/conformance/cases.yaml");
    let text = std::fs::read_to_string(&path).expect("the conformance table exists");
    let document = dockproof::scenario::yaml::parse(&text)
        .expect("the conformance table is valid YAML")
        .value;
    let strings = |value: &Value| -> Vec<String> {
        value
            .as_array()
            .into_iter()
            .flatten()
            .map(|item| {
                item.as_str()
                    .map_or_else(|| item.to_string(), str::to_owned)
            })
            .collect()
    };
    document["cases"]
        .as_array()
        .expect("`cases` is a list")
        .iter()
        .map(|case| Case {
            name: case["name"]
                .as_str()
                .expect("every case has a name")
                .to_owned(),
            steps: case["steps"]
                .as_array()
                .expect("every case has steps")
                .iter()
                .map(|step| Step {
                    args: strings(&step["args"]),
                    compare: if step.get("compare").is_some() {
                        strings(&step["compare"])
                    } else {
                        vec!["exit".into(), "stdout".into(), "stderr".into()]
                    },
                    sort: step["sort"].as_bool().unwrap_or(false),
                })
                .collect(),
        })
        .collect()
}

fn substitute(arg: &str, case: &str) -> String {
    arg.replace("{image}", IMAGE)
        .replace("{name2}", &format!("dpconf-{case}-2"))
        .replace("{name}", &format!("dpconf-{case}"))
        .replace("{label}", &format!("dockproof.conformance={case}"))
}

fn run(side: &Side, args: &[String]) -> Result<Observed, String> {
    let mut child = Command::new(&side.program)
        .args(args)
        .envs(side.env.iter().map(|(key, value)| (key, value)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("cannot run {}: {error}", side.program.display()))?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() > STEP_TIMEOUT => {
                let _ = child.kill();
                return Err(format!(
                    "{} {args:?} did not finish within {STEP_TIMEOUT:?}",
                    side.label
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(error) => return Err(error.to_string()),
        }
    }
    let output = child
        .wait_with_output()
        .map_err(|error| error.to_string())?;
    Ok(Observed {
        exit: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// Replace what legitimately differs between two daemons: IDs, times, ages, sizes.
fn normalise(text: &str) -> String {
    static RULES: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    let rules = RULES.get_or_init(|| {
        [
            (r"sha256:[0-9a-f]{64}", "<image-id>"),
            (r"\b[0-9a-f]{64}\b", "<id>"),
            (r"\b[0-9a-f]{12}\b", "<short-id>"),
            (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", "<time>"),
            (r"(Less than a second|About a minute|About an hour|\d+ (seconds?|minutes?|hours?|days?))( ago)?", "<age>"),
            (r"\b\d+(\.\d+)?\s?(B|kB|KB|MB|GB|KiB|MiB|GiB)\b", "<size>"),
        ]
        .into_iter()
        .map(|(pattern, replacement)| (Regex::new(pattern).expect("valid normalisation pattern"), replacement))
        .collect()
    });
    let mut text = text.to_owned();
    for (pattern, replacement) in rules {
        text = pattern.replace_all(&text, *replacement).into_owned();
    }
    text
}

fn project(observed: &Observed, step: &Step) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    for field in &step.compare {
        let value = match field.as_str() {
            "exit" => format!("{:?}", observed.exit),
            "stdout" => {
                let text = normalise(&observed.stdout);
                if step.sort {
                    let mut lines: Vec<&str> = text.lines().collect();
                    lines.sort_unstable();
                    lines.join("\n")
                } else {
                    text
                }
            }
            "stderr" => normalise(observed.stderr.lines().next().unwrap_or_default()),
            other => format!("<unknown field {other}>"),
        };
        fields.push((field.clone(), value));
    }
    fields
}

fn cleanup(side: &Side, case: &str) {
    let label = format!("label=dockproof.conformance={case}");
    if let Ok(listed) = run(side, &["ps".into(), "-aq".into(), "--filter".into(), label]) {
        let ids: Vec<String> = listed
            .stdout
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if !ids.is_empty() {
            let mut args = vec!["rm".to_owned(), "-f".to_owned()];
            args.extend(ids);
            let _ = run(side, &args);
        }
    }
}

fn run_case(case: &Case, real: &Side, fake: &Side) -> Result<(), Failed> {
    let mut mismatches = Vec::new();
    for (index, step) in case.steps.iter().enumerate() {
        let args: Vec<String> = step
            .args
            .iter()
            .map(|arg| substitute(arg, &case.name))
            .collect();
        let real_seen = run(real, &args)?;
        let fake_seen = run(fake, &args)?;
        let (real_fields, fake_fields) = (project(&real_seen, step), project(&fake_seen, step));
        for ((field, real_value), (_, fake_value)) in real_fields.iter().zip(&fake_fields) {
            if real_value != fake_value {
                mismatches.push(format!(
                    "step {} `docker {}`: {field} differs\n  real: {real_value:?}\n  fake: {fake_value:?}",
                    index + 1,
                    args.join(" ")
                ));
            }
        }
    }
    if mismatches.is_empty() {
        Ok(())
    } else {
        Err(mismatches.join("\n").into())
    }
}

/// Build the real fixture image once (the fake defines it in YAML).
fn prepare_real_image() -> Result<(), String> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    READY
        .get_or_init(|| support::ensure_fixture_image(IMAGE))
        .clone()
}

fn main() {
    let args = Arguments::from_args();
    let ignored = support::docker_available().is_err() && !support::docker_required();
    let real = Arc::new(Side {
        label: "docker",
        program: "docker".into(),
        env: Vec::new(),
    });
    let fake_program = if ignored {
        PathBuf::from("fake-docker")
    } else {
        support::fake_docker()
    };
    let trials = load_cases()
        .into_iter()
        .map(|case| {
            let (real, fake_program) = (Arc::clone(&real), fake_program.clone());
            support::real_daemon_trial(format!("conformance::{}", case.name), move || {
                prepare_real_image()?;
                let state = tempfile::tempdir().map_err(|error| error.to_string())?;
                let fake = Side {
                    label: "fake-docker",
                    program: fake_program,
                    env: vec![
                        (
                            "FAKE_DOCKER_STATE".into(),
                            state.path().display().to_string(),
                        ),
                        (
                            "FAKE_DOCKER_IMAGES".into(),
                            support::root()
                                .join("fixtures/fake-images")
                                .display()
                                .to_string(),
                        ),
                    ],
                };
                let result = run_case(&case, &real, &fake);
                cleanup(&real, &case.name);
                cleanup(&fake, &case.name);
                result
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
