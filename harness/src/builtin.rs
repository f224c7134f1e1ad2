//! The images shipped inside the dockproof binary: `dockproof/job-runner:1` and
//! `dockproof/web:1`, both as fake image definitions (for `--backend fake`) and as the
//! build contexts of their real twins (built on demand on a real daemon, with the host's
//! static busybox). A project outside dockproof's checkout names them `builtin` in
//! `fake_images`/`fixture_images` (`dockproof init` does), so an installed dockproof
//! runs its starter scenario with nothing else on disk.
//!
//! They are the files under `fixtures/` compiled in (the same bytes, so the fake's image
//! IDs — the sha256 of a definition — and the real images' fixture digests are those of
//! the checkout), written out under the run's directory when a run names them.

use std::path::{Path, PathBuf};

/// (path below the materialised root, bytes, executable).
const FILES: &[(&str, &[u8], bool)] = &[
    (
        "fake-images/job-runner.yaml",
        include_bytes!("../../fixtures/fake-images/job-runner.yaml"),
        false,
    ),
    (
        "fake-images/web.yaml",
        include_bytes!("../../fixtures/fake-images/web.yaml"),
        false,
    ),
    (
        "images/job-runner/Dockerfile",
        include_bytes!("../../fixtures/images/job-runner/Dockerfile"),
        false,
    ),
    (
        "images/job-runner/job",
        include_bytes!("../../fixtures/images/job-runner/job"),
        true,
    ),
    (
        "images/web/Dockerfile",
        include_bytes!("../../fixtures/images/web/Dockerfile"),
        false,
    ),
    (
        "images/web/handle",
        include_bytes!("../../fixtures/images/web/handle"),
        true,
    ),
    (
        "images/web/web",
        include_bytes!("../../fixtures/images/web/web"),
        true,
    ),
];

/// Where the shipped images were written: the fake definitions and the fixture contexts.
#[derive(Debug, Clone)]
pub struct Builtin {
    pub fake_images: PathBuf,
    pub fixture_images: PathBuf,
}

/// Write the shipped images under `dir` (created if missing).
pub fn materialise(dir: &Path) -> std::io::Result<Builtin> {
    use std::os::unix::fs::PermissionsExt;
    for (relative, bytes, executable) in FILES {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, bytes)?;
        let mode = if *executable { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(Builtin {
        fake_images: dir.join("fake-images"),
        fixture_images: dir.join("images"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The compiled-in files are the checkout's, byte for byte (so a fake image ID is the
    /// same from `builtin` as from `fixtures/fake-images`), and every file the shipped
    /// definitions and Dockerfiles refer to is among them.
    #[test]
    fn the_shipped_images_are_the_fixtures_and_complete() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
        let dir = tempfile::tempdir().unwrap();
        let builtin = materialise(dir.path()).unwrap();
        for (relative, bytes, _) in FILES {
            assert_eq!(
                std::fs::read(fixtures.join(relative)).unwrap(),
                *bytes,
                "{relative}"
            );
        }
        for name in ["job-runner", "web"] {
            let definition =
                std::fs::read_to_string(builtin.fake_images.join(format!("{name}.yaml"))).unwrap();
            for reference in definition
                .split(|c: char| c.is_whitespace() || c == ',' || c == '}')
                .filter(|word| word.starts_with("../"))
            {
                assert!(
                    builtin.fake_images.join(reference).is_file(),
                    "{name}.yaml refers to {reference}, which is not shipped"
                );
            }
            // Every file of the fixture's context directory is shipped.
            for entry in std::fs::read_dir(fixtures.join("images").join(name)).unwrap() {
                let file = entry.unwrap().file_name();
                assert!(
                    builtin.fixture_images.join(name).join(&file).is_file(),
                    "images/{name}/{} is not shipped",
                    file.to_string_lossy()
                );
            }
        }
    }
}
