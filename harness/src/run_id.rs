//! Run ids: what every container, image, network, volume and directory a run creates is
//! labelled or named with, so that the run (and `dockproof clean --run ID`) finds exactly
//! its own things and nothing of another run's.
//!
//! A generated id is unique per invocation: it carries a random component from the OS
//! (two runs of the same suite started at the same instant still differ). On the fake
//! backend the reports show the *suite id* instead (`fake-` and a hash of the scenario
//! names, the id without its random part), so fake reports stay byte-identical run to run
//! while the labels and directories stay apart.
//!
//! A run's directory is `dockproof-ID.XXXXXX`: a run id holds only letters, digits, `-`
//! and `_`, so the `.` ends it and `clean --run ci-7` can never take `ci-7-retry`'s.

use sha2::Digest;

/// What every directory a run creates in the work dir starts with.
pub const DIR_PREFIX: &str = "dockproof-";

/// Why a run id is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunIdError {
    #[error("run id `{0}` may only hold letters, digits, `-` and `_` (and may not be empty)")]
    Invalid(String),
    #[error("cannot draw a random run id from the operating system: {0}")]
    Random(String),
}

/// Whether `id` can name a run: non-empty, letters, digits, `-` and `_` only (it goes
/// into labels, container names, image tags and directory names).
pub fn is_valid(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `id` if it can name a run.
pub fn validate(id: &str) -> Result<&str, RunIdError> {
    if is_valid(id) {
        Ok(id)
    } else {
        Err(RunIdError::Invalid(id.to_owned()))
    }
}

/// Eight lowercase hex digits from the operating system's random source.
pub fn random_part() -> Result<String, RunIdError> {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).map_err(|error| RunIdError::Random(error.to_string()))?;
    Ok(hex::encode(bytes))
}

/// `fake-` and a hash of the scenario names: the same for every run of the same suite.
pub fn suite_id<'a>(prefix: &str, names: impl IntoIterator<Item = &'a str>) -> String {
    let mut hasher = sha2::Sha256::new();
    for name in names {
        hasher.update(name.as_bytes());
        hasher.update([0]);
    }
    format!("{prefix}-{}", &hex::encode(hasher.finalize())[..8])
}

/// A fresh id: `base` followed by a random part (`fake-1a2b3c4d-9f8e7d6c`).
pub fn fresh(base: &str) -> Result<String, RunIdError> {
    Ok(format!("{base}-{}", random_part()?))
}

/// The prefix of the run directory of `id` (`dockproof-ID.`); tempfile adds the rest.
pub fn dir_prefix(id: &str) -> String {
    format!("{DIR_PREFIX}{id}.")
}

/// The run id a work-dir entry named `name` belongs to, if it is a run directory.
pub fn of_dir(name: &str) -> Option<&str> {
    let (id, _) = name.strip_prefix(DIR_PREFIX)?.rsplit_once('.')?;
    is_valid(id).then_some(id)
}

/// The file in a run directory whose lock says the run is alive.
pub const LIVE_LOCK: &str = "live.lock";

/// Proof that a run is alive: an exclusive lock (`flock`) on `LIVE_LOCK` in its run
/// directory, held until this is dropped or the process ends, however it ends (the
/// kernel releases the lock of a killed process, so a SIGKILLed run is not "alive").
/// The file also holds the pid, for people.
#[derive(Debug)]
pub struct LiveRun {
    _file: std::fs::File,
}

impl LiveRun {
    /// Mark the run whose directory is `run_dir` as alive.
    pub fn claim(run_dir: &std::path::Path) -> std::io::Result<LiveRun> {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(run_dir.join(LIVE_LOCK))?;
        file.try_lock().map_err(|error| match error {
            std::fs::TryLockError::Error(error) => error,
            std::fs::TryLockError::WouldBlock => std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                "the run directory is already claimed by a live run",
            ),
        })?;
        writeln!(file, "{}", std::process::id())?;
        Ok(LiveRun { _file: file })
    }
}

/// A run's own directory (`dockproof-ID.XXXXXX` under a work dir), claimed as live for
/// as long as this value lives, removed when it is dropped.
#[derive(Debug)]
pub struct RunDir {
    // Declared first, dropped first: the lock goes, then the directory.
    _live: LiveRun,
    /// `None` once [`RunDir::keep`] let go of it.
    dir: Option<tempfile::TempDir>,
    path: std::path::PathBuf,
}

impl RunDir {
    /// Create (with `parent`, if missing) and claim the directory of run `id`.
    pub fn create(parent: &std::path::Path, id: &str) -> Result<RunDir, String> {
        std::fs::create_dir_all(parent)
            .map_err(|error| format!("cannot create work dir {}: {error}", parent.display()))?;
        let dir = tempfile::Builder::new()
            .prefix(&dir_prefix(id))
            .tempdir_in(parent)
            .map_err(|error| {
                format!(
                    "cannot create a run directory in {}: {error}",
                    parent.display()
                )
            })?;
        let live = LiveRun::claim(dir.path()).map_err(|error| {
            format!(
                "cannot mark the run directory {} as live: {error}",
                dir.path().display()
            )
        })?;
        let path = dir.path().to_path_buf();
        Ok(RunDir {
            _live: live,
            dir: Some(dir),
            path,
        })
    }

    /// Where it is.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Let go of the directory without removing it (what `--keep-failed` kept is in it):
    /// the run is no longer live, so `dockproof clean --run ID` removes it.
    pub fn keep(mut self) -> std::path::PathBuf {
        if let Some(dir) = self.dir.take() {
            let _ = dir.keep();
        }
        self.path.clone()
    }
}

impl Drop for RunDir {
    /// The fake's state on a tmpfs goes with the directory that links to it (then the
    /// fields drop: the lock, then the directory).
    fn drop(&mut self) {
        if self.dir.is_some() {
            crate::backend::fakestate::release(&self.path);
        }
    }
}

/// Whether the run whose directory is `run_dir` is alive: its `LIVE_LOCK` is locked by
/// a process. `Some(pid)` (the pid it wrote, 0 if unreadable) when alive; `None` when
/// the file is missing, unlocked (the run ended or was killed) or cannot be opened.
pub fn live_pid(run_dir: &std::path::Path) -> Option<u32> {
    let path = run_dir.join(LIVE_LOCK);
    let file = std::fs::File::open(&path).ok()?;
    match file.try_lock_shared() {
        Ok(()) => None,
        Err(std::fs::TryLockError::WouldBlock) => Some(
            std::fs::read_to_string(&path)
                .ok()
                .and_then(|text| text.trim().parse().ok())
                .unwrap_or(0),
        ),
        Err(std::fs::TryLockError::Error(_)) => None,
    }
}

/// A name safe for container names: lowercase letters, digits and dashes.
pub fn slug(name: &str) -> String {
    let mut slug = String::new();
    for character in name.chars() {
        if character.is_ascii_alphanumeric() {
            slug.push(character.to_ascii_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_matches('-');
    let slug: String = slug.chars().take(40).collect();
    if slug.is_empty() {
        "scenario".into()
    } else {
        slug
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimed_run_is_live_until_released() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(live_pid(dir.path()), None, "no lock file: not live");
        let live = LiveRun::claim(dir.path()).unwrap();
        assert_eq!(live_pid(dir.path()), Some(std::process::id()));
        assert!(LiveRun::claim(dir.path()).is_err(), "claimed twice");
        drop(live);
        assert_eq!(live_pid(dir.path()), None, "released: not live");
    }

    #[test]
    fn fresh_ids_differ_and_keep_their_base() {
        let (a, b) = (
            fresh("fake-12345678").unwrap(),
            fresh("fake-12345678").unwrap(),
        );
        assert_ne!(a, b);
        assert!(a.starts_with("fake-12345678-") && is_valid(&a), "{a}");
        assert_eq!(a.len(), "fake-12345678-".len() + 8);
    }

    #[test]
    fn the_suite_id_depends_on_the_names_only() {
        let id = suite_id("fake", ["a", "b"]);
        assert_eq!(id, suite_id("fake", ["a", "b"]));
        assert_ne!(id, suite_id("fake", ["ab"]));
        assert_eq!(id.len(), "fake-".len() + 8);
    }

    #[test]
    fn run_directories_name_their_run_exactly() {
        assert_eq!(of_dir("dockproof-ci-7.AbC123"), Some("ci-7"));
        assert_eq!(of_dir("dockproof-ci-7-retry.xYz789"), Some("ci-7-retry"));
        assert_eq!(of_dir(&format!("{}Q1w2E3", dir_prefix("r1"))), Some("r1"));
        // Not run directories: no `.`, a build context, a bad id.
        assert_eq!(of_dir("dockproof-ci-7-abc123"), None);
        assert_eq!(of_dir("dockproof-.abc"), None);
        assert_eq!(of_dir("other-ci-7.abc"), None);
        assert_eq!(of_dir("dockproof-a b.abc"), None);
    }

    #[test]
    fn ids_are_letters_digits_dashes_and_underscores() {
        assert!(is_valid("ci-7_retry"));
        for bad in ["", "a.b", "a/b", "a b", "ü"] {
            assert_eq!(validate(bad), Err(RunIdError::Invalid(bad.to_owned())));
        }
    }
}
