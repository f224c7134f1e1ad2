//! Running a measured process: wall time, exit status, and the peak resident
//! memory of that process alone, polled from /proc. (`wait4`'s `ru_maxrss` is
//! no use here: it folds in the parent's own high-water mark, inherited
//! through the spawn before exec, and every descendant the process reaped.)

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// What one measured run gave.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub wall: Duration,
    /// Exit code (128 + signal when killed).
    pub code: i32,
    /// `VmHWM` of the process itself, last seen before it exited (KiB), when polled.
    pub peak_rss_kib: Option<u64>,
}

impl Measured {
    pub fn seconds(&self) -> f64 {
        self.wall.as_secs_f64()
    }
}

/// Run `command` to completion within `timeout`, its stdout and stderr going to
/// `log_prefix.stdout` / `.stderr`. With `poll_rss`, its `VmHWM` is sampled
/// every few milliseconds while it runs.
pub fn run(
    command: &mut Command,
    timeout: Duration,
    log_prefix: &Path,
    poll_rss: bool,
) -> Result<Measured> {
    let stdout =
        File::create(log_prefix.with_extension("stdout")).context("cannot create a log file")?;
    let stderr =
        File::create(log_prefix.with_extension("stderr")).context("cannot create a log file")?;
    command.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
    let started = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("failed to start {command:?}"))?;
    let pid = child.id() as libc::pid_t;
    let (sender, receiver) = mpsc::channel();
    // Wait in a thread, so this one can poll /proc and enforce the timeout,
    // and the end is stamped the moment the process is reaped.
    std::thread::spawn(move || {
        let mut status = 0;
        // SAFETY: waiting for a child this process spawned and nobody else waits for.
        let reaped = unsafe { libc::waitpid(pid, &mut status, 0) };
        let _ = sender.send((Instant::now(), reaped, status));
    });
    let deadline = started + timeout;
    let mut peak_rss_kib = None;
    let (ended, reaped, status) = loop {
        match receiver.recv_timeout(Duration::from_millis(5)) {
            Ok(done) => break done,
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!("lost the waiter of {command:?}"),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if poll_rss && let Some(kib) = vm_hwm_kib(pid) {
            peak_rss_kib = Some(peak_rss_kib.unwrap_or(0).max(kib));
        }
        if Instant::now() > deadline {
            // Not reaped yet (the waiter has not answered), so the pid is still ours.
            let _ = child.kill();
            let _ = receiver.recv();
            bail!("{command:?} did not finish within {timeout:?}");
        }
    };
    if reaped != pid {
        bail!(
            "waiting for {command:?} failed: {}",
            std::io::Error::last_os_error()
        );
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    Ok(Measured {
        wall: ended - started,
        code,
        peak_rss_kib,
    })
}

/// Like [`run`], failing unless the exit code is 0 (showing the log's tail).
pub fn run_ok(
    command: &mut Command,
    timeout: Duration,
    log_prefix: &Path,
    poll_rss: bool,
) -> Result<Measured> {
    let measured = run(command, timeout, log_prefix, poll_rss)?;
    if measured.code != 0 {
        bail!(
            "{command:?} exited with {}:\n{}",
            measured.code,
            log_tail(log_prefix)
        );
    }
    Ok(measured)
}

/// The last lines of a measured run's stdout and stderr, for error messages.
pub fn log_tail(log_prefix: &Path) -> String {
    let mut text = String::new();
    for extension in ["stdout", "stderr"] {
        let content =
            std::fs::read_to_string(log_prefix.with_extension(extension)).unwrap_or_default();
        let lines: Vec<&str> = content.lines().collect();
        for line in &lines[lines.len().saturating_sub(15)..] {
            let shown: String = line.chars().take(300).collect();
            let more = if shown.len() < line.len() { " …" } else { "" };
            text.push_str(&format!("  {extension}: {shown}{more}\n"));
        }
    }
    text
}

fn vm_hwm_kib(pid: libc::pid_t) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The median of some durations (the mean of the middle two for an even count).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_exit_codes_and_memory() {
        let dir = tempfile::tempdir().unwrap();
        let measured = run(
            Command::new("sh").args(["-c", "exit 3"]),
            Duration::from_secs(10),
            &dir.path().join("a"),
            true,
        )
        .unwrap();
        assert_eq!(measured.code, 3);
        let measured = run(
            Command::new("sleep").arg("0.1"),
            Duration::from_secs(10),
            &dir.path().join("d"),
            true,
        )
        .unwrap();
        assert!(measured.peak_rss_kib.is_some_and(|kib| kib > 0));
        assert!(
            run_ok(
                &mut Command::new("false"),
                Duration::from_secs(10),
                &dir.path().join("b"),
                false
            )
            .is_err()
        );
        let error = run(
            Command::new("sleep").arg("5"),
            Duration::from_millis(100),
            &dir.path().join("c"),
            false,
        )
        .unwrap_err();
        assert!(error.to_string().contains("did not finish"), "{error}");
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
