//! The runner schedules scenarios concurrently (`-j N`), forwards engine
//! events, and makes sure nothing labelled with the run's id outlives the run,
//! even when a scenario panics or the run is interrupted.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::backend::ledger::{Ledger, Scope};
use crate::backend::sweep::{self, SweepPlan, Swept};
use crate::category::Category;
use crate::engine::{self, EngineContext};
use crate::events::{Event, Failure, Outcome, ScenarioReport};
use crate::record::JobRecord;
use crate::scenario::LoadedScenario;

/// What a whole run produced.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// One report per scenario, in the order the scenarios were given.
    pub reports: Vec<ScenarioReport>,
    /// Whether a signal cut the run short.
    pub interrupted: bool,
    /// Containers the final sweep had to remove (0 when every scenario cleaned up after itself).
    pub swept: usize,
    /// Networks, volumes and images the final sweep had to remove (`network NAME`, …; none
    /// when every scenario cleaned up after itself).
    pub swept_resources: Vec<String>,
    /// The scenarios those containers were left by (one entry per container; a scenario
    /// that expected `cleanup_failed` is not listed), for the warning that names them.
    pub left_behind: Vec<String>,
}

impl RunOutcome {
    /// Count of scenarios per outcome: (passed, failed, other).
    pub fn counts(&self) -> (usize, usize, usize) {
        let passed = self
            .reports
            .iter()
            .filter(|report| report.outcome == Outcome::Passed)
            .count();
        let failed = self
            .reports
            .iter()
            .filter(|report| report.outcome == Outcome::Failed)
            .count();
        (passed, failed, self.reports.len() - passed - failed)
    }

    /// Whether every scenario passed (or was skipped, as a backend that cannot run it
    /// says) and the run completed.
    pub fn success(&self) -> bool {
        !self.interrupted
            && self
                .reports
                .iter()
                .all(|report| matches!(report.outcome, Outcome::Passed | Outcome::Skipped))
    }
}

fn placeholder(
    scenario: &LoadedScenario,
    outcome: Outcome,
    failure: Option<Failure>,
) -> ScenarioReport {
    ScenarioReport {
        name: scenario.scenario.name.clone(),
        file: scenario.path.clone(),
        tags: scenario.scenario.tags.clone(),
        outcome,
        failure,
        skip_reason: None,
        earlier_attempts: Vec::new(),
        steps: Vec::new(),
        record: JobRecord::pending(),
        stdout_tail: Vec::new(),
        stderr_tail: Vec::new(),
        duration: Duration::ZERO,
    }
}

/// Run `scenarios` with at most `jobs` at a time, running a failed scenario
/// again up to `retries` times. Stops early (and marks unfinished scenarios
/// interrupted) when `cancel` resolves.
pub async fn run_all(
    context: Arc<EngineContext>,
    scenarios: Vec<LoadedScenario>,
    jobs: usize,
    retries: u32,
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
        let (context, scenarios, permits) = (
            Arc::clone(&context),
            Arc::clone(&scenarios),
            Arc::clone(&permits),
        );
        let handle = tasks.spawn(async move {
            let _permit = permits
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            if context.cancel.is_cancelled() {
                // Cancelled before it started: nothing to clean up.
                let report = placeholder(&scenarios[index], Outcome::Interrupted, None);
                return (index, report);
            }
            let mut earlier = Vec::new();
            loop {
                let mut report = engine::run_scenario(&context, &scenarios[index]).await;
                let failed = report.outcome == Outcome::Failed;
                if failed && earlier.len() < retries as usize && !context.cancel.is_cancelled() {
                    earlier.extend(report.failure.take());
                    continue;
                }
                report.earlier_attempts = earlier;
                break (index, report);
            }
        });
        task_index.insert(handle.id(), index);
    }
    let mut reports: Vec<Option<ScenarioReport>> = (0..scenarios.len()).map(|_| None).collect();
    let mut panics: std::collections::HashMap<usize, String> = std::collections::HashMap::new();
    let mut interrupted = false;
    tokio::pin!(cancel);
    // Once cancelled, the scenarios get this long to stop and clean up after themselves
    // before their tasks are aborted (and the sweep below removes what they left).
    let grace = tokio::time::sleep(Duration::from_secs(365 * 24 * 3600));
    tokio::pin!(grace);
    let mut aborted = false;
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
                // Every scenario stops its steps and runs its own cleanup.
                context.cancel.cancel();
                grace
                    .as_mut()
                    .reset(tokio::time::Instant::now() + crate::cancel::CLEANUP_LIMIT + Duration::from_secs(5));
            }
            () = &mut grace, if interrupted && !aborted => {
                aborted = true;
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
                        placeholder(scenario, Outcome::Failed, Some(Failure::new(Category::InternalError, message)))
                    }
                    // Interrupted is not a failure of the job: no category applies.
                    None => placeholder(scenario, Outcome::Interrupted, None),
                };
                let _ = context.events.send(Event::ScenarioFinished(Box::new(report.clone())));
                report
            })
        })
        .collect();
    let (swept, slugs) = final_sweep(&context).await;
    let _ = context.events.send(Event::RunFinished { interrupted });
    let left_behind = left_behind_by(&reports, &slugs);
    RunOutcome {
        reports,
        interrupted,
        swept: swept.containers.len(),
        swept_resources: swept.resource_names(),
        left_behind,
    }
}

/// The scenario of each swept container (by its `dockproof.scenario` label, a slug of the
/// name), leaving out scenarios that expected `cleanup_failed` (their leftovers are the
/// point of the scenario). A label no report matches is shown as it is.
fn left_behind_by(reports: &[ScenarioReport], slugs: &[Option<String>]) -> Vec<String> {
    let expected = |report: &ScenarioReport| {
        report
            .failure
            .as_ref()
            .is_some_and(|failure| failure.category == Category::CleanupFailed)
            && report.outcome == Outcome::Passed
    };
    slugs
        .iter()
        .filter_map(|slug| {
            let Some(slug) = slug else {
                return Some("(unlabelled)".to_owned());
            };
            match reports
                .iter()
                .find(|report| crate::engine::slug(&report.name) == *slug)
            {
                Some(report) if expected(report) => None,
                Some(report) => Some(report.name.clone()),
                None => Some(slug.clone()),
            }
        })
        .collect()
}

/// Remove anything still labelled with this run's id: containers, then the networks and
/// volumes of compose projects (a run interrupted while a project was up), then the images
/// built for the run (an interrupted build step, a compose `build:`). Returns what it found,
/// with the scenario of each container (its `dockproof.scenario` label).
///
/// What `--keep-failed` kept is left alone: its containers (labelled kept, of a kept
/// scenario), and, while anything is kept, the run's networks, volumes and images (a kept
/// compose project's among them); `dockproof clean --run ID` removes them.
async fn final_sweep(context: &EngineContext) -> (Swept, Vec<Option<String>>) {
    let label = format!("dockproof.run={}", context.run_id);
    let backend = context.backend.as_ref();
    let kept: Vec<String> = context
        .keep_failed
        .as_ref()
        .and_then(|kept| {
            kept.lock()
                .ok()
                .map(|kept| kept.iter().map(|entry| entry.slug.clone()).collect())
        })
        .unwrap_or_default();
    let plan = SweepPlan {
        resources: kept.is_empty(),
        ..SweepPlan::default()
    };
    // Only what can be there is listed: what the backend asked its daemon to make and has
    // not seen removed (a run that removed every container it made, and made nothing
    // else, lists nothing).
    let scope = backend
        .ledger()
        .map_or_else(Scope::everything, Ledger::scope);
    let kinds = if plan.resources {
        scope.kinds
    } else {
        Vec::new()
    };
    // Networks, volumes and images are listed along with the containers: on the CLI
    // backends each list is a process, and these are the run's last calls.
    let (listed, lists) = tokio::join!(
        async {
            if scope.containers {
                sweep::labelled_containers(backend, &label).await
            } else {
                Ok(Vec::new())
            }
        },
        sweep::list_kinds(backend, &label, &kinds)
    );
    let listed = listed.unwrap_or_default();
    // Whose they were, asked before they go (only when there are any: the common case
    // costs one list call).
    let mut slugs = Vec::new();
    let mut containers = Vec::new();
    for id in listed {
        let inspect = backend.inspect_json(&id).await.ok();
        let label = |name: &str| {
            inspect
                .as_ref()
                .and_then(|inspect| inspect.pointer("/Config/Labels"))
                .and_then(|labels| labels.get(name))
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        let slug = label("dockproof.scenario");
        if label(crate::engine::KEEP_LABEL).is_some()
            && slug.as_ref().is_some_and(|slug| kept.contains(slug))
        {
            continue;
        }
        slugs.push(slug);
        containers.push(id);
    }
    // Failures are ignored: what stays is for `dockproof clean`.
    (
        sweep::sweep_listed(backend, containers, async { lists }, plan).await,
        slugs,
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use async_trait::async_trait;

    use super::*;
    use crate::backend::{
        Backend, BackendError, CaptureLimits, Captured, ContainerSpec, ContainerState, ExecOutput,
        ExecRequest, LogFiles, Logs,
    };
    use crate::filestore::Filestore;
    use crate::fixtures::FixtureImages;

    /// A backend whose containers exit with the next code of a script ([`HANG`]: the
    /// container never exits; [`PANIC`]: waiting for it panics). Its labelled containers
    /// are those created and not removed yet.
    struct Scripted {
        exit_codes: Mutex<Vec<i64>>,
        created: Mutex<Vec<String>>,
        removed: Mutex<Vec<String>>,
        /// Each created container's labels, for `inspect_json`.
        labels: Mutex<std::collections::HashMap<String, serde_json::Value>>,
    }

    const HANG: i64 = -1000;
    const PANIC: i64 = -2000;
    /// The container is created and `create` never returns (the daemon did it; the call
    /// was cut short before the ID came back).
    const CREATE_HANGS: i64 = -3000;

    #[async_trait]
    impl Backend for Scripted {
        fn name(&self) -> &str {
            "scripted"
        }
        async fn ping(&self) -> Result<String, BackendError> {
            Ok("1".into())
        }
        async fn image_exists(&self, _: &str) -> Result<bool, BackendError> {
            Ok(true)
        }
        async fn build_image(&self, _: &std::path::Path, _: &str) -> Result<(), BackendError> {
            Ok(())
        }
        async fn create(&self, spec: &ContainerSpec) -> Result<String, BackendError> {
            self.created.lock().unwrap().push(spec.name.clone());
            self.labels
                .lock()
                .unwrap()
                .insert(spec.name.clone(), serde_json::json!(spec.labels));
            if self.exit_codes.lock().unwrap().first() == Some(&CREATE_HANGS) {
                return std::future::pending().await;
            }
            Ok(spec.name.clone())
        }
        async fn inspect_json(&self, id: &str) -> Result<serde_json::Value, BackendError> {
            let labels = self.labels.lock().unwrap().get(id).cloned();
            Ok(serde_json::json!({ "Config": { "Labels": labels } }))
        }
        async fn start(&self, _: &str) -> Result<(), BackendError> {
            Ok(())
        }
        async fn wait(&self, _: &str) -> Result<i64, BackendError> {
            let code = self.exit_codes.lock().unwrap().remove(0);
            match code {
                HANG => std::future::pending().await,
                PANIC => panic!("scripted panic while waiting"),
                code => Ok(code),
            }
        }
        async fn stop(&self, _: &str, _: Duration) -> Result<(), BackendError> {
            Ok(())
        }
        async fn kill(&self, _: &str) -> Result<(), BackendError> {
            Ok(())
        }
        async fn logs(
            &self,
            _: &str,
            _: CaptureLimits,
            _: Option<&LogFiles>,
        ) -> Result<Logs, BackendError> {
            Ok(Logs {
                stdout: Captured::default(),
                stderr: Captured::default(),
            })
        }
        async fn inspect(&self, _: &str) -> Result<ContainerState, BackendError> {
            Ok(ContainerState::default())
        }
        async fn exec(
            &self,
            _: &ExecRequest,
            _: Duration,
            _: CaptureLimits,
        ) -> Result<ExecOutput, BackendError> {
            unreachable!("no exec in these scenarios")
        }
        async fn remove(&self, id: &str) -> Result<(), BackendError> {
            self.removed.lock().unwrap().push(id.to_owned());
            Ok(())
        }
        async fn list_labelled(&self, _: &str) -> Result<Vec<String>, BackendError> {
            let removed = self.removed.lock().unwrap().clone();
            Ok(self
                .created
                .lock()
                .unwrap()
                .iter()
                .filter(|id| !removed.contains(id))
                .cloned()
                .collect())
        }
    }

    async fn run(exit_codes: Vec<i64>, retries: u32) -> (RunOutcome, usize) {
        let (outcome, backend) = run_until(exit_codes, retries, std::future::pending()).await;
        let created = backend.created.lock().unwrap().len();
        (outcome, created)
    }

    /// Run one scenario of one `run` step until it ends or `cancel` resolves.
    async fn run_until(
        exit_codes: Vec<i64>,
        retries: u32,
        cancel: impl std::future::Future<Output = ()>,
    ) -> (RunOutcome, Arc<Scripted>) {
        let dir = tempfile::tempdir().unwrap();
        let backend = Arc::new(Scripted {
            exit_codes: Mutex::new(exit_codes),
            created: Mutex::new(Vec::new()),
            removed: Mutex::new(Vec::new()),
            labels: Mutex::default(),
        });
        let (events, _receiver) = tokio::sync::mpsc::unbounded_channel();
        let context = Arc::new(EngineContext {
            backend: backend.clone(),
            filestore: Filestore::local(&dir.path().join("store")).unwrap(),
            fixtures: Arc::new(FixtureImages::none()),
            run_id: "t1".into(),
            names_id: "t1".into(),
            work_dir: dir.path().join("work"),
            capture: CaptureLimits::default(),
            logs_dir: None,
            events,
            recordings: Default::default(),
            cancel: crate::cancel::Cancel::new(),
            // The retry count is what is tested: no transport probe among the creates.
            transport: Arc::new(crate::transport::TransportPolicy::new(
                crate::transport::TransportChoice::Bind,
            )),
            keep_failed: None,
        });
        let (scenario, diagnostics) = crate::scenario::load::load_str(
            "name: once\nsteps:\n  - run: { image: x }\n",
            dir.path(),
        );
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let (scenario, spans) = scenario.unwrap();
        let loaded = LoadedScenario {
            scenario,
            path: "once.yaml".into(),
            base_dir: dir.path().into(),
            spans,
            vars: Default::default(),
            included: Vec::new(),
        };
        let outcome = run_all(context, vec![loaded], 1, retries, cancel).await;
        (outcome, backend)
    }

    #[tokio::test]
    async fn a_cancelled_scenario_stops_its_step_and_cleans_up_before_the_sweep() {
        let cancel = tokio::time::sleep(Duration::from_millis(300));
        let (outcome, backend) =
            tokio::time::timeout(Duration::from_secs(30), run_until(vec![HANG], 0, cancel))
                .await
                .expect("a cancelled run ends without waiting for its hanging container");
        assert!(outcome.interrupted);
        let report = &outcome.reports[0];
        assert_eq!(report.outcome, Outcome::Interrupted, "{report:?}");
        assert!(report.failure.is_none(), "{report:?}");
        assert_eq!(
            report.steps.last().map(|step| step.outcome),
            Some(Outcome::Interrupted)
        );
        // The scenario's own cleanup removed its container: the final sweep found nothing.
        let created = backend.created.lock().unwrap().clone();
        assert_eq!(created.len(), 1);
        assert_eq!(*backend.removed.lock().unwrap(), created);
        assert_eq!((outcome.swept, outcome.swept_resources.len()), (0, 0));
        assert!(outcome.left_behind.is_empty());
    }

    /// A container the daemon created at the instant of the cancel, whose ID the engine
    /// never got, is removed by the scenario's cleanup (found by label), not by the sweep.
    #[tokio::test]
    async fn a_container_created_as_the_run_is_cancelled_is_removed_before_the_sweep() {
        let cancel = tokio::time::sleep(Duration::from_millis(300));
        let (outcome, backend) = tokio::time::timeout(
            Duration::from_secs(30),
            run_until(vec![CREATE_HANGS], 0, cancel),
        )
        .await
        .expect("a cancelled run ends");
        assert!(outcome.interrupted);
        let created = backend.created.lock().unwrap().clone();
        assert_eq!(created.len(), 1);
        assert_eq!(*backend.removed.lock().unwrap(), created);
        assert_eq!((outcome.swept, outcome.swept_resources.len()), (0, 0));
        assert!(outcome.left_behind.is_empty());
    }

    #[tokio::test]
    async fn a_panic_in_a_scenario_is_an_internal_error_and_the_sweep_catches_its_leftovers() {
        let (outcome, _) = run_until(vec![PANIC], 0, std::future::pending()).await;
        let report = &outcome.reports[0];
        assert_eq!(report.outcome, Outcome::Failed);
        let failure = report.failure.as_ref().expect("a panic is a failure");
        assert_eq!(failure.category, Category::InternalError);
        assert!(failure.message.contains("scripted panic"), "{failure:?}");
        // Its cleanup never ran: the backstop found the container.
        assert_eq!(outcome.swept, 1);
    }

    #[tokio::test]
    async fn a_pass_after_a_failure_is_flaky_not_green() {
        let (outcome, runs) = run(vec![3, 0], 2).await;
        assert_eq!(runs, 2);
        let report = &outcome.reports[0];
        assert_eq!(report.outcome, Outcome::Passed);
        assert!(report.flaky());
        assert_eq!(report.earlier_attempts[0].category, Category::NonzeroExit);
        let junit = crate::report::junit::render(
            &outcome,
            &crate::report::ReportOptions {
                run_id: "t1".into(),
                backend: "scripted".into(),
                deterministic: true,
            },
        );
        let xml = junit.to_string().unwrap();
        assert!(
            xml.contains("<flakyFailure") && xml.contains("type=\"nonzero_exit\""),
            "{xml}"
        );
    }

    #[tokio::test]
    async fn retries_stop_at_the_limit_and_keep_every_failure() {
        let (outcome, runs) = run(vec![1, 2, 3], 2).await;
        assert_eq!(runs, 3);
        let report = &outcome.reports[0];
        assert_eq!(report.outcome, Outcome::Failed);
        assert_eq!(report.earlier_attempts.len(), 2);
        let junit = crate::report::junit::render(
            &outcome,
            &crate::report::ReportOptions {
                run_id: "t1".into(),
                backend: "scripted".into(),
                deterministic: true,
            },
        );
        let xml = junit.to_string().unwrap();
        assert_eq!(xml.matches("<rerunFailure").count(), 2, "{xml}");
        assert!(!outcome.success());
    }

    #[tokio::test]
    async fn without_retries_a_failure_runs_once() {
        let (outcome, runs) = run(vec![1], 0).await;
        assert_eq!((runs, outcome.reports[0].outcome), (1, Outcome::Failed));
    }
}
