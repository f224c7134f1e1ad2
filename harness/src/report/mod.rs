//! Reporters render what the runner found. They consume events and reports;
//! they never decide pass or fail.

pub mod console;
pub mod github;
pub mod html;
pub mod json;
pub mod junit;
pub mod markdown;

/// What every reporter needs to know about the run.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    pub run_id: String,
    pub backend: String,
    /// Leave out timings and timestamps so the same inputs give byte-identical files.
    pub deterministic: bool,
}
