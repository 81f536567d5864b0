//! The object-store side of a pool: opening, creating and attaching a
//! pool whose packs live in a bucket, and copying its SQLite catalog there.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{
    choose, parse_description, unlock, Pool, PoolDescription, PoolSettings, CATALOG_FILE, POOL_FILE,
};
use crate::catalog::Catalog;
use crate::config::PoolOptions;
use crate::coord::s3pool::{self, StoreSettings};
use crate::crypt::PoolKeys;
use crate::error::{Error, IoContext, Result};
use crate::keys;
use crate::private::Access;
use crate::store::blobs::BlobStore;
use crate::store::objects::{ObjectStore, StoreLocation};

impl Pool {
    pub(super) fn open_s3(location: &StoreLocation, options: &PoolOptions) -> Result<Pool> {
        let name = location.url();
        let cache = s3pool::cache_dir(location, options)?;
        let remote = s3pool::connect(location, &cache, options)?;
        // pool.json never changes: a machine keeps the copy it read (the
        // owner check below tells a pool re-created at this URL).
        let local = cache.join(POOL_FILE);
        let text = match fs::read(&local) {
            Ok(t) => t,
            Err(_) => s3pool::get_optional(remote.as_ref(), POOL_FILE)?
                .ok_or_else(|| Error::NoPool(PathBuf::from(&name)))?,
        };
        let description =
            parse_description(&text, &format!("{name}/{POOL_FILE}"), Path::new(&name))?;
        let shared = description.shared_catalog().map(str::to_string);
        let candidates = unlock(&description, remote.as_ref(), &name, options)?;
        if shared.is_none() {
            s3pool::check_owner(remote.as_ref(), &cache, &name)?;
        }
        if !local.exists() {
            // Written aside and renamed: another process opening the pool
            // at the same time reads the whole copy or none.
            let aside = cache
                .join("tmp")
                .join(format!("{POOL_FILE}.{}", std::process::id()));
            crate::private::write(&aside, &text).at(&aside)?;
            fs::rename(&aside, &local).at(&local)?;
        }
        let catalog = match &shared {
            Some(url) => {
                Catalog::open_postgres(url, &description.id, options)?.with_lease(options.lease)
            }
            None => Catalog::open(&cache.join(CATALOG_FILE))?,
        };
        if shared.is_none() && cache.join(s3pool::UNSYNCED_FILE).exists() {
            // An earlier copy to the store failed: owe it again.
            catalog.write(|_| Ok(()))?;
        }
        let keys = choose(candidates, &catalog, &name)?;
        let catalog = Arc::new(catalog);
        crate::coord::leases::start_heartbeat(&catalog);
        let deltas = description.deltas();
        Ok(Pool {
            root: cache,
            description,
            store: BlobStore::new(remote.clone(), catalog)
                .with_keys(keys)
                .with_deltas(deltas),
            remote: Some((remote, name)),
            options: options.clone(),
        })
    }

    pub(super) fn init_s3(
        location: &StoreLocation,
        settings: &PoolSettings,
        options: &PoolOptions,
    ) -> Result<Pool> {
        let name = location.url();
        let cache = s3pool::cache_dir(location, options)?;
        let remote = s3pool::connect(location, &cache, options)?;
        refuse_taken_prefix(remote.as_ref(), &name)?;
        // A cache left from an earlier pool at this URL is stale.
        if cache.exists() {
            fs::remove_dir_all(&cache).at(&cache)?;
        }
        if settings.group.is_some() {
            return Err(Error::InvalidArgument(format!(
                "{name}: --group is for local pools; each user of an object-store pool keeps \
                 a cache of their own (share one pool among users with a PostgreSQL catalog, \
                 --catalog postgres://…)"
            )));
        }
        crate::private::create_root(&cache, Access::Owner, None).at(&cache)?;
        crate::private::create_dir_all(&cache.join("tmp")).at(&cache)?;
        let store = store_settings(location, settings, options);
        let description = PoolDescription::new(&name, settings, Some(store));
        let keys = match &settings.encrypt {
            Some(key) => Some(keys::create(
                remote.as_ref(),
                key,
                settings.first_key_name(),
                settings.master.as_ref(),
            )?),
            None => None,
        };
        let seal = keys.as_deref().map(|k| (k, description.id.as_str()));
        let catalog = match &settings.catalog {
            Some(url) => create_postgres_catalog(url, &description.id, options)?,
            None => {
                let catalog = Catalog::create(&cache.join(CATALOG_FILE))?;
                s3pool::take_ownership(remote.as_ref(), &cache)?;
                s3pool::upload_catalog(remote.as_ref(), &catalog, &cache, seal)?;
                catalog
            }
        };
        if let Some(k) = &keys {
            catalog.write(|tx| keys::record_check(tx, k))?;
        }
        // pool.json is written last: a pool is complete once it exists.
        let json = serde_json::to_vec_pretty(&description)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        remote.put(POOL_FILE, &json)?;
        let deltas = description.deltas();
        Ok(Pool {
            root: cache,
            description,
            store: BlobStore::new(remote.clone(), Arc::new(catalog))
                .with_keys(keys)
                .with_deltas(deltas),
            remote: Some((remote, name)),
            options: options.clone(),
        })
    }

    /// Makes this machine the one that works on the object-store pool
    /// `location` (SQLite catalog): downloads the catalog copy and records
    /// this machine's cache as its owner.
    pub fn attach(location: &StoreLocation, options: &PoolOptions) -> Result<Pool> {
        let name = location.url();
        let cache = s3pool::cache_dir(location, options)?;
        let remote = s3pool::connect(location, &cache, options)?;
        let Some(text) = s3pool::get_optional(remote.as_ref(), POOL_FILE)? else {
            return Err(Error::NoPool(PathBuf::from(&name)));
        };
        let description =
            parse_description(&text, &format!("{name}/{POOL_FILE}"), Path::new(&name))?;
        if description.shared_catalog().is_some() {
            // Nothing to take over: every machine uses the shared catalog.
            return Pool::open_s3(location, options);
        }
        let candidates = unlock(&description, remote.as_ref(), &name, options)?;
        download(&description, remote.as_ref(), &cache, &name, &candidates)?;
        let _ = fs::remove_file(cache.join(POOL_FILE));
        s3pool::take_ownership(remote.as_ref(), &cache)?;
        Pool::open_s3(location, options)
    }

    /// For an object-store pool: copies the catalog to the store if it
    /// changed since the last copy (a no-op for a local pool). Commands call
    /// it when they finish; mounts after each commit.
    pub fn sync_catalog(&self) -> Result<()> {
        let Some((remote, name)) = &self.remote else {
            return Ok(());
        };
        if self.description.shared_catalog().is_some() || !self.catalog().take_dirty() {
            return Ok(());
        }
        // Until a copy succeeds, a marker file says one is owed (the next
        // process to open the pool sees it).
        let owed = self.root.join(s3pool::UNSYNCED_FILE);
        crate::private::write(&owed, b"").at(&owed)?;
        s3pool::check_owner(remote.as_ref(), &self.root, name)?;
        let seal = self.store.keys().map(|k| (k, self.description.id.as_str()));
        s3pool::upload_catalog(remote.as_ref(), self.catalog(), &self.root, seal)?;
        fs::remove_file(&owed).at(&owed)
    }

    /// For an object-store pool with an SQLite catalog: copies the catalog
    /// to the store now, sealed under `keys` (`pool rekey`'s new keys, not
    /// yet this pool's), and owes no copy afterwards.
    pub(crate) fn upload_catalog_sealed(&self, keys: &PoolKeys) -> Result<()> {
        let Some((remote, _)) = &self.remote else {
            return Ok(());
        };
        if self.description.shared_catalog().is_some() {
            return Ok(());
        }
        s3pool::upload_catalog(
            remote.as_ref(),
            self.catalog(),
            &self.root,
            Some((keys, &self.description.id)),
        )?;
        self.catalog().take_dirty();
        Ok(())
    }
}

/// Downloads an object-store pool's catalog copy, opened with whichever of
/// `candidates` sealed it (while a rekey is unfinished, either).
fn download(
    description: &PoolDescription,
    remote: &dyn ObjectStore,
    cache: &Path,
    name: &str,
    candidates: &[Arc<PoolKeys>],
) -> Result<()> {
    let Some((last, others)) = candidates.split_last() else {
        return s3pool::download_catalog(remote, cache, name, None);
    };
    for k in others {
        let seal = Some((&**k, description.id.as_str()));
        if s3pool::download_catalog(remote, cache, name, seal).is_ok() {
            return Ok(());
        }
    }
    s3pool::download_catalog(
        remote,
        cache,
        name,
        Some((&**last, description.id.as_str())),
    )
}

/// Refuses to create a pool where one exists or other objects already lie.
fn refuse_taken_prefix(remote: &dyn ObjectStore, name: &str) -> Result<()> {
    if s3pool::get_optional(remote, POOL_FILE)?.is_some() {
        return Err(Error::PoolExists(PathBuf::from(name)));
    }
    if !remote.list("")?.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "cannot create a pool at {name}: objects already exist under that prefix"
        )));
    }
    Ok(())
}

/// What a new object-store pool records about its store, given or from
/// the environment, for the record (and other machines' users).
fn store_settings(
    location: &StoreLocation,
    settings: &PoolSettings,
    options: &PoolOptions,
) -> StoreSettings {
    let env = |k: &str| {
        options
            .store
            .get(k)
            .filter(|_| location.kind == crate::store::objects::StoreKind::S3)
            .map(str::to_string)
    };
    StoreSettings {
        kind: location.kind.name().into(),
        endpoint: location
            .endpoint
            .clone()
            .or_else(|| env("AWS_ENDPOINT_URL")),
        region: location.region.clone().or_else(|| env("AWS_REGION")),
        catalog: match &settings.catalog {
            Some(url) => crate::catalog::without_password(url),
            None => "sqlite".into(),
        },
    }
}

/// Creates the PostgreSQL catalog of a new pool, refusing any other URL.
fn create_postgres_catalog(url: &str, pool_id: &str, options: &PoolOptions) -> Result<Catalog> {
    if !crate::catalog::is_postgres_url(url) {
        return Err(Error::InvalidArgument(format!(
            "{}: a catalog is a PostgreSQL URL (postgres://USER@HOST[:PORT]/DATABASE)",
            crate::catalog::without_password(url)
        )));
    }
    Ok(Catalog::create_postgres(url, pool_id, options)?.with_lease(options.lease))
}
