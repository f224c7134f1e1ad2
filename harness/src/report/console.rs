//! The console view: a line per finished scenario (with its failure and
//! where in the scenario file it is), then `N passed, N failed`. On a terminal
//! a progress bar (on stderr) shows what is running, and verdicts are coloured
//! unless `NO_COLOR` is set; anywhere else the output is plain lines.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use console::Style;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::events::{Event, Outcome, ScenarioReport};
use crate::runner::RunOutcome;

/// When to colour the output (`--color`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set (to anything but an empty value).
    #[default]
    Auto,
    Always,
    Never,
}

/// How the console looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConsoleStyle {
    /// Draw a progress bar on stderr while scenarios run.
    pub progress: bool,
    /// Colour the verdicts.
    pub color: bool,
}

impl ConsoleStyle {
    /// What suits this process: a bar only when both stdout and stderr are terminals and
    /// not under CI; colour per `choice`, `NO_COLOR` and whether stdout is a terminal.
    pub fn detect(choice: ColorChoice) -> Self {
        let set = |name: &str| {
            std::env::var_os(name).is_some_and(|value| !value.is_empty() && value != "false")
        };
        Self::decide(
            choice,
            std::io::stdout().is_terminal(),
            std::io::stderr().is_terminal(),
            set("NO_COLOR"),
            set("CI"),
        )
    }

    fn decide(
        choice: ColorChoice,
        stdout_terminal: bool,
        stderr_terminal: bool,
        no_color: bool,
        ci: bool,
    ) -> Self {
        ConsoleStyle {
            progress: stdout_terminal && stderr_terminal && !ci,
            color: match choice {
                ColorChoice::Always => true,
                ColorChoice::Never => false,
                ColorChoice::Auto => stdout_terminal && !no_color,
            },
        }
    }
}

/// The progress bar, when there is one: position = finished scenarios, message = running ones.
struct Progress {
    enabled: bool,
    bar: Option<ProgressBar>,
    /// Running scenarios, with the step each is in (name, since, seconds last announced).
    running: BTreeMap<String, Option<RunningStep>>,
}

struct RunningStep {
    name: String,
    since: Instant,
    announced: u64,
}

/// When a step still running is announced on a console without a progress display:
/// at 5 s, then every 30 s.
fn announce_at(elapsed: u64, announced: u64) -> bool {
    (announced == 0 && elapsed >= 5) || (announced > 0 && elapsed >= announced + 30)
}

impl Progress {
    fn new(enabled: bool) -> Self {
        Progress {
            enabled,
            bar: None,
            running: BTreeMap::new(),
        }
    }

    fn start(&mut self, total: usize) {
        if self.enabled {
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr())
                    .with_style(style);
            bar.enable_steady_tick(Duration::from_millis(120));
            self.bar = Some(bar);
        }
    }

    fn running(&mut self, name: &str, started: bool) {
        if started {
            self.running.insert(name.to_owned(), None);
        } else {
            self.running.remove(name);
        }
        self.refresh();
        if let Some(bar) = &self.bar
            && !started
        {
            bar.inc(1);
        }
    }

    /// `scenario` began `step`.
    fn step(&mut self, scenario: &str, step: &str) {
        if let Some(current) = self.running.get_mut(scenario) {
            *current = Some(RunningStep {
                name: step.to_owned(),
                since: Instant::now(),
                announced: 0,
            });
        }
        self.refresh();
    }

    /// The progress display's message: every running scenario with its step and time.
    fn refresh(&self) {
        if let Some(bar) = &self.bar {
            let message = self
                .running
                .iter()
                .map(|(scenario, step)| match step {
                    Some(step) => format!(
                        "{scenario} ({} {}s)",
                        step.name,
                        step.since.elapsed().as_secs()
                    ),
                    None => scenario.clone(),
                })
                .collect::<Vec<_>>()
                .join(", ");
            bar.set_message(message);
        }
    }

    /// Once a second: refresh the display, or (without one) the lines announcing steps
    /// that have been running a while.
    fn tick(&mut self) -> Vec<String> {
        if self.bar.is_some() {
            self.refresh();
            return Vec::new();
        }
        let mut lines = Vec::new();
        for (scenario, step) in &mut self.running {
            let Some(step) = step else { continue };
            let elapsed = step.since.elapsed().as_secs();
            if announce_at(elapsed, step.announced) {
                step.announced = elapsed;
                lines.push(format!(
                    "    {scenario}: `{}` running for {}",
                    step.name,
                    short_duration(Duration::from_secs(elapsed))
                ));
            }
        }
        lines
    }

    fn print(&self, print: impl FnOnce()) {
        match &self.bar {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Print events as they arrive until the run finishes.
pub async fn follow(mut events: UnboundedReceiver<Event>, out: impl Write, style: ConsoleStyle) {
    // Scenario names, failure messages and container output are printed here: under
    // GitHub Actions none of it may read as a workflow command.
    let mut out = super::inert::InertWriter::for_ci(out);
    let mut total = 0;
    let mut done = 0;
    console::set_colors_enabled_stderr(style.color);
    let mut progress = Progress::new(style.progress);
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let event = tokio::select! {
            event = events.recv() => match event {
                Some(event) => event,
                None => break,
            },
            _ = ticks.tick() => {
                let lines = progress.tick();
                if !lines.is_empty() {
                    progress.print(|| {
                        for line in &lines {
                            let _ = writeln!(out, "{line}");
                        }
                        let _ = out.flush();
                    });
                }
                continue;
            }
        };
        match event {
            Event::RunStarted {
                run_id,
                backend,
                scenarios,
            } => {
                total = scenarios;
                progress.print(|| {
                    let _ = writeln!(
                        out,
                        "dockproof: running {scenarios} scenario(s) on `{backend}` (run {run_id})"
                    );
                    let _ = out.flush();
                });
                progress.start(total);
            }
            Event::ScenarioStarted { name } => progress.running(&name, true),
            Event::ScenarioFinished(report) => {
                done += 1;
                progress.running(&report.name, false);
                progress.print(|| {
                    let _ = write_scenario(&mut out, &report, done, total, style.color);
                    let _ = out.flush();
                });
            }
            Event::RunFinished { interrupted } => {
                progress.finish();
                if interrupted {
                    let _ = writeln!(
                        out,
                        "dockproof: interrupted; removed what the run had created"
                    );
                }
            }
            Event::StepStarted { scenario, step } => progress.step(&scenario, &step),
            Event::StepFinished { .. } => {}
        }
        let _ = out.flush();
    }
    progress.finish();
}

fn write_scenario(
    out: &mut impl Write,
    report: &ScenarioReport,
    done: usize,
    total: usize,
    color: bool,
) -> std::io::Result<()> {
    let width = total.to_string().len();
    let (label, style) = match report.outcome {
        Outcome::Passed if report.flaky() => ("FLKY", Style::new().yellow().bold()),
        Outcome::Passed => ("PASS", Style::new().green()),
        Outcome::Failed => ("FAIL", Style::new().red().bold()),
        Outcome::Skipped => ("SKIP", Style::new().dim()),
        Outcome::Interrupted => ("INTR", Style::new().magenta().bold()),
    };
    let label = style.force_styling(color).apply_to(label);
    if report.outcome == Outcome::Skipped {
        writeln!(out, "[{done:>width$}/{total}] {label} {}", report.name)?;
    } else {
        writeln!(
            out,
            "[{done:>width$}/{total}] {label} {} ({})",
            report.name,
            short_duration(report.duration)
        )?;
    }
    for (attempt, earlier) in report.earlier_attempts.iter().enumerate() {
        writeln!(
            out,
            "    attempt {} failed: {}: {}",
            attempt + 1,
            earlier.category,
            earlier.message
        )?;
    }
    if report.outcome == Outcome::Passed {
        return Ok(());
    }
    if report.outcome == Outcome::Interrupted {
        writeln!(
            out,
            "    interrupted before it finished; what it created was removed"
        )?;
    }
    if let Some(reason) = &report.skip_reason {
        writeln!(out, "    skipped: {reason}")?;
    }
    for failure in report.failure.iter().flat_map(|failure| failure.findings()) {
        let location = failure
            .location
            .as_ref()
            .map(|location| format!("{location}: "))
            .unwrap_or_default();
        writeln!(
            out,
            "    {location}{}: {}",
            failure.category, failure.message
        )?;
        writeln!(out, "    hint: {}", failure.hint)?;
    }
    for line in report
        .stderr_tail
        .iter()
        .rev()
        .take(5)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        writeln!(out, "    stderr| {line}")?;
    }
    Ok(())
}

/// A duration as a person reads it on a result line: `412ms`, `3.05s`, `2m05s`.
pub fn short_duration(duration: std::time::Duration) -> String {
    let millis = duration.as_millis();
    if millis < 1_000 {
        format!("{millis}ms")
    } else if millis < 60_000 {
        format!("{:.2}s", duration.as_secs_f64())
    } else {
        let seconds = duration.as_secs();
        format!("{}m{:02}s", seconds / 60, seconds % 60)
    }
}

/// The closing line: `N passed, N failed` (plus interrupted ones, when any).
pub fn summary_line(outcome: &RunOutcome) -> String {
    let (passed, failed, _) = outcome.counts();
    let interrupted = outcome
        .reports
        .iter()
        .filter(|report| report.outcome == Outcome::Interrupted)
        .count();
    let flaky = outcome
        .reports
        .iter()
        .filter(|report| report.flaky())
        .count();
    let skipped = outcome
        .reports
        .iter()
        .filter(|report| report.outcome == Outcome::Skipped)
        .count();
    let mut line = format!("{passed} passed, {failed} failed");
    if skipped > 0 {
        line.push_str(&format!(", {skipped} skipped"));
    }
    if flaky > 0 {
        line.push_str(&format!(", {flaky} flaky"));
    }
    if interrupted > 0 {
        line.push_str(&format!(", {interrupted} interrupted"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Failure, ScenarioReport};

    fn report(outcome: Outcome) -> ScenarioReport {
        ScenarioReport {
            name: "demo".into(),
            file: "demo.yaml".into(),
            tags: vec![],
            outcome,
            failure: (outcome == Outcome::Failed)
                .then(|| Failure::new(crate::category::Category::NonzeroExit, "exit 3")),
            skip_reason: None,
            earlier_attempts: vec![],
            steps: vec![],
            record: Default::default(),
            stdout_tail: vec![],
            stderr_tail: vec!["boom".into()],
            duration: Duration::ZERO,
        }
    }

    fn line(outcome: Outcome, color: bool) -> String {
        let mut out = Vec::new();
        write_scenario(&mut out, &report(outcome), 2, 10, color).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_long_step_is_announced_at_5s_then_every_30s() {
        assert!(!announce_at(4, 0));
        assert!(announce_at(5, 0));
        assert!(!announce_at(20, 5));
        assert!(announce_at(35, 5));
        assert!(announce_at(66, 35));
    }

    #[test]
    fn durations_read_as_people_say_them() {
        use std::time::Duration;
        assert_eq!(short_duration(Duration::from_millis(412)), "412ms");
        assert_eq!(short_duration(Duration::from_millis(3_054)), "3.05s");
        assert_eq!(short_duration(Duration::from_secs(125)), "2m05s");
    }

    #[test]
    fn plain_lines_without_colour() {
        assert_eq!(line(Outcome::Passed, false), "[ 2/10] PASS demo (0ms)\n");
        let failed = line(Outcome::Failed, false);
        assert!(
            failed.starts_with("[ 2/10] FAIL demo (0ms)\n    nonzero_exit: exit 3\n    hint: "),
            "{failed}"
        );
        assert!(failed.ends_with("    stderr| boom\n"), "{failed}");
        assert!(!failed.contains('\u{1b}'));
    }

    #[test]
    fn coloured_verdicts_on_request() {
        assert_eq!(
            line(Outcome::Passed, true),
            "[ 2/10] \u{1b}[32mPASS\u{1b}[0m demo (0ms)\n"
        );
        assert!(
            line(Outcome::Failed, true)
                .starts_with("[ 2/10] \u{1b}[31m\u{1b}[1mFAIL\u{1b}[0m demo")
        );
    }

    #[test]
    fn bar_and_colour_only_on_a_terminal_and_no_color_honoured() {
        let decide = ConsoleStyle::decide;
        assert_eq!(
            decide(ColorChoice::Auto, true, true, false, false),
            ConsoleStyle {
                progress: true,
                color: true
            }
        );
        assert_eq!(
            decide(ColorChoice::Auto, false, false, false, false),
            ConsoleStyle {
                progress: false,
                color: false
            }
        );
        assert_eq!(
            decide(ColorChoice::Auto, true, true, true, false),
            ConsoleStyle {
                progress: true,
                color: false
            },
            "NO_COLOR"
        );
        assert_eq!(
            decide(ColorChoice::Auto, true, true, false, true),
            ConsoleStyle {
                progress: false,
                color: true
            },
            "CI: no bar"
        );
        assert!(
            !decide(ColorChoice::Auto, true, false, false, false).progress,
            "stderr redirected: no bar"
        );
        assert!(decide(ColorChoice::Always, false, false, true, true).color);
        assert!(!decide(ColorChoice::Never, true, true, false, false).color);
    }

    #[tokio::test]
    async fn follow_prints_a_line_per_scenario() {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let shared = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Sink {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let task = tokio::spawn(follow(
            receiver,
            Sink(std::sync::Arc::clone(&shared)),
            ConsoleStyle::default(),
        ));
        sender
            .send(Event::RunStarted {
                run_id: "r1".into(),
                backend: "fake".into(),
                scenarios: 1,
            })
            .unwrap();
        sender
            .send(Event::ScenarioStarted {
                name: "demo".into(),
            })
            .unwrap();
        sender
            .send(Event::ScenarioFinished(Box::new(report(Outcome::Passed))))
            .unwrap();
        sender
            .send(Event::RunFinished { interrupted: false })
            .unwrap();
        drop(sender);
        task.await.unwrap();
        let text = String::from_utf8(shared.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "dockproof: running 1 scenario(s) on `fake` (run r1)\n[1/1] PASS demo (0ms)\n"
        );
    }
}
