//! The JUnit XML report: one test case per scenario, with the scenario file and the
//! failing line as `file`/`line` attributes (as pytest, nextest and Surefire consumers
//! read them); a failure's message is its category and what failed, its body every
//! failed expectation at its location with its hint, then the steps; log tails go to
//! system-out/err.

use quick_junit::{
    NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestRerun, TestSuite,
};

use super::ReportOptions;
use crate::events::{Outcome, ScenarioReport};
use crate::runner::RunOutcome;

fn case(report: &ScenarioReport, options: &ReportOptions) -> TestCase {
    let status = match (report.outcome, &report.failure) {
        (Outcome::Passed, _) => TestCaseStatus::success(),
        (Outcome::Skipped, _) => {
            let mut status = TestCaseStatus::skipped();
            if let Some(reason) = &report.skip_reason {
                status.set_message(reason.clone());
            }
            status
        }
        (_, failure) => {
            let kind = if report.outcome == Outcome::Interrupted {
                NonSuccessKind::Error
            } else {
                NonSuccessKind::Failure
            };
            let mut status = TestCaseStatus::non_success(kind);
            if report.outcome == Outcome::Interrupted {
                status.set_message(
                    "interrupted: the run was cancelled before this scenario finished",
                );
                status.set_type("interrupted");
            }
            if let Some(failure) = failure {
                let more = match failure.further.len() {
                    0 => String::new(),
                    1 => " (and 1 more failed expectation)".to_owned(),
                    n => format!(" (and {n} more failed expectations)"),
                };
                status.set_message(format!("{}: {}{more}", failure.category, failure.message));
                status.set_type(failure.category.as_str());
                // Every failed expectation at its own line, then the steps.
                let mut description = String::new();
                for (index, finding) in failure.findings().enumerate() {
                    if index > 0 {
                        description.push('\n');
                    }
                    if let Some(location) = &finding.location {
                        description.push_str(&format!("{location}: "));
                    }
                    if failure.further.is_empty() {
                        description.push_str(&finding.message);
                    } else {
                        description.push_str(&format!("{}: {}", finding.category, finding.message));
                    }
                    description.push_str(&format!("\n  hint: {}", finding.hint));
                }
                for step in &report.steps {
                    let verdict = match step.outcome {
                        Outcome::Passed => "ok",
                        Outcome::Failed => "FAILED",
                        Outcome::Skipped => "skipped",
                        Outcome::Interrupted => "interrupted",
                    };
                    // An unnamed step is already called `step N: KIND`.
                    let number = format!("step {}: ", step.index + 1);
                    let prefix = if step.name.starts_with(&number) {
                        ""
                    } else {
                        number.as_str()
                    };
                    description.push_str(&format!("\n  {prefix}{} [{verdict}]", step.name));
                }
                status.set_description(description);
            }
            status
        }
    };
    let mut status = status;
    // Earlier failed attempts: `flakyFailure` under a pass, `rerunFailure` under a failure
    // (the Maven Surefire / cargo-nextest convention CI consumers read).
    for earlier in &report.earlier_attempts {
        let mut rerun = TestRerun::new(NonSuccessKind::Failure);
        rerun.set_message(format!("{}: {}", earlier.category, earlier.message));
        rerun.set_type(earlier.category.as_str());
        let location = earlier
            .location
            .as_ref()
            .map(|location| format!("{location}: "))
            .unwrap_or_default();
        rerun.set_description(format!("{location}{}", earlier.message));
        status.add_rerun(rerun);
    }
    let mut case = TestCase::new(report.name.clone(), status);
    case.set_classname(format!("dockproof.{}", options.backend));
    // Where a CI viewer links the case: the scenario file, at the failing line when there
    // is one (else its first line: a file is one scenario).
    let line = report
        .failure
        .as_ref()
        .and_then(|failure| failure.location.as_ref())
        .filter(|location| location.file == report.file)
        .map_or(1, |location| location.line);
    case.extra
        .insert("file".into(), report.file.display().to_string().into());
    case.extra.insert("line".into(), line.to_string().into());
    // Always a time (0 in deterministic reports): dorny/test-reporter reads it with
    // parseFloat and shows NaN when it is missing.
    case.set_time(if options.deterministic {
        std::time::Duration::ZERO
    } else {
        report.duration
    });
    if !report.stdout_tail.is_empty() {
        case.set_system_out(report.stdout_tail.join("\n") + "\n");
    }
    if !report.stderr_tail.is_empty() {
        case.set_system_err(report.stderr_tail.join("\n") + "\n");
    }
    case
}

/// The JUnit report of a run.
pub fn render(outcome: &RunOutcome, options: &ReportOptions) -> Report {
    let mut suite = TestSuite::new(format!("dockproof ({})", options.backend));
    suite.add_property(Property::new("backend", options.backend.clone()));
    suite.add_property(Property::new("run_id", options.run_id.clone()));
    suite.add_test_cases(outcome.reports.iter().map(|report| case(report, options)));
    let total = if options.deterministic {
        std::time::Duration::ZERO
    } else {
        outcome.reports.iter().map(|report| report.duration).sum()
    };
    suite.set_time(total);
    let mut junit = Report::new("dockproof");
    junit.set_time(total);
    junit.add_test_suite(suite);
    junit
}

/// Write the report to `path`.
pub fn write(
    path: &std::path::Path,
    outcome: &RunOutcome,
    options: &ReportOptions,
) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let text = render(outcome, options)
        .to_string()
        .map_err(std::io::Error::other)?;
    std::fs::write(path, jenkins_compatible(&text))
}

/// The report without the `skipped` count on `<testsuites>`, which Jenkins' JUnit schema
/// (fixtures/junit/junit-10.xsd) does not allow there (each `<testsuite>` keeps its own).
fn jenkins_compatible(text: &str) -> String {
    let Some(start) = text.find("<testsuites ") else {
        return text.to_owned();
    };
    let Some(length) = text[start..].find('>') else {
        return text.to_owned();
    };
    let tag = &text[start..start + length];
    let Some(at) = tag.find(" skipped=\"") else {
        return text.to_owned();
    };
    let Some(end) = tag[at + 10..].find('"') else {
        return text.to_owned();
    };
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..start + at]);
    out.push_str(&text[start + at + 10 + end + 1..]);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_testsuites_skipped_count_is_dropped() {
        let text = "<?xml version=\"1.0\"?>\n<testsuites name=\"d\" tests=\"3\" skipped=\"1\" failures=\"1\">\n<testsuite name=\"x\" skipped=\"1\">";
        assert_eq!(
            super::jenkins_compatible(text),
            "<?xml version=\"1.0\"?>\n<testsuites name=\"d\" tests=\"3\" failures=\"1\">\n<testsuite name=\"x\" skipped=\"1\">"
        );
        assert_eq!(super::jenkins_compatible("<a/>"), "<a/>");
    }
}
