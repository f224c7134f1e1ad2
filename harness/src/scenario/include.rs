//! Includes: a step `include: { file: F, with: { NAME: VALUE } }` is replaced, when the
//! scenario loads, by the steps of the fragment file `F` (shaped like a GitHub composite
//! action: `params:` with defaults, then `steps:`), its `{{ params.NAME }}` filled in.
//!
//! Included steps keep where they came from: their spans carry the included file's number
//! (`SourceSpan::source`), so every later problem (schema, variables, semantics, a failure
//! at run time) names the fragment's file:line:col, and the chain of including lines is in
//! [`IncludedFile::included_from`]. Problems of the include itself (a missing file, a
//! cycle, a path out of the project, unknown or missing parameters) are reported at the
//! include's line. Nesting, the number of includes and their bytes are bounded.

use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use regex::Regex;
use serde_json::{Map, Value};

use super::diagnostic::Diagnostic;
use super::vars;
use super::yaml::{self, SourceSpan, SpanIndex};

/// How a fragment file's name ends (so scenario discovery leaves it alone).
pub const FRAGMENT_SUFFIXES: [&str; 2] = [".fragment.yaml", ".fragment.yml"];

/// Includes nested deeper than this are refused.
pub const MAX_INCLUDE_DEPTH: usize = 8;

/// At most this many includes are expanded for one scenario (nested ones count).
pub const MAX_INCLUDES: usize = 64;

/// At most this many bytes of included text are read for one scenario.
pub const MAX_INCLUDED_BYTES: usize = 8 * 1024 * 1024;

/// A file a scenario included, for rendering problems inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncludedFile {
    /// The path as resolved from the including file's directory.
    pub path: PathBuf,
    /// Its text.
    pub source: String,
    /// The `include` that pulled it in (in file `included_from.source`).
    pub included_from: SourceSpan,
}

/// Whether `path` names a fragment (`*.fragment.yaml`), not a scenario.
pub fn is_fragment_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| {
            FRAGMENT_SUFFIXES
                .iter()
                .any(|suffix| name.ends_with(suffix))
        })
}

/// The directory includes may not leave: the nearest directory at or above
/// `scenario_dir` holding `dockproof.toml` or `.git`, else `scenario_dir` itself.
pub fn include_root(scenario_dir: &Path) -> PathBuf {
    let start = std::fs::canonicalize(scenario_dir).unwrap_or_else(|_| scenario_dir.to_path_buf());
    start
        .ancestors()
        .find(|dir| dir.join(crate::project::FILE_NAME).exists() || dir.join(".git").exists())
        .map_or(start.clone(), Path::to_path_buf)
}

/// `{{ params.NAME }}` and `{{ fragment.dir }}` in a fragment's texts.
fn reference_pattern() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN.get_or_init(|| {
        Regex::new(r"\{\{\s*(params|fragment)\.([A-Za-z0-9_.-]+)\s*\}\}").expect("valid pattern")
    })
}

/// Replace the include steps of `located` (a scenario as read from `main_file`, whose
/// relative paths resolve against `base_dir`) by the steps of their fragments, keeping
/// each step's spans. Returns the files included (source `n` is element `n - 1`) and
/// every problem found.
pub(crate) fn expand(
    located: &mut yaml::Located,
    main_file: Option<&Path>,
    base_dir: &Path,
    root: &Path,
) -> (Vec<IncludedFile>, Vec<Diagnostic>) {
    let Some(Value::Array(steps)) = located.value.get("steps") else {
        return (Vec::new(), Vec::new());
    };
    if !steps.iter().any(|step| step.get("include").is_some()) {
        return (Vec::new(), Vec::new());
    }
    let steps = steps.clone();
    let canonical_base = std::fs::canonicalize(base_dir).unwrap_or_else(|_| base_dir.to_path_buf());
    let mut expander = Expander {
        root: std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf()),
        canonical_base: canonical_base.clone(),
        files: Vec::new(),
        indices: vec![located.spans.clone()],
        bytes: 0,
        diagnostics: Vec::new(),
    };
    let mut stack: Vec<PathBuf> = main_file
        .and_then(|file| std::fs::canonicalize(file).ok())
        .into_iter()
        .collect();
    let dirs = Dirs {
        shown: base_dir.to_path_buf(),
        canonical: canonical_base,
    };
    let expanded = expander.steps(&steps, 0, &dirs, &mut stack, 0);
    let mut spans = located.spans.clone();
    spans.remove_under("/steps");
    let mut values = Vec::with_capacity(expanded.len());
    for (index, (value, source, pointer)) in expanded.into_iter().enumerate() {
        spans.graft(
            &format!("/steps/{index}"),
            &expander.indices[source as usize],
            &pointer,
            source,
        );
        values.push(value);
    }
    if let Value::Object(members) = &mut located.value {
        members.insert("steps".into(), Value::Array(values));
    }
    located.spans = spans;
    (expander.files, expander.diagnostics)
}

struct Expander {
    root: PathBuf,
    canonical_base: PathBuf,
    files: Vec<IncludedFile>,
    /// Spans of each file by source number (0: the scenario).
    indices: Vec<SpanIndex>,
    bytes: usize,
    diagnostics: Vec<Diagnostic>,
}

/// A step after expansion: its value, the file it came from, its pointer there.
type Placed = (Value, u32, String);

/// A file's directory: as the user named it (for messages) and canonical (for checks).
struct Dirs {
    shown: PathBuf,
    canonical: PathBuf,
}

impl Expander {
    fn span(&self, source: u32, pointer: &str) -> SourceSpan {
        SourceSpan {
            source,
            ..self.indices[source as usize].value(pointer)
        }
    }

    fn key_span(&self, source: u32, pointer: &str) -> SourceSpan {
        SourceSpan {
            source,
            ..self.indices[source as usize].key(pointer)
        }
    }

    fn problem(&mut self, span: SourceSpan, message: String, expected: &str, hint: &str) {
        self.diagnostics
            .push(Diagnostic::new(span, message).expected(expected).hint(hint));
    }

    /// `steps` of file `source` (in directory `dir`), includes replaced.
    fn steps(
        &mut self,
        steps: &[Value],
        source: u32,
        dir: &Dirs,
        stack: &mut Vec<PathBuf>,
        depth: usize,
    ) -> Vec<Placed> {
        let mut placed = Vec::new();
        for (index, step) in steps.iter().enumerate() {
            let pointer = format!("/steps/{index}");
            match step.get("include") {
                Some(include) => {
                    placed.extend(self.include(step, include, source, &pointer, dir, stack, depth));
                }
                None => placed.push((step.clone(), source, pointer)),
            }
        }
        placed
    }

    /// One include step at `pointer` of file `source`: the fragment's steps, or nothing
    /// (with diagnostics) when it cannot be used.
    #[allow(clippy::too_many_arguments)]
    fn include(
        &mut self,
        step: &Value,
        include: &Value,
        source: u32,
        pointer: &str,
        dir: &Dirs,
        stack: &mut Vec<PathBuf>,
        depth: usize,
    ) -> Vec<Placed> {
        const SHAPE: &str = "`include: { file: NAME.fragment.yaml, with: { PARAM: VALUE } }`";
        let include_pointer = format!("{pointer}/include");
        let at = self.span(source, &include_pointer);
        if let Some(members) = step.as_object() {
            for key in members.keys().filter(|key| *key != "include") {
                let span =
                    self.key_span(source, &format!("{pointer}/{}", yaml::escape_segment(key)));
                self.problem(
                    span,
                    format!("an `include` step has no `{key}`"),
                    SHAPE,
                    "an include stands for the fragment's steps: put names and expectations in the fragment",
                );
            }
        }
        let Some(members) = include.as_object() else {
            self.problem(
                at,
                "`include` must be a mapping".into(),
                SHAPE,
                "name the fragment under `file:`",
            );
            return Vec::new();
        };
        for key in members
            .keys()
            .filter(|key| !matches!(key.as_str(), "file" | "with"))
        {
            let span = self.key_span(
                source,
                &format!("{include_pointer}/{}", yaml::escape_segment(key)),
            );
            self.problem(
                span,
                format!("unknown key `{key}` in `include`"),
                "`file` and `with`",
                "see \"Includes\" in docs/scenarios.md",
            );
        }
        let file_pointer = format!("{include_pointer}/file");
        let file_span = self.span(source, &file_pointer);
        let Some(file) = members.get("file").and_then(Value::as_str) else {
            self.problem(
                at,
                "`include` needs `file:`, a fragment's path".into(),
                SHAPE,
                "the path is relative to this file's directory",
            );
            return Vec::new();
        };
        if depth >= MAX_INCLUDE_DEPTH {
            self.problem(
                file_span,
                format!("includes are nested more than {MAX_INCLUDE_DEPTH} deep"),
                "fragments that include at most a few levels of fragments",
                "flatten the fragments",
            );
            return Vec::new();
        }
        if self.files.len() >= MAX_INCLUDES {
            self.problem(
                file_span,
                format!("more than {MAX_INCLUDES} includes in one scenario"),
                "fewer includes",
                "split the scenario",
            );
            return Vec::new();
        }
        let relative = Path::new(file);
        if relative.is_absolute() || file.is_empty() {
            self.problem(
                file_span,
                format!("`{file}` is not a relative path"),
                "a path relative to this file's directory",
                "write it relative to the file that includes it",
            );
            return Vec::new();
        }
        let path = dir.canonical.join(relative);
        let shown = normalize(&dir.shown.join(relative));
        if !is_fragment_file(&path) {
            self.problem(
                file_span,
                format!("`{file}` is not a fragment file"),
                "a file named `*.fragment.yaml`",
                "rename it: scenario discovery skips `*.fragment.yaml`, so a fragment is never run on its own",
            );
            return Vec::new();
        }
        let canonical = match std::fs::canonicalize(&path) {
            Ok(canonical) => canonical,
            Err(error) => {
                self.problem(
                    file_span,
                    format!("cannot include `{file}`: {}", describe_io(&error)),
                    "an existing fragment file",
                    &format!("the path is relative to {}", shown_dir(&dir.shown)),
                );
                return Vec::new();
            }
        };
        if !canonical.starts_with(&self.root) {
            self.problem(
                file_span,
                format!("`{file}` is outside the project"),
                &format!("a fragment under {}", self.root.display()),
                "includes stay inside the project (the directory holding dockproof.toml or .git)",
            );
            return Vec::new();
        }
        if let Some(first) = stack.iter().position(|open| *open == canonical) {
            let cycle: Vec<String> = stack[first..]
                .iter()
                .chain(std::iter::once(&canonical))
                .map(|path| display_under(path, &self.root))
                .collect();
            self.problem(
                file_span,
                format!("include cycle: {}", cycle.join(" → ")),
                "fragments that do not include themselves",
                "remove one of these includes",
            );
            return Vec::new();
        }
        let text = match crate::input_file::read_config(&canonical) {
            Ok(text) => text,
            Err(error) => {
                self.problem(
                    file_span,
                    format!("cannot read `{file}`: {error}"),
                    "a regular UTF-8 file of at most 2 MiB",
                    "check the path and its permissions",
                );
                return Vec::new();
            }
        };
        self.bytes = self.bytes.saturating_add(text.len());
        if self.bytes > MAX_INCLUDED_BYTES {
            self.problem(
                file_span,
                format!("the included files of this scenario exceed {MAX_INCLUDED_BYTES} bytes"),
                "smaller fragments",
                "split the scenario",
            );
            return Vec::new();
        }
        let parsed = yaml::parse(&text);
        let number = u32::try_from(self.files.len() + 1).unwrap_or(u32::MAX);
        self.files.push(IncludedFile {
            path: shown.clone(),
            source: text,
            included_from: file_span,
        });
        let fragment = match parsed {
            Ok(located) => located,
            Err(error) => {
                self.indices.push(SpanIndex::default());
                let diagnostic = Diagnostic::new(
                    SourceSpan {
                        source: number,
                        ..error.span
                    },
                    error.message,
                )
                .hint(
                    error
                        .hint
                        .unwrap_or("check indentation, quoting and brackets around this spot"),
                );
                self.diagnostics.push(diagnostic);
                return Vec::new();
            }
        };
        self.indices.push(fragment.spans.clone());
        let before = self.diagnostics.len();
        let Some(members) = fragment.value.as_object() else {
            self.problem(
                self.span(number, ""),
                "a fragment is a mapping with `params:` and `steps:`".into(),
                "`params: { NAME: { default: VALUE } }` (optional) and `steps: [...]`",
                "see \"Includes\" in docs/scenarios.md",
            );
            return Vec::new();
        };
        for key in members
            .keys()
            .filter(|key| !matches!(key.as_str(), "description" | "params" | "steps"))
        {
            let span = self.key_span(number, &format!("/{}", yaml::escape_segment(key)));
            self.problem(
                span,
                format!("unknown key `{key}` in a fragment"),
                "`description`, `params` and `steps`",
                "a fragment holds steps only: scenario settings stay in the scenario",
            );
        }
        let steps = match members.get("steps") {
            Some(Value::Array(steps)) if !steps.is_empty() => steps.clone(),
            _ => {
                self.problem(
                    self.span(number, "/steps"),
                    "a fragment needs `steps:`, a non-empty list".into(),
                    "`steps: [...]`",
                    "see \"Includes\" in docs/scenarios.md",
                );
                Vec::new()
            }
        };
        let params = self.params(number, members.get("params"));
        let with = members_of(include.get("with"));
        if include.get("with").is_some_and(|with| !with.is_object()) {
            self.problem(
                self.span(source, &format!("{include_pointer}/with")),
                "`with` must be a mapping of parameters to values".into(),
                "`with: { PARAM: VALUE }`",
                "give each parameter its value",
            );
        }
        let mut values = Map::new();
        for (name, value) in &with {
            let with_pointer = format!("{include_pointer}/with/{}", yaml::escape_segment(name));
            if !params.iter().any(|(declared, _)| declared == name) {
                let known = names(&params);
                self.problem(
                    self.key_span(source, &with_pointer),
                    format!("`{file}` has no parameter `{name}`"),
                    &format!("one of its `params:` ({known})"),
                    "declare it in the fragment's `params:`, or drop it here",
                );
                continue;
            }
            match value {
                Value::String(_) | Value::Number(_) | Value::Bool(_) => {
                    values.insert(name.clone(), value.clone());
                }
                _ => self.problem(
                    self.span(source, &with_pointer),
                    format!("the value of `{name}` must be a string, number or boolean"),
                    "a scalar",
                    "quote it",
                ),
            }
        }
        for (name, default) in &params {
            if values.contains_key(name) {
                continue;
            }
            match default {
                Some(default) => {
                    values.insert(name.clone(), default.clone());
                }
                None => self.problem(
                    at,
                    format!("`{file}` needs the parameter `{name}`"),
                    &format!("`with: {{ {name}: VALUE }}`"),
                    "give every parameter without a `default` a value",
                ),
            }
        }
        if self.diagnostics.len() > before {
            return Vec::new();
        }
        let fragment_dir = canonical.parent().unwrap_or(Path::new("/")).to_path_buf();
        let relative_dir = relative_path(&self.canonical_base, &fragment_dir);
        let mut steps = steps;
        for (index, step) in steps.iter_mut().enumerate() {
            self.fill(
                step,
                number,
                &format!("/steps/{index}"),
                &values,
                &relative_dir,
            );
        }
        if self.diagnostics.len() > before {
            return Vec::new();
        }
        let dirs = Dirs {
            shown: shown.parent().map(Path::to_path_buf).unwrap_or_default(),
            canonical: fragment_dir,
        };
        stack.push(canonical);
        let placed = self.steps(&steps, number, &dirs, stack, depth + 1);
        stack.pop();
        placed
    }

    /// The fragment's declared parameters and their defaults (`None`: required).
    fn params(&mut self, source: u32, params: Option<&Value>) -> Vec<(String, Option<Value>)> {
        let mut declared = Vec::new();
        let Some(params) = params else {
            return declared;
        };
        let Some(members) = params.as_object() else {
            self.problem(
                self.span(source, "/params"),
                "`params` must be a mapping".into(),
                "`params: { NAME: { default: VALUE, description: TEXT } }`",
                "an empty mapping `{}` makes a parameter required",
            );
            return declared;
        };
        for (name, spec) in members {
            let pointer = format!("/params/{}", yaml::escape_segment(name));
            if !vars::is_var_name(name) {
                self.problem(
                    self.key_span(source, &pointer),
                    format!("`{name}` is not a parameter name"),
                    "a letter or `_`, then letters, digits, `_` or `-` (at most 64)",
                    "rename it",
                );
                continue;
            }
            let Some(spec) = spec.as_object() else {
                self.problem(
                    self.span(source, &pointer),
                    format!("parameter `{name}` must be a mapping"),
                    "`{ default: VALUE, description: TEXT }`, or `{}` for a required one",
                    "see \"Includes\" in docs/scenarios.md",
                );
                continue;
            };
            for key in spec
                .keys()
                .filter(|key| !matches!(key.as_str(), "default" | "description"))
            {
                self.problem(
                    self.key_span(source, &format!("{pointer}/{}", yaml::escape_segment(key))),
                    format!("unknown key `{key}` in parameter `{name}`"),
                    "`default` and `description`",
                    "leave out `default` to make it required",
                );
            }
            let default = spec.get("default").cloned();
            if let Some(value) = &default
                && !matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_))
            {
                self.problem(
                    self.span(source, &format!("{pointer}/default")),
                    format!("the default of `{name}` must be a string, number or boolean"),
                    "a scalar",
                    "quote it",
                );
                continue;
            }
            declared.push((name.clone(), default));
        }
        declared
    }

    /// Fill in `{{ params.NAME }}` and `{{ fragment.dir }}` in every text of `value`.
    fn fill(
        &mut self,
        value: &mut Value,
        source: u32,
        pointer: &str,
        params: &Map<String, Value>,
        fragment_dir: &str,
    ) {
        match value {
            Value::Object(members) => {
                for (key, child) in members.iter_mut() {
                    self.fill(
                        child,
                        source,
                        &format!("{pointer}/{}", yaml::escape_segment(key)),
                        params,
                        fragment_dir,
                    );
                }
            }
            Value::Array(items) => {
                for (index, child) in items.iter_mut().enumerate() {
                    self.fill(
                        child,
                        source,
                        &format!("{pointer}/{index}"),
                        params,
                        fragment_dir,
                    );
                }
            }
            Value::String(text) if text.contains("{{") => {
                // A text that is one parameter and nothing else takes its value's type.
                if let Some(captures) = reference_pattern().captures(text)
                    && captures
                        .get(0)
                        .is_some_and(|whole| whole.as_str() == text.trim())
                    && &captures[1] == "params"
                    && let Some(value_of) = params.get(&captures[2])
                {
                    *value = value_of.clone();
                    return;
                }
                let mut unknown = Vec::new();
                let replaced = reference_pattern().replace_all(
                    text,
                    |captures: &regex::Captures<'_>| match (&captures[1], &captures[2]) {
                        ("fragment", "dir") => fragment_dir.to_owned(),
                        ("params", name) if params.contains_key(name) => scalar_text(&params[name]),
                        (scope, name) => {
                            unknown.push(format!("{scope}.{name}"));
                            captures[0].to_owned()
                        }
                    },
                );
                *text = replaced.into_owned();
                for name in unknown {
                    let known = params
                        .keys()
                        .map(|name| format!("params.{name}"))
                        .chain(["fragment.dir".to_owned()])
                        .collect::<Vec<_>>()
                        .join(", ");
                    self.problem(
                        self.span(source, pointer),
                        format!("undefined `{name}` in a fragment"),
                        &format!("a declared parameter ({known})"),
                        "declare it under the fragment's `params:`",
                    );
                }
            }
            _ => {}
        }
    }
}

fn members_of(value: Option<&Value>) -> Vec<(String, Value)> {
    value
        .and_then(Value::as_object)
        .map(|members| {
            members
                .iter()
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn names(params: &[(String, Option<Value>)]) -> String {
    if params.is_empty() {
        "it declares none".to_owned()
    } else {
        params
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn describe_io(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_owned(),
        _ => error.to_string(),
    }
}

/// `path` with `dir/..` pairs taken out (as written: symlinks are not followed).
fn normalize(path: &Path) -> PathBuf {
    let mut parts: Vec<Component<'_>> = Vec::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir if matches!(parts.last(), Some(Component::Normal(_))) => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.iter().collect()
}

/// A directory for a message (`.` for the empty path).
fn shown_dir(dir: &Path) -> String {
    if dir.as_os_str().is_empty() {
        ".".to_owned()
    } else {
        dir.display().to_string()
    }
}

/// `path` shown relative to `root` when it is below it.
fn display_under(path: &Path, root: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The relative path from directory `from` to directory `to` (both absolute), `.` when
/// they are the same.
fn relative_path(from: &Path, to: &Path) -> String {
    let from: Vec<Component<'_>> = from.components().collect();
    let to: Vec<Component<'_>> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> =
        std::iter::repeat_n("..".to_owned(), from.len() - common).collect();
    parts.extend(
        to[common..]
            .iter()
            .map(|part| part.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.is_empty() {
        ".".to_owned()
    } else {
        parts.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_between_directories() {
        assert_eq!(relative_path(Path::new("/a/b"), Path::new("/a/b")), ".");
        assert_eq!(
            relative_path(Path::new("/a/b"), Path::new("/a/c/d")),
            "../c/d"
        );
        assert_eq!(relative_path(Path::new("/a"), Path::new("/a/f")), "f");
    }

    /// A project in a temporary directory (`dockproof.toml` makes it the include root).
    fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dockproof.toml"), "").unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    /// (file name, line, column, message) of each problem of `scenario` in `dir`.
    fn problems(dir: &Path, scenario: &str) -> Vec<(String, usize, usize, String)> {
        let report = super::super::load_file(&dir.join(scenario));
        report
            .diagnostics
            .iter()
            .map(|problem| {
                let file = super::super::load::file_of(
                    &report.path,
                    &report.included,
                    problem.span.source,
                );
                (
                    file.file_name().unwrap().to_string_lossy().into_owned(),
                    problem.span.start.line,
                    problem.span.start.column,
                    problem.message.clone(),
                )
            })
            .collect()
    }

    const RUN: &str = "steps:\n  - run: { image: dockproof/job-runner:1 }\n";

    #[test]
    fn included_steps_keep_their_file_and_line_and_take_their_parameters() {
        let dir = project(&[
            (
                "s/f/job.fragment.yaml",
                "params:\n  id: {}\n  code: { default: 0 }\nsteps:\n  - run:\n      image: dockproof/job-runner:1\n      env: { JOB_ID: \"job-{{ params.id }}\", DIR: \"{{ fragment.dir }}\" }\n    expect: { exit_code: \"{{ params.code }}\" }\n",
            ),
            (
                "s/a.yaml",
                "name: a\nsteps:\n  - run: { image: dockproof/job-runner:1 }\n  - include: { file: f/job.fragment.yaml, with: { id: seven } }\n  - run: { image: dockproof/job-runner:1 }\n",
            ),
        ]);
        let report = super::super::load_file(&dir.path().join("s/a.yaml"));
        assert!(report.diagnostics.is_empty(), "{:?}", report.diagnostics);
        let loaded = report.scenario.unwrap();
        assert_eq!(loaded.scenario.steps.len(), 3);
        let (file, span) = loaded.locate("/steps/1/run");
        assert!(file.ends_with("s/f/job.fragment.yaml"), "{file:?}");
        assert_eq!((span.start.line, span.start.column), (6, 7));
        let (file, span) = loaded.locate("/steps/2/run");
        assert!(file.ends_with("s/a.yaml"), "{file:?}");
        assert_eq!(span.start.line, 5);
        let super::super::Action::Run { run, .. } = &loaded.scenario.steps[1].action else {
            panic!("a run step");
        };
        assert_eq!(run.env["JOB_ID"].0, "job-seven");
        assert_eq!(run.env["DIR"].0, "f");
    }

    #[test]
    fn include_problems_are_reported_at_the_include() {
        let dir = project(&[
            (
                "s/loop.fragment.yaml",
                "steps:\n  - include: { file: loop.fragment.yaml }\n",
            ),
            (
                "s/p.fragment.yaml",
                "params:\n  id: {}\nsteps:\n  - run: { image: \"{{ params.nope }}\" }\n",
            ),
            ("s/plain.yaml", RUN),
            ("outside.fragment.yaml", RUN),
            (
                "s/a.yaml",
                "name: a\nsteps:\n  - include: { file: loop.fragment.yaml }\n  - include: { file: missing.fragment.yaml }\n  - include: { file: plain.yaml }\n  - include: { file: p.fragment.yaml }\n  - include: { file: p.fragment.yaml, with: { id: x } }\n  - { name: x, include: { file: p.fragment.yaml } }\n",
            ),
        ]);
        // The project's root is `dir`: move the marker down so `outside` is outside.
        std::fs::rename(
            dir.path().join("dockproof.toml"),
            dir.path().join("s/dockproof.toml"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("s/b.yaml"),
            "name: b\nsteps:\n  - include: { file: ../outside.fragment.yaml }\n",
        )
        .unwrap();
        let found = problems(dir.path(), "s/a.yaml");
        let expected = [
            (
                "loop.fragment.yaml",
                2,
                22,
                "include cycle: loop.fragment.yaml → loop.fragment.yaml",
            ),
            (
                "a.yaml",
                4,
                22,
                "cannot include `missing.fragment.yaml`: no such file",
            ),
            ("a.yaml", 5, 22, "`plain.yaml` is not a fragment file"),
            (
                "a.yaml",
                6,
                14,
                "`p.fragment.yaml` needs the parameter `id`",
            ),
            ("a.yaml", 8, 7, "an `include` step has no `name`"),
        ];
        for (file, line, column, message) in expected {
            assert!(
                found.iter().any(|(f, l, c, m)| f == file
                    && *l == line
                    && *c == column
                    && m.starts_with(message)),
                "{file}:{line}:{column}: {message} not in {found:#?}"
            );
        }
        assert!(
            found.iter().any(|(f, l, _, m)| f == "p.fragment.yaml"
                && *l == 4
                && m == "undefined `params.nope` in a fragment"),
            "{found:#?}"
        );
        let found = problems(dir.path(), "s/b.yaml");
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].3.contains("is outside the project"), "{found:#?}");
    }

    #[test]
    fn nesting_is_bounded() {
        let mut files: Vec<(String, String)> = (0..12)
            .map(|level| {
                (
                    format!("s/l{level}.fragment.yaml"),
                    format!(
                        "steps:\n  - include: {{ file: l{}.fragment.yaml }}\n",
                        level + 1
                    ),
                )
            })
            .collect();
        files.push(("s/l12.fragment.yaml".into(), RUN.into()));
        files.push((
            "s/a.yaml".into(),
            "name: a\nsteps:\n  - include: { file: l0.fragment.yaml }\n".into(),
        ));
        let borrowed: Vec<(&str, &str)> = files
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let dir = project(&borrowed);
        let found = problems(dir.path(), "s/a.yaml");
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].0, "l7.fragment.yaml");
        assert!(found[0].3.contains("nested more than 8 deep"), "{found:#?}");
    }

    #[test]
    fn fragments_are_named_as_such() {
        assert!(is_fragment_file(Path::new("x/web.fragment.yaml")));
        assert!(!is_fragment_file(Path::new("x/web.yaml")));
    }
}
