//! `--format` for list commands (`images`, `network ls`, `volume ls`, `stats`): the
//! default table, `table TEMPLATE`, `json`, and plain templates.

use serde_json::Value;

use super::{err, out};
use crate::gojson;
use crate::render::tabulate;
use crate::template::Template;

/// Prints `rows` per `format` (None → `default_table`); returns the exit code.
pub fn print_rows(
    format: Option<&str>,
    default_table: &str,
    headers: &Value,
    rows: &[Value],
) -> i32 {
    print_rows_in(format, default_table, headers, rows, None)
}

/// [`print_rows`] for a listing whose CLI formatter has a Go context type (`context`,
/// e.g. `*formatter.imageContext`): a field the context lacks fails the listing at its
/// first row (measured: `images` with no rows prints nothing, exit 0).
pub fn print_rows_in(
    format: Option<&str>,
    default_table: &str,
    headers: &Value,
    rows: &[Value],
    context: Option<&'static str>,
) -> i32 {
    let format = match format {
        None | Some("table") | Some("") => default_table.to_string(),
        Some(text) => text.replace("\\t", "\t").replace("\\n", "\n"),
    };
    if format == "json" {
        for row in rows {
            out(&format!("{}\n", gojson::compact(row)));
        }
        return 0;
    }
    let (is_table, body) = match format.strip_prefix("table") {
        Some(rest) => (true, rest.trim_matches(' ').to_string()),
        None => (false, format.clone()),
    };
    let template = match Template::parse(&body) {
        Ok(template) => template,
        Err(e) => {
            err(&format!("template parsing error: {e}\n"));
            return 1;
        }
    };
    let template = match context {
        Some(context) => template.in_context(context),
        None => template,
    };
    let mut lines = Vec::new();
    if is_table {
        match template.render(headers) {
            Ok(line) => lines.push(line),
            Err(e) => {
                err(&format!("template parsing error: {e}\n"));
                return 1;
            }
        }
    }
    for row in rows {
        match template.render(row) {
            Ok(line) => lines.push(line),
            Err(e) => {
                err(&format!("template parsing error: {e}\n"));
                return 1;
            }
        }
    }
    if is_table {
        out(&tabulate(&lines));
    } else {
        for line in lines {
            out(&format!("{line}\n"));
        }
    }
    0
}

/// Splits `key=value` of a `--filter`; `None` when there is no `=`.
pub fn split_filter(text: &str) -> Option<(&str, &str)> {
    text.split_once('=')
}

/// Go's `path.Match` for the `*` and `?` wildcards (`*` does not cross `/`).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    fn matches(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => {
                matches(&p[1..], t)
                    || (t.first().is_some_and(|c| *c != b'/') && matches(p, &t[1..]))
            }
            (Some(b'?'), Some(c)) if *c != b'/' => matches(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => matches(&p[1..], &t[1..]),
            _ => false,
        }
    }
    matches(pattern.as_bytes(), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_like_path_match() {
        assert!(glob_match("fidelity/*", "fidelity/ok"));
        assert!(!glob_match("fidelity/*", "fidelity/ok/x"));
        assert!(glob_match("*", "bbtest"));
        assert!(glob_match("b?test", "bbtest"));
    }
}
