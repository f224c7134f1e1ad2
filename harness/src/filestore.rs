//! The filestore jobs read inputs from and upload artifacts to. The embedded
//! default is a local directory (via `object_store`), so nothing needs to run;
//! any `object_store` backend (S3, HTTP, ...) fits behind the same type.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::local::LocalFileSystem;
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
}

/// A filestore: put and get objects by key.
#[derive(Clone)]
pub struct Filestore {
    store: Arc<dyn ObjectStore>,
    /// Printed in artifact URLs: `<scheme>://<key>`.
    scheme: String,
}

impl std::fmt::Debug for Filestore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filestore")
            .field("store", &self.store.to_string())
            .finish()
    }
}

impl Filestore {
    /// A filestore kept in a local directory (created if missing).
    pub fn local(dir: &Path) -> Result<Self, FilestoreError> {
        std::fs::create_dir_all(dir).map_err(|error| FilestoreError::Open {
            path: dir.to_path_buf(),
            source: object_store::Error::Generic {
                store: "local",
                source: Box::new(error),
            },
        })?;
        let store =
            LocalFileSystem::new_with_prefix(dir).map_err(|source| FilestoreError::Open {
                path: dir.to_path_buf(),
                source,
            })?;
        Ok(Filestore {
            store: Arc::new(store),
            scheme: "filestore".into(),
        })
    }

    /// Wrap any `object_store` implementation.
    pub fn from_store(store: Arc<dyn ObjectStore>, scheme: impl Into<String>) -> Self {
        Filestore {
            store,
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
        self.store
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
        let result = self.store.get(&path).await.map_err(read)?;
        Ok(result.bytes().await.map_err(read)?.to_vec())
    }
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
}
