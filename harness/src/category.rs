//! Error categories: the vocabulary every failure is reported in.
//!
//! A category carries a severity, whether retrying can help, and a one-line
//! hint a person can act on. Backends and checks produce categories; reporters
//! render them; nobody else invents failure kinds.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Why a step (and so a scenario) failed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// The Docker daemon (or the docker binary) could not be reached.
    DaemonUnavailable,
    /// The image does not exist locally and cannot be pulled or built.
    ImageNotFound,
    /// Building an image failed.
    BuildFailed,
    /// A host port needed by a container is already taken.
    PortConflict,
    /// A step ran past its timeout and was stopped.
    Timeout,
    /// The kernel killed the container for exceeding its memory limit.
    OomKilled,
    /// The container's command exited with a non-zero code.
    NonzeroExit,
    /// The container's command does not exist in the image.
    CommandNotFound,
    /// An expected output file is missing.
    ArtifactMissing,
    /// A file's sha256 (or size) differs from what was expected.
    ChecksumMismatch,
    /// The job workspace grew past its byte or file limit.
    WorkspaceLimitExceeded,
    /// A container's health check did not become healthy.
    HealthFailed,
    /// An HTTP probe did not get the expected answer.
    HttpCheckFailed,
    /// Reading or writing the filestore failed.
    FilestoreFailed,
    /// The scenario itself is invalid (bad path, bad reference, ...).
    ConfigInvalid,
    /// Something dockproof created could not be removed.
    CleanupFailed,
    /// An output (stdout, stderr, file content, telemetry) did not match an expectation.
    AssertionFailed,
    /// dockproof itself failed (a panic while running the scenario): a bug to report, not a
    /// verdict on the job.
    InternalError,
}

/// How bad a failure is for a rollout decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
}

impl Category {
    /// Every category, in declaration order.
    pub const ALL: [Category; 18] = [
        Category::DaemonUnavailable,
        Category::ImageNotFound,
        Category::BuildFailed,
        Category::PortConflict,
        Category::Timeout,
        Category::OomKilled,
        Category::NonzeroExit,
        Category::CommandNotFound,
        Category::ArtifactMissing,
        Category::ChecksumMismatch,
        Category::WorkspaceLimitExceeded,
        Category::HealthFailed,
        Category::HttpCheckFailed,
        Category::FilestoreFailed,
        Category::ConfigInvalid,
        Category::CleanupFailed,
        Category::AssertionFailed,
        Category::InternalError,
    ];

    /// The snake_case name used in scenario files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::DaemonUnavailable => "daemon_unavailable",
            Category::ImageNotFound => "image_not_found",
            Category::BuildFailed => "build_failed",
            Category::PortConflict => "port_conflict",
            Category::Timeout => "timeout",
            Category::OomKilled => "oom_killed",
            Category::NonzeroExit => "nonzero_exit",
            Category::CommandNotFound => "command_not_found",
            Category::ArtifactMissing => "artifact_missing",
            Category::ChecksumMismatch => "checksum_mismatch",
            Category::WorkspaceLimitExceeded => "workspace_limit_exceeded",
            Category::HealthFailed => "health_failed",
            Category::HttpCheckFailed => "http_check_failed",
            Category::FilestoreFailed => "filestore_failed",
            Category::ConfigInvalid => "config_invalid",
            Category::CleanupFailed => "cleanup_failed",
            Category::AssertionFailed => "assertion_failed",
            Category::InternalError => "internal_error",
        }
    }

    /// How much this failure should worry an operator.
    pub fn severity(self) -> Severity {
        use Category::*;
        match self {
            DaemonUnavailable | ChecksumMismatch | CleanupFailed | InternalError => {
                Severity::Critical
            }
            ImageNotFound | BuildFailed | OomKilled | CommandNotFound | ArtifactMissing
            | FilestoreFailed | HealthFailed | AssertionFailed => Severity::High,
            PortConflict | Timeout | NonzeroExit | WorkspaceLimitExceeded | HttpCheckFailed => {
                Severity::Medium
            }
            ConfigInvalid => Severity::Low,
        }
    }

    /// Whether running the same thing again may succeed.
    pub fn recoverable(self) -> bool {
        use Category::*;
        matches!(
            self,
            DaemonUnavailable
                | PortConflict
                | Timeout
                | HealthFailed
                | HttpCheckFailed
                | FilestoreFailed
        )
    }

    /// A one-line hint a person can act on.
    pub fn hint(self) -> &'static str {
        use Category::*;
        match self {
            DaemonUnavailable => {
                "check that dockerd is running and DOCKER_HOST points at it (`docker info`)"
            }
            ImageNotFound => "build or pull the image first, or fix the image reference",
            BuildFailed => {
                "the message names the failing instruction and its line, with the build's last log lines"
            }
            PortConflict => "free the host port or publish on port 0 to get a free one",
            Timeout => {
                "the job ran past its timeout: raise `timeout` or find what it waits for in the log tail"
            }
            OomKilled => {
                "the container exceeded its memory limit: raise `limits.memory` or reduce the job's memory use"
            }
            NonzeroExit => "the job exited with a non-zero code: see its stderr tail",
            CommandNotFound => "the command is not in the image's PATH: fix `cmd` or the image",
            ArtifactMissing => {
                "the job did not write the expected file: check its path and the job's stderr"
            }
            ChecksumMismatch => {
                "the file's content differs from the expected checksum: the artifact is corrupted or the expectation is stale"
            }
            WorkspaceLimitExceeded => {
                "the workspace exceeds `workspace.max_bytes`/`max_files`: shrink the inputs or raise the limit"
            }
            HealthFailed => {
                "the container never became healthy: the message quotes its last health check's output (`docker inspect --format '{{json .State.Health}}' CONTAINER` shows every probe)"
            }
            HttpCheckFailed => {
                "the service answered differently than expected: the message gives what it answered (status, header or an excerpt of the body) beside what was expected"
            }
            FilestoreFailed => {
                "the filestore could not be read or written: check its location and permissions"
            }
            ConfigInvalid => "fix the scenario file",
            CleanupFailed => "remove the leftovers by hand (`docker rm -f`) and check permissions",
            AssertionFailed => {
                "the message gives what was expected and what was found: fix the job or the expectation"
            }
            InternalError => {
                "a bug in dockproof, not in the job: please report it with the message and the scenario"
            }
        }
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_serde() {
        for category in Category::ALL {
            let json = serde_json::to_value(category).unwrap();
            assert_eq!(
                json,
                serde_json::Value::String(category.as_str().to_owned())
            );
            let back: Category = serde_json::from_value(json).unwrap();
            assert_eq!(back, category);
        }
    }

    #[test]
    fn every_category_has_a_hint() {
        for category in Category::ALL {
            assert!(!category.hint().is_empty(), "{category} has no hint");
        }
    }

    /// A hint points at what a report shows: the message beside it. Reports print the
    /// hint after the message and nothing else "below" it (issue 18: "see the response
    /// below" had no response below).
    #[test]
    fn no_hint_points_at_something_below() {
        for category in Category::ALL {
            let hint = category.hint();
            assert!(
                !hint.contains("below") && !hint.contains("above"),
                "{category}: {hint}"
            );
        }
    }
}
