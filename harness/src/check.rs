//! Checks: pure functions from observations to findings. A check never talks
//! to Docker or the filesystem; the engine observes, the check decides.

use std::time::Duration;

use serde_json::Value;

use crate::category::Category;
use crate::events::{Failure, Location, Outcome};
use crate::lint;
use crate::record::ResourceUsage;
use crate::scenario::{
    FileExpect, HttpExpect, ImageExpect, LintExpect, Monitor, PointerAssertion, TextMatch,
};
use crate::secrets::Masker;

/// One expectation that did not hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub category: Category,
    pub message: String,
    /// JSON pointer (into the scenario file) of the expectation, for locations.
    pub pointer: String,
}

impl Finding {
    fn new(category: Category, pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Finding {
            category,
            message: message.into(),
            pointer: pointer.into(),
        }
    }
}

/// Every finding of a step, or `Ok` when there is none.
pub fn all_hold(findings: Vec<Finding>) -> Result<(), Vec<Finding>> {
    if findings.is_empty() {
        Ok(())
    } else {
        Err(findings)
    }
}

/// How a finished container ended, when that alone decides the step: stopped at its
/// `timeout` (`timeout`), or killed for exceeding its memory limit (`oom_killed`).
pub fn container_end(
    run_pointer: &str,
    timeout: Duration,
    timed_out: bool,
    oom_killed: bool,
    exit_code: i64,
) -> Option<Finding> {
    if timed_out {
        return Some(Finding::new(
            Category::Timeout,
            format!("{run_pointer}/timeout"),
            format!(
                "the container ran past its timeout of {} and was stopped (exit code {exit_code})",
                humantime::format_duration(timeout)
            ),
        ));
    }
    oom_killed.then(|| {
        Finding::new(
            Category::OomKilled,
            format!("{run_pointer}/limits/memory"),
            format!(
                "the container was killed for exceeding its memory limit (exit code {exit_code})"
            ),
        )
    })
}

/// The finding of a scenario that ran past its `timeout` during a step.
pub fn scenario_timeout(timeout: Duration) -> Finding {
    Finding::new(
        Category::Timeout,
        "/timeout",
        format!(
            "the scenario ran past its timeout of {} during this step",
            humantime::format_duration(timeout)
        ),
    )
}

/// The scenario's verdict against a scenario-level `expect_failure`.
pub fn scenario_verdict(
    verdict: Option<Failure>,
    expected: Option<Category>,
    locate: impl Fn(&str) -> Location,
) -> (Outcome, Option<Failure>) {
    match (verdict, expected) {
        (None, None) => (Outcome::Passed, None),
        (Some(failure), None) => (Outcome::Failed, Some(failure)),
        (Some(failure), Some(expected)) if failure.category == expected => {
            (Outcome::Passed, Some(failure))
        }
        (Some(failure), Some(expected)) => {
            let mut unexpected = failure.clone();
            unexpected.message = format!(
                "expected the scenario to fail with `{expected}`, got `{}`: {}",
                failure.category, failure.message
            );
            (Outcome::Failed, Some(unexpected))
        }
        (None, Some(expected)) => {
            let mut failure = Failure::new(
                Category::AssertionFailed,
                format!("expected the scenario to fail with `{expected}`, but it passed"),
            );
            failure.location = Some(locate("/expect_failure"));
            (Outcome::Failed, Some(failure))
        }
    }
}

/// A step's result against what it was expected to do: its outcome, and the failure to
/// report (one per finding, each at its own line; the first decides the category).
pub fn step_verdict(
    result: Result<(), Vec<Finding>>,
    expected: Option<Category>,
    locate: impl Fn(&str) -> Location,
    step_pointer: &str,
) -> (Outcome, Option<Failure>) {
    // One failure per finding, each at its own line; the first decides the category.
    let failure = result.err().map(|findings| {
        let mut failures = findings.into_iter().map(|finding| {
            let mut failure = Failure::new(finding.category, finding.message);
            failure.location = Some(locate(&finding.pointer));
            failure
        });
        let mut first = failures.next().unwrap_or_else(|| {
            let mut failure = Failure::new(
                Category::AssertionFailed,
                "the step failed without a finding",
            );
            failure.location = Some(locate(step_pointer));
            failure
        });
        first.further = failures.collect();
        first
    });
    match (failure, expected) {
        (None, None) => (Outcome::Passed, None),
        (Some(failure), None) => (Outcome::Failed, Some(failure)),
        (Some(failure), Some(expected)) if failure.category == expected => {
            (Outcome::Passed, Some(failure))
        }
        (Some(failure), Some(expected)) => {
            let mut unexpected = failure.clone();
            unexpected.message = format!(
                "expected a `{expected}` failure, got `{}`: {}",
                failure.category, failure.message
            );
            (Outcome::Failed, Some(unexpected))
        }
        (None, Some(expected)) => {
            let mut failure = Failure::new(
                Category::AssertionFailed,
                format!("expected this step to fail with `{expected}`, but it succeeded"),
            );
            failure.location = Some(locate(&format!("{step_pointer}/expect_failure")));
            (Outcome::Failed, Some(failure))
        }
    }
}

/// A finding for each budget of `monitor` that `usage` exceeds, at the budget's pointer.
/// A budget that cannot be checked (no sample) is a finding too: it must not pass silently.
pub fn budgets(
    run_pointer: &str,
    monitor: &Monitor,
    usage: &ResourceUsage,
    run_ms: u64,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let at = |key: &str| format!("{run_pointer}/monitor/{key}");
    if usage.samples == 0 {
        if monitor.has_budgets() {
            let why = match &usage.error {
                Some(error) => format!("sampling failed: {error}"),
                None => format!(
                    "the container ran {run_ms} ms and the daemon samples about once a second; a job must run longer to be measured"
                ),
            };
            let key = if monitor.max_memory.is_some() {
                "max_memory"
            } else if monitor.max_cpu_percent.is_some() {
                "max_cpu_percent"
            } else {
                "max_pids"
            };
            findings.push(Finding {
                category: Category::AssertionFailed,
                pointer: at(key),
                message: format!(
                    "no resource sample was taken, so the budget cannot be checked ({why})"
                ),
            });
        }
        return findings;
    }
    if let (Some(budget), Some(peak)) = (monitor.max_memory, usage.peak_memory_bytes)
        && peak > budget.0
    {
        findings.push(Finding {
            category: Category::AssertionFailed,
            pointer: at("max_memory"),
            message: format!(
                "peak memory {} is over the budget of {}",
                mebibytes(peak),
                mebibytes(budget.0)
            ),
        });
    }
    if let (Some(budget), Some(peak)) = (monitor.max_cpu_percent, usage.peak_cpu_percent)
        && peak > budget
    {
        findings.push(Finding {
            category: Category::AssertionFailed,
            pointer: at("max_cpu_percent"),
            message: format!("peak CPU {peak:.2}% is over the budget of {budget}%"),
        });
    }
    if let (Some(budget), Some(peak)) = (monitor.max_pids, usage.peak_pids)
        && peak > budget
    {
        findings.push(Finding {
            category: Category::AssertionFailed,
            pointer: at("max_pids"),
            message: format!("{peak} processes at once, over the budget of {budget}"),
        });
    }
    findings
}

fn mebibytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1048576.0)
}

/// What the engine saw of a workspace file an expectation names.
#[derive(Debug, Clone, Default)]
pub struct FileObservation {
    pub exists: bool,
    pub size: u64,
    pub sha256: String,
    /// The content as text, when the expectation needs it and it is small enough.
    pub text: Option<String>,
}

/// The lines that differ between `expected` and `actual` (`-` expected, `+` actual, with
/// one line of context), at most 20 lines of diff; inputs over 64 KiB are not diffed.
fn line_diff(expected: &str, actual: &str) -> String {
    const MAX_LINES: usize = 20;
    const MAX_BYTES: usize = 64 * 1024;
    if expected.len() > MAX_BYTES || actual.len() > MAX_BYTES {
        return String::new();
    }
    let diff = similar::TextDiff::from_lines(expected, actual);
    let mut text = String::from("\n--- expected\n+++ actual");
    let mut shown = 0;
    for group in diff.grouped_ops(1) {
        for op in group {
            for change in diff.iter_changes(&op) {
                if shown == MAX_LINES {
                    text.push_str("\n… (diff cut at 20 lines)");
                    return text;
                }
                let sign = match change.tag() {
                    similar::ChangeTag::Delete => '-',
                    similar::ChangeTag::Insert => '+',
                    similar::ChangeTag::Equal => ' ',
                };
                let line = change.value().trim_end_matches('\n');
                text.push_str(&format!("\n{sign}{line}"));
                shown += 1;
            }
        }
    }
    text
}

fn shorten(text: &str) -> String {
    const LIMIT: usize = 200;
    if text.len() <= LIMIT {
        format!("{text:?}")
    } else {
        let mut end = LIMIT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{:?}… ({} bytes)", &text[..end], text.len())
    }
}

/// Conditions on a text (stdout, stderr, file content). The conditions are judged on
/// `actual` itself; messages quote it with `masker`'s secrets masked first, so an
/// excerpt cut at its length limit never shows a piece of a value.
pub fn text(
    label: &str,
    pointer: &str,
    matcher: &TextMatch,
    actual: &str,
    masker: &Masker,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let shown = masker.mask(actual);
    let mut fail = |key: &str, message: String| {
        findings.push(Finding::new(
            Category::AssertionFailed,
            format!("{pointer}/{key}"),
            message,
        ));
    };
    if let Some(expected) = &matcher.equals
        && actual != expected
    {
        let expected_shown = masker.mask(expected);
        let mut message = format!(
            "{label} is {}, expected exactly {}",
            shorten(&shown),
            shorten(&expected_shown)
        );
        // Texts of several lines: where they differ, as a diff (expected → actual).
        if expected.contains('\n') || actual.contains('\n') {
            message.push_str(&line_diff(&expected_shown, &shown));
        }
        fail("equals", message);
    }
    if let Some(needle) = &matcher.contains
        && !actual.contains(needle.as_str())
    {
        fail(
            "contains",
            format!(
                "{label} does not contain {:?}; it was {}",
                masker.mask(needle),
                shorten(&shown)
            ),
        );
    }
    if let Some(needle) = &matcher.not_contains
        && actual.contains(needle.as_str())
    {
        fail(
            "not_contains",
            format!(
                "{label} contains {:?}, which it must not",
                masker.mask(needle)
            ),
        );
    }
    if let Some(pattern) = &matcher.matches {
        match regex::Regex::new(pattern) {
            Ok(regex) if regex.is_match(actual) => {}
            Ok(_) => fail(
                "matches",
                format!(
                    "{label} does not match /{pattern}/; it was {}",
                    shorten(&shown)
                ),
            ),
            Err(error) => fail("matches", format!("invalid pattern /{pattern}/: {error}")),
        }
    }
    if let Some(pattern) = &matcher.not_matches {
        match regex::Regex::new(pattern) {
            Ok(regex) if regex.is_match(actual) => {
                // The line is found in the masked text (as the log files show it); a match
                // that needs a secret's value is reported without its line.
                match regex.find(&shown) {
                    Some(found) => {
                        let line = shown[..found.start()].matches('\n').count() + 1;
                        let text_line = shown.lines().nth(line - 1).unwrap_or_default();
                        fail(
                            "not_matches",
                            format!(
                                "{label} matches /{pattern}/ on line {line}: {}",
                                shorten(text_line)
                            ),
                        );
                    }
                    None => fail(
                        "not_matches",
                        format!("{label} matches /{pattern}/ where a secret's value is (masked)"),
                    ),
                }
            }
            Ok(_) => {}
            Err(error) => fail(
                "not_matches",
                format!("invalid pattern /{pattern}/: {error}"),
            ),
        }
    }
    findings
}

/// The exit code a run or exec ended with, against the expected one.
pub fn exit_code(pointer: &str, expected: i64, actual: i64, oom_killed: bool) -> Option<Finding> {
    if expected == actual {
        return None;
    }
    let category = match actual {
        _ if oom_killed => Category::OomKilled,
        0 => Category::AssertionFailed,
        127 => Category::CommandNotFound,
        _ => Category::NonzeroExit,
    };
    let mut message = format!("exit code {actual}, expected {expected}");
    if oom_killed {
        message.push_str(" (killed for exceeding its memory limit)");
    }
    Some(Finding::new(category, pointer, message))
}

/// Conditions on one workspace file (its text quoted with `masker`'s secrets masked).
pub fn file(
    pointer: &str,
    expect: &FileExpect,
    observed: &FileObservation,
    masker: &Masker,
) -> Vec<Finding> {
    let path = &expect.path;
    if !expect.exists {
        return if observed.exists {
            vec![Finding::new(
                Category::AssertionFailed,
                format!("{pointer}/exists"),
                format!("`{path}` exists but must not"),
            )]
        } else {
            Vec::new()
        };
    }
    if !observed.exists {
        return vec![Finding::new(
            Category::ArtifactMissing,
            format!("{pointer}/path"),
            format!("`{path}` was not written"),
        )];
    }
    let mut findings = Vec::new();
    if let Some(size) = expect.size
        && size != observed.size
    {
        findings.push(Finding::new(
            Category::ChecksumMismatch,
            format!("{pointer}/size"),
            format!("`{path}` has {} bytes, expected {size}", observed.size),
        ));
    }
    if let Some(sha256) = &expect.sha256
        && !sha256.eq_ignore_ascii_case(&observed.sha256)
    {
        findings.push(Finding::new(
            Category::ChecksumMismatch,
            format!("{pointer}/sha256"),
            format!(
                "`{path}` has sha256 {}, expected {}",
                observed.sha256,
                sha256.to_ascii_lowercase()
            ),
        ));
    }
    let needs_text = expect.text.is_some() || !expect.json.is_empty();
    match (&observed.text, needs_text) {
        (None, true) => findings.push(Finding::new(
            Category::AssertionFailed,
            format!("{pointer}/path"),
            format!("`{path}` is not readable text (or too large to inspect)"),
        )),
        (Some(content), true) => {
            if let Some(matcher) = &expect.text {
                findings.extend(text(
                    &format!("`{path}`"),
                    &format!("{pointer}/text"),
                    matcher,
                    content,
                    masker,
                ));
            }
            if !expect.json.is_empty() {
                match serde_json::from_str::<Value>(content) {
                    Ok(document) => {
                        for (json_pointer, expected) in &expect.json {
                            let actual = document.pointer(json_pointer);
                            if actual != Some(expected) {
                                let escaped = crate::scenario::yaml::escape_segment(json_pointer);
                                findings.push(Finding::new(
                                    Category::AssertionFailed,
                                    format!("{pointer}/json/{escaped}"),
                                    format!(
                                        "`{path}` {json_pointer} is {}, expected {expected}",
                                        show(actual)
                                    ),
                                ));
                            }
                        }
                    }
                    Err(error) => findings.push(Finding::new(
                        Category::AssertionFailed,
                        format!("{pointer}/json"),
                        format!("`{path}` is not JSON: {error}"),
                    )),
                }
            }
        }
        _ => {}
    }
    findings
}

/// An HTTP answer against its expectations; every mismatch is `http_check_failed`.
pub fn http(
    pointer: &str,
    expect: &HttpExpect,
    status: u16,
    header: &dyn Fn(&str) -> Option<String>,
    body: &str,
    latency: Duration,
    masker: &Masker,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut fail = |key: String, message: String| {
        findings.push(Finding::new(
            Category::HttpCheckFailed,
            format!("{pointer}/{key}"),
            message,
        ))
    };
    let expected_status = expect.status.unwrap_or(200);
    if status != expected_status {
        // What the service said: the status, the headers that say what the body is, and
        // a bounded excerpt of the body.
        let headers: Vec<String> = [
            "content-type",
            "content-length",
            "location",
            "www-authenticate",
        ]
        .iter()
        .filter_map(|name| header(name).map(|value| format!("{name}: {}", masker.mask(&value))))
        .collect();
        let headers = if headers.is_empty() {
            String::new()
        } else {
            format!("; headers {}", headers.join(", "))
        };
        fail(
            "status".into(),
            format!(
                "status {status}, expected {expected_status}{headers}; body {}",
                shorten(&masker.mask(body))
            ),
        );
    }
    for (name, matcher) in &expect.headers {
        let value = header(name).unwrap_or_default();
        for found in text(&format!("header `{name}`"), "", matcher, &value, masker) {
            fail(
                format!(
                    "headers/{}{}",
                    crate::scenario::yaml::escape_segment(name),
                    found.pointer
                ),
                found.message,
            );
        }
    }
    if let Some(matcher) = &expect.body {
        for found in text("body", "", matcher, body, masker) {
            fail(format!("body{}", found.pointer), found.message);
        }
    }
    if !expect.json.is_empty() || !expect.json_types.is_empty() {
        match serde_json::from_str::<Value>(body) {
            Ok(document) => {
                for (json_pointer, expected) in &expect.json {
                    let actual = document.pointer(json_pointer);
                    if !actual.is_some_and(|actual| json_equal(actual, expected)) {
                        fail(
                            "json".into(),
                            format!("{json_pointer} is {}, expected {expected}", show(actual)),
                        );
                    }
                }
                for (json_pointer, kind) in &expect.json_types {
                    match document.pointer(json_pointer) {
                        Some(actual) if kind.matches(actual) => {}
                        actual => fail(
                            "json_types".into(),
                            format!(
                                "{json_pointer} is {}, expected a {}",
                                show(actual),
                                kind.name()
                            ),
                        ),
                    }
                }
            }
            Err(error) => fail(
                "json".into(),
                format!(
                    "the body is not JSON ({error}): {}",
                    shorten(&masker.mask(body))
                ),
            ),
        }
    }
    if let Some(budget) = expect.max_latency
        && latency > budget.0
    {
        fail(
            "max_latency".into(),
            format!(
                "answered in {} ms, over the budget of {} ms",
                latency.as_millis(),
                budget.0.as_millis()
            ),
        );
    }
    findings
}

/// What the daemon applied (a container's inspect document) against what was
/// asked for: limits, read-only root, no-new-privileges, network, user.
pub fn applied(
    pointer: &str,
    spec: &crate::backend::ContainerSpec,
    inspect: &Value,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let host = &inspect["HostConfig"];
    let mut differs = |key: &str, what: &str, actual: String, wanted: String| {
        findings.push(Finding::new(
            Category::AssertionFailed,
            format!("{pointer}/{key}"),
            format!("the daemon applied {what} = {actual}, but {wanted} was asked for"),
        ));
    };
    if let Some(memory) = spec.memory_bytes
        && host["Memory"].as_u64() != Some(memory)
    {
        differs(
            "limits/memory",
            "HostConfig.Memory",
            host["Memory"].to_string(),
            memory.to_string(),
        );
    }
    if let Some(cpus) = spec.cpus {
        let wanted = (cpus * 1e9).round() as u64;
        if host["NanoCpus"].as_u64() != Some(wanted) {
            differs(
                "limits/cpus",
                "HostConfig.NanoCpus",
                host["NanoCpus"].to_string(),
                wanted.to_string(),
            );
        }
    }
    if let Some(pids) = spec.pids_limit
        && host["PidsLimit"].as_i64() != Some(pids)
    {
        differs(
            "limits/pids",
            "HostConfig.PidsLimit",
            host["PidsLimit"].to_string(),
            pids.to_string(),
        );
    }
    if spec.read_only_rootfs && host["ReadonlyRootfs"].as_bool() != Some(true) {
        differs(
            "security/read_only",
            "HostConfig.ReadonlyRootfs",
            host["ReadonlyRootfs"].to_string(),
            "true".into(),
        );
    }
    if spec.no_new_privileges {
        let options: Vec<&str> = host["SecurityOpt"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if !options.iter().any(|option| {
            option.starts_with("no-new-privileges")
                && !option.ends_with(":false")
                && !option.ends_with("=false")
        }) {
            differs(
                "security/no_new_privileges",
                "HostConfig.SecurityOpt",
                host["SecurityOpt"].to_string(),
                "no-new-privileges".into(),
            );
        }
    }
    if let Some(entrypoint) = &spec.entrypoint {
        let config = &inspect["Config"];
        let words = |key: &str| -> Vec<String> {
            config[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        };
        let applied = words("Entrypoint");
        // `[""]` is how a cleared entrypoint travels; the daemon stores it as null.
        let cleared = applied.iter().all(String::is_empty);
        let holds = if entrypoint.is_empty() {
            cleared
        } else {
            // The docker CLI's `--entrypoint` takes one word: the rest leads the command.
            let argv: Vec<String> = applied.into_iter().chain(words("Cmd")).collect();
            argv.starts_with(entrypoint)
        };
        if !holds {
            differs(
                "entrypoint",
                "Config.Entrypoint (then Cmd)",
                format!("{} {}", config["Entrypoint"], config["Cmd"]),
                if entrypoint.is_empty() {
                    "no entrypoint".to_owned()
                } else {
                    format!("{entrypoint:?}")
                },
            );
        }
    }
    if let Some(network) = &spec.network
        && host["NetworkMode"].as_str() != Some(network.as_str())
    {
        differs(
            "security/network",
            "HostConfig.NetworkMode",
            host["NetworkMode"].to_string(),
            network.clone(),
        );
    }
    // The daemon keeps capability names as given (`NET_RAW`) or with the prefix (`CAP_NET_RAW`).
    let normalise = |capability: &str| capability.trim_start_matches("CAP_").to_ascii_uppercase();
    let dropped: Vec<String> = host["CapDrop"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(normalise)
        .collect();
    for capability in &spec.cap_drop {
        if !dropped.contains(&normalise(capability)) {
            differs(
                "security/cap_drop",
                "HostConfig.CapDrop",
                host["CapDrop"].to_string(),
                format!("dropping {capability}"),
            );
        }
    }
    for mount in &spec.tmpfs {
        let path = mount
            .split_once(':')
            .map_or(mount.as_str(), |(path, _)| path);
        if host["Tmpfs"].get(path).is_none() {
            differs(
                "security/tmpfs",
                "HostConfig.Tmpfs",
                host["Tmpfs"].to_string(),
                format!("a tmpfs at {path}"),
            );
        }
    }
    if let Some(user) = &spec.user
        && inspect["Config"]["User"].as_str() != Some(user.as_str())
    {
        differs(
            "user",
            "Config.User",
            inspect["Config"]["User"].to_string(),
            user.clone(),
        );
    }
    findings
}

/// A built image (its inspect document) against the patterns it must follow.
/// `stages` is the number of `FROM` instructions in its Dockerfile.
pub fn image(pointer: &str, expect: &ImageExpect, inspect: &Value, stages: usize) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut fail = |key: &str, message: String| {
        findings.push(Finding::new(
            Category::AssertionFailed,
            format!("{pointer}/{key}"),
            message,
        ))
    };
    let config = &inspect["Config"];
    let strings = |value: &Value| -> Vec<String> {
        value
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    };
    if let Some(limit) = expect.max_size {
        let size = inspect["Size"].as_u64().unwrap_or(0);
        if size > limit.0 {
            fail(
                "max_size",
                format!("the image is {size} bytes, over its budget of {}", limit.0),
            );
        }
    }
    if let Some(wanted) = expect.non_root {
        let user = config["User"].as_str().unwrap_or_default();
        let name = user.split(':').next().unwrap_or_default();
        let non_root = !(name.is_empty() || name == "root" || name == "0");
        if non_root != wanted {
            let shown = if user.is_empty() {
                "unset (root)".to_owned()
            } else {
                format!("`{user}`")
            };
            fail(
                "non_root",
                format!(
                    "the image's user is {shown}, expected {}",
                    if wanted { "a non-root user" } else { "root" }
                ),
            );
        }
    }
    if let Some(wanted) = expect.healthcheck {
        let test = strings(&config["Healthcheck"]["Test"]);
        let present = !test.is_empty() && test[0] != "NONE";
        if present != wanted {
            fail(
                "healthcheck",
                if present {
                    "the image has a HEALTHCHECK, expected none".to_owned()
                } else {
                    "the image has no HEALTHCHECK, expected one".to_owned()
                },
            );
        }
    }
    if let Some(wanted) = &expect.exposed_ports {
        let mut exposed: Vec<String> = config["ExposedPorts"]
            .as_object()
            .map(|ports| ports.keys().cloned().collect())
            .unwrap_or_default();
        let mut wanted: Vec<String> = wanted
            .iter()
            .map(|port| {
                if port.contains('/') {
                    port.clone()
                } else {
                    format!("{port}/tcp")
                }
            })
            .collect();
        exposed.sort();
        wanted.sort();
        if exposed != wanted {
            fail(
                "exposed_ports",
                format!("the image exposes {exposed:?}, expected {wanted:?}"),
            );
        }
    }
    for (key, value) in &expect.labels {
        let actual = config["Labels"][key].as_str();
        if actual != Some(value.as_str()) {
            fail(
                "labels",
                format!(
                    "label `{key}` is {}, expected {value:?}",
                    actual.map_or("missing".to_owned(), |actual| format!("{actual:?}"))
                ),
            );
        }
    }
    for (key, wanted, field) in [
        ("entrypoint", &expect.entrypoint, "Entrypoint"),
        ("cmd", &expect.cmd, "Cmd"),
    ] {
        if let Some(wanted) = wanted {
            let actual = strings(&config[field]);
            if &actual != wanted {
                fail(
                    key,
                    format!("the image's {field} is {actual:?}, expected {wanted:?}"),
                );
            }
        }
    }
    let env = strings(&config["Env"]);
    for (key, value) in &expect.env {
        let entry = format!("{key}={value}");
        if !env.contains(&entry) {
            let actual = env
                .iter()
                .find(|item| item.starts_with(&format!("{key}=")))
                .cloned()
                .unwrap_or_else(|| "unset".into());
            fail(
                "env",
                format!("the image's env has {actual}, expected {entry}"),
            );
        }
    }
    if let Some(wanted) = &expect.workdir {
        let actual = config["WorkingDir"].as_str().unwrap_or_default();
        if actual != wanted {
            fail(
                "workdir",
                format!("the image's workdir is {actual:?}, expected {wanted:?}"),
            );
        }
    }
    if let Some(wanted) = expect.multi_stage
        && (stages > 1) != wanted
    {
        fail(
            "multi_stage",
            format!(
                "the Dockerfile has {stages} stage(s), expected {}",
                if wanted { "more than one" } else { "one" }
            ),
        );
    }
    findings
}

fn show(value: Option<&Value>) -> String {
    value.map_or_else(|| "missing".to_owned(), Value::to_string)
}

/// What `dockproof lint` found in a file against what a `lint` step expects: every
/// expected finding is there (at its line, when given), and no other error-level
/// finding is, unless allowed. `pointer` is the step's `lint` key.
pub fn lint(pointer: &str, expect: &LintExpect, found: &[lint::Finding]) -> Vec<Finding> {
    let mut findings = Vec::new();
    let describe = |finding: &lint::Finding| {
        format!(
            "{} at line {} ({}): {}",
            finding.rule, finding.line, finding.level, finding.message
        )
    };
    for (index, expected) in expect.findings.iter().enumerate() {
        let matches = |finding: &&lint::Finding| {
            finding.rule == expected.rule && expected.line.is_none_or(|line| line == finding.line)
        };
        if !found.iter().any(|finding| matches(&finding)) {
            let at = expected
                .line
                .map(|line| format!(" at line {line}"))
                .unwrap_or_default();
            let same_rule: Vec<String> = found
                .iter()
                .filter(|finding| finding.rule == expected.rule)
                .map(|finding| format!("line {}", finding.line))
                .collect();
            let seen = if same_rule.is_empty() {
                "it reported nothing for that rule".to_owned()
            } else {
                format!("it reported it at {}", same_rule.join(", "))
            };
            findings.push(Finding::new(
                Category::AssertionFailed,
                format!("{pointer}/expect/findings/{index}"),
                format!("expected {}{at}; {seen}", expected.rule),
            ));
        }
    }
    if !expect.allow_other_errors {
        let unexpected: Vec<String> = found
            .iter()
            .filter(|finding| finding.level == lint::Level::Error)
            .filter(|finding| {
                !expect.findings.iter().any(|expected| {
                    expected.rule == finding.rule
                        && expected.line.is_none_or(|line| line == finding.line)
                })
            })
            .map(describe)
            .collect();
        if !unexpected.is_empty() {
            findings.push(Finding::new(
                Category::AssertionFailed,
                format!("{pointer}/file"),
                format!("unexpected error-level findings: {}", unexpected.join("; ")),
            ));
        }
    }
    findings
}

/// One assertion on a JSON document (the job record).
pub fn pointer(pointer: &str, assertion: &PointerAssertion, document: &Value) -> Vec<Finding> {
    let target = &assertion.pointer;
    let actual = document.pointer(target).filter(|value| !value.is_null());
    let mut findings = Vec::new();
    let mut fail = |key: &str, message: String| {
        findings.push(Finding::new(
            Category::AssertionFailed,
            format!("{pointer}/{key}"),
            format!("{target}: {message}"),
        ));
    };
    let must_exist = assertion.exists.unwrap_or(true);
    match (actual, must_exist) {
        (None, true) => {
            fail("pointer", "is missing".into());
            return findings;
        }
        (Some(value), false) => {
            fail("exists", format!("is {value}, expected it to be absent"));
            return findings;
        }
        (None, false) => return findings,
        (Some(_), true) => {}
    }
    let value = actual.expect("checked above");
    if let Some(expected) = &assertion.equals
        && !json_equal(value, expected)
    {
        fail("equals", format!("is {value}, expected {expected}"));
    }
    if let Some(unexpected) = &assertion.not_equals
        && json_equal(value, unexpected)
    {
        fail("not_equals", format!("is {value}, which it must not be"));
    }
    let number = value.as_f64();
    let comparisons: [Comparison; 4] = [
        ("gt", assertion.gt, |a, b| a > b, ">"),
        ("gte", assertion.gte, |a, b| a >= b, ">="),
        ("lt", assertion.lt, |a, b| a < b, "<"),
        ("lte", assertion.lte, |a, b| a <= b, "<="),
    ];
    for (key, bound, holds, symbol) in comparisons {
        let Some(bound) = bound else { continue };
        match number {
            Some(number) if holds(number, bound) => {}
            Some(_) => fail(key, format!("is {value}, expected {symbol} {bound}")),
            None => fail(key, format!("is {value}, not a number")),
        }
    }
    if let Some(needle) = &assertion.contains {
        let holds = match (value, needle) {
            (Value::String(text), Value::String(needle)) => text.contains(needle.as_str()),
            (Value::Array(items), needle) => items.iter().any(|item| json_equal(item, needle)),
            _ => false,
        };
        if !holds {
            fail("contains", format!("{value} does not contain {needle}"));
        }
    }
    if let Some(pattern) = &assertion.matches {
        let text = value
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| value.to_string());
        match regex::Regex::new(pattern) {
            Ok(regex) if regex.is_match(&text) => {}
            Ok(_) => fail("matches", format!("{value} does not match /{pattern}/")),
            Err(error) => fail("matches", format!("invalid pattern /{pattern}/: {error}")),
        }
    }
    if let Some(length) = assertion.length {
        let actual_length = match value {
            Value::Array(items) => Some(items.len() as u64),
            Value::String(text) => Some(text.chars().count() as u64),
            Value::Object(members) => Some(members.len() as u64),
            _ => None,
        };
        if actual_length != Some(length) {
            fail(
                "length",
                format!(
                    "has length {}, expected {length}",
                    actual_length.map_or("n/a".into(), |l| l.to_string())
                ),
            );
        }
    }
    findings
}

/// A numeric bound: its key, its value if given, the test, and its symbol.
type Comparison<'a> = (&'a str, Option<f64>, fn(f64, f64) -> bool, &'a str);

/// Equality that treats `3` and `3.0` as the same number.
fn json_equal(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => left == right,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_failures_pass_only_with_their_category() {
        let locate = |pointer: &str| Location {
            file: "s.yaml".into(),
            line: pointer.len(),
            column: 1,
        };
        let timeout = || {
            Err(vec![Finding::new(
                Category::Timeout,
                "/steps/0",
                "too slow",
            )])
        };
        assert_eq!(
            step_verdict(Ok(()), None, locate, "/steps/0").0,
            Outcome::Passed
        );
        assert_eq!(
            step_verdict(timeout(), Some(Category::Timeout), locate, "/steps/0").0,
            Outcome::Passed
        );
        let (outcome, failure) =
            step_verdict(timeout(), Some(Category::OomKilled), locate, "/steps/0");
        assert_eq!(outcome, Outcome::Failed);
        assert!(
            failure
                .unwrap()
                .message
                .starts_with("expected a `oom_killed` failure, got `timeout`")
        );
        let (outcome, failure) = step_verdict(Ok(()), Some(Category::Timeout), locate, "/steps/0");
        assert_eq!(outcome, Outcome::Failed);
        assert_eq!(failure.unwrap().category, Category::AssertionFailed);
    }
    use serde_json::json;

    fn matcher(yaml: serde_json::Value) -> TextMatch {
        serde_json::from_value(yaml).unwrap()
    }

    #[test]
    fn a_multi_line_equals_mismatch_shows_where_as_a_diff() {
        let findings = text(
            "stdout",
            "/steps/0/expect/stdout",
            &matcher(json!({"equals": "a\nb\nc\nd\n"})),
            "a\nB\nc\nd\n",
            &Masker::default(),
        );
        let message = &findings[0].message;
        assert!(
            message.ends_with("\n--- expected\n+++ actual\n a\n-b\n+B\n c"),
            "{message}"
        );
        // One-line texts keep the one-line message.
        let findings = text(
            "stdout",
            "/p",
            &matcher(json!({"equals": "x"})),
            "y",
            &Masker::default(),
        );
        assert!(!findings[0].message.contains("--- expected"));
    }

    #[test]
    fn text_conditions_report_each_mismatch() {
        let all = matcher(json!({"contains": "done", "not_matches": "(?i)error", "equals": "x"}));
        let findings = text(
            "stdout",
            "/steps/0/expect/stdout",
            &all,
            "starting\nERROR: boom\n",
            &Masker::default(),
        );
        let keys: Vec<&str> = findings
            .iter()
            .map(|f| f.pointer.rsplit('/').next().unwrap())
            .collect();
        assert_eq!(keys, ["equals", "contains", "not_matches"]);
        assert!(
            findings[2].message.contains("line 2"),
            "{}",
            findings[2].message
        );
        assert!(
            text(
                "stdout",
                "",
                &matcher(json!({"contains": "ok", "matches": "^ok$"})),
                "ok",
                &Masker::default()
            )
            .is_empty()
        );
    }

    /// Messages quote the text with secrets masked before it is shortened: a value
    /// straddling the excerpt's 200-byte cut shows no piece, a multi-line value no line.
    #[test]
    fn text_messages_never_quote_a_piece_of_a_secret() {
        let secret = "s3cr3t-0123456789abcdef".to_owned();
        let pem = "-----BEGIN KEY-----\nAAAABBBBCCCCDDDD\n-----END KEY-----".to_owned();
        let masker = Masker::new([&secret, &pem]).unwrap();
        let actual = format!("{}{secret} and then\n{pem}\nERROR here\n", "x".repeat(190));
        let all = matcher(json!({
            "equals": format!("{secret}!"),
            "contains": "absent",
            "not_matches": "ERROR|AAAA",
            "not_contains": secret.clone(),
        }));
        let findings = text("stdout", "", &all, &actual, &masker);
        assert_eq!(findings.len(), 4, "{findings:#?}");
        for found in &findings {
            for piece in ["s3cr3t", "AAAABBBB", "BEGIN"] {
                assert!(!found.message.contains(piece), "{piece}: {}", found.message);
            }
        }
        let not_matches = &findings[3].message;
        assert!(not_matches.contains("ERROR here"), "{not_matches}");
        let only_secret = matcher(json!({"not_matches": "AAAA"}));
        let findings = text("stdout", "", &only_secret, &actual, &masker);
        assert!(
            findings[0].message.contains("(masked)"),
            "{}",
            findings[0].message
        );
    }

    #[test]
    fn exit_codes_map_to_categories() {
        assert_eq!(exit_code("", 0, 0, false), None);
        assert_eq!(
            exit_code("", 0, 3, false).unwrap().category,
            Category::NonzeroExit
        );
        assert_eq!(
            exit_code("", 0, 127, false).unwrap().category,
            Category::CommandNotFound
        );
        assert_eq!(
            exit_code("", 0, 137, true).unwrap().category,
            Category::OomKilled
        );
        assert_eq!(
            exit_code("", 3, 0, false).unwrap().category,
            Category::AssertionFailed
        );
    }

    #[test]
    fn files_are_checked_for_presence_checksum_and_json() {
        let expect: FileExpect = serde_json::from_value(json!({
            "path": "outputs/summary.json", "sha256": "00".repeat(32), "json": {"/inputs": 2, "/status": "ok"}
        }))
        .unwrap();
        assert_eq!(
            file(
                "/f",
                &expect,
                &FileObservation::default(),
                &Masker::default()
            )[0]
            .category,
            Category::ArtifactMissing
        );
        let observed = FileObservation {
            exists: true,
            size: 10,
            sha256: "ab".repeat(32),
            text: Some(r#"{"inputs":2,"status":"failed"}"#.into()),
        };
        let findings = file("/f", &expect, &observed, &Masker::default());
        assert_eq!(findings.len(), 2, "{findings:?}");
        assert_eq!(findings[0].category, Category::ChecksumMismatch);
        assert!(
            findings[1].message.contains("/status is \"failed\""),
            "{}",
            findings[1].message
        );
    }

    #[test]
    fn http_answers_are_checked_for_status_headers_json_and_latency() {
        let expect: HttpExpect = serde_json::from_value(json!({
            "status": 200,
            "headers": {"content-type": {"contains": "json"}},
            "json": {"/status": "ok"},
            "json_types": {"/timestamp": "string", "/components": "object"},
            "max_latency": "100ms"
        }))
        .unwrap();
        let header = |name: &str| (name == "content-type").then(|| "application/json".to_owned());
        let good = r#"{"status":"ok","timestamp":"2026-01-01T00:00:00Z","components":{}}"#;
        assert!(
            http(
                "/h",
                &expect,
                200,
                &header,
                good,
                Duration::from_millis(5),
                &Masker::default()
            )
            .is_empty()
        );
        let bad = r#"{"status":"unhealthy","components":[]}"#;
        let findings = http(
            "/h",
            &expect,
            503,
            &header,
            bad,
            Duration::from_millis(500),
            &Masker::default(),
        );
        let keys: Vec<&str> = findings
            .iter()
            .map(|found| found.pointer.rsplit('/').next().unwrap())
            .collect();
        assert_eq!(
            keys,
            ["status", "json", "json_types", "json_types", "max_latency"],
            "{findings:#?}"
        );
        // The status finding shows the answer: status, what the body is, an excerpt.
        assert_eq!(
            findings[0].message,
            format!(
                "status 503, expected 200; headers content-type: application/json; body {:?}",
                bad
            )
        );
        assert!(
            findings
                .iter()
                .all(|found| found.category == Category::HttpCheckFailed)
        );
    }

    #[test]
    fn a_spec_asking_for_nothing_needs_no_verification() {
        let nothing = crate::backend::ContainerSpec::default();
        assert!(!nothing.asks_for_enforcement());
        // Whatever the daemon says, nothing asked means nothing to find: skipping the inspect loses nothing.
        assert!(
            applied(
                "/steps/0/run",
                &nothing,
                &serde_json::json!({ "HostConfig": { "Memory": 1, "ReadonlyRootfs": false } })
            )
            .is_empty()
        );
        let user = crate::backend::ContainerSpec {
            user: Some("1000".into()),
            ..Default::default()
        };
        assert!(user.asks_for_enforcement());
    }

    #[test]
    fn applied_settings_are_compared_with_what_was_asked() {
        let spec = crate::backend::ContainerSpec {
            memory_bytes: Some(64 << 20),
            cpus: Some(0.5),
            pids_limit: Some(64),
            read_only_rootfs: true,
            no_new_privileges: true,
            network: Some("none".into()),
            user: Some("1000:1000".into()),
            cap_drop: vec!["ALL".into(), "net_raw".into()],
            tmpfs: vec!["/tmp:size=16m".into()],
            ..Default::default()
        };
        let applied_all = json!({"HostConfig": {"Memory": 67108864, "NanoCpus": 500000000, "PidsLimit": 64, "ReadonlyRootfs": true,
            "SecurityOpt": ["no-new-privileges"], "NetworkMode": "none", "CapDrop": ["ALL", "CAP_NET_RAW"], "Tmpfs": {"/tmp": "size=16m"}},
            "Config": {"User": "1000:1000"}});
        assert_eq!(applied("/r", &spec, &applied_all), vec![]);
        let ignored = json!({"HostConfig": {"Memory": 0, "NanoCpus": 0, "PidsLimit": null, "ReadonlyRootfs": false,
            "SecurityOpt": null, "NetworkMode": "default", "CapDrop": null, "Tmpfs": null}, "Config": {"User": ""}});
        let findings = applied("/r", &spec, &ignored);
        assert_eq!(findings.len(), 10, "{findings:?}");
        assert!(
            findings
                .iter()
                .any(|finding| finding.pointer == "/r/security/tmpfs"
                    && finding.message.contains("a tmpfs at /tmp"))
        );
    }

    #[test]
    fn an_entrypoint_set_or_cleared_is_checked_against_inspect() {
        let set = crate::backend::ContainerSpec {
            entrypoint: Some(vec!["sh".into(), "-c".into()]),
            ..Default::default()
        };
        assert!(set.asks_for_enforcement());
        // The Engine API keeps it whole; the docker CLI's `--entrypoint` takes one word and
        // the rest leads the command.
        let api =
            json!({"HostConfig": {}, "Config": {"Entrypoint": ["sh", "-c"], "Cmd": ["echo hi"]}});
        let cli =
            json!({"HostConfig": {}, "Config": {"Entrypoint": ["sh"], "Cmd": ["-c", "echo hi"]}});
        assert_eq!(applied("/r", &set, &api), vec![]);
        assert_eq!(applied("/r", &set, &cli), vec![]);
        let image_default =
            json!({"HostConfig": {}, "Config": {"Entrypoint": ["/entry"], "Cmd": ["sh", "-c"]}});
        let findings = applied("/r", &set, &image_default);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].pointer, "/r/entrypoint");
        assert!(
            findings[0].message.contains("Config.Entrypoint"),
            "{}",
            findings[0].message
        );

        let cleared = crate::backend::ContainerSpec {
            entrypoint: Some(Vec::new()),
            ..Default::default()
        };
        for none in [json!(null), json!([]), json!([""])] {
            let inspect =
                json!({"HostConfig": {}, "Config": {"Entrypoint": none, "Cmd": ["true"]}});
            assert_eq!(applied("/r", &cleared, &inspect), vec![], "{none}");
        }
        let kept = json!({"HostConfig": {}, "Config": {"Entrypoint": ["/entry"], "Cmd": ["true"]}});
        assert_eq!(applied("/r", &cleared, &kept).len(), 1);
    }

    #[test]
    fn images_are_checked_against_their_patterns() {
        let inspect = json!({
            "Size": 2_100_000,
            "Config": {
                "User": "65534:65534", "ExposedPorts": {"8080/tcp": {}}, "Labels": {"tier": "web"},
                "Healthcheck": {"Test": ["CMD", "wget", "-q", "http://127.0.0.1:8080/health"]},
                "Cmd": ["web"], "Entrypoint": null, "Env": ["PATH=/bin", "WEB_PORT=8080"], "WorkingDir": ""
            }
        });
        let expect =
            |value: serde_json::Value| -> ImageExpect { serde_json::from_value(value).unwrap() };
        let good = expect(
            json!({"max_size": "4MiB", "non_root": true, "healthcheck": true, "exposed_ports": ["8080"],
            "labels": {"tier": "web"}, "cmd": ["web"], "env": {"WEB_PORT": "8080"}, "multi_stage": false}),
        );
        assert_eq!(image("/b", &good, &inspect, 1), vec![]);
        let bad = expect(
            json!({"max_size": "1MiB", "non_root": false, "healthcheck": false, "exposed_ports": ["80/tcp"],
            "labels": {"tier": "db"}, "entrypoint": ["x"], "env": {"WEB_PORT": "80"}, "workdir": "/srv", "multi_stage": true}),
        );
        let keys: Vec<String> = image("/b", &bad, &inspect, 1)
            .iter()
            .map(|found| found.pointer.rsplit('/').next().unwrap().to_owned())
            .collect();
        assert_eq!(
            keys,
            [
                "max_size",
                "non_root",
                "healthcheck",
                "exposed_ports",
                "labels",
                "entrypoint",
                "env",
                "workdir",
                "multi_stage"
            ]
        );
    }

    #[test]
    fn pointer_assertions_compare_numbers_and_presence() {
        let record = json!({"metrics": {"bytesOut": 12}, "status": "succeeded", "list": [1, 2]});
        let assertion = |value: serde_json::Value| -> PointerAssertion {
            serde_json::from_value(value).unwrap()
        };
        assert!(
            pointer(
                "",
                &assertion(json!({"pointer": "/metrics/bytesOut", "gt": 0})),
                &record
            )
            .is_empty()
        );
        assert!(
            pointer(
                "",
                &assertion(json!({"pointer": "/metrics/bytesOut", "equals": 12.0})),
                &record
            )
            .is_empty()
        );
        assert!(
            pointer(
                "",
                &assertion(json!({"pointer": "/list", "contains": 2, "length": 2})),
                &record
            )
            .is_empty()
        );
        assert_eq!(
            pointer("", &assertion(json!({"pointer": "/missing"})), &record).len(),
            1
        );
        assert!(
            pointer(
                "",
                &assertion(json!({"pointer": "/missing", "exists": false})),
                &record
            )
            .is_empty()
        );
        let failed = pointer(
            "/t/0",
            &assertion(json!({"pointer": "/status", "equals": "failed", "matches": "^s"})),
            &record,
        );
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].pointer, "/t/0/equals");
    }

    #[test]
    fn lint_expectations() {
        let found = vec![
            lint::Finding::new(
                &lint::compose::DEPENDS_HEALTHY,
                36,
                "worker depends on redis",
            ),
            lint::Finding::new(&lint::compose::LOG_CAPS, 40, "no cap"),
        ];
        let expect = |text: &str| -> LintExpect { serde_json::from_str(text).unwrap() };
        assert!(
            lint(
                "/steps/0/lint",
                &expect(r#"{"findings": [{"rule": "DC003", "line": 36}]}"#),
                &found
            )
            .is_empty()
        );
        assert!(
            lint(
                "/steps/0/lint",
                &expect(r#"{"findings": [{"rule": "DC003"}]}"#),
                &found
            )
            .is_empty(),
            "any line"
        );
        let wrong_line = lint(
            "/steps/0/lint",
            &expect(r#"{"findings": [{"rule": "DC003", "line": 37}]}"#),
            &found,
        );
        assert_eq!(wrong_line.len(), 2, "{wrong_line:?}");
        assert_eq!(
            wrong_line[0].message,
            "expected DC003 at line 37; it reported it at line 36"
        );
        assert_eq!(wrong_line[0].pointer, "/steps/0/lint/expect/findings/0");
        let clean = lint("/steps/0/lint", &LintExpect::default(), &found);
        assert_eq!(clean.len(), 1);
        assert!(
            clean[0]
                .message
                .starts_with("unexpected error-level findings: DC003 at line 36 (error)"),
            "{}",
            clean[0].message
        );
        assert!(
            lint(
                "/steps/0/lint",
                &expect(r#"{"allow_other_errors": true}"#),
                &found
            )
            .is_empty(),
            "warnings never fail"
        );
        let missing = lint(
            "/steps/0/lint",
            &expect(r#"{"findings": [{"rule": "DC001"}], "allow_other_errors": true}"#),
            &found,
        );
        assert_eq!(
            missing[0].message,
            "expected DC001; it reported nothing for that rule"
        );
    }
}
