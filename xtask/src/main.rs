//! Project chores: `cargo xtask validate | conformance | bench | ci | fuzz | cst-debian`.
//!
//! `validate` builds dockproof and fake-docker and runs the shipped scenario
//! suite (on the fake by default), writing `target/dockproof/junit.xml` and
//! `target/dockproof/report.json`. `bench` measures dockproof against the
//! baselines a user would otherwise use (see `bench.rs`). `ci` is what
//! `.ci/run` runs: build, every test, then `validate`.

mod bench;
mod fuzz;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "dockproof's project chores")]
struct Cli {
    #[command(subcommand)]
    command: Task,
    /// Echo every child command before running it.
    #[arg(short, long, global = true)]
    verbose: bool,
}

/// `--verbose`: child commands are echoed only then.
static VERBOSE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Backend {
    Fake,
    DockerCli,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Run the shipped scenario suite and write target/dockproof/{junit.xml,report.json}.
    Validate {
        /// Backend to validate against.
        #[arg(long, value_enum, default_value = "fake")]
        backend: Backend,
        /// The pre-rollout gate: the `canary`-tagged scenarios on every host, go (0) or no-go (1).
        #[arg(long)]
        canary: bool,
        /// With --canary: a host (`NAME=DOCKER_HOST`, `fake://NAME?faults=SPEC`), repeatable.
        #[arg(long = "host", value_name = "HOST", requires = "canary")]
        hosts: Vec<String>,
        /// With --canary: runs of the suite per host.
        #[arg(long, requires = "canary")]
        repeat: Option<u32>,
        /// With --canary: the gates file.
        #[arg(long, requires = "canary")]
        gates: Option<PathBuf>,
        /// Only scenario files matching this glob (relative to the repository root).
        #[arg(long, value_name = "GLOB")]
        scenarios: Option<String>,
        /// Scenarios run at once.
        #[arg(short, long)]
        jobs: Option<usize>,
    },
    /// The differential suite: fake-docker against the real docker CLI (needs a daemon).
    Conformance {
        /// Only cases whose name contains this.
        filter: Option<String>,
    },
    /// Benchmarks against baselines run side by side: prints a table, writes target/dockproof/bench.json.
    Bench(bench::BenchArgs),
    /// Everything CI checks: tidy, fmt, clippy, cargo-deny (when installed), build, tests
    /// (unit, CLI, scenario suites), then `validate`.
    Ci,
    /// The architecture's invariants: no import cycle in either crate, pure checks, reporters
    /// without engine or backend, backends without findings (see xtask/src/tidy.rs).
    Tidy,
    /// `cargo deny check licenses bans sources` against deny.toml (when cargo-deny is
    /// installed: `DOCKPROOF_CARGO_DENY`, `.ci/run`'s tools cache or `PATH`).
    Deny,
    /// The loaders' properties (random and mutated YAML through every loader) for
    /// `--executions` inputs in all, counted per loader; writes target/dockproof/fuzz.json.
    Fuzz(fuzz::FuzzArgs),
    /// The Debian image of harness/tests/suites/cst_oracle.rs (issue 17 item 8): a Debian
    /// bookworm root built by debootstrap from the machine's configured mirror (no
    /// registry is needed), imported with `ENV PATH` set as a Dockerfile image has it.
    /// The root filesystem tarball is cached (`--tarball`, built only when missing, ~35 s;
    /// installs debootstrap with apt-get when absent; needs root); the image is imported
    /// only when the daemon lacks TAG (~5 s) and kept. `.ci/run` calls this.
    /// `--check` also runs fixtures/cst/debian.yaml on it with both drivers.
    CstDebian {
        /// The image to import as (reused when it exists).
        #[arg(default_value = "dockproof/cst-debian:bookworm")]
        tag: String,
        /// The Debian mirror (default: the first one in /etc/apt/sources.list{,.d/*}).
        #[arg(long)]
        mirror: Option<String>,
        /// The cached root filesystem tarball.
        #[arg(
            long,
            env = "DOCKPROOF_CST_DEBIAN_TAR",
            default_value = "/var/cache/dockproof-debian-bookworm.tar"
        )]
        tarball: PathBuf,
        /// Then run fixtures/cst/debian.yaml on the image with both drivers.
        #[arg(long)]
        check: bool,
    },
}

fn root() -> PathBuf {
    // Cargo sets CARGO_MANIFEST_DIR when it runs the program too; prefer that over the
    // build-time value, which is stale when a shared target dir holds a build from another clone.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest_dir
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// `cargo`, without the variables `cargo run` set for xtask itself: build
/// scripts that track them (ring's does) would otherwise see a change and
/// rebuild, with everything above them, on every switch between `cargo xtask`
/// and a plain `cargo build`.
fn cargo() -> Command {
    without_package_env(Command::new(
        std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()),
    ))
}

/// `command` without the variables cargo sets for the package it runs (see [`cargo`]).
fn without_package_env(mut command: Command) -> Command {
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if key_text.starts_with("CARGO_PKG_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
            ]
            .contains(&key_text.as_ref())
        {
            command.env_remove(&key);
        }
    }
    command
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

fn run(command: &mut Command) -> Result<i32> {
    if VERBOSE.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!("xtask: running {command:?}");
    }
    let status = command
        .status()
        .with_context(|| format!("failed to start {command:?}"))?;
    Ok(status.code().unwrap_or(1))
}

fn run_ok(command: &mut Command) -> Result<()> {
    match run(command)? {
        0 => Ok(()),
        code => bail!("{command:?} failed with exit code {code}"),
    }
}

/// Options of `validate --canary`.
#[derive(Debug, Default)]
struct Canary {
    hosts: Vec<String>,
    repeat: Option<u32>,
    gates: Option<PathBuf>,
}

fn validate(
    backend: Backend,
    canary: Option<Canary>,
    scenarios: Option<&str>,
    jobs: Option<usize>,
) -> Result<i32> {
    let root = root();
    run_ok(cargo().current_dir(&root).args([
        "build",
        "--quiet",
        "-p",
        "dockproof",
        "-p",
        "fake-docker",
    ]))?;
    let bin = target_dir(&root).join("debug");
    let reports = root.join("target").join("dockproof");
    std::fs::create_dir_all(&reports)
        .with_context(|| format!("cannot create {}", reports.display()))?;
    let mut command = Command::new(bin.join("dockproof"));
    command.current_dir(&root);
    match &canary {
        Some(canary) => {
            command.arg("canary");
            for host in &canary.hosts {
                command.args(["--host", host]);
            }
            if let Some(repeat) = canary.repeat {
                command.args(["--repeat", &repeat.to_string()]);
            }
            if let Some(gates) = &canary.gates {
                command.arg("--gates").arg(gates);
            }
        }
        None => {
            command
                .arg("run")
                .arg("--junit")
                .arg(reports.join("junit.xml"))
                .arg("--json")
                .arg(reports.join("report.json"));
        }
    }
    command
        .args([
            "--backend",
            match backend {
                Backend::Fake => "fake",
                Backend::DockerCli => "docker-cli",
            },
        ])
        .arg("--fake-docker")
        .arg(bin.join("fake-docker"));
    if let Some(jobs) = jobs {
        command.args(["--jobs", &jobs.to_string()]);
    }
    match scenarios {
        Some(pattern) => {
            let full = root.join(pattern);
            let mut files: Vec<PathBuf> = glob::glob(&full.to_string_lossy())
                .with_context(|| format!("invalid glob `{pattern}`"))?
                .filter_map(Result::ok)
                .collect();
            files.sort();
            if files.is_empty() {
                bail!("no scenario file matches `{pattern}`");
            }
            command.args(files);
        }
        None => {
            command.arg("scenarios");
        }
    }
    run(&mut command)
}

fn conformance(filter: Option<&str>) -> Result<i32> {
    let mut command = cargo();
    command
        .current_dir(root())
        .env("DOCKPROOF_REQUIRE_DOCKER", "1")
        .args(["test", "-p", "dockproof", "--test", "conformance", "--"]);
    if let Some(filter) = filter {
        command.arg(filter);
    }
    run(&mut command)
}

fn ci() -> Result<i32> {
    let root = root();
    // Say at the start which kind of run this is: with a daemon the real-daemon tests
    // run (most of the time: README "CI" has the measured figures), without one they
    // show as ignored.
    let daemon = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned());
    match daemon {
        Some(version) => eprintln!(
            "xtask ci: a Docker daemon answers (server {version}): the real-daemon tests run too"
        ),
        None if std::env::var_os("DOCKPROOF_REQUIRE_DOCKER").is_some() => eprintln!(
            "xtask ci: no Docker daemon answers and DOCKPROOF_REQUIRE_DOCKER is set: the real-daemon tests will fail"
        ),
        None => {
            eprintln!("xtask ci: no Docker daemon answers: the real-daemon tests show as ignored")
        }
    }
    // Gates first: they take seconds and a formatting or lint failure should not
    // wait behind the whole test suite.
    tidy_task(&root)?;
    run_ok(cargo().current_dir(&root).args(["fmt", "--all", "--check"]))?;
    run_ok(cargo().current_dir(&root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    deny_task(&root)?;
    run_ok(
        cargo()
            .current_dir(&root)
            .args(["build", "--workspace", "--all-targets"]),
    )?;
    // Every test binary runs even after one fails: one CI run shows every failure.
    run_ok(
        cargo()
            .current_dir(&root)
            .args(["test", "--workspace", "--no-fail-fast"]),
    )?;
    let code = validate(Backend::Fake, None, None, None)?;
    if code != 0 {
        bail!("`cargo xtask validate` exited with {code}");
    }
    // The benchmarks on small sizes with the debug binaries just built: the ratios are
    // printed for a reader (and compared with the last quick run), never judged here (a
    // shared machine is noisy); a benchmark that cannot run at all fails CI.
    let code = bench::bench(bench::BenchArgs::for_ci())?;
    if code != 0 {
        bail!("`cargo xtask bench --quick --debug-binaries`: a benchmark could not run");
    }
    Ok(0)
}

/// Where `.ci/run` installs cargo-deny (its `install_cargo_deny`).
const CARGO_DENY_IN_TOOLS: &str = "/var/cache/dockproof-tools/cargo-deny/bin/cargo-deny";

/// The cargo-deny to run: `DOCKPROOF_CARGO_DENY` (which must exist when set), else the
/// one `.ci/run` installs, else `cargo-deny` on `PATH`; none when it is not installed.
fn cargo_deny() -> Result<Option<PathBuf>> {
    if let Some(path) = std::env::var_os("DOCKPROOF_CARGO_DENY") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!(
                "DOCKPROOF_CARGO_DENY names {}, which does not exist (unset it to skip the dependency check)",
                path.display()
            );
        }
        return Ok(Some(path));
    }
    let in_tools = PathBuf::from(CARGO_DENY_IN_TOOLS);
    if in_tools.is_file() {
        return Ok(Some(in_tools));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("cargo-deny"))
            .find(|candidate| candidate.is_file())
    });
    Ok(on_path)
}

/// `cargo deny check licenses bans sources` against deny.toml, when cargo-deny is
/// installed (the `advisories` check needs GitHub's advisory database: not run).
fn deny_task(root: &Path) -> Result<()> {
    match cargo_deny()? {
        Some(deny) => run_ok(
            without_package_env(Command::new(deny))
                .current_dir(root)
                .args([
                    "check",
                    "--hide-inclusion-graph",
                    "licenses",
                    "bans",
                    "sources",
                ]),
        ),
        None => {
            eprintln!(
                "xtask ci: cargo-deny is not installed: licences, duplicate versions and sources not checked (`.ci/run` installs it)"
            );
            Ok(())
        }
    }
}

/// `cargo xtask tidy`: fail with every problem when an invariant is broken.
fn tidy_task(root: &Path) -> Result<()> {
    let problems = tidy::tidy(root)?;
    if problems.is_empty() {
        eprintln!("xtask tidy: no import cycle, no forbidden edge");
        return Ok(());
    }
    for problem in &problems {
        eprintln!("error: {problem}");
    }
    bail!("`cargo xtask tidy` found {} problem(s)", problems.len())
}

/// The first Debian mirror the machine's APT configuration names (deb822 `.sources` or one-line).
fn configured_mirror() -> Option<String> {
    let mut texts = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .collect();
        paths.sort();
        texts.extend(
            paths
                .iter()
                .filter(|path| {
                    path.extension()
                        .is_some_and(|ext| ext == "sources" || ext == "list")
                })
                .filter_map(|path| std::fs::read_to_string(path).ok()),
        );
    }
    texts.extend(std::fs::read_to_string("/etc/apt/sources.list").ok());
    texts.iter().flat_map(|text| text.lines()).find_map(|line| {
        let line = line.trim();
        let url = if let Some(uris) = line.strip_prefix("URIs:") {
            uris.split_whitespace().next()
        } else if let Some(rest) = line.strip_prefix("deb ") {
            rest.split_whitespace().find(|word| word.contains("://"))
        } else {
            None
        }?;
        (url.contains("debian") && !url.contains("security")).then(|| url.to_owned())
    })
}

/// The cached root filesystem: debootstrap into a scratch directory, tar it (numeric
/// owners) next to `tarball`, then rename, so a cut-short run leaves no partial cache.
fn debian_root_tarball(tarball: &Path, mirror: Option<String>) -> Result<()> {
    let installed = Command::new("debootstrap")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !installed {
        eprintln!("xtask: installing debootstrap");
        run_ok(
            Command::new("apt-get")
                .args(["install", "-y", "-qq", "debootstrap"])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
    }
    let mirror = mirror
        .or_else(configured_mirror)
        .context("no Debian mirror in /etc/apt/sources.list*: pass --mirror URL")?;
    let dir = tempfile_dir("dockproof-debootstrap")?;
    let rootfs = dir.join("root");
    let partial = tarball.with_extension("tar.partial");
    let result = (|| {
        // libcap2-bin: upstream's Dockerfile.cap installs it with apt-get in a build, which
        // needs the network inside a container; here it is part of the root instead.
        eprintln!("xtask: debootstrap --variant=minbase bookworm from {mirror}");
        run_ok(
            Command::new("debootstrap")
                .args(["--variant=minbase", "--include=libcap2-bin", "bookworm"])
                .arg(&rootfs)
                .arg(&mirror),
        )?;
        run_ok(
            Command::new("tar")
                .args(["--numeric-owner", "-C"])
                .arg(&rootfs)
                .arg("-cf")
                .arg(&partial)
                .arg("."),
        )?;
        std::fs::rename(&partial, tarball)
            .with_context(|| format!("cannot move the root filesystem to {}", tarball.display()))?;
        eprintln!("xtask: cached the root filesystem in {}", tarball.display());
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&partial);
    result
}

/// A fresh directory under the temporary directory (removed by the caller).
fn tempfile_dir(prefix: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

fn cst_debian(tag: &str, mirror: Option<String>, tarball: &Path, check: bool) -> Result<i32> {
    let root = root();
    if std::fs::metadata(tarball).map_or(true, |metadata| metadata.len() == 0) {
        debian_root_tarball(tarball, mirror)?;
    }
    let exists = Command::new("timeout")
        .args(["30", "docker", "image", "inspect", tag])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !exists {
        eprintln!("xtask: importing {} as {tag}", tarball.display());
        run_ok(
            Command::new("docker")
                .args([
                    "import",
                    "--change",
                    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "--message",
                    "dockproof cargo xtask cst-debian",
                ])
                .arg(tarball)
                .arg(tag)
                .stdout(std::process::Stdio::null()),
        )?;
    }
    if !check {
        return Ok(0);
    }
    run_ok(
        cargo()
            .current_dir(&root)
            .args(["build", "--quiet", "-p", "dockproof"]),
    )?;
    let bin = target_dir(&root).join("debug").join("dockproof");
    let reports = root.join("target").join("dockproof");
    std::fs::create_dir_all(&reports)
        .with_context(|| format!("cannot create {}", reports.display()))?;
    let mut codes = Vec::new();
    for driver in ["docker", "tar"] {
        let junit = reports.join(format!("cst-debian-{driver}.xml"));
        codes.push(run(Command::new(&bin)
            .current_dir(&root)
            .args([
                "cst",
                "--no-history",
                "--backend",
                "docker-cli",
                "--driver",
                driver,
                "--image",
                tag,
                "--junit",
            ])
            .arg(&junit)
            .arg("fixtures/cst/debian.yaml"))?);
    }
    Ok(codes.into_iter().max().unwrap_or(0))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    VERBOSE.store(cli.verbose, std::sync::atomic::Ordering::Relaxed);
    let result = match cli.command {
        Task::Validate {
            backend,
            canary,
            hosts,
            repeat,
            gates,
            scenarios,
            jobs,
        } => {
            let canary = canary.then_some(Canary {
                hosts,
                repeat,
                gates,
            });
            validate(backend, canary, scenarios.as_deref(), jobs)
        }
        Task::Conformance { filter } => conformance(filter.as_deref()),
        Task::Bench(args) => bench::bench(args),
        Task::Ci => ci(),
        Task::Tidy => tidy_task(&root()).map(|()| 0),
        Task::Deny => deny_task(&root()).map(|()| 0),
        Task::Fuzz(args) => fuzz::fuzz(&args),
        Task::CstDebian {
            tag,
            mirror,
            tarball,
            check,
        } => cst_debian(&tag, mirror, &tarball, check),
    };
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::from(2)
        }
    }
}
