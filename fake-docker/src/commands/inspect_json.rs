//! The `inspect` objects of networks and volumes, shared by `network`/`volume inspect`
//! and the generic `inspect` (`query.rs`): a leaf of `commands`, so neither imports the other.

use serde_json::{Value, json};

use crate::objects::{self, Network};
use crate::state::Status;

/// The `network inspect` object, in the daemon's key order: running containers attached
/// with their endpoint, and the default bridge's driver options (measured).
pub(crate) fn network_json(network: &Network, containers: &[crate::state::Container]) -> Value {
    let attached: serde_json::Map<String, Value> = containers
        .iter()
        .filter(|c| {
            c.state.status == Status::Running
                && (c.network_mode == network.name
                    || (network.name == "bridge" && c.network_mode == "default"))
        })
        .map(|c| {
            let ip = &c.state.ip_address;
            let endpoint = crate::render::endpoint_id(c);
            (
                c.id.clone(),
                json!({
                    "Name": c.name,
                    "EndpointID": if network.subnet.is_empty() { String::new() } else { endpoint },
                    "MacAddress": objects::mac_address(ip),
                    "IPv4Address": if ip.is_empty() { String::new() } else { format!("{ip}/{}", network.prefix_len()) },
                    "IPv6Address": "",
                }),
            )
        })
        .collect();
    let options = if network.name == "bridge" {
        json!({
            "com.docker.network.bridge.default_bridge": "true",
            "com.docker.network.bridge.enable_icc": "true",
            "com.docker.network.bridge.enable_ip_masquerade": "true",
            "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
            "com.docker.network.bridge.name": "docker0",
            "com.docker.network.driver.mtu": "1500",
        })
    } else {
        json!(network.options)
    };
    json!({
        "Name": network.name,
        "Id": network.id,
        "Created": crate::FIXED_TIME,
        "Scope": "local",
        "Driver": network.driver,
        "EnableIPv6": false,
        "IPAM": network.ipam_json(),
        "Internal": network.internal,
        "Attachable": network.attachable,
        "Ingress": false,
        "ConfigFrom": { "Network": "" },
        "ConfigOnly": false,
        "Containers": attached,
        "Options": options,
        "Labels": network.labels,
    })
}

/// The `volume inspect` object (measured key order).
pub(crate) fn volume_json(v: &objects::Volume) -> Value {
    json!({
        "CreatedAt": crate::FIXED_TIME,
        "Driver": v.driver,
        "Labels": if v.labels.is_empty() { Value::Null } else { json!(v.labels) },
        "Mountpoint": mountpoint(&v.name),
        "Name": v.name,
        "Options": if v.options.is_empty() { Value::Null } else { json!(v.options) },
        "Scope": "local",
    })
}

/// Where a volume's data lives on the daemon.
pub(crate) fn mountpoint(name: &str) -> String {
    format!("/var/lib/docker/volumes/{name}/_data")
}
