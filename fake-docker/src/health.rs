//! Health checks: configuration (`--health-*`, image `healthcheck:`), Go duration
//! parsing, and the state machine docker runs (`starting` → `healthy`/`unhealthy`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Docker's defaults when a field is zero.
pub const DEFAULT_INTERVAL_NS: i64 = 30_000_000_000;
pub const DEFAULT_TIMEOUT_NS: i64 = 30_000_000_000;
pub const DEFAULT_RETRIES: i64 = 3;
/// How many probe results `State.Health.Log` keeps.
pub const LOG_LIMIT: usize = 5;

/// `Config.Healthcheck`; zero fields mean "docker's default" and are omitted in JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthConfig {
    /// `["CMD-SHELL", "text"]`, `["CMD", prog, args...]` or `["NONE"]`.
    pub test: Vec<String>,
    pub interval_ns: i64,
    pub timeout_ns: i64,
    pub start_period_ns: i64,
    pub retries: i64,
}

impl HealthConfig {
    /// Whether this disables health checking.
    pub fn is_none(&self) -> bool {
        self.test.first().is_none_or(|t| t == "NONE")
    }

    /// The `Config.Healthcheck` object.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("Test".into(), json!(self.test));
        for (key, value) in [
            ("Interval", self.interval_ns),
            ("Timeout", self.timeout_ns),
            ("StartPeriod", self.start_period_ns),
            ("Retries", self.retries),
        ] {
            if value != 0 {
                map.insert(key.into(), json!(value));
            }
        }
        Value::Object(map)
    }

    pub fn interval(&self) -> std::time::Duration {
        nanos(self.interval_ns, DEFAULT_INTERVAL_NS)
    }

    pub fn timeout(&self) -> std::time::Duration {
        nanos(self.timeout_ns, DEFAULT_TIMEOUT_NS)
    }

    pub fn start_period(&self) -> std::time::Duration {
        nanos(self.start_period_ns, 0)
    }

    pub fn retries(&self) -> i64 {
        if self.retries > 0 {
            self.retries
        } else {
            DEFAULT_RETRIES
        }
    }

    /// The image program and arguments the test runs: `CMD-SHELL` text is split on
    /// whitespace (the fake has no shell), `CMD` is taken as is.
    pub fn command(&self) -> Vec<String> {
        match self.test.split_first() {
            Some((kind, rest)) if kind == "CMD-SHELL" => rest
                .iter()
                .flat_map(|text| text.split_whitespace().map(str::to_string))
                .collect(),
            Some((kind, rest)) if kind == "CMD" => rest.to_vec(),
            _ => Vec::new(),
        }
    }
}

fn nanos(value: i64, default: i64) -> std::time::Duration {
    let value = if value > 0 { value } else { default };
    std::time::Duration::from_nanos(value.max(0) as u64)
}

/// One probe result in `State.Health.Log`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub exit_code: i64,
    pub output: String,
}

/// `State.Health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthState {
    pub status: String,
    pub failing_streak: i64,
    pub log: Vec<Probe>,
}

impl HealthState {
    pub fn starting() -> HealthState {
        HealthState {
            status: "starting".into(),
            failing_streak: 0,
            log: Vec::new(),
        }
    }

    /// Applies a probe result the way the daemon does: success → healthy, streak 0;
    /// a failure inside the start period is logged but not counted; otherwise the
    /// streak grows and reaching `retries` makes the container unhealthy.
    pub fn record(&mut self, probe: Probe, in_start_period: bool, retries: i64) {
        if probe.exit_code == 0 {
            self.status = "healthy".into();
            self.failing_streak = 0;
        } else if !in_start_period || self.status != "starting" {
            self.failing_streak += 1;
            if self.failing_streak >= retries {
                self.status = "unhealthy".into();
            }
        }
        self.log.push(probe);
        if self.log.len() > LOG_LIMIT {
            let excess = self.log.len() - LOG_LIMIT;
            self.log.drain(..excess);
        }
    }

    pub fn to_json(&self) -> Value {
        let log: Vec<Value> = self
            .log
            .iter()
            .map(|p| {
                json!({
                    "Start": crate::FIXED_TIME,
                    "End": crate::FIXED_TIME,
                    "ExitCode": p.exit_code,
                    "Output": p.output,
                })
            })
            .collect();
        json!({"Status": self.status, "FailingStreak": self.failing_streak, "Log": log})
    }
}

/// Parses a Go duration (`1s`, `500ms`, `1m30s`, `0`) into nanoseconds; the error is
/// Go's text (`time: invalid duration "x"`).
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration \"{text}\"");
    if text == "0" {
        return Ok(0);
    }
    let mut rest = text;
    let mut total: f64 = 0.0;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("time: missing unit in duration \"{text}\""))?;
        if number_len == 0 {
            return Err(invalid());
        }
        let number: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            unit => {
                return Err(format!(
                    "time: unknown unit \"{unit}\" in duration \"{text}\""
                ));
            }
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    Ok(total as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_like_go() {
        assert_eq!(parse_duration("1s"), Ok(1_000_000_000));
        assert_eq!(parse_duration("500ms"), Ok(500_000_000));
        assert_eq!(parse_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_duration("0s"), Ok(0));
        assert_eq!(
            parse_duration("bogus"),
            Err("time: invalid duration \"bogus\"".into())
        );
    }

    #[test]
    fn state_machine_like_the_daemon() {
        let fail = || Probe {
            exit_code: 1,
            output: String::new(),
        };
        let ok = Probe {
            exit_code: 0,
            output: "fine\n".into(),
        };
        let mut health = HealthState::starting();
        health.record(fail(), true, 3);
        assert_eq!(
            (health.status.as_str(), health.failing_streak),
            ("starting", 0)
        );
        health.record(ok, true, 3);
        assert_eq!(
            (health.status.as_str(), health.failing_streak),
            ("healthy", 0)
        );
        health.record(fail(), false, 3);
        health.record(fail(), false, 3);
        assert_eq!(
            (health.status.as_str(), health.failing_streak),
            ("healthy", 2)
        );
        health.record(fail(), false, 3);
        assert_eq!(health.status, "unhealthy");
        for _ in 0..5 {
            health.record(fail(), false, 3);
        }
        assert_eq!(health.log.len(), LOG_LIMIT);
        assert_eq!(health.failing_streak, 8);
    }

    #[test]
    fn config_json_omits_zero_fields() {
        let config = HealthConfig {
            test: vec!["CMD-SHELL".into(), "echo bad; exit 1".into()],
            interval_ns: 1_000_000_000,
            retries: 2,
            ..HealthConfig::default()
        };
        assert_eq!(
            crate::gojson::compact(&config.to_json()),
            r#"{"Test":["CMD-SHELL","echo bad; exit 1"],"Interval":1000000000,"Retries":2}"#
        );
    }
}
