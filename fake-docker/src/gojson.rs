//! JSON text the way Go's `encoding/json` writes it (docker's output is made by Go).

use serde::Serialize;
use serde_json::Value;

/// Compact JSON with Go's HTML escaping (`<` → `\u003c`, ...), like `json.Marshal`.
pub fn compact(value: &Value) -> String {
    escape_like_go(&value.to_string())
}

/// Four-space indented JSON, like `docker inspect`.
pub fn indented(value: &Value) -> String {
    let mut buffer = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut buffer, formatter);
    // Serialising a Value into memory cannot fail: keys are strings, no I/O.
    if value.serialize(&mut serializer).is_err() {
        return compact(value);
    }
    escape_like_go(&String::from_utf8_lossy(&buffer))
}

fn escape_like_go(text: &str) -> String {
    // These characters can only occur inside JSON strings, so a plain replace is safe.
    text.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escapes_html_like_go() {
        assert_eq!(compact(&json!("a<b>&c")), r#""a\u003cb\u003e\u0026c""#);
    }

    #[test]
    fn indents_with_four_spaces() {
        assert_eq!(
            indented(&json!([{"A": [], "B": {}}])),
            "[\n    {\n        \"A\": [],\n        \"B\": {}\n    }\n]"
        );
    }
}
