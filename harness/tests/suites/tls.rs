//! dockproof against a daemon reached over TCP with mutual TLS: `DOCKER_HOST=tcp://…`,
//! `DOCKER_TLS_VERIFY=1`, `DOCKER_CERT_PATH` with `ca.pem`/`cert.pem`/`key.pem`, on the
//! docker CLI and the Engine API backends. The certificates (a CA, a server certificate
//! for 127.0.0.1, client certificates) are generated here with rcgen; the TLS endpoint is
//! a loopback TLS terminator in this test, forwarding to the local daemon's unix socket
//! and requiring a client certificate signed by the test CA — so what is tested for real
//! is dockproof's side: certificate loading, server verification, client authentication.
//!
//! Real-daemon tests: ignored when no daemon answers, unless DOCKPROOF_REQUIRE_DOCKER=1.
//!
//! `https-probes` (issue 20 item 6): `http:` steps against an HTTPS server of this test,
//! its CA generated here: a `tls.ca`, a client certificate, `insecure`, a `server_name`
//! and a proxy pass; without the CA or with another, the probe fails as
//! `http_check_failed` naming the certificate problem. No daemon is needed: the fake backend.

use crate::support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use libtest_mimic::{Failed, Trial};
use support::tls::{cert_dir, connect_proxy, https_server, pki, tls_endpoint};

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

/// Run one scenario file on the fake backend with a JSON report; (exit code, console
/// output, report.json).
fn run_https(dir: &Path, name: &str, text: &str) -> Result<(Option<i32>, String, String), Failed> {
    let scenario = dir.join(format!("{name}.yaml"));
    std::fs::write(&scenario, text).map_err(|error| error.to_string())?;
    let reports = dir.join(format!("reports-{name}"));
    let output = support::dockproof_fake(&dir.join(format!("work-{name}")))
        .args(["--report", "json", "--report-dir"])
        .arg(&reports)
        .arg(&scenario)
        .output()
        .map_err(|error| error.to_string())?;
    let report = std::fs::read_to_string(reports.join("report.json")).unwrap_or_default();
    Ok((output.status.code(), support::describe(&output), report))
}

fn https_probes() -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(|error| error.to_string())?;
    let ours = pki("https", LOOPBACK).map_err(|error| error.to_string())?;
    let theirs = pki("someone-else", LOOPBACK).map_err(|error| error.to_string())?;
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text);
    write("ca.pem", &ours.ca).map_err(|error| error.to_string())?;
    write("other-ca.pem", &theirs.ca).map_err(|error| error.to_string())?;
    write("client.pem", &ours.client.0).map_err(|error| error.to_string())?;
    write("client-key.pem", &ours.client.1).map_err(|error| error.to_string())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|error| error.to_string())?;
    let server = runtime.block_on(https_server(&ours, LOOPBACK, false))?;
    let mutual = runtime.block_on(https_server(&ours, LOOPBACK, true))?;
    let (proxy, proxied) = runtime.block_on(connect_proxy(LOOPBACK))?;
    let port = server.port();

    let passing = format!(
        r#"name: https-probes-pass
steps:
  - name: with the test CA
    http:
      url: https://127.0.0.1:{port}/health
      tls: {{ ca: ca.pem }}
      expect: {{ status: 200, json: {{ /status: ok, /client_cert: false }} }}
  - name: a server name for SNI, the certificate and Host, at the URL's address
    http:
      url: https://127.0.0.1:{port}/health
      tls: {{ ca: ca.pem, server_name: localhost }}
      expect: {{ json: {{ /sni: localhost, /host: "localhost:{port}" }} }}
  - name: a client certificate for a server that asks for one
    http:
      url: https://127.0.0.1:{mutual_port}/health
      tls: {{ ca: ca.pem, cert: client.pem, key: client-key.pem }}
      expect: {{ json: {{ /client_cert: true }} }}
  - name: through a proxy
    http:
      url: https://127.0.0.1:{port}/via-proxy
      proxy: http://127.0.0.1:{proxy_port}
      tls: {{ ca: ca.pem }}
      expect: {{ status: 200 }}
  - name: insecure, said in the record
    http:
      url: https://127.0.0.1:{port}/insecure
      tls: {{ insecure: true }}
      expect: {{ status: 200 }}
  - telemetry:
      - {{ pointer: /context/insecureTls/0, equals: "https://127.0.0.1:{port}/insecure" }}
"#,
        mutual_port = mutual.port(),
        proxy_port = proxy.port(),
    );
    let (code, output, report) = run_https(dir.path(), "pass", &passing)?;
    if code != Some(0) {
        return Err(
            format!("every HTTPS probe with the right settings must pass:\n{output}").into(),
        );
    }
    if !report.contains(&format!("https://127.0.0.1:{port}/insecure")) {
        return Err(
            format!("the JSON report must name the URL probed insecurely:\n{report}").into(),
        );
    }
    let seen = proxied.lock().map_err(|error| error.to_string())?.clone();
    if seen != [format!("127.0.0.1:{port}")] {
        return Err(
            format!("the proxy must have carried exactly the proxied probe, saw {seen:?}").into(),
        );
    }

    let unknown_issuer =
        "certificate problem: the server's certificate is not signed by a CA this probe trusts";
    for (name, tls) in [
        ("no-ca", ""),
        ("other-ca", "\n      tls: { ca: other-ca.pem }"),
    ] {
        let text = format!(
            "name: https-probes-{name}\nsteps:\n  - http:\n      url: https://127.0.0.1:{port}/health{tls}\n      expect: {{ status: 200 }}\n"
        );
        let (code, output, _) = run_https(dir.path(), name, &text)?;
        if code != Some(1)
            || !output.contains("http_check_failed")
            || !output.contains(unknown_issuer)
        {
            return Err(format!("{name}: an untrusted certificate must fail as http_check_failed naming the problem:\n{output}").into());
        }
    }
    let wrong_name = format!(
        "name: https-probes-wrong-name\nsteps:\n  - http:\n      url: https://127.0.0.1:{port}/health\n      tls: {{ ca: ca.pem, server_name: wrong.test }}\n"
    );
    let (code, output, _) = run_https(dir.path(), "wrong-name", &wrong_name)?;
    if code != Some(1) || !output.contains("not valid for the name asked for") {
        return Err(format!("a name the certificate lacks must fail naming it:\n{output}").into());
    }
    let no_client_cert = format!(
        "name: https-probes-no-client-cert\nsteps:\n  - http:\n      url: https://127.0.0.1:{}/health\n      tls: {{ ca: ca.pem }}\n",
        mutual.port()
    );
    let (code, output, _) = run_https(dir.path(), "no-client-cert", &no_client_cert)?;
    if code != Some(1) || !output.contains("http_check_failed") {
        return Err(format!(
            "a server that wants a client certificate refuses a probe without one:\n{output}"
        )
        .into());
    }
    let missing = "name: https-probes-missing\nsteps:\n  - http:\n      url: https://127.0.0.1:1/\n      tls: { ca: nowhere.pem, cert: client.pem }\n";
    let (code, output, _) = run_https(dir.path(), "missing", missing)?;
    if code != Some(2)
        || !output.contains("`nowhere.pem` does not exist")
        || !output.contains("a client `cert` without its `key`")
    {
        return Err(format!(
            "a missing CA file and a cert without its key are load errors:\n{output}"
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
    trials.push(Trial::test("tls::https-probes", https_probes));
    trials
}
