//! An encrypted pool's keys as the pool keeps them: which cipher
//! `pool.json` says it uses, the key ring (`keys.json`, beside
//! `pool.json`: no secret in it, every slot a sealed copy of the master
//! key), and unlocking the pool with the key a user gives.
//!
//! The ring is kept apart from `pool.json` because it changes (keys are
//! added and removed) while `pool.json` never does.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::{KeySource, PoolOptions};
use crate::crypt::keyring::{KeyRing, Slot, Stretch};
use crate::crypt::{Key, PoolKeys};
use crate::error::{Error, Result};
use crate::store::objects::ObjectStore;

/// The ring's object (a file in a local pool's directory).
pub const RING_KEY: &str = "keys.json";

/// What `pool.json` says of an encrypted pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    /// The cipher sealing every object: `xchacha20-poly1305`.
    pub cipher: String,
    /// How blob ids are keyed: `blake3-keyed`.
    pub ids: String,
}

impl Encryption {
    /// What this build writes.
    pub fn current() -> Encryption {
        Encryption {
            cipher: "xchacha20-poly1305".into(),
            ids: "blake3-keyed".into(),
        }
    }

    /// Refuses what this build cannot read.
    pub fn check(&self, pool: &str) -> Result<()> {
        if *self != Encryption::current() {
            return Err(Error::InvalidArgument(format!(
                "{pool} is encrypted with {} and {} ids, which this Shale cannot read",
                self.cipher, self.ids
            )));
        }
        Ok(())
    }
}

/// A new master key and a ring holding it under `user` (slot `name`),
/// written to `objects`; returns the pool's keys.
pub fn create(objects: &dyn ObjectStore, user: &KeySource, name: &str) -> Result<Arc<PoolKeys>> {
    let master = Key::random()?;
    let mut ring = KeyRing::default();
    ring.add(&master, name, &user.user_key()?, Stretch::default())?;
    write_ring(objects, &ring)?;
    Ok(Arc::new(PoolKeys::new(&master)))
}

/// The ring of pool `pool` (named in messages).
pub fn read_ring(objects: &dyn ObjectStore, pool: &str) -> Result<KeyRing> {
    let bytes = crate::coord::s3pool::get_optional(objects, RING_KEY)?.ok_or_else(|| {
        Error::corrupt(
            format!("{pool}/{RING_KEY}"),
            "the encrypted pool's key ring is missing",
        )
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::corrupt(format!("{pool}/{RING_KEY}"), e.to_string()))
}

/// Replaces the ring.
pub fn write_ring(objects: &dyn ObjectStore, ring: &KeyRing) -> Result<()> {
    let json =
        serde_json::to_vec_pretty(ring).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    objects.put(RING_KEY, &json)
}

/// The master key of pool `pool`, unlocked with the key `options` gives.
pub fn master(objects: &dyn ObjectStore, pool: &str, options: &PoolOptions) -> Result<Key> {
    let Some(source) = &options.key else {
        return Err(Error::InvalidArgument(format!(
            "{pool} is encrypted: give its key with --key-file FILE, SHALE_KEY_FILE=FILE or \
             SHALE_PASSPHRASE"
        )));
    };
    let ring = read_ring(objects, pool)?;
    let (master, _) = ring.unlock(&source.user_key()?).map_err(|e| {
        Error::InvalidArgument(format!(
            "cannot open {pool} with the {}: {e}",
            source.describe()
        ))
    })?;
    Ok(master)
}

/// The keys of pool `pool`, unlocked with the key `options` gives.
pub fn unlock(
    objects: &dyn ObjectStore,
    pool: &str,
    options: &PoolOptions,
) -> Result<Arc<PoolKeys>> {
    master(objects, pool, options).map(|m| Arc::new(PoolKeys::new(&m)))
}

/// Adds `new` to the ring as slot `name`, opening it with the key
/// `options` gives; returns the new slot's id.
pub fn add(
    objects: &dyn ObjectStore,
    pool: &str,
    options: &PoolOptions,
    new: &KeySource,
    name: &str,
) -> Result<u32> {
    let master = master(objects, pool, options)?;
    let mut ring = read_ring(objects, pool)?;
    if ring.slots.iter().any(|s| s.name == name) {
        return Err(Error::InvalidArgument(format!(
            "{pool} already has a key named {name:?}: pick another name (`pool key list`)"
        )));
    }
    let id = ring.add(&master, name, &new.user_key()?, Stretch::default())?;
    write_ring(objects, &ring)?;
    Ok(id)
}

/// Removes slot `id` (a number or a name), proving first that the key
/// `options` gives opens the pool; returns the slot removed.
pub fn remove(
    objects: &dyn ObjectStore,
    pool: &str,
    options: &PoolOptions,
    which: &str,
) -> Result<Slot> {
    master(objects, pool, options)?;
    let mut ring = read_ring(objects, pool)?;
    let id = ring
        .slots
        .iter()
        .find(|s| s.name == which || s.id.to_string() == which)
        .map(|s| s.id)
        .ok_or_else(|| {
            Error::InvalidArgument(format!("{pool} has no key {which:?} (`pool key list`)"))
        })?;
    let slot = ring.remove(id)?;
    write_ring(objects, &ring)?;
    Ok(slot)
}
