//! The `dockproof` command line: thin glue over the library.
//!
//! Exit codes: 0 all passed, 1 a check failed, 2 usage or configuration error.

/// `println!` for the command line's output: a closed stdout (`dockproof schema | head -1`)
/// is not an error and never a panic; what no one reads is dropped, and the command goes on
/// (a run still cleans up and exits with its verdict).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

mod cst_cli;
mod diagnostics;
mod fleet;
mod project_cli;
mod setup;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use dockproof::run::Exit;
use dockproof::scenario::{self, LoadedScenario};

/// End-to-end validation of Docker jobs: scenario files in, JUnit out.
#[derive(Debug, Parser)]
#[command(name = "dockproof", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The project file (default: the nearest dockproof.toml at or above the working
    /// directory). Its paths are relative to itself; flags override it.
    #[arg(long, global = true, env = "DOCKPROOF_PROJECT", value_name = "FILE")]
    project: Option<PathBuf>,
    /// Ignore any dockproof.toml.
    #[arg(long, global = true, conflicts_with = "project")]
    no_project: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run scenarios and report the results.
    Run(Box<RunArgs>),
    /// The canary gate: canary-tagged scenarios N times on every host, then go (exit 0) or no-go (exit 1).
    Canary(Box<CanaryArgs>),
    /// Validate scenario files without running anything.
    Check {
        /// Scenario files or directories (searched for *.yaml).
        #[arg(default_value = "scenarios")]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        vars: VarArgs,
    },
    /// Print the JSON Schema of scenario files (`--project-file`: of the project file).
    Schema {
        /// The schema of dockproof.toml instead.
        #[arg(long = "project-file")]
        project_file: bool,
    },
    /// Write a starter layout: dockproof.toml, a job scenario with its input, a workflow.
    Init {
        /// Where (created if missing).
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Remove what killed runs left: labelled containers and dockproof-* temp dirs.
    Clean(CleanArgs),
    /// Success rates per scenario and per host, and flaky scenarios, from the run history.
    History {
        /// The history database (default: $DOCKPROOF_HISTORY, else the user's data dir).
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
        /// How many recent runs of each scenario (or host) to count.
        #[arg(long, default_value_t = 20)]
        last: usize,
    },
    /// Run scenarios on a real daemon and write what each container did as a recording
    /// that `--backend fake` replays; `--check` compares with the recordings instead
    /// (drift fails the scenario, exit 1). See docs/recordings.md.
    Record(Box<RecordArgs>),
    /// Run container-structure-test config files against an image (CST's semantics, in parallel).
    Cst(Box<cst_cli::CstCommand>),
    /// sha256 of files as artifacts are checked (`HASH  FILE`, like sha256sum); for benchmarks.
    #[command(hide = true)]
    Hash {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Check Dockerfiles and compose files statically (no daemon), with hadolint's rules
    /// too when it is installed: `file:line:column: RULE message [level, source]`.
    /// Exit 0 clean, 1 a finding at or above the failure threshold, 2 a file or the
    /// configuration could not be read. See docs/lint.md.
    Lint(Box<LintArgs>),
}

/// How long the Docker daemon may take to answer (`--daemon-timeout`), shared by every
/// command that talks to one.
#[derive(Debug, Clone, Copy, Args)]
pub struct DaemonArgs {
    /// How long the Docker daemon may take to answer any request (connecting included)
    /// before the run fails as daemon_unavailable, e.g. `30s` or `2m` (1s to 1h).
    #[arg(
        long,
        value_name = "DURATION",
        env = "DOCKPROOF_DAEMON_TIMEOUT",
        default_value = "30s",
        value_parser = parse_daemon_timeout
    )]
    pub daemon_timeout: std::time::Duration,
}

fn parse_daemon_timeout(text: &str) -> Result<std::time::Duration, String> {
    let timeout = parse_duration(text)?;
    let (least, most) = (
        dockproof::backend::watch::MIN_DAEMON_TIMEOUT,
        std::time::Duration::from_secs(3600),
    );
    if timeout < least || timeout > most {
        return Err(format!(
            "`{text}` is outside 1s..1h: a daemon needs a moment to answer, and a run should not wait for one for hours"
        ));
    }
    Ok(timeout)
}

pub use dockproof::run::BackendKind;

/// The flags every command that runs a suite shares (`run`, `record`, `canary`).
#[derive(Debug, Args)]
pub struct SuiteArgs {
    /// Backend to run on (of the `local` host, with `--host`).
    #[arg(long, value_enum, default_value = "fake", env = "DOCKPROOF_BACKEND")]
    pub backend: BackendKind,
    /// The docker binary for `--backend docker-cli` and real hosts.
    #[arg(long, default_value = "docker", env = "DOCKPROOF_DOCKER")]
    pub docker: PathBuf,
    /// The fake-docker binary (default: next to dockproof, then on PATH).
    #[arg(long, env = "DOCKPROOF_FAKE_DOCKER")]
    pub fake_docker: Option<PathBuf>,
    /// Fake image definition directories for `--backend fake` (repeatable or comma-separated;
    /// `builtin`: the job-runner and web images shipped in dockproof).
    #[arg(
        long,
        default_value = "fixtures/fake-images",
        value_delimiter = ',',
        value_name = "DIR"
    )]
    pub fake_images: Vec<PathBuf>,
    /// Real fixture image directories (a Dockerfile per subdirectory), built on demand on
    /// real daemons (repeatable or comma-separated; `builtin`: the shipped ones).
    #[arg(
        long,
        default_value = "fixtures/images",
        value_delimiter = ',',
        value_name = "DIR"
    )]
    pub fixture_images: Vec<PathBuf>,
    /// Scenarios run at once, on each host (default: `run` the number of cores, `canary` 2).
    #[arg(short, long)]
    pub jobs: Option<usize>,
    /// How job workspaces reach the daemon: `bind` mounts the local directory (the daemon
    /// must see dockproof's files), `copy` keeps it in a volume and copies it in and back,
    /// `auto` probes each host once (a host's `;transport=` wins). See docs/remote-hosts.md.
    #[arg(long, value_name = "auto|bind|copy", default_value = "auto", env = "DOCKPROOF_WORKSPACE_TRANSPORT", value_parser = clap::value_parser!(dockproof::transport::TransportChoice))]
    pub workspace_transport: dockproof::transport::TransportChoice,
    #[command(flatten)]
    pub daemon: DaemonArgs,
}

/// The run's id and its history entry (`run`, `record`, `cst`).
#[derive(Debug, Args)]
pub struct IdentityArgs {
    /// Run id put on everything created (default: derived, deterministic on the fake).
    #[arg(long)]
    pub run_id: Option<String>,
    /// The run-history database (default: $DOCKPROOF_HISTORY, else the user's data dir).
    #[arg(long, value_name = "PATH", conflicts_with = "no_history")]
    pub history: Option<PathBuf>,
    /// Do not record this run in the history database.
    #[arg(long)]
    pub no_history: bool,
}

/// Say a usage or configuration error on stderr; exit 2.
pub(crate) fn usage_error(message: impl std::fmt::Display) -> ExitCode {
    // Paths and messages may hold anything: inert under GitHub Actions.
    eprintln!(
        "error: {}",
        dockproof::report::inert::text(&message.to_string())
    );
    dockproof::run::Exit::Usage.into()
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario files or directories (searched for *.yaml).
    #[arg(default_value = "scenarios")]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    suite: SuiteArgs,
    /// Run the suite on each of these hosts in turn (`NAME=DOCKER_HOST`, `fake://NAME?faults=SPEC`,
    /// `local`; repeatable): scenario names in the reports become `NAME/scenario`.
    #[arg(long = "host", value_name = "HOST", value_parser = clap::value_parser!(dockproof::canary::Host))]
    hosts: Vec<dockproof::canary::Host>,
    /// The docker context to use with the real backends (default: $DOCKER_CONTEXT, then the CLI's current one).
    #[arg(long, env = "DOCKER_CONTEXT", value_name = "NAME")]
    context: Option<String>,
    /// Run a failed scenario again up to N times; a later pass is reported as flaky.
    #[arg(long, default_value_t = 0, value_name = "N")]
    retries: u32,
    /// Run only scenarios carrying one of these tags.
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Run only shard K of N (`K/N`, `count:K/N` or `hash:K/N`), for CI matrices.
    #[arg(long, value_name = "K/N", value_parser = clap::value_parser!(dockproof::partition::Partition))]
    partition: Option<dockproof::partition::Partition>,
    /// Run only scenarios whose name matches this glob (e.g. `job-*`).
    #[arg(long, value_name = "GLOB")]
    filter: Option<String>,
    /// Colour the verdicts: auto (on a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, value_enum, default_value = "auto", value_name = "WHEN")]
    color: dockproof::report::console::ColorChoice,
    /// Write these reports into --report-dir (comma-separated: junit, json, markdown, html).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "FORMATS")]
    report: Vec<ReportFormat>,
    /// Where --report writes: junit.xml, report.json, summary.md, report.html (default
    /// target/dockproof). Given without --report, every format is written there.
    #[arg(long, value_name = "DIR")]
    report_dir: Option<PathBuf>,
    /// Write a JUnit XML report here.
    #[arg(long, value_name = "PATH")]
    junit: Option<PathBuf>,
    /// Write a JSON report (with every job record) here.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Write a self-contained HTML report (a timeline per scenario) here.
    #[arg(long, value_name = "PATH")]
    html: Option<PathBuf>,
    /// Write a Markdown summary here (under GitHub Actions it is also appended to $GITHUB_STEP_SUMMARY).
    #[arg(long, value_name = "PATH")]
    markdown: Option<PathBuf>,
    #[command(flatten)]
    identity: IdentityArgs,
    /// Directory for the run's temporary files (workspaces, filestore, fake state).
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// Recordings: where `record` writes them and where `--backend fake` replays them
    /// from (`DIR/SCENARIO/recording.json`; default `recordings/SCENARIO` beside each
    /// scenario file). See docs/recordings.md.
    #[arg(long, visible_alias = "out", value_name = "DIR")]
    recordings: Option<PathBuf>,
    /// What `record` asked for (not a flag).
    #[arg(skip)]
    recording_mode: Option<dockproof::recordings::RecordingMode>,
    /// Keep every run step's whole stdout and stderr here (`SCENARIO/step-N.stdout.log`); only a tail is held in memory.
    #[arg(long, value_name = "DIR")]
    logs_dir: Option<PathBuf>,
    /// Leave what failed scenarios created (containers, compose project, volume, images,
    /// workspace) in place for debugging, labelled `dockproof.keep-failed`; the end of the
    /// run says how to inspect and remove it (`dockproof clean --run ID`). Off unless given,
    /// in CI too.
    #[arg(long)]
    keep_failed: bool,
    #[command(flatten)]
    vars: VarArgs,
}

/// Scenario variables from the command line (and the project file's `[vars]`).
#[derive(Debug, Clone, Default, Args)]
pub struct VarArgs {
    /// Set a scenario variable, `{{ vars.NAME }}` (repeatable; over the scenario's and the
    /// project file's defaults and `--vars-file`). See docs/scenarios.md, "Variables".
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = dockproof::scenario::vars::parse_var_flag)]
    vars: Vec<(String, String)>,
    /// Read scenario variables from a YAML mapping (`NAME: VALUE`); `--var` wins.
    #[arg(long, value_name = "FILE")]
    vars_file: Option<PathBuf>,
    /// The project file's `[vars]` (not a flag).
    #[arg(skip)]
    project: std::collections::BTreeMap<String, String>,
}

impl VarArgs {
    /// What the loader gets; a vars file that cannot be read is a usage error.
    fn load_options(&self) -> Result<dockproof::scenario::LoadOptions, ExitCode> {
        let mut overrides = match &self.vars_file {
            Some(path) => dockproof::scenario::vars::read_vars_file(path).map_err(|error| {
                usage_error(format!(
                    "{error}\n  = hint: a vars file is a YAML mapping such as `tag: \"2\"`"
                ))
            })?,
            None => Default::default(),
        };
        overrides.extend(self.vars.iter().cloned());
        Ok(dockproof::scenario::LoadOptions {
            vars: dockproof::scenario::VarSources {
                project: self.project.clone(),
                overrides,
            },
            ..Default::default()
        })
    }
}

/// Where `--report` writes when `--report-dir` is not given.
pub(crate) const DEFAULT_REPORT_DIR: &str = "target/dockproof";

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Re-run on the real daemon and compare with the recordings instead of writing them:
    /// each scenario whose containers now behave differently fails with the drift.
    #[arg(long)]
    check: bool,
    #[command(flatten)]
    run: RunArgs,
}

/// A report `--report` can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Junit,
    Json,
    Markdown,
    Html,
}

impl RunArgs {
    /// Turn `--report` formats into report paths under `--report-dir`; a path given with
    /// its own flag (`--junit PATH`, ...) wins.
    pub fn resolve_reports(&mut self) {
        let formats = if self.report.is_empty() && self.report_dir.is_some() {
            // `--report-dir` alone: asking where the reports go is asking for them.
            vec![
                ReportFormat::Junit,
                ReportFormat::Json,
                ReportFormat::Markdown,
                ReportFormat::Html,
            ]
        } else {
            self.report.clone()
        };
        let dir = self
            .report_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_REPORT_DIR));
        for format in formats {
            let (slot, file) = match format {
                ReportFormat::Junit => (&mut self.junit, "junit.xml"),
                ReportFormat::Json => (&mut self.json, "report.json"),
                ReportFormat::Markdown => (&mut self.markdown, "summary.md"),
                ReportFormat::Html => (&mut self.html, "report.html"),
            };
            if slot.is_none() {
                *slot = Some(dir.join(file));
            }
        }
    }
}

#[derive(Debug, Args)]
pub struct CanaryArgs {
    /// Scenario files or directories (only those tagged `--tag` run).
    #[arg(default_value = "scenarios")]
    paths: Vec<PathBuf>,
    /// A host: `NAME=DOCKER_HOST`, `fake://NAME?faults=SPEC` or `local` (repeatable; default `local`).
    #[arg(long = "host", value_name = "HOST")]
    hosts: Vec<dockproof::canary::Host>,
    /// A YAML list of hosts: `{ name, docker_host | fake: { faults }, labels }`.
    #[arg(long, value_name = "PATH")]
    hosts_file: Option<PathBuf>,
    /// Runs of the suite per host.
    #[arg(long, default_value_t = 1)]
    repeat: u32,
    /// Gates file (YAML: min_success_rate, max_p95_start_ms, max_failures, no_regression).
    #[arg(long, value_name = "PATH")]
    gates: Option<PathBuf>,
    /// The tag that marks canary scenarios.
    #[arg(long, default_value = "canary")]
    tag: String,
    /// Write the decision, every gate with its threshold and measured value, and the
    /// baseline as canary.json, canary.md and canary-junit.xml here.
    #[arg(long, value_name = "DIR")]
    report_dir: Option<PathBuf>,
    #[command(flatten)]
    suite: SuiteArgs,
    /// Do not read or write the run history (disables the no-regression gate).
    #[arg(long)]
    no_history: bool,
}

#[derive(Debug, Args)]
pub struct CleanArgs {
    /// Where containers live (the fake's are found in the run directories).
    #[arg(long, value_enum, default_value = "docker-cli")]
    backend: BackendKind,
    /// The docker binary for `--backend docker-cli`.
    #[arg(long, default_value = "docker", env = "DOCKPROOF_DOCKER")]
    docker: PathBuf,
    /// The fake-docker binary (default: next to dockproof, then on PATH).
    #[arg(long, env = "DOCKPROOF_FAKE_DOCKER")]
    fake_docker: Option<PathBuf>,
    /// Only what this run created.
    #[arg(long = "run", value_name = "ID")]
    run_id: Option<String>,
    /// Only what is at least this old (e.g. `1h`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    older_than: Option<std::time::Duration>,
    /// Where runs keep their temporary directories (default: the system temp dir).
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// Show what would be removed, remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Clean runs that are still alive too (by default a run whose directory's
    /// `live.lock` is held by a process is left alone, containers and all).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    daemon: DaemonArgs,
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text)
        .map_err(|error| format!("`{text}` is not a duration such as `30m` or `1h`: {error}"))
}

fn clean(args: CleanArgs) -> ExitCode {
    use dockproof::clean::{self, CleanOptions, CleanReport};
    if let Some(run) = &args.run_id
        && let Err(error) = dockproof::run_id::validate(run)
    {
        dockproof::inert_eprintln!("error: {error}");
        return Exit::Usage.into();
    }
    let work_dir = args.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let options = CleanOptions {
        run_id: args.run_id.clone(),
        older_than: args.older_than,
        dry_run: args.dry_run,
        live: if args.force {
            Vec::new()
        } else {
            clean::live_runs(&work_dir)
        },
        force: args.force,
    };
    let fake_docker = dockproof::run::find_fake_docker(args.fake_docker.as_deref());
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return Exit::Usage.into();
        }
    };
    let mut report = CleanReport::default();
    runtime.block_on(async {
        match args.backend {
            BackendKind::DockerCli => {
                let backend = dockproof::backend::cli::CliBackend::new(
                    "docker-cli",
                    args.docker.clone(),
                    Vec::new(),
                )
                .with_daemon_timeout(args.daemon.daemon_timeout);
                clean::containers(&backend, &options, &mut report).await;
            }
            BackendKind::DockerApi => {
                let backend = dockproof::backend::api::ApiBackend::from_env("docker-api")
                    .with_daemon_timeout(args.daemon.daemon_timeout);
                clean::containers(&backend, &options, &mut report).await;
            }
            // The fake's containers live in run directories, reaped below.
            BackendKind::Fake => {}
        }
        clean::directories(&work_dir, fake_docker.as_deref(), &options, &mut report).await;
    });
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for id in &report.containers {
        dockproof::inert_println!("{verb} container {id}");
    }
    for resource in &report.resources {
        dockproof::inert_println!("{verb} {resource}");
    }
    for path in &report.directories {
        dockproof::inert_println!("{verb} {}", path.display());
    }
    for live in &report.kept {
        dockproof::inert_println!(
            "kept run {}: still running (pid {}); `--force` cleans it anyway",
            live.run_id,
            live.pid
        );
    }
    for problem in &report.problems {
        dockproof::inert_eprintln!("error: {problem}");
    }
    out!(
        "{verb} {} container(s) and {} director(ies)",
        report.containers.len(),
        report.directories.len()
    );
    if report.problems.is_empty() {
        Exit::Passed.into()
    } else {
        Exit::Failed.into()
    }
}

fn history(db: Option<PathBuf>, last: usize) -> ExitCode {
    use dockproof::history::{self, History};
    let Some(path) = db.or_else(history::default_path) else {
        eprintln!("error: no history database: pass --db PATH or set DOCKPROOF_HISTORY");
        return Exit::Usage.into();
    };
    if !path.exists() {
        dockproof::inert_eprintln!(
            "error: no history at {} yet: `dockproof run` records every run there",
            path.display()
        );
        return Exit::Usage.into();
    }
    let history = match History::open(&path) {
        Ok(history) => history,
        Err(error) => {
            dockproof::inert_eprintln!("error: {error}");
            return Exit::Usage.into();
        }
    };
    let (scenarios, hosts) = match (history.by_scenario(last), history.by_host(last)) {
        (Ok(scenarios), Ok(hosts)) => (scenarios, hosts),
        (Err(error), _) | (_, Err(error)) => {
            dockproof::inert_eprintln!("error: {error}");
            return Exit::Usage.into();
        }
    };
    let print = |title: &str, rows: &[history::Stats]| {
        let width = rows
            .iter()
            .map(|row| row.name.len())
            .max()
            .unwrap_or(0)
            .max(title.len());
        out!("{title:<width$}  runs  passed  success  last     flaky");
        for row in rows {
            let flaky = if row.flaky { "FLAKY" } else { "" };
            // Scenario names come from scenario files: inert under GitHub Actions.
            dockproof::inert_println!(
                "{:<width$}  {:>4}  {:>6}  {:>6.1}%  {:<7}  {flaky}",
                row.name,
                row.runs,
                row.passed,
                row.success_rate() * 100.0,
                row.last_verdict
            );
        }
        out!();
    };
    dockproof::inert_println!("last {last} run(s) each, from {}\n", path.display());
    print("scenario", &scenarios);
    print("host (backend)", &hosts);
    Exit::Passed.into()
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let sub = matches
        .subcommand()
        .map(|(_, sub)| sub.clone())
        .unwrap_or_default();
    // The project file, for the commands that run a suite.
    let mut command = cli.command;
    if matches!(
        command,
        Command::Run(_)
            | Command::Record(_)
            | Command::Canary(_)
            | Command::Check { .. }
            | Command::Lint(_)
    ) {
        let project = match project_cli::find(cli.project.as_deref(), cli.no_project) {
            Ok(project) => project,
            Err(code) => return code,
        };
        if let Some(project) = &project {
            let applied = match &mut command {
                Command::Run(args) => project_cli::apply_to_run(args, &sub, project),
                Command::Record(args) => project_cli::apply_to_run(&mut args.run, &sub, project),
                Command::Canary(args) => project_cli::apply_to_canary(args, &sub, project),
                Command::Check { paths, vars } => {
                    project_cli::apply_to_check(paths, &sub, project);
                    vars.project = project_cli::project_vars(project);
                    Ok(())
                }
                Command::Lint(args) => {
                    if args.lint_config.is_none() {
                        args.project_lint = project.settings.lint.clone();
                    }
                    Ok(())
                }
                _ => Ok(()),
            };
            if let Err(code) = applied {
                return code;
            }
        }
    }
    match command {
        Command::Schema { project_file } => {
            let text = if project_file {
                serde_json::to_string_pretty(&dockproof::project::schema())
            } else {
                serde_json::to_string_pretty(scenario::schema())
            };
            out!("{}", text.expect("the schema serialises"));
            Exit::Passed.into()
        }
        Command::Init { dir } => project_cli::init(&dir),
        Command::Check { paths, vars } => match load_all(&paths, &vars) {
            Ok(loaded) => {
                out!("{} scenario file(s) valid", loaded.len());
                Exit::Passed.into()
            }
            Err(code) => code,
        },
        Command::Lint(args) => lint(&args),
        Command::Cst(args) => cst_cli::dispatch(*args),
        Command::Hash { files } => hash(&files),
        Command::Clean(args) => clean(args),
        Command::History { db, last } => history(db, last),
        Command::Canary(args) => {
            let loaded = match load_all(&args.paths, &VarArgs::default()) {
                Ok(loaded) => loaded,
                Err(code) => return code,
            };
            fleet::canary(*args, loaded)
        }
        Command::Record(args) => record(*args),
        Command::Run(args) => {
            let loaded = match load_all(&args.paths, &args.vars) {
                Ok(loaded) => loaded,
                Err(code) => return code,
            };
            setup::run(*args, loaded)
        }
    }
}

/// `dockproof record [--check]`: a run on a real daemon that writes (or checks) recordings.
fn record(args: RecordArgs) -> ExitCode {
    use dockproof::recordings::RecordingMode;
    let RecordArgs { check, mut run } = args;
    if let Err(message) = record_hosts(check, run.suite.backend, &run.hosts) {
        return usage_error(message);
    }
    let loaded = match load_all(&run.paths, &run.vars) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let root = run.recordings.clone();
    run.recording_mode = Some(if check {
        RecordingMode::Check { root }
    } else {
        RecordingMode::Record { root }
    });
    let dirs: Vec<PathBuf> = loaded
        .iter()
        .map(|scenario| dockproof::recordings::dir_for(scenario, run.recordings.as_deref()))
        .collect();
    let code = setup::run(run, loaded);
    if !check {
        for dir in dirs {
            if dir.join(dockproof_recording::FILE_NAME).is_file() {
                out!(
                    "recording: {}",
                    dockproof::report::inert::text(&dir.display().to_string())
                );
            }
        }
    }
    code
}

/// Where `record` may run: every host a real daemon (the fake replays recordings, it
/// cannot make them), and one host when writing (two daemons would write the same
/// recording files); `--check` checks each host given, a finding per host per scenario.
fn record_hosts(
    check: bool,
    backend: BackendKind,
    hosts: &[dockproof::canary::Host],
) -> Result<(), String> {
    const FAKE: &str = "`dockproof record` needs a real daemon: pass --backend docker-cli or --backend docker-api (the fake replays recordings, it cannot make them)\n  = hint: DOCKPROOF_BACKEND=docker-cli dockproof record SCENARIOS";
    if hosts.is_empty() {
        return if backend == BackendKind::Fake {
            Err(FAKE.to_owned())
        } else {
            Ok(())
        };
    }
    if let Some(fake) = hosts
        .iter()
        .find(|host| dockproof::run::host_backend(host, backend).0 == BackendKind::Fake)
    {
        return Err(format!(
            "host `{}` is the fake: {FAKE}, or name a real daemon with --host NAME=DOCKER_HOST",
            fake.name
        ));
    }
    if !check && hosts.len() > 1 {
        let names: Vec<&str> = hosts.iter().map(|host| host.name.as_str()).collect();
        return Err(format!(
            "`dockproof record` writes one recording per scenario, so it records on one host, not {} ({}): pass a single --host\n  = hint: to check the recordings against several hosts, use `dockproof record --check --host A --host B`",
            hosts.len(),
            names.join(", ")
        ));
    }
    Ok(())
}

/// Print the sha256 of every file the way artifacts are hashed; exit 2 when one cannot be read.
fn hash(files: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    for file in files {
        match dockproof::workspace::sha256_file(file) {
            Ok((_, sha256)) => dockproof::inert_println!("{sha256}  {}", file.display()),
            Err(error) => {
                dockproof::inert_eprintln!("error: cannot hash {}: {error}", file.display());
                failed = true;
            }
        }
    }
    if failed {
        Exit::Usage.into()
    } else {
        Exit::Passed.into()
    }
}

/// `dockproof lint` options.
#[derive(Debug, Args)]
struct LintArgs {
    /// Dockerfiles and compose files (told apart by name, then content).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Output format (every format carries the same findings).
    #[arg(long, value_enum, default_value = "text")]
    format: dockproof::lint::output::Format,
    /// The hadolint program to run (default: `hadolint` on PATH, when there is one).
    #[arg(long, value_name = "PATH", conflicts_with = "no_hadolint")]
    hadolint: Option<PathBuf>,
    /// Run dockproof's rules only, even when hadolint is installed.
    #[arg(long)]
    no_hadolint: bool,
    /// Exit 1 when a finding is at this level or above (default: the config's, else `error`).
    #[arg(long, value_enum, value_name = "LEVEL")]
    failure_threshold: Option<dockproof::lint::config::Threshold>,
    /// A lint configuration (YAML: disable, severity, failure-threshold, secrets.allow).
    #[arg(long, value_name = "FILE")]
    lint_config: Option<PathBuf>,
    /// The project file's `[lint]` section, when `--lint-config` is not given.
    #[arg(skip)]
    project_lint: Option<dockproof::lint::LintConfig>,
}

/// Lint every file; exit 1 when a finding reaches the failure threshold, 2 when a
/// file or the configuration cannot be read (the files that could be are still reported).
fn lint(args: &LintArgs) -> ExitCode {
    use dockproof::lint::output::{HadolintStatus, LintRun, render};
    let config = match &args.lint_config {
        Some(path) => match dockproof::lint::LintConfig::load(path) {
            Ok(config) => config,
            Err(error) => {
                dockproof::inert_eprintln!("error: {error}");
                return Exit::Usage.into();
            }
        },
        None => args.project_lint.clone().unwrap_or_default(),
    };
    let threshold = args
        .failure_threshold
        .or(config.failure_threshold)
        .unwrap_or_default();
    let (hadolint, status) = if args.no_hadolint {
        (None, HadolintStatus::Disabled)
    } else {
        match dockproof::lint::hadolint::locate(args.hadolint.as_deref()) {
            Ok(found) => {
                let status = HadolintStatus::Used {
                    program: found.program.display().to_string(),
                };
                (Some(found), status)
            }
            Err(reason) if args.hadolint.is_some() => {
                dockproof::inert_eprintln!("error: {reason}");
                return Exit::Usage.into();
            }
            Err(reason) => (None, HadolintStatus::NotFound { reason }),
        }
    };
    let mut run = LintRun {
        files: Vec::new(),
        errors: Vec::new(),
        hadolint: status,
    };
    let mut unusable = false;
    for file in &args.files {
        match dockproof::lint::lint_file_with(file, &config, hadolint.as_ref()) {
            Ok(report) => run.files.push(report),
            Err(error) => {
                dockproof::inert_eprintln!("error: {error}");
                run.errors
                    .push(dockproof::lint::FileError::new(file, &error));
                unusable = true;
            }
        }
    }
    // Messages quote the linted files: inert under GitHub Actions.
    let rendered = render(&run, args.format);
    {
        use std::io::Write as _;
        // A closed stdout (`| head`) drops the output: never a panic.
        let _ = std::io::stdout()
            .lock()
            .write_all(dockproof::report::inert::text(&rendered).as_bytes());
    }
    if args.format == dockproof::lint::output::Format::Text
        && let Some(note) = run.hadolint.note()
    {
        dockproof::inert_eprintln!("note: {note}");
    }
    let failed = run
        .files
        .iter()
        .flat_map(|file| &file.findings)
        .any(|finding| threshold.fails(finding.level));
    if unusable {
        Exit::Usage.into()
    } else if failed {
        Exit::Failed.into()
    } else {
        Exit::Passed.into()
    }
}

/// Load every scenario under `paths` with the run's variables, printing all diagnostics;
/// exit code 2 on any.
fn load_all(paths: &[PathBuf], vars: &VarArgs) -> Result<Vec<LoadedScenario>, ExitCode> {
    let options = vars.load_options()?;
    let files = match scenario::discover(paths) {
        Ok(files) => files,
        Err(error) => {
            eprintln!(
                "error: cannot read scenario paths: {}",
                dockproof::report::inert::text(&error.to_string())
            );
            return Err(Exit::Usage.into());
        }
    };
    if files.is_empty() {
        dockproof::inert_eprintln!(
            "error: no scenario files found in {}",
            paths
                .iter()
                .map(|path| path.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Err(Exit::Usage.into());
    }
    let mut loaded = Vec::new();
    let mut problems = 0;
    let mut names = std::collections::HashMap::new();
    for file in files {
        let report = scenario::load_file_with(&file, &options);
        problems += report.diagnostics.len();
        diagnostics::emit(&report);
        for scenario in report.into_scenarios() {
            if let Some(previous) =
                names.insert(scenario.scenario.name.clone(), scenario.path.clone())
            {
                let message = format!(
                    "error: scenario name `{}` is used by both {} and {}\n  = hint: scenario names must be unique (they name the JUnit test cases)",
                    scenario.scenario.name,
                    previous.display(),
                    scenario.path.display()
                );
                eprintln!("{}", dockproof::report::inert::text(&message));
                problems += 1;
            }
            loaded.push(scenario);
        }
    }
    if problems > 0 {
        eprintln!("error: {problems} problem(s) in scenario files; nothing was run");
        return Err(Exit::Usage.into());
    }
    Ok(loaded)
}
