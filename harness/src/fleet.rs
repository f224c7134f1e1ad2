//! `dockproof canary`: the canary-tagged scenarios, N times on every host of
//! a fleet (hosts in parallel), then a go/no-go decision from the gates.

use std::process::ExitCode;

use dockproof::canary::{self, Gates, Host, HostSummary};
use dockproof::events::ScenarioReport;
use dockproof::history::{self, History};
use dockproof::run::{self as library, BackendKind, Exit, HostContext, host_backend};
use dockproof::runner;
use dockproof::scenario::LoadedScenario;

use crate::{CanaryArgs, usage_error};

/// Run the scenarios `repeat` times on one host; every report of every repeat.
async fn run_host(
    args: &CanaryArgs,
    host: &Host,
    scenarios: &[LoadedScenario],
    cancel: tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<ScenarioReport>, String> {
    let (kind, mut env) = host_backend(host, args.suite.backend);
    // A fake host is one machine: its state (and so its fault counters: `every=5` counts
    // across repeats) lives as long as the canary, not one repeat.
    let host_state = match kind {
        BackendKind::Fake => Some(
            tempfile::Builder::new()
                .prefix(&format!("dockproof-fake-host-{}-", host.name))
                .tempdir()
                .map_err(|error| {
                    format!("cannot create the fake host's state directory: {error}")
                })?,
        ),
        BackendKind::DockerCli | BackendKind::DockerApi => None,
    };
    // Held as long as the fake host's state: `dockproof clean` leaves it alone meanwhile.
    let _host_live = match &host_state {
        Some(state) => Some(
            dockproof::run_id::LiveRun::claim(state.path())
                .map_err(|error| format!("cannot mark the fake host's state as live: {error}"))?,
        ),
        None => None,
    };
    if let Some(state) = &host_state {
        env.push(("FAKE_DOCKER_STATE".into(), state.path().into()));
    }
    let options = args.suite.backend_options(None);
    let mut reports = Vec::new();
    for repeat in 1..=args.repeat {
        let (base, _) = library::run_ids(kind, scenarios).map_err(|error| error.to_string())?;
        // Only what a run id may hold: it names labels and the run directory.
        let host_part: String = host
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let run_id = format!("{base}-{host_part}-{repeat}");
        // Claimed as live while this host's run lasts: `dockproof clean` leaves it alone.
        let run_dir = dockproof::run_id::RunDir::create(&std::env::temp_dir(), &run_id)?;
        let made = library::make_backend(kind, &options, run_dir.path(), env.clone())
            .map_err(|error| error.to_string())?;
        let (events, _ignored) = tokio::sync::mpsc::unbounded_channel();
        let context = HostContext {
            backend: made,
            kind,
            host_dir: run_dir.path().to_path_buf(),
            run_id: run_id.clone(),
            // A canary host's names carry its own id (the host and repeat are part of it).
            shown_run_id: run_id.clone(),
            logs_dir: None,
            transport: host.transport.unwrap_or(args.suite.workspace_transport),
            // A fake host replays scenarios' recordings, as `run --backend fake` does.
            recordings: None,
            recordings_root: None,
            // A canary's hosts are cleaned up whatever their verdicts.
            keep_failed: None,
        }
        .build(events)
        .map_err(|error| error.to_string())?;
        let mut cancelled = cancel.clone();
        let cancel_future = async move {
            let _ = cancelled.wait_for(|cancelled| *cancelled).await;
        };
        let outcome = runner::run_all(
            context,
            scenarios.to_vec(),
            args.suite.jobs.unwrap_or(2),
            0,
            cancel_future,
        )
        .await;
        let (passed, failed, _) = outcome.counts();
        let line = format!(
            "host {}: repeat {repeat}/{}: {passed} passed, {failed} failed",
            host.name, args.repeat
        );
        out!("{}", dockproof::report::inert::text(&line));
        if !args.no_history {
            library::record_history(None, &run_id, host.name.clone(), kind.name(), &outcome).await;
        }
        let interrupted = outcome.interrupted;
        reports.extend(outcome.reports);
        if interrupted {
            break;
        }
    }
    Ok(reports)
}

pub fn canary(args: CanaryArgs, scenarios: Vec<LoadedScenario>) -> ExitCode {
    let scenarios: Vec<LoadedScenario> = scenarios
        .into_iter()
        .filter(|loaded| loaded.scenario.tags.iter().any(|tag| tag == &args.tag))
        .collect();
    if scenarios.is_empty() {
        return usage_error(format!("no scenario is tagged `{}`", args.tag));
    }
    if args.repeat == 0 {
        return usage_error("--repeat must be at least 1");
    }
    let mut hosts: Vec<Host> = args.hosts.clone();
    if let Some(path) = &args.hosts_file {
        match canary::read_hosts(path) {
            Ok(more) => hosts.extend(more),
            Err(message) => return usage_error(message),
        }
    }
    if hosts.is_empty() {
        hosts.push("local".parse().expect("`local` is a host"));
    }
    let gates = match &args.gates {
        Some(path) => match canary::read_gates(path) {
            Ok(gates) => gates,
            Err(message) => return usage_error(message),
        },
        None => Gates::default(),
    };
    // The last all-green run of the same backend, read before this canary adds its own runs.
    let backend_name = host_backend(&hosts[0], args.suite.backend).0.name();
    let last_good = if gates.no_regression && !args.no_history {
        history::default_path()
            .filter(|path| path.exists())
            .and_then(|path| History::open(&path).ok())
            .and_then(|history| history.last_good_run(backend_name).ok().flatten())
    } else {
        None
    };
    let runtime = match library::runtime() {
        Ok(runtime) => runtime,
        Err(error) => return usage_error(error),
    };
    out!(
        "canary: {} scenario(s) × {} repeat(s) on {} host(s)",
        scenarios.len(),
        args.repeat,
        hosts.len()
    );
    let results = runtime.block_on(async {
        let (cancel, cancelled) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            library::interrupted().await;
            let _ = cancel.send(true);
        });
        let runs = hosts
            .iter()
            .map(|host| run_host(&args, host, &scenarios, cancelled.clone()));
        futures::future::join_all(runs).await
    });
    let mut summaries = Vec::new();
    for (host, result) in hosts.iter().zip(results) {
        match result {
            Ok(reports) => {
                // A skipped canary scenario proves nothing about the host: say so (and
                // with none left to run the host fails the gate: `decide`).
                let mut skipped: Vec<String> = reports
                    .iter()
                    .filter(|report| report.outcome == dockproof::events::Outcome::Skipped)
                    .map(|report| {
                        format!(
                            "{} ({})",
                            report.name,
                            report.skip_reason.as_deref().unwrap_or("skipped")
                        )
                    })
                    .collect();
                skipped.dedup();
                if !skipped.is_empty() {
                    let line =
                        format!("warning: host {} skipped {}", host.name, skipped.join(", "));
                    dockproof::inert_eprintln!("{line}");
                }
                summaries.push(HostSummary::from_reports(&host.name, &reports))
            }
            Err(message) => return usage_error(format!("host {}: {message}", host.name)),
        }
    }
    // Host names come from the hosts file: inert under GitHub Actions.
    print!(
        "\n{}",
        dockproof::report::inert::text(&canary::table(&summaries))
    );
    let decision = canary::decide(&gates, &summaries, last_good.as_deref());
    if let Err(message) =
        write_canary_reports(&args, &gates, &summaries, &decision, last_good.as_deref())
    {
        dockproof::inert_eprintln!("error: {message}");
        return Exit::Usage.into();
    }
    if decision.go() {
        out!("GO: every host met the gates");
        Exit::Passed.into()
    } else {
        let line = format!("NO-GO: {}", decision.reasons.join("; "));
        out!("{}", dockproof::report::inert::text(&line));
        Exit::Failed.into()
    }
}

/// canary.json, canary.md and canary-junit.xml under `--report-dir`, and the Markdown
/// appended to the GitHub step summary when there is one.
fn write_canary_reports(
    args: &CanaryArgs,
    gates: &Gates,
    summaries: &[HostSummary],
    decision: &canary::Decision,
    last_good: Option<&[String]>,
) -> Result<(), String> {
    let checks = canary::gate_checks(gates, summaries, last_good);
    let markdown = canary::report_markdown(decision, &checks, last_good);
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|path| !path.is_empty()) {
        use std::io::Write;
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut file| file.write_all(markdown.as_bytes()));
        if let Err(error) = appended {
            dockproof::inert_eprintln!(
                "warning: cannot append to the step summary {}: {error}",
                std::path::Path::new(&path).display()
            );
        }
    }
    let Some(dir) = &args.report_dir else {
        return Ok(());
    };
    let failed = |what: &str, error: &dyn std::fmt::Display| {
        format!(
            "cannot write the canary's {what} in {}: {error}",
            dir.display()
        )
    };
    std::fs::create_dir_all(dir).map_err(|error| failed("reports", &error))?;
    let json = canary::report_json(decision, &checks, summaries, last_good);
    let json = serde_json::to_string_pretty(&json).map_err(|error| failed("JSON", &error))?;
    std::fs::write(dir.join("canary.json"), json + "\n").map_err(|error| failed("JSON", &error))?;
    std::fs::write(dir.join("canary.md"), &markdown).map_err(|error| failed("Markdown", &error))?;
    let junit = canary::report_junit(&checks)
        .to_string()
        .map_err(|error| failed("JUnit", &error))?;
    std::fs::write(dir.join("canary-junit.xml"), junit).map_err(|error| failed("JUnit", &error))?;
    Ok(())
}
