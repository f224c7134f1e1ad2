//! Loading scenario files: YAML → schema validation → typed model → semantic
//! checks. Loading never stops at the first problem: it returns every
//! diagnostic of a file, each with a location, what was expected and a hint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::Value;

use super::include::{self, IncludedFile};
use super::model::{
    self, Action, Scenario, Source, Step, StepFile, StepKind, StepShapeError, TextMatch,
};
use super::template;
use super::vars::{self, VarSources};
use super::yaml::{self, SourceSpan, SpanIndex};

pub use super::diagnostic::Diagnostic;

/// A scenario that loaded cleanly, with what is needed to point back into its file.
#[derive(Debug, Clone)]
pub struct LoadedScenario {
    pub scenario: Scenario,
    /// The file it came from.
    pub path: PathBuf,
    /// Relative paths in the scenario resolve against this directory.
    pub base_dir: PathBuf,
    /// Spans by JSON pointer, for reports that point at a line.
    pub spans: SpanIndex,
    /// The variables its texts used (`NAME`, and `env.NAME` for host variables), with the
    /// values they had: they go into the job record.
    pub vars: BTreeMap<String, String>,
    /// The fragments its steps came from: a span with `source: n` is in `included[n - 1]`.
    pub included: Vec<IncludedFile>,
}

impl LoadedScenario {
    /// The file and span of `pointer`'s value: in the scenario or in an included fragment.
    pub fn locate(&self, pointer: &str) -> (&Path, SourceSpan) {
        let span = self.spans.value(pointer);
        (file_of(&self.path, &self.included, span.source), span)
    }
}

/// The file a span with `source` is in: `main`, or the included file it names.
pub fn file_of<'a>(main: &'a Path, included: &'a [IncludedFile], source: u32) -> &'a Path {
    match source.checked_sub(1) {
        Some(index) => included
            .get(index as usize)
            .map_or(main, |file| file.path.as_path()),
        None => main,
    }
}

/// What a run gives every scenario file it loads.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Variables from the project file and the command line.
    pub vars: VarSources,
    /// Reads a host environment variable a scenario declares under `host_env:`.
    pub host_env: fn(&str) -> Option<String>,
    /// The directory includes may not leave (default: the nearest directory above the
    /// scenario holding `dockproof.toml` or `.git`, see [`include::include_root`]).
    pub include_root: Option<PathBuf>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            vars: VarSources::default(),
            host_env: |name| std::env::var(name).ok(),
            include_root: None,
        }
    }
}

/// The result of loading one file: the scenario if it is valid, and every problem found.
#[derive(Debug)]
pub struct FileReport {
    pub path: PathBuf,
    /// The file's text (empty when it could not be read).
    pub source: String,
    /// The scenario, or its matrix's first combination.
    pub scenario: Option<LoadedScenario>,
    /// The matrix's further combinations, in order.
    pub combinations: Vec<LoadedScenario>,
    /// The fragments it included (also on a file with problems: they may be in them).
    pub included: Vec<IncludedFile>,
    pub diagnostics: Vec<Diagnostic>,
}

impl FileReport {
    /// Every scenario the file holds: one, or one per matrix combination.
    pub fn into_scenarios(self) -> Vec<LoadedScenario> {
        self.scenario.into_iter().chain(self.combinations).collect()
    }
}

/// The JSON Schema of scenario files, generated from the model types.
pub fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let generator = schemars::generate::SchemaSettings::draft2020_12()
            .with(|settings| settings.inline_subschemas = true)
            .into_generator();
        let mut schema = generator
            .into_root_schema_for::<Scenario<StepFile>>()
            .to_value();
        drop_null_alternatives(&mut schema);
        schema
    })
}

/// Optional fields become "absent", not "null": a `key: ~` in a scenario is a
/// mistake worth reporting, and plain (non-`anyOf`) schemas give precise errors.
fn drop_null_alternatives(node: &mut Value) {
    match node {
        Value::Object(members) => {
            if members.get("default") == Some(&Value::Null) {
                members.remove("default");
            }
            if let Some(Value::Array(types)) = members.get_mut("type") {
                types.retain(|kind| kind != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    members.insert("type".into(), only);
                }
            }
            let collapsed = match members.get("anyOf") {
                Some(Value::Array(options)) if options.len() == 2 => {
                    let is_null = |option: &Value| option.get("type") == Some(&Value::from("null"));
                    match (is_null(&options[0]), is_null(&options[1])) {
                        (false, true) => Some(options[0].clone()),
                        (true, false) => Some(options[1].clone()),
                        _ => None,
                    }
                }
                _ => None,
            };
            if let (Some(Value::Object(inner)), true) = (collapsed, members.contains_key("anyOf")) {
                members.remove("anyOf");
                for (key, value) in inner {
                    members.entry(key).or_insert(value);
                }
            }
            members.values_mut().for_each(drop_null_alternatives);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_null_alternatives),
        _ => {}
    }
}

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        jsonschema::options()
            .should_validate_formats(true)
            .with_format("duration", model::is_duration)
            .with_format("byte-size", model::is_byte_size)
            .build(schema())
            .expect("the generated scenario schema is a valid JSON Schema")
    })
}

/// Load and validate one scenario file, with no variables from outside it.
pub fn load_file(path: &Path) -> FileReport {
    load_file_with(path, &LoadOptions::default())
}

/// Load and validate one scenario file with the run's variables.
pub fn load_file_with(path: &Path, options: &LoadOptions) -> FileReport {
    match crate::input_file::read_config(path) {
        Ok(source) => {
            let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            let (loaded, mut diagnostics, included) =
                load_hinted(&source, Some(path), &base_dir, options);
            if include::is_fragment_file(path) && !diagnostics.is_empty() {
                for diagnostic in &mut diagnostics {
                    diagnostic.hint = Some("this is a fragment (`*.fragment.yaml`), not a scenario: include it from a scenario with `- include: { file: ... }`".into());
                }
            }
            let mut scenarios = loaded.into_iter().map(|loaded| LoadedScenario {
                scenario: loaded.scenario,
                path: path.to_path_buf(),
                base_dir: base_dir.clone(),
                spans: loaded.spans,
                vars: loaded.vars,
                included: included.clone(),
            });
            let scenario = scenarios.next();
            FileReport {
                path: path.to_path_buf(),
                source,
                scenario,
                combinations: scenarios.collect(),
                included,
                diagnostics,
            }
        }
        Err(error) => FileReport {
            path: path.to_path_buf(),
            source: String::new(),
            scenario: None,
            combinations: Vec::new(),
            included: Vec::new(),
            diagnostics: vec![
                Diagnostic::new(
                    SourceSpan::default(),
                    format!("cannot read the file: {error}"),
                )
                .expected("a regular UTF-8 file of at most 2 MiB")
                .hint("check the path and its permissions"),
            ],
        },
    }
}

/// Load a scenario from text; relative fixture paths resolve against `base_dir`. (A
/// scenario with a matrix gives its first combination.)
pub fn load_str(source: &str, base_dir: &Path) -> (Option<(Scenario, SpanIndex)>, Vec<Diagnostic>) {
    let (loaded, diagnostics, _) = load_hinted(source, None, base_dir, &LoadOptions::default());
    (
        loaded
            .into_iter()
            .next()
            .map(|loaded| (loaded.scenario, loaded.spans)),
        diagnostics,
    )
}

/// A scenario as loaded from text, before it is tied to its file.
struct Loaded {
    scenario: Scenario,
    spans: SpanIndex,
    vars: BTreeMap<String, String>,
}

fn load_hinted(
    source: &str,
    file: Option<&Path>,
    base_dir: &Path,
    options: &LoadOptions,
) -> (Vec<Loaded>, Vec<Diagnostic>, Vec<IncludedFile>) {
    let (scenarios, mut diagnostics, included) = load_str_unhinted(source, file, base_dir, options);
    for diagnostic in &mut diagnostics {
        // A problem with the document as a whole (an empty file, say) is reported at its start.
        if diagnostic.span.start.line == 0 {
            let start = yaml::Pos {
                line: 1,
                column: 1,
                offset: 0,
            };
            diagnostic.span = SourceSpan {
                start,
                end: start,
                source: diagnostic.span.source,
            };
        }
        if diagnostic.hint.is_none() {
            diagnostic.hint = Some("see docs/scenarios.md, or `dockproof schema`".into());
        }
    }
    (scenarios, diagnostics, included)
}

/// At most this many combinations of one scenario's matrix.
pub const MAX_MATRIX_COMBINATIONS: usize = 64;

/// The combinations of the document's `matrix:` (keys in the order written, the first
/// varying slowest), or one empty combination without a matrix. Shapes the schema refuses
/// are left to it.
fn matrix_combinations(
    document: &Value,
    spans: &SpanIndex,
) -> Result<Vec<Vec<(String, String)>>, Box<Diagnostic>> {
    let mut combinations: Vec<Vec<(String, String)>> = vec![Vec::new()];
    let Some(Value::Object(axes)) = document.get("matrix") else {
        return Ok(combinations);
    };
    let mut count: usize = 1;
    for (name, values) in axes {
        let Value::Array(values) = values else {
            continue;
        };
        let texts: Vec<String> = values
            .iter()
            .filter_map(|value| match value {
                Value::String(text) => Some(text.clone()),
                Value::Number(number) => Some(number.to_string()),
                Value::Bool(flag) => Some(flag.to_string()),
                _ => None,
            })
            .collect();
        if texts.is_empty() {
            continue;
        }
        count = count.saturating_mul(texts.len());
        if count > MAX_MATRIX_COMBINATIONS {
            let sizes: Vec<String> = axes
                .iter()
                .map(|(name, values)| format!("{name}: {}", values.as_array().map_or(0, Vec::len)))
                .collect();
            return Err(Box::new(
                Diagnostic::new(
                    spans.key("/matrix"),
                    format!(
                        "the matrix has more than {MAX_MATRIX_COMBINATIONS} combinations ({})",
                        sizes.join(" × ")
                    ),
                )
                .expected(format!("at most {MAX_MATRIX_COMBINATIONS} combinations"))
                .hint(
                    "fewer values, or split the scenario: each combination is a whole scenario run",
                ),
            ));
        }
        combinations = combinations
            .into_iter()
            .flat_map(|combination| {
                texts.iter().map(move |text| {
                    let mut next = combination.clone();
                    next.push((name.clone(), text.clone()));
                    next
                })
            })
            .collect();
    }
    Ok(combinations)
}

fn load_str_unhinted(
    source: &str,
    file: Option<&Path>,
    base_dir: &Path,
    options: &LoadOptions,
) -> (Vec<Loaded>, Vec<Diagnostic>, Vec<IncludedFile>) {
    let mut located = match yaml::parse(source) {
        Ok(located) => located,
        Err(error) => {
            let diagnostic = Diagnostic::new(error.span, error.message).hint(
                error
                    .hint
                    .unwrap_or("check indentation, quoting and brackets around this spot"),
            );
            return (Vec::new(), vec![diagnostic], Vec::new());
        }
    };
    let root = options
        .include_root
        .clone()
        .unwrap_or_else(|| include::include_root(base_dir));
    let (included, mut diagnostics) = include::expand(&mut located, file, base_dir, &root);
    if !diagnostics.is_empty() {
        // The steps are not all there: what else looks wrong may well be the includes' doing.
        diagnostics
            .sort_by_key(|diagnostic| (diagnostic.span.source, diagnostic.span.start.offset));
        return (Vec::new(), diagnostics, included);
    }
    let combinations = match matrix_combinations(&located.value, &located.spans) {
        Ok(combinations) => combinations,
        Err(diagnostic) => {
            diagnostics.push(*diagnostic);
            return (Vec::new(), diagnostics, included);
        }
    };
    if let Some(Value::Object(axes)) = located.value.get("matrix") {
        for name in axes.keys() {
            if options.vars.overrides.contains_key(name) {
                diagnostics.push(
                    Diagnostic::new(
                        located.spans.key(&format!("/matrix/{}", yaml::escape_segment(name))),
                        format!("`--var`/`--vars-file` give `{name}`, a key of this matrix"),
                    )
                    .expected("variables that are not matrix keys")
                    .hint(format!(
                        "every combination would run with the same `{name}` under another name: drop the override, or `{name}` from the matrix"
                    )),
                );
            }
        }
        if !diagnostics.is_empty() {
            return (Vec::new(), diagnostics, included);
        }
    }
    let mut scenarios = Vec::new();
    for combination in &combinations {
        let mut document = located.clone();
        let (loaded, problems) = load_one(&mut document, base_dir, options, combination);
        for problem in problems {
            if !diagnostics.contains(&problem) {
                diagnostics.push(problem);
            }
        }
        if let Some(mut loaded) = loaded {
            if !combination.is_empty() {
                let values: Vec<String> = combination
                    .iter()
                    .map(|(name, value)| format!("{name}={value}"))
                    .collect();
                loaded.scenario.name = format!("{} [{}]", loaded.scenario.name, values.join(", "));
            }
            scenarios.push(loaded);
        }
    }
    let mut slugs = std::collections::BTreeSet::new();
    for loaded in &scenarios {
        if !slugs.insert(crate::run_id::slug(&loaded.scenario.name)) {
            diagnostics.push(
                Diagnostic::new(
                    located.spans.key("/matrix"),
                    format!(
                        "two combinations of the matrix get the same short name (`{}`)",
                        crate::run_id::slug(&loaded.scenario.name)
                    ),
                )
                .expected("combinations whose names differ in their first 40 letters and digits")
                .hint("shorten the scenario's name or the values: containers and recordings are named after it"),
            );
            break;
        }
    }
    diagnostics.sort_by_key(|diagnostic| (diagnostic.span.source, diagnostic.span.start.offset));
    if !diagnostics.is_empty() {
        scenarios.clear();
    }
    (scenarios, diagnostics, included)
}

/// One combination of a scenario (the whole scenario without a matrix): variables
/// filled in, validated, typed.
fn load_one(
    located: &mut yaml::Located,
    base_dir: &Path,
    options: &LoadOptions,
    combination: &[(String, String)],
) -> (Option<Loaded>, Vec<Diagnostic>) {
    let matrix: BTreeMap<String, String> = combination.iter().cloned().collect();
    let (used_vars, var_problems) = vars::substitute(
        &mut located.value,
        &located.spans,
        &options.vars,
        &matrix,
        &options.host_env,
    );
    let mut diagnostics = schema_diagnostics(&located.value, &located.spans);
    diagnostics.extend(var_problems);
    // Read from the document itself, so they are reported with the schema's problems.
    let mut zeros = zero_deadlines(&located.value, &located.spans);
    zeros.extend(zero_sizes(&located.value, &located.spans));
    if !diagnostics.is_empty() {
        diagnostics.extend(zeros);
        diagnostics.sort_by_key(|diagnostic| diagnostic.span.start.offset);
        return (None, diagnostics);
    }
    let scenario: Scenario<StepFile> = match serde_path_to_error::deserialize(&located.value) {
        Ok(scenario) => scenario,
        Err(error) => {
            let pointer = path_to_pointer(error.path());
            let diagnostic =
                Diagnostic::new(located.spans.value(&pointer), error.inner().to_string());
            return (None, vec![diagnostic]);
        }
    };
    let secrets = scenario.secrets.keys().cloned().collect();
    let mut checker = SemanticChecker {
        spans: &located.spans,
        base_dir,
        secrets,
        compose_up: None,
        captures: Vec::new(),
        diagnostics: Vec::new(),
    };
    let steps = checker.scenario(&scenario);
    diagnostics.append(&mut checker.diagnostics);
    diagnostics.extend(zeros);
    if diagnostics.is_empty() {
        let steps = with_references(steps, &located.value);
        let loaded = Loaded {
            scenario: scenario.with_steps(steps),
            spans: std::mem::take(&mut located.spans),
            vars: used_vars,
        };
        (Some(loaded), diagnostics)
    } else {
        (None, diagnostics)
    }
}

/// Each step with the template variables its texts use (read from the document: every
/// text of the step, whatever its kind).
fn with_references(mut steps: Vec<Step>, document: &Value) -> Vec<Step> {
    for (index, step) in steps.iter_mut().enumerate() {
        let mut found = Vec::new();
        let mut stack: Vec<&Value> = document
            .pointer(&format!("/steps/{index}"))
            .into_iter()
            .collect();
        while let Some(value) = stack.pop() {
            match value {
                Value::String(text) => found.extend(template::references(text)),
                Value::Array(items) => stack.extend(items),
                Value::Object(members) => stack.extend(members.values()),
                _ => {}
            }
        }
        found.sort();
        found.dedup();
        step.references = found;
    }
    steps
}

/// Keys whose duration is a deadline or a wait: zero can never be met there.
const DEADLINE_KEYS: [&str; 2] = ["timeout", "within"];

/// Size keys where zero makes no sense: a workspace of 0 bytes, an image budget of 0,
/// and memory limits (Docker reads `--memory 0` as *no limit*, the opposite of what a 0
/// looks like). (`generate.bytes: 0`, an empty file, is fine.)
const NONZERO_SIZE_KEYS: [&str; 4] = ["max_bytes", "memory", "max_memory", "max_size"];

/// A size of zero under one of [`NONZERO_SIZE_KEYS`]: a load error at its value.
fn zero_sizes(document: &Value, spans: &SpanIndex) -> Vec<Diagnostic> {
    let mut found = Vec::new();
    let mut stack: Vec<(String, &Value)> = vec![(String::new(), document)];
    while let Some((pointer, value)) = stack.pop() {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let child_pointer = format!("{pointer}/{}", yaml::escape_segment(key));
                    let zero = NONZERO_SIZE_KEYS.contains(&key.as_str())
                        && match child {
                            Value::Number(number) => number.as_u64() == Some(0),
                            Value::String(text) => text
                                .parse::<model::ByteSize>()
                                .is_ok_and(|size| size.0 == 0),
                            _ => false,
                        };
                    if zero {
                        let hint = if key == "memory" || key == "max_memory" {
                            format!(
                                "Docker reads a memory limit of 0 as no limit: give `{key}` a positive size such as `64MiB`, or leave it out"
                            )
                        } else {
                            format!("give `{key}` a positive size such as `16MiB`, or leave it out")
                        };
                        found.push(
                            Diagnostic::new(
                                spans.value(&child_pointer),
                                format!("a `{key}` of zero makes no sense"),
                            )
                            .expected("a positive size such as `16MiB`")
                            .hint(hint),
                        );
                    } else {
                        stack.push((child_pointer, child));
                    }
                }
            }
            Value::Array(items) => {
                for (index, child) in items.iter().enumerate() {
                    stack.push((format!("{pointer}/{index}"), child));
                }
            }
            _ => {}
        }
    }
    found.sort_by_key(|diagnostic| diagnostic.span.start.offset);
    found
}

/// A `timeout:` or `within:` of zero (`0s`, `0ms`, `0m0s`) anywhere in the scenario, except
/// in a `healthcheck:` (where Docker reads 0 as "the default"): a load error at its value.
/// The walk is iterative; the YAML reader has already bounded the document's depth.
fn zero_deadlines(document: &Value, spans: &SpanIndex) -> Vec<Diagnostic> {
    let mut found = Vec::new();
    let mut stack: Vec<(String, &Value)> = vec![(String::new(), document)];
    while let Some((pointer, value)) = stack.pop() {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    if key == "healthcheck" {
                        continue;
                    }
                    let child_pointer = format!("{pointer}/{}", yaml::escape_segment(key));
                    let zero = DEADLINE_KEYS.contains(&key.as_str())
                        && child
                            .as_str()
                            .and_then(|text| text.parse::<model::Duration>().ok())
                            .is_some_and(|duration| duration.0.is_zero());
                    if zero {
                        found.push(
                            Diagnostic::new(
                                spans.value(&child_pointer),
                                format!("a `{key}` of zero can never be met"),
                            )
                            .expected("a positive duration such as `30s`")
                            .hint(format!(
                                "give `{key}` a positive duration, or leave it out for the default"
                            )),
                        );
                    } else {
                        stack.push((child_pointer, child));
                    }
                }
            }
            Value::Array(items) => {
                for (index, child) in items.iter().enumerate() {
                    stack.push((format!("{pointer}/{index}"), child));
                }
            }
            _ => {}
        }
    }
    found.sort_by_key(|diagnostic| diagnostic.span.start.offset);
    found
}

pub(crate) fn path_to_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => pointer.push_str(&format!("/{index}")),
            Segment::Map { key } => pointer.push_str(&format!("/{}", yaml::escape_segment(key))),
            Segment::Enum { variant } => {
                pointer.push_str(&format!("/{}", yaml::escape_segment(variant)))
            }
            Segment::Unknown => {}
        }
    }
    pointer
}

/// Every schema violation, translated into words a scenario author understands.
fn schema_diagnostics(document: &Value, spans: &SpanIndex) -> Vec<Diagnostic> {
    let mut diagnostics: Vec<Diagnostic> = Vec::new();
    for error in validator().iter_errors(document) {
        let pointer = error.instance_path().as_str().to_owned();
        let span = spans.value(&pointer);
        let instance = error.instance();
        let schema_node = schema().pointer(parent_pointer(error.schema_path().as_str()));
        let found = describe_type(instance);
        match error.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let allowed: Vec<String> = schema_node
                    .and_then(|node| node.get("properties"))
                    .and_then(Value::as_object)
                    .map(|properties| properties.keys().cloned().collect())
                    .unwrap_or_default();
                for key in unexpected {
                    let key_pointer = format!("{pointer}/{}", yaml::escape_segment(key));
                    let mut diagnostic =
                        Diagnostic::new(spans.key(&key_pointer), format!("unknown key `{key}`"))
                            .expected(format!("one of: {}", allowed.join(", ")));
                    if let Some(close) =
                        crate::suggest::closest(key, allowed.iter().map(String::as_str))
                    {
                        diagnostic = diagnostic.hint(format!("did you mean `{close}`?"));
                    }
                    diagnostics.push(diagnostic);
                }
            }
            ValidationErrorKind::Required { property } => {
                let property = property.as_str().unwrap_or_default();
                let mut diagnostic = Diagnostic::new(
                    spans.key(&pointer),
                    format!("missing required key `{property}`"),
                )
                .hint(format!("add `{property}:` here"));
                diagnostic.expected = describe_schema(
                    schema_node.and_then(|node| node.pointer(&format!("/properties/{property}"))),
                );
                diagnostics.push(diagnostic);
            }
            ValidationErrorKind::Type { kind } => {
                let expected = match kind {
                    TypeKind::Single(kind) => kind.to_string(),
                    TypeKind::Multiple(kinds) => kinds
                        .iter()
                        .map(|kind| kind.to_string())
                        .collect::<Vec<_>>()
                        .join(" or "),
                };
                let message = format!("expected {}, found {found}", article(&expected));
                let mut diagnostic = Diagnostic::new(span, message);
                diagnostic.expected = describe_schema(schema_node);
                if expected.contains("array") && !instance.is_array() {
                    diagnostic = diagnostic.hint("write a list: `[a, b]` or one `- item` per line");
                } else if expected == "string"
                    && instance.is_number()
                    && schema_node
                        .and_then(|node| node.get("format"))
                        .and_then(Value::as_str)
                        == Some("duration")
                {
                    diagnostic = diagnostic.hint(format!(
                        "a duration needs its unit: `{instance}s` for seconds (or `{instance}ms`, `{instance}m`, `{instance}h`)"
                    ));
                } else if expected == "string" && !instance.is_string() {
                    diagnostic = diagnostic.hint("quote the value to make it text");
                }
                diagnostics.push(diagnostic);
            }
            ValidationErrorKind::Format { format } => {
                let (what, example, problem) = match format.as_str() {
                    "duration" => (
                        "duration",
                        "`30s`, `1m30s` or `500ms`, at most 24h",
                        instance
                            .as_str()
                            .and_then(|text| text.parse::<model::Duration>().err()),
                    ),
                    "byte-size" => (
                        "size",
                        "`16MiB`, `1GB` or a number of bytes, at most 1 TiB",
                        instance
                            .as_str()
                            .and_then(|text| text.parse::<model::ByteSize>().err()),
                    ),
                    other => (other, "the documented form", None),
                };
                let over = problem.as_deref().is_some_and(|problem| {
                    problem.contains("longer than") || problem.contains("more than")
                });
                let message = match &problem {
                    Some(problem) if over => problem.clone(),
                    _ => format!("{instance} is not a valid {what}"),
                };
                // A duration says exactly what is wrong and what to write instead.
                let duration = (format.as_str() == "duration")
                    .then(|| instance.as_str())
                    .flatten()
                    .and_then(|text| model::parse_strict_duration(text.trim()).err());
                let (message, hint) = match duration {
                    Some(duration) if !over => (
                        duration.problem,
                        duration
                            .hint
                            .unwrap_or_else(|| format!("write the {what} with a unit")),
                    ),
                    _ if over => (
                        message,
                        "see the documented maxima in docs/limits.md".to_owned(),
                    ),
                    // A size: the spelling meant, when one is close (`5M` → `5MiB`).
                    _ => match problem
                        .as_deref()
                        .and_then(|problem| problem.split_once("; did you mean "))
                    {
                        Some((_, fixed)) => {
                            (message, format!("write {}", fixed.trim_end_matches('?')))
                        }
                        None => (
                            message,
                            format!(
                                "write the {what} as a whole number and a unit with nothing between: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB"
                            ),
                        ),
                    },
                };
                diagnostics.push(
                    Diagnostic::new(span, message)
                        .expected(format!("a {what} such as {example}"))
                        .hint(hint),
                );
            }
            ValidationErrorKind::Enum { .. }
            | ValidationErrorKind::OneOfNotValid { .. }
            | ValidationErrorKind::AnyOf { .. }
                if !allowed_constants(schema_node).is_empty() =>
            {
                let options = allowed_constants(schema_node);
                let mut diagnostic =
                    Diagnostic::new(span, format!("{instance} is not a known value"))
                        .expected(format!("one of: {}", options.join(", ")));
                if let Some(close) = instance.as_str().and_then(|text| {
                    crate::suggest::closest(text, options.iter().map(String::as_str))
                }) {
                    diagnostic = diagnostic.hint(format!("did you mean `{close}`?"));
                }
                diagnostics.push(diagnostic);
            }
            ValidationErrorKind::Minimum { limit } => {
                diagnostics.push(
                    Diagnostic::new(span, format!("{instance} is too small"))
                        .expected(format!("at least {limit}")),
                );
            }
            ValidationErrorKind::Maximum { limit } => {
                diagnostics.push(
                    Diagnostic::new(span, format!("{instance} is too large"))
                        .expected(format!("at most {limit}"))
                        .hint("see the documented maxima in docs/limits.md"),
                );
            }
            _ => {
                let mut diagnostic = Diagnostic::new(span, error.to_string());
                diagnostic.expected = describe_schema(schema_node);
                diagnostics.push(diagnostic);
            }
        }
    }
    diagnostics
        .sort_by_key(|diagnostic| (diagnostic.span.start.offset, diagnostic.message.clone()));
    diagnostics.dedup();
    diagnostics
}

fn parent_pointer(pointer: &str) -> &str {
    pointer.rfind('/').map_or("", |index| &pointer[..index])
}

fn article(kind: &str) -> String {
    let vowel = kind.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {kind}", if vowel { "an" } else { "a" })
}

fn describe_type(value: &Value) -> String {
    match value {
        Value::Null => "nothing (null)".into(),
        Value::Bool(flag) => format!("a boolean ({flag})"),
        Value::Number(number) => format!("a number ({number})"),
        Value::String(text) => format!("text ({text:?})"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

fn describe_schema(node: Option<&Value>) -> Option<String> {
    node.and_then(|node| node.get("description"))
        .and_then(Value::as_str)
        .map(|text| text.trim_end_matches('.').to_owned())
}

/// The constant values a schema node allows (`enum`, or `oneOf`/`anyOf` of `const`s).
fn allowed_constants(node: Option<&Value>) -> Vec<String> {
    let Some(node) = node else { return Vec::new() };
    let text = |value: &Value| value.as_str().map(str::to_owned);
    if let Some(options) = node.get("enum").and_then(Value::as_array) {
        return options.iter().filter_map(text).collect();
    }
    let mut constants = Vec::new();
    for keyword in ["oneOf", "anyOf"] {
        for option in node
            .get(keyword)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(constant) = option.get("const").and_then(text) {
                constants.push(constant);
            }
            if let Some(options) = option.get("enum").and_then(Value::as_array) {
                constants.extend(options.iter().filter_map(text));
            }
        }
    }
    constants
}

/// Checks the schema cannot express: one kind per step, one source per input,
/// safe paths, existing fixtures, valid regexes and references.
struct SemanticChecker<'a> {
    spans: &'a SpanIndex,
    base_dir: &'a Path,
    /// Names declared under `secrets:`.
    secrets: Vec<String>,
    /// The services of the compose project brought up by an earlier step and not yet down.
    compose_up: Option<Vec<String>>,
    /// What earlier steps capture, as `STEP.KEY`.
    captures: Vec<String>,
    diagnostics: Vec<Diagnostic>,
}

impl SemanticChecker<'_> {
    fn error(&mut self, pointer: &str, message: impl Into<String>) -> &mut Diagnostic {
        self.diagnostics
            .push(Diagnostic::new(self.spans.value(pointer), message));
        self.diagnostics.last_mut().expect("just pushed")
    }

    /// Every check of the scenario; its steps typed, when each has the right shape.
    fn scenario(&mut self, scenario: &Scenario<model::StepFile>) -> Vec<Step> {
        if scenario.name.trim().is_empty() {
            self.error("/name", "the scenario name is empty").hint =
                Some("give the scenario a unique name".into());
        }
        for (index, item) in scenario.seed.iter().enumerate() {
            let pointer = format!("/seed/{index}");
            self.sources(&pointer, &item.sources(), "`from`, `text` or `generate`");
            self.template(&format!("{pointer}/key"), &item.key);
        }
        for (index, item) in scenario.stage.iter().enumerate() {
            self.stage_item(&format!("/stage/{index}"), item);
        }
        for (name, spec) in &scenario.secrets {
            self.secret(&format!("/secrets/{}", yaml::escape_segment(name)), spec);
        }
        for name in scenario.vars.keys() {
            if !vars::is_var_name(name) {
                let pointer = format!("/vars/{}", yaml::escape_segment(name));
                self.diagnostics.push(
                    Diagnostic::new(
                        self.spans.key(&pointer),
                        format!("`{name}` is not a variable name"),
                    )
                    .expected("a letter or `_`, then letters, digits, `_` or `-` (at most 64)"),
                );
            }
        }
        for (index, name) in scenario.host_env.iter().enumerate() {
            if name.is_empty() || name.contains(['=', '\0']) {
                self.error(
                    &format!("/host_env/{index}"),
                    format!("`{name}` is not an environment variable name"),
                );
            }
        }
        if scenario.steps.is_empty() {
            self.error("/steps", "a scenario needs at least one step")
                .hint = Some("add a `run` step".into());
        }
        let mut containers: Vec<String> = Vec::new();
        let mut typed = Vec::new();
        for (index, step) in scenario.steps.iter().enumerate() {
            typed.extend(self.step(&format!("/steps/{index}"), step, &mut containers));
            if step.compose.is_some() && !scenario.needs_compose() {
                let diagnostic = self.error(
                    &format!("/steps/{index}/compose"),
                    "a `compose` step needs `requires: [compose]`",
                );
                diagnostic.expected =
                    Some("`requires: [compose]` at the top of the scenario".into());
                diagnostic.hint = Some("compose runs on a real daemon only: the fake, and a machine without docker compose, skip the scenario".into());
            }
            if let Some(since) = step.logs.as_ref().and_then(|logs| logs.since.as_deref()) {
                self.log_window(
                    &format!("/steps/{index}/logs/since"),
                    since,
                    &scenario.steps[..index],
                );
            }
        }
        if scenario.fake_faults.is_some() && scenario.needs_real_daemon() {
            self.error("/requires", "`requires` a real daemon, but `fake_faults` needs the fake: no backend can run this scenario")
                .hint = Some("split it into a fake-only and a real-daemon scenario".into());
        }
        typed
    }

    /// `since` must name a step that comes before the logs step.
    fn log_window(&mut self, pointer: &str, since: &str, earlier: &[model::StepFile]) {
        let named: Vec<&str> = earlier
            .iter()
            .filter_map(|step| step.name.as_deref())
            .collect();
        let found = if since == model::SINCE_PREVIOUS_STEP {
            !earlier.is_empty()
        } else {
            named.contains(&since)
        };
        if !found {
            let known = if named.is_empty() {
                String::new()
            } else {
                format!(", or one of: {}", named.join(", "))
            };
            let diagnostic = self.error(pointer, format!("`{since}` is no earlier step"));
            diagnostic.expected = Some(format!(
                "`{}` (not on the first step){known}",
                model::SINCE_PREVIOUS_STEP
            ));
            diagnostic.hint = Some("give the step the window starts at a `name`".into());
        }
    }

    /// A `compose` step: a readable compose file, services that exist.
    fn compose_step(
        &mut self,
        pointer: &str,
        action: &model::ComposeAction,
        containers: &mut Vec<String>,
    ) {
        let compose_pointer = format!("{pointer}/compose");
        match action {
            model::ComposeAction::Up(up) => {
                let file_pointer = format!("{compose_pointer}/up/file");
                if self.compose_up.is_some() {
                    self.error(&format!("{compose_pointer}/up"), "a compose project is already up").hint =
                        Some("a scenario runs one project at a time: add a `compose: { down: {} }` step before this one".into());
                    return;
                }
                let resolved = self.base_dir.join(&up.file);
                if !resolved.is_file() {
                    self.error(
                        &file_pointer,
                        format!(
                            "compose file `{}` does not exist (looked at {})",
                            up.file,
                            resolved.display()
                        ),
                    )
                    .hint = Some("paths are relative to the scenario file's directory".into());
                    self.compose_up = Some(Vec::new());
                    return;
                }
                match crate::compose::parse_file(&resolved) {
                    Ok(file) => {
                        let names: Vec<String> = file
                            .services
                            .iter()
                            .map(|service| service.name.clone())
                            .collect();
                        for name in &names {
                            if containers.contains(name) {
                                self.error(&file_pointer, format!("compose service `{name}` has the name of an earlier service or run"))
                                    .hint = Some("names are shared by `http`, `logs`, `exec` and `inspect`: rename one".into());
                            }
                        }
                        let active: Vec<String> = file
                            .active_services(&up.profiles)
                            .iter()
                            .map(|service| service.name.clone())
                            .collect();
                        for (index, name) in up.one_shot.iter().enumerate() {
                            if !active.contains(name) {
                                self.error(
                                    &format!("{compose_pointer}/up/one_shot/{index}"),
                                    format!("the compose file starts no service `{name}`"),
                                )
                                .expected = Some(format!("one of: {}", active.join(", ")));
                            }
                        }
                        containers.extend(names.iter().cloned());
                        self.compose_up = Some(names);
                    }
                    Err(problem) => {
                        self.error(
                            &file_pointer,
                            format!(
                                "{}:{}:{}: {}",
                                resolved.display(),
                                problem.line,
                                problem.column,
                                problem.message
                            ),
                        )
                        .expected = Some("a compose file with a `services:` mapping".into());
                        self.compose_up = Some(Vec::new());
                    }
                }
            }
            model::ComposeAction::Kill(kill) => match &self.compose_up {
                None => {
                    self.error(
                        &format!("{compose_pointer}/kill"),
                        "no compose project is up",
                    )
                    .hint =
                        Some("add a `compose: { up: { file: … } }` step before this one".into());
                }
                Some(services) if !services.is_empty() && !services.contains(&kill.service) => {
                    let known = services.join(", ");
                    self.error(
                        &format!("{compose_pointer}/kill/service"),
                        format!("the compose file has no service `{}`", kill.service),
                    )
                    .expected = Some(format!("one of: {known}"));
                }
                Some(_) => {}
            },
            model::ComposeAction::Down(_) => {
                if self.compose_up.take().is_none() {
                    self.error(&format!("{compose_pointer}/down"), "no compose project is up").hint =
                        Some("`down` follows an `up`; the project is also taken down when the scenario ends".into());
                }
            }
        }
    }

    /// An http step's `tls` and `proxy`: the certificate files exist, a certificate comes
    /// with its key, TLS settings go with `https://`.
    fn http_tls(&mut self, http_pointer: &str, http: &model::HttpSpec) {
        if let Some(proxy) = &http.proxy {
            self.template(&format!("{http_pointer}/proxy"), proxy);
            if !proxy.contains("{{") && reqwest::Url::parse(proxy).is_err() {
                self.error(
                    &format!("{http_pointer}/proxy"),
                    format!("`{proxy}` is not a URL"),
                )
                .expected = Some("a proxy URL such as `http://127.0.0.1:3128`".into());
            }
        }
        let Some(tls) = &http.tls else {
            return;
        };
        let tls_pointer = format!("{http_pointer}/tls");
        if let Some(url) = &http.url
            && url.trim_start().to_ascii_lowercase().starts_with("http://")
        {
            self.error(
                &format!("{http_pointer}/url"),
                "TLS settings with an `http://` URL",
            )
            .hint = Some("use `https://`, or drop `tls`".into());
        }
        for (key, path) in [("ca", &tls.ca), ("cert", &tls.cert), ("key", &tls.key)] {
            let Some(path) = path else { continue };
            let resolved = self.base_dir.join(path);
            if !resolved.is_file() {
                self.error(
                    &format!("{tls_pointer}/{key}"),
                    format!("`{path}` does not exist (looked at {})", resolved.display()),
                )
                .hint =
                    Some("PEM files; paths are relative to the scenario file's directory".into());
            }
        }
        match (&tls.cert, &tls.key) {
            (Some(_), None) => {
                self.error(&tls_pointer, "a client `cert` without its `key`")
                    .expected = Some("both `cert` and `key`".into());
            }
            (None, Some(_)) => {
                self.error(&tls_pointer, "a client `key` without its `cert`")
                    .expected = Some("both `cert` and `key`".into());
            }
            _ => {}
        }
        if tls.insecure && tls.ca.is_some() {
            self.error(
                &tls_pointer,
                "`insecure: true` with a `ca`: the CA would not be used",
            )
            .hint = Some("keep one: `ca` checks the server, `insecure` checks nothing".into());
        }
        if let Some(name) = &tls.server_name
            && rustls::pki_types::ServerName::try_from(name.as_str()).is_err()
        {
            self.error(
                &format!("{tls_pointer}/server_name"),
                format!("`{name}` is not a server name"),
            )
            .expected = Some("a DNS name such as `web.test`, or an IP address".into());
        }
    }

    fn stage_item(&mut self, pointer: &str, item: &model::StageItem) {
        self.sources(
            pointer,
            &item.sources(),
            "`from`, `text`, `generate` or `filestore`",
        );
        self.relative_path(&format!("{pointer}/to"), &item.to);
        if let Some(key) = &item.filestore {
            self.template(&format!("{pointer}/filestore"), key);
        }
    }

    fn sources(&mut self, pointer: &str, sources: &[Source<'_>], names: &str) {
        match sources {
            [] => {
                self.error(pointer, "no source given").expected =
                    Some(format!("exactly one of {names}"));
            }
            [Source::Fixture(path)] => {
                let resolved = self.base_dir.join(path);
                let metadata = std::fs::metadata(&resolved).ok();
                // A FIFO, a device (`/dev/zero`) or a hard-linked file is refused, not read.
                if let Some(reason) = metadata
                    .as_ref()
                    .and_then(crate::workspace::special_file_reason)
                {
                    let diagnostic = self.error(
                        &format!("{pointer}/from"),
                        format!("fixture file `{path}` {reason}"),
                    );
                    diagnostic.expected = Some("a regular file with one name".into());
                    diagnostic.hint = Some(
                        "stage a copy of the data, as a regular file beside the scenario".into(),
                    );
                } else if !metadata.is_some_and(|metadata| metadata.is_file()) {
                    let diagnostic = self.error(
                        &format!("{pointer}/from"),
                        format!(
                            "fixture file `{path}` does not exist (looked at {})",
                            resolved.display()
                        ),
                    );
                    diagnostic.hint =
                        Some("paths are relative to the scenario file's directory".into());
                }
            }
            [_] => {}
            _ => {
                self.error(pointer, "more than one source given").expected =
                    Some(format!("exactly one of {names}"));
            }
        }
    }

    fn relative_path(&mut self, pointer: &str, path: &str) {
        if let Err(problem) = check_relative_path(path) {
            let diagnostic = self.error(pointer, format!("path `{path}` {problem}"));
            diagnostic.expected =
                Some("a relative path inside the workspace, such as `inputs/data.csv`".into());
        }
    }

    fn template(&mut self, pointer: &str, text: &str) {
        if let Err(unknown) = template::check(text) {
            let diagnostic = self.error(
                pointer,
                format!("unknown template variable `{{{{ {unknown} }}}}`"),
            );
            diagnostic.expected = Some(format!("one of: {}", template::VARIABLES.join(", ")));
            return;
        }
        for (step, key) in template::capture_refs(text) {
            if !self.captures.contains(&format!("{step}.{key}")) {
                let known = if self.captures.is_empty() {
                    "none so far".to_owned()
                } else {
                    self.captures.join(", ")
                };
                let diagnostic =
                    self.error(pointer, format!("no earlier step captures `{step}.{key}`"));
                diagnostic.expected = Some(format!(
                    "`steps.STEP.KEY` of a `capture:` in an earlier step ({known})"
                ));
                diagnostic.hint = Some(format!(
                    "give the step `name: {step}` and `capture: {{ {key}: {{ stdout: {{}} }} }}`"
                ));
            }
        }
        for name in template::secret_refs(text) {
            if !self.secrets.contains(&name) {
                let declared = if self.secrets.is_empty() {
                    "none are declared".to_owned()
                } else {
                    self.secrets.join(", ")
                };
                let diagnostic = self.error(pointer, format!("unknown secret `{name}`"));
                diagnostic.expected =
                    Some(format!("a secret declared under `secrets:` ({declared})"));
                diagnostic.hint = Some(format!(
                    "declare it: `secrets: {{ {name}: {{ env: VARIABLE }} }}`"
                ));
            }
        }
    }

    /// A JSON-pointer assertion: the pointer, its regex, and templates in expected strings.
    fn pointer_assertion(&mut self, pointer: &str, assertion: &model::PointerAssertion) {
        self.json_pointer(&format!("{pointer}/pointer"), &assertion.pointer);
        if let Some(pattern) = &assertion.matches {
            self.template(&format!("{pointer}/matches"), pattern);
            self.regex(&format!("{pointer}/matches"), pattern);
        }
        let values = [
            ("equals", &assertion.equals),
            ("not_equals", &assertion.not_equals),
            ("contains", &assertion.contains),
        ];
        for (key, value) in values {
            if let Some(value) = value {
                self.json_templates(&format!("{pointer}/{key}"), value);
            }
        }
    }

    /// Templates in every string of a JSON value.
    fn json_templates(&mut self, pointer: &str, value: &serde_json::Value) {
        match value {
            serde_json::Value::String(text) => self.template(pointer, text),
            serde_json::Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    self.json_templates(&format!("{pointer}/{index}"), item);
                }
            }
            serde_json::Value::Object(map) => {
                for (key, item) in map {
                    self.json_templates(&format!("{pointer}/{}", yaml::escape_segment(key)), item);
                }
            }
            _ => {}
        }
    }

    fn secret(&mut self, pointer: &str, spec: &model::SecretSpec) {
        match (&spec.env, spec.generate) {
            (Some(_), Some(_)) | (None, None) => {
                self.error(pointer, "a secret needs exactly one source")
                    .expected = Some("`env: VARIABLE` or `generate: BYTES`".into());
            }
            (Some(variable), None) if variable.is_empty() || variable.contains('=') => {
                self.error(
                    &format!("{pointer}/env"),
                    format!("`{variable}` is not an environment variable name"),
                );
            }
            (None, Some(bytes)) if !(8..=1024).contains(&bytes) => {
                self.error(
                    &format!("{pointer}/generate"),
                    format!("{bytes} bytes is out of range"),
                )
                .expected = Some("8 to 1024 bytes".into());
            }
            _ => {}
        }
    }

    /// One step: its shape (exactly one kind), then the checks of its kind. The typed step,
    /// when its shape is right.
    fn step(
        &mut self,
        pointer: &str,
        raw: &model::StepFile,
        containers: &mut Vec<String>,
    ) -> Option<Step> {
        let all_kinds = "stage, run, exec, upload, telemetry, service, http, logs, build, inspect, lint, cst, compose";
        let step = match raw.to_step() {
            Ok(step) => step,
            Err(StepShapeError::NoKind) => {
                self.error(pointer, "the step does nothing").expected =
                    Some(format!("exactly one of {all_kinds}"));
                return None;
            }
            Err(StepShapeError::SeveralKinds(kinds)) => {
                let names: Vec<&str> = kinds.iter().map(|kind| kind.as_str()).collect();
                let diagnostic = self.error(
                    pointer,
                    format!("one step sets several kinds: {}", names.join(", ")),
                );
                diagnostic.expected = Some(format!("exactly one of {all_kinds}"));
                diagnostic.hint = Some("split it into one step per kind".into());
                return None;
            }
            Err(StepShapeError::ComposeActions(actions)) => {
                let compose_pointer = format!("{pointer}/compose");
                if actions.is_empty() {
                    self.error(&compose_pointer, "the compose step does nothing")
                        .expected = Some("exactly one of up, kill, down".into());
                } else {
                    let diagnostic = self.error(
                        &compose_pointer,
                        format!(
                            "one compose step sets several actions: {}",
                            actions.join(", ")
                        ),
                    );
                    diagnostic.expected = Some("exactly one of up, kill, down".into());
                    diagnostic.hint = Some("split it into one step per action".into());
                }
                return None;
            }
        };
        match &step.action {
            Action::Stage(items) => self.stage_step(pointer, items),
            Action::Run { run, expect } => {
                self.run_step(pointer, run, expect, containers);
                self.expect(pointer, expect);
            }
            Action::Exec { exec, expect } => {
                self.exec_step(pointer, exec, containers);
                self.expect(pointer, expect);
            }
            Action::Upload(upload) => self.upload_step(pointer, upload),
            Action::Telemetry(assertions) => self.telemetry_step(pointer, assertions),
            Action::Service(service) => self.service_step(pointer, service, containers),
            Action::Http(http) => self.http_step(pointer, http, containers),
            Action::Logs(logs) => self.logs_step(pointer, logs, containers),
            Action::Build(build) => self.build_step(pointer, build),
            Action::Inspect(inspect) => self.inspect_step(pointer, inspect, containers),
            Action::Lint(lint) => self.lint_step(pointer, lint),
            Action::Cst(cst) => self.cst_step(pointer, cst),
            Action::Compose(action) => self.compose_step(pointer, action, containers),
        }
        for (suffix, reference) in step.action.image_references() {
            self.template(&format!("{pointer}{suffix}"), reference);
        }
        let kind = step.kind();
        self.captures_of(pointer, &step);
        if raw.expect.is_some() && !matches!(kind, StepKind::Run | StepKind::Exec) {
            self.error(
                &format!("{pointer}/expect"),
                format!(
                    "`expect` applies to `run` and `exec` steps, not `{}`",
                    kind.as_str()
                ),
            )
            .hint = Some("use `telemetry` assertions for the job record".into());
        }
        Some(step)
    }

    /// A step's `capture:`: a name to refer to it by, one source per value that fits the
    /// step's kind. Its values become known to the steps after it.
    fn captures_of(&mut self, pointer: &str, step: &Step) {
        if step.capture.is_empty() {
            return;
        }
        let capture_pointer = format!("{pointer}/capture");
        let name = match step.name.as_deref() {
            Some(name)
                if !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
            {
                name.to_owned()
            }
            Some(name) => {
                let diagnostic = self.error(
                    &format!("{pointer}/name"),
                    format!("`{name}` cannot name captured values"),
                );
                diagnostic.expected = Some("letters, digits, `_` and `-`, e.g. `login`".into());
                diagnostic.hint = Some(
                    "later steps write `{{ steps.NAME.KEY }}`: give the step such a name".into(),
                );
                return;
            }
            None => {
                let diagnostic =
                    self.error(&capture_pointer, "a step that captures needs a `name`");
                diagnostic.hint =
                    Some("add `name: login` (later steps write `{{ steps.login.KEY }}`)".into());
                return;
            }
        };
        let kind = step.kind();
        for (key, spec) in &step.capture {
            let key_pointer = format!("{capture_pointer}/{}", yaml::escape_segment(key));
            if !vars::is_var_name(key) {
                self.error(&key_pointer, format!("`{key}` is not a capture name"))
                    .expected = Some("a letter or `_`, then letters, digits, `_` or `-`".into());
                continue;
            }
            let all = "stdout, stderr, file, file_sha256, json, inspect";
            match spec.sources().as_slice() {
                [] => {
                    self.error(&key_pointer, "no source given").expected =
                        Some(format!("exactly one of {all}"));
                }
                [source] if !source.fits(kind) => {
                    let diagnostic = self.error(
                        &format!("{key_pointer}/{}", source.as_str()),
                        format!(
                            "a `{}` step has no `{}` to capture",
                            kind.as_str(),
                            source.as_str()
                        ),
                    );
                    diagnostic.expected = Some(
                        "`stdout`, `stderr`, `file`, `file_sha256` on run and exec; `json` on http; `inspect` on inspect"
                            .into(),
                    );
                }
                [source] => {
                    let at = format!("{key_pointer}/{}", source.as_str());
                    match source {
                        model::CaptureSource::Stdout(text) | model::CaptureSource::Stderr(text) => {
                            if let Some(pattern) = &text.matches {
                                self.regex(&format!("{at}/matches"), pattern);
                            }
                        }
                        model::CaptureSource::File(path)
                        | model::CaptureSource::FileSha256(path) => {
                            self.relative_path(&at, path);
                        }
                        model::CaptureSource::Json(json_pointer)
                        | model::CaptureSource::Inspect(json_pointer) => {
                            self.json_pointer(&at, json_pointer);
                        }
                    }
                }
                _ => {
                    self.error(&key_pointer, "more than one source given")
                        .expected = Some(format!("exactly one of {all}"));
                }
            }
            self.captures.push(format!("{name}.{key}"));
        }
    }

    /// Inputs staged by a `stage` step.
    fn stage_step(&mut self, pointer: &str, items: &[model::StageItem]) {
        for (index, item) in items.iter().enumerate() {
            self.stage_item(&format!("{pointer}/stage/{index}"), item);
        }
    }

    /// A `run` step; records its container name in `containers`.
    fn run_step(
        &mut self,
        pointer: &str,
        run: &model::RunSpec,
        expect: &model::Expect,
        containers: &mut Vec<String>,
    ) {
        let run_pointer = format!("{pointer}/run");
        self.argv(&format!("{run_pointer}/cmd"), run.cmd.as_deref());
        self.entrypoint(
            &format!("{run_pointer}/entrypoint"),
            run.entrypoint.as_deref(),
            run.cmd.is_some(),
        );
        for (name, value) in &run.env {
            self.template(
                &format!("{run_pointer}/env/{}", yaml::escape_segment(name)),
                &value.0,
            );
        }
        if let Some(mount) = &run.workspace
            && !mount.starts_with('/')
        {
            self.error(
                &format!("{run_pointer}/workspace"),
                "the workspace mount point must be an absolute container path",
            )
            .expected = Some("a path such as `/workspace`".into());
        }
        if run.detach && expect.exit_code.is_some() {
            self.error(
                &format!("{pointer}/expect/exit_code"),
                "a detached container has no exit code yet",
            )
            .hint = Some("remove `detach`, or check the container with `exec` steps".into());
        }
        if let Some(name) = &run.container
            && containers.contains(name)
        {
            self.error(
                &format!("{run_pointer}/container"),
                format!("container name `{name}` is used twice"),
            );
        }
        if let Some(limit) = run.limits.cpus
            && limit <= 0.0
        {
            self.error(
                &format!("{run_pointer}/limits/cpus"),
                "the CPU limit must be positive",
            );
        }
        if let Some(budget) = run.monitor.max_cpu_percent
            && !(budget > 0.0 && budget.is_finite())
        {
            self.error(
                &format!("{run_pointer}/monitor/max_cpu_percent"),
                "the CPU budget must be a positive percentage",
            )
            .expected = Some("a number such as `150` (one and a half cores)".into());
        }
        if run.monitor.has_budgets() && (run.detach || !run.monitor.enabled) {
            let why = if run.detach {
                "a detached run is not sampled"
            } else {
                "monitoring is switched off (`enabled: false`)"
            };
            self.error(
                &format!("{run_pointer}/monitor"),
                format!("resource budgets need sampling, but {why}"),
            )
            .hint =
                Some("remove the budgets, or run the container attached with monitoring on".into());
        }
        if let Some(name) = &run.container {
            containers.push(name.clone());
        }
    }

    /// An `exec` step: its container must be an earlier detached run or service.
    fn exec_step(&mut self, pointer: &str, exec: &model::ExecSpec, containers: &[String]) {
        let exec_pointer = format!("{pointer}/exec");
        if !containers.contains(&exec.container) {
            let known = if containers.is_empty() {
                "none so far".to_owned()
            } else {
                containers.join(", ")
            };
            let diagnostic = self.error(
                &format!("{exec_pointer}/container"),
                format!("no earlier detached `run` is named `{}`", exec.container),
            );
            diagnostic.expected = Some(format!(
                "a `container` name of an earlier detached run or service ({known})"
            ));
            diagnostic.hint =
                Some("add `detach: true` and `container: NAME` to the run step".into());
        }
        self.argv(&format!("{exec_pointer}/cmd"), Some(&exec.cmd));
        for (name, value) in &exec.env {
            self.template(
                &format!("{exec_pointer}/env/{}", yaml::escape_segment(name)),
                &value.0,
            );
        }
    }

    /// What a `run` or `exec` step expects.
    fn expect(&mut self, pointer: &str, expect: &model::Expect) {
        let expect_pointer = format!("{pointer}/expect");
        self.text_match(&format!("{expect_pointer}/stdout"), expect.stdout.as_ref());
        self.text_match(&format!("{expect_pointer}/stderr"), expect.stderr.as_ref());
        for (index, file) in expect.files.iter().enumerate() {
            let file_pointer = format!("{expect_pointer}/files/{index}");
            self.relative_path(&format!("{file_pointer}/path"), &file.path);
            self.text_match(&format!("{file_pointer}/text"), file.text.as_ref());
            if let Some(sha) = &file.sha256
                && !(sha.len() == 64 && sha.bytes().all(|byte| byte.is_ascii_hexdigit()))
            {
                self.error(&format!("{file_pointer}/sha256"), "not a sha256")
                    .expected = Some("64 hexadecimal characters".into());
            }
            for pointer in file.json.keys() {
                self.json_pointer(
                    &format!("{file_pointer}/json/{}", yaml::escape_segment(pointer)),
                    pointer,
                );
            }
        }
    }

    /// An `upload` step.
    fn upload_step(&mut self, pointer: &str, upload: &model::UploadSpec) {
        self.relative_path(&format!("{pointer}/upload/from"), &upload.from);
        self.template(&format!("{pointer}/upload/to"), &upload.to);
    }

    /// A `telemetry` step.
    fn telemetry_step(&mut self, pointer: &str, assertions: &[model::PointerAssertion]) {
        for (index, assertion) in assertions.iter().enumerate() {
            self.pointer_assertion(&format!("{pointer}/telemetry/{index}"), assertion);
        }
    }

    /// A `service` step; records its name in `containers`.
    fn service_step(
        &mut self,
        pointer: &str,
        service: &model::ServiceSpec,
        containers: &mut Vec<String>,
    ) {
        let service_pointer = format!("{pointer}/service");
        if containers.contains(&service.name) {
            self.error(
                &format!("{service_pointer}/name"),
                format!("container name `{}` is used twice", service.name),
            );
        }
        self.argv(&format!("{service_pointer}/cmd"), service.cmd.as_deref());
        self.entrypoint(
            &format!("{service_pointer}/entrypoint"),
            service.entrypoint.as_deref(),
            service.cmd.is_some(),
        );
        for (name, value) in &service.env {
            self.template(
                &format!("{service_pointer}/env/{}", yaml::escape_segment(name)),
                &value.0,
            );
        }
        for (index, port) in service.ports.iter().enumerate() {
            if port.0.contains("{{") {
                // Known only at run time (e.g. another service's port); the template must be valid.
                self.template(&format!("{service_pointer}/ports/{index}"), &port.0);
                for name in template::service_refs(&port.0) {
                    if !containers.contains(&name) {
                        self.error(
                            &format!("{service_pointer}/ports/{index}"),
                            format!("no earlier `service` is named `{name}`"),
                        );
                    }
                }
                continue;
            }
            if let Err(problem) = model::parse_port(&port.0) {
                self.error(&format!("{service_pointer}/ports/{index}"), problem)
                    .expected = Some(
                    "`CONTAINER`, `HOST:CONTAINER` or `IP:HOST:CONTAINER`, e.g. `0:8080`".into(),
                );
            }
        }
        if let Some(check) = &service.healthcheck {
            self.argv(
                &format!("{service_pointer}/healthcheck/cmd"),
                Some(&check.cmd),
            );
        }
        if let Some(wait) = &service.wait
            && (wait.tcp.is_some() || wait.http.is_some())
            && service.ports.is_empty()
        {
            self.error(
                &format!("{service_pointer}/wait"),
                "waiting on a port needs a published port",
            )
            .hint = Some("add `ports: [\"0:PORT\"]`".into());
        }
        if let Some(text) = service.wait.as_ref().and_then(|wait| wait.log.as_ref()) {
            let log_pointer = format!("{service_pointer}/wait/log");
            if text.is_empty() {
                self.error(&log_pointer, "an empty text is in every log")
                    .expected = Some("the text a ready service prints, e.g. `listening on`".into());
            }
            self.template(&log_pointer, text);
        }
        if let Some(mount) = &service.workspace
            && !mount.starts_with('/')
        {
            self.error(
                &format!("{service_pointer}/workspace"),
                "the workspace mount point must be an absolute container path",
            );
        }
        containers.push(service.name.clone());
    }

    /// An `http` step.
    fn http_step(&mut self, pointer: &str, http: &model::HttpSpec, containers: &[String]) {
        let http_pointer = format!("{pointer}/http");
        for (name, value) in &http.headers {
            self.template(
                &format!("{http_pointer}/headers/{}", yaml::escape_segment(name)),
                value,
            );
        }
        if let Some(body) = &http.body {
            self.template(&format!("{http_pointer}/body"), body);
        }
        match (&http.service, &http.url) {
            (Some(_), Some(_)) | (None, None) => {
                self.error(
                    &http_pointer,
                    "an http step needs exactly one of `service` and `url`",
                );
            }
            (Some(name), None) if !containers.contains(name) => {
                self.error(
                    &format!("{http_pointer}/service"),
                    format!("no earlier `service` is named `{name}`"),
                );
            }
            (None, Some(url)) => {
                self.template(&format!("{http_pointer}/url"), url);
                for name in template::service_refs(url) {
                    if !containers.contains(&name) {
                        self.error(
                            &format!("{http_pointer}/url"),
                            format!("no earlier `service` is named `{name}`"),
                        );
                    }
                }
            }
            _ => {}
        }
        if let Some(path) = &http.path
            && !path.starts_with('/')
        {
            self.error(
                &format!("{http_pointer}/path"),
                "the path must start with `/`",
            );
        }
        self.text_match(
            &format!("{http_pointer}/expect/body"),
            http.expect.body.as_ref(),
        );
        for (name, matcher) in &http.expect.headers {
            self.text_match(
                &format!(
                    "{http_pointer}/expect/headers/{}",
                    yaml::escape_segment(name)
                ),
                Some(matcher),
            );
        }
        self.http_tls(&http_pointer, http);
        for json_pointer in http.expect.json.keys().chain(http.expect.json_types.keys()) {
            self.json_pointer(&format!("{http_pointer}/expect"), json_pointer);
        }
    }

    /// A `logs` step.
    fn logs_step(&mut self, pointer: &str, logs: &model::LogsSpec, containers: &[String]) {
        let logs_pointer = format!("{pointer}/logs");
        if !containers.contains(&logs.container) {
            self.error(
                &format!("{logs_pointer}/container"),
                format!(
                    "no earlier `service` or detached `run` is named `{}`",
                    logs.container
                ),
            );
        }
        self.text_match(&format!("{logs_pointer}/stdout"), logs.stdout.as_ref());
        self.text_match(&format!("{logs_pointer}/stderr"), logs.stderr.as_ref());
    }

    /// A `build` step: its context and Dockerfile.
    fn build_step(&mut self, pointer: &str, build: &model::BuildSpec) {
        let build_pointer = format!("{pointer}/build");
        let context = self.base_dir.join(&build.context);
        let dockerfile = context.join(build.dockerfile.as_deref().unwrap_or("Dockerfile"));
        if !context.is_dir() {
            self.error(
                &format!("{build_pointer}/context"),
                format!(
                    "build context `{}` is not a directory (looked at {})",
                    build.context,
                    context.display()
                ),
            )
            .hint = Some("paths are relative to the scenario file's directory".into());
        } else if !dockerfile.is_file() {
            let at = if build.dockerfile.is_some() {
                format!("{build_pointer}/dockerfile")
            } else {
                format!("{build_pointer}/context")
            };
            self.error(&at, format!("no Dockerfile at {}", dockerfile.display()));
        } else if let Err(error) = crate::fixtures::check_context(&context) {
            let diagnostic = self.error(&format!("{build_pointer}/context"), error.to_string());
            diagnostic.expected =
                Some("a directory of regular files, directories and symlinks".into());
            diagnostic.hint = Some(
                "a FIFO, device or socket in a build context would hang or never end the build"
                    .into(),
            );
        }
        for (name, value) in &build.args {
            self.template(
                &format!("{build_pointer}/args/{}", yaml::escape_segment(name)),
                &value.0,
            );
        }
    }

    /// An `inspect` step.
    fn inspect_step(&mut self, pointer: &str, inspect: &model::InspectSpec, containers: &[String]) {
        let inspect_pointer = format!("{pointer}/inspect");
        match (&inspect.container, &inspect.image) {
            (Some(name), None) if !containers.contains(name) => {
                self.error(
                    &format!("{inspect_pointer}/container"),
                    format!("no earlier `service` or `run` is named `{name}`"),
                );
            }
            (Some(_), None) | (None, Some(_)) => {}
            _ => {
                self.error(
                    &inspect_pointer,
                    "an inspect step needs exactly one of `container` and `image`",
                );
            }
        }
        for (index, check) in inspect.checks.iter().enumerate() {
            self.pointer_assertion(&format!("{inspect_pointer}/checks/{index}"), check);
        }
    }

    /// A `lint` step: the file exists, the rules expected are known.
    fn lint_step(&mut self, pointer: &str, lint: &model::LintSpec) {
        let lint_pointer = format!("{pointer}/lint");
        let resolved = self.base_dir.join(&lint.file);
        if !resolved.is_file() {
            self.error(
                &format!("{lint_pointer}/file"),
                format!(
                    "`{}` does not exist (looked at {})",
                    lint.file,
                    resolved.display()
                ),
            )
            .hint = Some("paths are relative to the scenario file's directory".into());
        }
        let known: Vec<&str> = crate::lint::dockerfile::RULES
            .iter()
            .chain(crate::lint::compose::RULES.iter())
            .map(|rule| rule.id)
            .collect();
        for (index, expected) in lint.expect.findings.iter().enumerate() {
            if !known.contains(&expected.rule.as_str()) {
                let diagnostic = self.error(
                    &format!("{lint_pointer}/expect/findings/{index}/rule"),
                    format!("`{}` is not a lint rule", expected.rule),
                );
                diagnostic.expected = Some(format!("one of {}", known.join(", ")));
            }
        }
    }

    /// A `cst` step: its CST file is checked as `dockproof cst` checks it.
    fn cst_step(&mut self, pointer: &str, cst: &model::CstStepSpec) {
        let config = self.base_dir.join(&cst.config);
        let report = crate::cst::load_file(&config);
        for problem in &report.diagnostics {
            let at = problem.span.start;
            self.error(&format!("{pointer}/cst/config"), format!("{}:{}:{}: {}", config.display(), at.line, at.column, problem.message)).hint =
                Some("the CST file is checked like `dockproof cst` checks it; paths are relative to the scenario file's directory".into());
        }
    }

    fn argv(&mut self, pointer: &str, argv: Option<&[model::Text]>) {
        if let Some(argv) = argv {
            if argv.is_empty() {
                self.error(pointer, "the command is empty").expected =
                    Some("a list like `[job, --summarize]`".into());
            }
            for (index, argument) in argv.iter().enumerate() {
                self.template(&format!("{pointer}/{index}"), &argument.0);
            }
        }
    }

    /// An entrypoint: `[]` clears the image's; words are templates.
    fn entrypoint(&mut self, pointer: &str, entrypoint: Option<&[model::Text]>, cmd: bool) {
        if entrypoint.is_some_and(<[model::Text]>::is_empty) && !cmd {
            // Docker drops the image's CMD along with its entrypoint: nothing would be left to run.
            self.error(pointer, "the entrypoint is cleared and no `cmd` is given")
                .hint = Some("give the command to run: `cmd: [...]`".into());
        }
        for (index, word) in entrypoint.into_iter().flatten().enumerate() {
            self.template(&format!("{pointer}/{index}"), &word.0);
        }
        if entrypoint
            .and_then(<[model::Text]>::first)
            .is_some_and(|first| first.0.is_empty())
        {
            self.error(&format!("{pointer}/0"), "an empty program name")
                .hint = Some("`entrypoint: []` clears the image's entrypoint".into());
        }
    }

    fn text_match(&mut self, pointer: &str, matcher: Option<&TextMatch>) {
        let Some(matcher) = matcher else { return };
        if let Some(pattern) = &matcher.matches {
            self.regex(&format!("{pointer}/matches"), pattern);
        }
        if let Some(pattern) = &matcher.not_matches {
            self.regex(&format!("{pointer}/not_matches"), pattern);
        }
    }

    fn regex(&mut self, pointer: &str, pattern: &str) {
        if let Err(error) = regex::Regex::new(pattern) {
            let first_line = error
                .to_string()
                .lines()
                .last()
                .unwrap_or_default()
                .to_owned();
            self.error(pointer, format!("invalid regular expression: {first_line}"))
                .expected = Some("a regular expression in Rust `regex` syntax".into());
        }
    }

    fn json_pointer(&mut self, pointer: &str, json_pointer: &str) {
        if !json_pointer.is_empty() && !json_pointer.starts_with('/') {
            let diagnostic = self.error(pointer, format!("`{json_pointer}` is not a JSON pointer"));
            diagnostic.expected = Some("a JSON pointer such as `/context/docker/exitCode`".into());
            diagnostic.hint = Some(format!("write `/{json_pointer}`"));
        }
    }
}

pub use crate::paths::check_relative_path;

/// Scenario files named by `paths`: files as given, directories searched
/// recursively for `*.yaml`/`*.yml`, in a stable order.
pub fn discover(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for path in paths {
        if path.is_dir() {
            collect_dir(path, &mut found)?;
        } else {
            found.push(path.clone());
        }
    }
    Ok(found)
}

/// How deep below a directory named on the command line scenario files are looked for.
pub const MAX_DISCOVERY_DEPTH: usize = 32;

/// Every `*.yaml`/`*.yml` under `dir`, sorted, walked without recursion and at most
/// [`MAX_DISCOVERY_DEPTH`] levels deep (a symlink loop ends there, with an error).
/// A FIFO, device or socket with such a name is kept: loading it refuses it by name.
fn collect_dir(dir: &Path, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let sorted_entries = |current: &Path| -> std::io::Result<Vec<PathBuf>> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(current)?
            .map(|entry| entry.map(|entry| entry.path()))
            .collect::<Result<_, _>>()?;
        // Reversed, so `pop` gives them in sorted order.
        entries.sort_by(|a, b| b.cmp(a));
        Ok(entries)
    };
    // One list of entries still to visit per open directory: the same order as a
    // recursive walk (a directory's files and subdirectories interleaved, sorted).
    let mut levels = vec![sorted_entries(dir)?];
    while let Some(level) = levels.last_mut() {
        let Some(entry) = level.pop() else {
            levels.pop();
            continue;
        };
        if entry.is_dir() {
            if levels.len() > MAX_DISCOVERY_DEPTH {
                return Err(std::io::Error::other(format!(
                    "{} is more than {MAX_DISCOVERY_DEPTH} directories below {} (a symlink loop?)",
                    entry.display(),
                    dir.display()
                )));
            }
            levels.push(sorted_entries(&entry)?);
        } else if entry
            .extension()
            .is_some_and(|extension| extension == "yaml" || extension == "yml")
            && !include::is_fragment_file(&entry)
        {
            found.push(entry);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(source: &str) -> Vec<(usize, usize, String)> {
        let (scenario, diagnostics) = load_str(source, Path::new("."));
        assert!(scenario.is_none() || diagnostics.is_empty());
        diagnostics
            .into_iter()
            .map(|d| {
                (
                    d.span.start.line,
                    d.span.start.column,
                    format!("{} | {:?} | {:?}", d.message, d.expected, d.hint),
                )
            })
            .collect()
    }

    #[test]
    fn a_valid_scenario_loads() {
        let source = "name: ok\nsteps:\n  - run:\n      image: busybox\n      cmd: [true]\n      limits: { memory: 64MiB }\n      timeout: 5s\n";
        let (scenario, diagnostics) = load_str(source, Path::new("."));
        assert_eq!(diagnostics, vec![]);
        let scenario = scenario.unwrap().0;
        assert_eq!(
            match &scenario.steps[0].action {
                Action::Run { run, .. } => run.limits.memory,
                _ => None,
            },
            Some(model::ByteSize(64 << 20))
        );
    }

    #[test]
    fn reports_every_problem_with_its_position() {
        let source = "\
name: bad
steps:
  - run:
      imgae: busybox
      timeout: soon
      limits: { memory: lots, cpus: fast }
    expect_failure: timout
";
        let found = problems(source);
        let text = format!("{found:#?}");
        assert!(
            found.iter().any(|(l, c, m)| (*l, *c) == (4, 7)
                && m.contains("unknown key `imgae`")
                && m.contains("did you mean `image`")),
            "{text}"
        );
        assert!(
            found
                .iter()
                .any(|(l, c, m)| (*l, *c) == (3, 5) && m.contains("missing required key `image`")),
            "{text}"
        );
        assert!(
            found
                .iter()
                .any(|(l, c, m)| (*l, *c) == (5, 16) && m.contains("`soon` is not a duration")),
            "{text}"
        );
        assert!(
            found
                .iter()
                .any(|(l, _, m)| *l == 6 && m.contains("not a valid size")),
            "{text}"
        );
        assert!(
            found
                .iter()
                .any(|(l, _, m)| *l == 6 && m.contains("expected a number")),
            "{text}"
        );
        assert!(
            found
                .iter()
                .any(|(l, _, m)| *l == 7 && m.contains("did you mean `timeout`")),
            "{text}"
        );
    }

    #[test]
    fn a_zero_deadline_is_a_load_error_at_its_value() {
        let (scenario, diagnostics) = load_str(
            "name: z\ntimeout: 0s\nsteps:\n  - run: { image: i, cmd: [c], timeout: 0ms }\n  - service: { name: s, image: i, healthcheck: { cmd: [x], timeout: 0s } }\n",
            Path::new("."),
        );
        assert!(scenario.is_none());
        let zero: Vec<_> = diagnostics
            .iter()
            .filter(|diagnostic| diagnostic.message.contains("of zero"))
            .map(|diagnostic| (diagnostic.span.start.line, diagnostic.span.start.column))
            .collect();
        // Not the healthcheck's `timeout: 0s` (Docker's "default").
        assert_eq!(zero, vec![(2, 10), (4, 41)], "{diagnostics:?}");
    }

    #[test]
    fn semantic_problems_are_reported_together() {
        let source = "\
name: semantic
stage:
  - { to: ../escape.txt, text: hi }
  - { to: inputs/a.txt }
  - { to: inputs/b.txt, from: no/such/fixture.csv }
steps:
  - exec: { container: worker, cmd: [ls] }
  - run: { image: x, env: { A: '{{ job.nme }}' } }
    expect: { stdout: { matches: '(' } }
  - upload: { from: /etc/passwd, to: out }
  - run: { image: x }
    upload: { from: a, to: b }
";
        let found = problems(source);
        let text = format!("{found:#?}");
        for (line, needle) in [
            (3, "leaves the workspace"),
            (4, "no source given"),
            (5, "does not exist"),
            (7, "no earlier detached `run` is named `worker`"),
            (8, "unknown template variable"),
            (9, "invalid regular expression"),
            (10, "is absolute"),
            (11, "several kinds: run, upload"),
        ] {
            assert!(
                found
                    .iter()
                    .any(|(l, _, m)| *l == line && m.contains(needle)),
                "line {line}: {needle}\n{text}"
            );
        }
    }

    #[test]
    fn image_references_take_run_time_templates_and_unknown_ones_are_located() {
        let good = "name: ok\nsteps:\n  - build: { context: ../fixtures/build/entrypoint, tag: 'app:{{ run.id }}' }\n  - run: { image: 'app:{{ run.id }}' }\n  - service: { name: s, image: 'app:{{ job.id }}' }\n  - inspect: { image: 'app:{{ run.id }}', checks: [] }\n";
        assert_eq!(problems(good), Vec::new());
        let bad = "name: bad\nsteps:\n  - build: { context: ., tag: 'app:{{ run.idd }}' }\n  - run: { image: 'app:{{ runid }}' }\n  - cst: { image: 'app:{{ steps.nope.x }}', config: c.yaml }\n";
        let found = problems(bad);
        for (line, needle) in [
            (3, "unknown template variable `{{ run.idd }}`"),
            (4, "unknown template variable `{{ runid }}`"),
            (5, "no earlier step captures `nope.x`"),
        ] {
            assert!(
                found
                    .iter()
                    .any(|(l, _, m)| *l == line && m.contains(needle)),
                "line {line}: {needle}\n{found:#?}"
            );
        }
    }

    #[test]
    fn entrypoints_readiness_and_tls_settings_are_checked_at_their_lines() {
        let source = "\
name: probe-checks
steps:
  - run: { image: x, entrypoint: [] }
  - run: { image: x, entrypoint: [''], cmd: [a] }
  - service: { name: s, image: x, wait: { log: '' } }
  - service: { name: t, image: x, wait: { log: '{{ job.nme }}' } }
  - http: { url: 'http://x/', tls: { insecure: true } }
  - http: { url: 'https://x/', tls: { cert: c.pem, ca: ca.pem, insecure: true } }
  - http: { url: 'https://x/', tls: { server_name: 'not a name' }, proxy: 'no proxy' }
";
        let found = problems(source);
        let text = format!("{found:#?}");
        for (line, needle) in [
            (3, "the entrypoint is cleared and no `cmd` is given"),
            (4, "an empty program name"),
            (5, "an empty text is in every log"),
            (6, "unknown template variable"),
            (7, "TLS settings with an `http://` URL"),
            (8, "`c.pem` does not exist"),
            (8, "a client `cert` without its `key`"),
            (8, "`insecure: true` with a `ca`"),
            (9, "`not a name` is not a server name"),
            (9, "`no proxy` is not a URL"),
        ] {
            assert!(
                found
                    .iter()
                    .any(|(l, _, m)| *l == line && m.contains(needle)),
                "line {line}: {needle}\n{text}"
            );
        }
        // Valid settings load clean.
        assert_eq!(
            problems(
                "name: ok\nsteps:\n  - run: { image: x, entrypoint: [], cmd: [a] }\n  - service: { name: s, image: x, entrypoint: [web], wait: { exit: 0 } }\n"
            ),
            vec![]
        );
    }

    #[test]
    fn a_log_window_starts_at_an_earlier_step() {
        let source = "\
name: windows
steps:
  - { name: web up, service: { name: web, image: x, ports: ['0:80'] } }
  - logs: { container: web, since: previous_step, stdout: { contains: a } }
  - logs: { container: web, since: web up, within: 5s, stdout: { contains: a } }
  - logs: { container: web, since: later, stdout: { contains: a } }
  - { name: later, http: { service: web, path: / } }
";
        let found = problems(source);
        let text = format!("{found:#?}");
        assert_eq!(found.len(), 1, "{text}");
        assert_eq!((found[0].0, found[0].1), (6, 36), "{text}");
        assert!(found[0].2.contains("`later` is no earlier step"), "{text}");
        let first =
            problems("name: w\nsteps:\n  - logs: { container: web, since: previous_step }\n");
        assert!(
            first
                .iter()
                .any(|(l, _, m)| *l == 3 && m.contains("`previous_step` is no earlier step")),
            "{first:#?}"
        );
    }

    #[test]
    fn monitoring_budgets_need_a_sampled_run() {
        let source = "\
name: budgets
steps:
  - run: { image: x, detach: true, monitor: { max_memory: 1MiB } }
  - run: { image: x, monitor: { enabled: false, max_pids: 3 } }
  - run: { image: x, monitor: { max_cpu_percent: -5 } }
  - run: { image: x, monitor: { max_memory: 1MiB, max_cpu_percent: 50, max_pids: 4 } }
";
        let found = problems(source);
        let text = format!("{found:#?}");
        assert_eq!(found.len(), 3, "{text}");
        for (line, needle) in [
            (3, "a detached run is not sampled"),
            (4, "monitoring is switched off"),
            (5, "must be a positive percentage"),
        ] {
            assert!(
                found
                    .iter()
                    .any(|(l, _, m)| *l == line && m.contains(needle)),
                "line {line}: {needle}\n{text}"
            );
        }
    }

    #[test]
    fn compose_steps_are_checked_with_their_positions() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("stack.yml"),
            "services:\n  web:\n    image: dockproof/web:1\n  store:\n    image: x:1\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("broken.yml"),
            "services:\n  web:\n    restart: always\n",
        )
        .unwrap();
        let source = "\
name: compose-checks
requires: [compose]
steps:
  - compose: { kill: { service: web } }
  - compose:
      up: { file: stack.yml }
  - http: { service: web, path: /health }
  - compose: { kill: { service: wbe } }
  - compose: { up: { file: stack.yml }, down: {} }
  - compose: { down: {} }
  - compose: { up: { file: missing.yml } }
  - compose: { down: {} }
  - compose: { up: { file: broken.yml } }
  - compose: {}
";
        let (_, diagnostics) = load_str(source, dir.path());
        let found: Vec<(usize, usize, String)> = diagnostics
            .iter()
            .map(|d| {
                (
                    d.span.start.line,
                    d.span.start.column,
                    format!("{} | {:?}", d.message, d.expected),
                )
            })
            .collect();
        let text = format!("{found:#?}");
        for (line, column, needle) in [
            (4, 22, "no compose project is up"),
            (
                8,
                33,
                "the compose file has no service `wbe` | Some(\"one of: store, web\")",
            ),
            (9, 14, "one compose step sets several actions: up, down"),
            (11, 28, "compose file `missing.yml` does not exist"),
            (
                13,
                28,
                "broken.yml:2:3: service `web` has neither `image` nor `build`",
            ),
            (14, 14, "the compose step does nothing"),
        ] {
            assert!(
                found
                    .iter()
                    .any(|(l, c, m)| (*l, *c) == (line, column) && m.contains(needle)),
                "{line}:{column}: {needle}\n{text}"
            );
        }
        // The http step names a compose service: known once the project is up.
        assert!(!found.iter().any(|(l, _, _)| *l == 7), "{text}");
        assert_eq!(found.len(), 6, "{text}");
    }

    #[test]
    fn a_compose_step_needs_requires_compose_and_a_real_daemon_scenario_no_fake_faults() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("stack.yml"),
            "services:\n  web:\n    image: dockproof/web:1\n",
        )
        .unwrap();
        let (_, diagnostics) = load_str(
            "name: x\nsteps:\n  - compose: { up: { file: stack.yml } }\n",
            dir.path(),
        );
        assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
        assert_eq!(
            (
                diagnostics[0].span.start.line,
                diagnostics[0].span.start.column
            ),
            (3, 14)
        );
        assert!(
            diagnostics[0]
                .message
                .contains("needs `requires: [compose]`"),
            "{diagnostics:#?}"
        );
        let (_, diagnostics) = load_str(
            "name: x\nrequires: [real_daemon]\nfake_faults: start:oom\nsteps:\n  - run: { image: x }\n",
            dir.path(),
        );
        assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
        assert_eq!(diagnostics[0].span.start.line, 2);
        assert!(
            diagnostics[0]
                .message
                .contains("no backend can run this scenario"),
            "{diagnostics:#?}"
        );
        let (_, diagnostics) = load_str(
            "name: x\nrequires: [composer]\nsteps:\n  - run: { image: x }\n",
            dir.path(),
        );
        assert!(
            diagnostics
                .iter()
                .any(|d| d.span.start.line == 2
                    && d.hint.as_deref() == Some("did you mean `compose`?")),
            "{diagnostics:#?}"
        );
        let (scenario, diagnostics) = load_str(
            "name: x\nrequires: [compose]\nsteps:\n  - compose: { up: { file: stack.yml, within: 30s } }\n  - compose: { kill: { service: web } }\n",
            dir.path(),
        );
        assert!(diagnostics.is_empty(), "{diagnostics:#?}");
        let scenario = scenario.unwrap().0;
        assert!(scenario.needs_compose() && scenario.needs_real_daemon());
    }

    #[test]
    fn yaml_syntax_errors_have_a_position() {
        let found = problems("name: x\nsteps:\n  - run: {image: [}\n");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, 3, "{found:?}");
    }

    #[test]
    fn checked_in_schema_is_current() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/scenario.schema.json");
        let generated = serde_json::to_string_pretty(schema()).unwrap() + "\n";
        if std::env::var_os("UPDATE_EXPECT").is_some() || !path.exists() {
            std::fs::write(&path, &generated).unwrap();
        }
        let checked_in = std::fs::read_to_string(&path).unwrap();
        assert!(
            checked_in == generated,
            "docs/scenario.schema.json is stale: run `UPDATE_EXPECT=1 cargo test -p dockproof` (or `dockproof schema > docs/scenario.schema.json`)"
        );
    }
}
