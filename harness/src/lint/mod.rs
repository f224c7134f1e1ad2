//! Static checks of Dockerfiles and compose files, without any daemon.
//!
//! Every rule has a stable ID and a level; a finding names the line it is
//! about. `dockproof lint` prints `file:line: RULE-ID message` and exits 1
//! when any finding is at error level.

pub mod compose;
pub mod dockerfile;

use std::path::Path;

use serde::Serialize;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Warning,
    Error,
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Level::Warning => "warning",
            Level::Error => "error",
        })
    }
}

/// A static rule: a stable ID, its level and what it checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub id: &'static str,
    pub level: Level,
    pub summary: &'static str,
}

/// One rule broken at one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub level: Level,
    /// 1-based line.
    pub line: usize,
    pub message: String,
}

impl Finding {
    pub fn new(rule: &Rule, line: usize, message: impl Into<String>) -> Self {
        Finding {
            rule: rule.id,
            level: rule.level,
            line,
            message: message.into(),
        }
    }
}

/// Why a file could not be linted at all.
#[derive(Debug, thiserror::Error)]
pub enum LintError {
    #[error("failed to read `{path}`: {source}")]
    Read {
        path: String,
        source: crate::input_file::InputFileError,
    },
    #[error("`{path}` is not a valid Dockerfile: {message}")]
    Dockerfile { path: String, message: String },
    #[error("`{path}`:{line}:{column}: not valid YAML: {message}")]
    Yaml {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "`{path}` is neither a Dockerfile nor a compose file (a compose file is YAML with a top-level `services:` mapping)"
    )]
    Unknown { path: String },
}

/// What kind of file `lint` was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Dockerfile,
    Compose,
}

/// Tell Dockerfiles and compose files apart, by name first, then by content.
pub fn detect(path: &Path, text: &str) -> Option<FileKind> {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if name == "dockerfile" || name.starts_with("dockerfile.") || name.ends_with(".dockerfile") {
        return Some(FileKind::Dockerfile);
    }
    if name.ends_with(".yml") || name.ends_with(".yaml") {
        return Some(FileKind::Compose);
    }
    let first = text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with('#'))?;
    let keyword = first.split_whitespace().next()?.to_ascii_uppercase();
    if keyword == "FROM" || keyword == "ARG" {
        Some(FileKind::Dockerfile)
    } else if text.lines().any(|line| line.trim_end() == "services:") {
        Some(FileKind::Compose)
    } else {
        None
    }
}

/// Lint one file of either kind.
pub fn lint_file(path: &Path) -> Result<Vec<Finding>, LintError> {
    let shown = path.display().to_string();
    // A FIFO or device named on the command line is refused, never opened.
    let text = crate::input_file::read_config(path).map_err(|source| LintError::Read {
        path: shown.clone(),
        source,
    })?;
    let mut findings = match detect(path, &text) {
        Some(FileKind::Dockerfile) => {
            dockerfile::lint(&text).map_err(|message| LintError::Dockerfile {
                path: shown,
                message,
            })?
        }
        Some(FileKind::Compose) => {
            compose::lint(&text, path.parent()).map_err(|(line, column, message)| {
                LintError::Yaml {
                    path: shown,
                    line,
                    column,
                    message,
                }
            })?
        }
        None => return Err(LintError::Unknown { path: shown }),
    };
    findings.sort_by(|a, b| (a.line, a.rule).cmp(&(b.line, b.rule)));
    Ok(findings)
}

/// Whether an environment/argument name or value looks like it holds a secret.
pub fn looks_secret(name: &str, value: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let secret_name = [
        "password",
        "passwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "api-key",
        "private_key",
        "access_key",
        "credential",
    ]
    .iter()
    .any(|word| name.contains(word));
    let value = value.trim().trim_matches('"').trim_matches('\'');
    let placeholder = value.is_empty()
        || value.starts_with('$')
        || value.starts_with('<')
        || value.eq_ignore_ascii_case("changeme");
    let secret_value = [
        "AKIA",
        "ghp_",
        "gho_",
        "github_pat_",
        "xoxb-",
        "sk_live_",
        "-----BEGIN",
    ]
    .iter()
    .any(|prefix| value.starts_with(prefix));
    (secret_name && !placeholder) || secret_value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_files_apart() {
        assert_eq!(
            detect(Path::new("x/Dockerfile"), ""),
            Some(FileKind::Dockerfile)
        );
        assert_eq!(
            detect(Path::new("api.dockerfile"), ""),
            Some(FileKind::Dockerfile)
        );
        assert_eq!(
            detect(Path::new("docker-compose.yml"), ""),
            Some(FileKind::Compose)
        );
        assert_eq!(
            detect(Path::new("build"), "# base\nFROM scratch\n"),
            Some(FileKind::Dockerfile)
        );
        assert_eq!(
            detect(Path::new("stack"), "services:\n  a: {}\n"),
            Some(FileKind::Compose)
        );
        assert_eq!(detect(Path::new("notes.txt"), "hello"), None);
    }

    #[test]
    fn secret_detection_skips_placeholders() {
        assert!(looks_secret("DB_PASSWORD", "hunter2"));
        assert!(!looks_secret("DB_PASSWORD", "${DB_PASSWORD}"));
        assert!(!looks_secret("DB_PASSWORD", ""));
        assert!(looks_secret("AWS", "AKIAIOSFODNN7EXAMPLE"));
        assert!(!looks_secret("LOG_LEVEL", "debug"));
    }
}
