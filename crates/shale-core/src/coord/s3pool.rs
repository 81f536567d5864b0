//! Pools in an S3-compatible object store.
//!
//! ```text
//! s3://BUCKET/PREFIX/
//!   pool.json              the pool description (with its store settings)
//!   packs/xx/….pack        pack objects, as in a local pool
//!   catalog/catalog.db     a copy of the SQLite catalog, refreshed after changes
//!   catalog/owner.json     which machine's cache holds the live catalog
//! CACHE/                   on each machine (`PoolOptions::cache_dir`)
//!   s3-HASH/               per pool URL: catalog.db, tmp/ (packs being
//!                          written), mounts/, upper/, gc.lock, mount.log, cache-id
//! ```
//!
//! With an SQLite catalog, one machine at a time works on the pool: the
//! one whose cache id `catalog/owner.json` names. Another machine takes the
//! pool over with `shale pool attach URL` (it downloads the catalog copy
//! and becomes the owner); the previous owner is then refused, with a
//! message saying why, before it could overwrite the copy.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::config::PoolOptions;
use crate::crypt::PoolKeys;
use crate::error::{Error, IoContext, Result};
use crate::store::objects::{ObjectStore, Remote, StoreLocation};

/// Key of the catalog copy in the bucket.
pub const CATALOG_KEY: &str = "catalog/catalog.db";
/// Key of the record of which machine holds the catalog.
pub const OWNER_KEY: &str = "catalog/owner.json";
/// In the cache: present while a changed catalog has not been copied to the store.
pub const UNSYNCED_FILE: &str = "catalog.unsynced";

/// Contents of `catalog/owner.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Owner {
    /// Random id of the cache directory holding the live catalog.
    pub cache_id: String,
    /// Its host, for messages.
    pub host: String,
    /// When it took the pool (RFC 3339).
    pub since: String,
}

/// The store side of a pool description: where data and catalog live.
/// Never holds a secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreSettings {
    /// `s3`.
    pub kind: String,
    /// Endpoint URL given at creation, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Region given at creation, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// `sqlite`: the catalog lives on the owning machine, copied to the bucket.
    pub catalog: String,
}

/// This machine's cache directory for the pool at `location`: one folder
/// per pool URL under `options`' cache directory.
pub fn cache_dir(location: &StoreLocation, options: &PoolOptions) -> Result<PathBuf> {
    let hash = blake3::hash(location.url().as_bytes()).to_hex();
    Ok(options
        .cache_dir()?
        .join(format!("{}-{}", location.kind.scheme(), &hash[..16])))
}

/// Reads fetch whole 4 MiB windows of packs (JuiceFS's block size, so a
/// random read costs no more than there): cold reads in import order then
/// take one request per window instead of one per chunk.
pub const READ_WINDOW: u64 = 4 << 20;

/// The remote store of a pool at `location`, staging packs in its cache
/// and keeping recently read data in `CACHE/read/`.
pub fn connect(
    location: &StoreLocation,
    cache: &Path,
    options: &PoolOptions,
) -> Result<Arc<Remote>> {
    let remote = Remote::connect(location, &cache.join("tmp"), &options.store)?.with_read_cache(
        &cache.join("read"),
        options.read_cache_bytes,
        READ_WINDOW,
    )?;
    Ok(Arc::new(remote))
}

fn is_not_found(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

/// Reads an object, `None` if absent.
pub fn get_optional(store: &dyn ObjectStore, key: &str) -> Result<Option<Vec<u8>>> {
    match store.get(key) {
        Ok(d) => Ok(Some(d)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The cache's id, made on first use.
pub fn cache_id(cache: &Path) -> Result<String> {
    let path = cache.join("cache-id");
    match std::fs::read_to_string(&path) {
        Ok(id) => Ok(id.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            crate::private::create_dir_all(cache).at(cache)?;
            let seed = format!(
                "{:?}{}{:?}",
                std::time::SystemTime::now(),
                std::process::id(),
                cache
            );
            let id = blake3::hash(seed.as_bytes()).to_hex()[..32].to_string();
            // Linked into place whole; if another process got there first,
            // its id is the cache's.
            let aside = cache.join(format!("cache-id.{}", std::process::id()));
            crate::private::write(&aside, &id).at(&aside)?;
            let linked = std::fs::hard_link(&aside, &path);
            let _ = std::fs::remove_file(&aside);
            match linked {
                Ok(()) => Ok(id),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => cache_id(cache),
                Err(e) => Err(Error::io(path, e)),
            }
        }
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Records this cache as the catalog's owner.
pub fn take_ownership(store: &dyn ObjectStore, cache: &Path) -> Result<()> {
    let owner = Owner {
        cache_id: cache_id(cache)?,
        host: crate::coord::session::host_name(),
        since: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    };
    let json =
        serde_json::to_vec_pretty(&owner).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    store.put(OWNER_KEY, &json)
}

/// Checks this cache still owns the catalog of the pool named `name`.
pub fn check_owner(store: &dyn ObjectStore, cache: &Path, name: &str) -> Result<()> {
    let ours = cache_id(cache)?;
    let owner: Option<Owner> = get_optional(store, OWNER_KEY)?
        .map(|d| serde_json::from_slice(&d))
        .transpose()
        .map_err(|e| Error::corrupt(format!("{name}/{OWNER_KEY}"), e.to_string()))?;
    match owner {
        Some(o) if o.cache_id == ours && cache.join(crate::pool::CATALOG_FILE).exists() => Ok(()),
        Some(o) => Err(Error::InvalidArgument(format!(
            "pool {name} is attached to {} since {} (an SQLite catalog is used from one machine at a time): \
             run `shale --pool {name} pool attach` to move it to this machine",
            o.host, o.since
        ))),
        None => Err(Error::corrupt(format!("{name}/{OWNER_KEY}"), "the object is missing")),
    }
}

/// An encrypted pool's keys and id, to seal its catalog copy with.
pub type Seal<'a> = Option<(&'a PoolKeys, &'a str)>;

/// Uploads a consistent copy of `catalog` (made with `VACUUM INTO`),
/// sealed for an encrypted pool.
pub fn upload_catalog(
    store: &dyn ObjectStore,
    catalog: &Catalog,
    cache: &Path,
    seal: Seal<'_>,
) -> Result<()> {
    let tmp = cache
        .join("tmp")
        .join(format!("catalog-upload-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    catalog.copy_to(&tmp)?;
    let Some((keys, pool_id)) = seal else {
        return store.put_file(CATALOG_KEY, &tmp);
    };
    let db = std::fs::read(&tmp).at(&tmp);
    let _ = std::fs::remove_file(&tmp);
    store.put(CATALOG_KEY, &keys.seal_catalog(pool_id, &db?)?)
}

/// Downloads the catalog copy into `cache`, replacing any local catalog
/// (opened first for an encrypted pool).
pub fn download_catalog(
    store: &dyn ObjectStore,
    cache: &Path,
    name: &str,
    seal: Seal<'_>,
) -> Result<()> {
    let what = format!("{name}/{CATALOG_KEY}");
    let data = get_optional(store, CATALOG_KEY)?
        .ok_or_else(|| Error::corrupt(&what, "the object is missing"))?;
    let data = match seal {
        Some((keys, pool_id)) => keys.open_catalog(pool_id, &data, &what)?,
        None => data,
    };
    crate::private::create_dir_all(&cache.join("tmp")).at(cache)?;
    let path = cache.join(crate::pool::CATALOG_FILE);
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(cache.join(format!("{}{suffix}", crate::pool::CATALOG_FILE)));
    }
    let tmp = cache.join("tmp").join("catalog-download.db");
    crate::private::write(&tmp, &data).at(&tmp)?;
    std::fs::rename(&tmp, &path).at(&path)
}
