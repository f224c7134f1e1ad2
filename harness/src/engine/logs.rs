//! The `logs` step: conditions on a container's stdout and stderr, over its whole
//! log or a window (`since`: only what was written after an earlier step began),
//! checked once or re-read until they hold (`within`).
//!
//! A window is kept by position, not by clock: when a step that some later window
//! starts at begins, the byte counts of the container's streams so far are noted, and
//! the window is what comes after them. No daemon timestamps, so no clock skew with a
//! remote host, and the same on the fake as on a real daemon.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{ScenarioRun, backend_finding, finding};
use crate::backend::{CaptureLimits, Captured};
use crate::category::Category;
use crate::check::{self, Finding};
use crate::scenario::{Action, LogsSpec, SINCE_PREVIOUS_STEP, Step};

/// How often `within` reads the logs again.
const REREAD: Duration = Duration::from_millis(250);

/// Bytes of stdout and stderr a container had written when a window began.
pub(super) type Mark = (u64, u64);

/// The index of the step the window of the logs step at `index` starts at: the one before,
/// or the closest earlier step with that name.
pub(super) fn window_start(steps: &[Step], index: usize, since: &str) -> Option<usize> {
    if since == SINCE_PREVIOUS_STEP {
        return index.checked_sub(1);
    }
    steps[..index]
        .iter()
        .rposition(|step| step.name.as_deref() == Some(since))
}

/// For each step index, the containers whose log position is noted when it begins.
pub(super) fn marks_wanted(steps: &[Step]) -> HashMap<usize, Vec<String>> {
    let mut wanted: HashMap<usize, Vec<String>> = HashMap::new();
    for (index, step) in steps.iter().enumerate() {
        let Action::Logs(logs) = &step.action else {
            continue;
        };
        if let Some(start) = logs
            .since
            .as_deref()
            .and_then(|since| window_start(steps, index, since))
        {
            wanted
                .entry(start)
                .or_default()
                .push(logs.container.clone());
        }
    }
    wanted
}

/// The part of `captured` written after `offset` bytes. When the window began before the
/// tail kept in memory, it is the whole tail (the second value says so).
fn after(captured: &Captured, offset: u64) -> (&str, bool) {
    let wanted = captured.total_bytes.saturating_sub(offset);
    let text = &captured.text;
    if wanted >= text.len() as u64 {
        return (text, captured.truncated && wanted > text.len() as u64);
    }
    let mut start = text.len() - wanted as usize;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    (&text[start..], false)
}

impl ScenarioRun<'_> {
    /// Note where the logs of the containers some window starts at stand, before step `index`
    /// runs. A container that does not exist yet has written nothing: its window is all of it.
    pub(super) async fn mark_log_windows(&mut self, index: usize) {
        let Some(containers) = self.log_windows.get(&index).cloned() else {
            return;
        };
        for container in containers {
            let mark = match self.named.get(&container) {
                // Only the counts matter: keep no text.
                Some(id) => match self
                    .backend
                    .logs(id, CaptureLimits { max_bytes: 0 }, None)
                    .await
                {
                    Ok(logs) => (logs.stdout.total_bytes, logs.stderr.total_bytes),
                    // Unreadable now: the logs step reports it when it reads them.
                    Err(_) => (0, 0),
                },
                None => (0, 0),
            };
            self.log_marks.insert((index, container), mark);
        }
    }

    pub(super) async fn logs(
        &mut self,
        pointer: &str,
        index: Option<usize>,
        logs: &LogsSpec,
    ) -> Result<(), Vec<Finding>> {
        let logs_pointer = format!("{pointer}/logs");
        let Some(id) = self.named.get(&logs.container).cloned() else {
            return Err(finding(
                Category::ConfigInvalid,
                format!("{logs_pointer}/container"),
                format!("no container named `{}`", logs.container),
            ));
        };
        let mark = match (&logs.since, index) {
            (Some(since), Some(index)) => window_start(&self.loaded.scenario.steps, index, since)
                .and_then(|start| {
                    self.log_marks
                        .get(&(start, logs.container.clone()))
                        .copied()
                })
                .unwrap_or((0, 0)),
            _ => (0, 0),
        };
        let deadline = logs.within.map(|within| Instant::now() + within.0);
        loop {
            let captured = self
                .backend
                .logs(&id, self.context.capture, None)
                .await
                .map_err(|error| backend_finding(&error, &logs_pointer))?;
            let findings = self.log_findings(
                &logs_pointer,
                logs,
                (
                    after(&captured.stdout, mark.0),
                    after(&captured.stderr, mark.1),
                ),
            );
            if findings.is_empty() {
                return Ok(());
            }
            if deadline.is_none_or(|deadline| Instant::now() + REREAD > deadline) {
                return Err(findings);
            }
            tokio::time::sleep(REREAD).await;
        }
    }

    fn log_findings(
        &self,
        pointer: &str,
        logs: &LogsSpec,
        (stdout, stderr): ((&str, bool), (&str, bool)),
    ) -> Vec<Finding> {
        let window = match &logs.since {
            Some(since) if since == SINCE_PREVIOUS_STEP => {
                " since the previous step began".to_owned()
            }
            Some(since) => format!(" since step `{since}` began"),
            None => String::new(),
        };
        let within = logs
            .within
            .map(|within| {
                format!(
                    " (read until {} had passed)",
                    humantime::format_duration(within.0)
                )
            })
            .unwrap_or_default();
        let mut findings = Vec::new();
        for (stream, matcher, (text, clipped)) in [
            ("stdout", &logs.stdout, stdout),
            ("stderr", &logs.stderr, stderr),
        ] {
            let Some(matcher) = matcher else { continue };
            let clipped = if clipped {
                ", of which only the tail kept in memory was read"
            } else {
                ""
            };
            let subject = format!("`{}` {stream}{window}{clipped}", logs.container);
            let stream_pointer = format!("{pointer}/{stream}");
            for mut found in check::text(&subject, &stream_pointer, matcher, text, &self.masker) {
                found.message.push_str(&within);
                findings.push(found);
            }
        }
        findings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn captured(text: &str, total_bytes: u64) -> Captured {
        Captured {
            total_bytes,
            truncated: total_bytes > text.len() as u64,
            ..Captured::from_text(text)
        }
    }

    #[test]
    fn a_window_is_what_came_after_the_mark() {
        let whole = captured("boot\nGET /a 200\nGET /b 404\n", 27);
        assert_eq!(after(&whole, 0), ("boot\nGET /a 200\nGET /b 404\n", false));
        assert_eq!(after(&whole, 16), ("GET /b 404\n", false));
        assert_eq!(after(&whole, 27), ("", false));
        assert_eq!(
            after(&whole, 99),
            ("", false),
            "a mark past the end (a log cut short) is an empty window"
        );
    }

    #[test]
    fn a_window_older_than_the_kept_tail_is_the_whole_tail_and_says_so() {
        let tail = captured("GET /b 404\n", 1_000_011);
        assert_eq!(after(&tail, 10), ("GET /b 404\n", true));
        assert_eq!(
            after(&tail, 1_000_000),
            ("GET /b 404\n", false),
            "exactly the tail"
        );
    }

    #[test]
    fn a_window_never_splits_a_character() {
        let text = captured("é-ok\n", 6);
        assert_eq!(after(&text, 1), ("-ok\n", false));
    }

    #[test]
    fn windows_start_at_the_previous_or_the_closest_named_step() {
        let step = |name: Option<&str>| Step {
            name: name.map(str::to_owned),
            action: Action::Stage(Vec::new()),
            capture: Default::default(),
            references: Vec::new(),
            expect_failure: None,
        };
        let steps = [step(Some("up")), step(None), step(Some("up")), step(None)];
        assert_eq!(window_start(&steps, 3, SINCE_PREVIOUS_STEP), Some(2));
        assert_eq!(window_start(&steps, 3, "up"), Some(2));
        assert_eq!(window_start(&steps, 2, "up"), Some(0));
        assert_eq!(window_start(&steps, 0, SINCE_PREVIOUS_STEP), None);
        assert_eq!(window_start(&steps, 3, "nope"), None);
    }
}
