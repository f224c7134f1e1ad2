//! Host ports: is one free, and if not, who holds it (from /proc on Linux).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};

/// Whether `port` can be bound on `ip` right now.
pub fn is_free(ip: IpAddr, port: u16) -> bool {
    TcpListener::bind(SocketAddr::new(ip, port)).is_ok()
}

/// The address to probe for a publish on `host_ip` (all addresses when unset).
pub fn probe_address(host_ip: Option<&str>) -> IpAddr {
    host_ip
        .and_then(|ip| ip.parse().ok())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// Who listens on TCP `port`: `name (pid N)`, when /proc tells.
pub fn holder(port: u16) -> Option<String> {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return None;
    }
    let processes = std::fs::read_dir("/proc").ok()?;
    for process in processes.flatten() {
        let pid = process.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|byte| byte.is_ascii_digit()) {
            continue;
        }
        let Ok(descriptors) = std::fs::read_dir(process.path().join("fd")) else {
            continue;
        };
        for descriptor in descriptors.flatten() {
            let Ok(target) = std::fs::read_link(descriptor.path()) else {
                continue;
            };
            let target = target.to_string_lossy();
            let held = target
                .strip_prefix("socket:[")
                .and_then(|rest| rest.strip_suffix(']'));
            if held.is_some_and(|inode| inodes.iter().any(|wanted| wanted == inode)) {
                let name = std::fs::read_to_string(process.path().join("comm")).unwrap_or_default();
                return Some(format!("{} (pid {pid})", name.trim()));
            }
        }
    }
    None
}

/// Socket inodes listening on `port`, from /proc/net/tcp and tcp6.
fn listening_inodes(port: u16) -> Vec<String> {
    const LISTEN: &str = "0A";
    let wanted = format!("{port:04X}");
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 10 || fields[3] != LISTEN {
                continue;
            }
            if fields[1].rsplit(':').next() == Some(wanted.as_str()) {
                inodes.push(fields[9].to_owned());
            }
        }
    }
    inodes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_port_is_taken_and_its_holder_found() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(!is_free(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
        let holder = holder(port).expect("this test process holds the port");
        assert!(
            holder.contains(&format!("pid {}", std::process::id())),
            "{holder}"
        );
        drop(listener);
        assert!(is_free(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
}
