//! The runner schedules scenarios concurrently (`-j N`), forwards engine
//! events, and makes sure nothing labelled with the run's id outlives the run,
//! even when a scenario panics or the run is interrupted.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::category::Category;
use crate::engine::{self, EngineContext};
use crate::events::{Event, Failure, Outcome, ScenarioReport};
use crate::record::JobRecord;
use crate::scenario::LoadedScenario;

/// What a whole run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// One report per scenario, in the order the scenarios were given.
    pub reports: Vec<ScenarioReport>,
    /// Whether a signal cut the run short.
    pub interrupted: bool,
    /// Containers the final sweep had to remove (0 when every scenario cleaned up after itself).
    pub swept: usize,
}

impl RunOutcome {
    /// Count of scenarios per outcome: (passed, failed, other).
    pub fn counts(&self) -> (usize, usize, usize) {
        let passed = self.reports.iter().filter(|report| report.outcome == Outcome::Passed).count();
        let failed = self.reports.iter().filter(|report| report.outcome == Outcome::Failed).count();
        (passed, failed, self.reports.len() - passed - failed)
    }

    /// Whether every scenario passed and the run completed.
    pub fn success(&self) -> bool {
        !self.interrupted && self.reports.iter().all(|report| report.outcome == Outcome::Passed)
    }
}

fn placeholder(scenario: &LoadedScenario, outcome: Outcome, failure: Option<Failure>) -> ScenarioReport {
    ScenarioReport {
        name: scenario.scenario.name.clone(),
        file: scenario.path.clone(),
        tags: scenario.scenario.tags.clone(),
        outcome,
        failure,
        steps: Vec::new(),
        record: JobRecord::pending(),
        stdout_tail: Vec::new(),
        stderr_tail: Vec::new(),
        duration: Duration::ZERO,
    }
}

/// Run `scenarios` with at most `jobs` at a time. Stops early (and marks
/// unfinished scenarios interrupted) when `cancel` resolves.
pub async fn run_all(
    context: Arc<EngineContext>,
    scenarios: Vec<LoadedScenario>,
    jobs: usize,
    cancel: impl std::future::Future<Output = ()>,
) -> RunOutcome {
    let _ = context.events.send(Event::RunStarted {
        run_id: context.run_id.clone(),
        backend: context.backend.name().to_owned(),
        scenarios: scenarios.len(),
    });
    let scenarios = Arc::new(scenarios);
    let permits = Arc::new(Semaphore::new(jobs.max(1)));
    let mut tasks = JoinSet::new();
    let mut task_index = std::collections::HashMap::new();
    for index in 0..scenarios.len() {
        let (context, scenarios, permits) = (Arc::clone(&context), Arc::clone(&scenarios), Arc::clone(&permits));
        let handle = tasks.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("the semaphore is never closed");
            (index, engine::run_scenario(&context, &scenarios[index]).await)
        });
        task_index.insert(handle.id(), index);
    }
    let mut reports: Vec<Option<ScenarioReport>> = (0..scenarios.len()).map(|_| None).collect();
    let mut panics: std::collections::HashMap<usize, String> = std::collections::HashMap::new();
    let mut interrupted = false;
    tokio::pin!(cancel);
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                None => break,
                Some(Ok((index, report))) => {
                    let _ = context.events.send(Event::ScenarioFinished(Box::new(report.clone())));
                    reports[index] = Some(report);
                }
                Some(Err(error)) if error.is_panic() => {
                    // The scenario's task died; its containers are caught by the sweep below.
                    let index = task_index.get(&error.id()).copied();
                    let payload = error.into_panic();
                    let message = payload
                        .downcast_ref::<&str>()
                        .map(|text| (*text).to_owned())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    if let Some(index) = index {
                        panics.insert(index, message);
                    }
                }
                Some(Err(_)) => {}
            },
            () = &mut cancel, if !interrupted => {
                interrupted = true;
                tasks.abort_all();
            }
        }
    }
    let reports: Vec<ScenarioReport> = reports
        .into_iter()
        .enumerate()
        .map(|(index, report)| {
            report.unwrap_or_else(|| {
                let scenario = &scenarios[index];
                let report = match panics.remove(&index) {
                    Some(panic) => {
                        let message = format!("dockproof panicked while running this scenario ({panic}); a bug in dockproof: please report it");
                        placeholder(scenario, Outcome::Failed, Some(Failure::new(Category::CleanupFailed, message)))
                    }
                    // Interrupted is not a failure of the job: no category applies.
                    None => placeholder(scenario, Outcome::Interrupted, None),
                };
                let _ = context.events.send(Event::ScenarioFinished(Box::new(report.clone())));
                report
            })
        })
        .collect();
    let swept = sweep(&context).await;
    let _ = context.events.send(Event::RunFinished { interrupted });
    RunOutcome { reports, interrupted, swept }
}

/// Remove anything still labelled with this run's id.
async fn sweep(context: &EngineContext) -> usize {
    let label = format!("dockproof.run={}", context.run_id);
    let Ok(leftovers) = context.backend.list_labelled(&label).await else { return 0 };
    for id in &leftovers {
        let _ = context.backend.remove(id).await;
    }
    leftovers.len()
}
