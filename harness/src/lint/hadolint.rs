//! hadolint, when it is installed, as a separate program: `hadolint --no-fail
//! --no-color -f json FILE`, with a timeout and a cap on what it may print.
//! hadolint is GPL-3.0; dockproof never bundles or links it, it only reads its
//! JSON. Its findings join dockproof's in one list ([`fold`]): where both tools
//! report the same problem at the same line, dockproof's finding stays and names
//! hadolint's rule in `also` ([`FOLDS`]).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{Finding, Level, Source};

/// hadolint rules that report what a dockproof rule reports: (hadolint, dockproof).
pub const FOLDS: [(&str, &str); 6] = [
    // "Using latest is prone to errors" — DF001 also flags untagged bases.
    ("DL3007", "DF001"),
    // "Always tag the version of an image explicitly".
    ("DL3006", "DF001"),
    // "Last USER should not be root".
    ("DL3002", "DF002"),
    // "Use COPY instead of ADD for files and folders".
    ("DL3020", "DF004"),
    // "Use arguments JSON notation for CMD and ENTRYPOINT arguments".
    ("DL3025", "DF006"),
    // "Potentially sensitive data should not be used in the ARG or ENV commands".
    ("DL3064", "DF005"),
];

/// How long hadolint may take on one file.
pub const TIMEOUT: Duration = Duration::from_secs(60);
/// How much JSON hadolint may print for one file.
pub const MAX_OUTPUT: u64 = 4 * 1024 * 1024;
/// How much of its stderr is kept for an error message.
const MAX_STDERR: u64 = 16 * 1024;

/// A hadolint program found on PATH or named with `--hadolint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hadolint {
    pub program: PathBuf,
    pub timeout: Duration,
}

/// Why hadolint could not lint a file.
#[derive(Debug, thiserror::Error)]
pub enum HadolintError {
    #[error("failed to run hadolint `{program}`: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("hadolint took more than {seconds}s on `{path}` and was stopped")]
    Timeout { path: String, seconds: u64 },
    #[error("hadolint printed more than {limit} bytes for `{path}`")]
    TooMuchOutput { path: String, limit: u64 },
    #[error("hadolint failed on `{path}` (exit {code:?}): {stderr}")]
    Failed {
        path: String,
        code: Option<i32>,
        stderr: String,
    },
    #[error("hadolint's output for `{path}` is not its JSON format: {message}")]
    Output { path: String, message: String },
}

/// Find hadolint: `explicit` (`--hadolint PATH`) if given, else `hadolint` on PATH.
/// `Err` says why there is none, for the "hadolint not found" note.
pub fn locate(explicit: Option<&Path>) -> Result<Hadolint, String> {
    let program = match explicit {
        Some(path) => {
            if !path.is_file() {
                return Err(format!(
                    "`{}` (given with --hadolint) is not a file",
                    path.display()
                ));
            }
            path.to_path_buf()
        }
        None => {
            let path = std::env::var_os("PATH").unwrap_or_default();
            std::env::split_paths(&path)
                .map(|dir| dir.join("hadolint"))
                .find(|candidate| candidate.is_file())
                .ok_or_else(|| "hadolint was not found on PATH".to_owned())?
        }
    };
    Ok(Hadolint {
        program,
        timeout: TIMEOUT,
    })
}

/// One entry of hadolint's `-f json` output.
#[derive(Debug, Deserialize)]
struct Entry {
    code: String,
    level: String,
    line: usize,
    #[serde(default)]
    column: usize,
    message: String,
}

/// Read at most `limit + 1` bytes on a thread; past the limit, raise `overflow` (the
/// caller then kills the child) and drain until the pipe closes.
fn read_bounded(
    mut from: impl Read + Send + 'static,
    limit: u64,
    overflow: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let _ = (&mut from).take(limit + 1).read_to_end(&mut kept);
        if kept.len() as u64 > limit {
            overflow.store(true, Ordering::SeqCst);
        }
        // Drain the rest so the child never blocks on a full pipe.
        let _ = std::io::copy(&mut from, &mut std::io::sink());
        kept
    })
}

impl Hadolint {
    /// Run hadolint on one Dockerfile and read its findings.
    pub fn run(&self, path: &Path) -> Result<Vec<Finding>, HadolintError> {
        let shown = path.display().to_string();
        let mut child = Command::new(&self.program)
            .args(["--no-fail", "--no-color", "-f", "json"])
            .arg(path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| HadolintError::Spawn {
                program: self.program.display().to_string(),
                source,
            })?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HadolintError::Output {
                path: shown,
                message: "no pipes to read".into(),
            });
        };
        let overflow = Arc::new(AtomicBool::new(false));
        let stdout = read_bounded(stdout, MAX_OUTPUT, Arc::clone(&overflow));
        // Past its cap, stderr is only cut short, never a reason to stop hadolint.
        let stderr = read_bounded(stderr, MAX_STDERR, Arc::new(AtomicBool::new(false)));
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if overflow.load(Ordering::SeqCst) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
            }
        };
        let stdout = stdout.join().unwrap_or_default();
        let stderr = stderr.join().unwrap_or_default();
        if overflow.load(Ordering::SeqCst) || stdout.len() as u64 > MAX_OUTPUT {
            return Err(HadolintError::TooMuchOutput {
                path: shown,
                limit: MAX_OUTPUT,
            });
        }
        let Some(status) = status else {
            return Err(HadolintError::Timeout {
                path: shown,
                seconds: self.timeout.as_secs(),
            });
        };
        if !status.success() && stdout.is_empty() {
            return Err(HadolintError::Failed {
                path: shown,
                code: status.code(),
                stderr: String::from_utf8_lossy(&stderr).trim().to_owned(),
            });
        }
        parse_output(&shown, &stdout)
    }
}

/// hadolint's JSON findings as dockproof findings (source `hadolint`).
pub fn parse_output(shown: &str, stdout: &[u8]) -> Result<Vec<Finding>, HadolintError> {
    let entries: Vec<Entry> =
        serde_json::from_slice(stdout).map_err(|error| HadolintError::Output {
            path: shown.to_owned(),
            message: error.to_string(),
        })?;
    entries
        .into_iter()
        .map(|entry| {
            let level = match entry.level.as_str() {
                "error" => Level::Error,
                "warning" => Level::Warning,
                "info" => Level::Info,
                "style" => Level::Style,
                other => {
                    return Err(HadolintError::Output {
                        path: shown.to_owned(),
                        message: format!("unknown level `{other}` for {}", entry.code),
                    });
                }
            };
            // DL1000 is hadolint failing to parse a file dockproof parsed (it reached
            // here): hadolint's rules did not run on it, which is worth knowing but
            // is not a problem of the file.
            let (level, message) = if entry.code == "DL1000" {
                (
                    Level::Info,
                    format!(
                        "hadolint could not parse this file, so its rules did not run on it: {}",
                        entry.message.replace('\n', " ")
                    ),
                )
            } else {
                (level, entry.message)
            };
            Ok(Finding {
                rule: entry.code,
                level,
                line: entry.line.max(1),
                column: entry.column.max(1),
                message,
                source: Source::Hadolint,
                also: Vec::new(),
            })
        })
        .collect()
}

/// One list from both tools: a hadolint finding that [`FOLDS`] into a dockproof
/// finding on the same instruction is dropped and named in that finding's `also`.
/// `instruction_of(line)` is the first line of the instruction covering `line`
/// (hadolint reports an instruction's first line, dockproof the word at fault).
pub fn fold(
    mut ours: Vec<Finding>,
    theirs: Vec<Finding>,
    instruction_of: impl Fn(usize) -> Option<usize>,
) -> Vec<Finding> {
    let same_instruction = |a: usize, b: usize| {
        a == b || matches!((instruction_of(a), instruction_of(b)), (Some(x), Some(y)) if x == y)
    };
    let mut kept = Vec::new();
    for finding in theirs {
        let target = FOLDS
            .iter()
            .find(|(hadolint, _)| *hadolint == finding.rule)
            .map(|(_, dockproof)| *dockproof);
        let same = target.and_then(|target| {
            ours.iter_mut()
                .find(|own| own.rule == target && same_instruction(own.line, finding.line))
        });
        match same {
            Some(own) => {
                if !own.also.contains(&finding.rule) {
                    own.also.push(finding.rule);
                }
            }
            None => kept.push(finding),
        }
    }
    ours.extend(kept);
    ours
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::dockerfile::{EXEC_FORM, PINNED_BASE};

    #[test]
    fn json_output_becomes_findings_and_dl1000_a_note() {
        let json = br#"[{"code":"DL3018","column":1,"file":"Dockerfile","level":"warning","line":3,"message":"Pin versions in apk add."},
            {"code":"DL1000","column":9,"file":"Dockerfile","level":"error","line":18,"message":"unexpected 'w'\nexpecting"}]"#;
        let found = parse_output("Dockerfile", json).unwrap();
        assert_eq!(found[0].rule, "DL3018");
        assert_eq!(found[0].level, Level::Warning);
        assert_eq!(found[0].source, Source::Hadolint);
        assert_eq!(found[1].level, Level::Info);
        assert!(!found[1].message.contains('\n'));
        assert!(parse_output("Dockerfile", b"DL3018 oops").is_err());
        assert!(
            parse_output(
                "Dockerfile",
                br#"[{"code":"X","level":"fatal","line":1,"message":""}]"#
            )
            .is_err()
        );
    }

    #[test]
    fn duplicates_fold_at_the_same_line_only() {
        let ours = vec![
            Finding::new(&PINNED_BASE, 2, "latest"),
            Finding::new(&EXEC_FORM, 9, "shell form"),
        ];
        let theirs = parse_output(
            "Dockerfile",
            br#"[{"code":"DL3007","column":1,"file":"D","level":"warning","line":2,"message":"latest"},
                {"code":"DL3025","column":1,"file":"D","level":"warning","line":7,"message":"json"},
                {"code":"DL3018","column":1,"file":"D","level":"warning","line":4,"message":"pin"}]"#,
        )
        .unwrap();
        let merged = fold(ours, theirs, Some);
        assert_eq!(merged.len(), 4);
        assert_eq!(merged[0].also, vec!["DL3007"]);
        assert!(merged[0].is("DL3007"));
        assert!(merged[1].also.is_empty());
        assert_eq!(merged[2].rule, "DL3025");
        assert_eq!(merged[3].rule, "DL3018");
    }
}
