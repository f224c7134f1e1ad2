//! `fake-docker`: a deterministic program that speaks the docker CLI's syntax and answers
//! like the real CLI, without a daemon. See `docs/fake-docker.md`.

pub mod commands;
pub mod conditions;
pub mod console;
pub mod dockerfile;
pub mod expand;
pub mod faults;
pub mod flags;
pub mod gojson;
pub mod gotype;
pub mod handshake;
pub mod health;
pub mod healthloop;
pub mod http;
pub mod image;
pub mod imageconfig;
pub mod imagestore;
pub mod logfile;
pub mod netbind;
pub mod objects;
pub mod paths;
pub mod ports;
pub mod program;
pub mod recordings;
pub mod render;
pub mod replay;
pub mod serve;
pub mod size;
pub mod state;
pub mod supervisor;
pub mod tar;
pub mod template;
pub mod yaml;

/// Every timestamp the fake prints.
pub const FIXED_TIME: &str = "2000-01-01T00:00:00Z";
/// Docker's zero time, for timestamps that are unset.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";
/// The server version the fake reports.
pub const SERVER_VERSION: &str = "20.10.24-fake";
/// The API version the fake reports.
pub const API_VERSION: &str = "1.41";

/// `FAKE_DOCKER_IMAGES`, or its default.
pub fn images_spec() -> String {
    let definitions = std::env::var("FAKE_DOCKER_IMAGES")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| image::DEFAULT_IMAGES.to_string());
    // Images made by `commit` live in the state directory.
    match state::StateDir::from_env() {
        Ok(state) => format!("{definitions}:{}", state.committed_dir().display()),
        Err(_) => definitions,
    }
}
