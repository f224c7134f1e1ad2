//! HTTP routes a fake container serves on its published host ports: a real TCP listener,
//! so probes are real network calls. Also answers in-process self-probes (`http_get`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use serde::Deserialize;

use crate::conditions::{Scalar, When, when_holds};
use crate::expand::{Scope, expand};

/// `http:` of an image: the routes served on one container port.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpService {
    /// Container port (tcp), e.g. `8080` or `"${WEB_PORT:-8080}"` (expanded with the
    /// container's environment).
    pub port: Scalar,
    #[serde(default)]
    pub routes: Vec<Route>,
    /// A line written to the container's stderr log for each request; `${METHOD}`,
    /// `${PATH}` and `${STATUS}` are set.
    #[serde(default)]
    pub access_log: Option<String>,
}

impl HttpService {
    /// The container port, expanded with `vars`.
    pub fn port(&self, vars: &BTreeMap<String, String>) -> Option<u16> {
        expand(&self.port.text(), &Scope { vars, args: &[] })
            .trim()
            .parse()
            .ok()
    }
}

/// One route; strings are expanded with the container's environment.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Only when this holds (`{ var: WEB_HEALTH, equals: ok }`).
    #[serde(default)]
    pub when: Option<When>,
    /// `GET` by default; `ANY` matches every method.
    #[serde(default = "default_method")]
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub status: Option<Scalar>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A text body (sent as `text/plain; charset=utf-8`).
    #[serde(default)]
    pub body: Option<String>,
    /// A JSON body (sent compact, as `application/json`).
    #[serde(default)]
    pub json: Option<serde_json::Value>,
    /// Seconds to wait before answering.
    #[serde(default)]
    pub delay: Option<f64>,
    /// Lines written to the container's stderr log when this route answers.
    #[serde(default)]
    pub log: Vec<String>,
}

fn default_method() -> String {
    "GET".to_string()
}

/// A response, before it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Lines for the container's stderr log.
    pub log: Vec<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub delay: Duration,
}

/// The reason phrase for common statuses.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

fn text_response(status: u16, body: &str) -> Response {
    Response {
        status,
        log: Vec::new(),
        headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
        body: body.as_bytes().to_vec(),
        delay: Duration::ZERO,
    }
}

/// Answers `method path` from `routes` (query strings ignored); unknown path → 404 like
/// Go's `http.NotFound`, known path with another method → 405.
pub fn respond(
    routes: &[Route],
    method: &str,
    path: &str,
    vars: &BTreeMap<String, String>,
) -> Response {
    let path = path.split('?').next().unwrap_or(path);
    let scope = Scope { vars, args: &[] };
    let live: Vec<&Route> = routes
        .iter()
        .filter(|r| r.when.as_ref().is_none_or(|w| when_holds(w, vars, &[])))
        .collect();
    let mut same_path: Vec<&Route> = live
        .iter()
        .copied()
        .filter(|r| expand(&r.path, &scope) == path)
        .collect();
    if same_path.is_empty() {
        // `path: "*"` answers every path no other route has.
        same_path = live.iter().copied().filter(|r| r.path == "*").collect();
    }
    let method_matches = |r: &&Route| {
        r.method.eq_ignore_ascii_case("ANY")
            || r.method.eq_ignore_ascii_case(method)
            || (method.eq_ignore_ascii_case("HEAD") && r.method.eq_ignore_ascii_case("GET"))
    };
    let Some(route) = same_path.iter().copied().find(method_matches) else {
        return if same_path.is_empty() {
            text_response(404, "404 page not found\n")
        } else {
            text_response(405, "Method Not Allowed\n")
        };
    };
    let status = route
        .status
        .as_ref()
        .map(|s| expand(&s.text(), &scope))
        .and_then(|s| s.trim().parse::<u16>().ok())
        .unwrap_or(200);
    let (content_type, body) = match (&route.json, &route.body) {
        (Some(value), _) => (
            "application/json",
            expand(&value.to_string(), &scope).into_bytes(),
        ),
        (None, Some(text)) => (
            "text/plain; charset=utf-8",
            expand(text, &scope).into_bytes(),
        ),
        (None, None) => ("text/plain; charset=utf-8", Vec::new()),
    };
    let mut headers = vec![("Content-Type".to_string(), content_type.to_string())];
    for (name, value) in &route.headers {
        let value = expand(value, &scope);
        match headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(existing) => existing.1 = value,
            None => headers.push((name.clone(), value)),
        }
    }
    Response {
        status,
        log: route.log.iter().map(|l| expand(l, &scope)).collect(),
        headers,
        body,
        delay: Duration::from_secs_f64(route.delay.unwrap_or(0.0).max(0.0)),
    }
}

/// Where request log lines go (the container's log).
pub type LogSink = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// Serves `service` on `listener` until the process ends (one thread per connection).
pub fn serve(
    listener: TcpListener,
    service: HttpService,
    vars: BTreeMap<String, String>,
    log: LogSink,
) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let service = service.clone();
            let vars = vars.clone();
            let log = log.clone();
            std::thread::spawn(move || {
                // A client that goes away mid-request is not our problem.
                let _ = handle(stream, &service, &vars, &log);
            });
        }
    });
}

/// The header of an answer to a request a replayed service's recording does not have.
pub const UNRECORDED_HEADER: &str = "X-Fake-Docker-Unrecorded";

/// Serves the HTTP exchanges recorded for container port `port` on `listener` (a
/// replayed service): a recorded request gets its recorded answer; any other gets 501
/// with [`UNRECORDED_HEADER`] and a body saying so, never a guess.
pub fn serve_recorded(
    listener: TcpListener,
    port: u16,
    exchanges: Vec<dockproof_recording::Exchange>,
    recording_dir: std::path::PathBuf,
) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let exchanges = exchanges.clone();
            let dir = recording_dir.clone();
            std::thread::spawn(move || {
                let _ = handle_with(stream, |method, target, body| {
                    recorded_answer(&exchanges, &dir, port, method, target, body)
                });
            });
        }
    });
}

/// The recorded answer to `method target` with `body`, or the refusal.
pub fn recorded_answer(
    exchanges: &[dockproof_recording::Exchange],
    dir: &std::path::Path,
    port: u16,
    method: &str,
    target: &str,
    body: &[u8],
) -> Response {
    let request_sha256 = (!body.is_empty()).then(|| dockproof_recording::sha256_hex(body));
    let found = exchanges
        .iter()
        .find(|e| e.answers(port, method, target, request_sha256.as_deref()));
    let refusal = |why: String| Response {
        status: 501,
        log: Vec::new(),
        headers: vec![
            ("Content-Type".into(), "text/plain; charset=utf-8".into()),
            (UNRECORDED_HEADER.into(), "true".into()),
        ],
        body: why.into_bytes(),
        delay: Duration::ZERO,
    };
    let Some(exchange) = found else {
        let known: Vec<String> = exchanges
            .iter()
            .filter(|e| e.port == port)
            .map(|e| format!("{} {}", e.method, e.path))
            .collect();
        let body_note = if request_sha256.is_some() {
            " with this request body"
        } else {
            ""
        };
        return refusal(format!(
            "no recording matches this request: {method} {target}{body_note} on container port {port} was not made when the service was recorded (recorded: {}); re-record it on a real daemon with `dockproof record SCENARIO`",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        ));
    };
    match exchange.body.bytes(dir) {
        Ok(bytes) => Response {
            status: exchange.status,
            log: Vec::new(),
            headers: exchange
                .headers
                .iter()
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
            body: bytes,
            delay: Duration::ZERO,
        },
        Err(error) => refusal(format!("no recording matches this request: {error}")),
    }
}

fn handle(
    stream: TcpStream,
    service: &HttpService,
    vars: &BTreeMap<String, String>,
    log: &LogSink,
) -> std::io::Result<()> {
    handle_with(stream, |method, target, _body| {
        let response = respond(&service.routes, method, target, vars);
        std::thread::sleep(response.delay);
        for line in &response.log {
            log(line);
        }
        if let Some(format) = &service.access_log {
            let mut vars = vars.clone();
            vars.insert("METHOD".into(), method.to_string());
            vars.insert(
                "PATH".into(),
                target.split('?').next().unwrap_or(target).to_string(),
            );
            vars.insert("STATUS".into(), response.status.to_string());
            log(&expand(
                format,
                &Scope {
                    vars: &vars,
                    args: &[],
                },
            ));
        }
        response
    })
}

/// Reads one request (headers and body bounded) and writes `answer(method, target,
/// body)`'s response.
fn handle_with(
    stream: TcpStream,
    answer: impl FnOnce(&str, &str, &[u8]) -> Response,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return write_response(stream, &text_response(400, "400 Bad Request\n"), false);
    };
    let mut content_length = 0usize;
    let mut header_bytes = 0usize;
    loop {
        let mut line = String::new();
        let read = reader.read_line(&mut line)?;
        header_bytes += read;
        if read == 0 || line == "\r\n" || line == "\n" || header_bytes > 64 * 1024 {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            content_length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; content_length.min(1 << 20)];
    reader.read_exact(&mut body)?;
    let response = answer(method, target, &body);
    write_response(stream, &response, method.eq_ignore_ascii_case("HEAD"))
}

fn write_response(mut stream: TcpStream, response: &Response, head: bool) -> std::io::Result<()> {
    let mut text = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        response.status,
        reason(response.status),
        response.body.len()
    );
    for (name, value) in &response.headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    let mut bytes = text.into_bytes();
    if !head {
        bytes.extend_from_slice(&response.body);
    }
    stream.write_all(&bytes)?;
    stream.flush()
}

/// Splits `http://host:port/path` into port and path (port 80 when absent).
pub fn parse_url(url: &str) -> Option<(u16, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(index) => (&rest[..index], rest[index..].to_string()),
        None => (rest, "/".to_string()),
    };
    let port = match authority.rsplit_once(':') {
        Some((_, port)) => port.parse().ok()?,
        None => 80,
    };
    Some((port, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Vec<Route> {
        serde_saphyr::from_str(
            "- { path: /health, json: { status: ok } }\n- { method: POST, path: /jobs, status: 201, body: \"made ${X}\" }\n- { path: /bad, status: \"${CODE:-500}\", headers: { X-A: b } }\n",
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn routes_answer() {
        let mut vars = BTreeMap::new();
        vars.insert("X".to_string(), "it".to_string());
        let ok = respond(&routes(), "GET", "/health?x=1", &vars);
        assert_eq!(ok.status, 200);
        assert_eq!(ok.body, br#"{"status":"ok"}"#);
        assert_eq!(ok.headers[0].1, "application/json");
        let made = respond(&routes(), "POST", "/jobs", &vars);
        assert_eq!((made.status, made.body.as_slice()), (201, &b"made it"[..]));
        assert_eq!(respond(&routes(), "GET", "/jobs", &vars).status, 405);
        assert_eq!(respond(&routes(), "GET", "/nope", &vars).status, 404);
        let bad = respond(&routes(), "GET", "/bad", &vars);
        assert_eq!(bad.status, 500);
        assert!(bad.headers.contains(&("X-A".to_string(), "b".to_string())));
    }

    /// A replayed service answers exactly its recorded requests (body included) and
    /// refuses any other with the marker header, naming what was recorded.
    #[test]
    fn recorded_answers_and_refusals() {
        let exchange = |method: &str, path: &str, body: Option<&[u8]>, status: u16| {
            dockproof_recording::Exchange {
                port: 8080,
                method: method.into(),
                path: path.into(),
                request_sha256: body.map(dockproof_recording::sha256_hex),
                status,
                headers: [("content-type".to_string(), "text/plain".to_string())].into(),
                body: dockproof_recording::Content::Inline {
                    text: format!("{method} {path}"),
                },
            }
        };
        let exchanges = vec![
            exchange("GET", "/items", None, 200),
            exchange("POST", "/jobs", Some(b"{\"a\":1}"), 201),
        ];
        let dir = std::path::Path::new("/nonexistent");
        let got = recorded_answer(&exchanges, dir, 8080, "GET", "/items", b"");
        assert_eq!((got.status, got.body.as_slice()), (200, &b"GET /items"[..]));
        let made = recorded_answer(&exchanges, dir, 8080, "POST", "/jobs", b"{\"a\":1}");
        assert_eq!(made.status, 201);
        for (port, method, path, body) in [
            (8080, "POST", "/jobs", &b"{\"a\":2}"[..]),
            (8080, "GET", "/items?x=1", &b""[..]),
            (9090, "GET", "/items", &b""[..]),
            (8080, "DELETE", "/items", &b""[..]),
        ] {
            let refused = recorded_answer(&exchanges, dir, port, method, path, body);
            assert_eq!(refused.status, 501, "{method} {path}");
            assert!(
                refused
                    .headers
                    .iter()
                    .any(|(name, _)| name == UNRECORDED_HEADER)
            );
            let text = String::from_utf8_lossy(&refused.body).into_owned();
            assert!(text.contains("no recording matches this request"), "{text}");
        }
    }

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("http://localhost:8080/health"),
            Some((8080, "/health".to_string()))
        );
        assert_eq!(parse_url("http://x"), Some((80, "/".to_string())));
        assert_eq!(parse_url("ftp://x"), None);
    }
}
