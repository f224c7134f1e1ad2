//! The typed scenario model. Serde reads it, schemars describes it; the JSON
//! Schema printed by `dockproof schema` is generated from these types.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::category::Category;

// A file is read as a `Scenario<StepFile>` (each step as written, which serde reads and the
// JSON Schema describes); once every step names exactly one action, the loader turns it into
// a `Scenario<Step>` (the default), whose steps are `Action`s the engine `match`es on.
/// One scenario file: inputs, steps and what they must produce.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Scenario")]
pub struct Scenario<S = Step> {
    /// Unique name; becomes the JUnit test case name.
    pub name: String,
    /// What the scenario proves, for people reading reports.
    #[serde(default)]
    pub description: Option<String>,
    /// Tags for selection (`job`, `canary`, `fault`, ...).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Deadline for the whole scenario (default 5m).
    #[serde(default)]
    pub timeout: Option<Duration>,
    /// Limits of the per-job workspace directory.
    #[serde(default)]
    pub workspace: WorkspaceSpec,
    /// Objects put into the filestore before anything runs.
    #[serde(default)]
    pub seed: Vec<SeedItem>,
    /// Inputs staged into the workspace before the first step.
    #[serde(default)]
    pub stage: Vec<StageItem>,
    /// Secrets the steps use as `{{ secret.NAME }}` (tokens, passwords). Their values are
    /// masked as `***` in every log tail, message and report.
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretSpec>,
    /// Variables the scenario's texts use as `{{ vars.NAME }}`, with their defaults; the
    /// project file's `[vars]`, `--vars-file` and `--var` give or override them
    /// (docs/scenarios.md, "Variables"). A default may read a `host_env` variable.
    #[serde(default)]
    pub vars: BTreeMap<String, Text>,
    /// Host environment variables the scenario reads as `{{ env.NAME }}`: only these.
    #[serde(default)]
    pub host_env: Vec<String>,
    /// Run the scenario once per combination of these values (at most 64 combinations),
    /// each a JUnit case named `NAME [KEY=VALUE, ...]`; the values are variables,
    /// `{{ vars.KEY }}` (docs/scenarios.md, "Matrix").
    #[serde(default)]
    #[schemars(extend("maxProperties" = 8))]
    pub matrix: BTreeMap<String, MatrixValues>,
    /// The steps, run in order.
    pub steps: Vec<S>,
    /// The scenario as a whole (its steps and the cleanup after them) must fail with this
    /// category, e.g. `cleanup_failed`; steps keep their own `expect_failure`.
    #[serde(default)]
    pub expect_failure: Option<Category>,
    /// Faults fake-docker injects into this scenario's docker calls (its
    /// `FAKE_DOCKER_FAULTS` syntax, e.g. `start:oom` or `cp:truncate:first=1`).
    /// Only the fake can do this: on a real daemon the scenario is skipped.
    #[serde(default)]
    pub fake_faults: Option<String>,
    /// Reach Docker at this address (`DOCKER_HOST` syntax) for this scenario, e.g.
    /// `unix:///nonexistent.sock` to prove an unreachable daemon is reported as such.
    #[serde(default)]
    pub docker_host: Option<String>,
    /// What the scenario needs from the backend (the mirror of `fake_faults`): a backend
    /// without it reports the scenario skipped, with the reason. `compose` steps need `compose`.
    #[serde(default)]
    pub requires: Vec<Requirement>,
}

/// One matrix key's values, in the order the combinations are run.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct MatrixValues(#[schemars(length(min = 1, max = 64))] pub Vec<Text>);

/// Something a scenario needs from the backend it runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Requirement {
    /// A real Docker daemon (`docker-cli` or `docker-api`): the fake skips the scenario.
    RealDaemon,
    /// A real Docker daemon and docker compose (the `docker compose` plugin, else
    /// `docker-compose`): skipped on the fake, and where neither is installed.
    Compose,
}

impl Requirement {
    /// The name used in scenario files.
    pub fn as_str(self) -> &'static str {
        match self {
            Requirement::RealDaemon => "real_daemon",
            Requirement::Compose => "compose",
        }
    }
}

impl<S> Scenario<S> {
    /// The same scenario with `steps` in place of its own (the loader's typed steps).
    pub fn with_steps<T>(self, steps: Vec<T>) -> Scenario<T> {
        Scenario {
            name: self.name,
            description: self.description,
            tags: self.tags,
            timeout: self.timeout,
            workspace: self.workspace,
            seed: self.seed,
            stage: self.stage,
            secrets: self.secrets,
            vars: self.vars,
            host_env: self.host_env,
            matrix: self.matrix,
            steps,
            expect_failure: self.expect_failure,
            fake_faults: self.fake_faults,
            docker_host: self.docker_host,
            requires: self.requires,
        }
    }

    /// Whether the scenario can only run on a real daemon (`requires: [real_daemon]` or `[compose]`).
    pub fn needs_real_daemon(&self) -> bool {
        !self.requires.is_empty()
    }

    /// Whether the scenario needs docker compose.
    pub fn needs_compose(&self) -> bool {
        self.requires.contains(&Requirement::Compose)
    }
}

/// Where a secret's value comes from: exactly one of `env` and `generate`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    /// An environment variable of the dockproof process (e.g. a CI secret).
    #[serde(default)]
    pub env: Option<String>,
    /// A fresh value per run: this many bytes as hex (at least 8, at most 4096). For contract tests
    /// ("a token is passed and never leaks"), not real credentials.
    #[serde(default)]
    #[schemars(range(max = 4096))]
    pub generate: Option<u32>,
}

/// Limits of the job workspace.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceSpec {
    /// Maximum total bytes of all files in the workspace.
    #[serde(default)]
    pub max_bytes: Option<ByteSize>,
    /// Maximum number of files in the workspace (at most 10,000,000).
    #[serde(default)]
    #[schemars(range(max = 10_000_000))]
    pub max_files: Option<u64>,
    /// How this scenario's workspace reaches its containers, over the host's transport:
    /// `copy` tests a job the way a remote daemon runs it, on any daemon.
    #[serde(default)]
    pub transport: Option<crate::transport::TransportChoice>,
}

/// One input put into the workspace.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageItem {
    /// Destination, relative to the workspace root.
    pub to: String,
    /// A fixture file, relative to the scenario file's directory.
    #[serde(default)]
    pub from: Option<String>,
    /// Inline text.
    #[serde(default)]
    pub text: Option<String>,
    /// Deterministic pseudo-random bytes.
    #[serde(default)]
    pub generate: Option<GenerateSpec>,
    /// An object key in the filestore.
    #[serde(default)]
    pub filestore: Option<String>,
}

/// One object put into the filestore before the scenario runs.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SeedItem {
    /// The object key.
    pub key: String,
    /// A fixture file, relative to the scenario file's directory.
    #[serde(default)]
    pub from: Option<String>,
    /// Inline text.
    #[serde(default)]
    pub text: Option<String>,
    /// Deterministic pseudo-random bytes.
    #[serde(default)]
    pub generate: Option<GenerateSpec>,
}

/// Where staged or seeded bytes come from (valid items name exactly one).
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// A fixture file, relative to the scenario file's directory.
    Fixture(&'a str),
    /// Inline text.
    Text(&'a str),
    /// Deterministic generated bytes.
    Generate(&'a GenerateSpec),
    /// An object in the filestore.
    Filestore(&'a str),
}

fn sources<'a>(
    from: &'a Option<String>,
    text: &'a Option<String>,
    generate: &'a Option<GenerateSpec>,
    filestore: Option<&'a String>,
) -> Vec<Source<'a>> {
    let mut found = Vec::new();
    if let Some(path) = from {
        found.push(Source::Fixture(path));
    }
    if let Some(text) = text {
        found.push(Source::Text(text));
    }
    if let Some(spec) = generate {
        found.push(Source::Generate(spec));
    }
    if let Some(key) = filestore {
        found.push(Source::Filestore(key));
    }
    found
}

impl StageItem {
    /// The sources this item names (valid items name exactly one).
    pub fn sources(&self) -> Vec<Source<'_>> {
        sources(
            &self.from,
            &self.text,
            &self.generate,
            self.filestore.as_ref(),
        )
    }
}

impl SeedItem {
    /// The sources this item names (valid items name exactly one; never the filestore).
    pub fn sources(&self) -> Vec<Source<'_>> {
        sources(&self.from, &self.text, &self.generate, None)
    }
}

/// Deterministic generated content: the same size and seed give the same bytes.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateSpec {
    /// How many bytes.
    pub bytes: ByteSize,
    /// Seed of the generator.
    #[serde(default)]
    pub seed: u64,
}

// As written in a scenario file: the loader checks that it sets one kind, then makes a
// `Step` of it (`StepFile::to_step`).
/// One step. Exactly one of `stage`, `run`, `exec`, `upload`, `telemetry`,
/// `service`, `http`, `logs`, `build`, `inspect`, `lint`, `cst`, `compose` is set.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Step")]
pub struct StepFile {
    /// A label for reports (defaults to the step kind and index).
    #[serde(default)]
    pub name: Option<String>,
    /// Stage more inputs into the workspace.
    #[serde(default)]
    pub stage: Option<Vec<StageItem>>,
    /// Run a container with the workspace mounted.
    #[serde(default)]
    pub run: Option<RunSpec>,
    /// Run a command in a container started by an earlier detached `run`.
    #[serde(default)]
    pub exec: Option<ExecSpec>,
    /// Copy a workspace file to the filestore and verify it by reading it back.
    #[serde(default)]
    pub upload: Option<UploadSpec>,
    /// Assertions on the job record, by JSON pointer.
    #[serde(default)]
    pub telemetry: Option<Vec<PointerAssertion>>,
    /// Start a long-running container with published ports and wait until it is ready.
    #[serde(default)]
    pub service: Option<ServiceSpec>,
    /// HTTP requests against a service (or any URL), with expectations.
    #[serde(default)]
    pub http: Option<HttpSpec>,
    /// Conditions on a running or finished container's logs.
    #[serde(default)]
    pub logs: Option<LogsSpec>,
    /// Build an image from a context directory and check what came out.
    #[serde(default)]
    pub build: Option<BuildSpec>,
    /// Assertions by JSON pointer on a container's or an image's inspect document.
    #[serde(default)]
    pub inspect: Option<InspectSpec>,
    /// Static checks of a Dockerfile or compose file (the `dockproof lint` rules), no daemon.
    #[serde(default)]
    pub lint: Option<LintSpec>,
    /// Run a container-structure-test (CST) file against an image, with CST's semantics.
    #[serde(default)]
    pub cst: Option<CstStepSpec>,
    /// A docker compose project on the real daemon: `up` (and wait until healthy), `kill` a
    /// service (its restart policy must bring it back), `down`. Needs `requires: [compose]`.
    #[serde(default)]
    pub compose: Option<ComposeSpec>,
    /// Replaced, when the scenario loads, by the steps of a fragment file (with no other
    /// key on this step): `include: { file: web.fragment.yaml, with: { image: ... } }`.
    #[serde(default)]
    pub include: Option<IncludeSpec>,
    /// What a `run` or `exec` must produce.
    #[serde(default)]
    pub expect: Option<Expect>,
    /// Values for later steps, by key: `{{ steps.NAME.KEY }}` (the step needs a `name`).
    #[serde(default)]
    pub capture: BTreeMap<String, CaptureSpec>,
    /// The step must fail with this category for the scenario to pass.
    #[serde(default)]
    pub expect_failure: Option<Category>,
}

/// A step that stands for a fragment's steps (docs/scenarios.md, "Includes").
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IncludeSpec {
    /// The fragment (`*.fragment.yaml`), relative to the including file's directory.
    pub file: String,
    /// Values of the fragment's `params:`, used there as `{{ params.NAME }}`.
    #[serde(default)]
    pub with: BTreeMap<String, Text>,
}

/// Which kind a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    Stage,
    Run,
    Exec,
    Upload,
    Telemetry,
    Service,
    Http,
    Logs,
    Build,
    Inspect,
    Lint,
    Cst,
    Compose,
}

impl StepKind {
    /// The key that selects this kind in a scenario file.
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Stage => "stage",
            StepKind::Run => "run",
            StepKind::Exec => "exec",
            StepKind::Upload => "upload",
            StepKind::Telemetry => "telemetry",
            StepKind::Service => "service",
            StepKind::Http => "http",
            StepKind::Logs => "logs",
            StepKind::Build => "build",
            StepKind::Inspect => "inspect",
            StepKind::Lint => "lint",
            StepKind::Cst => "cst",
            StepKind::Compose => "compose",
        }
    }
}

impl StepFile {
    /// The kinds this step sets (valid steps set exactly one).
    pub fn kinds(&self) -> Vec<StepKind> {
        let mut kinds = Vec::new();
        if self.stage.is_some() {
            kinds.push(StepKind::Stage);
        }
        if self.run.is_some() {
            kinds.push(StepKind::Run);
        }
        if self.exec.is_some() {
            kinds.push(StepKind::Exec);
        }
        if self.upload.is_some() {
            kinds.push(StepKind::Upload);
        }
        if self.telemetry.is_some() {
            kinds.push(StepKind::Telemetry);
        }
        if self.service.is_some() {
            kinds.push(StepKind::Service);
        }
        if self.http.is_some() {
            kinds.push(StepKind::Http);
        }
        if self.logs.is_some() {
            kinds.push(StepKind::Logs);
        }
        if self.build.is_some() {
            kinds.push(StepKind::Build);
        }
        if self.inspect.is_some() {
            kinds.push(StepKind::Inspect);
        }
        if self.lint.is_some() {
            kinds.push(StepKind::Lint);
        }
        if self.cst.is_some() {
            kinds.push(StepKind::Cst);
        }
        if self.compose.is_some() {
            kinds.push(StepKind::Compose);
        }
        kinds
    }
}

impl StepFile {
    /// The typed step, when the step sets exactly one kind (and a `compose` step exactly one
    /// action); otherwise what is wrong with its shape. `expect` is kept for `run` and
    /// `exec`, the only kinds it applies to (the loader reports it anywhere else).
    pub fn to_step(&self) -> Result<Step, StepShapeError> {
        let kinds = self.kinds();
        let kind = match kinds.as_slice() {
            [] => return Err(StepShapeError::NoKind),
            [kind] => *kind,
            _ => return Err(StepShapeError::SeveralKinds(kinds)),
        };
        let expect = || self.expect.clone().unwrap_or_default();
        let missing = || StepShapeError::NoKind;
        let action = match kind {
            StepKind::Stage => Action::Stage(self.stage.clone().ok_or_else(missing)?),
            StepKind::Run => Action::Run {
                run: self.run.clone().ok_or_else(missing)?,
                expect: expect(),
            },
            StepKind::Exec => Action::Exec {
                exec: self.exec.clone().ok_or_else(missing)?,
                expect: expect(),
            },
            StepKind::Upload => Action::Upload(self.upload.clone().ok_or_else(missing)?),
            StepKind::Telemetry => Action::Telemetry(self.telemetry.clone().ok_or_else(missing)?),
            StepKind::Service => Action::Service(self.service.clone().ok_or_else(missing)?),
            StepKind::Http => Action::Http(self.http.clone().ok_or_else(missing)?),
            StepKind::Logs => Action::Logs(self.logs.clone().ok_or_else(missing)?),
            StepKind::Build => Action::Build(self.build.clone().ok_or_else(missing)?),
            StepKind::Inspect => Action::Inspect(self.inspect.clone().ok_or_else(missing)?),
            StepKind::Lint => Action::Lint(self.lint.clone().ok_or_else(missing)?),
            StepKind::Cst => Action::Cst(self.cst.clone().ok_or_else(missing)?),
            StepKind::Compose => {
                let spec = self.compose.as_ref().ok_or_else(missing)?;
                let mut actions: Vec<ComposeAction> = Vec::new();
                actions.extend(spec.up.clone().map(ComposeAction::Up));
                actions.extend(spec.kill.clone().map(ComposeAction::Kill));
                actions.extend(spec.down.clone().map(ComposeAction::Down));
                if actions.len() != 1 {
                    return Err(StepShapeError::ComposeActions(
                        actions.iter().map(ComposeAction::as_str).collect(),
                    ));
                }
                Action::Compose(actions.remove(0))
            }
        };
        Ok(Step {
            name: self.name.clone(),
            action,
            capture: self.capture.clone(),
            references: Vec::new(),
            expect_failure: self.expect_failure,
        })
    }
}

/// Why a step as written is not one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepShapeError {
    /// The step sets no kind.
    NoKind,
    /// The step sets these kinds (more than one).
    SeveralKinds(Vec<StepKind>),
    /// A `compose` step sets these actions (none, or more than one).
    ComposeActions(Vec<&'static str>),
}

/// One step of a loaded scenario: what it does, and how it is expected to end.
#[derive(Debug, Clone)]
pub struct Step {
    /// A label for reports (defaults to the step kind and index).
    pub name: Option<String>,
    /// What the step does.
    pub action: Action,
    /// Values it captures for later steps, by key.
    pub capture: BTreeMap<String, CaptureSpec>,
    /// The template variables its texts use (`secret.NAME`, `steps.STEP.KEY`, ...): what its
    /// output may be derived from, so a capture from a step that used a secret is masked.
    pub references: Vec<String>,
    /// The step must fail with this category for the scenario to pass.
    pub expect_failure: Option<Category>,
}

impl Step {
    /// The step's kind.
    pub fn kind(&self) -> StepKind {
        self.action.kind()
    }
}

/// What a step does: one variant per step kind, each with its spec as written.
// A scenario has a handful of steps, made once at load: boxing the large specs would only
// add noise to every `match`.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Action {
    /// Stage more inputs into the workspace.
    Stage(Vec<StageItem>),
    /// Run a container with the workspace mounted, and check what it produced.
    Run { run: RunSpec, expect: Expect },
    /// Run a command in a detached container, and check what it produced.
    Exec { exec: ExecSpec, expect: Expect },
    /// Copy a workspace file to the filestore and verify it by reading it back.
    Upload(UploadSpec),
    /// Assertions on the job record.
    Telemetry(Vec<PointerAssertion>),
    /// Start a long-running container and wait until it is ready.
    Service(ServiceSpec),
    /// HTTP requests with expectations.
    Http(HttpSpec),
    /// Conditions on a container's logs.
    Logs(LogsSpec),
    /// Build an image and check it.
    Build(BuildSpec),
    /// Assertions on an inspect document.
    Inspect(InspectSpec),
    /// Static checks of a Dockerfile or compose file.
    Lint(LintSpec),
    /// A container-structure-test file against an image.
    Cst(CstStepSpec),
    /// One action on the scenario's compose project.
    Compose(ComposeAction),
}

impl Action {
    /// The kind of step this action is.
    pub fn kind(&self) -> StepKind {
        match self {
            Action::Stage(_) => StepKind::Stage,
            Action::Run { .. } => StepKind::Run,
            Action::Exec { .. } => StepKind::Exec,
            Action::Upload(_) => StepKind::Upload,
            Action::Telemetry(_) => StepKind::Telemetry,
            Action::Service(_) => StepKind::Service,
            Action::Http(_) => StepKind::Http,
            Action::Logs(_) => StepKind::Logs,
            Action::Build(_) => StepKind::Build,
            Action::Inspect(_) => StepKind::Inspect,
            Action::Lint(_) => StepKind::Lint,
            Action::Cst(_) => StepKind::Cst,
            Action::Compose(_) => StepKind::Compose,
        }
    }

    /// The image references this action names, each with its JSON pointer below the
    /// step (`/run/image`, `/service/image`, `/build/tag`, `/inspect/image`,
    /// `/cst/image`). They may hold run-time templates (`{{ run.id }}`, `{{ job.id }}`,
    /// captures), rendered when the step runs: two runs building the same tag on one
    /// daemon would otherwise remove each other's image at cleanup.
    pub fn image_references(&self) -> Vec<(&'static str, &str)> {
        match self {
            Action::Run { run, .. } => vec![("/run/image", run.image.as_str())],
            Action::Service(service) => vec![("/service/image", service.image.as_str())],
            Action::Build(build) => build
                .tag
                .iter()
                .map(|tag| ("/build/tag", tag.as_str()))
                .collect(),
            Action::Inspect(inspect) => inspect
                .image
                .iter()
                .map(|image| ("/inspect/image", image.as_str()))
                .collect(),
            Action::Cst(cst) => vec![("/cst/image", cst.image.as_str())],
            _ => Vec::new(),
        }
    }

    /// [`Action::image_references`], to be rewritten in place.
    pub fn image_references_mut(&mut self) -> Vec<&mut String> {
        match self {
            Action::Run { run, .. } => vec![&mut run.image],
            Action::Service(service) => vec![&mut service.image],
            Action::Build(build) => build.tag.iter_mut().collect(),
            Action::Inspect(inspect) => inspect.image.iter_mut().collect(),
            Action::Cst(cst) => vec![&mut cst.image],
            _ => Vec::new(),
        }
    }
}

/// Where a captured value comes from: exactly one of these, and it must fit the step's
/// kind (`stdout`, `stderr`, `file` and `file_sha256` a `run` or `exec`, `json` an `http`,
/// `inspect` an `inspect` step). Later steps use it as `{{ steps.STEP.KEY }}`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureSpec {
    /// The step's stdout: all of it (trimmed), or what `matches` finds in it.
    #[serde(default)]
    pub stdout: Option<CaptureText>,
    /// The step's stderr: all of it (trimmed), or what `matches` finds in it.
    #[serde(default)]
    pub stderr: Option<CaptureText>,
    /// A workspace file's text after the step (trimmed; at most 64 KiB), by its path.
    #[serde(default)]
    pub file: Option<String>,
    /// A workspace file's sha256 after the step (hex), by its path.
    #[serde(default)]
    pub file_sha256: Option<String>,
    /// The value at this JSON pointer of the last HTTP answer's body (a string as it is,
    /// anything else as JSON text).
    #[serde(default)]
    pub json: Option<String>,
    /// The value at this JSON pointer of the inspect document.
    #[serde(default)]
    pub inspect: Option<String>,
}

/// Which text a capture reads, and how.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureText {
    /// A regular expression: the value is its first group (the whole match without one).
    /// Without it, the whole text, trimmed.
    #[serde(default)]
    pub matches: Option<String>,
}

/// A capture's source, once checked.
#[derive(Debug, Clone, Copy)]
pub enum CaptureSource<'a> {
    Stdout(&'a CaptureText),
    Stderr(&'a CaptureText),
    File(&'a str),
    FileSha256(&'a str),
    Json(&'a str),
    Inspect(&'a str),
}

impl CaptureSpec {
    /// The sources this capture names (a valid one names exactly one).
    pub fn sources(&self) -> Vec<CaptureSource<'_>> {
        let mut found = Vec::new();
        found.extend(self.stdout.as_ref().map(CaptureSource::Stdout));
        found.extend(self.stderr.as_ref().map(CaptureSource::Stderr));
        found.extend(self.file.as_deref().map(CaptureSource::File));
        found.extend(self.file_sha256.as_deref().map(CaptureSource::FileSha256));
        found.extend(self.json.as_deref().map(CaptureSource::Json));
        found.extend(self.inspect.as_deref().map(CaptureSource::Inspect));
        found
    }
}

impl CaptureSource<'_> {
    /// The key that selects this source.
    pub fn as_str(&self) -> &'static str {
        match self {
            CaptureSource::Stdout(_) => "stdout",
            CaptureSource::Stderr(_) => "stderr",
            CaptureSource::File(_) => "file",
            CaptureSource::FileSha256(_) => "file_sha256",
            CaptureSource::Json(_) => "json",
            CaptureSource::Inspect(_) => "inspect",
        }
    }

    /// Whether a step of `kind` has what this source reads.
    pub fn fits(&self, kind: StepKind) -> bool {
        match self {
            CaptureSource::Stdout(_)
            | CaptureSource::Stderr(_)
            | CaptureSource::File(_)
            | CaptureSource::FileSha256(_) => matches!(kind, StepKind::Run | StepKind::Exec),
            CaptureSource::Json(_) => kind == StepKind::Http,
            CaptureSource::Inspect(_) => kind == StepKind::Inspect,
        }
    }
}

/// A container run.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// Image reference, e.g. `dockproof/job-runner:1` (templates allowed, e.g. `{{ run.id }}` as the tag of an image an earlier step built).
    pub image: String,
    /// Command and arguments, passed as argv (never through a shell). Defaults to the image's CMD.
    #[serde(default)]
    pub cmd: Option<Vec<Text>>,
    /// Replace the image's ENTRYPOINT with this argv; `[]` clears it (the command then runs
    /// as is). Checked against the daemon's inspect document after create.
    #[serde(default)]
    pub entrypoint: Option<Vec<Text>>,
    /// Environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, Text>,
    /// Working directory inside the container.
    #[serde(default)]
    pub workdir: Option<String>,
    /// `user[:group]` to run as.
    #[serde(default)]
    pub user: Option<String>,
    /// Where the workspace is mounted (default `/workspace`). Nothing else is mounted.
    #[serde(default)]
    pub workspace: Option<String>,
    /// Extra container labels (dockproof adds `dockproof.run` itself).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Resource limits.
    #[serde(default)]
    pub limits: Limits,
    /// Security options.
    #[serde(default)]
    pub security: Security,
    /// Time allowed before the container is stopped (default 60s).
    #[serde(default)]
    pub timeout: Option<Duration>,
    /// Grace period between SIGTERM and SIGKILL when stopping (default 2s).
    #[serde(default)]
    pub stop_grace: Option<Duration>,
    /// Leave the container running for later `exec` steps; removed when the scenario ends.
    #[serde(default)]
    pub detach: bool,
    /// Name later steps use for this container (`exec` needs it detached; `logs` and `inspect` work either way).
    #[serde(default)]
    pub container: Option<String>,
    /// Resource monitoring while the container runs, and budgets for it.
    #[serde(default)]
    pub monitor: Monitor,
}

/// Resource monitoring of a run: the daemon's stats, sampled about once a second while
/// the container runs, go into the record (`metrics.docker.resources`); a budget
/// exceeded is an `assertion_failed` at the budget's line. Detached runs are not sampled.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Monitor {
    /// Sample the container's resource usage while it runs (default `true`).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Most memory the container may use at any sample, e.g. `48MiB` (page cache not counted,
    /// as in `docker stats`).
    #[serde(default)]
    pub max_memory: Option<ByteSize>,
    /// Most CPU at any sample, in percent of one core (`100` = one core fully busy; at most 102400).
    #[serde(default)]
    #[schemars(range(max = 102_400))]
    pub max_cpu_percent: Option<f64>,
    /// Most processes at once (at most 4194304, Linux's highest `pid_max`).
    #[serde(default)]
    #[schemars(range(max = 4_194_304))]
    pub max_pids: Option<u64>,
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor {
            enabled: true,
            max_memory: None,
            max_cpu_percent: None,
            max_pids: None,
        }
    }
}

impl Monitor {
    /// Whether any budget is set.
    pub fn has_budgets(&self) -> bool {
        self.max_memory.is_some() || self.max_cpu_percent.is_some() || self.max_pids.is_some()
    }
}

/// Resource limits for a container.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Memory limit, e.g. `64MiB`.
    #[serde(default)]
    pub memory: Option<ByteSize>,
    /// CPU limit in cores, e.g. `0.5` (at most 1024).
    #[serde(default)]
    #[schemars(range(max = 1024))]
    pub cpus: Option<f64>,
    /// Maximum number of processes (`-1`: unlimited; at most 4194304).
    #[serde(default)]
    #[schemars(range(min = -1, max = 4_194_304))]
    pub pids: Option<i64>,
}

/// Security options for a container.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Security {
    /// Mount the root filesystem read-only.
    #[serde(default)]
    pub read_only: bool,
    /// Forbid gaining privileges (setuid binaries).
    #[serde(default)]
    pub no_new_privileges: bool,
    /// Network mode: `none`, `bridge`, `host` or a network name.
    #[serde(default)]
    pub network: Option<String>,
    /// Linux capabilities to drop (`ALL`, `NET_RAW`, ...), as `docker run --cap-drop`.
    #[serde(default)]
    pub cap_drop: Vec<String>,
    /// tmpfs mounts, as `docker run --tmpfs`: `PATH` or `PATH:OPTIONS` (e.g. `/tmp:size=16m`).
    #[serde(default)]
    pub tmpfs: Vec<String>,
}

/// A command run inside a running container.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecSpec {
    /// The `container` name given to an earlier detached `run`.
    pub container: String,
    /// Command and arguments (argv).
    pub cmd: Vec<Text>,
    /// Environment variables for this command.
    #[serde(default)]
    pub env: BTreeMap<String, Text>,
    /// Working directory.
    #[serde(default)]
    pub workdir: Option<String>,
    /// `user[:group]` to run as.
    #[serde(default)]
    pub user: Option<String>,
    /// Time allowed for the command (default 60s).
    #[serde(default)]
    pub timeout: Option<Duration>,
}

/// What a `run` or `exec` must produce.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Expected exit code (default 0).
    #[serde(default)]
    pub exit_code: Option<i64>,
    /// Conditions on stdout.
    #[serde(default)]
    pub stdout: Option<TextMatch>,
    /// Conditions on stderr.
    #[serde(default)]
    pub stderr: Option<TextMatch>,
    /// Conditions on workspace files after the step.
    #[serde(default)]
    pub files: Vec<FileExpect>,
}

/// Conditions on a text stream; every one given must hold.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TextMatch {
    /// The whole text equals this.
    #[serde(default)]
    pub equals: Option<String>,
    /// The text contains this substring.
    #[serde(default)]
    pub contains: Option<String>,
    /// The text does not contain this substring.
    #[serde(default)]
    pub not_contains: Option<String>,
    /// A regular expression (Rust `regex` syntax) matches somewhere in the text.
    #[serde(default)]
    pub matches: Option<String>,
    /// This regular expression matches nowhere in the text.
    #[serde(default)]
    pub not_matches: Option<String>,
}

/// Conditions on one workspace file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileExpect {
    /// Path relative to the workspace root.
    pub path: String,
    /// Whether the file must exist (default true).
    #[serde(default = "default_true")]
    pub exists: bool,
    /// Exact size in bytes (at most 1 TiB, the largest size dockproof handles).
    #[serde(default)]
    #[schemars(range(max = 1_099_511_627_776_u64))]
    pub size: Option<u64>,
    /// Expected sha256, hex.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Conditions on the file's text.
    #[serde(default)]
    pub text: Option<TextMatch>,
    /// JSON pointer → expected value, for JSON files.
    #[serde(default)]
    pub json: BTreeMap<String, serde_json::Value>,
}

fn default_true() -> bool {
    true
}

/// A long-running container: started detached with published ports, then
/// waited for (Docker health status, a TCP port, or an HTTP answer).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Name later steps use: `http.service`, `exec.container`, `logs.container`, `{{ service.NAME.port }}`.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Command and arguments (argv). Defaults to the image's CMD.
    #[serde(default)]
    pub cmd: Option<Vec<Text>>,
    /// Replace the image's ENTRYPOINT with this argv; `[]` clears it (the command then runs
    /// as is). Checked against the daemon's inspect document after create.
    #[serde(default)]
    pub entrypoint: Option<Vec<Text>>,
    /// Environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, Text>,
    /// Published ports: `"CONTAINER"` or `"HOST:CONTAINER"` (host 0 or omitted: a free port is assigned).
    #[serde(default)]
    pub ports: Vec<Text>,
    /// `user[:group]` to run as.
    #[serde(default)]
    pub user: Option<String>,
    /// Resource limits.
    #[serde(default)]
    pub limits: Limits,
    /// Security options.
    #[serde(default)]
    pub security: Security,
    /// Override the image's HEALTHCHECK.
    #[serde(default)]
    pub healthcheck: Option<HealthcheckSpec>,
    /// What "ready" means (default: healthy if the image has a healthcheck, else running).
    #[serde(default)]
    pub wait: Option<WaitSpec>,
    /// Mount the workspace here (default: not mounted).
    #[serde(default)]
    pub workspace: Option<String>,
}

/// A container healthcheck, as `docker run --health-*` sets it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthcheckSpec {
    /// The check command (argv, run inside the container).
    pub cmd: Vec<Text>,
    /// Time between checks (default 1s).
    #[serde(default)]
    pub interval: Option<Duration>,
    /// Time a check may take (default 2s).
    #[serde(default)]
    pub timeout: Option<Duration>,
    /// Failures in a row before `unhealthy` (default 3, at most 1000).
    #[serde(default)]
    #[schemars(range(max = 1000))]
    pub retries: Option<u32>,
    /// Grace period during which failures do not count.
    #[serde(default)]
    pub start_period: Option<Duration>,
}

/// When a service counts as ready; the first condition given is used.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitSpec {
    /// Wait until Docker reports the container `healthy`.
    #[serde(default)]
    pub healthy: bool,
    /// Wait until this container port accepts TCP connections on its published host port.
    #[serde(default)]
    pub tcp: Option<u16>,
    /// Wait until this path answers with a 2xx status on the first published port.
    #[serde(default)]
    pub http: Option<String>,
    /// Wait until this text appears in the container's output (stdout or stderr), e.g.
    /// `listening on`. The last `max_log_bytes` of each stream are searched.
    #[serde(default)]
    pub log: Option<String>,
    /// A one-shot container: wait until it exits, with this code (e.g. a migration that
    /// exits 0). Another code, or still running at `within`, fails the step.
    #[serde(default)]
    pub exit: Option<i64>,
    /// How long to wait (default 30s).
    #[serde(default)]
    pub within: Option<Duration>,
}

/// HTTP requests with expectations.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    /// The service to call (its published port on 127.0.0.1).
    #[serde(default)]
    pub service: Option<String>,
    /// Which container port of the service (default: the first published).
    #[serde(default)]
    pub port: Option<u16>,
    /// A full URL instead of `service` (templates allowed).
    #[serde(default)]
    pub url: Option<String>,
    /// Request path, appended to the service's base URL (default `/`).
    #[serde(default)]
    pub path: Option<String>,
    /// HTTP method (default GET).
    #[serde(default)]
    pub method: Option<String>,
    /// Request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request body (text).
    #[serde(default)]
    pub body: Option<String>,
    /// Request body (JSON; sets `content-type: application/json`).
    #[serde(default)]
    pub json: Option<serde_json::Value>,
    /// Tries until the expectations hold (default 1, at most 1000).
    #[serde(default)]
    #[schemars(range(max = 1000))]
    pub attempts: Option<u32>,
    /// Pause before the first retry, doubling each time (default 200ms).
    #[serde(default)]
    pub backoff: Option<Duration>,
    /// Overall deadline for all attempts (default 30s).
    #[serde(default)]
    pub deadline: Option<Duration>,
    /// Send the request this many times; every answer must meet the expectations (default 1,
    /// at most 10000).
    #[serde(default)]
    #[schemars(range(max = 10_000))]
    pub repeat: Option<u32>,
    /// TLS settings for an `https://` URL (or a `service` that speaks TLS): whom to trust,
    /// who the probe is, which server name to ask for.
    #[serde(default)]
    pub tls: Option<HttpTls>,
    /// Send the request through this proxy (`http://HOST:PORT`, templates allowed). Without
    /// it no proxy is used, whatever `HTTP_PROXY`/`HTTPS_PROXY` say.
    #[serde(default)]
    pub proxy: Option<String>,
    /// What the answer must be.
    #[serde(default)]
    pub expect: HttpExpect,
}

/// TLS for an HTTP probe. Certificates are PEM files, relative to the scenario file's
/// directory. A `service` probe with `tls` speaks `https://` to the published port.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpTls {
    /// CA certificate(s) to trust (PEM). Without it, the system's trusted roots.
    #[serde(default)]
    pub ca: Option<String>,
    /// Client certificate (PEM, the chain leaf first), for servers that ask for one.
    #[serde(default)]
    pub cert: Option<String>,
    /// The client certificate's private key (PEM).
    #[serde(default)]
    pub key: Option<String>,
    /// Accept any server certificate (not checked at all); the report says so.
    #[serde(default)]
    pub insecure: bool,
    /// The server name to ask for (SNI), check the certificate against and send as
    /// `Host`, while connecting to the URL's address (curl's `--resolve`).
    #[serde(default)]
    pub server_name: Option<String>,
}

/// Expectations on an HTTP answer.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpExpect {
    /// Status code (default 200).
    #[serde(default)]
    pub status: Option<u16>,
    /// Header name (case-insensitive) → conditions on its value.
    #[serde(default)]
    pub headers: BTreeMap<String, TextMatch>,
    /// Conditions on the body text.
    #[serde(default)]
    pub body: Option<TextMatch>,
    /// JSON pointer → expected value.
    #[serde(default)]
    pub json: BTreeMap<String, serde_json::Value>,
    /// JSON pointer → expected type: string, number, integer, boolean, object, array, null.
    #[serde(default)]
    pub json_types: BTreeMap<String, JsonType>,
    /// Each answer must arrive within this time.
    #[serde(default)]
    pub max_latency: Option<Duration>,
}

/// A JSON value type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum JsonType {
    String,
    Number,
    Integer,
    Boolean,
    Object,
    Array,
    Null,
}

impl JsonType {
    /// Whether `value` is of this type.
    pub fn matches(self, value: &serde_json::Value) -> bool {
        match self {
            JsonType::String => value.is_string(),
            JsonType::Number => value.is_number(),
            JsonType::Integer => value.is_i64() || value.is_u64(),
            JsonType::Boolean => value.is_boolean(),
            JsonType::Object => value.is_object(),
            JsonType::Array => value.is_array(),
            JsonType::Null => value.is_null(),
        }
    }

    /// The type name used in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            JsonType::String => "string",
            JsonType::Number => "number",
            JsonType::Integer => "integer",
            JsonType::Boolean => "boolean",
            JsonType::Object => "object",
            JsonType::Array => "array",
            JsonType::Null => "null",
        }
    }
}

/// An image build and what the image must look like.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildSpec {
    /// The build context directory, relative to the scenario file's directory.
    pub context: String,
    /// The Dockerfile, relative to the context (default `Dockerfile`).
    #[serde(default)]
    pub dockerfile: Option<String>,
    /// Tag for the image (default: derived from the run and scenario; removed at the end).
    /// Templates allowed: `app:{{ run.id }}` keeps concurrent runs on one daemon apart.
    #[serde(default)]
    pub tag: Option<String>,
    /// Build arguments.
    #[serde(default)]
    pub args: BTreeMap<String, Text>,
    /// Stage to build (`--target`).
    #[serde(default)]
    pub target: Option<String>,
    /// Conditions on the built image.
    #[serde(default)]
    pub expect: ImageExpect,
}

/// Conditions on a built image.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageExpect {
    /// The image is at most this big.
    #[serde(default)]
    pub max_size: Option<ByteSize>,
    /// The image's user is set and is not root.
    #[serde(default)]
    pub non_root: Option<bool>,
    /// The image declares a HEALTHCHECK.
    #[serde(default)]
    pub healthcheck: Option<bool>,
    /// Ports the image exposes, e.g. `8080/tcp` (exactly these).
    #[serde(default)]
    pub exposed_ports: Option<Vec<String>>,
    /// Labels the image carries (others may exist too).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The image's ENTRYPOINT.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// The image's CMD.
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// Environment variables the image sets (others may exist too).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The image's working directory.
    #[serde(default)]
    pub workdir: Option<String>,
    /// The Dockerfile has more than one stage.
    #[serde(default)]
    pub multi_stage: Option<bool>,
}

/// A static check of one Dockerfile or compose file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LintSpec {
    /// The file, relative to the scenario file's directory (kind told by name and content).
    pub file: String,
    /// What the rules must find (default: no error-level finding).
    #[serde(default)]
    pub expect: LintExpect,
}

/// What a `lint` step must find.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LintExpect {
    /// Findings that must be reported.
    #[serde(default)]
    pub findings: Vec<ExpectedFinding>,
    /// Allow error-level findings besides those listed (default false).
    #[serde(default)]
    pub allow_other_errors: bool,
}

/// A finding a `lint` step expects: its rule, and the line when given.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectedFinding {
    /// Rule ID, e.g. `DC003` or `DF001`.
    pub rule: String,
    /// 1-based line of the file (at most 10,000,000).
    #[serde(default)]
    #[schemars(range(max = 10_000_000))]
    pub line: Option<usize>,
}

/// A container-structure-test file run against an image: every CST test must pass.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CstStepSpec {
    /// The image under test (fixture images are built on demand on real daemons).
    pub image: String,
    /// The CST file (schemaVersion 2.0.0 or 1.0.0), relative to the scenario file.
    pub config: String,
    /// How file and metadata tests read the image: `docker` (a created container, `docker cp`) or `tar` (`docker save`).
    #[serde(default)]
    pub driver: CstDriverKind,
}

/// Where a `cst` step's file and metadata tests read the image from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CstDriverKind {
    /// CST's docker driver: a created (never started) container per test, read with `docker cp`.
    #[default]
    Docker,
    /// The image's `docker save` archive: no container for file and metadata tests.
    Tar,
}

/// One action on the scenario's docker compose project: exactly one of `up`, `kill`, `down`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComposeSpec {
    /// `up -d` a project from a compose file (its name is unique to the run and scenario),
    /// then wait until every service is healthy (running, for one without a healthcheck).
    #[serde(default)]
    pub up: Option<ComposeUp>,
    /// Kill a service's main process (SIGKILL) and expect its restart policy to bring the
    /// container back: restart count up, running and healthy again.
    #[serde(default)]
    pub kill: Option<ComposeKill>,
    /// `down -v --remove-orphans`, then check that no container, network or volume of the
    /// project is left. Also done when the scenario ends, on every path.
    #[serde(default)]
    pub down: Option<ComposeDown>,
}

/// Which action a compose step takes.
#[derive(Debug, Clone)]
pub enum ComposeAction {
    Up(ComposeUp),
    Kill(ComposeKill),
    Down(ComposeDown),
}

impl ComposeAction {
    /// The key that selects this action.
    pub fn as_str(&self) -> &'static str {
        match self {
            ComposeAction::Up(_) => "up",
            ComposeAction::Kill(_) => "kill",
            ComposeAction::Down(_) => "down",
        }
    }
}

/// Bring a compose project up.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComposeUp {
    /// The compose file, relative to the scenario file's directory (its services become
    /// names for `http`, `logs`, `exec`, `inspect` and `{{ service.NAME.port }}`).
    pub file: String,
    /// How long until every service must be healthy (default 60s).
    #[serde(default)]
    pub within: Option<Duration>,
    /// Profiles to activate (`--profile`); services with `profiles:` none of which is active
    /// are not started, and not waited for.
    #[serde(default)]
    pub profiles: Vec<String>,
    /// Services that run to completion (a migration, a seed job): done once they exit 0; any
    /// other exit fails the step. Services others depend on with `condition:
    /// service_completed_successfully` are such services without being listed.
    #[serde(default)]
    pub one_shot: Vec<String>,
}

/// Kill one service's container process and watch the restart policy bring it back.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComposeKill {
    /// The compose service.
    pub service: String,
    /// How long the restart policy has to make it running (and healthy) again (default 30s).
    #[serde(default)]
    pub within: Option<Duration>,
    /// Image of the helper container that sends the signal from the daemon host's PID
    /// namespace; it needs a `kill` program (default `dockproof/job-runner:1`).
    #[serde(default)]
    pub helper_image: Option<String>,
}

/// Take the compose project down.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComposeDown {
    /// Time each container gets between SIGTERM and SIGKILL (default 10s, compose's own).
    #[serde(default)]
    pub stop_grace: Option<Duration>,
}

/// Assertions on `docker inspect` output: exactly one of `container` and `image`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InspectSpec {
    /// A service, or a run's `container` name.
    #[serde(default)]
    pub container: Option<String>,
    /// An image reference.
    #[serde(default)]
    pub image: Option<String>,
    /// Assertions on the inspect document, e.g. `{ pointer: /HostConfig/ReadonlyRootfs, equals: true }`.
    pub checks: Vec<PointerAssertion>,
}

/// Conditions on a container's logs.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsSpec {
    /// A service name or a detached run's `container` name.
    pub container: String,
    /// Conditions on stdout.
    #[serde(default)]
    pub stdout: Option<TextMatch>,
    /// Conditions on stderr.
    #[serde(default)]
    pub stderr: Option<TextMatch>,
    /// Only lines written after a step began count: `previous_step`, or the `name` of an
    /// earlier step. Default: the container's whole log.
    #[serde(default)]
    pub since: Option<String>,
    /// Read the logs again (about four times a second) until the conditions hold or this
    /// much time has passed, for lines a container writes a moment after the fact.
    /// Default: check once.
    #[serde(default)]
    pub within: Option<Duration>,
}

/// The `since` keyword for "when the step before this one began".
pub const SINCE_PREVIOUS_STEP: &str = "previous_step";

/// Copy a workspace file into the filestore.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadSpec {
    /// Workspace-relative path of the file.
    pub from: String,
    /// Object key in the filestore (templates allowed).
    pub to: String,
}

/// One assertion on a JSON document, addressed by JSON pointer.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PointerAssertion {
    /// JSON pointer, e.g. `/context/docker/exitCode`.
    pub pointer: String,
    /// Whether the value must exist (default true; `false` asserts absence).
    #[serde(default)]
    pub exists: Option<bool>,
    /// The value equals this.
    #[serde(default)]
    pub equals: Option<serde_json::Value>,
    /// The value differs from this.
    #[serde(default)]
    pub not_equals: Option<serde_json::Value>,
    /// Numeric value greater than this.
    #[serde(default)]
    pub gt: Option<f64>,
    /// Numeric value at least this.
    #[serde(default)]
    pub gte: Option<f64>,
    /// Numeric value less than this.
    #[serde(default)]
    pub lt: Option<f64>,
    /// Numeric value at most this.
    #[serde(default)]
    pub lte: Option<f64>,
    /// String value contains this, or array value contains an element equal to this.
    #[serde(default)]
    pub contains: Option<serde_json::Value>,
    /// String value matches this regular expression.
    #[serde(default)]
    pub matches: Option<String>,
    /// Array or string length equals this (at most 4294967295).
    #[serde(default)]
    #[schemars(range(max = 4_294_967_295_u64))]
    pub length: Option<u64>,
}

/// A string, number or boolean, used as text (environment values, command arguments).
#[derive(Debug, Clone, PartialEq)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(text) => Ok(Text(text)),
            serde_json::Value::Number(number) => Ok(Text(number.to_string())),
            serde_json::Value::Bool(flag) => Ok(Text(flag.to_string())),
            _ => Err(serde::de::Error::custom(
                "expected a string, number or boolean",
            )),
        }
    }
}

impl JsonSchema for Text {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Text".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Text; numbers and booleans are taken as their text.",
            "type": ["string", "number", "boolean"]
        })
    }
}

/// A duration written like `30s`, `1m30s`, `500ms`, at most [`Duration::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    /// The longest duration a scenario may give (24h): anything added to a clock
    /// reading or doubled as a backoff stays far from overflowing.
    pub const MAX: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);
}

/// The units a duration may use, longest first where one is a prefix of another.
const DURATION_UNITS: [(&str, u64); 4] = [("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000)];

/// What a word someone might write for a unit means, for the hint.
fn duration_unit_hint(unit: &str) -> Option<&'static str> {
    let lower = unit.to_ascii_lowercase();
    Some(match lower.as_str() {
        "sec" | "secs" | "second" | "seconds" => "s",
        "min" | "mins" | "minute" | "minutes" => "m",
        "hr" | "hrs" | "hour" | "hours" => "h",
        "msec" | "msecs" | "millisecond" | "milliseconds" => "ms",
        _ if unit == "M" => "m",
        _ if unit == "S" => "s",
        _ if unit == "H" => "h",
        _ => return None,
    })
}

/// Why a text is not a duration, and what to write instead when that can be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationProblem {
    pub problem: String,
    pub hint: Option<String>,
}

impl fmt::Display for DurationProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.hint {
            Some(hint) => write!(f, "{}; {hint}", self.problem),
            None => write!(f, "{}", self.problem),
        }
    }
}

fn too_long(text: &str) -> String {
    format!("`{text}` is longer than 24h, the longest duration a scenario may give")
}

/// Parse `1h30m`, `30s`, `500ms`: one or more `<digits><unit>` with unit `ms`, `s`, `m` or
/// `h`, nothing else (no spaces, no other units: humantime's `5M` is five months, and
/// `5 sec` reads as five seconds only by luck).
pub fn parse_strict_duration(text: &str) -> Result<std::time::Duration, DurationProblem> {
    let problem = |problem: String, hint: Option<String>| DurationProblem { problem, hint };
    let example = || Some("write e.g. `30s`, `1m30s` or `500ms`".to_owned());
    if text.is_empty() {
        return Err(problem("`` is not a duration".to_owned(), example()));
    }
    let mut rest = text;
    let mut total_ms: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(problem(
                format!("`{text}` is not a duration: expected a number at `{rest}`"),
                example(),
            ));
        }
        let (number, after) = rest.split_at(digits);
        let unit_len = after.len()
            - after
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let (unit, after) = after.split_at(unit_len);
        let Some((_, scale)) = DURATION_UNITS.iter().find(|(name, _)| *name == unit) else {
            let words = after.trim_start();
            let unit = if unit.is_empty() && words.len() != after.len() {
                // `5 sec`: the unit after a space.
                let word_len = words.len()
                    - words
                        .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                        .len();
                &words[..word_len]
            } else {
                unit
            };
            return Err(if after.starts_with(['.', ',']) {
                problem(
                    format!(
                        "`{text}` is not a duration: durations are whole numbers of a unit (ms, s, m, h)"
                    ),
                    Some("use a smaller unit, e.g. `1500ms` for 1.5 seconds".to_owned()),
                )
            } else if unit.is_empty() {
                problem(
                    format!(
                        "`{text}` is not a duration: `{number}` has no unit (units are ms, s, m and h)"
                    ),
                    Some(format!("write `{number}s` for seconds")),
                )
            } else {
                problem(
                    format!(
                        "`{text}` is not a duration: `{unit}` is not a unit (units are ms, s, m and h)"
                    ),
                    duration_unit_hint(unit).map(|ours| format!("write `{number}{ours}`")),
                )
            });
        };
        let value: u64 = number.parse().map_err(|_| problem(too_long(text), None))?;
        total_ms = value
            .checked_mul(*scale)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| problem(too_long(text), None))?;
        rest = after;
    }
    Ok(std::time::Duration::from_millis(total_ms))
}

impl FromStr for Duration {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let duration = parse_strict_duration(text.trim()).map_err(|problem| problem.to_string())?;
        if duration > Duration::MAX {
            return Err(format!(
                "`{text}` is longer than 24h, the longest duration a scenario may give"
            ));
        }
        Ok(Duration(duration))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // As it is written: `1h30m`, `1m30s`, `500ms`, `0s` (what `parse_strict_duration` reads).
        let mut ms = self.0.as_millis();
        if ms == 0 {
            return write!(f, "0s");
        }
        for (unit, scale) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
            if ms >= scale {
                write!(f, "{}{unit}", ms / scale)?;
                ms %= scale;
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration such as `30s`, `1m30s`, `500ms`.",
            "type": "string",
            "format": "duration"
        })
    }
}

/// A byte size written like `16MiB`, `1GB`, `512` (bytes), at most [`ByteSize::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// The largest size a scenario may give (1 TiB): sums and products of sizes stay
    /// far from overflowing a `u64`.
    pub const MAX: u64 = 1 << 40;

    fn checked(size: u64, text: &str) -> Result<Self, String> {
        if size > ByteSize::MAX {
            return Err(format!(
                "`{text}` is more than 1 TiB, the largest size a scenario may give"
            ));
        }
        Ok(ByteSize(size))
    }
}

/// The units a size may have, exactly as written (case matters: `m` is not `M`, and
/// `M` alone is not a unit — "5M" is refused rather than guessed).
const SIZE_UNITS: [(&str, u64); 9] = [
    ("B", 1),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
];

impl FromStr for ByteSize {
    type Err = String;
    /// A whole number of bytes, or a whole number and a unit with nothing between them:
    /// `512`, `16MiB`, `1GB`. Anything else is refused with a suggestion when one is
    /// close (`16mb` → `16MB`, `5M` → `5MiB`, `16 MiB` → `16MiB`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let digits = text.len() - text.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let (number, unit) = text.split_at(digits);
        let refused = |why: &str| {
            let suggestion = suggest_size(number, unit)
                .map(|fixed| format!("; did you mean `{fixed}`?"))
                .unwrap_or_default();
            format!("`{text}` is not a size ({why}){suggestion}")
        };
        if number.is_empty() {
            return Err(refused("it must start with a whole number"));
        }
        let value: u64 = number
            .parse()
            .map_err(|_| refused("the number is too large"))?;
        let multiplier = if unit.is_empty() {
            1
        } else {
            SIZE_UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|(_, multiplier)| *multiplier)
                .ok_or_else(|| refused("units are B, KB, MB, GB, TB, KiB, MiB, GiB, TiB"))?
        };
        let size = value.checked_mul(multiplier).ok_or_else(|| {
            format!("`{text}` is more than 1 TiB, the largest size a scenario may give")
        })?;
        ByteSize::checked(size, text)
    }
}

/// A valid spelling close to `number` + `unit`, if there is one.
fn suggest_size(number: &str, unit: &str) -> Option<String> {
    let number = number.trim();
    if number.is_empty() || number.contains('.') {
        return None;
    }
    let unit = unit.trim();
    let fixed = match unit.to_ascii_lowercase().as_str() {
        "" => return Some(number.to_owned()),
        "b" | "byte" | "bytes" => "B",
        "k" | "ki" | "kib" => "KiB",
        "kb" => "KB",
        "m" | "mi" | "mib" => "MiB",
        "mb" => "MB",
        "g" | "gi" | "gib" => "GiB",
        "gb" => "GB",
        "t" | "ti" | "tib" => "TiB",
        "tb" => "TB",
        _ => return None,
    };
    Some(format!("{number}{fixed}"))
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::Number(number) => number
                .as_u64()
                .ok_or_else(|| serde::de::Error::custom("a size must be a whole number of bytes"))
                .and_then(|size| {
                    ByteSize::checked(size, &size.to_string()).map_err(serde::de::Error::custom)
                }),
            serde_json::Value::String(text) => text.parse().map_err(serde::de::Error::custom),
            _ => Err(serde::de::Error::custom("expected a size such as `16MiB`")),
        }
    }
}

impl JsonSchema for ByteSize {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ByteSize".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A size in bytes: a whole number, or a whole number and a unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB) with nothing between them, such as `16MiB`, `1GB`, `512KiB`.",
            "type": ["integer", "string"],
            "minimum": 0,
            "maximum": ByteSize::MAX,
            "format": "byte-size"
        })
    }
}

/// A `ports:` entry: `CONTAINER`, `HOST:CONTAINER`, `IP:HOST:CONTAINER` or
/// `IP::CONTAINER` (an optional `/tcp` suffix is allowed). Host port 0 means any.
pub fn parse_port(text: &str) -> Result<(Option<String>, u16, u16), String> {
    let text = text.trim().strip_suffix("/tcp").unwrap_or(text.trim());
    let number = |part: &str, what: &str| -> Result<u16, String> {
        if part.is_empty() {
            return Ok(0);
        }
        part.parse::<u16>()
            .map_err(|_| format!("`{part}` is not a {what} port number"))
    };
    let parts: Vec<&str> = text.split(':').collect();
    let (ip, host, container) = match parts.as_slice() {
        [container] => (None, 0, number(container, "container")?),
        [host, container] => (None, number(host, "host")?, number(container, "container")?),
        [ip, host, container] => (
            Some((*ip).to_owned()),
            number(host, "host")?,
            number(container, "container")?,
        ),
        _ => return Err(format!("`{text}` is not a port mapping")),
    };
    if container == 0 {
        return Err(format!("`{text}` needs a container port"));
    }
    Ok((ip, host, container))
}

/// Whether `text` is a valid duration (used by the schema's `duration` format).
pub fn is_duration(text: &str) -> bool {
    text.parse::<Duration>().is_ok()
}

/// Whether `text` is a valid byte size (used by the schema's `byte-size` format).
pub fn is_byte_size(text: &str) -> bool {
    text.parse::<ByteSize>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_strict_and_suggest_the_spelling_meant() {
        assert_eq!("512".parse::<ByteSize>().unwrap().0, 512);
        assert_eq!("16MiB".parse::<ByteSize>().unwrap().0, 16 << 20);
        assert_eq!("1GB".parse::<ByteSize>().unwrap().0, 1_000_000_000);
        for (text, suggestion) in [
            ("5M", Some("5MiB")),
            ("16mb", Some("16MB")),
            ("16 MiB", Some("16MiB")),
            ("2gib", Some("2GiB")),
            ("1.5GiB", None),
            ("MiB", None),
            ("16 parsecs", None),
        ] {
            let error = text.parse::<ByteSize>().unwrap_err();
            match suggestion {
                Some(fixed) => assert!(
                    error.ends_with(&format!("did you mean `{fixed}`?")),
                    "{text}: {error}"
                ),
                None => assert!(!error.contains("did you mean"), "{text}: {error}"),
            }
        }
        assert!(
            "2TiB"
                .parse::<ByteSize>()
                .unwrap_err()
                .contains("more than 1 TiB")
        );
        assert!("99999999999999999999TB".parse::<ByteSize>().is_err());
    }

    #[test]
    fn durations_parse_common_forms() {
        assert_eq!("30s".parse::<Duration>().unwrap().0.as_secs(), 30);
        assert_eq!("1m30s".parse::<Duration>().unwrap().0.as_secs(), 90);
        assert_eq!("500ms".parse::<Duration>().unwrap().0.as_millis(), 500);
        assert!("30".parse::<Duration>().is_err());
        assert!("soon".parse::<Duration>().is_err());
    }

    /// Only `<digits><unit>` runs with ms, s, m, h: `5M` (humantime: five months), `5 sec`,
    /// `5 mins` and `1.5s` are refused with a hint at the right spelling (issue 18, item 6).
    #[test]
    fn durations_are_strict() {
        assert_eq!("1h30m".parse::<Duration>().unwrap().0.as_secs(), 5400);
        assert_eq!(
            "2m500ms".parse::<Duration>().unwrap().0.as_millis(),
            120_500
        );
        assert_eq!(" 10s ".parse::<Duration>().unwrap().0.as_secs(), 10);
        let refused = |text: &str| text.parse::<Duration>().unwrap_err();
        let months = refused("5M");
        assert!(
            months.contains("`M` is not a unit") && months.contains("`5m`"),
            "{months}"
        );
        let sec = refused("5 sec");
        assert!(
            sec.contains("`sec` is not a unit") && sec.contains("`5s`"),
            "{sec}"
        );
        let mins = refused("5mins");
        assert!(mins.contains("`mins`") && mins.contains("`5m`"), "{mins}");
        let bare = refused("30");
        assert!(bare.contains("no unit") && bare.contains("`30s`"), "{bare}");
        assert!(refused("1.5s").contains("whole numbers"));
        assert!(refused("s").contains("expected a number"));
        assert!(refused("1d").contains("`d` is not a unit"));
        assert!(refused("25h").contains("longer than 24h"));
        assert!(refused("99999999999999999999h").contains("longer than 24h"));
        assert!(refused("").contains("not a duration"));
    }

    /// What a duration displays as parses back to itself.
    #[test]
    fn durations_display_as_they_are_written() {
        for text in ["0s", "500ms", "30s", "1m30s", "1h", "2h3m4s5ms", "24h"] {
            let duration: Duration = text.parse().unwrap();
            assert_eq!(duration.to_string(), text);
            assert_eq!(duration.to_string().parse::<Duration>().unwrap(), duration);
        }
    }

    #[test]
    fn port_mappings_parse() {
        assert_eq!(parse_port("8080"), Ok((None, 0, 8080)));
        assert_eq!(parse_port("0:8080"), Ok((None, 0, 8080)));
        assert_eq!(parse_port("18080:8080/tcp"), Ok((None, 18080, 8080)));
        assert_eq!(
            parse_port("127.0.0.1::8080"),
            Ok((Some("127.0.0.1".into()), 0, 8080))
        );
        assert!(parse_port("web").is_err());
        assert!(parse_port("80:").is_err());
    }

    #[test]
    fn sizes_parse_binary_and_decimal_units() {
        assert_eq!("16MiB".parse::<ByteSize>().unwrap().0, 16 * 1024 * 1024);
        assert_eq!("1KB".parse::<ByteSize>().unwrap().0, 1000);
        assert_eq!("512".parse::<ByteSize>().unwrap().0, 512);
        assert!("lots".parse::<ByteSize>().is_err());
        assert!("12qq".parse::<ByteSize>().is_err());
    }
}
