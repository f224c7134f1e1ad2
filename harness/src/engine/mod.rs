//! The engine executes one scenario: stages inputs, runs containers through a
//! backend, observes what they left, asks [`check`](crate::check) for
//! verdicts, fills the job record, and always cleans up.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use crate::backend::{
    AttachError, Backend, BackendError, CaptureLimits, ContainerSpec, ExecRequest, LogFiles, Mount,
    ScenarioOverrides,
};
use crate::category::Category;
use crate::check::{self, FileObservation, Finding};
use crate::events::{Event, Failure, Location, Outcome, ScenarioReport, StepReport};
use crate::filestore::Filestore;
use crate::fixtures::FixtureImages;
use crate::record::{Artifact, JobRecord, LogFilesRecord};
use crate::scenario::template::{self, Vars};
use crate::scenario::{Action, Expect, LoadedScenario, RunSpec, Source, StageItem, Step, Text};
use crate::secrets::{self, Masker};
use crate::workspace::{self, Generated, Limits, Workspace};

mod build;
mod capture;
mod compose;
mod https;
mod logs;
mod monitor;
mod service;
mod transfer;

/// Scenario-wide deadline when the file sets none.
pub const DEFAULT_SCENARIO_TIMEOUT: Duration = Duration::from_secs(300);
/// Run/exec deadline when the step sets none.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// Grace between SIGTERM and SIGKILL when the step sets none.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(2);
/// Where the workspace is mounted when the step does not say.
pub const DEFAULT_MOUNT: &str = "/workspace";
/// Lines of each stream kept in the job record.
const LOG_TAIL_LINES: usize = 20;
/// How often, and how far apart, an exit 137 under a memory limit is re-inspected
/// for the daemon's OOM record (it arrives as a separate event): up to 2 s.
/// How long an attached run's start may take on top of its timeout (the old `start`
/// call's own limit).
const START_ALLOWANCE: Duration = Duration::from_secs(120);
const OOM_SETTLE_TRIES: u32 = 20;
const OOM_SETTLE_PAUSE: Duration = Duration::from_millis(100);
/// Files larger than this are not read as text for content checks.
const MAX_TEXT_BYTES: u64 = 16 << 20;

/// What every scenario of a run shares.
pub struct EngineContext {
    pub backend: Arc<dyn Backend>,
    pub filestore: Filestore,
    pub fixtures: Arc<FixtureImages>,
    /// The run's own id, unique per invocation: every label carries it.
    pub run_id: String,
    /// What container names are made of: the run id, except on the fake, where it is the
    /// suite id the reports show (the fake's state is per run, so names cannot clash
    /// there), because the fake derives container IDs from names and fake reports must be
    /// byte-identical run to run.
    pub names_id: String,
    /// Workspaces are created under this directory.
    pub work_dir: PathBuf,
    /// Memory kept of each output stream (the tail).
    pub capture: CaptureLimits,
    /// With a directory, every run's whole stdout and stderr stream to files
    /// under it (`SCENARIO/STEP.stdout.log`); only the tail stays in memory.
    pub logs_dir: Option<PathBuf>,
    pub events: UnboundedSender<Event>,
    /// How job workspaces reach this host's containers (`bind` or `copy`, or probed).
    pub transport: Arc<crate::transport::TransportPolicy>,
    /// Replay (fake), record, check or ignore recordings (docs/recordings.md).
    pub recordings: crate::recordings::RecordingMode,
    /// `--keep-failed`: a failed scenario's objects are left in place and listed here.
    pub keep_failed: Option<KeptList>,
    /// Cancelled on Ctrl-C or SIGTERM: the step loop stops, the scenario cleans up.
    pub cancel: crate::cancel::Cancel,
}

/// The label on every container and compose object a run with `--keep-failed` creates:
/// what its failed scenarios leave stays, labelled so (Docker cannot label afterwards).
pub const KEEP_LABEL: &str = "dockproof.keep-failed";

/// What `--keep-failed` left of a run's failed scenarios.
pub type KeptList = Arc<std::sync::Mutex<Vec<Kept>>>;

/// A failed scenario's objects left in place for debugging (`--keep-failed`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kept {
    /// The scenario's name.
    pub scenario: String,
    /// Its slug: the value of the `dockproof.scenario` label on its containers.
    pub slug: String,
    /// Container IDs: its runs and services, and its compose project's.
    pub containers: Vec<String>,
    /// The compose project it had up.
    pub compose_project: Option<String>,
    /// The workspace volume (transport `copy`).
    pub volume: Option<String>,
    /// Images its build steps made.
    pub images: Vec<String>,
    /// The workspace directory on this machine.
    pub workspace: Option<PathBuf>,
}

pub use crate::run_id::slug;

/// Run one scenario to its verdict; containers and the workspace are removed on every path.
pub async fn run_scenario(context: &EngineContext, loaded: &LoadedScenario) -> ScenarioReport {
    let started = Instant::now();
    let scenario = &loaded.scenario;
    let _ = context.events.send(Event::ScenarioStarted {
        name: scenario.name.clone(),
    });
    // A drift check of a scenario that has no recording has nothing to compare.
    if let crate::recordings::RecordingMode::Check { .. } = &context.recordings {
        let dir = context.recordings.dir_for(loaded);
        if !dir.join(dockproof_recording::FILE_NAME).is_file() {
            return skipped(
                loaded,
                format!(
                    "no recording at {} to check: record it with `dockproof record`",
                    dir.display()
                ),
            );
        }
    }
    // On the fake, a scenario with a recording has fake-docker replay it.
    let recordings = match &context.recordings {
        crate::recordings::RecordingMode::Replay { .. } => {
            let dir = context.recordings.dir_for(loaded);
            dir.join(dockproof_recording::FILE_NAME)
                .is_file()
                .then_some(dir)
        }
        _ => None,
    };
    let overrides = ScenarioOverrides {
        fake_faults: scenario.fake_faults.clone(),
        docker_host: scenario.docker_host.clone(),
        scope: scenario.name.clone(),
        recordings,
    };
    let backend = if overrides.is_empty() {
        Arc::clone(&context.backend)
    } else {
        match context.backend.with_overrides(&overrides) {
            Ok(backend) => backend,
            Err(reason) => return skipped(loaded, reason),
        }
    };
    if let Some(reason) = unmet_requirement(backend.as_ref(), scenario).await {
        return skipped(loaded, reason);
    }
    let mut run = ScenarioRun::new(context, loaded, backend);
    let deadline = tokio::time::Instant::now()
        + scenario
            .timeout
            .map_or(DEFAULT_SCENARIO_TIMEOUT, |timeout| timeout.0);

    let mut plan: Vec<(String, &Step)> = Vec::new();
    let stage_step;
    if !scenario.stage.is_empty() {
        stage_step = Step {
            name: Some("stage inputs".into()),
            action: Action::Stage(scenario.stage.clone()),
            capture: Default::default(),
            references: Vec::new(),
            expect_failure: None,
        };
        plan.push(("/stage".into(), &stage_step));
    }
    for (index, step) in scenario.steps.iter().enumerate() {
        plan.push((format!("/steps/{index}"), step));
    }

    let mut steps = Vec::new();
    let mut verdict: Option<Failure> = None;
    // Why the scenario is skipped part-way: a command fake-docker does not model.
    let mut unmodelled: Option<String> = None;
    // Cancelled (Ctrl-C, SIGTERM): the steps stop, the cleanup below still runs.
    let mut interrupted = context.cancel.is_cancelled();
    match run.prepare().await {
        Ok(()) => {}
        Err(failure) => verdict = Some(failure),
    }
    for (index, (pointer, step)) in plan.iter().enumerate() {
        let kind = step.kind().as_str();
        let name = step
            .name
            .clone()
            .unwrap_or_else(|| format!("step {}: {kind}", index + 1));
        if verdict.is_some() || unmodelled.is_some() || interrupted {
            steps.push(StepReport {
                index,
                name,
                kind,
                outcome: Outcome::Skipped,
                expected_failure: step.expect_failure,
                failure: None,
                duration: Duration::ZERO,
            });
            continue;
        }
        let step_started = Instant::now();
        let _ = context.events.send(Event::StepStarted {
            scenario: scenario.name.clone(),
            step: run.masker.mask(&name).into_owned(),
        });
        let step_index = pointer
            .strip_prefix("/steps/")
            .and_then(|index| index.parse::<usize>().ok());
        if let Some(index) = step_index {
            run.mark_log_windows(index).await;
        }
        let stepped = tokio::select! {
            // Dropping the step stops it: its processes are killed on drop, and what it
            // created is in `run` already (or, created the very moment it was stopped,
            // the run's final sweep finds it).
            () = context.cancel.cancelled() => None,
            stepped = tokio::time::timeout_at(deadline, run.step(pointer, step_index, step)) => Some(stepped),
        };
        let Some(stepped) = stepped else {
            interrupted = true;
            steps.push(StepReport {
                index,
                name,
                kind,
                outcome: Outcome::Interrupted,
                expected_failure: step.expect_failure,
                failure: None,
                duration: step_started.elapsed(),
            });
            continue;
        };
        let result = match stepped {
            Ok(result) => result,
            Err(_) => Err(vec![check::scenario_timeout(
                scenario
                    .timeout
                    .map_or(DEFAULT_SCENARIO_TIMEOUT, |timeout| timeout.0),
            )]),
        };
        let (mut outcome, mut failure) = check::step_verdict(
            result,
            step.expect_failure,
            |pointer| run.location(pointer),
            pointer,
        );
        // A command fake-docker does not model says nothing about the image: unless the
        // scenario expects command_not_found, the scenario is skipped with the reason.
        if outcome == Outcome::Failed
            && scenario.expect_failure != Some(Category::CommandNotFound)
            && let Some(reason) = failure
                .as_ref()
                .and_then(|failure| crate::backend::unmodelled_reason(&failure.message))
        {
            unmodelled = Some(reason.to_owned());
            outcome = Outcome::Skipped;
            failure = None;
        }
        if outcome == Outcome::Failed {
            verdict = failure.clone();
        }
        let mut report = StepReport {
            index,
            name,
            kind,
            outcome,
            expected_failure: step.expect_failure,
            failure,
            duration: step_started.elapsed(),
        };
        report.mask(&run.masker);
        let _ = context.events.send(Event::StepFinished {
            scenario: scenario.name.clone(),
            step: report.clone(),
        });
        steps.push(report);
    }

    if !interrupted {
        run.observe_detached().await;
    }
    let failing = !interrupted
        && unmodelled.is_none()
        && check::scenario_verdict(verdict.clone(), scenario.expect_failure, |pointer| {
            run.location(pointer)
        })
        .0 == Outcome::Failed;
    let cleaned = match &context.keep_failed {
        Some(kept) if failing => {
            run.keep(kept).await;
            Ok(())
        }
        // Bounded: what a cleanup cut short leaves is for the run's final sweep.
        _ => match tokio::time::timeout(crate::cancel::CLEANUP_LIMIT, run.cleanup()).await {
            Ok(cleaned) => cleaned,
            Err(_) => Err(Failure::new(
                Category::CleanupFailed,
                format!(
                    "the cleanup did not finish within {}; the run's final sweep removes what is left",
                    humantime::format_duration(crate::cancel::CLEANUP_LIMIT)
                ),
            )),
        },
    };
    if let Err(failure) = cleaned
        && verdict.is_none()
    {
        verdict = Some(failure);
    }
    if interrupted {
        // Interrupted is not a verdict on the job: no category applies (a cleanup that
        // failed is still said, as the failure).
        let masker = std::mem::take(&mut run.masker);
        let mut report = ScenarioReport {
            name: scenario.name.clone(),
            file: loaded.path.clone(),
            tags: scenario.tags.clone(),
            outcome: Outcome::Interrupted,
            failure: verdict.filter(|failure| failure.category == Category::CleanupFailed),
            skip_reason: None,
            earlier_attempts: Vec::new(),
            steps,
            stdout_tail: run.record.context.docker.log_tail.stdout.clone(),
            stderr_tail: run.record.context.docker.log_tail.stderr.clone(),
            record: run.record,
            duration: started.elapsed(),
        };
        report.mask(&masker);
        return report;
    }
    if let Some(reason) = unmodelled {
        return skipped(loaded, reason);
    }
    let (mut outcome, mut verdict) =
        check::scenario_verdict(verdict, scenario.expect_failure, |pointer| {
            run.location(pointer)
        });
    if let Some(failure) = run.finish_recording(outcome) {
        outcome = Outcome::Failed;
        verdict = Some(failure);
    }
    let masker = std::mem::take(&mut run.masker);
    let mut report = ScenarioReport {
        name: scenario.name.clone(),
        file: loaded.path.clone(),
        tags: scenario.tags.clone(),
        outcome,
        failure: verdict,
        skip_reason: None,
        earlier_attempts: Vec::new(),
        steps,
        stdout_tail: run.record.context.docker.log_tail.stdout.clone(),
        stderr_tail: run.record.context.docker.log_tail.stderr.clone(),
        record: run.record,
        duration: started.elapsed(),
    };
    report.mask(&masker);
    report
}

/// Why this backend cannot give the scenario what its `requires:` asks for, if it cannot:
/// a real daemon (the fake has none), and docker compose installed.
async fn unmet_requirement(
    backend: &dyn Backend,
    scenario: &crate::scenario::Scenario,
) -> Option<String> {
    if !scenario.needs_real_daemon() {
        return None;
    }
    if let Err(reason) = backend.daemon_env() {
        return Some(reason);
    }
    if scenario.needs_compose() && crate::compose::detect().await.is_none() {
        return Some(crate::compose::NOT_FOUND.to_owned());
    }
    None
}

/// The report of a scenario this backend cannot run as written (e.g. fake-only faults on a real daemon).
fn skipped(loaded: &LoadedScenario, reason: String) -> ScenarioReport {
    ScenarioReport {
        name: loaded.scenario.name.clone(),
        file: loaded.path.clone(),
        tags: loaded.scenario.tags.clone(),
        outcome: Outcome::Skipped,
        failure: None,
        skip_reason: Some(reason),
        earlier_attempts: Vec::new(),
        steps: Vec::new(),
        record: JobRecord::pending(),
        stdout_tail: Vec::new(),
        stderr_tail: Vec::new(),
        duration: Duration::ZERO,
    }
}

fn finding(
    category: Category,
    pointer: impl Into<String>,
    message: impl Into<String>,
) -> Vec<Finding> {
    vec![Finding {
        category,
        message: message.into(),
        pointer: pointer.into(),
    }]
}

/// A fixture that cannot be staged or seeded, at the item's `from`.
fn fixture_finding(
    item_pointer: &str,
    resolved: &std::path::Path,
    error: workspace::WorkspaceError,
) -> Vec<Finding> {
    let pointer = format!("{item_pointer}/from");
    match error {
        workspace::WorkspaceError::Io { source, .. } => finding(
            Category::ConfigInvalid,
            pointer,
            format!("cannot read fixture `{}`: {source}", resolved.display()),
        ),
        refused => finding(refused.category(), pointer, format!("fixture {refused}")),
    }
}

fn backend_finding(error: &BackendError, pointer: &str) -> Vec<Finding> {
    finding(error.category(), pointer, error.to_string())
}

fn texts(values: &[Text], vars: &Vars) -> Vec<String> {
    values
        .iter()
        .map(|value| template::render(&value.0, vars))
        .collect()
}

fn env_list(env: &std::collections::BTreeMap<String, Text>, vars: &Vars) -> Vec<(String, String)> {
    env.iter()
        .map(|(key, value)| (key.clone(), template::render(&value.0, vars)))
        .collect()
}

/// The state of one scenario while it runs.
struct ScenarioRun<'a> {
    context: &'a EngineContext,
    /// The run's backend with this scenario's overrides (`fake_faults`, `docker_host`).
    backend: Arc<dyn Backend>,
    loaded: &'a LoadedScenario,
    vars: Vars,
    slug: String,
    /// Shared with the blocking tasks that stage into it and read from it.
    workspace: Option<Arc<Workspace>>,
    record: JobRecord,
    /// Every container created, removed at the end.
    containers: Vec<String>,
    /// Detached containers by the name steps use for them.
    named: HashMap<String, String>,
    /// Images built by `build` steps, removed at the end.
    images: Vec<String>,
    /// Hides the scenario's secrets in everything reported.
    masker: Masker,
    /// The compose project while it is up; taken down at the end on every path.
    compose: Option<compose::ComposeState>,
    /// Containers whose log position is noted when the step at an index begins (log windows).
    log_windows: HashMap<usize, Vec<String>>,
    /// Those positions, by step index and container name.
    log_marks: HashMap<(usize, String), logs::Mark>,
    /// This host's workspace transport, once a container step asked for it.
    transport: Option<crate::transport::Transport>,
    /// With `copy`: the scenario's workspace volume, removed at the end.
    volume: Option<String>,
    /// With `copy`: the local workspace changed since it was last uploaded.
    mirror_dirty: bool,
    /// Containers with the workspace mounted, by ID.
    workspace_mounts: HashMap<String, transfer::Mounted>,
    /// The last detached container with the workspace (copied back from before an upload).
    live: Option<String>,
    /// Containers observed for the scenario's recording (`record`, `record --check`).
    recorded: Vec<dockproof_recording::RecordedContainer>,
    /// Images `build` steps made, observed for the recording.
    recorded_builds: Vec<dockproof_recording::RecordedBuild>,
    /// Their blobs.
    blobs: dockproof_recording::Blobs,
    /// Why a container could not be observed for the recording.
    recording_problem: Option<String>,
    /// Detached containers observed for the recording, by ID: their index in `recorded`
    /// (their outcome is read before cleanup), image and workspace mount.
    recorded_detached: HashMap<String, (usize, String, String)>,
    /// Commands `exec` steps ran, observed for the recording.
    recorded_execs: Vec<dockproof_recording::RecordedExec>,
    /// Images `cst:` steps tested, with their file trees (recording).
    recorded_images: Vec<dockproof_recording::RecordedImage>,
    /// Services observed for the recording: name → (index in `recorded`, first
    /// published container port).
    recorded_services: HashMap<String, (usize, u16)>,
    /// HTTP exchanges probes made with recorded services: (service, exchange), in order.
    recorded_exchanges: Vec<(String, dockproof_recording::Exchange)>,
    /// Workspace files recorded masked (they held a secret): path → masked size, sha256.
    recorded_masked: std::collections::BTreeMap<String, (u64, String)>,
    /// What the latest step left for its captures to read.
    output: capture::StepOutput,
    /// Captured values derived from a secret, masked like one.
    masked_values: Vec<String>,
    /// Their names (`STEP.KEY`).
    masked_captures: std::collections::HashSet<String>,
}

impl<'a> ScenarioRun<'a> {
    fn new(
        context: &'a EngineContext,
        loaded: &'a LoadedScenario,
        backend: Arc<dyn Backend>,
    ) -> Self {
        let slug = slug(&loaded.scenario.name);
        let mut record = JobRecord::pending();
        record.context.vars = loaded.vars.clone();
        ScenarioRun {
            context,
            backend,
            loaded,
            vars: Vars {
                job_id: slug.clone(),
                run_id: context.run_id.clone(),
                scenario_name: loaded.scenario.name.clone(),
                services: Default::default(),
                secrets: Default::default(),
                captures: Default::default(),
            },
            masker: Masker::default(),
            slug,
            workspace: None,
            record,
            containers: Vec::new(),
            named: HashMap::new(),
            images: Vec::new(),
            compose: None,
            log_windows: logs::marks_wanted(&loaded.scenario.steps),
            log_marks: HashMap::new(),
            transport: None,
            volume: None,
            mirror_dirty: false,
            workspace_mounts: HashMap::new(),
            live: None,
            recorded: Vec::new(),
            recorded_builds: Vec::new(),
            blobs: Default::default(),
            recording_problem: None,
            recorded_detached: HashMap::new(),
            recorded_execs: Vec::new(),
            recorded_images: Vec::new(),
            recorded_services: HashMap::new(),
            recorded_exchanges: Vec::new(),
            recorded_masked: Default::default(),
            output: Default::default(),
            masked_values: Vec::new(),
            masked_captures: Default::default(),
        }
    }

    /// With `record`: write the recording of a scenario that came out as expected. With
    /// `record --check`: compare a fresh recording with the one on disk; drift (or no
    /// recording) is the scenario's failure.
    fn finish_recording(&mut self, outcome: Outcome) -> Option<Failure> {
        use crate::recordings::RecordingMode;
        let mode = &self.context.recordings;
        if !mode.observes() {
            return None;
        }
        let dir = mode.dir_for(self.loaded);
        let recorded = std::mem::take(&mut self.recorded);
        let builds = std::mem::take(&mut self.recorded_builds);
        let execs = std::mem::take(&mut self.recorded_execs);
        let images = std::mem::take(&mut self.recorded_images);
        let fail = |message: String| {
            let mut failure = Failure::new(Category::AssertionFailed, message);
            failure.location = Some(self.location("/name"));
            Some(failure)
        };
        if let Some(problem) = &self.recording_problem {
            return fail(format!("cannot record this scenario: {problem}"));
        }
        let fresh = crate::recordings::recording(
            &self.loaded.scenario.name,
            recorded,
            builds,
            execs,
            images,
        );
        match mode {
            RecordingMode::Record { .. } => {
                if outcome != Outcome::Passed {
                    // The verdict already says why; a run that went wrong is not kept.
                    return None;
                }
                fresh
                    .save(&dir, &self.blobs)
                    .err()
                    .and_then(|error| fail(format!("cannot write the recording: {error}")))
            }
            RecordingMode::Check { .. } => {
                match crate::recordings::check(&dir, &fresh, &self.blobs) {
                    Ok(drift) if drift.is_empty() => None,
                    Ok(drift) => fail(format!(
                        "recording drift: {} no longer describes what the daemon does: {}; if the change is intended, re-record with `dockproof record {}`",
                        dir.display(),
                        drift.join("; "),
                        self.loaded.path.display()
                    )),
                    Err(problem) => fail(format!("recording drift: {problem}")),
                }
            }
            RecordingMode::Off | RecordingMode::Replay { .. } => None,
        }
    }

    fn location(&self, pointer: &str) -> Location {
        let (file, span) = self.loaded.locate(pointer);
        Location {
            file: file.to_path_buf(),
            line: span.start.line,
            column: span.start.column,
        }
    }

    fn workspace(&self) -> &Workspace {
        self.workspace
            .as_deref()
            .expect("prepare() creates the workspace before any step")
    }

    /// The workspace, for work on the blocking pool.
    fn shared_workspace(&self) -> Arc<Workspace> {
        Arc::clone(
            self.workspace
                .as_ref()
                .expect("prepare() creates the workspace before any step"),
        )
    }

    /// Create the workspace and seed the filestore.
    async fn prepare(&mut self) -> Result<(), Failure> {
        let scenario = &self.loaded.scenario;
        let resolved = secrets::resolve(&scenario.secrets, |name| std::env::var(name).ok())
            .and_then(|values| Ok((Masker::new(values.values())?, values)));
        match resolved {
            Ok((masker, values)) => {
                self.masker = masker;
                self.vars.secrets = values;
            }
            Err(error) => {
                let pointer = match &error {
                    secrets::SecretError::Unset { name, .. }
                    | secrets::SecretError::TooShort { name }
                    | secrets::SecretError::Random { name, .. } => {
                        format!("/secrets/{}", crate::scenario::yaml::escape_segment(name))
                    }
                    secrets::SecretError::TooLarge { .. } => "/secrets".to_owned(),
                };
                let mut failure = Failure::new(Category::ConfigInvalid, error.to_string());
                failure.location = Some(self.location(&pointer));
                return Err(failure);
            }
        }
        let spec = &self.loaded.scenario.workspace;
        let limits = Limits {
            max_bytes: spec.max_bytes.map(|size| size.0),
            max_files: spec.max_files,
        };
        let prefix = format!("dockproof-ws-{}-", self.slug);
        let workspace = Workspace::create(&self.context.work_dir, &prefix, limits)
            .map_err(|error| Failure::new(Category::ConfigInvalid, error.to_string()))?;
        self.record.context.docker.workspace.max_bytes = limits.max_bytes;
        self.record.context.docker.workspace.max_files = limits.max_files;
        self.workspace = Some(Arc::new(workspace));
        for (index, item) in self.loaded.scenario.seed.iter().enumerate() {
            let pointer = format!("/seed/{index}");
            let key = template::render(&item.key, &self.vars);
            let bytes = match item.sources().first() {
                Some(source) => self.read_source(*source, &pointer).await,
                None => Err(finding(Category::ConfigInvalid, &pointer, "no source")),
            };
            let result = match bytes {
                Ok(bytes) => self
                    .context
                    .filestore
                    .put(&key, bytes)
                    .await
                    .map_err(|error| {
                        finding(Category::FilestoreFailed, &pointer, error.to_string())
                    }),
                Err(findings) => Err(findings),
            };
            if let Err(findings) = result {
                let mut failure = Failure::new(
                    findings[0].category,
                    format!("seeding the filestore failed: {}", findings[0].message),
                );
                failure.location = Some(self.location(&pointer));
                return Err(failure);
            }
        }
        Ok(())
    }

    async fn step(
        &mut self,
        pointer: &str,
        index: Option<usize>,
        step: &Step,
    ) -> Result<(), Vec<Finding>> {
        self.output = capture::StepOutput::default();
        // Image references may name `{{ run.id }}` and earlier captures: rendered now.
        let rendered = render_image_references(&step.action, &self.vars);
        let result = match rendered.as_ref().unwrap_or(&step.action) {
            Action::Stage(items) => {
                // The scenario's own `stage:` runs as a step at `/stage`.
                let stage_pointer = if pointer == "/stage" {
                    pointer.to_owned()
                } else {
                    format!("{pointer}/stage")
                };
                self.stage(&stage_pointer, items).await
            }
            Action::Run { run, expect } => self.run(pointer, run, expect).await,
            Action::Exec { exec, expect } => self.exec(pointer, exec, expect).await,
            Action::Upload(upload) => self.upload(&format!("{pointer}/upload"), upload).await,
            Action::Telemetry(assertions) => self.telemetry(pointer, assertions),
            Action::Service(service) => self.service(pointer, service).await,
            Action::Http(http) => self.http(pointer, http).await,
            Action::Logs(logs) => self.logs(pointer, index, logs).await,
            Action::Build(build) => self.build(pointer, build).await,
            Action::Inspect(inspect) => self.inspect(pointer, inspect).await,
            Action::Lint(lint) => self.lint(pointer, lint),
            Action::Cst(cst) => self.cst(&format!("{pointer}/cst"), cst).await,
            Action::Compose(action) => self.compose(pointer, action).await,
        };
        result?;
        let hashed = self.capture_file_hashes(step).await;
        self.capture(pointer, step, &hashed)
    }

    /// The files `step`'s `capture: { KEY: { file_sha256: PATH } }` entries name, read and
    /// hashed on the blocking pool (a job's output may be gigabytes): path → what is there,
    /// or why it cannot be read.
    async fn capture_file_hashes(&self, step: &Step) -> capture::FileHashes {
        if step.name.is_none() {
            return capture::FileHashes::new();
        }
        let paths: Vec<String> = step
            .capture
            .values()
            .filter_map(|spec| match spec.sources().first() {
                Some(crate::scenario::CaptureSource::FileSha256(path)) => Some((*path).to_owned()),
                _ => None,
            })
            .collect();
        if paths.is_empty() {
            return capture::FileHashes::new();
        }
        let workspace = self.shared_workspace();
        crate::blocking::run(move |_| {
            paths
                .into_iter()
                .map(|path| {
                    let observed =
                        observe_file(&workspace, &path, false).map_err(|error| error.to_string());
                    (path, observed)
                })
                .collect()
        })
        .await
    }

    /// Assertions by JSON pointer on a container's or an image's inspect document.
    async fn inspect(
        &mut self,
        pointer: &str,
        inspect: &crate::scenario::InspectSpec,
    ) -> Result<(), Vec<Finding>> {
        let inspect_pointer = format!("{pointer}/inspect");
        let backend = self.backend.as_ref();
        let document = match (&inspect.container, &inspect.image) {
            (Some(name), _) => match self.named.get(name) {
                Some(id) => backend.inspect_json(id).await,
                None => {
                    return Err(finding(
                        Category::ConfigInvalid,
                        format!("{inspect_pointer}/container"),
                        format!("no container named `{name}`"),
                    ));
                }
            },
            (None, Some(image)) => backend.image_inspect_json(image).await,
            (None, None) => {
                return Err(finding(
                    Category::ConfigInvalid,
                    &inspect_pointer,
                    "no `container` or `image`",
                ));
            }
        }
        .map_err(|error| backend_finding(&error, &inspect_pointer))?;
        self.output.inspect = Some(document.clone());
        let findings: Vec<Finding> = inspect
            .checks
            .iter()
            .enumerate()
            .flat_map(|(index, assertion)| {
                check::pointer(
                    &format!("{inspect_pointer}/checks/{index}"),
                    &template::render_assertion(assertion, &self.vars),
                    &document,
                )
            })
            .collect();
        check::all_hold(findings)
    }

    /// The `dockproof lint` rules on a Dockerfile or compose file, against what the step expects.
    fn lint(
        &mut self,
        pointer: &str,
        lint: &crate::scenario::LintSpec,
    ) -> Result<(), Vec<Finding>> {
        let lint_pointer = format!("{pointer}/lint");
        let file = self
            .loaded
            .path
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join(&lint.file);
        let found = crate::lint::lint_file(&file).map_err(|error| {
            finding(
                Category::ConfigInvalid,
                format!("{lint_pointer}/file"),
                error.to_string(),
            )
        })?;
        check::all_hold(check::lint(&lint_pointer, &lint.expect, &found))
    }

    /// Assertions by JSON pointer on the job record so far.
    fn telemetry(
        &mut self,
        pointer: &str,
        assertions: &[crate::scenario::PointerAssertion],
    ) -> Result<(), Vec<Finding>> {
        let document = self.record.to_json();
        let findings: Vec<Finding> = assertions
            .iter()
            .enumerate()
            .flat_map(|(index, assertion)| {
                check::pointer(
                    &format!("{pointer}/telemetry/{index}"),
                    &template::render_assertion(assertion, &self.vars),
                    &document,
                )
            })
            .collect();
        check::all_hold(findings)
    }

    /// Run a CST file against an image; each failed CST test is one finding.
    async fn cst(
        &mut self,
        pointer: &str,
        spec: &crate::scenario::CstStepSpec,
    ) -> Result<(), Vec<Finding>> {
        let path = self.loaded.base_dir.join(&spec.config);
        let report = crate::cst::load_file(&path);
        // In a scenario a CST file must be valid as a whole (the scenario loader checks it).
        let (Some(loaded), true) = (report.loaded, report.diagnostics.is_empty()) else {
            let problems: Vec<String> = report
                .diagnostics
                .iter()
                .map(|problem| {
                    format!(
                        "{}:{}: {}",
                        path.display(),
                        problem.span.start.line,
                        problem.message
                    )
                })
                .collect();
            return Err(finding(
                Category::ConfigInvalid,
                format!("{pointer}/config"),
                problems.join("; "),
            ));
        };
        // The scenario's backend: its recordings and `fake_faults` apply to the CST containers.
        self.context
            .fixtures
            .ensure(self.backend.as_ref(), &spec.image)
            .await
            .map_err(|error| backend_finding(&error, &format!("{pointer}/image")))?;
        // Bind mounts name the daemon's files: only a daemon that sees ours may have them.
        let binds = crate::cst::remote_bind_problems(&loaded);
        if !binds.is_empty()
            && !self
                .daemon_sees_our_files(Some(&spec.image), &format!("{pointer}/image"))
                .await?
        {
            let problems: Vec<String> = binds
                .iter()
                .map(|problem| {
                    format!(
                        "{}:{}:{}: {}",
                        path.display(),
                        problem.span.start.line,
                        problem.span.start.column,
                        problem.message
                    )
                })
                .collect();
            return Err(finding(
                Category::ConfigInvalid,
                format!("{pointer}/config"),
                problems.join("; "),
            ));
        }
        // On the fake, a check that would read a file the recording did not keep is
        // refused: its content is never guessed.
        if let Some(unrecorded) = self.cst_unrecorded_reads(&spec.image, &loaded.config) {
            return Err(finding(
                Category::ConfigInvalid,
                format!("{pointer}/config"),
                format!(
                    "the recording of {} cannot replay this CST file: {}; re-record it on a real daemon with `dockproof record {}`",
                    spec.image,
                    unrecorded.join("; "),
                    self.loaded.path.display()
                ),
            ));
        }
        let observer = self
            .context
            .recordings
            .observes()
            .then(|| std::sync::Arc::new(crate::cst::CstObserver::default()));
        let context = std::sync::Arc::new(crate::cst::CstContext {
            observer: observer.clone(),
            backend: std::sync::Arc::clone(&self.backend),
            image: spec.image.clone(),
            run_id: self.context.run_id.clone(),
            driver: match spec.driver {
                crate::scenario::CstDriverKind::Docker => crate::cst::Driver::Docker,
                crate::scenario::CstDriverKind::Tar => crate::cst::Driver::Tar,
            },
            jobs: 4,
            command_timeout: std::time::Duration::from_secs(300),
            work_dir: self.context.work_dir.clone(),
            options: crate::cst::CstOptions::default(),
        });
        let reads = crate::recordings::cst_reads(&loaded.config, |_| Vec::new());
        let debian = loaded.config.license_tests.iter().any(|test| test.debian);
        let outcome = crate::cst::run_all(std::sync::Arc::clone(&context), vec![loaded]).await;
        if let Some(observer) = observer {
            self.record_cst(pointer, &spec.image, &observer, reads, debian)
                .await;
        }
        let findings: Vec<Finding> = outcome
            .reports
            .iter()
            .filter_map(|report| report.failure.as_ref().map(|failure| (report, failure)))
            .map(|(report, failure)| Finding {
                category: failure.category,
                message: format!("CST `{}` failed: {}", report.name, failure.message),
                pointer: format!("{pointer}/config"),
            })
            .collect();
        if findings.is_empty() {
            Ok(())
        } else {
            Err(findings)
        }
    }

    /// When recording: the containers a `cst:` step's command tests ran, and the tree
    /// of the image it tested (contents of the files its checks read).
    async fn record_cst(
        &mut self,
        pointer: &str,
        image: &str,
        observer: &crate::cst::CstObserver,
        mut reads: Vec<String>,
        debian: bool,
    ) {
        for run in observer.runs() {
            let step = format!("{pointer}{}", run.pointer);
            // An image committed from a setup container is named by that container's step:
            // its ID is new every time (docs/recordings.md, format version 4).
            let committed = run
                .committed_from
                .as_ref()
                .map(|from| dockproof_recording::committed_image(&format!("{pointer}{from}")));
            let observed = crate::recordings::Observed {
                step: &step,
                image: committed.as_deref().unwrap_or(&run.spec.image),
                spec: &run.spec,
                inspect: &run.inspect,
                image_inspect: &run.image_inspect,
                mount: None,
                before: &[],
                masked: &self.recorded_masked,
                after: &[],
                exit_code: run.exit_code,
                oom_killed: false,
                timed_out: false,
                stdout: &run.logs.stdout,
                stderr: &run.logs.stderr,
            };
            let mut blobs = std::mem::take(&mut self.blobs);
            let mut container =
                crate::recordings::container(&observed, &self.masker, &mut blobs, |_| None);
            self.blobs = blobs;
            if committed.is_some() {
                crate::recordings::forget_commit_identity(&mut container.call);
            }
            self.recorded.push(container);
        }
        if self
            .recorded_images
            .iter()
            .any(|known| known.image == image)
        {
            return;
        }
        let backend = std::sync::Arc::clone(&self.backend);
        let directory = match tempfile::Builder::new()
            .prefix("record-tree-")
            .tempdir_in(&self.context.work_dir)
        {
            Ok(directory) => directory,
            Err(error) => {
                self.recording_problem = Some(format!("cannot save {image}: {error}"));
                return;
            }
        };
        let archive = directory.path().join("image.tar");
        let saved = async {
            let inspect = backend
                .image_inspect_json(image)
                .await
                .map_err(|error| error.to_string())?;
            backend
                .save_image(image, &archive)
                .await
                .map_err(|error| error.to_string())?;
            let path = archive.clone();
            let saved =
                tokio::task::spawn_blocking(move || crate::cst::files::SavedImage::read(&path))
                    .await
                    .map_err(|error| error.to_string())?
                    .map_err(|error| error.to_string())?;
            Ok::<_, String>((inspect, saved))
        }
        .await;
        let result = saved.and_then(|(inspect, saved)| {
            if debian {
                reads.extend(
                    saved
                        .dirs_in("/usr/share/doc")
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|package| {
                            !crate::cst::check::LICENSE_ALLOWED_PACKAGES.contains(&package.as_str())
                        })
                        .map(|package| format!("/usr/share/doc/{package}/copyright")),
                );
            }
            let mut blobs = std::mem::take(&mut self.blobs);
            let tree = crate::recordings::image_tree(
                image,
                &inspect,
                &saved,
                &reads,
                &self.masker,
                &mut blobs,
            );
            self.blobs = blobs;
            tree
        });
        drop(directory);
        match result {
            Ok(tree) => self.recorded_images.push(tree),
            Err(problem) => self.recording_problem = Some(problem),
        }
    }

    /// On the fake with a recording that holds `image`'s tree: the files `config`
    /// reads whose contents the recording did not keep (none: `None`).
    fn cst_unrecorded_reads(
        &self,
        image: &str,
        config: &crate::cst::model::CstConfig,
    ) -> Option<Vec<String>> {
        let crate::recordings::RecordingMode::Replay { .. } = &self.context.recordings else {
            return None;
        };
        let dir = self.context.recordings.dir_for(self.loaded);
        crate::recordings::unrecorded_reads(&dir, image, config)
    }

    async fn read_source(
        &mut self,
        source: Source<'_>,
        pointer: &str,
    ) -> Result<Vec<u8>, Vec<Finding>> {
        match source {
            Source::Fixture(path) => {
                let resolved = self.loaded.base_dir.join(path);
                let mut bytes = Vec::new();
                workspace::open_fixture(&resolved, path)
                    .and_then(|mut file| {
                        file.read_to_end(&mut bytes).map_err(|source| {
                            workspace::WorkspaceError::Io {
                                action: "read",
                                path: resolved.clone(),
                                source,
                            }
                        })
                    })
                    .map_err(|error| fixture_finding(pointer, &resolved, error))?;
                Ok(bytes)
            }
            Source::Text(text) => Ok(text.as_bytes().to_vec()),
            Source::Generate(spec) => {
                let mut bytes = Vec::new();
                Generated::new(spec.bytes.0, spec.seed)
                    .read_to_end(&mut bytes)
                    .map_err(|error| {
                        finding(Category::ConfigInvalid, pointer, error.to_string())
                    })?;
                Ok(bytes)
            }
            Source::Filestore(key) => {
                let key = template::render(key, &self.vars);
                let bytes = self.context.filestore.get(&key).await.map_err(|error| {
                    finding(
                        Category::FilestoreFailed,
                        format!("{pointer}/filestore"),
                        error.to_string(),
                    )
                })?;
                self.record.metrics.filestore.bytes_in += bytes.len() as u64;
                Ok(bytes)
            }
        }
    }

    async fn stage(&mut self, pointer: &str, items: &[StageItem]) -> Result<(), Vec<Finding>> {
        for (index, item) in items.iter().enumerate() {
            let item_pointer = format!("{pointer}/{index}");
            let Some(source) = item.sources().first().copied() else {
                return Err(finding(Category::ConfigInvalid, item_pointer, "no source"));
            };
            // Generated content and fixture files are streamed, never held whole in memory,
            // and copied on the blocking pool (a 1 GiB input takes seconds): other
            // scenarios go on meanwhile, and a cancelled step stops the copy.
            let workspace = self.shared_workspace();
            let to = item.to.clone();
            let staged = match source {
                Source::Generate(spec) => {
                    self.fits(&item_pointer, &item.to, spec.bytes.0)?;
                    let (bytes, seed) = (spec.bytes.0, spec.seed);
                    crate::blocking::run(move |stop| {
                        let mut generated = Generated::new(bytes, seed);
                        workspace.write(
                            &to,
                            &mut crate::blocking::Stoppable::new(&mut generated, stop),
                        )
                    })
                    .await
                }
                Source::Fixture(path) => {
                    let resolved = self.loaded.base_dir.join(path);
                    let mut file = workspace::open_fixture(&resolved, path)
                        .map_err(|error| fixture_finding(&item_pointer, &resolved, error))?;
                    // By the open file's size: a 5 GiB sparse fixture is refused by a 1 MiB
                    // limit before a byte of it is copied.
                    let size = file.metadata().map(|metadata| metadata.len()).unwrap_or(0);
                    self.fits(&item_pointer, &item.to, size)?;
                    crate::blocking::run(move |stop| {
                        workspace.write(&to, &mut crate::blocking::Stoppable::new(&mut file, stop))
                    })
                    .await
                }
                other => {
                    let bytes = self.read_source(other, &item_pointer).await?;
                    self.fits(&item_pointer, &item.to, bytes.len() as u64)?;
                    crate::blocking::run(move |_| workspace.write(&to, &mut bytes.as_slice())).await
                }
            };
            let staged = staged.map_err(|error| {
                finding(
                    error.category(),
                    format!("{item_pointer}/to"),
                    error.to_string(),
                )
            })?;
            self.record.context.docker.workspace.staged.push(staged);
            self.mirror_dirty = true;
            self.refresh_usage(&item_pointer)?;
        }
        // A detached container with the workspace sees staged inputs at once, as with `bind`.
        if self.copies()
            && let Some(id) = self.live.clone()
        {
            self.push_workspace(&id, pointer).await?;
        }
        Ok(())
    }

    /// Fail before copying when `size` more bytes at `to` would take the workspace
    /// over its `max_bytes` (a file already at `to` is replaced, so its bytes are
    /// not counted twice).
    fn fits(&mut self, pointer: &str, to: &str, size: u64) -> Result<(), Vec<Finding>> {
        let Some(limit) = self.workspace().limits().max_bytes else {
            return Ok(());
        };
        let usage = self.workspace().usage().unwrap_or_default();
        let replaced = self.workspace().existing_file_len(to);
        let after = usage.bytes.saturating_sub(replaced).saturating_add(size);
        if after <= limit {
            return Ok(());
        }
        let error = workspace::WorkspaceError::LimitExceeded {
            files: usage.files.saturating_add(1),
            bytes: after,
            limit: format!("max_bytes {limit}"),
        };
        Err(finding(
            error.category(),
            format!("{pointer}/to"),
            format!(
                "staging {size} bytes at `{to}` would exceed the limit, so nothing was copied: {error}"
            ),
        ))
    }

    /// Record the workspace's usage and fail if it is over its limits.
    fn refresh_usage(&mut self, pointer: &str) -> Result<(), Vec<Finding>> {
        let result = self.workspace().check_limits();
        let usage = match &result {
            Ok(usage) => Some(*usage),
            Err(_) => self.workspace().usage().ok(),
        };
        if let Some(usage) = usage {
            self.record.context.docker.workspace.files = usage.files;
            self.record.context.docker.workspace.bytes = usage.bytes;
        }
        result
            .map(drop)
            .map_err(|error| finding(error.category(), pointer, error.to_string()))
    }

    fn container_spec(
        &self,
        index_pointer: &str,
        run: &RunSpec,
        workspace: Mount,
    ) -> ContainerSpec {
        let step_number = index_pointer.rsplit('/').next().unwrap_or("0");
        let mut labels = run.labels.clone();
        labels.insert("dockproof.run".into(), self.context.run_id.clone());
        self.keep_label(&mut labels);
        labels.insert("dockproof.scenario".into(), self.slug.clone());
        ContainerSpec {
            name: format!(
                "dockproof-{}-{}-{step_number}",
                self.context.names_id, self.slug
            ),
            image: run.image.clone(),
            cmd: run.cmd.as_ref().map(|cmd| texts(cmd, &self.vars)),
            entrypoint: run
                .entrypoint
                .as_ref()
                .map(|entrypoint| texts(entrypoint, &self.vars)),
            env: env_list(&run.env, &self.vars),
            workdir: run.workdir.clone(),
            user: run.user.clone(),
            mounts: vec![workspace],
            labels,
            memory_bytes: run.limits.memory.map(|size| size.0),
            cpus: run.limits.cpus,
            pids_limit: run.limits.pids,
            read_only_rootfs: run.security.read_only,
            no_new_privileges: run.security.no_new_privileges,
            network: run.security.network.clone(),
            cap_drop: run.security.cap_drop.clone(),
            tmpfs: run.security.tmpfs.clone(),
            ports: Vec::new(),
            healthcheck: None,
            ..ContainerSpec::default()
        }
    }

    /// Create the container of `spec` while its image is checked ([`FixtureImages::ensure`]):
    /// one round trip instead of two on the image's first use, none when the create settles
    /// the check ([`FixtureImages::settled_by_create`]: the image is there, a fixture's
    /// digest came with the `create` event; on docker-cli no `docker image inspect`
    /// process). A check that fails removes
    /// the container and is the step's error; a fixture built meanwhile means the container
    /// may be of the old image (or was refused for want of one): it is created again.
    async fn create_while_ensuring(
        &self,
        spec: &ContainerSpec,
        image_pointer: &str,
    ) -> Result<String, Vec<Finding>> {
        let backend = self.backend.as_ref();
        let fixtures = &self.context.fixtures;
        // The create itself can settle the check: any image is there once a container of
        // it is, and a fixture's digest comes with the daemon's `create` event when the
        // backend watches events (unless the step's own labels could have set it).
        let by_create = !spec.labels.contains_key(crate::fixtures::DIGEST_LABEL)
            && (!fixtures.is_fixture(&spec.image) || backend.sees_create_labels().await);
        let (ensured, created) = if by_create {
            let digest = fixtures.digest_in_background(&spec.image);
            let created = backend.create(spec).await;
            if let Ok(id) = &created
                && fixtures
                    .settled_by_create(backend, &spec.image, id, digest)
                    .await
            {
                return Ok(id.clone());
            }
            // No daemon: asking it about the image would only wait for it once more.
            if let Err(error @ crate::backend::BackendError::DaemonUnavailable { .. }) = &created {
                return Err(self.create_finding(error, image_pointer));
            }
            (fixtures.ensure(backend, &spec.image).await, created)
        } else {
            // The create first: its call goes out before the check hashes the sources.
            let (created, ensured) =
                tokio::join!(backend.create(spec), fixtures.ensure(backend, &spec.image));
            (ensured, created)
        };
        let create_finding =
            |error: crate::backend::BackendError| self.create_finding(&error, image_pointer);
        match ensured {
            Ok(crate::fixtures::Ensured::Found) => created.map_err(create_finding),
            Ok(crate::fixtures::Ensured::Built) => {
                if let Ok(id) = &created {
                    backend
                        .remove(id)
                        .await
                        .map_err(|error| backend_finding(&error, image_pointer))?;
                }
                backend.create(spec).await.map_err(create_finding)
            }
            Err(error) => {
                if let Ok(id) = &created {
                    // Unused; the run's sweep takes it if this removal fails.
                    let _ = backend.remove(id).await;
                }
                Err(backend_finding(&error, image_pointer))
            }
        }
    }

    async fn run(
        &mut self,
        pointer: &str,
        run: &RunSpec,
        expect: &Expect,
    ) -> Result<(), Vec<Finding>> {
        let run_pointer = format!("{pointer}/run");
        let image_pointer = format!("{run_pointer}/image");
        self.record.context.docker.image = Some(run.image.clone());
        // The image's first use in the run on a real daemon: its check (a fixture's digest,
        // another image's presence) runs while the container is created, unless the
        // workspace transport is still to be probed (the probe needs the image).
        let optimistic = self.context.fixtures.pending(&run.image).await
            && self.transport_without_probe().await.is_some();
        if !optimistic {
            self.context
                .fixtures
                .ensure(self.backend.as_ref(), &run.image)
                .await
                .map_err(|error| backend_finding(&error, &image_pointer))?;
        }

        let mount_path = run
            .workspace
            .clone()
            .unwrap_or_else(|| DEFAULT_MOUNT.to_owned());
        let mount = self
            .workspace_mount(&run.image, &mount_path, &image_pointer)
            .await?;
        let spec = self.container_spec(pointer, run, mount);
        // Recording: the workspace as the container will find it.
        let before = if self.context.recordings.observes() {
            match self.workspace().entries() {
                Ok(entries) => Some(entries),
                Err(error) => {
                    self.recording_problem = Some(error.to_string());
                    None
                }
            }
        } else {
            None
        };
        let created_at = Instant::now();
        let id = if optimistic {
            self.create_while_ensuring(&spec, &image_pointer).await?
        } else {
            self.backend
                .create(&spec)
                .await
                .map_err(|error| self.create_finding(&error, &image_pointer))?
        };
        self.containers.push(id.clone());
        self.note_transport();
        if let Some(name) = &run.container {
            self.named.insert(name.clone(), id.clone());
        }
        self.workspace_attached(&id, &spec, &mount_path, &run_pointer)
            .await?;
        self.record.context.docker.container_id = Some(id.clone());
        self.verify_applied(&spec, &id, &run_pointer).await?;
        self.record.context.docker.exit_code = None;
        self.record.context.docker.timed_out = false;
        self.record.context.docker.oom_killed = false;
        let timeout = run
            .timeout
            .map_or(DEFAULT_STEP_TIMEOUT, |timeout| timeout.0);
        let grace = run.stop_grace.map_or(DEFAULT_STOP_GRACE, |grace| grace.0);
        let log_files = self
            .log_files(pointer)
            .map_err(|error| backend_finding(&error, &run_pointer))?;
        let (exit_code, timed_out, mut state, logs) = if self.backend.attaches() && !run.detach {
            let limits = (timeout, grace);
            self.start_attached(
                run,
                &id,
                created_at,
                limits,
                log_files.as_ref(),
                &run_pointer,
            )
            .await?
        } else {
            let backend = self.backend.as_ref();
            if let Err(error) = backend.start(&id).await {
                // A container that failed to start still has an exit code (127 for a missing command).
                if let Ok(state) = backend.inspect(&id).await {
                    self.record.context.docker.exit_code = Some(state.exit_code);
                }
                self.record.status = "failed".into();
                return Err(backend_finding(&error, &format!("{run_pointer}/cmd")));
            }
            let started_at = Instant::now();
            self.record.metrics.docker.start_ms = (started_at - created_at).as_millis() as u64;

            if run.detach {
                self.record.status = "running".into();
                self.live = Some(id.clone());
                // Recorded now (the call); what it did is read before cleanup.
                if let Some(before) = before {
                    let logs = crate::backend::Logs {
                        stdout: Default::default(),
                        stderr: Default::default(),
                    };
                    self.observe_for_recording(
                        pointer,
                        &run.image,
                        &spec,
                        &id,
                        Some(&mount_path),
                        &before,
                        0,
                        &Default::default(),
                        false,
                        &logs,
                    )
                    .await;
                    if let Some(last) = self.recorded.len().checked_sub(1) {
                        self.recorded[last].outcome.ended =
                            dockproof_recording::Ended::StillRunning;
                        self.recorded[last].outcome.workspace.clear();
                        self.recorded_detached
                            .insert(id.clone(), (last, run.image.clone(), mount_path.clone()));
                    }
                }
                return Ok(());
            }

            let mut timed_out = false;
            let waited = tokio::time::timeout(timeout, backend.wait(&id));
            let (waited, resources) = if run.monitor.enabled {
                let (waited, usage) = monitor::sample_while(backend, &id, waited).await;
                (waited, Some(usage))
            } else {
                (waited.await, None)
            };
            self.record.metrics.docker.resources = resources;
            let exit_code = match waited {
                Ok(result) => result.map_err(|error| backend_finding(&error, &run_pointer))?,
                Err(_) => {
                    timed_out = true;
                    self.stop_after_timeout(&id, grace)
                        .await
                        .map_err(|error| backend_finding(&error, &run_pointer))?
                }
            };
            self.record.metrics.docker.run_ms = started_at.elapsed().as_millis() as u64;
            // Both only read a stopped container: ask at once (one round trip less per run).
            let (state, logs) = tokio::join!(
                backend.inspect(&id),
                backend.logs(&id, self.context.capture, log_files.as_ref())
            );
            let state = state.map_err(|error| backend_finding(&error, &run_pointer))?;
            let logs = logs.map_err(|error| backend_finding(&error, &run_pointer))?;
            (exit_code, timed_out, state, logs)
        };
        let backend = self.backend.as_ref();
        // The daemon records an OOM kill from an event that can land after the exit is
        // reported (measured on Docker 20.10, cgroup v1: with 12 jobs OOM-killed at once,
        // some inspected false right after the exit and true a moment later): a SIGKILL
        // under a memory limit is asked about again for a moment.
        if exit_code == 137 && !timed_out && !state.oom_killed && spec.memory_bytes.is_some() {
            for _ in 0..OOM_SETTLE_TRIES {
                tokio::time::sleep(OOM_SETTLE_PAUSE).await;
                match backend.inspect(&id).await {
                    Ok(again) if again.oom_killed => {
                        state = again;
                        break;
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }

        self.output.stdout = Some(logs.stdout.text.clone());
        self.output.stderr = Some(logs.stderr.text.clone());
        let docker = &mut self.record.context.docker;
        docker.exit_code = Some(exit_code);
        docker.oom_killed = state.oom_killed;
        docker.timed_out = timed_out;
        // Masked here, on the whole text: a multi-line value cut into tail lines could not be.
        docker.log_tail.stdout =
            self.masker
                .tail_lines(&logs.stdout.text, logs.stdout.truncated, LOG_TAIL_LINES);
        docker.log_tail.stderr =
            self.masker
                .tail_lines(&logs.stderr.text, logs.stderr.truncated, LOG_TAIL_LINES);
        docker.log_files = log_files.map(|files| LogFilesRecord {
            stdout: files.stdout.display().to_string(),
            stderr: files.stderr.display().to_string(),
            stdout_bytes: logs.stdout.total_bytes,
            stderr_bytes: logs.stderr.total_bytes,
        });
        self.record.status = if exit_code == 0 && !timed_out {
            "succeeded"
        } else {
            "failed"
        }
        .into();
        // Usage is recorded whatever happened; exceeding the limits only counts for a clean exit.
        // With `copy`, what the job left comes back first: every check reads the local copy.
        let over_limits = match self
            .pull_workspace(&id, &format!("{run_pointer}/image"))
            .await
        {
            Ok(()) => self.refresh_usage(&format!("{run_pointer}/image")),
            Err(findings) => Err(findings),
        }
        .err()
        .unwrap_or_default();
        if let Some(before) = before {
            self.observe_for_recording(
                pointer,
                &run.image,
                &spec,
                &id,
                Some(&mount_path),
                &before,
                exit_code,
                &state,
                timed_out,
                &logs,
            )
            .await;
        }

        if let Some(ended) = check::container_end(
            &run_pointer,
            timeout,
            timed_out,
            state.oom_killed,
            exit_code,
        ) {
            return Err(vec![ended]);
        }
        let mut findings = over_limits;
        if let Some(usage) = &self.record.metrics.docker.resources {
            findings.extend(check::budgets(
                &run_pointer,
                &run.monitor,
                usage,
                self.record.metrics.docker.run_ms,
            ));
        }
        let observed = self.observe_files(expect).await;
        findings.extend(self.expectations(
            pointer,
            expect,
            exit_code,
            state.oom_killed,
            (&logs.stdout.text, &logs.stderr.text),
            observed,
        ));
        if findings.is_empty() {
            Ok(())
        } else {
            Err(findings)
        }
    }

    /// Keep what a finished container did for the scenario's recording.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn observe_for_recording(
        &mut self,
        pointer: &str,
        image: &str,
        spec: &ContainerSpec,
        id: &str,
        mount_path: Option<&str>,
        before: &[dockproof_recording::Entry],
        exit_code: i64,
        state: &crate::backend::ContainerState,
        timed_out: bool,
        logs: &crate::backend::Logs,
    ) {
        let backend = self.backend.as_ref();
        let observed = async {
            let inspect = backend.inspect_json(id).await.map_err(|e| e.to_string())?;
            let image_inspect = backend
                .image_inspect_json(image)
                .await
                .map_err(|e| e.to_string())?;
            let after = self.workspace().entries().map_err(|e| e.to_string())?;
            Ok::<_, String>((inspect, image_inspect, after))
        }
        .await;
        let (inspect, image_inspect, after) = match observed {
            Ok(observed) => observed,
            Err(problem) => {
                self.recording_problem = Some(problem);
                return;
            }
        };
        let observed = crate::recordings::Observed {
            step: pointer,
            image,
            spec,
            inspect: &inspect,
            image_inspect: &image_inspect,
            mount: mount_path,
            before,
            masked: &self.recorded_masked,
            after: &after,
            exit_code,
            oom_killed: state.oom_killed,
            timed_out,
            stdout: &logs.stdout,
            stderr: &logs.stderr,
        };
        let mut blobs = std::mem::take(&mut self.blobs);
        let workspace = self.workspace();
        let container = crate::recordings::container(&observed, &self.masker, &mut blobs, |path| {
            workspace
                .read_file(path, dockproof_recording::MAX_BLOB_BYTES)
                .ok()
                .flatten()
        });
        self.blobs = blobs;
        crate::recordings::note_masked(&mut self.recorded_masked, &container.outcome.workspace);
        self.recorded.push(container);
    }

    /// Before cleanup, when recording: what each detached container did (its logs, and
    /// how it ended if it has), kept in its recorded outcome.
    async fn observe_detached(&mut self) {
        if self.recorded_detached.is_empty() {
            return;
        }
        let mut detached: Vec<(String, usize)> = self
            .recorded_detached
            .iter()
            .map(|(id, (index, _, _))| (id.clone(), *index))
            .collect();
        detached.sort_by_key(|(_, index)| *index);
        let services: HashMap<usize, String> = self
            .recorded_services
            .iter()
            .map(|(name, (index, _))| (*index, name.clone()))
            .collect();
        for (id, index) in detached {
            let backend = self.backend.as_ref();
            let (inspect, logs) = tokio::join!(
                backend.inspect_json(&id),
                backend.logs(&id, self.context.capture, None)
            );
            let (inspect, logs) = match (inspect, logs) {
                (Ok(inspect), Ok(logs)) => (inspect, logs),
                (Err(error), _) | (_, Err(error)) => {
                    self.recording_problem = Some(error.to_string());
                    return;
                }
            };
            let mut blobs = std::mem::take(&mut self.blobs);
            // A service's logs hold its health checks' and probes' traces, as many as the
            // timing made: not kept (docs/recordings.md).
            let logs = if services.contains_key(&index) {
                crate::backend::Logs {
                    stdout: Default::default(),
                    stderr: Default::default(),
                }
            } else {
                logs
            };
            if let Some(recorded) = self.recorded.get_mut(index) {
                crate::recordings::detached_outcome(
                    &mut recorded.outcome,
                    &inspect,
                    &logs,
                    &self.masker,
                    &mut blobs,
                );
                if let Some(name) = services.get(&index) {
                    recorded.health = self
                        .record
                        .context
                        .services
                        .get(name)
                        .map(|service| {
                            service
                                .health
                                .iter()
                                .map(|change| change.status.clone())
                                .collect()
                        })
                        .unwrap_or_default();
                    // One per distinct request, the answer last seen, sorted.
                    let mut exchanges: Vec<dockproof_recording::Exchange> = Vec::new();
                    for (service, exchange) in &self.recorded_exchanges {
                        if service != name {
                            continue;
                        }
                        exchanges.retain(|known| {
                            !known.answers(
                                exchange.port,
                                &exchange.method,
                                &exchange.path,
                                exchange.request_sha256.as_deref(),
                            )
                        });
                        exchanges.push(exchange.clone());
                    }
                    exchanges.sort_by(|a, b| {
                        (a.port, &a.path, &a.method, &a.request_sha256).cmp(&(
                            b.port,
                            &b.path,
                            &b.method,
                            &b.request_sha256,
                        ))
                    });
                    recorded.http = exchanges;
                }
            }
            self.blobs = blobs;
        }
    }

    /// The files a run step's whole logs go to, when the run keeps them.
    fn log_files(&self, step_pointer: &str) -> Result<Option<LogFiles>, BackendError> {
        let Some(dir) = &self.context.logs_dir else {
            return Ok(None);
        };
        let dir = dir.join(&self.slug);
        std::fs::create_dir_all(&dir).map_err(|error| BackendError::LogFile {
            message: format!("{}: {error}", dir.display()),
        })?;
        let step = step_pointer.rsplit('/').next().unwrap_or("0");
        Ok(Some(LogFiles {
            stdout: dir.join(format!("step-{step}.stdout.log")),
            stderr: dir.join(format!("step-{step}.stderr.log")),
            // The files are report files too: no secret value may reach them, even
            // from a stream cut short by Ctrl-C.
            masker: self.masker.clone(),
        }))
    }

    /// An attached run on a backend that starts, waits and reads logs in one call
    /// ([`crate::backend::Backend::attaches`]): its exit code, whether it timed out, its
    /// state and its logs. A timeout stops the container and reads what it logged.
    async fn start_attached(
        &mut self,
        run: &RunSpec,
        id: &str,
        created_at: Instant,
        (timeout, grace): (Duration, Duration),
        log_files: Option<&LogFiles>,
        run_pointer: &str,
    ) -> Result<
        (
            i64,
            bool,
            crate::backend::ContainerState,
            crate::backend::Logs,
        ),
        Vec<Finding>,
    > {
        let backend = self.backend.as_ref();
        let called_at = Instant::now();
        let capture = self.context.capture;
        // The timeout counts the container's own run, not its start (the old `start`, then
        // `wait` under the timeout): when it fires, the daemon says how long the start took
        // (by its clock), and a container that has run less than the timeout gets the rest.
        // `called_at` is after the create returned, so the run is never overestimated.
        // A start that takes longer than this on top of the timeout is a timeout too.
        let last = tokio::time::Instant::from_std(called_at) + timeout + START_ALLOWANCE;
        let attached = async {
            let work = backend.start_attached(id, capture, log_files);
            tokio::pin!(work);
            let mut deadline = tokio::time::Instant::now() + timeout;
            loop {
                let elapsed = match tokio::time::timeout_at(deadline, &mut work).await {
                    Ok(result) => return Ok(result),
                    Err(elapsed) => elapsed,
                };
                let now = tokio::time::Instant::now();
                if now >= last {
                    return Err(elapsed);
                }
                let ran = match backend.inspect(id).await {
                    Ok(state) if state.running => match state.daemon_timings {
                        Some((start_ms, _)) => called_at
                            .elapsed()
                            .saturating_sub(Duration::from_millis(start_ms)),
                        None => return Err(elapsed),
                    },
                    // Not started yet (a slow start), or ended just now (the attached
                    // call is about to say so): look again in a moment.
                    Ok(_) => timeout.saturating_sub(Duration::from_secs(1)),
                    Err(_) => return Err(elapsed),
                };
                if ran >= timeout {
                    return Err(elapsed);
                }
                deadline = (tokio::time::Instant::now() + (timeout - ran)).min(last);
            }
        };
        let (attached, resources) = if run.monitor.enabled {
            let (attached, usage) = monitor::sample_while(backend, id, attached).await;
            (attached, Some(usage))
        } else {
            (attached.await, None)
        };
        self.record.metrics.docker.resources = resources;
        let (exit_code, timed_out, state, logs, started_at) = match attached {
            Ok(Ok(attached)) => {
                let state = match attached.state {
                    Some(state) => state,
                    None => backend
                        .inspect(id)
                        .await
                        .map_err(|error| backend_finding(&error, run_pointer))?,
                };
                (
                    attached.exit_code,
                    false,
                    state,
                    attached.logs,
                    attached.started_at,
                )
            }
            Ok(Err(AttachError::Start(error))) => {
                // A container that failed to start still has an exit code (127 for a missing command).
                if let Ok(state) = backend.inspect(id).await {
                    self.record.context.docker.exit_code = Some(state.exit_code);
                }
                self.record.status = "failed".into();
                return Err(backend_finding(&error, &format!("{run_pointer}/cmd")));
            }
            Ok(Err(AttachError::Run(error))) => return Err(backend_finding(&error, run_pointer)),
            Err(_) => {
                let exit_code = self
                    .stop_after_timeout(id, grace)
                    .await
                    .map_err(|error| backend_finding(&error, run_pointer))?;
                let (state, logs) = tokio::join!(
                    backend.inspect(id),
                    backend.logs(id, self.context.capture, log_files)
                );
                let state = state.map_err(|error| backend_finding(&error, run_pointer))?;
                let logs = logs.map_err(|error| backend_finding(&error, run_pointer))?;
                (exit_code, true, state, logs, None)
            }
        };
        let metrics = &mut self.record.metrics.docker;
        match (started_at, state.daemon_timings) {
            (Some(started_at), _) => {
                metrics.start_ms = (started_at - created_at).as_millis() as u64;
                metrics.run_ms = started_at.elapsed().as_millis() as u64;
            }
            // The daemon's own clock, read by the inspect the run needed anyway.
            (None, Some((start_ms, Some(run_ms)))) => {
                metrics.start_ms = start_ms;
                metrics.run_ms = run_ms;
            }
            (None, _) => {
                metrics.start_ms = (called_at - created_at).as_millis() as u64;
                metrics.run_ms = called_at.elapsed().as_millis() as u64;
            }
        }
        Ok((exit_code, timed_out, state, logs))
    }

    /// Check through inspect that the daemon applied the limits and security
    /// options asked for, rather than trusting they were passed along.
    async fn verify_applied(
        &self,
        spec: &ContainerSpec,
        id: &str,
        pointer: &str,
    ) -> Result<(), Vec<Finding>> {
        if !spec.asks_for_enforcement() {
            // Nothing was asked for, so nothing to verify: spare the round trip.
            return Ok(());
        }
        let inspect = match self.backend.inspect_json(id).await {
            Ok(inspect) => inspect,
            // A backend that cannot show its inspect document cannot be checked; nothing to verify.
            Err(BackendError::Unsupported { .. }) => return Ok(()),
            Err(error) => return Err(backend_finding(&error, pointer)),
        };
        let findings = check::applied(pointer, spec, &inspect);
        if findings.is_empty() {
            Ok(())
        } else {
            Err(findings)
        }
    }

    /// `docker stop` (SIGTERM, grace, SIGKILL), then a forced kill if it still runs.
    async fn stop_after_timeout(&self, id: &str, grace: Duration) -> Result<i64, BackendError> {
        let backend = self.backend.as_ref();
        backend.stop(id, grace).await?;
        match tokio::time::timeout(grace + Duration::from_secs(10), backend.wait(id)).await {
            Ok(result) => result,
            Err(_) => {
                backend.kill(id).await?;
                backend.wait(id).await
            }
        }
    }

    async fn exec(
        &mut self,
        pointer: &str,
        exec: &crate::scenario::ExecSpec,
        expect: &Expect,
    ) -> Result<(), Vec<Finding>> {
        let exec_pointer = format!("{pointer}/exec");
        let Some(id) = self.named.get(&exec.container).cloned() else {
            return Err(finding(
                Category::ConfigInvalid,
                format!("{exec_pointer}/container"),
                format!("no running container named `{}`", exec.container),
            ));
        };
        let request = ExecRequest {
            container: id,
            cmd: texts(&exec.cmd, &self.vars),
            env: env_list(&exec.env, &self.vars),
            workdir: exec.workdir.clone(),
            user: exec.user.clone(),
        };
        let timeout = exec
            .timeout
            .map_or(DEFAULT_STEP_TIMEOUT, |timeout| timeout.0);
        // Recording: the workspace as the command will find it.
        let before = match self.recorded_detached.get(&request.container) {
            Some(_) if self.context.recordings.observes() => match self.workspace().entries() {
                Ok(entries) => Some(entries),
                Err(error) => {
                    self.recording_problem = Some(error.to_string());
                    None
                }
            },
            _ => None,
        };
        let output = self
            .backend
            .exec(&request, timeout, self.context.capture)
            .await
            .map_err(|error| backend_finding(&error, &format!("{exec_pointer}/cmd")))?;
        self.output.stdout = Some(output.stdout.text.clone());
        self.output.stderr = Some(output.stderr.text.clone());
        // What the exec wrote is checked in the local copy.
        self.pull_workspace(&request.container, &format!("{exec_pointer}/cmd"))
            .await?;
        // The record's usage is the workspace's after the latest step, whatever the transport.
        if let Ok(usage) = self.workspace().usage() {
            self.record.context.docker.workspace.files = usage.files;
            self.record.context.docker.workspace.bytes = usage.bytes;
        }
        if let Some(before) = before
            && let Some((index, image, mount)) =
                self.recorded_detached.get(&request.container).cloned()
        {
            match self.workspace().entries() {
                Ok(after) => {
                    let mut blobs = std::mem::take(&mut self.blobs);
                    let workspace = self.workspace();
                    let observed = crate::recordings::ObservedExec {
                        step: pointer,
                        container: index + 1,
                        image: &image,
                        request: &request,
                        mount: &mount,
                        before: &before,
                        masked: &self.recorded_masked,
                        after: &after,
                        output: &output,
                    };
                    let recorded =
                        crate::recordings::exec(&observed, &self.masker, &mut blobs, |path| {
                            workspace
                                .read_file(path, dockproof_recording::MAX_BLOB_BYTES)
                                .ok()
                                .flatten()
                        });
                    self.blobs = blobs;
                    crate::recordings::note_masked(
                        &mut self.recorded_masked,
                        &recorded.outcome.workspace,
                    );
                    self.recorded_execs.push(recorded);
                }
                Err(error) => self.recording_problem = Some(error.to_string()),
            }
        }
        let observed = self.observe_files(expect).await;
        let findings = self.expectations(
            pointer,
            expect,
            output.exit_code,
            false,
            (&output.stdout.text, &output.stderr.text),
            observed,
        );
        if findings.is_empty() {
            Ok(())
        } else {
            Err(findings)
        }
    }

    /// What the workspace holds at each path `expect.files` names (read and hashed on
    /// the blocking pool: an output may be gigabytes).
    async fn observe_files(
        &self,
        expect: &Expect,
    ) -> Vec<Result<FileObservation, workspace::WorkspaceError>> {
        if expect.files.is_empty() {
            return Vec::new();
        }
        let workspace = self.shared_workspace();
        let wanted: Vec<(String, bool)> = expect
            .files
            .iter()
            .map(|file| {
                (
                    file.path.clone(),
                    file.text.is_some() || !file.json.is_empty(),
                )
            })
            .collect();
        crate::blocking::run(move |_| {
            wanted
                .iter()
                .map(|(path, want_text)| observe_file(&workspace, path, *want_text))
                .collect()
        })
        .await
    }

    /// `observed` is [`ScenarioRun::observe_files`]' answer for `expect`.
    fn expectations(
        &self,
        pointer: &str,
        expect: &Expect,
        exit_code: i64,
        oom_killed: bool,
        (stdout, stderr): (&str, &str),
        observed: Vec<Result<FileObservation, workspace::WorkspaceError>>,
    ) -> Vec<Finding> {
        let expect_pointer = format!("{pointer}/expect");
        let mut findings = Vec::new();
        let exit_pointer = if expect.exit_code.is_some() {
            format!("{expect_pointer}/exit_code")
        } else {
            pointer.to_owned()
        };
        findings.extend(check::exit_code(
            &exit_pointer,
            expect.exit_code.unwrap_or(0),
            exit_code,
            oom_killed,
        ));
        if let Some(matcher) = &expect.stdout {
            findings.extend(check::text(
                "stdout",
                &format!("{expect_pointer}/stdout"),
                matcher,
                stdout,
                &self.masker,
            ));
        }
        if let Some(matcher) = &expect.stderr {
            findings.extend(check::text(
                "stderr",
                &format!("{expect_pointer}/stderr"),
                matcher,
                stderr,
                &self.masker,
            ));
        }
        for (index, (file, observed)) in expect.files.iter().zip(observed).enumerate() {
            let file_pointer = format!("{expect_pointer}/files/{index}");
            match observed {
                Ok(observed) => {
                    findings.extend(check::file(&file_pointer, file, &observed, &self.masker))
                }
                Err(error) => findings.extend(finding(
                    error.category(),
                    format!("{file_pointer}/path"),
                    error.to_string(),
                )),
            }
        }
        findings
    }

    async fn upload(
        &mut self,
        pointer: &str,
        upload: &crate::scenario::UploadSpec,
    ) -> Result<(), Vec<Finding>> {
        let from_pointer = format!("{pointer}/from");
        self.pull_from_live(&from_pointer).await?;
        // A FIFO, device node or hard link the job left there is refused, never read.
        let collected = self
            .workspace()
            .collect(&upload.from)
            .map_err(|error| finding(error.category(), &from_pointer, error.to_string()))?;
        let file = match collected {
            workspace::Collected::File(file, _) => file,
            workspace::Collected::Missing => {
                return Err(finding(
                    Category::ArtifactMissing,
                    &from_pointer,
                    format!("`{}` does not exist in the workspace", upload.from),
                ));
            }
            workspace::Collected::Directory => {
                return Err(finding(
                    Category::FilestoreFailed,
                    &from_pointer,
                    format!("cannot read `{}`: it is a directory", upload.from),
                ));
            }
        };
        // Read and hashed on the blocking pool: an artifact may be large.
        let read = crate::blocking::run(move |_| {
            let mut file = file;
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).map(|_| {
                let sha256 = sha256_hex(&bytes);
                (bytes, sha256)
            })
        })
        .await;
        let (bytes, sha256) = match read {
            Ok(read) => read,
            Err(error) => {
                return Err(finding(
                    Category::FilestoreFailed,
                    &from_pointer,
                    format!("cannot read `{}`: {error}", upload.from),
                ));
            }
        };
        let key = template::render(&upload.to, &self.vars);
        let to_pointer = format!("{pointer}/to");
        let size = bytes.len() as u64;
        self.context
            .filestore
            .put(&key, bytes)
            .await
            .map_err(|error| finding(Category::FilestoreFailed, &to_pointer, error.to_string()))?;
        let stored =
            self.context.filestore.get(&key).await.map_err(|error| {
                finding(Category::FilestoreFailed, &to_pointer, error.to_string())
            })?;
        let (stored, stored_sha256) = crate::blocking::run(move |_| {
            let sha256 = sha256_hex(&stored);
            (stored, sha256)
        })
        .await;
        if stored_sha256 != sha256 {
            return Err(finding(
                Category::ChecksumMismatch,
                &to_pointer,
                format!(
                    "`{key}` reads back with sha256 {stored_sha256} ({} bytes), but {sha256} ({size} bytes) was written",
                    stored.len()
                ),
            ));
        }
        self.record.metrics.filestore.bytes_out += size;
        let url = self.context.filestore.url(&key);
        self.record.result.artifacts.push(Artifact {
            path: upload.from.clone(),
            bytes: size,
            sha256,
            url,
        });
        Ok(())
    }

    /// Under `--keep-failed`, label what is created as kept if the scenario fails.
    fn keep_label(&self, labels: &mut std::collections::BTreeMap<String, String>) {
        if self.context.keep_failed.is_some() {
            labels.insert(KEEP_LABEL.to_owned(), "true".to_owned());
        }
    }

    /// `--keep-failed`: leave this failed scenario's containers (running ones go on
    /// running), compose project, workspace volume, built images and workspace in place,
    /// and list them in `kept`.
    async fn keep(&mut self, kept: &KeptList) {
        let mut entry = Kept {
            scenario: self.loaded.scenario.name.clone(),
            slug: self.slug.clone(),
            containers: self.containers.drain(..).collect(),
            ..Kept::default()
        };
        if let Some(state) = self.compose.take() {
            let project = state.project_name().to_owned();
            let label = format!("{}={project}", crate::compose::PROJECT_LABEL);
            if let Ok(ids) = self.backend.list_labelled(&label).await {
                entry.containers.extend(ids);
            }
            entry.compose_project = Some(project);
        }
        entry.volume = self.volume.take();
        entry.images = self.images.drain(..).collect();
        // Still shared only with a blocking task that is ending (a cancelled step): its
        // drop removes the workspace, and only the path is listed.
        entry.workspace = self.workspace.take().map(|shared| {
            let path = shared.root().to_path_buf();
            Arc::into_inner(shared).map_or(path, crate::workspace::Workspace::keep)
        });
        if let Ok(mut list) = kept.lock() {
            list.push(entry);
        }
    }

    /// After a cancellation, the containers of this scenario the daemon has and the
    /// scenario never heard of: a `create` cut short by the cancel (its process killed with
    /// its group) may still have been carried out by the daemon, and its ID never came
    /// back. Found by the scenario's label, checked to be this run's (another run's
    /// scenario of the same name has the same label), removed here rather than left to
    /// the run's final sweep. Costs two calls per cancelled scenario, none otherwise.
    async fn remove_unrecorded_containers(&mut self, problems: &mut Vec<String>) {
        if !self.context.cancel.is_cancelled() {
            return;
        }
        let label = format!("dockproof.scenario={}", self.slug);
        let Ok(found) = self.backend.list_labelled(&label).await else {
            // The run's sweep lists them again, and says what it removed.
            return;
        };
        for id in found {
            let ours = self.backend.inspect_json(&id).await.is_ok_and(|document| {
                document
                    .pointer("/Config/Labels/dockproof.run")
                    .and_then(serde_json::Value::as_str)
                    == Some(self.context.run_id.as_str())
            });
            if ours && let Err(error) = self.backend.remove(&id).await {
                problems.push(format!("container {id}: {error}"));
            }
        }
    }

    /// Remove every container and the workspace; report what could not be removed.
    async fn cleanup(&mut self) -> Result<(), Failure> {
        let mut problems = Vec::new();
        // The compose project first: `down` stops its containers and removes its networks and volumes.
        if let Some(state) = self.compose.take()
            && let Err((_, message)) = self.tear_down(state, None).await
        {
            problems.push(message);
        }
        for id in self.containers.drain(..).rev() {
            if let Err(error) = self.backend.remove(&id).await {
                problems.push(format!("container {id}: {error}"));
            }
        }
        self.remove_unrecorded_containers(&mut problems).await;
        if let Some(problem) = self.remove_volume().await {
            problems.push(problem);
        }
        for image in self.images.drain(..).rev() {
            if let Err(error) = self.backend.remove_image(&image).await {
                problems.push(format!("image {image}: {error}"));
            }
        }
        // Still shared with a blocking task of a cancelled step, it is removed when that
        // task drops it.
        if let Some(workspace) = self.workspace.take().and_then(Arc::into_inner)
            && let Err(error) = workspace.remove()
        {
            problems.push(error.to_string());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Failure::new(Category::CleanupFailed, problems.join("; ")))
        }
    }
}

/// `action` with its image references rendered, when any holds a template; `None` when
/// none does (the common case costs no clone).
fn render_image_references(action: &Action, vars: &Vars) -> Option<Action> {
    if !action
        .image_references()
        .iter()
        .any(|(_, reference)| reference.contains("{{"))
    {
        return None;
    }
    let mut rendered = action.clone();
    for reference in rendered.image_references_mut() {
        *reference = template::render(reference, vars);
    }
    Some(rendered)
}

/// What the workspace holds at `relative`: its size, sha256 and (with `want_text`, when
/// small) its text. Blocking: run it on the blocking pool.
fn observe_file(
    workspace: &Workspace,
    relative: &str,
    want_text: bool,
) -> Result<FileObservation, workspace::WorkspaceError> {
    // A FIFO, device node or hard link the job left there is refused, never read.
    let workspace::Collected::File(mut file, _) = workspace.collect(relative)? else {
        return Ok(FileObservation::default());
    };
    let io_error = |source| workspace::WorkspaceError::Io {
        action: "read",
        path: workspace.root().join(relative),
        source,
    };
    let (size, sha256) = workspace::sha256_collected(&mut file).map_err(io_error)?;
    let text = if want_text && size <= MAX_TEXT_BYTES {
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .ok()
            .and_then(|_| String::from_utf8(bytes).ok())
    } else {
        None
    };
    Ok(FileObservation {
        exists: true,
        size,
        sha256,
        text,
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_container_name_safe() {
        assert_eq!(slug("Job happy path (seed 000)"), "job-happy-path-seed-000");
        assert_eq!(slug("***"), "scenario");
    }
}
