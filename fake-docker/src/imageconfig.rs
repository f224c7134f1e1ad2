//! An image's configuration (`config:` of a definition, or what a Dockerfile sets):
//! a leaf shared by `image` (definitions) and `dockerfile` (builds).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::health::{HealthConfig, parse_duration};

/// `config:` of an image definition, reported by `image inspect`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ImageConfig {
    pub user: String,
    pub env: Vec<String>,
    pub workdir: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub exposed_ports: Vec<String>,
    /// `VOLUME`s of the image (`Config.Volumes`).
    pub volumes: Vec<String>,
    /// `HEALTHCHECK` of the image.
    pub healthcheck: Option<RawHealthcheck>,
}

/// `config.healthcheck:` as written (durations in Go syntax: `1s`, `500ms`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawHealthcheck {
    /// `[CMD-SHELL, "text"]`, `[CMD, prog, args...]` or `[NONE]`.
    pub test: Vec<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub start_period: Option<String>,
    pub retries: Option<i64>,
}

impl RawHealthcheck {
    /// The health check as the fake runs it (durations in nanoseconds).
    pub fn compile(&self) -> Result<HealthConfig, String> {
        let duration = |text: &Option<String>| match text {
            Some(text) => parse_duration(text),
            None => Ok(0),
        };
        Ok(HealthConfig {
            test: self.test.clone(),
            interval_ns: duration(&self.interval)?,
            timeout_ns: duration(&self.timeout)?,
            start_period_ns: duration(&self.start_period)?,
            retries: self.retries.unwrap_or(0),
        })
    }
}
