//! The project file on the command line: finding it, letting flags override it, and
//! `dockproof init`.
//!
//! A setting from `dockproof.toml` applies only where the command line and the
//! environment left a value at its default (clap's `ValueSource` says which).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::ArgMatches;
use clap::parser::ValueSource;
use dockproof::project::{self, Project};
use dockproof::run::Exit;

use crate::{CanaryArgs, ReportFormat, RunArgs, SuiteArgs};

/// Whether `id` was given on the command line or by an environment variable.
fn explicit(matches: &ArgMatches, id: &str) -> bool {
    matches!(
        matches.value_source(id),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

/// The project for this invocation: `--project FILE`, else the nearest `dockproof.toml`
/// at or above the working directory, unless `--no-project`.
pub fn find(file: Option<&Path>, none: bool) -> Result<Option<Project>, ExitCode> {
    if none {
        return Ok(None);
    }
    let found = match file {
        Some(file) => Project::load(file).map(Some),
        None => {
            let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
            Project::discover(&cwd)
        }
    };
    found.map_err(crate::usage_error)
}

fn format(format: project::ReportFormat) -> ReportFormat {
    match format {
        project::ReportFormat::Junit => ReportFormat::Junit,
        project::ReportFormat::Json => ReportFormat::Json,
        project::ReportFormat::Markdown => ReportFormat::Markdown,
        project::ReportFormat::Html => ReportFormat::Html,
    }
}

/// Scenario paths: the file's list, else `scenarios` beside the file.
fn scenario_paths(project: &Project) -> Vec<PathBuf> {
    if project.settings.scenarios.is_empty() {
        vec![project.resolve("scenarios")]
    } else {
        project
            .settings
            .scenarios
            .iter()
            .map(|path| project.resolve(path))
            .collect()
    }
}

/// Image directories: the file's list, else the conventional directory beside the file.
fn image_dirs(project: &Project, listed: &[String], conventional: &str) -> Vec<PathBuf> {
    if listed.is_empty() {
        vec![project.resolve(conventional)]
    } else {
        project.resolve_image_dirs(listed)
    }
}

fn hosts(project: &Project, listed: &[String]) -> Result<Vec<dockproof::canary::Host>, ExitCode> {
    listed
        .iter()
        .map(|host| {
            host.parse().map_err(|error| {
                dockproof::inert_eprintln!(
                    "error: {}: host `{host}`: {error}",
                    project.file.display()
                );
                Exit::Usage.into()
            })
        })
        .collect()
}

/// `check`'s paths.
pub fn apply_to_check(paths: &mut Vec<PathBuf>, matches: &ArgMatches, project: &Project) {
    if !explicit(matches, "paths") {
        *paths = scenario_paths(project);
    }
}

/// The flags every suite command shares, with the project's settings where no flag was given.
fn apply_to_suite(
    paths: &mut Vec<PathBuf>,
    suite: &mut SuiteArgs,
    matches: &ArgMatches,
    project: &Project,
) {
    let settings = &project.settings;
    if !explicit(matches, "paths") {
        *paths = scenario_paths(project);
    }
    if !explicit(matches, "backend")
        && let Some(kind) = settings.backend
    {
        suite.backend = kind.into();
    }
    if !explicit(matches, "fake_images") {
        suite.fake_images = image_dirs(project, &settings.fake_images, "fixtures/fake-images");
    }
    if !explicit(matches, "fixture_images") {
        suite.fixture_images = image_dirs(project, &settings.fixture_images, "fixtures/images");
    }
    if suite.jobs.is_none() {
        suite.jobs = settings.jobs;
    }
}

/// `run`'s (and `record`'s) arguments with the project's settings where no flag was given.
pub fn apply_to_run(
    args: &mut RunArgs,
    matches: &ArgMatches,
    project: &Project,
) -> Result<(), ExitCode> {
    let settings = &project.settings;
    apply_to_suite(&mut args.paths, &mut args.suite, matches, project);
    args.vars.project = project_vars(project);
    if !explicit(matches, "keep_failed")
        && let Some(keep) = settings.keep_failed
    {
        args.keep_failed = keep;
    }
    if args.hosts.is_empty() {
        args.hosts = hosts(project, &settings.hosts)?;
    }
    if args.report.is_empty() {
        args.report = settings
            .reports
            .formats
            .iter()
            .copied()
            .map(format)
            .collect();
    }
    if args.report_dir.is_none() {
        args.report_dir = match &settings.reports.dir {
            Some(dir) => Some(project.resolve(dir)),
            // Formats without a directory: the default one, beside the file.
            None if !args.report.is_empty() => Some(project.resolve(crate::DEFAULT_REPORT_DIR)),
            None => None,
        };
    }
    Ok(())
}

/// `canary`'s arguments with the project's settings where no flag was given.
pub fn apply_to_canary(
    args: &mut CanaryArgs,
    matches: &ArgMatches,
    project: &Project,
) -> Result<(), ExitCode> {
    let settings = &project.settings;
    let canary = &settings.canary;
    apply_to_suite(&mut args.paths, &mut args.suite, matches, project);
    if args.hosts.is_empty() {
        args.hosts = hosts(project, &canary.hosts)?;
    }
    if args.hosts_file.is_none() {
        args.hosts_file = canary
            .hosts_file
            .as_deref()
            .map(|file| project.resolve(file));
    }
    if args.gates.is_none() {
        args.gates = canary.gates.as_deref().map(|file| project.resolve(file));
    }
    if !explicit(matches, "tag")
        && let Some(tag) = &canary.tag
    {
        args.tag = tag.clone();
    }
    if !explicit(matches, "repeat")
        && let Some(repeat) = canary.repeat
    {
        args.repeat = repeat;
    }
    if args.report_dir.is_none() {
        args.report_dir = settings
            .reports
            .dir
            .as_deref()
            .map(|dir| project.resolve(dir));
    }
    Ok(())
}

/// The files `dockproof init` writes: (path below the directory, contents).
const STARTER: &[(&str, &str)] = &[
    (
        project::FILE_NAME,
        include_str!("../starter/dockproof.toml"),
    ),
    (
        "scenarios/hello-job.yaml",
        include_str!("../starter/scenarios/hello-job.yaml"),
    ),
    (
        "fixtures/orders.csv",
        include_str!("../starter/fixtures/orders.csv"),
    ),
    (
        ".github/workflows/dockproof.yml",
        include_str!("../starter/.github/workflows/dockproof.yml"),
    ),
];

/// `dockproof init [DIR]`: write the starter layout; never overwrite a file (exit 2,
/// naming each one that is there already, and nothing written).
pub fn init(dir: &Path) -> ExitCode {
    let present: Vec<PathBuf> = STARTER
        .iter()
        .map(|(relative, _)| dir.join(relative))
        .filter(|path| path.symlink_metadata().is_ok())
        .collect();
    if !present.is_empty() {
        for path in &present {
            dockproof::inert_eprintln!("error: {} exists already", path.display());
        }
        dockproof::inert_eprintln!(
            "  = hint: `dockproof init` writes a new layout and never overwrites; move these away or run it in another directory"
        );
        return Exit::Usage.into();
    }
    for (relative, text) in STARTER {
        let path = dir.join(relative);
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, text));
        if let Err(error) = written {
            dockproof::inert_eprintln!("error: cannot write {}: {error}", path.display());
            return Exit::Usage.into();
        }
        dockproof::inert_println!("wrote {}", path.display());
    }
    dockproof::inert_println!(
        "\nnext: `dockproof run` (on the fake; reports in target/dockproof/), then edit scenarios/hello-job.yaml for your own job (docs/project.md)"
    );
    Exit::Passed.into()
}

/// The project file's `[vars]`, as text.
pub fn project_vars(project: &Project) -> std::collections::BTreeMap<String, String> {
    project
        .settings
        .vars
        .iter()
        .map(|(name, value)| (name.clone(), value.0.clone()))
        .collect()
}
