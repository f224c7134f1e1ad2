//! Published ports: `-p` parsing (docker's `nat.ParsePortSpec` subset), the records kept
//! for a container, and the shapes `inspect`, `port` and `ps` print.

use std::collections::BTreeMap;
use std::net::TcpListener;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One `-p` request, as `HostConfig.PortBindings` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRequest {
    /// `80/tcp`.
    pub container_port: String,
    /// `""` (all interfaces) or an address.
    pub host_ip: String,
    /// `""` (not given), `"0"` or a number.
    pub host_port: String,
}

/// A binding in force while the container runs (`NetworkSettings.Ports`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub container_port: String,
    pub host_ip: String,
    pub host_port: u16,
}

/// Why a `-p` value was rejected; the text is what docker prints after `docker: `, and
/// the part of the value it names (`xyz` in `invalid proto: xyz`).
#[derive(Debug, PartialEq, Eq)]
pub struct PortSpecError(pub String, pub String);

fn port_error(what: &str, part: &str) -> PortSpecError {
    PortSpecError(format!("{what}: {part}"), part.to_string())
}

fn valid_port(text: &str, allow_zero: bool) -> bool {
    match text.parse::<u32>() {
        Ok(port) => port <= 65535 && (allow_zero || port > 0),
        Err(_) => false,
    }
}

/// Parses `C`, `C/proto`, `H:C`, `IP:H:C`, `IP::C` (no ranges).
pub fn parse_publish(spec: &str) -> Result<PortRequest, PortSpecError> {
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((rest, proto)) => (rest, proto),
        None => (spec, "tcp"),
    };
    if !matches!(proto, "tcp" | "udp" | "sctp") {
        return Err(port_error("invalid proto", proto));
    }
    // An IPv6 host address is bracketed: [::1]:8080:80.
    let (host_ip, rest) = match rest.strip_prefix('[') {
        Some(after) => match after.split_once("]:") {
            Some((ip, rest)) => (ip.to_string(), rest.to_string()),
            None => return Err(port_error("invalid ip address", rest)),
        },
        None => (String::new(), rest.to_string()),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host_port, container_port) = match (host_ip.is_empty(), parts.as_slice()) {
        (true, [container]) => (String::new(), String::new(), *container),
        (true, [host, container]) => (String::new(), host.to_string(), *container),
        (true, [ip, host, container]) => (ip.to_string(), host.to_string(), *container),
        (false, [host, container]) => (host_ip.clone(), host.to_string(), *container),
        _ => return Err(port_error("invalid port format", spec)),
    };
    if !valid_port(container_port, false) {
        return Err(port_error("invalid containerPort", container_port));
    }
    if !host_port.is_empty() && !valid_port(&host_port, true) {
        return Err(port_error("invalid hostPort", &host_port));
    }
    if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
        return Err(port_error("invalid ip address", &ip));
    }
    Ok(PortRequest {
        container_port: format!("{container_port}/{proto}"),
        host_ip: ip,
        host_port,
    })
}

/// `8080` → `8080/tcp`; keeps an explicit protocol.
pub fn normalize_port(port: &str) -> String {
    if port.contains('/') {
        port.to_string()
    } else {
        format!("{port}/tcp")
    }
}

/// The number part of `8080/tcp`.
pub fn port_number(port: &str) -> Option<u16> {
    port.split('/').next().and_then(|p| p.parse().ok())
}

/// The address a fake binding really listens on: loopback for "all interfaces", so the
/// fake never exposes anything beyond this machine (documented deviation).
pub fn listen_address(host_ip: &str) -> String {
    match host_ip {
        "" | "0.0.0.0" => "127.0.0.1".to_string(),
        "::" => "::1".to_string(),
        other => other.to_string(),
    }
}

/// How docker names a binding's address in errors: `0.0.0.0` for all interfaces.
pub fn display_ip(host_ip: &str) -> &str {
    if host_ip.is_empty() {
        "0.0.0.0"
    } else {
        host_ip
    }
}

/// Binds a TCP listener for a request (port 0 or none → a free port).
pub fn bind(request: &PortRequest) -> std::io::Result<TcpListener> {
    let port: u16 = request.host_port.parse().unwrap_or(0);
    let address = listen_address(&request.host_ip);
    let address = if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    };
    TcpListener::bind(address)
}

/// `HostConfig.PortBindings`.
pub fn bindings_json(requests: &[PortRequest]) -> Value {
    let mut map: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for request in requests {
        map.entry(request.container_port.clone())
            .or_default()
            .push(json!({"HostIp": request.host_ip, "HostPort": request.host_port}));
    }
    json!(map)
}

/// Docker reports an all-interfaces binding twice: IPv4 and IPv6 (measured).
fn expanded(published: &Published) -> Vec<(String, u16)> {
    if published.host_ip.is_empty() {
        vec![
            ("0.0.0.0".to_string(), published.host_port),
            ("::".to_string(), published.host_port),
        ]
    } else {
        vec![(published.host_ip.clone(), published.host_port)]
    }
}

/// `NetworkSettings.Ports`: every exposed port, `null` when not published.
pub fn ports_json(exposed: &[String], published: &[Published], running: bool) -> Value {
    if !running {
        return json!({});
    }
    let mut map: BTreeMap<String, Value> = BTreeMap::new();
    for port in exposed {
        map.insert(port.clone(), Value::Null);
    }
    for binding in published {
        let entry = map
            .entry(binding.container_port.clone())
            .or_insert_with(|| json!([]));
        if entry.is_null() {
            *entry = json!([]);
        }
        if let Value::Array(items) = entry {
            for (ip, port) in expanded(binding) {
                items.push(json!({"HostIp": ip, "HostPort": port.to_string()}));
            }
        }
    }
    json!(map)
}

fn bracketed(ip: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    }
}

/// `docker port` lines: `80/tcp -> 0.0.0.0:8080` (all) or `0.0.0.0:8080` (one port).
pub fn port_lines(published: &[Published], only: Option<&str>) -> Vec<String> {
    let mut sorted: Vec<&Published> = published.iter().collect();
    sorted.sort_by_key(|p| (port_number(&p.container_port), p.container_port.clone()));
    let mut lines = Vec::new();
    for binding in sorted {
        if only.is_some_and(|o| o != binding.container_port) {
            continue;
        }
        for (ip, port) in expanded(binding) {
            let address = format!("{}:{port}", bracketed(&ip));
            lines.push(match only {
                Some(_) => address,
                None => format!("{} -> {address}", binding.container_port),
            });
        }
    }
    lines
}

/// `ps` PORTS: unpublished exposed ports, then `IP:H->C` for each binding.
pub fn ps_ports(exposed: &[String], published: &[Published]) -> String {
    let mut parts: Vec<String> = exposed
        .iter()
        .filter(|port| !published.iter().any(|p| &p.container_port == *port))
        .cloned()
        .collect();
    let mut sorted: Vec<&Published> = published.iter().collect();
    sorted.sort_by_key(|p| (port_number(&p.container_port), p.container_port.clone()));
    for binding in sorted {
        for (ip, port) in expanded(binding) {
            parts.push(format!(
                "{}:{port}->{}",
                bracketed(&ip),
                binding.container_port
            ));
        }
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(c: &str, ip: &str, h: &str) -> PortRequest {
        PortRequest {
            container_port: c.into(),
            host_ip: ip.into(),
            host_port: h.into(),
        }
    }

    #[test]
    fn parses_docker_forms() {
        assert_eq!(parse_publish("80"), Ok(request("80/tcp", "", "")));
        assert_eq!(parse_publish("0:83/udp"), Ok(request("83/udp", "", "0")));
        assert_eq!(parse_publish("8080:80"), Ok(request("80/tcp", "", "8080")));
        assert_eq!(
            parse_publish("127.0.0.1:8081:81"),
            Ok(request("81/tcp", "127.0.0.1", "8081"))
        );
        assert_eq!(
            parse_publish("127.0.0.1::81"),
            Ok(request("81/tcp", "127.0.0.1", ""))
        );
        assert_eq!(
            parse_publish("notaport"),
            Err(PortSpecError(
                "invalid containerPort: notaport".into(),
                "notaport".into()
            ))
        );
        assert_eq!(
            parse_publish("99999:80"),
            Err(PortSpecError(
                "invalid hostPort: 99999".into(),
                "99999".into()
            ))
        );
    }

    #[test]
    fn shapes_match_measurements() {
        let published = vec![
            Published {
                container_port: "80/tcp".into(),
                host_ip: String::new(),
                host_port: 18080,
            },
            Published {
                container_port: "81/tcp".into(),
                host_ip: "127.0.0.1".into(),
                host_port: 18081,
            },
        ];
        let exposed = vec!["80/tcp".to_string(), "81/tcp".into(), "90/tcp".into()];
        assert_eq!(
            crate::gojson::compact(&ports_json(&exposed, &published, true)),
            r#"{"80/tcp":[{"HostIp":"0.0.0.0","HostPort":"18080"},{"HostIp":"::","HostPort":"18080"}],"81/tcp":[{"HostIp":"127.0.0.1","HostPort":"18081"}],"90/tcp":null}"#
        );
        assert_eq!(
            port_lines(&published, None),
            vec![
                "80/tcp -> 0.0.0.0:18080",
                "80/tcp -> [::]:18080",
                "81/tcp -> 127.0.0.1:18081"
            ]
        );
        assert_eq!(
            port_lines(&published, Some("80/tcp")),
            vec!["0.0.0.0:18080", "[::]:18080"]
        );
        assert_eq!(
            ps_ports(&exposed, &published),
            "90/tcp, 0.0.0.0:18080->80/tcp, [::]:18080->80/tcp, 127.0.0.1:18081->81/tcp"
        );
    }
}
