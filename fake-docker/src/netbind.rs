//! Host ports of a starting container: reserved in the state directory and bound for
//! real by its supervisor, which then serves the image's HTTP routes on them.

use std::net::{TcpListener, UdpSocket};

use crate::expand::env_vars;
use crate::image::Image;
use crate::objects::object_id;
use crate::ports::{self, PortRequest, Published};
use crate::state::{Container, StateDir, Status};

/// A bound host port, kept open while the container runs.
pub enum Socket {
    Tcp(TcpListener),
    /// UDP ports are held, not served.
    Udp(UdpSocket),
}

fn overlaps(a: &str, b: &str) -> bool {
    a.is_empty() || b.is_empty() || a == b || a == "0.0.0.0" || b == "0.0.0.0"
}

fn connectivity_error(container: &Container, why: String) -> String {
    format!(
        "driver failed programming external connectivity on endpoint {} ({}): {why}",
        container.name,
        object_id("endpoint", &container.name)
    )
}

fn bind_one(request: &PortRequest) -> std::io::Result<(Socket, u16)> {
    if request.container_port.ends_with("/udp") {
        let port: u16 = request.host_port.parse().unwrap_or(0);
        let socket = UdpSocket::bind((ports::listen_address(&request.host_ip).as_str(), port))?;
        let port = socket.local_addr()?.port();
        Ok((Socket::Udp(socket), port))
    } else {
        let listener = ports::bind(request)?;
        let port = listener.local_addr()?.port();
        Ok((Socket::Tcp(listener), port))
    }
}

/// Binds every `-p` of container `id` and records the bindings; the error is the
/// daemon's message (port allocated by another container, or taken on the host).
pub fn reserve(state: &StateDir, id: &str) -> Result<Vec<(Published, Socket)>, String> {
    let _lock = state.lock().map_err(|e| e.to_string())?;
    let mut container = state
        .load(id)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "the container was removed while starting".to_string())?;
    if container.port_requests.is_empty() {
        return Ok(Vec::new());
    }
    let taken: Vec<Published> = state
        .all()
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|c| c.id != id && (c.state.status == Status::Running || c.state.starting))
        .flat_map(|c| c.state.published)
        .collect();
    let mut bound = Vec::new();
    for request in &container.port_requests {
        let wanted: u16 = request.host_port.parse().unwrap_or(0);
        let shown_ip = ports::display_ip(&request.host_ip);
        if wanted != 0
            && taken
                .iter()
                .any(|p| p.host_port == wanted && overlaps(&p.host_ip, &request.host_ip))
        {
            return Err(connectivity_error(
                &container,
                format!("Bind for {shown_ip}:{wanted} failed: port is already allocated"),
            ));
        }
        let (socket, port) = bind_one(request).map_err(|e| {
            let family = if shown_ip.contains(':') {
                "tcp6"
            } else {
                "tcp4"
            };
            let why = if e.kind() == std::io::ErrorKind::AddrInUse {
                "bind: address already in use".to_string()
            } else {
                format!("bind: {e}")
            };
            connectivity_error(
                &container,
                format!(
                    "Error starting userland proxy: listen {family} {shown_ip}:{wanted}: {why}"
                ),
            )
        })?;
        bound.push((
            Published {
                container_port: request.container_port.clone(),
                host_ip: request.host_ip.clone(),
                host_port: port,
            },
            socket,
        ));
    }
    container.state.published = bound.iter().map(|(p, _)| p.clone()).collect();
    state.save(&container).map_err(|e| e.to_string())?;
    Ok(bound)
}

/// Serves the image's routes on each bound TCP port; a port without routes accepts and
/// closes connections (nothing listens behind it, like docker-proxy with no backend).
pub fn serve(
    bound: Vec<(Published, Socket)>,
    container: &Container,
    image: Option<&Image>,
    log: crate::http::LogSink,
) {
    let vars = env_vars(&container.env);
    // A replayed service answers what its recording holds, and only that.
    let recorded = container.replay.as_ref().and_then(|replay| {
        crate::replay::recorded_http(replay).map(|http| (replay.dir.clone(), http))
    });
    for (published, socket) in bound {
        match socket {
            Socket::Tcp(listener) if recorded.is_some() => {
                let port = ports::port_number(&published.container_port).unwrap_or(0);
                if let Some((dir, exchanges)) = &recorded {
                    crate::http::serve_recorded(listener, port, exchanges.clone(), dir.clone());
                }
            }
            Socket::Tcp(listener) => {
                let service = ports::port_number(&published.container_port)
                    .and_then(|port| image.and_then(|i| i.service(port, &vars)))
                    .cloned();
                match service {
                    Some(service) => {
                        crate::http::serve(listener, service, vars.clone(), log.clone())
                    }
                    None => {
                        std::thread::spawn(move || {
                            for stream in listener.incoming() {
                                drop(stream);
                            }
                        });
                    }
                }
            }
            Socket::Udp(socket) => {
                // Keep the socket open for the supervisor's lifetime.
                std::mem::forget(socket);
            }
        }
    }
}
