//! The job record: the telemetry row a job run leaves behind, shaped like the
//! runner's own `job_runs` row (status, result, metrics, context).

use serde::{Deserialize, Serialize};

use crate::secrets::Masker;
use crate::workspace::StagedFile;

/// One job's telemetry record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRecord {
    /// `pending` (nothing ran yet), `running` (detached), `succeeded` or `failed`.
    pub status: String,
    pub result: JobResult,
    pub metrics: Metrics,
    pub context: Context,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobResult {
    /// Files uploaded to the filestore.
    pub artifacts: Vec<Artifact>,
}

/// An uploaded output file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// Workspace-relative path.
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
    /// Where it was stored.
    pub url: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    pub filestore: FilestoreMetrics,
    pub docker: DockerMetrics,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilestoreMetrics {
    /// Bytes read from the filestore into the workspace.
    pub bytes_in: u64,
    /// Bytes uploaded from the workspace to the filestore.
    pub bytes_out: u64,
}

/// Timings (normalised to 0 in deterministic reports) and resource usage of the latest container run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DockerMetrics {
    /// Milliseconds from create to started.
    pub start_ms: u64,
    /// Milliseconds from started to exited.
    pub run_ms: u64,
    /// What the daemon's stats said while the latest attached run ran (absent when it was not monitored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceUsage>,
}

/// Resource usage of a run from the daemon's stats samples. Every figure is `null` when
/// no sample was taken (a container that exits within about a second may have none).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceUsage {
    /// Samples taken while the container ran (normalised to 0 in deterministic reports).
    pub samples: u32,
    /// Most memory in use at any sample, page cache not counted (as `docker stats` shows it).
    pub peak_memory_bytes: Option<u64>,
    /// Most CPU at any sample, in percent of one core.
    pub peak_cpu_percent: Option<f64>,
    /// CPU time used, from the last sample. Only the Engine API has this counter: `null` on the
    /// CLI backends (the docker CLI prints a percentage only).
    pub cpu_time_ms: Option<u64>,
    /// Network bytes received and sent, from the last sample (all interfaces).
    pub net_rx_bytes: Option<u64>,
    pub net_tx_bytes: Option<u64>,
    /// Block device bytes read and written, from the last sample (all devices).
    pub block_read_bytes: Option<u64>,
    pub block_write_bytes: Option<u64>,
    /// Most processes at any sample.
    pub peak_pids: Option<u64>,
    /// Why sampling stopped before the container did, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Context {
    pub docker: DockerContext,
    /// Services started by the scenario, by name (a compose project's services too).
    pub services: std::collections::BTreeMap<String, ServiceContext>,
    /// The docker compose project the scenario brought up, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compose: Option<ComposeRecord>,
    /// URLs probed with `tls.insecure: true`: their server certificates were not checked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub insecure_tls: Vec<String>,
    /// The scenario variables its texts used, with their values (`env.NAME` for host
    /// variables); absent when it used none.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub vars: std::collections::BTreeMap<String, String>,
    /// Values steps captured for later steps, by `STEP.KEY` (masked when derived from a secret).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub captures: std::collections::BTreeMap<String, String>,
}

/// A docker compose project: which, what it ran, what was killed and what `down` left.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComposeRecord {
    /// The project name (unique to the run and scenario).
    pub project: String,
    /// The compose that ran it, e.g. `docker-compose 1.29.2`.
    pub tool: String,
    /// The compose file, as the scenario names it.
    pub file: String,
    /// Its services (each also under `context.services`).
    pub services: Vec<String>,
    /// Services not started because none of their `profiles:` is active.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inactive: Vec<String>,
    /// Every `kill` and how the restart policy answered it.
    pub kills: Vec<KillRecord>,
    /// What was left of the project after `down`; absent until it is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub down: Option<Leftovers>,
}

/// One killed service container and its recovery.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KillRecord {
    pub service: String,
    pub container_id: String,
    /// Docker's restart count before the kill and when the step ended.
    pub restart_count_before: i64,
    pub restart_count_after: i64,
    /// Whether it was running (and healthy, with a healthcheck) again in time.
    pub recovered: bool,
    /// Milliseconds from the kill to recovered.
    pub recovered_ms: u64,
}

/// Objects of a compose project still on the daemon (0 of each after a clean `down`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Leftovers {
    pub containers: usize,
    pub networks: usize,
    pub volumes: usize,
}

/// A service: where it listens and how its health went.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceContext {
    pub image: String,
    pub container_id: String,
    /// Container port (`8080/tcp`) → host port (0 in deterministic reports).
    pub ports: std::collections::BTreeMap<String, u16>,
    /// Whether the service became ready.
    pub ready: bool,
    /// Milliseconds from start to ready (0 in deterministic reports).
    pub ready_ms: u64,
    /// The latest Docker health status (`starting`, `healthy`, `unhealthy`; empty without a healthcheck).
    pub health_status: String,
    /// Health status changes, in order (the health timeline).
    pub health: Vec<HealthChange>,
    /// The exit code of a service that ran to completion (`wait: { exit: N }`, a compose
    /// one-shot service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
}

/// One change of a service's health status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthChange {
    pub status: String,
    /// Milliseconds since the service started (0 in deterministic reports).
    pub at_ms: u64,
}

/// What the latest container run looked like.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DockerContext {
    pub image: Option<String>,
    pub container_id: Option<String>,
    /// `None` until a container has exited.
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    /// Whether the run hit its timeout and was stopped.
    pub timed_out: bool,
    pub workspace: WorkspaceStats,
    pub log_tail: LogTail,
    /// The whole logs of the latest run, on disk (only with `--logs-dir`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_files: Option<LogFilesRecord>,
}

/// Where the whole stdout and stderr of a run were written, and their sizes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogFilesRecord {
    pub stdout: String,
    pub stderr: String,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceStats {
    /// Regular files in the workspace (after the latest step).
    pub files: u64,
    pub bytes: u64,
    pub max_bytes: Option<u64>,
    pub max_files: Option<u64>,
    /// Every input staged, with its size and sha256.
    pub staged: Vec<StagedFile>,
    /// How the workspace reached the containers (`bind` or `copy`), once a container step
    /// decided it (`--workspace-transport`, the host's `transport=`, or `auto`'s probe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
}

/// The last lines of each stream of the latest run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LogTail {
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
}

impl JobRecord {
    /// A fresh record for a job that has not run yet.
    pub fn pending() -> Self {
        JobRecord {
            status: "pending".into(),
            ..JobRecord::default()
        }
    }

    /// The record as JSON, for pointer assertions and reports.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a job record always serialises")
    }

    /// Hide secret values in every string of the record, keys included (artifact
    /// paths and URLs, log tails, image names, service names, compose fields): the
    /// record is masked as a whole through its JSON form, so a field added later is
    /// masked too. A multi-line value in the log tails is masked on the whole tail.
    pub fn mask(&mut self, masker: &Masker) {
        if masker.is_empty() {
            return;
        }
        let tails = [
            &mut self.context.docker.log_tail.stdout,
            &mut self.context.docker.log_tail.stderr,
        ];
        for tail in tails {
            mask_lines(tail, masker);
        }
        let mut json = self.to_json();
        mask_json(&mut json, masker);
        match serde_json::from_value(json) {
            Ok(masked) => *self = masked,
            // Every field reads back what it wrote (tested); should one not, the
            // record is given up rather than reported unmasked.
            Err(error) => {
                *self = JobRecord {
                    status: format!("record withheld: it could not be masked ({error})"),
                    ..JobRecord::default()
                }
            }
        }
    }
}

/// Mask `lines` as one text (so a multi-line value is caught), then cut it again.
pub fn mask_lines(lines: &mut Vec<String>, masker: &Masker) {
    let joined = lines.join("\n");
    if let std::borrow::Cow::Owned(masked) = masker.mask(&joined) {
        *lines = masked.split('\n').map(str::to_owned).collect();
    }
    for line in lines.iter_mut() {
        masker.mask_in_place(line);
    }
}

/// Mask every string in a JSON document, object keys included.
pub fn mask_json(value: &mut serde_json::Value, masker: &Masker) {
    use serde_json::Value;
    match value {
        Value::String(text) => masker.mask_in_place(text),
        Value::Array(items) => items.iter_mut().for_each(|item| mask_json(item, masker)),
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (mut key, mut item) in entries {
                masker.mask_in_place(&mut key);
                mask_json(&mut item, masker);
                map.insert(key, item);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record with every field set: masking reads it back through JSON unchanged
    /// when nothing matches (no field is lost), and masks every string, keys included,
    /// when something does.
    #[test]
    fn masking_goes_through_every_field_and_loses_none() {
        let secret = "s3cr3t-value".to_owned();
        let mut record = JobRecord::pending();
        record.status = "succeeded".into();
        record.result.artifacts.push(Artifact {
            path: "outputs/summary.json".into(),
            bytes: 12,
            sha256: "ab".repeat(32),
            url: format!("file:///store/results/{secret}/summary.json"),
        });
        record.metrics.filestore.bytes_in = 3;
        record.metrics.docker.resources = Some(ResourceUsage {
            samples: 2,
            peak_memory_bytes: Some(1 << 20),
            peak_cpu_percent: Some(12.345_678_9),
            error: Some(format!("sampling stopped: {secret}")),
            ..ResourceUsage::default()
        });
        record.context.services.insert(
            format!("svc-{secret}"),
            ServiceContext {
                image: "web:1".into(),
                container_id: "c1".into(),
                ports: [("8080/tcp".to_owned(), 1234)].into(),
                ready: true,
                ready_ms: 5,
                health_status: "healthy".into(),
                health: vec![HealthChange {
                    status: "healthy".into(),
                    at_ms: 9,
                }],
                exit_code: None,
            },
        );
        record.context.compose = Some(ComposeRecord {
            project: "p".into(),
            tool: "docker-compose 1.29.2".into(),
            file: "compose.yaml".into(),
            services: vec!["web".into()],
            inactive: Vec::new(),
            kills: vec![KillRecord {
                service: "web".into(),
                container_id: "c2".into(),
                restart_count_before: 0,
                restart_count_after: 1,
                recovered: true,
                recovered_ms: 40,
            }],
            down: Some(Leftovers::default()),
        });
        let docker = &mut record.context.docker;
        docker.image = Some("dockproof/job-runner:1".into());
        docker.exit_code = Some(0);
        docker.workspace.staged.push(StagedFile {
            path: "inputs/x.csv".into(),
            bytes: 4,
            sha256: "cd".repeat(32),
        });
        docker.log_tail.stdout = vec!["-----BEGIN".into(), format!("{secret}"), "END-----".into()];
        docker.log_files = Some(LogFilesRecord {
            stdout: "/logs/s/step-0.stdout.log".into(),
            stderr: "/logs/s/step-0.stderr.log".into(),
            stdout_bytes: 10,
            stderr_bytes: 0,
        });

        let before = record.to_json();
        let unrelated = Masker::new([&"nothing-like-it".to_owned()]).unwrap();
        record.mask(&unrelated);
        assert_eq!(record.to_json(), before, "a round trip loses nothing");

        let multi_line = format!("-----BEGIN\n{secret}\nEND-----");
        record.mask(&Masker::new([&secret, &multi_line]).unwrap());
        let after = record.to_json().to_string();
        assert!(!after.contains(&secret), "{after}");
        for masked in [
            "results/***/summary.json",
            "svc-***",
            "sampling stopped: ***",
        ] {
            assert!(after.contains(masked), "{masked} missing in {after}");
        }
        assert_eq!(record.context.docker.log_tail.stdout, ["***"]);
    }
}
