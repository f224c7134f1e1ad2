//! The build step: build an image from a context, explain a failed build
//! (which instruction, which Dockerfile line, the last log lines), and check
//! the image that came out.

use std::sync::OnceLock;

use regex::Regex;

use super::{ScenarioRun, backend_finding, finding};
use crate::backend::{BackendError, BuildRequest};
use crate::category::Category;
use crate::check::{self, Finding};
use crate::fixtures;
use crate::scenario::BuildSpec;
use crate::scenario::template;

/// Where a failed build failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildFailure {
    /// The failing instruction as the builder printed it.
    pub instruction: Option<String>,
    /// Its 1-based line in the Dockerfile.
    pub line: Option<usize>,
    /// The builder's last meaningful lines.
    pub tail: Vec<String>,
}

fn normalise(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The text and line of every instruction in a Dockerfile, in order (continuation
/// lines joined; heredoc bodies left out, as the builder prints the step).
fn instructions(dockerfile: &str) -> Vec<(String, usize)> {
    let Ok(parsed) = crate::lint::parser::parse(dockerfile) else {
        return Vec::new();
    };
    let lines: Vec<&str> = dockerfile.lines().collect();
    parsed
        .instructions
        .iter()
        .map(|instruction| {
            let first = instruction.span.start.line;
            let heredocs = instruction
                .trigger
                .as_deref()
                .map_or(&instruction.heredocs, |trigger| &trigger.heredocs);
            let last = heredocs
                .first()
                .map_or(instruction.span.end.line, |heredoc| {
                    heredoc.span.start.line.saturating_sub(1)
                })
                .clamp(first, lines.len().max(first));
            let text = lines
                .get(first.saturating_sub(1)..last.min(lines.len()))
                .unwrap_or_default()
                .iter()
                .map(|line| {
                    let line = line.trim_end();
                    line.strip_suffix(parsed.escape).unwrap_or(line)
                })
                .collect::<Vec<_>>()
                .join(" ");
            (normalise(&text), first)
        })
        .collect()
}

/// Find the failing step in a build log (legacy builder or BuildKit) and map it to a Dockerfile line.
pub fn locate_failure(log: &str, dockerfile: &str) -> BuildFailure {
    static LEGACY: OnceLock<Regex> = OnceLock::new();
    static BUILDKIT: OnceLock<Regex> = OnceLock::new();
    let legacy =
        LEGACY.get_or_init(|| Regex::new(r"^Step (\d+)/\d+ : (.+)$").expect("valid pattern"));
    let buildkit = BUILDKIT
        .get_or_init(|| Regex::new(r"\[(?:[\w.-]+ )?(\d+)/\d+\] (.+?):?$").expect("valid pattern"));
    let known = instructions(dockerfile);
    let mut instruction = None;
    let mut line = None;
    for text in log.lines() {
        if let Some(captures) = legacy.captures(text.trim()) {
            let step: usize = captures[1].parse().unwrap_or(0);
            instruction = Some(captures[2].to_owned());
            line = step
                .checked_sub(1)
                .and_then(|index| known.get(index))
                .map(|(_, line)| *line);
        } else if let Some(captures) = buildkit.captures(text.trim()) {
            let reported = normalise(&captures[2]);
            instruction = Some(reported.clone());
            line = known
                .iter()
                .find(|(text, _)| *text == reported || text.starts_with(&reported))
                .map(|(_, line)| *line);
        }
    }
    let tail: Vec<String> = log
        .lines()
        .rev()
        .filter(|text| !text.trim().is_empty() && !text.starts_with(" ---> "))
        .take(5)
        .map(str::to_owned)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    BuildFailure {
        instruction,
        line,
        tail,
    }
}

impl ScenarioRun<'_> {
    pub(super) async fn build(
        &mut self,
        pointer: &str,
        build: &BuildSpec,
    ) -> Result<(), Vec<Finding>> {
        let build_pointer = format!("{pointer}/build");
        let dockerfile_name = build
            .dockerfile
            .clone()
            .unwrap_or_else(|| "Dockerfile".to_owned());
        let dir = self.loaded.base_dir.join(&build.context);
        let dockerfile_text =
            crate::input_file::read_config(&dir.join(&dockerfile_name)).map_err(|error| {
                finding(
                    Category::ConfigInvalid,
                    format!("{build_pointer}/context"),
                    format!("cannot read the Dockerfile: {error}"),
                )
            })?;
        // Under the run's directory (beside the workspaces), so `clean` removes what a killed run left.
        let context = fixtures::prepare_context(&dir, &dockerfile_name, &self.context.work_dir)
            .map_err(|error| {
                let category = match error {
                    fixtures::ContextError::Refused(_) => Category::ConfigInvalid,
                    fixtures::ContextError::Failed(_) => Category::BuildFailed,
                };
                finding(
                    category,
                    format!("{build_pointer}/context"),
                    error.to_string(),
                )
            })?;
        let step_number = pointer.rsplit('/').next().unwrap_or("0");
        let tag = build.tag.clone().unwrap_or_else(|| {
            format!(
                "dockproof-build/{}-{step_number}:{}",
                self.slug,
                self.context.run_id.to_ascii_lowercase()
            )
        });
        let request = BuildRequest {
            context: context.path().to_path_buf(),
            dockerfile: build.dockerfile.clone(),
            tag: tag.clone(),
            args: build
                .args
                .iter()
                .map(|(key, value)| (key.clone(), template::render(&value.0, &self.vars)))
                .collect(),
            target: build.target.clone(),
            labels: [("dockproof.run".to_owned(), self.context.run_id.clone())].into(),
        };
        let backend = self.backend.as_ref();
        match backend.build(&request).await {
            Ok(()) => {}
            Err(BackendError::BuildFailed { message, .. }) => {
                let failure = locate_failure(&message, &dockerfile_text);
                let shown = build.dockerfile.as_deref().unwrap_or("Dockerfile");
                let place = match (&failure.instruction, failure.line) {
                    (Some(instruction), Some(line)) => {
                        format!("`{instruction}` ({shown} line {line}) failed")
                    }
                    (Some(instruction), None) => format!("`{instruction}` failed"),
                    _ => "the build failed".to_owned(),
                };
                return Err(finding(
                    Category::BuildFailed,
                    &build_pointer,
                    format!("{place}: {}", failure.tail.join(" | ")),
                ));
            }
            Err(error) => return Err(backend_finding(&error, &build_pointer)),
        }
        self.images.push(tag.clone());
        let inspect = backend
            .image_inspect_json(&tag)
            .await
            .map_err(|error| backend_finding(&error, &build_pointer))?;
        if self.context.recordings.observes() {
            let call = crate::recordings::build_call(
                context.path(),
                build.dockerfile.as_deref(),
                &request.args.iter().cloned().collect(),
                build.target.as_deref(),
                &self.masker,
            );
            match call {
                Ok(call) => self.recorded_builds.push(crate::recordings::build(
                    pointer,
                    &inspect,
                    &self.masker,
                    Some(call),
                )),
                Err(problem) => self.recording_problem = Some(problem),
            }
        }
        let stages = instructions(&dockerfile_text)
            .iter()
            .filter(|(text, _)| text.to_ascii_uppercase().starts_with("FROM "))
            .count();
        let findings = check::image(
            &format!("{build_pointer}/expect"),
            &build.expect,
            &inspect,
            stages,
        );
        if findings.is_empty() {
            Ok(())
        } else {
            Err(findings)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKERFILE: &str = "FROM scratch AS base\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\",\"--install\",\"-s\",\"/bin\"]\n\nFROM base\nARG GREETING=hi\nRUN echo \"$GREETING\" && \\\n    false\nCMD [\"true\"]\n";

    #[test]
    fn finds_the_failing_step_of_the_legacy_builder() {
        let log = "Step 5/7 : ARG GREETING=hi\n ---> Running in 3d507a51ef53\nStep 6/7 : RUN echo \"$GREETING\" &&     false\n ---> Running in ff2f62cf7b6d\nhello\nThe command '/bin/sh -c echo \"$GREETING\" && false' returned a non-zero code: 1";
        let failure = locate_failure(log, DOCKERFILE);
        assert_eq!(failure.line, Some(7));
        assert_eq!(
            failure.instruction.as_deref(),
            Some("RUN echo \"$GREETING\" &&     false")
        );
        assert_eq!(
            failure.tail.last().unwrap(),
            "The command '/bin/sh -c echo \"$GREETING\" && false' returned a non-zero code: 1"
        );
    }

    #[test]
    fn finds_the_failing_step_of_buildkit() {
        let log = "#7 [base 2/2] RUN [\"/bin/busybox\",\"--install\",\"-s\",\"/bin\"]\n#8 [stage-1 1/1] RUN echo \"$GREETING\" && false\n#8 ERROR: process \"/bin/sh -c echo \\\"$GREETING\\\" && false\" did not complete successfully: exit code: 1";
        let failure = locate_failure(log, DOCKERFILE);
        assert_eq!(failure.line, Some(7), "{failure:?}");
    }
}
