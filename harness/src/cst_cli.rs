//! `dockproof cst`: run container-structure-test files against one image and
//! write the same reports (console, JUnit, JSON, history) as `dockproof run`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};

use dockproof::cst::{self, CstContext, Driver};
use dockproof::events::Outcome;
use dockproof::report::{self, ReportOptions};

use dockproof::run::{self as library, BackendKind, BackendOptions, Exit};

use crate::usage_error;

/// Where file and metadata tests read the image from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DriverKind {
    /// CST's docker driver: a created (never started) container per test, read with `docker cp`.
    Docker,
    /// CST's tar driver idea: the image's `docker save` layers and config, no container
    /// (`--image PATH.tar`: a `docker save` archive instead of a daemon's image).
    Tar,
    /// CST's host driver: the tests run on this machine itself (commands spawned here,
    /// files read here), the image configuration from `--metadata FILE`; asks first
    /// unless `--force`.
    Host,
}

/// `dockproof cst …` (dockproof's own flags) or `dockproof cst test …` (CST's command
/// line: the same flags, and CST's `--config`, `--output`, `--test-report`).
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CstCommand {
    #[command(subcommand)]
    test: Option<CstSubcommand>,
    #[command(flatten)]
    args: CstArgs,
}

#[derive(Debug, clap::Subcommand)]
enum CstSubcommand {
    /// Run the tests, with container-structure-test's command line (`test --image IMG --config F`).
    Test(Box<CstArgs>),
}

/// CST's `--output` formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// dockproof's console lines (CST's text output differs; see docs/cst.md).
    Text,
    /// CST's JSON summary: `Pass`, `Fail`, `Total`, `Duration`, `Results[]`.
    Json,
    /// CST's JUnit document: one `<testsuite>`, one `<failure>` per error.
    Junit,
}

#[derive(Debug, Args)]
pub struct CstArgs {
    /// CST config files (schemaVersion 2.0.0 or 1.0.0); also `--config`.
    configs: Vec<PathBuf>,
    /// A CST config file (CST's flag; repeatable, before the positional ones).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config_flags: Vec<PathBuf>,
    /// The image under test (required; optional here only so that `cst test` parses).
    #[arg(short = 'i', long)]
    image: Option<String>,
    /// Backend to run on (default: the daemon's Engine API, as CST talks to it).
    #[arg(
        long,
        value_enum,
        default_value = "docker-api",
        env = "DOCKPROOF_BACKEND"
    )]
    backend: BackendKind,
    /// CST's report on stdout, or in `--test-report`: text, json or junit.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    output: OutputFormat,
    /// Write CST's report (`--output`; text becomes json, as CST does) to this file.
    #[arg(long, value_name = "FILE")]
    test_report: Option<PathBuf>,
    /// The JUnit `<testsuite name>` of `--output junit` (CST's default: container-structure-test.test).
    #[arg(long, value_name = "NAME")]
    junit_suite_name: Option<String>,
    /// Print nothing on stdout (CST's `-q`); reports are still written.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// No colour (dockproof's console has none outside a terminal; accepted for CST's command line).
    #[arg(long)]
    no_color: bool,
    /// How file and metadata tests read the image (command tests always run containers).
    #[arg(short = 'd', long, value_enum, default_value = "docker")]
    driver: DriverKind,
    /// Pull the image before the tests (CST's `--pull`; docker driver only, as in CST).
    #[arg(long)]
    pull: bool,
    /// The platform the image must be (`os/arch[/variant]`); a pull asks for it (CST's `--platform`).
    #[arg(long, value_name = "PLATFORM")]
    platform: Option<String>,
    /// The OCI runtime of every container (CST's `--runtime`).
    #[arg(long, value_name = "RUNTIME")]
    runtime: Option<String>,
    /// Keep every container and committed image, and print how to remove them (CST's `--save`).
    #[arg(long)]
    save: bool,
    /// The host driver's image configuration: an image config JSON (`{"config": {"Env": …}}`,
    /// as `docker save` or `crane config` write it); required with `--driver host`.
    #[arg(long, value_name = "FILE")]
    metadata: Option<PathBuf>,
    /// Run the host driver without asking first (CST's `--force`).
    #[arg(short = 'f', long)]
    force: bool,
    /// An OCI image layout to test instead of `--image` (with `--driver tar`: read in
    /// place, digests checked; command tests cannot run, as on a `docker save` archive).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["image", "pull"])]
    image_from_oci_layout: Option<PathBuf>,
    /// CST's tag for loading an OCI layout into the daemon (docker driver; accepted, not
    /// needed by the tar driver, which loads nothing).
    #[arg(long, value_name = "TAG")]
    default_image_tag: Option<String>,
    /// CST's flag to ignore the layout's `org.opencontainers.image.ref.name` when loading
    /// (accepted, as `--default-image-tag`).
    #[arg(long)]
    ignore_ref_annotation: bool,
    /// The docker binary for `--backend docker-cli`.
    #[arg(long, default_value = "docker", env = "DOCKPROOF_DOCKER")]
    docker: PathBuf,
    /// The fake-docker binary (default: next to dockproof, then on PATH).
    #[arg(long, env = "DOCKPROOF_FAKE_DOCKER")]
    fake_docker: Option<PathBuf>,
    /// Fake image definitions for `--backend fake`.
    #[arg(long, default_value = "fixtures/fake-images")]
    fake_images: PathBuf,
    /// Real fixture images (directories with a Dockerfile), built on demand on real daemons.
    #[arg(long, default_value = "fixtures/images")]
    fixture_images: PathBuf,
    /// Tests run at once (default: four per core, at least 4, at most 64: a test mostly
    /// waits on the daemon starting a container or mounting one for a copy).
    #[arg(short, long)]
    jobs: Option<usize>,
    /// How long one command (setup or test) may run before it is killed.
    #[arg(long, default_value = "5m", value_parser = crate::parse_duration)]
    timeout: Duration,
    /// Write a JUnit XML report here.
    #[arg(long, value_name = "PATH")]
    junit: Option<PathBuf>,
    /// Write a JSON report here.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    #[command(flatten)]
    identity: crate::IdentityArgs,
    /// With `--backend fake`: replay the image trees and command results of this
    /// recording directory (`dockproof record` of a scenario whose `cst:` step tested
    /// the image; docs/recordings.md).
    #[arg(long, value_name = "DIR")]
    recordings: Option<PathBuf>,
    /// Directory for the run's temporary files (fake state, saved images).
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    #[command(flatten)]
    daemon: crate::DaemonArgs,
}

/// The run's own id and the id its reports show (see `dockproof::run::run_ids`): on the fake a hash
/// of the image and configs is shown, the run itself adds a random part.
fn run_id(args: &CstArgs) -> Result<(String, String), dockproof::run_id::RunIdError> {
    use sha2::Digest;
    match args.backend {
        BackendKind::Fake => {
            let mut hasher = sha2::Sha256::new();
            hasher.update(args.image.as_deref().unwrap_or_default().as_bytes());
            for config in &args.configs {
                hasher.update([0]);
                hasher.update(config.display().to_string().as_bytes());
            }
            let suite = format!("fake-cst-{}", &hex::encode(hasher.finalize())[..8]);
            Ok((dockproof::run_id::fresh(&suite)?, suite))
        }
        BackendKind::DockerCli | BackendKind::DockerApi => {
            let (id, _) = library::run_ids(args.backend, &[])?;
            let id = format!("cst-{id}");
            Ok((id.clone(), id))
        }
    }
}

/// CST's `--platform` check: the image's `os/arch[/variant]` must be `platform`
/// (the daemon's words when it refuses a container of another platform).
async fn check_platform(
    backend: &dyn dockproof::backend::Backend,
    image: &str,
    platform: &str,
) -> Result<(), String> {
    let inspect = backend
        .image_inspect_json(image)
        .await
        .map_err(|error| error.to_string())?;
    let field = |name: &str| {
        inspect
            .get(name)
            .and_then(|value| value.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let (os, architecture, variant) = (field("Os"), field("Architecture"), field("Variant"));
    let actual = format!("{os}/{architecture}");
    let with_variant = if variant.is_empty() {
        actual.clone()
    } else {
        format!("{actual}/{variant}")
    };
    if platform == actual || platform == with_variant {
        Ok(())
    } else {
        Err(format!(
            "image with reference {image} was found but its platform ({with_variant}) does not match the specified platform ({platform})"
        ))
    }
}

/// CST's warning before the host driver runs, and its question (`--force` answers it):
/// yes on stdin goes on; no, an unreadable answer or the end of stdin (a CI job) stops
/// (CST asks again after anything else; so does this, at most three times). On
/// stderr: stdout may be a report.
fn confirm_host_run(force: bool) -> bool {
    eprintln!(
        "WARNING: Using the host driver runs tests directly on the machine\nthat this binary is being run on, and can potentially corrupt your system.\nBe sure you know what you're doing before continuing!\n\nContinue? (y/n)"
    );
    if force {
        eprintln!("Forcing test run!");
        return true;
    }
    for _ in 0..3 {
        let mut answer = String::new();
        match std::io::stdin().read_line(&mut answer) {
            Ok(0) | Err(_) => {
                eprintln!("error reading input from stdin (pass --force to run without asking)");
                return false;
            }
            Ok(_) => {}
        }
        match answer.trim() {
            "y" | "Y" | "yes" | "Yes" | "YES" => return true,
            "n" | "N" | "no" | "No" | "NO" => return false,
            _ => eprintln!("Please type yes or no to continue or exit"),
        }
    }
    false
}

/// CST's docker driver on `--image-from-oci-layout`: the layout (checked) written as a
/// `docker save` archive in the run's directory and loaded into the daemon under the
/// manifest's reference or `--default-image-tag`; returns the tag (the image stays, as
/// CST leaves it).
async fn load_layout(
    backend: &dyn dockproof::backend::Backend,
    layout: &std::path::Path,
    run_dir: &std::path::Path,
    default_tag: Option<&str>,
    ignore_reference: bool,
) -> Result<String, String> {
    let archive = run_dir.join("oci-layout-load.tar");
    let written = {
        let (layout, archive) = (layout.to_path_buf(), archive.clone());
        let default_tag = default_tag.map(str::to_owned);
        tokio::task::spawn_blocking(move || {
            cst::oci::write_docker_archive(
                &layout,
                &archive,
                default_tag.as_deref(),
                ignore_reference,
            )
        })
        .await
        .map_err(|error| format!("reading the OCI layout stopped: {error}"))?
    };
    let tag =
        written.map_err(|error| format!("loading {} as OCI layout: {error}", layout.display()))?;
    let loaded = backend.load_image(&archive).await;
    let _ = std::fs::remove_file(&archive);
    loaded.map_err(|error| format!("error loading oci layout into daemon: {error}"))?;
    dockproof::inert_eprintln!("Loaded {tag}");
    Ok(tag)
}

/// `dockproof cst` in either form.
pub fn dispatch(command: CstCommand) -> ExitCode {
    match command.test {
        Some(CstSubcommand::Test(args)) => run(*args),
        None => run(command.args),
    }
}

pub fn run(mut args: CstArgs) -> ExitCode {
    let mut configs = std::mem::take(&mut args.config_flags);
    configs.append(&mut args.configs);
    args.configs = configs;
    if args.configs.is_empty() {
        return usage_error("Please provide at least one test config file (`--config FILE`)");
    }
    // CST's argument checks, in its words (cmd/container-structure-test/app/cmd/test/util.go).
    let host = args.driver == DriverKind::Host;
    if host && args.metadata.is_none() {
        return usage_error(
            "Please provide path to image metadata file (`--metadata FILE` with `--driver host`)",
        );
    }
    if (host && args.image.is_some()) || (!host && args.metadata.is_some()) {
        return usage_error(
            "Cannot provide both image path and metadata file (`--metadata` is for `--driver host`, `--image` for the others)",
        );
    }
    let metadata = match (&args.metadata, host) {
        (Some(path), true) => match cst::host::read_metadata(path) {
            Ok(config) => Some(Arc::new(config)),
            Err(error) => return usage_error(error),
        },
        _ => None,
    };
    let oci_layout = args.image_from_oci_layout.clone();
    if let Some(layout) = &oci_layout {
        if host {
            // CST's words (it reads a layout with its docker driver only).
            return usage_error(
                "--image-from-oci-layout is not supported when not using Docker driver (dockproof: the docker or tar driver)",
            );
        }
        if !layout.is_dir() {
            return usage_error(format!(
                "`--image-from-oci-layout {}` is not a directory (an OCI image layout: oci-layout, index.json, blobs/)",
                layout.display()
            ));
        }
    }
    // The docker driver loads the layout into the daemon first (as CST does); the tar
    // driver reads it in place.
    let tar_layout = oci_layout
        .clone()
        .filter(|_| args.driver == DriverKind::Tar);
    let image = match (&args.image, host, &oci_layout) {
        (Some(image), _, _) => image.clone(),
        (None, false, Some(layout)) => layout.display().to_string(),
        // The host driver has no image: reports name the machine.
        (None, true, _) => "host".to_owned(),
        (None, false, None) => {
            return usage_error("Please supply the image to test against (`--image IMAGE`)");
        }
    };
    if args.pull && args.driver != DriverKind::Docker {
        // CST's words and exit code (a fatal error).
        dockproof::inert_eprintln!("error: image pull not supported when not using Docker driver");
        return Exit::Failed.into();
    }
    if host && !confirm_host_run(args.force) {
        // CST's words and exit code.
        eprintln!("error: aborted by user");
        return ExitCode::from(1);
    }
    // CST's tar driver takes a `docker save` archive for `--image PATH.tar`.
    let archive =
        (args.driver == DriverKind::Tar && image.ends_with(".tar")).then(|| PathBuf::from(&image));
    if let Some(path) = &archive
        && !path.is_file()
    {
        return usage_error(format!(
            "`--image {}` names a `docker save` archive that is not a file",
            path.display()
        ));
    }
    let _ = args.no_color;
    let mut loaded = Vec::new();
    let mut sources = Vec::new();
    // A file that cannot be read as a whole is one failed result; an invalid test in a
    // file is one failed result too (see `cst::load`). Every problem is shown first.
    let mut file_failures = Vec::new();
    for path in &args.configs {
        let report = cst::load_file(path);
        crate::diagnostics::emit_parts(&report.path, &report.source, &report.diagnostics);
        match report.loaded {
            Some(file) => {
                for warning in &file.warnings {
                    dockproof::inert_eprintln!(
                        "warning: {}:{}:{}: {}",
                        file.path.display(),
                        warning.span.start.line,
                        warning.span.start.column,
                        warning.message
                    );
                }
                sources.push(report.source.clone());
                loaded.push(file);
            }
            None => file_failures.push(cst::file_failure(&report.path, &report.diagnostics)),
        }
    }
    let (run_id, shown_run_id) = match &args.identity.run_id {
        Some(id) => (id.clone(), id.clone()),
        None => match run_id(&args) {
            Ok(ids) => ids,
            Err(error) => return usage_error(error),
        },
    };
    if let Err(error) = dockproof::run_id::validate(&run_id) {
        return usage_error(error);
    }
    let parent = args.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    // Held (and claimed as live: `dockproof clean` leaves it alone) until the run ends.
    let run_dir = match dockproof::run_id::RunDir::create(&parent, &run_id) {
        Ok(dir) => dir,
        Err(message) => return usage_error(message),
    };
    let options = BackendOptions {
        docker: args.docker.clone(),
        fake_docker: args.fake_docker.clone(),
        fake_images: vec![args.fake_images.clone()],
        fixture_images: vec![args.fixture_images.clone()],
        context: None,
        daemon_timeout: args.daemon.daemon_timeout,
    };
    let (backend, fixtures) =
        match library::make_backend(args.backend, &options, run_dir.path(), Vec::new()) {
            Ok(made) => made,
            Err(message) => return usage_error(message),
        };
    let backend = match &args.recordings {
        None => backend,
        Some(_) if args.backend != BackendKind::Fake => {
            return usage_error(
                "`--recordings` replays on the fake: use it with `--backend fake` (a real daemon runs the image itself)",
            );
        }
        Some(dir) => {
            if !dir.join(dockproof_recording::FILE_NAME).is_file() {
                return usage_error(format!(
                    "`--recordings {}` holds no {}: record a scenario whose `cst:` step tests the image with `dockproof record`",
                    dir.display(),
                    dockproof_recording::FILE_NAME
                ));
            }
            // A check that would read a file whose content was not recorded is refused.
            for file in &loaded {
                if let Some(unrecorded) =
                    dockproof::recordings::unrecorded_reads(dir, &image, &file.config)
                {
                    return usage_error(format!(
                        "{}: the recording in {} cannot replay this CST file on {image}: {}; re-record it on a real daemon with `dockproof record`",
                        file.path.display(),
                        dir.display(),
                        unrecorded.join("; ")
                    ));
                }
            }
            let overrides = dockproof::backend::ScenarioOverrides {
                recordings: Some(dir.clone()),
                scope: "cst".to_owned(),
                ..Default::default()
            };
            match backend.with_overrides(&overrides) {
                Ok(backend) => backend,
                Err(message) => return usage_error(message),
            }
        }
    };
    let deterministic = args.backend == BackendKind::Fake;
    // Bind mounts name the daemon's files: on a daemon elsewhere they are not ours.
    if !backend.daemon_host().is_local() {
        let mut refused = 0;
        for (file, source) in loaded.iter().zip(&sources) {
            let diagnostics = cst::remote_bind_problems(file);
            refused += diagnostics.len();
            crate::diagnostics::emit_parts(&file.path, source, &diagnostics);
        }
        if refused > 0 {
            eprintln!("error: {refused} problem(s) in CST files; nothing was run");
            return Exit::Usage.into();
        }
    }
    let options = ReportOptions {
        run_id: if deterministic {
            shown_run_id
        } else {
            run_id.clone()
        },
        backend: args.backend.name().to_owned(),
        deterministic,
    };
    let runtime = match library::runtime() {
        Ok(runtime) => runtime,
        Err(error) => return usage_error(error),
    };
    let image = match (&oci_layout, args.driver) {
        (Some(layout), DriverKind::Docker) => {
            match runtime.block_on(load_layout(
                backend.as_ref(),
                layout,
                run_dir.path(),
                args.default_image_tag.as_deref(),
                args.ignore_ref_annotation,
            )) {
                Ok(tag) => tag,
                Err(message) => {
                    // CST's fatal error: exit 1.
                    dockproof::inert_eprintln!("error: {message}");
                    return ExitCode::from(1);
                }
            }
        }
        _ => image,
    };
    let context = Arc::new(CstContext {
        observer: None,
        backend: Arc::clone(&backend),
        image: image.clone(),
        run_id: run_id.clone(),
        driver: match args.driver {
            DriverKind::Tar => Driver::Tar,
            DriverKind::Docker => Driver::Docker,
            DriverKind::Host => Driver::Host,
        },
        jobs: args.jobs.unwrap_or_else(default_jobs),
        command_timeout: args.timeout,
        work_dir: run_dir.path().to_path_buf(),
        options: cst::CstOptions {
            save: args.save,
            runtime: args.runtime.clone(),
            archive: archive.clone(),
            metadata,
            oci_layout: tar_layout.clone(),
        },
    });
    let nothing_ran = loaded.is_empty().then_some(());
    let outcome: Result<_, String> = runtime.block_on(async {
        if loaded.is_empty() {
            // Only unreadable files: their failures are the results, the image is not needed.
            let outcome = dockproof::runner::RunOutcome {
                reports: Vec::new(),
                interrupted: false,
                swept: 0,
                swept_resources: Vec::new(),
                left_behind: Vec::new(),
            };
            return Ok((outcome, Vec::new()));
        }
        if archive.is_none() && tar_layout.is_none() && !host {
            if args.pull {
                backend
                    .pull_image(&image, args.platform.as_deref())
                    .await
                    .map_err(|error| format!("error pulling remote image {image}: {error}"))?;
            }
            // Fixture images are built on real daemons on demand, as for scenarios.
            fixtures
                .ensure(backend.as_ref(), &image)
                .await
                .map_err(|error| error.to_string())?;
            if let Some(platform) = &args.platform {
                check_platform(backend.as_ref(), &image, platform).await?;
            }
        }
        let (mut outcome, results) = cst::run_all_with_results(Arc::clone(&context), loaded).await;
        if !args.save && !host {
            outcome.swept = cst::sweep(&context).await;
        }
        Ok((outcome, results))
    });
    let (mut outcome, results) = match outcome {
        Ok(outcome) => outcome,
        Err(message) => {
            // A daemon's answer can quote the image name and anything else it was given.
            // CST exits 1 on every such fatal error (a missing image, a failed pull, a
            // platform mismatch).
            dockproof::inert_eprintln!("error: {message}");
            return Exit::Failed.into();
        }
    };
    if args.save {
        let label = format!("dockproof.run={run_id}");
        // The run id may come from --run-id: inert under GitHub Actions.
        dockproof::inert_eprintln!(
            "kept the containers and images of this run (--save); remove them with:\n  docker rm -f $(docker ps -aq --filter label={label})\n  docker rmi $(docker images -q --filter label={label})"
        );
    }
    // Results in CST's order: file by file, a file that cannot be read as its one result.
    let mut pairs: Vec<_> = outcome.reports.drain(..).zip(results).collect();
    let mut ordered = Vec::new();
    let mut failures = file_failures.into_iter().peekable();
    for path in &args.configs {
        if failures.peek().is_some_and(|failure| &failure.file == path) {
            if let Some(failure) = failures.next() {
                // CST's result for a file it cannot parse has no name.
                let result = cst::CstResult {
                    errors: failure
                        .failure
                        .as_ref()
                        .map(|failure| failure.message.lines().map(str::to_owned).collect())
                        .unwrap_or_default(),
                    ..cst::CstResult::default()
                };
                ordered.push((failure, result));
            }
        } else {
            let (mine, rest): (Vec<_>, Vec<_>) = pairs
                .into_iter()
                .partition(|(report, _)| &report.file == path);
            ordered.extend(mine);
            pairs = rest;
        }
    }
    ordered.append(&mut pairs);
    let (reports, mut results): (Vec<_>, Vec<_>) = ordered.into_iter().unzip();
    if deterministic {
        // The fake's reports are byte-identical run to run: CST's formats carry no timings there.
        for result in &mut results {
            result.duration = Duration::ZERO;
        }
    }
    outcome.reports = reports;
    // CST's own report: on stdout, or in --test-report (where text becomes JSON, as in CST).
    let format = match (args.output, &args.test_report) {
        (OutputFormat::Text, Some(_)) => OutputFormat::Json,
        (format, _) => format,
    };
    // What CST itself reports: not the tests schema 1.0.0 drops.
    let results: Vec<cst::CstResult> = results
        .into_iter()
        .filter(|result| !result.skipped)
        .collect();
    let no_cst_result = results.is_empty();
    let cst_report = match format {
        OutputFormat::Text => None,
        OutputFormat::Json => Some(cst::report::json(&results)),
        OutputFormat::Junit => Some(cst::report::junit(
            &results,
            args.junit_suite_name.as_deref(),
        )),
    };
    let mut report_failed = false;
    if let Some(text) = &cst_report {
        match &args.test_report {
            Some(path) => {
                if let Err(error) = std::fs::write(path, text) {
                    dockproof::inert_eprintln!(
                        "error: cannot write the test report {}: {error}",
                        path.display()
                    );
                    report_failed = true;
                }
            }
            // CST's document (one line; under GitHub Actions a `##[` in it is defused).
            None if !args.quiet => print!("{}", report::inert::text(text)),
            None => {}
        }
    }
    let console = !args.quiet && (cst_report.is_none() || args.test_report.is_some());
    {
        use std::io::Write;
        // Failure messages carry the container's output: under GitHub Actions a line of
        // it must not become a workflow command (`::error::…`).
        let mut out = report::inert::InertWriter::for_ci(std::io::stdout().lock());
        for report in outcome.reports.iter().filter(|_| console) {
            let verdict = match report.outcome {
                Outcome::Passed => "PASS",
                Outcome::Skipped => "SKIP",
                _ => "FAIL",
            };
            let _ = writeln!(out, "{verdict} {}", report.name);
            if let Some(reason) = &report.skip_reason {
                let _ = writeln!(out, "     {reason}");
            }
            if let Some(failure) = &report.failure {
                let location = failure
                    .location
                    .as_ref()
                    .map(|location| format!("{location}: "))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "     {location}{}: {}",
                    failure.category,
                    failure.message.lines().next().unwrap_or_default()
                );
                for line in failure.message.lines().skip(1) {
                    let _ = writeln!(out, "     {line}");
                }
            }
        }
        let _ = out.flush();
    }
    let paths = library::ReportPaths {
        junit: args.junit.clone(),
        json: args.json.clone(),
        html: None,
        markdown: None,
    };
    let write_failed = !library::write_reports(&paths, &outcome, &options, &run_id);
    // A run in which no config could be read ran nothing: it is not history.
    if !args.identity.no_history && nothing_ran.is_none() {
        runtime.block_on(library::record_history(
            args.identity.history.as_deref(),
            &run_id,
            library::history_host(args.backend),
            args.backend.name(),
            &outcome,
        ));
    }
    if outcome.swept > 0 {
        eprintln!(
            "warning: removed {} container(s) that tests left behind",
            outcome.swept
        );
    }
    if no_cst_result {
        // CST's words and verdict: a run without a single test is a failure.
        if console {
            out!("No tests run! Check config file format.");
        }
        drop(run_dir);
        return Exit::Failed.into();
    }
    if console {
        out!("{}", report::console::summary_line(&outcome));
    }
    drop(run_dir);
    if write_failed || report_failed {
        Exit::Usage.into()
    } else if outcome.success() {
        Exit::Passed.into()
    } else {
        Exit::Failed.into()
    }
}

/// `dockproof cst`'s parallelism without `-j`: [`jobs_for_cores`] of this machine's.
fn default_jobs() -> usize {
    jobs_for_cores(std::thread::available_parallelism().map_or(1, |cores| cores.get()))
}

/// Four tests per core, at least 4, at most 64. A command test is a container the
/// daemon creates, starts, waits for and removes; most of that is the daemon
/// starting processes (runc, the shim, its own re-executions to set up the
/// container's network namespace), with waits between them, so on 2 cores the daemon
/// keeps both busy only with about eight containers in flight: 30 command tests took
/// 5.45 s / 5.33 s at `-j 8` against 6.30 s / 5.62 s at `-j 4` (medians of 6 and of 5
/// interleaved rounds; `-j 16` measured as `-j 8`; docs/benchmarks.md, "CST, sixth
/// round"). The cap keeps a big machine from creating hundreds of file-test
/// containers for one config; the memory a test holds is bounded by itself
/// (docs/cst.md#memory), so `-j` multiplies no archive.
fn jobs_for_cores(cores: usize) -> usize {
    cores.saturating_mul(4).clamp(4, 64)
}

#[cfg(test)]
mod tests {
    use super::jobs_for_cores;

    #[test]
    fn default_parallelism_is_four_per_core_within_bounds() {
        assert_eq!(jobs_for_cores(0), 4);
        assert_eq!(jobs_for_cores(1), 4);
        assert_eq!(jobs_for_cores(2), 8);
        assert_eq!(jobs_for_cores(16), 64);
        assert_eq!(jobs_for_cores(usize::MAX), 64);
    }
}
