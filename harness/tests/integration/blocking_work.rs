//! Unbounded file work never holds an async worker (issue 19 item 5): on a runtime with
//! one worker, a scenario staging a 1 GiB input, or reading a 1 GiB log that is masked
//! into the run's log files, does not stop another scenario of the run. Checked by the
//! order of the run's events, never by a clock: the other scenario finishes before the
//! gigabyte's step does; then the run is cancelled, so neither gigabyte is waited for.
//!
//! With the work on the worker (as it was), the worker runs nothing else until the
//! gigabyte is through, and the big step finishes first.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dockproof::backend::{
    Backend, BackendError, CaptureLimits, ContainerSpec, ContainerState, ExecOutput, ExecRequest,
    LogFiles, Logs, ResourceKind, ScenarioOverrides,
};
use dockproof::events::Event;
use dockproof::run::{BackendKind, BackendOptions, HostContext};
use dockproof::transport::TransportChoice;

use crate::support;

/// Which came first: the small scenario's end or the end of the big scenario's step.
#[derive(Debug, PartialEq, Eq)]
enum First {
    SmallScenarioFinished,
    BigStepFinished(String),
}

/// A scenario with a few quick steps.
const SMALL: &str = r#"
name: small
steps:
  - name: first job
    run: { image: "dockproof/job-runner:1", cmd: [job], env: { JOB_ID: one }, timeout: 1m }
    expect: { exit_code: 0 }
  - name: second job
    run: { image: "dockproof/job-runner:1", cmd: [job], env: { JOB_ID: two }, timeout: 1m }
    expect: { exit_code: 0 }
  - telemetry:
      - { pointer: /status, equals: succeeded }
"#;

/// Run `big` and [`SMALL`] (in that order, both at once) on `backend` in a runtime with
/// one worker; report which of small's end and `big_step`'s end came first, cancel the
/// run then, and check that it ended with nothing left.
fn race(
    big: &str,
    big_step: &str,
    wrap: impl FnOnce(Arc<dyn Backend>) -> Arc<dyn Backend>,
) -> First {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    let mut loaded = Vec::new();
    for (name, text) in [("big.yaml", big), ("small.yaml", SMALL)] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let report = dockproof::scenario::load::load_file(&path);
        assert!(
            report.diagnostics.is_empty(),
            "{name}: {:?}",
            report.diagnostics
        );
        loaded.push(report.scenario.unwrap());
    }
    let options = BackendOptions {
        fake_docker: Some(support::fake_docker()),
        fake_images: vec![support::root().join("fixtures/fake-images")],
        ..BackendOptions::default()
    };
    let (backend, fixtures) =
        dockproof::run::make_backend(BackendKind::Fake, &options, &run_dir, Vec::new()).unwrap();
    // One worker: anything holding it holds the whole run.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let first = runtime.block_on(async {
        let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
        let context = HostContext {
            backend: (wrap(backend), fixtures),
            kind: BackendKind::Fake,
            host_dir: run_dir.clone(),
            run_id: "blocking-proc".into(),
            shown_run_id: "blocking-proc".into(),
            logs_dir: Some(dir.path().join("logs")),
            transport: TransportChoice::Bind,
            recordings: Some(dockproof::recordings::RecordingMode::Off),
            recordings_root: None,
            keep_failed: None,
        }
        .build(events)
        .unwrap();
        let (cancel, cancelled) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(dockproof::runner::run_all(
            Arc::clone(&context),
            loaded,
            2,
            0,
            async move {
                let _ = cancelled.await;
            },
        ));
        let mut first = None;
        while let Some(event) = received.recv().await {
            match event {
                Event::ScenarioFinished(report) if report.name == "small" && first.is_none() => {
                    assert_eq!(
                        report.outcome,
                        dockproof::events::Outcome::Passed,
                        "{:?}",
                        report.failure
                    );
                    first = Some(First::SmallScenarioFinished);
                }
                Event::StepFinished { scenario, step }
                    if scenario == "big" && first.is_none() && step.name == big_step =>
                {
                    first = Some(First::BigStepFinished(step.name));
                }
                Event::RunFinished { .. } => break,
                _ => {}
            }
            if first.is_some() {
                break;
            }
        }
        // Nothing is waited for past the answer: the big step is cancelled.
        let _ = cancel.send(());
        let outcome = tokio::time::timeout(Duration::from_secs(120), run)
            .await
            .expect("the cancelled run ends")
            .unwrap();
        assert_eq!(outcome.swept, 0, "the sweep had to remove containers");
        first.expect("one of the two ended")
    });
    runtime.shutdown_timeout(Duration::from_secs(30));
    first
}

#[test]
fn staging_a_gigabyte_does_not_stall_another_scenario() {
    let big = r#"
name: big
workspace: { max_bytes: 2GiB, max_files: 8 }
steps:
  - name: stage a gigabyte
    stage:
      - { generate: { bytes: 1GiB, seed: 7 }, to: inputs/big.bin }
"#;
    assert_eq!(
        race(big, "stage a gigabyte", |backend| backend),
        First::SmallScenarioFinished
    );
}

#[test]
fn masking_a_gigabyte_log_does_not_stall_another_scenario() {
    // The job's log is a generated gigabyte with the scenario's secret in it, masked into
    // the run's log files as a backend streams it.
    let big = r#"
name: big
secrets:
  TOKEN: { generate: 24 }
steps:
  - name: a gigabyte of log
    run: { image: "dockproof/job-runner:1", cmd: [job], timeout: 10m }
"#;
    assert_eq!(
        race(big, "a gigabyte of log", |backend| Arc::new(GigabyteLogs(
            backend
        ))),
        First::SmallScenarioFinished
    );
}

/// The fake backend, except that the `big` scenario's containers log a gigabyte (lines of
/// `x`, scanned for the scenario's secret on the way to the log file), from a source that
/// is always ready: what the capture does with it is all that could hold the worker.
struct GigabyteLogs(Arc<dyn Backend>);

const GIGABYTE: u64 = 1 << 30;

#[async_trait]
impl Backend for GigabyteLogs {
    fn name(&self) -> &str {
        self.0.name()
    }
    async fn ping(&self) -> Result<String, BackendError> {
        self.0.ping().await
    }
    async fn image_exists(&self, image: &str) -> Result<bool, BackendError> {
        self.0.image_exists(image).await
    }
    async fn build_image(&self, context: &Path, tag: &str) -> Result<(), BackendError> {
        self.0.build_image(context, tag).await
    }
    async fn create(&self, spec: &ContainerSpec) -> Result<String, BackendError> {
        self.0.create(spec).await
    }
    async fn start(&self, container: &str) -> Result<(), BackendError> {
        self.0.start(container).await
    }
    async fn wait(&self, container: &str) -> Result<i64, BackendError> {
        self.0.wait(container).await
    }
    async fn stop(&self, container: &str, grace: Duration) -> Result<(), BackendError> {
        self.0.stop(container, grace).await
    }
    async fn kill(&self, container: &str) -> Result<(), BackendError> {
        self.0.kill(container).await
    }
    async fn logs(
        &self,
        container: &str,
        limits: CaptureLimits,
        files: Option<&LogFiles>,
    ) -> Result<Logs, BackendError> {
        let big = files.is_some_and(|files| files.stdout.to_string_lossy().contains("/big/"));
        if !big {
            return self.0.logs(container, limits, files).await;
        }
        let (mut stdout, stderr) = LogFiles::captures(files, limits)?;
        let mut line = b"x".repeat(1000);
        line.push(b'\n');
        let chunk = line.repeat(64);
        let mut written = 0u64;
        while written < GIGABYTE {
            stdout.push(&chunk).await;
            written += chunk.len() as u64;
        }
        Logs::finish(stdout, stderr).await
    }
    async fn inspect(&self, container: &str) -> Result<ContainerState, BackendError> {
        self.0.inspect(container).await
    }
    async fn exec(
        &self,
        request: &ExecRequest,
        timeout: Duration,
        limits: CaptureLimits,
    ) -> Result<ExecOutput, BackendError> {
        self.0.exec(request, timeout, limits).await
    }
    async fn remove(&self, container: &str) -> Result<(), BackendError> {
        self.0.remove(container).await
    }
    async fn list_labelled(&self, label: &str) -> Result<Vec<String>, BackendError> {
        self.0.list_labelled(label).await
    }
    async fn remove_image(&self, image: &str) -> Result<(), BackendError> {
        self.0.remove_image(image).await
    }
    async fn inspect_json(&self, container: &str) -> Result<serde_json::Value, BackendError> {
        self.0.inspect_json(container).await
    }
    fn with_overrides(&self, overrides: &ScenarioOverrides) -> Result<Arc<dyn Backend>, String> {
        Ok(Arc::new(GigabyteLogs(self.0.with_overrides(overrides)?)))
    }
    async fn list_labelled_resources(
        &self,
        kind: ResourceKind,
        label: &str,
    ) -> Result<Vec<String>, BackendError> {
        self.0.list_labelled_resources(kind, label).await
    }
    async fn remove_resource(&self, kind: ResourceKind, name: &str) -> Result<(), BackendError> {
        self.0.remove_resource(kind, name).await
    }
}
