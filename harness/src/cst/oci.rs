//! An OCI image layout (`--image-from-oci-layout DIR`, image-spec `image-layout.md`)
//! read for the tar driver: `index.json` → the image manifest → its config and layers,
//! each blob found by its digest under `blobs/`, its size and sha256 checked before it
//! is used. Every file is opened beneath the layout's directory (a symlink out of it is
//! refused), non-blocking, and read with a bound. Plain layers are indexed where they
//! lie; gzip layers are decompressed once into an unnamed temporary file (bounded,
//! [`MAX_UNCOMPRESSED_BYTES`]) and indexed there, so memory does not grow with the image.

use std::io::{Read, Seek as _, Write as _};
use std::path::Path;
use std::sync::Arc;

use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt as _};
use sha2::Digest as _;

use super::files::{FilesError, MAX_SAVED_JSON_BYTES, SavedImage};

/// All layers of a layout together, uncompressed: at most this many bytes (a gzip
/// layer that inflates past it is refused, see docs/limits.md).
pub const MAX_UNCOMPRESSED_BYTES: u64 = 16 << 30;
/// Layers of one image.
pub const MAX_LAYERS: usize = 1_000;

const INDEX_MEDIA_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// A content descriptor (`mediaType`, `digest`, `size`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

/// The annotation naming the image a layout holds (image-spec `annotations.md`).
const REF_NAME: &str = "org.opencontainers.image.ref.name";

#[derive(Debug, serde::Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Debug, serde::Deserialize)]
struct Manifest {
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

/// The layout at `dir`, read as the tar driver's image; `scratch` holds the
/// decompressed layers (unnamed files, gone when the image is dropped).
pub fn read_layout(dir: &Path, scratch: &Path) -> Result<SavedImage, FilesError> {
    read_layout_within(dir, scratch, MAX_UNCOMPRESSED_BYTES)
}

/// A layout whose index, manifest and configuration were read and checked.
struct Opened {
    layout: Layout,
    /// The manifest descriptor's `org.opencontainers.image.ref.name`.
    reference: Option<String>,
    manifest: Manifest,
    config_bytes: Vec<u8>,
    config: serde_json::Value,
}

fn open_layout(dir: &Path, limit: u64) -> Result<Opened, FilesError> {
    let shown = dir.display().to_string();
    let not_layout = |reason: String| FilesError::NotSaved(format!("{shown}: {reason}"));
    let root = Dir::open_ambient_dir(dir, cap_std::ambient_authority()).map_err(|error| {
        not_layout(format!(
            "cannot open the OCI layout directory: {error}; expected a directory with `oci-layout`, `index.json` and `blobs/`"
        ))
    })?;
    let layout = Layout {
        root,
        shown: shown.clone(),
        limit,
    };
    let index_bytes = layout.read_small("index.json", None)?;
    let index: Index = serde_json::from_slice(&index_bytes)
        .map_err(|error| not_layout(format!("index.json is not an OCI image index: {error}")))?;
    // CST's words (cmd/container-structure-test/app/cmd/test.go).
    if index.manifests.len() != 1 {
        return Err(not_layout(format!(
            "OCI layout contains {} entries. expected only one",
            index.manifests.len()
        )));
    }
    let descriptor = &index.manifests[0];
    if INDEX_MEDIA_TYPES.contains(&descriptor.media_type.as_str()) {
        return Err(not_layout(
            "multi-arch images are not supported yet.".into(),
        ));
    }
    let manifest_bytes = layout.read_small(&blob_path(descriptor, &shown)?, Some(descriptor))?;
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes).map_err(|error| {
        not_layout(format!(
            "the manifest {} is not an OCI image manifest: {error}",
            descriptor.digest
        ))
    })?;
    if manifest.layers.len() > MAX_LAYERS {
        return Err(FilesError::Limit {
            archive: shown,
            what: format!("the manifest lists {} layers", manifest.layers.len()),
            hint: format!("an image has at most {MAX_LAYERS} here (Docker's limit is 127)"),
        });
    }
    let config_bytes = layout.read_small(
        &blob_path(&manifest.config, &shown)?,
        Some(&manifest.config),
    )?;
    let config: serde_json::Value = serde_json::from_slice(&config_bytes).map_err(|error| {
        not_layout(format!(
            "the image configuration {} is not JSON: {error}",
            manifest.config.digest
        ))
    })?;
    Ok(Opened {
        reference: descriptor.annotations.get(REF_NAME).cloned(),
        layout,
        manifest,
        config_bytes,
        config,
    })
}

fn read_layout_within(dir: &Path, scratch: &Path, limit: u64) -> Result<SavedImage, FilesError> {
    let Opened {
        layout,
        manifest,
        config,
        ..
    } = open_layout(dir, limit)?;
    let shown = layout.shown.clone();
    let mut image = SavedImage::empty(
        config
            .get("config")
            .cloned()
            .unwrap_or(serde_json::Value::Null),
    );
    let mut count = 0u64;
    let mut inflated = 0u64;
    for layer in &manifest.layers {
        let path = blob_path(layer, &shown)?;
        let (file, len) = layout.layer(&path, layer, scratch, &mut inflated)?;
        let file = Arc::new(file);
        image.apply_layer(&file, &shown, &layer.digest, 0, len, &mut count)?;
    }
    Ok(image)
}

/// The layout at `dir` written to `destination` as a `docker save` archive tagged as
/// CST tags it (the manifest's `org.opencontainers.image.ref.name` unless
/// `ignore_reference`, else `default_tag`), for `docker load` (CST's docker driver
/// loads a layout into the daemon). Every blob is checked against its descriptor as it
/// is copied; nothing is inflated (`docker load` takes gzip layers). Returns the tag.
pub fn write_docker_archive(
    dir: &Path,
    destination: &Path,
    default_tag: Option<&str>,
    ignore_reference: bool,
) -> Result<String, FilesError> {
    let Opened {
        layout,
        reference,
        manifest,
        config_bytes,
        ..
    } = open_layout(dir, MAX_UNCOMPRESSED_BYTES)?;
    let shown = layout.shown.clone();
    let tag = match (reference.filter(|_| !ignore_reference), default_tag) {
        (Some(reference), _) => reference,
        (None, Some(tag)) => tag.to_owned(),
        // CST's words.
        (None, None) => {
            return Err(FilesError::NotSaved(format!(
                "{shown}: index does not contain a reference annotation. --default-image-tag must be provided."
            )));
        }
    };
    // `docker load` wants NAME:TAG.
    let last = tag.rsplit('/').next().unwrap_or_default();
    let tag = if last.contains(':') || last.contains('@') {
        tag
    } else {
        format!("{tag}:latest")
    };
    let file = std::fs::File::create(destination).map_err(|error| {
        FilesError::NotSaved(format!("cannot create {}: {error}", destination.display()))
    })?;
    let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
    let mut append = |name: &str, len: u64, reader: &mut dyn Read| -> Result<(), FilesError> {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(len);
        builder.append_data(&mut header, name, reader)?;
        Ok(())
    };
    let config_name = format!("{}.json", &manifest.config.digest[7..]);
    append(
        &config_name,
        config_bytes.len() as u64,
        &mut config_bytes.as_slice(),
    )?;
    let mut layers = Vec::new();
    for layer in &manifest.layers {
        let path = blob_path(layer, &shown)?;
        let blob = layout.open(&path)?;
        let len = blob.metadata()?.len();
        if len != layer.size {
            return Err(layout.mismatch(
                layer,
                format!("holds {len} bytes, its descriptor says {}", layer.size),
            ));
        }
        let mut hashing = Hashing {
            inner: blob.take(layer.size),
            hasher: sha2::Sha256::new(),
            read: 0,
        };
        let name = format!("{}/layer.tar", &layer.digest[7..]);
        append(&name, layer.size, &mut hashing)?;
        layout.check(layer, hashing.read, &hashing.hasher.finalize())?;
        layers.push(name);
    }
    let docker_manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": [tag],
        "Layers": layers,
    }]);
    let docker_manifest = docker_manifest.to_string();
    append(
        "manifest.json",
        docker_manifest.len() as u64,
        &mut docker_manifest.as_bytes(),
    )?;
    builder
        .into_inner()
        .and_then(|mut writer| writer.flush())
        .map_err(FilesError::Io)?;
    Ok(tag)
}

/// `blobs/ALGORITHM/HEX` of a descriptor whose digest is well formed (sha256 only:
/// what every tool writes, and what can be checked here).
fn blob_path(descriptor: &Descriptor, shown: &str) -> Result<String, FilesError> {
    let refused = |reason: &str| FilesError::Refused {
        archive: shown.to_owned(),
        entry: descriptor.digest.clone(),
        reason: reason.to_owned(),
    };
    let Some(hex) = descriptor.digest.strip_prefix("sha256:") else {
        return Err(refused(
            "is not a sha256 digest (`sha256:` and 64 lowercase hex digits)",
        ));
    };
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(refused(
            "is not a sha256 digest (`sha256:` and 64 lowercase hex digits)",
        ));
    }
    Ok(format!("blobs/sha256/{hex}"))
}

struct Layout {
    root: Dir,
    shown: String,
    /// [`MAX_UNCOMPRESSED_BYTES`], smaller in tests.
    limit: u64,
}

/// Reads through a sha256 as it goes.
struct Hashing<R> {
    inner: R,
    hasher: sha2::Sha256,
    read: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let count = self.inner.read(buffer)?;
        self.hasher.update(&buffer[..count]);
        self.read += count as u64;
        Ok(count)
    }
}

impl Layout {
    /// A regular file beneath the layout, opened without following a symlink out of it
    /// and without blocking on a FIFO.
    fn open(&self, path: &str) -> Result<std::fs::File, FilesError> {
        let mut options = OpenOptions::new();
        options
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
        let file = self
            .root
            .open_with(path, &options)
            .map_err(|error| {
                FilesError::NotSaved(format!(
                    "{}: cannot open {path} in the OCI layout: {error}",
                    self.shown
                ))
            })?
            .into_std();
        if !file.metadata()?.is_file() {
            return Err(FilesError::Refused {
                archive: self.shown.clone(),
                entry: path.to_owned(),
                reason: "is not a regular file".into(),
            });
        }
        Ok(file)
    }

    fn mismatch(&self, descriptor: &Descriptor, what: String) -> FilesError {
        FilesError::Refused {
            archive: self.shown.clone(),
            entry: descriptor.digest.clone(),
            reason: format!(
                "{what}; the blob does not match its descriptor (a damaged or altered layout)"
            ),
        }
    }

    /// A JSON file (index.json, or a manifest or config blob checked against its
    /// descriptor), at most [`MAX_SAVED_JSON_BYTES`].
    fn read_small(
        &self,
        path: &str,
        descriptor: Option<&Descriptor>,
    ) -> Result<Vec<u8>, FilesError> {
        if let Some(descriptor) = descriptor
            && descriptor.size > MAX_SAVED_JSON_BYTES
        {
            return Err(FilesError::Limit {
                archive: self.shown.clone(),
                what: format!("{} says it is {} bytes", descriptor.digest, descriptor.size),
                hint: format!(
                    "a manifest or configuration is read whole, at most {MAX_SAVED_JSON_BYTES} bytes"
                ),
            });
        }
        let mut bytes = Vec::new();
        self.open(path)?
            .take(MAX_SAVED_JSON_BYTES + 1)
            .read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_SAVED_JSON_BYTES {
            return Err(FilesError::Limit {
                archive: self.shown.clone(),
                what: format!("{path} is more than {MAX_SAVED_JSON_BYTES} bytes"),
                hint: "an index, manifest or configuration is a few kilobytes".into(),
            });
        }
        if let Some(descriptor) = descriptor {
            self.check(
                descriptor,
                bytes.len() as u64,
                &sha2::Sha256::digest(&bytes),
            )?;
        }
        Ok(bytes)
    }

    fn check(&self, descriptor: &Descriptor, len: u64, digest: &[u8]) -> Result<(), FilesError> {
        if len != descriptor.size {
            return Err(self.mismatch(
                descriptor,
                format!("holds {len} bytes, its descriptor says {}", descriptor.size),
            ));
        }
        let actual = format!("sha256:{}", hex::encode(digest));
        if actual != descriptor.digest {
            return Err(self.mismatch(descriptor, format!("hashes to {actual}")));
        }
        Ok(())
    }

    /// A layer as a plain tar: the blob itself, or its gzip inflated into an unnamed
    /// file in `scratch`; its size and digest checked first. Returns the file and the
    /// tar's length.
    fn layer(
        &self,
        path: &str,
        descriptor: &Descriptor,
        scratch: &Path,
        inflated: &mut u64,
    ) -> Result<(std::fs::File, u64), FilesError> {
        let mut blob = self.open(path)?;
        let mut head = [0u8; 4];
        let mut got = 0;
        while got < head.len() {
            match blob.read(&mut head[got..])? {
                0 => break,
                count => got += count,
            }
        }
        blob.rewind()?;
        let media = descriptor.media_type.as_str();
        if media.ends_with("+zstd") || head[..got] == [0x28, 0xb5, 0x2f, 0xfd] {
            return Err(FilesError::NotSaved(format!(
                "{}: layer {} is zstd-compressed, which dockproof does not read; write the layout with gzip or uncompressed layers",
                self.shown, descriptor.digest
            )));
        }
        let mut hashing = Hashing {
            inner: (&mut blob).take(descriptor.size.saturating_add(1)),
            hasher: sha2::Sha256::new(),
            read: 0,
        };
        if head[..got.min(2)] == [0x1f, 0x8b] {
            let mut out = tempfile::tempfile_in(scratch).map_err(|error| {
                FilesError::NotSaved(format!(
                    "cannot create a temporary file in {} for layer {}: {error}",
                    scratch.display(),
                    descriptor.digest
                ))
            })?;
            let left = self.limit.saturating_sub(*inflated);
            let mut decoder =
                flate2::read::MultiGzDecoder::new(&mut hashing).take(left.saturating_add(1));
            let written = std::io::copy(&mut decoder, &mut out).map_err(|error| {
                FilesError::NotSaved(format!(
                    "{}: layer {} is not a valid gzip stream: {error}",
                    self.shown, descriptor.digest
                ))
            })?;
            if written > left {
                return Err(FilesError::Limit {
                    archive: self.shown.clone(),
                    what: format!("its layers inflate to more than {} bytes", self.limit),
                    hint: "see docs/limits.md; use the docker driver on a loaded image instead"
                        .into(),
                });
            }
            // Anything after the gzip stream is part of the blob: hashed too.
            std::io::copy(&mut hashing, &mut std::io::sink())?;
            out.flush()?;
            self.check(descriptor, hashing.read, &hashing.hasher.finalize())?;
            *inflated += written;
            Ok((out, written))
        } else {
            std::io::copy(&mut hashing, &mut std::io::sink())?;
            self.check(descriptor, hashing.read, &hashing.hasher.finalize())?;
            *inflated += descriptor.size;
            if *inflated > self.limit {
                return Err(FilesError::Limit {
                    archive: self.shown.clone(),
                    what: format!("its layers hold more than {} bytes", self.limit),
                    hint: "see docs/limits.md; use the docker driver on a loaded image instead"
                        .into(),
                });
            }
            Ok((blob, descriptor.size))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A blob written under `blobs/sha256/`, and its descriptor.
    fn blob(dir: &Path, media_type: &str, bytes: &[u8]) -> serde_json::Value {
        let hex = hex::encode(sha2::Sha256::digest(bytes));
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("blobs/sha256").join(&hex), bytes).unwrap();
        serde_json::json!({"mediaType": media_type, "digest": format!("sha256:{hex}"), "size": bytes.len()})
    }

    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, content) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_mode(0o644);
            header.set_size(content.len() as u64);
            builder.append_data(&mut header, name, *content).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    /// A layout of a gzip layer then a plain one; returns its directory.
    fn layout() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let one = blob(
            dir.path(),
            "application/vnd.oci.image.layer.v1.tar+gzip",
            &gzip(&tar_of(&[("etc/motd", b"one"), ("etc/old", b"x")])),
        );
        let two = blob(
            dir.path(),
            "application/vnd.oci.image.layer.v1.tar",
            &tar_of(&[("etc/motd", b"two"), ("etc/.wh.old", b"")]),
        );
        let config = blob(
            dir.path(),
            "application/vnd.oci.image.config.v1+json",
            br#"{"architecture":"amd64","os":"linux","config":{"Env":["A=1"],"ExposedPorts":{"80/tcp":{}}}}"#,
        );
        let manifest =
            serde_json::json!({"schemaVersion": 2, "config": config, "layers": [one, two]});
        let manifest = blob(
            dir.path(),
            "application/vnd.oci.image.manifest.v1+json",
            manifest.to_string().as_bytes(),
        );
        std::fs::write(
            dir.path().join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("index.json"),
            serde_json::json!({"schemaVersion": 2, "manifests": [manifest]}).to_string(),
        )
        .unwrap();
        dir
    }

    fn read(dir: &Path) -> Result<SavedImage, FilesError> {
        read_within(dir, MAX_UNCOMPRESSED_BYTES)
    }

    fn read_within(dir: &Path, limit: u64) -> Result<SavedImage, FilesError> {
        let scratch = tempfile::tempdir().unwrap();
        let image = read_layout_within(dir, scratch.path(), limit);
        // The inflated layers are unnamed: nothing is left in the scratch directory.
        assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);
        image
    }

    #[test]
    fn a_layout_is_read_through_its_index_manifest_config_and_layers() {
        let dir = layout();
        let image = read(dir.path()).unwrap();
        assert_eq!(image.config["Env"][0], "A=1");
        let motd = image.stat("/etc/motd").unwrap().content.clone().unwrap();
        assert_eq!(motd.load().unwrap().as_slice(), b"two");
        assert!(image.stat("/etc/old").is_none(), "the whiteout applies");
    }

    fn index_digest(dir: &Path) -> (String, serde_json::Value) {
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
        let digest = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
        (digest, index)
    }

    #[test]
    fn an_altered_blob_a_bad_digest_and_a_path_out_are_refused() {
        // A layer whose bytes changed: its digest no longer matches.
        let dir = layout();
        let (digest, _) = index_digest(dir.path());
        let manifest: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.path().join("blobs/sha256").join(&digest[7..])).unwrap(),
        )
        .unwrap();
        let layer = manifest["layers"][1]["digest"].as_str().unwrap()[7..].to_owned();
        let path = dir.path().join("blobs/sha256").join(&layer);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[600] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let message = read(dir.path()).unwrap_err().to_string();
        assert!(message.contains("hashes to sha256:"), "{message}");
        assert!(
            message.contains("does not match its descriptor"),
            "{message}"
        );

        // A digest that would name a path out of the layout.
        let dir = layout();
        let (_, mut index) = index_digest(dir.path());
        index["manifests"][0]["digest"] = "sha256:../../../etc/passwd".into();
        std::fs::write(dir.path().join("index.json"), index.to_string()).unwrap();
        let message = read(dir.path()).unwrap_err().to_string();
        assert!(message.contains("is not a sha256 digest"), "{message}");

        // A blob that is a symlink out of the layout.
        let dir = layout();
        let (digest, _) = index_digest(dir.path());
        let path = dir.path().join("blobs/sha256").join(&digest[7..]);
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", &path).unwrap();
        let message = read(dir.path()).unwrap_err().to_string();
        assert!(message.contains("cannot open blobs/sha256/"), "{message}");

        // Two images, or an index of indexes: CST's words.
        let dir = layout();
        let (_, mut index) = index_digest(dir.path());
        let first = index["manifests"][0].clone();
        index["manifests"] = serde_json::json!([first.clone(), first]);
        std::fs::write(dir.path().join("index.json"), index.to_string()).unwrap();
        let message = read(dir.path()).unwrap_err().to_string();
        assert!(
            message.contains("OCI layout contains 2 entries. expected only one"),
            "{message}"
        );
    }

    #[test]
    fn a_layout_becomes_a_docker_save_archive_with_its_reference_as_tag() {
        let dir = layout();
        let out = tempfile::tempdir().unwrap();
        let archive = out.path().join("load.tar");
        // No reference annotation and no default tag: CST's words.
        let message = write_docker_archive(dir.path(), &archive, None, false)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("--default-image-tag must be provided"),
            "{message}"
        );
        let tag = write_docker_archive(dir.path(), &archive, Some("example/app"), false).unwrap();
        assert_eq!(tag, "example/app:latest");
        // A `docker save` archive: the config, the layers as they are, manifest.json last.
        let mut entries = Vec::new();
        let mut manifest = serde_json::Value::Null;
        let mut reader = tar::Archive::new(std::fs::File::open(&archive).unwrap());
        for entry in reader.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            if name == "manifest.json" {
                manifest = serde_json::from_reader(&mut entry).unwrap();
            }
            entries.push(name);
        }
        assert_eq!(entries.len(), 4, "{entries:?}");
        assert_eq!(manifest[0]["RepoTags"][0], "example/app:latest");
        assert_eq!(manifest[0]["Config"], entries[0]);
        assert_eq!(manifest[0]["Layers"][1], entries[2]);
        // The reference annotation wins over the default tag, unless ignored.
        let (_, mut index) = index_digest(dir.path());
        index["manifests"][0]["annotations"] = serde_json::json!({REF_NAME: "example/app:2"});
        std::fs::write(dir.path().join("index.json"), index.to_string()).unwrap();
        assert_eq!(
            write_docker_archive(dir.path(), &archive, Some("x:1"), false).unwrap(),
            "example/app:2"
        );
        assert_eq!(
            write_docker_archive(dir.path(), &archive, Some("x:1"), true).unwrap(),
            "x:1"
        );
    }

    #[test]
    fn a_gzip_bomb_and_a_zstd_layer_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let zstd = blob(
            dir.path(),
            "application/vnd.oci.image.layer.v1.tar+zstd",
            &[0x28, 0xb5, 0x2f, 0xfd, 0],
        );
        let config = blob(
            dir.path(),
            "application/vnd.oci.image.config.v1+json",
            b"{}",
        );
        let manifest = serde_json::json!({"config": config, "layers": [zstd]});
        let manifest = blob(
            dir.path(),
            "application/vnd.oci.image.manifest.v1+json",
            manifest.to_string().as_bytes(),
        );
        std::fs::write(
            dir.path().join("index.json"),
            serde_json::json!({"manifests": [manifest]}).to_string(),
        )
        .unwrap();
        let message = read(dir.path()).unwrap_err().to_string();
        assert!(message.contains("zstd-compressed"), "{message}");

        // A descriptor announcing a manifest larger than the bound is refused before reading.
        let (_, mut index) = index_digest(dir.path());
        index["manifests"][0]["size"] = serde_json::json!(1u64 << 40);
        std::fs::write(dir.path().join("index.json"), index.to_string()).unwrap();
        let message = read(dir.path()).unwrap_err().to_string();
        assert!(
            message.contains("says it is 1099511627776 bytes"),
            "{message}"
        );

        // 4 MiB of zeros gzip to a few kilobytes: past a 1 MiB bound, the inflating stops.
        let dir = tempfile::tempdir().unwrap();
        let zeros = tar_of(&[("zeros", &vec![0u8; 4 << 20])]);
        let bomb = blob(
            dir.path(),
            "application/vnd.oci.image.layer.v1.tar+gzip",
            &gzip(&zeros),
        );
        let config = blob(
            dir.path(),
            "application/vnd.oci.image.config.v1+json",
            b"{}",
        );
        let manifest = serde_json::json!({"config": config, "layers": [bomb]});
        let manifest = blob(
            dir.path(),
            "application/vnd.oci.image.manifest.v1+json",
            manifest.to_string().as_bytes(),
        );
        std::fs::write(
            dir.path().join("index.json"),
            serde_json::json!({"manifests": [manifest]}).to_string(),
        )
        .unwrap();
        let message = read_within(dir.path(), 1 << 20).unwrap_err().to_string();
        assert!(
            message.contains("inflate to more than 1048576 bytes"),
            "{message}"
        );
        assert!(read_within(dir.path(), 8 << 20).is_ok());
    }
}
