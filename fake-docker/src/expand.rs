//! `${NAME}`-style expansion of the strings in a fake image's program.
//!
//! Only the braced forms expand (`${NAME}`, `${NAME:-default}`, `${1}`, `${@}`,
//! `${#}`); a bare `$` is literal, so program text never changes meaning by accident.

use std::collections::BTreeMap;

/// Variables and positional arguments that expansion reads.
pub struct Scope<'a> {
    pub vars: &'a BTreeMap<String, String>,
    pub args: &'a [String],
}

/// `KEY=VALUE` list into variables (later entries win).
pub fn env_vars(env: &[String]) -> BTreeMap<String, String> {
    env.iter()
        .map(|entry| match entry.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (entry.clone(), String::new()),
        })
        .collect()
}

/// Expands every `${...}` in `text`; unknown variables expand to the empty string.
pub fn expand(text: &str, scope: &Scope<'_>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match matching_brace(after) {
            Some(end) => {
                out.push_str(&expand_one(&after[..end], scope));
                rest = &after[end + 1..];
            }
            None => {
                // Unterminated: keep the text as written rather than guess.
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Index of the `}` closing a `${`, skipping nested `${...}` in defaults.
fn matching_brace(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'$' if bytes.get(index + 1) == Some(&b'{') => {
                depth += 1;
                index += 1;
            }
            b'}' if depth == 0 => return Some(index),
            b'}' => depth -= 1,
            _ => {}
        }
        index += 1;
    }
    None
}

fn expand_one(inner: &str, scope: &Scope<'_>) -> String {
    if let Some((name, default)) = inner.split_once(":-") {
        let value = lookup(name, scope);
        return match value {
            Some(v) if !v.is_empty() => v,
            _ => expand(default, scope),
        };
    }
    lookup(inner, scope).unwrap_or_default()
}

fn lookup(name: &str, scope: &Scope<'_>) -> Option<String> {
    match name {
        "@" => Some(scope.args.join(" ")),
        "#" => Some(scope.args.len().to_string()),
        _ if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) => {
            let position: usize = name.parse().ok()?;
            position
                .checked_sub(1)
                .and_then(|i| scope.args.get(i))
                .cloned()
        }
        _ => scope.vars.get(name).cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str, vars: &[(&str, &str)], args: &[&str]) -> String {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        expand(
            text,
            &Scope {
                vars: &vars,
                args: &args,
            },
        )
    }

    #[test]
    fn variables_and_defaults() {
        assert_eq!(run("job ${JOB_ID}: x", &[("JOB_ID", "a")], &[]), "job a: x");
        assert_eq!(run("${JOB_ID:-local}", &[], &[]), "local");
        assert_eq!(run("${JOB_ID:-local}", &[("JOB_ID", "")], &[]), "local");
        assert_eq!(run("${JOB_ID:-local}", &[("JOB_ID", "b")], &[]), "b");
        assert_eq!(run("${A:-${B}x}", &[("B", "y")], &[]), "yx");
        assert_eq!(run("${MISSING}", &[], &[]), "");
    }

    #[test]
    fn positional_arguments() {
        assert_eq!(run("${1}-${2}-${3}", &[], &["a", "b"]), "a-b-");
        assert_eq!(run("${@}", &[], &["a", "b c"]), "a b c");
        assert_eq!(run("${#}", &[], &["a", "b"]), "2");
        assert_eq!(run("${0}", &[], &["a"]), "");
    }

    #[test]
    fn literal_dollars_stay() {
        assert_eq!(run("cost $5 and $HOME", &[], &[]), "cost $5 and $HOME");
        assert_eq!(run("open ${A", &[("A", "x")], &[]), "open ${A");
    }
}
