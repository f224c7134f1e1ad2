//! Go values inside JSON: the docker CLI runs an inspect template on the daemon's JSON
//! decoded into its own Go types, and Go prints those unlike JSON maps: a struct is
//! `{v1 v2}` (fields in order, empty ones included), a nil slice `[]`, a nil map
//! `map[]`, a duration `1s`. A *typed view* is a JSON value whose objects may carry the
//! key [`GO_TYPE`] saying which Go value they stand for; the template engine prints
//! them the Go way, and [`plain`] turns a typed view back into the JSON `json` prints
//! (omitting the `omitempty` fields that are empty, as `encoding/json` does).

use serde_json::{Map, Value, json};

/// The key marking an object of a typed view as a Go value other than a map.
pub const GO_TYPE: &str = "\u{1}go";

/// What a typed-view object stands for.
#[derive(Debug, PartialEq, Eq)]
pub enum GoKind<'v> {
    /// A plain map (`map[string]T`): printed `map[k:v ...]`, keys sorted.
    Map,
    /// A struct. `omit` lists its `omitempty` fields; `groups` splits its fields into
    /// embedded structs for printing (`{{a b} {c}}`), when it has any.
    Struct {
        omit: Vec<&'v str>,
        groups: Vec<usize>,
    },
    /// A nil slice: printed `[]`, encoded `null`.
    NilSlice,
    /// A nil map: printed `map[]`, encoded `null`.
    NilMap,
    /// A `time.Duration` in nanoseconds (`ns`): printed `1.5s`, encoded as the number.
    Duration(i64),
}

/// The Go kind of a typed-view object.
pub fn kind(map: &Map<String, Value>) -> GoKind<'_> {
    let Some(marker) = map.get(GO_TYPE).and_then(Value::as_str) else {
        return GoKind::Map;
    };
    let mut parts = marker.split(';');
    match parts.next() {
        Some("struct") => {
            let mut omit = Vec::new();
            let mut groups = Vec::new();
            for part in parts {
                if let Some(list) = part.strip_prefix("omit=") {
                    omit.extend(list.split(',').filter(|s| !s.is_empty()));
                } else if let Some(list) = part.strip_prefix("groups=") {
                    groups.extend(list.split(',').filter_map(|n| n.parse::<usize>().ok()));
                }
            }
            GoKind::Struct { omit, groups }
        }
        Some("nil-slice") => GoKind::NilSlice,
        Some("nil-map") => GoKind::NilMap,
        Some("duration") => GoKind::Duration(map.get("ns").and_then(Value::as_i64).unwrap_or(0)),
        _ => GoKind::Map,
    }
}

/// A struct with `fields` in order; `omit` are its `omitempty` fields.
pub fn structure(fields: Vec<(&str, Value)>, omit: &[&str]) -> Value {
    structure_grouped(fields, omit, &[])
}

/// A struct made of embedded structs of `groups` fields each (printed `{{..} {..}}`).
pub fn structure_grouped(fields: Vec<(&str, Value)>, omit: &[&str], groups: &[usize]) -> Value {
    let mut marker = String::from("struct");
    if !omit.is_empty() {
        marker.push_str(";omit=");
        marker.push_str(&omit.join(","));
    }
    if !groups.is_empty() {
        marker.push_str(";groups=");
        let sizes: Vec<String> = groups.iter().map(usize::to_string).collect();
        marker.push_str(&sizes.join(","));
    }
    let mut map = Map::new();
    map.insert(GO_TYPE.to_string(), Value::String(marker));
    for (key, value) in fields {
        map.insert(key.to_string(), value);
    }
    Value::Object(map)
}

/// A nil slice.
pub fn nil_slice() -> Value {
    json!({ GO_TYPE: "nil-slice" })
}

/// A nil map.
pub fn nil_map() -> Value {
    json!({ GO_TYPE: "nil-map" })
}

/// A `[]string`-like field: the value, or a nil slice for JSON `null`.
pub fn slice(value: Option<&Value>) -> Value {
    match value {
        None | Some(Value::Null) => nil_slice(),
        Some(other) => other.clone(),
    }
}

/// A `map[string]T` field: the value, or a nil map for JSON `null`.
pub fn map_or_nil(value: Option<&Value>) -> Value {
    match value {
        None | Some(Value::Null) => nil_map(),
        Some(other) => other.clone(),
    }
}

/// A `time.Duration` field from its nanoseconds (absent: 0).
pub fn duration(value: Option<&Value>) -> Value {
    json!({ GO_TYPE: "duration", "ns": value.and_then(Value::as_i64).unwrap_or(0) })
}

/// The fields of an object without the marker.
pub fn fields(map: &Map<String, Value>) -> impl Iterator<Item = (&String, &Value)> {
    map.iter().filter(|(key, _)| *key != GO_TYPE)
}

/// Whether Go's `omitempty` drops this value: false, 0, "", nil, an empty slice or map.
fn empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => match kind(map) {
            GoKind::NilSlice | GoKind::NilMap => true,
            GoKind::Duration(ns) => ns == 0,
            // A struct is never empty for omitempty; a map is when it has no entries.
            GoKind::Struct { .. } => false,
            GoKind::Map => map.is_empty(),
        },
    }
}

/// The JSON `encoding/json` writes for a typed view.
pub fn plain(value: &Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(plain).collect()),
        Value::Object(map) => match kind(map) {
            GoKind::NilSlice | GoKind::NilMap => Value::Null,
            GoKind::Duration(ns) => json!(ns),
            GoKind::Struct { omit, .. } => Value::Object(
                fields(map)
                    .filter(|(key, value)| !(omit.contains(&key.as_str()) && empty(value)))
                    .map(|(key, value)| (key.clone(), plain(value)))
                    .collect(),
            ),
            GoKind::Map => Value::Object(
                map.iter()
                    .map(|(key, value)| (key.clone(), plain(value)))
                    .collect(),
            ),
        },
        other => other.clone(),
    }
}

/// Go's `time.Duration.String()`: `0s`, `1s`, `1.5s`, `2m0s`, `1h30m0s`, `500ms`.
pub fn duration_text(ns: i64) -> String {
    if ns == 0 {
        return "0s".to_string();
    }
    let negative = ns < 0;
    let ns = ns.unsigned_abs();
    let sign = if negative { "-" } else { "" };
    if ns < 1_000_000_000 {
        let (unit, scale) = if ns < 1_000 {
            ("ns", 1)
        } else if ns < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{sign}{}{unit}", decimal(ns, scale));
    }
    let hours = ns / 3_600_000_000_000;
    let minutes = ns / 60_000_000_000 % 60;
    let seconds = decimal(ns % 60_000_000_000, 1_000_000_000);
    if hours > 0 {
        format!("{sign}{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{sign}{minutes}m{seconds}s")
    } else {
        format!("{sign}{seconds}s")
    }
}

/// `value / scale` with the fraction's trailing zeros cut, as Go prints durations.
fn decimal(value: u64, scale: u64) -> String {
    let whole = value / scale;
    let fraction = value % scale;
    if fraction == 0 {
        return whole.to_string();
    }
    let width = scale.to_string().len() - 1;
    let digits = format!("{fraction:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_go() {
        assert_eq!(duration_text(0), "0s");
        assert_eq!(duration_text(1_000_000_000), "1s");
        assert_eq!(duration_text(1_500_000_000), "1.5s");
        assert_eq!(duration_text(500_000_000), "500ms");
        assert_eq!(duration_text(90_000_000_000), "1m30s");
        assert_eq!(duration_text(3_600_000_000_000), "1h0m0s");
        assert_eq!(duration_text(30_000_000_000), "30s");
    }

    #[test]
    fn plain_drops_markers_and_empty_omitempty_fields() {
        let typed = structure(
            vec![
                ("A", json!("x")),
                ("B", nil_slice()),
                ("C", nil_map()),
                ("D", duration(Some(&json!(0)))),
                ("E", json!("")),
            ],
            &["D", "E"],
        );
        assert_eq!(plain(&typed), json!({"A": "x", "B": null, "C": null}));
    }
}
