//! Fake image definitions (`*.yaml` files named by `FAKE_DOCKER_IMAGES`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use thiserror::Error;

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

/// `config:` of an image definition, reported by `image inspect`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ImageConfig {
    pub user: String,
    pub env: Vec<String>,
    pub workdir: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub exposed_ports: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageFile {
    name: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    config: ImageConfig,
    #[serde(default)]
    programs: BTreeMap<String, Vec<RawStep>>,
}

/// A loaded fake image.
#[derive(Debug, Clone)]
pub struct Image {
    /// Normalised reference, e.g. `dockproof/job-runner:1`.
    pub reference: String,
    /// `sha256:` + hex digest of the definition file.
    pub id: String,
    pub size: u64,
    pub config: ImageConfig,
    pub programs: BTreeMap<String, Program>,
}

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
    fn parse(path: &Path, bytes: &[u8]) -> Result<Image, ImageError> {
        let text = String::from_utf8_lossy(bytes);
        let file: ImageFile = serde_saphyr::from_str(&text).map_err(|e| ImageError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut programs = BTreeMap::new();
        for (name, raw) in file.programs {
            let program = compile(raw).map_err(|source| ImageError::Program {
                path: path.to_path_buf(),
                program: name.clone(),
                source,
            })?;
            programs.insert(name, program);
        }
        Ok(Image {
            reference: normalize_reference(&file.name),
            id: format!("sha256:{}", hex::encode(Sha256::digest(bytes))),
            size: file.size,
            config: file.config,
            programs,
        })
    }

    /// Whether `name` (a reference, full ID or ID prefix of 12+ hex) names this image.
    pub fn matches(&self, name: &str) -> bool {
        let hex = self.id.trim_start_matches("sha256:");
        let bare = name.trim_start_matches("sha256:");
        normalize_reference(name) == self.reference
            || name == self.id
            || (bare.len() >= 12
                && hex.starts_with(bare)
                && bare.bytes().all(|b| b.is_ascii_hexdigit()))
    }

    /// The program for a container command's argv[0] (a path's last component counts).
    pub fn program(&self, command: &str) -> Option<&Program> {
        self.programs.get(command).or_else(|| {
            let base = command.rsplit('/').next().unwrap_or(command);
            command
                .contains('/')
                .then(|| self.programs.get(base))
                .flatten()
        })
    }

    /// The `docker image inspect` object.
    pub fn inspect_json(&self) -> Value {
        let config = &self.config;
        let exposed: serde_json::Map<String, Value> = config
            .exposed_ports
            .iter()
            .map(|p| (p.clone(), json!({})))
            .collect();
        json!({
            "Id": self.id,
            "RepoTags": [self.reference],
            "RepoDigests": [],
            "Parent": "",
            "Comment": "",
            "Created": crate::FIXED_TIME,
            "DockerVersion": crate::SERVER_VERSION,
            "Author": "",
            "Config": {
                "Hostname": "",
                "Domainname": "",
                "User": config.user,
                "AttachStdin": false,
                "AttachStdout": false,
                "AttachStderr": false,
                "ExposedPorts": if exposed.is_empty() { Value::Null } else { Value::Object(exposed) },
                "Tty": false,
                "OpenStdin": false,
                "StdinOnce": false,
                "Env": config.env,
                "Cmd": null_if_empty(&config.cmd),
                "Image": "",
                "Volumes": null,
                "WorkingDir": config.workdir,
                "Entrypoint": null_if_empty(&config.entrypoint),
                "OnBuild": null,
                "Labels": if config.labels.is_empty() { Value::Null } else { json!(config.labels) },
            },
            "Architecture": "amd64",
            "Os": "linux",
            "Size": self.size,
            "VirtualSize": self.size,
            "GraphDriver": { "Data": null, "Name": "fake" },
            "RootFS": { "Type": "layers", "Layers": [] },
            "Metadata": { "LastTagTime": "0001-01-01T00:00:00Z" },
        })
    }
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
    let mut images = Vec::new();
    for entry in spec.split(':').filter(|e| !e.is_empty()) {
        let path = PathBuf::from(entry);
        if path.is_dir() {
            let read_error = |source| ImageError::Read {
                path: path.clone(),
                source,
            };
            let mut files: Vec<PathBuf> = std::fs::read_dir(&path)
                .map_err(read_error)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            files.sort();
            for file in files {
                images.push(load_file(&file)?);
            }
        } else if path.exists() {
            images.push(load_file(&path)?);
        }
        // A missing entry simply contributes no images, like an empty image store.
    }
    Ok(images)
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
}
