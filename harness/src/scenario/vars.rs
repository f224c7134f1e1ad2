//! Scenario variables: `{{ vars.NAME }}` and `{{ env.NAME }}`, replaced in every text of a
//! scenario when it loads (image tags, commands, env, URLs, expected values, names).
//!
//! A variable's value comes from, lowest first: the project file's `[vars]`, the scenario's
//! own `vars:`, the scenario's `matrix:` combination, `--vars-file`, then `--var`. A
//! scenario reads a host environment variable only when it lists it under `host_env:` (a
//! scenario file cannot read arbitrary host variables). Anything undefined is a load error
//! at the line that uses it. The values used go into the job record (`context.vars`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

use super::diagnostic::Diagnostic;
use super::yaml::{self, SpanIndex};

/// Variables a whole run gives every scenario it loads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VarSources {
    /// The project file's `[vars]`: defaults under each scenario's own `vars:`.
    pub project: BTreeMap<String, String>,
    /// `--vars-file`, then `--var` on top: over every default and matrix value.
    pub overrides: BTreeMap<String, String>,
}

/// How a variable or host variable name must look.
fn name_pattern() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN.get_or_init(|| Regex::new(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$").expect("valid pattern"))
}

/// Whether `name` can name a variable: a letter or `_`, then letters, digits, `_` or `-`
/// (at most 64 characters).
pub fn is_var_name(name: &str) -> bool {
    name_pattern().is_match(name)
}

/// `{{ vars.NAME }}` and `{{ env.NAME }}`, the references resolved at load time.
fn reference_pattern() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN.get_or_init(|| {
        Regex::new(r"\{\{\s*(vars|env)\.([A-Za-z0-9_.-]+)\s*\}\}").expect("valid pattern")
    })
}

/// A `--var NAME=VALUE` flag.
pub fn parse_var_flag(text: &str) -> Result<(String, String), String> {
    let Some((name, value)) = text.split_once('=') else {
        return Err(format!(
            "`--var {text}` has no value: write `--var NAME=VALUE`"
        ));
    };
    if !is_var_name(name) {
        return Err(format!(
            "`{name}` is not a variable name: a letter or `_`, then letters, digits, `_` or `-`"
        ));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// A `--vars-file` that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum VarsFileError {
    #[error("cannot read vars file {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

/// A `--vars-file`: a YAML mapping of variable names to strings, numbers or booleans.
pub fn read_vars_file(path: &Path) -> Result<BTreeMap<String, String>, VarsFileError> {
    let source = crate::input_file::read_config(path).map_err(|error| VarsFileError::Read {
        path: path.to_path_buf(),
        message: error.to_string(),
    })?;
    let invalid = |span: yaml::SourceSpan, message: String| VarsFileError::Invalid {
        path: path.to_path_buf(),
        line: span.start.line.max(1),
        column: span.start.column.max(1),
        message,
    };
    let located = yaml::parse(&source).map_err(|error| invalid(error.span, error.message))?;
    let Value::Object(members) = &located.value else {
        return Err(invalid(
            located.spans.value(""),
            "expected a mapping of variable names to values, e.g. `tag: \"2\"`".to_owned(),
        ));
    };
    let mut vars = BTreeMap::new();
    for (name, value) in members {
        let pointer = format!("/{}", yaml::escape_segment(name));
        if !is_var_name(name) {
            return Err(invalid(
                located.spans.key(&pointer),
                format!("`{name}` is not a variable name"),
            ));
        }
        let Some(text) = scalar_text(value) else {
            return Err(invalid(
                located.spans.value(&pointer),
                format!("the value of `{name}` must be a string, number or boolean"),
            ));
        };
        vars.insert(name.clone(), text);
    }
    Ok(vars)
}

/// A string, number or boolean as text.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// Keys whose values are not substituted: the declarations themselves.
const DECLARATIONS: [&str; 3] = ["/vars", "/host_env", "/matrix"];

/// Replace every `{{ vars.NAME }}` and `{{ env.NAME }}` in `document` (a scenario as read),
/// with `matrix` (one combination of the scenario's matrix) over the scenario's defaults.
/// Returns the values used (`NAME` and `env.NAME`) and a diagnostic per reference that
/// cannot be resolved.
pub(crate) fn substitute(
    document: &mut Value,
    spans: &SpanIndex,
    sources: &VarSources,
    matrix: &BTreeMap<String, String>,
    host_env: &dyn Fn(&str) -> Option<String>,
) -> (BTreeMap<String, String>, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let declared_env: Vec<String> = document
        .get("host_env")
        .and_then(Value::as_array)
        .map(|names| {
            names
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let mut resolver = Resolver {
        spans,
        declared_env,
        host_env,
        used: BTreeMap::new(),
        diagnostics: Vec::new(),
    };
    // The scenario's own defaults, each resolved only when nothing above it gives the name
    // (a default read from an unset host variable is no problem once `--var` gives one).
    let mut values = sources.project.clone();
    if let Some(Value::Object(defaults)) = document.get("vars") {
        for (name, value) in defaults {
            if matrix.contains_key(name) || sources.overrides.contains_key(name) {
                continue;
            }
            let pointer = format!("/vars/{}", yaml::escape_segment(name));
            if let Some(text) = scalar_text(value) {
                let text = resolver.text(&pointer, &text, None);
                values.insert(name.clone(), text);
            }
        }
    }
    values.extend(
        matrix
            .iter()
            .map(|(name, value)| (name.clone(), value.clone())),
    );
    values.extend(
        sources
            .overrides
            .iter()
            .map(|(name, value)| (name.clone(), value.clone())),
    );
    let mut stack: Vec<(String, &mut Value)> = vec![(String::new(), document)];
    while let Some((pointer, value)) = stack.pop() {
        match value {
            Value::Object(members) => {
                for (key, child) in members.iter_mut() {
                    let child_pointer = format!("{pointer}/{}", yaml::escape_segment(key));
                    if !DECLARATIONS.contains(&child_pointer.as_str()) {
                        stack.push((child_pointer, child));
                    }
                }
            }
            Value::Array(items) => {
                for (index, child) in items.iter_mut().enumerate() {
                    stack.push((format!("{pointer}/{index}"), child));
                }
            }
            Value::String(text) if text.contains("{{") => {
                *text = resolver.text(&pointer, text, Some(&values));
            }
            _ => {}
        }
    }
    diagnostics.append(&mut resolver.diagnostics);
    diagnostics.sort_by_key(|diagnostic: &Diagnostic| diagnostic.span.start.offset);
    diagnostics.dedup();
    (resolver.used, diagnostics)
}

struct Resolver<'a> {
    spans: &'a SpanIndex,
    declared_env: Vec<String>,
    host_env: &'a dyn Fn(&str) -> Option<String>,
    used: BTreeMap<String, String>,
    diagnostics: Vec<Diagnostic>,
}

impl Resolver<'_> {
    /// `text` with its references replaced; `vars` is `None` inside a `vars:` default (which
    /// may read the host environment, not other variables).
    fn text(
        &mut self,
        pointer: &str,
        text: &str,
        vars: Option<&BTreeMap<String, String>>,
    ) -> String {
        let mut problems = Vec::new();
        let replaced = reference_pattern().replace_all(text, |captures: &regex::Captures<'_>| {
            let (scope, name) = (&captures[1], &captures[2]);
            match (scope, vars) {
                ("env", _) => {
                    if !self.declared_env.iter().any(|declared| declared == name) {
                        let declared = if self.declared_env.is_empty() {
                            "none are declared".to_owned()
                        } else {
                            self.declared_env.join(", ")
                        };
                        problems.push(
                            Diagnostic::new(
                                self.spans.value(pointer),
                                format!("`env.{name}` is not declared"),
                            )
                            .expected(format!("a name listed under `host_env:` ({declared})"))
                            .hint(format!(
                                "add `host_env: [{name}]`: a scenario reads only the host variables it lists"
                            )),
                        );
                        return captures[0].to_owned();
                    }
                    match (self.host_env)(name) {
                        Some(value) => {
                            self.used.insert(format!("env.{name}"), value.clone());
                            value
                        }
                        None => {
                            problems.push(
                                Diagnostic::new(
                                    self.spans.value(pointer),
                                    format!("host environment variable `{name}` is not set"),
                                )
                                .expected(format!("`{name}` set in dockproof's environment"))
                                .hint(format!(
                                    "set it, or make it a variable's default (`vars: {{ x: \"{{{{ env.{name} }}}}\" }}`) and pass `--var x=VALUE`"
                                )),
                            );
                            captures[0].to_owned()
                        }
                    }
                }
                (_, None) => {
                    problems.push(
                        Diagnostic::new(
                            self.spans.value(pointer),
                            format!("a variable's default cannot use `vars.{name}`"),
                        )
                        .expected("text, or `{{ env.NAME }}` of a declared host variable")
                        .hint("write the value itself"),
                    );
                    captures[0].to_owned()
                }
                (_, Some(vars)) => match vars.get(name) {
                    Some(value) => {
                        self.used.insert(name.to_owned(), value.clone());
                        value.clone()
                    }
                    None => {
                        let known = if vars.is_empty() {
                            "none are defined".to_owned()
                        } else {
                            vars.keys().cloned().collect::<Vec<_>>().join(", ")
                        };
                        problems.push(
                            Diagnostic::new(
                                self.spans.value(pointer),
                                format!("undefined variable `vars.{name}`"),
                            )
                            .expected(format!(
                                "a variable from `vars:`, `matrix:`, dockproof.toml's `[vars]`, `--vars-file` or `--var` ({known})"
                            ))
                            .hint(format!(
                                "declare it: `vars: {{ {name}: VALUE }}`, or pass `--var {name}=VALUE`"
                            )),
                        );
                        captures[0].to_owned()
                    }
                },
            }
        });
        let replaced = replaced.into_owned();
        self.diagnostics.append(&mut problems);
        replaced
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        source: &str,
        sources: &VarSources,
        matrix: &[(&str, &str)],
    ) -> (Value, BTreeMap<String, String>, Vec<(usize, String)>) {
        let located = yaml::parse(source).unwrap();
        let mut value = located.value;
        let matrix = matrix
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        let env = |name: &str| (name == "REGION").then(|| "eu-1".to_owned());
        let (used, diagnostics) = substitute(&mut value, &located.spans, sources, &matrix, &env);
        let problems = diagnostics
            .into_iter()
            .map(|diagnostic| (diagnostic.span.start.line, diagnostic.message))
            .collect();
        (value, used, problems)
    }

    #[test]
    fn layers_override_in_order() {
        let source = "name: n {{ vars.tag }}\nvars: { tag: '1', region: '{{ env.REGION }}', other: x }\nhost_env: [REGION, UNSET]\nsteps:\n  - run: { image: 'img:{{vars.tag}}', env: { R: '{{ vars.region }}', P: '{{ vars.p }}' } }\n";
        let sources = VarSources {
            project: [("p".to_owned(), "project".to_owned())].into(),
            overrides: BTreeMap::new(),
        };
        let (value, used, problems) = run(source, &sources, &[]);
        assert_eq!(problems, vec![]);
        assert_eq!(value["name"], "n 1");
        assert_eq!(value["steps"][0]["run"]["image"], "img:1");
        assert_eq!(value["steps"][0]["run"]["env"]["R"], "eu-1");
        assert_eq!(value["steps"][0]["run"]["env"]["P"], "project");
        assert_eq!(
            used.into_iter().collect::<Vec<_>>(),
            [
                ("env.REGION".to_owned(), "eu-1".to_owned()),
                ("p".to_owned(), "project".to_owned()),
                ("region".to_owned(), "eu-1".to_owned()),
                ("tag".to_owned(), "1".to_owned()),
            ]
        );
        // A matrix value beats the default, an override beats both.
        let (value, _, _) = run(source, &sources, &[("tag", "m")]);
        assert_eq!(value["steps"][0]["run"]["image"], "img:m");
        let sources = VarSources {
            overrides: [("tag".to_owned(), "2".to_owned())].into(),
            ..sources
        };
        let (value, _, _) = run(source, &sources, &[("tag", "m")]);
        assert_eq!(value["steps"][0]["run"]["image"], "img:2");
    }

    #[test]
    fn undefined_and_undeclared_references_are_errors_at_their_line() {
        let source = "name: n\nvars: { a: '{{ vars.b }}', c: '{{ env.UNSET }}' }\nhost_env: [UNSET]\nsteps:\n  - run: { image: '{{ vars.nope }}' }\n  - run: { image: '{{ env.HOME }}' }\n  - run: { image: '{{ vars.c }}' }\n";
        let (_, _, problems) = run(source, &VarSources::default(), &[]);
        let lines: Vec<(usize, &str)> = problems
            .iter()
            .map(|(line, message)| (*line, message.as_str()))
            .collect();
        assert_eq!(
            lines,
            [
                (2, "a variable's default cannot use `vars.b`"),
                (2, "host environment variable `UNSET` is not set"),
                (5, "undefined variable `vars.nope`"),
                (6, "`env.HOME` is not declared"),
            ]
        );
    }

    #[test]
    fn var_flags_and_files_are_checked() {
        assert_eq!(
            parse_var_flag("tag=1=2"),
            Ok(("tag".to_owned(), "1=2".to_owned()))
        );
        assert!(parse_var_flag("tag").unwrap_err().contains("no value"));
        assert!(
            parse_var_flag("1tag=x")
                .unwrap_err()
                .contains("not a variable name")
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vars.yaml");
        std::fs::write(&path, "tag: 2\nregion: eu\n").unwrap();
        let vars = read_vars_file(&path).unwrap();
        assert_eq!(vars["tag"], "2");
        std::fs::write(&path, "tag: 2\nlist: [a]\n").unwrap();
        let error = read_vars_file(&path).unwrap_err().to_string();
        assert!(
            error.ends_with(
                "vars.yaml:2:7: the value of `list` must be a string, number or boolean"
            ),
            "{error}"
        );
    }
}
