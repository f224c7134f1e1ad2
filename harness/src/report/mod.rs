//! Reporters render what the runner found. They consume events and reports;
//! they never decide pass or fail.

pub mod console;
pub mod github;
pub mod html;
pub mod inert;
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

/// The outcome with what differs between otherwise identical runs taken out
/// of failure messages: host ports the run was assigned and process ids
/// (`host port 35285 is already in use, held by fake-docker (pid 19663)`), and the
/// run's own id `run_id` (unique per invocation) replaced by `shown_run_id` (the suite
/// id) wherever the report carries it: messages, log tails, artifact keys, compose
/// project names. Deterministic reports are written from this.
pub fn normalised(
    outcome: &crate::runner::RunOutcome,
    run_id: &str,
    shown_run_id: &str,
) -> crate::runner::RunOutcome {
    static PID: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"\bpid \d+").expect("a valid pattern"));
    let mut outcome = outcome.clone();
    if !run_id.is_empty() && run_id != shown_run_id {
        for report in &mut outcome.reports {
            replace_run_id(report, run_id, shown_run_id);
        }
    }
    for report in &mut outcome.reports {
        let ports: Vec<String> = report
            .record
            .context
            .services
            .values()
            .flat_map(|service| service.ports.values())
            .map(u16::to_string)
            .collect();
        let scrub = |failure: &mut crate::events::Failure| {
            let mut message = PID.replace_all(&failure.message, "pid <pid>").into_owned();
            for port in &ports {
                let pattern = regex::Regex::new(&format!(r"\b{port}\b"))
                    .expect("a number is a valid pattern");
                message = pattern.replace_all(&message, "<port>").into_owned();
            }
            failure.message = message;
        };
        report
            .failure
            .iter_mut()
            .chain(report.earlier_attempts.iter_mut())
            .chain(
                report
                    .steps
                    .iter_mut()
                    .filter_map(|step| step.failure.as_mut()),
            )
            .for_each(|failure| {
                scrub(failure);
                failure.further.iter_mut().for_each(scrub);
            });
    }
    outcome
}

/// The reports in their order, failed (and interrupted) ones first: what a reader of a
/// long summary came for.
pub fn failures_first(
    reports: &[crate::events::ScenarioReport],
) -> impl Iterator<Item = &crate::events::ScenarioReport> {
    use crate::events::Outcome;
    let failing = |report: &&crate::events::ScenarioReport| {
        matches!(report.outcome, Outcome::Failed | Outcome::Interrupted)
    };
    reports
        .iter()
        .filter(failing)
        .chain(reports.iter().filter(move |report| !failing(report)))
}

/// Every text of `report` that can carry the run id, with `run_id` replaced by `shown`.
/// (Container names, and so the fake's container IDs, are made from `shown` already: see
/// `EngineContext::names_id`.)
fn replace_run_id(report: &mut crate::events::ScenarioReport, run_id: &str, shown: &str) {
    let swap = |text: &mut String| {
        if text.contains(run_id) {
            *text = text.replace(run_id, shown);
        }
    };
    let failures = report
        .failure
        .iter_mut()
        .chain(report.earlier_attempts.iter_mut())
        .chain(
            report
                .steps
                .iter_mut()
                .filter_map(|step| step.failure.as_mut()),
        );
    for failure in failures {
        swap(&mut failure.message);
        for further in &mut failure.further {
            swap(&mut further.message);
        }
    }
    report.skip_reason.iter_mut().for_each(swap);
    let record = &mut report.record;
    let tails = [
        &mut report.stdout_tail,
        &mut report.stderr_tail,
        &mut record.context.docker.log_tail.stdout,
        &mut record.context.docker.log_tail.stderr,
    ];
    tails.into_iter().flatten().for_each(swap);
    for artifact in &mut record.result.artifacts {
        swap(&mut artifact.path);
        swap(&mut artifact.url);
    }
    // A build step's image is tagged with the run id.
    record.context.docker.image.iter_mut().for_each(swap);
    for service in record.context.services.values_mut() {
        swap(&mut service.image);
    }
    if let Some(compose) = &mut record.context.compose {
        swap(&mut compose.project);
        for kill in &mut compose.kills {
            swap(&mut kill.container_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Failure, ScenarioReport};
    use crate::record::{JobRecord, ServiceContext};
    use crate::runner::RunOutcome;

    #[test]
    fn normalised_takes_assigned_ports_and_pids_out_of_messages() {
        let mut record = JobRecord::default();
        let mut service = ServiceContext::default();
        service.ports.insert("8080/tcp".into(), 35285);
        record.context.services.insert("first".into(), service);
        let report = ScenarioReport {
            name: "port-in-use".into(),
            file: "port-in-use.yaml".into(),
            tags: vec![],
            outcome: crate::events::Outcome::Failed,
            failure: Some(Failure::new(
                crate::category::Category::PortConflict,
                "host port 35285 is already in use, held by fake-docker (pid 19663); port 352850 is another",
            )),
            skip_reason: None,
            earlier_attempts: vec![],
            steps: vec![],
            record,
            stdout_tail: vec![],
            stderr_tail: vec![],
            duration: std::time::Duration::ZERO,
        };
        let outcome = normalised(
            &RunOutcome {
                reports: vec![report],
                interrupted: false,
                swept: 0,
                swept_resources: Vec::new(),
                left_behind: Vec::new(),
            },
            "fake-1-2",
            "fake-1",
        );
        assert_eq!(
            outcome.reports[0].failure.as_ref().unwrap().message,
            "host port <port> is already in use, held by fake-docker (pid <pid>); port 352850 is another"
        );
    }

    #[test]
    fn normalised_shows_the_suite_id_wherever_the_run_id_was() {
        let mut record = JobRecord::default();
        record.result.artifacts.push(crate::record::Artifact {
            path: "out/fake-1-2.json".into(),
            bytes: 1,
            sha256: "00".into(),
            url: "file:///store/jobs/fake-1-2/out.json".into(),
        });
        record.context.docker.image = Some("dockproof-build/x-0:fake-1-2".into());
        let report = ScenarioReport {
            name: "ids".into(),
            file: "ids.yaml".into(),
            tags: vec![],
            outcome: crate::events::Outcome::Failed,
            failure: Some(Failure::new(
                crate::category::Category::NonzeroExit,
                "run fake-1-2 failed",
            )),
            skip_reason: None,
            earlier_attempts: vec![],
            steps: vec![],
            record,
            stdout_tail: vec!["I am run fake-1-2".into()],
            stderr_tail: vec![],
            duration: std::time::Duration::ZERO,
        };
        let outcome = RunOutcome {
            reports: vec![report],
            interrupted: false,
            swept: 0,
            swept_resources: Vec::new(),
            left_behind: Vec::new(),
        };
        let shown = normalised(&outcome, "fake-1-2", "fake-1");
        let report = &shown.reports[0];
        assert_eq!(
            report.failure.as_ref().unwrap().message,
            "run fake-1 failed"
        );
        assert_eq!(report.stdout_tail, ["I am run fake-1"]);
        let artifact = &report.record.result.artifacts[0];
        assert_eq!(
            (artifact.path.as_str(), artifact.url.as_str()),
            ("out/fake-1.json", "file:///store/jobs/fake-1/out.json")
        );
        assert_eq!(
            report.record.context.docker.image.as_deref(),
            Some("dockproof-build/x-0:fake-1")
        );
        // An explicit --run-id is shown as it is.
        let same = normalised(&outcome, "fake-1-2", "fake-1-2");
        assert_eq!(same.reports[0].stdout_tail, ["I am run fake-1-2"]);
    }
}
