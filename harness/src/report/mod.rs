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
/// (`host port 35285 is already in use, held by fake-docker (pid 19663)`).
/// Deterministic reports are written from this.
pub fn normalised(outcome: &crate::runner::RunOutcome) -> crate::runner::RunOutcome {
    static PID: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"\bpid \d+").expect("a valid pattern"));
    let mut outcome = outcome.clone();
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
            .for_each(scrub);
    }
    outcome
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
        let outcome = normalised(&RunOutcome {
            reports: vec![report],
            interrupted: false,
            swept: 0,
        });
        assert_eq!(
            outcome.reports[0].failure.as_ref().unwrap().message,
            "host port <port> is already in use, held by fake-docker (pid <pid>); port 352850 is another"
        );
    }
}
