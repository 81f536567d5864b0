//! Objects in a remote object store (S3 and S3-compatible stores, Google
//! Cloud Storage, Azure Blob Storage), through the `object_store` crate.
//!
//! `object_store` is asynchronous; the rest of Shale is not. A `Remote`
//! owns a small tokio runtime and blocks on it, so callers (import's rayon
//! workers, the mount's reader threads) simply wait, several at a time.
//! Retries with exponential backoff on timeouts and 5xx answers are
//! `object_store`'s (its `RetryConfig`): after them, an operation fails
//! with an error naming the object and the store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::ObjectStore as Backend;

use crate::config::StoreOptions;
use crate::error::{Error, IoContext, Result};

use super::backend::backend;
use super::bucket::{Bucket, PART};
use super::location::StoreLocation;
use super::read_cache::ReadCache;
use super::{CacheInfo, ObjectStore};

/// A remote object store under a key prefix.
pub struct Remote {
    bucket: Bucket,
    staging: PathBuf,
    /// Recently read windows of objects on local disk.
    cache: Option<ReadCache>,
    /// Sizes of objects read through the cache.
    sizes: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

impl Remote {
    /// The store at `location`; packs are staged in `staging`.
    pub fn connect(
        location: &StoreLocation,
        staging: &Path,
        options: &StoreOptions,
    ) -> Result<Remote> {
        Remote::new(
            backend(location, options)?,
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
        crate::private::create_dir_all(staging).at(staging)?;
        Ok(Remote {
            bucket: Bucket::new(backend, prefix, name, 2)?,
            staging: staging.to_path_buf(),
            cache: None,
            sizes: Default::default(),
        })
    }

    /// Reads whole `window`-byte windows of objects and keeps them in
    /// `dir`, at most `limit` bytes (least recently used first out); a
    /// limit of 0 keeps nothing and reads exactly what is asked.
    pub fn with_read_cache(mut self, dir: &Path, limit: u64, window: u64) -> Result<Remote> {
        self.cache = if limit == 0 {
            None
        } else {
            Some(ReadCache::open(dir, limit, window.max(1))?)
        };
        Ok(self)
    }

    /// Reads `len` bytes at `offset` from the store itself.
    fn fetch_range(&self, key: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        let range = offset..offset + len as u64;
        let data = self
            .bucket
            .get_range(&self.path(key), range)
            .map_err(|e| self.error(key, e))?;
        if data.len() != len {
            return Err(self.short_read(key, offset, len, data.len() as u64));
        }
        Ok(data.to_vec())
    }

    fn short_read(&self, key: &str, offset: u64, len: usize, got: u64) -> Error {
        Error::io(
            format!("{}/{key}", self.bucket.name()),
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("wanted {len} bytes at {offset}, got {got}"),
            ),
        )
    }

    /// Bytes `from..to` of window `w` of `key`, from the cache or fetched
    /// (one fetch per window however many threads want it at once).
    fn window_part(
        &self,
        cache: &ReadCache,
        key: &str,
        w: u64,
        from: usize,
        to: usize,
    ) -> Result<Vec<u8>> {
        if let Some(d) = cache.read_part(key, w, from, to) {
            return Ok(d);
        }
        let _one = cache.lock(key, w);
        if let Some(d) = cache.read_part(key, w, from, to) {
            return Ok(d);
        }
        let size = self.object_size(key)?;
        let start = w * cache.window;
        if start + to as u64 > size {
            return Err(self.short_read(
                key,
                start + from as u64,
                to - from,
                size.saturating_sub(start + from as u64),
            ));
        }
        let data = self.fetch_range(
            key,
            start,
            (size.min(start + cache.window) - start) as usize,
        )?;
        cache.put_window(key, w, &data);
        Ok(data[from..to].to_vec())
    }

    /// The length of window `w` of `key` (the last one may be short).
    fn window_len(&self, cache: &ReadCache, key: &str, w: u64) -> Result<u64> {
        let size = self.object_size(key)?;
        let start = w * cache.window;
        Ok(size.min(start + cache.window).saturating_sub(start))
    }

    /// An object's size, asked once (objects never change).
    fn object_size(&self, key: &str) -> Result<u64> {
        if let Some(s) = self
            .sizes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
        {
            return Ok(*s);
        }
        let size = ObjectStore::size(self, key)?;
        self.sizes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string(), size);
        Ok(size)
    }

    /// An `object_store` error as ours: a missing object is `NotFound` (as
    /// from the local store), anything else names the object and the store.
    fn error(&self, key: &str, e: object_store::Error) -> Error {
        self.bucket.error(&self.path(key), e)
    }

    fn path(&self, key: &str) -> ObjectPath {
        self.bucket.path(key)
    }
}

impl ObjectStore for Remote {
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        self.bucket
            .put(&self.path(key), data.to_vec())
            .map_err(|e| self.error(key, e))
    }

    /// Streams the file up (a multipart upload past [`PART`] bytes, so a
    /// pack is never held whole in memory), then removes it.
    fn put_file(&self, key: &str, path: &Path) -> Result<()> {
        let mut file = std::fs::File::open(path).at(path)?;
        let mut upload = self.bucket.upload(self.path(key));
        let mut buf = vec![0u8; PART];
        loop {
            let n = std::io::Read::read(&mut file, &mut buf).at(path)?;
            if n == 0 {
                break;
            }
            upload.write(&buf[..n])?;
        }
        upload.finish()?;
        std::fs::remove_file(path).at(path)
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        self.bucket
            .get(&self.path(key))
            .map(|b| b.to_vec())
            .map_err(|e| self.error(key, e))
    }

    fn read_cache(&self) -> Option<CacheInfo> {
        let cache = self.cache.as_ref()?;
        let (used, limit) = cache.usage();
        Some(CacheInfo {
            used,
            limit,
            window: cache.window,
        })
    }

    fn window_cached(&self, key: &str, w: u64) -> Result<bool> {
        let Some(cache) = &self.cache else {
            return Ok(false);
        };
        let len = self.window_len(cache, key, w)?;
        Ok(cache.has_window(key, w, len))
    }

    fn warm_window(&self, key: &str, w: u64) -> Result<(u64, bool)> {
        let Some(cache) = &self.cache else {
            return Ok((0, false));
        };
        let len = self.window_len(cache, key, w)?;
        if len == 0 || cache.has_window(key, w, len) {
            return Ok((len, false));
        }
        let _one = cache.lock(key, w);
        if cache.has_window(key, w, len) {
            return Ok((len, false));
        }
        let data = self.fetch_range(key, w * cache.window, len as usize)?;
        cache.put_window(key, w, &data);
        Ok((len, true))
    }

    fn get_range(&self, key: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        let Some(cache) = &self.cache else {
            return self.fetch_range(key, offset, len);
        };
        // Whole windows are fetched and kept: the neighbours of a chunk
        // (the next files, in the order they were imported) come with it.
        let end = offset + len as u64;
        let mut out = Vec::with_capacity(len);
        let mut w = offset / cache.window;
        while w * cache.window < end {
            let start = w * cache.window;
            let from = (offset.max(start) - start) as usize;
            let to = (end.min(start + cache.window) - start) as usize;
            out.extend_from_slice(&self.window_part(cache, key, w, from, to)?);
            w += 1;
        }
        Ok(out)
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let own = self.bucket.prefix();
        let strip = if own.is_empty() {
            String::new()
        } else {
            format!("{own}/")
        };
        // object_store lists by whole path segments: list the parent
        // directory of `prefix` and filter.
        let dir = match prefix.rfind('/') {
            Some(i) => &prefix[..i],
            None => "",
        };
        let base = if dir.is_empty() {
            (!own.is_empty()).then(|| ObjectPath::from(own))
        } else {
            Some(self.path(dir))
        };
        let metas = self
            .bucket
            .list(base.as_ref())
            .map_err(|e| self.error(prefix, e))?;
        Ok(metas
            .into_iter()
            .filter_map(|m| m.location.as_ref().strip_prefix(&strip).map(str::to_string))
            .filter(|k| k.starts_with(prefix))
            .collect())
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.bucket
            .delete(&self.path(key))
            .map_err(|e| self.error(key, e))
    }

    fn size(&self, key: &str) -> Result<u64> {
        self.bucket
            .head(&self.path(key))
            .map(|m| m.size)
            .map_err(|e| self.error(key, e))
    }

    fn modified(&self, key: &str) -> Result<Option<i64>> {
        self.bucket
            .head(&self.path(key))
            .map(|m| m.last_modified.timestamp_nanos_opt())
            .map_err(|e| self.error(key, e))
    }

    fn staging_dir(&self) -> Option<PathBuf> {
        Some(self.staging.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::objects::read_cache::walk;
    use crate::store::objects::StoreKind;

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
    fn caches_ranges_within_a_limit() {
        let dir = tempfile::tempdir().unwrap();
        let backend = Arc::new(object_store::memory::InMemory::new());
        let store = Remote::new(backend.clone(), "", "memory://", &dir.path().join("tmp"))
            .unwrap()
            .with_read_cache(&dir.path().join("read"), 10_000, 4096)
            .unwrap();
        let data: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
        store.put("packs/a", &data).unwrap();
        assert_eq!(
            store.get_range("packs/a", 100, 4000).unwrap(),
            &data[100..4100]
        );
        // Served from the cache once the store no longer has it.
        store.bucket.delete(&ObjectPath::from("packs/a")).unwrap();
        assert_eq!(
            store.get_range("packs/a", 100, 4000).unwrap(),
            &data[100..4100]
        );
        assert!(store.get_range("packs/a", 20_000, 10).is_err());
        // Over the limit, the least recently used ranges go.
        store.put("packs/b", &data).unwrap();
        for i in 0..5u64 {
            store.get_range("packs/b", i * 4000, 4000).unwrap();
        }
        let used: u64 = walk(&dir.path().join("read")).iter().map(|f| f.1).sum();
        assert!(used <= 10_000, "{used}");
    }

    #[test]
    fn parses_pool_urls() {
        let l = StoreLocation::parse("s3://ml-data/shale/pool1/").unwrap();
        assert_eq!(
            (l.bucket.as_str(), l.prefix.as_str()),
            ("ml-data", "shale/pool1")
        );
        assert_eq!(l.url(), "s3://ml-data/shale/pool1");
        assert_eq!(StoreLocation::parse("s3://b").unwrap().prefix, "");
        assert!(StoreLocation::parse("s3:///x").is_err());
        assert!(StoreLocation::parse("/local/path").is_err());
        assert!(StoreLocation::parse("ftp://host/x").is_err());
        for (url, kind, name) in [
            ("gs://ml-data/pools/a", StoreKind::Gcs, "gcs"),
            ("az://container/pools/a", StoreKind::Azure, "azure"),
        ] {
            let l = StoreLocation::parse(url).unwrap();
            assert_eq!((l.kind, l.kind.name()), (kind, name));
            assert_eq!(l.prefix, "pools/a");
            assert_eq!(l.url(), url);
        }
    }

    /// GCS and Azure are wired to `object_store`'s builders: a location
    /// with what each needs builds a store named by its URL, and one
    /// without says what is missing. (No live service: nothing is fetched.)
    #[test]
    #[cfg(all(feature = "gcs", feature = "azure"))]
    fn builds_gcs_and_azure_stores() {
        let staging = tempfile::tempdir().unwrap();
        let azure = StoreLocation {
            endpoint: Some("http://127.0.0.1:10000/devstoreaccount1".into()),
            ..StoreLocation::parse("az://shale/pools/a").unwrap()
        };
        let none = StoreOptions::default();
        {
            let e = Remote::connect(&azure, staging.path(), &none)
                .err()
                .expect("no account");
            assert!(e.to_string().starts_with("az://shale/pools/a: "), "{e}");
        }
        let store = object_store::azure::MicrosoftAzureBuilder::new()
            .with_account("devstoreaccount1")
            .with_access_key("ZmFrZQ==")
            .with_container_name("shale")
            .build()
            .unwrap();
        let remote = Remote::new(Arc::new(store), &azure.prefix, &azure.url(), staging.path());
        assert!(remote.is_ok());
        let gcs = StoreLocation::parse("gs://ml-data/pools/a").unwrap();
        match Remote::connect(&gcs, staging.path(), &none) {
            Ok(r) => assert_eq!(r.bucket.name(), "gs://ml-data/pools/a"),
            Err(e) => assert!(e.to_string().starts_with("gs://ml-data/pools/a: "), "{e}"),
        }
    }
}
