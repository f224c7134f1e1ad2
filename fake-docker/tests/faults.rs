//! Fault injection (`FAKE_DOCKER_FAULTS`, `FAKE_DOCKER_FAULTS_FILE`): each fault answers
//! with the real docker CLI's exit code and stderr shape, as measured and recorded in
//! docs/fake-docker.md, and triggers count calls deterministically.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::prelude::*;
use tempfile::TempDir;

const NO_DAEMON: &str = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n";
const IMAGE: &str = "dockproof/job-runner:1";

struct Fake {
    dir: TempDir,
}

impl Fake {
    fn new() -> Fake {
        Fake {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// fake-docker with `faults` as `FAKE_DOCKER_FAULTS` (empty: none).
    fn cmd(&self, faults: &str, args: &[&str]) -> Command {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut command = Command::cargo_bin("fake-docker").expect("binary");
        command
            .args(args)
            .current_dir(&root)
            .env("FAKE_DOCKER_STATE", self.path("state"))
            .env("FAKE_DOCKER_IMAGES", root.join("fixtures/fake-images"))
            .env("FAKE_DOCKER_FAULTS", faults)
            .env_remove("FAKE_DOCKER_FAULTS_FILE")
            .env_remove("FAKE_DOCKER_FAULTS_SCOPE")
            .env_remove("DOCKER_HOST")
            .timeout(Duration::from_secs(60));
        command
    }

    fn stdout(&self, args: &[&str]) -> String {
        let output = self.cmd("", args).output().expect("run fake-docker");
        String::from_utf8_lossy(&output.stdout)
            .trim_end()
            .to_string()
    }

    /// The exit codes of `count` runs of `args` under `faults`.
    fn codes(&self, faults: &str, args: &[&str], count: usize) -> Vec<i32> {
        (0..count)
            .map(|_| {
                self.cmd(faults, args)
                    .output()
                    .expect("run")
                    .status
                    .code()
                    .unwrap_or(-1)
            })
            .collect()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        // Never leave container processes behind.
        let ids = self.stdout(&["ps", "-aq"]);
        for id in ids.lines() {
            let _ = self.cmd("", &["rm", "-f", id]).output();
        }
    }
}

#[test]
fn daemon_unreachable_answers_like_the_cli_without_a_daemon() {
    let fake = Fake::new();
    let faults = "*:daemon-unreachable";
    fake.cmd(faults, &["ps"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(NO_DAEMON);
    fake.cmd(faults, &["run", "--rm", IMAGE, "echo", "hi"])
        .assert()
        .code(125)
        .stderr(format!(
            "docker: {}\nRun 'docker run --help' for more information\n",
            NO_DAEMON
        ));
    fake.cmd(faults, &["start", "c1"])
        .assert()
        .code(1)
        .stderr(format!(
            "{NO_DAEMON}Error: failed to start containers: c1\n"
        ));
    fake.cmd(faults, &["inspect", "c1"])
        .assert()
        .code(1)
        .stdout("[]\n");
    // The address printed is DOCKER_HOST's; a socket that is not there needs no fault.
    fake.cmd("", &["ps"])
        .env("DOCKER_HOST", "unix:///nonexistent.sock")
        .assert()
        .code(1)
        .stderr("Cannot connect to the Docker daemon at unix:///nonexistent.sock. Is the docker daemon running?\n");
    // A rule for another command does not touch this one.
    fake.cmd("pull:daemon-unreachable", &["ps"])
        .assert()
        .success();
}

#[test]
fn invalid_fault_specs_exit_125_naming_the_rule() {
    let fake = Fake::new();
    fake.cmd("run:oom;start:zap", &["ps"])
        .assert()
        .code(125)
        .stderr(predicate::str::starts_with(
            "fake-docker: invalid fault specification: rule 2 `start:zap`: unknown fault `zap`",
        ));
    fake.cmd("cp:oom", &["ps"])
        .assert()
        .code(125)
        .stderr(predicate::str::contains("`oom` does not apply to `cp`"));
    fake.cmd("run:oom:every=x", &["version"])
        .assert()
        .code(125)
        .stderr(predicate::str::contains("`every=x`: not a number"));
    let file = fake.path("faults.yaml");
    std::fs::write(
        &file,
        "faults:\n  - { command: run, fault: oom, colour: red }\n",
    )
    .expect("write");
    fake.cmd("", &["ps"])
        .env("FAKE_DOCKER_FAULTS_FILE", &file)
        .assert()
        .code(125)
        .stderr(predicate::str::contains("invalid fault specification"));
}

#[test]
fn image_missing_is_no_such_image_or_pull_access_denied() {
    let fake = Fake::new();
    let denied = "pull access denied for dockproof/job-runner, repository does not exist or may require 'docker login': denied: requested access to the resource is denied";
    fake.cmd(
        "create:image-missing",
        &["create", "--pull", "never", IMAGE],
    )
    .assert()
    .code(1)
    .stderr("Error response from daemon: No such image: dockproof/job-runner:1\n");
    fake.cmd("run:image-missing", &["run", IMAGE])
        .assert()
        .code(125)
        .stderr(format!("Unable to find image 'dockproof/job-runner:1' locally\ndocker: Error response from daemon: {denied}\n\nRun 'docker run --help' for more information\n"));
    fake.cmd("pull:pull-denied", &["pull", IMAGE])
        .assert()
        .code(1)
        .stderr(format!("Error response from daemon: {denied}\n"));
    // `@TARGET` limits the rule to matching images.
    fake.cmd("create@dockproof/web:*:image-missing", &["create", IMAGE])
        .assert()
        .success();
    fake.cmd("create@dockproof/job-*:image-missing", &["create", IMAGE])
        .assert()
        .code(1);
}

#[test]
fn build_fail_stops_at_the_step_with_its_code_and_log() {
    let fake = Fake::new();
    fake.cmd(
        "build:build-fail:step=2:code=2:log=make failed",
        &["build", "-t", "x/y:1", "fixtures/build/multi-stage"],
    )
    .assert()
    .code(2)
    .stdout(predicate::str::contains("Step 2/"))
    .stdout(predicate::str::contains("Step 3/").not())
    .stdout(predicate::str::contains("\u{1b}[91mmake failed\n\u{1b}[0m"))
    .stderr(predicate::str::contains("returned a non-zero code: 2\n"));
    fake.cmd("", &["build", "-t", "x/y:1", "fixtures/build/multi-stage"])
        .assert()
        .success();
}

#[test]
fn port_allocated_refuses_the_start() {
    let fake = Fake::new();
    fake.cmd("run:port-allocated", &["run", "--name", "p1", "-p", "8080:80", IMAGE, "echo"])
        .assert()
        .code(125)
        .stderr(predicate::str::is_match(
            r"^docker: Error response from daemon: driver failed programming external connectivity on endpoint p1 \([0-9a-f]{64}\): Bind for 0\.0\.0\.0:8080 failed: port is already allocated\n",
        ).expect("regex"));
    assert_eq!(
        fake.stdout(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "p1"
        ]),
        "created 128"
    );
    fake.cmd("start:port-allocated", &["start", "p1"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "port is already allocated\nError: failed to start containers: p1\n",
        ));
}

#[test]
fn oom_kills_the_container_as_it_starts() {
    let fake = Fake::new();
    fake.cmd(
        "run:oom",
        &["run", "--name", "o1", "-m", "64m", IMAGE, "echo", "hi"],
    )
    .assert()
    .code(137)
    .stdout("");
    assert_eq!(
        fake.stdout(&[
            "inspect",
            "-f",
            "{{.State.OOMKilled}} {{.State.ExitCode}} {{.State.Status}}",
            "o1"
        ]),
        "true 137 exited"
    );
    // `run` rules cover `start` (create + start, as dockproof runs containers).
    fake.cmd("", &["create", "--name", "o2", IMAGE, "echo", "hi"])
        .assert()
        .success();
    fake.cmd("run:oom", &["start", "o2"]).assert().success();
    assert_eq!(fake.stdout(&["wait", "o2"]), "137");
}

#[test]
fn exit_immediately_ends_with_the_code_and_log_line() {
    let fake = Fake::new();
    fake.cmd(
        "run:exit-immediately:code=3:log=fatal - no config",
        &["run", "--name", "e1", IMAGE, "sleep", "100"],
    )
    .assert()
    .code(3)
    .stdout("")
    .stderr("fatal - no config\n");
    fake.cmd("", &["logs", "e1"])
        .assert()
        .success()
        .stderr("fatal - no config\n");
}

#[test]
fn slow_start_delays_the_start() {
    let fake = Fake::new();
    fake.cmd("", &["create", "--name", "s1", IMAGE, "echo", "hi"])
        .assert()
        .success();
    let started = Instant::now();
    fake.cmd("start:slow-start:delay=700ms", &["start", "s1"])
        .assert()
        .success()
        .stdout("s1\n");
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );
    fake.cmd("", &["logs", "s1"]).assert().stdout("hi\n");
}

#[test]
fn hang_ignores_sigterm_until_stop_kills_it() {
    let fake = Fake::new();
    fake.cmd(
        "run:hang",
        &["run", "-d", "--name", "h1", IMAGE, "echo", "hi"],
    )
    .assert()
    .success();
    assert_eq!(
        fake.stdout(&["inspect", "-f", "{{.State.Running}}", "h1"]),
        "true"
    );
    let started = Instant::now();
    fake.cmd("", &["stop", "-t", "1", "h1"])
        .assert()
        .success()
        .stdout("h1\n");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "SIGTERM was honoured"
    );
    assert_eq!(
        fake.stdout(&["inspect", "-f", "{{.State.ExitCode}}", "h1"]),
        "137"
    );
    fake.cmd("", &["logs", "h1"]).assert().stdout("");
}

#[test]
fn no_stop_leaves_the_container_running() {
    let fake = Fake::new();
    let id = fake.stdout(&["run", "-d", "--name", "n1", IMAGE, "sleep", "300"]);
    let event = "tried to kill container, but did not receive an exit event";
    fake.cmd("stop:no-stop", &["stop", "-t", "0", "n1"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(format!(
            "Error response from daemon: cannot stop container: n1: {event}\n"
        ));
    fake.cmd("kill:no-stop", &["kill", "n1"])
        .assert()
        .code(1)
        .stderr(format!(
            "Error response from daemon: Cannot kill container: n1: {event}\n"
        ));
    fake.cmd("rm:no-stop", &["rm", "-f", "n1"])
        .assert()
        .code(1)
        .stderr(format!("Error response from daemon: Could not kill running container {id}, cannot remove - {event}\n"));
    assert_eq!(
        fake.stdout(&["inspect", "-f", "{{.State.Running}}", "n1"]),
        "true"
    );
    fake.cmd("", &["rm", "-f", "n1"]).assert().success();
}

#[test]
fn cp_faults_truncate_corrupt_and_fill_the_disk() {
    let fake = Fake::new();
    fake.cmd("", &["create", "--name", "c1", IMAGE])
        .assert()
        .success();
    let source = fake.path("in.txt");
    std::fs::write(&source, "0123456789").expect("write");
    let source_text = source.to_string_lossy().into_owned();
    fake.cmd("cp:disk-full", &["cp", &source_text, "c1:/in.txt"])
        .assert()
        .code(1)
        .stderr("Error response from daemon: Error processing tar file(exit status 1): write /in.txt: no space left on device\n");
    fake.cmd("", &["cp", &source_text, "c1:/in.txt"])
        .assert()
        .success();
    let out = |name: &str| fake.path(name).to_string_lossy().into_owned();
    fake.cmd("cp:truncate:bytes=4", &["cp", "c1:/in.txt", &out("t.txt")])
        .assert()
        .success()
        .stderr("");
    assert_eq!(std::fs::read(fake.path("t.txt")).expect("read"), b"0123");
    fake.cmd("cp:corrupt", &["cp", "c1:/in.txt", &out("x.txt")])
        .assert()
        .success();
    let corrupted = std::fs::read(fake.path("x.txt")).expect("read");
    assert_eq!(corrupted.len(), 10);
    assert_ne!(corrupted, b"0123456789");
    fake.cmd("cp:disk-full", &["cp", "c1:/in.txt", &out("d.txt")])
        .assert()
        .code(1)
        .stderr(format!("write {}: no space left on device\n", out("d.txt")));
    assert_eq!(
        std::fs::read(fake.path("d.txt")).expect("read").len(),
        5,
        "half was written"
    );
    fake.cmd("cp:disk-full", &["cp", "c1:/in.txt", "-"])
        .assert()
        .code(1)
        .stderr("write /dev/stdout: no space left on device\n");
    // Without faults the copy is whole.
    fake.cmd("", &["cp", "c1:/in.txt", &out("ok.txt")])
        .assert()
        .success();
    assert_eq!(
        std::fs::read(fake.path("ok.txt")).expect("read"),
        b"0123456789"
    );
}

#[test]
fn triggers_count_matching_calls_in_the_state_directory() {
    let fake = Fake::new();
    assert_eq!(
        fake.codes("ps:daemon-unreachable:first=2", &["ps"], 4),
        [1, 1, 0, 0]
    );
    assert_eq!(
        fake.codes("ps:daemon-unreachable:every=3", &["ps"], 6),
        [0, 0, 1, 0, 0, 1]
    );
    // Calls of other commands do not advance a rule's counter.
    let faults = "images:daemon-unreachable:every=2";
    assert_eq!(fake.codes(faults, &["ps"], 3), [0, 0, 0]);
    assert_eq!(fake.codes(faults, &["images"], 2), [0, 1]);
    // A scope keeps its own counters.
    let scoped = |scope: &str| {
        fake.cmd("version:daemon-unreachable:first=1", &["version"])
            .env("FAKE_DOCKER_FAULTS_SCOPE", scope)
            .output()
            .expect("run")
            .status
            .code()
    };
    assert_eq!(
        [scoped("a"), scoped("a"), scoped("b")],
        [Some(1), Some(0), Some(1)]
    );
}

#[test]
fn probability_with_a_seed_gives_the_same_calls_every_time() {
    let faults = "ps:daemon-unreachable:p=0.3,seed=11";
    let first = Fake::new().codes(faults, &["ps"], 20);
    let second = Fake::new().codes(faults, &["ps"], 20);
    assert_eq!(first, second);
    let failed = first.iter().filter(|&&code| code == 1).count();
    assert!((1..20).contains(&failed), "{first:?}");
    let other_seed = Fake::new().codes("ps:daemon-unreachable:p=0.3,seed=12", &["ps"], 20);
    assert_ne!(first, other_seed);
}

#[test]
fn concurrent_calls_are_each_counted_once() {
    let fake = Fake::new();
    fake.stdout(&["ps"]);
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let mut command =
                std::process::Command::new(assert_cmd::cargo::cargo_bin("fake-docker"));
            command
                .arg("ps")
                .env("FAKE_DOCKER_STATE", fake.path("state"))
                .env("FAKE_DOCKER_FAULTS", "ps:daemon-unreachable:every=4")
                .env_remove("DOCKER_HOST")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            command.spawn().expect("spawn")
        })
        .collect();
    let failed = handles
        .into_iter()
        .map(|mut child| child.wait().expect("wait").code())
        .filter(|code| *code == Some(1))
        .count();
    assert_eq!(failed, 4, "every 4th of 16 calls");
}

#[test]
fn a_faults_file_takes_values_inline_rules_cannot() {
    let fake = Fake::new();
    let file = fake.path("faults.yaml");
    std::fs::write(
        &file,
        "faults:\n  - { command: run, target: \"dockproof/job-*\", fault: exit-immediately, code: 4, log: \"fatal: a, b; c\" }\n",
    )
    .expect("write");
    fake.cmd("", &["run", IMAGE, "echo", "hi"])
        .env("FAKE_DOCKER_FAULTS_FILE", &file)
        .assert()
        .code(4)
        .stderr("fatal: a, b; c\n");
}
