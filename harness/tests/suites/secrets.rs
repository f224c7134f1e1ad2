//! Secrets that stay secret, end to end: a multi-line PEM key, a value with `"`
//! and `\`, a generated token and a build arg, used by a job that prints them,
//! appear in no report format, no `--logs-dir` file, no history row, no GitHub
//! annotation or step summary and no console line; nor after a SIGINT sent while a
//! log streams to `--logs-dir`; and on the CLI backends no `docker` command line
//! (what `/proc/PID/cmdline` shows) ever holds one, and the env file that carries
//! them is 0600 and gone afterwards. Nor in any file `dockproof record` writes (the
//! recording and its blobs), from a job's env, streams and output file, a service's
//! HTTP answer and a CST-read image file, while the recording still replays.
//!
//! `fake::…` run on fake-docker; `docker-cli::…` and `docker-api::…` are real-daemon
//! tests (ignored without a daemon unless DOCKPROOF_REQUIRE_DOCKER=1).

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::{Failed, Trial};

/// Not a real key: PEM-shaped, 64-character lines.
const PEM: &str = "-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj
MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu
NMoSfm76oqFvAp8Gy0iz5sxjZmSnXyCdPEovGhLa0VzMaQ8s+CLOyS56YyCFGeJZ
qgtzJ6GR3eqoYSW9b9UMvkBpZODSctWSNGj3P7jRFDO5VoTwCQAWbFnOjDfH5Ulg
-----END PRIVATE KEY-----";

/// Quote, backslash, space and `$`: escaped in JSON, Debug and XML, so never equal to itself there.
const QUOTED: &str = "q\"uo\\te d$x-7781";

/// A build arg (the fixture writes it into the image's version.json).
const VERSION: &str = "9.8.7-sekrit";

/// Every form in which a value must not appear anywhere.
fn forbidden() -> Vec<String> {
    let mut forms = vec![PEM.to_owned(), VERSION.to_owned()];
    forms.extend(
        PEM.lines()
            .filter(|line| line.len() >= 6)
            .map(str::to_owned),
    );
    // Pieces of lines: an excerpt cut mid-line must not show one either.
    forms.extend(PEM.lines().skip(1).map(|line| line[..16].to_owned()));
    forms.push(QUOTED.to_owned());
    let json = serde_json::to_string(QUOTED).unwrap();
    forms.push(json.trim_matches('"').to_owned());
    forms.push(format!("{QUOTED:?}").trim_matches('"').to_owned());
    forms.push(
        QUOTED
            .replace('&', "&amp;")
            .replace('"', "&quot;")
            .replace('<', "&lt;"),
    );
    forms.push(QUOTED.replace('"', "&#34;"));
    forms.push("uo\\te d".to_owned());
    forms.push("uo\\\\te d".to_owned());
    forms
}

fn leak_scenario(tag: &str) -> String {
    let context = support::root().join("fixtures/build/multi-stage");
    format!(
        r#"name: secret-leak
secrets:
  key: {{ env: DOCKPROOF_TEST_PEM }}
  quoted: {{ env: DOCKPROOF_TEST_QUOTED }}
  version: {{ env: DOCKPROOF_TEST_VERSION }}
  token: {{ generate: 16 }}
stage:
  - {{ text: "a,b\n", to: inputs/x.csv }}
steps:
  - build:
      context: {context}
      tag: {tag}
      args: {{ VERSION: "{{{{ secret.version }}}}" }}
  - run:
      image: {tag}
    expect:
      stdout: {{ contains: version }}
  - run:
      image: dockproof/job-runner:1
      env:
        KEY: "{{{{ secret.key }}}}"
        QUOTED: "{{{{ secret.quoted }}}}"
        TOKEN: "{{{{ secret.token }}}}"
  - upload: {{ from: outputs/summary.json, to: "results/{{{{ secret.token }}}}/summary.json" }}
  - name: the job prints every secret
    run:
      image: dockproof/job-runner:1
      env:
        JOB_ID: "pem={{{{ secret.key }}}} quoted={{{{ secret.quoted }}}} token={{{{ secret.token }}}} version={{{{ secret.version }}}}"
    expect:
      stdout: {{ equals: "something else", not_matches: "MzEf" }}
"#,
        context = context.display()
    )
}

/// Environment holding the secrets' values.
fn with_secrets(command: &mut Command) -> &mut Command {
    command
        .env("DOCKPROOF_TEST_PEM", PEM)
        .env("DOCKPROOF_TEST_QUOTED", QUOTED)
        .env("DOCKPROOF_TEST_VERSION", VERSION)
}

/// Every regular file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.is_file() {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Fails naming the first forbidden form found in any of `texts`.
fn assert_nothing_leaked(texts: &[(String, Vec<u8>)]) -> Result<(), Failed> {
    for (name, bytes) in texts {
        for form in forbidden() {
            let found = bytes
                .windows(form.len())
                .position(|window| window == form.as_bytes());
            if let Some(at) = found {
                let start = at.saturating_sub(80);
                let end = (at + form.len() + 80).min(bytes.len());
                return Err(format!(
                    "{name} holds {form:?}:\n…{}…",
                    String::from_utf8_lossy(&bytes[start..end])
                )
                .into());
            }
        }
    }
    Ok(())
}

/// A wrapper around `program` recording, per invocation, its argv (what
/// `/proc/PID/cmdline` shows) and the mode of each `--env-file` it is given.
fn argv_recorder(dir: &Path, program: &Path) -> Result<(PathBuf, PathBuf), Failed> {
    let records = dir.join("argv");
    std::fs::create_dir_all(&records)?;
    let wrapper = dir.join("docker-wrapper");
    std::fs::write(
        &wrapper,
        format!(
            r#"#!/bin/sh
record="{records}/$$"
printf '%s\0' "$@" > "$record.argv"
previous=""
for argument in "$@"; do
  if [ "$previous" = "--env-file" ]; then
    stat -c '%a %U %n' "$argument" >> "$record.envfile"
  fi
  previous="$argument"
done
exec "{program}" "$@"
"#,
            records = records.display(),
            program = program.display()
        ),
    )?;
    let mut permissions = std::fs::metadata(&wrapper)?.permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&wrapper, permissions)?;
    Ok((wrapper, records))
}

/// The recorded command lines: no secret in any, every env file 0600 and gone now.
fn check_recorded_argv(records: &Path) -> Result<(), Failed> {
    let mut argv = Vec::new();
    let mut env_files = 0;
    let mut saw_build_arg = false;
    let mut saw_env_by_name = false;
    for path in files_under(records) {
        let bytes = std::fs::read(&path)?;
        let name = path.display().to_string();
        if name.ends_with(".envfile") {
            for line in String::from_utf8_lossy(&bytes).lines() {
                env_files += 1;
                let mut fields = line.splitn(3, ' ');
                let mode = fields.next().unwrap_or_default();
                let file = fields.nth(1).unwrap_or_default();
                if mode != "600" {
                    return Err(format!("env file {file} has mode {mode}, not 600").into());
                }
                if Path::new(file).exists() {
                    return Err(format!("env file {file} was left behind").into());
                }
            }
        } else {
            let words: Vec<&[u8]> = bytes.split(|byte| *byte == 0).collect();
            saw_build_arg |= words
                .windows(2)
                .any(|pair| pair[0] == b"--build-arg" && pair[1] == b"VERSION");
            saw_env_by_name |= words
                .windows(2)
                .any(|pair| pair[0] == b"--env" && pair[1] == b"KEY");
            argv.push((name, bytes));
        }
    }
    if argv.len() < 5 {
        return Err(format!("only {} docker invocations recorded", argv.len()).into());
    }
    if env_files == 0 {
        return Err("no env file seen: the single-line values went another way".into());
    }
    if !saw_build_arg {
        return Err("no `--build-arg VERSION` (by name) on any command line".into());
    }
    if !saw_env_by_name {
        return Err("no `--env KEY` (the multi-line value, by name) on any command line".into());
    }
    assert_nothing_leaked(&argv)
}

/// Runs the leaky scenario on `backend` with every output on; checks nothing leaked.
/// Secrets reach containers through `env:` (a value in `cmd:` is an argument of the
/// docker CLI by nature: README "Secrets" says so).
fn leak_test(backend: &str) -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let tag = format!(
        "secrets-fixture/multi-stage:{backend}-{}",
        std::process::id()
    );
    let scenario = dir.path().join("leak.yaml");
    std::fs::write(&scenario, leak_scenario(&tag))?;
    let reports = dir.path().join("reports");
    let work = dir.path().join("work");
    let summary = dir.path().join("step-summary.md");
    let (mut command, records) = match backend {
        "fake" => {
            let (wrapper, records) = argv_recorder(dir.path(), &support::fake_docker())?;
            let mut command = fake_command(&work, &wrapper);
            // A process per call, so the recorder sees every call's argv (with the call
            // server, calls reach fake-docker over its socket, not as arguments).
            command.env("DOCKPROOF_FAKE_SERVER", "0");
            (command, Some(records))
        }
        "docker-cli" => {
            support::ensure_fixture_image("dockproof/job-runner:1")?;
            let docker = which("docker")?;
            let (wrapper, records) = argv_recorder(dir.path(), &docker)?;
            let mut command = support::dockproof_real(&work);
            command.arg("--docker").arg(wrapper);
            (command, Some(records))
        }
        _ => {
            support::ensure_fixture_image("dockproof/job-runner:1")?;
            (support::dockproof_api(&work), None)
        }
    };
    let output = with_secrets(&mut command)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .args(["--report", "junit,json,markdown,html", "--report-dir"])
        .arg(&reports)
        .arg("--logs-dir")
        .arg(reports.join("logs"))
        .arg(&scenario)
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.code() != Some(1) {
        return Err(format!(
            "expected exit 1 (the last step fails): {}",
            describe(&output)
        )
        .into());
    }
    // The run did what it claims: every step up to the last passed, the last failed
    // quoting the masked output.
    for wanted in [
        "pem=*** quoted=*** token=*** version=***",
        "where a secret's value is (masked)",
    ] {
        if !stdout.contains(wanted) {
            return Err(format!("stdout lacks {wanted:?}:\n{stdout}").into());
        }
    }
    let json = std::fs::read_to_string(reports.join("report.json"))?;
    if !json.contains("results/***/summary.json") {
        return Err(format!("the JSON report lacks the masked upload key:\n{json}").into());
    }
    // On a real daemon the build arg reached the build (by name, from the CLI's
    // environment) and the image printed it, masked in the log file. (The fake's
    // built image is a fixed definition that ignores build args.)
    let built_output = std::fs::read_to_string(reports.join("logs/secret-leak/step-1.stdout.log"))?;
    if backend != "fake" && built_output != "{\"version\":\"***\"}\n" {
        return Err(format!("the built image printed {built_output:?}").into());
    }
    let logs = files_under(&reports.join("logs"));
    if logs.len() < 6 {
        return Err(format!("expected a log file per stream of 3 runs: {logs:?}").into());
    }
    let mut texts = vec![
        ("stdout".to_owned(), output.stdout.clone()),
        ("stderr".to_owned(), output.stderr.clone()),
        ("step summary".to_owned(), std::fs::read(&summary)?),
        (
            "history".to_owned(),
            std::fs::read(support::history_db(&work))?,
        ),
    ];
    for file in files_under(&reports) {
        texts.push((file.display().to_string(), std::fs::read(&file)?));
    }
    assert_nothing_leaked(&texts)?;
    if let Some(records) = records {
        check_recorded_argv(&records)?;
    }
    Ok(())
}

/// A handler for the recorded service: `/secret` answers `secret=$SECRET` (the PEM), the
/// rest `ok` (the image's health check asks `/health`).
const SECRET_HANDLER: &str = r#"#!/bin/sh
read -r method target version || exit 0
while read -r header && [ "$(printf '%s' "$header" | tr -d '\r')" != "" ]; do :; done
case "$target" in
  /secret) body="secret=$SECRET" ;;
  *) body=ok ;;
esac
printf 'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s' "${#body}" "$body"
"#;

/// The scenario the recording secret test records: the PEM and the quoted secret in a
/// job's env, stdout (long enough for a blob), stderr and an output file its check
/// reads; the PEM in a service's HTTP answer; the quoted one as a build arg written into
/// an image file a CST content test reads. Every check reads only what is not secret,
/// so a replay (which has the masked bytes) reaches the same verdict.
fn recorded_leak_scenario(tag: &str) -> String {
    format!(
        r#"name: record-secret-forms
secrets:
  key: {{ env: DOCKPROOF_TEST_PEM }}
  quoted: {{ env: DOCKPROOF_TEST_QUOTED }}
steps:
  - build:
      context: context
      tag: {tag}
      args: {{ SECRET: "{{{{ secret.quoted }}}}" }}
  - run:
      image: dockproof/job-runner:1
      cmd: [sh, -c, 'mkdir -p outputs; printf "header\n%s\n%s\n" "$KEY" "$QUOTED" > outputs/secret.txt; i=0; while [ $i -lt 300 ]; do echo "line $i $KEY $QUOTED, padded to make a blob"; i=$((i+1)); done; echo "err $QUOTED $KEY" >&2']
      env: {{ KEY: "{{{{ secret.key }}}}", QUOTED: "{{{{ secret.quoted }}}}" }}
    expect:
      exit_code: 0
      stdout: {{ contains: "line 299 " }}
      stderr: {{ contains: "err " }}
      files:
        - path: outputs/secret.txt
          text: {{ contains: "header" }}
  - service:
      name: web
      image: {tag}
      env: {{ SECRET: "{{{{ secret.key }}}}" }}
      ports: ["0:8080"]
      wait: {{ healthy: true, within: 30s }}
  - http:
      service: web
      path: /secret
      expect:
        status: 200
        body: {{ contains: "secret=" }}
  - cst:
      image: {tag}
      config: cst.yaml
"#
    )
}

/// Recording (`dockproof record`) keeps file contents where a check reads them: the PEM
/// and the quoted secret, written by a job into an output file, its stdout and stderr
/// (a blob too), its env, a service's HTTP answer and an image file a CST test reads,
/// appear in no file under the recordings directory in any form, and the recording
/// replays on the fake with the same verdict (passed).
fn recording_leak_test(backend: &str) -> Result<(), Failed> {
    support::ensure_fixture_image("dockproof/job-runner:1")?;
    support::ensure_fixture_image("dockproof/web:1")?;
    let dir = tempfile::tempdir()?;
    let tag = format!("secrets-record/web:{backend}-{}", std::process::id());
    let _image = RemoveImage(tag.clone());
    let context = dir.path().join("context");
    std::fs::create_dir(&context)?;
    std::fs::write(context.join("handle"), SECRET_HANDLER)?;
    std::fs::write(
        context.join("Dockerfile"),
        "FROM dockproof/web:1\nARG SECRET\nUSER 0\nCOPY handle /usr/local/bin/handle\nRUN chmod 0755 /usr/local/bin/handle && echo \"token=$SECRET\" > /srv-secret.txt\nUSER 65534:65534\n",
    )?;
    std::fs::write(
        dir.path().join("cst.yaml"),
        "schemaVersion: 2.0.0\nfileContentTests:\n  - name: the secret file\n    path: /srv-secret.txt\n    expectedContents: ['^token=']\n",
    )?;
    let scenario = dir.path().join("record-secret.yaml");
    std::fs::write(&scenario, recorded_leak_scenario(&tag))?;
    let work = dir.path().join("work");
    std::fs::create_dir(&work)?;
    let mut record = Command::new(support::dockproof());
    record
        .current_dir(support::root())
        .env("DOCKPROOF_HISTORY", support::history_db(&work))
        .args(["record", "--backend", backend, "--fixture-images"])
        .arg(support::root().join("fixtures/images"))
        .arg("--work-dir")
        .arg(&work)
        .arg(&scenario);
    let output = with_secrets(&mut record).output()?;
    if output.status.code() != Some(0) {
        return Err(format!("recording failed\n{}", describe(&output)).into());
    }
    let recording = dir.path().join("recordings/record-secret-forms");
    let files = files_under(&recording);
    let blobs = files
        .iter()
        .filter(|path| {
            path.parent()
                .is_some_and(|parent| parent.ends_with("blobs"))
        })
        .count();
    let text = std::fs::read_to_string(recording.join("recording.json"))?;
    // The recording holds what the checks read (masked), so the test looks where it claims.
    for wanted in [
        "header\\n***\\n***\\n",
        "secret=***",
        "token=***",
        "\"SECRET\": \"***\"",
    ] {
        if !text.contains(wanted) {
            return Err(format!("the recording lacks {wanted:?}:\n{text}").into());
        }
    }
    if blobs == 0 {
        return Err(format!("expected the long stdout as a blob: {files:?}").into());
    }
    let mut texts = Vec::new();
    for file in files {
        texts.push((file.display().to_string(), std::fs::read(&file)?));
    }
    assert_nothing_leaked(&texts)?;
    let mut replay = support::dockproof_fake(&work);
    replay.arg(&scenario);
    let replayed = with_secrets(&mut replay).output()?;
    if replayed.status.code() != Some(0) {
        return Err(format!(
            "the recording does not replay with the recorded verdict (passed)\n{}",
            describe(&replayed)
        )
        .into());
    }
    Ok(())
}

/// Removes the test's image on every path.
struct RemoveImage(String);

impl Drop for RemoveImage {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rmi", "-f", &self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn which(program: &str) -> Result<PathBuf, Failed> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
        .ok_or_else(|| format!("`{program}` is not on PATH").into())
}

/// `dockproof run` on the fake, with `program` as the fake docker CLI.
fn fake_command(work: &Path, program: &Path) -> Command {
    let mut command = Command::new(support::dockproof());
    command
        .current_dir(support::root())
        .env_remove("FAKE_DOCKER_STATE")
        .env("DOCKPROOF_HISTORY", support::history_db(work))
        .args(["run", "--backend", "fake", "--fake-docker"])
        .arg(program)
        .arg("--fake-images")
        .arg(support::root().join("fixtures/fake-images"))
        .arg("--work-dir")
        .arg(work);
    command
}

fn describe(output: &Output) -> String {
    support::describe(output)
}

/// A job prints the key then keeps printing; dockproof gets SIGINT while that log
/// streams to `--logs-dir`. The file holds what was streamed, and no secret.
fn interrupted_stream_test(backend: &str) -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let work = dir.path().join("work");
    let logs = dir.path().join("logs");
    let reports = dir.path().join("reports");
    let scenario = dir.path().join("stream.yaml");
    // About 40 MB after the key, in lines.
    let filler_lines = 1_000_000;
    let full_size = PEM.len() + 1 + filler_lines * 40;
    let mut command = match backend {
        "fake" => {
            let mut big = Vec::with_capacity(full_size);
            big.extend_from_slice(PEM.as_bytes());
            big.push(b'\n');
            for line in 0..filler_lines {
                big.extend_from_slice(format!("filler line {line:>12} of the job..\n").as_bytes());
            }
            std::fs::write(dir.path().join("big.txt"), &big)?;
            std::fs::write(
                &scenario,
                "name: secret-stream\nsecrets:\n  key: { env: DOCKPROOF_TEST_PEM }\nstage:\n  - { from: big.txt, to: inputs/big.txt }\nsteps:\n  - run: { image: dockproof/job-runner:1, cmd: [cat, /workspace/inputs/big.txt], timeout: 5m }\n",
            )?;
            support::dockproof_fake(&work)
        }
        _ => {
            support::ensure_fixture_image("dockproof/job-runner:1")?;
            std::fs::write(
                &scenario,
                format!(
                    "name: secret-stream\nsecrets:\n  key: {{ env: DOCKPROOF_TEST_PEM }}\nsteps:\n  - run:\n      image: dockproof/job-runner:1\n      env: {{ KEY: \"{{{{ secret.key }}}}\" }}\n      cmd: [sh, -c, 'printf \"%s\\n\" \"$KEY\"; yes \"filler line of the job......................\" | head -c {}']\n      timeout: 5m\n",
                    filler_lines * 40
                ),
            )?;
            support::dockproof_on(backend, &work)
        }
    };
    let mut child = with_secrets(&mut command)
        .args(["--report", "junit,json", "--report-dir"])
        .arg(&reports)
        .arg("--logs-dir")
        .arg(&logs)
        .arg(&scenario)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let log = logs.join("secret-stream").join("step-0.stdout.log");
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let size = std::fs::metadata(&log).map(|meta| meta.len()).unwrap_or(0);
        if size > 1 << 20 {
            break;
        }
        if Instant::now() > deadline || child.try_wait()?.is_some() {
            let _ = child.kill();
            let output = child.wait_with_output()?;
            return Err(format!(
                "the log never streamed past 1 MiB ({size} bytes): {}",
                describe(&output)
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )?;
    let started = Instant::now();
    let output = loop {
        if child.try_wait()?.is_some() {
            break child.wait_with_output()?;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            return Err("dockproof did not end within 120 s of SIGINT".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let written = std::fs::metadata(&log)?.len();
    if written as usize >= full_size {
        return Err(format!(
            "the stream ended ({written} bytes) before the signal landed: the test proves nothing"
        )
        .into());
    }
    if written == 0 {
        return Err("the log file is empty".into());
    }
    let mut texts = vec![
        ("stdout".to_owned(), output.stdout.clone()),
        ("stderr".to_owned(), output.stderr.clone()),
    ];
    for file in files_under(&logs).into_iter().chain(files_under(&reports)) {
        texts.push((file.display().to_string(), std::fs::read(&file)?));
    }
    if let Ok(history) = std::fs::read(support::history_db(&work)) {
        texts.push(("history".to_owned(), history));
    }
    assert_nothing_leaked(&texts)?;
    let head = std::fs::read(&log)?;
    if !head.starts_with(b"***\nfiller line") {
        return Err(format!(
            "the log does not start with the masked key: {:?}",
            String::from_utf8_lossy(&head[..head.len().min(80)])
        )
        .into());
    }
    Ok(())
}

/// Peak resident memory (VmHWM, KiB) of a `dockproof` run on the fake whose job
/// prints the key, `filler` bytes without a newline, and the key again, with
/// `--logs-dir`; checks the log file is complete and masked.
fn peak_rss_kib(filler: usize) -> Result<u64, Failed> {
    let dir = tempfile::tempdir()?;
    let work = dir.path().join("work");
    let logs = dir.path().join("logs");
    let mut big = Vec::with_capacity(filler + 2 * PEM.len() + 8);
    big.extend_from_slice(PEM.as_bytes());
    big.resize(big.len() + filler, b'x');
    big.extend_from_slice(PEM.as_bytes());
    big.extend_from_slice(b" end");
    std::fs::write(dir.path().join("big.txt"), &big)?;
    let scenario = dir.path().join("long.yaml");
    std::fs::write(
        &scenario,
        "name: secret-long-line\nsecrets:\n  key: { env: DOCKPROOF_TEST_PEM }\nworkspace: { max_bytes: 1GiB }\nstage:\n  - { from: big.txt, to: inputs/big.txt }\nsteps:\n  - run: { image: dockproof/job-runner:1, cmd: [cat, /workspace/inputs/big.txt], timeout: 5m }\n",
    )?;
    let mut child = with_secrets(&mut fake_command(&work, &support::fake_docker()))
        .arg("--logs-dir")
        .arg(&logs)
        .arg(&scenario)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    while child.try_wait()?.is_none() {
        if let Some(kib) = std::fs::read_to_string(&status).ok().and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        }) {
            peak = kib;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err("the run took over 300 s".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        return Err(format!("the run failed: {}", describe(&output)).into());
    }
    let log = std::fs::read(logs.join("secret-long-line/step-0.stdout.log"))?;
    if log.len() != filler + 3 + 3 + 4 || !log.starts_with(b"***x") || !log.ends_with(b"x*** end") {
        return Err(format!("the log file is not the masked stream: {} bytes", log.len()).into());
    }
    Ok(peak)
}

/// A log of one long line holding the key costs the same memory at 16 MiB and at
/// 160 MiB: masking streams (before, a whole line was held, masked and copied:
/// 2.98 GB of RSS for 1 GB).
fn long_line_memory_test() -> Result<(), Failed> {
    let small = peak_rss_kib(16 << 20)?;
    let large = peak_rss_kib(160 << 20)?;
    eprintln!("peak RSS: {small} KiB with 16 MiB, {large} KiB with 160 MiB");
    if large > small + 24 * 1024 {
        return Err(format!(
            "memory grows with the log: {small} KiB for 16 MiB, {large} KiB for 160 MiB"
        )
        .into());
    }
    Ok(())
}

/// This file's trials, run by `suites/main.rs`.
pub fn trials() -> Vec<Trial> {
    let mut trials = vec![
        Trial::test(
            "fake::a_pem_and_a_quoted_secret_appear_in_no_output",
            || leak_test("fake"),
        ),
        Trial::test(
            "fake::sigint_while_a_log_streams_leaves_no_secret_in_the_logs_dir",
            || interrupted_stream_test("fake"),
        ),
        Trial::test(
            "fake::a_long_line_with_a_secret_costs_bounded_memory",
            long_line_memory_test,
        ),
    ];
    for backend in ["docker-cli", "docker-api"] {
        trials.push(support::real_daemon_trial(
            format!("{backend}::a_pem_and_a_quoted_secret_appear_in_no_output"),
            move || leak_test(backend),
        ));
        trials.push(support::real_daemon_trial(
            format!("{backend}::sigint_while_a_log_streams_leaves_no_secret_in_the_logs_dir"),
            move || interrupted_stream_test(backend),
        ));
        trials.push(support::real_daemon_trial(
            format!("{backend}::a_pem_and_a_quoted_secret_reach_no_recording_file"),
            move || recording_leak_test(backend),
        ));
    }
    trials
}
