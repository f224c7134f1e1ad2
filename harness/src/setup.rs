//! `dockproof run`: the flags become a [`dockproof::run::Run`]; the library runs it, this
//! prints its last lines and picks the exit code.

use std::process::ExitCode;

use dockproof::run::{BackendOptions, ReportPaths, Run, Selection};
use dockproof::scenario::LoadedScenario;

use crate::{RunArgs, usage_error};

impl RunArgs {
    /// The run these flags describe.
    fn into_run(mut self, scenarios: Vec<LoadedScenario>) -> Run {
        self.resolve_reports();
        let mut run = Run::new(scenarios);
        run.backend = self.suite.backend;
        run.backend_options = self.suite.backend_options(self.context.clone());
        run.hosts = self.hosts;
        run.transport = self.suite.workspace_transport;
        run.jobs = self.suite.jobs;
        run.retries = self.retries;
        run.selection = Selection {
            tags: self.tags,
            filter: self.filter,
            partition: self.partition,
        };
        run.run_id = self.identity.run_id;
        run.work_dir = self.work_dir;
        run.recordings = self.recordings;
        run.recording_mode = self.recording_mode;
        run.logs_dir = self.logs_dir;
        run.reports = ReportPaths {
            junit: self.junit,
            json: self.json,
            html: self.html,
            markdown: self.markdown,
        };
        run.console = Some(self.color);
        run.history = (!self.identity.no_history).then_some(self.identity.history);
        run.keep_failed = self.keep_failed;
        run
    }
}

impl crate::SuiteArgs {
    /// Where the backends find their programs and image definitions.
    pub(crate) fn backend_options(&self, context: Option<String>) -> BackendOptions {
        BackendOptions {
            docker: self.docker.clone(),
            fake_docker: self.fake_docker.clone(),
            fake_images: self.fake_images.clone(),
            fixture_images: self.fixture_images.clone(),
            context,
            daemon_timeout: self.daemon.daemon_timeout,
        }
    }
}

pub fn run(args: RunArgs, scenarios: Vec<LoadedScenario>) -> ExitCode {
    let finished = match args.into_run(scenarios).execute() {
        Ok(finished) => finished,
        Err(error) => return usage_error(error),
    };
    let outcome = &finished.outcome;
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
    if !outcome.swept_resources.is_empty() {
        dockproof::inert_eprintln!(
            "warning: removed what scenarios left behind: {}",
            outcome.swept_resources.join(", ")
        );
    }
    for line in finished.kept.iter().flat_map(|kept| kept.instructions()) {
        dockproof::inert_eprintln!("{line}");
    }
    out!(
        "{} in {}",
        finished.summary_line(),
        dockproof::report::console::short_duration(finished.elapsed)
    );
    finished.exit.into()
}
