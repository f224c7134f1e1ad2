//! `port` and `stats` (deterministic numbers: a base plus what the program allocated).

use serde_json::{Value, json};

use super::listing::print_rows;
use super::{CommandError, Outcome, daemon_error, err, find_container, out};
use crate::flags::{Arity, CommandSpec, Flag, Kind, Parsed};
use crate::ports::{normalize_port, port_lines};
use crate::size::bytes_size;
use crate::state::{Container, StateDir, Status};

/// `docker port`.
pub const PORT: CommandSpec = CommandSpec {
    name: "port",
    usage: "port CONTAINER [PRIVATE_PORT[/PROTO]]",
    about: "List port mappings or a specific mapping for the container",
    flags: &[],
    interspersed: true,
    arity: Arity::Range(1, 2),
};

/// `docker stats`.
pub const STATS: CommandSpec = CommandSpec {
    name: "stats",
    usage: "stats [OPTIONS] [CONTAINER...]",
    about: "Display a live stream of container(s) resource usage statistics",
    flags: &[
        Flag {
            long: "all",
            short: Some('a'),
            kind: Kind::Bool,
            help: "Show all containers (default shows just running)",
        },
        Flag {
            long: "format",
            short: None,
            kind: Kind::Value("string"),
            help: "Format output using a custom template",
        },
        Flag {
            long: "no-stream",
            short: None,
            kind: Kind::Bool,
            help: "Disable streaming stats and only pull the first result",
        },
        Flag {
            long: "no-trunc",
            short: None,
            kind: Kind::Bool,
            help: "Do not truncate output",
        },
    ],
    interspersed: true,
    arity: Arity::Any,
};

/// What a running fake container "uses" besides what its program allocated:
/// 1 MiB of memory, one process, no I/O.
const FAKE_USAGE: u64 = 1024 * 1024;
/// The memory limit of a container without `--memory` (the fake host's total).
const HOST_MEMORY: u64 = 1 << 30;
/// How often streaming `stats` looks at its containers again.
const STREAM_POLL: std::time::Duration = std::time::Duration::from_millis(100);
/// How often streaming `stats` prints a frame that has not changed (the daemon's rhythm).
const STREAM_REPEAT: std::time::Duration = std::time::Duration::from_secs(1);

/// `docker port`.
pub fn port(_spec: &CommandSpec, parsed: &Parsed) -> Outcome {
    let name = &parsed.positionals[0];
    let state = StateDir::from_env()?;
    let Some(container) = find_container(&state, name)? else {
        daemon_error(&format!("No such container: {name}"));
        return Ok(1);
    };
    let published = if container.state.status == Status::Running {
        container.state.published.clone()
    } else {
        Vec::new()
    };
    match parsed.positionals.get(1) {
        None => {
            for line in port_lines(&published, None) {
                out(&format!("{line}\n"));
            }
            Ok(0)
        }
        Some(wanted) => {
            let lines = port_lines(&published, Some(&normalize_port(wanted)));
            if lines.is_empty() {
                err(&format!(
                    "Error: No public port '{wanted}' published for {name}\n"
                ));
                return Ok(1);
            }
            for line in lines {
                out(&format!("{line}\n"));
            }
            Ok(0)
        }
    }
}

fn stats_row(state: &StateDir, container: &Container, shown: &str, truncate: bool) -> Value {
    let id = if truncate {
        container.short_id().to_string()
    } else {
        container.id.clone()
    };
    let running = container.state.status == Status::Running;
    let (usage, limit, pids) = if running {
        let limit = if container.memory > 0 {
            container.memory as u64
        } else {
            HOST_MEMORY
        };
        (FAKE_USAGE + allocated(state, &container.id), limit, 1)
    } else {
        (0, 0, 0)
    };
    let percent = if limit > 0 {
        usage as f64 * 100.0 / limit as f64
    } else {
        0.0
    };
    json!({
        "BlockIO": "0B / 0B",
        "CPUPerc": "0.00%",
        "Container": shown,
        "ID": id,
        "MemPerc": format!("{percent:.2}%"),
        "MemUsage": format!("{} / {}", bytes_size(usage), bytes_size(limit)),
        "Name": container.name,
        "NetIO": "0B / 0B",
        "PIDs": pids.to_string(),
    })
}

/// Bytes the container's program has taken with `alloc` (kept until it ends).
fn allocated(state: &StateDir, id: &str) -> u64 {
    std::fs::read_to_string(state.usage_path(id))
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0)
}

/// `docker stats`: one frame with `--no-stream`; otherwise a frame whenever the
/// numbers change (and at least once a second) until no container named runs.
/// (The real CLI keeps printing all-zero frames for a stopped container until it
/// is interrupted; the fake stops instead, after one such frame.)
pub fn stats(_spec: &CommandSpec, parsed: &Parsed) -> Outcome {
    let mut stream = StatsStream::new(StateDir::from_env()?, parsed.clone());
    loop {
        if let Some(code) = stream.step()? {
            return Ok(code);
        }
        std::thread::sleep(STREAM_POLL);
    }
}

/// A `docker stats` a frame at a time: the `stats` command steps and sleeps
/// [`STREAM_POLL`] in turn; `fake-docker __serve` steps it from its loop, without a
/// process of its own ([`served_stats`]).
#[derive(Debug)]
pub struct StatsStream {
    state: StateDir,
    parsed: Parsed,
    /// The rows last printed and when.
    last: Option<(Vec<Value>, std::time::Instant)>,
}

impl StatsStream {
    fn new(state: StateDir, parsed: Parsed) -> StatsStream {
        StatsStream {
            state,
            parsed,
            last: None,
        }
    }

    /// Looks at the containers once and prints a frame if one is due; `Some(code)` when
    /// the command is done (`--no-stream`, no container named runs any more, or an error).
    pub fn step(&mut self) -> Result<Option<i32>, CommandError> {
        let truncate = !self.parsed.bool("no-trunc");
        let (rows, running) = match frame(&self.state, &self.parsed, truncate)? {
            Ok(frame) => frame,
            Err(code) => return Ok(Some(code)),
        };
        if self.parsed.bool("no-stream") {
            return Ok(Some(self.print(&rows)));
        }
        let due = self
            .last
            .as_ref()
            .is_none_or(|(shown, at)| *shown != rows || at.elapsed() >= STREAM_REPEAT);
        if due {
            let code = self.print(&rows);
            if code != 0 {
                return Ok(Some(code));
            }
            self.last = Some((rows, std::time::Instant::now()));
        }
        Ok((!running).then_some(0))
    }

    /// How long to wait before the next step.
    pub fn next_pause(&self) -> std::time::Duration {
        STREAM_POLL
    }

    fn print(&self, rows: &[Value]) -> i32 {
        let headers = json!({
            "BlockIO": "BLOCK I/O", "CPUPerc": "CPU %", "Container": "CONTAINER",
            "ID": "CONTAINER ID", "MemPerc": "MEM %", "MemUsage": "MEM USAGE / LIMIT",
            "Name": "NAME", "NetIO": "NET I/O", "PIDs": "PIDS",
        });
        print_rows(
            self.parsed.last("format"),
            "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}",
            &headers,
            rows,
        )
    }
}

/// A `docker stats` that a server can run itself: `args` are `stats`, its flags and one
/// to four containers (a frame is a few hundred bytes each); without containers (every
/// running one, however many) it is left to the command.
pub fn served_stats(args: &[String]) -> Option<StatsStream> {
    let Ok(super::Invocation::Command { spec, parsed, .. }) = super::parse(args) else {
        return None;
    };
    if spec.name != STATS.name || args.first().map(String::as_str) != Some("stats") {
        return None;
    }
    if !(1..=4).contains(&parsed.positionals.len()) {
        return None;
    }
    Some(StatsStream::new(StateDir::from_env().ok()?, parsed))
}

/// The rows of one frame and whether any container in it runs; `Err(code)` when a
/// named container does not exist (reported on stderr).
fn frame(
    state: &StateDir,
    parsed: &Parsed,
    truncate: bool,
) -> Result<Result<(Vec<Value>, bool), i32>, CommandError> {
    let mut rows = Vec::new();
    let mut running = false;
    if parsed.positionals.is_empty() {
        for container in state.all()? {
            let live = container.state.status == Status::Running;
            if parsed.bool("all") || live {
                running |= live;
                rows.push(stats_row(state, &container, container.short_id(), truncate));
            }
        }
    } else {
        for name in &parsed.positionals {
            let Some(container) = find_container(state, name)? else {
                daemon_error(&format!("No such container: {name}"));
                return Ok(Err(1));
            };
            running |= container.state.status == Status::Running;
            rows.push(stats_row(state, &container, name, truncate));
        }
    }
    Ok(Ok((rows, running)))
}
