//! The run API: everything between "these scenarios are loaded" and "this is the exit
//! code" that `dockproof run`, `record`, `canary` and `cst` share — choosing and making the
//! backend, the run id and run directory, the host loop, the engine context, the reports,
//! the history, the signals and the exit code. The command line only parses flags and
//! prints; a Rust user calls [`Run`] from their own test the same way.
//!
//! ```no_run
//! use dockproof::run::{BackendKind, Exit, Run};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let loaded = dockproof::scenario::load_file(std::path::Path::new("scenarios/hello-job.yaml"));
//! let scenario = loaded.scenario.expect("a valid scenario file");
//! let finished = Run::new(vec![scenario])
//!     .backend(BackendKind::Fake)
//!     .jobs(2)
//!     .junit("target/dockproof/junit.xml")
//!     .execute()?;
//! assert_eq!(finished.exit, Exit::Passed, "{}", finished.summary_line());
//! # Ok(())
//! # }
//! ```

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::backend::api::ApiBackend;
use crate::backend::cli::CliBackend;
use crate::backend::{Backend, CaptureLimits};
use crate::canary::{Host, HostKind};
use crate::engine::EngineContext;
use crate::events::Event;
use crate::filestore::Filestore;
use crate::fixtures::FixtureImages;
use crate::recordings::RecordingMode;
use crate::report::console::ColorChoice;
use crate::report::{self, ReportOptions};
use crate::runner::{self, RunOutcome};
use crate::scenario::LoadedScenario;
use crate::transport::TransportChoice;

/// How a command ends: `dockproof`'s exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: everything passed (or was skipped as the backend cannot run it).
    Passed = 0,
    /// 1: a check failed, a scenario failed, or the run was interrupted.
    Failed = 1,
    /// 2: a usage or configuration error, or a report could not be written.
    Usage = 2,
}

impl Exit {
    /// The exit code of a finished run: 2 when a report could not be written, else its verdict.
    pub fn of(outcome: &RunOutcome, reports_written: bool) -> Exit {
        if !reports_written {
            Exit::Usage
        } else if outcome.success() {
            Exit::Passed
        } else {
            Exit::Failed
        }
    }

    /// The process's exit code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit.code())
    }
}

/// Why a run could not start (each is exit 2, a usage or configuration error).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The selection (`--tag`, `--filter`, `--partition`) is invalid or selects nothing.
    #[error("{0}")]
    Selection(String),
    /// The run id given or made is not one.
    #[error(transparent)]
    RunId(#[from] crate::run_id::RunIdError),
    /// The run's directory, a host's directory or its filestore could not be made.
    #[error("{0}")]
    Directory(String),
    /// The backend could not be made (no fake-docker, missing image definitions, a bad context).
    #[error("{0}")]
    Backend(String),
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// Which Docker to run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// The deterministic fake-docker program (no daemon needed).
    Fake,
    /// The real `docker` CLI and whatever daemon it talks to (honours DOCKER_HOST).
    DockerCli,
    /// The daemon's Engine API directly, no docker binary (honours DOCKER_HOST and the TLS variables).
    DockerApi,
}

impl BackendKind {
    /// The name reports and the history show.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Fake => "fake",
            BackendKind::DockerCli => "docker-cli",
            BackendKind::DockerApi => "docker-api",
        }
    }
}

impl From<crate::project::Backend> for BackendKind {
    fn from(kind: crate::project::Backend) -> Self {
        match kind {
            crate::project::Backend::Fake => BackendKind::Fake,
            crate::project::Backend::DockerCli => BackendKind::DockerCli,
            crate::project::Backend::DockerApi => BackendKind::DockerApi,
        }
    }
}

/// Where the programs and image definitions a backend needs are.
#[derive(Debug, Clone)]
pub struct BackendOptions {
    /// The docker binary of `docker-cli`.
    pub docker: PathBuf,
    /// The fake-docker binary (default: next to this executable, then on PATH).
    pub fake_docker: Option<PathBuf>,
    /// Fake image definition directories (`builtin`: the shipped ones).
    pub fake_images: Vec<PathBuf>,
    /// Fixture image directories (`builtin`: the shipped ones).
    pub fixture_images: Vec<PathBuf>,
    /// A docker context (`--context`, `DOCKER_CONTEXT`) for the real backends.
    pub context: Option<String>,
    /// How long a real daemon may take to answer (`--daemon-timeout`).
    pub daemon_timeout: Duration,
}

impl Default for BackendOptions {
    fn default() -> Self {
        BackendOptions {
            docker: PathBuf::from("docker"),
            fake_docker: None,
            fake_images: vec![PathBuf::from("fixtures/fake-images")],
            fixture_images: vec![PathBuf::from("fixtures/images")],
            context: None,
            daemon_timeout: Duration::from_secs(30),
        }
    }
}

/// Find the fake-docker binary: `explicit`, next to this executable, then PATH.
pub fn find_fake_docker(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(path.to_path_buf());
    }
    let sibling = std::env::current_exe().ok()?.with_file_name("fake-docker");
    if sibling.is_file() {
        return Some(sibling);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("fake-docker"))
            .find(|candidate| candidate.is_file())
    })
}

/// A fresh run id and the id the reports show: both `r…` and random on real daemons; on
/// the fake the reports show the suite id (a hash of the scenario names) so they are
/// byte-identical run to run, while the run itself (labels, directories) gets the suite id
/// plus a random part, so two runs of the same suite never share anything.
pub fn run_ids(
    kind: BackendKind,
    scenarios: &[LoadedScenario],
) -> Result<(String, String), crate::run_id::RunIdError> {
    use crate::run_id;
    match kind {
        BackendKind::Fake => {
            let suite = run_id::suite_id(
                "fake",
                scenarios.iter().map(|loaded| loaded.scenario.name.as_str()),
            );
            Ok((run_id::fresh(&suite)?, suite))
        }
        BackendKind::DockerCli | BackendKind::DockerApi => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let id = run_id::fresh(&format!("r{:x}", now.as_secs()))?;
            Ok((id.clone(), id))
        }
    }
}

/// `dirs` with `builtin` replaced by the shipped images (written under `run_dir` once).
fn image_dirs(
    dirs: &[PathBuf],
    run_dir: &Path,
    pick: impl Fn(crate::builtin::Builtin) -> PathBuf,
) -> Result<Vec<PathBuf>, String> {
    dirs.iter()
        .map(|dir| {
            if dir.as_os_str() != crate::project::BUILTIN {
                return Ok(dir.clone());
            }
            let root = run_dir.join("builtin-images");
            crate::builtin::materialise(&root)
                .map(&pick)
                .map_err(|error| {
                    format!(
                        "cannot write the shipped images to {}: {error}",
                        root.display()
                    )
                })
        })
        .collect()
}

/// One host's backend kind and the environment its docker program gets. A real host
/// uses the Engine API when that is the chosen backend, the docker CLI otherwise.
pub fn host_backend(host: &Host, local: BackendKind) -> (BackendKind, Vec<(OsString, OsString)>) {
    match &host.kind {
        HostKind::Fake { faults, remote } => (
            BackendKind::Fake,
            faults
                .iter()
                .map(|faults| ("FAKE_DOCKER_FAULTS".into(), faults.into()))
                .chain(remote.then(|| ("FAKE_DOCKER_REMOTE".into(), "1".into())))
                .collect(),
        ),
        HostKind::Docker {
            docker_host: Some(docker_host),
        } => {
            let kind = if local == BackendKind::DockerApi {
                BackendKind::DockerApi
            } else {
                BackendKind::DockerCli
            };
            (kind, vec![("DOCKER_HOST".into(), docker_host.into())])
        }
        HostKind::Docker { docker_host: None } => (local, Vec::new()),
    }
}

/// The backend of `kind` for a run whose temporary files live in `run_dir`;
/// `extra_env` goes to the docker-compatible program (e.g. `DOCKER_HOST`, `FAKE_DOCKER_FAULTS`).
pub fn make_backend(
    kind: BackendKind,
    options: &BackendOptions,
    run_dir: &Path,
    extra_env: Vec<(OsString, OsString)>,
) -> Result<(Arc<dyn Backend>, FixtureImages), RunError> {
    make_backend_inner(kind, options, run_dir, extra_env).map_err(RunError::Backend)
}

fn make_backend_inner(
    kind: BackendKind,
    options: &BackendOptions,
    run_dir: &Path,
    extra_env: Vec<(OsString, OsString)>,
) -> Result<(Arc<dyn Backend>, FixtureImages), String> {
    match kind {
        BackendKind::Fake => {
            let Some(program) = find_fake_docker(options.fake_docker.as_deref()) else {
                return Err("cannot find the fake-docker binary: build it (`cargo build -p fake-docker`) or pass --fake-docker PATH".into());
            };
            let fake_images =
                image_dirs(&options.fake_images, run_dir, |builtin| builtin.fake_images)?;
            for dir in &fake_images {
                if !dir.is_dir() {
                    return Err(format!(
                        "fake image definitions not found at {} (use --fake-images DIR, or `builtin` for the shipped ones)",
                        dir.display()
                    ));
                }
            }
            let fake_images = std::env::join_paths(&fake_images).map_err(|error| {
                format!("--fake-images: {error} (the directories are passed to fake-docker as one `:`-separated list)")
            })?;
            let given = std::env::var_os("FAKE_DOCKER_STATE").or_else(|| {
                extra_env
                    .iter()
                    .rev()
                    .find(|(name, _)| name == "FAKE_DOCKER_STATE")
                    .map(|(_, value)| value.clone())
            });
            let state = given
                .unwrap_or_else(|| crate::backend::fakestate::prepare(run_dir).into_os_string());
            crate::backend::fakestate::prepare_workspaces(run_dir);
            // Uploads and env files: inode churn on the same tmpfs, not the disk.
            crate::backend::fakestate::prepare_filestore(run_dir);
            let scratch = crate::backend::fakestate::prepare_scratch(run_dir).map_err(|error| {
                format!(
                    "cannot create {}: {error}",
                    run_dir
                        .join(crate::backend::fakestate::SCRATCH_NAME)
                        .display()
                )
            })?;
            // DOCKER_HOST is cleared: the fake answers an absent unix socket as the CLI does,
            // and a user's address for a real daemon means nothing to it (a scenario's
            // `docker_host` sets it again).
            let mut env: Vec<(OsString, OsString)> = vec![
                ("FAKE_DOCKER_STATE".into(), state),
                ("FAKE_DOCKER_IMAGES".into(), fake_images),
                ("DOCKER_HOST".into(), OsString::new()),
            ];
            env.extend(extra_env);
            Ok((
                Arc::new(CliBackend::new("fake", program, env).with_scratch_dir(scratch)),
                FixtureImages::none(),
            ))
        }
        BackendKind::DockerCli => {
            let fixtures = FixtureImages::scan_all(
                &image_dirs(&options.fixture_images, run_dir, |builtin| {
                    builtin.fixture_images
                })?,
                true,
            )
            .map_err(|error| error.to_string())?
            .with_build_dir(run_dir);
            let mut env = extra_env;
            if let Some(context) = &options.context {
                env.push(("DOCKER_CONTEXT".into(), context.into()));
            }
            Ok((
                Arc::new(
                    CliBackend::new("docker-cli", &options.docker, env)
                        .with_scratch_dir(run_dir)
                        .with_daemon_timeout(options.daemon_timeout),
                ),
                fixtures,
            ))
        }
        BackendKind::DockerApi => {
            let fixtures = FixtureImages::scan_all(
                &image_dirs(&options.fixture_images, run_dir, |builtin| {
                    builtin.fixture_images
                })?,
                true,
            )
            .map_err(|error| error.to_string())?
            .with_build_dir(run_dir);
            // The CLI's precedence: an explicit host (a fleet's DOCKER_HOST) over a context.
            let host = extra_env
                .iter()
                .find(|(key, _)| key == "DOCKER_HOST")
                .map(|(_, value)| value.to_string_lossy().into_owned());
            let backend = match (host, &options.context) {
                (Some(host), _) => ApiBackend::for_host("docker-api", host),
                (None, Some(name)) => match crate::backend::context::resolve(
                    name,
                    &crate::backend::context::config_dir(),
                )
                .map_err(|error| error.to_string())?
                {
                    Some(endpoint) => ApiBackend::for_endpoint("docker-api", endpoint),
                    None => ApiBackend::from_env("docker-api"),
                },
                (None, None) => ApiBackend::from_env("docker-api"),
            };
            Ok((
                Arc::new(backend.with_daemon_timeout(options.daemon_timeout)),
                fixtures,
            ))
        }
    }
}

/// What one host's run of the engine needs besides the backend: the one place an
/// [`EngineContext`] is built (for `run`, `record` and every canary host).
pub struct HostContext {
    /// The host's backend and its fixture images (from [`make_backend`]).
    pub backend: (Arc<dyn Backend>, FixtureImages),
    /// Which kind the backend is (the fake replays recordings, names use the suite id).
    pub kind: BackendKind,
    /// The host's directory: filestore and workspaces live under it.
    pub host_dir: PathBuf,
    /// The run's own id (labels) and the suite id the reports show.
    pub run_id: String,
    pub shown_run_id: String,
    /// Where every run step's whole output goes, when kept.
    pub logs_dir: Option<PathBuf>,
    /// How job workspaces reach the daemon.
    pub transport: TransportChoice,
    /// Record/check mode (`dockproof record`), or the default for `kind`.
    pub recordings: Option<RecordingMode>,
    /// Where recordings are replayed from on the fake (default beside each scenario).
    pub recordings_root: Option<PathBuf>,
    /// `--keep-failed`: where failed scenarios list what they leave in place.
    pub keep_failed: Option<crate::engine::KeptList>,
}

impl HostContext {
    /// The engine's context for this host, its events going to `events`.
    pub fn build(
        self,
        events: tokio::sync::mpsc::UnboundedSender<Event>,
    ) -> Result<Arc<EngineContext>, RunError> {
        let filestore = Filestore::local(&self.host_dir.join("filestore"))
            .map_err(|error| RunError::Directory(error.to_string()))?;
        let (backend, fixtures) = self.backend;
        Ok(Arc::new(EngineContext {
            backend,
            filestore,
            fixtures: Arc::new(fixtures),
            names_id: if self.kind == BackendKind::Fake {
                self.shown_run_id
            } else {
                self.run_id.clone()
            },
            run_id: self.run_id,
            work_dir: self.host_dir.join("workspaces"),
            capture: CaptureLimits::default(),
            logs_dir: self.logs_dir,
            events,
            transport: Arc::new(crate::transport::TransportPolicy::new(self.transport)),
            cancel: crate::cancel::Cancel::new(),
            keep_failed: self.keep_failed,
            recordings: match (self.recordings, self.kind) {
                (Some(mode), _) => mode,
                (None, BackendKind::Fake) => RecordingMode::Replay {
                    root: self.recordings_root,
                },
                (None, _) => RecordingMode::Off,
            },
        }))
    }
}

/// Where a run's reports go (each optional).
#[derive(Debug, Clone, Default)]
pub struct ReportPaths {
    pub junit: Option<PathBuf>,
    pub json: Option<PathBuf>,
    pub html: Option<PathBuf>,
    pub markdown: Option<PathBuf>,
}

/// Write every report asked for (deterministic ones from the normalised outcome, where
/// the run's own id `run_id` reads as the id the reports show) and, under GitHub Actions,
/// the annotations and step summary. False when one could not be written (each is said on
/// stderr).
pub fn write_reports(
    paths: &ReportPaths,
    outcome: &RunOutcome,
    options: &ReportOptions,
    run_id: &str,
) -> bool {
    let reported = if options.deterministic {
        report::normalised(outcome, run_id, &options.run_id)
    } else {
        outcome.clone()
    };
    let mut written = true;
    let mut attempt = |what: &str, path: &Path, result: std::io::Result<()>| {
        if let Err(error) = result {
            crate::inert_eprintln!("error: cannot write the {what} {}: {error}", path.display());
            written = false;
        }
    };
    for path in [&paths.junit, &paths.json, &paths.html, &paths.markdown]
        .into_iter()
        .flatten()
    {
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            attempt(
                "report directory for",
                path,
                std::fs::create_dir_all(parent),
            );
        }
    }
    if let Some(path) = &paths.junit {
        attempt(
            "JUnit report",
            path,
            report::junit::write(path, &reported, options),
        );
    }
    if let Some(path) = &paths.json {
        attempt(
            "JSON report",
            path,
            report::json::write(path, &reported, options),
        );
    }
    if let Some(path) = &paths.html {
        attempt(
            "HTML report",
            path,
            report::html::write(path, &reported, options),
        );
    }
    if let Some(path) = &paths.markdown {
        attempt(
            "Markdown summary",
            path,
            std::fs::write(path, report::markdown::render(&reported, options)),
        );
    }
    if std::env::var("GITHUB_ACTIONS").is_ok_and(|value| value == "true") {
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        for line in report::github::annotations(&reported) {
            // A closed stdout drops the annotations: never a panic.
            let _ = writeln!(stdout, "{line}");
        }
        if let Some(summary) = std::env::var_os("GITHUB_STEP_SUMMARY")
            && let Err(error) = report::markdown::append(Path::new(&summary), &reported, options)
        {
            crate::inert_eprintln!("warning: cannot append to $GITHUB_STEP_SUMMARY: {error}");
        }
    }
    written
}

/// Add a run to the history database at `path` (default: `$DOCKPROOF_HISTORY`, the data
/// dir): the one place a run is recorded. A history problem never fails a run (a warning).
pub async fn record_history(
    path: Option<&Path>,
    run_id: &str,
    host: String,
    backend: &str,
    outcome: &RunOutcome,
) {
    use crate::history::{self, History, RunEntry};
    let Some(path) = path.map(Path::to_path_buf).or_else(history::default_path) else {
        return;
    };
    let entry = RunEntry {
        run_id,
        git_sha: history::current_git_sha().await,
        host,
        backend,
        interrupted: outcome.interrupted,
        reports: &outcome.reports,
    };
    if let Err(error) = History::open(&path).and_then(|mut history| history.record(&entry)) {
        crate::inert_eprintln!("warning: run not recorded in the history: {error}");
    }
}

/// The history's name for the daemon of a single-host run: `$DOCKER_HOST` on a real
/// backend, else `local`.
pub fn history_host(kind: BackendKind) -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|_| kind != BackendKind::Fake)
        .unwrap_or_else(|| "local".to_owned())
}

/// Resolves on the first Ctrl-C or SIGTERM; a second Ctrl-C ends the process at once.
pub async fn interrupted() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(stream) => stream,
            Err(_) => return std::future::pending().await,
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    eprintln!("dockproof: interrupted, cleaning up (press Ctrl-C again to stop at once)");
    tokio::spawn(async {
        let _ = tokio::signal::ctrl_c().await;
        eprintln!(
            "dockproof: stopping without cleanup; run `docker ps -a --filter label=dockproof.run` to find leftovers"
        );
        std::process::exit(130);
    });
}

/// A multi-threaded runtime with every driver enabled.
pub fn runtime() -> Result<tokio::runtime::Runtime, RunError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(RunError::Runtime)
}

/// Which scenarios of a suite run: by tag, name glob and shard.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only scenarios carrying one of these tags (none: every scenario).
    pub tags: Vec<String>,
    /// Only scenarios whose name matches this glob.
    pub filter: Option<String>,
    /// Only this shard.
    pub partition: Option<crate::partition::Partition>,
}

impl Selection {
    /// The selected scenarios, in order. An empty selection is an error unless a
    /// partition made it (a matrix wider than the suite is normal).
    pub fn apply(&self, scenarios: Vec<LoadedScenario>) -> Result<Vec<LoadedScenario>, RunError> {
        let pattern = match &self.filter {
            Some(text) => Some(glob::Pattern::new(text).map_err(|error| {
                RunError::Selection(format!("invalid --filter glob `{text}`: {error}"))
            })?),
            None => None,
        };
        let selected: Vec<LoadedScenario> = scenarios
            .into_iter()
            .filter(|loaded| {
                self.tags.is_empty()
                    || loaded
                        .scenario
                        .tags
                        .iter()
                        .any(|tag| self.tags.contains(tag))
            })
            .filter(|loaded| {
                pattern
                    .as_ref()
                    .is_none_or(|pattern| pattern.matches(&loaded.scenario.name))
            })
            .collect();
        let selected = match &self.partition {
            Some(partition) => partition.select(selected, |loaded| loaded.scenario.name.as_str()),
            None => selected,
        };
        if selected.is_empty() && self.partition.is_none() {
            return Err(RunError::Selection(
                "no scenario matches the given --tag/--filter".into(),
            ));
        }
        Ok(selected)
    }
}

/// A run of scenarios: built with the setters, started with [`Run::execute`].
#[derive(Debug, Clone)]
pub struct Run {
    scenarios: Vec<LoadedScenario>,
    /// Backend of the default host (and of `local` hosts).
    pub backend: BackendKind,
    /// Programs and image definitions the backends need.
    pub backend_options: BackendOptions,
    /// Hosts to run the suite on in turn (none: the one `backend` points at).
    pub hosts: Vec<Host>,
    /// How job workspaces reach the daemon (a host's own choice wins).
    pub transport: TransportChoice,
    /// Scenarios at once (default: the number of cores).
    pub jobs: Option<usize>,
    /// Runs of a failed scenario after the first.
    pub retries: u32,
    /// Which scenarios run.
    pub selection: Selection,
    /// The run id (default: derived; deterministic in the reports on the fake).
    pub run_id: Option<String>,
    /// The parent of the run's directory (default: the system temp dir).
    pub work_dir: Option<PathBuf>,
    /// Where recordings are replayed from (or written to by `record`).
    pub recordings: Option<PathBuf>,
    /// `record`'s mode (none: replay on the fake, nothing on a real daemon).
    pub recording_mode: Option<RecordingMode>,
    /// Keep every run step's whole output here.
    pub logs_dir: Option<PathBuf>,
    /// Reports to write.
    pub reports: ReportPaths,
    /// Follow the run on stdout (the CLI's console), in this colour choice.
    pub console: Option<ColorChoice>,
    /// Record the run in the history: `None` no, `Some(None)` the default database.
    pub history: Option<Option<PathBuf>>,
    /// Leave failed scenarios' containers, volumes and workspaces in place (`--keep-failed`).
    pub keep_failed: bool,
}

/// What [`Run::execute`] produced.
#[derive(Debug, Clone)]
pub struct Finished {
    /// Every scenario's report (on several hosts named `HOST/scenario`).
    pub outcome: RunOutcome,
    /// The exit code the CLI ends with.
    pub exit: Exit,
    /// How long the run took.
    pub elapsed: Duration,
    /// What `--keep-failed` kept, if anything.
    pub kept: Option<KeptRun>,
}

/// What a run with `--keep-failed` left in place, and where.
#[derive(Debug, Clone)]
pub struct KeptRun {
    /// The run's id (on every label): what `dockproof clean --run` takes.
    pub run_id: String,
    /// The run directory, kept: the workspaces (and the fake's state) are in it.
    pub dir: PathBuf,
    /// The backend the run used.
    pub backend: BackendKind,
    /// The run's `work_dir`, when one was given (`clean` must look there).
    pub work_dir: Option<PathBuf>,
    /// Each failed scenario's objects.
    pub scenarios: Vec<crate::engine::Kept>,
}

impl KeptRun {
    /// What was kept, and how to look at it and remove it: one line each.
    pub fn instructions(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "kept for debugging (--keep-failed), run {}: what {} failed scenario(s) left, labelled {}=true",
            self.run_id,
            self.scenarios.len(),
            crate::engine::KEEP_LABEL
        )];
        for entry in &self.scenarios {
            lines.push(format!("  scenario `{}`:", entry.scenario));
            lines.extend(
                entry
                    .containers
                    .iter()
                    .map(|id| format!("    container {id}")),
            );
            lines.extend(
                entry
                    .compose_project
                    .iter()
                    .map(|name| format!("    compose project {name}")),
            );
            lines.extend(entry.volume.iter().map(|name| format!("    volume {name}")));
            lines.extend(
                entry
                    .images
                    .iter()
                    .map(|image| format!("    image {image}")),
            );
            lines.extend(
                entry
                    .workspace
                    .iter()
                    .map(|path| format!("    workspace {}", path.display())),
            );
        }
        let docker = if self.backend == BackendKind::Fake {
            format!(
                "FAKE_DOCKER_STATE={} fake-docker",
                self.dir.join("fake-docker-state").display()
            )
        } else {
            "docker".to_owned()
        };
        lines.push(format!(
            "  inspect: {docker} inspect ID · {docker} logs ID · {docker} exec -it ID sh (while it runs)"
        ));
        let mut clean = format!("dockproof clean --run {}", self.run_id);
        if self.backend == BackendKind::Fake {
            clean.push_str(" --backend fake");
        }
        if let Some(dir) = &self.work_dir {
            clean.push_str(&format!(" --work-dir {}", dir.display()));
        }
        lines.push(format!(
            "  remove: {clean} (containers, volumes, networks, images and {})",
            self.dir.display()
        ));
        lines
    }
}

impl Finished {
    /// `N passed, M failed …`, the console's last line.
    pub fn summary_line(&self) -> String {
        report::console::summary_line(&self.outcome)
    }
}

impl Run {
    /// A run of `scenarios` on the fake, with every default `dockproof run` has, writing no
    /// report and recording no history.
    pub fn new(scenarios: Vec<LoadedScenario>) -> Run {
        Run {
            scenarios,
            backend: BackendKind::Fake,
            backend_options: BackendOptions::default(),
            hosts: Vec::new(),
            transport: TransportChoice::default(),
            jobs: None,
            retries: 0,
            selection: Selection::default(),
            run_id: None,
            work_dir: None,
            recordings: None,
            recording_mode: None,
            logs_dir: None,
            reports: ReportPaths::default(),
            console: None,
            history: None,
            keep_failed: false,
        }
    }

    /// Run on this backend.
    pub fn backend(mut self, kind: BackendKind) -> Run {
        self.backend = kind;
        self
    }

    /// At most `jobs` scenarios at once.
    pub fn jobs(mut self, jobs: usize) -> Run {
        self.jobs = Some(jobs);
        self
    }

    /// Write a JUnit report here.
    pub fn junit(mut self, path: impl Into<PathBuf>) -> Run {
        self.reports.junit = Some(path.into());
        self
    }

    /// The scenarios this run was given (before selection).
    pub fn scenarios(&self) -> &[LoadedScenario] {
        &self.scenarios
    }

    /// Run the selected scenarios on every host, write the reports, record the history;
    /// a first Ctrl-C or SIGTERM stops the run and cleans up (the reports are still written).
    pub fn execute(self) -> Result<Finished, RunError> {
        let started = std::time::Instant::now();
        let scenarios = self.selection.apply(self.scenarios.clone())?;
        // An explicit run id is used as given, in the reports too: keeping it unique is the caller's part.
        let (run_id, shown_run_id) = match &self.run_id {
            Some(id) => (id.clone(), id.clone()),
            None => run_ids(self.backend, &scenarios)?,
        };
        crate::run_id::validate(&run_id)?;
        let parent = self.work_dir.clone().unwrap_or_else(std::env::temp_dir);
        // Held (and claimed as live: `dockproof clean` leaves it alone) until the run ends.
        let run_dir =
            crate::run_id::RunDir::create(&parent, &run_id).map_err(RunError::Directory)?;
        // The hosts to run on: the one the backend points at, or each host in turn.
        type Target = (
            Option<String>,
            BackendKind,
            Vec<(OsString, OsString)>,
            TransportChoice,
        );
        let targets: Vec<Target> = if self.hosts.is_empty() {
            vec![(None, self.backend, Vec::new(), self.transport)]
        } else {
            self.hosts
                .iter()
                .map(|host| {
                    let (kind, env) = host_backend(host, self.backend);
                    let transport = host.transport.unwrap_or(self.transport);
                    (Some(host.name.clone()), kind, env, transport)
                })
                .collect()
        };
        let jobs = self
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |cores| cores.get()));
        let deterministic = targets
            .iter()
            .all(|(_, kind, _, _)| *kind == BackendKind::Fake);
        let options = ReportOptions {
            // Deterministic reports show the suite id; anything else the run's own.
            run_id: if deterministic {
                shown_run_id.clone()
            } else {
                run_id.clone()
            },
            backend: self.backend.name().to_owned(),
            deterministic,
        };
        let runtime = runtime()?;
        // `--keep-failed`: what failed scenarios leave in place, listed at the end.
        let kept: Option<crate::engine::KeptList> = self.keep_failed.then(Default::default);
        let mut outcome = RunOutcome {
            reports: Vec::new(),
            interrupted: false,
            swept: 0,
            swept_resources: Vec::new(),
            left_behind: Vec::new(),
        };
        for (host, kind, env, transport) in targets {
            if outcome.interrupted {
                break;
            }
            // Each host gets its own directory: fake state, filestore and workspaces.
            let host_dir = match &host {
                Some(name) => run_dir.path().join(format!("host-{name}")),
                None => run_dir.path().to_path_buf(),
            };
            if let Some(name) = &host
                && self.console.is_some()
            {
                crate::inert_println!("dockproof: host {name}");
            }
            std::fs::create_dir_all(&host_dir)
                .map_err(|error| RunError::Directory(error.to_string()))?;
            let made = make_backend(kind, &self.backend_options, &host_dir, env)?;
            let host_context = HostContext {
                backend: made,
                kind,
                host_dir,
                run_id: run_id.clone(),
                shown_run_id: shown_run_id.clone(),
                logs_dir: self.logs_dir.as_ref().map(|dir| {
                    host.as_ref()
                        .map_or_else(|| dir.clone(), |name| dir.join(name))
                }),
                transport,
                recordings: self.recording_mode.clone(),
                recordings_root: self.recordings.clone(),
                keep_failed: kept.clone(),
            };
            let host_outcome = runtime.block_on(async {
                let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
                let console = self.console.map(|choice| {
                    tokio::spawn(report::console::follow(
                        receiver,
                        std::io::stdout(),
                        report::console::ConsoleStyle::detect(choice),
                    ))
                });
                let context = host_context.build(sender)?;
                let outcome = runner::run_all(
                    Arc::clone(&context),
                    scenarios.clone(),
                    jobs,
                    self.retries,
                    interrupted(),
                )
                .await;
                drop(context);
                if let Some(console) = console {
                    let _ = console.await;
                }
                Ok::<_, RunError>(outcome)
            })?;
            outcome.interrupted |= host_outcome.interrupted;
            outcome.swept += host_outcome.swept;
            outcome
                .swept_resources
                .extend(host_outcome.swept_resources.iter().cloned());
            outcome
                .left_behind
                .extend(host_outcome.left_behind.iter().cloned());
            outcome
                .reports
                .extend(host_outcome.reports.into_iter().map(|mut report| {
                    if let Some(name) = &host {
                        report.name = format!("{name}/{}", report.name);
                    }
                    report
                }));
        }
        let written = write_reports(&self.reports, &outcome, &options, &run_id);
        if let Some(path) = &self.history {
            // The history keeps the run's own id (the one on its labels), not the suite id.
            runtime.block_on(record_history(
                path.as_deref(),
                &run_id,
                history_host(self.backend),
                &options.backend,
                &outcome,
            ));
        }
        let kept: Vec<crate::engine::Kept> = kept
            .and_then(|kept| kept.lock().ok().map(|kept| kept.clone()))
            .unwrap_or_default();
        let kept = if kept.is_empty() {
            drop(run_dir);
            None
        } else {
            // The kept workspaces (and the fake's state) are in the run directory.
            Some(KeptRun {
                run_id: run_id.clone(),
                dir: run_dir.keep(),
                backend: self.backend,
                work_dir: self.work_dir.clone(),
                scenarios: kept,
            })
        };
        Ok(Finished {
            exit: Exit::of(&outcome, written),
            outcome,
            elapsed: started.elapsed(),
            kept,
        })
    }
}
