//! Where the daemon is, seen from dockproof, and so where a port it publishes is reached:
//! on this machine for a `unix://` daemon, at the host of a `tcp://` address, and through
//! a local forward over the ssh connection for an `ssh://` one (never by assuming the
//! remote port is open to the world). A port published on all addresses (`0.0.0.0`, `::`,
//! as `docker port` shows it) is never dialled as such: it stands for the daemon's host.

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::IpAddr;

use tokio::sync::{Mutex, OnceCell};

use super::BackendError;
use super::ssh::{Master, SshError, SshTarget};

/// Which machine the daemon runs on, as its address says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonHost {
    /// A unix socket (or no address): this machine.
    Local,
    /// `tcp://HOST:PORT`: the machine at HOST.
    Tcp { host: String },
    /// `ssh://…`: the machine at the other end of the ssh connection.
    Ssh(SshTarget),
}

/// Why a published port cannot be reached from here.
#[derive(Debug, thiserror::Error)]
pub enum ReachError {
    #[error(
        "the daemon published port {port} on {binding}, its own loopback, which cannot be reached from this machine over {address}; publish on all addresses (e.g. `{port}:CONTAINER_PORT` or `0:CONTAINER_PORT`) or reach the daemon over ssh://, whose forwards reach its loopback"
    )]
    RemoteLoopback {
        binding: String,
        port: u16,
        address: String,
    },
    #[error(transparent)]
    Ssh(#[from] SshError),
}

impl ReachError {
    /// As a backend error: an unreachable binding is the scenario's configuration
    /// (`config_invalid`), a failed forward is the daemon's reachability.
    pub fn into_backend(self) -> BackendError {
        let error = self;
        match error {
            ReachError::RemoteLoopback { .. } => BackendError::Config {
                message: error.to_string(),
            },
            ReachError::Ssh(error) => BackendError::DaemonUnavailable {
                message: error.to_string(),
            },
        }
    }
}

/// Where to connect to reach a published port: a host (an IP address or name) and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    pub host: String,
    pub port: u16,
}

impl DaemonHost {
    /// The daemon at `address` (`DOCKER_HOST` syntax; empty or `unix://`/`npipe://` is this machine).
    pub fn from_address(address: &str) -> DaemonHost {
        if let Some(rest) = address.strip_prefix("tcp://") {
            let authority = rest.split('/').next().unwrap_or(rest);
            let host = match authority.strip_prefix('[') {
                Some(bracketed) => bracketed.split(']').next().unwrap_or(bracketed),
                None => authority.split(':').next().unwrap_or(authority),
            };
            if !host.is_empty() {
                return DaemonHost::Tcp {
                    host: host.to_owned(),
                };
            }
        }
        if address.starts_with("ssh://")
            && let Ok(target) = SshTarget::parse(address)
        {
            return DaemonHost::Ssh(target);
        }
        DaemonHost::Local
    }

    /// The daemon a docker CLI run with `env` added to ours reaches: `DOCKER_HOST` (in
    /// `env`, else ours), else the context (`DOCKER_CONTEXT` in `env`, else ours, else the
    /// config's current context) resolved from the docker config dir, else this machine.
    pub fn for_cli(env: &[(OsString, OsString)]) -> DaemonHost {
        cli_address(env).map_or(DaemonHost::Local, |address| {
            DaemonHost::from_address(&address)
        })
    }

    /// The host its published ports are reached at from here, before any is known
    /// (`{{ service.NAME.host }}` of a service that publishes nothing): its host for
    /// `tcp://`, this machine otherwise (ssh forwards listen here).
    pub fn host_here(&self) -> String {
        match self {
            DaemonHost::Tcp { host } => host.clone(),
            DaemonHost::Local | DaemonHost::Ssh(_) => "127.0.0.1".to_owned(),
        }
    }

    /// Whether the daemon runs on this machine (by its address), so this machine's ports are its ports.
    pub fn is_local(&self) -> bool {
        matches!(self, DaemonHost::Local)
    }

    /// The address, for messages.
    fn describe(&self) -> String {
        match self {
            DaemonHost::Local => "a local socket".to_owned(),
            DaemonHost::Tcp { host } => format!("tcp:// (host {host})"),
            DaemonHost::Ssh(target) => target.url.clone(),
        }
    }
}

/// `currentContext` of the docker config (`config.json`), if set.
/// The address a docker CLI run with `env` added to ours talks to, as [`DaemonHost::for_cli`]
/// resolves it; `None` for the CLI's default (the local socket).
fn cli_address(env: &[(OsString, OsString)]) -> Option<String> {
    let variable = |name: &str| {
        env.iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.to_string_lossy().into_owned())
            .or_else(|| std::env::var(name).ok())
            .filter(|value| !value.is_empty())
    };
    if let Some(address) = variable("DOCKER_HOST") {
        return Some(address);
    }
    let config = super::context::config_dir();
    let context = variable("DOCKER_CONTEXT").or_else(|| current_context(&config));
    context
        .and_then(|name| super::context::resolve(&name, &config).ok().flatten())
        .map(|endpoint| endpoint.host)
}

/// The docker CLI's and the Engine API's default daemon address.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// The unix socket a docker CLI run with `env` added to ours talks to, when its address
/// is one (`unix://PATH`, or nothing set: the default socket); `None` for tcp, ssh and
/// anything else.
pub fn cli_unix_socket(env: &[(OsString, OsString)]) -> Option<std::path::PathBuf> {
    unix_socket(cli_address(env).as_deref())
}

/// The socket path of a `unix://PATH` address (`None`: the default socket).
pub fn unix_socket(address: Option<&str>) -> Option<std::path::PathBuf> {
    match address {
        None => Some(std::path::PathBuf::from(DEFAULT_SOCKET)),
        Some(address) => address
            .strip_prefix("unix://")
            .filter(|path| path.starts_with('/'))
            .map(std::path::PathBuf::from),
    }
}

fn current_context(config: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(config.join("config.json")).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value
        .get("currentContext")
        .and_then(serde_json::Value::as_str)
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
}

/// Whether `binding` (a `HostIp` from inspect) stands for every address of the daemon's host.
fn is_unspecified(binding: &str) -> bool {
    binding.is_empty()
        || binding
            .trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_unspecified())
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Reaches the daemon's published ports from this machine, opening (and keeping, per
/// binding) ssh forwards when the daemon is behind ssh.
#[derive(Debug)]
pub struct PortReach {
    host: DaemonHost,
    /// This reach's own ssh connection, opened on first use, when no other is lent.
    master: OnceCell<Master>,
    /// (remote host, remote port) → local port, for forwards already made.
    forwards: Mutex<HashMap<(String, u16), u16>>,
}

impl PortReach {
    pub fn new(host: DaemonHost) -> PortReach {
        PortReach {
            host,
            master: OnceCell::new(),
            forwards: Mutex::new(HashMap::new()),
        }
    }

    /// Where the daemon is.
    pub fn daemon_host(&self) -> &DaemonHost {
        &self.host
    }

    /// Where to connect for the port the daemon published as `binding:port` (`HostIp`,
    /// `HostPort` of inspect). Over ssh, `lent` is an open connection to the same host to
    /// forward over (the API backend's tunnel); without one, this opens its own.
    pub async fn reach(
        &self,
        binding: &str,
        port: u16,
        lent: Option<&Master>,
    ) -> Result<Reach, ReachError> {
        let binding = binding.trim_matches(['[', ']']);
        match &self.host {
            DaemonHost::Local => Ok(Reach {
                host: if is_unspecified(binding) {
                    "127.0.0.1".to_owned()
                } else {
                    binding.to_owned()
                },
                port,
            }),
            DaemonHost::Tcp { host } => {
                if is_unspecified(binding) {
                    Ok(Reach {
                        host: host.clone(),
                        port,
                    })
                } else if is_loopback(binding) && !is_loopback(host) {
                    Err(ReachError::RemoteLoopback {
                        binding: binding.to_owned(),
                        port,
                        address: self.host.describe(),
                    })
                } else {
                    Ok(Reach {
                        host: binding.to_owned(),
                        port,
                    })
                }
            }
            DaemonHost::Ssh(target) => {
                // The remote end of the forward is the daemon's host as it sees itself.
                let remote = if is_unspecified(binding) {
                    "127.0.0.1"
                } else {
                    binding
                };
                let mut forwards = self.forwards.lock().await;
                if let Some(local) = forwards.get(&(remote.to_owned(), port)) {
                    return Ok(Reach {
                        host: "127.0.0.1".to_owned(),
                        port: *local,
                    });
                }
                let master = match lent {
                    Some(master) => master,
                    None => {
                        self.master
                            .get_or_try_init(|| Master::open(target.clone()))
                            .await?
                    }
                };
                let local = master.forward(remote, port).await?;
                forwards.insert((remote.to_owned(), port), local);
                Ok(Reach {
                    host: "127.0.0.1".to_owned(),
                    port: local,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daemon_host_comes_from_its_address() {
        assert_eq!(DaemonHost::from_address(""), DaemonHost::Local);
        assert_eq!(
            DaemonHost::from_address("unix:///var/run/docker.sock"),
            DaemonHost::Local
        );
        assert_eq!(
            DaemonHost::from_address("tcp://169.254.3.1:2376"),
            DaemonHost::Tcp {
                host: "169.254.3.1".into()
            }
        );
        assert_eq!(
            DaemonHost::from_address("tcp://[fd00::5]:2375/"),
            DaemonHost::Tcp {
                host: "fd00::5".into()
            }
        );
        assert_eq!(
            DaemonHost::from_address("tcp://docker.example:2375"),
            DaemonHost::Tcp {
                host: "docker.example".into()
            }
        );
        assert!(matches!(
            DaemonHost::from_address("ssh://ops@worker-1:2200"),
            DaemonHost::Ssh(target) if target.host == "worker-1"
        ));
        let env = [("DOCKER_HOST".into(), "tcp://10.1.2.3:2375".into())];
        assert_eq!(
            DaemonHost::for_cli(&env),
            DaemonHost::Tcp {
                host: "10.1.2.3".into()
            }
        );
    }

    fn reach(host: &str, binding: &str, port: u16) -> Result<Reach, ReachError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(PortReach::new(DaemonHost::from_address(host)).reach(binding, port, None))
    }

    #[test]
    fn published_ports_are_reached_at_the_daemons_host() {
        let at = |host: &str, binding: &str| reach(host, binding, 49153).map(|reach| reach.host);
        // Local: all addresses and loopback are 127.0.0.1 here; a specific address is itself.
        assert_eq!(
            at("unix:///var/run/docker.sock", "0.0.0.0").unwrap(),
            "127.0.0.1"
        );
        assert_eq!(at("", "::").unwrap(), "127.0.0.1");
        assert_eq!(at("", "").unwrap(), "127.0.0.1");
        assert_eq!(at("", "127.0.0.1").unwrap(), "127.0.0.1");
        // tcp://: `docker port`'s 0.0.0.0 is the daemon's host, never dialled as 0.0.0.0.
        assert_eq!(
            at("tcp://169.254.3.1:2375", "0.0.0.0").unwrap(),
            "169.254.3.1"
        );
        assert_eq!(at("tcp://169.254.3.1:2375", "[::]").unwrap(), "169.254.3.1");
        assert_eq!(
            at("tcp://169.254.3.1:2375", "169.254.3.1").unwrap(),
            "169.254.3.1"
        );
        // Its loopback is out of reach from another machine, and said so.
        let refused = at("tcp://169.254.3.1:2375", "127.0.0.1").unwrap_err();
        assert!(
            matches!(refused, ReachError::RemoteLoopback { .. }),
            "{refused}"
        );
        let message = refused.to_string();
        assert!(
            message.contains("127.0.0.1") && message.contains("ssh://"),
            "{message}"
        );
        assert!(matches!(
            refused.into_backend().category(),
            crate::category::Category::ConfigInvalid
        ));
        // A tcp://127.0.0.1 tunnel: the daemon's loopback bindings are ours too.
        assert_eq!(
            at("tcp://127.0.0.1:2375", "127.0.0.1").unwrap(),
            "127.0.0.1"
        );
        assert_eq!(
            reach("tcp://10.0.0.9:2375", "0.0.0.0", 8080).unwrap().port,
            8080
        );
    }
}
