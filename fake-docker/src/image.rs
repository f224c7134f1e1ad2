//! Fake image definitions (`*.yaml` files named by `FAKE_DOCKER_IMAGES`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dockproof_recording::{self as recording, Recording};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::health::HealthConfig;
use crate::http::HttpService;
use crate::imageconfig::ImageConfig;
use crate::program::{Program, RawStep, compile};

/// Default for `FAKE_DOCKER_IMAGES`.
pub const DEFAULT_IMAGES: &str = "fixtures/fake-images";

/// A fake image definition that could not be loaded.
#[derive(Debug, Error)]
pub enum ImageError {
    #[error("cannot read fake image definitions at {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid fake image definition {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid fake image definition {path}: program {program:?}: {source}")]
    Program {
        path: PathBuf,
        program: String,
        source: crate::program::StepError,
    },
}

/// What kind of entry a `files:` item is.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FileType {
    #[default]
    File,
    Dir,
    Symlink,
}

/// A file the image contains (`files:`), copied into each container's root at create.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ImageFile {
    pub content: String,
    /// A text file (relative to the definition's directory) whose bytes are the content.
    pub from: Option<String>,
    /// `file` (default), `dir` or `symlink`.
    #[serde(rename = "type")]
    pub kind: FileType,
    /// A symlink's target, as written in the link.
    pub target: Option<String>,
    /// Octal mode, e.g. `"0755"` (default) or `"0644"` (not executable: running it → 126).
    pub mode: Option<String>,
    /// Owner reported by `cp` and `save` archives (default 0).
    pub uid: u64,
    /// Group reported by `cp` and `save` archives (default 0).
    pub gid: u64,
    /// A recorded image's file (`FAKE_DOCKER_RECORDINGS`): its bytes, or only its size.
    #[serde(skip)]
    pub recorded: Option<RecordedBytes>,
}

/// The bytes of a file of a recorded image tree.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordedBytes {
    /// The content was kept (a check read it when it was recorded).
    Bytes(Vec<u8>),
    /// Only the size was kept: the file is this many zero bytes (sparse).
    Zeros(u64),
}

impl ImageFile {
    /// The permission bits (and setuid/setgid/sticky): `mode`, else 0755 (0777 for a symlink).
    pub fn mode_bits(&self) -> u32 {
        let default = if self.kind == FileType::Symlink {
            0o777
        } else {
            0o755
        };
        self.mode
            .as_deref()
            .and_then(|m| u32::from_str_radix(m, 8).ok())
            .unwrap_or(default)
    }
}

/// How `docker build` of this image goes (`build:`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BuildSpec {
    /// The Dockerfile this definition is the result of (relative to the definition's
    /// directory or to the working directory).
    pub dockerfile: Option<String>,
    /// Output lines printed under a step (`3: ["line"]`), like a `RUN`'s output.
    pub output: BTreeMap<usize, Vec<String>>,
    /// The build fails at a step.
    pub fail: Option<BuildFailure>,
}

/// A failing build step.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BuildFailure {
    /// 1-based step number.
    pub step: usize,
    /// The instruction text (default: the Dockerfile's step, e.g. `RUN make`).
    pub instruction: Option<String>,
    /// The command's exit code; also docker build's exit code.
    pub exit_code: i32,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
}
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DefinitionFile {
    name: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    config: ImageConfig,
    #[serde(default)]
    programs: BTreeMap<String, Vec<RawStep>>,
    #[serde(default)]
    files: BTreeMap<String, ImageFile>,
    #[serde(default)]
    http: Vec<HttpService>,
    #[serde(default)]
    build: Option<BuildSpec>,
    /// Commands the real image has that this definition does not model (e.g. every
    /// busybox applet): running one is refused with the reason, never answered as
    /// "not found".
    #[serde(default)]
    unmodelled_commands: Vec<String>,
    /// A committed image: the definition it was committed from (`commit`).
    #[serde(default)]
    base: Option<PathBuf>,
    /// A committed image: the snapshot of the container's root copied into new containers.
    #[serde(default)]
    rootfs: Option<PathBuf>,
    /// A built image: `config` is the whole configuration derived from the Dockerfile
    /// (the base definition only adds its programs, files and services).
    #[serde(default)]
    built: bool,
    /// The twin of a dockproof fixture image (`fixtures/images/`): dockproof builds the
    /// real one with the label `dockproof.fixture-digest` (a digest of its build
    /// context) as the build's last step, so the fake image carries that label too.
    #[serde(default)]
    fixture: bool,
    /// The version of the daemon that built the real twin (`DockerVersion`), as its
    /// `image inspect` shows it; default: fake-docker's own server version.
    #[serde(default)]
    docker_version: Option<String>,
    /// A replayed build: the recording whose `images` entry gives its files.
    #[serde(default)]
    recorded_tree: Option<RecordedTreeRef>,
    /// A committed image whose `base` is a recording (`recording.json`): the reference
    /// of the recorded image it was committed from (an image only a recording describes).
    #[serde(default)]
    base_reference: Option<String>,
}

/// Where a replayed build's files are: the `images` entry `image` of the recording in `dir`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordedTreeRef {
    dir: PathBuf,
    image: String,
}

/// A loaded fake image.
#[derive(Debug, Clone)]
pub struct Image {
    /// Normalised reference of the definition, e.g. `dockproof/job-runner:1`.
    pub reference: String,
    /// The tags the image has now (`RepoTags`): the reference unless removed, plus tags
    /// given by `build -t`; see `imagestore`.
    pub tags: Vec<String>,
    /// The definition file.
    pub source: PathBuf,
    /// `sha256:` + hex digest of the definition file.
    pub id: String,
    pub size: u64,
    pub config: ImageConfig,
    pub healthcheck: Option<HealthConfig>,
    pub programs: BTreeMap<String, Program>,
    pub files: BTreeMap<String, ImageFile>,
    pub http: Vec<HttpService>,
    pub build: Option<BuildSpec>,
    /// A committed image's root snapshot, copied over `files:` into new containers.
    pub rootfs: Option<PathBuf>,
    /// Commands the real image has that the definition does not model.
    pub unmodelled_commands: Vec<String>,
    /// `dockproof.fixture-digest` of a fixture twin (`fixture: true`): sha256 over the
    /// Dockerfile's directory (relative path, mode, content sha256 of each file), the
    /// formula dockproof uses for the real one's build context.
    pub fixture_digest: Option<String>,
    /// Filesystem layers of the image (`RootFS.Layers`): the `COPY`, `ADD`, `RUN` and
    /// `WORKDIR` steps of the last stage of `build.dockerfile` (at least 1).
    pub layers: usize,
    /// The last build step, as the legacy builder records it in `ContainerConfig.Cmd`.
    pub last_step: Option<String>,
    /// `DockerVersion`: the daemon that built the image.
    pub docker_version: String,
}

/// The image label dockproof gives the fixture images it builds.
pub const FIXTURE_DIGEST_LABEL: &str = "dockproof.fixture-digest";

/// What the Dockerfile a definition names says about the image's build history:
/// (layers, last step). `(1, None)` when there is none or it cannot be read.
fn build_history(dir: &Path, build: Option<&BuildSpec>) -> (usize, Option<String>) {
    let Some(path) = build.and_then(|b| b.dockerfile.as_deref()) else {
        return (1, None);
    };
    parsed::reads(&dir.join(path));
    let Ok(text) = std::fs::read_to_string(dir.join(path)) else {
        return (1, None);
    };
    let file = crate::dockerfile::parse(&text);
    let last_stage = file
        .instructions
        .iter()
        .rposition(|i| i.keyword == "FROM")
        .map_or(0, |index| index + 1);
    let layers = file.instructions[last_stage..]
        .iter()
        .filter(|i| matches!(i.keyword.as_str(), "COPY" | "ADD" | "RUN" | "WORKDIR"))
        .count();
    (
        layers.max(1),
        file.instructions.last().map(|i| i.text.clone()),
    )
}

/// sha256 over every file under `dir` (relative path, octal mode, content sha256), sorted:
/// dockproof's fixture digest formula, over the Dockerfile's directory.
fn directory_digest(dir: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        parsed::reads(&current);
        for entry in std::fs::read_dir(&current).ok()? {
            let path = entry.ok()?.path();
            if path.is_dir() {
                // A fixture directory is a few files; more than this is not one.
                if pending.len() + files.len() > 10_000 {
                    return None;
                }
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut hasher = Sha256::new();
    for file in files {
        let relative = file.strip_prefix(dir).unwrap_or(&file);
        parsed::reads(&file);
        let mode = std::fs::metadata(&file).ok()?.permissions().mode();
        let content = hex::encode(Sha256::digest(std::fs::read(&file).ok()?));
        hasher.update(format!("{}\0{mode:o}\0{content}\n", relative.display()).as_bytes());
    }
    Some(hex::encode(hasher.finalize()))
}

/// Where a refused, unmodelled command sends the user.
pub const UNMODELLED_HINT: &str = "see docs/fake-docker.md#commands-the-fake-does-not-model";

/// Adds `:latest` when a reference has neither tag nor digest, like docker does.
pub fn normalize_reference(reference: &str) -> String {
    let last_component = reference.rsplit('/').next().unwrap_or(reference);
    if reference.contains('@') || last_component.contains(':') {
        reference.to_string()
    } else {
        format!("{reference}:latest")
    }
}

/// The repository part of a reference (no tag), as docker names it in pull errors.
pub fn repository_of(reference: &str) -> String {
    let without_digest = reference.split('@').next().unwrap_or(reference);
    match without_digest.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo.to_string(),
        _ => without_digest.to_string(),
    }
}

impl Image {
    /// Parses a definition file's `bytes`, or takes the image from [`parsed`]: a process
    /// that asks for the same definitions again (the call server, and every call it
    /// forks after the first `create`) parses each once.
    fn parse(path: &Path, bytes: &[u8]) -> Result<Image, ImageError> {
        let key = (path.to_path_buf(), <[u8; 32]>::from(Sha256::digest(bytes)));
        if let Some(image) = parsed::lookup(&key) {
            return Ok(image);
        }
        let (result, reads) = parsed::recording(|| Self::parse_uncached(path, bytes));
        if let (Ok(image), Some(reads)) = (&result, reads) {
            parsed::store(key, image, reads);
        }
        result
    }

    fn parse_uncached(path: &Path, bytes: &[u8]) -> Result<Image, ImageError> {
        let text = String::from_utf8_lossy(bytes);
        let mut file: DefinitionFile =
            crate::yaml::from_str(&text).map_err(|e| ImageError::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        if let Some(base) = file.base.clone() {
            // Its base and recordings are read too: parsed again every time.
            parsed::uncacheable();
            return Self::committed(path, bytes, &file, &base);
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        for (name, entry) in &mut file.files {
            if let Some(from) = &entry.from {
                let source = dir.join(from);
                parsed::reads(&source);
                entry.content =
                    std::fs::read_to_string(&source).map_err(|e| ImageError::Parse {
                        path: path.to_path_buf(),
                        message: format!("files.{name}.from: {}: {e}", source.display()),
                    })?;
            }
            if entry.kind == FileType::Symlink && entry.target.is_none() {
                return Err(ImageError::Parse {
                    path: path.to_path_buf(),
                    message: format!("files.{name}: a symlink needs a `target`"),
                });
            }
        }
        let mut programs = BTreeMap::new();
        for (name, raw) in file.programs {
            let program = compile(raw).map_err(|source| ImageError::Program {
                path: path.to_path_buf(),
                program: name.clone(),
                source,
            })?;
            programs.insert(name, program);
        }
        let healthcheck = match &file.config.healthcheck {
            Some(raw) => Some(raw.compile().map_err(|message| ImageError::Parse {
                path: path.to_path_buf(),
                message: format!("config.healthcheck: {message}"),
            })?),
            None => None,
        };
        let reference = normalize_reference(&file.name);
        let (layers, mut last_step) = build_history(dir, file.build.as_ref());
        let fixture_digest = if file.fixture {
            let dockerfile_dir = file
                .build
                .as_ref()
                .and_then(|b| b.dockerfile.as_deref())
                .and_then(|d| dir.join(d).parent().map(Path::to_path_buf));
            let digest = dockerfile_dir.as_deref().and_then(directory_digest);
            if digest.is_none() {
                return Err(ImageError::Parse {
                    path: path.to_path_buf(),
                    message: "`fixture: true` needs a readable `build.dockerfile` (the fixture's Dockerfile)".into(),
                });
            }
            digest
        } else {
            None
        };
        if let Some(digest) = &fixture_digest {
            last_step = Some(format!("LABEL {FIXTURE_DIGEST_LABEL}={digest}"));
        }
        if let Some(tree) = &file.recorded_tree {
            let recording =
                dockproof_recording::Recording::load(&tree.dir).map_err(|e| ImageError::Parse {
                    path: path.to_path_buf(),
                    message: format!("recorded_tree: {e}"),
                })?;
            let files = recording
                .images
                .iter()
                .find(|image| image.image == tree.image)
                .and_then(|image| recorded_files(&tree.dir, image))
                .ok_or_else(|| ImageError::Parse {
                    path: path.to_path_buf(),
                    message: format!(
                        "recorded_tree: no usable tree of {} in {}",
                        tree.image,
                        tree.dir.display()
                    ),
                })?;
            file.files.extend(files);
        }
        Ok(Image {
            tags: vec![reference.clone()],
            reference,
            source: path.to_path_buf(),
            id: format!("sha256:{}", hex::encode(Sha256::digest(bytes))),
            size: file.size,
            config: file.config,
            healthcheck,
            programs,
            files: file.files,
            http: file.http,
            build: file.build,
            rootfs: None,
            unmodelled_commands: file.unmodelled_commands,
            fixture_digest,
            layers,
            last_step,
            docker_version: file
                .docker_version
                .unwrap_or_else(|| crate::SERVER_VERSION.to_string()),
        })
    }

    /// A committed image: its base definition with the committed name, env and root snapshot.
    fn committed(
        path: &Path,
        bytes: &[u8],
        file: &DefinitionFile,
        base: &Path,
    ) -> Result<Image, ImageError> {
        let mut image = match &file.base_reference {
            Some(reference) => recorded_base(base, reference).ok_or_else(|| ImageError::Parse {
                path: path.to_path_buf(),
                message: format!("base: no recorded image {reference} in {}", base.display()),
            })?,
            None => load_file(base)?,
        };
        image.reference = normalize_reference(&file.name);
        image.tags = vec![image.reference.clone()];
        image.source = path.to_path_buf();
        image.id = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
        if file.built {
            image.config = file.config.clone();
            image.healthcheck = match &file.config.healthcheck {
                Some(raw) => Some(raw.compile().map_err(|message| ImageError::Parse {
                    path: path.to_path_buf(),
                    message: format!("config.healthcheck: {message}"),
                })?),
                None => None,
            };
            image.build = None;
        } else {
            image.config.env = file.config.env.clone();
        }
        image.rootfs = file.rootfs.clone();
        // A committed or built image is no fixture: one layer more than its base.
        image.fixture_digest = None;
        image.layers += 1;
        image.docker_version = crate::SERVER_VERSION.to_string();
        Ok(image)
    }

    /// Whether `name` (a reference, full ID or ID prefix of 12+ hex) names this image.
    pub fn matches(&self, name: &str) -> bool {
        let hex = self.id.trim_start_matches("sha256:");
        let bare = name.trim_start_matches("sha256:");
        let normalized = normalize_reference(name);
        self.tags.contains(&normalized)
            || name == self.id
            || (bare.len() >= 12
                && hex.starts_with(bare)
                && bare.bytes().all(|b| b.is_ascii_hexdigit()))
    }

    /// The program for a container command's `argv[0]` (a path's last component counts).
    pub fn program(&self, command: &str) -> Option<&Program> {
        self.programs.get(command).or_else(|| {
            let base = command.rsplit('/').next().unwrap_or(command);
            command
                .contains('/')
                .then(|| self.programs.get(base))
                .flatten()
        })
    }

    /// Why the fake refuses to run `command` in this image: the real image has it, the
    /// definition does not model it. `None` when it is a program, or not known to exist.
    pub fn unmodelled(&self, command: &str) -> Option<String> {
        if self.program(command).is_some() {
            return None;
        }
        let base = command.rsplit('/').next().unwrap_or(command);
        self.unmodelled_commands
            .iter()
            .any(|name| name == base)
            .then(|| {
                format!(
                    "fake image {} has no program `{base}`: run it on a real daemon, or record it — {UNMODELLED_HINT}",
                    self.reference
                )
            })
    }

    /// The short (12 hex) ID, as `images` prints it.
    pub fn short_id(&self) -> &str {
        let hex = self.id.trim_start_matches("sha256:");
        &hex[..12.min(hex.len())]
    }

    /// `EXPOSE`d ports (`config.exposed_ports` and every `http:` port), normalised and sorted.
    pub fn exposed(&self) -> Vec<String> {
        let mut ports: Vec<String> = self
            .config
            .exposed_ports
            .iter()
            .map(|p| crate::ports::normalize_port(p))
            .chain(self.http.iter().filter_map(|s| {
                s.port(&crate::expand::env_vars(&self.config.env))
                    .map(|p| format!("{p}/tcp"))
            }))
            .collect();
        ports.sort();
        ports.dedup();
        ports
    }

    /// The HTTP service on a container port, given the container's variables.
    pub fn service(&self, port: u16, vars: &BTreeMap<String, String>) -> Option<&HttpService> {
        self.http.iter().find(|s| s.port(vars) == Some(port))
    }

    /// The labels an image has: its configuration's, and a fixture twin's digest label.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.config.labels.clone();
        if let Some(digest) = &self.fixture_digest {
            labels.insert(FIXTURE_DIGEST_LABEL.to_string(), digest.clone());
        }
        labels
    }

    /// The IDs of the image's layers (`RootFS.Layers`), oldest first.
    pub fn layer_ids(&self) -> Vec<String> {
        layer_ids(&self.id, self.layers)
    }

    /// An image configuration object (`Config`, `ContainerConfig`) with `cmd` as its `Cmd`.
    fn config_json(&self, hostname: &str, cmd: &[String], parent: &str) -> Value {
        let config = &self.config;
        let exposed: serde_json::Map<String, Value> =
            self.exposed().into_iter().map(|p| (p, json!({}))).collect();
        let labels = self.labels();
        let mut object = serde_json::Map::new();
        for (key, value) in [
            ("Hostname", json!(hostname)),
            ("Domainname", json!("")),
            ("User", json!(config.user)),
            ("AttachStdin", json!(false)),
            ("AttachStdout", json!(false)),
            ("AttachStderr", json!(false)),
        ] {
            object.insert(key.into(), value);
        }
        // Measured: the daemon leaves ExposedPorts and Healthcheck out when there are none.
        if !exposed.is_empty() {
            object.insert("ExposedPorts".into(), Value::Object(exposed));
        }
        for (key, value) in [
            ("Tty", json!(false)),
            ("OpenStdin", json!(false)),
            ("StdinOnce", json!(false)),
            ("Env", null_if_empty(&config.env)),
            ("Cmd", null_if_empty(cmd)),
        ] {
            object.insert(key.into(), value);
        }
        if let Some(health) = &self.healthcheck {
            object.insert("Healthcheck".into(), health.to_json());
        }
        for (key, value) in [
            ("Image", json!(parent)),
            (
                "Volumes",
                if config.volumes.is_empty() {
                    Value::Null
                } else {
                    Value::Object(
                        config
                            .volumes
                            .iter()
                            .map(|v| (v.clone(), json!({})))
                            .collect(),
                    )
                },
            ),
            ("WorkingDir", json!(config.workdir)),
            ("Entrypoint", null_if_empty(&config.entrypoint)),
            ("OnBuild", Value::Null),
            (
                "Labels",
                if labels.is_empty() {
                    Value::Null
                } else {
                    json!(labels)
                },
            ),
        ] {
            object.insert(key.into(), value);
        }
        Value::Object(object)
    }

    /// The `docker image inspect` object, in the daemon's key order. An image built
    /// from a Dockerfile (a `build.dockerfile`) has the legacy builder's history: a
    /// parent image and the last step's container (`Container`, `ContainerConfig`).
    pub fn inspect_json(&self) -> Value {
        let (parent, container, container_config) = match &self.last_step {
            Some(step) => {
                let parent = format!(
                    "sha256:{}",
                    hash_hex(&format!("fake-docker/parent/{}", self.id))
                );
                let container = hash_hex(&format!("fake-docker/build-container/{}", self.id));
                let cmd: Vec<String> = ["/bin/sh", "-c", "#(nop) ", step.as_str()]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                let config = self.config_json(&container[..12], &cmd, &parent);
                (parent, container, config)
            }
            None => (String::new(), String::new(), self.config_json("", &[], "")),
        };
        json!({
            "Id": self.id,
            "RepoTags": self.tags,
            "RepoDigests": [],
            "Parent": parent,
            "Comment": "",
            "Created": crate::FIXED_TIME,
            "Container": container,
            "ContainerConfig": container_config,
            "DockerVersion": self.docker_version,
            "Author": "",
            "Config": self.config_json("", &self.config.cmd, &parent),
            "Architecture": "amd64",
            "Os": "linux",
            "Size": self.size,
            "VirtualSize": self.size,
            "GraphDriver": graph_driver(&self.id, self.layers, None),
            "RootFS": {
                "Type": "layers",
                "Layers": self.layer_ids().iter().map(|id| format!("sha256:{id}")).collect::<Vec<_>>(),
            },
            "Metadata": { "LastTagTime": crate::FIXED_TIME },
        })
    }
}

/// The IDs of an image's layers, oldest first: hashes of the image ID and the layer's
/// position.
pub fn layer_ids(image_id: &str, layers: usize) -> Vec<String> {
    (1..=layers.max(1))
        .map(|n| hash_hex(&format!("fake-docker/layer/{image_id}/{n}")))
        .collect()
}

/// The `GraphDriver` object of an image (or, with `container`, of a container of it):
/// overlay2 directories named by layer hashes under the daemon's root, as measured.
pub fn graph_driver(image_id: &str, layers: usize, container: Option<&str>) -> Value {
    let dir = |id: &str| format!("/var/lib/docker/overlay2/{id}");
    let ids = layer_ids(image_id, layers);
    let mut lower: Vec<String> = ids
        .iter()
        .rev()
        .map(|id| format!("{}/diff", dir(id)))
        .collect();
    let top = match container {
        Some(id) => {
            let top = hash_hex(&format!("fake-docker/rw-layer/{id}"));
            lower.insert(0, format!("{}-init/diff", dir(&top)));
            top
        }
        None => {
            lower.remove(0);
            ids.last().cloned().unwrap_or_default()
        }
    };
    let mut data = serde_json::Map::new();
    if !lower.is_empty() {
        data.insert("LowerDir".into(), json!(lower.join(":")));
    }
    data.insert("MergedDir".into(), json!(format!("{}/merged", dir(&top))));
    data.insert("UpperDir".into(), json!(format!("{}/diff", dir(&top))));
    data.insert("WorkDir".into(), json!(format!("{}/work", dir(&top))));
    json!({ "Data": data, "Name": "overlay2" })
}

/// sha256 of `text`, in hex.
pub fn hash_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// `null` for an empty list, as Go's nil slices encode.
pub fn null_if_empty(items: &[String]) -> Value {
    if items.is_empty() {
        Value::Null
    } else {
        json!(items)
    }
}

/// Loads every image named by a `:`-separated list of directories and files.
pub fn load_all(spec: &str) -> Result<Vec<Image>, ImageError> {
    let mut images: Vec<Image> = Vec::new();
    for file in definition_files(spec)? {
        // A definition removed since the directory was listed is simply gone.
        if let Some(image) = load_listed(&file)? {
            images.push(image);
        }
    }
    // Images only a recording knows (a team's own image), after every definition.
    let recorded = recorded_images(&images);
    images.extend(recorded);
    Ok(images)
}

/// Images the recordings name that no definition (or earlier recording) has: a team's
/// own image becomes known to the fake by its recording alone.
fn recorded_images(defined: &[Image]) -> Vec<Image> {
    let mut found: Vec<Image> = Vec::new();
    for dir in crate::recordings::configured() {
        let Ok(recording) = Recording::load(&dir) else {
            // An unreadable recording is reported when a container is matched against it.
            continue;
        };
        // A tree a `cst:` step recorded first: it has the image's files too.
        for recorded in &recording.images {
            let known = |image: &Image| image.matches(&recorded.image);
            if recorded.image_id.is_empty() || defined.iter().any(known) || found.iter().any(known)
            {
                continue;
            }
            found.extend(Image::recorded_tree(
                &dir.join(recording::FILE_NAME),
                &dir,
                recorded,
            ));
        }
        for recorded in &recording.containers {
            let call = &recorded.call;
            let known = |image: &Image| image.matches(&call.image);
            if call.image_id.is_empty() || defined.iter().any(known) || found.iter().any(known) {
                continue;
            }
            found.push(Image::recorded(&dir.join(recording::FILE_NAME), call));
        }
    }
    found
}

/// The definition whose ID (the sha256 of its file) is `id`, parsing only that
/// file: every container operation needs its image, and parsing YAML is most
/// of what a short fake-docker process spends.
pub fn load_by_id(spec: &str, id: &str) -> Result<Option<Image>, ImageError> {
    for file in definition_files(spec)? {
        let bytes = match std::fs::read(&file) {
            Ok(bytes) => bytes,
            // Removed since the directory was listed.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(ImageError::Read { path: file, source }),
        };
        if format!("sha256:{}", hex::encode(Sha256::digest(&bytes))) == id {
            return Image::parse(&file, &bytes).map(Some);
        }
    }
    Ok(None)
}

impl Image {
    /// An image known only from a recording (`FAKE_DOCKER_RECORDINGS`): the recorded
    /// reference, ID and configuration, no programs or files (its containers replay).
    pub fn recorded(source: &Path, call: &dockproof_recording::Call) -> Image {
        Self::from_recorded_config(source, &call.image, &call.image_id, &call.image_config)
    }

    /// An image whose tree a `cst:` step recorded: its config, size and files (a file
    /// whose content was not kept is as many zero bytes; devices and FIFOs are left
    /// out). `None` when a kept content cannot be read (a damaged blob): the image is
    /// not made up.
    pub fn recorded_tree(
        source: &Path,
        dir: &Path,
        recorded: &dockproof_recording::RecordedImage,
    ) -> Option<Image> {
        let mut image = Self::from_recorded_config(
            source,
            &recorded.image,
            &recorded.image_id,
            &recorded.image_config,
        );
        image.size = recorded.size.unwrap_or(0);
        image.files = recorded_files(dir, recorded)?;
        Some(image)
    }

    fn from_recorded_config(
        source: &Path,
        reference: &str,
        id: &str,
        config: &BTreeMap<String, Value>,
    ) -> Image {
        let strings = |key: &str| -> Vec<String> {
            config
                .get(key)
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .filter_map(|item| item.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let keys = |key: &str| -> Vec<String> {
            config
                .get(key)
                .and_then(Value::as_object)
                .map(|map| map.keys().cloned().collect())
                .unwrap_or_default()
        };
        let text = |key: &str| {
            config
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let labels = config
            .get("Labels")
            .and_then(Value::as_object)
            .map(|map| {
                map.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let reference = normalize_reference(reference);
        Image {
            tags: vec![reference.clone()],
            reference,
            source: source.to_path_buf(),
            id: id.to_owned(),
            size: 0,
            config: ImageConfig {
                user: text("User"),
                env: strings("Env"),
                workdir: text("WorkingDir"),
                entrypoint: strings("Entrypoint"),
                cmd: strings("Cmd"),
                labels,
                exposed_ports: keys("ExposedPorts"),
                volumes: keys("Volumes"),
                healthcheck: None,
            },
            // The recorded `HEALTHCHECK` (its statuses are replayed, its command never run).
            healthcheck: config
                .get("Healthcheck")
                .filter(|value| value.is_object())
                .map(|check| HealthConfig {
                    test: check["Test"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|item| item.as_str().map(str::to_owned))
                        .collect(),
                    interval_ns: check["Interval"].as_i64().unwrap_or(0),
                    timeout_ns: check["Timeout"].as_i64().unwrap_or(0),
                    start_period_ns: check["StartPeriod"].as_i64().unwrap_or(0),
                    retries: check["Retries"].as_i64().unwrap_or(0),
                }),
            programs: BTreeMap::new(),
            files: BTreeMap::new(),
            http: Vec::new(),
            build: None,
            rootfs: None,
            unmodelled_commands: Vec::new(),
            // A recorded image keeps its config, not its layers or build: the least the
            // fake shows for any image.
            fixture_digest: None,
            layers: 1,
            last_step: None,
            docker_version: crate::SERVER_VERSION.to_string(),
        }
    }
}

/// A recorded image tree as `files:` (a file whose content was not kept is as many zero
/// bytes; devices and FIFOs are left out). `None` when the tree is unsafe (a path not
/// plain and absolute, or beneath a symlink: installing it would write wherever the
/// link points) or a kept content cannot be read (a damaged blob): never made up.
fn recorded_files(
    dir: &Path,
    recorded: &dockproof_recording::RecordedImage,
) -> Option<BTreeMap<String, ImageFile>> {
    use dockproof_recording::EntryKind;
    let kinds: BTreeMap<&str, EntryKind> = recorded
        .tree
        .iter()
        .map(|entry| (entry.path.as_str(), entry.kind))
        .collect();
    let mut files = BTreeMap::new();
    for entry in &recorded.tree {
        let plain = entry.path != "/" && dockproof_recording::clean(&entry.path) == entry.path;
        let beneath_link = std::iter::successors(Path::new(&entry.path).parent(), |p| p.parent())
            .any(|parent| {
                kinds.get(parent.to_str().unwrap_or_default()) == Some(&EntryKind::Symlink)
            });
        if !plain || beneath_link {
            return None;
        }
        let kind = match entry.kind {
            EntryKind::File => FileType::File,
            EntryKind::Dir => FileType::Dir,
            EntryKind::Symlink => FileType::Symlink,
            EntryKind::Other => continue,
        };
        let bytes = match (&entry.content, kind) {
            (Some(content), FileType::File) => Some(RecordedBytes::Bytes(content.bytes(dir).ok()?)),
            (None, FileType::File) => Some(RecordedBytes::Zeros(entry.size.unwrap_or(0))),
            _ => None,
        };
        files.insert(
            entry.path.clone(),
            ImageFile {
                kind,
                target: entry.target.clone(),
                mode: Some(format!("{:04o}", entry.mode_bits())),
                uid: entry.uid,
                gid: entry.gid,
                recorded: bytes,
                ..ImageFile::default()
            },
        );
    }
    Some(files)
}

/// The definition files named by a `:`-separated list of directories and files, in load order.
fn definition_files(spec: &str) -> Result<Vec<PathBuf>, ImageError> {
    let mut definitions = Vec::new();
    for entry in spec.split(':').filter(|e| !e.is_empty()) {
        let path = PathBuf::from(entry);
        // One look at the entry: asking "a directory?" and then "there?" raced with a
        // concurrent `commit`/`build` making the state's `committed` directory between
        // the two, and read that directory as a file.
        match std::fs::read_dir(&path) {
            Ok(listing) => {
                let mut files: Vec<PathBuf> = listing
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                    .collect();
                files.sort();
                definitions.extend(files);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => definitions.push(path),
            // A missing entry simply contributes no images, like an empty image store.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(ImageError::Read { path, source }),
        }
    }
    Ok(definitions)
}

/// The image `reference` as the recording `path` (a `recording.json`) describes it: its
/// recorded tree, else a recorded container's call (the base of a commit of a replayed
/// container whose image only a recording describes).
fn recorded_base(path: &Path, reference: &str) -> Option<Image> {
    let dir = path.parent()?;
    let recording = dockproof_recording::Recording::load(dir).ok()?;
    let reference = normalize_reference(reference);
    let same = |name: &str| normalize_reference(name) == reference;
    if let Some(recorded) = recording.images.iter().find(|i| same(&i.image)) {
        return Image::recorded_tree(path, dir, recorded);
    }
    recording
        .containers
        .iter()
        .find(|c| same(&c.call.image) && !c.call.image_id.is_empty())
        .map(|c| Image::recorded(path, &c.call))
}

/// Definitions parsed by this process, by (path, sha256 of the file), each with what the
/// files it read (a `files.X.from`, the Dockerfile of its `build`, a fixture's directory)
/// looked like then: an entry whose reads changed since is parsed again. Committed
/// images (a `base`) are never kept.
mod parsed {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::os::unix::fs::MetadataExt;
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    use super::Image;

    /// (path, sha256 of its bytes).
    pub(super) type Key = (PathBuf, [u8; 32]);

    /// What a read file looked like: device, inode, size, change and modification times
    /// (nanoseconds); `None` when it could not be found.
    pub(super) type Signature = Option<(u64, u64, u64, i64, i64, i64, i64)>;

    /// At most this many definitions are kept (then all are dropped: definitions are few).
    const CAPACITY: usize = 256;

    /// A kept image and what its reads looked like.
    type Entry = (Image, Vec<(PathBuf, Signature)>);

    static PARSED: Mutex<Option<HashMap<Key, Entry>>> = Mutex::new(None);

    /// Files read by the parse under way on this thread, each as it looked just before
    /// it was read (`None`: the parse cannot be kept).
    struct Reads(Option<Vec<(PathBuf, Signature)>>);

    thread_local! {
        static READS: RefCell<Option<Reads>> = const { RefCell::new(None) };
    }

    fn signature(path: &Path) -> Signature {
        let meta = std::fs::metadata(path).ok()?;
        Some((
            meta.dev(),
            meta.ino(),
            meta.size(),
            meta.ctime(),
            meta.ctime_nsec(),
            meta.mtime(),
            meta.mtime_nsec(),
        ))
    }

    /// The parse under way reads `path`.
    pub(super) fn reads(path: &Path) {
        READS.with(|reads| {
            if let Some(Reads(Some(paths))) = reads.borrow_mut().as_mut() {
                paths.push((path.to_path_buf(), signature(path)));
            }
        });
    }

    /// The parse under way cannot be kept.
    pub(super) fn uncacheable() {
        READS.with(|reads| {
            if let Some(reads) = reads.borrow_mut().as_mut() {
                reads.0 = None;
            }
        });
    }

    /// Runs `parse`, noting what it reads; `None` for a parse that cannot be kept.
    pub(super) fn recording<T>(
        parse: impl FnOnce() -> T,
    ) -> (T, Option<Vec<(PathBuf, Signature)>>) {
        let outer = READS.with(|reads| reads.replace(Some(Reads(Some(Vec::new())))));
        let result = parse();
        let mine = READS.with(|reads| reads.replace(outer));
        // A nested parse (a committed image's base) makes the outer one uncacheable already.
        (result, mine.and_then(|reads| reads.0))
    }

    /// The image kept for `key`, if every file it read is as it was.
    pub(super) fn lookup(key: &Key) -> Option<Image> {
        let kept = PARSED.lock().ok()?;
        let (image, reads) = kept.as_ref()?.get(key)?;
        reads
            .iter()
            .all(|(path, seen)| signature(path) == *seen)
            .then(|| image.clone())
    }

    /// Keeps `image` for `key`, with what its `reads` looked like before they were read
    /// (a file changed while it was parsed makes the entry stale at once).
    pub(super) fn store(key: Key, image: &Image, reads: Vec<(PathBuf, Signature)>) {
        if let Ok(mut kept) = PARSED.lock() {
            let map = kept.get_or_insert_with(HashMap::new);
            if map.len() >= CAPACITY {
                map.clear();
            }
            map.insert(key, (image.clone(), reads));
        }
    }
}

/// A listed definition file, `None` when it was removed since it was listed.
fn load_listed(path: &Path) -> Result<Option<Image>, ImageError> {
    match std::fs::read(path) {
        Ok(bytes) => Image::parse(path, &bytes).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ImageError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn load_file(path: &Path) -> Result<Image, ImageError> {
    let bytes = std::fs::read(path).map_err(|source| ImageError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Image::parse(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every fake-docker process of a run lists the state's `committed` directory while
    /// others `commit` and `build` into it (CI once failed a build on "cannot read fake
    /// image definitions at …/committed: Is a directory"): a listing never fails because
    /// of a concurrent writer, and never sees half a definition.
    #[test]
    fn listing_definitions_while_another_process_commits_never_fails() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let defined = dir.path().join("defined");
        std::fs::create_dir(&defined).unwrap();
        std::fs::write(defined.join("base.yaml"), "name: t/base\n").unwrap();
        let committed = dir.path().join("committed");
        let spec = format!("{}:{}", defined.display(), committed.display());
        // Long enough that writing it is not one instant.
        let padding = "x".repeat(64 * 1024);
        let text =
            format!("{{\"name\": \"t/committed\", \"config\": {{\"env\": [\"PAD={padding}\"]}}}}");
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let writer = scope.spawn(|| {
                let mut rounds = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    std::fs::create_dir_all(&committed).unwrap();
                    crate::state::write_atomic(
                        &committed.join(format!("{rounds}.yaml")),
                        text.as_bytes(),
                    )
                    .unwrap();
                    if rounds % 4 == 3 {
                        std::fs::remove_dir_all(&committed).unwrap();
                    }
                    rounds += 1;
                }
                rounds
            });
            for _ in 0..3_000 {
                let images = load_all(&spec);
                let images = images.unwrap_or_else(|e| {
                    stop.store(true, Ordering::Relaxed);
                    panic!("a listing failed beside a committing writer: {e}")
                });
                assert_eq!(images[0].reference, "t/base:latest");
                assert!(
                    images[1..]
                        .iter()
                        .all(|i| i.reference == "t/committed:latest")
                );
            }
            stop.store(true, Ordering::Relaxed);
            assert!(writer.join().unwrap() > 0);
        });
    }

    #[test]
    fn a_kept_definition_is_parsed_again_when_a_file_it_read_changed() {
        let dir = tempfile::tempdir().unwrap();
        let definition = dir.path().join("t.yaml");
        std::fs::write(
            &definition,
            "name: t/kept\nbuild:\n  dockerfile: Dockerfile\nfiles:\n  /etc/motd: { from: motd.txt }\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\nCMD [\"a\"]\n").unwrap();
        std::fs::write(dir.path().join("motd.txt"), "one\n").unwrap();
        let first = load_file(&definition).unwrap();
        assert_eq!(first.last_step.as_deref(), Some("CMD [\"a\"]"));
        assert_eq!(load_file(&definition).unwrap().last_step, first.last_step);
        // Same size, new content: its change time tells.
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\nCMD [\"b\"]\n").unwrap();
        assert_eq!(
            load_file(&definition).unwrap().last_step.as_deref(),
            Some("CMD [\"b\"]")
        );
        std::fs::write(dir.path().join("motd.txt"), "two\n").unwrap();
        let again = load_file(&definition).unwrap();
        assert_eq!(again.files["/etc/motd"].content, "two\n");
        // The definition itself changed: another key.
        std::fs::write(
            &definition,
            "name: t/other\nbuild:\n  dockerfile: Dockerfile\n",
        )
        .unwrap();
        assert_eq!(load_file(&definition).unwrap().reference, "t/other:latest");
    }

    #[test]
    fn references_normalize() {
        assert_eq!(normalize_reference("bbtest"), "bbtest:latest");
        assert_eq!(normalize_reference("a/b:1"), "a/b:1");
        assert_eq!(normalize_reference("host:5000/a/b"), "host:5000/a/b:latest");
        assert_eq!(repository_of("nosuch:1"), "nosuch");
        assert_eq!(repository_of("host:5000/a"), "host:5000/a");
    }

    #[test]
    fn parses_definition() {
        let yaml = b"name: t/x\nsize: 5\nconfig:\n  env: [A=1]\n  cmd: [hi]\nprograms:\n  hi:\n    - stdout: hi\n  true: []\n";
        let image = Image::parse(Path::new("x.yaml"), yaml).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(image.reference, "t/x:latest");
        assert!(image.matches("t/x"));
        assert!(image.matches(&image.id));
        assert!(image.program("hi").is_some());
        assert!(image.program("/bin/hi").is_some());
        assert!(image.program("true").is_some());
        assert!(image.program("nope").is_none());
    }

    #[test]
    fn rejects_bad_steps_with_location() {
        let yaml = b"name: t/x\nprograms:\n  hi:\n    - stdout: a\n      exit: 1\n";
        let error = Image::parse(Path::new("x.yaml"), yaml)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some(
                "invalid fake image definition x.yaml: program \"hi\": step 1: more than one operation: stdout, exit"
            )
        );
    }

    fn tree_entry(
        path: &str,
        kind: dockproof_recording::EntryKind,
    ) -> dockproof_recording::TreeEntry {
        dockproof_recording::TreeEntry {
            path: path.into(),
            kind,
            mode: "0750".into(),
            uid: 1000,
            gid: 1000,
            size: Some(5),
            sha256: None,
            target: (kind == dockproof_recording::EntryKind::Symlink).then(|| "/etc".to_owned()),
            content: None,
        }
    }

    /// A recorded tree becomes the image's files (owners, modes, a file without kept
    /// content as zero bytes of its size); an untrusted tree with a path beneath a
    /// symlink or one that climbs is not made into an image at all.
    #[test]
    fn a_recorded_tree_is_files_and_an_unsafe_one_is_refused() {
        use dockproof_recording::{EntryKind, RecordedImage};
        let mut recorded = RecordedImage {
            image: "acme/app:1".into(),
            image_id: "sha256:aa".into(),
            image_config: BTreeMap::new(),
            size: Some(9),
            tree: vec![
                tree_entry("/app", EntryKind::Dir),
                tree_entry("/app/run", EntryKind::File),
                tree_entry("/link", EntryKind::Symlink),
            ],
        };
        let image = Image::recorded_tree(Path::new("r.json"), Path::new("."), &recorded).unwrap();
        assert_eq!(image.size, 9);
        let run = &image.files["/app/run"];
        assert_eq!((run.uid, run.gid, run.mode_bits()), (1000, 1000, 0o750));
        assert_eq!(run.recorded, Some(RecordedBytes::Zeros(5)));
        assert_eq!(image.files["/link"].target.as_deref(), Some("/etc"));
        recorded
            .tree
            .push(tree_entry("/link/passwd", EntryKind::File));
        assert!(Image::recorded_tree(Path::new("r.json"), Path::new("."), &recorded).is_none());
        recorded.tree.pop();
        recorded
            .tree
            .push(tree_entry("/app/../etc/x", EntryKind::File));
        assert!(Image::recorded_tree(Path::new("r.json"), Path::new("."), &recorded).is_none());
    }

    /// The YAML blocks of docs/fake-docker.md that define an image or a faults file
    /// (line of the opening fence, text): the reference must not show what the
    /// loaders refuse.
    fn doc_blocks() -> Vec<(usize, String)> {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/fake-docker.md");
        let text = std::fs::read_to_string(&docs).expect("docs/fake-docker.md");
        let mut blocks = Vec::new();
        let mut open: Option<(usize, usize, String)> = None;
        for (index, line) in text.lines().enumerate() {
            let trimmed = line.trim_start();
            match &mut open {
                None if trimmed == "```yaml" => {
                    open = Some((index + 1, line.len() - trimmed.len(), String::new()));
                }
                Some((start, _, block)) if trimmed == "```" => {
                    blocks.push((*start, std::mem::take(block)));
                    open = None;
                }
                Some((_, indent, block)) => {
                    block.push_str(line.get(*indent..).unwrap_or(line.trim_start()));
                    block.push('\n');
                }
                None => {}
            }
        }
        blocks
    }

    #[test]
    fn every_image_and_faults_example_in_the_docs_loads() {
        // Parsed as if it were a file of fixtures/fake-images, so `from:` paths resolve
        // the way the example's comment says.
        let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/fake-images/doc.yaml");
        let (mut images, mut faults) = (0, 0);
        for (line, block) in doc_blocks() {
            if block.lines().any(|l| l.starts_with("faults:")) {
                let rules = crate::faults::parse_file(&block, "docs/fake-docker.md")
                    .unwrap_or_else(|e| panic!("docs/fake-docker.md:{line}: {e}"));
                assert!(!rules.is_empty(), "docs/fake-docker.md:{line}: no rule");
                faults += 1;
            } else if block.lines().any(|l| {
                ["name:", "config:", "programs:", "files:"]
                    .iter()
                    .any(|key| l.starts_with(key))
            }) {
                // "More keys of a definition" shows keys without a name.
                let text = if block.lines().any(|l| l.starts_with("name:")) {
                    block.clone()
                } else {
                    format!("name: doc/more-keys:1\n{block}")
                };
                let image = Image::parse(&beside, text.as_bytes())
                    .unwrap_or_else(|e| panic!("docs/fake-docker.md:{line}: {e}\n{text}"));
                assert!(!image.reference.is_empty());
                images += 1;
            }
        }
        assert!(
            images >= 2 && faults >= 1,
            "{images} image and {faults} faults examples found"
        );
    }
}
