//! What the runner tells reporters. The runner emits events; reporters
//! (console, JUnit, JSON) consume them and never decide pass or fail.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::category::{Category, Severity};
use crate::record::JobRecord;
use crate::secrets::Masker;

/// The verdict of a step or scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Passed,
    Failed,
    /// Not run because an earlier step failed.
    Skipped,
    /// Cut short by a signal (Ctrl-C).
    Interrupted,
}

/// Why something failed, with what a person needs to act on it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    pub category: Category,
    pub severity: Severity,
    pub recoverable: bool,
    pub message: String,
    pub hint: String,
    /// `file:line:column` of the scenario line the failure is about.
    pub location: Option<Location>,
    /// The other expectations the same step found failed, each with its own category,
    /// message and line (this one is the first): every report shows each of them as a
    /// finding of its own.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub further: Vec<Failure>,
}

impl Failure {
    /// A failure of `category` with the category's own hint.
    pub fn new(category: Category, message: impl Into<String>) -> Self {
        Failure {
            category,
            severity: category.severity(),
            recoverable: category.recoverable(),
            message: message.into(),
            hint: category.hint().to_owned(),
            location: None,
            further: Vec::new(),
        }
    }

    /// This failure and the further ones of its step: one finding each.
    pub fn findings(&self) -> impl Iterator<Item = &Failure> {
        std::iter::once(self).chain(self.further.iter())
    }
}

/// A position in a scenario file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// What one step did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepReport {
    pub index: usize,
    pub name: String,
    pub kind: &'static str,
    pub outcome: Outcome,
    /// The failure the step was expected to produce, if any.
    pub expected_failure: Option<Category>,
    /// The failure the step produced (also when it was expected).
    pub failure: Option<Failure>,
    #[serde(skip)]
    pub duration: Duration,
}

/// What one scenario did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioReport {
    pub name: String,
    pub file: PathBuf,
    pub tags: Vec<String>,
    pub outcome: Outcome,
    /// The failure that decided the verdict.
    pub failure: Option<Failure>,
    /// Why the scenario was not run (outcome `skipped`), e.g. it needs the fake backend.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<String>,
    /// Failures of earlier attempts (`--retries`); a pass after a failure is flaky.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub earlier_attempts: Vec<Failure>,
    pub steps: Vec<StepReport>,
    pub record: JobRecord,
    /// Log tail of the latest container, for people reading reports.
    pub stdout_tail: Vec<String>,
    pub stderr_tail: Vec<String>,
    #[serde(skip)]
    pub duration: Duration,
}

impl Failure {
    /// Hide secret values in the message and hint.
    pub fn mask(&mut self, masker: &Masker) {
        masker.mask_in_place(&mut self.message);
        masker.mask_in_place(&mut self.hint);
        for further in &mut self.further {
            further.mask(masker);
        }
    }
}

impl StepReport {
    /// Hide secret values in what the step reports.
    pub fn mask(&mut self, masker: &Masker) {
        masker.mask_in_place(&mut self.name);
        if let Some(failure) = &mut self.failure {
            failure.mask(masker);
        }
    }
}

impl ScenarioReport {
    /// Hide secret values everywhere the report carries text: its name, tags and
    /// skip reason, failures, steps, log tails (masked as a whole, so a multi-line
    /// value is caught) and the whole job record (see [`JobRecord::mask`]).
    pub fn mask(&mut self, masker: &Masker) {
        if masker.is_empty() {
            return;
        }
        masker.mask_in_place(&mut self.name);
        self.tags
            .iter_mut()
            .for_each(|tag| masker.mask_in_place(tag));
        if let Some(reason) = &mut self.skip_reason {
            masker.mask_in_place(reason);
        }
        self.failure
            .iter_mut()
            .chain(&mut self.earlier_attempts)
            .for_each(|failure| failure.mask(masker));
        self.steps.iter_mut().for_each(|step| step.mask(masker));
        crate::record::mask_lines(&mut self.stdout_tail, masker);
        crate::record::mask_lines(&mut self.stderr_tail, masker);
        self.record.mask(masker);
    }

    /// Passed, but only after failing first: never report this as plain green.
    pub fn flaky(&self) -> bool {
        self.outcome == Outcome::Passed && !self.earlier_attempts.is_empty()
    }
}

/// Something that happened during a run.
#[derive(Debug, Clone)]
pub enum Event {
    RunStarted {
        run_id: String,
        backend: String,
        scenarios: usize,
    },
    ScenarioStarted {
        name: String,
    },
    StepFinished {
        scenario: String,
        step: StepReport,
    },
    ScenarioFinished(Box<ScenarioReport>),
    RunFinished {
        interrupted: bool,
    },
}
