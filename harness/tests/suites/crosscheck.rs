//! dockproof checked against something other than itself: containers started
//! independently through the `testcontainers` crate (its own wait strategies and
//! removal), probed by dockproof's HTTP steps, and dockproof's own service steps
//! compared with what testcontainers' health wait says about the same image.
//!
//! Real-daemon tests: ignored when no daemon answers, unless DOCKPROOF_REQUIRE_DOCKER=1.

use crate::support;

use std::path::Path;
use std::time::Duration;

use libtest_mimic::{Failed, Trial};
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

const WEB: (&str, &str) = ("dockproof/web", "1");

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The web fixture started by testcontainers, waited for with its healthcheck strategy.
async fn web_by_testcontainers(
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<ContainerAsync<GenericImage>, testcontainers::TestcontainersError> {
    let mut image = GenericImage::new(WEB.0, WEB.1)
        .with_exposed_port(8080.tcp())
        .with_wait_for(WaitFor::healthcheck())
        .with_label("dockproof.crosscheck", "1")
        .with_startup_timeout(timeout);
    for (key, value) in env {
        image = image.with_env_var(*key, *value);
    }
    image.start().await
}

/// Run `scenario` (YAML text) with dockproof on the docker CLI backend; its exit code and stdout.
fn dockproof(work: &Path, scenario: &str) -> Result<(Option<i32>, String), Failed> {
    let file = work.join("scenario.yaml");
    std::fs::write(&file, scenario).map_err(|error| error.to_string())?;
    let output = support::dockproof_real(&work.join("work"))
        .arg(&file)
        .output()
        .map_err(|error| error.to_string())?;
    Ok((
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    ))
}

/// dockproof's HTTP steps against a service testcontainers started and declared healthy.
fn http_steps_against_an_independent_container() -> Result<(), Failed> {
    support::ensure_fixture_image("dockproof/web:1")?;
    let work = tempfile::tempdir().map_err(|error| error.to_string())?;
    runtime().block_on(async {
        let web = web_by_testcontainers(&[], Duration::from_secs(30)).await.map_err(|error| format!("testcontainers could not start the web fixture: {error}"))?;
        let port = web.get_host_port_ipv4(8080.tcp()).await.map_err(|error| error.to_string())?;
        let base = format!("http://127.0.0.1:{port}");
        // Independently of dockproof: what the service answers. reqwest is built without a
        // crypto provider of its own (the harness gives it ring): install one for this client.
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
        let answer = reqwest::get(format!("{base}/api/items")).await.map_err(|error| error.to_string())?;
        let status = answer.status().as_u16();
        let body: serde_json::Value = answer.json().await.map_err(|error| error.to_string())?;
        let passing = format!(
            "name: crosscheck-http\nsteps:\n  - http:\n      url: {base}/health\n      expect:\n        status: 200\n        json: {{ /status: ok }}\n        json_types: {{ /timestamp: string, /components: object }}\n  - http:\n      url: {base}/api/items\n      repeat: 5\n      expect:\n        status: {status}\n        json: {{ /count: {} }}\n",
            body["count"]
        );
        let (code, stdout) = dockproof(work.path(), &passing)?;
        if code != Some(0) {
            return Err(format!("dockproof disagreed with a direct request (status {status}, body {body}):\n{stdout}").into());
        }
        let failing = format!("name: crosscheck-http-wrong\nsteps:\n  - http:\n      url: {base}/api/items\n      expect: {{ status: 201 }}\n");
        let (code, stdout) = dockproof(work.path(), &failing)?;
        if code != Some(1) || !stdout.contains("http_check_failed") || !stdout.contains("status 200, expected 201") {
            return Err(format!("a wrong status must fail with http_check_failed, got exit {code:?}:\n{stdout}").into());
        }
        web.rm().await.map_err(|error| error.to_string())?;
        Ok(())
    })
}

/// dockproof's `service` wait and testcontainers' healthcheck wait agree on healthy and on unhealthy.
fn service_health_agrees_with_testcontainers() -> Result<(), Failed> {
    support::ensure_fixture_image("dockproof/web:1")?;
    let work = tempfile::tempdir().map_err(|error| error.to_string())?;
    runtime().block_on(async {
        let healthy = web_by_testcontainers(&[], Duration::from_secs(30)).await;
        let unhealthy = web_by_testcontainers(&[("WEB_HEALTH", "down")], Duration::from_secs(8)).await;
        let healthy_ok = healthy.is_ok();
        let unhealthy_error = unhealthy.as_ref().err().map(ToString::to_string);
        for container in [healthy.ok(), unhealthy.ok()].into_iter().flatten() {
            container.rm().await.map_err(|error| error.to_string())?;
        }
        if !healthy_ok || unhealthy_error.is_none() {
            return Err(format!("testcontainers: healthy start ok = {healthy_ok}, unhealthy start error = {unhealthy_error:?}").into());
        }
        let scenario = "name: crosscheck-health\nsteps:\n  - service:\n      name: up\n      image: dockproof/web:1\n      ports: [\"0:8080\"]\n      wait: { healthy: true, within: 30s }\n  - service:\n      name: down\n      image: dockproof/web:1\n      env: { WEB_HEALTH: down }\n      ports: [\"0:8080\"]\n      wait: { healthy: true, within: 8s }\n    expect_failure: health_failed\n";
        let (code, stdout) = dockproof(work.path(), scenario)?;
        if code != Some(0) {
            return Err(format!("dockproof disagreed with testcontainers (healthy, then unhealthy: {unhealthy_error:?}):\n{stdout}").into());
        }
        Ok(())
    })
}

/// A real-daemon test: its name and body.
type Test = (&'static str, fn() -> Result<(), Failed>);

/// This file's trials, run by `suites/main.rs`.
pub fn trials() -> Vec<Trial> {
    let tests: [Test; 2] = [
        (
            "crosscheck::http-steps-against-a-testcontainers-service",
            http_steps_against_an_independent_container,
        ),
        (
            "crosscheck::service-health-agrees-with-testcontainers",
            service_health_agrees_with_testcontainers,
        ),
    ];
    tests
        .into_iter()
        .map(|(name, test)| support::real_daemon_trial(name, test))
        .collect()
}
