//! Inline ignores: `# dockproof-ignore DF002` (or `=DF002,DF005`) and hadolint's
//! `# hadolint ignore=DL3008,DL3009` silence exactly the named rules on the next
//! instruction (every line it covers); `# hadolint global ignore=DL3008` silences
//! them in the whole file. Both spellings silence findings of either tool (a
//! folded finding answers to both of its rule IDs).

use std::ops::RangeInclusive;

use super::Finding;
use super::parser::Dockerfile;

/// Rules silenced on a range of lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pragma {
    pub rules: Vec<String>,
    pub lines: RangeInclusive<usize>,
    /// The comment's own line.
    pub at: usize,
}

/// `(rules, global)` when a comment's text (after `#`) is an ignore pragma.
pub fn parse_pragma(comment: &str) -> Option<(Vec<String>, bool)> {
    let comment = comment.trim();
    let (rest, global) = if let Some(rest) = comment.strip_prefix("dockproof-ignore") {
        (rest, false)
    } else if let Some(rest) = comment.strip_prefix("hadolint") {
        let rest = rest.trim_start();
        match rest.strip_prefix("global") {
            Some(global) => (global.trim_start().strip_prefix("ignore")?, true),
            None => (rest.strip_prefix("ignore")?, false),
        }
    } else {
        return None;
    };
    if !(rest.starts_with('=') || rest.starts_with(char::is_whitespace)) {
        return None;
    }
    let rules: Vec<String> = rest
        .trim_start_matches(|c: char| c == '=' || c.is_whitespace())
        .split(|c: char| c == ',' || c.is_whitespace())
        .map(str::trim)
        .filter(|rule| !rule.is_empty())
        .map(str::to_owned)
        .collect();
    (!rules.is_empty()).then_some((rules, global))
}

/// The pragmas of a parsed Dockerfile, each tied to the instruction after it.
pub fn dockerfile_pragmas(file: &Dockerfile) -> Vec<Pragma> {
    file.comments
        .iter()
        .filter(|comment| !comment.inside_instruction)
        .filter_map(|comment| {
            let (rules, global) = parse_pragma(&comment.text)?;
            if global {
                return Some(Pragma {
                    rules,
                    lines: 1..=usize::MAX,
                    at: comment.line,
                });
            }
            let next = file
                .instructions
                .iter()
                .find(|instruction| instruction.span.start.line > comment.line)?;
            Some(Pragma {
                rules,
                lines: next.lines(),
                at: comment.line,
            })
        })
        .collect()
}

/// The pragmas of a YAML file: each applies to the next line that is not blank or a comment.
pub fn line_pragmas(text: &str) -> Vec<Pragma> {
    let lines: Vec<&str> = text.lines().collect();
    let mut pragmas = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let Some(comment) = line.trim_start().strip_prefix('#') else {
            continue;
        };
        let Some((rules, global)) = parse_pragma(comment) else {
            continue;
        };
        let lines = if global {
            1..=usize::MAX
        } else {
            let Some(next) = lines[index + 1..]
                .iter()
                .position(|line| {
                    let line = line.trim();
                    !line.is_empty() && !line.starts_with('#')
                })
                .map(|offset| index + 2 + offset)
            else {
                continue;
            };
            next..=next
        };
        pragmas.push(Pragma {
            rules,
            lines,
            at: index + 1,
        });
    }
    pragmas
}

/// Whether a pragma silences this finding.
pub fn silenced(pragmas: &[Pragma], finding: &Finding) -> bool {
    pragmas.iter().any(|pragma| {
        pragma.lines.contains(&finding.line) && pragma.rules.iter().any(|rule| finding.is(rule))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_parse() {
        assert_eq!(
            parse_pragma(" dockproof-ignore DF002"),
            Some((vec!["DF002".into()], false))
        );
        assert_eq!(
            parse_pragma("dockproof-ignore=DF002,DF005"),
            Some((vec!["DF002".into(), "DF005".into()], false))
        );
        assert_eq!(
            parse_pragma("hadolint ignore=DL3008,DL3009"),
            Some((vec!["DL3008".into(), "DL3009".into()], false))
        );
        assert_eq!(
            parse_pragma("hadolint global ignore=DL3008"),
            Some((vec!["DL3008".into()], true))
        );
        assert_eq!(parse_pragma("dockproof-ignored DF002"), None);
        assert_eq!(parse_pragma("hadolint shell=bash"), None);
        assert_eq!(parse_pragma("dockproof-ignore"), None);
    }

    #[test]
    fn a_pragma_covers_exactly_the_next_instruction() {
        let file = super::super::parser::parse(
            "FROM a:1\n# dockproof-ignore DF004\n\nADD x \\\n  /y\nADD z /w\n",
        )
        .unwrap();
        let pragmas = dockerfile_pragmas(&file);
        assert_eq!(pragmas.len(), 1);
        assert_eq!(pragmas[0].lines, 4..=5);
    }
}
