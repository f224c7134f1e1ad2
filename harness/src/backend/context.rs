//! Docker contexts (`docker context create …`, `DOCKER_CONTEXT`, `--context`) for the
//! Engine API backend, which has no docker CLI to resolve them. A context lives in the
//! docker config dir: `contexts/meta/<sha256(name)>/meta.json` names the endpoint
//! (`Endpoints.docker.Host`, `SkipTLSVerify`), and `contexts/tls/<sha256(name)>/docker/`
//! holds `ca.pem`, `cert.pem` and `key.pem` when it uses TLS.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Where a context points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `unix:///…`, `tcp://…`, `ssh://…`.
    pub host: String,
    /// The directory holding `ca.pem`, `cert.pem`, `key.pem`, when the context has TLS material.
    pub tls: Option<PathBuf>,
}

/// A context that cannot be used.
#[derive(Debug, Error)]
pub enum ContextError {
    #[error("docker context `{name}` not found (looked for {path})")]
    NotFound { name: String, path: PathBuf },
    #[error("docker context `{name}`: cannot read {path}: {message}")]
    Unreadable {
        name: String,
        path: PathBuf,
        message: String,
    },
    #[error("docker context `{name}` has no docker endpoint")]
    NoEndpoint { name: String },
    #[error("docker context `{name}` skips TLS verification, which dockproof does not do")]
    SkipTlsVerify { name: String },
}

#[derive(Deserialize)]
struct Meta {
    #[serde(rename = "Endpoints", default)]
    endpoints: std::collections::BTreeMap<String, MetaEndpoint>,
}

#[derive(Deserialize)]
struct MetaEndpoint {
    #[serde(rename = "Host", default)]
    host: Option<String>,
    #[serde(rename = "SkipTLSVerify", default)]
    skip_tls_verify: bool,
}

/// The docker config dir: `$DOCKER_CONFIG`, else `~/.docker`.
pub fn config_dir() -> PathBuf {
    std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| dirs::home_dir().map(|home| home.join(".docker")))
        .unwrap_or_else(|| PathBuf::from(".docker"))
}

/// Resolve context `name` in `config`; `Ok(None)` for `default` (the environment decides).
pub fn resolve(name: &str, config: &Path) -> Result<Option<Endpoint>, ContextError> {
    if name == "default" {
        return Ok(None);
    }
    let id = hex::encode(Sha256::digest(name.as_bytes()));
    let path = config
        .join("contexts")
        .join("meta")
        .join(&id)
        .join("meta.json");
    let text = std::fs::read_to_string(&path).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => ContextError::NotFound {
            name: name.to_owned(),
            path: path.clone(),
        },
        _ => ContextError::Unreadable {
            name: name.to_owned(),
            path: path.clone(),
            message: error.to_string(),
        },
    })?;
    let meta: Meta = serde_json::from_str(&text).map_err(|error| ContextError::Unreadable {
        name: name.to_owned(),
        path: path.clone(),
        message: error.to_string(),
    })?;
    let endpoint = meta
        .endpoints
        .get("docker")
        .ok_or_else(|| ContextError::NoEndpoint {
            name: name.to_owned(),
        })?;
    let host = endpoint
        .host
        .clone()
        .filter(|host| !host.is_empty())
        .ok_or_else(|| ContextError::NoEndpoint {
            name: name.to_owned(),
        })?;
    if endpoint.skip_tls_verify {
        return Err(ContextError::SkipTlsVerify {
            name: name.to_owned(),
        });
    }
    let tls = config.join("contexts").join("tls").join(&id).join("docker");
    Ok(Some(Endpoint {
        host,
        tls: tls.join("ca.pem").is_file().then_some(tls),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(config: &Path, name: &str, meta: &str, tls: bool) {
        let id = hex::encode(Sha256::digest(name.as_bytes()));
        let dir = config.join("contexts/meta").join(&id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("meta.json"), meta).unwrap();
        if tls {
            let dir = config.join("contexts/tls").join(&id).join("docker");
            std::fs::create_dir_all(&dir).unwrap();
            for file in ["ca.pem", "cert.pem", "key.pem"] {
                std::fs::write(dir.join(file), "pem").unwrap();
            }
        }
    }

    #[test]
    fn contexts_resolve_to_their_endpoint_and_tls_material() {
        let config = tempfile::tempdir().unwrap();
        context(
            config.path(),
            "staging",
            r#"{"Name":"staging","Endpoints":{"docker":{"Host":"tcp://10.0.0.5:2376","SkipTLSVerify":false}}}"#,
            true,
        );
        context(
            config.path(),
            "local",
            r#"{"Name":"local","Endpoints":{"docker":{"Host":"unix:///var/run/docker.sock"}}}"#,
            false,
        );
        context(
            config.path(),
            "lax",
            r#"{"Name":"lax","Endpoints":{"docker":{"Host":"tcp://h:2376","SkipTLSVerify":true}}}"#,
            false,
        );
        let staging = resolve("staging", config.path()).unwrap().unwrap();
        assert_eq!(staging.host, "tcp://10.0.0.5:2376");
        assert!(staging.tls.unwrap().ends_with("docker"));
        assert_eq!(
            resolve("local", config.path()).unwrap(),
            Some(Endpoint {
                host: "unix:///var/run/docker.sock".into(),
                tls: None
            })
        );
        assert_eq!(resolve("default", config.path()).unwrap(), None);
        assert!(matches!(
            resolve("nope", config.path()),
            Err(ContextError::NotFound { .. })
        ));
        assert!(matches!(
            resolve("lax", config.path()),
            Err(ContextError::SkipTlsVerify { .. })
        ));
    }
}
