//! The health-check loop a supervisor runs while its container is up: every interval it
//! runs the health command (an image program, in-process, output captured) and applies
//! the result to `State.Health`.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::expand::env_vars;
use crate::health::{HealthConfig, Probe};
use crate::image::Image;
use crate::program::{self, Context, Invocation, Output};
use crate::state::{Container, StateDir, Status, container_fs};

/// Docker keeps at most this much of a probe's output.
const OUTPUT_LIMIT: usize = 4096;

#[derive(Default)]
struct Captured(Vec<u8>);

impl Output for Captured {
    fn stdout(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
    fn stderr(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
}

/// Starts the loop if the container has a health check.
pub fn start(state: &StateDir, container: &Container, image: &Image) {
    let Some(config) = container.healthcheck.clone().filter(|h| !h.is_none()) else {
        return;
    };
    let state = state.clone();
    let container = container.clone();
    let image = image.clone();
    std::thread::spawn(move || run(&state, &container, &image, &config));
}

fn run(state: &StateDir, container: &Container, image: &Image, config: &HealthConfig) {
    let started = Instant::now();
    loop {
        std::thread::sleep(config.interval());
        let probe = probe(state, container, image, config);
        let in_start_period = started.elapsed() < config.start_period();
        let Ok(_lock) = state.lock() else { return };
        let Ok(Some(mut current)) = state.load(&container.id) else {
            return;
        };
        if current.state.status != Status::Running {
            return;
        }
        let health = current
            .state
            .health
            .get_or_insert_with(crate::health::HealthState::starting);
        health.record(probe, in_start_period, config.retries());
        if state.save(&current).is_err() {
            return;
        }
    }
}

/// Runs the health command once, giving up after the timeout (exit -1, like docker).
fn probe(state: &StateDir, container: &Container, image: &Image, config: &HealthConfig) -> Probe {
    let command = config.command();
    let Some(name) = command.first().cloned() else {
        return Probe {
            exit_code: 1,
            output: String::new(),
        };
    };
    let Some(program) = image.program(&name).cloned() else {
        return Probe {
            exit_code: 127,
            output: format!("/bin/sh: {name}: not found\n"),
        };
    };
    let mut invocation = Invocation {
        fs: container_fs(state, container),
        workdir: container.workdir.clone(),
        vars: env_vars(&container.env),
        args: command[1..].to_vec(),
        on_ready: None,
        // No memory limit: an `alloc` in a probe must not kill the supervisor.
        context: Context {
            programs: image.programs.clone(),
            http: image.http.clone(),
            ..Context::default()
        },
        allocated: 0,
        trap: None,
    };
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut output = Captured::default();
        let code = program::run(&program, &mut invocation, &mut output);
        let _ = sender.send((code, output.0));
    });
    let timeout = config.timeout();
    match receiver.recv_timeout(timeout) {
        Ok((code, mut bytes)) => {
            bytes.truncate(OUTPUT_LIMIT);
            Probe {
                exit_code: i64::from(code),
                output: String::from_utf8_lossy(&bytes).into_owned(),
            }
        }
        Err(_) => Probe {
            exit_code: -1,
            output: format!("Health check exceeded timeout ({})", go_duration(timeout)),
        },
    }
}

/// `1s`, `500ms`, `1m30s` like Go's `Duration.String` for whole values.
fn go_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if !millis.is_multiple_of(1000) {
        return format!("{millis}ms");
    }
    let seconds = duration.as_secs();
    match (seconds / 60, seconds % 60) {
        (0, s) => format!("{s}s"),
        (m, s) => format!("{m}m{s}s"),
    }
}
