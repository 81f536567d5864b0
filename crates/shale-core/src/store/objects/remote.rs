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

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore as Backend, ObjectStoreExt, PutPayload};

use crate::config::StoreOptions;
use crate::error::{Error, IoContext, Result};

use super::ObjectStore;

/// Which service a store location is in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StoreKind {
    /// AWS S3 or an S3-compatible store (`s3://`).
    #[default]
    S3,
    /// Google Cloud Storage (`gs://`).
    Gcs,
    /// Azure Blob Storage (`az://`, the bucket is the container).
    Azure,
}

impl StoreKind {
    /// The URL scheme.
    pub fn scheme(self) -> &'static str {
        match self {
            StoreKind::S3 => "s3",
            StoreKind::Gcs => "gs",
            StoreKind::Azure => "az",
        }
    }

    /// The kind a URL names, if it is an object-store URL.
    pub fn of_url(url: &str) -> Option<StoreKind> {
        let scheme = url.split_once("://")?.0;
        [StoreKind::S3, StoreKind::Gcs, StoreKind::Azure]
            .into_iter()
            .find(|k| k.scheme() == scheme)
    }

    /// The name recorded in a pool's description (`s3`, `gcs`, `azure`).
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::S3 => "s3",
            StoreKind::Gcs => "gcs",
            StoreKind::Azure => "azure",
        }
    }
}

/// Where an object-store pool lives and how to reach it. Credentials are
/// never part of it: they come from each service's standard chain (for S3
/// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, profiles, instance roles;
/// for GCS `GOOGLE_APPLICATION_CREDENTIALS` or `GOOGLE_SERVICE_ACCOUNT`;
/// for Azure `AZURE_STORAGE_ACCOUNT_NAME` with `AZURE_STORAGE_ACCOUNT_KEY`,
/// a SAS or Azure AD variables).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreLocation {
    /// Which service.
    pub kind: StoreKind,
    /// Bucket (Azure: container) name.
    pub bucket: String,
    /// Key prefix inside the bucket, without leading or trailing `/`.
    pub prefix: String,
    /// Endpoint URL for S3-compatible stores (`http://127.0.0.1:3900`) or
    /// emulators; `None`: the service's own (or `AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// Region (S3); `None`: `AWS_REGION`, else `us-east-1`.
    pub region: Option<String>,
}

impl StoreLocation {
    /// Parses `s3://BUCKET[/PREFIX]`, `gs://…` or `az://CONTAINER[/PREFIX]`.
    pub fn parse(url: &str) -> Result<StoreLocation> {
        let kind = StoreKind::of_url(url).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{url}: an object-store pool URL starts with s3://, gs:// or az://"
            ))
        })?;
        let rest = &url[kind.scheme().len() + 3..];
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::InvalidArgument(format!("{url}: no bucket name")));
        }
        Ok(StoreLocation {
            kind,
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            ..Default::default()
        })
    }

    /// `SCHEME://BUCKET/PREFIX`.
    pub fn url(&self) -> String {
        let scheme = self.kind.scheme();
        if self.prefix.is_empty() {
            format!("{scheme}://{}", self.bucket)
        } else {
            format!("{scheme}://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// How long a request is retried (timeouts, 5xx answers, refused
/// connections) before it fails: `options.retry`, default 180 s
/// (`object_store`'s default), with at most 10 retries.
fn retry_config(options: &StoreOptions) -> object_store::RetryConfig {
    let mut retry = object_store::RetryConfig::default();
    if let Some(window) = options.retry {
        retry.retry_timeout = window;
        if window.is_zero() {
            retry.max_retries = 0;
        }
    }
    retry
}

/// The settings of `options` whose names start with `prefix`, as config
/// keys of a builder (`AWS_ACCESS_KEY_ID` -> `aws_access_key_id`); names
/// the builder does not know are left out, as its `from_env` does.
fn config_keys<'a, K: std::str::FromStr>(
    options: &'a StoreOptions,
    prefix: &'a str,
) -> impl Iterator<Item = (K, &'a str)> {
    options
        .with_prefix(prefix)
        .filter_map(|(k, v)| Some((k.to_ascii_lowercase().parse().ok()?, v)))
}

/// An `object_store` client for the bucket of `location` (the prefix is
/// the caller's to apply): S3 path-style, GCS and Azure, each configured
/// with the standard settings of its provider given in `options`.
pub fn backend(location: &StoreLocation, options: &StoreOptions) -> Result<Arc<dyn Backend>> {
    let retry = retry_config(options);
    let invalid =
        |e: object_store::Error| Error::InvalidArgument(format!("{}: {e}", location.url()));
    Ok(match location.kind {
        StoreKind::S3 => Arc::new(
            s3_builder(location, options, retry)
                .build()
                .map_err(invalid)?,
        ),
        StoreKind::Gcs => gcs(location, options, retry).map_err(invalid)?,
        StoreKind::Azure => azure(location, options, retry).map_err(invalid)?,
    })
}

/// A Google Cloud Storage client (`gs://`).
#[cfg(feature = "gcs")]
fn gcs(
    location: &StoreLocation,
    options: &StoreOptions,
    retry: object_store::RetryConfig,
) -> object_store::Result<Arc<dyn Backend>> {
    let mut builder = object_store::gcp::GoogleCloudStorageBuilder::new();
    for (k, v) in config_keys(options, "GOOGLE_") {
        builder = builder.with_config(k, v);
    }
    builder = builder.with_bucket_name(&location.bucket).with_retry(retry);
    if let Some(endpoint) = &location.endpoint {
        builder = builder.with_base_url(endpoint);
    }
    Ok(Arc::new(builder.build()?))
}

/// An Azure Blob Storage client (`az://`).
#[cfg(feature = "azure")]
fn azure(
    location: &StoreLocation,
    options: &StoreOptions,
    retry: object_store::RetryConfig,
) -> object_store::Result<Arc<dyn Backend>> {
    let mut builder = object_store::azure::MicrosoftAzureBuilder::new();
    for (k, v) in config_keys(options, "AZURE_") {
        builder = builder.with_config(k, v);
    }
    builder = builder
        .with_container_name(&location.bucket)
        .with_retry(retry);
    if let Some(endpoint) = &location.endpoint {
        builder = builder
            .with_endpoint(endpoint.clone())
            .with_allow_http(endpoint.starts_with("http://"));
    }
    Ok(Arc::new(builder.build()?))
}

/// The error of a build without the store kind's feature.
#[cfg(any(not(feature = "gcs"), not(feature = "azure")))]
fn not_built(feature: &'static str) -> object_store::Error {
    object_store::Error::NotSupported {
        source: format!(
            "this build of Shale has no support for it (built without the `{feature}` feature)"
        )
        .into(),
    }
}

#[cfg(not(feature = "gcs"))]
fn gcs(
    _: &StoreLocation,
    _: &StoreOptions,
    _: object_store::RetryConfig,
) -> object_store::Result<Arc<dyn Backend>> {
    Err(not_built("gcs"))
}

#[cfg(not(feature = "azure"))]
fn azure(
    _: &StoreLocation,
    _: &StoreOptions,
    _: object_store::RetryConfig,
) -> object_store::Result<Arc<dyn Backend>> {
    Err(not_built("azure"))
}

/// An S3 client, path-style (what S3-compatible stores expect), with the
/// endpoint and region of `location` over those of `options`.
fn s3_builder(
    location: &StoreLocation,
    options: &StoreOptions,
    retry: object_store::RetryConfig,
) -> object_store::aws::AmazonS3Builder {
    let mut builder = object_store::aws::AmazonS3Builder::new();
    for (k, v) in config_keys(options, "AWS_") {
        builder = builder.with_config(k, v);
    }
    builder = builder
        .with_bucket_name(&location.bucket)
        .with_virtual_hosted_style_request(false)
        .with_retry(retry);
    if let Some(endpoint) = &location.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    let endpoint = location.endpoint.as_deref().or_else(|| {
        options
            .get("AWS_ENDPOINT_URL")
            .or_else(|| options.get("AWS_ENDPOINT"))
    });
    if endpoint.is_some_and(|e| e.starts_with("http://")) {
        builder = builder.with_allow_http(true);
    }
    if let Some(region) = &location.region {
        builder = builder.with_region(region);
    } else if options.get("AWS_REGION").is_none() && options.get("AWS_DEFAULT_REGION").is_none() {
        builder = builder.with_region("us-east-1");
    }
    builder
}

/// A remote object store under a key prefix.
pub struct Remote {
    backend: Arc<dyn Backend>,
    prefix: String,
    /// What to call this store in messages.
    name: String,
    staging: PathBuf,
    runtime: tokio::runtime::Runtime,
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

    fn path(&self, key: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }

    /// Reads `len` bytes at `offset` from the store itself.
    fn fetch_range(&self, key: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        let range = offset..offset + len as u64;
        let data = self
            .runtime
            .block_on(self.backend.get_range(&self.path(key), range))
            .map_err(|e| self.error(key, e))?;
        if data.len() != len {
            return Err(self.short_read(key, offset, len, data.len() as u64));
        }
        Ok(data.to_vec())
    }

    fn short_read(&self, key: &str, offset: u64, len: usize, got: u64) -> Error {
        Error::io(
            format!("{}/{key}", self.name),
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
        let kind = match e {
            object_store::Error::NotFound { .. } => std::io::ErrorKind::NotFound,
            _ => std::io::ErrorKind::Other,
        };
        Error::io(format!("{}/{key}", self.name), std::io::Error::new(kind, e))
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

    fn modified(&self, key: &str) -> Result<Option<i64>> {
        self.runtime
            .block_on(self.backend.head(&self.path(key)))
            .map(|m| m.last_modified.timestamp_nanos_opt())
            .map_err(|e| self.error(key, e))
    }

    fn staging_dir(&self) -> Option<PathBuf> {
        Some(self.staging.clone())
    }
}

/// Windows of remote objects kept on local disk, one file per window,
/// evicted least recently used first once over the size limit. Objects
/// never change once written, so a cached window is never stale; what is
/// read from it is checked like any read (blobs against their ids). A
/// cache that cannot be written to is simply not used.
struct ReadCache {
    dir: PathBuf,
    limit: u64,
    window: u64,
    /// Bytes cached, as counted when opened plus what was added since.
    used: std::sync::atomic::AtomicU64,
    evicting: std::sync::Mutex<()>,
    /// Fetches of one window are serialized through one of these.
    fetching: Vec<std::sync::Mutex<()>>,
    /// Recently read window files, kept open, most recent first.
    open: std::sync::Mutex<std::collections::VecDeque<(PathBuf, Arc<std::fs::File>)>>,
}

/// Window files kept open by the read cache.
const OPEN_WINDOWS: usize = 32;

impl ReadCache {
    fn open(dir: &Path, limit: u64, window: u64) -> Result<ReadCache> {
        std::fs::create_dir_all(dir).at(dir)?;
        let used = walk(dir).iter().map(|(_, len, _)| len).sum();
        Ok(ReadCache {
            dir: dir.to_path_buf(),
            limit,
            window,
            used: std::sync::atomic::AtomicU64::new(used),
            evicting: std::sync::Mutex::new(()),
            fetching: (0..64).map(|_| std::sync::Mutex::new(())).collect(),
            open: Default::default(),
        })
    }

    fn name(&self, key: &str, w: u64) -> blake3::Hash {
        blake3::hash(format!("{key}\0{}\0{w}", self.window).as_bytes())
    }

    fn path(&self, key: &str, w: u64) -> PathBuf {
        let h = self.name(key, w).to_hex();
        self.dir.join(&h[..2]).join(&h[2..32])
    }

    fn lock(&self, key: &str, w: u64) -> std::sync::MutexGuard<'_, ()> {
        let i = self.name(key, w).as_bytes()[0] as usize % self.fetching.len();
        self.fetching[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes `from..to` of a cached window.
    fn read_part(&self, key: &str, w: u64, from: usize, to: usize) -> Option<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let path = self.path(key, w);
        let file = self.open_window(&path)?;
        let md = file.metadata().ok()?;
        if md.len() < to as u64 {
            return None;
        }
        let mut buf = vec![0u8; to - from];
        file.read_exact_at(&mut buf, from as u64).ok()?;
        // Recently used: its mtime orders eviction (refreshed at most once a
        // minute, to spare a metadata write per read).
        let age = md.modified().ok().and_then(|m| m.elapsed().ok());
        let stale = !matches!(age, Some(a) if a.as_secs() <= 60);
        if stale {
            let _ = filetime::set_file_handle_times(&file, None, Some(filetime::FileTime::now()));
        }
        Some(buf)
    }

    /// An open window file: recently used ones stay open, so neighbouring
    /// reads share one file (and its readahead) instead of opening it each.
    fn open_window(&self, path: &Path) -> Option<Arc<std::fs::File>> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = open.iter().position(|(p, _)| p == path) {
            let hit = open.remove(i)?;
            let file = hit.1.clone();
            open.push_front(hit);
            return Some(file);
        }
        drop(open);
        let file = Arc::new(std::fs::File::open(path).ok()?);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.push_front((path.to_path_buf(), file.clone()));
        open.truncate(OPEN_WINDOWS);
        Some(file)
    }

    fn put_window(&self, key: &str, w: u64, data: &[u8]) {
        let path = self.path(key, w);
        let Some(parent) = path.parent() else { return };
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let written = std::fs::create_dir_all(parent)
            .and_then(|()| std::fs::write(&tmp, data))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
            return;
        }
        let used = self
            .used
            .fetch_add(data.len() as u64, std::sync::atomic::Ordering::AcqRel)
            + data.len() as u64;
        if used > self.limit {
            self.evict();
        }
    }

    /// Removes the least recently used windows until 90% of the limit.
    fn evict(&self) {
        let Ok(_one) = self.evicting.try_lock() else {
            return;
        };
        let mut files = walk(&self.dir);
        files.sort_by_key(|(_, _, mtime)| *mtime);
        let mut used: u64 = files.iter().map(|(_, len, _)| len).sum();
        for (path, len, _) in files {
            if used <= self.limit / 10 * 9 {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                used -= len;
            }
        }
        self.used.store(used, std::sync::atomic::Ordering::Release);
    }
}

/// The files under `dir` (two levels): path, size, mtime.
fn walk(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    for sub in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(sub.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(md) = f.metadata() {
                let mtime = md.modified().unwrap_or(std::time::UNIX_EPOCH);
                out.push((f.path(), md.len(), mtime));
            }
        }
    }
    out
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
        store
            .runtime
            .block_on(backend.delete(&ObjectPath::from("packs/a")))
            .unwrap();
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
            Ok(r) => assert_eq!(r.name, "gs://ml-data/pools/a"),
            Err(e) => assert!(e.to_string().starts_with("gs://ml-data/pools/a: "), "{e}"),
        }
    }
}
