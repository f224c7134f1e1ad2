//! End-to-end tests of the `fake-docker` binary: exit codes and texts as in
//! docs/real-docker-cli.md, real processes, and the job-runner contract.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::prelude::*;
use tempfile::TempDir;

const JOB_IMAGE: &str = "dockproof/job-runner:1";

const TEST_IMAGE: &str = r#"
name: test/tools
config:
  env: ["PATH=/bin", "FROM_IMAGE=image"]
  workdir: /work
  cmd: [mixed]
programs:
  mixed:
    - stdout: a
    - stderr: b
    - stdout: c
    - exit: 4
  show:
    - stdout: "${@} A=${A} FROM_IMAGE=${FROM_IMAGE}"
  pwd-write:
    - write: { path: here.txt, content: "${1}" }
    - cat: here.txt
    - stdout: ""
  trapper:
    - signal: { term: exit, code: 143, stdout: "caught TERM" }
    - stdout: ready
    - sleep: 30
  stubborn:
    - signal: { term: ignore }
    - stdout: ready
    - sleep: 30
  sleep:
    - sleep: "${1}"
  "true": []
"#;

/// One isolated fake daemon: its own state dir and image list.
struct Fake {
    dir: TempDir,
}

impl Fake {
    fn new() -> Fake {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("tools.yaml"), TEST_IMAGE).expect("write test image");
        Fake { dir }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn images(&self) -> String {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/fake-images");
        format!(
            "{}:{}",
            fixtures.display(),
            self.path("tools.yaml").display()
        )
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut command = Command::cargo_bin("fake-docker").expect("binary");
        command
            .args(args)
            .env("FAKE_DOCKER_STATE", self.path("state"))
            .env("FAKE_DOCKER_IMAGES", self.images())
            .timeout(Duration::from_secs(60));
        command
    }

    fn stdout(&self, args: &[&str]) -> String {
        let output = self.cmd(args).output().expect("run fake-docker");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn workspace(&self, inputs: &[(&str, &str)]) -> PathBuf {
        let ws = self.path("ws");
        std::fs::create_dir_all(ws.join("inputs")).expect("mkdir");
        for (name, content) in inputs {
            std::fs::write(ws.join("inputs").join(name), content).expect("write input");
        }
        ws
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn version_and_info_formats() {
    let fake = Fake::new();
    fake.cmd(&["version", "--format", "{{.Server.Version}}"])
        .assert()
        .success()
        .stdout("20.10.24-fake\n");
    fake.cmd(&["info", "--format", "{{.ServerVersion}}"])
        .assert()
        .success()
        .stdout("20.10.24-fake\n");
    fake.cmd(&["version"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Server: fake-docker"));
    // `--format json` is the object as JSON (issue 15: it used to print the word).
    for command in ["version", "info"] {
        let text = fake.stdout(&[command, "--format", "json"]);
        let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert!(value.is_object(), "{command}: {text}");
    }
}

#[test]
fn docker_commands_the_fake_does_not_model_are_refused_not_unknown() {
    let fake = Fake::new();
    for args in [
        &["pause", "x"][..],
        &["restart", "x"],
        &["network", "connect", "n", "c"],
        &["container", "prune"],
        &["image", "history", "x"],
    ] {
        fake.cmd(args)
            .assert()
            .code(1)
            .stdout("")
            .stderr(predicate::str::starts_with(format!(
                "fake-docker does not model `docker {}`",
                args[..args.len().min(2)]
                    .iter()
                    .take_while(|a| !["x", "n"].contains(a))
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" ")
            )));
    }
    // A command docker does not have stays docker's unknown command.
    fake.cmd(&["bogus"])
        .assert()
        .code(1)
        .stderr(predicate::str::starts_with(
            "docker: unknown command: docker bogus",
        ));
    // A restart policy the fake cannot honour is refused, `no` is accepted.
    fake.cmd(&["create", "--restart", "always", JOB_IMAGE])
        .assert()
        .code(125)
        .stderr(predicate::str::contains(
            "fake-docker does not model `--restart always`",
        ));
    fake.cmd(&["create", "--restart", "no", JOB_IMAGE])
        .assert()
        .success();
}

#[test]
fn image_inspect_known_and_missing() {
    let fake = Fake::new();
    let out = fake.stdout(&["image", "inspect", JOB_IMAGE]);
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(json[0]["RepoTags"][0], JOB_IMAGE);
    assert_eq!(json[0]["Config"]["WorkingDir"], "/workspace");
    assert_eq!(json[0]["Size"], 1990836);
    assert!(
        json[0]["Id"]
            .as_str()
            .is_some_and(|id| id.starts_with("sha256:") && id.len() == 71)
    );
    fake.cmd(&["image", "inspect", "nosuch:1"])
        .assert()
        .code(1)
        .stdout("[]\n")
        .stderr("Error response from daemon: no such image: nosuch:1: No such image: nosuch:1\n");
    // Measured (CLI 28.2.2): a template that printed nothing leaves one empty line.
    fake.cmd(&["image", "inspect", "--format", "{{.Id}}", "nosuch:1"])
        .assert()
        .code(1)
        .stdout("\n")
        .stderr("Error response from daemon: no such image: nosuch:1: No such image: nosuch:1\n");
}

#[test]
fn create_start_wait_logs_inspect_round_trip() {
    let fake = Fake::new();
    let id = fake.stdout(&[
        "create",
        "--name",
        "t4",
        "--label",
        "dockproof.run=r1",
        "test/tools",
    ]);
    assert_eq!(id.trim().len(), 64);
    assert_eq!(
        fake.stdout(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}} {{.Name}} {{.Path}}",
            "t4"
        ]),
        "created 0 /t4 mixed\n"
    );
    fake.cmd(&["start", "t4"]).assert().success().stdout("t4\n");
    fake.cmd(&["wait", "t4"]).assert().success().stdout("4\n");
    fake.cmd(&["logs", "t4"])
        .assert()
        .success()
        .stdout("a\nc\n")
        .stderr("b\n");
    fake.cmd(&["logs", "--tail", "1", "t4"])
        .assert()
        .success()
        .stdout("c\n")
        .stderr("");
    fake.cmd(&["logs", "--tail", "2", "t4"])
        .assert()
        .success()
        .stdout("c\n")
        .stderr("b\n");
    let out = fake.stdout(&["inspect", id.trim()]);
    assert!(out.starts_with("[\n    {\n        \"Id\": \""), "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    let c = &json[0];
    assert_eq!(c["State"]["Status"], "exited");
    assert_eq!(c["State"]["ExitCode"], 4);
    assert_eq!(c["State"]["Running"], false);
    assert_eq!(c["Name"], "/t4");
    assert_eq!(c["Config"]["Labels"]["dockproof.run"], "r1");
    assert_eq!(c["Config"]["Cmd"], serde_json::json!(["mixed"]));
    assert_eq!(c["Config"]["WorkingDir"], "/work");
    assert_eq!(c["Created"], "2000-01-01T00:00:00Z");
    // Deterministic ID from the name.
    use sha2::Digest;
    assert_eq!(
        id.trim(),
        hex::encode(sha2::Sha256::digest(b"fake-docker/container/t4"))
    );
    // Prefix lookup.
    fake.cmd(&["inspect", "-f", "{{.Name}}", &id[..8]])
        .assert()
        .success()
        .stdout("/t4\n");
    fake.cmd(&["rm", "t4"]).assert().success().stdout("t4\n");
    fake.cmd(&["inspect", "t4"])
        .assert()
        .code(1)
        .stdout("[]\n")
        .stderr("Error: No such object: t4\n");
}

#[test]
fn host_config_records_limits() {
    let fake = Fake::new();
    fake.cmd(&[
        "create",
        "--name",
        "t6",
        "--memory",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "64",
        "--read-only",
        "--security-opt",
        "no-new-privileges",
        "--network",
        "none",
        "-u",
        "1000:1000",
        "-v",
        &format!("{}:/workspace:ro", fake.path("ws").display()),
        "-l",
        "a=b",
        "--rm",
        "test/tools",
        "sleep",
        "5",
    ])
    .assert()
    .success();
    let json: serde_json::Value =
        serde_json::from_str(&fake.stdout(&["inspect", "t6"])).expect("json");
    let host = &json[0]["HostConfig"];
    assert_eq!(host["Memory"], 67108864);
    assert_eq!(host["NanoCpus"], 500000000);
    assert_eq!(host["PidsLimit"], 64);
    assert_eq!(host["ReadonlyRootfs"], true);
    assert_eq!(host["AutoRemove"], true);
    assert_eq!(host["NetworkMode"], "none");
    assert_eq!(
        host["SecurityOpt"],
        serde_json::json!(["no-new-privileges"])
    );
    assert_eq!(json[0]["Config"]["User"], "1000:1000");
    assert_eq!(json[0]["Path"], "sleep");
    assert_eq!(json[0]["Args"], serde_json::json!(["5"]));
    let mount = &json[0]["Mounts"][0];
    assert_eq!(mount["Type"], "bind");
    assert_eq!(mount["Destination"], "/workspace");
    assert_eq!(mount["RW"], false);
    assert_eq!(mount["Propagation"], "rprivate");
}

#[test]
fn unknown_image_messages() {
    let fake = Fake::new();
    fake.cmd(&["create", "--pull", "never", "nosuch:1", "true"])
        .assert()
        .code(1)
        .stdout("")
        .stderr("Error response from daemon: No such image: nosuch:1\n");
    fake.cmd(&["create", "nosuch:1", "true"]).assert().code(1).stderr(
        "Unable to find image 'nosuch:1' locally\nError response from daemon: pull access denied for nosuch, repository does not exist or may require 'docker login': denied: requested access to the resource is denied\n",
    );
    fake.cmd(&["run", "--pull=never", "nosuch:1"]).assert().code(125).stderr(
        "docker: Error response from daemon: No such image: nosuch:1\n\nRun 'docker run --help' for more information\n",
    );
}

#[test]
fn unknown_command_on_start_and_run() {
    let fake = Fake::new();
    let message = "failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: \"nosuchcmd\": executable file not found in $PATH: unknown";
    fake.cmd(&[
        "create",
        "--name",
        "t1",
        "--label",
        "dockproof.run=r1",
        "test/tools",
        "nosuchcmd",
    ])
    .assert()
    .success();
    fake.cmd(&["start", "t1"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(format!(
            "Error response from daemon: {message}\nError: failed to start containers: t1\n"
        ));
    fake.cmd(&[
        "inspect",
        "t1",
        "--format",
        "{{.State.Status}} {{.State.ExitCode}} {{json .State.Error}}",
    ])
    .assert()
    .success()
    .stdout(format!(
        "created 127 {}\n",
        serde_json::to_string(message).expect("json")
    ));
    fake.cmd(&["rm", "-f", "t1"])
        .assert()
        .success()
        .stdout("t1\n");
    fake.cmd(&["run", "--name", "t2", "test/tools", "nosuchcmd"])
        .assert()
        .code(127)
        .stderr(format!("docker: Error response from daemon: {message}\n\nRun 'docker run --help' for more information\n"));
    fake.cmd(&["rm", "t2"]).assert().success().stdout("t2\n");
}

#[test]
fn flag_and_argument_errors() {
    let fake = Fake::new();
    fake.cmd(&["run", "--bogus", "x"]).assert().code(125).stderr(
        "unknown flag: --bogus\n\nUsage:  docker run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun 'docker run --help' for more information\n",
    );
    fake.cmd(&["create", "--memory", "12qq", "test/tools"]).assert().code(125).stderr(
        "invalid argument \"12qq\" for \"-m, --memory\" flag: invalid suffix: 'qq'\n\nUsage:  docker create [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun 'docker create --help' for more information\n",
    );
    fake.cmd(&["start"]).assert().code(1).stderr(
        "docker: 'docker start' requires at least 1 argument\n\nUsage:  docker start [OPTIONS] CONTAINER [CONTAINER...]\n\nSee 'docker start --help' for more information\n",
    );
    for command in [
        "create", "run", "start", "stop", "kill", "wait", "rm", "exec", "logs", "ps", "inspect",
        "version", "info",
    ] {
        fake.cmd(&[command, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains(format!(
                "Usage:  docker {command}"
            )));
    }
    fake.cmd(&["image", "inspect", "--help"]).assert().success();
}

#[test]
fn missing_container_errors() {
    let fake = Fake::new();
    for command in ["logs", "rm", "wait", "stop"] {
        fake.cmd(&[command, "nosuch"])
            .assert()
            .code(1)
            .stdout("")
            .stderr("Error response from daemon: No such container: nosuch\n");
    }
    fake.cmd(&["exec", "nosuch", "true"])
        .assert()
        .code(1)
        .stderr("Error response from daemon: No such container: nosuch\n");
    fake.cmd(&["kill", "nosuch"]).assert().code(1).stderr(
        "Error response from daemon: Cannot kill container: nosuch: No such container: nosuch\n",
    );
    fake.cmd(&["start", "nosuch"])
        .assert()
        .code(1)
        .stderr("Error response from daemon: No such container: nosuch\nError: failed to start containers: nosuch\n");
    fake.cmd(&["inspect", "nosuch"])
        .assert()
        .code(1)
        .stdout("[]\n")
        .stderr("Error: No such object: nosuch\n");
}

#[test]
fn name_conflict() {
    let fake = Fake::new();
    let id = fake.stdout(&["create", "--name", "dup", "test/tools"]);
    fake.cmd(&["create", "--name=dup", "test/tools"]).assert().code(1).stderr(format!(
        "Error response from daemon: Conflict. The container name \"/dup\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.\n",
        id.trim()
    ));
    fake.cmd(&["run", "--name", "dup", "test/tools"])
        .assert()
        .code(125)
        .stderr(predicate::str::starts_with(
            "docker: Error response from daemon: Conflict.",
        ));
}

#[test]
fn running_container_lifecycle() {
    let fake = Fake::new();
    let id = fake.stdout(&[
        "run",
        "-d",
        "--name",
        "t3",
        "--label",
        "dockproof.run=r1",
        "test/tools",
        "sleep",
        "100",
    ]);
    let id = id.trim();
    fake.cmd(&[
        "ps",
        "-a",
        "--filter",
        "label=dockproof.run=r1",
        "--format",
        "{{.ID}} {{.Names}} {{.Status}}",
    ])
    .assert()
    .success()
    .stdout(format!("{} t3 Up Less than a second\n", &id[..12]));
    fake.cmd(&[
        "ps",
        "-aq",
        "--filter",
        "label=dockproof.run=r1",
        "--no-trunc",
    ])
    .assert()
    .success()
    .stdout(format!("{id}\n"));
    fake.cmd(&["ps", "-q", "--filter", "label=dockproof.run=other"])
        .assert()
        .success()
        .stdout("");
    fake.cmd(&["ps", "-q", "--filter", "name=t3"])
        .assert()
        .success()
        .stdout(format!("{}\n", &id[..12]));
    fake.cmd(&["exec", "t3", "nosuchcmd"]).assert().code(126).stdout(
        "OCI runtime exec failed: exec failed: unable to start container process: exec: \"nosuchcmd\": executable file not found in $PATH: unknown\r\n",
    );
    fake.cmd(&["exec", "-w", "/nowhere", "t3", "true"]).assert().code(126).stdout(
        "OCI runtime exec failed: exec failed: unable to start container process: chdir to cwd (\"/nowhere\") set in config.json failed: no such file or directory: unknown\r\n",
    );
    fake.cmd(&["rm", "t3"]).assert().code(1).stderr(format!(
        "Error response from daemon: You cannot remove a running container {id}. Stop the container before attempting removal or force remove\n"
    ));
    // `sleep` has no TERM handler: as PID 1 it ignores SIGTERM, so the stop waits out
    // the grace and SIGKILLs it (137), as on a real daemon.
    let started = Instant::now();
    fake.cmd(&["stop", "-t", "1", "t3"])
        .assert()
        .success()
        .stdout("t3\n");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(4),
        "a handler-less PID 1 is killed after the 1 s grace, took {elapsed:?}"
    );
    fake.cmd(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}} {{.State.OOMKilled}}",
        "t3",
    ])
    .assert()
    .success()
    .stdout("exited 137 false\n");
    fake.cmd(&["exec", "t3", "true"])
        .assert()
        .code(1)
        .stderr(format!(
            "Error response from daemon: Container {id} is not running\n"
        ));
    fake.cmd(&["wait", "t3"]).assert().success().stdout("137\n");
    fake.cmd(&["ps", "-q"]).assert().success().stdout("");
    fake.cmd(&["kill", "t3"]).assert().code(1).stderr(format!(
        "Error response from daemon: Cannot kill container: t3: Container {id} is not running\n"
    ));
    // Restart, then kill.
    fake.cmd(&["start", "t3"]).assert().success().stdout("t3\n");
    fake.cmd(&["kill", "t3"]).assert().success().stdout("t3\n");
    fake.cmd(&["inspect", "-f", "{{.State.ExitCode}}", "t3"])
        .assert()
        .success()
        .stdout("137\n");
    fake.cmd(&["rm", "t3"]).assert().success().stdout("t3\n");
}

#[test]
fn stop_of_program_with_a_term_handler_ends_143_at_once() {
    let fake = Fake::new();
    fake.cmd(&["run", "-d", "--name", "t6", "test/tools", "trapper"])
        .assert()
        .success();
    let started = Instant::now();
    fake.cmd(&["stop", "-t", "10", "t6"])
        .assert()
        .success()
        .stdout("t6\n");
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(3),
        "a TERM handler ends the program promptly, took {elapsed:?}"
    );
    fake.cmd(&["wait", "t6"]).assert().success().stdout("143\n");
    fake.cmd(&["logs", "t6"])
        .assert()
        .success()
        .stdout("ready\ncaught TERM\n");
}

#[test]
fn kill_with_a_signal_the_program_does_not_handle_is_ignored_as_pid_one() {
    let fake = Fake::new();
    fake.cmd(&["run", "-d", "--name", "t7", "test/tools", "sleep", "30"])
        .assert()
        .success();
    fake.cmd(&["kill", "-s", "TERM", "t7"])
        .assert()
        .success()
        .stdout("t7\n");
    std::thread::sleep(Duration::from_millis(300));
    fake.cmd(&["inspect", "-f", "{{.State.Status}}", "t7"])
        .assert()
        .success()
        .stdout("running\n");
    fake.cmd(&["kill", "t7"]).assert().success();
    fake.cmd(&["wait", "t7"]).assert().success().stdout("137\n");
}

#[test]
fn stop_of_term_ignoring_program_kills_after_grace() {
    let fake = Fake::new();
    fake.cmd(&["run", "-d", "--name", "t5", "test/tools", "stubborn"])
        .assert()
        .success();
    let started = Instant::now();
    fake.cmd(&["stop", "-t", "1", "t5"])
        .assert()
        .success()
        .stdout("t5\n");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900),
        "stopped too early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(10),
        "stopped too late: {elapsed:?}"
    );
    fake.cmd(&["wait", "t5"]).assert().success().stdout("137\n");
    fake.cmd(&["logs", "t5"])
        .assert()
        .success()
        .stdout("ready\n");
    // Stopping an exited container is a no-op success.
    fake.cmd(&["stop", "t5"]).assert().success().stdout("t5\n");
}

#[test]
fn exec_sees_env_and_workdir() {
    let fake = Fake::new();
    let ws = fake.workspace(&[]);
    let volume = format!("{}:/workspace", ws.display());
    fake.cmd(&[
        "run",
        "-d",
        "--name",
        "e1",
        "-e",
        "A=from-create",
        "-v",
        &volume,
        "test/tools",
        "sleep",
        "30",
    ])
    .assert()
    .success();
    fake.cmd(&["exec", "e1", "show", "x", "y"])
        .assert()
        .success()
        .stdout("x y A=from-create FROM_IMAGE=image\n");
    fake.cmd(&["exec", "-e", "A=from-exec", "e1", "show"])
        .assert()
        .success()
        .stdout(" A=from-exec FROM_IMAGE=image\n");
    fake.cmd(&["exec", "-w", "/workspace", "e1", "pwd-write", "hi"])
        .assert()
        .success()
        .stdout("hi\n");
    assert_eq!(
        std::fs::read_to_string(ws.join("here.txt")).expect("written"),
        "hi"
    );
    fake.cmd(&["rm", "-f", "e1"])
        .assert()
        .success()
        .stdout("e1\n");
    fake.cmd(&["ps", "-aq"]).assert().success().stdout("");
}

/// `--env-file` and bare `--env NAME` as the docker CLI reads them (what dockproof
/// uses so values stay off the command line): the file's lines taken literally after
/// the first `=`, comments and blank lines skipped, a bare name from the CLI's own
/// environment, `--env` after the file; a missing file fails before the daemon.
#[test]
fn env_files_and_names_from_the_environment() {
    let fake = Fake::new();
    let file = fake.path("env");
    std::fs::write(
        &file,
        "# comment\n\n  A=from \"file\" \\ $x\nFROM_IMAGE=overridden\nUNSET_HERE\n",
    )
    .expect("write env file");
    let file = file.display().to_string();
    fake.cmd(&[
        "run",
        "-d",
        "--name",
        "f1",
        "--env-file",
        &file,
        "test/tools",
        "sleep",
        "30",
    ])
    .assert()
    .success();
    fake.cmd(&["exec", "f1", "show"])
        .assert()
        .success()
        .stdout(" A=from \"file\" \\ $x FROM_IMAGE=overridden\n");
    fake.cmd(&["exec", "--env-file", &file, "--env", "A", "f1", "show"])
        .env("A", "line one\nline two")
        .assert()
        .success()
        .stdout(" A=line one\nline two FROM_IMAGE=overridden\n");
    fake.cmd(&["rm", "-f", "f1"]).assert().success();
    fake.cmd(&["create", "--env-file", "/nonexistent-env", "test/tools"])
        .assert()
        .code(125)
        .stderr(predicate::str::starts_with(
            "docker: open /nonexistent-env: no such file or directory\n",
        ));
    fake.cmd(&["ps", "-aq"]).assert().success().stdout("");
}

#[test]
fn read_only_root_and_mounts_refuse_writes() {
    let fake = Fake::new();
    fake.cmd(&["run", "--read-only", "--rm", "test/tools", "pwd-write", "x"])
        .assert()
        .code(1)
        .stdout("")
        .stderr("sh: can't create here.txt: Read-only file system\n");
    let ws = fake.workspace(&[("a.txt", "a")]);
    fake.cmd(&[
        "run",
        "--rm",
        "--read-only",
        "-e",
        "JOB_ID=ro",
        "-v",
        &format!("{}:/workspace:ro", ws.display()),
        JOB_IMAGE,
    ])
    .assert()
    .code(1)
    .stdout("job ro: starting\n")
    .stderr("job ro: reading inputs from /workspace/inputs\njob ro: cannot write outputs\n");
    assert!(!ws.join("outputs").exists());
    fake.cmd(&["ps", "-aq"]).assert().success().stdout("");
}

#[test]
fn job_runner_contract() {
    let fake = Fake::new();
    let ws = fake.workspace(&[("b.txt", "bee\n"), ("a.txt", "ay"), ("B.bin", "")]);
    std::fs::create_dir_all(ws.join("inputs/nested")).expect("mkdir");
    std::fs::write(ws.join("inputs/nested/skip.txt"), "no").expect("write");
    let volume = format!("{}:/workspace", ws.display());
    fake.cmd(&[
        "run",
        "--name",
        "job1",
        "-e",
        "JOB_ID=j1",
        "-v",
        &volume,
        JOB_IMAGE,
    ])
    .assert()
    .code(0)
    .stdout("job j1: starting\nsummary written to outputs/summary.json\n")
    .stderr("job j1: reading inputs from /workspace/inputs\njob j1: done (exit 0)\n");
    let checksums =
        std::fs::read_to_string(ws.join("outputs/checksums.sha256")).expect("checksums");
    assert_eq!(
        checksums,
        format!(
            "{}  inputs/B.bin\n{}  inputs/a.txt\n{}  inputs/b.txt\n",
            sha256_hex(b""),
            sha256_hex(b"ay"),
            sha256_hex(b"bee\n")
        )
    );
    assert_eq!(
        std::fs::read(ws.join("outputs/summary.json")).expect("summary"),
        br#"{"job":"j1","inputs":3,"status":"ok"}
"#
    );
    // Failure exit code, default JOB_ID, and a 1 s sleep.
    let started = Instant::now();
    fake.cmd(&[
        "run",
        "--rm",
        "-e",
        "JOB_EXIT_CODE=3",
        "-e",
        "JOB_SLEEP=1",
        "-v",
        &volume,
        JOB_IMAGE,
    ])
    .assert()
    .code(3)
    .stdout(
        "job local: starting\njob local: sleeping 1s\nsummary written to outputs/summary.json\n",
    )
    .stderr("job local: reading inputs from /workspace/inputs\njob local: done (exit 3)\n");
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(
        std::fs::read(ws.join("outputs/summary.json")).expect("summary"),
        b"{\"job\":\"local\",\"inputs\":3,\"status\":\"failed\"}\n"
    );
    // No inputs directory: empty checksums, zero inputs.
    let empty = fake.path("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    fake.cmd(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/workspace", empty.display()),
        JOB_IMAGE,
    ])
    .assert()
    .success();
    assert_eq!(
        std::fs::read(empty.join("outputs/checksums.sha256")).expect("checksums"),
        b""
    );
    assert_eq!(
        std::fs::read(empty.join("outputs/summary.json")).expect("summary"),
        b"{\"job\":\"local\",\"inputs\":0,\"status\":\"ok\"}\n"
    );
    // The other commands of the contract.
    std::fs::write(ws.join("x.txt"), "X").expect("write");
    fake.cmd(&[
        "run", "--rm", "-v", &volume, JOB_IMAGE, "echo", "hello", "world",
    ])
    .assert()
    .success()
    .stdout("hello world\n");
    fake.cmd(&[
        "run",
        "--rm",
        "-v",
        &volume,
        JOB_IMAGE,
        "cat",
        "/workspace/x.txt",
        "x.txt",
    ])
    .assert()
    .success()
    .stdout("XX");
    fake.cmd(&["run", "--rm", "-v", &volume, JOB_IMAGE, "cat", "missing"])
        .assert()
        .code(1)
        .stderr("cat: can't open 'missing': No such file or directory\n");
    fake.cmd(&["run", "--rm", JOB_IMAGE, "true"])
        .assert()
        .code(0);
    fake.cmd(&["run", "--rm", JOB_IMAGE, "false"])
        .assert()
        .code(1);
}

#[test]
fn job_runner_term_handling() {
    let fake = Fake::new();
    let ws = fake.workspace(&[]);
    let volume = format!("{}:/workspace", ws.display());
    fake.cmd(&[
        "run",
        "-d",
        "--name",
        "s1",
        "-e",
        "JOB_SLEEP=30",
        "-v",
        &volume,
        JOB_IMAGE,
    ])
    .assert()
    .success();
    fake.cmd(&["stop", "-t", "5", "s1"]).assert().success();
    fake.cmd(&["wait", "s1"]).assert().success().stdout("143\n");
    fake.cmd(&[
        "run",
        "-d",
        "--name",
        "s2",
        "-e",
        "JOB_SLEEP=30",
        "-e",
        "JOB_IGNORE_TERM=1",
        "-v",
        &volume,
        JOB_IMAGE,
    ])
    .assert()
    .success();
    fake.cmd(&["stop", "-t", "1", "s2"]).assert().success();
    fake.cmd(&["wait", "s2"]).assert().success().stdout("137\n");
    fake.cmd(&["logs", "s2"])
        .assert()
        .success()
        .stdout("job local: starting\njob local: sleeping 30s\n");
}

#[test]
fn parallel_invocations_are_safe() {
    let fake = std::sync::Arc::new(Fake::new());
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let fake = std::sync::Arc::clone(&fake);
            std::thread::spawn(move || {
                let name = format!("p{i}");
                fake.cmd(&["create", "--name", &name, "-l", "group=par", "test/tools"])
                    .assert()
                    .success();
                fake.cmd(&["start", &name])
                    .assert()
                    .success()
                    .stdout(format!("{name}\n"));
                fake.cmd(&["wait", &name]).assert().success().stdout("4\n");
                // Unnamed containers get distinct counter names.
                fake.cmd(&["create", "-l", "group=anon", "test/tools", "true"])
                    .assert()
                    .success();
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("thread");
    }
    let names = fake.stdout(&[
        "ps",
        "-a",
        "--filter",
        "label=group=par",
        "--format",
        "{{.Names}} {{.Status}}",
    ]);
    assert_eq!(names.lines().count(), 20);
    assert!(
        names
            .lines()
            .all(|l| l.ends_with("Exited (4) Less than a second ago")),
        "{names}"
    );
    let anon = fake.stdout(&[
        "ps",
        "-a",
        "--filter",
        "label=group=anon",
        "--format",
        "{{.Names}}",
    ]);
    let mut anon: Vec<&str> = anon.lines().collect();
    anon.sort();
    anon.dedup();
    assert_eq!(anon.len(), 20);
    assert!(anon.iter().all(|n| n.starts_with("fake_")));
}

#[test]
fn stop_timeout_and_start_attach() {
    let fake = Fake::new();
    fake.cmd(&[
        "run",
        "-d",
        "--name",
        "st",
        "--stop-timeout",
        "1",
        "test/tools",
        "stubborn",
    ])
    .assert()
    .success();
    let started = Instant::now();
    fake.cmd(&["stop", "st"]).assert().success().stdout("st\n");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "--stop-timeout 1 should replace the 10 s default"
    );
    fake.cmd(&[
        "inspect",
        "-f",
        "{{.State.ExitCode}} {{.Config.StopTimeout}}",
        "st",
    ])
    .assert()
    .success()
    .stdout("137 1\n");
    fake.cmd(&["create", "--name", "sa", "test/tools"])
        .assert()
        .success();
    fake.cmd(&["start", "-a", "sa"])
        .assert()
        .code(4)
        .stdout("a\nc\n")
        .stderr("b\n");
}
