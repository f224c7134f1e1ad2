//! A Dockerfile parser written against BuildKit's grammar
//! (`frontend/dockerfile/parser/parser.go` in moby/buildkit), with a position
//! (line:column) for every instruction, flag, argument word and heredoc.
//!
//! It reads what BuildKit reads: `# syntax=`/`# escape=`/`# check=` directives,
//! line continuations (with comments and empty lines inside them dropped),
//! flags (`--mount=…`, `--chmod=…`, `--platform=…`), exec (JSON) and shell forms,
//! `ONBUILD <instruction>`, and heredocs on `RUN`/`COPY`/`ADD` anywhere in the
//! line (`<<EOF`, `<<-EOF`, `<<"EOF"`, `3<<EOF`, several per line).
//!
//! Why not a crate: `dockerfile-parser` 0.9 has no heredocs at all, and
//! `parse-dockerfile` 0.1.9 only takes a heredoc at the start of `RUN`
//! (`RUN python3 <<EOF`, documented on docs.docker.com, fails); see docs/lint.md.
//!
//! The parser is linear in the input and allocates at most a few times its size;
//! it never panics (property-tested in `harness/tests/integration/lint.rs`).

use std::fmt;

/// A 1-based line and column (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// Where a piece of a Dockerfile starts and ends (the end is inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: Pos,
    pub end: Pos,
}

/// A word of an instruction as written (quotes kept), with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub span: Span,
}

impl Word {
    /// The word with shell quotes removed (`"a b"` → `a b`, `'x'` → `x`).
    pub fn unquoted(&self) -> String {
        unquote(&self.text)
    }
}

/// A `--name[=value]` flag before an instruction's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    pub name: String,
    pub value: Option<String>,
    pub span: Span,
}

/// An instruction's arguments, in exec (JSON array) or shell form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arguments {
    /// `["executable", "arg"]`: each string decoded, with its place.
    Exec(Vec<Word>),
    /// Anything else: the text (continuations joined) and its words.
    Shell { text: String, words: Vec<Word> },
}

impl Arguments {
    /// The argument words (decoded strings in exec form, raw words in shell form).
    pub fn words(&self) -> &[Word] {
        match self {
            Arguments::Exec(words) | Arguments::Shell { words, .. } => words,
        }
    }

    /// Whether this is the exec (JSON array) form.
    pub fn is_exec(&self) -> bool {
        matches!(self, Arguments::Exec(_))
    }
}

/// A here-document attached to `RUN`, `COPY` or `ADD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter, quotes removed.
    pub name: String,
    /// `<<-`: leading tabs are stripped from the body and the terminator.
    pub strip_tabs: bool,
    /// False when the delimiter was quoted (the builder does not expand variables).
    pub expand: bool,
    /// The body, one `\n` after each line, terminator excluded.
    pub body: String,
    /// The `<<NAME` word on the instruction line.
    pub open: Span,
    /// From the first body line to the terminator line.
    pub span: Span,
}

/// One instruction, its flags, arguments and heredocs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// Upper-cased keyword (`RUN`, `COPY`, …).
    pub keyword: String,
    pub keyword_span: Span,
    pub flags: Vec<Flag>,
    /// For `HEALTHCHECK`: `CMD` or `NONE`; for `FROM`: none.
    pub subcommand: Option<Word>,
    pub arguments: Arguments,
    pub heredocs: Vec<Heredoc>,
    /// For `ONBUILD`: the instruction it triggers.
    pub trigger: Option<Box<Instruction>>,
    /// From the keyword to the last line of the instruction (heredocs included).
    pub span: Span,
}

impl Instruction {
    /// The value of `--name=value`, when given.
    pub fn flag(&self, name: &str) -> Option<&Flag> {
        self.flags.iter().find(|flag| flag.name == name)
    }

    /// Lines the instruction covers, first to last.
    pub fn lines(&self) -> std::ops::RangeInclusive<usize> {
        self.span.start.line..=self.span.end.line
    }
}

/// A parser directive at the top of the file (`# syntax=…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub name: String,
    pub value: String,
    pub line: usize,
}

/// A `#` comment line outside any heredoc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    /// The text after `#`, trimmed.
    pub text: String,
    pub line: usize,
    /// Inside a continued instruction (BuildKit drops those).
    pub inside_instruction: bool,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    pub directives: Vec<Directive>,
    pub escape: char,
    pub instructions: Vec<Instruction>,
    pub comments: Vec<Comment>,
}

/// Why a Dockerfile could not be parsed: where, what was expected, and a hint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{}: expected {expected}, found {found} (hint: {hint})", .at.line, .at.column)]
pub struct ParseError {
    pub at: Pos,
    pub expected: String,
    pub found: String,
    pub hint: String,
}

fn error(
    at: Pos,
    expected: impl Into<String>,
    found: impl Into<String>,
    hint: impl Into<String>,
) -> ParseError {
    ParseError {
        at: Pos {
            line: at.line.max(1),
            column: at.column.max(1),
        },
        expected: expected.into(),
        found: found.into(),
        hint: hint.into(),
    }
}

/// Every instruction BuildKit knows.
pub const KEYWORDS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

const HEREDOC_KEYWORDS: [&str; 3] = ["ADD", "COPY", "RUN"];
const EXEC_KEYWORDS: [&str; 8] = [
    "ADD",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "HEALTHCHECK",
    "RUN",
    "SHELL",
    "VOLUME",
];

/// A character of a logical line and where it was written.
type Located = (char, Pos);

fn span_of(chars: &[Located]) -> Span {
    match (chars.first(), chars.last()) {
        (Some(first), Some(last)) => Span {
            start: first.1,
            end: last.1,
        },
        _ => Span::default(),
    }
}

fn text_of(chars: &[Located]) -> String {
    chars.iter().map(|(character, _)| *character).collect()
}

/// Parse a Dockerfile.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .collect();
    let mut index = 0;
    let (directives, escape) = read_directives(&lines, &mut index)?;
    let mut instructions = Vec::new();
    let mut comments = Vec::new();
    while index < lines.len() {
        let line = lines[index];
        let trimmed = line.trim_start();
        if trimmed.is_empty() {
            index += 1;
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            comments.push(Comment {
                text: comment.trim().to_owned(),
                line: index + 1,
                inside_instruction: false,
            });
            index += 1;
            continue;
        }
        let logical = read_logical_line(&lines, &mut index, escape, &mut comments);
        if skip_blanks(&logical).is_empty() {
            // A line holding only the escape character (and what it continued into).
            continue;
        }
        let mut instruction = parse_instruction(&logical, false)?;
        let heredoc_owner = match instruction.trigger.as_deref_mut() {
            Some(trigger) => trigger,
            None => &mut instruction,
        };
        if HEREDOC_KEYWORDS.contains(&heredoc_owner.keyword.as_str()) {
            read_heredoc_bodies(heredoc_owner, &lines, &mut index)?;
        }
        let last_line = index.max(1);
        let end_column = lines
            .get(last_line - 1)
            .map_or(1, |line| line.chars().count().max(1));
        instruction.span.end = Pos {
            line: last_line,
            column: end_column,
        };
        if let Some(trigger) = instruction.trigger.as_deref_mut() {
            trigger.span.end = instruction.span.end;
        }
        instructions.push(instruction);
    }
    if instructions.is_empty() {
        return Err(error(
            Pos {
                line: lines.len().max(1),
                column: 1,
            },
            "at least one instruction (a Dockerfile starts with `FROM`)",
            "none",
            "is this file a Dockerfile?",
        ));
    }
    Ok(Dockerfile {
        directives,
        escape,
        instructions,
        comments,
    })
}

/// `# name=value` directives at the very top; BuildKit stops looking at the first
/// line that is not one (a plain comment, an empty line, an instruction).
fn read_directives(
    lines: &[&str],
    index: &mut usize,
) -> Result<(Vec<Directive>, char), ParseError> {
    let mut directives: Vec<Directive> = Vec::new();
    let mut escape = '\\';
    while let Some(line) = lines.get(*index) {
        let Some(body) = line.trim_start().strip_prefix('#') else {
            break;
        };
        let Some((name, value)) = body.split_once('=') else {
            break;
        };
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim();
        if !matches!(name.as_str(), "syntax" | "escape" | "check") || value.is_empty() {
            break;
        }
        let at = Pos {
            line: *index + 1,
            column: 1,
        };
        if directives.iter().any(|seen| seen.name == name) {
            return Err(error(
                at,
                format!("one `# {name}=` directive"),
                "a second one",
                "remove the repeated directive",
            ));
        }
        if name == "escape" {
            escape = match value {
                "\\" => '\\',
                "`" => '`',
                other => {
                    return Err(error(
                        at,
                        "`\\` or `` ` `` as the escape character",
                        format!("`{other}`"),
                        "write `# escape=\\` or `# escape=``",
                    ));
                }
            };
        }
        directives.push(Directive {
            name,
            value: value.to_owned(),
            line: *index + 1,
        });
        *index += 1;
    }
    Ok((directives, escape))
}

/// Strip a trailing escape character (and the blanks after it): `(content, continues)`.
fn strip_continuation(line: &str, escape: char) -> (&str, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    match trimmed.strip_suffix(escape) {
        Some(content) => (content, true),
        None => (line, false),
    }
}

/// One instruction's text, continuation lines joined, each character located.
fn read_logical_line(
    lines: &[&str],
    index: &mut usize,
    escape: char,
    comments: &mut Vec<Comment>,
) -> Vec<Located> {
    let mut logical = Vec::new();
    let mut first = true;
    while let Some(line) = lines.get(*index) {
        let line_number = *index + 1;
        *index += 1;
        let trimmed = line.trim_start();
        if !first {
            if let Some(comment) = trimmed.strip_prefix('#') {
                comments.push(Comment {
                    text: comment.trim().to_owned(),
                    line: line_number,
                    inside_instruction: true,
                });
                continue;
            }
            if trimmed.is_empty() {
                continue;
            }
        }
        let skipped = line.chars().count() - trimmed.chars().count();
        let source = if first { trimmed } else { *line };
        let offset = if first { skipped } else { 0 };
        first = false;
        let (content, continues) = strip_continuation(source, escape);
        logical.extend(content.chars().enumerate().map(|(column, character)| {
            (
                character,
                Pos {
                    line: line_number,
                    column: offset + column + 1,
                },
            )
        }));
        if !continues {
            break;
        }
    }
    logical
}

fn is_blank(character: char) -> bool {
    matches!(character, ' ' | '\t' | '\u{b}' | '\u{c}' | '\r')
}

/// The word starting at or after `position`: `(start, end)`, or `None` at the end.
fn next_word(chars: &[Located], mut position: usize) -> Option<(usize, usize)> {
    while position < chars.len() && is_blank(chars[position].0) {
        position += 1;
    }
    if position >= chars.len() {
        return None;
    }
    let start = position;
    let mut quote: Option<char> = None;
    while position < chars.len() {
        let character = chars[position].0;
        match quote {
            Some(open) if character == open => quote = None,
            Some('"') if character == '\\' => position += 1,
            Some(_) => {}
            None if is_blank(character) => break,
            None if character == '"' || character == '\'' => quote = Some(character),
            None if character == '\\' => position += 1,
            None => {}
        }
        position += 1;
    }
    Some((start, position.min(chars.len())))
}

/// Shell-like words: blanks separate, quotes and backslashes group; quotes kept.
fn split_words(chars: &[Located]) -> Vec<&[Located]> {
    let mut words = Vec::new();
    let mut position = 0;
    while let Some((start, end)) = next_word(chars, position) {
        words.push(&chars[start..end]);
        position = end;
    }
    words
}

fn word(chars: &[Located]) -> Word {
    Word {
        text: text_of(chars),
        span: span_of(chars),
    }
}

/// Remove shell quoting from a word (`"a"b'c'` → `abc`).
pub fn unquote(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut quote: Option<char> = None;
    let mut characters = text.chars();
    while let Some(character) = characters.next() {
        match (quote, character) {
            (Some(open), c) if c == open => quote = None,
            (Some('"'), '\\') | (None, '\\') => {
                if let Some(next) = characters.next() {
                    out.push(next);
                }
            }
            (None, '"' | '\'') => quote = Some(character),
            _ => out.push(character),
        }
    }
    out
}

fn skip_blanks(chars: &[Located]) -> &[Located] {
    let start = chars
        .iter()
        .position(|(character, _)| !is_blank(*character))
        .unwrap_or(chars.len());
    &chars[start..]
}

/// A JSON array of strings, each string located; `None` when it is not one
/// (BuildKit then takes the shell form).
fn exec_form(chars: &[Located]) -> Option<Vec<Word>> {
    let chars = skip_blanks(chars);
    let (first, mut rest) = chars.split_first()?;
    if first.0 != '[' {
        return None;
    }
    let mut words = Vec::new();
    let mut expect_item = true;
    loop {
        rest = skip_blanks(rest);
        let (next, after) = rest.split_first()?;
        match next.0 {
            ']' if expect_item && words.is_empty() => {
                rest = after;
                break;
            }
            ']' if !expect_item => {
                rest = after;
                break;
            }
            ',' if !expect_item => {
                expect_item = true;
                rest = after;
            }
            '"' if expect_item => {
                let mut end = 1;
                let mut escaped = false;
                loop {
                    let (character, _) = *rest.get(end)?;
                    if escaped {
                        escaped = false;
                    } else if character == '\\' {
                        escaped = true;
                    } else if character == '"' {
                        break;
                    }
                    end += 1;
                }
                let literal = &rest[..=end];
                let decoded: String = serde_json::from_str(&text_of(literal)).ok()?;
                words.push(Word {
                    text: decoded,
                    span: span_of(literal),
                });
                expect_item = false;
                rest = &rest[end + 1..];
            }
            _ => return None,
        }
    }
    skip_blanks(rest).is_empty().then_some(words)
}

fn shell_form(chars: &[Located]) -> Arguments {
    let chars = skip_blanks(chars);
    Arguments::Shell {
        text: text_of(chars).trim_end().to_owned(),
        words: split_words(chars).into_iter().map(word).collect(),
    }
}

fn parse_instruction(logical: &[Located], in_onbuild: bool) -> Result<Instruction, ParseError> {
    let logical = skip_blanks(logical);
    let keyword_length = logical
        .iter()
        .position(|(character, _)| is_blank(*character))
        .unwrap_or(logical.len());
    let (keyword_chars, rest) = logical.split_at(keyword_length);
    let keyword_span = span_of(keyword_chars);
    let keyword = text_of(keyword_chars).to_ascii_uppercase();
    if !KEYWORDS.contains(&keyword.as_str()) {
        let suggestion = KEYWORDS
            .iter()
            .map(|known| (strsim::levenshtein(known, &keyword), known))
            .min()
            .filter(|(distance, _)| *distance <= 2)
            .map_or_else(
                || "a line that is not an instruction must start with `#` (a comment), or the line before it must end with the escape character to continue".to_owned(),
                |(_, known)| format!("did you mean `{known}`?"),
            );
        let shown: String = text_of(keyword_chars).chars().take(40).collect();
        return Err(error(
            keyword_span.start,
            "an instruction (FROM, RUN, COPY, …)",
            format!("`{shown}`"),
            suggestion,
        ));
    }
    if in_onbuild && matches!(keyword.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
        return Err(error(
            keyword_span.start,
            "an instruction ONBUILD may trigger",
            format!("`{keyword}`"),
            "ONBUILD cannot trigger ONBUILD, FROM or MAINTAINER",
        ));
    }
    // Flags: leading `--name[=value]` words (BuildKit's extractBuilderFlags).
    let mut flags = Vec::new();
    let mut rest = skip_blanks(rest);
    if keyword != "ONBUILD" {
        while let Some((start, end)) = next_word(rest, 0) {
            let first = &rest[start..end];
            let text = text_of(first);
            if text == "--" {
                rest = skip_blanks(&rest[end..]);
                break;
            }
            let Some(flag) = text.strip_prefix("--") else {
                break;
            };
            let (name, value) = match flag.split_once('=') {
                Some((name, value)) => (name.to_owned(), Some(unquote(value))),
                None => (flag.to_owned(), None),
            };
            flags.push(Flag {
                name,
                value,
                span: span_of(first),
            });
            rest = skip_blanks(&rest[end..]);
        }
    }
    let mut instruction = Instruction {
        keyword: keyword.clone(),
        keyword_span,
        flags,
        subcommand: None,
        arguments: Arguments::Shell {
            text: String::new(),
            words: Vec::new(),
        },
        heredocs: Vec::new(),
        trigger: None,
        span: Span {
            start: keyword_span.start,
            end: logical.last().map_or(keyword_span.end, |(_, pos)| *pos),
        },
    };
    let needs_argument = |rest: &[Located]| {
        if skip_blanks(rest).is_empty() {
            Err(error(
                keyword_span.end,
                format!("arguments after `{keyword}`"),
                "the end of the instruction",
                format!(
                    "see https://docs.docker.com/reference/dockerfile/#{}",
                    keyword.to_ascii_lowercase()
                ),
            ))
        } else {
            Ok(())
        }
    };
    match keyword.as_str() {
        "ONBUILD" => {
            needs_argument(rest)?;
            instruction.trigger = Some(Box::new(parse_instruction(rest, true)?));
            return Ok(instruction);
        }
        "HEALTHCHECK" => {
            needs_argument(rest)?;
            let words = split_words(rest);
            let Some(first) = words.first() else {
                return Ok(instruction);
            };
            let sub = word(first);
            let upper = sub.text.to_ascii_uppercase();
            if upper != "CMD" && upper != "NONE" {
                return Err(error(
                    sub.span.start,
                    "`CMD` or `NONE` after HEALTHCHECK's flags",
                    format!("`{}`", sub.text),
                    "write `HEALTHCHECK [--interval=…] CMD <command>` or `HEALTHCHECK NONE`",
                ));
            }
            let after = &rest[first.len()..];
            if upper == "CMD" {
                needs_argument(after)?;
                instruction.arguments =
                    exec_form(after).map_or_else(|| shell_form(after), Arguments::Exec);
            }
            instruction.subcommand = Some(sub);
            return Ok(instruction);
        }
        _ => {}
    }
    needs_argument(rest)?;
    if keyword == "SHELL" {
        let Some(words) = exec_form(rest) else {
            return Err(error(
                skip_blanks(rest)
                    .first()
                    .map_or(keyword_span.end, |(_, pos)| *pos),
                "a JSON array of strings",
                "the shell form",
                r#"write `SHELL ["/bin/sh", "-c"]`"#,
            ));
        };
        instruction.arguments = Arguments::Exec(words);
        return Ok(instruction);
    }
    instruction.arguments = if EXEC_KEYWORDS.contains(&keyword.as_str()) {
        exec_form(rest).map_or_else(|| shell_form(rest), Arguments::Exec)
    } else {
        shell_form(rest)
    };
    // BuildKit's parseNameVal: `ENV NAME` alone has no value; `=x` has no name.
    if matches!(keyword.as_str(), "ENV" | "LABEL") {
        let words = instruction.arguments.words();
        let legacy_without_value =
            keyword == "ENV" && words.len() == 1 && !words[0].text.contains('=');
        let blank_name = words.iter().find(|word| word.text.starts_with('='));
        if let Some(word) = blank_name.or(legacy_without_value.then(|| &words[0])) {
            return Err(error(
                word.span.start,
                format!("`NAME=value` pairs after {keyword}"),
                format!("`{}`", word.text),
                format!("write `{keyword} NAME=value` (quote a value with spaces)"),
            ));
        }
    }
    if HEREDOC_KEYWORDS.contains(&keyword.as_str())
        && let Arguments::Shell { words, .. } = &instruction.arguments
    {
        let mut heredocs = Vec::new();
        let mut index = 0;
        while index < words.len() {
            // `<< EOF`: BuildKit reads the operator and the next word as one heredoc.
            let bare_operator = words[index]
                .text
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .trim_end_matches('-')
                == "<<";
            if bare_operator && let Some(name) = words.get(index + 1) {
                let joined = Word {
                    text: format!("{}{}", words[index].text, name.text),
                    span: Span {
                        start: words[index].span.start,
                        end: name.span.end,
                    },
                };
                if let Some(heredoc) = heredoc_opener(&joined) {
                    heredocs.push(heredoc);
                    index += 2;
                    continue;
                }
            }
            if let Some(heredoc) = heredoc_opener(&words[index]) {
                heredocs.push(heredoc);
            }
            index += 1;
        }
        instruction.heredocs = heredocs;
    }
    Ok(instruction)
}

/// Whether a heredoc delimiter is quoted (an unescaped quote in it): then the
/// builder does not expand variables in the body (BuildKit's heredocFromMatch).
fn quoted(delimiter: &str) -> bool {
    let mut characters = delimiter.chars();
    while let Some(character) = characters.next() {
        match character {
            '\\' => {
                characters.next();
            }
            '"' | '\'' => return true,
            _ => {}
        }
    }
    false
}

/// A `[n]<<[-]NAME` word (BuildKit's reHeredoc: `^(\d*)<<(-?)\s*([^<]*)$`).
fn heredoc_opener(word: &Word) -> Option<Heredoc> {
    let text = word.text.trim_start_matches(|c: char| c.is_ascii_digit());
    let rest = text.strip_prefix("<<")?;
    let (strip_tabs, rest) = match rest.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    let rest = rest.trim_start();
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let name = unquote(rest);
    if name.is_empty() {
        return None;
    }
    Some(Heredoc {
        expand: !quoted(rest),
        name,
        strip_tabs,
        body: String::new(),
        open: word.span,
        span: Span::default(),
    })
}

/// Read each heredoc's body, in order, from the lines after the instruction.
fn read_heredoc_bodies(
    instruction: &mut Instruction,
    lines: &[&str],
    index: &mut usize,
) -> Result<(), ParseError> {
    for heredoc in &mut instruction.heredocs {
        let first_line = *index + 1;
        let mut terminated = false;
        while let Some(line) = lines.get(*index) {
            *index += 1;
            let candidate = if heredoc.strip_tabs {
                line.trim_start_matches('\t')
            } else {
                line
            };
            if candidate == heredoc.name {
                terminated = true;
                break;
            }
            let body_line = if heredoc.strip_tabs { candidate } else { line };
            heredoc.body.push_str(body_line);
            heredoc.body.push('\n');
        }
        if !terminated {
            return Err(error(
                Pos {
                    line: lines.len().max(1),
                    column: 1,
                },
                format!(
                    "a line `{}` ending the heredoc opened at {}:{}",
                    heredoc.name, heredoc.open.start.line, heredoc.open.start.column
                ),
                "the end of the file",
                format!(
                    "end the heredoc with a line holding only `{}`{}",
                    heredoc.name,
                    if heredoc.strip_tabs {
                        " (tabs before it are allowed with `<<-`)"
                    } else {
                        " (no spaces before or after it)"
                    }
                ),
            ));
        }
        heredoc.span = Span {
            start: Pos {
                line: first_line,
                column: 1,
            },
            end: Pos {
                line: *index,
                column: heredoc.name.chars().count().max(1),
            },
        };
    }
    Ok(())
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// `KEY=value` pairs of `ENV`/`LABEL`/`ARG` (and the legacy `ENV KEY value`),
/// each with the word it came from; `ARG NAME` gives `(NAME, None)`.
pub fn key_values(instruction: &Instruction) -> Vec<(String, Option<String>, Span)> {
    let words = instruction.arguments.words();
    let legacy = instruction.keyword == "ENV"
        && words.first().is_some_and(|first| !first.text.contains('='));
    if legacy && let Some((first, rest)) = words.split_first() {
        let value = rest
            .iter()
            .map(Word::unquoted)
            .collect::<Vec<_>>()
            .join(" ");
        return vec![(first.unquoted(), Some(value), first.span)];
    }
    words
        .iter()
        .map(|word| match word.text.split_once('=') {
            Some((key, value)) => (unquote(key), Some(unquote(value)), word.span),
            None => (word.unquoted(), None, word.span),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(line: usize, column: usize) -> Pos {
        Pos { line, column }
    }

    #[test]
    fn heredocs_anywhere_on_the_line_take_their_bodies_in_order() {
        let file = parse("FROM a:1\nRUN <<ONE cat > /one && python3 <<'TWO'\nfirst\nONE\nprint(2)\nTWO\nCMD [\"x\"]\n").unwrap();
        let run = &file.instructions[1];
        assert_eq!(run.heredocs.len(), 2);
        assert_eq!(run.heredocs[0].name, "ONE");
        assert_eq!(run.heredocs[0].body, "first\n");
        assert!(run.heredocs[0].expand);
        assert_eq!(run.heredocs[1].name, "TWO");
        assert_eq!(run.heredocs[1].body, "print(2)\n");
        assert!(!run.heredocs[1].expand);
        assert_eq!(run.heredocs[1].open.start, pos(2, 33));
        assert_eq!(run.span.start, pos(2, 1));
        assert_eq!(run.span.end.line, 6);
        assert_eq!(file.instructions[2].keyword, "CMD");
        assert_eq!(file.instructions[2].span.start, pos(7, 1));
    }

    /// A heredoc as expected: (name, expand, strip_tabs, body).
    type Expected = (&'static str, bool, bool, &'static str);

    /// The heredoc cases of BuildKit's parser_heredoc_test.go (TestParseExtractsHeredoc):
    /// (instruction line, body, each heredoc).
    #[test]
    fn buildkit_heredoc_cases() {
        let cases: [(&str, &str, &[Expected]); 21] = [
            ("RUN <<EMPTY", "EMPTY\n", &[("EMPTY", true, false, "")]),
            ("RUN 3<<EMPTY2", "EMPTY2\n", &[("EMPTY2", true, false, "")]),
            ("RUN \"<<NOHEREDOC\"", "", &[]),
            (
                "RUN <<INDENT",
                "\tfoo\n\tbar\nINDENT\n",
                &[("INDENT", true, false, "\tfoo\n\tbar\n")],
            ),
            (
                "RUN <<-UNINDENT",
                "\tbaz\n\tquux\nUNINDENT\n",
                &[("UNINDENT", true, true, "baz\nquux\n")],
            ),
            (
                "RUN <<-UNINDENT2",
                "\tbaz\n\tquux\n\tUNINDENT2\n",
                &[("UNINDENT2", true, true, "baz\nquux\n")],
            ),
            (
                "RUN <<-'NOEXPAND'",
                "\tdon't expand $NAME\nNOEXPAND\n",
                &[("NOEXPAND", false, true, "don't expand $NAME\n")],
            ),
            (
                "RUN <<COPY",
                "echo hello world\nCOPY\n",
                &[("COPY", true, false, "echo hello world\n")],
            ),
            (
                "RUN <<COMMENT",
                "# internal comment\nCOMMENT\n",
                &[("COMMENT", true, false, "# internal comment\n")],
            ),
            (
                "RUN --mount=type=cache,target=/foo <<MOUNT",
                "echo hello\nMOUNT\n",
                &[("MOUNT", true, false, "echo hello\n")],
            ),
            (
                "COPY <<FILE1 <<FILE2 /dest",
                "content 1\nFILE1\ncontent 2\nFILE2\n",
                &[
                    ("FILE1", true, false, "content 1\n"),
                    ("FILE2", true, false, "content 2\n"),
                ],
            ),
            (
                "COPY <<X <<Y /dest",
                "Y\nX\nX\nY\n",
                &[("X", true, false, "Y\n"), ("Y", true, false, "X\n")],
            ),
            (
                "RUN <<COMPLEX python3",
                "print('hello world')\nCOMPLEX\n",
                &[("COMPLEX", true, false, "print('hello world')\n")],
            ),
            (
                "COPY <<file.txt /dest",
                "hello world\nfile.txt\n",
                &[("file.txt", true, false, "hello world\n")],
            ),
            (
                "RUN <<eo'f'",
                "echo foo\neof\n",
                &[("eof", false, false, "echo foo\n")],
            ),
            (
                "RUN <<eo\\'f",
                "echo foo\neo'f\n",
                &[("eo'f", true, false, "echo foo\n")],
            ),
            (
                "RUN <<'e'o\\'f",
                "echo foo\neo'f\n",
                &[("eo'f", false, false, "echo foo\n")],
            ),
            (
                "RUN <<'one two'",
                "echo bar\none two\n",
                &[("one two", false, false, "echo bar\n")],
            ),
            ("RUN <<$EOF", "$EOF\n", &[("$EOF", true, false, "")]),
            ("RUN <<  EOF", "EOF\n", &[("EOF", true, false, "")]),
            ("RUN <<  EOF  > foo", "EOF\n", &[("EOF", true, false, "")]),
        ];
        for (line, body, expected) in cases {
            let file = parse(&format!("FROM alpine:3.6\n{line}\n{body}USER 1\n"))
                .unwrap_or_else(|error| panic!("{line}: {error}"));
            let found: Vec<(&str, bool, bool, &str)> = file.instructions[1]
                .heredocs
                .iter()
                .map(|heredoc| {
                    (
                        heredoc.name.as_str(),
                        heredoc.expand,
                        heredoc.strip_tabs,
                        heredoc.body.as_str(),
                    )
                })
                .collect();
            assert_eq!(found, expected, "{line}");
            assert_eq!(file.instructions.len(), 3, "{line}");
            assert_eq!(file.instructions[2].keyword, "USER", "{line}");
        }
        // Exec form has no heredocs.
        let json = parse("FROM a:1\nRUN [\"<<EOF\"]\nRUN [\"<<'EOF'\"]\n").unwrap();
        assert!(
            json.instructions
                .iter()
                .all(|instruction| instruction.heredocs.is_empty())
        );
    }

    #[test]
    fn chomped_heredocs_strip_tabs_and_end_on_a_tabbed_terminator() {
        let file = parse("FROM a:1\nRUN <<-EOT\n\techo hi\n\tEOT\n").unwrap();
        assert_eq!(file.instructions[1].heredocs[0].body, "echo hi\n");
        assert!(parse("FROM a:1\nRUN <<EOT\n\techo hi\n\tEOT\n").is_err());
    }

    #[test]
    fn flags_words_and_exec_form_are_located() {
        let file = parse("FROM --platform=$BUILDPLATFORM golang:1.23 AS build\nCOPY --chown=app:app --link a b /dst/\nCMD [\"/app\", \"--port\", \"8080\"]\n").unwrap();
        let from = &file.instructions[0];
        assert_eq!(
            from.flag("platform").unwrap().value.as_deref(),
            Some("$BUILDPLATFORM")
        );
        assert_eq!(from.arguments.words()[0].text, "golang:1.23");
        assert_eq!(from.arguments.words()[0].span.start, pos(1, 32));
        let copy = &file.instructions[1];
        assert_eq!(copy.flags.len(), 2);
        assert_eq!(copy.flag("link").unwrap().value, None);
        assert_eq!(copy.flag("chown").unwrap().span.start, pos(2, 6));
        let cmd = &file.instructions[2];
        assert!(cmd.arguments.is_exec());
        assert_eq!(cmd.arguments.words()[1].text, "--port");
        assert_eq!(cmd.arguments.words()[1].span.start, pos(3, 14));
    }

    #[test]
    fn continuations_skip_comments_and_empty_lines() {
        let file =
            parse("FROM a:1\nRUN echo one \\\n  # dropped\n\n  && echo two\nUSER 1\n").unwrap();
        let run = &file.instructions[1];
        assert_eq!(run.arguments.words().len(), 5);
        assert_eq!(run.arguments.words()[4].span.start, pos(5, 11));
        assert_eq!(file.comments[0].line, 3);
        assert!(file.comments[0].inside_instruction);
        assert_eq!(file.instructions[2].span.start, pos(6, 1));
    }

    #[test]
    fn the_escape_directive_changes_the_continuation_character() {
        let file = parse("# escape=`\nFROM a:1\nRUN dir c:\\ `\n  && echo done\n").unwrap();
        assert_eq!(file.escape, '`');
        assert_eq!(file.instructions.len(), 2);
        assert_eq!(file.directives[0].name, "escape");
    }

    #[test]
    fn onbuild_holds_its_trigger_and_its_heredocs() {
        let file = parse("FROM a:1\nONBUILD RUN <<EOF\necho\nEOF\nUSER 1\n").unwrap();
        let trigger = file.instructions[1].trigger.as_deref().unwrap();
        assert_eq!(trigger.keyword, "RUN");
        assert_eq!(trigger.heredocs[0].body, "echo\n");
        assert_eq!(file.instructions[2].keyword, "USER");
    }

    #[test]
    fn errors_say_where_what_and_how() {
        let unknown = parse("FROM a:1\nRUNN echo\n").unwrap_err();
        assert_eq!(unknown.at, pos(2, 1));
        assert!(unknown.hint.contains("`RUN`"), "{unknown}");
        let open = parse("FROM a:1\nRUN <<EOF\necho\n").unwrap_err();
        assert!(open.expected.contains("`EOF`"), "{open}");
        assert!(open.expected.contains("2:5"), "{open}");
        let empty = parse("FROM a:1\nUSER\n").unwrap_err();
        assert_eq!(empty.at, pos(2, 4));
        let env = parse("FROM a:1\nENV PATH\n").unwrap_err();
        assert_eq!(env.at, pos(2, 5));
        assert!(parse("FROM a:1\nLABEL =x\n").is_err());
        assert!(parse("FROM a:1\nENV PATH /bin\nLABEL a=b\n").is_ok());
        let shell = parse("FROM a:1\nSHELL /bin/sh -c\n").unwrap_err();
        assert!(shell.expected.contains("JSON"));
        let escape = parse("# escape=x\nFROM a:1\n").unwrap_err();
        assert_eq!(escape.at, pos(1, 1));
    }

    #[test]
    fn env_pairs_and_the_legacy_form() {
        let file = parse("FROM a:1\nENV A=1 B=\"two words\"\nENV LEGACY some value\n").unwrap();
        let pairs = key_values(&file.instructions[1]);
        assert_eq!(pairs[1].0, "B");
        assert_eq!(pairs[1].1.as_deref(), Some("two words"));
        assert_eq!(pairs[1].2.start, pos(2, 9));
        let legacy = key_values(&file.instructions[2]);
        assert_eq!(
            legacy,
            vec![(
                "LEGACY".into(),
                Some("some value".into()),
                file.instructions[2].arguments.words()[0].span
            )]
        );
    }
}
