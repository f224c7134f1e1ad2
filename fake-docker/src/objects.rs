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
}

/// A volume (named, anonymous, or created by `-v NAME:/path`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    pub driver: String,
    pub labels: BTreeMap<String, String>,
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
        };
        assert_eq!(add_network(&state, net.clone()).ok(), Some(Ok(())));
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
        };
        assert!(ensure_volume(&state, volume).is_ok());
        assert_eq!(volumes(&state).unwrap_or_default().len(), 1);
        assert!(remove_volume(&state, "v1").is_ok());
        assert!(volumes(&state).unwrap_or_default().is_empty());
        assert!(valid_volume_name("fid.vol_1") && !valid_volume_name("bad name"));
    }
}
