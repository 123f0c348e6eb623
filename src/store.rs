//! Staging storage: one URL-addressed store for every read and write of staged data.
//!
//! Local folders, `file://` URLs and `s3://bucket/prefix` all go through `object_store`, so
//! there is one code path. Puts are atomic on every backend (local files are written under a
//! temporary name and renamed; S3 objects appear only when complete), which is what lets a
//! tile be committed only after it is fully written.

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::sync::{Arc, OnceLock};

/// Errors of the staging store, each naming the URL it is about.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL cannot be parsed or its scheme is not supported.
    #[error("{url}: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A local output folder cannot be created.
    #[error("cannot create output folder {path}: {source}; choose a writable --out")]
    CreateDir {
        /// The folder.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A store operation failed.
    #[error("{op} {url}: {source}")]
    Op {
        /// What was attempted (put, get, list, delete).
        op: &'static str,
        /// The object or prefix.
        url: String,
        /// The store's error.
        source: object_store::Error,
    },
}

/// The tokio runtime that drives object_store from rayon and CLI threads.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("rasterstage-io")
            .build()
            .expect("tokio runtime")
    })
}

/// A staging location: a store and a root prefix inside it.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    root: Path,
    url: String,
}

impl Store {
    /// Opens a staging location from a local path, `file://` URL or `s3://bucket/prefix`.
    /// A local folder is created if missing.
    ///
    /// # Errors
    /// [`StoreError::BadUrl`] for an unsupported scheme, [`StoreError::CreateDir`] when a
    /// local folder cannot be created.
    pub fn open(url: &str) -> Result<Store, StoreError> {
        let bad = |reason: String| StoreError::BadUrl { url: url.to_string(), reason };
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket name; use s3://bucket/prefix".into()));
            }
            let s3 = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| bad(e.to_string()))?;
            return Ok(Store {
                inner: Arc::new(s3),
                root: Path::from(prefix.trim_matches('/')),
                url: url.trim_end_matches('/').to_string(),
            });
        }
        let local = if let Some(p) = url.strip_prefix("file://") {
            p.to_string()
        } else if url.contains("://") {
            return Err(bad("unsupported scheme; use a local path, file:// or s3://".into()));
        } else {
            url.to_string()
        };
        std::fs::create_dir_all(&local).map_err(|source| StoreError::CreateDir { path: local.clone(), source })?;
        let abs =
            std::fs::canonicalize(&local).map_err(|source| StoreError::CreateDir { path: local.clone(), source })?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(&abs)
            .map_err(|e| bad(e.to_string()))?
            .with_automatic_cleanup(true);
        Ok(Store {
            inner: Arc::new(fs),
            root: Path::default(),
            url: abs.to_string_lossy().trim_end_matches('/').to_string(),
        })
    }

    /// Opens a staging location to read what is there: like [`Store::open`], but a local
    /// folder that does not exist is an error instead of being created (`inspect` of a
    /// mistyped path must not leave an empty folder behind and report "nothing staged").
    ///
    /// # Errors
    /// As [`Store::open`], and [`StoreError::BadUrl`] for a missing local folder.
    pub fn open_existing(url: &str) -> Result<Store, StoreError> {
        if !url.contains("://") || url.starts_with("file://") {
            let local = url.strip_prefix("file://").unwrap_or(url);
            if !std::path::Path::new(local).is_dir() {
                return Err(StoreError::BadUrl { url: url.to_string(), reason: "no such staging folder".into() });
            }
        }
        Store::open(url)
    }

    /// The location as a URL or absolute path, for messages and for other readers (DuckDB).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether this is an object store (not the local disk).
    pub fn is_remote(&self) -> bool {
        self.url.contains("://")
    }

    /// A store for the sub-folder `prefix` of this one.
    pub fn child(&self, prefix: &str) -> Store {
        Store { inner: self.inner.clone(), root: self.path(prefix), url: self.url_of(prefix) }
    }

    /// URL of `key` under this location.
    pub fn url_of(&self, key: &str) -> String {
        format!("{}/{}", self.url, key)
    }

    fn path(&self, key: &str) -> Path {
        let mut p = self.root.clone();
        for part in key.split('/').filter(|s| !s.is_empty()) {
            p = p.clone().join(part);
        }
        p
    }

    fn op(&self, op: &'static str, key: &str) -> impl FnOnce(object_store::Error) -> StoreError + '_ {
        let url = self.url_of(key);
        move |source| StoreError::Op { op, url, source }
    }

    /// Writes `bytes` to `key` atomically (large objects by multipart upload).
    ///
    /// # Errors
    /// [`StoreError::Op`] naming the object.
    pub fn put(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        let path = self.path(key);
        runtime()
            .block_on(async {
                if bytes.len() <= MULTIPART_THRESHOLD {
                    self.inner.put(&path, PutPayload::from(bytes)).await.map(|_| ())
                } else {
                    let mut w =
                        object_store::buffered::BufWriter::with_capacity(self.inner.clone(), path, MULTIPART_THRESHOLD);
                    use tokio::io::AsyncWriteExt;
                    let r = async {
                        w.put(bytes).await?;
                        w.shutdown()
                            .await
                            .map_err(|e| object_store::Error::Generic { store: "multipart", source: Box::new(e) })
                    }
                    .await;
                    if r.is_err() {
                        // Leave no orphan parts behind on S3.
                        let _ = w.abort().await;
                    }
                    r
                }
            })
            .map_err(self.op("put", key))
    }

    /// Reads `key`; `None` when it does not exist.
    ///
    /// # Errors
    /// [`StoreError::Op`] naming the object, for anything but "not found".
    pub fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let path = self.path(key);
        let r = runtime().block_on(async { self.inner.get(&path).await?.bytes().await });
        match r {
            Ok(b) => Ok(Some(b)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.op("get", key)(e)),
        }
    }

    /// Keys (relative to this location) of every object under `prefix`, sorted.
    ///
    /// # Errors
    /// [`StoreError::Op`] naming the prefix.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let base = self.path(prefix);
        let root_len = self.root.as_ref().len();
        let mut keys: Vec<String> = runtime()
            .block_on(async {
                self.inner.list(Some(&base)).map_ok(|m| m.location.to_string()).try_collect::<Vec<_>>().await
            })
            .map_err(self.op("list", prefix))?
            .into_iter()
            .map(|k| k[root_len..].trim_start_matches('/').to_string())
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// Names of the immediate sub-folders of this location.
    ///
    /// # Errors
    /// [`StoreError::Op`] naming the location.
    pub fn folders(&self) -> Result<Vec<String>, StoreError> {
        let root_len = self.root.as_ref().len();
        let r = runtime().block_on(self.inner.list_with_delimiter(Some(&self.root))).map_err(self.op("list", ""))?;
        let mut out: Vec<String> =
            r.common_prefixes.into_iter().map(|p| p.to_string()[root_len..].trim_matches('/').to_string()).collect();
        out.sort();
        Ok(out)
    }

    /// Deletes `key`; a missing object is not an error.
    ///
    /// # Errors
    /// [`StoreError::Op`] naming the object.
    pub fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(key);
        match runtime().block_on(self.inner.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.op("delete", key)(e)),
        }
    }

    /// Deletes every object under `prefix`.
    ///
    /// # Errors
    /// [`StoreError::Op`] naming the first object that could not be deleted.
    pub fn delete_prefix(&self, prefix: &str) -> Result<(), StoreError> {
        for key in self.list(prefix)? {
            self.delete(&key)?;
        }
        Ok(())
    }
}

/// Objects above this size are uploaded in parts (S3's minimum part size is 5 MiB).
pub const MULTIPART_THRESHOLD: usize = 8 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("a/b").to_str().unwrap()).unwrap();
        store.put("ds/tiles/r0_c0.bin", Bytes::from_static(b"abc")).unwrap();
        store.put("ds/big.bin", Bytes::from(vec![7u8; MULTIPART_THRESHOLD + 10])).unwrap();
        assert_eq!(store.get("ds/tiles/r0_c0.bin").unwrap().unwrap().as_ref(), b"abc");
        assert_eq!(store.get("ds/big.bin").unwrap().unwrap().len(), MULTIPART_THRESHOLD + 10);
        assert!(store.get("nope").unwrap().is_none());
        assert_eq!(store.list("ds").unwrap(), vec!["ds/big.bin", "ds/tiles/r0_c0.bin"]);
        assert_eq!(store.folders().unwrap(), vec!["ds"]);
        let child = store.child("ds");
        assert_eq!(child.list("tiles").unwrap(), vec!["tiles/r0_c0.bin"]);
        store.delete_prefix("ds").unwrap();
        assert!(store.list("").unwrap().is_empty());
    }

    #[test]
    fn bad_urls() {
        assert!(Store::open("ftp://x/y").unwrap_err().to_string().contains("unsupported scheme"));
        let f = tempfile::NamedTempFile::new().unwrap();
        let under_file = f.path().join("sub");
        let e = Store::open(under_file.to_str().unwrap()).unwrap_err().to_string();
        assert!(e.contains("cannot create output folder"), "{e}");
        let missing = f.path().with_extension("missing");
        let e = Store::open_existing(missing.to_str().unwrap()).unwrap_err().to_string();
        assert!(e.contains("no such staging folder"), "{e}");
        assert!(!missing.exists());
    }
}
