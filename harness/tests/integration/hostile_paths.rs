//! Hostile files in staged inputs and collected artifacts, end to end: a fixture that is
//! a FIFO, a device or a hard link is refused at load with its line; a FIFO, a hard link
//! to a host file and a device node left by a job in its workspace are refused when
//! collected or staged over, at the scenario line that names them, and nothing hangs.
//!
//! The "job" is fake-docker behind a wrapper that, on `create`, plants those files in
//! the workspace it is given as a mount, as a hostile container could.

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use assert_cmd::Command;
use predicates::prelude::*;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Whether this process may create device nodes (root with CAP_MKNOD, not in a user namespace).
fn mknod_permitted(dir: &Path) -> Result<(), String> {
    let probe = dir.join("probe-device");
    let output = std::process::Command::new("mknod")
        .arg(&probe)
        .args(["c", "1", "3"])
        .output()
        .map_err(|error| format!("mknod: {error}"))?;
    let _ = std::fs::remove_file(&probe);
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

#[test]
fn fixtures_that_are_fifos_devices_or_hard_links_are_refused_at_load_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(dir.path().join("pipe.csv"))
        .status()
        .unwrap();
    assert!(status.success(), "mkfifo");
    write(dir.path(), "data.csv", "a,b\n");
    std::fs::hard_link(dir.path().join("data.csv"), dir.path().join("linked.csv")).unwrap();
    let scenario = write(
        dir.path(),
        "hostile-fixtures.yaml",
        "name: hostile-fixtures\nstage:\n  - { from: pipe.csv, to: inputs/a.csv }\n  - { from: /dev/zero, to: inputs/b.bin }\n  - { from: linked.csv, to: inputs/c.csv }\nsteps:\n  - run: { image: dockproof/job-runner:1, cmd: [echo, hi] }\n",
    );
    let shown = scenario.display().to_string();
    Command::new(support::dockproof())
        .current_dir(support::root())
        .arg("check")
        .arg(&scenario)
        .timeout(Duration::from_secs(60))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "{shown}:3:13: fixture file `pipe.csv` is a FIFO, not a regular file"
        )))
        .stderr(predicate::str::contains(format!(
            "{shown}:4:13: fixture file `/dev/zero` is a character device, not a regular file"
        )))
        .stderr(predicate::str::contains(format!(
            "{shown}:5:13: fixture file `linked.csv` is a hard link (2 names)"
        )))
        .stderr(predicate::str::contains(
            "3 problem(s) in scenario files; nothing was run",
        ));
}

const WRAPPER: &str = r#"#!/bin/sh
# On `create`, plant what a hostile job could leave in its workspace, then be fake-docker.
if [ "$1" = create ]; then
  previous=""
  for arg in "$@"; do
    if [ "$previous" = "--volume" ]; then workspace="${arg%%:/*}"; fi
    if [ "$previous" = "--mount" ]; then
      case "$arg" in type=bind,source=*) workspace="${arg#type=bind,source=}"; workspace="${workspace%%,target=*}";; esac
    fi
    previous="$arg"
  done
  mkfifo "$workspace/out.fifo"
  ln "$HOSTILE_HOST_FILE" "$workspace/linked.txt"
  if [ -n "$HOSTILE_MKNOD" ]; then mknod "$workspace/zero" c 1 5; fi
fi
exec "$HOSTILE_FAKE_DOCKER" "$@"
"#;

#[test]
fn fifos_devices_and_hard_links_left_in_the_workspace_are_refused_where_the_scenario_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    // On the workspace's filesystem, so the job can hard-link it in.
    let host_file = write(&work, "host-secret.txt", "host data\n");
    let wrapper = write(dir.path(), "docker-wrapper", WRAPPER);
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let devices = mknod_permitted(dir.path());
    if let Err(reason) = &devices {
        eprintln!("device-node case skipped: mknod is not permitted here ({reason})");
    }
    let device_steps = if devices.is_ok() {
        "  - upload: { from: zero, to: x/zero }\n"
    } else {
        ""
    };
    let scenario = |name: &str, steps: &str| {
        write(
            dir.path(),
            &format!("{name}.yaml"),
            &format!(
                "name: {name}\nsteps:\n  - run: {{ image: dockproof/job-runner:1, cmd: [echo, hi] }}\n{steps}"
            ),
        )
    };
    let uploads = scenario(
        "collect-fifo",
        "  - upload: { from: out.fifo, to: x/out }\n",
    );
    let checks = scenario(
        "check-hard-link",
        "  - run:\n      image: dockproof/job-runner:1\n      cmd: [echo, hi]\n    expect:\n      files:\n        - { path: linked.txt, text: { contains: host } }\n",
    );
    let stages = scenario(
        "stage-over-hostile-files",
        "  - stage:\n      - { text: \"overwritten\\n\", to: linked.txt }\n",
    );
    let stages_fifo = scenario(
        "stage-over-fifo",
        "  - stage:\n      - { text: \"x\", to: out.fifo }\n",
    );
    let device = scenario("collect-device", device_steps);
    let mut command = Command::new(support::dockproof());
    command
        .current_dir(support::root())
        .env_remove("FAKE_DOCKER_STATE")
        // The wrapper acts on each `create`: one fake-docker process per call (with the
        // call server it would see only `__serve`).
        .env("DOCKPROOF_FAKE_SERVER", "0")
        // The workspaces in the work dir itself, not on a tmpfs: the host file above
        // must be on their filesystem for the job to hard-link it.
        .env("DOCKPROOF_FAKE_TMPFS", "0")
        .env("DOCKPROOF_HISTORY", support::history_db(dir.path()))
        .env("HOSTILE_HOST_FILE", &host_file)
        .env("HOSTILE_FAKE_DOCKER", support::fake_docker())
        .env("HOSTILE_MKNOD", if devices.is_ok() { "1" } else { "" })
        .args(["run", "--backend", "fake", "--fake-docker"])
        .arg(&wrapper)
        .arg("--fake-images")
        .arg(support::root().join("fixtures/fake-images"))
        .arg("--work-dir")
        .arg(&work)
        .args([&uploads, &checks, &stages, &stages_fifo, &device])
        // A FIFO read would block forever: the whole run must end well within this.
        .timeout(Duration::from_secs(120));
    let assert = command.assert().code(1);
    let output = assert.get_output();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let expect = |path: &Path, line_column: &str, message: &str| {
        let wanted = format!(
            "{}:{line_column}: config_invalid: {message}",
            path.display()
        );
        assert!(stdout.contains(&wanted), "missing `{wanted}` in:\n{stdout}");
    };
    expect(
        &uploads,
        "4:21",
        "path `out.fifo` is a FIFO, not a regular file; it is refused, not read or written",
    );
    // Every scenario's job links the same host file in: it has 2 or more names by then.
    expect(&checks, "9:19", "path `linked.txt` is a hard link (");
    expect(&stages, "5:38", "path `linked.txt` is a hard link (");
    expect(
        &stages_fifo,
        "5:26",
        "path `out.fifo` is a FIFO, not a regular file",
    );
    assert_eq!(
        stdout
            .matches("names); another name may lie outside the workspace, so it is refused")
            .count(),
        2,
        "{stdout}"
    );
    if devices.is_ok() {
        expect(
            &device,
            "4:21",
            "path `zero` is a character device, not a regular file",
        );
    }
    assert_eq!(
        std::fs::read_to_string(&host_file).unwrap(),
        "host data\n",
        "the host file behind the hard link is untouched"
    );
}
