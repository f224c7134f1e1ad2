//! GitHub Actions workflow commands: an `::error` annotation on the scenario
//! file line of every failed expectation.

use crate::events::Outcome;
use crate::runner::RunOutcome;

/// Escape a workflow-command message. `##[` (the runner's older command syntax,
/// matched anywhere in a line) is broken up too, though the line is already read
/// as this `::error` command: container output quoted in a message stays inert.
fn data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
        .replace("##[", "# #[")
}

/// Escape a workflow-command property value.
fn property(text: &str) -> String {
    data(text).replace(':', "%3A").replace(',', "%2C")
}

/// One annotation line per failed expectation of every failed scenario, at its own
/// line (a step that found several gives several).
pub fn annotations(outcome: &RunOutcome) -> Vec<String> {
    outcome
        .reports
        .iter()
        .filter(|report| report.outcome == Outcome::Failed)
        .flat_map(|report| {
            report
                .failure
                .iter()
                .flat_map(|failure| failure.findings())
                .map(|failure| {
                    let title = property(&format!("{}: {}", report.name, failure.category));
                    let message = data(&format!("{} (hint: {})", failure.message, failure.hint));
                    match &failure.location {
                        Some(location) => format!(
                            "::error file={},line={},col={},title={title}::{message}",
                            property(&location.file.display().to_string()),
                            location.line,
                            location.column
                        ),
                        None => format!("::error title={title}::{message}"),
                    }
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_the_runner_expects() {
        assert_eq!(data("50%\nnext"), "50%25%0Anext");
        assert_eq!(property("a:b,c"), "a%3Ab%2Cc");
    }
}
