//! Fault injection: `FAKE_DOCKER_FAULTS` (inline rules) and `FAKE_DOCKER_FAULTS_FILE`
//! (a YAML file) make chosen commands fail the way the real docker CLI fails.
//!
//! A rule is `COMMAND[@TARGET]:FAULT[:OPTION]...`, rules are `;`-separated, options are
//! `key=value` separated by `:` or `,`. Example: `start@dockproof/web:*:oom:every=5;
//! cp:truncate:bytes=10:first=1`. Which calls a rule hits is decided when the command is
//! dispatched, from a per-rule call counter kept in the state directory under its lock,
//! so the same sequence of commands always meets the same faults (see
//! `docs/fake-docker.md`).

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::flags::Parsed;
use crate::state::{StateDir, StateError};

/// Inline rules.
pub const FAULTS_ENV: &str = "FAKE_DOCKER_FAULTS";
/// A YAML file of rules.
pub const FAULTS_FILE_ENV: &str = "FAKE_DOCKER_FAULTS_FILE";
/// Separates the call counters of different users of one state directory (dockproof sets
/// it to the scenario name), so one scenario's calls do not advance another's counters.
pub const SCOPE_ENV: &str = "FAKE_DOCKER_FAULTS_SCOPE";
/// How `start` hands a fault that fired to the container's supervisor and program.
pub const FIRED_ENV: &str = "FAKE_DOCKER_FIRED_FAULT";
/// The state-directory document holding the call counters.
const COUNTERS: &str = "fault-counters.json";

/// A fault specification that cannot be used.
#[derive(Debug, Error, PartialEq)]
pub enum FaultSpecError {
    #[error("rule {index} `{rule}`: {reason}")]
    Rule {
        index: usize,
        rule: String,
        reason: String,
    },
    #[error("cannot read {path}: {reason}")]
    File { path: String, reason: String },
}

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Every command: `Cannot connect to the Docker daemon at ...`.
    DaemonUnreachable,
    /// `create`/`run`/`pull`: the image does not exist and cannot be pulled.
    ImageMissing,
    /// Same answers as `image-missing` (`pull access denied ...`).
    PullDenied,
    /// `build` fails at a step (`step=`, `code=`, `log=`).
    BuildFail,
    /// `start`/`run`: the host port is taken (`port is already allocated`).
    PortAllocated,
    /// `start`/`run`: the container is OOM-killed right after it starts (137, OOMKilled).
    Oom,
    /// `start`/`run`: the start takes `delay=` (default 5s) before the program runs.
    SlowStart,
    /// `start`/`run`: the program never ends and ignores SIGTERM.
    Hang,
    /// `start`/`run`: the container exits at once with `code=` (default 1), optional `log=`.
    ExitImmediately,
    /// `cp`: the copied file is cut to `bytes=` (default half), exit 0.
    Truncate,
    /// `cp`: one byte of the copied file is flipped, exit 0.
    Corrupt,
    /// `cp`: `no space left on device` part way through.
    DiskFull,
    /// `stop`/`kill`/`rm -f`: the container does not die.
    NoStop,
}

impl FaultKind {
    const NAMES: [(&'static str, FaultKind); 13] = [
        ("daemon-unreachable", FaultKind::DaemonUnreachable),
        ("image-missing", FaultKind::ImageMissing),
        ("pull-denied", FaultKind::PullDenied),
        ("build-fail", FaultKind::BuildFail),
        ("port-allocated", FaultKind::PortAllocated),
        ("oom", FaultKind::Oom),
        ("slow-start", FaultKind::SlowStart),
        ("hang", FaultKind::Hang),
        ("exit-immediately", FaultKind::ExitImmediately),
        ("truncate", FaultKind::Truncate),
        ("corrupt", FaultKind::Corrupt),
        ("disk-full", FaultKind::DiskFull),
        ("no-stop", FaultKind::NoStop),
    ];

    fn parse(name: &str) -> Option<FaultKind> {
        Self::NAMES
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, kind)| *kind)
    }

    /// The name used in rules.
    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, kind)| *kind == self)
            .map_or("?", |(name, _)| name)
    }

    /// The commands this fault means something for (`*` rules apply it to these only).
    fn commands(self) -> &'static [&'static str] {
        match self {
            FaultKind::DaemonUnreachable => &[],
            FaultKind::ImageMissing | FaultKind::PullDenied => &["create", "run", "pull"],
            FaultKind::BuildFail => &["build"],
            FaultKind::PortAllocated
            | FaultKind::Oom
            | FaultKind::SlowStart
            | FaultKind::Hang
            | FaultKind::ExitImmediately => &["run", "start"],
            FaultKind::Truncate | FaultKind::Corrupt | FaultKind::DiskFull => &["cp"],
            FaultKind::NoStop => &["stop", "kill", "rm"],
        }
    }

    fn applies_to(self, command: &str) -> bool {
        self.commands().is_empty() || self.commands().contains(&command)
    }
}

/// Which calls a rule hits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Trigger {
    Always,
    /// The first N matching calls.
    First(u64),
    /// Every Nth matching call (N, 2N, ...).
    Every(u64),
    /// Each matching call with probability `p`, drawn from `seed` and the call number.
    Probability {
        p: f64,
        seed: u64,
    },
}

impl Trigger {
    /// Whether the `call`-th (1-based) matching call is hit.
    pub fn fires(self, call: u64) -> bool {
        match self {
            Trigger::Always => true,
            Trigger::First(n) => call <= n,
            Trigger::Every(n) => n > 0 && call.is_multiple_of(n),
            Trigger::Probability { p, seed } => draw(seed, call) < p,
        }
    }
}

/// A uniform number in [0, 1) from `seed` and `call`: sha256, never the clock.
fn draw(seed: u64, call: u64) -> f64 {
    let mut hasher = Sha256::new();
    hasher.update(b"fake-docker/fault/");
    hasher.update(seed.to_le_bytes());
    hasher.update(call.to_le_bytes());
    let digest = hasher.finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// A fault with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub kind: FaultKind,
    /// `code=`: exit code (`build-fail`, `exit-immediately`).
    pub code: Option<i32>,
    /// `step=`: the failing build step (1-based).
    pub step: Option<usize>,
    /// `delay=`: how long (`slow-start`).
    pub delay: Option<Duration>,
    /// `bytes=`: what is left (`truncate`).
    pub bytes: Option<u64>,
    /// `log=`: a line the failure prints (`build-fail`, `exit-immediately`).
    pub log: Option<String>,
}

impl Fault {
    fn new(kind: FaultKind) -> Fault {
        Fault {
            kind,
            code: None,
            step: None,
            delay: None,
            bytes: None,
            log: None,
        }
    }

    /// `NAME[:key=value]...`, the form handed to the supervisor.
    pub fn encode(&self) -> String {
        let mut text = self.kind.name().to_string();
        if let Some(code) = self.code {
            text.push_str(&format!(":code={code}"));
        }
        if let Some(step) = self.step {
            text.push_str(&format!(":step={step}"));
        }
        if let Some(delay) = self.delay {
            text.push_str(&format!(":delay={}ms", delay.as_millis()));
        }
        if let Some(bytes) = self.bytes {
            text.push_str(&format!(":bytes={bytes}"));
        }
        if let Some(log) = &self.log {
            text.push_str(&format!(":log={log}"));
        }
        text
    }

    /// Reads what [`Fault::encode`] wrote (`log=` comes last and may hold anything).
    pub fn decode(text: &str) -> Option<Fault> {
        let (head, log) = match text.split_once(":log=") {
            Some((head, log)) => (head, Some(log.to_string())),
            None => (text, None),
        };
        let mut fault = parse_rule(&format!("*:{head}")).ok()?.fault;
        fault.log = log;
        Some(fault)
    }
}

/// One rule: which command (and target) gets which fault when.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// The rule as written, for messages and the counter key.
    pub text: String,
    /// A docker command (`run`, `start`, `cp`, ...) or `*`.
    pub command: String,
    /// Image reference or container name, `*` wildcards allowed.
    pub target: Option<String>,
    pub fault: Fault,
    pub trigger: Trigger,
}

impl Rule {
    /// Whether this rule is about `command` (`run` rules also cover `start`: dockproof and
    /// compose run containers as `create` + `start`).
    fn covers(&self, command: &str) -> bool {
        let named = self.command == "*"
            || self.command == command
            || (self.command == "run" && command == "start");
        named && self.fault.kind.applies_to(command)
    }
}

/// Commands a rule may name.
const COMMANDS: &[&str] = &[
    "*",
    "version",
    "info",
    "images",
    "image inspect",
    "rmi",
    "pull",
    "build",
    "create",
    "run",
    "start",
    "stop",
    "kill",
    "wait",
    "logs",
    "exec",
    "rm",
    "ps",
    "inspect",
    "cp",
    "port",
    "stats",
    "network",
    "volume",
];

fn number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("`{key}={value}`: not a number"))
}

/// `500ms`, `2s`, `1.5s`, `1m`, or plain seconds.
fn duration(value: &str) -> Result<Duration, String> {
    let bad = || format!("`delay={value}`: not a duration (like 500ms, 2s, 1m)");
    let (number, unit) = match value.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => value.split_at(at),
        None => (value, "s"),
    };
    let amount: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "ms" => amount / 1000.0,
        "s" => amount,
        "m" => amount * 60.0,
        _ => return Err(bad()),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Applies one `key=value` option to a rule under construction.
fn apply_option(
    fault: &mut Fault,
    trigger: &mut Option<Trigger>,
    seed: &mut Option<u64>,
    key: &str,
    value: &str,
) -> Result<(), String> {
    let set_trigger = |trigger: &mut Option<Trigger>, new: Trigger| {
        if trigger.is_some() {
            return Err("more than one trigger (first=, every=, p=)".to_string());
        }
        *trigger = Some(new);
        Ok(())
    };
    match key {
        "first" => set_trigger(trigger, Trigger::First(number(key, value)?))?,
        "every" => {
            let n: u64 = number(key, value)?;
            if n == 0 {
                return Err("`every=0`: must be at least 1".into());
            }
            set_trigger(trigger, Trigger::Every(n))?;
        }
        "p" => {
            let p: f64 = number(key, value)?;
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("`p={value}`: a probability is between 0 and 1"));
            }
            set_trigger(trigger, Trigger::Probability { p, seed: 0 })?;
        }
        "seed" => *seed = Some(number(key, value)?),
        "code" => fault.code = Some(number(key, value)?),
        "step" => {
            let step: usize = number(key, value)?;
            if step == 0 {
                return Err("`step=0`: steps count from 1".into());
            }
            fault.step = Some(step);
        }
        "delay" => fault.delay = Some(duration(value)?),
        "bytes" => fault.bytes = Some(number(key, value)?),
        "log" => fault.log = Some(value.to_string()),
        other => {
            return Err(format!(
                "unknown option `{other}` (known: first, every, p, seed, code, step, delay, bytes, log)"
            ));
        }
    }
    Ok(())
}

fn finish_trigger(trigger: Option<Trigger>, seed: Option<u64>) -> Result<Trigger, String> {
    match (trigger, seed) {
        (Some(Trigger::Probability { p, .. }), seed) => Ok(Trigger::Probability {
            p,
            seed: seed.unwrap_or(0),
        }),
        (_, Some(_)) => Err("`seed=` goes with `p=`".into()),
        (Some(trigger), None) => Ok(trigger),
        (None, None) => Ok(Trigger::Always),
    }
}

fn parse_head(head: &str) -> Result<(String, Option<String>), String> {
    let (command, target) = match head.split_once('@') {
        Some((command, target)) if !target.is_empty() => (command, Some(target.to_string())),
        Some(_) => return Err("`@` needs a target (image or container name)".into()),
        None => (head, None),
    };
    let command = command.trim();
    let command = command.strip_prefix("container ").unwrap_or(command);
    let command = match command {
        "image pull" => "pull",
        "image build" => "build",
        "image rm" | "image remove" => "rmi",
        "image ls" | "image list" => "images",
        other => other,
    };
    if command.is_empty() {
        return Err("no command (use `*` for every command)".into());
    }
    if !COMMANDS.contains(&command) {
        return Err(format!("unknown command `{command}`"));
    }
    Ok((command.to_string(), target))
}

fn known_faults() -> String {
    FaultKind::NAMES
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_rule(text: &str) -> Result<Rule, String> {
    // `@TARGET` may hold `:` (an image tag), so the command part ends at the first `:`
    // that follows a complete target: targets end before the fault name.
    let mut parts: Vec<&str> = text.split(':').collect();
    let fault_at = parts
        .iter()
        .enumerate()
        .skip(1)
        .find(|(_, part)| FaultKind::parse(part.trim()).is_some())
        .map(|(index, _)| index)
        .ok_or_else(|| {
            let named = parts.get(1).map_or("", |p| p.trim());
            if named.is_empty() {
                format!(
                    "no fault: write COMMAND[@TARGET]:FAULT (faults: {})",
                    known_faults()
                )
            } else {
                format!("unknown fault `{named}` (faults: {})", known_faults())
            }
        })?;
    let head = parts[..fault_at].join(":");
    let (command, target) = parse_head(&head)?;
    let kind = FaultKind::parse(parts[fault_at].trim()).unwrap_or(FaultKind::Oom);
    if command != "*"
        && !kind.applies_to(&command)
        && !(command == "run" && kind.applies_to("start"))
    {
        return Err(format!(
            "`{}` does not apply to `{command}` (it applies to: {})",
            kind.name(),
            kind.commands().join(", ")
        ));
    }
    let mut fault = Fault::new(kind);
    let mut trigger = None;
    let mut seed = None;
    for option in parts
        .drain(fault_at + 1..)
        .flat_map(|part| part.split(','))
        .map(str::trim)
        .filter(|option| !option.is_empty())
    {
        let Some((key, value)) = option.split_once('=') else {
            return Err(format!("option `{option}` is not key=value"));
        };
        apply_option(
            &mut fault,
            &mut trigger,
            &mut seed,
            key.trim(),
            value.trim(),
        )?;
    }
    Ok(Rule {
        text: text.to_string(),
        command,
        target,
        fault,
        trigger: finish_trigger(trigger, seed)?,
    })
}

/// Parses the inline syntax (`;`-separated rules; empty rules are ignored).
pub fn parse_inline(spec: &str) -> Result<Vec<Rule>, FaultSpecError> {
    spec.split(';')
        .map(str::trim)
        .filter(|rule| !rule.is_empty())
        .enumerate()
        .map(|(index, rule)| {
            parse_rule(rule).map_err(|reason| FaultSpecError::Rule {
                index: index + 1,
                rule: rule.to_string(),
                reason,
            })
        })
        .collect()
}

/// One rule of a faults file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRule {
    command: String,
    #[serde(default)]
    target: Option<String>,
    fault: String,
    #[serde(default)]
    first: Option<u64>,
    #[serde(default)]
    every: Option<u64>,
    #[serde(default)]
    p: Option<f64>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    code: Option<i32>,
    #[serde(default)]
    step: Option<usize>,
    #[serde(default)]
    delay: Option<String>,
    #[serde(default)]
    bytes: Option<u64>,
    #[serde(default)]
    log: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsFile {
    faults: Vec<FileRule>,
}

/// Parses a faults file: `faults: [{ command, target, fault, first|every|p, seed, code,
/// step, delay, bytes, log }]`. Values may hold any character (unlike inline rules).
pub fn parse_file(text: &str, path: &str) -> Result<Vec<Rule>, FaultSpecError> {
    let file: FaultsFile = crate::yaml::from_str(text).map_err(|error| FaultSpecError::File {
        path: path.to_string(),
        reason: error.to_string(),
    })?;
    file.faults
        .into_iter()
        .enumerate()
        .map(|(index, entry)| {
            let head = match &entry.target {
                Some(target) => format!("{}@{target}", entry.command),
                None => entry.command.clone(),
            };
            let text = format!("{head}:{}", entry.fault);
            let error = |reason: String| FaultSpecError::Rule {
                index: index + 1,
                rule: format!("{path}: {text}"),
                reason,
            };
            let (command, target) = parse_head(&head).map_err(error)?;
            let kind = FaultKind::parse(&entry.fault).ok_or_else(|| {
                error(format!(
                    "unknown fault `{}` (faults: {})",
                    entry.fault,
                    known_faults()
                ))
            })?;
            let mut fault = Fault::new(kind);
            let mut trigger = None;
            let mut seed = None;
            let mut options: Vec<(&str, String)> = Vec::new();
            if let Some(n) = entry.first {
                options.push(("first", n.to_string()));
            }
            if let Some(n) = entry.every {
                options.push(("every", n.to_string()));
            }
            if let Some(p) = entry.p {
                options.push(("p", p.to_string()));
            }
            if let Some(n) = entry.seed {
                options.push(("seed", n.to_string()));
            }
            if let Some(n) = entry.code {
                options.push(("code", n.to_string()));
            }
            if let Some(n) = entry.step {
                options.push(("step", n.to_string()));
            }
            if let Some(delay) = &entry.delay {
                options.push(("delay", delay.clone()));
            }
            if let Some(n) = entry.bytes {
                options.push(("bytes", n.to_string()));
            }
            for (key, value) in &options {
                apply_option(&mut fault, &mut trigger, &mut seed, key, value).map_err(error)?;
            }
            fault.log = entry.log.clone();
            Ok(Rule {
                text: text.clone(),
                command,
                target,
                fault,
                trigger: finish_trigger(trigger, seed).map_err(error)?,
            })
        })
        .collect()
}

/// The rules of `FAKE_DOCKER_FAULTS_FILE` then `FAKE_DOCKER_FAULTS`.
pub fn from_env() -> Result<Vec<Rule>, FaultSpecError> {
    let mut rules = Vec::new();
    if let Some(path) = std::env::var_os(FAULTS_FILE_ENV).filter(|v| !v.is_empty()) {
        let shown = path.to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).map_err(|error| FaultSpecError::File {
            path: shown.clone(),
            reason: error.to_string(),
        })?;
        rules.extend(parse_file(&text, &shown)?);
    }
    if let Ok(spec) = std::env::var(FAULTS_ENV) {
        rules.extend(parse_inline(&spec)?);
    }
    Ok(rules)
}

/// `*` matches any run of characters; everything else literally.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let pieces: Vec<&str> = pattern.split('*').collect();
    if pieces.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (index, piece) in pieces.iter().enumerate() {
        if index == 0 {
            let Some(after) = rest.strip_prefix(piece) else {
                return false;
            };
            rest = after;
        } else if index == pieces.len() - 1 {
            return rest.ends_with(piece);
        } else {
            match rest.find(piece) {
                Some(at) => rest = &rest[at + piece.len()..],
                None => return false,
            }
        }
    }
    true
}

/// The counter key of rule `index`: scope, position and text, hashed.
fn counter_key(scope: &str, index: usize, rule: &Rule) -> String {
    let digest = Sha256::digest(format!("{scope}\0{index}\0{}", rule.text).as_bytes());
    hex::encode(&digest[..8])
}

/// Counts one call for each rule in `hits` (indices into `rules`) and returns the faults
/// that fire. Takes the state lock: concurrent invocations count every call exactly once.
pub fn count_and_decide(
    state: &StateDir,
    scope: &str,
    rules: &[Rule],
    hits: &[usize],
) -> Result<Vec<Fault>, StateError> {
    if hits.is_empty() {
        return Ok(Vec::new());
    }
    let _lock = state.lock()?;
    let mut counters: BTreeMap<String, u64> = state.read_doc(COUNTERS)?;
    let mut fired = Vec::new();
    for &index in hits {
        let rule = &rules[index];
        let count = counters.entry(counter_key(scope, index, rule)).or_insert(0);
        *count += 1;
        if rule.trigger.fires(*count) {
            fired.push(rule.fault.clone());
        }
    }
    state.write_doc(COUNTERS, &counters)?;
    Ok(fired)
}

/// The faults that fired for this invocation (set once, at dispatch).
static FIRED: OnceLock<Vec<Fault>> = OnceLock::new();

/// The fired fault of `kind`, if any.
pub fn fired(kind: FaultKind) -> Option<&'static Fault> {
    FIRED.get()?.iter().find(|fault| fault.kind == kind)
}

/// The first fired fault among `kinds`.
pub fn fired_any(kinds: &[FaultKind]) -> Option<&'static Fault> {
    FIRED
        .get()?
        .iter()
        .find(|fault| kinds.contains(&fault.kind))
}

/// Environment for a container's supervisor: the container-runtime fault that fired.
pub fn supervisor_env() -> Vec<(String, String)> {
    match fired_any(&[
        FaultKind::Oom,
        FaultKind::SlowStart,
        FaultKind::Hang,
        FaultKind::ExitImmediately,
    ]) {
        Some(fault) => vec![(FIRED_ENV.to_string(), fault.encode())],
        None => vec![(FIRED_ENV.to_string(), String::new())],
    }
}

/// The runtime fault a supervisor or program was handed.
pub fn handed_down() -> Option<Fault> {
    std::env::var(FIRED_ENV)
        .ok()
        .filter(|text| !text.is_empty())
        .and_then(|text| Fault::decode(&text))
}

/// What dispatch should do after consulting the rules.
pub enum Decision {
    /// Run the command (maybe with faults recorded for deeper hooks).
    Continue,
    /// The command is answered (a fault, or an invalid spec); exit with this code.
    Exit(i32),
}

/// The names a command acts on, for `@TARGET` matching: image references, container
/// names, and the images of named containers.
fn subjects(command: &str, parsed: &Parsed, state: Option<&StateDir>) -> Vec<String> {
    let mut subjects: Vec<String> = Vec::new();
    match command {
        "create" | "run" => {
            if let Some(image) = parsed.positionals.first() {
                subjects.push(image.clone());
                subjects.push(crate::image::normalize_reference(image));
            }
            subjects.extend(parsed.last("name").map(str::to_string));
        }
        "build" => subjects.extend(parsed.all("tag").iter().map(|t| t.to_string())),
        "pull" | "rmi" | "image inspect" => {
            for name in &parsed.positionals {
                subjects.push(name.clone());
                subjects.push(crate::image::normalize_reference(name));
            }
        }
        _ => {
            for positional in &parsed.positionals {
                let name = if command == "cp" {
                    match positional.split_once(':') {
                        Some((name, _)) if !positional.starts_with(['/', '.']) => name,
                        _ => continue,
                    }
                } else {
                    positional.as_str()
                };
                subjects.push(name.to_string());
                if let Some(state) = state
                    && let Ok(Some(container)) = crate::state::find_container(state, name)
                {
                    subjects.push(container.name.clone());
                    subjects.push(container.image_name.clone());
                    subjects.push(crate::image::normalize_reference(&container.image_name));
                }
            }
        }
    }
    subjects
}

/// The command name rules use for a registry name (`container start` → `start`).
pub fn canonical(name: &str) -> &str {
    let name = name.strip_prefix("container ").unwrap_or(name);
    match name {
        "image pull" => "pull",
        "image build" => "build",
        "image rm" | "image remove" => "rmi",
        "image ls" | "image list" => "images",
        other => other.split(' ').next().unwrap_or(other),
    }
}

/// Consults the fault rules for one command; answers it when a fault says so.
pub fn dispatch(name: &str, parsed: &Parsed) -> Decision {
    // Like the CLI: a `DOCKER_HOST` (or `-H`) socket that is not there, a path that is
    // no socket, or a TCP address where nothing listens means no daemon.
    if !daemon_reachable(&daemon_address()) {
        return Decision::Exit(daemon_unreachable(canonical(name), parsed));
    }
    if let Some(code) = api_version_too_new(canonical(name)) {
        return Decision::Exit(code);
    }
    let rules = match from_env() {
        Ok(rules) => rules,
        Err(error) => {
            crate::console::err(&format!(
                "fake-docker: invalid fault specification: {error}\n"
            ));
            return Decision::Exit(125);
        }
    };
    let command = canonical(name);
    let candidates: Vec<usize> = rules
        .iter()
        .enumerate()
        .filter(|(_, rule)| rule.covers(command))
        .map(|(index, _)| index)
        .collect();
    if candidates.is_empty() {
        return Decision::Continue;
    }
    let state = StateDir::from_env().ok();
    let names = subjects(command, parsed, state.as_ref());
    let hits: Vec<usize> = candidates
        .into_iter()
        .filter(|&index| match &rules[index].target {
            None => true,
            Some(pattern) => names.iter().any(|name| glob_matches(pattern, name)),
        })
        .collect();
    let Some(state) = state else {
        return Decision::Continue;
    };
    let scope = std::env::var(SCOPE_ENV).unwrap_or_default();
    let fired = match count_and_decide(&state, &scope, &rules, &hits) {
        Ok(fired) => fired,
        Err(error) => {
            crate::console::err(&format!("fake-docker: {error}\n"));
            return Decision::Exit(125);
        }
    };
    if let Some(fault) = fired
        .iter()
        .find(|f| f.kind == FaultKind::DaemonUnreachable)
    {
        let _ = fault;
        return Decision::Exit(daemon_unreachable(command, parsed));
    }
    if fired
        .iter()
        .any(|f| matches!(f.kind, FaultKind::ImageMissing | FaultKind::PullDenied))
    {
        return Decision::Exit(image_missing(command, parsed));
    }
    let _ = FIRED.set(fired);
    Decision::Continue
}

/// `-H`/`--host` given before the command (it wins over `DOCKER_HOST`, as in the CLI).
static HOST_FLAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Records the global `-H`/`--host` value.
pub fn set_host_flag(host: &str) {
    let _ = HOST_FLAG.set(host.to_string());
}

/// Where the CLI would have connected.
fn daemon_address() -> String {
    if let Some(host) = HOST_FLAG.get() {
        return host.clone();
    }
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string())
}

/// Whether a daemon could answer at `address`. The default socket is the fake itself;
/// a `unix://` path must be a socket; a `tcp://` address must accept a connection
/// (measured: nothing listening, and a regular file, give the CLI's no-daemon answer).
fn daemon_reachable(address: &str) -> bool {
    if address == "unix:///var/run/docker.sock" {
        return true;
    }
    if let Some(path) = address.strip_prefix("unix://") {
        use std::os::unix::fs::FileTypeExt;
        return std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket());
    }
    if let Some(target) = address.strip_prefix("tcp://") {
        use std::net::ToSocketAddrs;
        let target = target.trim_end_matches('/');
        let with_port = if target
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            target.to_string()
        } else {
            format!("{target}:2375")
        };
        return with_port.to_socket_addrs().is_ok_and(|mut addrs| {
            addrs.any(|addr| {
                std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(500))
                    .is_ok()
            })
        });
    }
    true
}

/// `DOCKER_API_VERSION` above the daemon's (1.41): the daemon's refusal (measured with
/// 1.99 on `ps`: exit 1). `None` when it is fine.
fn api_version_too_new(command: &str) -> Option<i32> {
    let requested = std::env::var("DOCKER_API_VERSION").ok()?;
    let version = |text: &str| -> Option<(u32, u32)> {
        let (major, minor) = text.trim().split_once('.')?;
        Some((major.parse().ok()?, minor.parse().ok()?))
    };
    if version(&requested)? <= version(crate::API_VERSION)? {
        return None;
    }
    let message = format!(
        "Error response from daemon: client version {requested} is too new. Maximum supported API version is {}",
        crate::API_VERSION
    );
    if command == "run" {
        crate::console::err(&format!(
            "docker: {message}\n\nRun 'docker run --help' for more information\n"
        ));
        return Some(125);
    }
    crate::console::err(&format!("{message}\n"));
    Some(1)
}

/// The docker CLI's answers with no daemon, as measured (docs/fake-docker.md).
fn daemon_unreachable(command: &str, parsed: &Parsed) -> i32 {
    use crate::console::{err, out};
    let message = format!(
        "Cannot connect to the Docker daemon at {}. Is the docker daemon running?",
        daemon_address()
    );
    match command {
        "run" => {
            err(&format!(
                "docker: {message}\n\nRun 'docker run --help' for more information\n"
            ));
            return 125;
        }
        "inspect" | "image inspect" => out("[]\n"),
        "pull" if !parsed.positionals.first().is_some_and(|p| p.contains(':')) => {
            out("Using default tag: latest\n")
        }
        "version" if parsed.last("format").is_some() => out("\n"),
        _ => {}
    }
    err(&format!("{message}\n"));
    if command == "start" {
        err(&format!(
            "Error: failed to start containers: {}\n",
            parsed.positionals.join(", ")
        ));
    }
    1
}

/// An image that is not there and cannot be pulled.
fn image_missing(command: &str, parsed: &Parsed) -> i32 {
    use crate::console::{daemon_error, err};
    let name = parsed.positionals.first().cloned().unwrap_or_default();
    let reference = crate::image::normalize_reference(&name);
    let denied = format!(
        "pull access denied for {}, repository does not exist or may require 'docker login': denied: requested access to the resource is denied",
        crate::image::repository_of(&reference)
    );
    match command {
        "pull" => {
            if !name.contains(':') {
                crate::console::out("Using default tag: latest\n");
            }
            daemon_error(&denied);
            1
        }
        _ if parsed.last("pull") == Some("never") => {
            if command == "run" {
                err(&format!(
                    "docker: Error response from daemon: No such image: {reference}\n\nRun 'docker run --help' for more information\n"
                ));
                125
            } else {
                daemon_error(&format!("No such image: {reference}"));
                1
            }
        }
        _ => {
            err(&format!("Unable to find image '{reference}' locally\n"));
            if command == "run" {
                err(&format!(
                    "docker: Error response from daemon: {denied}\n\nRun 'docker run --help' for more information\n"
                ));
                125
            } else {
                daemon_error(&denied);
                1
            }
        }
    }
}

/// `build-fail` as the build's failure: at `step=` (default: the last `RUN`, else the
/// last step), exit `code=` (default 1), `log=` on the step's stderr.
pub fn build_failure(keywords: &[String]) -> Option<crate::image::BuildFailure> {
    let fault = fired(FaultKind::BuildFail)?;
    let default_step = keywords
        .iter()
        .rposition(|keyword| keyword == "RUN")
        .unwrap_or(keywords.len().saturating_sub(1))
        + 1;
    Some(crate::image::BuildFailure {
        step: fault
            .step
            .unwrap_or(default_step)
            .min(keywords.len().max(1)),
        instruction: None,
        exit_code: fault.code.unwrap_or(1),
        stdout: Vec::new(),
        stderr: fault.log.iter().cloned().collect(),
    })
}

/// The `stop`/`kill`/`rm` answer for a container that does not die (moby's `Kill`).
pub const NO_EXIT_EVENT: &str = "tried to kill container, but did not receive an exit event";

/// What a `cp` fault does to a copied file at `path`: truncate or corrupt it.
pub fn damage_copy(path: &std::path::Path) -> std::io::Result<()> {
    if let Some(fault) = fired(FaultKind::Truncate) {
        let length = std::fs::metadata(path)?.len();
        let keep = fault.bytes.unwrap_or(length / 2).min(length);
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)?
            .set_len(keep)?;
    }
    if fired(FaultKind::Corrupt).is_some() {
        let mut bytes = std::fs::read(path)?;
        match bytes.first_mut() {
            Some(first) => *first ^= 0xff,
            None => bytes.push(0),
        }
        std::fs::write(path, bytes)?;
    }
    Ok(())
}

/// Every regular file under `path` (itself when it is a file), sorted.
pub fn files_under(path: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    if path.is_dir() {
        if let Ok(entries) = std::fs::read_dir(path) {
            let mut children: Vec<_> = entries.flatten().map(|entry| entry.path()).collect();
            children.sort();
            for child in children {
                files.extend(files_under(&child));
            }
        }
    } else if path.is_file() {
        files.push(path.to_path_buf());
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(spec: &str) -> Rule {
        let mut rules = parse_inline(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(rules.len(), 1, "{spec}");
        rules.remove(0)
    }

    fn error(spec: &str) -> String {
        match parse_inline(spec) {
            Ok(rules) => panic!("{spec} parsed: {rules:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn canary_syntax_parses() {
        let rule = one("run:oom:every=5");
        assert_eq!(rule.command, "run");
        assert_eq!(rule.target, None);
        assert_eq!(rule.fault.kind, FaultKind::Oom);
        assert_eq!(rule.trigger, Trigger::Every(5));
    }

    #[test]
    fn targets_may_hold_tags_and_wildcards() {
        let rule = one("start@dockproof/web:1:port-allocated:first=2");
        assert_eq!(rule.command, "start");
        assert_eq!(rule.target.as_deref(), Some("dockproof/web:1"));
        assert_eq!(rule.trigger, Trigger::First(2));
        let rule = one("cp@job-*:truncate:bytes=10");
        assert_eq!(rule.target.as_deref(), Some("job-*"));
        assert_eq!(rule.fault.bytes, Some(10));
    }

    #[test]
    fn options_and_probability() {
        let rule = one("build:build-fail:step=3:code=2:log=make failed");
        assert_eq!(rule.fault.step, Some(3));
        assert_eq!(rule.fault.code, Some(2));
        assert_eq!(rule.fault.log.as_deref(), Some("make failed"));
        assert_eq!(rule.trigger, Trigger::Always);
        let rule = one("run:exit-immediately:code=3:p=0.2,seed=7");
        assert_eq!(rule.trigger, Trigger::Probability { p: 0.2, seed: 7 });
        let rule = one("container start:slow-start:delay=250ms");
        assert_eq!(rule.command, "start");
        assert_eq!(rule.fault.delay, Some(Duration::from_millis(250)));
        assert_eq!(parse_inline(" ; ;").map(|r| r.len()), Ok(0));
        assert_eq!(
            parse_inline("*:daemon-unreachable;cp:disk-full").map(|r| r.len()),
            Ok(2)
        );
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        assert!(
            error("run:zap").contains("unknown fault `zap`"),
            "{}",
            error("run:zap")
        );
        assert!(error("run").contains("no fault"));
        assert!(error("frobnicate:oom").contains("unknown command `frobnicate`"));
        assert!(error("cp:oom").contains("`oom` does not apply to `cp`"));
        assert!(error("run:oom:every=0").contains("at least 1"));
        assert!(error("run:oom:p=2").contains("between 0 and 1"));
        assert!(error("run:oom:first=1:every=2").contains("more than one trigger"));
        assert!(error("run:oom:seed=3").contains("goes with `p=`"));
        assert!(error("run:oom:colour=red").contains("unknown option `colour`"));
        assert!(error("run:oom:every").contains("not key=value"));
        assert!(error("run:oom;start:nope").starts_with("rule 2 `start:nope`"));
    }

    #[test]
    fn triggers_count_calls() {
        let first: Vec<bool> = (1..=4).map(|call| Trigger::First(2).fires(call)).collect();
        assert_eq!(first, [true, true, false, false]);
        let every: Vec<u64> = (1..=12)
            .filter(|&call| Trigger::Every(5).fires(call))
            .collect();
        assert_eq!(every, [5, 10]);
        assert!((1..=3).all(|call| Trigger::Always.fires(call)));
    }

    #[test]
    fn probability_is_deterministic_and_roughly_right() {
        let trigger = Trigger::Probability { p: 0.2, seed: 7 };
        let run =
            |trigger: Trigger| -> Vec<u64> { (1..=1000).filter(|&c| trigger.fires(c)).collect() };
        let hits = run(trigger);
        assert_eq!(hits, run(trigger), "same seed, same calls");
        assert!(
            (150..=250).contains(&hits.len()),
            "{} hits of 1000",
            hits.len()
        );
        assert_ne!(
            hits,
            run(Trigger::Probability { p: 0.2, seed: 8 }),
            "another seed differs"
        );
        assert!(run(Trigger::Probability { p: 0.0, seed: 7 }).is_empty());
        assert_eq!(run(Trigger::Probability { p: 1.0, seed: 7 }).len(), 1000);
    }

    #[test]
    fn counters_live_in_the_state_directory() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let state = StateDir::open(dir.path().to_path_buf()).unwrap_or_else(|e| panic!("{e}"));
        let rules =
            parse_inline("start:oom:every=2;start:hang:first=1").unwrap_or_else(|e| panic!("{e}"));
        let kinds = |scope: &str| -> Vec<Vec<FaultKind>> {
            (0..4)
                .map(|_| {
                    count_and_decide(&state, scope, &rules, &[0, 1])
                        .unwrap_or_else(|e| panic!("{e}"))
                        .iter()
                        .map(|f| f.kind)
                        .collect()
                })
                .collect()
        };
        let expected = vec![
            vec![FaultKind::Hang],
            vec![FaultKind::Oom],
            vec![],
            vec![FaultKind::Oom],
        ];
        assert_eq!(kinds("a"), expected);
        // Another scope starts from zero; the first keeps counting.
        assert_eq!(kinds("b"), expected);
        assert_eq!(kinds("a")[0], Vec::<FaultKind>::new());
    }

    #[test]
    fn globs() {
        assert!(glob_matches("dockproof/*", "dockproof/web:1"));
        assert!(glob_matches("*web*", "dockproof/web:1"));
        assert!(glob_matches("a*c", "abc"));
        assert!(!glob_matches("a*c", "abd"));
        assert!(glob_matches("exact", "exact"));
        assert!(!glob_matches("exact", "exactly"));
    }

    #[test]
    fn faults_round_trip_to_the_supervisor() {
        let rule = one("run:exit-immediately:code=3:log=bye");
        assert_eq!(
            Fault::decode(&rule.fault.encode()),
            Some(rule.fault.clone())
        );
        let rule = one("run:slow-start:delay=1.5s");
        assert_eq!(Fault::decode(&rule.fault.encode()), Some(rule.fault));
        let mut fault = Fault::new(FaultKind::ExitImmediately);
        fault.log = Some("a: b, c; d".into());
        assert_eq!(Fault::decode(&fault.encode()), Some(fault));
    }

    #[test]
    fn files_parse_like_inline_rules() {
        let text = "faults:\n  - { command: run, target: \"dockproof/*\", fault: oom, every: 5 }\n  - { command: build, fault: build-fail, step: 2, code: 2, log: \"make: *** [all] Error 2\" }\n";
        let rules = parse_file(text, "f.yaml").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rules[0].trigger, Trigger::Every(5));
        assert_eq!(rules[0].target.as_deref(), Some("dockproof/*"));
        assert_eq!(
            rules[1].fault.log.as_deref(),
            Some("make: *** [all] Error 2")
        );
        let bad = parse_file("faults:\n  - { command: run, fault: zap }\n", "f.yaml");
        assert!(bad.is_err_and(|e| e.to_string().contains("unknown fault `zap`")));
        assert!(parse_file("faults: 3", "f.yaml").is_err());
    }
}
