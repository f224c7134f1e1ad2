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
}

/// A YAML syntax error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    pub message: String,
    pub span: SourceSpan,
}

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

/// Parse one YAML document. An empty text is `null`.
pub fn parse(text: &str) -> Result<Located, YamlError> {
    let mut reader = Reader {
        parser: Parser::new_from_str(text),
        offsets: CharOffsets::new(text),
        spans: SpanIndex::default(),
        anchors: HashMap::new(),
    };
    reader.document()
}

struct Reader<'input> {
    parser: Parser<'input, saphyr_parser::StrInput<'input>>,
    offsets: CharOffsets,
    spans: SpanIndex,
    anchors: HashMap<usize, Value>,
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
                    },
                })
            }
            None => Err(YamlError {
                message: "unexpected end of YAML".into(),
                span: SourceSpan::default(),
            }),
        }
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
                        });
                    }
                    let (first, first_span) = self.next()?;
                    value = self.node(first, first_span, String::new())?;
                }
                other => {
                    return Err(YamlError {
                        message: format!("unexpected YAML event {other:?}"),
                        span,
                    });
                }
            }
        }
        Ok(Located {
            value,
            spans: std::mem::take(&mut self.spans),
        })
    }

    fn node(
        &mut self,
        event: Event<'input>,
        span: SourceSpan,
        pointer: String,
    ) -> Result<Value, YamlError> {
        let (value, anchor, end) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                let forced_string = tag.as_ref().is_some_and(|tag| tag.suffix == "str");
                let value = if style == ScalarStyle::Plain && !forced_string {
                    resolve_plain(&text)
                } else {
                    Value::String(text.into_owned())
                };
                (value, anchor, span.end)
            }
            Event::Alias(id) => {
                let value = self.anchors.get(&id).cloned().ok_or_else(|| YamlError {
                    message: "alias refers to an unknown anchor".into(),
                    span,
                })?;
                (value, 0, span.end)
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                let end = loop {
                    let (event, item_span) = self.next()?;
                    if let Event::SequenceEnd = event {
                        break item_span.end;
                    }
                    let item_pointer = format!("{pointer}/{}", items.len());
                    items.push(self.node(event, item_span, item_pointer)?);
                };
                (Value::Array(items), anchor, end)
            }
            Event::MappingStart(anchor, _) => {
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
                            });
                        }
                    };
                    let member_pointer = format!("{pointer}/{}", escape_segment(&key));
                    if members.contains_key(&key) {
                        return Err(YamlError {
                            message: format!("duplicate key `{key}`"),
                            span: key_span,
                        });
                    }
                    self.spans.keys.insert(member_pointer.clone(), key_span);
                    let (value_event, value_span) = self.next()?;
                    let value = self.node(value_event, value_span, member_pointer)?;
                    members.insert(key, value);
                };
                (Value::Object(members), anchor, end)
            }
            other => {
                return Err(YamlError {
                    message: format!("unexpected YAML event {other:?}"),
                    span,
                });
            }
        };
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
        self.spans.values.insert(
            pointer,
            SourceSpan {
                start: span.start,
                end,
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

/// Maps the parser's character indices to byte offsets.
struct CharOffsets {
    byte_of_char: Vec<usize>,
}

impl CharOffsets {
    fn new(text: &str) -> Self {
        let mut byte_of_char: Vec<usize> = text.char_indices().map(|(byte, _)| byte).collect();
        byte_of_char.push(text.len());
        CharOffsets { byte_of_char }
    }

    fn pos(&self, char_index: usize, line: usize, col: usize) -> Pos {
        let offset = self
            .byte_of_char
            .get(char_index)
            .copied()
            .unwrap_or_else(|| self.byte_of_char.last().copied().unwrap_or(0));
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

    #[test]
    fn empty_text_is_null() {
        assert_eq!(parse("").unwrap().value, Value::Null);
    }
}
