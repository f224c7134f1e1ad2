//! The subset of Go's text/template that docker `--format` strings use.
//!
//! Supported: literal text, `{{.A.B}}`, `{{.}}`, `{{json .A}}`, `{{index .A "k"}}`,
//! `{{join .A ","}}`, `{{lower X}}`, `{{upper X}}`, `{{len X}}`, `{{eq X Y}}`, `{{ne X Y}}`,
//! `{{not X}}`, method-style calls such as `{{.Label "k"}}` (answered by the caller),
//! `{{range X}}…{{else}}…{{end}}`, `{{if X}}…{{else}}…{{end}}`, `{{with X}}…{{end}}`, and
//! `{{-`/`-}}` whitespace trimming. Anything else (variables, pipes, `printf`) is a parse
//! error rather than a silent wrong answer.
//!
//! Hand-written on purpose: gtmpl, the Rust implementation of Go templates, was tried and
//! prints slices as `[String("a")]` where Go prints `[a]`, fails on a missing map key where
//! Go prints `<no value>`, and cannot call methods with arguments (`.Label "k"`).

use serde_json::Value;
use thiserror::Error;

use crate::gojson;
use crate::gotype::{self, GoKind};

/// A template that could not be parsed or evaluated.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("template: :1: unclosed action")]
    Unclosed,
    #[error("template: :1: function \"{0}\" not defined")]
    UnknownFunction(String),
    #[error("template: :1: unterminated quoted string")]
    UnterminatedString,
    #[error("template: :1: missing value for command")]
    Empty,
    #[error("template: :1: unexpected {{{{{0}}}}}")]
    Unexpected(String),
    #[error("template: :1: unexpected EOF")]
    UnexpectedEof,
    #[error("template: :1: missing value for {0}")]
    MissingValue(String),
    #[error("template: :1:{0}: executing \"\" at <{1}>: {2}")]
    Execution(usize, String, String),
    /// More nested `range`/`if`/`with` blocks than `MAX_DEPTH` (Go's parser has the same
    /// kind of limit, `maxStackDepth`, with this message).
    #[error("template: :1: max expression depth exceeded")]
    TooDeep,
}

/// How deeply blocks may nest. Parsing and rendering recurse once per level; without a
/// bound a `--format` of a few thousand `{{if .}}` overflows the stack (found by
/// fake-docker/tests/hostile.rs). Go allows 10,000; a debug build overflows a 2 MiB
/// thread stack near 1,000 levels, so the fake allows 200 (no docker format nests
/// more than a few levels).
pub const MAX_DEPTH: usize = 200;

/// Answers method calls like `.Label "k"` that are not plain fields.
pub type Methods<'a> = &'a dyn Fn(&str, &[String]) -> Option<Value>;

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    /// `.A.B` (empty path = `.`).
    Field(Vec<String>),
    Str(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Action {
    Value(Arg),
    Method { name: String, args: Vec<String> },
    Call { function: String, args: Vec<Arg> },
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Action {
        text: String,
        /// Where the action's text starts in the template source (for Go's error column).
        offset: usize,
        action: Action,
    },
    /// `range`, `if` or `with` over `action`: `body` when it has something, else `otherwise`.
    Block {
        kind: BlockKind,
        text: String,
        action: Action,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Range,
    If,
    With,
}

/// What ended a list of nodes.
#[derive(Debug, PartialEq, Eq)]
enum Ending {
    Eof,
    End,
    Else,
}

/// Text and action source, before blocks are matched.
enum Piece {
    Text(String),
    /// The action's trimmed text and its byte offset in the source.
    Action(String, usize),
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
    /// Whether a field missing from a JSON object is an error (`inspect`'s raw maps),
    /// rather than `<no value>`.
    strict: bool,
    /// The Go type the CLI runs the template on (`*formatter.ContainerContext`): a field
    /// it does not have is an execution error naming the type.
    context: Option<&'static str>,
    /// Rendering on the raw JSON decoded into Go's `interface{}` (the CLI's fallback):
    /// `json` sorts object keys, as Go encodes a map, and a nil value prints `<no value>`.
    raw: bool,
}

/// Objects whose keys are free-form (`map[string]string` in Docker's types): a missing
/// key there is `<no value>`, not an error, even in `inspect` (measured:
/// `{{.Config.Labels.nosuch}}` prints `<no value>`, `{{.State.Nosuch}}` fails).
const FREE_FORM_MAPS: [&str; 6] = ["Labels", "Options", "DriverOpts", "Data", "Config", "Env"];

impl Template {
    /// Parses a Go-template string.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let mut pieces = split(source)?.into_iter();
        match build(&mut pieces, 0)? {
            (nodes, Ending::Eof) => Ok(Template {
                nodes,
                strict: false,
                context: None,
                raw: false,
            }),
            (_, Ending::End) => Err(TemplateError::Unexpected("end".into())),
            (_, Ending::Else) => Err(TemplateError::Unexpected("else".into())),
        }
    }

    /// Makes a field missing from a JSON object an error, as `docker inspect` reports it
    /// (`map has no entry for key "Health"`, exit 1).
    pub fn strict_missing_keys(mut self) -> Template {
        self.strict = true;
        self
    }

    /// Makes a top-level field `data` lacks an error naming the Go type `context`, as
    /// the CLI's formatter contexts report it (`can't evaluate field X in type T`).
    pub fn in_context(mut self, context: &'static str) -> Template {
        self.context = Some(context);
        self
    }

    /// The same template, rendering on raw JSON as the CLI's fallback does.
    pub fn on_raw_json(&self) -> Template {
        let mut template = self.clone();
        template.raw = true;
        template
    }

    /// Renders against `data`, with no method calls available.
    pub fn render(&self, data: &Value) -> Result<String, TemplateError> {
        self.render_with(data, &|_, _| None)
    }

    /// Renders against `data`; `methods` answers calls like `.Label "k"`.
    pub fn render_with(&self, data: &Value, methods: Methods<'_>) -> Result<String, TemplateError> {
        let mut out = String::new();
        let scope = Scope {
            strict: self.strict,
            context: self.context,
            raw: self.raw,
        };
        render_nodes(&self.nodes, data, methods, &mut out, &scope)?;
        Ok(out)
    }
}

/// Splits source into text and action pieces, applying `{{-`/`-}}` trimming.
fn split(source: &str) -> Result<Vec<Piece>, TemplateError> {
    let mut pieces = Vec::new();
    let mut rest = source;
    let mut trim_next_text = false;
    while let Some(open) = rest.find("{{") {
        let mut text = &rest[..open];
        if trim_next_text {
            text = text.trim_start();
        }
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or(TemplateError::Unclosed)?;
        let mut inner = &after[..close];
        if let Some(stripped) = inner.strip_prefix("- ") {
            text = text.trim_end();
            inner = stripped;
        }
        trim_next_text = false;
        if let Some(stripped) = inner.strip_suffix(" -") {
            trim_next_text = true;
            inner = stripped;
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text.to_string()));
        }
        // 0-based byte offset of the action's trimmed text, as Go's error columns count.
        let stripped_prefix = if after[..close].starts_with("- ") {
            2
        } else {
            0
        };
        let leading = inner.len() - inner.trim_start().len();
        let offset = source.len() - rest.len() + open + 2 + stripped_prefix + leading;
        pieces.push(Piece::Action(inner.trim().to_string(), offset));
        rest = &after[close + 2..];
    }
    let text = if trim_next_text {
        rest.trim_start()
    } else {
        rest
    };
    if !text.is_empty() {
        pieces.push(Piece::Text(text.to_string()));
    }
    Ok(pieces)
}

/// Builds nodes until the pieces run out or an `{{end}}`/`{{else}}` closes the block.
fn build(
    pieces: &mut std::vec::IntoIter<Piece>,
    depth: usize,
) -> Result<(Vec<Node>, Ending), TemplateError> {
    let mut nodes = Vec::new();
    while let Some(piece) = pieces.next() {
        let text = match piece {
            Piece::Text(text) => {
                nodes.push(Node::Text(text));
                continue;
            }
            Piece::Action(text, offset) => (text, offset),
        };
        let (text, offset) = text;
        let (keyword, rest) = text
            .split_once(char::is_whitespace)
            .map_or((text.as_str(), ""), |(k, r)| (k, r.trim()));
        let kind = match keyword {
            "end" if rest.is_empty() => return Ok((nodes, Ending::End)),
            "else" if rest.is_empty() => return Ok((nodes, Ending::Else)),
            "range" => BlockKind::Range,
            "if" => BlockKind::If,
            "with" => BlockKind::With,
            _ => {
                let action = parse_action(&text)?;
                nodes.push(Node::Action {
                    text,
                    offset,
                    action,
                });
                continue;
            }
        };
        if rest.is_empty() {
            return Err(TemplateError::MissingValue(keyword.to_string()));
        }
        let action = parse_action(rest)?;
        if depth >= MAX_DEPTH {
            return Err(TemplateError::TooDeep);
        }
        let (body, ending) = build(pieces, depth + 1)?;
        let otherwise = match ending {
            Ending::Eof => return Err(TemplateError::UnexpectedEof),
            Ending::End => Vec::new(),
            Ending::Else => match build(pieces, depth + 1)? {
                (otherwise, Ending::End) => otherwise,
                (_, Ending::Eof) => return Err(TemplateError::UnexpectedEof),
                (_, Ending::Else) => return Err(TemplateError::Unexpected("else".into())),
            },
        };
        nodes.push(Node::Block {
            kind,
            text,
            action,
            body,
            otherwise,
        });
    }
    Ok((nodes, Ending::Eof))
}

/// How a template renders: missing-key rules, and the typed context while the dot is
/// still the data the template was given.
struct Scope {
    strict: bool,
    context: Option<&'static str>,
    raw: bool,
}

fn render_nodes(
    nodes: &[Node],
    dot: &Value,
    methods: Methods<'_>,
    out: &mut String,
    scope: &Scope,
) -> Result<(), TemplateError> {
    let strict = scope.strict;
    // Inside `range` and `with` the dot is another value: no longer the context.
    let inner = Scope {
        strict,
        context: None,
        raw: scope.raw,
    };
    for node in nodes {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Action {
                text,
                offset,
                action,
            } => {
                if strict && let Action::Value(Arg::Field(path)) = action {
                    missing_key(dot, path, text, *offset)?;
                }
                if let (Some(context), Action::Value(Arg::Field(path))) = (scope.context, action)
                    && let Some(first) = path.first()
                    && dot.get(first).is_none()
                {
                    return Err(TemplateError::Execution(
                        *offset,
                        text.clone(),
                        format!("can't evaluate field {first} in type {context}"),
                    ));
                }
                let value = evaluate(action, dot, methods, text, out.len(), scope.raw)?;
                out.push_str(&match value {
                    None => "<no value>".to_string(),
                    // A nil interface{} prints as no value in Go's templates.
                    Some(Value::Null) if scope.raw => "<no value>".to_string(),
                    Some(v) => go_format(&v),
                });
            }
            Node::Block {
                kind,
                text,
                action,
                body,
                otherwise,
            } => {
                let value = evaluate(action, dot, methods, text, out.len(), scope.raw)?
                    .unwrap_or(Value::Null);
                match kind {
                    BlockKind::Range => {
                        let items: Vec<&Value> = match &value {
                            Value::Array(items) => items.iter().collect(),
                            Value::Object(map)
                                if matches!(
                                    gotype::kind(map),
                                    GoKind::NilSlice | GoKind::NilMap
                                ) =>
                            {
                                Vec::new()
                            }
                            // Go ranges over a map's values in key order.
                            Value::Object(map) if gotype::kind(map) == GoKind::Map => {
                                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                                entries.sort_by(|a, b| a.0.cmp(b.0));
                                entries.into_iter().map(|(_, v)| v).collect()
                            }
                            Value::Null => Vec::new(),
                            _ => {
                                return Err(TemplateError::Execution(
                                    out.len() + 1,
                                    text.clone(),
                                    format!("range can't iterate over {}", go_format(&value)),
                                ));
                            }
                        };
                        if items.is_empty() {
                            render_nodes(otherwise, dot, methods, out, scope)?;
                        }
                        for item in items {
                            render_nodes(body, item, methods, out, &inner)?;
                        }
                    }
                    BlockKind::If if truthy(&value) => {
                        render_nodes(body, dot, methods, out, scope)?
                    }
                    BlockKind::With if truthy(&value) => {
                        render_nodes(body, &value, methods, out, &inner)?
                    }
                    BlockKind::If | BlockKind::With => {
                        render_nodes(otherwise, dot, methods, out, scope)?
                    }
                }
            }
        }
    }
    Ok(())
}

/// Go's notion of true: not false, 0, nil, or an empty string, slice or map.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => match gotype::kind(map) {
            GoKind::NilSlice | GoKind::NilMap => false,
            GoKind::Duration(ns) => ns != 0,
            GoKind::Struct { .. } => true,
            GoKind::Map => !map.is_empty(),
        },
    }
}

fn tokenize(inner: &str) -> Result<Vec<Token>, TemplateError> {
    let mut tokens = Vec::new();
    let mut chars = inner.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' || c == '`' {
            let quote = c;
            chars.next();
            let mut value = String::new();
            let mut closed = false;
            while let Some(c) = chars.next() {
                if c == quote {
                    closed = true;
                    break;
                }
                if c == '\\' && quote == '"' {
                    match chars.next() {
                        Some('n') => value.push('\n'),
                        Some('t') => value.push('\t'),
                        Some(other) => value.push(other),
                        None => break,
                    }
                } else {
                    value.push(c);
                }
            }
            if !closed {
                return Err(TemplateError::UnterminatedString);
            }
            tokens.push(Token::Str(value));
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                word.push(c);
                chars.next();
            }
            tokens.push(Token::Word(word));
        }
    }
    Ok(tokens)
}

enum Token {
    Word(String),
    Str(String),
}

fn parse_field(word: &str) -> Vec<String> {
    word.split('.')
        .filter(|part| !part.is_empty())
        .map(str::to_string)
        .collect()
}

fn parse_arg(token: Token) -> Result<Arg, TemplateError> {
    match token {
        Token::Str(s) => Ok(Arg::Str(s)),
        Token::Word(w) if w.starts_with('.') => Ok(Arg::Field(parse_field(&w))),
        Token::Word(w) => Err(TemplateError::UnknownFunction(w)),
    }
}

fn parse_action(inner: &str) -> Result<Action, TemplateError> {
    let mut tokens = tokenize(inner)?.into_iter();
    let first = tokens.next().ok_or(TemplateError::Empty)?;
    match first {
        Token::Str(s) => Ok(Action::Value(Arg::Str(s))),
        Token::Word(word) if word.starts_with('.') => {
            let rest: Vec<Token> = tokens.collect();
            if rest.is_empty() {
                return Ok(Action::Value(Arg::Field(parse_field(&word))));
            }
            let args = rest
                .into_iter()
                .map(|t| match t {
                    Token::Str(s) | Token::Word(s) => s,
                })
                .collect();
            Ok(Action::Method {
                name: word.trim_start_matches('.').to_string(),
                args,
            })
        }
        Token::Word(function) => {
            if !matches!(
                function.as_str(),
                "json" | "index" | "join" | "lower" | "upper" | "len" | "eq" | "ne" | "not"
            ) {
                return Err(TemplateError::UnknownFunction(function));
            }
            let args = tokens.map(parse_arg).collect::<Result<Vec<_>, _>>()?;
            Ok(Action::Call { function, args })
        }
    }
}

/// Go's error for a field chain reaching into a JSON object that lacks the key. Go
/// places it at the chain's second field (the parser's chain position), else its first.
fn missing_key(
    data: &Value,
    path: &[String],
    text: &str,
    offset: usize,
) -> Result<(), TemplateError> {
    let mut current = data;
    let mut parent_key: Option<&str> = None;
    for (index, key) in path.iter().enumerate() {
        let map = match current {
            Value::Object(map) => map,
            // Go cannot evaluate a field of nil (a nil pointer in the CLI's types, nil in
            // a decoded map): an error, never `<no value>`.
            Value::Null if index > 0 => {
                return Err(TemplateError::Execution(
                    offset,
                    text.to_string(),
                    format!("nil pointer evaluating interface {{}}.{key}"),
                ));
            }
            _ => return Ok(()),
        };
        match map.get(key) {
            Some(next) => {
                parent_key = Some(key);
                current = next;
            }
            // A struct of a typed view has fixed fields, whatever its name.
            None if parent_key.is_some_and(|p| FREE_FORM_MAPS.contains(&p))
                && !matches!(gotype::kind(map), GoKind::Struct { .. }) =>
            {
                return Ok(());
            }
            None => {
                let column = match path.first() {
                    Some(first) if path.len() > 1 => offset + 1 + first.len(),
                    _ => offset,
                };
                return Err(TemplateError::Execution(
                    column,
                    text.to_string(),
                    format!("map has no entry for key \"{key}\""),
                ));
            }
        }
    }
    Ok(())
}

fn lookup<'v>(data: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(data, |value, key| value.get(key))
}

fn resolve(arg: &Arg, data: &Value) -> Option<Value> {
    match arg {
        Arg::Str(s) => Some(Value::String(s.clone())),
        Arg::Field(path) => lookup(data, path).cloned(),
    }
}

/// The value of an action; `None` is Go's `<no value>` (a missing map key).
fn evaluate(
    action: &Action,
    data: &Value,
    methods: Methods<'_>,
    text: &str,
    column: usize,
    raw: bool,
) -> Result<Option<Value>, TemplateError> {
    let fail = |why: &str| TemplateError::Execution(column + 1, text.to_string(), why.to_string());
    match action {
        Action::Value(arg) => Ok(resolve(arg, data)),
        Action::Method { name, args } => methods(name, args)
            .map(Some)
            .ok_or_else(|| fail(&format!("can't evaluate field {name}"))),
        Action::Call { function, args } => {
            let values: Vec<Value> = args
                .iter()
                .map(|a| resolve(a, data).unwrap_or(Value::Null))
                .collect();
            match (function.as_str(), values.as_slice()) {
                ("json", [value]) => {
                    let value = gotype::plain(value);
                    let value = if raw { sorted_keys(&value) } else { value };
                    Ok(Some(Value::String(gojson::compact(&value))))
                }
                ("index", [collection, keys @ ..]) => {
                    let mut current = collection.clone();
                    for key in keys {
                        current = match (&current, key) {
                            (Value::Object(map), Value::String(k)) => {
                                map.get(k).cloned().unwrap_or(Value::Null)
                            }
                            (Value::Array(items), Value::String(k)) => k
                                .parse::<usize>()
                                .ok()
                                .and_then(|i| items.get(i).cloned())
                                .ok_or_else(|| fail("error calling index: index out of range"))?,
                            _ => return Err(fail("error calling index: cannot index")),
                        };
                    }
                    Ok((!current.is_null()).then_some(current))
                }
                ("join", [Value::Array(items), Value::String(separator)]) => {
                    Ok(Some(Value::String(
                        items
                            .iter()
                            .map(go_format)
                            .collect::<Vec<_>>()
                            .join(separator),
                    )))
                }
                ("lower", [value]) => Ok(Some(Value::String(go_format(value).to_lowercase()))),
                ("upper", [value]) => Ok(Some(Value::String(go_format(value).to_uppercase()))),
                ("len", [value]) => match value {
                    Value::Array(items) => Ok(Some(items.len().into())),
                    Value::Object(map) => Ok(Some(gotype::fields(map).count().into())),
                    Value::String(s) => Ok(Some(s.len().into())),
                    other => Err(fail(&format!(
                        "error calling len: len of {}",
                        go_format(other)
                    ))),
                },
                ("eq", [first, rest @ ..]) if !rest.is_empty() => {
                    Ok(Some(Value::Bool(rest.iter().any(|v| v == first))))
                }
                ("ne", [first, second]) => Ok(Some(Value::Bool(first != second))),
                ("not", [value]) => Ok(Some(Value::Bool(!truthy(value)))),
                _ => Err(fail(&format!("wrong arguments for {function}"))),
            }
        }
    }
}

/// The value with every object's keys sorted, as Go's encoding/json writes a map.
fn sorted_keys(value: &Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(sorted_keys).collect()),
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted_keys(v)))
                    .collect(),
            )
        }
        other => other.clone(),
    }
}

/// Formats a value like Go's `%v` does for the types docker prints: JSON maps as
/// `map[k:v]`, and the Go values of a typed view (`gotype`) as Go prints them.
pub fn go_format(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(go_format).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(map) => match gotype::kind(map) {
            GoKind::NilSlice => "[]".to_string(),
            GoKind::NilMap => "map[]".to_string(),
            GoKind::Duration(ns) => gotype::duration_text(ns),
            GoKind::Struct { groups, .. } => {
                let values: Vec<String> = gotype::fields(map).map(|(_, v)| go_format(v)).collect();
                if groups.is_empty() {
                    return format!("{{{}}}", values.join(" "));
                }
                let mut parts = Vec::new();
                let mut rest = values.as_slice();
                for size in groups {
                    let (group, tail) = rest.split_at(size.min(rest.len()));
                    parts.push(format!("{{{}}}", group.join(" ")));
                    rest = tail;
                }
                parts.extend(rest.iter().cloned());
                format!("{{{}}}", parts.join(" "))
            }
            GoKind::Map => {
                // Go prints map keys sorted.
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                let parts: Vec<String> = entries
                    .into_iter()
                    .map(|(k, v)| format!("{k}:{}", go_format(v)))
                    .collect();
                format!("map[{}]", parts.join(" "))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(template: &str, data: &Value) -> String {
        Template::parse(template)
            .and_then(|t| t.render(data))
            .unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn fields_and_literals() {
        let data = json!({"State": {"Status": "exited", "ExitCode": 137, "OOMKilled": false}});
        assert_eq!(
            render(
                "{{.State.Status}} {{.State.ExitCode}} {{.State.OOMKilled}}",
                &data
            ),
            "exited 137 false"
        );
        assert_eq!(render("x={{ .State.Status }}!", &data), "x=exited!");
        assert_eq!(render("{{.Nope}}", &data), "<no value>");
    }

    #[test]
    fn json_function() {
        let data = json!({"State": {"Error": "exec: \"x\" <bad>"}, "L": {"b": "2", "a": "1"}});
        assert_eq!(
            render("{{json .State.Error}}", &data),
            r#""exec: \"x\" \u003cbad\u003e""#
        );
        assert_eq!(render("{{json .L}}", &data), r#"{"b":"2","a":"1"}"#);
        assert_eq!(render("{{json .}}", &json!({"a": 1})), r#"{"a":1}"#);
    }

    #[test]
    fn go_formatting_of_collections() {
        let data = json!({"Args": ["a", "b"], "Labels": {"z": "1", "a": "2"}, "N": null});
        assert_eq!(render("{{.Args}}", &data), "[a b]");
        assert_eq!(render("{{.Labels}}", &data), "map[a:2 z:1]");
        assert_eq!(render("{{.N}}", &data), "<nil>");
        assert_eq!(render("{{join .Args \",\"}}", &data), "a,b");
        assert_eq!(render("{{index .Labels \"z\"}}", &data), "1");
    }

    #[test]
    fn trimming_markers() {
        assert_eq!(render("a  {{- .X -}}  b", &json!({"X": "x"})), "axb");
    }

    #[test]
    fn methods_are_delegated() {
        let template = Template::parse("{{.Label \"k\"}}").unwrap_or_else(|e| panic!("{e}"));
        let out = template
            .render_with(&json!({}), &|name, args| {
                (name == "Label" && args == ["k"]).then(|| json!("v"))
            })
            .unwrap_or_default();
        assert_eq!(out, "v");
    }

    #[test]
    fn errors() {
        assert_eq!(
            render("{{.A", &json!({})),
            "ERR template: :1: unclosed action"
        );
        assert_eq!(
            render("{{nosuch .A}}", &json!({})),
            "ERR template: :1: function \"nosuch\" not defined"
        );
    }

    #[test]
    fn range_if_with_and_else() {
        let data = json!({
            "Mounts": [{"Type": "bind", "RW": false}, {"Type": "volume", "RW": true}],
            "Labels": {"b": "2", "a": "1"},
            "Empty": [],
            "State": {"Running": true, "Status": "running"},
        });
        assert_eq!(
            render("{{range .Mounts}}{{.Type}} {{.RW}};{{end}}", &data),
            "bind false;volume true;"
        );
        assert_eq!(render("{{range .Labels}}{{.}}{{end}}", &data), "12");
        assert_eq!(
            render("{{range .Empty}}x{{else}}none{{end}}", &data),
            "none"
        );
        assert_eq!(render("{{range .Missing}}x{{end}}", &data), "");
        assert_eq!(
            render("{{if .State.Running}}up{{else}}down{{end}}", &data),
            "up"
        );
        assert_eq!(
            render("{{if .Empty}}some{{else}}none{{end}}", &data),
            "none"
        );
        assert_eq!(
            render("{{if eq .State.Status \"running\"}}yes{{end}}", &data),
            "yes"
        );
        assert_eq!(
            render(
                "{{if ne .State.Status \"running\"}}yes{{else}}no{{end}}",
                &data
            ),
            "no"
        );
        assert_eq!(
            render("{{with .State}}{{.Status}}{{end}}", &data),
            "running"
        );
        assert_eq!(
            render("{{len .Mounts}} {{not .State.Running}}", &data),
            "2 false"
        );
        assert_eq!(
            render("{{range .Mounts}}{{if .RW}}rw{{end}}{{end}}", &data),
            "rw"
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let data = json!({"A": [[1]]});
        // The deepest allowed nesting parses and renders (on a 2 MiB test thread, in debug).
        let deepest = format!(
            "{}x{}",
            "{{with .}}".repeat(MAX_DEPTH),
            "{{end}}".repeat(MAX_DEPTH)
        );
        assert_eq!(render(&deepest, &data), "x");
        // One more, closed or not, and 12,000 (what a 128 KiB argument holds) are refused.
        let over = format!(
            "{}x{}",
            "{{if .}}".repeat(MAX_DEPTH + 1),
            "{{end}}".repeat(MAX_DEPTH + 1)
        );
        assert_eq!(
            render(&over, &data),
            "ERR template: :1: max expression depth exceeded"
        );
        assert_eq!(
            render(&"{{range .A}}".repeat(12_000), &data),
            "ERR template: :1: max expression depth exceeded"
        );
        assert_eq!(
            render(&"{{if .}}{{else}}".repeat(12_000), &data),
            "ERR template: :1: max expression depth exceeded"
        );
    }

    #[test]
    fn unbalanced_blocks_are_errors() {
        assert_eq!(
            render("{{range .A}}x", &json!({})),
            "ERR template: :1: unexpected EOF"
        );
        assert_eq!(
            render("x{{end}}", &json!({})),
            "ERR template: :1: unexpected {{end}}"
        );
        assert_eq!(
            render("{{if}}x{{end}}", &json!({})),
            "ERR template: :1: missing value for if"
        );
        assert_eq!(
            render("{{range .S}}x{{end}}", &json!({"S": "text"})),
            "ERR template: :1:1: executing \"\" at <range .S>: range can't iterate over text"
        );
    }
}
