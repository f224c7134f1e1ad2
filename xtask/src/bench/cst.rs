//! Benchmark 8: `dockproof cst` against the real container-structure-test (issue 22
//! item 3): the same config, the same image, each tool's wall time and its own peak
//! RSS, side by side (interleaved, best of two rounds: interference only slows a run).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::json;

use super::{Bench, Compare, Figure, IMAGE, NO_DAEMON, Row, Target, Which, measure};

/// Tests per config.
const TESTS: usize = 30;
const ROUNDS: usize = 2;

/// The real CST: `$DOCKPROOF_CST` (`.ci/run` exports it), else on `PATH`.
fn cst_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("DOCKPROOF_CST") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("container-structure-test"))
        .find(|candidate| candidate.is_file())
}

/// Thirty command tests, each a container of the fixture image (`echo N`).
fn command_config() -> String {
    let mut text = String::from("schemaVersion: 2.0.0\ncommandTests:\n");
    for index in 0..TESTS {
        text.push_str(&format!(
            "  - name: echo {index}\n    command: echo\n    args: [\"{index}\"]\n    expectedOutput: ['^{index}\\n$']\n"
        ));
    }
    text
}

/// Thirty file tests: twenty existence (with modes) and ten content tests on files
/// of the fixture image, the root directory among them.
fn file_config() -> String {
    const EXISTING: [(&str, &str); 4] = [
        ("/bin/busybox", "-rwxr-xr-x"),
        ("/bin/sh", "Lrwxrwxrwx"),
        ("/usr/local/bin/job", "-rwxr-xr-x"),
        // The root without a mode: CST's tar driver stats its extraction directory there.
        ("/", ""),
    ];
    let mut text = String::from("schemaVersion: 2.0.0\nfileExistenceTests:\n");
    for index in 0..20 {
        let (path, mode) = EXISTING[index % EXISTING.len()];
        let mode = if mode.is_empty() {
            String::new()
        } else {
            format!(", permissions: '{mode}'")
        };
        text.push_str(&format!(
            "  - {{name: exists {index}, path: '{path}', shouldExist: true{mode}}}\n"
        ));
    }
    text.push_str("fileContentTests:\n");
    for index in 0..TESTS - 20 {
        text.push_str(&format!(
            "  - {{name: content {index}, path: /usr/local/bin/job, expectedContents: ['JOB_EXIT_CODE']}}\n"
        ));
    }
    text
}

/// Issue 22's bar for a wall row: command tests wait on the daemon (each is a container
/// started and removed), so ≤ 0.5× CST; file tests are dockproof's own work, ≤ 0.3×.
fn wall_target(config: &str) -> Target {
    if config == "commands" {
        Target::ratio(Compare::AtMost, 0.5, "≤ 0.5× CST")
    } else {
        Target::ratio(Compare::AtMost, 0.3, "≤ 0.3× CST")
    }
}

/// One side's measurement: the best wall of the rounds, the largest peak RSS.
#[derive(Debug, Default)]
struct Side {
    walls: Vec<f64>,
    peak_kib: u64,
}

impl Side {
    fn best(&self) -> f64 {
        self.walls.iter().copied().fold(f64::INFINITY, f64::min)
    }

    fn peak_mib(&self) -> f64 {
        self.peak_kib as f64 / 1024.0
    }
}

impl Bench {
    /// Benchmark 8, `dockproof cst` vs the real CST: 30 command tests (docker driver;
    /// the tar drivers run no command) and 30 file tests on both drivers.
    pub(super) fn cst(&self) -> Vec<Row> {
        let cases = [
            ("commands", "docker"),
            ("files", "docker"),
            ("files", "tar"),
        ];
        let mut rows = Vec::new();
        for (config, driver) in cases {
            let method = format!(
                "`dockproof cst test --backend docker-api --driver {driver}` vs `container-structure-test test --driver {driver}` (the real CST, `$DOCKPROOF_CST`) on {IMAGE}, {TESTS} {} tests, JSON output; each tool's own peak RSS (VmHWM polled every 5 ms); best wall of {ROUNDS} interleaved rounds; every verdict must pass with both",
                if config == "commands" {
                    "command"
                } else {
                    "file (20 existence, 10 content)"
                }
            );
            let id = format!("9-{config}-{driver}");
            rows.push(Row::new(
                Which::Cst,
                &format!("{id}-wall"),
                &format!("cst {config}, {driver} driver: wall"),
                method.clone(),
                wall_target(config),
            ));
            rows.push(Row::new(
                Which::Cst,
                &format!("{id}-rss"),
                &format!("cst {config}, {driver} driver: peak RSS"),
                method,
                // Issue 22's bar: never more memory than the tool it replaces.
                Target::ratio(Compare::AtMost, 1.0, "≤ 1× CST's"),
            ));
        }
        if self.daemon.is_none() {
            return rows.into_iter().map(|row| row.skipped(NO_DAEMON)).collect();
        }
        let Some(cst) = cst_binary() else {
            return rows
                .into_iter()
                .map(|row| row.skipped("skipped: no container-structure-test (set DOCKPROOF_CST)"))
                .collect();
        };
        let prepared = (|| -> Result<PathBuf> {
            self.ensure_image()?;
            let dir = self.dir("cst")?;
            std::fs::write(dir.join("commands.yaml"), command_config())
                .context("cannot write the command config")?;
            std::fs::write(dir.join("files.yaml"), file_config())
                .context("cannot write the file config")?;
            Ok(dir)
        })();
        let dir = match prepared {
            Ok(dir) => dir,
            Err(error) => return rows.into_iter().map(|row| row.failed(&error)).collect(),
        };
        let mut result = Vec::new();
        let mut rows = rows.into_iter();
        for (config, driver) in cases {
            let (Some(wall_row), Some(rss_row)) = (rows.next(), rows.next()) else {
                break;
            };
            match self.cst_case(&cst, &dir, config, driver) {
                Ok((theirs, ours)) => {
                    let details = json!({
                        "cstWallsS": theirs.walls,
                        "dockproofWallsS": ours.walls,
                        "cstPeakRssMiB": theirs.peak_mib(),
                        "dockproofPeakRssMiB": ours.peak_mib(),
                    });
                    result.push(wall_row.measured(
                        Some(Figure::new("CST", theirs.best(), "s")),
                        Figure::new("dockproof cst", ours.best(), "s"),
                        details.clone(),
                    ));
                    result.push(rss_row.measured(
                        Some(Figure::new("CST", theirs.peak_mib(), "MiB")),
                        Figure::new("dockproof cst", ours.peak_mib(), "MiB"),
                        details,
                    ));
                }
                Err(error) => {
                    result.push(wall_row.failed(&error));
                    result.push(rss_row.failed(&error));
                }
            }
        }
        std::fs::remove_dir_all(&dir).ok();
        result
    }

    fn cst_case(&self, cst: &Path, dir: &Path, config: &str, driver: &str) -> Result<(Side, Side)> {
        let file = dir.join(format!("{config}.yaml"));
        let mut theirs = Side::default();
        let mut ours = Side::default();
        for round in 0..ROUNDS {
            let report = dir.join(format!("cst-{config}-{driver}-{round}.json"));
            let mut command = std::process::Command::new(cst);
            command
                .args([
                    "test", "--driver", driver, "--image", IMAGE, "--output", "json",
                ])
                .arg("--config")
                .arg(&file)
                .arg("--test-report")
                .arg(&report);
            let run = measure::run(
                &mut command,
                Duration::from_secs(900),
                &dir.join(format!("cst-{config}-{driver}-{round}")),
                true,
            )?;
            all_passed(&report, "container-structure-test", run.code)?;
            theirs.walls.push(run.seconds());
            theirs.peak_kib = theirs.peak_kib.max(run.peak_rss_kib.unwrap_or(0));

            let report = dir.join(format!("dockproof-{config}-{driver}-{round}.json"));
            let work = self.dir(&format!("cst-work-{config}-{driver}-{round}"))?;
            let mut command = std::process::Command::new(self.bin.join("dockproof"));
            command
                .current_dir(&self.root)
                .args(["cst", "test", "--no-history", "--backend", "docker-api"])
                .args(["--driver", driver, "--image", IMAGE, "--output", "json"])
                .arg("--fixture-images")
                .arg(self.root.join("fixtures/images"))
                .arg("--work-dir")
                .arg(&work)
                .arg("--config")
                .arg(&file)
                .arg("--test-report")
                .arg(&report);
            let run = measure::run(
                &mut command,
                Duration::from_secs(900),
                &dir.join(format!("dockproof-{config}-{driver}-{round}")),
                true,
            )?;
            all_passed(&report, "dockproof cst", run.code)?;
            ours.walls.push(run.seconds());
            ours.peak_kib = ours.peak_kib.max(run.peak_rss_kib.unwrap_or(0));
        }
        Ok((theirs, ours))
    }
}

/// Every one of the config's tests passed (a benchmark of failing runs measures nothing).
fn all_passed(report: &Path, what: &str, code: i32) -> Result<()> {
    let text = std::fs::read_to_string(report)
        .with_context(|| format!("{what} wrote no report {} (exit {code})", report.display()))?;
    let summary: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{what}: not CST's JSON: {text}"))?;
    let passed = summary["Pass"].as_u64().unwrap_or(0);
    if code != 0 || passed != TESTS as u64 || summary["Fail"].as_u64() != Some(0) {
        bail!("{what} exited {code}, {passed} of {TESTS} tests passed: {text}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configs_hold_thirty_tests_each() {
        assert_eq!(command_config().matches("  - name: ").count(), TESTS);
        assert_eq!(file_config().matches("  - {name: ").count(), TESTS);
    }
}
