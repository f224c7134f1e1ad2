//! `dockproof run`: pick the backend, prepare the run's directories, run the
//! scenarios, write the reports, choose the exit code.

use dockproof::recordings::RecordingMode;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use dockproof::backend::api::ApiBackend;
use dockproof::backend::cli::CliBackend;
use dockproof::backend::{Backend, CaptureLimits};
use dockproof::engine::EngineContext;
use dockproof::filestore::Filestore;
use dockproof::fixtures::FixtureImages;
use dockproof::report::{self, ReportOptions};
use dockproof::runner;
use dockproof::scenario::LoadedScenario;

use crate::{BackendKind, RunArgs};

fn usage_error(message: impl std::fmt::Display) -> ExitCode {
    // Paths and messages may hold anything: inert under GitHub Actions.
    eprintln!(
        "error: {}",
        dockproof::report::inert::text(&message.to_string())
    );
    ExitCode::from(2)
}

/// Find the fake-docker binary: the flag, next to this executable, then PATH.
pub(crate) fn find_fake_docker(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(path.to_path_buf());
    }
    let sibling = std::env::current_exe().ok()?.with_file_name("fake-docker");
    if sibling.is_file() {
        return Some(sibling);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("fake-docker"))
            .find(|candidate| candidate.is_file())
    })
}

fn select(scenarios: Vec<LoadedScenario>, args: &RunArgs) -> Result<Vec<LoadedScenario>, String> {
    let pattern = match &args.filter {
        Some(text) => Some(
            glob::Pattern::new(text)
                .map_err(|error| format!("invalid --filter glob `{text}`: {error}"))?,
        ),
        None => None,
    };
    let selected: Vec<LoadedScenario> = scenarios
        .into_iter()
        .filter(|loaded| {
            args.tags.is_empty()
                || loaded
                    .scenario
                    .tags
                    .iter()
                    .any(|tag| args.tags.contains(tag))
        })
        .filter(|loaded| {
            pattern
                .as_ref()
                .is_none_or(|pattern| pattern.matches(&loaded.scenario.name))
        })
        .collect();
    Ok(match &args.partition {
        Some(partition) => partition.select(selected, |loaded| loaded.scenario.name.as_str()),
        None => selected,
    })
}

/// A fresh run id and the id the reports show: both `r…` and random on real daemons; on
/// the fake the reports show the suite id (a hash of the scenario names) so they are
/// byte-identical run to run, while the run itself (labels, directories) gets the suite id
/// plus a random part, so two runs of the same suite never share anything.
pub(crate) fn run_id(
    kind: BackendKind,
    scenarios: &[LoadedScenario],
) -> Result<(String, String), dockproof::run_id::RunIdError> {
    use dockproof::run_id;
    match kind {
        BackendKind::Fake => {
            let suite = run_id::suite_id(
                "fake",
                scenarios.iter().map(|loaded| loaded.scenario.name.as_str()),
            );
            Ok((run_id::fresh(&suite)?, suite))
        }
        BackendKind::DockerCli | BackendKind::DockerApi => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let id = run_id::fresh(&format!("r{:x}", now.as_secs()))?;
            Ok((id.clone(), id))
        }
    }
}

/// Where the programs and image definitions a backend needs are.
pub(crate) struct BackendPaths<'a> {
    pub docker: &'a Path,
    pub fake_docker: Option<&'a Path>,
    /// Fake image definition directories (`builtin`: the shipped ones).
    pub fake_images: &'a [PathBuf],
    /// Fixture image directories (`builtin`: the shipped ones).
    pub fixture_images: &'a [PathBuf],
    /// A docker context (`--context`, `DOCKER_CONTEXT`) for the real backends.
    pub context: Option<&'a str>,
    /// How long a real daemon may take to answer (`--daemon-timeout`).
    pub daemon_timeout: std::time::Duration,
}

/// `dirs` with `builtin` replaced by the shipped images (written under `run_dir` once).
fn image_dirs(
    dirs: &[PathBuf],
    run_dir: &Path,
    pick: impl Fn(dockproof::builtin::Builtin) -> PathBuf,
) -> Result<Vec<PathBuf>, String> {
    dirs.iter()
        .map(|dir| {
            if dir.as_os_str() != dockproof::project::BUILTIN {
                return Ok(dir.clone());
            }
            let root = run_dir.join("builtin-images");
            dockproof::builtin::materialise(&root)
                .map(&pick)
                .map_err(|error| {
                    format!(
                        "cannot write the shipped images to {}: {error}",
                        root.display()
                    )
                })
        })
        .collect()
}

/// The backend of `kind` for a run whose temporary files live in `run_dir`;
/// `extra_env` goes to the docker-compatible program (e.g. `DOCKER_HOST`, `FAKE_DOCKER_FAULTS`).
pub(crate) fn make_backend(
    kind: BackendKind,
    paths: &BackendPaths<'_>,
    run_dir: &Path,
    extra_env: Vec<(OsString, OsString)>,
) -> Result<(Arc<dyn Backend>, FixtureImages), String> {
    match kind {
        BackendKind::Fake => {
            let Some(program) = find_fake_docker(paths.fake_docker) else {
                return Err("cannot find the fake-docker binary: build it (`cargo build -p fake-docker`) or pass --fake-docker PATH".into());
            };
            let fake_images =
                image_dirs(paths.fake_images, run_dir, |builtin| builtin.fake_images)?;
            for dir in &fake_images {
                if !dir.is_dir() {
                    return Err(format!(
                        "fake image definitions not found at {} (use --fake-images DIR, or `builtin` for the shipped ones)",
                        dir.display()
                    ));
                }
            }
            let fake_images = std::env::join_paths(&fake_images).map_err(|error| {
                format!("--fake-images: {error} (the directories are passed to fake-docker as one `:`-separated list)")
            })?;
            let state = std::env::var_os("FAKE_DOCKER_STATE")
                .unwrap_or_else(|| run_dir.join("fake-docker-state").into_os_string());
            // DOCKER_HOST is cleared: the fake answers an absent unix socket as the CLI does,
            // and a user's address for a real daemon means nothing to it (a scenario's
            // `docker_host` sets it again).
            let mut env: Vec<(OsString, OsString)> = vec![
                ("FAKE_DOCKER_STATE".into(), state),
                ("FAKE_DOCKER_IMAGES".into(), fake_images),
                ("DOCKER_HOST".into(), OsString::new()),
            ];
            env.extend(extra_env);
            Ok((
                Arc::new(CliBackend::new("fake", program, env).with_scratch_dir(run_dir)),
                FixtureImages::none(),
            ))
        }
        BackendKind::DockerCli => {
            let fixtures = FixtureImages::scan_all(
                &image_dirs(paths.fixture_images, run_dir, |builtin| {
                    builtin.fixture_images
                })?,
                true,
            )
            .map_err(|error| error.to_string())?
            .with_build_dir(run_dir);
            let mut env = extra_env;
            if let Some(context) = paths.context {
                env.push(("DOCKER_CONTEXT".into(), context.into()));
            }
            Ok((
                Arc::new(
                    CliBackend::new("docker-cli", paths.docker, env)
                        .with_scratch_dir(run_dir)
                        .with_daemon_timeout(paths.daemon_timeout),
                ),
                fixtures,
            ))
        }
        BackendKind::DockerApi => {
            let fixtures = FixtureImages::scan_all(
                &image_dirs(paths.fixture_images, run_dir, |builtin| {
                    builtin.fixture_images
                })?,
                true,
            )
            .map_err(|error| error.to_string())?
            .with_build_dir(run_dir);
            // The CLI's precedence: an explicit host (a fleet's DOCKER_HOST) over a context.
            let host = extra_env
                .iter()
                .find(|(key, _)| key == "DOCKER_HOST")
                .map(|(_, value)| value.to_string_lossy().into_owned());
            let backend = match (host, paths.context) {
                (Some(host), _) => ApiBackend::for_host("docker-api", host),
                (None, Some(name)) => match dockproof::backend::context::resolve(
                    name,
                    &dockproof::backend::context::config_dir(),
                )
                .map_err(|error| error.to_string())?
                {
                    Some(endpoint) => ApiBackend::for_endpoint("docker-api", endpoint),
                    None => ApiBackend::from_env("docker-api"),
                },
                (None, None) => ApiBackend::from_env("docker-api"),
            };
            Ok((
                Arc::new(backend.with_daemon_timeout(paths.daemon_timeout)),
                fixtures,
            ))
        }
    }
}

/// Where a run's reports go (each optional).
pub(crate) struct ReportPaths<'a> {
    pub junit: Option<&'a Path>,
    pub json: Option<&'a Path>,
    pub html: Option<&'a Path>,
    pub markdown: Option<&'a Path>,
}

/// Write every report asked for (deterministic ones from the normalised outcome, where
/// the run's own id `run_id` reads as the id the reports show) and, under GitHub Actions,
/// the annotations and step summary. False when one could not be written.
pub(crate) fn write_reports(
    paths: &ReportPaths<'_>,
    outcome: &runner::RunOutcome,
    options: &ReportOptions,
    run_id: &str,
) -> bool {
    let reported = if options.deterministic {
        report::normalised(outcome, run_id, &options.run_id)
    } else {
        outcome.clone()
    };
    let mut written = true;
    let mut attempt = |what: &str, path: &Path, result: std::io::Result<()>| {
        if let Err(error) = result {
            dockproof::inert_eprintln!(
                "error: cannot write the {what} {}: {error}",
                path.display()
            );
            written = false;
        }
    };
    for path in [paths.junit, paths.json, paths.html, paths.markdown]
        .into_iter()
        .flatten()
    {
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            attempt(
                "report directory for",
                path,
                std::fs::create_dir_all(parent),
            );
        }
    }
    if let Some(path) = paths.junit {
        attempt(
            "JUnit report",
            path,
            report::junit::write(path, &reported, options),
        );
    }
    if let Some(path) = paths.json {
        attempt(
            "JSON report",
            path,
            report::json::write(path, &reported, options),
        );
    }
    if let Some(path) = paths.html {
        attempt(
            "HTML report",
            path,
            report::html::write(path, &reported, options),
        );
    }
    if let Some(path) = paths.markdown {
        attempt(
            "Markdown summary",
            path,
            std::fs::write(path, report::markdown::render(&reported, options)),
        );
    }
    if std::env::var("GITHUB_ACTIONS").is_ok_and(|value| value == "true") {
        for line in report::github::annotations(&reported) {
            out!("{line}");
        }
        if let Some(summary) = std::env::var_os("GITHUB_STEP_SUMMARY")
            && let Err(error) = report::markdown::append(Path::new(&summary), &reported, options)
        {
            dockproof::inert_eprintln!("warning: cannot append to $GITHUB_STEP_SUMMARY: {error}");
        }
    }
    written
}

/// A host to run on: its name (none for the default one), backend and the docker program's environment.
type Target = (
    Option<String>,
    BackendKind,
    Vec<(OsString, OsString)>,
    dockproof::transport::TransportChoice,
);

pub fn run(mut args: RunArgs, scenarios: Vec<LoadedScenario>) -> ExitCode {
    let started = std::time::Instant::now();
    args.resolve_reports();
    let scenarios = match select(scenarios, &args) {
        // An empty shard is normal for a matrix wider than the suite; an empty selection otherwise is a mistake.
        Ok(selected) if selected.is_empty() && args.partition.is_none() => {
            return usage_error("no scenario matches the given --tag/--filter");
        }
        Ok(selected) => selected,
        Err(message) => return usage_error(message),
    };
    // An explicit --run-id is used as given, in the reports too: keeping it unique is the caller's part.
    let (run_id, shown_run_id) = match &args.run_id {
        Some(id) => (id.clone(), id.clone()),
        None => match run_id(args.backend, &scenarios) {
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

    // The hosts to run on: the one the backend points at, or each `--host` in turn.
    let targets: Vec<Target> = if args.hosts.is_empty() {
        vec![(None, args.backend, Vec::new(), args.workspace_transport)]
    } else {
        args.hosts
            .iter()
            .map(|host| {
                let (kind, env) = crate::fleet::host_backend(host, args.backend);
                let transport = host.transport.unwrap_or(args.workspace_transport);
                (Some(host.name.clone()), kind, env, transport)
            })
            .collect()
    };
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |cores| cores.get()));
    let deterministic = targets
        .iter()
        .all(|(_, kind, _, _)| *kind == BackendKind::Fake);
    let options = ReportOptions {
        // Deterministic reports show the suite id; anything else the run's own.
        run_id: if deterministic {
            shown_run_id.clone()
        } else {
            run_id.clone()
        },
        backend: args.backend.name().to_owned(),
        deterministic,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return usage_error(format!("cannot start the async runtime: {error}")),
    };

    // `--keep-failed`: what failed scenarios leave in place, listed at the end.
    let kept: Option<dockproof::engine::KeptList> = args.keep_failed.then(Default::default);
    let mut outcome = runner::RunOutcome {
        reports: Vec::new(),
        interrupted: false,
        swept: 0,
        left_behind: Vec::new(),
    };
    for (host, kind, env, transport) in targets {
        if outcome.interrupted {
            break;
        }
        // Each host gets its own directory: fake state, filestore and workspaces.
        let host_dir = match &host {
            Some(name) => run_dir.path().join(format!("host-{name}")),
            None => run_dir.path().to_path_buf(),
        };
        if let Some(name) = &host {
            dockproof::inert_println!("dockproof: host {name}");
        }
        let paths = BackendPaths {
            docker: &args.docker,
            fake_docker: args.fake_docker.as_deref(),
            fake_images: &args.fake_images,
            fixture_images: &args.fixture_images,
            context: args.context.as_deref(),
            daemon_timeout: args.daemon.daemon_timeout,
        };
        let (backend, fixtures) = match std::fs::create_dir_all(&host_dir)
            .map_err(|error| error.to_string())
            .and_then(|()| make_backend(kind, &paths, &host_dir, env))
        {
            Ok(made) => made,
            Err(message) => return usage_error(message),
        };
        let filestore = match Filestore::local(&host_dir.join("filestore")) {
            Ok(store) => store,
            Err(error) => return usage_error(error),
        };
        let host_outcome = runtime.block_on(async {
            let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
            let console = tokio::spawn(report::console::follow(
                receiver,
                std::io::stdout(),
                report::console::ConsoleStyle::detect(args.color),
            ));
            let context = Arc::new(EngineContext {
                backend,
                filestore,
                fixtures: Arc::new(fixtures),
                run_id: run_id.clone(),
                names_id: if kind == BackendKind::Fake {
                    shown_run_id.clone()
                } else {
                    run_id.clone()
                },
                work_dir: host_dir.join("workspaces"),
                capture: CaptureLimits::default(),
                logs_dir: args.logs_dir.as_ref().map(|dir| {
                    host.as_ref()
                        .map_or_else(|| dir.clone(), |name| dir.join(name))
                }),
                events: sender,
                transport: Arc::new(dockproof::transport::TransportPolicy::new(transport)),
                recordings: match (&args.recording_mode, kind) {
                    (Some(mode), _) => mode.clone(),
                    (None, BackendKind::Fake) => RecordingMode::Replay {
                        root: args.recordings.clone(),
                    },
                    (None, _) => RecordingMode::Off,
                },
                keep_failed: kept.clone(),
            });
            let outcome = runner::run_all(
                Arc::clone(&context),
                scenarios.clone(),
                jobs,
                args.retries,
                interrupted(),
            )
            .await;
            drop(context);
            let _ = console.await;
            outcome
        });
        outcome.interrupted |= host_outcome.interrupted;
        outcome.swept += host_outcome.swept;
        outcome
            .left_behind
            .extend(host_outcome.left_behind.iter().cloned());
        outcome
            .reports
            .extend(host_outcome.reports.into_iter().map(|mut report| {
                if let Some(name) = &host {
                    report.name = format!("{name}/{}", report.name);
                }
                report
            }));
    }

    let paths = ReportPaths {
        junit: args.junit.as_deref(),
        json: args.json.as_deref(),
        html: args.html.as_deref(),
        markdown: args.markdown.as_deref(),
    };
    let write_failed = !write_reports(&paths, &outcome, &options, &run_id);
    if !args.no_history {
        // The history keeps the run's own id (the one on its labels), not the suite id.
        let options = ReportOptions {
            run_id: run_id.clone(),
            ..options.clone()
        };
        record_history(&args, &outcome, &options);
    }
    if !outcome.left_behind.is_empty() {
        let mut names = outcome.left_behind.clone();
        names.sort();
        names.dedup();
        dockproof::inert_eprintln!(
            "warning: removed {} container(s) that scenarios left behind: {}",
            outcome.left_behind.len(),
            names.join(", ")
        );
    }
    out!(
        "{} in {}",
        report::console::summary_line(&outcome),
        report::console::short_duration(started.elapsed())
    );
    let kept: Vec<dockproof::engine::Kept> = kept
        .and_then(|kept| kept.lock().ok().map(|kept| kept.clone()))
        .unwrap_or_default();
    if kept.is_empty() {
        drop(run_dir);
    } else {
        // The kept workspaces (and the fake's state) are in the run directory.
        let dir = run_dir.keep();
        for line in kept_instructions(&kept, &run_id, &dir, args.backend, args.work_dir.as_deref())
        {
            dockproof::inert_eprintln!("{line}");
        }
    }
    if write_failed {
        ExitCode::from(2)
    } else if outcome.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// What `--keep-failed` kept, and how to look at it and remove it: one line each.
fn kept_instructions(
    kept: &[dockproof::engine::Kept],
    run_id: &str,
    run_dir: &Path,
    backend: BackendKind,
    work_dir: Option<&Path>,
) -> Vec<String> {
    let mut lines = vec![format!(
        "kept for debugging (--keep-failed), run {run_id}: what {} failed scenario(s) left, labelled {}=true",
        kept.len(),
        dockproof::engine::KEEP_LABEL
    )];
    for entry in kept {
        lines.push(format!("  scenario `{}`:", entry.scenario));
        lines.extend(
            entry
                .containers
                .iter()
                .map(|id| format!("    container {id}")),
        );
        lines.extend(
            entry
                .compose_project
                .iter()
                .map(|name| format!("    compose project {name}")),
        );
        lines.extend(entry.volume.iter().map(|name| format!("    volume {name}")));
        lines.extend(
            entry
                .images
                .iter()
                .map(|image| format!("    image {image}")),
        );
        lines.extend(
            entry
                .workspace
                .iter()
                .map(|path| format!("    workspace {}", path.display())),
        );
    }
    let docker = if backend == BackendKind::Fake {
        format!(
            "FAKE_DOCKER_STATE={} fake-docker",
            run_dir.join("fake-docker-state").display()
        )
    } else {
        "docker".to_owned()
    };
    lines.push(format!(
        "  inspect: {docker} inspect ID · {docker} logs ID · {docker} exec -it ID sh (while it runs)"
    ));
    let mut clean = format!("dockproof clean --run {run_id}");
    if backend == BackendKind::Fake {
        clean.push_str(" --backend fake");
    }
    if let Some(dir) = work_dir {
        clean.push_str(&format!(" --work-dir {}", dir.display()));
    }
    lines.push(format!(
        "  remove: {clean} (containers, volumes, networks, images and {})",
        run_dir.display()
    ));
    lines
}

/// Add the run to the history database; a history problem never fails a run.
fn record_history(args: &RunArgs, outcome: &runner::RunOutcome, options: &ReportOptions) {
    record(args.history.clone(), args.backend, outcome, options);
}

/// Add a run to the history database at `path` (default: `$DOCKPROOF_HISTORY`, the data dir).
pub(crate) fn record(
    path: Option<PathBuf>,
    backend: BackendKind,
    outcome: &runner::RunOutcome,
    options: &ReportOptions,
) {
    use dockproof::history::{self, History, RunEntry};
    let Some(path) = path.or_else(history::default_path) else {
        return;
    };
    let host = std::env::var("DOCKER_HOST")
        .ok()
        .filter(|_| backend != BackendKind::Fake)
        .unwrap_or_else(|| "local".to_owned());
    let entry = RunEntry {
        run_id: &options.run_id,
        git_sha: history::current_git_sha(),
        host,
        backend: &options.backend,
        interrupted: outcome.interrupted,
        reports: &outcome.reports,
    };
    if let Err(error) = History::open(&path).and_then(|mut history| history.record(&entry)) {
        dockproof::inert_eprintln!("warning: run not recorded in the history: {error}");
    }
}

/// Resolves on the first Ctrl-C or SIGTERM; a second one ends the process at once.
pub(crate) async fn interrupted() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(stream) => stream,
            Err(_) => return std::future::pending().await,
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    eprintln!("dockproof: interrupted, cleaning up (press Ctrl-C again to stop at once)");
    tokio::spawn(async {
        let _ = tokio::signal::ctrl_c().await;
        eprintln!(
            "dockproof: stopping without cleanup; run `docker ps -a --filter label=dockproof.run` to find leftovers"
        );
        std::process::exit(130);
    });
}
