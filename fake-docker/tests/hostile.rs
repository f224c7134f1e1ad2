//! Hostile input: random argument lists, and the argument lists dockproof really issues
//! with random edits, through fake-docker's argv parser, its flag-value checks and its
//! Go-template parser and evaluator, in-process. No case may panic or take longer than
//! `CASE_LIMIT`; every refusal is a `UsageError` with docker's exit code (125 for a bad
//! flag or value, 1 for an unknown command or a wrong number of arguments) whose message
//! names the offending argument.
//!
//! `PROPTEST_CASES` sets how many cases each of the three properties runs (default
//! 34,000 each, 102,000 in all; about 25 s in a debug build).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fake_docker::commands::{self, Invocation, UsageError};
use fake_docker::template::{Template, TemplateError};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

/// What the cases reached, so a strategy that stops reaching a branch fails the run.
#[derive(Default)]
struct Reached {
    argv_refused_1: AtomicUsize,
    flag_refused_125: AtomicUsize,
    value_refused_125: AtomicUsize,
    help: AtomicUsize,
    commands: AtomicUsize,
    template_refused: AtomicUsize,
    template_too_deep: AtomicUsize,
    template_rendered: AtomicUsize,
    template_execution_error: AtomicUsize,
}

static REACHED: Reached = Reached {
    argv_refused_1: AtomicUsize::new(0),
    flag_refused_125: AtomicUsize::new(0),
    value_refused_125: AtomicUsize::new(0),
    help: AtomicUsize::new(0),
    commands: AtomicUsize::new(0),
    template_refused: AtomicUsize::new(0),
    template_too_deep: AtomicUsize::new(0),
    template_rendered: AtomicUsize::new(0),
    template_execution_error: AtomicUsize::new(0),
};

fn count(counter: &AtomicUsize) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The longest one case may take before it counts as a hang.
const CASE_LIMIT: Duration = Duration::from_secs(10);

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(34_000)
}

/// Argument lists dockproof's CLI backend issues (harness/src/backend/cli.rs), and the
/// other commands the fake answers, each valid.
fn valid_invocations() -> Vec<Vec<String>> {
    let lists: &[&[&str]] = &[
        &[
            "create",
            "--pull",
            "never",
            "--name",
            "dockproof-r1-job-0",
            "--label",
            "dockproof.run=r1",
            "--env",
            "JOB_ID=j1",
            "--volume",
            "/tmp/ws:/workspace:ro",
            "--workdir",
            "/workspace",
            "--user",
            "1000:1000",
            "--memory",
            "67108864",
            "--cpus",
            "0.5",
            "--pids-limit",
            "64",
            "--read-only",
            "--security-opt",
            "no-new-privileges",
            "--network",
            "none",
            "--cap-drop",
            "ALL",
            "--tmpfs",
            "/tmp:size=1m",
            "--entrypoint",
            "",
            "--cap-add",
            "NET_ADMIN",
            "--publish",
            "127.0.0.1:0:8080",
            "--health-cmd",
            "wget -q http://127.0.0.1:8080/health",
            "--health-interval",
            "500ms",
            "--health-timeout",
            "1000ms",
            "--health-retries",
            "3",
            "--health-start-period",
            "0ms",
            "dockproof/job-runner:1",
            "job",
            "a b; rm -rf /",
        ],
        &[
            "run",
            "--rm",
            "-d",
            "-it",
            "-e",
            "A=1",
            "-eB=2",
            "-m=64m",
            "-p",
            "8080:80/tcp",
            "-v",
            "data:/data",
            "busybox",
            "sh",
            "-c",
            "echo $A",
        ],
        &[
            "run",
            "--privileged",
            "--init",
            "--stop-timeout",
            "5",
            "--expose",
            "9000",
            "--hostname",
            "h",
            "--platform",
            "linux/amd64",
            "alpine",
        ],
        &[
            "exec",
            "--env",
            "A=1",
            "--workdir",
            "/w",
            "--user",
            "0",
            "dockproof-r1-job-0",
            "cat",
            "/etc/passwd",
        ],
        &["exec", "-d", "-i", "c1", "sleep", "1"],
        &["version", "--format", "{{.Server.Version}}"],
        &["info", "--format", "{{.ServerVersion}}"],
        &[
            "image",
            "inspect",
            "--format",
            "{{.Id}}",
            "dockproof/job-runner:1",
        ],
        &["image", "inspect", "dockproof/job-runner:1"],
        &[
            "inspect",
            "--type",
            "container",
            "--format",
            "{{json .State}}",
            "c1",
        ],
        &[
            "inspect",
            "--format",
            "{{range .Mounts}}{{.Type}} {{.RW}};{{else}}none{{end}}",
            "c1",
        ],
        &[
            "inspect",
            "--format",
            "{{if eq .State.Status \"running\"}}up{{else}}{{.State.ExitCode}}{{end}}",
            "c1",
        ],
        &[
            "inspect",
            "--format",
            "{{index .Config.Labels \"dockproof.run\"}} {{join .Args \",\"}} {{len .Mounts}}",
            "c1",
        ],
        &["inspect", "--type", "container", "c1"],
        &[
            "build",
            "--force-rm",
            "--tag",
            "dockproof-r1:build",
            "--file",
            "/ctx/Dockerfile",
            "--build-arg",
            "A=1",
            "--target",
            "final",
            "--label",
            "k=v",
            "/ctx",
        ],
        &["image", "rm", "--force", "dockproof-r1:build"],
        &["rmi", "-f", "x:1"],
        &["wait", "c1"],
        &["stop", "-t", "10", "c1"],
        &["stop", "--time=0", "c1", "c2"],
        &["kill", "--signal", "SIGKILL", "c1"],
        &["logs", "--tail", "100", "c1"],
        &["logs", "-f", "--timestamps", "c1"],
        &["rm", "--force", "--volumes", "c1"],
        &["cp", "c1:/workspace/out.txt", "-"],
        &["cp", "/tmp/in.txt", "c1:/in.txt"],
        &["save", "--output", "/tmp/image.tar", "x:1"],
        &["commit", "c1"],
        &[
            "ps",
            "--all",
            "--quiet",
            "--no-trunc",
            "--filter",
            "label=dockproof.run=r1",
        ],
        &[
            "ps",
            "-a",
            "--filter",
            "status=exited",
            "--format",
            "table {{.ID}}\\t{{.Names}}\\t{{.Status}}",
        ],
        &["ps", "--last", "2", "--format", "{{json .}}"],
        &["images", "--format", "{{.Repository}}:{{.Tag}}"],
        &["image", "ls", "-q"],
        &["pull", "-q", "alpine:3"],
        &["start", "-a", "c1"],
        &["port", "c1", "80/tcp"],
        &["stats", "--no-stream", "--format", "{{.MemUsage}}", "c1"],
        &["network", "create", "--label", "a=b", "n1"],
        &[
            "network",
            "ls",
            "--filter",
            "label=a",
            "--format",
            "{{.Name}}",
        ],
        &["network", "inspect", "--format", "{{.Name}}", "n1"],
        &["network", "rm", "n1"],
        &["volume", "create", "v1"],
        &["volume", "ls", "-q"],
        &["volume", "inspect", "v1"],
        &["volume", "rm", "-f", "v1"],
        &["container", "cp", "c1:/a", "/tmp/a"],
        &[
            "-H",
            "unix:///var/run/docker.sock",
            "--tlsverify",
            "--context=default",
            "ps",
        ],
        &["--help"],
        &["network"],
        &["run", "--help"],
    ];
    lists
        .iter()
        .map(|list| list.iter().map(|s| s.to_string()).collect())
        .collect()
}

/// Words that steer the parser into its corners.
const VOCABULARY: &[&str] = &[
    "run",
    "create",
    "exec",
    "inspect",
    "ps",
    "logs",
    "build",
    "stop",
    "kill",
    "rm",
    "cp",
    "start",
    "wait",
    "network",
    "volume",
    "image",
    "container",
    "images",
    "version",
    "info",
    "help",
    "ls",
    "--",
    "-",
    "-h",
    "--help",
    "--format",
    "-f",
    "--filter",
    "--memory",
    "-m",
    "--cpus",
    "-p",
    "--publish",
    "-v",
    "--volume",
    "-e",
    "-it",
    "-itd",
    "-e=",
    "--rm=",
    "--rm=maybe",
    "--name=",
    "--=x",
    "---",
    "-H",
    "--tls",
    "-D",
    "--pull",
    "--health-interval",
    "--stop-timeout",
    "--tail",
    "--time",
    "--signal",
    "--type",
    "--last",
    "",
    " ",
    "=",
    "==",
    "{{",
    "}}",
    "{{.}}",
    "{{end}}",
    "..",
    "../../etc",
    "/dev/zero",
    "::",
    ":/x",
    "1e400",
    "99999999999999999999999999999g",
    "-1",
    "NaN",
    "inf",
    "0x10",
    "é",
    "\u{202e}",
    "\n",
    "\t",
];

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(VOCABULARY).prop_map(str::to_string),
        2 => any::<String>(),
        1 => "[-=.:/0-9a-zA-Z{}]{0,12}",
        1 => (prop::sample::select(&["--", "-"][..]), "[a-z-]{0,10}", prop::option::of("[=a-z0-9]{0,6}"))
            .prop_map(|(dashes, name, tail)| format!("{dashes}{name}{}", tail.unwrap_or_default())),
    ]
}

fn random_argv() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(token(), 0..12)
}

/// A valid invocation with up to four random edits.
fn mutated_argv() -> impl Strategy<Value = Vec<String>> {
    let edit = (
        0usize..7,
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        token(),
    );
    (
        prop::sample::select(valid_invocations()),
        prop::collection::vec(edit, 1..5),
    )
        .prop_map(|(mut argv, edits)| {
            for (kind, first, second, token) in edits {
                let at = |len: usize| if len == 0 { 0 } else { first.index(len) };
                match kind {
                    0 if !argv.is_empty() => {
                        argv.remove(at(argv.len()));
                    }
                    1 => argv.insert(first.index(argv.len() + 1), token),
                    2 if !argv.is_empty() => {
                        let (i, j) = (at(argv.len()), second.index(argv.len()));
                        argv.swap(i, j);
                    }
                    3 if !argv.is_empty() => {
                        let i = at(argv.len());
                        argv[i] = token;
                    }
                    4 if !argv.is_empty() => {
                        // Cut an argument short, on a character boundary.
                        let i = at(argv.len());
                        let keep = second.index(argv[i].chars().count() + 1);
                        argv[i] = argv[i].chars().take(keep).collect();
                    }
                    5 if !argv.is_empty() => {
                        // Append to an argument: `--memory` → `--memory=x`, `64m` → `64mé`.
                        let i = at(argv.len());
                        argv[i].push_str(&token);
                    }
                    _ => argv.truncate(first.index(argv.len() + 1)),
                }
            }
            argv
        })
}

/// Template pieces, glued at random: unbalanced `{{`, stray `end`/`else`, quotes, deep
/// nesting of blocks.
fn template_text() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "{{",
        "}}",
        "{{-",
        "-}}",
        "{{- ",
        " -}}",
        ".",
        ".State",
        ".State.Status",
        ".Mounts",
        ".Labels",
        ".Args",
        ".Label \"k\"",
        ".Nope.Deeper",
        "range ",
        "if ",
        "with ",
        "else",
        "end",
        "{{end}}",
        "{{else}}",
        "json ",
        "index ",
        "join ",
        "len ",
        "eq ",
        "ne ",
        "not ",
        "lower ",
        "upper ",
        "printf ",
        "$x := ",
        "|",
        "\"",
        "`",
        "\"k\"",
        "\"\\\"",
        "\"0\"",
        "\"99\"",
        " ",
        "x",
        "\\t",
        "\n",
        "é",
        "{{.}}",
        "{{range .Mounts}}",
        "{{if .State.Running}}",
        "{{with .State}}",
        "{{range .}}",
        "{{range .Args}}{{.}}",
    ]);
    prop_oneof![
        4 => prop::collection::vec(pieces, 0..30).prop_map(|parts| parts.concat()),
        1 => any::<String>(),
        // Deeply nested blocks, closed or not.
        1 => (prop::sample::select(vec!["{{if .}}", "{{with .State}}", "{{range .Mounts}}", "{{range .}}"]), 0usize..5_000, 0usize..5_000)
            .prop_map(|(open, depth, closed)| format!("{}x{}", open.repeat(depth), "{{end}}".repeat(closed))),
    ]
}

/// Inspect-shaped data for templates to walk: nested maps, arrays, numbers, null.
fn sample_data() -> Value {
    json!({
        "Id": "0123456789ab",
        "Args": ["a", "b c"],
        "State": {"Status": "running", "Running": true, "ExitCode": 137, "OOMKilled": false, "Health": null},
        "Mounts": [{"Type": "bind", "RW": false, "Source": "/w"}, {"Type": "volume", "RW": true}],
        "Config": {"Labels": {"dockproof.run": "r1", "z": ""}, "Env": ["A=1"], "Cmd": null},
        "Labels": {"b": "2", "a": "1"},
        "Size": 2105344,
        "Ratio": 0.5,
    })
}

/// A template from the command line must parse or be refused with Go's message, and a
/// parsed one must render or fail with an execution error; neither may panic.
fn check_template(text: &str) -> Result<(), TestCaseError> {
    let template = match Template::parse(text) {
        Ok(template) => template,
        Err(error) => {
            count(if error == TemplateError::TooDeep {
                &REACHED.template_too_deep
            } else {
                &REACHED.template_refused
            });
            prop_assert!(
                !matches!(error, TemplateError::Execution(..)),
                "parsing gave an execution error: {error}"
            );
            prop_assert!(error.to_string().starts_with("template: :1:"), "{error}");
            return Ok(());
        }
    };
    let data = sample_data();
    for dot in [&data, &Value::Null, &json!([1, "x", null]), &json!("text")] {
        let methods =
            |name: &str, args: &[String]| (name == "Label").then(|| json!(args.join(",")));
        let rendered = template.render_with(dot, &methods);
        count(if rendered.is_ok() {
            &REACHED.template_rendered
        } else {
            &REACHED.template_execution_error
        });
        if let Err(error) = rendered {
            prop_assert!(
                matches!(error, TemplateError::Execution(..)),
                "rendering gave a parse error: {error}"
            );
            prop_assert!(error.to_string().starts_with("template: :1:"), "{error}");
        }
    }
    Ok(())
}

/// A refusal names its offending argument, which came from `args`, in the message part
/// of stderr (before docker's usage block), and has docker's exit code.
fn check_refusal(
    args: &[String],
    error: &UsageError,
    allowed: &[i32],
) -> Result<(), TestCaseError> {
    prop_assert!(
        allowed.contains(&error.code),
        "exit code {} for {args:?}: {}",
        error.code,
        error.stderr
    );
    prop_assert!(error.stderr.ends_with('\n'), "{:?}", error.stderr);
    let message = error.stderr.split("\n\nUsage:").next().unwrap_or_default();
    // Named as given, or quoted as the CLI quotes it (Go's %q: `Invalid --security-opt: " \\0"`).
    prop_assert!(
        message.contains(&error.argument) || message.contains(&format!("{:?}", error.argument)),
        "{message:?} does not name {:?} (argv {args:?})",
        error.argument
    );
    let core = error.argument.trim_start_matches('-');
    prop_assert!(
        args.join(" ").contains(core),
        "{:?} is not from the argv {args:?}",
        error.argument
    );
    Ok(())
}

fn check_argv(args: &[String]) -> Result<(), TestCaseError> {
    match commands::parse(args) {
        Err(error) => {
            // A flag error is 125; an unknown command or a wrong number of arguments is 1.
            check_refusal(args, &error, &[1, 125])?;
            // Only an empty command (`docker ""`) is named by an empty string.
            prop_assert!(
                !error.argument.is_empty() || args.iter().any(String::is_empty),
                "an argv refusal names something: {error:?}"
            );
            let flag_error = error.stderr.starts_with("unknown flag")
                || error.stderr.starts_with("unknown shorthand flag")
                || error.stderr.starts_with("flag needs an argument")
                || error.stderr.starts_with("invalid argument");
            prop_assert_eq!(error.code == 125, flag_error, "{:?}", error.stderr);
            count(if flag_error {
                &REACHED.flag_refused_125
            } else {
                &REACHED.argv_refused_1
            });
        }
        Ok(Invocation::Help(text) | Invocation::GroupHelp(text)) => {
            count(&REACHED.help);
            prop_assert!(text.contains("Usage:"));
        }
        Ok(Invocation::Version) => {}
        Ok(Invocation::Command { spec, parsed, .. }) => {
            count(&REACHED.commands);
            if let Err(error) = commands::check_values(spec, &parsed) {
                count(&REACHED.value_refused_125);
                // A bad value is always 125; the value may be empty (`--memory=`).
                check_refusal(args, &error, &[125])?;
            }
            if let Some(format) = parsed.last("format") {
                check_template(format)?;
            }
        }
    }
    Ok(())
}

/// Aborts the process when one case runs past `CASE_LIMIT`, naming the case.
struct Watchdog {
    started: Arc<AtomicU64>,
    current: Arc<Mutex<String>>,
    done: Arc<AtomicBool>,
    epoch: Instant,
}

impl Watchdog {
    fn start() -> Watchdog {
        let watchdog = Watchdog {
            started: Arc::new(AtomicU64::new(0)),
            current: Arc::new(Mutex::new(String::new())),
            done: Arc::new(AtomicBool::new(false)),
            epoch: Instant::now(),
        };
        let (started, current, done, epoch) = (
            watchdog.started.clone(),
            watchdog.current.clone(),
            watchdog.done.clone(),
            watchdog.epoch,
        );
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let since = Duration::from_millis(started.load(Ordering::Relaxed));
                if epoch.elapsed().saturating_sub(since) > CASE_LIMIT {
                    let case = current.lock().map(|c| c.clone()).unwrap_or_default();
                    eprintln!("a case ran past {CASE_LIMIT:?} (a hang): {case}");
                    std::process::exit(1);
                }
            }
        });
        watchdog
    }

    fn case(&self, description: impl FnOnce() -> String) {
        self.started
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        if let Ok(mut current) = self.current.lock() {
            *current = description();
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
    }
}

fn main() {
    let watchdog = Watchdog::start();
    let started = Instant::now();
    let mut failures = 0;
    let runner = || {
        TestRunner::new(Config {
            cases: cases(),
            failure_persistence: None,
            ..Config::default()
        })
    };
    if let Err(error) = runner().run(&random_argv(), |args| {
        watchdog.case(|| format!("argv {args:?}"));
        check_argv(&args)
    }) {
        eprintln!("random argv: {error}");
        failures += 1;
    }
    if let Err(error) = runner().run(&mutated_argv(), |args| {
        watchdog.case(|| format!("argv {args:?}"));
        check_argv(&args)
    }) {
        eprintln!("mutated argv: {error}");
        failures += 1;
    }
    if let Err(error) = runner().run(&template_text(), |text| {
        watchdog.case(|| format!("inspect --format {text:?}"));
        let args = vec![
            "inspect".to_string(),
            "--format".to_string(),
            text,
            "c1".to_string(),
        ];
        check_argv(&args)
    }) {
        eprintln!("--format templates: {error}");
        failures += 1;
    }
    println!(
        "{} random, {} mutated argument lists and {} --format templates parsed without a panic or a hang in {:.1?}",
        cases(),
        cases(),
        cases(),
        started.elapsed()
    );
    let reached = [
        ("refusals with exit 1", &REACHED.argv_refused_1),
        ("flag refusals with exit 125", &REACHED.flag_refused_125),
        ("value refusals with exit 125", &REACHED.value_refused_125),
        ("help texts", &REACHED.help),
        ("parsed commands", &REACHED.commands),
        ("refused templates", &REACHED.template_refused),
        ("templates nested too deep", &REACHED.template_too_deep),
        ("rendered templates", &REACHED.template_rendered),
        (
            "template execution errors",
            &REACHED.template_execution_error,
        ),
    ];
    for (what, counter) in reached {
        let n = counter.load(Ordering::Relaxed);
        println!("  {what}: {n}");
        // Each branch is reached in every run of a few hundred cases or more.
        if n == 0 && cases() >= 1_000 {
            eprintln!("no case reached {what}: the strategies no longer cover it");
            failures += 1;
        }
    }
    if failures > 0 {
        std::process::exit(1);
    }
}
