//! Running CST files: one report per CST test (named as CST names it), all
//! tests in parallel, a fresh labelled container per command test, removed in the
//! background once its output is read (off the next test's path); with the docker
//! driver one never-started container per config file serves all its file tests,
//! removed when the run's results are known. The image's `inspect` is read once.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::check::{self, ImageConfig};
use super::files::{self, FileInfo, Kind, SavedImage};
use super::load::LoadedCst;
use super::model::{CommandTest, ContainerRunOptions};
use crate::backend::{Backend, BackendError, CaptureLimits, ContainerSpec};
use crate::category::Category;
use crate::events::{Failure, Location, Outcome, ScenarioReport};
use crate::record::JobRecord;
use crate::runner::RunOutcome;

/// Where file and metadata tests read the image from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// A container created (never started) from the image, read with `docker cp`; metadata from `image inspect`.
    Docker,
    /// The image's `docker save` archive: no container at all.
    Tar,
    /// CST's host driver: this machine itself, one test after another (commands spawned
    /// here, files read here, the configuration from `--metadata`); see [`super::host`].
    Host,
}

/// What a CST run needs.
pub struct CstContext {
    pub backend: Arc<dyn Backend>,
    pub image: String,
    pub run_id: String,
    pub driver: Driver,
    pub jobs: usize,
    /// How long one command (setup or test) may run before it is killed.
    pub command_timeout: Duration,
    /// Where the saved image goes (tar driver).
    pub work_dir: PathBuf,
    /// CST's `--save`, `--runtime` and `--image PATH.tar`.
    pub options: CstOptions,
    /// With `dockproof record` (or `--check`): every container a command test ran.
    pub observer: Option<Arc<CstObserver>>,
}

/// The containers command tests ran, gathered for a recording (`dockproof record`).
#[derive(Debug, Default)]
pub struct CstObserver {
    runs: std::sync::Mutex<Vec<ObservedRun>>,
}

/// One container a command test ran to its end, as the recording needs it.
#[derive(Debug, Clone)]
pub struct ObservedRun {
    /// Where in the CST file: `/commandTests/0`, or `/commandTests/0/setup/1` for a setup command.
    pub pointer: String,
    pub spec: ContainerSpec,
    /// `docker inspect` of the container, and `docker image inspect` of its image.
    pub inspect: serde_json::Value,
    pub image_inspect: serde_json::Value,
    pub exit_code: i64,
    pub logs: crate::backend::Logs,
    /// The setup command (its pointer in the CST file) whose container was committed
    /// into this container's image; `None` when it ran on the tested image itself. A
    /// committed image's ID is new every time, so the recording names it by this.
    pub committed_from: Option<String>,
}

impl CstObserver {
    /// The runs observed, in a stable order (tests run in parallel): by pointer.
    pub fn runs(&self) -> Vec<ObservedRun> {
        let mut runs = self
            .runs
            .lock()
            .map(|runs| runs.clone())
            .unwrap_or_default();
        runs.sort_by(|a, b| a.pointer.cmp(&b.pointer));
        runs
    }
}

/// The parts of CST's command line that change how tests run.
#[derive(Debug, Clone, Default)]
pub struct CstOptions {
    /// CST's `--save`: keep every container and committed image (labelled with the run id).
    pub save: bool,
    /// CST's `--runtime`: the OCI runtime of every container.
    pub runtime: Option<String>,
    /// CST's `--image PATH.tar` with the tar driver: a `docker save` archive, not a daemon's
    /// image. Command tests cannot run then (CST: "Tar driver is unable to process commands").
    pub archive: Option<PathBuf>,
    /// The host driver's image configuration (the `config` object of `--metadata FILE`,
    /// see [`super::host::read_metadata`]); without one a metadata test fails, as in CST.
    pub metadata: Option<Arc<serde_json::Value>>,
    /// CST's `--image-from-oci-layout DIR` with the tar driver: an OCI image layout read
    /// in place (see [`super::oci`]); command tests cannot run, as with `archive`.
    pub oci_layout: Option<PathBuf>,
}

/// CST's tar driver's answer to a command test (pkg/drivers/tar_driver.go).
const TAR_NO_COMMANDS: &str =
    "Tar driver is unable to process commands, please use a different driver";

/// The placeholder command of containers that are never started (CST's `NOOP_COMMAND_DO_NOT_RUN`).
const NOOP: &str = "NOOP_COMMAND_DO_NOT_RUN";
/// Lines of output kept in a report.
const TAIL: usize = 20;

pub use super::model::parse_bind_mount;

/// One test to run.
enum Test {
    Command(usize),
    FileExistence(usize),
    FileContent(usize),
    Metadata,
    License(usize),
    /// An entry that cannot run (its pointer): one failed result with its problems.
    Invalid(String),
}

struct Job {
    file: Arc<LoadedCst>,
    /// The file's place in the run (its shared container, see [`Shared`]).
    file_index: usize,
    test: Test,
}

/// What the tests of one run share (created per run, so a `cst:` step of a scenario
/// gets its own).
struct Shared {
    backend: Arc<dyn Backend>,
    image: String,
    /// `image inspect` of the tested image, read on first use: it cannot change
    /// during a run (a setup command commits a new image, never the tested one).
    image_inspect: tokio::sync::OnceCell<Result<Arc<serde_json::Value>, Failure>>,
    /// Per config file: the never-started containers its file tests read (docker
    /// driver), each created on first use. The daemon serves one archive read of a
    /// container at a time (it mounts the container for each), so a file's tests
    /// take turns over up to `jobs` containers and their reads run at once.
    file_containers: Vec<Vec<tokio::sync::OnceCell<Result<String, Failure>>>>,
    /// Per config file: which of its containers the next file test reads.
    next_container: Vec<std::sync::atomic::AtomicUsize>,
    /// Removals of what finished command tests left (containers, then committed
    /// images): they run while later tests run, and the run waits for them at its end.
    removals: std::sync::Mutex<tokio::task::JoinSet<()>>,
}

impl Shared {
    /// `file_tests[i]`: how many tests of the i-th file read the image's files.
    fn new(context: &CstContext, file_tests: &[usize]) -> Self {
        let pool = |tests: usize| {
            let containers = tests.min(context.jobs.max(1));
            (0..containers)
                .map(|_| tokio::sync::OnceCell::new())
                .collect()
        };
        Shared {
            backend: Arc::clone(&context.backend),
            image: context.image.clone(),
            image_inspect: tokio::sync::OnceCell::new(),
            file_containers: file_tests.iter().map(|&tests| pool(tests)).collect(),
            next_container: file_tests
                .iter()
                .map(|_| std::sync::atomic::AtomicUsize::new(0))
                .collect(),
            removals: std::sync::Mutex::new(tokio::task::JoinSet::new()),
        }
    }

    async fn image_inspect(&self) -> Result<Arc<serde_json::Value>, Failure> {
        self.image_inspect
            .get_or_init(|| async {
                self.backend
                    .image_inspect_json(&self.image)
                    .await
                    .map(Arc::new)
                    .map_err(backend_failure)
            })
            .await
            .clone()
    }

    /// Remove `containers` (at once), then `images` last first (each committed from
    /// the one before), in the background. A removal that fails is left to the run's
    /// sweep, as before (CST's docker driver does not report them either).
    fn remove_later(&self, containers: Vec<String>, images: Vec<String>) {
        if containers.is_empty() && images.is_empty() {
            return;
        }
        let backend = Arc::clone(&self.backend);
        let removal = async move {
            futures::future::join_all(containers.iter().map(|id| backend.remove(id))).await;
            for image in images.iter().rev() {
                let _ = backend.remove_image(image).await;
            }
        };
        if let Ok(mut removals) = self.removals.lock() {
            removals.spawn(removal);
        }
    }

    /// Wait for every background removal, then remove the file tests' containers.
    async fn finish(&self, save: bool) {
        let removals = match self.removals.lock() {
            Ok(mut removals) => std::mem::take(&mut *removals),
            Err(_) => tokio::task::JoinSet::new(),
        };
        if !save {
            let containers: Vec<String> = self
                .file_containers
                .iter()
                .flatten()
                .filter_map(|cell| cell.get().and_then(|created| created.as_ref().ok()))
                .cloned()
                .collect();
            futures::future::join_all(containers.iter().map(|id| self.backend.remove(id))).await;
        }
        removals.join_all().await;
    }
}

/// Run every test of every file (a run's final `sweep` is the caller's); reports keep the files' order, CST's order within a file
/// (command, file content, file existence, license, metadata).
pub async fn run_all(context: Arc<CstContext>, files: Vec<LoadedCst>) -> RunOutcome {
    run_all_with_results(context, files).await.0
}

/// One test's result as CST reports it (`unversioned.TestResult`): its name, its error
/// strings one by one, and a command test's whole stdout and stderr.
#[derive(Debug, Clone, Default)]
pub struct CstResult {
    pub name: String,
    pub pass: bool,
    pub stdout: String,
    pub stderr: String,
    pub errors: Vec<String>,
    pub duration: Duration,
    /// CST gives no result at all (schema 1.0.0 drops an invalid test after logging it).
    pub skipped: bool,
}

/// [`run_all`], with CST's own result for each report (same order).
pub async fn run_all_with_results(
    context: Arc<CstContext>,
    files: Vec<LoadedCst>,
) -> (RunOutcome, Vec<CstResult>) {
    let mut jobs = Vec::new();
    let file_tests: Vec<usize> = files
        .iter()
        .map(|file| {
            let config = &file.config;
            config.file_existence_tests.len()
                + config.file_content_tests.len()
                + config.license_tests.len()
                + usize::from(config.metadata_test.is_some())
        })
        .collect();
    let shared = Arc::new(Shared::new(&context, &file_tests));
    for (file_index, file) in files.into_iter().enumerate() {
        let file = Arc::new(file);
        let config = &file.config;
        let entry = |pointer: String, test: Test| {
            if file.invalid.contains_key(&pointer) {
                Test::Invalid(pointer)
            } else {
                test
            }
        };
        let mut tests: Vec<Test> = (0..config.command_tests.len())
            .map(|index| entry(format!("/commandTests/{index}"), Test::Command(index)))
            .collect();
        tests.extend((0..config.file_content_tests.len()).map(|index| {
            entry(
                format!("/fileContentTests/{index}"),
                Test::FileContent(index),
            )
        }));
        tests.extend((0..config.file_existence_tests.len()).map(|index| {
            entry(
                format!("/fileExistenceTests/{index}"),
                Test::FileExistence(index),
            )
        }));
        tests.extend(
            (0..config.license_tests.len())
                .map(|index| entry(format!("/licenseTests/{index}"), Test::License(index))),
        );
        if config
            .metadata_test
            .as_ref()
            .is_some_and(|metadata| !metadata.is_empty())
        {
            tests.push(entry("/metadataTest".to_owned(), Test::Metadata));
        }
        jobs.extend(tests.into_iter().map(|test| Job {
            file: Arc::clone(&file),
            file_index,
            test,
        }));
    }
    let saved = if context.driver == Driver::Tar
        && jobs
            .iter()
            .any(|job| !matches!(job.test, Test::Command(_) | Test::Invalid(_)))
    {
        Some(save(&context).await.map(Arc::new))
    } else {
        None
    };
    let saved = saved.map(|result| result.map_err(Arc::new));
    if context.driver == Driver::Host {
        return run_on_host(&context, &shared, jobs).await;
    }
    let (reports, results): (Vec<_>, Vec<_>) = futures::stream::iter(jobs)
        .map(|job| {
            let context = Arc::clone(&context);
            let shared = Arc::clone(&shared);
            let saved = saved.clone();
            async move { run_one(&context, &shared, &job, saved, None).await }
        })
        .buffered(context.jobs.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .unzip();
    shared.finish(context.options.save).await;
    (
        RunOutcome {
            reports,
            interrupted: false,
            swept: 0,
            swept_resources: Vec::new(),
            left_behind: Vec::new(),
        },
        results,
    )
}

/// The host driver's run: the tests one after another in CST's order, sharing one
/// environment as CST's process does; each file's command-test teardowns run after its
/// last command test, last first (CST defers them in `RunCommandTests`).
async fn run_on_host(
    context: &CstContext,
    shared: &Arc<Shared>,
    jobs: Vec<Job>,
) -> (RunOutcome, Vec<CstResult>) {
    let mut env = super::host::HostEnv::default();
    let mut reports = Vec::new();
    let mut results = Vec::new();
    let mut jobs = jobs.into_iter().peekable();
    while let Some(job) = jobs.next() {
        let (report, result) = run_one(context, shared, &job, None, Some(&mut env)).await;
        reports.push(report);
        results.push(result);
        let in_commands = |job: &Job| match &job.test {
            Test::Command(_) => true,
            Test::Invalid(pointer) => pointer.starts_with("/commandTests/"),
            _ => false,
        };
        let next_is_a_command_of_this_file = jobs
            .peek()
            .is_some_and(|next| Arc::ptr_eq(&next.file, &job.file) && in_commands(next));
        if in_commands(&job) && !next_is_a_command_of_this_file {
            // CST only logs a teardown that cannot start; it changes no verdict.
            let _ = env.teardown_all(context.command_timeout).await;
        }
    }
    (
        RunOutcome {
            reports,
            interrupted: false,
            swept: 0,
            swept_resources: Vec::new(),
            left_behind: Vec::new(),
        },
        results,
    )
}

async fn save(context: &CstContext) -> Result<SavedImage, Failure> {
    if let Some(archive) = context.options.archive.clone() {
        return read_saved(archive).await;
    }
    if let Some(layout) = context.options.oci_layout.clone() {
        let scratch = context.work_dir.clone();
        let read =
            tokio::task::spawn_blocking(move || super::oci::read_layout(&layout, &scratch)).await;
        return match read {
            Ok(Ok(image)) => Ok(image),
            Ok(Err(error)) => Err(Failure::new(Category::ConfigInvalid, error.to_string())),
            Err(error) => Err(Failure::new(
                Category::CleanupFailed,
                format!("reading the OCI layout panicked: {error}"),
            )),
        };
    }
    let directory = tempfile::Builder::new()
        .prefix("cst-save-")
        .tempdir_in(&context.work_dir)
        .map_err(|error| {
            Failure::new(
                Category::ConfigInvalid,
                format!("cannot create a directory for the saved image: {error}"),
            )
        })?;
    let archive = directory.path().join("image.tar");
    context
        .backend
        .save_image(&context.image, &archive)
        .await
        .map_err(|error| Failure::new(error.category(), error.to_string()))?;
    // The directory goes with this function: the index holds the archive open.
    let saved = read_saved(archive).await;
    drop(directory);
    saved
}

async fn read_saved(archive: PathBuf) -> Result<SavedImage, Failure> {
    let read = tokio::task::spawn_blocking(move || SavedImage::read(&archive)).await;
    match read {
        Ok(Ok(saved)) => Ok(saved),
        Ok(Err(error)) => Err(Failure::new(Category::ConfigInvalid, error.to_string())),
        Err(error) => Err(Failure::new(
            Category::CleanupFailed,
            format!("reading the saved image panicked: {error}"),
        )),
    }
}

/// Remove anything still labelled with the run's id (containers, then committed images,
/// which keep their container's labels); returns how many containers (0 when every test cleaned up).
pub async fn sweep(context: &CstContext) -> usize {
    let label = format!("dockproof.run={}", context.run_id);
    crate::backend::sweep::sweep_label(context.backend.as_ref(), &label)
        .await
        .containers
        .len()
}

fn location(file: &LoadedCst, pointer: &str) -> Location {
    let span = file.spans.value(pointer);
    Location {
        file: file.path.clone(),
        line: span.start.line,
        column: span.start.column,
    }
}

async fn run_one(
    context: &CstContext,
    shared: &Arc<Shared>,
    job: &Job,
    saved: Option<Result<Arc<SavedImage>, Arc<Failure>>>,
    host: Option<&mut super::host::HostEnv>,
) -> (ScenarioReport, CstResult) {
    let started = Instant::now();
    let config = &job.file.config;
    let (name, pointer) = match job.test {
        Test::Command(index) => (
            format!("Command Test: {}", config.command_tests[index].name),
            format!("/commandTests/{index}"),
        ),
        Test::FileExistence(index) => (
            format!(
                "File Existence Test: {}",
                config.file_existence_tests[index].name
            ),
            format!("/fileExistenceTests/{index}"),
        ),
        Test::FileContent(index) => (
            format!(
                "File Content Test: {}",
                config.file_content_tests[index].name
            ),
            format!("/fileContentTests/{index}"),
        ),
        Test::Metadata => ("Metadata Test".to_owned(), "/metadataTest".to_owned()),
        Test::License(index) => ("License Test".to_owned(), format!("/licenseTests/{index}")),
        Test::Invalid(ref pointer) => (invalid_name(job.file.as_ref(), pointer), pointer.clone()),
    };
    let mut stdout_tail = Vec::new();
    let mut stderr_tail = Vec::new();
    let mut cst = CstResult {
        // CST names a test that fails validation by its bare name.
        name: match job.test {
            Test::Invalid(ref pointer) => {
                file_entry_name(job.file.as_ref(), pointer).unwrap_or_default()
            }
            _ => name.clone(),
        },
        ..CstResult::default()
    };
    let result: Result<Vec<String>, Failure> = match job.test {
        Test::Invalid(ref pointer) => Err(invalid_failure(job.file.as_ref(), pointer)),
        Test::Command(index) => match host {
            Some(env) => host_command_test(context, job, &config.command_tests[index], env).await,
            None => {
                command_test(
                    context,
                    shared,
                    job,
                    pointer.clone(),
                    &config.command_tests[index],
                )
                .await
            }
        }
        .map(|(errors, stdout, stderr)| {
            stdout_tail = tail(&stdout);
            stderr_tail = tail(&stderr);
            cst.stdout = stdout;
            cst.stderr = stderr;
            errors
        }),
        _ => match saved {
            _ if host.is_some() => {
                if let (Some(env), Test::FileContent(_) | Test::FileExistence(_)) =
                    (host, &job.test)
                    && job.file.version == super::model::SchemaVersion::V2
                {
                    // CST's SetEnv before each file test: globals into its process environment.
                    env.set_globals(&config.global_env_vars);
                }
                let source = Source::Host {
                    metadata: context.options.metadata.clone(),
                };
                image_test(&source, job).await
            }
            Some(Err(failure)) => Err((*failure).clone()),
            Some(Ok(saved)) => image_test(&Source::Saved(saved), job).await,
            None => match file_container(context, shared, job).await {
                Ok(container) => {
                    let source = Source::Container {
                        shared: Arc::clone(shared),
                        container,
                    };
                    image_test(&source, job).await
                }
                Err(failure) => Err(failure),
            },
        },
    };
    // A setup that could not run: CST 2.0.0 names the result by the test's bare name,
    // 1.0.0 drops the test (logged); see `in_setup`.
    let setup_failed = matches!(job.test, Test::Command(_))
        && result
            .as_ref()
            .is_err_and(|failure| failure.message.starts_with(SETUP_PREFIX));
    if let (true, Test::Command(index)) = (setup_failed, &job.test) {
        cst.name = config.command_tests[*index].name.clone();
    }
    cst.errors = match &result {
        Ok(errors) => errors.clone(),
        Err(failure) => failure.message.lines().map(str::to_owned).collect(),
    };
    cst.pass = cst.errors.is_empty();
    let failure = match result {
        Ok(errors) if errors.is_empty() => None,
        Ok(errors) => Some(Failure::new(Category::AssertionFailed, errors.join("\n"))),
        Err(failure) => Some(failure),
    };
    let failure = failure.map(|mut failure| {
        failure.location = Some(location(&job.file, &pointer));
        failure
    });
    cst.duration = started.elapsed();
    // Schema 1.0.0: CST logs an invalid test and drops it (no result); dockproof shows
    // it as skipped, with the reason, and leaves it out of CST's own formats.
    let v1_skip = (matches!(job.test, Test::Invalid(_)) || setup_failed)
        && job.file.version == super::model::SchemaVersion::V1;
    let (failure, skip_reason) = match failure {
        Some(failure) if v1_skip => {
            cst.skipped = true;
            (
                None,
                Some(format!(
                    "schemaVersion 1.0.0: CST logs this test's problem and skips it: {}",
                    failure.message
                )),
            )
        }
        failure => (failure, None),
    };
    let report = ScenarioReport {
        name,
        file: job.file.path.clone(),
        tags: vec!["cst".to_owned()],
        outcome: if failure.is_some() {
            Outcome::Failed
        } else if skip_reason.is_some() {
            Outcome::Skipped
        } else {
            Outcome::Passed
        },
        failure,
        skip_reason,
        earlier_attempts: Vec::new(),
        steps: Vec::new(),
        record: JobRecord::pending(),
        stdout_tail,
        stderr_tail,
        duration: started.elapsed(),
    };
    (report, cst)
}

/// The one failed result of a config file that cannot be read as a whole (CST:
/// "error parsing config file: …"); the other files still run.
pub fn file_failure(
    path: &std::path::Path,
    problems: &[crate::scenario::Diagnostic],
) -> ScenarioReport {
    let message = problems
        .iter()
        .map(|problem| {
            format!(
                "error parsing config file: line {}, column {}: {}",
                problem.span.start.line, problem.span.start.column, problem.message
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut failure = Failure::new(Category::ConfigInvalid, message);
    failure.location = problems.first().map(|problem| Location {
        file: path.to_path_buf(),
        line: problem.span.start.line,
        column: problem.span.start.column,
    });
    ScenarioReport {
        name: format!("Config File: {}", path.display()),
        file: path.to_path_buf(),
        tags: vec!["cst".to_owned()],
        outcome: Outcome::Failed,
        failure: Some(failure),
        skip_reason: None,
        earlier_attempts: Vec::new(),
        steps: Vec::new(),
        record: JobRecord::pending(),
        stdout_tail: Vec::new(),
        stderr_tail: Vec::new(),
        duration: Duration::ZERO,
    }
}

/// CST names a test that fails validation by its bare `name` (no "Command Test: "
/// prefix); a test without one is named by its place in the file here.
fn invalid_name(file: &LoadedCst, pointer: &str) -> String {
    let line = file.spans.value(pointer).start.line;
    match file_entry_name(file, pointer) {
        Some(raw) if !raw.is_empty() => raw,
        _ => format!("{} (line {line})", pointer.trim_start_matches('/')),
    }
}

/// The `name` an entry was given, when it parsed far enough to have one.
fn file_entry_name(file: &LoadedCst, pointer: &str) -> Option<String> {
    let config = &file.config;
    let mut parts = pointer.trim_start_matches('/').split('/');
    let list = parts.next()?;
    let index: usize = parts
        .next()
        .and_then(|index| index.parse().ok())
        .unwrap_or(0);
    match list {
        "commandTests" => config
            .command_tests
            .get(index)
            .map(|test| test.name.clone()),
        "fileExistenceTests" => config
            .file_existence_tests
            .get(index)
            .map(|test| test.name.clone()),
        "fileContentTests" => config
            .file_content_tests
            .get(index)
            .map(|test| test.name.clone()),
        "metadataTest" => Some("Metadata Test".to_owned()),
        _ => None,
    }
}

/// The failure of an entry that cannot run: each of its problems with its line.
fn invalid_failure(file: &LoadedCst, pointer: &str) -> Failure {
    let problems = file.invalid.get(pointer).map(Vec::as_slice).unwrap_or(&[]);
    let message = problems
        .iter()
        .map(|problem| {
            format!(
                "{}:{}:{}: {}",
                file.path.display(),
                problem.span.start.line,
                problem.span.start.column,
                problem.message
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    Failure::new(Category::ConfigInvalid, message)
}

fn tail(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(TAIL)..]
        .iter()
        .map(|line| (*line).to_owned())
        .collect()
}

fn backend_failure(error: BackendError) -> Failure {
    Failure::new(error.category(), error.to_string())
}

fn labels(context: &CstContext) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("dockproof.run".to_owned(), context.run_id.clone()),
        ("dockproof.cst".to_owned(), "true".to_owned()),
    ])
}

fn container_name(context: &CstContext) -> String {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let next = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("dockproof-{}-cst-{next}", context.run_id)
}

/// The host config parts of `containerRunOptions` (CST applies them only when any option is set).
fn apply_run_options(spec: &mut ContainerSpec, options: Option<&ContainerRunOptions>) {
    let Some(options) = options.filter(|options| options.is_set()) else {
        return;
    };
    spec.privileged = options.privileged;
    spec.cap_add = options.capabilities.clone();
    spec.mounts = options
        .bind_mounts
        .iter()
        .filter_map(|mount| parse_bind_mount(mount).ok())
        .collect();
}

/// A never-started container of the job's config file, the next of its pool (created
/// by the first test that needs it; removed by [`Shared::finish`]). Nothing starts it
/// and every read is a `docker cp`, so its tests cannot change what another test reads.
async fn file_container(
    context: &CstContext,
    shared: &Shared,
    job: &Job,
) -> Result<String, Failure> {
    let cell = shared.file_containers.get(job.file_index).and_then(|pool| {
        let turn = shared.next_container.get(job.file_index)?;
        let next = turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        pool.get(next % pool.len().max(1))
    });
    let Some(cell) = cell else {
        return Err(Failure::new(
            Category::ConfigInvalid,
            "internal: a file test of a config file the run does not hold",
        ));
    };
    cell.get_or_init(|| async {
        let mut spec = ContainerSpec {
            name: container_name(context),
            image: context.image.clone(),
            cmd: Some(vec![NOOP.to_owned()]),
            labels: labels(context),
            runtime: context.options.runtime.clone(),
            ..ContainerSpec::default()
        };
        apply_run_options(&mut spec, job.file.config.container_run_options.as_ref());
        context.backend.create(&spec).await.map_err(backend_failure)
    })
    .await
    .clone()
}

/// `docker cp CONTAINER:PATH -` read by `read` on a blocking thread as the archive
/// streams: when `read` has what it needs it drops the stream and the copy stops, so
/// no archive is held in memory whatever the path's size (`-j N` does not multiply it).
async fn copy_streamed<T, F>(
    backend: &Arc<dyn Backend>,
    container: &str,
    path: &str,
    read: F,
) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce(crate::transport::ChannelReader) -> Result<T, files::FilesError> + Send + 'static,
{
    let (sender, receiver) = tokio::sync::mpsc::channel(8);
    let reader =
        tokio::task::spawn_blocking(move || read(crate::transport::ChannelReader::new(receiver)));
    let copied = backend.copy_from_stream(container, path, sender).await;
    let read = reader
        .await
        .map_err(|error| format!("reading the copy of {path} stopped: {error}"))?;
    copied.map_err(|error| copy_error(path, &error))?;
    read.map_err(|error| error.to_string())
}

/// `docker cp` of a missing path reads like the tar driver's answer; anything else stays as it was.
fn copy_error(path: &str, error: &BackendError) -> String {
    let text = error.to_string();
    let lower = text.to_ascii_lowercase();
    if lower.contains("could not find the file") || lower.contains("no such file") {
        format!("File {path} not found in image")
    } else {
        text
    }
}

/// Files and configuration of the image under test.
enum Source {
    /// A never-started container of the image (its configuration from the run's one `image inspect`).
    Container {
        shared: Arc<Shared>,
        container: String,
    },
    Saved(Arc<SavedImage>),
    /// This machine (the host driver), with `--metadata`'s configuration.
    Host {
        metadata: Option<Arc<serde_json::Value>>,
    },
}

impl Source {
    /// The entry at `path`, not following a final symlink (what `docker cp` archives).
    async fn stat(&self, path: &str) -> Result<(FileInfo, Option<files::Content>), String> {
        self.entry(path, files::Want::Stat).await
    }

    /// The entry at `path`; on the docker driver its bytes too when `want` says so (a
    /// saved image's entries know where their bytes are).
    async fn entry(
        &self,
        path: &str,
        want: files::Want,
    ) -> Result<(FileInfo, Option<files::Content>), String> {
        match self {
            Source::Host { .. } => super::host::stat(path).map(|info| (info, None)),
            Source::Saved(saved) => saved
                .stat(path)
                .map(|node| (node.info.clone(), node.content.clone()))
                .ok_or_else(|| format!("File {path} not found in image")),
            Source::Container { shared, container } => {
                let base = files::clean(path)
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let node = copy_streamed(&shared.backend, container, path, move |reader| {
                    files::stream_entry(reader, &base, want)
                })
                .await?;
                node.map(|node| (node.info, node.content))
                    .ok_or_else(|| format!("File {path} not found in image"))
            }
        }
    }

    /// A file's bytes, following symlinks (a relative target is taken from the link's directory).
    async fn read(&self, path: &str) -> Result<Arc<Vec<u8>>, String> {
        if let Source::Host { .. } = self {
            let path = path.to_owned();
            return tokio::task::spawn_blocking(move || super::host::read(&path))
                .await
                .map_err(|error| format!("reading the file stopped: {error}"))?;
        }
        let mut current = files::clean(path);
        for _ in 0..40 {
            let (info, content) = self.entry(&current, files::Want::Content).await?;
            match info.kind {
                Kind::Dir => {
                    return Err(format!(
                        "Cannot read specified path: {path} is a directory, not a file"
                    ));
                }
                Kind::Symlink => {
                    let parent = current
                        .rsplit_once('/')
                        .map(|(parent, _)| parent.to_owned())
                        .unwrap_or_default();
                    current = if info.link.starts_with('/') {
                        files::clean(&info.link)
                    } else {
                        files::clean(&format!("{parent}/{}", info.link))
                    };
                }
                _ => {
                    return content
                        .ok_or_else(|| format!("{path} is not a regular file"))?
                        .load();
                }
            }
        }
        Err(format!("too many levels of symbolic links at {path}"))
    }

    /// The directories directly inside `path`.
    async fn dirs_in(&self, path: &str) -> Result<Vec<String>, String> {
        match self {
            Source::Host { .. } => super::host::dirs_in(path),
            Source::Saved(saved) => saved
                .dirs_in(path)
                .ok_or_else(|| format!("Error reading directory: {path} not found in image")),
            Source::Container { shared, container } => {
                copy_streamed(&shared.backend, container, path, files::stream_child_dirs).await
            }
        }
    }

    async fn config(&self) -> Result<ImageConfig, Failure> {
        match self {
            Source::Saved(saved) => Ok(ImageConfig::from_docker(&saved.config)),
            // CST's words when the host driver has no metadata file to read.
            Source::Host { metadata: None } => Err(Failure::new(
                Category::ConfigInvalid,
                "Error retrieving config: open : no such file or directory",
            )),
            Source::Host {
                metadata: Some(metadata),
            } => Ok(ImageConfig::from_docker(metadata)),
            Source::Container { shared, .. } => {
                let inspect = shared.image_inspect().await?;
                Ok(ImageConfig::from_docker(
                    inspect.get("Config").unwrap_or(&serde_json::Value::Null),
                ))
            }
        }
    }
}

async fn image_test(source: &Source, job: &Job) -> Result<Vec<String>, Failure> {
    let config = &job.file.config;
    match job.test {
        Test::FileExistence(index) => {
            let test = &config.file_existence_tests[index];
            // CST expands `$VAR` in the path with the image's environment, globalEnvVars
            // committed into it; on the host the configuration is `--metadata`'s alone
            // (globals go to CST's process environment) and a missing one is only logged.
            let env = if let Source::Host { .. } = source {
                source
                    .config()
                    .await
                    .map(|config| config.env)
                    .unwrap_or_default()
            } else {
                let mut env = source.config().await?.env;
                let globals: Vec<(String, String)> = config
                    .global_env_vars
                    .iter()
                    .map(|pair| (pair.key.clone(), check::expand(&pair.value, &env)))
                    .collect();
                env.extend(globals);
                env
            };
            // Schema 1.0.0 takes the path as written (pkg/types/v1/file_existence.go).
            let path = if job.file.version == super::model::SchemaVersion::V1 {
                test.path.clone()
            } else {
                check::expand(&test.path, &env)
            };
            let found = source.stat(&path).await;
            Ok(check::file_existence(
                test,
                found.as_ref().map(|(info, _)| info).map_err(String::as_str),
            ))
        }
        Test::FileContent(index) => {
            let test = &config.file_content_tests[index];
            let content = source.read(&test.path).await;
            Ok(check::file_content(
                test,
                content
                    .as_ref()
                    .map(|bytes| bytes.as_slice())
                    .map_err(String::as_str),
                job.file.version,
            ))
        }
        Test::Metadata => {
            let metadata = config.metadata_test.clone().unwrap_or_default();
            Ok(check::metadata(&metadata, &source.config().await?))
        }
        Test::License(index) => {
            let test = &config.license_tests[index];
            let mut errors = Vec::new();
            if test.debian {
                const ROOT: &str = "/usr/share/doc";
                match source.dirs_in(ROOT).await {
                    Err(error) => return Ok(vec![format!("Error reading directory: {error}")]),
                    Ok(packages) => {
                        for package in packages.iter().filter(|package| {
                            !check::LICENSE_ALLOWED_PACKAGES.contains(&package.as_str())
                        }) {
                            let file = format!("{ROOT}/{package}/copyright");
                            if let Err(error) = source.stat(&file).await {
                                errors.push(format!(
                                    "Error reading license file for {package}: {error}"
                                ));
                            }
                            let content = source.read(&file).await;
                            errors.extend(check::license_file(
                                &file,
                                content
                                    .as_ref()
                                    .map(|bytes| bytes.as_slice())
                                    .map_err(String::as_str),
                            ));
                        }
                    }
                }
            }
            for file in &test.files {
                let content = source.read(file).await;
                errors.extend(check::license_file(
                    file,
                    content
                        .as_ref()
                        .map(|bytes| bytes.as_slice())
                        .map_err(String::as_str),
                ));
            }
            Ok(errors)
        }
        Test::Command(_) | Test::Invalid(_) => Ok(Vec::new()),
    }
}

/// A command test the way CST's docker driver runs it: each setup command in
/// its own container from the current image, committed as the next image; the
/// test command in a fresh container from the last one, its entrypoint cleared.
/// Returns CST's errors, stdout and stderr.
/// What CST's `RunCommandTests` makes of a setup container that cannot be created,
/// started or committed: 2.0.0 reports "error in setup: …" under the test's bare name,
/// 1.0.0 logs it and drops the test (`run_one` reads [`SETUP_PREFIX`]).
fn in_setup(mut failure: Failure) -> Failure {
    failure.message = format!("{SETUP_PREFIX}{}", failure.message);
    failure
}

/// The start of CST's message for a setup that failed (pkg/types/v2/structure.go).
const SETUP_PREFIX: &str = "error in setup: ";

/// A command test the way CST's host driver runs it (pkg/drivers/host_driver.go and
/// `RunCommandTests`): globals (2.0.0) and the test's envVars set in the shared
/// environment, the setup commands run, the teardown deferred, then the command (its
/// `$VAR`s from `--metadata`'s Env) run with the test's envVars set once more.
async fn host_command_test(
    context: &CstContext,
    job: &Job,
    test: &CommandTest,
    env: &mut super::host::HostEnv,
) -> Result<(Vec<String>, String, String), Failure> {
    let file = &job.file;
    let timeout = context.command_timeout;
    let host_failure = |error: super::host::HostError| {
        let category = match error {
            super::host::HostError::Timeout { .. } => Category::Timeout,
            super::host::HostError::Spawn { .. } => Category::CommandNotFound,
            _ => Category::ConfigInvalid,
        };
        Failure::new(category, error.to_string())
    };
    let earlier = if file.version == super::model::SchemaVersion::V1 {
        // 1.0.0: `driver.Setup(append(globals, test.EnvVars...), setup)`.
        let vars: Vec<_> = file
            .config
            .global_env_vars
            .iter()
            .chain(&test.env_vars)
            .cloned()
            .collect();
        env.set_vars(&vars)
    } else {
        env.set_globals(&file.config.global_env_vars);
        env.set_vars(&test.env_vars)
    };
    for setup in &test.setup {
        // A setup command's exit code is not looked at (CST's Setup ignores it). CST
        // stops the whole run when one cannot start (logrus.Fatalf); here the test fails.
        env.run(setup, &[], timeout)
            .await
            .map_err(|error| in_setup(host_failure(error)))?;
    }
    env.defer_teardown(earlier, test.teardown.clone());
    let image_env = Source::Host {
        metadata: context.options.metadata.clone(),
    }
    .config()
    .await
    .map(|config| config.env)
    .unwrap_or_default();
    let argv: Vec<String> = test
        .argv()
        .iter()
        .map(|arg| check::expand(arg, &image_env))
        .collect();
    let (exit_code, stdout, stderr) = env
        .run(&argv, &test.env_vars, timeout)
        .await
        .map_err(host_failure)?;
    Ok((
        check::command(test, &stdout, &stderr, exit_code, file.version),
        stdout,
        stderr,
    ))
}

async fn command_test(
    context: &CstContext,
    shared: &Shared,
    job: &Job,
    test_pointer: String,
    test: &CommandTest,
) -> Result<(Vec<String>, String, String), Failure> {
    let backend = context.backend.as_ref();
    if context.options.archive.is_some() || context.options.oci_layout.is_some() {
        return Err(in_setup(Failure::new(
            Category::ConfigInvalid,
            TAR_NO_COMMANDS,
        )));
    }
    let save = context.options.save;
    let file = &job.file;
    let run_options = file
        .config
        .container_run_options
        .as_ref()
        .filter(|options| options.is_set());
    let inspect = shared.image_inspect().await?;
    let mut image_env =
        ImageConfig::from_docker(inspect.get("Config").unwrap_or(&serde_json::Value::Null)).env;
    // globalEnvVars: CST commits them into the image, expanded with the image's env.
    let mut global = Vec::new();
    for pair in &file.config.global_env_vars {
        let value = check::expand(&pair.value, &image_env);
        global.push((pair.key.clone(), value));
    }
    // Schema 1.0.0 has no SetEnv: globals go only to the setup containers (with the
    // test's envVars), and so into the image only when a setup command is committed
    // (CST's v1 RunCommandTests: `driver.Setup(append(globals, test.EnvVars...), setup)`).
    let v1 = file.version == super::model::SchemaVersion::V1;
    if !v1 {
        for (key, value) in &global {
            image_env.insert(key.clone(), value.clone());
        }
    }
    let mut committed: Vec<String> = Vec::new();
    // What the test leaves, removed in the background once it has its result.
    let mut containers: Vec<String> = Vec::new();
    let result = async {
        let mut image = context.image.clone();
        let mut committed_from: Option<String> = None;
        for setup in &test.setup {
            // Setup containers get the test's envVars expanded with the current image's env.
            let mut env = global.clone();
            env.extend(
                test.env_vars
                    .iter()
                    .map(|pair| (pair.key.clone(), check::expand(&pair.value, &image_env))),
            );
            let pointer = format!("{test_pointer}/setup/{}", committed.len());
            let run = Run {
                pointer: &pointer,
                image: &image,
                committed_from: committed_from.as_deref(),
            };
            let (id, ..) = run_container(context, job, &run, setup.clone(), env)
                .await
                .map_err(in_setup)?;
            let new_image = backend.commit(&id).await;
            containers.push(id);
            image = new_image.map_err(backend_failure).map_err(in_setup)?;
            committed.push(image.clone());
            committed_from = Some(pointer);
            let inspect = backend
                .image_inspect_json(&image)
                .await
                .map_err(backend_failure)?;
            image_env =
                ImageConfig::from_docker(inspect.get("Config").unwrap_or(&serde_json::Value::Null))
                    .env;
        }
        let argv: Vec<String> = test
            .argv()
            .iter()
            .map(|arg| check::expand(arg, &image_env))
            .collect();
        let mut env = if v1 { Vec::new() } else { global.clone() };
        env.extend(
            test.env_vars
                .iter()
                .map(|pair| (pair.key.clone(), pair.value.clone())),
        );
        if let Some(options) = run_options {
            env.extend(file.env_file.iter().cloned());
            env.extend(options.env_vars.iter().filter_map(|name| {
                std::env::var(name)
                    .ok()
                    .filter(|value| !value.is_empty())
                    .map(|value| (name.clone(), value))
            }));
        }
        let (id, exit_code, stdout, stderr) = run_container(
            context,
            job,
            &Run {
                pointer: &test_pointer,
                image: &image,
                committed_from: committed_from.as_deref(),
            },
            argv,
            env,
        )
        .await?;
        containers.push(id);
        Ok((
            check::command(test, &stdout, &stderr, exit_code, file.version),
            stdout,
            stderr,
        ))
    }
    .await;
    // CST's docker driver skips teardown: every test's container and images are thrown away.
    if !save {
        shared.remove_later(containers, committed);
    }
    result
}

/// Which container of a command test [`run_container`] runs, on which image.
struct Run<'a> {
    /// Its pointer in the CST file (`/commandTests/0/setup/1`).
    pointer: &'a str,
    image: &'a str,
    /// The setup command whose committed container `image` is (see [`ObservedRun`]).
    committed_from: Option<&'a str>,
}

/// Create, start and wait for a container running `argv` with the entrypoint cleared;
/// returns its id (still to be removed), exit code, stdout and stderr.
async fn run_container(
    context: &CstContext,
    job: &Job,
    run: &Run<'_>,
    argv: Vec<String>,
    env: Vec<(String, String)>,
) -> Result<(String, i64, String, String), Failure> {
    let Run { pointer, image, .. } = *run;
    let backend = context.backend.as_ref();
    let options = job
        .file
        .config
        .container_run_options
        .as_ref()
        .filter(|options| options.is_set());
    let mut spec = ContainerSpec {
        name: container_name(context),
        image: image.to_owned(),
        cmd: Some(argv),
        entrypoint: Some(Vec::new()),
        env,
        user: options
            .map(|options| options.user.clone())
            .filter(|user| !user.is_empty()),
        labels: labels(context),
        runtime: context.options.runtime.clone(),
        ..ContainerSpec::default()
    };
    apply_run_options(&mut spec, options);
    let id = backend.create(&spec).await.map_err(backend_failure)?;
    let outcome = async {
        backend.start(&id).await.map_err(backend_failure)?;
        let code = match tokio::time::timeout(context.command_timeout, backend.wait(&id)).await {
            Ok(code) => code.map_err(backend_failure)?,
            Err(_) => {
                let _ = backend.kill(&id).await;
                return Err(Failure::new(
                    Category::Timeout,
                    format!(
                        "the command did not finish within {:?}",
                        context.command_timeout
                    ),
                ));
            }
        };
        let logs = backend
            .logs(&id, CaptureLimits::default(), None)
            .await
            .map_err(backend_failure)?;
        if let Some(observer) = &context.observer {
            let inspect = backend.inspect_json(&id).await.map_err(backend_failure)?;
            let image_inspect = backend
                .image_inspect_json(image)
                .await
                .map_err(backend_failure)?;
            if let Ok(mut runs) = observer.runs.lock() {
                runs.push(ObservedRun {
                    pointer: pointer.to_owned(),
                    spec: spec.clone(),
                    inspect,
                    image_inspect,
                    exit_code: code,
                    logs: logs.clone(),
                    committed_from: run.committed_from.map(str::to_owned),
                });
            }
        }
        Ok((code, logs.stdout.text, logs.stderr.text))
    }
    .await;
    match outcome {
        Ok((code, stdout, stderr)) => Ok((id, code, stdout, stderr)),
        Err(mut failure) => {
            let _ = backend.remove(&id).await;
            if failure.category == Category::CommandNotFound {
                // CST reports a command that cannot start as the test's error, like any other.
                failure.message = format!("Error creating container: {}", failure.message);
            }
            Err(failure)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Mount, MountSource};

    #[test]
    fn bind_mounts_parse_like_docker_binds() {
        assert_eq!(
            parse_bind_mount("/h:/c:ro").unwrap(),
            Mount {
                source: MountSource::Bind("/h".into()),
                container: "/c".into(),
                read_only: true
            }
        );
        assert!(parse_bind_mount("rel:/c").is_err());
        assert!(parse_bind_mount("/h").is_err());
    }
}
