//! `port` and `stats --no-stream` (deterministic numbers).

use serde_json::{Value, json};

use super::listing::print_rows;
use super::{Outcome, daemon_error, err, find_container, out};
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

/// What a running fake container "uses": 1 MiB of memory, one process, no I/O.
const FAKE_USAGE: u64 = 1024 * 1024;
/// The memory limit of a container without `--memory` (the fake host's total).
const HOST_MEMORY: u64 = 1 << 30;

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

fn stats_row(container: &Container, shown: &str, truncate: bool) -> Value {
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
        (FAKE_USAGE, limit, 1)
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

/// `docker stats` (always one sample, as with `--no-stream`).
pub fn stats(_spec: &CommandSpec, parsed: &Parsed) -> Outcome {
    let state = StateDir::from_env()?;
    let truncate = !parsed.bool("no-trunc");
    let mut rows = Vec::new();
    if parsed.positionals.is_empty() {
        for container in state.all()? {
            if parsed.bool("all") || container.state.status == Status::Running {
                rows.push(stats_row(&container, container.short_id(), truncate));
            }
        }
    } else {
        for name in &parsed.positionals {
            let Some(container) = find_container(&state, name)? else {
                daemon_error(&format!("No such container: {name}"));
                return Ok(1);
            };
            rows.push(stats_row(&container, name, truncate));
        }
    }
    let headers = json!({
        "BlockIO": "BLOCK I/O", "CPUPerc": "CPU %", "Container": "CONTAINER",
        "ID": "CONTAINER ID", "MemPerc": "MEM %", "MemUsage": "MEM USAGE / LIMIT",
        "Name": "NAME", "NetIO": "NET I/O", "PIDs": "PIDS",
    });
    Ok(print_rows(
        parsed.last("format"),
        "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}",
        &headers,
        &rows,
    ))
}
