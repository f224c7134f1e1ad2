//! dockproof against a daemon reached over TCP with mutual TLS: `DOCKER_HOST=tcp://…`,
//! `DOCKER_TLS_VERIFY=1`, `DOCKER_CERT_PATH` with `ca.pem`/`cert.pem`/`key.pem`, on the
//! docker CLI and the Engine API backends. The certificates (a CA, a server certificate
//! for 127.0.0.1, client certificates) are generated here with rcgen; the TLS endpoint is
//! a loopback TLS terminator in this test, forwarding to the local daemon's unix socket
//! and requiring a client certificate signed by the test CA — so what is tested for real
//! is dockproof's side: certificate loading, server verification, client authentication.
//!
//! Real-daemon tests: ignored when no daemon answers, unless DOCKPROOF_REQUIRE_DOCKER=1.

use crate::support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use libtest_mimic::{Failed, Trial};
use support::tls::{cert_dir, pki, tls_endpoint};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Run the happy-path scenario on `backend` against the TLS endpoint with `certs`.
fn run(
    backend: &str,
    endpoint: SocketAddr,
    certs: &Path,
    work: &Path,
) -> Result<(Option<i32>, String), Failed> {
    let output = support::dockproof_on(backend, work)
        .env("DOCKER_HOST", format!("tcp://{endpoint}"))
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", certs)
        .arg("scenarios/job-happy-path.yaml")
        .output()
        .map_err(|error| error.to_string())?;
    Ok((
        output.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    ))
}

type Command = std::process::Command;

fn mutual_tls(backend: &'static str) -> Result<(), Failed> {
    support::ensure_fixture_image("dockproof/job-runner:1")?;
    let dir = tempfile::tempdir().map_err(|error| error.to_string())?;
    let ours = pki("ours", LOOPBACK).map_err(|error| error.to_string())?;
    let theirs = pki("theirs", LOOPBACK).map_err(|error| error.to_string())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|error| error.to_string())?;
    let endpoint = runtime.block_on(tls_endpoint(&ours, LOOPBACK))?;
    let good =
        cert_dir(dir.path(), "good", &ours.ca, &ours.client).map_err(|error| error.to_string())?;
    let (code, output) = run(backend, endpoint, &good, &dir.path().join("work-good"))?;
    if code != Some(0) {
        return Err(format!(
            "{backend} over mutual TLS with the right certificates must pass:\n{output}"
        )
        .into());
    }
    // A server whose certificate our CA did not sign is not to be trusted.
    let wrong_ca = cert_dir(dir.path(), "wrong-ca", &theirs.ca, &ours.client)
        .map_err(|error| error.to_string())?;
    let (code, output) = run(
        backend,
        endpoint,
        &wrong_ca,
        &dir.path().join("work-wrong-ca"),
    )?;
    if code != Some(1) || !output.contains("daemon_unavailable") {
        return Err(format!("{backend} must refuse a server its CA did not sign (exit 1, daemon_unavailable):\n{output}").into());
    }
    // A client certificate the server's CA did not sign is refused by the server.
    let wrong_client = cert_dir(dir.path(), "wrong-client", &ours.ca, &theirs.client)
        .map_err(|error| error.to_string())?;
    let (code, output) = run(
        backend,
        endpoint,
        &wrong_client,
        &dir.path().join("work-wrong-client"),
    )?;
    if code != Some(1) || !output.contains("daemon_unavailable") {
        return Err(format!("{backend} with a client certificate the server does not accept must fail as daemon_unavailable:\n{output}").into());
    }
    Ok(())
}

/// The same endpoint through a docker context (`docker context create` with the TLS
/// material) in a private DOCKER_CONFIG, selected with `--context`.
fn context_with_tls(backend: &'static str) -> Result<(), Failed> {
    support::ensure_fixture_image("dockproof/job-runner:1")?;
    let dir = tempfile::tempdir().map_err(|error| error.to_string())?;
    let ours = pki("ours", LOOPBACK).map_err(|error| error.to_string())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|error| error.to_string())?;
    let endpoint = runtime.block_on(tls_endpoint(&ours, LOOPBACK))?;
    let certs =
        cert_dir(dir.path(), "certs", &ours.ca, &ours.client).map_err(|error| error.to_string())?;
    let config = dir.path().join("docker-config");
    let docker = format!(
        "host=tcp://{endpoint},ca={},cert={},key={}",
        certs.join("ca.pem").display(),
        certs.join("cert.pem").display(),
        certs.join("key.pem").display()
    );
    let created = Command::new("docker")
        .env("DOCKER_CONFIG", &config)
        .args(["context", "create", "dp-tls", "--docker", &docker])
        .output()
        .map_err(|error| error.to_string())?;
    if !created.status.success() {
        return Err(format!(
            "docker context create failed: {}",
            String::from_utf8_lossy(&created.stderr)
        )
        .into());
    }
    let output = support::dockproof_on(backend, &dir.path().join("work"))
        .env("DOCKER_CONFIG", &config)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .args(["--context", "dp-tls"])
        .arg("scenarios/job-happy-path.yaml")
        .output()
        .map_err(|error| error.to_string())?;
    if output.status.code() != Some(0) {
        return Err(format!(
            "{backend} with --context dp-tls (a TLS context) must pass:\n{}",
            support::describe(&output)
        )
        .into());
    }
    Ok(())
}

/// A test, run once per real backend.
type Test = fn(&'static str) -> Result<(), Failed>;

/// This file's trials, run by `suites/main.rs`.
pub fn trials() -> Vec<Trial> {
    let tests: [(&str, Test); 2] = [
        ("mutual-tls", mutual_tls),
        ("context-with-tls", context_with_tls),
    ];
    let mut trials = Vec::new();
    for (name, test) in tests {
        for backend in ["docker-cli", "docker-api"] {
            trials.push(support::real_daemon_trial(
                format!("tls::{backend}-{name}"),
                move || test(backend),
            ));
        }
    }
    trials
}
