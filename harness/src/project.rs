//! The project file, `dockproof.toml`: what a repository's suite is (scenario paths,
//! fake and fixture image directories, backend, reports, hosts, canary gates), found by
//! walking up from the working directory as cargo finds `Cargo.toml`.
//!
//! Every path in it is relative to the file's own directory, never to where dockproof
//! was started: `dockproof run` from a subdirectory runs the same suite and writes the
//! same reports. Command-line flags and environment variables override it (the binary
//! applies it only to values left at their defaults). `builtin` in `fake_images` or
//! `fixture_images` names the images shipped inside the dockproof binary
//! ([`crate::builtin`]).

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;

/// The file's name.
pub const FILE_NAME: &str = "dockproof.toml";

/// What `fake_images`/`fixture_images` call the images shipped with dockproof.
pub const BUILTIN: &str = "builtin";

/// The project file as written.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProjectFile {
    /// Scenario files or directories (searched for `*.yaml`).
    #[serde(default)]
    pub scenarios: Vec<String>,
    /// The default backend.
    pub backend: Option<Backend>,
    /// Fake image definition directories for `--backend fake` (`builtin`: the shipped
    /// `dockproof/job-runner:1` and `dockproof/web:1`).
    #[serde(default)]
    pub fake_images: Vec<String>,
    /// Real fixture image directories (a `Dockerfile` per subdirectory), built on demand
    /// on real daemons (`builtin`: the shipped job-runner and web images).
    #[serde(default)]
    pub fixture_images: Vec<String>,
    /// Scenarios run at once.
    pub jobs: Option<usize>,
    /// Hosts `run` runs on (`NAME=DOCKER_HOST`, `fake://NAME?faults=SPEC`, `local`).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// As `run --keep-failed`: leave what failed scenarios created in place for debugging
    /// (default false; a project file that says `true` asks for it in CI too).
    pub keep_failed: Option<bool>,
    /// Reports every run writes.
    #[serde(default)]
    pub reports: Reports,
    /// The canary gate.
    #[serde(default)]
    pub canary: Canary,
    /// `dockproof lint`'s configuration (as `--lint-config`, which wins): disabled rules,
    /// severity overrides, failure threshold, secret allow-list (docs/lint.md).
    pub lint: Option<crate::lint::LintConfig>,
    /// Scenario variables' defaults for every scenario, under each scenario's own `vars:`
    /// (`--vars-file` and `--var` override both).
    #[serde(default)]
    pub vars: std::collections::BTreeMap<String, crate::scenario::Text>,
}

/// `[reports]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Reports {
    /// Formats written to `dir` (all four when `dir` is set and this is not).
    #[serde(default)]
    pub formats: Vec<ReportFormat>,
    /// Where they go.
    pub dir: Option<String>,
}

/// `[canary]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Canary {
    /// Hosts of the canary (as `--host`).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// A YAML hosts file (as `--hosts-file`).
    pub hosts_file: Option<String>,
    /// The gates file (as `--gates`).
    pub gates: Option<String>,
    /// The tag that marks canary scenarios.
    pub tag: Option<String>,
    /// Runs of the suite per host.
    pub repeat: Option<u32>,
}

/// A backend by name.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    Fake,
    DockerCli,
    DockerApi,
}

/// A report format by name.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ReportFormat {
    Junit,
    Json,
    Markdown,
    Html,
}

/// A project file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}\n  = hint: {hint}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
        hint: String,
    },
}

/// A loaded project file and the directory its paths are relative to.
#[derive(Debug, Clone)]
pub struct Project {
    pub file: PathBuf,
    pub root: PathBuf,
    pub settings: ProjectFile,
}

/// The largest project file read (it is a short list of settings).
const MAX_BYTES: u64 = 1 << 20;

impl Project {
    /// The nearest `dockproof.toml` in `start` or a directory above it.
    pub fn find(start: &Path) -> Option<PathBuf> {
        start
            .ancestors()
            .map(|dir| dir.join(FILE_NAME))
            .find(|candidate| candidate.is_file())
    }

    /// The project of `start`'s nearest project file, if there is one.
    pub fn discover(start: &Path) -> Result<Option<Project>, ProjectError> {
        Project::find(start)
            .map(|file| Project::load(&file))
            .transpose()
    }

    /// Read and validate `file`.
    pub fn load(file: &Path) -> Result<Project, ProjectError> {
        let read_error = |source| ProjectError::Read {
            path: file.to_path_buf(),
            source,
        };
        let size = std::fs::metadata(file).map_err(read_error)?.len();
        if size > MAX_BYTES {
            return Err(ProjectError::Invalid {
                path: file.to_path_buf(),
                line: 1,
                column: 1,
                message: format!(
                    "the file is {size} bytes, more than the {MAX_BYTES} a project file may have"
                ),
                hint: "a project file lists settings and paths; keep data in the files it names"
                    .into(),
            });
        }
        let text = std::fs::read_to_string(file).map_err(read_error)?;
        let settings = parse(&text).map_err(|(offset, message, hint)| {
            let (line, column) = line_column(&text, offset);
            ProjectError::Invalid {
                path: file.to_path_buf(),
                line,
                column,
                message,
                hint,
            }
        })?;
        if let Some(unknown) = settings
            .lint
            .as_ref()
            .and_then(|lint| lint.unknown_rules().into_iter().next())
        {
            // Located at the `[lint]` table (TOML spans of values inside it are not kept).
            let offset = text.find("[lint").unwrap_or(0);
            let (line, column) = line_column(&text, offset);
            return Err(ProjectError::Invalid {
                path: file.to_path_buf(),
                line,
                column,
                message: format!("[lint] {}: {}", unknown.pointer, unknown.message),
                hint: "rule IDs are dockproof's DF…/DC… and hadolint's DL…/SC… (docs/lint.md)"
                    .into(),
            });
        }
        let root = file
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        Ok(Project {
            file: file.to_path_buf(),
            root,
            settings,
        })
    }

    /// `path` from the file, relative to the file's directory (absolute stays absolute).
    pub fn resolve(&self, path: &str) -> PathBuf {
        self.root.join(path)
    }

    /// Resolve every entry of an image directory list; `builtin` stays as it is.
    pub fn resolve_image_dirs(&self, dirs: &[String]) -> Vec<PathBuf> {
        dirs.iter()
            .map(|dir| {
                if dir == BUILTIN {
                    PathBuf::from(BUILTIN)
                } else {
                    self.resolve(dir)
                }
            })
            .collect()
    }
}

/// The settings of `text`, or (byte offset, message, hint) of the first problem.
fn parse(text: &str) -> Result<ProjectFile, (usize, String, String)> {
    toml::from_str::<ProjectFile>(text).map_err(|error| {
        let offset = error.span().map_or(0, |span| span.start);
        let message = error.message().trim().to_owned();
        let hint = hint_for(&message);
        (offset, message, hint)
    })
}

/// Every key the file knows, for "did you mean".
const KEYS: &[&str] = &[
    "scenarios",
    "backend",
    "fake_images",
    "fixture_images",
    "jobs",
    "hosts",
    "reports",
    "canary",
    "formats",
    "dir",
    "hosts_file",
    "gates",
    "tag",
    "repeat",
    "lint",
];

fn hint_for(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((key, _)) = rest.split_once('`')
    {
        return match crate::suggest::closest(key, KEYS.iter().copied()) {
            Some(known) => format!("did you mean `{known}`?"),
            None => "see docs/project.md for the keys a project file has".into(),
        };
    }
    if message.starts_with("unknown variant") {
        return "see docs/project.md for the accepted values".into();
    }
    "see docs/project.md; `dockproof schema --project-file` prints the file's JSON Schema".into()
}

/// 1-based line and column (in characters) of byte `offset`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit_once('\n')
        .map_or(before, |(_, last)| last)
        .chars()
        .count()
        + 1;
    (line, column)
}

/// The JSON Schema of the project file.
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(ProjectFile)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_setting() {
        let settings = parse(
            "scenarios = [\"scenarios\"]\nbackend = \"docker-api\"\nfake_images = [\"builtin\", \"fake\"]\njobs = 3\n[reports]\nformats = [\"junit\"]\ndir = \"out\"\n[canary]\ngates = \"gates.yaml\"\nrepeat = 2\n",
        )
        .unwrap();
        assert_eq!(settings.backend, Some(Backend::DockerApi));
        assert_eq!(settings.fake_images, ["builtin", "fake"]);
        assert_eq!(settings.reports.formats, [ReportFormat::Junit]);
        assert_eq!(settings.canary.repeat, Some(2));
        assert_eq!(settings.keep_failed, None);
        assert_eq!(
            parse("keep_failed = true\n").unwrap().keep_failed,
            Some(true)
        );
    }

    #[test]
    fn the_lint_section_is_the_lint_configuration() {
        let settings =
            parse("[lint]\ndisable = [\"DF002\"]\nfailure-threshold = \"warning\"\n").unwrap();
        let lint = settings.lint.expect("a lint section");
        assert_eq!(lint.disable, ["DF002"]);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(FILE_NAME);
        std::fs::write(&file, "jobs = 1\n[lint]\ndisable = [\"DF999x\"]\n").unwrap();
        let error = Project::load(&file).unwrap_err().to_string();
        assert!(
            error.contains(":2:1: [lint] /disable/0: expected a rule ID"),
            "{error}"
        );
    }

    #[test]
    fn an_unknown_key_is_located_with_a_suggestion() {
        let text = "scenarios = [\"s\"]\nscenario = [\"t\"]\n";
        let (offset, message, hint) = parse(text).unwrap_err();
        assert_eq!(line_column(text, offset), (2, 1));
        assert!(message.contains("unknown field `scenario`"), "{message}");
        assert_eq!(hint, "did you mean `scenarios`?");
    }

    #[test]
    fn an_unknown_backend_is_located() {
        let text = "jobs = 2\nbackend = \"docker\"\n";
        let (offset, message, _) = parse(text).unwrap_err();
        assert_eq!(line_column(text, offset).0, 2);
        assert!(message.contains("docker-cli"), "{message}");
    }

    #[test]
    fn paths_resolve_against_the_file_not_the_working_directory() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        std::fs::create_dir_all(&nested).unwrap();
        std::fs::write(
            dir.path().join(FILE_NAME),
            "scenarios = [\"suite\"]\nfake_images = [\"builtin\", \"fakes\"]\n",
        )
        .unwrap();
        let project = Project::discover(&nested).unwrap().expect("found above");
        assert_eq!(project.root, dir.path());
        assert_eq!(project.resolve("suite"), dir.path().join("suite"));
        assert_eq!(
            project.resolve_image_dirs(&project.settings.fake_images),
            [PathBuf::from("builtin"), dir.path().join("fakes")]
        );
        assert!(Project::discover(&std::env::temp_dir().join("no-such-dir-dockproof")).is_ok());
    }
}
