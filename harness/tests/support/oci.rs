//! OCI image layouts for the tests: Docker 20.10's `docker save` (the legacy layout)
//! converted into one, so no registry or other tool is needed.

use std::path::Path;

/// An OCI image layout made from a `docker save` archive (Docker 20.10 writes the
/// legacy layout): its config and layers as blobs, even layers gzipped, odd ones plain.
pub fn layout_from_saved(archive: &Path, layout: &Path, reference: &str) {
    use sha2::Digest as _;
    use std::io::{Read as _, Write as _};
    let mut files = std::collections::BTreeMap::new();
    let mut links = std::collections::BTreeMap::new();
    let mut reader = tar::Archive::new(std::fs::File::open(archive).unwrap());
    for entry in reader.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        match entry.header().entry_type() {
            tar::EntryType::Regular => {
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).unwrap();
                files.insert(name, bytes);
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .unwrap()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                // `ID/layer.tar -> ../ID0/layer.tar`
                let base = Path::new(&name).parent().unwrap().join(target);
                let mut parts: Vec<String> = Vec::new();
                for part in base.components() {
                    match part {
                        std::path::Component::ParentDir => {
                            parts.pop();
                        }
                        std::path::Component::Normal(part) => {
                            parts.push(part.to_string_lossy().into_owned())
                        }
                        _ => {}
                    }
                }
                links.insert(name, parts.join("/"));
            }
            _ => {}
        }
    }
    let file = |name: &str| -> Vec<u8> {
        let name = links.get(name).map_or(name, String::as_str);
        files[name].clone()
    };
    let manifest: serde_json::Value = serde_json::from_slice(&file("manifest.json")).unwrap();
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let blob = |media_type: &str, bytes: &[u8]| {
        let hex = hex::encode(sha2::Sha256::digest(bytes));
        std::fs::write(layout.join("blobs/sha256").join(&hex), bytes).unwrap();
        serde_json::json!({"mediaType": media_type, "digest": format!("sha256:{hex}"), "size": bytes.len()})
    };
    let config = blob(
        "application/vnd.oci.image.config.v1+json",
        &file(manifest[0]["Config"].as_str().unwrap()),
    );
    let layers: Vec<serde_json::Value> = manifest[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let bytes = file(name.as_str().unwrap());
            if index % 2 == 0 {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                encoder.write_all(&bytes).unwrap();
                blob(
                    "application/vnd.oci.image.layer.v1.tar+gzip",
                    &encoder.finish().unwrap(),
                )
            } else {
                blob("application/vnd.oci.image.layer.v1.tar", &bytes)
            }
        })
        .collect();
    let image_manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": layers,
    });
    let mut descriptor = blob(
        "application/vnd.oci.image.manifest.v1+json",
        image_manifest.to_string().as_bytes(),
    );
    descriptor["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": reference});
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(
        layout.join("index.json"),
        serde_json::json!({"schemaVersion": 2, "manifests": [descriptor]}).to_string(),
    )
    .unwrap();
}
