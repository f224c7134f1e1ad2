//! The canary gate: run the canary scenarios N times on every host of a
//! fleet, summarise each host, and decide go / no-go from configured gates
//! (success rate, p95 container start latency, failures per category, and no
//! regression against the last good run).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::category::Category;
use crate::events::{Outcome, ScenarioReport};

/// Where a host's Docker is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKind {
    /// A real daemon through the docker CLI (`DOCKER_HOST`, or the local default).
    Docker { docker_host: Option<String> },
    /// A fake-docker host with its own state and, optionally, a fault profile
    /// (`FAKE_DOCKER_FAULTS`); `remote` makes it act as a daemon on another machine
    /// (`FAKE_DOCKER_REMOTE=1`: it does not see dockproof's files).
    Fake {
        faults: Option<String>,
        remote: bool,
    },
}

/// One host of the fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub name: String,
    pub kind: HostKind,
    pub labels: BTreeMap<String, String>,
    /// The workspace transport for this host (`;transport=` / `transport:`), over `--workspace-transport`.
    pub transport: Option<crate::transport::TransportChoice>,
}

impl std::str::FromStr for Host {
    type Err = String;

    /// `NAME=DOCKER_HOST[;transport=auto|bind|copy]` (a real daemon),
    /// `fake://NAME[?faults=SPEC][&remote][&transport=…]`, or `local[;transport=…]`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(rest) = text.strip_prefix("fake://") {
            let (name, query) = rest.split_once('?').unwrap_or((rest, ""));
            let mut faults = None;
            let mut remote = false;
            let mut transport = None;
            for pair in query.split('&').filter(|pair| !pair.is_empty()) {
                match pair.split_once('=') {
                    Some(("faults", value)) => faults = Some(value.to_owned()),
                    Some(("transport", value)) => {
                        transport = Some(value.parse().map_err(|e| format!("`{text}`: {e}"))?);
                    }
                    None if pair == "remote" => remote = true,
                    _ => {
                        return Err(format!(
                            "`{text}`: unknown fake host option `{pair}` (known: `faults=`, `remote`, `transport=`)"
                        ));
                    }
                }
            }
            let mut parsed = host(name, HostKind::Fake { faults, remote }, text)?;
            parsed.transport = transport;
            return Ok(parsed);
        }
        let (text, transport) = match text.split_once(';') {
            Some((address, option)) => match option.split_once('=') {
                Some(("transport", value)) => (
                    address,
                    Some(value.parse().map_err(|e| format!("`{text}`: {e}"))?),
                ),
                _ => {
                    return Err(format!(
                        "`{text}`: unknown host option `{option}` (known: `transport=auto|bind|copy`)"
                    ));
                }
            },
            None => (text, None),
        };
        let mut parsed = Self::from_plain(text)?;
        parsed.transport = transport;
        Ok(parsed)
    }
}

impl Host {
    /// `NAME=DOCKER_HOST` or `local`, without options.
    fn from_plain(text: &str) -> Result<Self, String> {
        if text == "local" {
            return host(text, HostKind::Docker { docker_host: None }, text);
        }
        match text.split_once('=') {
            Some((name, docker_host)) if !docker_host.is_empty() => host(
                name,
                HostKind::Docker {
                    docker_host: Some(docker_host.to_owned()),
                },
                text,
            ),
            _ => Err(format!(
                "`{text}` is not a host: use NAME=DOCKER_HOST (e.g. w1=tcp://10.0.0.5:2376), fake://NAME?faults=SPEC, or local"
            )),
        }
    }
}

fn host(name: &str, kind: HostKind, text: &str) -> Result<Host, String> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(format!(
            "`{text}`: a host name may hold letters, digits, `-` and `_`"
        ));
    }
    Ok(Host {
        name: name.to_owned(),
        kind,
        labels: BTreeMap::new(),
        transport: None,
    })
}

/// A hosts file entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostEntry {
    name: String,
    #[serde(default)]
    docker_host: Option<String>,
    #[serde(default)]
    fake: Option<FakeEntry>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    /// `auto`, `bind` or `copy`.
    #[serde(default)]
    transport: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FakeEntry {
    #[serde(default)]
    faults: Option<String>,
    #[serde(default)]
    remote: bool,
}

/// Read a hosts file: a YAML list of `{ name, docker_host | fake: { faults }, labels }`.
pub fn read_hosts(path: &Path) -> Result<Vec<Host>, String> {
    let text = crate::input_file::read_config(path).map_err(|error| error.to_string())?;
    let document = crate::scenario::yaml::parse(&text).map_err(|error| {
        format!(
            "{}:{}:{}: {}",
            path.display(),
            error.span.start.line,
            error.span.start.column,
            error.with_hint()
        )
    })?;
    let entries: Vec<HostEntry> = serde_json::from_value(document.value)
        .map_err(|error| format!("{}: {error}", path.display()))?;
    entries
        .into_iter()
        .map(|entry| {
            let kind = match (entry.docker_host, entry.fake) {
                (Some(docker_host), None) => HostKind::Docker {
                    docker_host: Some(docker_host),
                },
                (None, Some(fake)) => HostKind::Fake {
                    faults: fake.faults,
                    remote: fake.remote,
                },
                (None, None) => HostKind::Docker { docker_host: None },
                (Some(_), Some(_)) => {
                    return Err(format!(
                        "{}: host `{}` has both `docker_host` and `fake`",
                        path.display(),
                        entry.name
                    ));
                }
            };
            let mut parsed = host(&entry.name, kind, &entry.name)
                .map_err(|message| format!("{}: {message}", path.display()))?;
            parsed.labels = entry.labels;
            parsed.transport = match entry.transport {
                Some(text) => Some(text.parse().map_err(|error| {
                    format!("{}: host `{}`: {error}", path.display(), entry.name)
                })?),
                None => None,
            };
            Ok(parsed)
        })
        .collect()
}

/// The go/no-go thresholds. Defaults: 95% success, p95 start under 10 s (seed
/// 001), no per-category limit, and no regression against the last good run.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Gates {
    /// Minimum share of passed scenario runs on every host (0..=1).
    pub min_success_rate: f64,
    /// Maximum p95 container start latency in milliseconds, on every host.
    pub max_p95_start_ms: u64,
    /// Maximum failures per category on every host (absent: unlimited).
    pub max_failures: BTreeMap<String, u64>,
    /// Scenarios that passed in the last all-green run must pass on every host now.
    pub no_regression: bool,
}

impl Default for Gates {
    fn default() -> Self {
        Gates {
            min_success_rate: 0.95,
            max_p95_start_ms: 10_000,
            max_failures: BTreeMap::new(),
            no_regression: true,
        }
    }
}

/// The keys a gates file has.
const GATE_KEYS: [&str; 4] = [
    "min_success_rate",
    "max_p95_start_ms",
    "max_failures",
    "no_regression",
];

/// Read gates from a YAML file (missing keys keep their defaults). Every problem is
/// reported with its `file:line:col` and a hint: unknown keys and unknown category names
/// in `max_failures` (`oom` for `oom_killed`) with "did you mean".
pub fn read_gates(path: &Path) -> Result<Gates, String> {
    let text = crate::input_file::read_config(path).map_err(|error| error.to_string())?;
    let document = crate::scenario::yaml::parse(&text).map_err(|error| {
        format!(
            "{}:{}:{}: {}",
            path.display(),
            error.span.start.line,
            error.span.start.column,
            error.with_hint()
        )
    })?;
    let mut problems = Vec::new();
    let mut problem = |span: crate::scenario::yaml::SourceSpan, message: String, hint: String| {
        problems.push(format!(
            "{}:{}:{}: {message}\n  = hint: {hint}",
            path.display(),
            span.start.line,
            span.start.column
        ));
    };
    match &document.value {
        serde_json::Value::Null => {}
        serde_json::Value::Object(map) => {
            for key in map.keys() {
                let pointer = format!("/{}", crate::scenario::yaml::escape_segment(key));
                if !GATE_KEYS.contains(&key.as_str()) {
                    let hint = match crate::suggest::closest(key, GATE_KEYS) {
                        Some(close) => format!("did you mean `{close}`?"),
                        None => format!("a gates file has {}", GATE_KEYS.join(", ")),
                    };
                    problem(
                        document.spans.key(&pointer),
                        format!("unknown gate `{key}`"),
                        hint,
                    );
                }
            }
            if let Some(serde_json::Value::Object(limits)) = map.get("max_failures") {
                let names = Category::ALL.map(Category::as_str);
                for name in limits.keys() {
                    if !names.contains(&name.as_str()) {
                        let pointer = format!(
                            "/max_failures/{}",
                            crate::scenario::yaml::escape_segment(name)
                        );
                        let hint = match crate::suggest::closest(name, names) {
                            Some(close) => format!("did you mean `{close}`?"),
                            None => format!("the categories are {}", names.join(", ")),
                        };
                        problem(
                            document.spans.key(&pointer),
                            format!("unknown failure category `{name}` in max_failures"),
                            hint,
                        );
                    }
                }
            }
        }
        _ => problem(
            document.spans.value(""),
            "a gates file is a mapping".into(),
            format!("keys: {}", GATE_KEYS.join(", ")),
        ),
    }
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    let gates: Gates = serde_json::from_value(document.value.clone()).map_err(|error| {
        // A wrong type: located at the key serde names, when it names one.
        let message = error.to_string();
        let span = GATE_KEYS
            .iter()
            .find(|key| message.contains(*key))
            .map_or_else(|| document.spans.value(""), |key| document.spans.value(&format!("/{key}")));
        format!(
            "{}:{}:{}: {message}\n  = hint: min_success_rate is a share (0.95), max_p95_start_ms and max_failures values are counts, no_regression is true or false",
            path.display(),
            span.start.line,
            span.start.column
        )
    })?;
    if !(0.0..=1.0).contains(&gates.min_success_rate) {
        let span = document.spans.value("/min_success_rate");
        return Err(format!(
            "{}:{}:{}: min_success_rate {} is not a share between 0 and 1\n  = hint: 95% is 0.95",
            path.display(),
            span.start.line,
            span.start.column,
            gates.min_success_rate
        ));
    }
    Ok(gates)
}

/// What one host did over all repeats.
#[derive(Debug, Clone, PartialEq)]
pub struct HostSummary {
    pub host: String,
    pub runs: u64,
    pub passed: u64,
    pub start_ms: Percentiles,
    pub run_ms: Percentiles,
    pub failures: BTreeMap<String, u64>,
    /// Scenarios that failed at least once.
    pub failed_scenarios: Vec<String>,
}

/// p50 and p95 of a set of samples (nearest rank).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Percentiles {
    pub p50: u64,
    pub p95: u64,
}

fn percentiles(mut samples: Vec<u64>) -> Percentiles {
    if samples.is_empty() {
        return Percentiles::default();
    }
    samples.sort_unstable();
    let rank = |percent: usize| {
        samples[((samples.len() * percent).div_ceil(100))
            .saturating_sub(1)
            .min(samples.len() - 1)]
    };
    Percentiles {
        p50: rank(50),
        p95: rank(95),
    }
}

impl HostSummary {
    /// Summarise every scenario report of a host (all repeats together).
    pub fn from_reports(host: &str, reports: &[ScenarioReport]) -> Self {
        let counted: Vec<&ScenarioReport> = reports
            .iter()
            .filter(|report| matches!(report.outcome, Outcome::Passed | Outcome::Failed))
            .collect();
        let mut failures = BTreeMap::new();
        let mut failed_scenarios: Vec<String> = Vec::new();
        for report in counted
            .iter()
            .filter(|report| report.outcome == Outcome::Failed)
        {
            let category = report
                .failure
                .as_ref()
                .map_or("unknown", |failure| failure.category.as_str());
            *failures.entry(category.to_owned()).or_insert(0) += 1;
            if !failed_scenarios.contains(&report.name) {
                failed_scenarios.push(report.name.clone());
            }
        }
        failed_scenarios.sort();
        let started: Vec<u64> = counted
            .iter()
            .filter(|report| report.record.context.docker.container_id.is_some())
            .map(|report| report.record.metrics.docker.start_ms)
            .collect();
        HostSummary {
            host: host.to_owned(),
            runs: counted.len() as u64,
            passed: counted
                .iter()
                .filter(|report| report.outcome == Outcome::Passed)
                .count() as u64,
            start_ms: percentiles(started),
            run_ms: percentiles(
                counted
                    .iter()
                    .map(|report| report.duration.as_millis() as u64)
                    .collect(),
            ),
            failures,
            failed_scenarios,
        }
    }

    /// Passed runs over all runs.
    pub fn success_rate(&self) -> f64 {
        if self.runs == 0 {
            0.0
        } else {
            self.passed as f64 / self.runs as f64
        }
    }
}

/// The verdict of the gate.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Why it is no-go (empty: go).
    pub reasons: Vec<String>,
}

impl Decision {
    pub fn go(&self) -> bool {
        self.reasons.is_empty()
    }
}

/// The decision: no-go with one reason per failed gate check (see [`gate_checks`]); a host
/// that ran no scenario has that one reason, the rest of its gates say nothing then.
pub fn decide(gates: &Gates, hosts: &[HostSummary], last_good: Option<&[String]>) -> Decision {
    let mut reasons = Vec::new();
    for host in hosts {
        for check in host_checks(gates, host, last_good) {
            if let Some(reason) = check.reason {
                let ran_nothing = check.gate == "scenarios_run";
                reasons.push(reason);
                if ran_nothing {
                    break;
                }
            }
        }
    }
    Decision { reasons }
}

/// The per-host table.
pub fn table(hosts: &[HostSummary]) -> String {
    let width = hosts
        .iter()
        .map(|host| host.host.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut text = format!(
        "{:<width$}  runs  success  start p50/p95 ms  run p50/p95 ms  failures\n",
        "host"
    );
    for host in hosts {
        let failures = if host.failures.is_empty() {
            "-".to_owned()
        } else {
            host.failures
                .iter()
                .map(|(category, count)| format!("{category}×{count}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        text.push_str(&format!(
            "{:<width$}  {:>4}  {:>6.1}%  {:>16}  {:>14}  {failures}\n",
            host.host,
            host.runs,
            host.success_rate() * 100.0,
            format!("{}/{}", host.start_ms.p50, host.start_ms.p95),
            format!("{}/{}", host.run_ms.p50, host.run_ms.p95),
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::category::Category;
    use crate::events::Failure;
    use crate::record::JobRecord;

    #[test]
    fn hosts_parse() {
        assert_eq!(
            "w1=tcp://10.0.0.5:2376".parse::<Host>().unwrap().kind,
            HostKind::Docker {
                docker_host: Some("tcp://10.0.0.5:2376".into())
            }
        );
        assert_eq!(
            "fake://f2?faults=run:oom:every=5"
                .parse::<Host>()
                .unwrap()
                .kind,
            HostKind::Fake {
                faults: Some("run:oom:every=5".into()),
                remote: false
            }
        );
        assert_eq!(
            "fake://f1".parse::<Host>().unwrap().kind,
            HostKind::Fake {
                faults: None,
                remote: false
            }
        );
        let remote = "fake://f3?remote&transport=copy".parse::<Host>().unwrap();
        assert_eq!(
            (remote.kind, remote.transport),
            (
                HostKind::Fake {
                    faults: None,
                    remote: true
                },
                Some(crate::transport::TransportChoice::Copy)
            )
        );
        let tunnel = "w2=tcp://127.0.0.1:2375;transport=copy"
            .parse::<Host>()
            .unwrap();
        assert_eq!(
            (tunnel.name.as_str(), tunnel.transport),
            ("w2", Some(crate::transport::TransportChoice::Copy))
        );
        assert_eq!(
            "local;transport=bind".parse::<Host>().unwrap().transport,
            Some(crate::transport::TransportChoice::Bind)
        );
        let bad = "w2=tcp://h:1;transport=rsync".parse::<Host>().unwrap_err();
        assert!(
            bad.contains("`rsync` is not a workspace transport"),
            "{bad}"
        );
        assert!("w 1=x".parse::<Host>().is_err());
        assert!("nohost".parse::<Host>().is_err());
        assert!("fake://f?color=red".parse::<Host>().is_err());
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        assert_eq!(
            percentiles((1..=20).collect()),
            Percentiles { p50: 10, p95: 19 }
        );
        assert_eq!(percentiles(vec![7]), Percentiles { p50: 7, p95: 7 });
        assert_eq!(percentiles(vec![]), Percentiles::default());
    }

    fn reports(passed: usize, failed: usize) -> Vec<ScenarioReport> {
        (0..passed + failed)
            .map(|index| {
                let outcome = if index < passed {
                    Outcome::Passed
                } else {
                    Outcome::Failed
                };
                ScenarioReport {
                    name: format!("s{}", index % 5),
                    file: "s.yaml".into(),
                    tags: Vec::new(),
                    outcome,
                    failure: (outcome == Outcome::Failed)
                        .then(|| Failure::new(Category::OomKilled, "killed")),
                    skip_reason: None,
                    earlier_attempts: Vec::new(),
                    steps: Vec::new(),
                    record: JobRecord::pending(),
                    stdout_tail: Vec::new(),
                    stderr_tail: Vec::new(),
                    duration: std::time::Duration::from_millis(10),
                }
            })
            .collect()
    }

    #[test]
    fn a_host_failing_a_fifth_of_its_runs_is_no_go_and_named() {
        let hosts = vec![
            HostSummary::from_reports("f1", &reports(10, 0)),
            HostSummary::from_reports("f2", &reports(8, 2)),
            HostSummary::from_reports("f3", &reports(10, 0)),
        ];
        let decision = decide(&Gates::default(), &hosts, None);
        assert!(!decision.go());
        assert_eq!(decision.reasons.len(), 1);
        assert!(
            decision.reasons[0].starts_with("host f2 success rate 80.0% < 95.0%"),
            "{:?}",
            decision.reasons
        );
        assert!(decide(&Gates::default(), &hosts[..1], None).go());
    }

    #[test]
    fn category_limits_and_regressions_are_gates_too() {
        let host = HostSummary::from_reports("w1", &reports(39, 1));
        let gates = Gates {
            max_failures: [("oom_killed".to_owned(), 0)].into(),
            ..Gates::default()
        };
        let decision = decide(
            &gates,
            std::slice::from_ref(&host),
            Some(&["s4".to_owned()]),
        );
        assert_eq!(decision.reasons.len(), 2, "{:?}", decision.reasons);
        assert!(decision.reasons[0].contains("1 `oom_killed` failure(s), more than 0"));
        assert!(decision.reasons[1].contains("regressed: s4"));
    }
}

/// One gate on one host: what it demands, what the host did, and whether that passed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GateCheck {
    pub host: String,
    pub gate: String,
    pub threshold: String,
    pub measured: String,
    pub passed: bool,
    /// Why the host fails this gate, as the no-go decision says it (none when it passed).
    #[serde(skip)]
    pub reason: Option<String>,
}

/// Every gate on every host, in order: what [`decide`] judges.
pub fn gate_checks(
    gates: &Gates,
    hosts: &[HostSummary],
    last_good: Option<&[String]>,
) -> Vec<GateCheck> {
    hosts
        .iter()
        .flat_map(|host| host_checks(gates, host, last_good))
        .collect()
}

/// Every gate on one host: the one place the thresholds are compared.
fn host_checks(gates: &Gates, host: &HostSummary, last_good: Option<&[String]>) -> Vec<GateCheck> {
    let mut checks = Vec::new();
    let mut check = |gate: &str, threshold: String, measured: String, failed: Option<String>| {
        checks.push(GateCheck {
            host: host.host.clone(),
            gate: gate.to_owned(),
            threshold,
            measured,
            passed: failed.is_none(),
            reason: failed,
        });
    };
    check(
        "scenarios_run",
        "≥ 1".into(),
        host.runs.to_string(),
        (host.runs == 0).then(|| format!("host {} ran no scenario", host.host)),
    );
    check(
        "min_success_rate",
        format!("≥ {:.1}%", gates.min_success_rate * 100.0),
        format!("{:.1}%", host.success_rate() * 100.0),
        (host.runs == 0 || host.success_rate() < gates.min_success_rate).then(|| {
            format!(
                "host {} success rate {:.1}% < {:.1}% ({} of {} runs failed: {})",
                host.host,
                host.success_rate() * 100.0,
                gates.min_success_rate * 100.0,
                host.runs - host.passed,
                host.runs,
                host.failures
                    .iter()
                    .map(|(category, count)| format!("{category} ×{count}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }),
    );
    check(
        "max_p95_start_ms",
        format!("≤ {} ms", gates.max_p95_start_ms),
        format!("{} ms", host.start_ms.p95),
        (host.start_ms.p95 > gates.max_p95_start_ms).then(|| {
            format!(
                "host {} p95 container start {} ms > {} ms",
                host.host, host.start_ms.p95, gates.max_p95_start_ms
            )
        }),
    );
    for (category, limit) in &gates.max_failures {
        let count = host.failures.get(category).copied().unwrap_or(0);
        check(
            &format!("max_failures.{category}"),
            format!("≤ {limit}"),
            count.to_string(),
            (count > *limit).then(|| {
                format!(
                    "host {} had {count} `{category}` failure(s), more than {limit}",
                    host.host
                )
            }),
        );
    }
    if gates.no_regression {
        let regressed: Vec<&str> = match last_good {
            Some(good) => host
                .failed_scenarios
                .iter()
                .filter(|name| good.contains(name))
                .map(String::as_str)
                .collect(),
            None => Vec::new(),
        };
        check(
            "no_regression",
            match last_good {
                Some(good) => {
                    format!("the {} scenario(s) of the last good run pass", good.len())
                }
                None => "no earlier good run to compare with".into(),
            },
            if regressed.is_empty() {
                "none regressed".into()
            } else {
                format!("regressed: {}", regressed.join(", "))
            },
            (!regressed.is_empty()).then(|| {
                format!(
                    "host {} regressed: {} passed in the last good run",
                    host.host,
                    regressed.join(", ")
                )
            }),
        );
    }
    checks
}

/// The canary's verdict as a document: the decision, every gate check, each host's
/// figures and the baseline compared against (`canary.json`).
pub fn report_json(
    decision: &Decision,
    checks: &[GateCheck],
    hosts: &[HostSummary],
    last_good: Option<&[String]>,
) -> serde_json::Value {
    serde_json::json!({
        "decision": if decision.go() { "GO" } else { "NO-GO" },
        "reasons": decision.reasons,
        "gates": checks,
        "hosts": hosts.iter().map(|host| serde_json::json!({
            "host": host.host,
            "runs": host.runs,
            "passed": host.passed,
            "successRate": host.success_rate(),
            "startMs": { "p50": host.start_ms.p50, "p95": host.start_ms.p95 },
            "runMs": { "p50": host.run_ms.p50, "p95": host.run_ms.p95 },
            "failures": host.failures,
            "failedScenarios": host.failed_scenarios,
        })).collect::<Vec<_>>(),
        "baseline": last_good.map(|good| serde_json::json!({
            "kind": "the last run of this backend in which every scenario passed (run history)",
            "scenarios": good,
        })),
    })
}

/// The canary's verdict for people (`canary.md`): decision first, then every gate.
pub fn report_markdown(
    decision: &Decision,
    checks: &[GateCheck],
    last_good: Option<&[String]>,
) -> String {
    let cell = |text: &str| text.replace('|', "\\|").replace('\n', " ");
    let mut text = if decision.go() {
        "### Canary: GO\n\nEvery host met every gate.\n\n".to_owned()
    } else {
        format!(
            "### Canary: NO-GO\n\n{}\n\n",
            decision
                .reasons
                .iter()
                .map(|reason| format!("- {}", cell(reason)))
                .collect::<Vec<_>>()
                .join("\n")
        )
    };
    text.push_str("| host | gate | threshold | measured | |\n|---|---|---|---|---|\n");
    // Failed gates first.
    for check in checks
        .iter()
        .filter(|check| !check.passed)
        .chain(checks.iter().filter(|check| check.passed))
    {
        text.push_str(&format!(
            "| {} | `{}` | {} | {} | {} |\n",
            cell(&check.host),
            check.gate,
            cell(&check.threshold),
            cell(&check.measured),
            if check.passed { "✅" } else { "❌" }
        ));
    }
    text.push_str(&match last_good {
        Some(good) => format!(
            "\nBaseline: the last all-green run in the history ({} scenario(s)).\n",
            good.len()
        ),
        None => "\nBaseline: none (no all-green run in the history, or --no-history).\n".into(),
    });
    text
}

/// The canary as JUnit (`canary-junit.xml`): one test case per gate per host, failed
/// when the gate is not met, so CI viewers show which gate stopped the rollout.
pub fn report_junit(checks: &[GateCheck]) -> quick_junit::Report {
    use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};
    let mut suite = TestSuite::new("dockproof canary");
    for check in checks {
        let status = if check.passed {
            TestCaseStatus::success()
        } else {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status.set_message(format!(
                "{} on {}: measured {}, threshold {}",
                check.gate, check.host, check.measured, check.threshold
            ));
            status.set_type("canary_gate");
            status
        };
        let mut case = TestCase::new(format!("{} / {}", check.host, check.gate), status);
        case.set_classname("dockproof.canary");
        suite.add_test_case(case);
    }
    let mut report = quick_junit::Report::new("dockproof canary");
    report.add_test_suite(suite);
    report
}

#[cfg(test)]
mod report_tests {
    use super::*;

    fn host(name: &str, runs: u64, passed: u64, failures: &[(&str, u64)]) -> HostSummary {
        HostSummary {
            host: name.into(),
            runs,
            passed,
            start_ms: Percentiles { p50: 100, p95: 200 },
            run_ms: Percentiles::default(),
            failures: failures
                .iter()
                .map(|(category, count)| ((*category).to_owned(), *count))
                .collect(),
            failed_scenarios: if passed < runs {
                vec!["job".into()]
            } else {
                Vec::new()
            },
        }
    }

    #[test]
    fn every_gate_is_checked_with_its_threshold_and_measure_and_agrees_with_decide() {
        let mut gates = Gates::default();
        gates.max_failures.insert("oom_killed".into(), 0);
        let hosts = [
            host("a", 10, 10, &[]),
            host("b", 10, 8, &[("oom_killed", 2)]),
        ];
        let good = vec!["job".to_owned()];
        let checks = gate_checks(&gates, &hosts, Some(&good));
        let decision = decide(&gates, &hosts, Some(&good));
        let failed: Vec<(&str, &str)> = checks
            .iter()
            .filter(|check| !check.passed)
            .map(|check| (check.host.as_str(), check.gate.as_str()))
            .collect();
        assert_eq!(
            failed,
            [
                ("b", "min_success_rate"),
                ("b", "max_failures.oom_killed"),
                ("b", "no_regression")
            ]
        );
        assert_eq!(decision.reasons.len(), failed.len());
        let rate = checks
            .iter()
            .find(|check| check.host == "b" && check.gate == "min_success_rate")
            .unwrap();
        assert_eq!(
            (rate.threshold.as_str(), rate.measured.as_str()),
            ("≥ 95.0%", "80.0%")
        );
        let json = report_json(&decision, &checks, &hosts, Some(&good));
        assert_eq!(json["decision"], "NO-GO");
        assert_eq!(json["baseline"]["scenarios"][0], "job");
        let markdown = report_markdown(&decision, &checks, Some(&good));
        assert!(markdown.starts_with("### Canary: NO-GO"), "{markdown}");
        assert!(
            markdown.contains("| b | `min_success_rate` | ≥ 95.0% | 80.0% | ❌ |"),
            "{markdown}"
        );
        let junit = report_junit(&checks).to_string().unwrap();
        assert_eq!(junit.matches("<failure").count(), 3, "{junit}");
    }

    #[test]
    fn a_host_that_ran_nothing_fails_its_first_gate() {
        let hosts = [host("idle", 0, 0, &[])];
        let checks = gate_checks(&Gates::default(), &hosts, None);
        assert!(!checks[0].passed && checks[0].gate == "scenarios_run");
        assert!(!decide(&Gates::default(), &hosts, None).go());
    }
}
