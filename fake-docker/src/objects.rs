//! Networks and volumes: records kept in the state directory (`networks.json`,
//! `volumes.json`), with deterministic IDs. Mutate them with the state lock held.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::state::{StateDir, StateError};

/// A user-defined network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    pub id: String,
    pub driver: String,
    pub labels: BTreeMap<String, String>,
    pub internal: bool,
    /// The IPv4 subnet (`IPAM.Config`), e.g. `172.18.0.0/16`; empty for `host`, `none`
    /// and drivers that are not `bridge`.
    #[serde(default)]
    pub subnet: String,
    /// `--subnet` was given: `IPAM.Config` shows only what was given.
    #[serde(default)]
    pub explicit_subnet: bool,
    /// `--gateway`, when given.
    #[serde(default)]
    pub explicit_gateway: String,
    #[serde(default)]
    pub attachable: bool,
    /// `--opt` (`Options`).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

impl Network {
    /// The subnet's address and prefix length: `([172, 18, 0, 0], 16)`.
    fn subnet_parts(&self) -> Option<([u8; 4], u8)> {
        let (address, length) = self.subnet.split_once('/')?;
        let octets: Vec<u8> = address.split('.').filter_map(|o| o.parse().ok()).collect();
        let octets: [u8; 4] = octets.try_into().ok()?;
        Some((octets, length.parse().ok()?))
    }

    /// The gateway (the subnet's first address), as `IPAM.Config` and endpoints report it.
    pub fn gateway(&self) -> Option<String> {
        if !self.explicit_gateway.is_empty() {
            return Some(self.explicit_gateway.clone());
        }
        self.host_address(1)
    }

    /// The prefix length of the subnet (`IPPrefixLen`).
    pub fn prefix_len(&self) -> u8 {
        self.subnet_parts().map_or(0, |(_, length)| length)
    }

    /// The `n`th host address of the subnet (2 is the first a container gets).
    pub fn host_address(&self, n: u32) -> Option<String> {
        let ([a, b, c, d], _) = self.subnet_parts()?;
        let base = u32::from_be_bytes([a, b, c, d]);
        let [a, b, c, d] = base.checked_add(n)?.to_be_bytes();
        Some(format!("{a}.{b}.{c}.{d}"))
    }

    /// The `IPAM` object of `network inspect`, as measured (the default bridge has
    /// `Options: null`, user networks `{}`; `host` and `none` have no config).
    pub fn ipam_json(&self) -> serde_json::Value {
        let config: Vec<serde_json::Value> = if self.explicit_subnet {
            // Measured: a given subnet is shown as given, with a gateway only if one was.
            let mut entry = serde_json::Map::new();
            entry.insert("Subnet".into(), serde_json::json!(self.subnet));
            if !self.explicit_gateway.is_empty() {
                entry.insert("Gateway".into(), serde_json::json!(self.explicit_gateway));
            }
            vec![serde_json::Value::Object(entry)]
        } else {
            match self.gateway() {
                Some(gateway) => {
                    vec![serde_json::json!({ "Subnet": self.subnet, "Gateway": gateway })]
                }
                None => Vec::new(),
            }
        };
        let options = if BUILTIN_NETWORKS.iter().any(|(name, _)| *name == self.name) {
            serde_json::Value::Null
        } else {
            serde_json::json!({})
        };
        serde_json::json!({ "Driver": "default", "Options": options, "Config": config })
    }
}

/// The MAC address docker derives from a container's IPv4 address (`02:42` + its octets).
pub fn mac_address(ip: &str) -> String {
    let octets: Vec<u8> = ip.split('.').filter_map(|o| o.parse().ok()).collect();
    if octets.len() != 4 {
        return String::new();
    }
    format!(
        "02:42:{:02x}:{:02x}:{:02x}:{:02x}",
        octets[0], octets[1], octets[2], octets[3]
    )
}

/// The subnet a new bridge network gets: the daemon's default pools in order (172.17–31
/// as /16, then 192.168.0.0/16 cut in /20s), the first no network has.
pub fn next_subnet(existing: &[Network]) -> String {
    let candidates = (18..=31)
        .map(|b| format!("172.{b}.0.0/16"))
        .chain((0..16).map(|k| format!("192.168.{}.0/20", k * 16)));
    let mut candidates = candidates;
    candidates
        .find(|candidate| existing.iter().all(|n| n.subnet != *candidate))
        .unwrap_or_default()
}

/// A volume (named, anonymous, or created by `-v NAME:/path`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    pub driver: String,
    pub labels: BTreeMap<String, String>,
    /// `--opt` (`Options`).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Networks {
    networks: Vec<Network>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Volumes {
    volumes: Vec<Volume>,
}

const NETWORKS: &str = "networks.json";
const VOLUMES: &str = "volumes.json";

/// `sha256("fake-docker/<kind>/" + name)` in hex.
pub fn object_id(kind: &str, name: &str) -> String {
    hex::encode(Sha256::digest(
        format!("fake-docker/{kind}/{name}").as_bytes(),
    ))
}

/// The networks every daemon has: (name, driver).
pub const BUILTIN_NETWORKS: &[(&str, &str)] =
    &[("bridge", "bridge"), ("host", "host"), ("none", "null")];

fn builtin(name: &str, driver: &str) -> Network {
    Network {
        name: name.to_string(),
        id: object_id("network", name),
        driver: driver.to_string(),
        labels: BTreeMap::new(),
        internal: false,
        subnet: if name == "bridge" {
            "172.17.0.0/16".to_string()
        } else {
            String::new()
        },
        explicit_subnet: false,
        explicit_gateway: String::new(),
        attachable: false,
        options: BTreeMap::new(),
    }
}

/// All networks, built-in ones included, sorted by name (as `network ls` prints them).
pub fn networks(state: &StateDir) -> Result<Vec<Network>, StateError> {
    let mut all: Vec<Network> = BUILTIN_NETWORKS
        .iter()
        .map(|(name, driver)| builtin(name, driver))
        .collect();
    all.extend(state.read_doc::<Networks>(NETWORKS)?.networks);
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(all)
}

/// Finds a network by name, full ID or ID prefix; `default` is the bridge.
pub fn find_network(state: &StateDir, reference: &str) -> Result<Option<Network>, StateError> {
    let reference = if reference == "default" {
        "bridge"
    } else {
        reference
    };
    let all = networks(state)?;
    if let Some(found) = all
        .iter()
        .find(|n| n.name == reference || n.id == reference)
    {
        return Ok(Some(found.clone()));
    }
    let mut prefixed = all
        .into_iter()
        .filter(|n| !reference.is_empty() && n.id.starts_with(reference));
    Ok(match (prefixed.next(), prefixed.next()) {
        (Some(found), None) => Some(found),
        _ => None,
    })
}

/// Adds a user network; `Err(())` when the name is taken.
pub fn add_network(state: &StateDir, network: Network) -> Result<Result<(), ()>, StateError> {
    if networks(state)?.iter().any(|n| n.name == network.name) {
        return Ok(Err(()));
    }
    let mut doc = state.read_doc::<Networks>(NETWORKS)?;
    doc.networks.push(network);
    state.write_doc(NETWORKS, &doc)?;
    Ok(Ok(()))
}

/// Removes a user network by name.
pub fn remove_network(state: &StateDir, name: &str) -> Result<(), StateError> {
    let mut doc = state.read_doc::<Networks>(NETWORKS)?;
    doc.networks.retain(|n| n.name != name);
    state.write_doc(NETWORKS, &doc)
}

/// All volumes, sorted by name.
pub fn volumes(state: &StateDir) -> Result<Vec<Volume>, StateError> {
    let mut all = state.read_doc::<Volumes>(VOLUMES)?.volumes;
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(all)
}

/// Adds a volume unless one of that name exists (then it is left as it is, like docker).
pub fn ensure_volume(state: &StateDir, volume: Volume) -> Result<(), StateError> {
    let mut doc = state.read_doc::<Volumes>(VOLUMES)?;
    if doc.volumes.iter().any(|v| v.name == volume.name) {
        return Ok(());
    }
    let _ = std::fs::create_dir_all(volume_data(state, &volume.name));
    doc.volumes.push(volume);
    state.write_doc(VOLUMES, &doc)
}

/// Removes a volume record and its data.
pub fn remove_volume(state: &StateDir, name: &str) -> Result<(), StateError> {
    let mut doc = state.read_doc::<Volumes>(VOLUMES)?;
    doc.volumes.retain(|v| v.name != name);
    state.write_doc(VOLUMES, &doc)?;
    let _ = std::fs::remove_dir_all(volume_data(state, name));
    Ok(())
}

/// Where a volume's data lives.
pub fn volume_data(state: &StateDir, name: &str) -> std::path::PathBuf {
    state.root().join("volumes").join(name)
}

/// Docker's rule for local volume names.
pub fn valid_volume_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// `label=k` / `label=k=v` matching against a label map.
pub fn label_matches(labels: &BTreeMap<String, String>, filter: &str) -> bool {
    match filter.split_once('=') {
        Some((key, value)) => labels.get(key).is_some_and(|v| v == value),
        None => labels.contains_key(filter),
    }
}

/// `a=1,b=2`, as list views print labels.
pub fn labels_text(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_and_volumes_round_trip() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let state = StateDir::open(dir.path().to_path_buf()).unwrap_or_else(|e| panic!("{e}"));
        let net = Network {
            name: "n1".into(),
            id: object_id("network", "n1"),
            driver: "bridge".into(),
            labels: BTreeMap::new(),
            internal: false,
            subnet: next_subnet(&networks(&state).unwrap_or_default()),
            explicit_subnet: false,
            explicit_gateway: String::new(),
            attachable: false,
            options: BTreeMap::new(),
        };
        assert_eq!(net.subnet, "172.18.0.0/16");
        assert_eq!(net.gateway().as_deref(), Some("172.18.0.1"));
        assert_eq!(net.host_address(2).as_deref(), Some("172.18.0.2"));
        assert_eq!(mac_address("172.18.0.2"), "02:42:ac:12:00:02");
        assert_eq!(add_network(&state, net.clone()).ok(), Some(Ok(())));
        assert_eq!(
            next_subnet(&networks(&state).unwrap_or_default()),
            "172.19.0.0/16",
            "the next network gets the next free pool"
        );
        assert_eq!(add_network(&state, net).ok(), Some(Err(())));
        let names: Vec<String> = networks(&state)
            .unwrap_or_default()
            .into_iter()
            .map(|n| n.name)
            .collect();
        assert_eq!(names, ["bridge", "host", "n1", "none"]);
        assert!(find_network(&state, "default").ok().flatten().is_some());
        let volume = Volume {
            name: "v1".into(),
            driver: "local".into(),
            labels: BTreeMap::new(),
            options: BTreeMap::new(),
        };
        assert!(ensure_volume(&state, volume).is_ok());
        assert_eq!(volumes(&state).unwrap_or_default().len(), 1);
        assert!(remove_volume(&state, "v1").is_ok());
        assert!(volumes(&state).unwrap_or_default().is_empty());
        assert!(valid_volume_name("fid.vol_1") && !valid_volume_name("bad name"));
    }
}
