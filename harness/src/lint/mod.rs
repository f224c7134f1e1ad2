//! Static checks of Dockerfiles and compose files, without any daemon.
//!
//! Every rule has a stable ID and a level; a finding names the line and column
//! it is about and which tool found it (dockproof, or hadolint when it is
//! installed: [`hadolint`]). [`lint_file_with`] runs everything for one file:
//! dockproof's rules, hadolint, the fold of duplicate rules, inline ignores and
//! the [`LintConfig`]; [`output`] renders the result as text, JSON, SARIF,
//! Checkstyle or JUnit. See docs/lint.md.

pub mod compose;
pub mod config;
pub mod dockerfile;
pub mod hadolint;
pub mod ignore;
pub mod output;
pub mod parser;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use config::{LintConfig, LintConfigError};

/// How serious a finding is (hadolint's four levels, lowest first).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Style,
    Info,
    Warning,
    Error,
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Level::Style => "style",
            Level::Info => "info",
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

/// Which program found a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Dockproof,
    Hadolint,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Dockproof => "dockproof",
            Source::Hadolint => "hadolint",
        })
    }
}

/// One rule broken at one place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: String,
    pub level: Level,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (1 when only the line is known).
    pub column: usize,
    pub message: String,
    pub source: Source,
    /// Rules of the other tool folded into this finding (e.g. hadolint's DL3007 into DF001).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<String>,
}

impl Finding {
    /// A dockproof finding at a line (column 1).
    pub fn new(rule: &Rule, line: usize, message: impl Into<String>) -> Self {
        Self::at(rule, line, 1, message)
    }

    /// A dockproof finding at a line and column.
    pub fn at(rule: &Rule, line: usize, column: usize, message: impl Into<String>) -> Self {
        Finding {
            rule: rule.id.to_owned(),
            level: rule.level,
            line,
            column: column.max(1),
            message: message.into(),
            source: Source::Dockproof,
            also: Vec::new(),
        }
    }

    /// Whether this finding is `rule`, or has `rule` folded into it.
    pub fn is(&self, rule: &str) -> bool {
        self.rule.eq_ignore_ascii_case(rule)
            || self.also.iter().any(|also| also.eq_ignore_ascii_case(rule))
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
    #[error("{path}:{source}")]
    Dockerfile {
        path: String,
        source: parser::ParseError,
    },
    #[error("{path}:{line}:{column}: not valid YAML: {message}")]
    Yaml {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error(transparent)]
    Hadolint(#[from] hadolint::HadolintError),
    #[error(
        "`{path}` is neither a Dockerfile nor a compose file (a compose file is YAML with a top-level `services:` mapping)"
    )]
    Unknown { path: String },
}

impl LintError {
    /// Where in the file the problem is, when it is about a place in it.
    pub fn location(&self) -> Option<(usize, usize)> {
        match self {
            LintError::Dockerfile { source, .. } => Some((source.at.line, source.at.column)),
            LintError::Yaml { line, column, .. } => Some((*line, *column)),
            _ => None,
        }
    }
}

/// A file `lint` could not lint, for the structured formats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileError {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    pub message: String,
}

impl FileError {
    /// The error of one file named on the command line.
    pub fn new(path: &Path, error: &LintError) -> Self {
        let location = error.location();
        FileError {
            path: path.display().to_string(),
            line: location.map(|(line, _)| line),
            column: location.map(|(_, column)| column),
            message: error.to_string(),
        }
    }
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
    if name == "dockerfile"
        || name.starts_with("dockerfile.")
        || name.ends_with(".dockerfile")
        || name == "containerfile"
    {
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

/// Lint one file of either kind with dockproof's rules and its inline ignores, no
/// hadolint and no configuration (what a scenario's `lint` step checks).
pub fn lint_file(path: &Path) -> Result<Vec<Finding>, LintError> {
    lint_file_with(path, &LintConfig::default(), None).map(|report| report.findings)
}

/// What `dockproof lint` found in one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub path: String,
    pub findings: Vec<Finding>,
}

/// Lint one file with everything: dockproof's rules, hadolint's (Dockerfiles, when
/// `hadolint` is given), duplicates folded, inline ignores and `config` applied.
pub fn lint_file_with(
    path: &Path,
    config: &LintConfig,
    hadolint: Option<&hadolint::Hadolint>,
) -> Result<FileReport, LintError> {
    let (text, kind) = read(path)?;
    let shown = path.display().to_string();
    let (mut findings, pragmas) = match kind {
        FileKind::Dockerfile => {
            let file = parser::parse(&text).map_err(|source| LintError::Dockerfile {
                path: shown.clone(),
                source,
            })?;
            let mut findings = dockerfile::lint_parsed(&file, &config.secret_policy());
            if let Some(hadolint) = hadolint {
                let theirs = hadolint.run(path)?;
                let instructions: Vec<_> = file
                    .instructions
                    .iter()
                    .map(|instruction| instruction.lines())
                    .collect();
                findings = hadolint::fold(findings, theirs, |line| {
                    instructions
                        .iter()
                        .find(|lines| lines.contains(&line))
                        .map(|lines| *lines.start())
                });
            }
            (findings, ignore::dockerfile_pragmas(&file))
        }
        FileKind::Compose => (
            own_findings(path, &text, kind, &config.secret_policy())?,
            ignore::line_pragmas(&text),
        ),
    };
    findings.retain(|finding| !ignore::silenced(&pragmas, finding));
    config.apply(&mut findings);
    sort(&mut findings);
    Ok(FileReport {
        path: shown,
        findings,
    })
}

fn read(path: &Path) -> Result<(String, FileKind), LintError> {
    let shown = path.display().to_string();
    // A FIFO or device named on the command line is refused, never opened.
    let text = crate::input_file::read_config(path).map_err(|source| LintError::Read {
        path: shown.clone(),
        source,
    })?;
    let kind = detect(path, &text).ok_or(LintError::Unknown { path: shown })?;
    Ok((text, kind))
}

fn own_findings(
    path: &Path,
    text: &str,
    kind: FileKind,
    secrets: &SecretPolicy,
) -> Result<Vec<Finding>, LintError> {
    let shown = path.display().to_string();
    match kind {
        FileKind::Dockerfile => {
            dockerfile::lint(text, secrets).map_err(|source| LintError::Dockerfile {
                path: shown,
                source,
            })
        }
        FileKind::Compose => {
            compose::lint(text, path.parent()).map_err(|(line, column, message)| LintError::Yaml {
                path: shown,
                line,
                column,
                message,
            })
        }
    }
}

fn sort(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        (a.line, a.column, &a.rule, a.source).cmp(&(b.line, b.column, &b.rule, b.source))
    });
}

/// Which names and values count as secrets (DF005, DC007).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretPolicy {
    /// Variable names never reported (exact, case-insensitive), e.g. `NPM_TOKEN_FILE`.
    pub allow: Vec<String>,
}

impl SecretPolicy {
    /// Whether an environment/argument name and value look like a secret.
    pub fn looks_secret(&self, name: &str, value: &str) -> bool {
        if self
            .allow
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(name))
        {
            return false;
        }
        looks_secret(name, value)
    }
}

/// Names whose value is where something is, not a secret (`TOKEN_URL`, `AUTH_TOKEN_ENDPOINT`).
const LOCATION_SUFFIXES: [&str; 8] = [
    "_url",
    "_uri",
    "_endpoint",
    "_host",
    "_path",
    "_file",
    "_dir",
    "_name",
];

/// Whether an environment/argument name or value looks like it holds a secret.
pub fn looks_secret(name: &str, value: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let value = value.trim().trim_matches('"').trim_matches('\'');
    let url = value.contains("://");
    // A URL is not a secret because its name or path says "token", unless it
    // carries a password (`https://user:pass@host`).
    if url {
        let authority = value
            .split_once("://")
            .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or_default())
            .unwrap_or_default();
        return authority
            .split_once('@')
            .is_some_and(|(userinfo, _)| userinfo.contains(':') && !userinfo.ends_with(':'));
    }
    let location_name = LOCATION_SUFFIXES
        .iter()
        .any(|suffix| name.ends_with(suffix));
    let secret_name = !location_name
        && [
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

    #[test]
    fn urls_are_secrets_only_with_a_password_in_them() {
        assert!(!looks_secret(
            "OAUTH_TOKEN_URL",
            "https://auth.example.com/oauth/token"
        ));
        assert!(!looks_secret(
            "TOKEN",
            "https://auth.example.com/token?grant=x"
        ));
        assert!(!looks_secret("GITHUB_TOKEN_FILE", "/run/secrets/token"));
        assert!(looks_secret(
            "DATABASE_URL",
            "postgres://app:hunter2@db:5432/app"
        ));
        assert!(!looks_secret("DATABASE_URL", "postgres://app@db:5432/app"));
        assert!(looks_secret("GITHUB_TOKEN", "abc"));
        let policy = SecretPolicy {
            allow: vec!["github_token".into()],
        };
        assert!(!policy.looks_secret("GITHUB_TOKEN", "abc"));
    }
}
