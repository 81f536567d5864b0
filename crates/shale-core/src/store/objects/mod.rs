//! The object layer: immutable, named byte strings.
//!
//! Everything the pool stores lives here as an object whose key is a
//! `/`-separated path such as `packs/ab/ab12….pack`. Objects are written once
//! and never changed (invariant 1). This layer knows nothing of files,
//! trees or volumes.

mod backend;
mod bucket;
mod credentials;
pub mod listing;
mod local;
mod location;
mod memory;
mod read_ahead;
mod read_cache;
mod remote;

pub use backend::{backend, backend_and_lister};
pub use bucket::{Bucket, Upload, PART};
pub use local::LocalDir;
pub use location::{StoreKind, StoreLocation};
pub use memory::Memory;
pub use remote::Remote;

use crate::error::Result;

/// What a remote store's local read cache holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheInfo {
    /// Bytes cached now.
    pub used: u64,
    /// The most it keeps (`SHALE_READ_CACHE_SIZE`).
    pub limit: u64,
    /// Bytes of an object fetched and kept together.
    pub window: u64,
}

/// A place that stores immutable objects.
pub trait ObjectStore: Send + Sync {
    /// Stores `data` under `key`. When this returns, the object is durable.
    fn put(&self, key: &str, data: &[u8]) -> Result<()>;
    /// Reads a whole object.
    fn get(&self, key: &str) -> Result<Vec<u8>>;
    /// Reads `len` bytes at `offset` of an object.
    fn get_range(&self, key: &str, offset: u64, len: usize) -> Result<Vec<u8>>;
    /// Reads `len` bytes at `offset` of an object if that needs no waiting
    /// (on a disk or a network): `None` when it would, or when the store
    /// cannot tell. Lets a caller that must not block serve what is at hand
    /// and hand the rest to a thread that may wait.
    fn get_range_now(&self, _key: &str, _offset: u64, _len: usize) -> Option<Vec<u8>> {
        None
    }
    /// The local read cache, for a remote store that keeps one.
    fn read_cache(&self) -> Option<CacheInfo> {
        None
    }
    /// Brings window `w` (bytes `w * window ..` of [`CacheInfo::window`])
    /// of object `key` into the read cache; returns its length and whether
    /// it was fetched now (not when it was there, or there is no cache).
    fn warm_window(&self, _key: &str, _w: u64) -> Result<(u64, bool)> {
        Ok((0, false))
    }
    /// Whether window `w` of object `key` is in the read cache.
    fn window_cached(&self, _key: &str, _w: u64) -> Result<bool> {
        Ok(false)
    }
    /// Lists the keys that start with `prefix`, in no particular order.
    fn list(&self, prefix: &str) -> Result<Vec<String>>;
    /// Removes an object; removing an absent object is not an error.
    fn delete(&self, key: &str) -> Result<()>;
    /// Size of an object in bytes.
    fn size(&self, key: &str) -> Result<u64>;
    /// When an object was written, in ns since the Unix epoch, if the
    /// store knows (`gc` frees an unlisted pack only if it is older than
    /// every running writer).
    fn modified(&self, _key: &str) -> Result<Option<i64>> {
        Ok(None)
    }
    /// Stores the contents of the local file `path` under `key` and removes
    /// the file. Backends on the same file system move it instead of copying.
    fn put_file(&self, key: &str, path: &std::path::Path) -> Result<()> {
        use crate::error::IoContext;
        let data = std::fs::read(path).at(path)?;
        self.put(key, &data)?;
        std::fs::remove_file(path).at(path)
    }
    /// A local directory on the same file system as the store, where
    /// objects can be staged before [`put_file`](Self::put_file); `None` if
    /// the store has no such place.
    fn staging_dir(&self) -> Option<std::path::PathBuf> {
        None
    }
}

#[cfg(test)]
pub(crate) mod conformance {
    //! Behaviour every backend must show.
    use super::*;
    use crate::error::Error;

    pub fn run(store: &dyn ObjectStore) {
        store.put("packs/aa/one", b"hello world").unwrap();
        store.put("packs/bb/two", b"").unwrap();
        assert_eq!(store.get("packs/aa/one").unwrap(), b"hello world");
        assert_eq!(store.get("packs/bb/two").unwrap(), b"");
        assert_eq!(store.get_range("packs/aa/one", 6, 5).unwrap(), b"world");
        assert_eq!(store.size("packs/aa/one").unwrap(), 11);
        assert!(
            store.get_range("packs/aa/one", 8, 10).is_err(),
            "short read must fail"
        );
        // A read that needs no waiting, where the store offers one, gives
        // the same bytes (the object was just read: it is at hand).
        if let Some(now) = store.get_range_now("packs/aa/one", 6, 5) {
            assert_eq!(now, b"world");
        }
        assert_eq!(store.get_range_now("packs/aa/one", 8, 10), None);
        assert_eq!(store.get_range_now("packs/zz/absent", 0, 1), None);
        if let Some(t) = store.modified("packs/aa/one").unwrap() {
            let now = crate::catalog::now_ns();
            assert!(
                t <= now + 1_000_000_000 && t > now - 600_000_000_000,
                "{t} vs {now}"
            );
        }
        let mut keys = store.list("packs/").unwrap();
        keys.sort();
        assert_eq!(keys, vec!["packs/aa/one", "packs/bb/two"]);
        assert!(store.list("nothing/").unwrap().is_empty());
        store.delete("packs/aa/one").unwrap();
        store.delete("packs/aa/one").unwrap();
        let staging = tempfile::tempdir().unwrap();
        let dir = store
            .staging_dir()
            .unwrap_or_else(|| staging.path().to_path_buf());
        let file = dir.join("staged.tmp");
        std::fs::write(&file, b"staged").unwrap();
        store.put_file("packs/cc/three", &file).unwrap();
        assert!(!file.exists(), "put_file must consume the file");
        assert_eq!(store.get("packs/cc/three").unwrap(), b"staged");
        assert!(matches!(store.get("packs/aa/one"), Err(Error::Io { .. })));
    }
}
