//! Hostile argument lists through the real `fake-docker` binary: unbalanced and deeply
//! nested `--format` templates, a `-v` source with `..`, absurd and empty `--memory`
//! values, empty strings. Each exits with docker's code and message, in bounded time, and
//! the state directory stays consistent: only the containers made on purpose are in it,
//! and nothing is created outside it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;
use predicates::prelude::*;
use tempfile::TempDir;

const JOB_IMAGE: &str = "dockproof/job-runner:1";

struct Fake {
    dir: TempDir,
}

impl Fake {
    fn new() -> Fake {
        Fake {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut command = Command::cargo_bin("fake-docker").expect("binary");
        let images = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/fake-images");
        command
            .args(args)
            .env("FAKE_DOCKER_STATE", self.state())
            .env("FAKE_DOCKER_IMAGES", images)
            .env_remove("FAKE_DOCKER_FAULTS")
            // Every hostile case must end quickly; a hang fails here.
            .timeout(Duration::from_secs(30));
        command
    }

    /// The names `ps -a` lists, sorted, and the number of container records on disk.
    fn containers(&self) -> (Vec<String>, usize) {
        let output = self
            .cmd(&["ps", "-a", "--format", "{{.Names}}"])
            .output()
            .expect("ps");
        assert_eq!(
            output.status.code(),
            Some(0),
            "ps -a: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut names: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        names.sort();
        let records = std::fs::read_dir(self.state().join("containers"))
            .expect("containers dir")
            .count();
        (names, records)
    }
}

const USAGE_TAIL: &str = "\n\nUsage:  docker create [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun 'docker create --help' for more information\n";

#[test]
fn hostile_argument_lists_get_docker_answers_and_leave_the_state_consistent() {
    let fake = Fake::new();
    fake.cmd(&["run", "-d", "--name", "c1", JOB_IMAGE, "sleep", "30"])
        .assert()
        .success();
    let consistent = |fake: &Fake| assert_eq!(fake.containers(), (vec!["c1".to_string()], 1));
    consistent(&fake);

    // --format: unbalanced, unterminated, nested past the limit (a 120 KB argument).
    let template_error = |format: &str, message: &str| {
        // `docker inspect` exits 64 on a template that does not parse (measured, conformance).
        fake.cmd(&["inspect", "--format", format, "c1"])
            .assert()
            .code(64)
            .stdout("")
            .stderr(format!("template parsing error: template: :1: {message}\n"));
    };
    template_error("{{", "unclosed action");
    template_error("{{.State", "unclosed action");
    template_error("{{if .State}}x", "unexpected EOF");
    template_error("x{{end}}{{", "unclosed action");
    template_error("{{\"open}}", "unterminated quoted string");
    template_error(&"{{if .}}".repeat(15_000), "max expression depth exceeded");
    template_error(
        &format!(
            "{}{}",
            "{{range .Mounts}}".repeat(5_000),
            "{{end}}".repeat(5_000)
        ),
        "max expression depth exceeded",
    );
    fake.cmd(&["ps", "--format", "{{.Names}}}}{{"])
        .assert()
        .code(1)
        .stderr("template parsing error: template: :1: unclosed action\n");
    consistent(&fake);

    // -v with `..`: a relative source is a volume name, and this is none; nothing is
    // created beside the state directory.
    fake.cmd(&["run", "-d", "-v", "../../escape:/x", JOB_IMAGE, "true"]).assert().code(125).stderr(
        "docker: Error response from daemon: create ../../escape: \"../../escape\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path\n\nRun 'docker run --help' for more information\n",
    );
    fake.cmd(&["create", "-v", "..:/x", JOB_IMAGE]).assert().code(1).stderr(predicate::str::starts_with(
        "Error response from daemon: create ..: \"..\" includes invalid characters for a local volume name",
    ));
    assert!(!fake.dir.path().join("escape").exists());
    let beside: Vec<_> = std::fs::read_dir(fake.dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(beside, vec![std::ffi::OsString::from("state")]);
    consistent(&fake);

    // --memory: empty, negative, absurd.
    for (value, why) in [
        ("", "invalid size: ''"),
        ("-1", "invalid size: '-1'"),
        ("12qq", "invalid suffix: 'qq'"),
    ] {
        fake.cmd(&["create", "--memory", value, JOB_IMAGE])
            .assert()
            .code(125)
            .stderr(format!(
                "invalid argument \"{value}\" for \"-m, --memory\" flag: {why}{USAGE_TAIL}"
            ));
    }
    consistent(&fake);
    // A limit beyond i64 saturates; its default swap (twice the limit) wraps as in Go's
    // int64 instead of panicking.
    fake.cmd(&[
        "create",
        "--name",
        "big",
        "--memory",
        "99999999999999999999g",
        JOB_IMAGE,
        "true",
    ])
    .assert()
    .success();
    fake.cmd(&[
        "inspect",
        "--format",
        "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}",
        "big",
    ])
    .assert()
    .success()
    .stdout("9223372036854775807 -2\n");
    fake.cmd(&["rm", "big"]).assert().success().stdout("big\n");
    consistent(&fake);

    // Empty strings and huge numbers elsewhere.
    fake.cmd(&[""])
        .assert()
        .code(1)
        .stderr("docker: unknown command: docker \n\nRun 'docker --help' for more information\n");
    fake.cmd(&["run", "--name", "", JOB_IMAGE, "true"]).assert().code(125).stderr(predicate::str::starts_with(
        "docker: Error response from daemon: Invalid container name (), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
    ));
    fake.cmd(&["run", "--rm", "--name="])
        .assert()
        .code(1)
        .stderr(predicate::str::starts_with(
            "docker: 'docker run' requires at least 1 argument",
        ));
    fake.cmd(&["logs", "--tail", "99999999999999999999", "c1"])
        .assert()
        .code(125)
        .stderr(predicate::str::starts_with(
            "invalid argument \"99999999999999999999\" for \"-n, --tail\" flag",
        ));
    fake.cmd(&["stop", "-t", "-99999999999999999999", "c1"])
        .assert()
        .code(125)
        .stderr(predicate::str::starts_with(
            "invalid argument \"-99999999999999999999\" for \"-t, --timeout\" flag",
        ));
    fake.cmd(&["run", "--cpus", "1e400", JOB_IMAGE])
        .assert()
        .code(125)
        .stderr(predicate::str::starts_with("invalid argument \"1e400\" for \"--cpus\" flag: failed to parse 1e400 as a rational number"));
    fake.cmd(&["run", "-p", "99999999999:80", JOB_IMAGE])
        .assert()
        .code(125)
        .stderr("docker: invalid hostPort: 99999999999\n\nRun 'docker run --help' for more information\n");
    consistent(&fake);

    fake.cmd(&["rm", "-f", "c1"]).assert().success();
    assert_eq!(fake.containers(), (vec![], 0));
}
