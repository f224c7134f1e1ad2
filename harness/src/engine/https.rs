//! The HTTP client of `http` probes and readiness: TLS settings (a CA, a client
//! certificate, `insecure`, a server name) and a proxy, on rustls with the ring provider.
//! A failed request's message names the certificate problem a TLS handshake hit.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Duration;

use crate::scenario::HttpTls;

/// Largest certificate or key file read (a PEM bundle of every public CA is about 200 KiB).
const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// Why a probe's HTTP client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read {what} `{}`: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} `{}` is larger than {MAX_PEM_BYTES} bytes", path.display())]
    TooLarge { what: &'static str, path: PathBuf },
    #[error("{what} `{}` is not usable PEM: {message}", path.display())]
    Pem {
        what: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("`{0}` is not a usable proxy URL: {1}")]
    Proxy(String, String),
    #[error("the url `{0}` has no host to connect to")]
    NoHost(String),
    #[error("cannot resolve `{0}`: {1}")]
    Resolve(String, String),
    #[error("the HTTP client cannot be built: {0}")]
    Build(String),
}

/// Everything a probe's client is made from, besides its timeout.
#[derive(Debug, Clone)]
pub struct ClientSettings<'a> {
    pub tls: Option<&'a HttpTls>,
    /// The scenario file's directory: certificate paths are relative to it.
    pub base_dir: &'a Path,
    pub proxy: Option<String>,
}

/// rustls needs one crypto provider for the process; reqwest takes the installed one.
fn install_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err: another part of the process installed one first, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A client with no TLS settings and no proxy (readiness polls, plain probes).
pub fn plain_client(timeout: Duration) -> Result<reqwest::Client, ClientError> {
    install_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .build()
        .map_err(|error| ClientError::Build(error_chain(&error)))
}

fn read_pem(what: &'static str, base_dir: &Path, name: &str) -> Result<Vec<u8>, ClientError> {
    let path = base_dir.join(name);
    let read_error = |source| ClientError::Read {
        what,
        path: path.clone(),
        source,
    };
    let metadata = std::fs::metadata(&path).map_err(read_error)?;
    if !metadata.is_file() {
        return Err(ClientError::Pem {
            what,
            path,
            message: "not a regular file".into(),
        });
    }
    if metadata.len() > MAX_PEM_BYTES {
        return Err(ClientError::TooLarge { what, path });
    }
    std::fs::read(&path).map_err(read_error)
}

/// The client for one probe of `url`, and the URL to request: with `server_name`, the
/// URL's host becomes that name, resolved to the address the URL named.
pub async fn client_for(
    url: &str,
    timeout: Duration,
    settings: &ClientSettings<'_>,
) -> Result<(reqwest::Client, String), ClientError> {
    install_provider();
    let mut builder = reqwest::Client::builder().timeout(timeout);
    builder = match &settings.proxy {
        Some(proxy) => builder.proxy(
            reqwest::Proxy::all(proxy)
                .map_err(|error| ClientError::Proxy(proxy.clone(), error_chain(&error)))?,
        ),
        None => builder.no_proxy(),
    };
    let mut url = url.to_owned();
    if let Some(tls) = settings.tls {
        if let Some(ca) = &tls.ca {
            let pem = read_pem("the CA file", settings.base_dir, ca)?;
            let certificates =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|error| ClientError::Pem {
                    what: "the CA file",
                    path: settings.base_dir.join(ca),
                    message: error_chain(&error),
                })?;
            if certificates.is_empty() {
                return Err(ClientError::Pem {
                    what: "the CA file",
                    path: settings.base_dir.join(ca),
                    message: "it holds no certificate".into(),
                });
            }
            builder = builder.tls_certs_only(certificates);
        }
        if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
            let mut pem = read_pem("the client certificate", settings.base_dir, cert)?;
            pem.push(b'\n');
            pem.extend(read_pem("the client key", settings.base_dir, key)?);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|error| ClientError::Pem {
                what: "the client certificate and key",
                path: settings.base_dir.join(cert),
                message: error_chain(&error),
            })?;
            builder = builder.identity(identity);
        }
        if tls.insecure {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        if let Some(name) = &tls.server_name {
            let mut parsed = reqwest::Url::parse(&url)
                .map_err(|error| ClientError::Resolve(url.clone(), error.to_string()))?;
            let host = parsed
                .host_str()
                .map(|host| {
                    host.trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_owned()
                })
                .ok_or_else(|| ClientError::NoHost(url.clone()))?;
            let port = parsed
                .port_or_known_default()
                .ok_or_else(|| ClientError::NoHost(url.clone()))?;
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|error| ClientError::Resolve(host.clone(), error.to_string()))?
                .collect();
            parsed
                .set_host(Some(name))
                .map_err(|error| ClientError::Resolve(name.clone(), error.to_string()))?;
            builder = builder.resolve_to_addrs(name, &addresses);
            url = parsed.to_string();
        }
    }
    let client = builder
        .build()
        .map_err(|error| ClientError::Build(error_chain(&error)))?;
    Ok((client, url))
}

/// An error and its causes, `: `-joined, with what a TLS certificate problem means and
/// what to do about it.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut tls = rustls_error(error).and_then(certificate_problem);
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        tls = tls.or_else(|| rustls_error(cause).and_then(certificate_problem));
        source = cause.source();
    }
    let mut message = parts.join(": ");
    if let Some(problem) = tls {
        message.push_str(&format!(" (certificate problem: {problem})"));
    }
    message
}

/// The rustls error inside `error`, as tokio-rustls wraps it in an `io::Error` (which
/// the connector may wrap in another): `io::Error::source` skips the error it carries.
fn rustls_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current = error;
    for _ in 0..8 {
        if let Some(found) = current.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        let inner = current
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)?;
        current = inner;
    }
    None
}

/// What a handshake failure says about the server's certificate, for people.
fn certificate_problem(error: &rustls::Error) -> Option<String> {
    use rustls::CertificateError;
    let rustls::Error::InvalidCertificate(problem) = error else {
        return None;
    };
    Some(match problem {
        CertificateError::UnknownIssuer => "the server's certificate is not signed by a CA this probe trusts; give the CA that signed it with `tls.ca` (a PEM file)".to_owned(),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "the server's certificate has expired".to_owned()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "the server's certificate is not valid yet (check the clocks)".to_owned()
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "the server's certificate is not valid for the name asked for; set `tls.server_name` to a name the certificate holds".to_owned()
        }
        CertificateError::BadSignature => {
            "the server's certificate has a bad signature".to_owned()
        }
        CertificateError::Revoked => "the server's certificate is revoked".to_owned(),
        other => format!("the server's certificate was refused: {other:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_issuer_is_named_with_what_to_do() {
        let inner = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let message = error_chain(&inner);
        assert!(
            message.contains("certificate problem: the server's certificate is not signed by a CA this probe trusts; give the CA that signed it with `tls.ca`"),
            "{message}"
        );
        // As hyper-rustls hands it on: an io::Error around tokio-rustls's io::Error.
        let nested = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName),
        ));
        assert!(
            error_chain(&nested).contains("not valid for the name asked for"),
            "{}",
            error_chain(&nested)
        );
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(error_chain(&plain), "refused");
    }
}
