//! Mutual TLS in front of the local daemon, for the tests that reach it over `tcp://`
//! with `DOCKER_TLS_VERIFY=1`: a CA and what it signed (rcgen), a `DOCKER_CERT_PATH`
//! directory, and a TLS terminator forwarding each connection to the daemon's unix socket.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use libtest_mimic::Failed;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};

/// A CA and what it signed, as PEM.
pub struct Pki {
    pub ca: String,
    pub server: (String, String),
    pub client: (String, String),
}

/// A CA named after `name`, a server certificate for `localhost` and `server_ip`, and a client certificate.
pub fn pki(name: &str, server_ip: IpAddr) -> Result<Pki, rcgen::Error> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, format!("dockproof test CA {name}"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
    let leaf = |purpose: ExtendedKeyUsagePurpose| -> Result<(String, String), rcgen::Error> {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()])?;
        params.subject_alt_names.push(SanType::IpAddress(server_ip));
        params.extended_key_usages = vec![purpose];
        let key = KeyPair::generate()?;
        let certificate = params.signed_by(&key, &ca)?;
        Ok((certificate.pem(), key.serialize_pem()))
    };
    Ok(Pki {
        ca: ca.pem(),
        server: leaf(ExtendedKeyUsagePurpose::ServerAuth)?,
        client: leaf(ExtendedKeyUsagePurpose::ClientAuth)?,
    })
}

/// A DOCKER_CERT_PATH directory: `ca.pem` (whom to trust), `cert.pem` and `key.pem` (who we are).
pub fn cert_dir(
    root: &Path,
    name: &str,
    ca: &str,
    client: &(String, String),
) -> std::io::Result<PathBuf> {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("ca.pem"), ca)?;
    std::fs::write(dir.join("cert.pem"), &client.0)?;
    std::fs::write(dir.join("key.pem"), &client.1)?;
    Ok(dir)
}

/// Serve mutual TLS on `bind` (port picked by the system), forwarding each connection to
/// the daemon socket. The listener lives as long as the runtime it was spawned on.
pub async fn tls_endpoint(pki: &Pki, bind: IpAddr) -> Result<SocketAddr, Failed> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca.as_bytes()).map_err(|error| error.to_string())?)
        .map_err(|error| error.to_string())?;
    let verifier = WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(tokio_rustls::rustls::crypto::ring::default_provider()),
    )
    .build()
    .map_err(|error| error.to_string())?;
    let certificate = CertificateDer::from_pem_slice(pki.server.0.as_bytes())
        .map_err(|error| error.to_string())?;
    let key = PrivateKeyDer::from_pem_slice(pki.server.1.as_bytes())
        .map_err(|error| error.to_string())?;
    let config = ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|error| error.to_string())?
    .with_client_cert_verifier(verifier)
    .with_single_cert(vec![certificate], key)
    .map_err(|error| error.to_string())?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind((bind, 0))
        .await
        .map_err(|error| format!("cannot listen on {bind}: {error}"))?;
    let address = listener.local_addr().map_err(|error| error.to_string())?;
    let socket = super::daemon_socket();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, socket) = (acceptor.clone(), socket.clone());
            tokio::spawn(async move {
                // A client without a certificate of ours ends here, in the handshake.
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let Ok(mut daemon) = tokio::net::UnixStream::connect(&socket).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut daemon).await;
            });
        }
    });
    Ok(address)
}

/// Serve plain TCP on `bind` (port picked by the system), forwarding each connection to
/// the daemon socket: `tcp://` without TLS, as a daemon started with `-H tcp://…` answers.
pub async fn tcp_endpoint(bind: IpAddr) -> Result<SocketAddr, Failed> {
    let listener = tokio::net::TcpListener::bind((bind, 0))
        .await
        .map_err(|error| format!("cannot listen on {bind}: {error}"))?;
    let address = listener.local_addr().map_err(|error| error.to_string())?;
    let socket = super::daemon_socket();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let socket = socket.clone();
            tokio::spawn(async move {
                let Ok(mut daemon) = tokio::net::UnixStream::connect(&socket).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut stream, &mut daemon).await;
            });
        }
    });
    Ok(address)
}

/// An HTTPS server on `bind` (port picked by the system) with `pki`'s server certificate,
/// asking for a client certificate signed by `pki`'s CA when `client_auth`. Every request
/// is answered `200` with JSON naming what the server saw: the SNI name asked for, the
/// `Host` header and whether a client certificate came.
pub async fn https_server(
    pki: &Pki,
    bind: IpAddr,
    client_auth: bool,
) -> Result<SocketAddr, Failed> {
    let provider = || Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let certificate = CertificateDer::from_pem_slice(pki.server.0.as_bytes())
        .map_err(|error| error.to_string())?;
    let key = PrivateKeyDer::from_pem_slice(pki.server.1.as_bytes())
        .map_err(|error| error.to_string())?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?;
    let config = if client_auth {
        let mut roots = RootCertStore::empty();
        roots
            .add(
                CertificateDer::from_pem_slice(pki.ca.as_bytes())
                    .map_err(|error| error.to_string())?,
            )
            .map_err(|error| error.to_string())?;
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|error| error.to_string())?;
        builder
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![certificate], key)
    } else {
        builder
            .with_no_client_auth()
            .with_single_cert(vec![certificate], key)
    }
    .map_err(|error| error.to_string())?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind((bind, 0))
        .await
        .map_err(|error| format!("cannot listen on {bind}: {error}"))?;
    let address = listener.local_addr().map_err(|error| error.to_string())?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                // A client that does not trust us (or has no certificate of ours) ends here.
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let (sni, client_cert) = {
                    let (_, connection) = tls.get_ref();
                    (
                        connection.server_name().unwrap_or_default().to_owned(),
                        connection
                            .peer_certificates()
                            .is_some_and(|c| !c.is_empty()),
                    )
                };
                let mut request = Vec::new();
                let mut buffer = [0_u8; 4096];
                while !request.windows(4).any(|window| window == b"\r\n\r\n")
                    && request.len() < 65536
                {
                    match tls.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => request.extend_from_slice(&buffer[..read]),
                    }
                }
                let text = String::from_utf8_lossy(&request);
                let host = text
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("host")
                            .then(|| value.trim().to_owned())
                    })
                    .unwrap_or_default();
                let body = serde_json::json!({
                    "status": "ok", "sni": sni, "host": host, "client_cert": client_cert
                })
                .to_string();
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    Ok(address)
}

/// An HTTP proxy on `bind` that serves `CONNECT host:port` (what an HTTPS request through
/// a proxy sends), noting each target it was asked for.
pub async fn connect_proxy(
    bind: IpAddr,
) -> Result<(SocketAddr, Arc<std::sync::Mutex<Vec<String>>>), Failed> {
    let listener = tokio::net::TcpListener::bind((bind, 0))
        .await
        .map_err(|error| format!("cannot listen on {bind}: {error}"))?;
    let address = listener.local_addr().map_err(|error| error.to_string())?;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let noted = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let noted = Arc::clone(&noted);
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut head = Vec::new();
                let mut byte = [0_u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                    match client.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let Some(target) = text
                    .lines()
                    .next()
                    .and_then(|line| line.strip_prefix("CONNECT "))
                    .and_then(|rest| rest.split_whitespace().next())
                    .map(str::to_owned)
                else {
                    let _ = client
                        .write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                };
                noted.lock().expect("not poisoned").push(target.clone());
                let Ok(mut upstream) = tokio::net::TcpStream::connect(target.as_str()).await else {
                    let _ = client
                        .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                };
                if client
                    .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    Ok((address, seen))
}
