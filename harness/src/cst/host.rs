//! CST's host driver (`--driver host`, pkg/drivers/host_driver.go): the tests run on
//! this machine itself. Commands are spawned from their argv (never a shell), with a
//! timeout and bounded output; files are `lstat`ed and read with bounds; the image
//! configuration comes from CST's `--metadata` file (an image config JSON).
//!
//! CST's host driver changes its own process environment (`os.Setenv`) and puts it
//! back only after the last command test of a file (its teardowns are deferred). Here
//! that environment is a value ([`HostEnv`]) applied to each child, with the same
//! sequence of changes, so the verdicts are CST's and dockproof's own environment is
//! never touched.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::check;
use super::files::{FileInfo, Kind, MAX_CONTENT_BYTES, MAX_SAVED_JSON_BYTES};
use super::model::EnvVar;
use crate::backend::CaptureLimits;

/// Why a host-driver operation failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// `--metadata FILE` cannot be read or is not an image configuration.
    #[error("cannot read the metadata file {path}: {reason}")]
    Metadata { path: PathBuf, reason: String },
    /// The program of a command could not be started (CST: "error starting command").
    #[error("error starting command: {program}: {reason}")]
    Spawn { program: String, reason: String },
    /// A command ran past its timeout and was killed with its process group.
    #[error("the command `{program}` did not finish within {timeout:?} and was killed")]
    Timeout { program: String, timeout: Duration },
    /// An empty argv (CST's loader refuses it first; kept so nothing panics).
    #[error("an empty command")]
    Empty,
}

/// The image configuration of `--metadata FILE`: the `config` object of an image
/// config JSON (`docker save`'s `<id>.json`, `crane config`), read at most
/// [`MAX_SAVED_JSON_BYTES`] bytes. CST ignores a file that is not JSON (its config is
/// then empty); dockproof refuses it, naming the file.
pub fn read_metadata(path: &Path) -> Result<serde_json::Value, HostError> {
    let failed = |reason: String| HostError::Metadata {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|error| failed(go_error_text(&error)))?;
    let mut bytes = Vec::new();
    file.take(MAX_SAVED_JSON_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| failed(go_error_text(&error)))?;
    if bytes.len() as u64 > MAX_SAVED_JSON_BYTES {
        return Err(failed(format!(
            "it is more than {MAX_SAVED_JSON_BYTES} bytes; an image configuration is a few kilobytes"
        )));
    }
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|error| {
        failed(format!(
            "not JSON ({error}); expected an image configuration such as `docker save` writes (`{{\"config\": {{\"Env\": [...], ...}}}}`)"
        ))
    })?;
    if !value.is_object() {
        return Err(failed(
            "not a JSON object; expected an image configuration (`{\"config\": {...}}`)".into(),
        ));
    }
    Ok(value
        .get("config")
        .cloned()
        .unwrap_or(serde_json::Value::Null))
}

/// An `io::Error` the way Go prints one (`no such file or directory`), without Rust's
/// ` (os error 2)` suffix.
pub fn go_error_text(error: &std::io::Error) -> String {
    let text = error.to_string();
    let text = match text.rfind(" (os error ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// The process environment CST's host driver would have: dockproof's own, with the
/// changes CST makes by `os.Setenv`/`os.Unsetenv` (`None` = unset).
#[derive(Debug, Default)]
pub struct HostEnv {
    changes: BTreeMap<String, Option<String>>,
    /// Per command test whose setup ran: the variables' earlier values and its
    /// teardown commands, undone last-in first-out after the file's command tests (CST's
    /// `defer driver.Teardown(...)` in `RunCommandTests`).
    pending: Vec<Teardown>,
}

/// A command test's deferred teardown: the variables' earlier values, the commands.
type Teardown = (Vec<(String, String)>, Vec<Vec<String>>);

impl HostEnv {
    /// A variable's current value (`""` when unset, as Go's `os.Getenv`).
    pub fn get(&self, key: &str) -> String {
        match self.changes.get(key) {
            Some(value) => value.clone().unwrap_or_default(),
            None => std::env::var(key).unwrap_or_default(),
        }
    }

    fn expand(&self, text: &str) -> String {
        // os.ExpandEnv: every `$NAME` looked up in the environment as it is now.
        let mut all: BTreeMap<String, String> = std::env::vars_os()
            .filter_map(|(key, value)| Some((key.into_string().ok()?, value.into_string().ok()?)))
            .collect();
        for (key, value) in &self.changes {
            match value {
                Some(value) => all.insert(key.clone(), value.clone()),
                None => all.remove(key),
            };
        }
        check::expand(text, &all)
    }

    fn set(&mut self, key: &str, value: String) {
        self.changes.insert(key.to_owned(), Some(value));
    }

    /// CST's `SetEnv` (2.0.0's globalEnvVars, before every test): each value expanded
    /// with the environment as it is, set, never undone.
    pub fn set_globals(&mut self, vars: &[EnvVar]) {
        for var in vars {
            let value = self.expand(&var.value);
            self.set(&var.key, value);
        }
    }

    /// CST's `SetEnvVars`: set each (expanded) and return the earlier values.
    pub fn set_vars(&mut self, vars: &[EnvVar]) -> Vec<(String, String)> {
        let mut earlier = Vec::new();
        for var in vars {
            earlier.push((var.key.clone(), self.get(&var.key)));
            let value = self.expand(&var.value);
            self.set(&var.key, value);
        }
        earlier
    }

    /// CST's `ResetEnvVars`: an earlier empty value means the variable was unset.
    pub fn reset(&mut self, earlier: Vec<(String, String)>) {
        for (key, value) in earlier {
            let value = (!value.is_empty()).then_some(value);
            self.changes.insert(key, value);
        }
    }

    /// Remember a command test's teardown (run by [`HostEnv::teardown_all`]).
    pub fn defer_teardown(&mut self, earlier: Vec<(String, String)>, commands: Vec<Vec<String>>) {
        self.pending.push((earlier, commands));
    }

    /// The deferred teardowns, last first: the environment put back, then the
    /// commands (CST stops a teardown at its first command that cannot start and only
    /// logs it; so does this, returning the problems).
    pub async fn teardown_all(&mut self, timeout: Duration) -> Vec<HostError> {
        let mut problems = Vec::new();
        while let Some((earlier, commands)) = self.pending.pop() {
            self.reset(earlier);
            for command in &commands {
                if let Err(error) = self.run(command, &[], timeout).await {
                    problems.push(error);
                    break;
                }
            }
        }
        problems
    }

    /// CST's `ProcessCommand`: `vars` set (expanded) for this command only, then the
    /// program run from its argv with the environment, stdin closed, output kept up to
    /// [`CaptureLimits`]' bound (the tail), killed with its process group at `timeout`.
    /// Returns the exit code (`-1` for a signal, as Go's `ExitStatus()`), stdout, stderr.
    pub async fn run(
        &mut self,
        argv: &[String],
        vars: &[EnvVar],
        timeout: Duration,
    ) -> Result<(i64, String, String), HostError> {
        let earlier = self.set_vars(vars);
        let result = self.spawn(argv, timeout).await;
        self.reset(earlier);
        result
    }

    async fn spawn(
        &self,
        argv: &[String],
        timeout: Duration,
    ) -> Result<(i64, String, String), HostError> {
        let Some((program, args)) = argv.split_first() else {
            return Err(HostError::Empty);
        };
        let mut command = crate::process::Command::new(program).args(args);
        for (key, value) in &self.changes {
            command = match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        // Its own process group: a timeout kills everything it started.
        let limit = CaptureLimits::default().max_bytes;
        match command.output(timeout, limit).await {
            // Go's `ExitCode()` is -1 for a process a signal ended, and CST reports that.
            Ok(finished) => Ok((
                if finished.signal.is_some() {
                    -1
                } else {
                    i64::from(finished.code)
                },
                finished.stdout.text,
                finished.stderr.text,
            )),
            Err(crate::process::ProcessError::Timeout { .. }) => Err(HostError::Timeout {
                program: program.clone(),
                timeout,
            }),
            Err(
                crate::process::ProcessError::Spawn { source, .. }
                | crate::process::ProcessError::Wait { source, .. },
            ) => Err(HostError::Spawn {
                program: program.clone(),
                reason: go_error_text(&source),
            }),
        }
    }
}

/// `os.Lstat(path)`: the entry itself, a final symlink not followed; the error as Go
/// words it (`lstat /x: no such file or directory`).
pub fn stat(path: &str) -> Result<FileInfo, String> {
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
    let metadata = std::fs::symlink_metadata(path)
        .map_err(|error| format!("lstat {path}: {}", go_error_text(&error)))?;
    let kind = metadata.file_type();
    let kind = if kind.is_dir() {
        Kind::Dir
    } else if kind.is_symlink() {
        Kind::Symlink
    } else if kind.is_char_device() {
        Kind::CharDevice
    } else if kind.is_block_device() {
        Kind::BlockDevice
    } else if kind.is_fifo() {
        Kind::Fifo
    } else if kind.is_socket() {
        Kind::Socket
    } else {
        Kind::File
    };
    let link = if kind == Kind::Symlink {
        std::fs::read_link(path)
            .map(|target| target.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok(FileInfo {
        kind,
        mode: metadata.mode() & 0o7777,
        uid: u64::from(metadata.uid()),
        gid: u64::from(metadata.gid()),
        link,
    })
}

/// `os.ReadFile(path)` (symlinks followed), at most [`MAX_CONTENT_BYTES`]; opened
/// non-blocking, so a FIFO without a writer reads as empty instead of hanging, and a
/// device that never ends is cut at the bound.
pub fn read(path: &str) -> Result<Arc<Vec<u8>>, String> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|error| format!("open {path}: {}", go_error_text(&error)))?;
    let mut bytes = Vec::new();
    let read = file.take(MAX_CONTENT_BYTES + 1).read_to_end(&mut bytes);
    match read {
        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
        Err(error) => return Err(format!("read {path}: {}", go_error_text(&error))),
        Ok(_) => {}
    }
    if bytes.len() as u64 > MAX_CONTENT_BYTES {
        return Err(format!(
            "{path} holds more than {MAX_CONTENT_BYTES} bytes; dockproof reads at most that much of a file for a test"
        ));
    }
    Ok(Arc::new(bytes))
}

/// The directories directly inside `path` (`os.ReadDir`, sorted; a symlink to a
/// directory is not one, as `DirEntry.Info()` is an lstat).
pub fn dirs_in(path: &str) -> Result<Vec<String>, String> {
    let entries = std::fs::read_dir(path)
        .map_err(|error| format!("open {path}: {}", go_error_text(&error)))?;
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| format!("readdir {path}: {}", go_error_text(&error)))?;
        if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            dirs.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    dirs.sort();
    Ok(dirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(key: &str, value: &str) -> EnvVar {
        EnvVar {
            key: key.into(),
            value: value.into(),
            is_regex: false,
        }
    }

    #[test]
    fn the_environment_changes_as_csts_process_environment_does() {
        let mut env = HostEnv::default();
        let unset = "DOCKPROOF_CST_HOST_TEST_UNSET";
        assert_eq!(env.get(unset), "");
        // SetEnvVars expands against the environment as it is, and remembers the old value.
        let earlier = env.set_vars(&[
            var(unset, "a"),
            var(unset, "${DOCKPROOF_CST_HOST_TEST_UNSET}b"),
        ]);
        assert_eq!(env.get(unset), "ab");
        assert_eq!(
            earlier,
            [
                (unset.to_owned(), String::new()),
                (unset.to_owned(), "a".to_owned())
            ]
        );
        // Reset in order: the last earlier value wins ("a"), as CST's loop does.
        env.reset(earlier);
        assert_eq!(env.get(unset), "a");
        // An earlier empty value means unset.
        env.reset(vec![(unset.to_owned(), String::new())]);
        assert_eq!(env.changes.get(unset), Some(&None));
        // Globals accumulate when they name themselves (CST sets them before every test).
        env.set_globals(&[var(unset, "${DOCKPROOF_CST_HOST_TEST_UNSET}x")]);
        env.set_globals(&[var(unset, "${DOCKPROOF_CST_HOST_TEST_UNSET}x")]);
        assert_eq!(env.get(unset), "xx");
    }

    #[tokio::test]
    async fn commands_run_from_their_argv_with_the_environment_and_a_timeout() {
        let mut env = HostEnv::default();
        env.set_globals(&[var("DOCKPROOF_CST_HOST_A", "one")]);
        let argv: Vec<String> = [
            "sh",
            "-c",
            "echo \"$DOCKPROOF_CST_HOST_A $DOCKPROOF_CST_HOST_B\"; echo e >&2; exit 3",
        ]
        .map(String::from)
        .to_vec();
        let (code, stdout, stderr) = env
            .run(
                &argv,
                &[var("DOCKPROOF_CST_HOST_B", "two")],
                Duration::from_secs(20),
            )
            .await
            .unwrap();
        assert_eq!(
            (code, stdout.as_str(), stderr.as_str()),
            (3, "one two\n", "e\n")
        );
        // The command's own variables are gone afterwards.
        assert_eq!(env.changes.get("DOCKPROOF_CST_HOST_B"), Some(&None));
        // A `;` is an argument, not a shell's: no shell reads the argv.
        let (_, stdout, _) = env
            .run(
                &["echo".into(), "a;".into(), "$(id)".into()],
                &[],
                Duration::from_secs(20),
            )
            .await
            .unwrap();
        assert_eq!(stdout, "a; $(id)\n");
        let missing = env
            .run(
                &["no-such-program-dockproof".into()],
                &[],
                Duration::from_secs(20),
            )
            .await
            .unwrap_err();
        assert!(
            missing
                .to_string()
                .starts_with("error starting command: no-such-program-dockproof: "),
            "{missing}"
        );
        let started = std::time::Instant::now();
        let slow = env
            .run(
                &["sh".into(), "-c".into(), "sleep 30 & sleep 30".into()],
                &[],
                Duration::from_millis(300),
            )
            .await
            .unwrap_err();
        assert!(matches!(slow, HostError::Timeout { .. }), "{slow}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn output_is_bounded_to_its_tail() {
        let mut env = HostEnv::default();
        let limit = CaptureLimits::default().max_bytes;
        let script = format!(
            "head -c {} /dev/zero | tr '\\0' a; echo; echo end",
            limit * 2
        );
        let (code, stdout, _) = env
            .run(
                &["sh".into(), "-c".into(), script],
                &[],
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        assert_eq!(code, 0);
        assert!(stdout.len() <= limit, "{} bytes kept", stdout.len());
        assert!(stdout.ends_with("end\n"));
    }

    #[test]
    fn files_are_stat_and_read_as_go_does_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().display().to_string();
        std::fs::write(dir.path().join("f"), "hello").unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::os::unix::fs::symlink("f", dir.path().join("l")).unwrap();
        std::os::unix::fs::symlink("d", dir.path().join("ld")).unwrap();
        nix::unistd::mkfifo(
            &dir.path().join("p"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        assert_eq!(stat(&format!("{root}/l")).unwrap().kind, Kind::Symlink);
        assert_eq!(stat(&format!("{root}/l")).unwrap().link, "f");
        assert_eq!(
            stat(&format!("{root}/p")).unwrap().mode_string(),
            "prw-r--r--"
        );
        assert_eq!(
            stat(&format!("{root}/nothing")).unwrap_err(),
            format!("lstat {root}/nothing: no such file or directory")
        );
        assert_eq!(read(&format!("{root}/l")).unwrap().as_slice(), b"hello");
        // A FIFO without a writer does not hang the test.
        assert_eq!(read(&format!("{root}/p")).unwrap().as_slice(), b"");
        assert!(
            read(&format!("{root}/d"))
                .unwrap_err()
                .contains("is a directory")
        );
        assert_eq!(dirs_in(&root).unwrap(), ["d"]);
        let endless = read("/dev/zero").unwrap_err();
        assert!(endless.contains("more than"), "{endless}");
    }

    #[test]
    fn the_metadata_file_is_an_image_configuration_or_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.json");
        std::fs::write(
            &good,
            r#"{"architecture":"amd64","config":{"Env":["A=1"]}}"#,
        )
        .unwrap();
        assert_eq!(read_metadata(&good).unwrap()["Env"][0], "A=1");
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "Env: [A=1]").unwrap();
        let message = read_metadata(&bad).unwrap_err().to_string();
        assert!(message.contains("bad.json: not JSON"), "{message}");
        let message = read_metadata(&dir.path().join("none.json"))
            .unwrap_err()
            .to_string();
        assert!(
            message.ends_with("none.json: no such file or directory"),
            "{message}"
        );
    }
}
