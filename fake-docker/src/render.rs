//! Docker-shaped views of containers: `inspect` objects and `ps` rows.

use serde_json::{Value, json};

use crate::image::null_if_empty;
use crate::ports;
use crate::state::{Container, Status};
use crate::{FIXED_TIME, ZERO_TIME};

/// The `docker inspect` object of a container.
pub fn container_json(container: &Container, log_path: &str) -> Value {
    let state = &container.state;
    let exposed: Value = if container.exposed_ports.is_empty() {
        Value::Null
    } else {
        container
            .exposed_ports
            .iter()
            .map(|p| (p.clone(), json!({})))
            .collect::<serde_json::Map<String, Value>>()
            .into()
    };
    let mounts: Vec<Value> = container
        .mounts
        .iter()
        .map(|m| {
            json!({
                "Type": "bind",
                "Source": m.source.to_string_lossy(),
                "Destination": m.destination,
                "Mode": m.mode,
                "RW": !m.read_only,
                "Propagation": "rprivate",
            })
        })
        .collect();
    let mut config = json!({
        "Hostname": container.short_id(),
        "Domainname": "",
        "User": container.user,
        "AttachStdin": container.attach_stdin,
        "AttachStdout": false,
        "AttachStderr": false,
        "ExposedPorts": exposed,
        "Tty": false,
        "OpenStdin": container.open_stdin,
        "StdinOnce": container.attach_stdin,
        "Env": container.env,
        "Cmd": null_if_empty(&container.cmd),
        "Image": container.image_name,
        "Volumes": null,
        "WorkingDir": container.workdir,
        "Entrypoint": container.entrypoint.as_deref().map_or(Value::Null, null_if_empty),
        "OnBuild": null,
        "Labels": container.labels,
    });
    if let (Some(timeout), Some(map)) = (container.stop_timeout, config.as_object_mut()) {
        map.insert("StopTimeout".into(), json!(timeout));
    }
    if let (Some(health), Some(map)) = (&container.healthcheck, config.as_object_mut()) {
        map.insert("Healthcheck".into(), health.to_json());
    }
    let running = state.status == Status::Running;
    let mut document = json!({
        "Id": container.id,
        "Created": FIXED_TIME,
        "Path": container.path,
        "Args": container.args,
        "State": {
            "Status": state.status.as_str(),
            "Running": state.status == Status::Running,
            "Paused": false,
            "Restarting": false,
            "OOMKilled": state.oom_killed,
            "Dead": false,
            "Pid": state.pid,
            "ExitCode": state.exit_code,
            "Error": state.error,
            "StartedAt": if state.started { FIXED_TIME } else { ZERO_TIME },
            "FinishedAt": if state.finished { FIXED_TIME } else { ZERO_TIME },
        },
        "Image": container.image_id,
        "ResolvConfPath": "",
        "HostnamePath": "",
        "HostsPath": "",
        "LogPath": log_path,
        "Name": format!("/{}", container.name),
        "RestartCount": 0,
        "Driver": "fake",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": null,
        "HostConfig": {
            "Binds": null_if_empty(&container.binds),
            "ContainerIDFile": "",
            "LogConfig": { "Type": "json-file", "Config": {} },
            "NetworkMode": container.network_mode,
            "PortBindings": ports::bindings_json(&container.port_requests),
            "RestartPolicy": { "Name": "no", "MaximumRetryCount": 0 },
            "AutoRemove": container.auto_remove,
            "VolumeDriver": "",
            "VolumesFrom": null,
            "CapAdd": null_if_empty(&container.cap_add),
            "CapDrop": null_if_empty(&container.cap_drop),
            "Privileged": false,
            "ReadonlyRootfs": container.read_only,
            "SecurityOpt": null_if_empty(&container.security_opt),
            "Memory": container.memory,
            "NanoCpus": container.nano_cpus,
            "PidsLimit": container.pids_limit,
            "Tmpfs": if container.tmpfs.is_empty() { Value::Null } else { json!(container.tmpfs) },
            "MemorySwap": memory_swap(container.memory),
        },
        "Mounts": mounts,
        "Config": config,
        "NetworkSettings": {
            "Ports": ports::ports_json(&container.exposed_ports, &state.published, running),
            "Networks": { network_name(&container.network_mode): {} },
        },
    });
    // Measured: State has no Health key at all without a health check, so
    // `{{.State.Health.Status}}` is an error there, not `<no value>`.
    if let Some(health) = &state.health
        && let Some(state_map) = document.get_mut("State").and_then(Value::as_object_mut)
    {
        state_map.insert("Health".into(), health.to_json());
    }
    document
}

/// The daemon's default swap limit: twice `--memory` when one is set. The daemon computes
/// it in Go's int64, which wraps; so does this (`--memory 99999999999999999999g` once
/// panicked here with a multiplication overflow).
fn memory_swap(memory: i64) -> i64 {
    if memory > 0 {
        memory.wrapping_mul(2)
    } else {
        0
    }
}

fn network_name(mode: &str) -> String {
    if mode == "default" {
        "bridge".to_string()
    } else {
        mode.to_string()
    }
}

/// The age docker's `ps` puts in STATUS. The fake has no clock (its output must not depend
/// on timing), so every age is docker's shortest: `Less than a second`.
const AGE: &str = "Less than a second";

/// `ps` STATUS text the way docker writes it: `Up Less than a second`, `Created`,
/// `Exited (N) Less than a second ago`, with the health after the age:
/// `Up Less than a second (healthy)`, `Up Less than a second (health: starting)`.
pub fn ps_status(container: &Container) -> String {
    match container.state.status {
        Status::Running => match container.state.health.as_ref().map(|h| h.status.as_str()) {
            Some("starting") => format!("Up {AGE} (health: starting)"),
            Some(status) => format!("Up {AGE} ({status})"),
            None => format!("Up {AGE}"),
        },
        Status::Created => "Created".to_string(),
        Status::Exited => format!("Exited ({}) {AGE} ago", container.state.exit_code),
    }
}

/// Truncates to `width` characters with `…`, like docker's `Ellipsis`.
fn ellipsis(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// The fields a `ps --format` template sees.
pub fn ps_fields(container: &Container, truncate: bool) -> Value {
    let command = container.argv().join(" ");
    let command = if truncate {
        ellipsis(&command, 20)
    } else {
        command
    };
    let labels: Vec<String> = container
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mounts: Vec<String> = container
        .mounts
        .iter()
        .map(|m| m.source.to_string_lossy().into_owned())
        .collect();
    json!({
        "Command": serde_json::to_string(&command).unwrap_or_default(),
        "CreatedAt": "2000-01-01 00:00:00 +0000 UTC",
        "ID": if truncate { container.short_id().to_string() } else { container.id.clone() },
        "Image": container.image_name,
        "Labels": labels.join(","),
        "LocalVolumes": "0",
        "Mounts": mounts.join(","),
        "Names": container.name,
        "Networks": network_name(&container.network_mode),
        "Ports": if container.state.status == Status::Running {
            ports::ps_ports(&container.exposed_ports, &container.state.published)
        } else {
            String::new()
        },
        "RunningFor": "Less than a second ago",
        "Size": "0B",
        "State": container.state.status.as_str(),
        "Status": ps_status(container),
    })
}

/// The header a `table` template prints for each field.
pub fn ps_headers() -> Value {
    json!({
        "Command": "COMMAND",
        "CreatedAt": "CREATED AT",
        "ID": "CONTAINER ID",
        "Image": "IMAGE",
        "Labels": "LABELS",
        "LocalVolumes": "LOCAL VOLUMES",
        "Mounts": "MOUNTS",
        "Names": "NAMES",
        "Networks": "NETWORKS",
        "Ports": "PORTS",
        "RunningFor": "CREATED",
        "Size": "SIZE",
        "State": "STATE",
        "Status": "STATUS",
    })
}

/// Aligns tab-separated cells like Go's tabwriter(minwidth 10, padding 3), as docker does.
pub fn tabulate(lines: &[String]) -> String {
    let rows: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; columns];
    for row in &rows {
        // The last cell of a row is not part of a column and is never padded.
        for (index, cell) in row.iter().enumerate().take(row.len().saturating_sub(1)) {
            widths[index] = widths[index].max((cell.chars().count() + 3).max(10));
        }
    }
    let mut text = String::new();
    for row in &rows {
        for (index, cell) in row.iter().enumerate() {
            text.push_str(cell);
            if index + 1 < row.len() {
                let pad = widths[index].saturating_sub(cell.chars().count());
                text.push_str(&" ".repeat(pad));
            }
        }
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabwriter_alignment() {
        let text = tabulate(&[
            "CONTAINER ID\tIMAGE\tNAMES".to_string(),
            "abc\tbusybox:latest\tt1".to_string(),
        ]);
        assert_eq!(
            text,
            "CONTAINER ID   IMAGE            NAMES\nabc            busybox:latest   t1\n"
        );
    }

    #[test]
    fn memory_swap_of_a_huge_limit_wraps_like_go_instead_of_panicking() {
        assert_eq!(memory_swap(0), 0);
        assert_eq!(memory_swap(64 * 1024 * 1024), 128 * 1024 * 1024);
        assert_eq!(memory_swap(i64::MAX), -2);
    }

    #[test]
    fn ellipsis_like_docker() {
        assert_eq!(ellipsis("short", 20), "short");
        assert_eq!(
            ellipsis("sleep 100 and a long tail", 20),
            "sleep 100 and a lon…"
        );
    }
}
