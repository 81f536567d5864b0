//! An encrypted pool's keys as the pool keeps them: which cipher
//! `pool.json` says it uses, the key ring (`keys.json`, beside
//! `pool.json`: no secret in it, every slot a sealed copy of the master
//! key), and unlocking the pool with the key a user gives.
//!
//! The ring is kept apart from `pool.json` because it changes (keys are
//! added and removed) while `pool.json` never does.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, Sql};
use crate::config::{KeySource, PoolOptions};
use crate::crypt::keyring::{KeyRing, Slot, Stretch, StretchCache};
use crate::crypt::{Key, PoolKeys};
use crate::error::{Error, Result};
use crate::store::objects::ObjectStore;

/// The ring's object (a file in a local pool's directory).
pub const RING_KEY: &str = "keys.json";

/// What `pool.json` says of an encrypted pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    /// The cipher sealing every object: `aes-256-gcm-blake3-subkeys`
    /// (AES-256-GCM under a key per message, see `crypt/mod.rs`).
    pub cipher: String,
    /// How blob ids are keyed: `blake3-keyed`.
    pub ids: String,
}

impl Encryption {
    /// What this build writes.
    pub fn current() -> Encryption {
        Encryption {
            cipher: "aes-256-gcm-blake3-subkeys".into(),
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

/// A ring holding `master` (a new random key when None) under `user`
/// (slot `name`), written to `objects`; returns the pool's keys.
pub fn create(
    objects: &dyn ObjectStore,
    user: &KeySource,
    name: &str,
    master: Option<&Key>,
) -> Result<Arc<PoolKeys>> {
    let master = match master {
        Some(k) => k.clone(),
        None => Key::random()?,
    };
    let mut ring = KeyRing::default();
    ring.add(&master, name, &user.user_key()?, Stretch::default())?;
    write_ring(objects, &ring)?;
    Ok(Arc::new(PoolKeys::new(&master)))
}

/// Replaces the ring.
pub(crate) fn write_ring(objects: &dyn ObjectStore, ring: &KeyRing) -> Result<()> {
    let json =
        serde_json::to_vec_pretty(ring).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    objects.put(RING_KEY, &json)
}

/// An encrypted pool's key ring where the pool keeps it.
pub struct PoolRing<'a> {
    /// The pool's store (a local pool's directory, or its bucket prefix).
    pub objects: &'a dyn ObjectStore,
    /// The pool, as named to users.
    pub name: &'a str,
    /// The pool's id (names its entry in the per-machine cache).
    pub id: &'a str,
}

impl PoolRing<'_> {
    /// Replaces the ring.
    pub fn write(&self, ring: &KeyRing) -> Result<()> {
        write_ring(self.objects, ring)
    }

    /// The ring.
    pub fn read(&self) -> Result<KeyRing> {
        let what = || format!("{}/{RING_KEY}", self.name);
        let bytes = crate::coord::s3pool::get_optional(self.objects, RING_KEY)?
            .ok_or_else(|| Error::corrupt(what(), "the encrypted pool's key ring is missing"))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::corrupt(what(), e.to_string()))
    }

    /// The master key, unlocked with the key `options` gives (a
    /// passphrase's stretched key remembered in the per-machine cache).
    /// Refused while a `pool rekey` is unfinished.
    pub fn master(&self, options: &PoolOptions) -> Result<Key> {
        Ok(self.master_and_ring(options)?.0)
    }

    /// [`master`](Self::master), with the ring it was read from.
    fn master_and_ring(&self, options: &PoolOptions) -> Result<(Key, KeyRing)> {
        let ring = self.read()?;
        if ring.next.is_some() {
            return Err(Error::InvalidArgument(format!(
                "a `pool rekey` of {} did not finish: run it again first",
                self.name
            )));
        }
        let master = self.masters_in(&ring, options)?.remove(0);
        Ok((master, ring))
    }

    /// The master keys the key `options` gives opens: the ring's, then,
    /// while a `pool rekey` is unfinished, the next ring's.
    pub fn masters(&self, options: &PoolOptions) -> Result<Vec<Key>> {
        self.masters_in(&self.read()?, options)
    }

    /// [`masters`](Self::masters) of `ring`, as read.
    fn masters_in(&self, ring: &KeyRing, options: &PoolOptions) -> Result<Vec<Key>> {
        let Some(source) = &options.key else {
            return Err(Error::InvalidArgument(format!(
                "{} is encrypted: give its key with --key-file FILE, SHALE_KEY_FILE=FILE or \
                 SHALE_PASSPHRASE",
                self.name
            )));
        };
        let cache = options.cache_dir.as_ref().map(|dir| StretchFile {
            path: dir.join("keys").join(format!("{}.json", self.id)),
        });
        let cache = cache.as_ref().map(|c| c as &dyn StretchCache);
        let user = source.user_key()?;
        let mut out = Vec::new();
        let first = ring.unlock_cached(&user, cache);
        if let Some(next) = &ring.next {
            if let Ok((m, _)) = next.unlock_cached(&user, cache) {
                out.push(m);
            }
        }
        match first {
            Ok((m, _)) => out.insert(0, m),
            Err(e) if out.is_empty() => {
                return Err(Error::InvalidArgument(format!(
                    "cannot open {} with the {}: {e}",
                    self.name,
                    source.describe()
                )))
            }
            Err(_) => {}
        }
        Ok(out)
    }

    /// The keys the key `options` gives opens (see [`masters`](Self::masters)).
    pub fn unlock(&self, options: &PoolOptions) -> Result<Vec<Arc<PoolKeys>>> {
        let masters = self.masters(options)?;
        Ok(masters.iter().map(|m| Arc::new(PoolKeys::new(m))).collect())
    }

    /// Adds `new` as slot `name`, opening the ring with the key `options`
    /// gives; returns the new slot's id.
    pub fn add(&self, options: &PoolOptions, new: &KeySource, name: &str) -> Result<u32> {
        let (master, mut ring) = self.master_and_ring(options)?;
        if ring.slots.iter().any(|s| s.name == name) {
            return Err(Error::InvalidArgument(format!(
                "{} already has a key named {name:?}: pick another name (`pool key list`)",
                self.name
            )));
        }
        let id = ring.add(&master, name, &new.user_key()?, Stretch::default())?;
        write_ring(self.objects, &ring)?;
        Ok(id)
    }

    /// Removes the slot `which` names (its number or name), proving first
    /// that the key `options` gives opens the pool; returns it.
    pub fn remove(&self, options: &PoolOptions, which: &str) -> Result<Slot> {
        let (_, mut ring) = self.master_and_ring(options)?;
        let slot = ring.remove(self.find(&ring, which)?)?;
        write_ring(self.objects, &ring)?;
        Ok(slot)
    }

    /// Replaces the key of slot `which` with `new` under the same name, in
    /// one write of the ring: the old key stops opening the pool. Returns
    /// the new slot's id.
    pub fn replace(&self, options: &PoolOptions, which: &str, new: &KeySource) -> Result<u32> {
        let (master, mut ring) = self.master_and_ring(options)?;
        let old = self.find(&ring, which)?;
        let name = ring
            .slots
            .iter()
            .find(|s| s.id == old)
            .map(|s| s.name.clone());
        let id = ring.add(
            &master,
            &name.unwrap_or_default(),
            &new.user_key()?,
            Stretch::default(),
        )?;
        ring.remove(old)?;
        write_ring(self.objects, &ring)?;
        Ok(id)
    }

    /// The id of the slot `which` names.
    fn find(&self, ring: &KeyRing, which: &str) -> Result<u32> {
        ring.slots
            .iter()
            .find(|s| s.name == which || s.id.to_string() == which)
            .map(|s| s.id)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{} has no key {which:?} (`pool key list`)",
                    self.name
                ))
            })
    }
}

/// Of the keys `candidates`, the one whose index ids `catalog` uses (the
/// first where it records none).
pub fn matching(
    candidates: Vec<Arc<PoolKeys>>,
    catalog: &Catalog,
    pool: &str,
) -> Result<Arc<PoolKeys>> {
    let Some(check) = recorded_check(catalog)? else {
        return candidates.into_iter().next().ok_or_else(|| no_match(pool));
    };
    candidates
        .into_iter()
        .find(|k| k.check() == check)
        .ok_or_else(|| no_match(pool))
}

fn no_match(pool: &str) -> Error {
    Error::InvalidArgument(format!(
        "the key given opens {pool}'s key ring but none of its keys matches its catalog"
    ))
}

/// The check value of the keys a catalog's index ids are keyed with.
pub fn recorded_check(catalog: &Catalog) -> Result<Option<String>> {
    catalog.read(|db| {
        db.query_opt("SELECT value FROM meta WHERE key = 'ids_check'", &[], |r| {
            r.text(0)
        })
    })
}

/// Records which keys the index ids are keyed with.
pub fn record_check(tx: &dyn Sql, keys: &PoolKeys) -> Result<()> {
    tx.execute("DELETE FROM meta WHERE key = 'ids_check'", &[])?;
    tx.execute(
        "INSERT INTO meta VALUES ('ids_check', ?1)",
        crate::args![keys.check()],
    )?;
    Ok(())
}

/// Passphrases' stretched keys remembered in an owner-only file of the
/// per-machine cache (`CACHE/keys/POOL_ID.json`: check value → key, hex).
/// Whoever can read it can open the pool, as with a key file; a fast hash
/// of the passphrase is in it, so a passphrase used elsewhere too is
/// exposed to them.
struct StretchFile {
    path: std::path::PathBuf,
}

impl StretchFile {
    fn entries(&self) -> std::collections::BTreeMap<String, String> {
        std::fs::read(&self.path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }
}

impl StretchCache for StretchFile {
    fn get(&self, check: &[u8; 32]) -> Option<Key> {
        let hex = self.entries().remove(&hex::encode(check))?;
        let bytes: [u8; 32] = hex::decode(hex).ok()?.try_into().ok()?;
        Some(Key::from_bytes(bytes))
    }

    fn put(&self, check: &[u8; 32], key: &Key) {
        let mut entries = self.entries();
        entries.insert(hex::encode(check), hex::encode(key.as_bytes()));
        let Some(dir) = self.path.parent() else {
            return;
        };
        let aside = self
            .path
            .with_extension(format!("json.{}", std::process::id()));
        let written = crate::private::create_dir_all(dir)
            .and_then(|_| {
                crate::private::write(&aside, serde_json::to_vec(&entries).unwrap_or_default())
            })
            .and_then(|_| std::fs::rename(&aside, &self.path));
        if let Err(e) = written {
            tracing::warn!(
                "could not remember a stretched passphrase in {}: {e}",
                self.path.display()
            );
        }
    }
}
