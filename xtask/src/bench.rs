//! `cargo xtask bench`: dockproof against the baselines a user would otherwise
//! use, each measured in the same invocation so that figures are ratios
//! (absolute times on a shared machine are noise). Prints a table, writes
//! `target/dockproof/bench.json`.
//!
//! Every measured binary is a release build. Rows that need a daemon say
//! `skipped: no daemon` when none answers. A missed target is printed as
//! `MISSED`; it does not change the exit code (the machine may be busy), a
//! benchmark that could not run does (exit 1).

mod cst;
mod measure;
mod report;
mod workload;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use serde::Serialize;
use serde_json::{Value, json};

use measure::Measured;

/// Options of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Run only these benchmarks (repeatable; default: all).
    #[arg(long, value_enum, value_name = "BENCH")]
    only: Vec<Which>,
    /// Scenarios dockproof runs at once (`dockproof run -j`).
    #[arg(short, long, default_value_t = 8)]
    jobs: usize,
    /// Try the benchmark out on small sizes (1/16 of the data, fewer scenarios); figures are not comparable to the targets.
    #[arg(long)]
    quick: bool,
    /// Measure the debug binaries already built (no release build: what `cargo xtask ci` runs with --quick).
    #[arg(long)]
    debug_binaries: bool,
    /// Run nothing: copy a bench.json (default: the last full run's, target/dockproof/bench.json) to docs/bench.json and regenerate the README's Benchmarks table from it.
    #[arg(
        long,
        value_name = "BENCH_JSON",
        num_args = 0..=1,
        default_missing_value = LAST_FULL_RUN
    )]
    readme: Option<PathBuf>,
}

impl BenchArgs {
    /// What `cargo xtask ci` runs: every benchmark on small sizes, with the debug binaries.
    pub fn for_ci() -> Self {
        BenchArgs {
            only: Vec::new(),
            jobs: 8,
            quick: true,
            debug_binaries: true,
            readme: None,
        }
    }
}

/// The benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Which {
    /// 1. Job scenarios on a real daemon vs a sequential bash script.
    Script,
    /// 2. One job scenario vs a bare `docker run --rm`.
    Overhead,
    /// 3. Generated job scenarios on the fake backend, scenarios per second.
    Fake,
    /// 4. Artifact sha256 vs sha256sum and openssl.
    Hash,
    /// 5. Peak memory of dockproof while a job writes a huge stdout.
    Logs,
    /// 6. `dockproof check` over many scenario files.
    Check,
    /// 7. Benchmark 1's job scenarios over the `copy` workspace transport, vs `bind` and the script.
    Copy,
    /// 8. A suite of job scenarios on the fake as a user runs it (`dockproof run DIR`), wall per scenario.
    Suite,
    /// 9. `dockproof cst` vs the real container-structure-test: wall time and peak RSS.
    Cst,
}

const ALL: [Which; 9] = [
    Which::Script,
    Which::Overhead,
    Which::Fake,
    Which::Hash,
    Which::Logs,
    Which::Check,
    Which::Copy,
    Which::Suite,
    Which::Cst,
];

/// How much work each benchmark does.
#[derive(Debug, Clone, Copy, Serialize)]
struct Sizes {
    daemon_scenarios: usize,
    overhead_repeats: usize,
    fake_scenarios: usize,
    suite_scenarios: usize,
    hash_bytes: u64,
    log_bytes: u64,
    check_files: usize,
}

impl Sizes {
    fn new(quick: bool) -> Self {
        if quick {
            Sizes {
                daemon_scenarios: 4,
                overhead_repeats: 3,
                fake_scenarios: 100,
                suite_scenarios: 50,
                hash_bytes: 64 << 20,
                log_bytes: 64 << 20,
                check_files: 1000,
            }
        } else {
            Sizes {
                daemon_scenarios: 20,
                // Odd and large enough for a median a daemon hiccup does not move.
                overhead_repeats: 11,
                fake_scenarios: 1000,
                suite_scenarios: 200,
                hash_bytes: 1 << 30,
                log_bytes: 1 << 30,
                check_files: 1000,
            }
        }
    }
}

/// Which way a figure must go.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
enum Compare {
    AtMost,
    AtLeast,
}

/// What the target is judged on.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
enum Judged {
    /// dockproof's figure ÷ the baseline's.
    Ratio,
    /// dockproof's own figure (the ratio shown is then figure ÷ limit).
    Absolute,
}

#[derive(Debug, Clone, Serialize)]
struct Target {
    judged: Judged,
    compare: Compare,
    value: f64,
    text: String,
}

impl Target {
    fn ratio(compare: Compare, value: f64, text: &str) -> Self {
        Target {
            judged: Judged::Ratio,
            compare,
            value,
            text: text.to_owned(),
        }
    }

    fn absolute(compare: Compare, value: f64, text: &str) -> Self {
        Target {
            judged: Judged::Absolute,
            compare,
            value,
            text: text.to_owned(),
        }
    }

    fn met_by(&self, figure: f64) -> bool {
        match self.compare {
            Compare::AtMost => figure <= self.value,
            Compare::AtLeast => figure >= self.value,
        }
    }
}

/// One measured quantity.
#[derive(Debug, Clone, Serialize)]
struct Figure {
    label: String,
    value: f64,
    unit: &'static str,
}

impl Figure {
    fn new(label: impl Into<String>, value: f64, unit: &'static str) -> Self {
        Figure {
            label: label.into(),
            value,
            unit,
        }
    }

    fn display(&self) -> String {
        report::figure_text(&self.label, self.value, self.unit)
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "reason")]
enum Status {
    Met,
    Missed,
    Skipped(String),
    Failed(String),
}

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
struct Row {
    bench: Which,
    id: String,
    title: String,
    method: String,
    baseline: Option<Figure>,
    dockproof: Option<Figure>,
    ratio: Option<f64>,
    target: Target,
    #[serde(flatten)]
    status: Status,
    details: Value,
}

impl Row {
    fn new(bench: Which, id: &str, title: &str, method: String, target: Target) -> Self {
        Row {
            bench,
            id: id.to_owned(),
            title: title.to_owned(),
            method,
            baseline: None,
            dockproof: None,
            ratio: None,
            target,
            status: Status::Skipped("not run".into()),
            details: json!({}),
        }
    }

    /// Fill in the figures and judge them against the target.
    fn measured(mut self, baseline: Option<Figure>, dockproof: Figure, details: Value) -> Self {
        let ratio = match (self.target.judged, &baseline) {
            (Judged::Ratio, Some(baseline)) => dockproof.value / baseline.value,
            (Judged::Ratio, None) => f64::NAN,
            (Judged::Absolute, _) => dockproof.value / self.target.value,
        };
        let judged_figure = match self.target.judged {
            Judged::Ratio => ratio,
            Judged::Absolute => dockproof.value,
        };
        self.status = if self.target.met_by(judged_figure) {
            Status::Met
        } else {
            Status::Missed
        };
        self.baseline = baseline;
        self.dockproof = Some(dockproof);
        self.ratio = Some(ratio);
        self.details = details;
        self
    }

    fn skipped(mut self, reason: &str) -> Self {
        self.status = Status::Skipped(reason.to_owned());
        self
    }

    fn failed(mut self, error: &anyhow::Error) -> Self {
        self.status = Status::Failed(format!("{error:#}"));
        self
    }
}

/// What every benchmark shares.
struct Bench {
    root: PathBuf,
    /// The release binaries.
    bin: PathBuf,
    temp: tempfile::TempDir,
    jobs: usize,
    sizes: Sizes,
    /// The daemon's version, when one answers.
    daemon: Option<String>,
    /// Put on the containers the baselines create, to remove leftovers.
    label: String,
}

const NO_DAEMON: &str = "skipped: no daemon";
/// Where a full run writes its results, relative to the checkout; `--readme` without a
/// value publishes it. (An empty default was refused by clap's path parser: `--readme`
/// alone failed with "a value is required".)
const LAST_FULL_RUN: &str = "target/dockproof/bench.json";

/// Rounds of benchmark 1 (the best of each is kept: interference only ever slows a run down).
const SCRIPT_ROUNDS: usize = 2;
const IMAGE: &str = "dockproof/job-runner:1";

pub fn bench(args: BenchArgs) -> Result<i32> {
    let root = crate::root();
    if let Some(from) = &args.readme {
        // Relative to the checkout (the default, the last full run's) or as given.
        let from = if from == Path::new(LAST_FULL_RUN) {
            root.join(LAST_FULL_RUN)
        } else {
            from.clone()
        };
        report::publish(&root, &from)?;
        return Ok(0);
    }
    let started = Instant::now();
    let mut build = crate::cargo();
    build.current_dir(&root).args(["build", "--quiet"]);
    if !args.debug_binaries {
        build.arg("--release");
    }
    crate::run_ok(build.args(["-p", "dockproof", "-p", "fake-docker"]))?;
    let profile = if args.debug_binaries {
        "debug"
    } else {
        "release"
    };
    let bin = crate::target_dir(&root).join(profile);
    let temp = tempfile::Builder::new()
        .prefix("dockproof-bench-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let daemon = daemon_version();
    match &daemon {
        Some(version) => eprintln!("bench: Docker daemon {version} answers"),
        None => eprintln!("bench: no Docker daemon answers; rows that need one are skipped"),
    }
    let label = format!("bench-{}", std::process::id());
    let bench = Bench {
        root: root.clone(),
        bin,
        temp,
        jobs: args.jobs,
        sizes: Sizes::new(args.quick),
        daemon,
        label,
    };
    let selected: Vec<Which> = if args.only.is_empty() {
        ALL.to_vec()
    } else {
        ALL.into_iter()
            .filter(|which| args.only.contains(which))
            .collect()
    };

    let mut rows = Vec::new();
    for which in selected {
        eprintln!("bench: {} ...", describe(which));
        let bench_started = Instant::now();
        rows.extend(match which {
            Which::Script => bench.script(),
            Which::Overhead => bench.overhead(),
            Which::Fake => bench.fake(),
            Which::Suite => vec![bench.suite()],
            Which::Hash => vec![bench.hash()],
            Which::Logs => bench.logs(),
            Which::Check => vec![bench.check()],
            Which::Copy => bench.copy(),
            // Two tools, three configs, two rounds each: not worth it on --quick's sizes.
            Which::Cst if args.quick => Vec::new(),
            Which::Cst => bench.cst(),
        });
        eprintln!(
            "bench: {} took {:.1} s",
            describe(which),
            bench_started.elapsed().as_secs_f64()
        );
    }
    bench.remove_leftovers();

    print!("{}", table(&rows, args.quick));
    let reports = root.join("target").join("dockproof");
    std::fs::create_dir_all(&reports)
        .with_context(|| format!("cannot create {}", reports.display()))?;
    // A quick run is compared with the last quick run, a full one with the last full one.
    let path = reports.join(if args.quick {
        "bench-quick.json"
    } else {
        "bench.json"
    });
    let mut document = json!({
        "quick": args.quick,
        "debugBinaries": args.debug_binaries,
        "jobs": args.jobs,
        "sizes": bench.sizes,
        "cores": std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        "cpu": cpu_model(),
        "daemon": bench.daemon,
        "gitSha": git_sha(&root),
        "date": report::utc_now(),
        "durationS": started.elapsed().as_secs_f64(),
        "rows": rows,
    });
    // Only a complete run replaces the one compared against (`--only` compares its rows).
    if let Some(previous) = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
    {
        let regressions = report::regressions(&previous, &document);
        print!("{}", report::comparison_text(&previous, &regressions));
        document["comparedWith"] = json!({
            "gitSha": previous["gitSha"],
            "date": previous["date"],
            "regressions": regressions,
        });
    }
    let text = serde_json::to_string_pretty(&document).context("bench results serialise")?;
    if args.only.is_empty() {
        std::fs::write(&path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!(
            "\nwrote {} ({:.0} s in all)",
            path.display(),
            started.elapsed().as_secs_f64()
        );
    } else {
        let partial = path.with_extension("only.json");
        std::fs::write(&partial, text + "\n")
            .with_context(|| format!("cannot write {}", partial.display()))?;
        println!(
            "\nwrote {} (--only: {} is kept for comparison; {:.0} s in all)",
            partial.display(),
            path.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(
        if rows
            .iter()
            .any(|row| matches!(row.status, Status::Failed(_)))
        {
            1
        } else {
            0
        },
    )
}

fn describe(which: Which) -> &'static str {
    match which {
        Which::Script => "1. job scenarios on a real daemon vs a bash script",
        Which::Overhead => "2. per-container overhead vs docker run --rm",
        Which::Fake => "3. fake backend throughput",
        Which::Hash => "4. artifact sha256 vs sha256sum / openssl",
        Which::Logs => "5. peak memory with a huge stdout",
        Which::Check => "6. cold start of dockproof check",
        Which::Copy => "7. job scenarios over the copy workspace transport",
        Which::Suite => "8. a suite on the fake as a user runs it",
        Which::Cst => "9. dockproof cst vs container-structure-test",
    }
}

impl Bench {
    fn dir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.temp.path().join(name);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(dir)
    }

    /// `dockproof run` on `backend` with the checkout's fixtures, no history.
    fn dockproof_run(&self, backend: &str, work_dir: &Path) -> Command {
        let mut command = Command::new(self.bin.join("dockproof"));
        command
            .current_dir(&self.root)
            .env_remove("FAKE_DOCKER_STATE")
            .args(["run", "--no-history", "--backend", backend]);
        self.with_binaries(&mut command)
            .arg("--work-dir")
            .arg(work_dir);
        command
    }

    /// `command` given the fake-docker built with dockproof, its images and the fixture images.
    fn with_binaries<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        command
            .arg("--fake-docker")
            .arg(self.bin.join("fake-docker"))
            .arg("--fake-images")
            .arg(self.root.join("fixtures/fake-images"))
            .arg("--fixture-images")
            .arg(self.root.join("fixtures/images"))
    }

    /// Benchmark 1's job scenarios (1 MiB input each) timed, round by round, by
    /// fixtures/bench/jobs.sh and then by the two dockproof runs `command` makes for
    /// `variants` (given the work dir; the scenarios directory is appended): the wall
    /// times per round as [script, first variant, second variant]. Directories and logs
    /// are named after `prefix`.
    fn against_the_script(
        &self,
        prefix: &str,
        variants: [&str; 2],
        command: impl Fn(&str, &Path) -> Command,
    ) -> Result<[Vec<f64>; 3]> {
        let count = self.sizes.daemon_scenarios;
        let scenarios = self.dir(&format!("{prefix}-scenarios"))?;
        workload::write_scenarios(&scenarios, count, |index| {
            workload::job_scenario(&format!("bench-job-{}", index + 1), index as u64, 1 << 20)
        })?;
        self.ensure_image()?;
        let logs = self.dir(&format!("{prefix}-logs"))?;
        let mut times: [Vec<f64>; 3] = Default::default();
        for round in 0..SCRIPT_ROUNDS {
            let script_work = self.dir(&format!("{prefix}-script-work-{round}"))?;
            let script = measure::run_ok(
                Command::new("bash")
                    .arg(self.root.join("fixtures/bench/jobs.sh"))
                    .arg(count.to_string())
                    .arg(&script_work)
                    .arg(&self.label),
                Duration::from_secs(600),
                &logs.join(format!("script-{round}")),
                false,
            )?;
            times[0].push(script.seconds());
            for (slot, variant) in [(1, variants[0]), (2, variants[1])] {
                let work = self.dir(&format!("{prefix}-{variant}-{round}"))?;
                let run = measure::run_ok(
                    command(variant, &work).arg(&scenarios),
                    Duration::from_secs(600),
                    &logs.join(format!("{variant}-{round}")),
                    false,
                )?;
                times[slot].push(run.seconds());
            }
        }
        Ok(times)
    }

    /// 1. Twenty job scenarios by dockproof (both real backends, `-j`) vs `fixtures/bench/jobs.sh`.
    fn script(&self) -> Vec<Row> {
        let count = self.sizes.daemon_scenarios;
        let method = |backend: &str| {
            format!(
                "{count} job scenarios (stage 2 inputs incl. 1 MiB → run job-runner locked down → check exit, stdout, stderr, outputs → upload 2 artifacts, read back and sha256-verified) by `dockproof run --backend {backend} -j {}` vs fixtures/bench/jobs.sh doing the same with one `docker run --rm` per job, sequentially; wall time, best of {SCRIPT_ROUNDS} interleaved rounds (script, docker-cli, docker-api)",
                self.jobs
            )
        };
        let target = Target::ratio(Compare::AtMost, 0.65, "≤ 0.65× script");
        let rows = [
            Row::new(
                Which::Script,
                "1-cli",
                "daemon vs script (docker-cli)",
                method("docker-cli"),
                target.clone(),
            ),
            Row::new(
                Which::Script,
                "1-api",
                "daemon vs script (docker-api)",
                method("docker-api"),
                target,
            ),
        ];
        if self.daemon.is_none() {
            return rows.into_iter().map(|row| row.skipped(NO_DAEMON)).collect();
        }
        let measured =
            self.against_the_script("script", ["docker-cli", "docker-api"], |backend, work| {
                let mut command = self.dockproof_run(backend, work);
                command.args(["-j", &self.jobs.to_string()]);
                command
            });
        let best = |times: &[f64]| times.iter().copied().fold(f64::INFINITY, f64::min);
        match measured {
            Ok(times) => {
                let details = json!({ "scenarios": count, "scriptS": times[0], "dockerCliS": times[1], "dockerApiS": times[2] });
                let baseline = Figure::new("bash script", best(&times[0]), "s");
                let [cli_row, api_row] = rows;
                vec![
                    cli_row.measured(
                        Some(baseline.clone()),
                        Figure::new("dockproof", best(&times[1]), "s"),
                        details.clone(),
                    ),
                    api_row.measured(
                        Some(baseline),
                        Figure::new("dockproof", best(&times[2]), "s"),
                        details,
                    ),
                ]
            }
            Err(error) => rows.into_iter().map(|row| row.failed(&error)).collect(),
        }
    }

    /// Benchmark 7, benchmark 1's job scenarios (1 MiB input each) by `dockproof run --backend
    /// docker-cli --workspace-transport copy` on the local daemon, against the same run
    /// over `bind` and against fixtures/bench/jobs.sh. `copy` adds per job a volume
    /// create and remove and two archive copies through the docker CLI (four CLI calls
    /// of ~50-100 ms here, 8 jobs at once), so it cannot match `bind`: the target is
    /// at most 1.5× `bind`, i.e. ≤ 0.75× the script (bind's own target is ≤ 0.5×) —
    /// remote hosts must stay clearly faster than the script a user would write.
    fn copy(&self) -> Vec<Row> {
        let count = self.sizes.daemon_scenarios;
        let versus_bind = Row::new(
            Which::Copy,
            "7-bind",
            "copy vs bind transport (docker-cli)",
            format!(
                "the same {count} job scenarios (1 MiB input each) by `dockproof run --backend docker-cli -j {}` over `--workspace-transport copy` (a volume per job, the workspace copied in and back) vs over `bind` (the host directory mounted); wall time, best of {SCRIPT_ROUNDS} interleaved rounds",
                self.jobs
            ),
            Target::ratio(Compare::AtMost, 1.5, "≤ 1.5× bind"),
        );
        let row = Row::new(
            Which::Copy,
            "7-copy",
            "copy transport vs script (docker-cli)",
            format!(
                "benchmark 1's {count} job scenarios (1 MiB input each) by `dockproof run --backend docker-cli --workspace-transport copy -j {}` (workspace in a volume, copied in and back per job) vs fixtures/bench/jobs.sh; the same run over `bind` is measured alongside (ratio copy ÷ bind in details); wall time, best of {SCRIPT_ROUNDS} interleaved rounds (script, bind, copy)",
                self.jobs
            ),
            Target::ratio(Compare::AtMost, 0.75, "≤ 0.75× script (≤ 1.5× bind)"),
        );
        if self.daemon.is_none() {
            return vec![row.skipped(NO_DAEMON), versus_bind.skipped(NO_DAEMON)];
        }
        let measured = self.against_the_script("copy", ["bind", "copy"], |transport, work| {
            let mut command = self.dockproof_run("docker-cli", work);
            command
                .args(["--workspace-transport", transport])
                .args(["-j", &self.jobs.to_string()]);
            command
        });
        let best = |times: &[f64]| times.iter().copied().fold(f64::INFINITY, f64::min);
        match measured {
            Ok(times) => {
                let copy_to_bind = best(&times[2]) / best(&times[1]);
                let details = json!({ "scenarios": count, "scriptS": times[0], "bindS": times[1], "copyS": times[2], "copyToBind": copy_to_bind });
                let mut row = row.measured(
                    Some(Figure::new("bash script", best(&times[0]), "s")),
                    Figure::new("dockproof copy", best(&times[2]), "s"),
                    details,
                );
                row.method
                    .push_str(&format!("; copy ÷ bind = {copy_to_bind:.2}×"));
                let versus_bind = versus_bind.measured(
                    Some(Figure::new("bind", best(&times[1]), "s")),
                    Figure::new("copy", best(&times[2]), "s"),
                    row.details.clone(),
                );
                vec![row, versus_bind]
            }
            Err(error) => vec![row.failed(&error), versus_bind.failed(&error)],
        }
    }

    /// 8. A suite of job scenarios on the fake run the way a user runs one: `dockproof run
    /// --backend fake DIR` with the default parallelism, reports and run history.
    fn suite(&self) -> Row {
        let count = self.sizes.suite_scenarios;
        let row = Row::new(
            Which::Suite,
            "8",
            "a suite on the fake, end to end",
            format!(
                "{count} generated job scenarios ({} steps each, 64 KiB input) by `dockproof run --backend fake DIR` as a user runs it: default parallelism, the default reports (JSON, JUnit, Markdown, HTML) and the run history written; the whole process, start to exit; wall time per scenario",
                workload::JOB_SCENARIO_STEPS
            ),
            Target::absolute(Compare::AtMost, 5.0, "≤ 5 ms per scenario"),
        );
        let measured = (|| -> Result<Measured> {
            let dir = self.dir("suite")?;
            let scenarios = self.dir("suite/scenarios")?;
            workload::write_scenarios(&scenarios, count, |index| {
                workload::job_scenario(&format!("suite-job-{index:04}"), index as u64, 64 << 10)
            })?;
            let work = self.dir("suite/work")?;
            let mut command = Command::new(self.bin.join("dockproof"));
            command
                .current_dir(&dir)
                .env_remove("FAKE_DOCKER_STATE")
                .args(["run", "--backend", "fake", "--no-project"]);
            self.with_binaries(&mut command)
                .arg("--work-dir")
                .arg(&work)
                .arg("--history")
                .arg(dir.join("history.sqlite"))
                .arg("--report-dir")
                .arg(dir.join("reports"))
                .arg(&scenarios);
            measure::run_ok(
                &mut command,
                Duration::from_secs(600),
                &dir.join("run"),
                false,
            )
        })();
        match measured {
            Ok(run) => {
                let per_scenario = run.seconds() * 1000.0 / count as f64;
                let details = json!({ "scenarios": count, "wallS": run.seconds(), "msPerScenario": per_scenario });
                row.measured(
                    None,
                    Figure::new("per scenario", per_scenario, "ms"),
                    details,
                )
            }
            Err(error) => row.failed(&error),
        }
    }

    /// Make sure the job-runner image exists (dockproof builds its fixture images on demand).
    fn ensure_image(&self) -> Result<()> {
        let dir = self.dir("warm-up")?;
        let scenario = dir.join("warm-up.yaml");
        std::fs::write(&scenario, workload::single_run_scenario("warm-up"))
            .context("cannot write the warm-up scenario")?;
        measure::run_ok(
            self.dockproof_run("docker-cli", &dir).arg(&scenario),
            Duration::from_secs(600),
            &dir.join("log"),
            false,
        )?;
        Ok(())
    }

    /// 2. One single-container scenario vs a bare `docker run --rm` of the same image and command.
    fn overhead(&self) -> Vec<Row> {
        let repeats = self.sizes.overhead_repeats;
        let method = |backend: &str| {
            format!(
                "a scenario with one `run` of {IMAGE} `job` (no inputs) by `dockproof run --backend {backend}` (process start to exit: load, the image's check while its container is created, start attached and wait, how it ended (docker-cli: the daemon's die event; docker-api: inspect), remove; the final sweep lists only what the run may have left) vs `docker run --rm -v WS:/workspace {IMAGE} job`; median of {repeats} runs each, interleaved"
            )
        };
        let target = Target::ratio(Compare::AtMost, 1.15, "≤ 1.15× docker run");
        let rows = [
            Row::new(
                Which::Overhead,
                "2-cli",
                "per-container overhead (docker-cli)",
                method("docker-cli"),
                target.clone(),
            ),
            Row::new(
                Which::Overhead,
                "2-api",
                "per-container overhead (docker-api)",
                method("docker-api"),
                target,
            ),
        ];
        if self.daemon.is_none() {
            return rows.into_iter().map(|row| row.skipped(NO_DAEMON)).collect();
        }
        let measured = (|| -> Result<[Vec<f64>; 3]> {
            self.ensure_image()?;
            let dir = self.dir("overhead")?;
            let scenario = dir.join("one-run.yaml");
            std::fs::write(&scenario, workload::single_run_scenario("one-run"))
                .context("cannot write the scenario")?;
            let workspace = self.dir("overhead/ws")?;
            let mut times: [Vec<f64>; 3] = Default::default();
            for repeat in 0..repeats {
                let bare = measure::run_ok(
                    Command::new("docker")
                        .args([
                            "run",
                            "--rm",
                            "--label",
                            &format!("dockproof.bench={}", self.label),
                            "--volume",
                        ])
                        .arg(format!("{}:/workspace", workspace.display()))
                        .args([IMAGE, "job"]),
                    Duration::from_secs(120),
                    &dir.join(format!("bare-{repeat}")),
                    false,
                )?;
                times[0].push(bare.seconds());
                for (slot, backend) in [(1, "docker-cli"), (2, "docker-api")] {
                    let work = self.dir(&format!("overhead/{backend}"))?;
                    let run = measure::run_ok(
                        self.dockproof_run(backend, &work).arg(&scenario),
                        Duration::from_secs(120),
                        &dir.join(format!("{backend}-{repeat}")),
                        false,
                    )?;
                    times[slot].push(run.seconds());
                }
            }
            Ok(times)
        })();
        match measured {
            Ok(mut times) => {
                let runs = json!({ "dockerRunS": times[0], "dockerCliS": times[1], "dockerApiS": times[2] });
                let bare = Figure::new("docker run", measure::median(&mut times[0]), "s");
                let [cli_row, api_row] = rows;
                vec![
                    cli_row.measured(
                        Some(bare.clone()),
                        Figure::new("dockproof", measure::median(&mut times[1]), "s"),
                        runs.clone(),
                    ),
                    api_row.measured(
                        Some(bare),
                        Figure::new("dockproof", measure::median(&mut times[2]), "s"),
                        runs,
                    ),
                ]
            }
            Err(error) => rows.into_iter().map(|row| row.failed(&error)).collect(),
        }
    }

    /// 3. Generated job scenarios on the fake backend.
    fn fake(&self) -> Vec<Row> {
        let count = self.sizes.fake_scenarios;
        let method = format!(
            "{count} generated job scenarios ({} steps each: stage 2 inputs incl. 64 KiB, run, 2 uploads) by `dockproof run --backend fake -j {}`; scenarios per second of wall time; per step = wall ÷ steps; the spawn cost is the median of 50 `fake-docker version` runs",
            workload::JOB_SCENARIO_STEPS,
            self.jobs
        );
        let row = Row::new(
            Which::Fake,
            "3",
            "fake backend throughput",
            method,
            Target::absolute(Compare::AtLeast, 200.0, "≥ 200 scenarios/s"),
        );
        let measured = (|| -> Result<(Measured, f64)> {
            let dir = self.dir("fake")?;
            let scenarios = self.dir("fake/scenarios")?;
            workload::write_scenarios(&scenarios, count, |index| {
                workload::job_scenario(&format!("fake-job-{index:04}"), index as u64, 64 << 10)
            })?;
            let mut spawns = Vec::new();
            for index in 0..50 {
                let spawn = measure::run_ok(
                    Command::new(self.bin.join("fake-docker"))
                        .arg("version")
                        .env("FAKE_DOCKER_STATE", dir.join("state")),
                    Duration::from_secs(30),
                    &dir.join(format!("spawn-{index}")),
                    false,
                )?;
                spawns.push(spawn.seconds());
            }
            let work = self.dir("fake/work")?;
            let run = measure::run_ok(
                self.dockproof_run("fake", &work)
                    .args(["-j", &self.jobs.to_string()])
                    .arg(&scenarios),
                Duration::from_secs(600),
                &dir.join("run"),
                false,
            )?;
            Ok((run, measure::median(&mut spawns)))
        })();
        match measured {
            Ok((run, spawn)) => {
                let steps = count * workload::JOB_SCENARIO_STEPS;
                let details = json!({
                    "scenarios": count,
                    "wallS": run.seconds(),
                    "msPerScenario": run.seconds() * 1000.0 / count as f64,
                    "msPerStep": run.seconds() * 1000.0 / steps as f64,
                    "fakeDockerSpawnMs": spawn * 1000.0,
                });
                let per_step = format!(
                    "; measured: {:.2} ms of wall per step, {:.1} ms per scenario, one fake-docker spawn {:.1} ms",
                    run.seconds() * 1000.0 / steps as f64,
                    run.seconds() * 1000.0 / count as f64,
                    spawn * 1000.0
                );
                let mut row = row.measured(
                    None,
                    Figure::new("dockproof", count as f64 / run.seconds(), "scenarios/s"),
                    details,
                );
                row.method.push_str(&per_step);
                vec![row]
            }
            Err(error) => vec![row.failed(&error)],
        }
    }

    /// 4. dockproof's artifact sha256 vs sha256sum and openssl on one large file.
    fn hash(&self) -> Row {
        let bytes = self.sizes.hash_bytes;
        let method = format!(
            "sha256 of one {} file (in the page cache) by `dockproof hash` (the artifact/upload checksum code) vs `sha256sum` and `openssl dgst -sha256`; best of 3 each after a warm-up read; ratio = the faster baseline's time ÷ dockproof's (throughput ratio)",
            size_text(bytes)
        );
        let row = Row::new(
            Which::Hash,
            "4",
            "sha256 over a large file",
            method,
            Target::ratio(Compare::AtLeast, 0.9, "≥ 0.9× the faster"),
        );
        let measured = (|| -> Result<(f64, f64, f64)> {
            let dir = self.dir("hash")?;
            let file = dir.join("blob.bin");
            workload::random_file(&file, bytes)?;
            let tools: [(&str, Vec<String>); 3] = [
                (
                    "dockproof",
                    vec![
                        self.bin.join("dockproof").display().to_string(),
                        "hash".into(),
                    ],
                ),
                ("sha256sum", vec!["sha256sum".into()]),
                (
                    "openssl",
                    vec![
                        "openssl".into(),
                        "dgst".into(),
                        "-sha256".into(),
                        "-r".into(),
                    ],
                ),
            ];
            let mut best = [f64::INFINITY; 3];
            let mut digests = Vec::new();
            for round in 0..4 {
                for (index, (name, argv)) in tools.iter().enumerate() {
                    let log = dir.join(format!("{name}-{round}"));
                    let run = measure::run_ok(
                        Command::new(&argv[0]).args(&argv[1..]).arg(&file),
                        Duration::from_secs(300),
                        &log,
                        false,
                    )?;
                    // Round 0 only warms the page cache.
                    if round > 0 {
                        best[index] = best[index].min(run.seconds());
                    }
                    let output =
                        std::fs::read_to_string(log.with_extension("stdout")).unwrap_or_default();
                    digests.push((
                        name,
                        output
                            .split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .trim_start_matches('*')
                            .to_owned(),
                    ));
                }
            }
            if digests
                .iter()
                .any(|(_, digest)| digest != &digests[0].1 || digest.len() != 64)
            {
                bail!("the tools disagree on the digest: {digests:?}");
            }
            std::fs::remove_file(&file).ok();
            Ok((best[0], best[1], best[2]))
        })();
        match measured {
            Ok((dockproof, sha256sum, openssl)) => {
                let mib = bytes as f64 / f64::from(1 << 20);
                let (name, fastest) = if openssl <= sha256sum {
                    ("openssl", openssl)
                } else {
                    ("sha256sum", sha256sum)
                };
                let details = json!({
                    "bytes": bytes,
                    "seconds": { "dockproof": dockproof, "sha256sum": sha256sum, "openssl": openssl },
                    "mibPerS": { "dockproof": mib / dockproof, "sha256sum": mib / sha256sum, "openssl": mib / openssl },
                });
                // Judged on throughput: dockproof's ÷ the faster baseline's.
                row.measured(
                    Some(Figure::new(name, mib / fastest, "MiB/s")),
                    Figure::new("dockproof", mib / dockproof, "MiB/s"),
                    details,
                )
            }
            Err(error) => row.failed(&error),
        }
    }

    /// 5. Peak RSS of dockproof while a job prints a huge log, on every backend.
    fn logs(&self) -> Vec<Row> {
        let bytes = self.sizes.log_bytes;
        let method = |backend: &str| {
            format!(
                "a job printing a {} file of 1 KiB lines on stdout (`cat`, staged into the workspace) under `dockproof run --backend {backend} --logs-dir DIR`; peak RSS = the largest VmHWM of the dockproof process, polled every 5 ms; the record's last stdout line and the log file's size are checked",
                size_text(bytes)
            )
        };
        let target = || Target::absolute(Compare::AtMost, 64.0, "≤ 64 MiB");
        let rows: Vec<Row> = ["fake", "docker-cli", "docker-api"]
            .into_iter()
            .map(|backend| {
                Row::new(
                    Which::Logs,
                    &format!("5-{backend}"),
                    &format!("log memory ({backend})"),
                    method(backend),
                    target(),
                )
            })
            .collect();
        let dir = match self.dir("logs") {
            Ok(dir) => dir,
            Err(error) => return rows.into_iter().map(|row| row.failed(&error)).collect(),
        };
        let prepared = (|| -> Result<(PathBuf, String)> {
            let last_line = workload::log_file(&dir.join("big.log"), bytes)?;
            let scenario = dir.join("big-log.yaml");
            std::fs::write(
                &scenario,
                workload::big_log_scenario("big-log", "big.log", bytes, &last_line),
            )
            .context("cannot write the scenario")?;
            Ok((scenario, last_line))
        })();
        let (scenario, last_line) = match prepared {
            Ok(prepared) => prepared,
            Err(error) => return rows.into_iter().map(|row| row.failed(&error)).collect(),
        };
        let result = rows
            .into_iter()
            .map(|row| {
                let backend = row.id.trim_start_matches("5-").to_owned();
                if backend != "fake" && self.daemon.is_none() {
                    return row.skipped(NO_DAEMON);
                }
                match self.log_run(&dir, &scenario, &backend, bytes, &last_line) {
                    Ok((run, details)) => {
                        let peak = run.peak_rss_kib.unwrap_or(0) as f64 / 1024.0;
                        row.measured(None, Figure::new("peak RSS", peak, "MiB"), details)
                    }
                    Err(error) => row.failed(&error),
                }
            })
            .collect();
        std::fs::remove_dir_all(&dir).ok();
        result
    }

    fn log_run(
        &self,
        dir: &Path,
        scenario: &Path,
        backend: &str,
        bytes: u64,
        last_line: &str,
    ) -> Result<(Measured, Value)> {
        let work = self.dir(&format!("logs-{backend}"))?;
        let logs_dir = work.join("logs");
        let report = work.join("report.json");
        let run = measure::run_ok(
            self.dockproof_run(backend, &work)
                .arg("--json")
                .arg(&report)
                .arg("--logs-dir")
                .arg(&logs_dir)
                .arg(scenario),
            Duration::from_secs(900),
            &dir.join(format!("run-{backend}")),
            true,
        )?;
        let text = std::fs::read_to_string(&report)
            .with_context(|| format!("cannot read {}", report.display()))?;
        let document: Value = serde_json::from_str(&text).context("unreadable JSON report")?;
        let docker = &document["scenarios"][0]["record"]["context"]["docker"];
        let last = docker["logTail"]["stdout"]
            .as_array()
            .and_then(|lines| lines.last())
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !last.starts_with(last_line) {
            bail!("the record's last stdout line is {last:?}, expected one starting {last_line:?}");
        }
        let logged = docker["logFiles"]["stdoutBytes"].as_u64().unwrap_or(0);
        let on_disk = std::fs::metadata(docker["logFiles"]["stdout"].as_str().unwrap_or_default())
            .map_or(0, |metadata| metadata.len());
        if logged != bytes || on_disk != bytes {
            bail!(
                "the whole log is {bytes} bytes, but the record says {logged} and the log file holds {on_disk}"
            );
        }
        std::fs::remove_dir_all(&work).ok();
        let details = json!({
            "logBytes": bytes,
            "wallS": run.seconds(),
            "peakRssKib": run.peak_rss_kib,
            "lastLine": last,
        });
        Ok((run, details))
    }

    /// 6. `dockproof check` over many generated scenario files.
    fn check(&self) -> Row {
        let count = self.sizes.check_files;
        let method = format!(
            "`dockproof check DIR` over {count} generated scenario files (job scenarios with staging, expectations and uploads); median of 5 runs, each a fresh process"
        );
        let row = Row::new(
            Which::Check,
            "6",
            "cold start: check",
            method,
            Target::absolute(Compare::AtMost, 1.0, "≤ 1 s"),
        );
        let measured = (|| -> Result<Vec<f64>> {
            let dir = self.dir("check")?;
            let scenarios = self.dir("check/scenarios")?;
            workload::write_scenarios(&scenarios, count, |index| {
                workload::job_scenario(&format!("check-job-{index:04}"), index as u64, 1 << 20)
            })?;
            (0..5)
                .map(|round| {
                    let mut command = Command::new(self.bin.join("dockproof"));
                    command.arg("check").arg(&scenarios);
                    measure::run_ok(
                        &mut command,
                        Duration::from_secs(120),
                        &dir.join(format!("check-{round}")),
                        false,
                    )
                    .map(|run| run.seconds())
                })
                .collect()
        })();
        match measured {
            Ok(mut times) => {
                let details = json!({ "files": count, "runsS": times.clone() });
                row.measured(
                    None,
                    Figure::new("dockproof check", measure::median(&mut times), "s"),
                    details,
                )
            }
            Err(error) => row.failed(&error),
        }
    }

    /// Remove any container a baseline left behind (dockproof removes its own).
    fn remove_leftovers(&self) {
        if self.daemon.is_none() {
            return;
        }
        let listed = Command::new("docker")
            .args([
                "ps",
                "--all",
                "--quiet",
                "--filter",
                &format!("label=dockproof.bench={}", self.label),
            ])
            .output();
        if let Ok(output) = listed {
            let ids: Vec<String> = String::from_utf8_lossy(&output.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            if !ids.is_empty() {
                let _ = Command::new("docker")
                    .args(["rm", "--force"])
                    .args(&ids)
                    .output();
            }
        }
    }
}

/// The daemon's version, when `docker version` answers within 15 s.
fn daemon_version() -> Option<String> {
    let temp = tempfile::tempdir().ok()?;
    let log = temp.path().join("version");
    let run = measure::run(
        Command::new("docker").args(["version", "--format", "{{.Server.Version}}"]),
        Duration::from_secs(15),
        &log,
        false,
    )
    .ok()?;
    let version = std::fs::read_to_string(log.with_extension("stdout"))
        .ok()?
        .trim()
        .to_owned();
    (run.code == 0 && !version.is_empty()).then_some(version)
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|line| line.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_owned())
}

fn git_sha(root: &Path) -> Option<String> {
    let output = Command::new("git")
        .current_dir(root)
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn size_text(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{} GiB", bytes >> 30)
    } else {
        format!("{} MiB", bytes >> 20)
    }
}

/// The results as a plain-text table, then each row's method.
fn table(rows: &[Row], quick: bool) -> String {
    let header = [
        "#",
        "benchmark",
        "baseline",
        "dockproof",
        "ratio",
        "target",
        "result",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|row| {
            let ratio = match (row.ratio, row.target.judged) {
                (Some(ratio), Judged::Ratio) => format!("{ratio:.2}×"),
                (Some(ratio), Judged::Absolute) => format!("{ratio:.2}× limit"),
                (None, _) => "-".into(),
            };
            let result = match &row.status {
                Status::Met => "met".to_owned(),
                Status::Missed => "MISSED".to_owned(),
                Status::Skipped(reason) => reason.clone(),
                Status::Failed(_) => "FAILED (see below)".to_owned(),
            };
            [
                row.id.clone(),
                row.title.clone(),
                row.baseline.as_ref().map_or("-".into(), Figure::display),
                row.dockproof.as_ref().map_or("-".into(), Figure::display),
                ratio,
                row.target.text.clone(),
                result,
            ]
        })
        .collect();
    let mut widths = header.map(|title| title.chars().count());
    for line in &cells {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::from("\n");
    let mut line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell}{}", " ".repeat(width - cell.chars().count())))
            .collect();
        let _ = writeln!(text, "{}", padded.join("  ").trim_end());
    };
    line(&header.map(str::to_owned));
    line(&widths.map(|width| "-".repeat(width)));
    for row in &cells {
        line(row);
    }
    if quick {
        text.push_str("\n--quick: small sizes; the figures are not comparable to the targets.\n");
    }
    text.push_str("\nmethods:\n");
    for row in rows {
        let _ = writeln!(text, "  {}: {}", row.id, row.method);
        if let Status::Failed(reason) = &row.status {
            let _ = writeln!(text, "     FAILED: {}", reason.replace('\n', "\n     "));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readme_alone_publishes_the_last_full_run() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            bench: BenchArgs,
        }
        let parse = |args: &[&str]| {
            <Cli as clap::Parser>::try_parse_from(args)
                .map(|cli| cli.bench.readme)
                .map_err(|error| error.to_string())
        };
        assert_eq!(
            parse(&["bench", "--readme"]),
            Ok(Some(PathBuf::from(LAST_FULL_RUN)))
        );
        assert_eq!(
            parse(&["bench", "--readme", "other.json"]),
            Ok(Some(PathBuf::from("other.json")))
        );
        assert_eq!(parse(&["bench"]), Ok(None));
    }

    #[test]
    fn targets_are_judged_on_the_right_figure() {
        let ratio = Row::new(
            Which::Script,
            "1",
            "t",
            String::new(),
            Target::ratio(Compare::AtMost, 0.5, "≤ 0.5×"),
        );
        let met = ratio.clone().measured(
            Some(Figure::new("b", 10.0, "s")),
            Figure::new("d", 4.0, "s"),
            json!({}),
        );
        assert!(matches!(met.status, Status::Met));
        assert_eq!(met.ratio, Some(0.4));
        let missed = ratio.measured(
            Some(Figure::new("b", 10.0, "s")),
            Figure::new("d", 6.0, "s"),
            json!({}),
        );
        assert!(matches!(missed.status, Status::Missed));
        let absolute = Row::new(
            Which::Fake,
            "3",
            "t",
            String::new(),
            Target::absolute(Compare::AtLeast, 200.0, "≥ 200"),
        );
        let missed = absolute.measured(None, Figure::new("d", 100.0, "scenarios/s"), json!({}));
        assert!(matches!(missed.status, Status::Missed));
        assert_eq!(missed.ratio, Some(0.5));
    }

    #[test]
    fn the_table_says_missed_and_skipped_plainly() {
        let target = Target::absolute(Compare::AtMost, 1.0, "≤ 1 s");
        let rows = vec![
            Row::new(Which::Check, "6", "cold start", "m".into(), target.clone()).measured(
                None,
                Figure::new("check", 2.0, "s"),
                json!({}),
            ),
            Row::new(Which::Script, "1-cli", "script", "m".into(), target).skipped(NO_DAEMON),
        ];
        let text = table(&rows, false);
        assert!(text.contains("MISSED"), "{text}");
        assert!(text.contains("skipped: no daemon"), "{text}");
        assert!(text.contains("2.00× limit"), "{text}");
    }
}
