//! Loading a CST file: YAML with a span for every node (the scenario loader's
//! reader), the typed model, then every semantic problem at once, each with
//! its `file:line:column`.
//!
//! A problem inside one test (a missing `command`, a wrong type, an unknown key)
//! costs that test: it is kept in [`LoadedCst::invalid`] and becomes one failed
//! result, and every other test still runs. A problem with the file as a whole
//! (YAML syntax, `schemaVersion`, an unknown top-level key, `globalEnvVars`,
//! `containerRunOptions`) leaves no `LoadedCst`: the file is one failed result.
//! Nulls are the field's default (yaml.v2 decodes them so); a `.json` config is
//! read as CST reads it, with Go's `encoding/json`: unknown keys are ignored
//! (each with a warning).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::model::{Command, CstConfig, EnvVar, SchemaVersion};
use crate::scenario::diagnostic::Diagnostic;
use crate::scenario::load::path_to_pointer;
use crate::scenario::yaml::{self, SpanIndex};

/// A CST file that loaded cleanly.
#[derive(Debug, Clone)]
pub struct LoadedCst {
    pub path: PathBuf,
    pub version: SchemaVersion,
    pub config: CstConfig,
    pub spans: SpanIndex,
    /// `containerRunOptions.envFile`, read at load time (`KEY=VALUE` lines).
    pub env_file: Vec<(String, String)>,
    /// Tests that cannot run, by their JSON pointer (`/commandTests/2`,
    /// `/metadataTest`), with every problem found in them.
    pub invalid: BTreeMap<String, Vec<Diagnostic>>,
    /// Keys a `.json` config has that CST ignores (and so does dockproof, saying so).
    pub warnings: Vec<Diagnostic>,
}

/// The result of loading one file: the config if valid, and every problem.
#[derive(Debug)]
pub struct CstFileReport {
    pub path: PathBuf,
    pub source: String,
    pub loaded: Option<LoadedCst>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Load and check the CST file at `path`.
/// `containerRunOptions.bindMounts` of a file run against a daemon that does not see
/// dockproof's files: each bind names a path on the daemon's machine, not this one's, so
/// each is a problem at its line.
pub fn remote_bind_problems(loaded: &LoadedCst) -> Vec<Diagnostic> {
    let Some(options) = loaded.config.container_run_options.as_ref() else {
        return Vec::new();
    };
    options
        .bind_mounts
        .iter()
        .enumerate()
        .map(|(index, mount)| {
            let source = mount.split(':').next().unwrap_or_default();
            Diagnostic::new(
                loaded
                    .spans
                    .value(&format!("/containerRunOptions/bindMounts/{index}")),
                format!(
                    "bind mount `{mount}` names `{source}` on the daemon's machine, and this daemon does not see dockproof's files (it is reached remotely, workspace transport `copy`): it would mount a directory of its own, created empty if missing"
                ),
            )
            .expected("no bindMounts when the daemon is on another machine")
            .hint("put the files into the image instead, or run the test against a daemon that shares this machine's files")
        })
        .collect()
}

pub fn load_file(path: &Path) -> CstFileReport {
    let source = match crate::input_file::read_config(path) {
        Ok(text) => text,
        Err(error) => {
            let diagnostic =
                Diagnostic::new(Default::default(), format!("cannot read the file: {error}"))
                    .expected("a regular UTF-8 file of at most 2 MiB");
            return CstFileReport {
                path: path.to_path_buf(),
                source: String::new(),
                loaded: None,
                diagnostics: vec![diagnostic],
            };
        }
    };
    let (loaded, diagnostics) = load_str(&source, path);
    CstFileReport {
        path: path.to_path_buf(),
        source,
        loaded,
        diagnostics,
    }
}

/// Load CST text; `path` names it in results (a relative `envFile` is read from the working directory, as CST does).
pub fn load_str(text: &str, path: &Path) -> (Option<LoadedCst>, Vec<Diagnostic>) {
    let located = match yaml::parse(text) {
        Ok(located) => located,
        Err(error) => {
            let mut diagnostic = Diagnostic::new(error.span, error.message);
            diagnostic.hint = error.hint.map(str::to_owned);
            return (None, vec![diagnostic]);
        }
    };
    if !located.value.is_object() {
        let diagnostic = Diagnostic::new(located.spans.value(""), "a CST file is a mapping with `schemaVersion` and test lists")
            .expected("schemaVersion: 2.0.0, commandTests, fileExistenceTests, fileContentTests, metadataTest, licenseTests");
        return (None, vec![diagnostic]);
    }
    let lenient = path
        .extension()
        .is_some_and(|extension| extension == "json");
    let mut value = located.value.clone();
    strip_nulls(&mut value);
    let mut warnings = Vec::new();
    let mut entry_problems: Vec<(String, Diagnostic)> = Vec::new();
    // Test lists are read entry by entry, so a bad entry costs only itself.
    let mut lists: Vec<(&str, Vec<Value>)> = Vec::new();
    if let Some(object) = value.as_object_mut() {
        for list in ENTRY_LISTS {
            if let Some(Value::Array(items)) = object.get(list) {
                lists.push((list, items.clone()));
                object.remove(list);
            }
        }
    }
    let metadata = value
        .as_object_mut()
        .and_then(|object| object.remove("metadataTest"));
    let mut config: CstConfig =
        match deserialize_at(value, "", lenient, &located.spans, &mut warnings) {
            Ok(config) => config,
            Err(diagnostic) => return (None, vec![diagnostic]),
        };
    for (list, items) in lists {
        for (index, item) in items.into_iter().enumerate() {
            let pointer = format!("/{list}/{index}");
            let name = item
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let spans = &located.spans;
            let warnings = &mut warnings;
            let problem = match list {
                "commandTests" => deserialize_at(item, &pointer, lenient, spans, warnings)
                    .map(|test| config.command_tests.push(test)),
                "fileExistenceTests" => deserialize_at(item, &pointer, lenient, spans, warnings)
                    .map(|test| config.file_existence_tests.push(test)),
                "fileContentTests" => deserialize_at(item, &pointer, lenient, spans, warnings)
                    .map(|test| config.file_content_tests.push(test)),
                _ => deserialize_at(item, &pointer, lenient, spans, warnings)
                    .map(|test| config.license_tests.push(test)),
            };
            if let Err(diagnostic) = problem {
                // A placeholder keeps the indexes (and so the spans) of the entries after it.
                match list {
                    "commandTests" => config.command_tests.push(super::model::CommandTest {
                        name,
                        ..Default::default()
                    }),
                    "fileExistenceTests" => {
                        config
                            .file_existence_tests
                            .push(super::model::FileExistenceTest {
                                name,
                                ..Default::default()
                            })
                    }
                    "fileContentTests" => {
                        config
                            .file_content_tests
                            .push(super::model::FileContentTest {
                                name,
                                ..Default::default()
                            })
                    }
                    _ => config.license_tests.push(Default::default()),
                }
                entry_problems.push((pointer, diagnostic));
            }
        }
    }
    if let Some(metadata) = metadata {
        match deserialize_at(
            metadata,
            "/metadataTest",
            lenient,
            &located.spans,
            &mut warnings,
        ) {
            Ok(metadata) => config.metadata_test = Some(metadata),
            Err(diagnostic) => {
                // Not empty, so it runs (and fails with its problem) as CST's would.
                config.metadata_test = Some(super::model::MetadataTest {
                    workdir: "(invalid)".into(),
                    ..Default::default()
                });
                entry_problems.push(("/metadataTest".into(), diagnostic));
            }
        }
    }
    let mut checker = Checker {
        spans: &located.spans,
        diagnostics: Vec::new(),
    };
    let version = checker.version(&config, &located.value);
    let env_file = checker.run_options(&config, version);
    let invalid_entries: Vec<String> = entry_problems
        .iter()
        .map(|(pointer, _)| pointer.clone())
        .collect();
    if let Some(version) = version {
        checker.tests(&config, version, &invalid_entries);
    }
    let mut file_problems = Vec::new();
    let mut invalid: BTreeMap<String, Vec<Diagnostic>> = BTreeMap::new();
    for (pointer, diagnostic) in entry_problems {
        invalid.entry(pointer).or_default().push(diagnostic);
    }
    for (pointer, diagnostic) in checker.diagnostics {
        match entry_of(&pointer) {
            Some(entry) => invalid.entry(entry).or_default().push(diagnostic),
            None => file_problems.push(diagnostic),
        }
    }
    let mut diagnostics: Vec<Diagnostic> = file_problems.clone();
    diagnostics.extend(invalid.values().flatten().cloned());
    diagnostics
        .sort_by_key(|diagnostic| (diagnostic.span.start.line, diagnostic.span.start.column));
    match (version, file_problems.is_empty()) {
        (Some(version), true) => (
            Some(LoadedCst {
                path: path.to_path_buf(),
                version,
                config,
                spans: located.spans,
                env_file,
                invalid,
                warnings,
            }),
            diagnostics,
        ),
        _ => (None, diagnostics),
    }
}

/// The lists of tests, read one entry at a time.
const ENTRY_LISTS: [&str; 4] = [
    "commandTests",
    "fileExistenceTests",
    "fileContentTests",
    "licenseTests",
];

/// The test a problem at `pointer` belongs to (`/commandTests/2/args/0` →
/// `/commandTests/2`), or `None` for a problem of the file as a whole.
fn entry_of(pointer: &str) -> Option<String> {
    let mut parts = pointer.split('/').skip(1);
    let list = parts.next()?;
    if list == "metadataTest" {
        return Some("/metadataTest".into());
    }
    if !ENTRY_LISTS.contains(&list) {
        return None;
    }
    let index = parts.next()?;
    Some(format!("/{list}/{index}"))
}

/// Remove every mapping key whose value is null: yaml.v2 leaves such a field at its
/// zero value, which is the model's default.
fn strip_nulls(value: &mut Value) {
    let mut pending = vec![value];
    while let Some(current) = pending.pop() {
        match current {
            Value::Object(object) => {
                object.retain(|_, item| !item.is_null());
                pending.extend(object.values_mut());
            }
            Value::Array(items) => pending.extend(items.iter_mut()),
            _ => {}
        }
    }
}

/// Deserialize `value` (found at `prefix` in the file) with its problem located. With
/// `lenient` (a `.json` config), unknown keys are removed with a warning each, as Go's
/// `encoding/json` ignores them.
// A `Diagnostic` is 128 bytes since spans name their file (`SourceSpan::source`): one
// per problem, not on a hot path, so it is not boxed.
#[allow(clippy::result_large_err)]
fn deserialize_at<T: serde::de::DeserializeOwned>(
    mut value: Value,
    prefix: &str,
    lenient: bool,
    spans: &SpanIndex,
    warnings: &mut Vec<Diagnostic>,
) -> Result<T, Diagnostic> {
    // Each retry removes one key, so the number of keys bounds the loop.
    loop {
        let error = match serde_path_to_error::deserialize::<_, T>(&value) {
            Ok(parsed) => return Ok(parsed),
            Err(error) => error,
        };
        let relative = path_to_pointer(error.path());
        let pointer = format!("{prefix}{relative}");
        let message = error.inner().to_string();
        let unknown = message.starts_with("unknown field");
        if unknown && lenient {
            let (parent, key) = relative.rsplit_once('/').unwrap_or(("", relative.as_str()));
            let key = key.replace("~1", "/").replace("~0", "~");
            let removed = value
                .pointer_mut(parent)
                .and_then(Value::as_object_mut)
                .and_then(|object| object.remove(&key));
            if removed.is_some() {
                warnings.push(
                    Diagnostic::new(
                        spans.key(&pointer),
                        format!("unknown key `{key}` ignored, as CST ignores it in a .json config"),
                    )
                    .hint("in a .yaml config CST rejects the whole file for it"),
                );
                continue;
            }
        }
        let span = if unknown {
            spans.key(&pointer)
        } else {
            spans.value(&pointer)
        };
        return Err(Diagnostic::new(span, message)
            .hint("keys are CST's own (camelCase), see the container-structure-test README"));
    }
}

struct Checker<'a> {
    spans: &'a SpanIndex,
    /// Each problem with the pointer it is about.
    diagnostics: Vec<(String, Diagnostic)>,
}

impl Checker<'_> {
    fn error(&mut self, pointer: &str, message: impl Into<String>) -> &mut Diagnostic {
        self.diagnostics.push((
            pointer.to_owned(),
            Diagnostic::new(self.spans.value(pointer), message),
        ));
        &mut self.diagnostics.last_mut().expect("just pushed").1
    }

    fn key_error(&mut self, pointer: &str, message: impl Into<String>) {
        self.diagnostics.push((
            pointer.to_owned(),
            Diagnostic::new(self.spans.key(pointer), message),
        ));
    }

    fn version(&mut self, config: &CstConfig, document: &Value) -> Option<SchemaVersion> {
        match config.schema_version.as_deref() {
            Some("2.0.0") => Some(SchemaVersion::V2),
            Some("1.0.0") => Some(SchemaVersion::V1),
            Some(other) => {
                let diagnostic = Diagnostic::new(
                    self.spans.value("/schemaVersion"),
                    format!("unsupported schemaVersion `{other}`"),
                )
                .expected("\"2.0.0\" or \"1.0.0\"");
                self.diagnostics.push(("/schemaVersion".into(), diagnostic));
                None
            }
            None => {
                let _ = document;
                let diagnostic = Diagnostic::new(self.spans.value(""), "missing `schemaVersion`")
                    .expected("schemaVersion: \"2.0.0\"");
                self.diagnostics.push((String::new(), diagnostic));
                None
            }
        }
    }

    fn regex(&mut self, pointer: &str, pattern: &str) {
        if let Err(error) = super::check::go_regex(pattern) {
            let message = format!(
                "invalid regular expression: {}",
                error.to_string().lines().last().unwrap_or_default()
            );
            self.error(pointer, message);
        }
    }

    fn regexes(&mut self, pointer: &str, patterns: &[String]) {
        for (index, pattern) in patterns.iter().enumerate() {
            self.regex(&format!("{pointer}/{index}"), pattern);
        }
    }

    fn name(&mut self, pointer: &str, name: &str) {
        if name.is_empty() {
            self.error(pointer, "every test needs a non-empty `name`");
        }
    }

    fn tests(&mut self, config: &CstConfig, version: SchemaVersion, invalid: &[String]) {
        let skipped = |pointer: &str| invalid.iter().any(|entry| entry == pointer);
        for (index, env) in config.global_env_vars.iter().enumerate() {
            self.env_pair(&format!("/globalEnvVars/{index}"), env, true);
        }
        for (index, test) in config.command_tests.iter().enumerate() {
            let pointer = format!("/commandTests/{index}");
            if skipped(&pointer) {
                continue;
            }
            self.name(&pointer, &test.name);
            match (&test.command, version) {
                (None, _) => {
                    self.error(
                        &pointer,
                        format!("command test `{}` has no `command`", test.name),
                    );
                }
                (Some(Command::Program(program)), SchemaVersion::V2) if program.is_empty() => {
                    self.error(&format!("{pointer}/command"), "`command` is empty");
                }
                (Some(Command::Argv(_)), SchemaVersion::V2) => {
                    self.error(
                        &format!("{pointer}/command"),
                        "in schemaVersion 2.0.0 `command` is one string; arguments go in `args`",
                    )
                    .expected = Some("command: echo\nargs: [hello]".into());
                }
                (Some(Command::Program(_)), SchemaVersion::V1) => {
                    self.error(
                        &format!("{pointer}/command"),
                        "in schemaVersion 1.0.0 `command` is a list",
                    )
                    .expected = Some("command: [echo, hello]".into());
                }
                (Some(Command::Argv(argv)), SchemaVersion::V1) if argv.is_empty() => {
                    self.error(&format!("{pointer}/command"), "`command` is empty");
                }
                _ => {}
            }
            if version == SchemaVersion::V1 && test.args.is_some() {
                self.key_error(
                    &format!("{pointer}/args"),
                    "`args` exists in schemaVersion 2.0.0 only; put the arguments in `command`",
                );
            }
            for (list, commands) in [("setup", &test.setup), ("teardown", &test.teardown)] {
                for (position, command) in commands.iter().enumerate() {
                    if command.is_empty() {
                        self.error(
                            &format!("{pointer}/{list}/{position}"),
                            format!("empty {list} command"),
                        );
                    }
                }
            }
            for (position, env) in test.env_vars.iter().enumerate() {
                self.env_pair(&format!("{pointer}/envVars/{position}"), env, true);
            }
            self.regexes(&format!("{pointer}/expectedOutput"), &test.expected_output);
            self.regexes(&format!("{pointer}/excludedOutput"), &test.excluded_output);
            self.regexes(&format!("{pointer}/expectedError"), &test.expected_error);
            self.regexes(&format!("{pointer}/excludedError"), &test.excluded_error);
        }
        for (index, test) in config.file_existence_tests.iter().enumerate() {
            let pointer = format!("/fileExistenceTests/{index}");
            if skipped(&pointer) {
                continue;
            }
            self.name(&pointer, &test.name);
            // CST's v1 FileExistenceTest.Validate builds the missing-path error and
            // discards it (pkg/types/v1/file_existence.go): the test runs, on "".
            if test.path.is_empty() && version == SchemaVersion::V2 {
                self.error(
                    &pointer,
                    format!("file existence test `{}` needs a `path`", test.name),
                );
            }
            if version == SchemaVersion::V1 {
                for (key, set) in [
                    ("uid", test.uid.is_some()),
                    ("gid", test.gid.is_some()),
                    ("isExecutableBy", !test.is_executable_by.is_empty()),
                ] {
                    if set {
                        self.key_error(
                            &format!("{pointer}/{key}"),
                            format!("`{key}` exists in schemaVersion 2.0.0 only"),
                        );
                    }
                }
            }
            if !test.permissions.is_empty()
                && !super::check::is_permission_string(&test.permissions)
            {
                self.error(&format!("{pointer}/permissions"), format!("`{}` is not a permission string", test.permissions)).expected =
                    Some("Go's os.FileMode string: `-rw-r--r--`, `drwxr-xr-x`, `Lrwxrwxrwx`, `-rwsr-xr-x` is `urwxr-xr-x`".into());
            }
            if !matches!(
                test.is_executable_by.as_str(),
                "" | "owner" | "group" | "other" | "any"
            ) {
                self.error(
                    &format!("{pointer}/isExecutableBy"),
                    format!("`{}` is not a valid isExecutableBy", test.is_executable_by),
                )
                .expected = Some("owner, group, other or any".into());
            }
        }
        for (index, test) in config.file_content_tests.iter().enumerate() {
            let pointer = format!("/fileContentTests/{index}");
            if skipped(&pointer) {
                continue;
            }
            self.name(&pointer, &test.name);
            if test.path.is_empty() {
                self.error(
                    &pointer,
                    format!("file content test `{}` needs a `path`", test.name),
                );
            }
            self.regexes(
                &format!("{pointer}/expectedContents"),
                &test.expected_contents,
            );
            self.regexes(
                &format!("{pointer}/excludedContents"),
                &test.excluded_contents,
            );
        }
        if let Some(metadata) = config
            .metadata_test
            .as_ref()
            .filter(|_| !skipped("/metadataTest"))
        {
            if version == SchemaVersion::V1 {
                self.key_error(
                    "/metadataTest",
                    "`metadataTest` exists in schemaVersion 2.0.0 only",
                );
            }
            for (list, pairs) in [
                ("envVars", &metadata.env_vars),
                ("labels", &metadata.labels),
            ] {
                for (index, pair) in pairs.iter().enumerate() {
                    let pointer = format!("/metadataTest/{list}/{index}");
                    if pair.key.is_empty() {
                        self.error(&pointer, "a `key` cannot be empty");
                    }
                    if pair.is_regex {
                        self.regex(&format!("{pointer}/value"), &pair.value);
                    }
                }
            }
            for (index, pair) in metadata.unbound_env_vars.iter().enumerate() {
                if pair.key.is_empty() {
                    self.error(
                        &format!("/metadataTest/unboundEnvVars/{index}"),
                        "a `key` cannot be empty",
                    );
                }
            }
            for (list, items) in [
                ("exposedPorts", &metadata.exposed_ports),
                ("volumes", &metadata.volumes),
            ] {
                for (index, item) in items.iter().enumerate() {
                    if item.is_empty() {
                        self.error(
                            &format!("/metadataTest/{list}/{index}"),
                            "an entry cannot be empty",
                        );
                    }
                }
            }
        }
    }

    fn env_pair(&mut self, pointer: &str, env: &EnvVar, need_value: bool) {
        if env.key.is_empty() || (need_value && env.value.is_empty()) {
            self.error(
                pointer,
                "environment variables need a non-empty `key` and `value`",
            );
        }
        if env.is_regex {
            self.key_error(
                &format!("{pointer}/isRegex"),
                "`isRegex` applies to metadataTest envVars and labels only",
            );
        }
    }

    fn run_options(
        &mut self,
        config: &CstConfig,
        version: Option<SchemaVersion>,
    ) -> Vec<(String, String)> {
        let Some(options) = &config.container_run_options else {
            return Vec::new();
        };
        if version == Some(SchemaVersion::V1) {
            self.key_error(
                "/containerRunOptions",
                "`containerRunOptions` exists in schemaVersion 2.0.0 only",
            );
        }
        if options.allocate_tty {
            self.error(
                "/containerRunOptions/allocateTty",
                "`allocateTty: true` is not supported by dockproof",
            )
            .hint = Some("a TTY merges stderr into stdout; remove it or set it to false".into());
        }
        for (index, mount) in options.bind_mounts.iter().enumerate() {
            if let Err(message) = super::model::parse_bind_mount(mount) {
                self.error(&format!("/containerRunOptions/bindMounts/{index}"), message)
                    .expected = Some("/absolute/host/path:/container/path[:ro|:rw]".into());
            }
        }
        if options.env_file.is_empty() {
            return Vec::new();
        }
        let shown = &options.env_file;
        // Opened like every file dockproof is named: a FIFO or device is refused, not read.
        let lines = match crate::input_file::open_regular(
            std::path::Path::new(shown),
            crate::input_file::MAX_CONFIG_BYTES,
        ) {
            Ok((file, _)) => dotenvy::from_read_iter(std::io::Read::take(
                file,
                crate::input_file::MAX_CONFIG_BYTES,
            )),
            Err(error) => {
                self.error(
                    "/containerRunOptions/envFile",
                    format!("cannot read envFile `{shown}`: {error}"),
                )
                .hint = Some("CST reads envFile relative to the working directory".into());
                return Vec::new();
            }
        };
        let mut pairs = Vec::new();
        for line in lines {
            match line {
                // CST drops pairs with an empty key or value.
                Ok((key, value)) if !key.is_empty() && !value.is_empty() => {
                    pairs.push((key, value))
                }
                Ok(_) => {}
                Err(error) => {
                    self.error(
                        "/containerRunOptions/envFile",
                        format!("envFile `{shown}` is not a valid env file: {error}"),
                    )
                    .expected =
                        Some("KEY=VALUE lines (`export`, quotes and `#` comments allowed)".into());
                    return Vec::new();
                }
            }
        }
        pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        let (_, diagnostics) = load_str(text, Path::new("t.yaml"));
        diagnostics
            .iter()
            .map(|d| {
                format!(
                    "{}:{}: {}",
                    d.span.start.line, d.span.start.column, d.message
                )
            })
            .collect()
    }

    #[test]
    fn a_valid_v2_file_loads_with_cst_defaults() {
        let text = "schemaVersion: 2.0.0\ncommandTests:\n  - name: echo\n    command: echo\n    args: [hi]\nfileExistenceTests:\n  - name: sh\n    path: /bin/sh\n";
        let (loaded, diagnostics) = load_str(text, Path::new("t.yaml"));
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let loaded = loaded.expect("valid");
        assert_eq!(loaded.version, SchemaVersion::V2);
        assert_eq!(loaded.config.command_tests[0].argv(), ["echo", "hi"]);
        assert_eq!(loaded.config.command_tests[0].exit_code, 0);
        assert!(loaded.config.file_existence_tests[0].should_exist);
        assert_eq!(loaded.config.file_existence_tests[0].uid, None);
    }

    #[test]
    fn v1_takes_the_command_as_a_list() {
        let text =
            "schemaVersion: '1.0.0'\ncommandTests:\n  - name: echo\n    command: [echo, hi]\n";
        let (loaded, diagnostics) = load_str(text, Path::new("t.yaml"));
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        assert_eq!(
            loaded.expect("valid").config.command_tests[0].argv(),
            ["echo", "hi"]
        );
        assert_eq!(
            problems("schemaVersion: 1.0.0\ncommandTests:\n  - name: e\n    command: echo\n"),
            ["4:14: in schemaVersion 1.0.0 `command` is a list"]
        );
    }

    #[test]
    fn an_unknown_key_is_an_error_at_its_line() {
        assert_eq!(
            problems(
                "schemaVersion: 2.0.0\nfileExistenceTests:\n  - name: a\n    path: /a\n    shouldexist: false\n"
            ),
            [
                "5:5: unknown field `shouldexist`, expected one of `name`, `path`, `shouldExist`, `permissions`, `uid`, `gid`, `isExecutableBy`"
            ]
        );
    }

    #[test]
    fn every_semantic_problem_is_reported_with_its_line() {
        let text = "schemaVersion: 2.0.0\ncommandTests:\n  - name: ''\n    command: echo\n    expectedOutput: ['(']\nfileExistenceTests:\n  - name: x\n    path: /x\n    isExecutableBy: everyone\n    permissions: rwx\n";
        let found = problems(text);
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(found[0].starts_with("3:5: every test needs"), "{found:?}");
        assert!(
            found[1].starts_with("5:22: invalid regular expression"),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("10:18: `rwx` is not a permission string")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|p| p.starts_with("9:21: `everyone`")),
            "{found:?}"
        );
    }

    #[test]
    fn schema_version_is_required_and_known() {
        assert_eq!(
            problems("commandTests: []\n"),
            ["1:1: missing `schemaVersion`"]
        );
        assert_eq!(
            problems("schemaVersion: 3.0.0\n"),
            ["1:16: unsupported schemaVersion `3.0.0`"]
        );
    }

    #[test]
    fn env_files_read_like_godotenv() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("test.env");
        std::fs::write(&env, "# c\nA=1\nexport B=\"two words\"\nC=\nD=x # note\n").unwrap();
        let config = format!(
            "schemaVersion: 2.0.0\ncontainerRunOptions:\n  envFile: {}\n",
            env.display()
        );
        let (loaded, diagnostics) = load_str(&config, Path::new("t.yaml"));
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let pairs = loaded.unwrap().env_file;
        assert_eq!(
            pairs,
            [
                ("A".to_owned(), "1".to_owned()),
                ("B".to_owned(), "two words".to_owned()),
                ("D".to_owned(), "x".to_owned())
            ]
        );
        std::fs::write(&env, "A=1\nnot a pair\n").unwrap();
        let (_, diagnostics) = load_str(&config, Path::new("t.yaml"));
        assert_eq!(diagnostics.len(), 1, "a malformed env file is a load error");
    }
}
