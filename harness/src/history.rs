//! Run history in an embedded SQLite database: every run and every
//! scenario's verdict, so success rates, flaky scenarios and "no regression
//! since the last good run" can be answered. Migrations are versioned with
//! `PRAGMA user_version`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, params};

use crate::events::{Outcome, ScenarioReport};

/// Why the history could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("failed to open the history database `{path}`: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("failed to create `{path}`: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the history database is from a newer dockproof (schema version {found}, this one knows {known})"
    )]
    TooNew { found: i64, known: i64 },
    #[error("history database error: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// Schema migrations, in order; migration N brings the schema to version N+1.
const MIGRATIONS: &[&str] = &["CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        git_sha TEXT,
        host TEXT NOT NULL,
        backend TEXT NOT NULL,
        passed INTEGER NOT NULL,
        failed INTEGER NOT NULL,
        interrupted INTEGER NOT NULL
    );
    CREATE TABLE results (
        run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        scenario TEXT NOT NULL,
        file TEXT NOT NULL,
        inputs_sha256 TEXT NOT NULL,
        verdict TEXT NOT NULL,
        category TEXT,
        flaky INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (run, scenario)
    );
    CREATE INDEX results_by_scenario ON results (scenario, run);"];

/// The default database: `$DOCKPROOF_HISTORY`, else the user's data dir.
pub fn default_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("DOCKPROOF_HISTORY") {
        return Some(PathBuf::from(path));
    }
    dirs::data_dir().map(|dir| dir.join("dockproof").join("history.sqlite"))
}

/// One run, as recorded.
#[derive(Debug, Clone)]
pub struct RunEntry<'a> {
    pub run_id: &'a str,
    pub git_sha: Option<String>,
    pub host: String,
    pub backend: &'a str,
    pub interrupted: bool,
    pub reports: &'a [ScenarioReport],
}

/// Success figures of one scenario (or host) over the recorded runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub name: String,
    pub runs: u64,
    pub passed: u64,
    /// Whether both verdicts were seen for the same scenario file contents, or it passed only on a retry.
    pub flaky: bool,
    pub last_verdict: String,
}

impl Stats {
    /// Passed runs over all runs, 0..=1.
    pub fn success_rate(&self) -> f64 {
        if self.runs == 0 {
            0.0
        } else {
            self.passed as f64 / self.runs as f64
        }
    }
}

/// The history database.
pub struct History {
    connection: Connection,
}

fn verdict(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Passed => "passed",
        Outcome::Failed => "failed",
        Outcome::Skipped => "skipped",
        Outcome::Interrupted => "interrupted",
    }
}

fn file_sha256(path: &Path) -> String {
    use sha2::Digest;
    std::fs::read(path)
        .map(|bytes| hex::encode(sha2::Sha256::digest(&bytes)))
        .unwrap_or_default()
}

impl History {
    /// Open (creating and migrating as needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, HistoryError> {
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|source| HistoryError::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let connection = Connection::open(path).map_err(|source| HistoryError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Self::with_connection(connection)
    }

    /// A database in memory (for tests).
    pub fn in_memory() -> Result<Self, HistoryError> {
        Self::with_connection(Connection::open_in_memory()?)
    }

    fn with_connection(mut connection: Connection) -> Result<Self, HistoryError> {
        // Parallel runs (CI shards on one machine) take turns instead of failing.
        connection.busy_timeout(Duration::from_secs(10))?;
        connection.pragma_update(None, "foreign_keys", true)?;
        let version: i64 = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(HistoryError::TooNew {
                found: version,
                known,
            });
        }
        let transaction = connection.transaction()?;
        for migration in &MIGRATIONS[version as usize..] {
            transaction.execute_batch(migration)?;
        }
        transaction.pragma_update(None, "user_version", known)?;
        transaction.commit()?;
        Ok(History { connection })
    }

    /// The schema version in use.
    pub fn schema_version(&self) -> Result<i64, HistoryError> {
        Ok(self
            .connection
            .pragma_query_value(None, "user_version", |row| row.get(0))?)
    }

    /// Record a run and its verdicts; returns the run's row id.
    pub fn record(&mut self, run: &RunEntry<'_>) -> Result<i64, HistoryError> {
        let started_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs() as i64;
        let passed = run
            .reports
            .iter()
            .filter(|report| report.outcome == Outcome::Passed)
            .count() as i64;
        let failed = run
            .reports
            .iter()
            .filter(|report| report.outcome == Outcome::Failed)
            .count() as i64;
        let transaction = self.connection.transaction()?;
        transaction.execute(
            "INSERT INTO runs (run_id, started_at, git_sha, host, backend, passed, failed, interrupted) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![run.run_id, started_at, run.git_sha, run.host, run.backend, passed, failed, run.interrupted],
        )?;
        let id = transaction.last_insert_rowid();
        for report in run.reports {
            transaction.execute(
                "INSERT OR REPLACE INTO results (run, scenario, file, inputs_sha256, verdict, category, flaky, duration_ms, record)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    id,
                    report.name,
                    report.file.display().to_string(),
                    file_sha256(&report.file),
                    verdict(report.outcome),
                    report.failure.as_ref().map(|failure| failure.category.as_str()),
                    report.flaky(),
                    report.duration.as_millis() as i64,
                    report.record.to_json().to_string(),
                ],
            )?;
        }
        transaction.commit()?;
        Ok(id)
    }

    /// Figures per scenario over the last `runs` runs that included it.
    pub fn by_scenario(&self, runs: usize) -> Result<Vec<Stats>, HistoryError> {
        self.stats("scenario", runs)
    }

    /// Figures per host and backend (`host (backend)`).
    pub fn by_host(&self, runs: usize) -> Result<Vec<Stats>, HistoryError> {
        self.stats("host", runs)
    }

    fn stats(&self, by: &str, runs: usize) -> Result<Vec<Stats>, HistoryError> {
        // Flakiness is per (host, scenario, inputs): both verdicts on the same host for the
        // same inputs. A scenario that always passes on one host and always fails on
        // another is broken there, not flaky; a host whose runs all passed is never flaky.
        let host = "runs.host || ' (' || runs.backend || ')'";
        let (key, column) = match by {
            "host" => (host, "host"),
            _ => ("results.scenario", "scenario"),
        };
        let query = format!(
            "WITH ranked AS (
                SELECT {key} AS name, {host} AS host, results.verdict, results.flaky, results.inputs_sha256, results.scenario, runs.id AS run,
                       ROW_NUMBER() OVER (PARTITION BY {key} ORDER BY runs.id DESC) AS recent
                FROM results JOIN runs ON runs.id = results.run
                WHERE results.verdict IN ('passed', 'failed')
            ),
            window AS (SELECT * FROM ranked WHERE recent <= ?1),
            mixed AS (
                SELECT host, scenario, inputs_sha256 FROM window GROUP BY host, scenario, inputs_sha256
                HAVING COUNT(DISTINCT verdict) > 1
            )
            SELECT name, COUNT(*), SUM(verdict = 'passed'),
                   MAX(flaky) OR EXISTS (SELECT 1 FROM mixed WHERE mixed.{column} = window.name),
                   (SELECT verdict FROM window w3 WHERE w3.name = window.name ORDER BY run DESC LIMIT 1)
            FROM window GROUP BY name ORDER BY name"
        );
        let mut statement = self.connection.prepare(&query)?;
        let rows = statement.query_map(params![runs as i64], |row| {
            Ok(Stats {
                name: row.get(0)?,
                runs: row.get::<_, i64>(1)? as u64,
                passed: row.get::<_, i64>(2)? as u64,
                flaky: row.get(3)?,
                last_verdict: row.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The verdicts of the most recent run in which every scenario passed, by scenario name.
    pub fn last_good_run(&self, backend: &str) -> Result<Option<Vec<String>>, HistoryError> {
        let mut statement = self.connection.prepare(
            "SELECT id FROM runs WHERE backend = ?1 AND failed = 0 AND interrupted = 0 AND passed > 0 ORDER BY id DESC LIMIT 1",
        )?;
        let run: Option<i64> = statement.query_row(params![backend], |row| row.get(0)).ok();
        let Some(run) = run else { return Ok(None) };
        let mut statement = self.connection.prepare(
            "SELECT scenario FROM results WHERE run = ?1 AND verdict = 'passed' ORDER BY scenario",
        )?;
        let names = statement
            .query_map(params![run], |row| row.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(Some(names))
    }
}

/// How long `git rev-parse HEAD` may take (a repository on a hung network mount).
const GIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The commit being validated: `GITHUB_SHA`, else `git rev-parse HEAD` in the current
/// directory (none when git is missing, fails or takes longer than [`GIT_TIMEOUT`]).
pub async fn current_git_sha() -> Option<String> {
    if let Ok(sha) = std::env::var("GITHUB_SHA") {
        return Some(sha);
    }
    let output = crate::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .stderr(crate::process::Output::Null)
        .output(GIT_TIMEOUT, 4096)
        .await
        .ok()?;
    output
        .success()
        .then(|| output.stdout.text.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::category::Category;
    use crate::events::Failure;
    use crate::record::JobRecord;

    fn report(name: &str, outcome: Outcome, file: &Path) -> ScenarioReport {
        ScenarioReport {
            name: name.into(),
            file: file.into(),
            tags: Vec::new(),
            outcome,
            failure: (outcome == Outcome::Failed)
                .then(|| Failure::new(Category::NonzeroExit, "exit 3")),
            skip_reason: None,
            earlier_attempts: Vec::new(),
            steps: Vec::new(),
            record: JobRecord::pending(),
            stdout_tail: Vec::new(),
            stderr_tail: Vec::new(),
            duration: Duration::from_millis(5),
        }
    }

    fn entry<'a>(host: &str, reports: &'a [ScenarioReport]) -> RunEntry<'a> {
        RunEntry {
            run_id: "r",
            git_sha: None,
            host: host.into(),
            backend: "fake",
            interrupted: false,
            reports,
        }
    }

    #[test]
    fn migrates_once_and_refuses_newer_schemas() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/history.sqlite");
        assert_eq!(
            History::open(&path).unwrap().schema_version().unwrap(),
            MIGRATIONS.len() as i64
        );
        assert_eq!(
            History::open(&path).unwrap().schema_version().unwrap(),
            MIGRATIONS.len() as i64
        );
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        assert!(matches!(
            History::open(&path),
            Err(HistoryError::TooNew { found: 99, .. })
        ));
    }

    #[test]
    fn success_rates_and_flaky_scenarios() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.yaml");
        std::fs::write(&file, "name: s\n").unwrap();
        let mut history = History::in_memory().unwrap();
        let run = |history: &mut History, host: &str, wobbly: Outcome, broken: Outcome| {
            history
                .record(&entry(
                    host,
                    &[
                        report("stable", Outcome::Passed, &file),
                        report("wobbly", wobbly, &file),
                        report("broken-on-b", broken, &file),
                    ],
                ))
                .unwrap();
        };
        run(&mut history, "host-a", Outcome::Passed, Outcome::Passed);
        run(&mut history, "host-b", Outcome::Failed, Outcome::Failed);
        run(&mut history, "host-b", Outcome::Passed, Outcome::Failed);
        run(&mut history, "host-a", Outcome::Passed, Outcome::Passed);
        let stats = history.by_scenario(10).unwrap();
        let by_name = |name: &str| stats.iter().find(|s| s.name == name).unwrap().clone();
        assert_eq!(
            by_name("stable"),
            Stats {
                name: "stable".into(),
                runs: 4,
                passed: 4,
                flaky: false,
                last_verdict: "passed".into()
            }
        );
        assert!(
            by_name("wobbly").flaky,
            "both verdicts on host-b for the same inputs"
        );
        assert_eq!(by_name("wobbly").success_rate(), 0.75);
        // Always passes on a, always fails on b: broken on b, not flaky.
        let broken = by_name("broken-on-b");
        assert!(!broken.flaky, "{broken:?}");
        assert_eq!(broken.success_rate(), 0.5);
        let hosts = history.by_host(10).unwrap();
        assert_eq!(
            hosts
                .iter()
                .map(|stats| (stats.name.as_str(), stats.passed, stats.flaky))
                .collect::<Vec<_>>(),
            [("host-a (fake)", 6, false), ("host-b (fake)", 3, true)],
            "a host whose every run passed is never flaky"
        );
        assert_eq!(
            history.last_good_run("fake").unwrap().map(|v| v.len()),
            Some(3)
        );
    }
}
