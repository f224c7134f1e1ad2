//! CST's own report formats, written as CST 1.19 writes them (`pkg/output`,
//! `pkg/types/unversioned`), so dashboards that read CST's JSON or JUnit keep working:
//! `--output json` is Go's `json.Marshal` of CST's `SummaryObject`, `--output junit`
//! its `encoding/xml` document.

use std::fmt::Write as _;
use std::time::Duration;

use super::run::CstResult;

/// CST's JUnit suite name when `--junit-suite-name` is not given.
pub const DEFAULT_JUNIT_SUITE_NAME: &str = "container-structure-test.test";

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Go's `encoding/json` escapes `<`, `>`, `&`, U+2028 and U+2029 in strings; serde_json
/// does not. Those characters only ever appear inside strings, so this is exact.
fn go_json_escapes(text: &str) -> String {
    text.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// CST's JSON summary: `{"Pass":…,"Fail":…,"Total":…,"Duration":ns,"Results":[…]}`,
/// each result `{"Name","Pass","Stdout"?,"Stderr"?,"Errors"?,"Duration"}`, and a newline.
pub fn json(results: &[CstResult]) -> String {
    let pass = results.iter().filter(|result| result.pass).count();
    let total_duration: Duration = results.iter().map(|result| result.duration).sum();
    let mut items = Vec::new();
    for result in results {
        let mut item = serde_json::Map::new();
        item.insert("Name".into(), result.name.clone().into());
        item.insert("Pass".into(), result.pass.into());
        if !result.stdout.is_empty() {
            item.insert("Stdout".into(), result.stdout.clone().into());
        }
        if !result.stderr.is_empty() {
            item.insert("Stderr".into(), result.stderr.clone().into());
        }
        if !result.errors.is_empty() {
            item.insert("Errors".into(), result.errors.clone().into());
        }
        item.insert("Duration".into(), nanos(result.duration).into());
        items.push(serde_json::Value::Object(item));
    }
    let mut summary = serde_json::Map::new();
    summary.insert("Pass".into(), pass.into());
    summary.insert("Fail".into(), (results.len() - pass).into());
    summary.insert("Total".into(), results.len().into());
    summary.insert("Duration".into(), nanos(total_duration).into());
    if !items.is_empty() {
        summary.insert("Results".into(), items.into());
    }
    let text = serde_json::Value::Object(summary).to_string();
    format!("{}\n", go_json_escapes(&text))
}

/// Go's `xml` printer's `EscapeString`: `"` `'` `&` `<` `>` tab, LF and CR as character
/// references, characters XML cannot hold as U+FFFD.
fn go_xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}' => {
                out.push(character);
            }
            _ => out.push('\u{FFFD}'),
        }
    }
    out
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)`, which `encoding/xml` uses for floats:
/// the shortest representation, `%e` form when the exponent is < -4 or >= 6.
pub fn go_float(value: f64) -> String {
    if value == 0.0 {
        return "0".to_owned();
    }
    // Rust's `{:e}` is the shortest round-trip digits too: `1.5e-5`.
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if !(-4..6).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    } else {
        format!("{value}")
    }
}

/// CST's JUnit document (one line, as `xml.Marshal` writes it, then a newline).
pub fn junit(results: &[CstResult], suite_name: Option<&str>) -> String {
    let pass = results.iter().filter(|result| result.pass).count();
    let total_duration: Duration = results.iter().map(|result| result.duration).sum();
    let mut out = String::from(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = write!(
        out,
        r#"<testsuites failures="{}" tests="{}" time="{}"><testsuite name="{}">"#,
        results.len() - pass,
        results.len(),
        go_float(total_duration.as_secs_f64()),
        go_xml_escape(suite_name.unwrap_or(DEFAULT_JUNIT_SUITE_NAME)),
    );
    for result in results {
        let _ = write!(
            out,
            r#"<testcase name="{}" time="{}">"#,
            go_xml_escape(&result.name),
            go_float(result.duration.as_secs_f64())
        );
        for error in &result.errors {
            let _ = write!(out, "<failure>{}</failure>", go_xml_escape(error));
        }
        let _ = write!(
            out,
            "<system-out>{}</system-out><system-err>{}</system-err></testcase>",
            go_xml_escape(&result.stdout),
            go_xml_escape(&result.stderr)
        );
    }
    out.push_str("</testsuite></testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results() -> Vec<CstResult> {
        vec![
            CstResult {
                name: "Command Test: say <hi>".into(),
                pass: false,
                stdout: "a\nb & c\n".into(),
                stderr: String::new(),
                errors: vec![
                    "Expected string 'x' not found in output 'a\nb & c\n'".into(),
                    "second".into(),
                ],
                duration: Duration::from_millis(1500),
                skipped: false,
            },
            CstResult {
                name: "File Existence Test: sh".into(),
                pass: true,
                duration: Duration::from_nanos(12_000),
                ..CstResult::default()
            },
        ]
    }

    #[test]
    fn json_is_cst_summary_object_as_go_marshals_it() {
        assert_eq!(
            json(&results()),
            concat!(
                r#"{"Pass":1,"Fail":1,"Total":2,"Duration":1500012000,"Results":["#,
                r#"{"Name":"Command Test: say \u003chi\u003e","Pass":false,"Stdout":"a\nb \u0026 c\n","#,
                r#""Errors":["Expected string 'x' not found in output 'a\nb \u0026 c\n'","second"],"Duration":1500000000},"#,
                r#"{"Name":"File Existence Test: sh","Pass":true,"Duration":12000}]}"#,
                "\n"
            )
        );
        assert_eq!(
            json(&[]),
            "{\"Pass\":0,\"Fail\":0,\"Total\":0,\"Duration\":0}\n"
        );
    }

    #[test]
    fn junit_is_cst_document_with_one_failure_per_error() {
        assert_eq!(
            junit(&results(), None),
            concat!(
                r#"<?xml version="1.0" encoding="UTF-8"?><testsuites failures="1" tests="2" time="1.500012">"#,
                r#"<testsuite name="container-structure-test.test">"#,
                r#"<testcase name="Command Test: say &lt;hi&gt;" time="1.5">"#,
                r#"<failure>Expected string &#39;x&#39; not found in output &#39;a&#xA;b &amp; c&#xA;&#39;</failure>"#,
                r#"<failure>second</failure><system-out>a&#xA;b &amp; c&#xA;</system-out><system-err></system-err></testcase>"#,
                r#"<testcase name="File Existence Test: sh" time="1.2e-05"><system-out></system-out><system-err></system-err></testcase>"#,
                "</testsuite></testsuites>\n"
            )
        );
        assert!(junit(&[], Some("mine")).contains(r#"<testsuite name="mine">"#));
    }

    #[test]
    fn floats_format_as_go_formats_them() {
        assert_eq!(go_float(0.0), "0");
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(0.000_012), "1.2e-05");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(123.25), "123.25");
    }
}
