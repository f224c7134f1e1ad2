//! `capture:`: values a step hands to the steps after it (`{{ steps.STEP.KEY }}`), read
//! from what the step left: its stdout or stderr, a workspace file, the last HTTP answer's
//! JSON, the inspect document. A value derived from a secret (read from text that held one,
//! or captured by a step whose texts used a secret or such a value) is masked like one.

use super::ScenarioRun;
use crate::category::Category;
use crate::check::{FileObservation, Finding};
use crate::scenario::yaml::escape_segment;
use crate::scenario::{CaptureSource, CaptureText, Step};
use crate::secrets::{self, Masker};

/// Workspace files a step's `file_sha256:` captures name → what is there, or why it cannot be read.
pub(super) type FileHashes = std::collections::BTreeMap<String, Result<FileObservation, String>>;

/// The most a captured value may hold.
pub(super) const MAX_CAPTURE_BYTES: usize = 64 * 1024;

/// What the latest step left for captures to read.
#[derive(Debug, Default)]
pub(super) struct StepOutput {
    /// A run's or exec's stdout and stderr (the tails kept in memory).
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    /// The last HTTP answer's body.
    pub http_body: Option<String>,
    /// The inspect document.
    pub inspect: Option<serde_json::Value>,
}

/// The value `text` gives a capture: all of it trimmed, or the first group (else the whole
/// match) of its regular expression.
pub(super) fn from_text(label: &str, spec: &CaptureText, text: &str) -> Result<String, String> {
    let Some(pattern) = &spec.matches else {
        return Ok(text.trim().to_owned());
    };
    let regex = regex::Regex::new(pattern).map_err(|error| format!("invalid pattern: {error}"))?;
    let captures = regex
        .captures(text)
        .ok_or_else(|| format!("{label} does not match /{pattern}/"))?;
    let found = captures.get(1).or_else(|| captures.get(0));
    Ok(found.map_or("", |found| found.as_str()).to_owned())
}

/// The value at `pointer` of `document`: a string as it is, anything else as JSON text.
pub(super) fn from_json(
    label: &str,
    pointer: &str,
    document: &serde_json::Value,
) -> Result<String, String> {
    match document.pointer(pointer) {
        Some(serde_json::Value::String(text)) => Ok(text.clone()),
        Some(other) => Ok(other.to_string()),
        None => Err(format!("{label} has nothing at `{pointer}`")),
    }
}

impl ScenarioRun<'_> {
    /// Read each value `step` captures into the scenario's variables; a value that cannot be
    /// read is an `assertion_failed` at its source.
    /// `hashed` holds the files its `file_sha256:` sources name ([`ScenarioRun::capture_file_hashes`]).
    pub(super) fn capture(
        &mut self,
        pointer: &str,
        step: &Step,
        hashed: &FileHashes,
    ) -> Result<(), Vec<Finding>> {
        let Some(name) = step.name.clone() else {
            return Ok(());
        };
        // Captured by a step whose texts used a secret, or a value derived from one.
        let step_used_secret = step.references.iter().any(|reference| {
            reference.starts_with("secret.")
                || reference
                    .strip_prefix("steps.")
                    .is_some_and(|capture| self.masked_captures.contains(capture))
        });
        let mut findings = Vec::new();
        for (key, spec) in &step.capture {
            let Some(source) = spec.sources().first().copied() else {
                continue;
            };
            let at = format!(
                "{pointer}/capture/{}/{}",
                escape_segment(key),
                source.as_str()
            );
            let read: Result<(String, String), String> = match source {
                CaptureSource::Stdout(text) => self
                    .output
                    .stdout
                    .clone()
                    .ok_or_else(|| "the step left no stdout".to_owned())
                    .and_then(|out| Ok((from_text("stdout", text, &out)?, out))),
                CaptureSource::Stderr(text) => self
                    .output
                    .stderr
                    .clone()
                    .ok_or_else(|| "the step left no stderr".to_owned())
                    .and_then(|err| Ok((from_text("stderr", text, &err)?, err))),
                CaptureSource::File(path) => self
                    .workspace()
                    .read_file(path, MAX_CAPTURE_BYTES as u64)
                    .map_err(|error| error.to_string())
                    .and_then(|bytes| {
                        bytes.ok_or_else(|| {
                            format!(
                                "`{path}` is no regular file of at most 64 KiB in the workspace"
                            )
                        })
                    })
                    .and_then(|bytes| {
                        String::from_utf8(bytes).map_err(|_| format!("`{path}` is not UTF-8 text"))
                    })
                    .map(|text| (text.trim().to_owned(), text)),
                CaptureSource::FileSha256(path) => match hashed.get(path) {
                    Some(Ok(observed)) if observed.exists => {
                        Ok((observed.sha256.clone(), String::new()))
                    }
                    Some(Ok(_)) => Err(format!("`{path}` does not exist in the workspace")),
                    Some(Err(error)) => Err(error.clone()),
                    None => Err(format!("`{path}` was not read")),
                },
                CaptureSource::Json(json_pointer) => self
                    .output
                    .http_body
                    .clone()
                    .ok_or_else(|| "the step had no HTTP answer".to_owned())
                    .and_then(|body| {
                        let document: serde_json::Value = serde_json::from_str(&body)
                            .map_err(|error| format!("the answer is not JSON: {error}"))?;
                        Ok((from_json("the answer", json_pointer, &document)?, body))
                    }),
                CaptureSource::Inspect(json_pointer) => self
                    .output
                    .inspect
                    .as_ref()
                    .ok_or_else(|| "the step had no inspect document".to_owned())
                    .and_then(|document| {
                        Ok((
                            from_json("the inspect document", json_pointer, document)?,
                            document.to_string(),
                        ))
                    }),
            };
            let (value, source_text) = match read {
                Ok(read) => read,
                Err(message) => {
                    findings.push(Finding {
                        category: Category::AssertionFailed,
                        message: format!("cannot capture `{key}`: {}", self.masker.mask(&message)),
                        pointer: at,
                    });
                    continue;
                }
            };
            if value.len() > MAX_CAPTURE_BYTES {
                findings.push(Finding {
                    category: Category::AssertionFailed,
                    message: format!(
                        "cannot capture `{key}`: its value is {} bytes, more than {MAX_CAPTURE_BYTES}",
                        value.len()
                    ),
                    pointer: at,
                });
                continue;
            }
            // Read from text that held a secret's value: derived from it.
            let from_secret_text = !self.masker.is_empty()
                && matches!(self.masker.mask(&source_text), std::borrow::Cow::Owned(_));
            let capture = format!("{name}.{key}");
            if (step_used_secret || from_secret_text) && !value.is_empty() {
                if value.chars().count() < secrets::MIN_LENGTH {
                    findings.push(Finding {
                        category: Category::ConfigInvalid,
                        message: format!(
                            "cannot capture `{key}`: it is derived from a secret but shorter than {} characters, too short to mask safely",
                            secrets::MIN_LENGTH
                        ),
                        pointer: at,
                    });
                    continue;
                }
                self.masked_values.push(value.clone());
                match Masker::new(self.vars.secrets.values().chain(&self.masked_values)) {
                    Ok(masker) => self.masker = masker,
                    Err(error) => {
                        findings.push(Finding {
                            category: Category::ConfigInvalid,
                            message: format!("cannot capture `{key}`: {error}"),
                            pointer: at,
                        });
                        continue;
                    }
                }
                self.masked_captures.insert(capture.clone());
            }
            self.record
                .context
                .captures
                .insert(capture.clone(), value.clone());
            self.vars.captures.insert(capture, value);
        }
        crate::check::all_hold(findings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_captures_take_the_first_group_or_the_whole_match() {
        let all = CaptureText::default();
        assert_eq!(from_text("stdout", &all, "  tok \n").unwrap(), "tok");
        let group = CaptureText {
            matches: Some(r"token=(\w+)".into()),
        };
        assert_eq!(
            from_text("stdout", &group, "login ok\ntoken=abc123\n").unwrap(),
            "abc123"
        );
        let whole = CaptureText {
            matches: Some(r"\d+".into()),
        };
        assert_eq!(from_text("stdout", &whole, "id 42").unwrap(), "42");
        assert_eq!(
            from_text("stdout", &group, "nothing").unwrap_err(),
            r"stdout does not match /token=(\w+)/"
        );
    }

    #[test]
    fn json_captures_read_strings_as_text_and_the_rest_as_json() {
        let document = serde_json::json!({"id": "a1", "n": 3, "list": [1]});
        assert_eq!(from_json("answer", "/id", &document).unwrap(), "a1");
        assert_eq!(from_json("answer", "/n", &document).unwrap(), "3");
        assert_eq!(from_json("answer", "/list", &document).unwrap(), "[1]");
        assert!(from_json("answer", "/none", &document).is_err());
    }
}
