//! `LintConfig`: which rules are off, which levels are changed, where `lint`
//! fails. A self-contained serde type (unknown keys rejected) so that a project
//! file can embed it as its `lint:` section; `dockproof lint --lint-config FILE`
//! loads it from a YAML file of its own.
//!
//! ```yaml
//! disable: [DF004, DL3059]
//! severity: { DF003: warning, DL3018: error }
//! failure-threshold: warning
//! secrets: { allow: [NPM_TOKEN_FILE] }
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{Finding, Level, SecretPolicy};
use crate::scenario::yaml;

/// From which level on a finding makes `lint` exit 1.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema, clap::ValueEnum, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Threshold {
    Style,
    Info,
    Warning,
    #[default]
    Error,
    /// Never fail on findings.
    None,
}

impl Threshold {
    /// Whether a finding at `level` fails the run.
    pub fn fails(self, level: Level) -> bool {
        let minimum = match self {
            Threshold::Style => Level::Style,
            Threshold::Info => Level::Info,
            Threshold::Warning => Level::Warning,
            Threshold::Error => Level::Error,
            Threshold::None => return false,
        };
        level >= minimum
    }
}

/// The `secrets:` part: names DF005/DC007 never report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    #[serde(default)]
    pub allow: Vec<String>,
}

/// The lint configuration (a project file's `lint:` section, or `--lint-config FILE`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LintConfig {
    /// Rules never reported (dockproof's DF/DC, hadolint's DL/SC).
    #[serde(default)]
    pub disable: Vec<String>,
    /// A new level per rule.
    #[serde(default)]
    pub severity: BTreeMap<String, Level>,
    /// From which level on `lint` exits 1 (default `error`); `--failure-threshold` wins.
    #[serde(default)]
    pub failure_threshold: Option<Threshold>,
    #[serde(default)]
    pub secrets: SecretsConfig,
}

/// Why a lint configuration was refused: file:line:col, what, and a hint.
#[derive(Debug, thiserror::Error)]
pub enum LintConfigError {
    #[error("failed to read `{path}`: {source}")]
    Read {
        path: String,
        source: crate::input_file::InputFileError,
    },
    #[error("{path}:{line}:{column}: {message} (hint: {hint})")]
    Invalid {
        path: String,
        line: usize,
        column: usize,
        message: String,
        hint: String,
    },
}

/// A rule ID in a [`LintConfig`] that names no rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownRule {
    /// Where, inside the configuration.
    pub pointer: String,
    pub message: String,
}

/// What to do about an [`UnknownRule`].
pub const UNKNOWN_RULE_HINT: &str = "dockproof's rules are DF001…DF008 and DC001…DC008 (docs/lint.md); hadolint's are DLnnnn and SCnnnn";

/// Whether `rule` is one lint knows (dockproof's) or could know (hadolint's DLnnnn/SCnnnn).
fn known_rule(rule: &str) -> bool {
    let own = super::dockerfile::RULES
        .iter()
        .chain(super::compose::RULES.iter())
        .any(|known| known.id == rule);
    let theirs = ["DL", "SC"].iter().any(|prefix| {
        rule.strip_prefix(prefix)
            .is_some_and(|digits| !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()))
    });
    own || theirs
}

impl LintConfig {
    /// Load a lint configuration from a YAML file.
    pub fn load(path: &Path) -> Result<Self, LintConfigError> {
        let shown = path.display().to_string();
        let text =
            crate::input_file::read_config(path).map_err(|source| LintConfigError::Read {
                path: shown.clone(),
                source,
            })?;
        Self::from_yaml(&shown, &text)
    }

    /// Parse a lint configuration from YAML text (`shown` names it in errors).
    pub fn from_yaml(shown: &str, text: &str) -> Result<Self, LintConfigError> {
        let invalid =
            |line: usize, column: usize, message: String, hint: &str| LintConfigError::Invalid {
                path: shown.to_owned(),
                line: line.max(1),
                column: column.max(1),
                message,
                hint: hint.to_owned(),
            };
        let located = yaml::parse(text).map_err(|error| {
            invalid(
                error.span.start.line,
                error.span.start.column,
                error.with_hint(),
                "check indentation and quoting",
            )
        })?;
        let value = if located.value.is_null() {
            serde_json::Value::Object(serde_json::Map::new())
        } else {
            located.value.clone()
        };
        let config: LintConfig = serde_path_to_error::deserialize(&value).map_err(|error| {
            let pointer = crate::scenario::load::path_to_pointer(error.path());
            let span = located.spans.value(&pointer);
            invalid(
                span.start.line,
                span.start.column,
                error.inner().to_string(),
                "the keys are `disable`, `severity`, `failure-threshold` and `secrets` (see docs/lint.md)",
            )
        })?;
        if let Some(problem) = config.unknown_rules().into_iter().next() {
            let span = if problem.pointer.starts_with("/severity/") {
                located.spans.key(&problem.pointer)
            } else {
                located.spans.value(&problem.pointer)
            };
            return Err(invalid(
                span.start.line,
                span.start.column,
                problem.message,
                UNKNOWN_RULE_HINT,
            ));
        }
        Ok(config)
    }

    /// Rule IDs that name no rule, each with its JSON pointer inside this
    /// configuration (`/disable/0`, `/severity/DF099`): for a file that embeds
    /// `LintConfig` (the project file's `lint:` section) to locate them.
    pub fn unknown_rules(&self) -> Vec<UnknownRule> {
        let disabled = self
            .disable
            .iter()
            .enumerate()
            .map(|(index, rule)| (format!("/disable/{index}"), rule));
        let overridden = self
            .severity
            .keys()
            .map(|rule| (format!("/severity/{}", yaml::escape_segment(rule)), rule));
        disabled
            .chain(overridden)
            .filter(|(_, rule)| !known_rule(rule))
            .map(|(pointer, rule)| UnknownRule {
                pointer,
                message: format!("expected a rule ID, found `{rule}`"),
            })
            .collect()
    }

    /// The secret policy of DF005.
    pub fn secret_policy(&self) -> SecretPolicy {
        SecretPolicy {
            allow: self.secrets.allow.clone(),
        }
    }

    /// Drop disabled rules and apply severity overrides.
    pub fn apply(&self, findings: &mut Vec<Finding>) {
        findings.retain(|finding| !self.disable.iter().any(|rule| finding.is(rule)));
        for finding in findings.iter_mut() {
            if let Some(level) = self
                .severity
                .iter()
                .find(|(rule, _)| finding.is(rule))
                .map(|(_, level)| *level)
            {
                finding.level = level;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_config_loads() {
        let config = LintConfig::from_yaml(
            "lint.yaml",
            "disable: [DF004, DL3059]\nseverity: { DF003: warning }\nfailure-threshold: warning\nsecrets: { allow: [NPM_TOKEN] }\n",
        )
        .unwrap();
        assert_eq!(config.disable, vec!["DF004", "DL3059"]);
        assert_eq!(config.severity.get("DF003"), Some(&Level::Warning));
        assert_eq!(config.failure_threshold, Some(Threshold::Warning));
        assert_eq!(config.secrets.allow, vec!["NPM_TOKEN"]);
        assert_eq!(
            LintConfig::from_yaml("x", "").unwrap(),
            LintConfig::default()
        );
    }

    #[test]
    fn unknown_keys_and_rules_are_located() {
        let error = LintConfig::from_yaml("lint.yaml", "disable: [DF004]\nignored: [DF001]\n")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("lint.yaml:2:"), "{error}");
        assert!(error.contains("unknown field `ignored`"), "{error}");
        let error = LintConfig::from_yaml("lint.yaml", "severity:\n  DF099: error\n")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("lint.yaml:2:3:"), "{error}");
        assert!(error.contains("`DF099`"), "{error}");
        let error = LintConfig::from_yaml("lint.yaml", "severity: { DF001: fatal }\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("fatal"), "{error}");
    }

    #[test]
    fn the_config_has_a_json_schema_for_the_project_file() {
        let schema = serde_json::to_value(schemars::schema_for!(LintConfig)).unwrap();
        let properties = schema["properties"].as_object().unwrap();
        let keys: Vec<&str> = properties.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["disable", "severity", "failure-threshold", "secrets"]
        );
        assert_eq!(schema["additionalProperties"], false);
    }

    #[test]
    fn thresholds_order_levels() {
        assert!(Threshold::Warning.fails(Level::Error));
        assert!(Threshold::Warning.fails(Level::Warning));
        assert!(!Threshold::Warning.fails(Level::Info));
        assert!(!Threshold::None.fails(Level::Error));
        assert!(Threshold::Style.fails(Level::Style));
    }
}
