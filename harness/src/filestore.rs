//! The filestore jobs read inputs from and upload artifacts to. The embedded
//! default is a local directory, so nothing needs to run; any `object_store`
//! backend (S3, HTTP, ...) fits behind the same type.
//!
//! The local directory is reached only through a `cap-std` handle opened once: keys are
//! resolved beneath it and a symlink in it can lead nowhere else, whoever planted it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt as _};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// Why a filestore operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FilestoreError {
    #[error("`{key}` is not a valid filestore key: {reason}")]
    InvalidKey { key: String, reason: String },
    #[error("failed to {action} `{key}` in the filestore: {source}")]
    Store {
        action: &'static str,
        key: String,
        source: object_store::Error,
    },
    /// No object under the key (the store's own message names its host path, which
    /// differs run to run, so it is left out).
    #[error("`{key}` does not exist in the filestore")]
    NotFound { key: String },
    #[error("failed to open the filestore at `{path}`: {source}")]
    Open {
        path: PathBuf,
        source: object_store::Error,
    },
    /// A local filestore operation failed (the host path is left out, as for `NotFound`).
    #[error("failed to {action} `{key}` in the filestore: {source}")]
    Local {
        action: &'static str,
        key: String,
        source: std::io::Error,
    },
}

/// Where the objects are.
#[derive(Clone)]
enum Store {
    /// A local directory, through its handle.
    Local(Arc<Dir>),
    Object(Arc<dyn ObjectStore>),
}

/// A filestore: put and get objects by key.
#[derive(Clone)]
pub struct Filestore {
    store: Store,
    /// Printed in artifact URLs: `<scheme>://<key>`.
    scheme: String,
}

impl std::fmt::Debug for Filestore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let store = match &self.store {
            Store::Local(_) => "local directory".to_owned(),
            Store::Object(store) => store.to_string(),
        };
        f.debug_struct("Filestore").field("store", &store).finish()
    }
}

impl Filestore {
    /// A filestore kept in a local directory (created if missing).
    pub fn local(dir: &Path) -> Result<Self, FilestoreError> {
        let open = |error: std::io::Error| FilestoreError::Open {
            path: dir.to_path_buf(),
            source: object_store::Error::Generic {
                store: "local",
                source: Box::new(error),
            },
        };
        std::fs::create_dir_all(dir).map_err(open)?;
        let root = Dir::open_ambient_dir(dir, cap_std::ambient_authority()).map_err(open)?;
        Ok(Filestore {
            store: Store::Local(Arc::new(root)),
            scheme: "filestore".into(),
        })
    }

    /// Wrap any `object_store` implementation.
    pub fn from_store(store: Arc<dyn ObjectStore>, scheme: impl Into<String>) -> Self {
        Filestore {
            store: Store::Object(store),
            scheme: scheme.into(),
        }
    }

    fn path(key: &str) -> Result<ObjectPath, FilestoreError> {
        ObjectPath::parse(key).map_err(|error| FilestoreError::InvalidKey {
            key: key.to_owned(),
            reason: error.to_string(),
        })
    }

    /// The URL an artifact stored under `key` is reported with.
    pub fn url(&self, key: &str) -> String {
        format!("{}://{key}", self.scheme)
    }

    /// Store `bytes` under `key`.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), FilestoreError> {
        let path = Self::path(key)?;
        let store = match &self.store {
            Store::Local(root) => {
                let root = Arc::clone(root);
                let owned = path.to_string();
                return blocking(key, "write", move || put_local(&root, &owned, &bytes)).await;
            }
            Store::Object(store) => store,
        };
        store
            .put(&path, PutPayload::from(bytes))
            .await
            .map(drop)
            .map_err(|source| FilestoreError::Store {
                action: "write",
                key: key.to_owned(),
                source,
            })
    }

    /// Read the object under `key`.
    pub async fn get(&self, key: &str) -> Result<Vec<u8>, FilestoreError> {
        let path = Self::path(key)?;
        let store = match &self.store {
            Store::Local(root) => {
                let root = Arc::clone(root);
                let owned = path.to_string();
                return blocking(key, "read", move || get_local(&root, &owned)).await;
            }
            Store::Object(store) => store,
        };
        let read = |source| match source {
            object_store::Error::NotFound { .. } => FilestoreError::NotFound {
                key: key.to_owned(),
            },
            source => FilestoreError::Store {
                action: "read",
                key: key.to_owned(),
                source,
            },
        };
        let result = store.get(&path).await.map_err(read)?;
        Ok(result.bytes().await.map_err(read)?.to_vec())
    }
}

/// Runs a local filestore operation off the async threads; a missing object is `NotFound`.
async fn blocking<T: Send + 'static>(
    key: &str,
    action: &'static str,
    operation: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, FilestoreError> {
    let local = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::NotFound && action == "read" {
            FilestoreError::NotFound {
                key: key.to_owned(),
            }
        } else {
            FilestoreError::Local {
                action,
                key: key.to_owned(),
                source,
            }
        }
    };
    tokio::task::spawn_blocking(operation)
        .await
        .map_err(|error| local(std::io::Error::other(error.to_string())))?
        .map_err(local)
}

/// Written to a fresh name beside the key (`O_EXCL`: never through something already
/// there), then renamed over it: a reader sees the old object or the new one, and a
/// symlink at the key is replaced, not followed.
fn put_local(root: &Dir, key: &str, bytes: &[u8]) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let (parent, name) = match key.rsplit_once('/') {
        Some((parent, name)) => (Some(parent), name),
        None => (None, key),
    };
    if let Some(parent) = parent {
        root.create_dir_all(parent)?;
    }
    let temporary = format!(
        "{}.#dockproof-{}-{}",
        parent.map_or(String::new(), |parent| format!("{parent}/")) + name,
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let mut options = OpenOptions::new();
    options.write(true).create_new(true).mode(0o644);
    let written = root
        .open_with(&temporary, &options)
        .and_then(|mut file| file.write_all(bytes));
    if let Err(error) = written.and_then(|()| root.rename(&temporary, root, key)) {
        let _ = root.remove_file(&temporary);
        return Err(error);
    }
    Ok(())
}

/// A regular file under the key, checked on its descriptor, read whole.
fn get_local(root: &Dir, key: &str) -> std::io::Result<Vec<u8>> {
    let mut options = OpenOptions::new();
    options
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    let mut file = root.open_with(key, &options)?.into_std();
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(std::io::Error::other(
            "it is not a regular file; it is refused, not read",
        ));
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trips_objects() {
        let dir = tempfile::tempdir().unwrap();
        let store = Filestore::local(dir.path()).unwrap();
        store.put("jobs/1/out.json", b"{}".to_vec()).await.unwrap();
        assert_eq!(store.get("jobs/1/out.json").await.unwrap(), b"{}");
        assert_eq!(store.url("jobs/1/out.json"), "filestore://jobs/1/out.json");
        let missing = store.get("missing/key").await.unwrap_err();
        assert_eq!(
            missing.to_string(),
            "`missing/key` does not exist in the filestore"
        );
        assert!(matches!(
            store.put("a/../b", vec![]).await,
            Err(FilestoreError::InvalidKey { .. })
        ));
    }

    #[tokio::test]
    async fn a_symlink_in_the_store_leads_nowhere_else() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let host = outside.path().join("host.txt");
        std::fs::write(&host, "host data").unwrap();
        let store = Filestore::local(dir.path()).unwrap();
        std::os::unix::fs::symlink(&host, dir.path().join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("up")).unwrap();
        let error = store.get("link").await.unwrap_err();
        assert!(error.to_string().contains("outside"), "{error}");
        assert!(store.get("up/host.txt").await.is_err());
        assert!(store.put("up/new.txt", b"x".to_vec()).await.is_err());
        // A key that is a symlink is replaced, never written through.
        store.put("link", b"stored".to_vec()).await.unwrap();
        assert_eq!(store.get("link").await.unwrap(), b"stored");
        assert_eq!(std::fs::read_to_string(&host).unwrap(), "host data");
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
    }
}
