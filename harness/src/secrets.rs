//! Secrets: values a scenario hands to containers (tokens, passwords) that must
//! never reach a report. A scenario declares them under `secrets:`, uses them as
//! `{{ secret.NAME }}`, and every message, log tail and job record that leaves
//! the engine has their values replaced by [`MASK`].

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::scenario::SecretSpec;

/// What a secret's value is replaced with.
pub const MASK: &str = "***";

/// Shorter values would mask ordinary text (`a`, `ok`) all over the reports.
pub const MIN_LENGTH: usize = 6;

/// A secret whose value cannot be had.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("secret `{name}`: environment variable `{variable}` is not set")]
    Unset { name: String, variable: String },
    #[error(
        "secret `{name}`: its value is shorter than {MIN_LENGTH} characters, too short to mask safely"
    )]
    TooShort { name: String },
}

/// The values of a scenario's secrets, by name.
///
/// `env` secrets come from `environment` (the dockproof process's own, in a run);
/// `generate` secrets are derived from the run id and scenario, so each run of a real
/// daemon gets a fresh token while the fake's reports stay byte-identical.
pub fn resolve(
    specs: &BTreeMap<String, SecretSpec>,
    run_id: &str,
    scenario: &str,
    environment: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, SecretError> {
    let mut values = BTreeMap::new();
    for (name, spec) in specs {
        let value = match (&spec.env, spec.generate) {
            (Some(variable), _) => environment(variable)
                .filter(|value| !value.is_empty())
                .ok_or_else(|| SecretError::Unset {
                    name: name.clone(),
                    variable: variable.clone(),
                })?,
            (None, bytes) => {
                let mut hex = String::new();
                let mut counter = 0u32;
                while hex.len() < 2 * bytes.unwrap_or(16).max(8) as usize {
                    let digest = Sha256::digest(format!(
                        "dockproof secret\0{run_id}\0{scenario}\0{name}\0{counter}"
                    ));
                    hex.push_str(&hex::encode(digest));
                    counter += 1;
                }
                hex.truncate(2 * bytes.unwrap_or(16).max(8) as usize);
                hex
            }
        };
        if value.chars().count() < MIN_LENGTH {
            return Err(SecretError::TooShort { name: name.clone() });
        }
        values.insert(name.clone(), value);
    }
    Ok(values)
}

/// Replaces secret values in text.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    /// Longest first, so a value containing another is masked whole.
    values: Vec<String>,
}

impl Masker {
    pub fn new<'a>(values: impl IntoIterator<Item = &'a String>) -> Self {
        let mut values: Vec<String> = values.into_iter().cloned().collect();
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        values.dedup();
        Masker { values }
    }

    /// Whether there is anything to mask.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every secret value replaced by [`MASK`].
    pub fn mask<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut masked = Cow::Borrowed(text);
        for value in &self.values {
            if masked.contains(value.as_str()) {
                masked = Cow::Owned(masked.replace(value.as_str(), MASK));
            }
        }
        masked
    }

    /// Mask `text` where it is.
    pub fn mask_in_place(&self, text: &mut String) {
        if let Cow::Owned(masked) = self.mask(text) {
            *text = masked;
        }
    }

    /// `bytes` (any encoding) with every secret value replaced by [`MASK`].
    pub fn mask_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let mut masked = bytes.to_vec();
        for value in &self.values {
            let needle = value.as_bytes();
            let mut out = Vec::with_capacity(masked.len());
            let mut rest = masked.as_slice();
            while let Some(at) = rest
                .windows(needle.len())
                .position(|window| window == needle)
            {
                out.extend_from_slice(&rest[..at]);
                out.extend_from_slice(MASK.as_bytes());
                rest = &rest[at + needle.len()..];
            }
            out.extend_from_slice(rest);
            masked = out;
        }
        masked
    }

    /// Mask a log file in place, a line at a time (memory bounded by the longest line).
    pub fn mask_file(&self, path: &Path) -> std::io::Result<()> {
        use std::io::{BufRead, Write};
        if self.is_empty() {
            return Ok(());
        }
        let masked_path = path.with_extension("masking");
        {
            let mut reader = std::io::BufReader::new(std::fs::File::open(path)?);
            let mut writer = std::io::BufWriter::new(std::fs::File::create(&masked_path)?);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line)? > 0 {
                writer.write_all(&self.mask_bytes(&line))?;
                line.clear();
            }
            writer.flush()?;
        }
        std::fs::rename(&masked_path, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(env: Option<&str>, generate: Option<u32>) -> SecretSpec {
        SecretSpec {
            env: env.map(str::to_owned),
            generate,
        }
    }

    #[test]
    fn env_secrets_come_from_the_environment() {
        let specs = [("token".to_owned(), spec(Some("RUNNER_TOKEN"), None))].into();
        let environment = |name: &str| (name == "RUNNER_TOKEN").then(|| "s3cr3t-value".to_owned());
        assert_eq!(
            resolve(&specs, "r1", "s", environment).unwrap()["token"],
            "s3cr3t-value"
        );
        assert_eq!(
            resolve(&specs, "r1", "s", |_| None),
            Err(SecretError::Unset {
                name: "token".into(),
                variable: "RUNNER_TOKEN".into()
            })
        );
        assert_eq!(
            resolve(&specs, "r1", "s", |_| Some("abc".into())),
            Err(SecretError::TooShort {
                name: "token".into()
            })
        );
    }

    #[test]
    fn generated_secrets_are_per_run_and_sized() {
        let specs: BTreeMap<_, _> = [
            ("a".to_owned(), spec(None, Some(20))),
            ("b".to_owned(), spec(None, None)),
        ]
        .into();
        let first = resolve(&specs, "r1", "s", |_| None).unwrap();
        assert_eq!(first["a"].len(), 40);
        assert_eq!(first["b"].len(), 32);
        assert_ne!(first["a"][..32], first["b"]);
        assert_eq!(
            resolve(&specs, "r1", "s", |_| None).unwrap(),
            first,
            "the same run gives the same values"
        );
        assert_ne!(
            resolve(&specs, "r2", "s", |_| None).unwrap()["a"],
            first["a"],
            "another run, another value"
        );
    }

    #[test]
    fn log_files_are_masked_in_place_bytes_and_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("step-0.stdout.log");
        std::fs::write(
            &path,
            b"token=s3cr3t-value\n\xff binary s3cr3t-value\nlast line without newline s3cr3t-value",
        )
        .unwrap();
        let values = ["s3cr3t-value".to_owned()];
        Masker::new(&values).mask_file(&path).unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"token=***\n\xff binary ***\nlast line without newline ***"
        );
        assert!(!dir.path().join("step-0.stdout.masking").exists());
    }

    #[test]
    fn masking_replaces_every_occurrence_longest_first() {
        let values = ["token-123".to_owned(), "token-123-extended".to_owned()];
        let masker = Masker::new(&values);
        assert_eq!(
            masker.mask("a token-123-extended b token-123 c"),
            "a *** b *** c"
        );
        assert!(matches!(masker.mask("nothing here"), Cow::Borrowed(_)));
        let mut text = "Authorization: Bearer token-123".to_owned();
        masker.mask_in_place(&mut text);
        assert_eq!(text, "Authorization: Bearer ***");
        assert!(Masker::default().is_empty());
    }
}
