//! Real fixture images, built locally on demand (no registry needed).
//!
//! A fixture image is a directory under `fixtures/images/` whose `Dockerfile`
//! starts with header comments:
//!
//! ```text
//! # dockproof-image: dockproof/job-runner:1
//! # dockproof-context: /bin/busybox busybox
//! ```
//!
//! `dockproof-image` names the tag the directory builds; each
//! `dockproof-context` line copies a host file into the build context (so a
//! static busybox need not be committed).
//!
//! A built fixture carries the label `dockproof.fixture-digest` (sha256 of its
//! build context); a run builds a fixture only when no image of that tag with
//! the same digest exists, so unchanged fixtures cost one inspect per run, or
//! none where the backend reads the digest from the first container's `create`
//! event ([`FixtureImages::settled_by_create`]).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use tokio::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::backend::{Backend, BackendError, BuildRequest};

/// The image label holding the digest of the build context a fixture was built from.
pub const DIGEST_LABEL: &str = crate::backend::FIXTURE_DIGEST_LABEL;

/// Why the fixture images could not be read or prepared.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("failed to read fixture images in `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{path}`: {message}")]
    Header { path: PathBuf, message: String },
}

#[derive(Debug, Clone)]
struct FixtureImage {
    dir: PathBuf,
    context_files: ContextFiles,
}

/// What [`FixtureImages::ensure`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    /// The image was there as it should be.
    Found,
    /// It was built from its fixture in this run (by this call or an earlier one): a
    /// container created from the reference before the build ended may be of the old
    /// image, or may have been refused for want of one.
    Built,
}

/// The fixture images known to a run, and which were already built in it.
#[derive(Debug, Default)]
pub struct FixtureImages {
    images: HashMap<String, FixtureImage>,
    /// Whether images are built (real daemons) or only looked up (the fake defines its own).
    build: bool,
    built: Mutex<HashMap<String, Result<Ensured, String>>>,
    /// Other images already found in this run (looked up once, not per scenario).
    present: Mutex<HashSet<String>>,
    /// Where build contexts are prepared (the run directory, so `clean` finds what a
    /// killed run left); the system temp dir when unset.
    build_dir: Option<PathBuf>,
}

impl FixtureImages {
    /// No fixture images: images must already exist.
    pub fn none() -> Self {
        FixtureImages::default()
    }

    /// Read every `*/Dockerfile` under `dir` (a missing `dir` means none).
    pub fn scan(dir: &Path, build: bool) -> Result<Self, FixtureError> {
        let mut images = HashMap::new();
        if dir.is_dir() {
            let read_error = |source| FixtureError::Read {
                path: dir.to_path_buf(),
                source,
            };
            let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(read_error)?
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .collect();
            entries.sort();
            for entry in entries {
                let dockerfile = entry.join("Dockerfile");
                if !dockerfile.is_file() {
                    continue;
                }
                let text =
                    std::fs::read_to_string(&dockerfile).map_err(|source| FixtureError::Read {
                        path: dockerfile.clone(),
                        source,
                    })?;
                let (tag, context_files) =
                    parse_header(&text).map_err(|message| FixtureError::Header {
                        path: dockerfile.clone(),
                        message,
                    })?;
                images.insert(
                    tag,
                    FixtureImage {
                        dir: entry,
                        context_files,
                    },
                );
            }
        }
        Ok(FixtureImages {
            images,
            build,
            ..FixtureImages::default()
        })
    }

    /// Every `*/Dockerfile` under each of `dirs`; a tag defined in two directories is the
    /// first one's (`--fixture-images` order).
    pub fn scan_all(dirs: &[PathBuf], build: bool) -> Result<Self, FixtureError> {
        let mut all = FixtureImages {
            build,
            ..FixtureImages::default()
        };
        for dir in dirs {
            for (tag, image) in FixtureImages::scan(dir, build)?.images {
                all.images.entry(tag).or_insert(image);
            }
        }
        Ok(all)
    }

    /// Prepare build contexts under `dir` (a run's directory) rather than the system temp dir.
    pub fn with_build_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.build_dir = Some(dir.into());
        self
    }

    /// The image tags this set can build.
    pub fn tags(&self) -> Vec<&str> {
        let mut tags: Vec<&str> = self.images.keys().map(String::as_str).collect();
        tags.sort_unstable();
        tags
    }

    /// Whether [`ensure`](Self::ensure) of `image` would still ask a real daemon about it
    /// (its first use in the run): a caller may then create its container while the check
    /// runs ([`Ensured`] says whether to create it again). Never on the fake (`build`
    /// off), whose calls, and fault counters, stay as they are.
    pub async fn pending(&self, image: &str) -> bool {
        if !self.build {
            return false;
        }
        if self.images.contains_key(image) {
            !self.built.lock().await.contains_key(image)
        } else {
            !self.present.lock().await.contains(image)
        }
    }

    /// Whether `image` is one of these fixtures.
    pub fn is_fixture(&self, image: &str) -> bool {
        self.images.contains_key(image)
    }

    /// The digest of fixture `image`'s sources, hashed on a blocking thread: started
    /// before its container is created, the hashing and the create overlap. `None` for
    /// an image that is no fixture here, or when images are not built (the fake).
    pub fn digest_in_background(
        &self,
        image: &str,
    ) -> Option<tokio::task::JoinHandle<Result<String, ContextError>>> {
        let fixture = self.images.get(image).filter(|_| self.build)?.clone();
        Some(tokio::task::spawn_blocking(move || {
            context_digest(&fixture.dir, &fixture.context_files)
        }))
    }

    /// After a container of `image` was created on a real daemon (the image's first use
    /// in the run): whether that settles the image's check, nothing more to ask the
    /// daemon. A created container proves any image present (dockproof creates with
    /// `--pull never`); a fixture is as its sources are when the daemon's `create` event
    /// carried their `digest` ([`Backend::digest_at_create`]). `false`: [`ensure`](Self::ensure)
    /// it (the event did not come, the digests differ, another scenario checked it first).
    pub async fn settled_by_create(
        &self,
        backend: &dyn Backend,
        image: &str,
        container: &str,
        digest: Option<tokio::task::JoinHandle<Result<String, ContextError>>>,
    ) -> bool {
        if !self.build {
            return false;
        }
        if !self.images.contains_key(image) {
            self.present.lock().await.insert(image.to_owned());
            return true;
        }
        let mut built = self.built.lock().await;
        if built.contains_key(image) {
            return false;
        }
        let Some(hashing) = digest else {
            return false;
        };
        let Ok(Ok(digest)) = hashing.await else {
            return false;
        };
        if backend.digest_at_create(container).await != Some(Some(digest)) {
            return false;
        }
        built.insert(image.to_owned(), Ok(Ensured::Found));
        true
    }

    /// Make sure `image` exists: on real daemons a fixture is checked once per
    /// run and built when its context changed; any other image must be there
    /// already (looked up once per run).
    pub async fn ensure(
        &self,
        backend: &dyn Backend,
        image: &str,
    ) -> Result<Ensured, BackendError> {
        if self.build
            && let Some(fixture) = self.images.get(image)
        {
            let mut built = self.built.lock().await;
            if let Some(result) = built.get(image) {
                return result.clone().map_err(|message| BackendError::BuildFailed {
                    image: image.to_owned(),
                    message,
                });
            }
            let build_dir = self.build_dir.clone().unwrap_or_else(std::env::temp_dir);
            let result = build_fixture(backend, image, fixture, &build_dir).await;
            // An unreachable daemon is not a verdict on the build: the next scenario asks again.
            if !matches!(result, Err(BackendError::DaemonUnavailable { .. })) {
                built.insert(
                    image.to_owned(),
                    result.as_ref().copied().map_err(ToString::to_string),
                );
            }
            return result;
        }
        if self.present.lock().await.contains(image) {
            return Ok(Ensured::Found);
        }
        if backend.image_exists(image).await? {
            self.present.lock().await.insert(image.to_owned());
            Ok(Ensured::Found)
        } else {
            let hint = if self.images.is_empty() {
                String::new()
            } else {
                format!(" (fixture images: {})", self.tags().join(", "))
            };
            Err(BackendError::ImageNotFound {
                image: image.to_owned(),
                message: format!("no such image{hint}"),
            })
        }
    }
}

/// Build `image` from its fixture unless an image built from the same context is there already.
async fn build_fixture(
    backend: &dyn Backend,
    image: &str,
    fixture: &FixtureImage,
    build_dir: &Path,
) -> Result<Ensured, BackendError> {
    let build_failed = |message| BackendError::BuildFailed {
        image: image.to_owned(),
        message,
    };
    // What the context would hash to, read where its files are: copied only to build.
    let digest = context_digest(&fixture.dir, &fixture.context_files)
        .map_err(|error| build_failed(error.to_string()))?;
    match backend.image_inspect_json(image).await {
        Ok(inspect)
            if inspect
                .pointer(&format!("/Config/Labels/{DIGEST_LABEL}"))
                .and_then(serde_json::Value::as_str)
                == Some(digest.as_str()) =>
        {
            return Ok(Ensured::Found);
        }
        // No daemon, no build: its error would only hide why (for an ssh:// host, what ssh said).
        Err(error @ BackendError::DaemonUnavailable { .. }) => return Err(error),
        _ => {}
    }
    let context = copy_context(&fixture.dir, &fixture.context_files, build_dir)
        .map_err(|error| build_failed(error.to_string()))?;
    // The label says what was built: the copy's digest (the sources may have changed since).
    let digest =
        context_digest(context.path(), &[]).map_err(|error| build_failed(error.to_string()))?;
    let request = BuildRequest {
        context: context.path().to_path_buf(),
        tag: image.to_owned(),
        labels: [(DIGEST_LABEL.to_owned(), digest)].into(),
        ..BuildRequest::default()
    };
    match backend.build(&request).await {
        // A backend that cannot label builds still builds, every run.
        Err(BackendError::Unsupported { .. }) => backend.build_image(context.path(), image).await,
        result => result,
    }
    .map(|()| Ensured::Built)
}

/// sha256 over every file of the build context [`copy_context`] makes of `dir` and
/// `context_files` (relative paths, modes and contents, in a stable order), read where the
/// files are: the check hashes the sources (no copy), a build its copy (`context_files`
/// empty). A context file replaces a directory entry of its name; special files are
/// refused as the copy refuses them.
fn context_digest(dir: &Path, context_files: &[(PathBuf, String)]) -> Result<String, ContextError> {
    use std::os::unix::fs::PermissionsExt;
    let mut files = std::collections::BTreeMap::new();
    for (path, relative) in context_entries(dir)? {
        if !path.is_dir() {
            files.insert(relative, path);
        }
    }
    for (host, name) in context_files {
        files.insert(PathBuf::from(name), host.clone());
    }
    let mut hasher = Sha256::new();
    for (relative, source) in files {
        let (mut file, _) =
            crate::input_file::open_regular(&source, u64::MAX).map_err(|error| match error {
                crate::input_file::InputFileError::Special { .. } => {
                    ContextError::Refused(format!("build context file {error}"))
                }
                other => ContextError::Failed(format!("cannot read the build context: {other}")),
            })?;
        let failed = |error: std::io::Error| {
            ContextError::Failed(format!("cannot read {}: {error}", source.display()))
        };
        let mode = file.metadata().map_err(failed)?.permissions().mode();
        let (_, sha256) = crate::workspace::sha256_collected(&mut file).map_err(failed)?;
        hasher.update(format!("{}\0{mode:o}\0{sha256}\n", relative.display()).as_bytes());
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Why a build context could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The context holds something dockproof will not read (a FIFO would hang the
    /// build, a device never ends), or is too deep or too large to walk: the
    /// scenario's input is at fault (`config_invalid`).
    #[error("{0}")]
    Refused(String),
    /// Reading or copying failed.
    #[error("{0}")]
    Failed(String),
}

/// How many directories deep a build context may go.
pub const MAX_CONTEXT_DEPTH: usize = 64;
/// How many files and directories a build context may hold.
pub const MAX_CONTEXT_ENTRIES: usize = 100_000;

/// Every entry under `dir` (path, path relative to `dir`, type not following
/// symlinks), walked without recursion within [`MAX_CONTEXT_DEPTH`] and
/// [`MAX_CONTEXT_ENTRIES`]. A FIFO, device or socket (or a symlink to one) is refused
/// by name.
fn context_entries(dir: &Path) -> Result<Vec<(PathBuf, PathBuf)>, ContextError> {
    let failed = |path: &Path, error: std::io::Error| {
        ContextError::Failed(format!("cannot read {}: {error}", path.display()))
    };
    let mut found = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), 0_usize)];
    while let Some((current, depth)) = pending.pop() {
        for entry in std::fs::read_dir(&current).map_err(|error| failed(&current, error))? {
            let path = entry.map_err(|error| failed(&current, error))?.path();
            // Following symlinks, as the copy does: a link to a FIFO is a FIFO here.
            let metadata = std::fs::metadata(&path).map_err(|error| failed(&path, error))?;
            if let Some(what) = crate::input_file::special_kind(metadata.file_type()) {
                return Err(ContextError::Refused(format!(
                    "build context file {} is {what}, not a regular file; it is refused, not read (remove it from the context)",
                    path.display()
                )));
            }
            if found.len() >= MAX_CONTEXT_ENTRIES {
                return Err(ContextError::Refused(format!(
                    "build context {} holds more than {MAX_CONTEXT_ENTRIES} files and directories",
                    dir.display()
                )));
            }
            let relative = path.strip_prefix(dir).unwrap_or(&path).to_path_buf();
            if metadata.is_dir() {
                if depth + 1 > MAX_CONTEXT_DEPTH {
                    return Err(ContextError::Refused(format!(
                        "build context directory {} is more than {MAX_CONTEXT_DEPTH} levels deep (a symlink loop?)",
                        path.display()
                    )));
                }
                pending.push((path.clone(), depth + 1));
            }
            found.push((path, relative));
        }
    }
    found.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(found)
}

/// Check a build context before anything runs: no FIFO, device or socket in it,
/// within the depth and size limits. The scenario loader calls it.
pub fn check_context(dir: &Path) -> Result<(), ContextError> {
    context_entries(dir).map(|_| ())
}

/// A temporary copy of the build context `dir`, plus the host files its
/// Dockerfile's `# dockproof-context:` lines ask for, made under `parent` (the run's
/// directory: a killed run's contexts go with it when `dockproof clean` removes it).
pub fn prepare_context(
    dir: &Path,
    dockerfile: &str,
    parent: &Path,
) -> Result<tempfile::TempDir, ContextError> {
    let path = dir.join(dockerfile);
    let text = crate::input_file::read_config(&path).map_err(|error| match error {
        crate::input_file::InputFileError::Special { .. } => {
            ContextError::Refused(error.to_string())
        }
        other => ContextError::Failed(other.to_string()),
    })?;
    let (_, context_files) = parse_header_lines(&text).map_err(ContextError::Refused)?;
    copy_context(dir, &context_files, parent)
}

fn copy_context(
    dir: &Path,
    context_files: &[(PathBuf, String)],
    parent: &Path,
) -> Result<tempfile::TempDir, ContextError> {
    std::fs::create_dir_all(parent).map_err(|error| {
        ContextError::Failed(format!("cannot create {}: {error}", parent.display()))
    })?;
    let context = tempfile::Builder::new()
        .prefix("dockproof-build-")
        .tempdir_in(parent)
        .map_err(|error| ContextError::Failed(format!("cannot create a build context: {error}")))?;
    copy_dir(dir, context.path())?;
    for (host, name) in context_files {
        copy_file(host, &context.path().join(name))?;
    }
    Ok(context)
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), ContextError> {
    for (path, relative) in context_entries(from)? {
        let target = to.join(&relative);
        if path.is_dir() {
            std::fs::create_dir_all(&target).map_err(|error| {
                ContextError::Failed(format!("cannot create {}: {error}", target.display()))
            })?;
        } else {
            copy_file(&path, &target)?;
        }
    }
    Ok(())
}

/// Copy one file into a build context, opened non-blocking and checked on its
/// descriptor (a FIFO swapped in after the walk is refused, not waited on).
fn copy_file(from: &Path, to: &Path) -> Result<(), ContextError> {
    let (mut source, _) =
        crate::input_file::open_regular(from, u64::MAX).map_err(|error| match error {
            crate::input_file::InputFileError::Special { .. } => {
                ContextError::Refused(format!("build context file {error}"))
            }
            other => ContextError::Failed(format!("cannot copy into the build context: {other}")),
        })?;
    let failed = |error: std::io::Error| {
        ContextError::Failed(format!(
            "cannot copy {} into the build context: {error}",
            from.display()
        ))
    };
    let permissions = source.metadata().map_err(failed)?.permissions();
    let mut target = std::fs::File::create(to).map_err(failed)?;
    std::io::copy(&mut source, &mut target).map_err(failed)?;
    target.set_permissions(permissions).map_err(failed)?;
    Ok(())
}

fn parse_header(dockerfile: &str) -> Result<(String, ContextFiles), String> {
    let (tag, context_files) = parse_header_lines(dockerfile)?;
    tag.map(|tag| (tag, context_files))
        .ok_or_else(|| "no `# dockproof-image: TAG` header line".to_owned())
}

/// Host file → name inside the build context.
type ContextFiles = Vec<(PathBuf, String)>;

/// The `# dockproof-image:` tag (if any) and `# dockproof-context:` files of a Dockerfile.
fn parse_header_lines(dockerfile: &str) -> Result<(Option<String>, ContextFiles), String> {
    let mut tag = None;
    let mut context_files = Vec::new();
    for line in dockerfile.lines().take_while(|line| line.starts_with('#')) {
        let line = line.trim_start_matches('#').trim();
        if let Some(value) = line.strip_prefix("dockproof-image:") {
            tag = Some(value.trim().to_owned());
        } else if let Some(value) = line.strip_prefix("dockproof-context:") {
            let mut parts = value.split_whitespace();
            match (parts.next(), parts.next(), parts.next()) {
                (Some(host), Some(name), None) if !name.contains('/') => {
                    context_files.push((PathBuf::from(host), name.to_owned()));
                }
                _ => {
                    return Err(format!(
                        "`dockproof-context:` wants `HOST_PATH NAME`, got `{}`",
                        value.trim()
                    ));
                }
            }
        }
    }
    Ok((tag, context_files))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_context_digest_follows_names_and_contents() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(dir.path().join("sub/job"), "#!/bin/sh\n").unwrap();
        let first = context_digest(dir.path(), &[]).unwrap();
        assert_eq!(first, context_digest(dir.path(), &[]).unwrap());
        std::fs::write(dir.path().join("sub/job"), "#!/bin/sh\nexit 1\n").unwrap();
        let changed = context_digest(dir.path(), &[]).unwrap();
        assert_ne!(first, changed);
        std::fs::rename(dir.path().join("sub/job"), dir.path().join("sub/job2")).unwrap();
        assert_ne!(changed, context_digest(dir.path(), &[]).unwrap());
    }

    /// The check hashes the sources; a build labels the copy's digest: the two must agree,
    /// or every run rebuilds (and a changed fixture might not).
    #[test]
    fn the_sources_hash_as_their_copy_does() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fixture = dir.path().join("fixture");
        std::fs::create_dir_all(fixture.join("sub/deeper")).unwrap();
        std::fs::write(fixture.join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(fixture.join("sub/deeper/job"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            fixture.join("sub/deeper/job"),
            std::fs::Permissions::from_mode(0o750),
        )
        .unwrap();
        std::fs::write(fixture.join("tool"), "replaced by the context file\n").unwrap();
        std::os::unix::fs::symlink("Dockerfile", fixture.join("linked")).unwrap();
        let host = dir.path().join("host-tool");
        std::fs::write(&host, "the host's tool\n").unwrap();
        std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o755)).unwrap();
        let context_files = vec![(host.clone(), "tool".to_owned())];
        let copied = copy_context(&fixture, &context_files, &dir.path().join("build")).unwrap();
        assert_eq!(
            context_digest(&fixture, &context_files).unwrap(),
            context_digest(copied.path(), &[]).unwrap()
        );
        // And every shipped fixture image, as the runs check them.
        let images = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/images");
        let scanned = FixtureImages::scan(&images, true).unwrap();
        assert!(!scanned.images.is_empty());
        for (tag, fixture) in &scanned.images {
            let copied =
                copy_context(&fixture.dir, &fixture.context_files, &dir.path().join("b")).unwrap();
            assert_eq!(
                context_digest(&fixture.dir, &fixture.context_files).unwrap(),
                context_digest(copied.path(), &[]).unwrap(),
                "{tag}"
            );
        }
    }

    #[test]
    fn reads_the_header() {
        let (tag, files) = parse_header(
            "# dockproof-image: a/b:1\n# dockproof-context: /bin/busybox busybox\nFROM scratch\n",
        )
        .unwrap();
        assert_eq!(tag, "a/b:1");
        assert_eq!(
            files,
            vec![(PathBuf::from("/bin/busybox"), "busybox".to_owned())]
        );
        assert!(parse_header("FROM scratch\n").is_err());
        assert!(parse_header("# dockproof-image: x\n# dockproof-context: /a\n").is_err());
    }
}
