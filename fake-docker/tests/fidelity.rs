//! Integration tests of the fidelity surface (images, rmi, pull, build, cp, ports and
//! HTTP, health checks, OOM, 126, stdin, networks, volumes, stats), asserting the real
//! CLI's shapes recorded in docs/real-docker-cli.md.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::prelude::*;
use tempfile::TempDir;

const IMAGE: &str = r##"
name: test/fid
size: 1985472
config:
  env: ["PATH=/bin"]
  cmd: [serve]
files:
  /app/start.sh: { content: "#!/bin/sh\n", mode: "0644" }
  /app/ok.sh: { content: "#!/bin/sh\n", mode: "0755" }
http:
  - port: 8080
    access_log: "req ${METHOD} ${PATH} ${STATUS}"
    routes:
      - { path: /health, json: { status: ok } }
      - { method: POST, path: /jobs, status: 201, headers: { X-Job: "7" }, body: made }
programs:
  serve:
    - stdout: up
    - sleep: 300
  holder:
    - alloc: 10MiB
    - sleep: "${1}"
  hog:
    - alloc: 10MiB
    - stdout: "small ok"
    - alloc: 100MiB
    - stdout: "big ok"
  ok.sh:
    - stdout: "ran ok"
  start.sh:
    - stdout: "must not run"
  breaker:
    - write: { path: /f, content: "x" }
    - chmod: { path: /f, mode: "644" }
    - run: /f
    - stdout: never
  echo-stdin:
    - stdin_to_stdout: true
  cat:
    - cat_args: true
  healthcheck:
    - cat: /healthy
  make-healthy:
    - write: { path: /healthy, content: "fine\n" }
  self-probe:
    - http_get: "http://localhost:8080/health"
  mixed:
    - stdout: "out ${N}"
    - stderr: "err ${N}"
    - exit: 4
  sleep:
    - sleep: "${1}"
  "true": []
"##;

const BROKEN: &str = r#"
name: test/broken:1
build:
  fail:
    step: 3
    exit_code: 3
    stdout: ["building step"]
    stderr: ["to-stderr"]
programs:
  "true": []
"#;

const DEPRECATED: &str = "DEPRECATED: The legacy builder is deprecated and will be removed in a future release.\n            Install the buildx component to build images with BuildKit:\n            https://docs.docker.com/go/buildx/\n\n";

struct Fake {
    dir: TempDir,
}

impl Fake {
    fn new() -> Fake {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("images")).expect("mkdir");
        std::fs::write(dir.path().join("images/fid.yaml"), IMAGE).expect("write image");
        std::fs::write(dir.path().join("images/broken.yaml"), BROKEN).expect("write image");
        Fake { dir }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/fake-images");
        let mut command = Command::cargo_bin("fake-docker").expect("binary");
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("FAKE_DOCKER_STATE", self.path("state"))
            .env(
                "FAKE_DOCKER_IMAGES",
                format!("{}:{}", fixtures.display(), self.path("images").display()),
            )
            .timeout(Duration::from_secs(60));
        command
    }

    fn stdout(&self, args: &[&str]) -> String {
        let output = self.cmd(args).output().expect("run fake-docker");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn inspect(&self, container: &str, format: &str) -> String {
        self.stdout(&["inspect", "-f", format, container])
            .trim_end()
            .to_string()
    }

    /// Polls `inspect -f format` until it prints `want` (or panics after 20 s).
    fn wait_for(&self, container: &str, format: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.inspect(container, format);
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{format}: wanted {want}, got {got}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        // Stop every container (their supervisors hold ports).
        let ids = self.stdout(&["ps", "-aq"]);
        for id in ids.lines() {
            let _ = self.cmd(&["rm", "-f", id]).output();
        }
    }
}

/// One HTTP/1.1 request over a real TCP connection: (status, headers+body text).
fn http(port: u16, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n"
    )
    .expect("send");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read");
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn host_port(fake: &Fake, container: &str) -> u16 {
    let line = fake.stdout(&["port", container, "8080"]);
    line.lines()
        .next()
        .and_then(|l| l.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .expect("a published port")
}

#[test]
fn images_lists_in_docker_formats() {
    let fake = Fake::new();
    // Columns are as wide as their longest value (here the shipped fixture images).
    let table = fake.stdout(&["images", "test/fid"]);
    assert_eq!(
        table,
        "REPOSITORY   TAG       IMAGE ID       CREATED                  SIZE\n\
         test/fid     latest    16c71c756914   Less than a second ago   1.99MB\n",
    );
    let table = fake.stdout(&["images"]);
    let header = table.lines().next().unwrap_or_default();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"],
        "{table}"
    );
    assert!(table.contains("1.99MB"), "{table}");
    let ids = fake.stdout(&["images", "-q", "test/fid"]);
    assert_eq!(ids.trim().len(), 12);
    let json = fake.stdout(&["images", "--format", "{{json .}}", "test/fid"]);
    let row: serde_json::Value = serde_json::from_str(json.trim()).expect("json row");
    assert_eq!(row["Repository"], "test/fid");
    assert_eq!(row["Tag"], "latest");
    assert_eq!(row["VirtualSize"], "1.985MB");
    assert_eq!(row["Digest"], "<none>");
    fake.cmd(&[
        "images",
        "--format",
        "table {{.Repository}}\\t{{.Tag}}",
        "test/fid",
    ])
    .assert()
    .success()
    .stdout("REPOSITORY   TAG\ntest/fid     latest\n");
    fake.cmd(&[
        "images",
        "--filter",
        "reference=dockproof/*:1",
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ])
    .assert()
    .success()
    .stdout("dockproof/job-runner:1\ndockproof/web:1\n");
    fake.cmd(&["image", "ls", "-q", "--no-trunc", "test/fid"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("sha256:"));
}

#[test]
fn rmi_and_pull_change_what_exists() {
    let fake = Fake::new();
    fake.cmd(&["rmi", "nosuch"])
        .assert()
        .code(1)
        .stderr("Error response from daemon: No such image: nosuch:latest\n");
    fake.cmd(&["create", "--name", "user", "test/fid"])
        .assert()
        .success();
    let short = fake
        .stdout(&["images", "-q", "test/fid"])
        .trim()
        .to_string();
    fake.cmd(&["rmi", "test/fid"]).assert().code(1).stderr(format!(
        "Error response from daemon: conflict: unable to remove repository reference \"test/fid\" (must force) - container {} is using its referenced image {short}\n",
        &fake.inspect("user", "{{.Id}}")[..12]
    ));
    fake.cmd(&["rm", "user"]).assert().success();
    let id = fake
        .stdout(&["image", "inspect", "-f", "{{.Id}}", "test/fid"])
        .trim()
        .to_string();
    fake.cmd(&["image", "rm", "test/fid"])
        .assert()
        .success()
        .stdout(format!("Untagged: test/fid:latest\nDeleted: {id}\n"));
    assert_eq!(fake.stdout(&["images", "-q", "test/fid"]), "");
    fake.cmd(&["run", "test/fid", "true"]).assert().code(125).stderr(
        "Unable to find image 'test/fid:latest' locally\ndocker: Error response from daemon: pull access denied for test/fid, repository does not exist or may require 'docker login': denied: requested access to the resource is denied\n\nRun 'docker run --help' for more information\n",
    );
    let pulled = fake.stdout(&["pull", "test/fid"]);
    assert!(
        pulled.starts_with("Using default tag: latest\nlatest: Pulling from test/fid\n"),
        "{pulled}"
    );
    assert!(
        pulled.contains(": Pull complete\nDigest: sha256:"),
        "{pulled}"
    );
    assert!(
        pulled.ends_with(
            "Status: Downloaded newer image for test/fid:latest\ndocker.io/test/fid:latest\n"
        ),
        "{pulled}"
    );
    let again = fake.stdout(&["pull", "test/fid:latest"]);
    assert!(
        again.contains("Status: Image is up to date for test/fid:latest\n"),
        "{again}"
    );
    fake.cmd(&["pull", "-q", "test/fid:latest"])
        .assert()
        .success()
        .stdout("docker.io/test/fid:latest\n");
    fake.cmd(&["pull", "nosuch"]).assert().code(1).stdout("Using default tag: latest\n").stderr(
        "Error response from daemon: pull access denied for nosuch, repository does not exist or may require 'docker login': denied: requested access to the resource is denied\n",
    );
    fake.cmd(&["pull", "Bad/Name"])
        .assert()
        .code(1)
        .stderr("invalid reference format: repository name (Name) must be lowercase\n");
}

fn write_context(fake: &Fake, name: &str, dockerfile: &str) -> PathBuf {
    let dir = fake.path(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("Dockerfile"), dockerfile).expect("write Dockerfile");
    dir
}

#[test]
fn build_prints_the_legacy_builder_steps() {
    let fake = Fake::new();
    let context = write_context(
        &fake,
        "okctx",
        "# dockproof-image: test/fid\nFROM scratch AS base\nCOPY a /a\nRUN make\nFROM base AS final\nENV PATH=/bin\nCMD [\"serve\"]\n",
    );
    std::fs::write(context.join("a"), "a").expect("write a");
    let output = fake
        .cmd(&["build", "-t", "mine/app:2", "--build-arg", "A=1", "okctx"])
        .output()
        .expect("build");
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&output.stderr), DEPRECATED);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.starts_with("Sending build context to Docker daemon  3.072kB\r\r\nStep 1/6 : FROM scratch AS base\n ---> \nStep 2/6 : COPY a /a\n ---> "),
        "{text}"
    );
    assert!(
        text.contains("Step 3/6 : RUN make\n ---> Running in "),
        "{text}"
    );
    let short = fake
        .stdout(&["images", "-q", "mine/app:2"])
        .trim()
        .to_string();
    assert_eq!(short.len(), 12, "{short}");
    assert!(text.contains("Removing intermediate container "), "{text}");
    assert!(
        text.ends_with(&format!(
            " ---> {short}\nSuccessfully built {short}\nSuccessfully tagged mine/app:2\n"
        )),
        "{text}"
    );
    fake.cmd(&[
        "images",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.ID}}",
        "mine/app",
    ])
    .assert()
    .stdout(format!("mine/app:2 {short}\n"));
    let quiet = fake.stdout(&["build", "-q", "--target", "base", "okctx"]);
    assert!(
        quiet.starts_with("sha256:") && quiet.ends_with('\n'),
        "{quiet}"
    );
    fake.cmd(&["build", "--target", "nosuch", "okctx"])
        .assert()
        .code(1)
        .stderr(format!(
            "{DEPRECATED}Error response from daemon: failed to reach build target nosuch in Dockerfile\n"
        ));
    fake.cmd(&["build", "nosuchdir"])
        .assert()
        .code(1)
        .stderr(format!(
            "{DEPRECATED}unable to prepare context: path \"nosuchdir\" not found\n"
        ));
}

/// The multi-stage fixture's Dockerfile with some lines removed, as a fresh context.
fn multi_stage_without(fake: &Fake, name: &str, drop: &[&str]) -> PathBuf {
    let original =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/build/multi-stage/Dockerfile");
    let text = std::fs::read_to_string(original).expect("read the fixture Dockerfile");
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| !drop.iter().any(|d| line.starts_with(d)))
        .collect();
    write_context(fake, name, &format!("{}\n", kept.join("\n")))
}

#[test]
fn build_facts_come_from_the_dockerfile_not_the_definition() {
    let fake = Fake::new();
    multi_stage_without(&fake, "full", &[]);
    fake.cmd(&[
        "build",
        "-q",
        "-t",
        "fid/full:1",
        "--build-arg",
        "VERSION=2",
        "full",
    ])
    .assert()
    .success();
    fake.cmd(&[
        "image",
        "inspect",
        "-f",
        "{{.Config.User}}|{{json .Config.Healthcheck.Test}}|{{json .Config.Env}}|{{.Config.WorkingDir}}|{{json .Config.Cmd}}|{{json .Config.ExposedPorts}}",
        "fid/full:1",
    ])
    .assert()
    .success()
    .stdout("65534:65534|[\"CMD\",\"test\",\"-f\",\"/srv/version.json\"]|[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\",\"APP_PORT=8080\"]|/srv|[\"cat\",\"/srv/version.json\"]|{\"8080/tcp\":{}}\n");
    // Without USER and HEALTHCHECK the built image runs as root and has no health
    // check, as a real build's does: `non_root: true` and `healthcheck: true` fail.
    multi_stage_without(&fake, "bare", &["USER", "HEALTHCHECK"]);
    fake.cmd(&["build", "-q", "-t", "fid/bare:1", "bare"])
        .assert()
        .success();
    fake.cmd(&[
        "image",
        "inspect",
        "-f",
        "user={{.Config.User}} health={{json .Config.Healthcheck}}",
        "fid/bare:1",
    ])
    .assert()
    .success()
    .stdout("user= health=null\n");
    // The built image still runs the definition's programs.
    fake.cmd(&["run", "--rm", "fid/bare:1"])
        .assert()
        .success()
        .stdout("{\"version\":\"1.4.2\"}\n");
}

#[test]
fn a_definition_contradicting_its_dockerfile_names_both_lines() {
    let fake = Fake::new();
    std::fs::write(
        fake.path("images/twin.yaml"),
        "# a twin\nname: fid/twin:1\nconfig:\n  user: \"1000\"\n  cmd: [serve]\n",
    )
    .expect("write twin");
    write_context(
        &fake,
        "twinctx",
        "# dockproof-image: fid/twin:1\nFROM scratch\n\nUSER 65534\nCMD [\"serve\"]\n",
    );
    let output = fake.cmd(&["build", "twinctx"]).output().expect("build");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let twin = fake.path("images/twin.yaml");
    let dockerfile = fake.path("twinctx/Dockerfile");
    assert!(
        stderr.ends_with(&format!(
            "fake-docker: fake image definition {}:4 sets `user`, but {}:4 says `USER 65534`: the Dockerfile decides the image's facts (remove `user` from the definition's config, or change the Dockerfile)\n",
            twin.display(),
            dockerfile.display()
        )),
        "{stderr}"
    );
}

#[test]
fn a_failing_copy_is_reported_as_a_copy() {
    let fake = Fake::new();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/build/copy-missing");
    let output = fake
        .cmd(&["build", &fixture.display().to_string()])
        .output()
        .expect("build");
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.ends_with("Step 3/4 : COPY missing-file.txt /srv/missing-file.txt\n"),
        "{stdout}"
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!(
            "{DEPRECATED}COPY failed: file not found in build context or excluded by .dockerignore: stat missing-file.txt: file does not exist\n"
        )
    );
}

#[test]
fn failing_build_step_exits_with_the_command_code() {
    let fake = Fake::new();
    write_context(
        &fake,
        "failctx",
        "# dockproof-image: test/broken:1\nFROM test/fid\nENV A=1\nRUN echo building step; echo to-stderr >&2; exit 3\nRUN echo never\n",
    );
    let output = fake.cmd(&["build", "failctx"]).output().expect("build");
    assert_eq!(output.status.code(), Some(3));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains(
            "Step 3/4 : RUN echo building step; echo to-stderr >&2; exit 3\n ---> Running in "
        ),
        "{text}"
    );
    assert!(
        text.ends_with("building step\n\u{1b}[91mto-stderr\n\u{1b}[0m"),
        "{text}"
    );
    assert!(!text.contains("Step 4/4"), "{text}");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!(
            "{DEPRECATED}The command '/bin/sh -c echo building step; echo to-stderr >&2; exit 3' returned a non-zero code: 3\n"
        )
    );
    // With -q everything goes to stderr.
    let quiet = fake
        .cmd(&["build", "-q", "failctx"])
        .output()
        .expect("build");
    assert_eq!(quiet.status.code(), Some(3));
    assert!(quiet.stdout.is_empty());
}

#[test]
fn cp_copies_files_directories_and_tar_streams() {
    let fake = Fake::new();
    fake.cmd(&["run", "-d", "--name", "c1", "test/fid"])
        .assert()
        .success();
    fake.cmd(&["exec", "c1", "make-healthy"]).assert().success();
    std::fs::create_dir_all(fake.path("out")).expect("mkdir");
    fake.cmd(&["cp", "c1:/healthy", "out/"])
        .assert()
        .success()
        .stdout("");
    assert_eq!(
        std::fs::read_to_string(fake.path("out/healthy")).unwrap_or_default(),
        "fine\n"
    );
    fake.cmd(&["cp", "c1:/app", "out/appdir"])
        .assert()
        .success();
    assert!(fake.path("out/appdir/start.sh").is_file());
    fake.cmd(&["cp", "c1:/app", "out/appdir"])
        .assert()
        .success();
    assert!(fake.path("out/appdir/app/ok.sh").is_file());
    fake.cmd(&["cp", "c1:/nope", "out/"])
        .assert()
        .code(1)
        .stderr("Error response from daemon: Could not find the file /nope in container c1\n");
    let missing_parent = fake.path("out/nosuchdir");
    fake.cmd(&["cp", "c1:/healthy", "out/nosuchdir/x/"])
        .assert()
        .code(1)
        .stderr(format!(
            "invalid output path: directory \"{}\" does not exist\n",
            missing_parent.display()
        ));
    fake.cmd(&["cp", "c1:/app", "out/healthy"])
        .assert()
        .code(1)
        .stderr("cannot copy directory\n");
    fake.cmd(&["cp", "nosuchc:/x", "out/"])
        .assert()
        .code(1)
        .stderr("Error response from daemon: No such container: nosuchc\n");
    std::fs::write(fake.path("host.txt"), "hi\n").expect("write");
    fake.cmd(&["cp", "host.txt", "c1:/app/"]).assert().success();
    fake.cmd(&["exec", "c1", "cat", "/app/host.txt"])
        .assert()
        .stdout("hi\n");
    fake.cmd(&["cp", "nonexist.txt", "c1:/app/"])
        .assert()
        .code(1)
        .stderr(format!(
            "lstat {}: no such file or directory\n",
            fake.path("nonexist.txt").display()
        ));
    fake.cmd(&["cp", "host.txt", "c1:/nosuchdir/sub/"])
        .assert()
        .code(1)
        .stderr("no such directory\n");
    fake.cmd(&["cp", "host.txt", "out/"])
        .assert()
        .code(1)
        .stderr("must specify at least one container source\n");
    // A tar stream out of the container and back into another directory.
    let archive = fake
        .cmd(&["cp", "c1:/app", "-"])
        .output()
        .expect("cp -")
        .stdout;
    assert_eq!(archive.len() % 512, 0);
    fake.cmd(&["exec", "c1", "make-healthy"]).assert().success();
    fake.cmd(&["cp", "-", "c1:/healthy"])
        .write_stdin(archive.clone())
        .assert()
        .code(1)
        .stderr("destination \"c1:/healthy\" must be a directory\n");
    fake.cmd(&["cp", "-", "c1:/app/"])
        .write_stdin(archive)
        .assert()
        .success();
    fake.cmd(&["exec", "c1", "cat", "/app/app/host.txt"])
        .assert()
        .stdout("hi\n");
}

#[test]
fn published_ports_serve_http_and_conflict_like_docker() {
    let fake = Fake::new();
    fake.cmd(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        "127.0.0.1::8080",
        "-p",
        "9090",
        "test/fid",
    ])
    .assert()
    .success();
    let port = host_port(&fake, "web");
    let lines = fake.stdout(&["port", "web"]);
    assert!(
        lines.starts_with(&format!(
            "8080/tcp -> 127.0.0.1:{port}\n9090/tcp -> 0.0.0.0:"
        )),
        "{lines}"
    );
    assert!(lines.contains("9090/tcp -> [::]:"), "{lines}");
    let ports: serde_json::Value =
        serde_json::from_str(&fake.inspect("web", "{{json .NetworkSettings.Ports}}"))
            .expect("json");
    assert_eq!(ports["8080/tcp"][0]["HostIp"], "127.0.0.1");
    assert_eq!(ports["8080/tcp"][0]["HostPort"], port.to_string());
    assert_eq!(ports["9090/tcp"][1]["HostIp"], "::");
    assert_eq!(
        fake.inspect("web", "{{json .HostConfig.PortBindings}}"),
        r#"{"8080/tcp":[{"HostIp":"127.0.0.1","HostPort":""}],"9090/tcp":[{"HostIp":"","HostPort":""}]}"#
    );
    assert_eq!(
        fake.inspect("web", "{{json .Config.ExposedPorts}}"),
        r#"{"8080/tcp":{},"9090/tcp":{}}"#
    );
    let (status, text) = http(port, "GET", "/health?x=1");
    assert_eq!(status, 200);
    assert!(
        text.contains("Content-Type: application/json\r\n"),
        "{text}"
    );
    assert!(text.ends_with("\r\n\r\n{\"status\":\"ok\"}"), "{text}");
    let (status, text) = http(port, "POST", "/jobs");
    assert_eq!(status, 201);
    assert!(
        text.contains("X-Job: 7\r\n") && text.ends_with("made"),
        "{text}"
    );
    assert_eq!(http(port, "GET", "/nope").0, 404);
    assert_eq!(http(port, "GET", "/jobs").0, 405);
    fake.cmd(&["logs", "web"])
        .assert()
        .stderr(predicate::str::contains(
            "req GET /health 200\nreq POST /jobs 201\nreq GET /nope 404\n",
        ));
    fake.cmd(&["port", "web", "99"])
        .assert()
        .code(1)
        .stderr("Error: No public port '99' published for web\n");
    // The same host port again: allocated by another container.
    let spec = format!("127.0.0.1:{port}:8080");
    let output = fake
        .cmd(&["run", "-d", "--name", "web2", "-p", &spec, "test/fid"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(125));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim().len(),
        64,
        "run -d prints the ID first"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("docker: Error response from daemon: driver failed programming external connectivity on endpoint web2 ("),
        "{stderr}"
    );
    assert!(
        stderr.ends_with(&format!("): Bind for 127.0.0.1:{port} failed: port is already allocated\n\nRun 'docker run --help' for more information\n")),
        "{stderr}"
    );
    assert_eq!(
        fake.inspect("web2", "{{.State.Status}} {{.State.ExitCode}}"),
        "created 128"
    );
    // create does not check; start does.
    fake.cmd(&["create", "--name", "web3", "-p", &spec, "test/fid"])
        .assert()
        .success();
    fake.cmd(&["start", "web3"])
        .assert()
        .code(1)
        .stderr(predicate::str::ends_with(
            "port is already allocated\nError: failed to start containers: web3\n",
        ));
    // A port held by another process on the host.
    let holder = TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = holder.local_addr().expect("addr").port();
    fake.cmd(&[
        "run",
        "--name",
        "web4",
        "-p",
        &format!("{taken}:8080"),
        "test/fid",
    ])
    .assert()
    .code(125)
    .stderr(predicate::str::contains(format!(
        "Error starting userland proxy: listen tcp4 0.0.0.0:{taken}: bind: address already in use\n"
    )));
    fake.cmd(&["run", "-p", "notaport", "test/fid"])
        .assert()
        .code(125)
        .stderr("docker: invalid containerPort: notaport\n\nRun 'docker run --help' for more information\n");
    fake.cmd(&["run", "-p", "99999:80", "test/fid"])
        .assert()
        .code(125)
        .stderr(
            "docker: invalid hostPort: 99999\n\nRun 'docker run --help' for more information\n",
        );
    // Stopping releases the port and clears NetworkSettings.Ports.
    fake.cmd(&["stop", "-t", "1", "web"]).assert().success();
    assert_eq!(fake.inspect("web", "{{json .NetworkSettings.Ports}}"), "{}");
    fake.cmd(&["port", "web"]).assert().success().stdout("");
    drop(holder);
    TcpListener::bind(("127.0.0.1", port)).expect("port released");
}

#[test]
fn health_checks_move_from_starting_to_healthy_and_unhealthy() {
    let fake = Fake::new();
    fake.cmd(&[
        "run",
        "-d",
        "--name",
        "h1",
        "--health-cmd",
        "healthcheck",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "test/fid",
    ])
    .assert()
    .success();
    assert_eq!(
        fake.inspect("h1", "{{json .Config.Healthcheck}}"),
        r#"{"Test":["CMD-SHELL","healthcheck"],"Interval":200000000,"Retries":2}"#
    );
    fake.wait_for("h1", "{{.State.Health.Status}}", "unhealthy");
    let health: serde_json::Value =
        serde_json::from_str(&fake.inspect("h1", "{{json .State.Health}}")).expect("json");
    assert!(health["FailingStreak"].as_i64().unwrap_or(0) >= 2);
    assert_eq!(health["Log"][0]["ExitCode"], 1);
    assert_eq!(
        health["Log"][0]["Output"],
        "cat: can't open '/healthy': No such file or directory\n"
    );
    fake.cmd(&["ps", "--format", "{{.Status}}"])
        .assert()
        .stdout("Up Less than a second (unhealthy)\n");
    fake.cmd(&["exec", "h1", "make-healthy"]).assert().success();
    fake.wait_for(
        "h1",
        "{{.State.Health.Status}} {{.State.Health.FailingStreak}}",
        "healthy 0",
    );
    fake.cmd(&["ps", "--format", "{{.Status}}"])
        .assert()
        .stdout("Up Less than a second (healthy)\n");
    // Failures inside the start period do not count.
    fake.cmd(&[
        "run",
        "-d",
        "--name",
        "h2",
        "--health-cmd",
        "healthcheck",
        "--health-interval",
        "100ms",
        "--health-retries",
        "1",
        "--health-start-period",
        "30s",
        "test/fid",
    ])
    .assert()
    .success();
    assert_eq!(fake.inspect("h2", "{{.State.Health.Status}}"), "starting");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        fake.inspect(
            "h2",
            "{{.State.Health.Status}} {{.State.Health.FailingStreak}}"
        ),
        "starting 0"
    );
    // A self-probe against the image's own routes.
    fake.cmd(&[
        "run",
        "-d",
        "--name",
        "h3",
        "--health-cmd",
        "self-probe",
        "--health-interval",
        "100ms",
        "test/fid",
    ])
    .assert()
    .success();
    fake.wait_for("h3", "{{.State.Health.Status}}", "healthy");
    let probes: serde_json::Value =
        serde_json::from_str(&fake.inspect("h3", "{{json .State.Health.Log}}")).expect("json");
    assert_eq!(probes[0]["Output"], "{\"status\":\"ok\"}");

    fake.cmd(&["run", "--health-interval", "bogus", "test/fid"]).assert().code(125).stderr(
        "invalid argument \"bogus\" for \"--health-interval\" flag: time: invalid duration \"bogus\"\n\nUsage:  docker run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun 'docker run --help' for more information\n",
    );
    fake.cmd(&["run", "--health-retries", "x", "test/fid"]).assert().code(125).stderr(
        predicate::str::starts_with("invalid argument \"x\" for \"--health-retries\" flag: strconv.ParseInt: parsing \"x\": invalid syntax\n"),
    );
    fake.cmd(&["run", "-d", "--name", "plain", "test/fid"])
        .assert()
        .success();
    assert_eq!(fake.inspect("plain", "{{json .State.Health}}"), "null");
}

#[test]
fn memory_over_the_limit_is_an_oom_kill() {
    let fake = Fake::new();
    fake.cmd(&["run", "--name", "oom", "-m", "16m", "test/fid", "hog"])
        .assert()
        .code(137)
        .stdout("small ok\n");
    assert_eq!(
        fake.inspect("oom", "{{.State.Status}} {{.State.ExitCode}} {{.State.OOMKilled}} {{json .State.Error}} {{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}"),
        "exited 137 true \"\" 16777216 33554432"
    );
    fake.cmd(&["run", "--name", "roomy", "test/fid", "hog"])
        .assert()
        .success()
        .stdout("small ok\nbig ok\n");
    assert_eq!(fake.inspect("roomy", "{{.State.OOMKilled}}"), "false");
    // A container killed from outside is not OOM-killed.
    fake.cmd(&["run", "-d", "--name", "killed", "-m", "16m", "test/fid"])
        .assert()
        .success();
    fake.cmd(&["kill", "killed"]).assert().success();
    assert_eq!(
        fake.inspect("killed", "{{.State.ExitCode}} {{.State.OOMKilled}}"),
        "137 false"
    );
}

#[test]
fn non_executable_files_give_126() {
    let fake = Fake::new();
    let denied = "failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: \"/app/start.sh\": permission denied: unknown";
    fake.cmd(&["run", "--name", "ne", "test/fid", "/app/start.sh"])
        .assert()
        .code(126)
        .stdout("")
        .stderr(format!("docker: Error response from daemon: {denied}\n\nRun 'docker run --help' for more information\n"));
    assert_eq!(
        fake.inspect(
            "ne",
            "{{.State.Status}} {{.State.ExitCode}} {{json .State.Error}}"
        ),
        format!(
            "created 126 {}",
            serde_json::to_string(denied).unwrap_or_default()
        )
    );
    fake.cmd(&["run", "--rm", "test/fid", "/app/ok.sh"])
        .assert()
        .success()
        .stdout("ran ok\n");
    fake.cmd(&["run", "--rm", "--entrypoint", "/app/start.sh", "test/fid"])
        .assert()
        .code(126);
    fake.cmd(&["run", "-d", "--name", "svc", "test/fid"])
        .assert()
        .success();
    fake.cmd(&["exec", "svc", "/app/start.sh"]).assert().code(126).stdout(
        "OCI runtime exec failed: exec failed: unable to start container process: exec: \"/app/start.sh\": permission denied: unknown\r\n",
    );
    fake.cmd(&["run", "--rm", "test/fid", "breaker"])
        .assert()
        .code(126)
        .stderr("sh: /f: Permission denied\n");
}

#[test]
fn interactive_run_forwards_stdin() {
    let fake = Fake::new();
    fake.cmd(&["run", "--rm", "-i", "test/fid", "echo-stdin"])
        .write_stdin("line1\nline2\n")
        .assert()
        .success()
        .stdout("line1\nline2\n");
    fake.cmd(&["run", "--rm", "-i", "test/fid", "cat"])
        .write_stdin("via cat\n")
        .assert()
        .success()
        .stdout("via cat\n");
    fake.cmd(&["run", "--rm", "test/fid", "cat"])
        .write_stdin("ignored\n")
        .assert()
        .success()
        .stdout("");
    fake.cmd(&["run", "--name", "i1", "-i", "test/fid", "true"])
        .write_stdin("")
        .assert()
        .success();
    assert_eq!(
        fake.inspect(
            "i1",
            "{{json .Config.OpenStdin}} {{json .Config.AttachStdin}} {{json .Config.StdinOnce}}"
        ),
        "true true true"
    );
    fake.cmd(&["run", "-d", "--name", "x1", "test/fid"])
        .assert()
        .success();
    fake.cmd(&["exec", "-i", "x1", "echo-stdin"])
        .write_stdin("exec in\n")
        .assert()
        .stdout("exec in\n");
}

#[test]
fn inspect_reports_caps_tmpfs_and_entrypoint() {
    let fake = Fake::new();
    fake.cmd(&[
        "run",
        "-d",
        "--name",
        "cap",
        "--cap-drop",
        "ALL",
        "--cap-drop",
        "NET_RAW",
        "--tmpfs",
        "/run",
        "--tmpfs",
        "/tmp:rw,size=64m",
        "--entrypoint",
        "/bin/sleep",
        "test/fid",
        "300",
    ])
    .assert()
    .success();
    assert_eq!(
        fake.inspect("cap", "{{json .HostConfig.CapDrop}} {{json .HostConfig.Tmpfs}} {{json .Config.Entrypoint}} {{json .Config.Cmd}} {{json .Path}} {{json .Args}}"),
        r#"["ALL","CAP_NET_RAW"] {"/run":"","/tmp":"rw,size=64m"} ["/bin/sleep"] ["300"] "/bin/sleep" ["300"]"#
    );
    fake.cmd(&["run", "--rm", "--entrypoint", "sleep 1", "test/fid"])
        .assert()
        .code(127);
}

#[test]
fn networks_and_volumes() {
    let fake = Fake::new();
    let id = fake.stdout(&["network", "create", "--label", "team=a", "n1"]);
    assert_eq!(id.trim().len(), 64);
    fake.cmd(&["network", "create", "n1"])
        .assert()
        .code(1)
        .stderr("Error response from daemon: network with name n1 already exists\n");
    fake.cmd(&["network", "ls"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with(
            "NETWORK ID     NAME      DRIVER    SCOPE\n",
        ));
    fake.cmd(&[
        "network",
        "ls",
        "--filter",
        "label=team=a",
        "--format",
        "{{.Name}} {{.Driver}} {{.Scope}}",
    ])
    .assert()
    .stdout("n1 bridge local\n");
    fake.cmd(&["network", "ls", "-q", "--filter", "name=n1"])
        .assert()
        .stdout(format!("{}\n", &id[..12]));
    fake.cmd(&["network", "ls", "--filter", "bogus=1"])
        .assert()
        .code(1)
        .stderr("Error response from daemon: Invalid filter 'bogus'\n");
    fake.cmd(&["run", "--rm", "--network", "nosuchnet", "test/fid", "true"])
        .assert()
        .code(125)
        .stderr("docker: Error response from daemon: network nosuchnet not found\n\nRun 'docker run --help' for more information\n");
    fake.cmd(&[
        "create",
        "--name",
        "nn",
        "--network",
        "nosuchnet",
        "test/fid",
        "true",
    ])
    .assert()
    .success();
    fake.cmd(&["start", "nn"]).assert().code(1).stderr(
        "Error response from daemon: network nosuchnet not found\nError: failed to start containers: nn\n",
    );
    assert_eq!(
        fake.inspect(
            "nn",
            "{{.State.Status}} {{.State.ExitCode}} {{.State.Error}}"
        ),
        "created 128 network nosuchnet not found"
    );
    fake.cmd(&[
        "run",
        "-d",
        "--name",
        "on-n1",
        "--network",
        "n1",
        "test/fid",
    ])
    .assert()
    .success();
    fake.cmd(&["network", "rm", "n1"]).assert().code(1).stderr(format!(
        "Error response from daemon: error while removing network: network n1 id {} has active endpoints\nexit status 1\n",
        id.trim()
    ));
    fake.cmd(&["rm", "-f", "on-n1"]).assert().success();
    fake.cmd(&["network", "rm", "n1"])
        .assert()
        .success()
        .stdout("n1\n");
    fake.cmd(&["network", "rm", "nosuchnet"])
        .assert()
        .code(1)
        .stderr("Error response from daemon: network nosuchnet not found\nexit status 1\n");
    fake.cmd(&["network", "bogus"]).assert().code(1).stderr(
        "docker: unknown command: docker network bogus\n\nUsage:  docker network\n\nRun 'docker network --help' for more information\n",
    );
    // Volumes.
    fake.cmd(&["volume", "create", "--label", "team=b", "v1"])
        .assert()
        .success()
        .stdout("v1\n");
    fake.cmd(&["volume", "create", "v1"])
        .assert()
        .success()
        .stdout("v1\n");
    let anonymous = fake.stdout(&["volume", "create"]);
    assert_eq!(anonymous.trim().len(), 64);
    fake.cmd(&["volume", "ls", "-q", "--filter", "label=team=b"])
        .assert()
        .stdout("v1\n");
    fake.cmd(&["volume", "ls", "--format", "{{json .}}", "--filter", "name=v1"]).assert().stdout(
        "{\"Availability\":\"N/A\",\"Driver\":\"local\",\"Group\":\"N/A\",\"Labels\":\"team=b\",\"Links\":\"N/A\",\"Mountpoint\":\"/var/lib/docker/volumes/v1/_data\",\"Name\":\"v1\",\"Scope\":\"local\",\"Size\":\"N/A\",\"Status\":\"N/A\"}\n",
    );
    fake.cmd(&["volume", "ls"]).assert().stdout(format!(
        "DRIVER    VOLUME NAME\nlocal     {}\nlocal     v1\n",
        anonymous.trim()
    ));
    fake.cmd(&[
        "run",
        "-d",
        "--name",
        "vuser",
        "-v",
        "v1:/data",
        "-v",
        "implicit:/more",
        "test/fid",
    ])
    .assert()
    .success();
    fake.cmd(&["volume", "ls", "-q", "--filter", "name=implicit"])
        .assert()
        .stdout("implicit\n");
    fake.cmd(&["volume", "rm", "v1"])
        .assert()
        .code(1)
        .stderr(format!(
            "Error response from daemon: remove v1: volume is in use - [{}]\n",
            fake.inspect("vuser", "{{.Id}}")
        ));
    fake.cmd(&["volume", "rm", "nosuchvol"])
        .assert()
        .code(1)
        .stderr("Error response from daemon: get nosuchvol: no such volume\n");
    fake.cmd(&["volume", "rm", "-f", "nosuchvol"])
        .assert()
        .success()
        .stdout("nosuchvol\n");
    fake.cmd(&["volume", "create", "bad name"]).assert().code(1).stderr(
        "Error response from daemon: create bad name: \"bad name\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path\n",
    );
}

#[test]
fn stats_no_stream_prints_deterministic_numbers() {
    let fake = Fake::new();
    fake.cmd(&["run", "-d", "--name", "s1", "-m", "64m", "test/fid"])
        .assert()
        .success();
    fake.cmd(&["run", "--name", "s2", "test/fid", "true"])
        .assert()
        .success();
    let short = fake.inspect("s1", "{{.Id}}")[..12].to_string();
    fake.cmd(&["stats", "--no-stream", "s1", "s2"]).assert().success().stdout(format!(
        "CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     NET I/O   BLOCK I/O   PIDS\n{short}   s1        0.00%     1MiB / 64MiB        1.56%     0B / 0B   0B / 0B     1\n{}   s2        0.00%     0B / 0B             0.00%     0B / 0B   0B / 0B     0\n",
        &fake.inspect("s2", "{{.Id}}")[..12]
    ));
    fake.cmd(&["stats", "--no-stream", "--format", "{{json .}}", "s1"]).assert().stdout(format!(
        "{{\"BlockIO\":\"0B / 0B\",\"CPUPerc\":\"0.00%\",\"Container\":\"s1\",\"ID\":\"{short}\",\"MemPerc\":\"1.56%\",\"MemUsage\":\"1MiB / 64MiB\",\"Name\":\"s1\",\"NetIO\":\"0B / 0B\",\"PIDs\":\"1\"}}\n"
    ));
    fake.cmd(&[
        "stats",
        "--no-stream",
        "--format",
        "table {{.Name}}\\t{{.MemUsage}}",
        "s1",
    ])
    .assert()
    .stdout("NAME      MEM USAGE / LIMIT\ns1        1MiB / 64MiB\n");
    fake.cmd(&["stats", "--no-stream", "nosuch"])
        .assert()
        .code(1)
        .stderr("Error response from daemon: No such container: nosuch\n");
}

#[test]
fn streaming_stats_shows_what_the_program_holds_until_the_container_stops() {
    let fake = Fake::new();
    fake.cmd(&[
        "run", "-d", "--name", "held", "-m", "64m", "test/fid", "holder", "1",
    ])
    .assert()
    .success();
    // Without --no-stream: frames while it runs, one all-zero frame once it stopped, then the end.
    let output = fake
        .cmd(&[
            "stats",
            "--format",
            "{{.Name}} {{.MemUsage}} {{.PIDs}}",
            "held",
        ])
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let frames = String::from_utf8(output).unwrap();
    let lines: Vec<&str> = frames.lines().collect();
    assert_eq!(
        lines.first(),
        Some(&"held 11MiB / 64MiB 1"),
        "1 MiB base plus the 10 MiB alloc:\n{frames}"
    );
    assert_eq!(lines.last(), Some(&"held 0B / 0B 0"), "{frames}");
    assert!(
        lines[..lines.len() - 1]
            .iter()
            .all(|line| *line == "held 11MiB / 64MiB 1"),
        "{frames}"
    );
    // Started again, the program starts with nothing allocated until it allocates again.
    fake.cmd(&["wait", "held"]).assert().success();
    assert!(
        fake.stdout(&["stats", "--no-stream", "--format", "{{.MemUsage}}", "held"])
            .starts_with("0B / 0B")
    );
}

#[test]
fn every_new_command_has_help_usage_errors_and_arity() {
    let fake = Fake::new();
    let commands: &[&[&str]] = &[
        &["images"],
        &["image", "ls"],
        &["rmi"],
        &["image", "rm"],
        &["pull"],
        &["build"],
        &["cp"],
        &["port"],
        &["stats"],
        &["network", "create"],
        &["network", "rm"],
        &["network", "ls"],
        &["network", "inspect"],
        &["volume", "create"],
        &["volume", "rm"],
        &["volume", "ls"],
        &["volume", "inspect"],
    ];
    for command in commands {
        let name = command.join(" ");
        let mut help = command.to_vec();
        help.push("--help");
        fake.cmd(&help)
            .assert()
            .success()
            .stdout(predicate::str::starts_with(format!(
                "Usage:  docker {name}"
            )));
        let mut bogus = command.to_vec();
        bogus.push("--bogus");
        fake.cmd(&bogus)
            .assert()
            .code(125)
            .stderr(predicate::str::starts_with(format!(
                "unknown flag: --bogus\n\nUsage:  docker {name}"
            )))
            .stderr(predicate::str::ends_with(format!(
                "Run 'docker {name} --help' for more information\n"
            )));
    }
    fake.cmd(&["pull"]).assert().code(1).stderr(
        "docker: 'docker pull' requires 1 argument\n\nUsage:  docker pull [OPTIONS] NAME[:TAG|@DIGEST]\n\nRun 'docker pull --help' for more information\n",
    );
    fake.cmd(&["rmi"]).assert().code(1).stderr(
        "docker: 'docker rmi' requires at least 1 argument\n\nUsage:  docker rmi [OPTIONS] IMAGE [IMAGE...]\n\nSee 'docker rmi --help' for more information\n",
    );
    fake.cmd(&["port"]).assert().code(1).stderr(
        "docker: 'docker port' requires at least 1 and at most 2 arguments\n\nUsage:  docker port CONTAINER [PRIVATE_PORT[/PROTO]]\n\nRun 'docker port --help' for more information\n",
    );
    fake.cmd(&["cp"]).assert().code(1).stderr(
        "docker: 'docker cp' requires 2 arguments\n\nUsage:  docker cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tdocker cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH\n\nRun 'docker cp --help' for more information\n",
    );
    fake.cmd(&["logs"])
        .assert()
        .code(1)
        .stderr(predicate::str::starts_with(
            "docker: 'docker logs' requires 1 argument\n",
        ));
    fake.cmd(&["network"])
        .assert()
        .success()
        .stderr(predicate::str::starts_with(
            "Usage:  docker network COMMAND",
        ));
}

#[test]
fn sixteen_parallel_runs_lose_nothing() {
    let fake = std::sync::Arc::new(Fake::new());
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let fake = std::sync::Arc::clone(&fake);
            std::thread::spawn(move || {
                let name = format!("par{i}");
                let n = format!("N={i}");
                fake.cmd(&[
                    "run",
                    "--name",
                    &name,
                    "-e",
                    &n,
                    "-l",
                    "group=par",
                    "test/fid",
                    "mixed",
                ])
                .assert()
                .code(4)
                .stdout(format!("out {i}\n"))
                .stderr(format!("err {i}\n"));
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("thread");
    }
    let listed = fake.stdout(&[
        "ps",
        "-a",
        "--filter",
        "label=group=par",
        "--format",
        "{{.Names}} {{.Status}}",
    ]);
    let mut lines: Vec<&str> = listed.lines().collect();
    lines.sort();
    assert_eq!(lines.len(), 16, "{listed}");
    assert!(
        lines
            .iter()
            .all(|l| l.ends_with(" Exited (4) Less than a second ago")),
        "{listed}"
    );
    for i in 0..16 {
        let name = format!("par{i}");
        fake.cmd(&["logs", &name])
            .assert()
            .success()
            .stdout(format!("out {i}\n"))
            .stderr(format!("err {i}\n"));
        assert_eq!(
            fake.inspect(&name, "{{.State.Status}} {{.State.ExitCode}}"),
            "exited 4"
        );
    }
}

#[test]
fn web_fixture_twin_serves_its_contract() {
    let fake = Fake::new();
    fake.cmd(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        "127.0.0.1::8080",
        "dockproof/web:1",
    ])
    .assert()
    .success();
    let port = host_port(&fake, "web");
    let (status, text) = http(port, "GET", "/api/items");
    assert_eq!(status, 200);
    assert!(
        text.ends_with(
            r#"{"items":[{"id":1,"name":"widget"},{"id":2,"name":"gadget"}],"count":2}"#
        ),
        "{text}"
    );
    let (status, text) = http(port, "GET", "/elsewhere");
    assert_eq!(status, 404);
    assert!(
        text.contains("Content-Type: text/plain\r\n") && text.ends_with("not found"),
        "{text}"
    );
    assert_eq!(http(port, "GET", "/api/error").0, 500);
    fake.wait_for("web", "{{.State.Health.Status}}", "healthy");
    fake.cmd(&["logs", "web"])
        .assert()
        .stdout("web: listening on 8080\n")
        .stderr(predicate::str::contains("web: GET /api/items 200\nweb: GET /elsewhere 404\nweb: ERROR simulated failure\nweb: GET /api/error 500\n"));
    fake.cmd(&[
        "run",
        "-d",
        "--name",
        "sick",
        "-e",
        "WEB_HEALTH=down",
        "-p",
        "127.0.0.1::8080",
        "dockproof/web:1",
    ])
    .assert()
    .success();
    assert_eq!(http(host_port(&fake, "sick"), "GET", "/health").0, 503);
    fake.wait_for("sick", "{{.State.Health.Status}}", "unhealthy");
    fake.cmd(&["run", "-e", "WEB_EXIT_CODE=3", "dockproof/web:1"])
        .assert()
        .code(3)
        .stderr("web: exiting at once with 3\n");
}
