//! Objects in a remote object store (S3 and S3-compatible stores), through
//! the `object_store` crate.
//!
//! `object_store` is asynchronous; the rest of Shale is not. A `Remote`
//! owns a small tokio runtime and blocks on it, so callers (import's rayon
//! workers, the mount's reader threads) simply wait, several at a time.
//! Retries with exponential backoff on timeouts and 5xx answers are
//! `object_store`'s (its `RetryConfig`): after them, an operation fails
//! with an error naming the object and the store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore as Backend, ObjectStoreExt, PutPayload};

use crate::error::{Error, IoContext, Result};

use super::ObjectStore;

/// Where an S3-compatible pool lives and how to reach it. Credentials are
/// never part of it: they come from the standard AWS chain
/// (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, profiles, instance roles).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct S3Location {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket, without leading or trailing `/`.
    pub prefix: String,
    /// Endpoint URL for S3-compatible stores (`http://127.0.0.1:3900`);
    /// `None`: AWS (or `AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// Region; `None`: `AWS_REGION`, else `us-east-1`.
    pub region: Option<String>,
}

impl S3Location {
    /// Parses `s3://BUCKET[/PREFIX]`.
    pub fn parse(url: &str) -> Result<S3Location> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| {
            Error::InvalidArgument(format!("{url}: an object-store pool URL starts with s3://"))
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::InvalidArgument(format!("{url}: no bucket name")));
        }
        Ok(S3Location {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            ..Default::default()
        })
    }

    /// `s3://BUCKET/PREFIX`.
    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// A remote object store under a key prefix.
pub struct Remote {
    backend: Arc<dyn Backend>,
    prefix: String,
    /// What to call this store in messages.
    name: String,
    staging: PathBuf,
    runtime: tokio::runtime::Runtime,
}

impl Remote {
    /// An S3 (or S3-compatible) store; packs are staged in `staging`.
    pub fn s3(location: &S3Location, staging: &Path) -> Result<Remote> {
        let mut builder = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(&location.bucket)
            // Path-style addressing: what S3-compatible stores expect.
            .with_virtual_hosted_style_request(false);
        if let Some(endpoint) = &location.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        let endpoint = location.endpoint.clone().or_else(|| {
            ["AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
                .iter()
                .find_map(|k| std::env::var(k).ok())
        });
        if endpoint.is_some_and(|e| e.starts_with("http://")) {
            builder = builder.with_allow_http(true);
        }
        if let Some(region) = &location.region {
            builder = builder.with_region(region);
        } else if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            builder = builder.with_region("us-east-1");
        }
        let backend = builder
            .build()
            .map_err(|e| Error::InvalidArgument(format!("{}: {e}", location.url())))?;
        Remote::new(
            Arc::new(backend),
            &location.prefix,
            &location.url(),
            staging,
        )
    }

    /// A store over any `object_store` backend (tests use its in-memory one).
    pub fn new(
        backend: Arc<dyn Backend>,
        prefix: &str,
        name: &str,
        staging: &Path,
    ) -> Result<Remote> {
        std::fs::create_dir_all(staging).at(staging)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("shale-io")
            .enable_all()
            .build()
            .map_err(|e| Error::io(staging, e))?;
        Ok(Remote {
            backend,
            prefix: prefix.trim_matches('/').to_string(),
            name: name.to_string(),
            staging: staging.to_path_buf(),
            runtime,
        })
    }

    fn path(&self, key: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }

    /// An `object_store` error as ours: a missing object is `NotFound` (as
    /// from the local store), anything else names the object and the store.
    fn error(&self, key: &str, e: object_store::Error) -> Error {
        let kind = match e {
            object_store::Error::NotFound { .. } => std::io::ErrorKind::NotFound,
            _ => std::io::ErrorKind::Other,
        };
        Error::io(
            format!("{}/{key}", self.name),
            std::io::Error::new(kind, e.to_string()),
        )
    }
}

impl ObjectStore for Remote {
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        let payload = PutPayload::from(data.to_vec());
        self.runtime
            .block_on(self.backend.put(&self.path(key), payload))
            .map(|_| ())
            .map_err(|e| self.error(key, e))
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        self.runtime
            .block_on(async {
                let got = self.backend.get(&self.path(key)).await?;
                got.bytes().await
            })
            .map(|b| b.to_vec())
            .map_err(|e| self.error(key, e))
    }

    fn get_range(&self, key: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        let range = offset..offset + len as u64;
        let data = self
            .runtime
            .block_on(self.backend.get_range(&self.path(key), range))
            .map_err(|e| self.error(key, e))?;
        if data.len() != len {
            return Err(Error::io(
                format!("{}/{key}", self.name),
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("wanted {len} bytes at {offset}, got {}", data.len()),
                ),
            ));
        }
        Ok(data.to_vec())
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        // object_store lists by whole path segments: list the parent
        // directory of `prefix` and filter.
        let dir = match prefix.rfind('/') {
            Some(i) => &prefix[..i],
            None => "",
        };
        let base = if dir.is_empty() {
            (!self.prefix.is_empty()).then(|| ObjectPath::from(self.prefix.as_str()))
        } else {
            Some(self.path(dir))
        };
        let metas: Vec<object_store::ObjectMeta> = self
            .runtime
            .block_on(self.backend.list(base.as_ref()).try_collect())
            .map_err(|e| self.error(prefix, e))?;
        Ok(metas
            .into_iter()
            .filter_map(|m| m.location.as_ref().strip_prefix(&strip).map(str::to_string))
            .filter(|k| k.starts_with(prefix))
            .collect())
    }

    fn delete(&self, key: &str) -> Result<()> {
        match self.runtime.block_on(self.backend.delete(&self.path(key))) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(key, e)),
        }
    }

    fn size(&self, key: &str) -> Result<u64> {
        self.runtime
            .block_on(self.backend.head(&self.path(key)))
            .map(|m| m.size)
            .map_err(|e| self.error(key, e))
    }

    fn put_file(&self, key: &str, path: &Path) -> Result<()> {
        let data = std::fs::read(path).at(path)?;
        self.put(key, &data)?;
        std::fs::remove_file(path).at(path)
    }

    fn staging_dir(&self) -> Option<PathBuf> {
        Some(self.staging.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conforms_over_an_in_memory_backend() {
        let staging = tempfile::tempdir().unwrap();
        for prefix in ["", "team/pool"] {
            let backend = Arc::new(object_store::memory::InMemory::new());
            let store = Remote::new(backend, prefix, "memory://", staging.path()).unwrap();
            super::super::conformance::run(&store);
        }
    }

    #[test]
    fn parses_pool_urls() {
        let l = S3Location::parse("s3://ml-data/shale/pool1/").unwrap();
        assert_eq!(
            (l.bucket.as_str(), l.prefix.as_str()),
            ("ml-data", "shale/pool1")
        );
        assert_eq!(l.url(), "s3://ml-data/shale/pool1");
        assert_eq!(S3Location::parse("s3://b").unwrap().prefix, "");
        assert!(S3Location::parse("s3:///x").is_err());
        assert!(S3Location::parse("/local/path").is_err());
    }
}
