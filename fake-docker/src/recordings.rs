//! Where the recordings the fake replays are (`FAKE_DOCKER_RECORDINGS`), and which
//! recorded container a container plays. A leaf: `state` (a container remembers its
//! match), `image` (images only a recording knows) and `replay` (matching and playing)
//! all read it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The recording directories to replay from.
pub const RECORDINGS_ENV: &str = "FAKE_DOCKER_RECORDINGS";

/// Which recorded container a container replays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayRef {
    /// The recording directory.
    pub dir: PathBuf,
    /// Index into its `containers`.
    pub index: usize,
}

/// The configured recording directories.
pub fn configured() -> Vec<PathBuf> {
    std::env::var_os(RECORDINGS_ENV)
        .map(|value| {
            std::env::split_paths(&value)
                .filter(|path| !path.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default()
}
