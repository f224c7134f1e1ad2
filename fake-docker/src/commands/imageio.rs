//! `docker save` (an image as the daemon archives it: manifest.json, the config,
//! one layer holding the image's files) and `docker commit` (a container's root
//! and environment as a new, untagged image), for CST's tar driver and setup commands.

use std::io::Write;
use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};

use super::{
    CommandError, Outcome, daemon_error, err, find_container, find_image, load_images, out,
};
use crate::flags::{Arity, CommandSpec, Flag, Kind, Parsed};
use crate::image::Image;
use crate::state::{StateDir, StateError};
use crate::tar::{EntryMeta, write_entry, write_tree_owned};

/// `docker save`.
pub const SAVE: CommandSpec = CommandSpec {
    name: "save",
    usage: "save [OPTIONS] IMAGE [IMAGE...]",
    about: "Save one or more images to a tar archive (streamed to STDOUT by default)",
    flags: &[Flag {
        long: "output",
        short: Some('o'),
        kind: Kind::Value("string"),
        help: "Write to a file, instead of STDOUT",
    }],
    interspersed: true,
    arity: Arity::AtLeast(1),
};

/// `docker image save`.
pub const IMAGE_SAVE: CommandSpec = CommandSpec {
    name: "image save",
    usage: "image save [OPTIONS] IMAGE [IMAGE...]",
    ..SAVE
};

/// `docker commit`.
pub const COMMIT: CommandSpec = CommandSpec {
    name: "commit",
    usage: "commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
    about: "Create a new image from a container's changes",
    flags: &[],
    interspersed: true,
    arity: Arity::Range(1, 2),
};

/// `docker container commit`.
pub const CONTAINER_COMMIT: CommandSpec = CommandSpec {
    name: "container commit",
    usage: "container commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
    ..COMMIT
};

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CommandError {
    let path = path.to_path_buf();
    move |source| {
        CommandError::State(StateError::Io {
            action,
            path,
            source,
        })
    }
}

/// The image's root as one layer: its `files:` (parents as 0755 root-owned
/// directories) or a committed image's snapshot, with the owners `files:` gives.
fn layer(state: &StateDir, image: &Image) -> Result<Vec<u8>, CommandError> {
    let scratch = state
        .committed_dir()
        .join(format!("save-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(io_error("create", &scratch))?;
    let result = (|| {
        super::create::install_files(&scratch, image)?;
        let owners: std::collections::HashMap<std::path::PathBuf, (u64, u64)> = image
            .files
            .iter()
            .map(|(path, file)| {
                (
                    scratch.join(path.trim_start_matches('/')),
                    (file.uid, file.gid),
                )
            })
            .collect();
        let owner = |path: &Path| owners.get(path).copied().unwrap_or((0, 0));
        let mut bytes = Vec::new();
        let mut children: Vec<_> = std::fs::read_dir(&scratch)
            .map_err(io_error("read", &scratch))?
            .filter_map(Result::ok)
            .collect();
        children.sort_by_key(|entry| entry.file_name());
        for child in children {
            let name = child.file_name().to_string_lossy().into_owned();
            write_tree_owned(&mut bytes, &child.path(), &name, &owner)
                .map_err(|e| io_error("archive", &scratch)(std::io::Error::other(e.to_string())))?;
        }
        crate::tar::finish(&mut bytes)
            .map_err(|e| io_error("archive", &scratch)(std::io::Error::other(e.to_string())))?;
        Ok(bytes)
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn archive(state: &StateDir, image: &Image) -> Result<Vec<u8>, CommandError> {
    let layer = layer(state, image)?;
    let layer_hex = hex::encode(Sha256::digest(&layer));
    let inspect = image.inspect_json();
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "created": crate::FIXED_TIME,
        "config": inspect["Config"],
        "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{layer_hex}")] },
    });
    let config_bytes = serde_json::to_vec(&config).unwrap_or_default();
    let config_name = format!("{}.json", image.id.trim_start_matches("sha256:"));
    let layer_name = format!("{layer_hex}/layer.tar");
    let manifest =
        json!([{ "Config": config_name, "RepoTags": image.tags, "Layers": [layer_name] }]);
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap_or_default();
    let mut out = Vec::new();
    let file = |size: usize| EntryMeta {
        mode: 0o644,
        size: size as u64,
        kind: b'0',
        uid: 0,
        gid: 0,
        link: "",
    };
    let dir = EntryMeta {
        mode: 0o755,
        size: 0,
        kind: b'5',
        uid: 0,
        gid: 0,
        link: "",
    };
    let tar_error = |e: crate::tar::TarError| {
        CommandError::State(StateError::Io {
            action: "archive",
            path: image.source.clone(),
            source: std::io::Error::other(e.to_string()),
        })
    };
    write_entry(&mut out, &format!("{layer_hex}/"), &dir, &[]).map_err(tar_error)?;
    write_entry(&mut out, &layer_name, &file(layer.len()), &layer).map_err(tar_error)?;
    write_entry(
        &mut out,
        &config_name,
        &file(config_bytes.len()),
        &config_bytes,
    )
    .map_err(tar_error)?;
    write_entry(
        &mut out,
        "manifest.json",
        &file(manifest_bytes.len()),
        &manifest_bytes,
    )
    .map_err(tar_error)?;
    crate::tar::finish(&mut out).map_err(tar_error)?;
    Ok(out)
}

/// `docker save`.
pub fn save(_spec: &CommandSpec, parsed: &Parsed) -> Outcome {
    let state = StateDir::from_env()?;
    let images = load_images()?;
    if parsed.positionals.len() > 1 {
        err("fake-docker: save of several images at once is not supported\n");
        return Ok(1);
    }
    let name = &parsed.positionals[0];
    let Some(image) = find_image(&images, name) else {
        daemon_error("reference does not exist");
        return Ok(1);
    };
    let bytes = archive(&state, image)?;
    match parsed.last("output") {
        Some(path) => {
            let path = Path::new(path);
            std::fs::write(path, &bytes).map_err(io_error("write", path))?;
        }
        None => {
            use std::io::IsTerminal;
            if std::io::stdout().is_terminal() {
                err("cowardly refusing to save to a terminal. Use the -o flag or redirect\n");
                return Ok(1);
            }
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(&bytes).and_then(|()| stdout.flush());
        }
    }
    Ok(0)
}

/// `docker commit`: the container's root becomes the new image's snapshot; its
/// environment becomes the image's; everything else comes from its image.
pub fn commit(_spec: &CommandSpec, parsed: &Parsed) -> Outcome {
    let state = StateDir::from_env()?;
    let name = &parsed.positionals[0];
    let Some(container) = find_container(&state, name)? else {
        daemon_error(&format!("No such container: {name}"));
        return Ok(1);
    };
    let images = super::load_definitions()?;
    let Some(base) = images.iter().find(|image| image.id == container.image_id) else {
        daemon_error(&format!("No such image: {}", container.image_id));
        return Ok(1);
    };
    let _lock = state.lock()?;
    let number = state.next_named_counter("commits")?;
    let dir = state.committed_dir();
    let snapshot = dir.join(format!("{number}.root"));
    std::fs::create_dir_all(&snapshot).map_err(io_error("create", &snapshot))?;
    crate::tar::copy_tree(&state.rootfs_path(&container.id), &snapshot)
        .map_err(io_error("copy", &snapshot))?;
    let reference = parsed
        .positionals
        .get(1)
        .cloned()
        .unwrap_or_else(|| format!("fake-docker/committed:{number}"));
    let mut definition = json!({
        "name": reference,
        "base": base.source,
        "rootfs": snapshot,
        "config": { "env": container.env },
    });
    // An image only a recording describes has no definition file to start from: the
    // commit names it in its recording.
    if base.source.file_name() == Some(std::ffi::OsStr::new(dockproof_recording::FILE_NAME)) {
        definition["base_reference"] = json!(base.reference);
    }
    // JSON is YAML: the definition is read back like any other.
    let text = serde_json::to_string_pretty(&definition).unwrap_or_default();
    let path = dir.join(format!("{number}.yaml"));
    // Written beside the definitions other processes are listing: never half a file.
    crate::state::write_atomic(&path, text.as_bytes())?;
    let id = format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())));
    crate::replay::note_commit(&state, &id, &container);
    out(&format!("{id}\n"));
    Ok(0)
}
