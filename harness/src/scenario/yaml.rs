//! YAML text → JSON value, keeping where every key and value came from.
//!
//! Scenario validation works on a JSON value (so the JSON Schema can check it)
//! but every error must point at `file:line:column`; this module keeps a map
//! from JSON pointer to source span while converting.

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use serde_json::{Map, Number, Value};

/// A position in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Byte offset into the text.
    pub offset: usize,
}

/// A range of the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SourceSpan {
    pub start: Pos,
    pub end: Pos,
    /// Which file: 0 the file being read, `n` the `n`-th file a scenario included
    /// (`LoadedScenario::included[n - 1]`, see `scenario::include`).
    pub source: u32,
}

/// Where each node of a parsed document came from, keyed by JSON pointer.
#[derive(Debug, Default, Clone)]
pub struct SpanIndex {
    values: HashMap<String, SourceSpan>,
    keys: HashMap<String, SourceSpan>,
}

impl SpanIndex {
    /// The span of the value at `pointer`, or of its nearest ancestor.
    pub fn value(&self, pointer: &str) -> SourceSpan {
        let mut current = pointer;
        loop {
            if let Some(span) = self.values.get(current) {
                return *span;
            }
            match current.rfind('/') {
                Some(index) => current = &current[..index],
                None => return SourceSpan::default(),
            }
        }
    }

    /// The span of the key naming the member at `pointer`, or of its value.
    pub fn key(&self, pointer: &str) -> SourceSpan {
        self.keys
            .get(pointer)
            .copied()
            .unwrap_or_else(|| self.value(pointer))
    }

    /// Forget every span below `prefix` (the span of `prefix` itself stays).
    pub(crate) fn remove_under(&mut self, prefix: &str) {
        let below = format!("{prefix}/");
        let keep = |pointer: &String| !pointer.starts_with(&below);
        self.values.retain(|pointer, _| keep(pointer));
        self.keys.retain(|pointer, _| keep(pointer));
    }

    /// Copy `from`'s spans at or below `from_prefix` to `to_prefix` here, marked as coming
    /// from file `source` (an included file's spans, spliced where it was included).
    pub(crate) fn graft(
        &mut self,
        to_prefix: &str,
        from: &SpanIndex,
        from_prefix: &str,
        source: u32,
    ) {
        let below = format!("{from_prefix}/");
        let moved = |pointer: &String| {
            if pointer == from_prefix {
                Some(to_prefix.to_owned())
            } else {
                pointer
                    .strip_prefix(&below)
                    .map(|rest| format!("{to_prefix}/{rest}"))
            }
        };
        for (pointer, span) in &from.values {
            if let Some(target) = moved(pointer) {
                self.values.insert(target, SourceSpan { source, ..*span });
            }
        }
        for (pointer, span) in &from.keys {
            if let Some(target) = moved(pointer) {
                self.keys.insert(target, SourceSpan { source, ..*span });
            }
        }
    }
}

/// A YAML syntax error, or a document over [`Limits`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    pub message: String,
    pub span: SourceSpan,
    /// What to do about it, when there is more to say than "fix the syntax".
    pub hint: Option<&'static str>,
}

impl YamlError {
    /// The message with its hint, for readers that print one line.
    pub fn with_hint(&self) -> String {
        match self.hint {
            Some(hint) => format!("{} (hint: {hint})", self.message),
            None => self.message.clone(),
        }
    }
}

/// What one YAML document may cost, whatever its size: every reader of YAML in
/// dockproof (scenarios, CST, compose, hosts, gates) parses through [`parse`], so
/// these hold everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest text parsed, in bytes.
    pub max_text_bytes: usize,
    /// The deepest nesting of sequences and mappings. The reader and everything
    /// after it (schema validation, deserialisation, dropping the value) recurse
    /// once per level, so this keeps the stack safe.
    pub max_depth: usize,
    /// Nodes of the document as built: every alias counts all the nodes it stands
    /// for, and every anchor the copy kept of its value (an alias "bomb" of a few
    /// hundred bytes would otherwise expand to billions of nodes).
    pub max_nodes: usize,
    /// Bytes of scalar text of the document as built, counted like `max_nodes`.
    pub max_scalar_bytes: usize,
}

/// The limits every dockproof file is read with.
pub const LIMITS: Limits = Limits {
    max_text_bytes: 2 * 1024 * 1024,
    max_depth: 64,
    max_nodes: 100_000,
    max_scalar_bytes: 4 * 1024 * 1024,
};

/// What a part of the document costs against [`Limits`].
#[derive(Debug, Clone, Copy, Default)]
struct Cost {
    nodes: usize,
    bytes: usize,
}

impl Cost {
    fn plus(self, other: Cost) -> Cost {
        Cost {
            nodes: self.nodes.saturating_add(other.nodes),
            bytes: self.bytes.saturating_add(other.bytes),
        }
    }

    fn since(self, earlier: Cost) -> Cost {
        Cost {
            nodes: self.nodes.saturating_sub(earlier.nodes),
            bytes: self.bytes.saturating_sub(earlier.bytes),
        }
    }
}

const BUDGET_HINT: &str = "anchors and aliases (`&name`, `*name`) are expanded when the file is read; a file that expands this much is refused (see \"Limits\" in docs/limits.md)";

/// A parsed document: its JSON value and where each part came from.
#[derive(Debug, Clone)]
pub struct Located {
    pub value: Value,
    pub spans: SpanIndex,
}

/// Escape one JSON-pointer segment.
pub fn escape_segment(segment: &str) -> Cow<'_, str> {
    if segment.contains(['~', '/']) {
        Cow::Owned(segment.replace('~', "~0").replace('/', "~1"))
    } else {
        Cow::Borrowed(segment)
    }
}

/// Parse one YAML document within [`LIMITS`]. An empty text is `null`.
pub fn parse(text: &str) -> Result<Located, YamlError> {
    parse_with(text, LIMITS)
}

/// Parse one YAML document within `limits`. An empty text is `null`.
pub fn parse_with(text: &str, limits: Limits) -> Result<Located, YamlError> {
    if text.len() > limits.max_text_bytes {
        return Err(YamlError {
            message: format!(
                "the file is {} bytes, more than the {} bytes a YAML file may have",
                text.len(),
                limits.max_text_bytes
            ),
            span: SourceSpan::default(),
            hint: Some("split the file, or check that this is the file you meant"),
        });
    }
    let mut reader = Reader {
        parser: Parser::new_from_str(text),
        offsets: CharOffsets::new(text),
        spans: SpanIndex::default(),
        anchors: HashMap::new(),
        limits,
        cost: Cost::default(),
    };
    reader.document()
}

struct Reader<'input> {
    parser: Parser<'input, saphyr_parser::StrInput<'input>>,
    offsets: CharOffsets,
    spans: SpanIndex,
    /// Each anchor's value and what it cost to build.
    anchors: HashMap<usize, (Value, Cost)>,
    limits: Limits,
    /// What the document has cost so far.
    cost: Cost,
}

impl<'input> Reader<'input> {
    fn next(&mut self) -> Result<(Event<'input>, SourceSpan), YamlError> {
        match self.parser.next_event() {
            Some(Ok((event, span))) => Ok((event, self.offsets.span(span))),
            Some(Err(error)) => {
                let marker = error.marker();
                let pos = self
                    .offsets
                    .pos(marker.index(), marker.line(), marker.col());
                Err(YamlError {
                    message: format!("invalid YAML: {}", error.info()),
                    span: SourceSpan {
                        start: pos,
                        end: pos,
                        source: 0,
                    },
                    hint: None,
                })
            }
            None => Err(YamlError {
                message: "unexpected end of YAML".into(),
                span: SourceSpan::default(),
                hint: None,
            }),
        }
    }

    /// Charge `cost` to the document; an error at `span` when it goes over the limits.
    fn charge(&mut self, cost: Cost, span: SourceSpan, what: &str) -> Result<(), YamlError> {
        let total = self.cost.plus(cost);
        if total.nodes > self.limits.max_nodes {
            return Err(YamlError {
                message: format!(
                    "{what} makes the document larger than {} nodes (anchors and aliases count every node they stand for)",
                    self.limits.max_nodes
                ),
                span,
                hint: Some(BUDGET_HINT),
            });
        }
        if total.bytes > self.limits.max_scalar_bytes {
            return Err(YamlError {
                message: format!(
                    "{what} makes the document hold more than {} bytes of text (anchors and aliases count every byte they stand for)",
                    self.limits.max_scalar_bytes
                ),
                span,
                hint: Some(BUDGET_HINT),
            });
        }
        self.cost = total;
        Ok(())
    }

    fn document(&mut self) -> Result<Located, YamlError> {
        let mut value = Value::Null;
        let mut documents = 0;
        loop {
            let (event, span) = self.next()?;
            match event {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::StreamEnd => break,
                Event::DocumentStart(_) => {
                    documents += 1;
                    if documents > 1 {
                        return Err(YamlError {
                            message:
                                "a scenario file holds one YAML document; found a second `---`"
                                    .into(),
                            span,
                            hint: None,
                        });
                    }
                    let (first, first_span) = self.next()?;
                    value = self.node(first, first_span, String::new(), 0)?;
                }
                other => {
                    return Err(YamlError {
                        message: format!("unexpected YAML event {other:?}"),
                        span,
                        hint: None,
                    });
                }
            }
        }
        Ok(Located {
            value,
            spans: std::mem::take(&mut self.spans),
        })
    }

    /// One node and everything under it, `depth` levels below the document's root.
    fn node(
        &mut self,
        event: Event<'input>,
        span: SourceSpan,
        pointer: String,
        depth: usize,
    ) -> Result<Value, YamlError> {
        let cost_before = self.cost;
        if matches!(event, Event::SequenceStart(..) | Event::MappingStart(..))
            && depth >= self.limits.max_depth
        {
            return Err(YamlError {
                message: format!(
                    "the document nests sequences and mappings deeper than {} levels",
                    self.limits.max_depth
                ),
                span,
                hint: Some("no dockproof file needs this depth; flatten the structure"),
            });
        }
        let (value, anchor, end) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                self.charge(
                    Cost {
                        nodes: 1,
                        bytes: text.len(),
                    },
                    span,
                    "this value",
                )?;
                let forced_string = tag.as_ref().is_some_and(|tag| tag.suffix == "str");
                let value = if style == ScalarStyle::Plain && !forced_string {
                    resolve_plain(&text)
                } else {
                    Value::String(text.into_owned())
                };
                (value, anchor, span.end)
            }
            Event::Alias(id) => {
                let cost = self
                    .anchors
                    .get(&id)
                    .map(|(_, cost)| *cost)
                    .ok_or_else(|| YamlError {
                        message: "alias refers to an unknown anchor".into(),
                        span,
                        hint: None,
                    })?;
                // Charged before the copy is made, so a bomb is refused before it costs memory.
                self.charge(cost, span, "this alias")?;
                let value = self
                    .anchors
                    .get(&id)
                    .map(|(value, _)| value.clone())
                    .unwrap_or_default();
                (value, 0, span.end)
            }
            Event::SequenceStart(anchor, _) => {
                self.charge(Cost { nodes: 1, bytes: 0 }, span, "this sequence")?;
                let mut items = Vec::new();
                let end = loop {
                    let (event, item_span) = self.next()?;
                    if let Event::SequenceEnd = event {
                        break item_span.end;
                    }
                    let item_pointer = format!("{pointer}/{}", items.len());
                    items.push(self.node(event, item_span, item_pointer, depth + 1)?);
                };
                (Value::Array(items), anchor, end)
            }
            Event::MappingStart(anchor, _) => {
                self.charge(Cost { nodes: 1, bytes: 0 }, span, "this mapping")?;
                let mut members = Map::new();
                let end = loop {
                    let (event, key_span) = self.next()?;
                    if let Event::MappingEnd = event {
                        break key_span.end;
                    }
                    let key = match event {
                        Event::Scalar(text, ..) => text.into_owned(),
                        _ => {
                            return Err(YamlError {
                                message: "mapping keys must be plain text".into(),
                                span: key_span,
                                hint: None,
                            });
                        }
                    };
                    let member_pointer = format!("{pointer}/{}", escape_segment(&key));
                    if members.contains_key(&key) {
                        return Err(YamlError {
                            message: format!("duplicate key `{key}`"),
                            span: key_span,
                            hint: None,
                        });
                    }
                    self.spans.keys.insert(member_pointer.clone(), key_span);
                    let (value_event, value_span) = self.next()?;
                    self.charge(
                        Cost {
                            nodes: 0,
                            bytes: key.len(),
                        },
                        key_span,
                        "this key",
                    )?;
                    let value = self.node(value_event, value_span, member_pointer, depth + 1)?;
                    members.insert(key, value);
                };
                (Value::Object(members), anchor, end)
            }
            other => {
                return Err(YamlError {
                    message: format!("unexpected YAML event {other:?}"),
                    span,
                    hint: None,
                });
            }
        };
        if anchor != 0 {
            // The kept copy costs what the value did.
            let cost = self.cost.since(cost_before);
            self.charge(cost, span, "this anchor")?;
            self.anchors.insert(anchor, (value.clone(), cost));
        }
        self.spans.values.insert(
            pointer,
            SourceSpan {
                start: span.start,
                end,
                source: 0,
            },
        );
        Ok(value)
    }
}

/// Resolve a plain scalar with the YAML 1.2 core schema.
fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit()) {
        if let Ok(number) = text.parse::<i64>() {
            return Value::Number(number.into());
        }
        if let Ok(number) = text.parse::<u64>() {
            return Value::Number(number.into());
        }
    }
    if let Some(hex) = text.strip_prefix("0x")
        && let Ok(number) = i64::from_str_radix(hex, 16)
    {
        return Value::Number(number.into());
    }
    if let Some(octal) = text.strip_prefix("0o")
        && let Ok(number) = i64::from_str_radix(octal, 8)
    {
        return Value::Number(number.into());
    }
    let looks_numeric = digits.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
    if looks_numeric
        && let Ok(number) = text.parse::<f64>()
        && let Some(number) = Number::from_f64(number)
    {
        return Value::Number(number);
    }
    Value::String(text.to_owned())
}

/// Maps the parser's character indices to byte offsets (the same numbers in ASCII
/// text, so no table is kept for it).
struct CharOffsets {
    byte_of_char: Vec<usize>,
    ascii_len: Option<usize>,
}

impl CharOffsets {
    fn new(text: &str) -> Self {
        if text.is_ascii() {
            return CharOffsets {
                byte_of_char: Vec::new(),
                ascii_len: Some(text.len()),
            };
        }
        let mut byte_of_char: Vec<usize> = text.char_indices().map(|(byte, _)| byte).collect();
        byte_of_char.push(text.len());
        CharOffsets {
            byte_of_char,
            ascii_len: None,
        }
    }

    fn pos(&self, char_index: usize, line: usize, col: usize) -> Pos {
        let offset = match self.ascii_len {
            Some(len) => char_index.min(len),
            None => self
                .byte_of_char
                .get(char_index)
                .copied()
                .unwrap_or_else(|| self.byte_of_char.last().copied().unwrap_or(0)),
        };
        Pos {
            line,
            column: col + 1,
            offset,
        }
    }

    fn span(&self, span: Span) -> SourceSpan {
        SourceSpan {
            start: self.pos(span.start.index(), span.start.line(), span.start.col()),
            end: self.pos(span.end.index(), span.end.line(), span.end.col()),
            source: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn converts_scalars_with_the_core_schema() {
        let located = parse("a: 1\nb: '1'\nc: true\nd: ~\ne: 0.5\nf: 1m30s\ng: [x, 2]\n").unwrap();
        assert_eq!(
            located.value,
            json!({"a": 1, "b": "1", "c": true, "d": null, "e": 0.5, "f": "1m30s", "g": ["x", 2]})
        );
    }

    #[test]
    fn remembers_where_keys_and_values_are() {
        let located = parse("name: x\nsteps:\n  - run:\n      imgae: busybox\n").unwrap();
        let key = located.spans.key("/steps/0/run/imgae");
        assert_eq!((key.start.line, key.start.column), (4, 7));
        let value = located.spans.value("/steps/0/run/imgae");
        assert_eq!((value.start.line, value.start.column), (4, 14));
        // Unknown pointers fall back to the nearest known ancestor.
        let fallback = located.spans.value("/steps/0/run/nothing/here");
        assert_eq!(fallback.start.line, 4);
    }

    #[test]
    fn reports_syntax_errors_with_a_position() {
        let error = parse("name: x\nsteps: [\n").unwrap_err();
        assert!(error.span.start.line >= 2, "{error:?}");
    }

    #[test]
    fn rejects_duplicate_keys() {
        let error = parse("name: a\nname: b\n").unwrap_err();
        assert!(error.message.contains("duplicate key `name`"));
        assert_eq!(error.span.start.line, 2);
    }

    /// Nine levels of nine aliases: 9^9 strings if expanded.
    fn alias_bomb() -> String {
        let mut text = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for (name, previous) in ["b", "c", "d", "e", "f", "g", "h", "i"]
            .iter()
            .zip(["a", "b", "c", "d", "e", "f", "g", "h"])
        {
            let aliases = vec![format!("*{previous}"); 9].join(",");
            text.push_str(&format!("{name}: &{name} [{aliases}]\n"));
        }
        text
    }

    #[test]
    fn an_alias_bomb_is_refused_at_the_alias_that_goes_over() {
        let error = parse(&alias_bomb()).unwrap_err();
        assert!(error.message.contains("100000 nodes"), "{error:?}");
        assert!(error.hint.is_some());
        // Level e expands to 9^4 strings; with the copy its anchor keeps, the count
        // goes over 100000 there, long before the billions of level i are built.
        assert_eq!(error.span.start.line, 5, "{error:?}");
    }

    #[test]
    fn aliases_within_the_budget_expand() {
        let located = parse("a: &a [1, 2]\nb: [*a, *a]\n").unwrap();
        assert_eq!(located.value, json!({"a": [1, 2], "b": [[1, 2], [1, 2]]}));
    }

    #[test]
    fn aliased_text_counts_its_bytes() {
        let big = "x".repeat(1024 * 1024);
        let text = format!("a: &a {big}\nb: [*a, *a, *a, *a]\n");
        let error = parse(&text).unwrap_err();
        assert!(error.message.contains("bytes of text"), "{error:?}");
        assert_eq!(error.span.start.line, 2);
    }

    #[test]
    fn nesting_is_capped_before_the_stack_is_at_risk() {
        for text in [
            format!("{}z\n", "- ".repeat(2000)),
            format!("{}{}", "[".repeat(5000), "]".repeat(5000)),
            format!("{}1{}", "{a: ".repeat(3000), "}".repeat(3000)),
        ] {
            let error = parse(&text).unwrap_err();
            assert!(
                error.message.contains("deeper than 64 levels")
                    || error.message.contains("invalid YAML"),
                "{error:?}"
            );
            assert!(error.span.start.line >= 1);
        }
        let error = parse(&format!("{}z\n", "- ".repeat(2000))).unwrap_err();
        assert!(error.message.contains("deeper than 64 levels"), "{error:?}");
        assert_eq!((error.span.start.line, error.span.start.column), (1, 129));
        // 64 levels are fine.
        assert!(parse(&format!("{}z\n", "- ".repeat(64))).is_ok());
    }

    #[test]
    fn oversized_text_is_refused_before_parsing() {
        let limits = Limits {
            max_text_bytes: 8,
            ..LIMITS
        };
        let error = parse_with("name: something long\n", limits).unwrap_err();
        assert!(error.message.contains("more than the 8 bytes"), "{error:?}");
    }

    #[test]
    fn empty_text_is_null() {
        assert_eq!(parse("").unwrap().value, Value::Null);
    }
}
