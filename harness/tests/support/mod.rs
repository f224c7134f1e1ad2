//! Shared by the integration tests: where the binaries and fixtures are, and
//! whether a real Docker daemon is reachable.

#![allow(dead_code)]

pub mod netns;
pub mod oci;
pub mod sshd;
pub mod tls;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// The repository root.
pub fn root() -> PathBuf {
    // Cargo sets CARGO_MANIFEST_DIR when it runs the program too; prefer that over the
    // build-time value, which is stale when a shared target dir holds a build from another clone.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest_dir
        .parent()
        .expect("harness lives in the workspace")
        .to_path_buf()
}

/// The dockproof binary under test.
pub fn dockproof() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dockproof"))
}

/// The fake-docker binary: `DOCKPROOF_FAKE_DOCKER`, or built next to dockproof
/// (cargo only builds the tested package's binaries, so build it when missing).
pub fn fake_docker() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(path) = std::env::var_os("DOCKPROOF_FAKE_DOCKER") {
            return PathBuf::from(path);
        }
        let sibling = dockproof().with_file_name("fake-docker");
        let status = Command::new(env!("CARGO"))
            .current_dir(root())
            .args(["build", "--quiet", "-p", "fake-docker"])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building fake-docker failed");
        assert!(
            sibling.is_file(),
            "fake-docker was not built at {}",
            sibling.display()
        );
        sibling
    })
    .clone()
}

/// Where runs under `work_dir` record their history: in it, not in the user's data dir.
pub fn history_db(work_dir: &Path) -> PathBuf {
    work_dir.join("history.db")
}

/// `dockproof` with the fake backend wired to this checkout's fixtures.
pub fn dockproof_fake(work_dir: &Path) -> Command {
    let mut command = Command::new(dockproof());
    command
        .current_dir(root())
        .env_remove("FAKE_DOCKER_STATE")
        // Runs record history: keep it out of the user's data dir.
        .env("DOCKPROOF_HISTORY", history_db(work_dir))
        .arg("run")
        .args(["--backend", "fake"])
        .arg("--fake-docker")
        .arg(fake_docker())
        .arg("--fake-images")
        .arg(root().join("fixtures/fake-images"))
        .arg("--work-dir")
        .arg(work_dir);
    command
}

/// `dockproof cst` on `backend` with this checkout's fixtures, no history.
pub fn cst_command(backend: &str, work_dir: &Path) -> Command {
    let mut command = Command::new(dockproof());
    command
        .current_dir(root())
        .env_remove("FAKE_DOCKER_STATE")
        .args(["cst", "--no-history", "--backend", backend])
        .arg("--fake-docker")
        .arg(fake_docker())
        .arg("--fake-images")
        .arg(root().join("fixtures/fake-images"))
        .arg("--fixture-images")
        .arg(root().join("fixtures/images"))
        .arg("--work-dir")
        .arg(work_dir);
    command
}

/// (test name, passed) per JUnit test case, in report order.
pub fn junit_verdicts(junit: &Path) -> Result<Vec<(String, bool)>, String> {
    let text = std::fs::read_to_string(junit)
        .map_err(|error| format!("cannot read {}: {error}", junit.display()))?;
    let document = roxmltree::Document::parse(&text)
        .map_err(|error| format!("{}: {error}", junit.display()))?;
    Ok(document
        .descendants()
        .filter(|node| node.has_tag_name("testcase"))
        .map(|case| {
            (
                case.attribute("name").unwrap_or_default().to_owned(),
                !case.children().any(|child| child.has_tag_name("failure")),
            )
        })
        .collect())
}

/// `dockproof` against the real daemon through the docker CLI.
pub fn dockproof_real(work_dir: &Path) -> Command {
    let mut command = Command::new(dockproof());
    command
        .current_dir(root())
        .env("DOCKPROOF_HISTORY", history_db(work_dir))
        .arg("run")
        .args(["--backend", "docker-cli"])
        .arg("--fixture-images")
        .arg(root().join("fixtures/images"))
        .arg("--work-dir")
        .arg(work_dir);
    command
}

/// `dockproof` against the real daemon through its Engine API (no docker binary involved).
pub fn dockproof_api(work_dir: &Path) -> Command {
    let mut command = Command::new(dockproof());
    command
        .current_dir(root())
        .env("DOCKPROOF_HISTORY", history_db(work_dir))
        .arg("run")
        .args(["--backend", "docker-api"])
        .arg("--fixture-images")
        .arg(root().join("fixtures/images"))
        .arg("--work-dir")
        .arg(work_dir);
    command
}

/// A `[real-daemon]` test: ignored when no daemon answers, unless
/// `DOCKPROOF_REQUIRE_DOCKER=1`, where a missing daemon is its failure.
pub fn real_daemon_trial(
    name: impl Into<String>,
    test: impl FnOnce() -> Result<(), libtest_mimic::Failed> + Send + 'static,
) -> libtest_mimic::Trial {
    let daemon = docker_available();
    let ignored = daemon.is_err() && !docker_required();
    libtest_mimic::Trial::test(name, move || match daemon {
        Err(reason) => {
            Err(format!("DOCKPROOF_REQUIRE_DOCKER=1 but no Docker daemon answers: {reason}").into())
        }
        Ok(()) => test(),
    })
    .with_kind("real-daemon")
    .with_ignored_flag(ignored)
}

/// A `[real-daemon]` test that also needs docker compose (the plugin or `docker-compose`):
/// ignored when either is missing, unless `DOCKPROOF_REQUIRE_DOCKER=1`, where that is its failure.
pub fn compose_trial(
    name: impl Into<String>,
    test: impl FnOnce() -> Result<(), libtest_mimic::Failed> + Send + 'static,
) -> libtest_mimic::Trial {
    let ready = docker_available().and_then(|()| compose_available());
    let ignored = ready.is_err() && !docker_required();
    libtest_mimic::Trial::test(name, move || match ready {
        Err(reason) => Err(format!("DOCKPROOF_REQUIRE_DOCKER=1 but {reason}").into()),
        Ok(()) => test(),
    })
    .with_kind("real-daemon")
    .with_ignored_flag(ignored)
}

/// Ok when `docker compose version` or `docker-compose version` answers, otherwise why not.
pub fn compose_available() -> Result<(), String> {
    let answers = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    if answers("docker", &["compose", "version"]) || answers("docker-compose", &["version"]) {
        Ok(())
    } else {
        Err(dockproof::compose::NOT_FOUND.to_owned())
    }
}

/// Containers, networks and volumes on the real daemon carrying `label` (`key=value`), as `KIND ID`.
pub fn labelled_leftovers(label: &str) -> Result<Vec<String>, String> {
    let mut found = Vec::new();
    for (kind, args) in [
        ("container", vec!["ps", "--all", "--quiet", "--no-trunc"]),
        ("network", vec!["network", "ls", "--quiet"]),
        ("volume", vec!["volume", "ls", "--quiet"]),
    ] {
        let output = Command::new("docker")
            .args(&args)
            .args(["--filter", &format!("label={label}")])
            .output()
            .map_err(|error| format!("cannot run docker: {error}"))?;
        if !output.status.success() {
            return Err(format!(
                "`docker {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        found.extend(
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .filter(|line| !line.trim().is_empty())
                .map(|id| format!("{kind} {id}")),
        );
    }
    Ok(found)
}

/// The local daemon's unix socket (`DOCKER_HOST` when it is a `unix://` address).
pub fn daemon_socket() -> PathBuf {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|host| host.strip_prefix("unix://").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/run/docker.sock"))
}

/// `dockproof run` on the real backend `backend` (`docker-cli` or `docker-api`).
pub fn dockproof_on(backend: &str, work_dir: &Path) -> Command {
    match backend {
        "docker-cli" => dockproof_real(work_dir),
        _ => dockproof_api(work_dir),
    }
}

/// Whether tests that need a real daemon must run (CI sets this).
pub fn docker_required() -> bool {
    std::env::var("DOCKPROOF_REQUIRE_DOCKER").is_ok_and(|value| value == "1")
}

/// Write an executable shell script at `path`: `body` after `#!/bin/sh` (a wrapper in
/// front of docker or fake-docker that logs its calls, say).
pub fn write_script(path: &Path, body: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

/// Ok when `docker info` answers within 10 s, otherwise why not.
pub fn docker_available() -> Result<(), String> {
    static ANSWER: OnceLock<Result<(), String>> = OnceLock::new();
    ANSWER
        .get_or_init(|| {
            let mut child = Command::new("docker")
                .args(["info", "--format", "{{.ServerVersion}}"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|error| format!("cannot run `docker`: {error}"))?;
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                match child.try_wait() {
                    Ok(Some(status)) if status.success() => return Ok(()),
                    Ok(Some(_)) => {
                        let output = child
                            .wait_with_output()
                            .map_err(|error| error.to_string())?;
                        return Err(format!(
                            "`docker info` failed: {}",
                            String::from_utf8_lossy(&output.stderr).trim()
                        ));
                    }
                    Ok(None) if std::time::Instant::now() > deadline => {
                        let _ = child.kill();
                        return Err("`docker info` did not answer within 10 s".into());
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                    Err(error) => return Err(error.to_string()),
                }
            }
        })
        .clone()
}

/// Build the fixture image `name` (from fixtures/images) on the real daemon unless it is there.
pub fn ensure_fixture_image(name: &str) -> Result<(), String> {
    let fixtures = dockproof::fixtures::FixtureImages::scan(&root().join("fixtures/images"), true)
        .map_err(|error| error.to_string())?;
    let backend = dockproof::backend::cli::CliBackend::new("docker-cli", "docker", Vec::new());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| error.to_string())?;
    runtime
        .block_on(fixtures.ensure(&backend, name))
        .map(drop)
        .map_err(|error| error.to_string())
}

/// The shipped scenario files (scenarios/ and its subdirectories).
pub fn shipped_scenarios() -> Vec<PathBuf> {
    dockproof::scenario::discover(&[root().join("scenarios")]).expect("scenarios/ is readable")
}

/// A scenario's test name: its path under scenarios/ without `.yaml`.
pub fn scenario_id(path: &Path) -> String {
    let relative = path.strip_prefix(root().join("scenarios")).unwrap_or(path);
    relative.with_extension("").display().to_string()
}

/// Text of a finished command, for failure messages.
pub fn describe(output: &std::process::Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Writes `text` to `dir/name` and returns that path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A fresh temporary directory holding `name` with `text`: (the directory, the file).
pub fn temp_file(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), name, text);
    (dir, path)
}

/// Asserts that a finished command exited with `code`, showing its output when not.
#[track_caller]
pub fn assert_exit(output: &std::process::Output, code: i32) {
    assert_eq!(output.status.code(), Some(code), "{}", describe(output));
}

/// Asserts that a finished command's stdout contains `text`, showing its output when not.
#[track_caller]
pub fn assert_stdout_contains(output: &std::process::Output, text: &str) {
    assert!(
        String::from_utf8_lossy(&output.stdout).contains(text),
        "stdout lacks {text:?}: {}",
        describe(output)
    );
}

/// Asserts that a finished command's stderr contains `text`, showing its output when not.
#[track_caller]
pub fn assert_stderr_contains(output: &std::process::Output, text: &str) {
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(text),
        "stderr lacks {text:?}: {}",
        describe(output)
    );
}
