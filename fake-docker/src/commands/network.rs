//! `network create|rm|ls|inspect` and `volume create|rm|ls|inspect`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::inspect_json::{mountpoint, network_json, volume_json};
use super::listing::{print_rows, split_filter};
use super::{Outcome, daemon_error, err, out};
use crate::flags::{Arity, CommandSpec, Flag, Kind, Parsed};
use crate::objects::{self, Network, Volume, label_matches, labels_text, object_id};
use crate::state::{StateDir, Status};

const fn flag(long: &'static str, short: Option<char>, kind: Kind, help: &'static str) -> Flag {
    Flag {
        long,
        short,
        kind,
        help,
    }
}

const LABEL: Flag = flag("label", None, Kind::Value("list"), "Set metadata");
const FORMAT: Flag = flag(
    "format",
    Some('f'),
    Kind::Value("string"),
    "Format output using a custom template",
);
const LS_FLAGS: &[Flag] = &[
    flag(
        "filter",
        Some('f'),
        Kind::Value("filter"),
        "Provide filter values",
    ),
    flag(
        "format",
        None,
        Kind::Value("string"),
        "Format output using a custom template",
    ),
    flag("no-trunc", None, Kind::Bool, "Do not truncate the output"),
    flag("quiet", Some('q'), Kind::Bool, "Only display IDs"),
];

/// `docker network create`.
pub const NETWORK_CREATE: CommandSpec = CommandSpec {
    name: "network create",
    usage: "network create [OPTIONS] NETWORK",
    about: "Create a network",
    flags: &[
        flag(
            "driver",
            Some('d'),
            Kind::Value("string"),
            "Driver to manage the Network (default \"bridge\")",
        ),
        LABEL,
        flag(
            "internal",
            None,
            Kind::Bool,
            "Restrict external access to the network",
        ),
        flag(
            "attachable",
            None,
            Kind::Bool,
            "Enable manual container attachment",
        ),
        flag(
            "subnet",
            None,
            Kind::Value("strings"),
            "Subnet in CIDR format that represents a network segment",
        ),
        flag(
            "gateway",
            None,
            Kind::Value("strings"),
            "IPv4 or IPv6 Gateway for the master subnet",
        ),
        flag(
            "opt",
            Some('o'),
            Kind::Value("map"),
            "Set driver specific options",
        ),
    ],
    interspersed: true,
    arity: Arity::Exactly(1),
};

/// `docker network rm`.
pub const NETWORK_RM: CommandSpec = CommandSpec {
    name: "network rm",
    usage: "network rm NETWORK [NETWORK...]",
    about: "Remove one or more networks",
    flags: &[flag(
        "force",
        Some('f'),
        Kind::Bool,
        "Do not error if the network does not exist",
    )],
    interspersed: true,
    arity: Arity::AtLeast(1),
};

/// `docker network remove`.
pub const NETWORK_REMOVE: CommandSpec = CommandSpec {
    name: "network remove",
    usage: "network remove NETWORK [NETWORK...]",
    ..NETWORK_RM
};

/// `docker network ls`.
pub const NETWORK_LS: CommandSpec = CommandSpec {
    name: "network ls",
    usage: "network ls [OPTIONS]",
    about: "List networks",
    flags: LS_FLAGS,
    interspersed: true,
    arity: Arity::Exactly(0),
};

/// `docker network list`.
pub const NETWORK_LIST: CommandSpec = CommandSpec {
    name: "network list",
    usage: "network list [OPTIONS]",
    ..NETWORK_LS
};

/// `docker network inspect`.
pub const NETWORK_INSPECT: CommandSpec = CommandSpec {
    name: "network inspect",
    usage: "network inspect [OPTIONS] NETWORK [NETWORK...]",
    about: "Display detailed information on one or more networks",
    flags: &[FORMAT],
    interspersed: true,
    arity: Arity::AtLeast(1),
};

/// `docker volume create`.
pub const VOLUME_CREATE: CommandSpec = CommandSpec {
    name: "volume create",
    usage: "volume create [OPTIONS] [VOLUME]",
    about: "Create a volume",
    flags: &[
        flag(
            "driver",
            Some('d'),
            Kind::Value("string"),
            "Specify volume driver name (default \"local\")",
        ),
        LABEL,
        flag(
            "opt",
            Some('o'),
            Kind::Value("map"),
            "Set driver specific options",
        ),
        flag("name", None, Kind::Value("string"), "Specify volume name"),
    ],
    interspersed: true,
    arity: Arity::Range(0, 1),
};

/// `docker volume rm`.
pub const VOLUME_RM: CommandSpec = CommandSpec {
    name: "volume rm",
    usage: "volume rm [OPTIONS] VOLUME [VOLUME...]",
    about: "Remove one or more volumes",
    flags: &[flag(
        "force",
        Some('f'),
        Kind::Bool,
        "Force the removal of one or more volumes",
    )],
    interspersed: true,
    arity: Arity::AtLeast(1),
};

/// `docker volume remove`.
pub const VOLUME_REMOVE: CommandSpec = CommandSpec {
    name: "volume remove",
    usage: "volume remove [OPTIONS] VOLUME [VOLUME...]",
    ..VOLUME_RM
};

/// `docker volume ls`.
pub const VOLUME_LS: CommandSpec = CommandSpec {
    name: "volume ls",
    usage: "volume ls [OPTIONS]",
    about: "List volumes",
    flags: LS_FLAGS,
    interspersed: true,
    arity: Arity::Exactly(0),
};

/// `docker volume list`.
pub const VOLUME_LIST: CommandSpec = CommandSpec {
    name: "volume list",
    usage: "volume list [OPTIONS]",
    ..VOLUME_LS
};

/// `docker volume inspect`.
pub const VOLUME_INSPECT: CommandSpec = CommandSpec {
    name: "volume inspect",
    usage: "volume inspect [OPTIONS] VOLUME [VOLUME...]",
    about: "Display detailed information on one or more volumes",
    flags: &[FORMAT],
    interspersed: true,
    arity: Arity::AtLeast(1),
};

fn labels(parsed: &Parsed) -> BTreeMap<String, String> {
    parsed
        .all("label")
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect()
}

/// Parses `--filter`s against the allowed keys; prints docker's error on a bad one.
fn filters(parsed: &Parsed, allowed: &[&str]) -> Option<Vec<(String, String)>> {
    let mut list = Vec::new();
    for text in parsed.all("filter") {
        match split_filter(text) {
            Some((key, value)) if allowed.contains(&key) => {
                list.push((key.to_string(), value.to_string()));
            }
            Some((key, _)) => {
                daemon_error(&format!("Invalid filter '{key}'"));
                return None;
            }
            None => {
                daemon_error("bad format of filter (expected name=value)");
                return None;
            }
        }
    }
    Some(list)
}

/// Same key: any may match; different keys: all must.
fn all_groups_match(filters: &[(String, String)], matches: impl Fn(&str, &str) -> bool) -> bool {
    let mut keys: Vec<&str> = filters.iter().map(|(k, _)| k.as_str()).collect();
    keys.dedup();
    keys.iter().all(|key| {
        filters
            .iter()
            .filter(|(k, _)| k == key)
            .any(|(k, v)| matches(k, v))
    })
}

/// `docker network create`.
pub fn network_create(_spec: &CommandSpec, parsed: &Parsed) -> Outcome {
    let name = parsed.positionals[0].clone();
    let state = StateDir::from_env()?;
    let _lock = state.lock()?;
    let driver = parsed.last("driver").unwrap_or("bridge").to_string();
    // Measured on 20.10 (not a swarm manager, no plugins).
    let refusal = match driver.as_str() {
        "bridge" | "ipvlan" => None,
        "overlay" => Some("This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.".to_string()),
        "host" | "null" => Some(format!("only one instance of \"{driver}\" network is allowed")),
        "macvlan" => Some("operation not supported".to_string()),
        other => Some(format!("plugin \"{other}\" not found")),
    };
    let refusal = refusal.or_else(|| {
        objects::BUILTIN_NETWORKS
            .iter()
            .any(|(builtin, _)| *builtin == name)
            .then(|| format!("operation is not permitted on predefined {name} network"))
    });
    if let Some(message) = refusal {
        daemon_error(&message);
        return Ok(1);
    }
    let existing = objects::networks(&state)?;
    let given = parsed.last("subnet").map(str::to_string);
    if let Some(subnet) = &given {
        let parts: Option<(&str, &str)> = subnet.split_once('/');
        let valid = parts.is_some_and(|(address, length)| {
            address.parse::<std::net::Ipv4Addr>().is_ok()
                && length.parse::<u8>().is_ok_and(|l| l <= 32)
        });
        if !valid {
            daemon_error(&format!(
                "Invalid subnet {subnet} : invalid CIDR address: {subnet}"
            ));
            return Ok(1);
        }
        if existing.iter().any(|n| n.subnet == *subnet) {
            daemon_error("Pool overlaps with other one on this address space");
            return Ok(1);
        }
    }
    let subnet = match &given {
        Some(subnet) => subnet.clone(),
        None if driver == "bridge" => objects::next_subnet(&existing),
        None => String::new(),
    };
    let options: BTreeMap<String, String> = parsed
        .all("opt")
        .iter()
        .map(|o| {
            let (k, v) = o.split_once('=').unwrap_or((o, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    let network = Network {
        id: object_id("network", &name),
        name: name.clone(),
        driver,
        labels: labels(parsed),
        internal: parsed.bool("internal"),
        subnet,
        explicit_subnet: given.is_some(),
        explicit_gateway: parsed.last("gateway").unwrap_or_default().to_string(),
        attachable: parsed.bool("attachable"),
        options,
    };
    let id = network.id.clone();
    match objects::add_network(&state, network)? {
        Ok(()) => {
            out(&format!("{id}\n"));
            Ok(0)
        }
        Err(()) => {
            daemon_error(&format!("network with name {name} already exists"));
            Ok(1)
        }
    }
}

/// `docker network rm`.
pub fn network_rm(_spec: &CommandSpec, parsed: &Parsed) -> Outcome {
    let state = StateDir::from_env()?;
    let _lock = state.lock()?;
    let mut failed = false;
    for name in &parsed.positionals {
        let Some(network) = objects::find_network(&state, name)? else {
            if !parsed.bool("force") {
                daemon_error(&format!("network {name} not found"));
                failed = true;
            }
            continue;
        };
        if objects::BUILTIN_NETWORKS
            .iter()
            .any(|(n, _)| *n == network.name)
        {
            daemon_error(&format!(
                "{} is a pre-defined network and cannot be removed",
                network.name
            ));
            failed = true;
            continue;
        }
        let in_use = state.all()?.iter().any(|c| {
            (c.state.status == Status::Running || c.state.starting)
                && (c.network_mode == network.name || c.network_mode == network.id)
        });
        if in_use {
            daemon_error(&format!(
                "error while removing network: network {} id {} has active endpoints",
                network.name, network.id
            ));
            failed = true;
            continue;
        }
        objects::remove_network(&state, &network.name)?;
        out(&format!("{name}\n"));
    }
    if failed {
        // Measured: the CLI ends a failed `network rm` with this line.
        err("exit status 1\n");
        return Ok(1);
    }
    Ok(0)
}

fn network_row(network: &Network, truncate: bool) -> Value {
    json!({
        "CreatedAt": "2000-01-01 00:00:00 +0000 UTC",
        "Driver": network.driver,
        "ID": if truncate { network.id[..12].to_string() } else { network.id.clone() },
        "IPv4": "false",
        "IPv6": "false",
        "Internal": network.internal.to_string(),
        "Labels": labels_text(&network.labels),
        "Name": network.name,
        "Scope": "local",
    })
}

/// `docker network ls`.
pub fn network_ls(_spec: &CommandSpec, parsed: &Parsed) -> Outcome {
    let Some(filters) = filters(
        parsed,
        &["name", "label", "driver", "id", "type", "scope", "dangling"],
    ) else {
        return Ok(1);
    };
    let state = StateDir::from_env()?;
    let truncate = !parsed.bool("no-trunc");
    let networks: Vec<Network> = objects::networks(&state)?
        .into_iter()
        .filter(|n| {
            all_groups_match(&filters, |key, value| match key {
                "name" => name_filter_matches(&n.name, value),
                "label" => label_matches(&n.labels, value),
                "driver" => n.driver == value,
                "id" => n.id.starts_with(value),
                "type" => {
                    let builtin = objects::BUILTIN_NETWORKS.iter().any(|(b, _)| *b == n.name);
                    (value == "builtin") == builtin
                }
                _ => true,
            })
        })
        .collect();
    if parsed.bool("quiet") {
        for network in &networks {
            out(&format!(
                "{}\n",
                if truncate {
                    &network.id[..12]
                } else {
                    &network.id
                }
            ));
        }
        return Ok(0);
    }
    let rows: Vec<Value> = networks.iter().map(|n| network_row(n, truncate)).collect();
    let headers = json!({
        "CreatedAt": "CREATED", "Driver": "DRIVER", "ID": "NETWORK ID", "IPv4": "IPV4",
        "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS", "Name": "NAME",
        "Scope": "SCOPE",
    });
    Ok(super::listing::print_rows_in(
        parsed.last("format"),
        "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
        &headers,
        &rows,
        Some("*network.networkContext"),
    ))
}

/// Prints inspect objects (with their typed views, see `render`): a JSON array, or one
/// template line each.
fn print_inspect(parsed: &Parsed, objects: &[Value], typed: fn(&Value) -> Value) -> i32 {
    let template = match parsed.last("format") {
        None => None,
        Some(text) => match super::query::inspect_template(text) {
            None => return 1,
            Some(format) => Some(format),
        },
    };
    let objects: Vec<super::query::Inspected> = objects
        .iter()
        .map(|raw| super::query::Inspected {
            raw: raw.clone(),
            typed: Some(typed(raw)),
        })
        .collect();
    super::query::print_inspected(template.as_ref(), &objects).unwrap_or(1)
}

/// `docker network inspect`.
pub fn network_inspect(_spec: &CommandSpec, parsed: &Parsed) -> Outcome {
    let state = StateDir::from_env()?;
    let containers = state.all()?;
    let mut objects = Vec::new();
    let mut missing = Vec::new();
    for name in &parsed.positionals {
        let Some(network) = objects::find_network(&state, name)? else {
            missing.push(name.clone());
            continue;
        };
        objects.push(network_json(&network, &containers));
    }
    let code = print_inspect(parsed, &objects, crate::render::network_typed_view);
    for name in &missing {
        daemon_error(&format!("network {name} not found"));
    }
    Ok(if missing.is_empty() { code } else { 1 })
}

/// `docker volume create`.
pub fn volume_create(_spec: &CommandSpec, parsed: &Parsed) -> Outcome {
    let state = StateDir::from_env()?;
    let _lock = state.lock()?;
    let name = match parsed
        .positionals
        .first()
        .map(String::as_str)
        .or(parsed.last("name"))
    {
        Some(name) => name.to_string(),
        None => object_id(
            "volume",
            &state.next_named_counter("volume-counter")?.to_string(),
        ),
    };
    if !objects::valid_volume_name(&name) {
        daemon_error(&format!(
            "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        ));
        return Ok(1);
    }
    let driver = parsed.last("driver").unwrap_or("local").to_string();
    if driver != "local" {
        // Measured: no volume plugins on the daemon.
        daemon_error(&format!(
            "create {name}: error looking up volume plugin {driver}: plugin \"{driver}\" not found"
        ));
        return Ok(1);
    }
    objects::ensure_volume(
        &state,
        Volume {
            name: name.clone(),
            driver,
            labels: labels(parsed),
            options: parsed
                .all("opt")
                .iter()
                .map(|o| {
                    let (k, v) = o.split_once('=').unwrap_or((o, ""));
                    (k.to_string(), v.to_string())
                })
                .collect(),
        },
    )?;
    out(&format!("{name}\n"));
    Ok(0)
}

/// `docker volume rm`.
pub fn volume_rm(_spec: &CommandSpec, parsed: &Parsed) -> Outcome {
    let state = StateDir::from_env()?;
    let _lock = state.lock()?;
    let containers = state.all()?;
    let mut code = 0;
    for name in &parsed.positionals {
        // Read again for each name: `volume rm v v` removes it once, then finds nothing.
        if !objects::volumes(&state)?.iter().any(|v| v.name == *name) {
            if parsed.bool("force") {
                out(&format!("{name}\n"));
            } else {
                daemon_error(&format!("get {name}: no such volume"));
                code = 1;
            }
            continue;
        }
        let data = objects::volume_data(&state, name);
        let users: Vec<&str> = containers
            .iter()
            .filter(|c| c.mounts.iter().any(|m| m.source == data))
            .map(|c| c.id.as_str())
            .collect();
        if !users.is_empty() {
            daemon_error(&format!(
                "remove {name}: volume is in use - [{}]",
                users.join(", ")
            ));
            code = 1;
            continue;
        }
        objects::remove_volume(&state, name)?;
        out(&format!("{name}\n"));
    }
    Ok(code)
}

/// `docker volume ls`.
pub fn volume_ls(_spec: &CommandSpec, parsed: &Parsed) -> Outcome {
    let Some(filters) = filters(parsed, &["name", "label", "driver", "dangling"]) else {
        return Ok(1);
    };
    let state = StateDir::from_env()?;
    let containers = state.all()?;
    let volumes: Vec<Volume> = objects::volumes(&state)?
        .into_iter()
        .filter(|v| {
            all_groups_match(&filters, |key, value| match key {
                "name" => name_filter_matches(&v.name, value),
                "label" => label_matches(&v.labels, value),
                "driver" => v.driver == value,
                "dangling" => {
                    let data = objects::volume_data(&state, &v.name);
                    let used = containers
                        .iter()
                        .any(|c| c.mounts.iter().any(|m| m.source == data));
                    (value == "true" || value == "1") != used
                }
                _ => true,
            })
        })
        .collect();
    if parsed.bool("quiet") {
        for volume in &volumes {
            out(&format!("{}\n", volume.name));
        }
        return Ok(0);
    }
    let rows: Vec<Value> = volumes
        .iter()
        .map(|v| {
            json!({
                "Availability": "N/A", "Driver": v.driver, "Group": "N/A",
                "Labels": labels_text(&v.labels), "Links": "N/A",
                "Mountpoint": mountpoint(&v.name), "Name": v.name, "Scope": "local",
                "Size": "N/A", "Status": "N/A",
            })
        })
        .collect();
    let headers = json!({
        "Availability": "AVAILABILITY", "Driver": "DRIVER", "Group": "GROUP",
        "Labels": "LABELS", "Links": "LINKS", "Mountpoint": "MOUNTPOINT",
        "Name": "VOLUME NAME", "Scope": "SCOPE", "Size": "SIZE", "Status": "STATUS",
    });
    Ok(print_rows(
        parsed.last("format"),
        "table {{.Driver}}\t{{.Name}}",
        &headers,
        &rows,
    ))
}

/// `docker volume inspect`.
pub fn volume_inspect(_spec: &CommandSpec, parsed: &Parsed) -> Outcome {
    let state = StateDir::from_env()?;
    let volumes = objects::volumes(&state)?;
    let mut objects = Vec::new();
    let mut missing = Vec::new();
    for name in &parsed.positionals {
        match volumes.iter().find(|v| v.name == *name) {
            Some(v) => objects.push(volume_json(v)),
            None => missing.push(name.clone()),
        }
    }
    let code = print_inspect(parsed, &objects, crate::render::volume_typed_view);
    for name in &missing {
        daemon_error(&format!("get {name}: no such volume"));
    }
    Ok(if missing.is_empty() { code } else { 1 })
}

/// The daemon's `name=` filter: a regular expression searched in the name (so `^bridge$`
/// matches exactly); a value that is no valid expression matches as a substring.
fn name_filter_matches(name: &str, pattern: &str) -> bool {
    match regex::Regex::new(pattern) {
        Ok(expression) => expression.is_match(name),
        Err(_) => name.contains(pattern),
    }
}
