//! The differential conformance suite: every case of
//! `fixtures/conformance/cases.yaml` runs against fake-docker and against the
//! real docker CLI, each from a fresh state holding only the fixture image,
//! and must give the same exit code, stdout and stderr (after normalising IDs,
//! timestamps, ages, sizes and host ports). One test per case; they need
//! a daemon, so they are ignored without one unless DOCKPROOF_REQUIRE_DOCKER=1.
//! `cargo xtask conformance` runs them with the daemon required.
//!
//! Each case ends with an outcome: `identical` (every compared field equal),
//! `same-shape` (same exit codes and stdout line counts), `unsupported` (fake-docker
//! refused with its reason: "fake-docker does not model …" or "fake image … has no
//! program …") or `different`. A case fails when it does worse than its entry in
//! `fixtures/conformance/baseline.yaml` (or has none); `UPDATE_EXPECT=1` rewrites the
//! baseline from this run. The run ends by printing the fidelity figure.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed};
use regex::Regex;
use serde_json::Value;

const IMAGE: &str = "dockproof/job-runner:1";
const WEB: &str = "dockproof/web:1";
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
struct Step {
    args: Vec<String>,
    compare: Vec<String>,
    sort: bool,
    env: Vec<(String, String)>,
}

/// How close the fake came to the real CLI on a case, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fidelity {
    Identical,
    SameShape,
    Unsupported,
    Different,
}

impl Fidelity {
    fn as_str(self) -> &'static str {
        match self {
            Fidelity::Identical => "identical",
            Fidelity::SameShape => "same-shape",
            Fidelity::Unsupported => "unsupported",
            Fidelity::Different => "different",
        }
    }

    fn parse(text: &str) -> Option<Fidelity> {
        [
            Fidelity::Identical,
            Fidelity::SameShape,
            Fidelity::Unsupported,
            Fidelity::Different,
        ]
        .into_iter()
        .find(|f| f.as_str() == text)
    }
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
    /// Wall time in whole seconds, rounded down.
    seconds: u64,
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
                    env: step["env"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(key, value)| {
                            (key.clone(), value.as_str().unwrap_or_default().to_owned())
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect()
}

fn substitute(arg: &str, case: &str) -> String {
    arg.replace("{image}", IMAGE)
        .replace("{web}", WEB)
        .replace("{name2}", &format!("dpconf-{case}-2"))
        .replace("{name}", &format!("dpconf-{case}"))
        .replace("{label}", &format!("dockproof.conformance={case}"))
        .replace("{root}", &support::root().display().to_string())
}

fn run(side: &Side, args: &[String], env: &[(String, String)]) -> Result<Observed, String> {
    let mut child = Command::new(&side.program)
        .args(args)
        .envs(side.env.iter().map(|(key, value)| (key, value)))
        .envs(env.iter().map(|(key, value)| (key, value)))
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
        // Rounded down: a stop's grace is a lower bound the CLI's own overhead adds to
        // (a loaded machine once made a 2 s grace take 2.6 s on the daemon).
        seconds: started.elapsed().as_secs(),
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
            // Host ports the daemon (or the fake) picked: `127.0.0.1:32768`, `"HostPort": "32768"`.
            (r#"(\d+\.\d+\.\d+\.\d+:|\]:|"HostPort":\s?"|HostPort:)\d{4,5}\b"#, "${1}<port>"),
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
            "stderr" => normalise(&observed.stderr),
            // Only the first line, for a step whose later lines are known to differ.
            "stderr-first" => normalise(observed.stderr.lines().next().unwrap_or_default()),
            "seconds" => observed.seconds.to_string(),
            other => format!("<unknown field {other}>"),
        };
        fields.push((field.clone(), value));
    }
    fields
}

fn cleanup(side: &Side, case: &str) {
    // Networks and volumes a case names after itself, left by a step that failed.
    for name in [format!("dpconf-{case}"), format!("dpconf-{case}-2")] {
        let _ = run(side, &["network".into(), "rm".into(), name.clone()], &[]);
        let _ = run(side, &["volume".into(), "rm".into(), name], &[]);
    }
    let label = format!("label=dockproof.conformance={case}");
    if let Ok(listed) = run(
        side,
        &["ps".into(), "-aq".into(), "--filter".into(), label],
        &[],
    ) {
        let ids: Vec<String> = listed
            .stdout
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if !ids.is_empty() {
            let mut args = vec!["rm".to_owned(), "-f".to_owned()];
            args.extend(ids);
            let _ = run(side, &args, &[]);
        }
    }
}

/// Whether fake-docker refused the step with its own reason rather than answering.
fn refused_by_fake(observed: &Observed) -> bool {
    observed.stderr.contains("fake-docker does not model")
        || (observed.stderr.contains("fake image ")
            && observed.stderr.contains(" has no program `"))
}

/// Runs a case on both sides: its fidelity and what differed.
fn run_case(case: &Case, real: &Side, fake: &Side) -> Result<(Fidelity, Vec<String>), Failed> {
    let mut mismatches = Vec::new();
    let mut fidelity = Fidelity::Identical;
    for (index, step) in case.steps.iter().enumerate() {
        let args: Vec<String> = step
            .args
            .iter()
            .map(|arg| substitute(arg, &case.name))
            .collect();
        let real_seen = run(real, &args, &step.env)?;
        let fake_seen = run(fake, &args, &step.env)?;
        let (real_fields, fake_fields) = (project(&real_seen, step), project(&fake_seen, step));
        let mut step_differs = false;
        for ((field, real_value), (_, fake_value)) in real_fields.iter().zip(&fake_fields) {
            if real_value != fake_value {
                step_differs = true;
                mismatches.push(format!(
                    "step {} `docker {}`: {field} differs\n  real: {real_value:?}\n  fake: {fake_value:?}",
                    index + 1,
                    args.join(" ")
                ));
            }
        }
        if !step_differs {
            continue;
        }
        let step_fidelity = if refused_by_fake(&fake_seen) {
            Fidelity::Unsupported
        } else if real_seen.exit == fake_seen.exit
            && real_seen.stdout.lines().count() == fake_seen.stdout.lines().count()
        {
            Fidelity::SameShape
        } else {
            Fidelity::Different
        };
        fidelity = fidelity.max(step_fidelity);
    }
    Ok((fidelity, mismatches))
}

const BASELINE: &str = "fixtures/conformance/baseline.yaml";

/// The checked-in outcome of each case.
fn load_baseline() -> BTreeMap<String, Fidelity> {
    let path = support::root().join(BASELINE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return BTreeMap::new();
    };
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| {
            let (name, outcome) = line.split_once(':')?;
            Some((name.trim().to_owned(), Fidelity::parse(outcome.trim())?))
        })
        .collect()
}

/// Prints the fidelity figure, and with UPDATE_EXPECT=1 rewrites the baseline.
fn report(results: &BTreeMap<String, Fidelity>, total: usize) {
    if results.is_empty() {
        return;
    }
    let count = |f: Fidelity| results.values().filter(|v| **v == f).count();
    let (identical, shape, unsupported, different) = (
        count(Fidelity::Identical),
        count(Fidelity::SameShape),
        count(Fidelity::Unsupported),
        count(Fidelity::Different),
    );
    let runnable = identical + shape + different;
    println!(
        "\nfake-docker fidelity over {} of {total} cases: {identical} identical, {shape} same shape, {different} different, {unsupported} unsupported (refused with the reason); {:.1}% of the cases it runs are identical",
        results.len(),
        if runnable == 0 {
            0.0
        } else {
            100.0 * identical as f64 / runnable as f64
        }
    );
    if std::env::var_os("UPDATE_EXPECT").is_some() && results.len() == total {
        let mut text = String::from(
            "# Per-case outcome of `cargo xtask conformance` (harness/tests/conformance.rs):\n# identical, same-shape, unsupported or different. A case doing worse fails.\n# Regenerate with UPDATE_EXPECT=1 after reviewing the change.\n",
        );
        for (name, fidelity) in results {
            text.push_str(&format!("{name}: {}\n", fidelity.as_str()));
        }
        let path = support::root().join(BASELINE);
        if let Err(error) = std::fs::write(&path, text) {
            eprintln!("cannot write {}: {error}", path.display());
        }
    }
}

/// Build the real fixture image once (the fake defines it in YAML).
fn prepare_real_image() -> Result<(), String> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    READY
        .get_or_init(|| {
            support::ensure_fixture_image(IMAGE)?;
            support::ensure_fixture_image(WEB)
        })
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
    let cases = load_cases();
    let total = cases.len();
    let baseline = Arc::new(load_baseline());
    let results: Arc<Mutex<BTreeMap<String, Fidelity>>> = Arc::default();
    let trials = cases
        .into_iter()
        .map(|case| {
            let (real, fake_program) = (Arc::clone(&real), fake_program.clone());
            let (baseline, results) = (Arc::clone(&baseline), Arc::clone(&results));
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
                let (fidelity, mismatches) = result?;
                if let Ok(mut results) = results.lock() {
                    results.insert(case.name.clone(), fidelity);
                }
                match baseline.get(&case.name) {
                    Some(expected) if fidelity <= *expected => Ok(()),
                    Some(expected) => Err(format!(
                        "regressed from {} to {}\n{}",
                        expected.as_str(),
                        fidelity.as_str(),
                        mismatches.join("\n")
                    )
                    .into()),
                    None => Err(format!(
                        "no baseline outcome (it is {}; add it to {BASELINE}, or run with UPDATE_EXPECT=1)\n{}",
                        fidelity.as_str(),
                        mismatches.join("\n")
                    )
                    .into()),
                }
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    if let Ok(results) = results.lock() {
        report(&results, total);
    }
    conclusion.exit();
}
