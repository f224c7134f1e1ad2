//! A fixture image is checked on its first use in a run while the step's container is
//! created (one round trip less): when the check finds the fixture changed and builds
//! it again, the container created meanwhile is of the old image, and must be replaced.
//! Here the second run's fixture differs from the image the first run built; a step that
//! prints what the image holds must print the new content, and nothing may be left on the
//! daemon. Without the replacement the step prints the old content.

use std::path::Path;
use std::process::Command;

use libtest_mimic::{Failed, Trial};

use crate::support;

fn fail(message: impl std::fmt::Display) -> Failed {
    Failed::from(message.to_string())
}

const DOCKERFILE: &str = "# dockproof-image: TAG
# dockproof-context: /bin/busybox busybox
FROM scratch
COPY busybox /bin/busybox
COPY marker /marker
CMD [\"/bin/busybox\", \"cat\", \"/marker\"]
";

const SCENARIO: &str = "name: fixture-rebuilt
steps:
  - run:
      image: TAG
      cmd: [/bin/busybox, cat, /marker]
    expect: { exit_code: 0, stdout: { contains: MARK } }
";

/// One run of the scenario expecting `mark`, with the fixture's marker file saying `mark`.
fn run(backend: &str, dir: &Path, tag: &str, mark: &str, run_id: &str) -> Result<(), Failed> {
    let fixtures = dir.join("images");
    let image_dir = fixtures.join("probe");
    std::fs::create_dir_all(&image_dir).map_err(fail)?;
    std::fs::write(image_dir.join("Dockerfile"), DOCKERFILE.replace("TAG", tag)).map_err(fail)?;
    std::fs::write(image_dir.join("marker"), format!("{mark}\n")).map_err(fail)?;
    let scenario = dir.join("rebuilt.yaml");
    std::fs::write(
        &scenario,
        SCENARIO.replace("TAG", tag).replace("MARK", mark),
    )
    .map_err(fail)?;
    let work = dir.join("work");
    let output = Command::new(support::dockproof())
        .current_dir(support::root())
        .env("DOCKPROOF_HISTORY", support::history_db(&work))
        .args(["run", "--backend", backend, "--run-id", run_id])
        .arg("--fixture-images")
        .arg(&fixtures)
        .arg("--work-dir")
        .arg(&work)
        .arg(&scenario)
        .output()
        .map_err(fail)?;
    let text = support::describe(&output);
    if output.status.code() != Some(0) {
        return Err(fail(format!(
            "the run expecting {mark:?} from the image failed:\n{text}"
        )));
    }
    if String::from_utf8_lossy(&output.stderr).contains("left behind") {
        return Err(fail(format!("the run left something behind:\n{text}")));
    }
    let listed = Command::new("docker")
        .args(["ps", "--all", "--quiet", "--filter"])
        .arg(format!("label=dockproof.run={run_id}"))
        .output()
        .map_err(fail)?;
    if !listed.stdout.is_empty() {
        return Err(fail(format!(
            "containers of run {run_id} are still there: {}",
            String::from_utf8_lossy(&listed.stdout)
        )));
    }
    Ok(())
}

fn a_changed_fixture_is_the_image_the_step_runs(backend: &str) -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(fail)?;
    let pid = std::process::id();
    let tag = format!("dockproof/probe-fixture-rebuilt:{backend}-{pid}");
    let result = (|| {
        run(
            backend,
            dir.path(),
            &tag,
            "first",
            &format!("rebuilt-1-{backend}-{pid}"),
        )?;
        run(
            backend,
            dir.path(),
            &tag,
            "second",
            &format!("rebuilt-2-{backend}-{pid}"),
        )
    })();
    // The fixture image carries no run label: no sweep takes it.
    let _ = Command::new("docker")
        .args(["image", "rm", "--force", &tag])
        .output();
    result
}

pub fn trials() -> Vec<Trial> {
    ["docker-cli", "docker-api"]
        .into_iter()
        .map(|backend| {
            support::real_daemon_trial(
                format!("{backend}::a-changed-fixture-is-the-image-the-step-runs"),
                move || a_changed_fixture_is_the_image_the_step_runs(backend),
            )
        })
        .collect()
}
