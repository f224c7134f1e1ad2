//! What `rmi`, `pull` and `build -t` changed about the fake images: extra tags and
//! removed references, kept in `images.json` in the state directory. An image whose
//! tags are all gone is deleted (not listed, not found), until `pull` or `build` brings
//! it back. Mutate with the state lock held.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::image::{Image, normalize_reference};
use crate::state::{StateDir, StateError};

const FILE: &str = "images.json";

#[derive(Debug, Default, Serialize, Deserialize)]
struct Store {
    /// Tags given by `build -t`: reference → image ID.
    tags: BTreeMap<String, String>,
    /// References removed by `rmi` (definition names and build tags alike).
    removed: BTreeSet<String>,
}

/// The images as the daemon would have them now: tags applied, deleted ones dropped.
pub fn visible(state: &StateDir, definitions: Vec<Image>) -> Result<Vec<Image>, StateError> {
    let store: Store = state.read_doc(FILE)?;
    let mut images = Vec::new();
    for mut image in definitions {
        let mut tags: Vec<String> = Vec::new();
        if !store.removed.contains(&image.reference) && !store.tags.contains_key(&image.reference) {
            tags.push(image.reference.clone());
        }
        for (tag, id) in &store.tags {
            if *id == image.id && !store.removed.contains(tag) && !tags.contains(tag) {
                tags.push(tag.clone());
            }
        }
        if !tags.is_empty() {
            image.tags = tags;
            images.push(image);
        }
    }
    Ok(images)
}

/// Points `reference` at `image_id` (what `build -t` does).
pub fn tag(state: &StateDir, reference: &str, image_id: &str) -> Result<(), StateError> {
    let reference = normalize_reference(reference);
    let mut store: Store = state.read_doc(FILE)?;
    store.removed.remove(&reference);
    store.tags.insert(reference, image_id.to_string());
    state.write_doc(FILE, &store)
}

/// Brings a definition's own reference back (what `pull` does).
pub fn restore(state: &StateDir, image: &Image) -> Result<(), StateError> {
    let mut store: Store = state.read_doc(FILE)?;
    store.removed.remove(&image.reference);
    if store
        .tags
        .get(&image.reference)
        .is_some_and(|id| *id != image.id)
    {
        store.tags.remove(&image.reference);
    }
    state.write_doc(FILE, &store)
}

/// Removes one tag.
pub fn untag(state: &StateDir, reference: &str) -> Result<(), StateError> {
    let mut store: Store = state.read_doc(FILE)?;
    store.tags.remove(reference);
    store.removed.insert(reference.to_string());
    state.write_doc(FILE, &store)
}
