//! The key ring: a pool's master key wrapped (sealed) under each user key,
//! so people and machines each hold their own key, and keys are added and
//! removed without rewriting any data.
//!
//! A user key is a passphrase, stretched with Argon2id and a per-slot salt,
//! or the contents of a key file (at least 32 bytes, hashed with BLAKE3's
//! `derive_key`). Unlocking tries the slots of the key's kind; a wrong key
//! fails every slot's authentication, which is said as such, before
//! anything is read or written.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{fill_random, Key};
use crate::error::{Error, Result};

/// Associated data of a wrapped master key.
const WRAP_AAD: &[u8] = b"shale master key v1";
/// The context key files are hashed under.
const KEY_FILE_CONTEXT: &str = "shale 2026-12 key file v1";
/// The least a key file may hold.
pub const KEY_FILE_MIN: usize = 32;
/// The context a passphrase's check value is hashed under.
const CHECK_CONTEXT: &str = "shale 2026-12 passphrase check v1";

/// Remembers keys stretched from passphrases, so that Argon2id is paid
/// once per machine. A key is remembered under a check value, a fast hash
/// of the passphrase and the slot's salt, which tells which passphrase it
/// came from; only keys that opened their slot are remembered.
pub trait StretchCache {
    /// The key remembered under `check`.
    fn get(&self, check: &[u8; 32]) -> Option<Key>;
    /// Remembers `key` under `check` (failing quietly: the cache only
    /// saves time).
    fn put(&self, check: &[u8; 32], key: &Key);
}

/// A key a user gives.
pub enum UserKey {
    /// A passphrase.
    Passphrase(Zeroizing<String>),
    /// The contents of a key file.
    File(Zeroizing<Vec<u8>>),
}

/// How costly Argon2id is made (OWASP's recommended minimum is 19 MiB and
/// 2 passes; a pool key is derived once per machine, so more is affordable).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stretch {
    /// Memory, KiB.
    pub m_kib: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl Default for Stretch {
    fn default() -> Self {
        Stretch {
            m_kib: 64 * 1024,
            t: 3,
            p: 1,
        }
    }
}

/// How a slot's user key becomes the key that wraps the master key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SlotKind {
    /// Argon2id of a passphrase with this salt (hex) and cost.
    Passphrase {
        /// 16 random bytes, hex.
        salt: String,
        /// The cost.
        stretch: Stretch,
    },
    /// BLAKE3 `derive_key` of a key file's contents.
    KeyFile,
}

/// One user key's wrapping of the master key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// Its number, unique in the ring.
    pub id: u32,
    /// Whose it is (`alice`, `ci`): a label, not a secret.
    pub name: String,
    /// How its key is made.
    #[serde(flatten)]
    pub kind: SlotKind,
    /// The master key sealed under it, hex.
    pub wrapped: String,
}

/// Every slot of a pool.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRing {
    /// The slots.
    pub slots: Vec<Slot>,
    /// While `pool rekey` runs: the slots of the new master key (the
    /// catalog's check value says which of the two the pool uses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<Box<KeyRing>>,
}

impl UserKey {
    fn kind_name(&self) -> &'static str {
        match self {
            UserKey::Passphrase(_) => "passphrase",
            UserKey::File(_) => "key file",
        }
    }

    /// The key that wraps the master key in a slot of `kind`, if this user
    /// key is of that kind.
    fn wrapping_key(&self, kind: &SlotKind) -> Result<Option<Key>> {
        Ok(self.wrapping_key_cached(kind, None)?.map(|(k, _)| k))
    }

    /// As [`wrapping_key`](Self::wrapping_key), a passphrase's looked up in
    /// `cache` first; with the check value to remember it under when it was
    /// stretched here.
    fn wrapping_key_cached(
        &self,
        kind: &SlotKind,
        cache: Option<&dyn StretchCache>,
    ) -> Result<Option<(Key, Option<[u8; 32]>)>> {
        match (self, kind) {
            (UserKey::Passphrase(p), SlotKind::Passphrase { salt, stretch }) => {
                let salt = hex::decode(salt)
                    .map_err(|_| Error::corrupt("the pool's key ring", "a salt is not hex"))?;
                let check = blake3::derive_key(CHECK_CONTEXT, &[&salt[..], p.as_bytes()].concat());
                if let Some(key) = cache.and_then(|c| c.get(&check)) {
                    return Ok(Some((key, None)));
                }
                Ok(Some((stretched(p, &salt, *stretch)?, Some(check))))
            }
            (UserKey::File(bytes), SlotKind::KeyFile) => Ok(Some((
                Key(blake3::derive_key(KEY_FILE_CONTEXT, bytes)),
                None,
            ))),
            _ => Ok(None),
        }
    }
}

/// Argon2id of `passphrase` with `salt`.
fn stretched(passphrase: &str, salt: &[u8], s: Stretch) -> Result<Key> {
    let params = argon2::Params::new(s.m_kib, s.t, s.p, Some(32))
        .map_err(|e| Error::InvalidArgument(format!("key stretching: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = [0u8; 32];
    argon
        .hash_password_into(passphrase.as_bytes(), salt, &mut out)
        .map_err(|e| Error::InvalidArgument(format!("key stretching: {e}")))?;
    Ok(Key(out))
}

impl KeyRing {
    /// Adds a slot named `name` wrapping `master` under `user` (passphrases
    /// stretched as `stretch` says); returns its id.
    pub fn add(
        &mut self,
        master: &Key,
        name: &str,
        user: &UserKey,
        stretch: Stretch,
    ) -> Result<u32> {
        if let UserKey::File(bytes) = user {
            if bytes.len() < KEY_FILE_MIN {
                return Err(Error::InvalidArgument(format!(
                    "a key file must hold at least {KEY_FILE_MIN} bytes (make one with \
                     `head -c 32 /dev/urandom > KEYFILE; chmod 600 KEYFILE`)"
                )));
            }
        }
        if let UserKey::Passphrase(p) = user {
            if p.chars().count() < 8 {
                return Err(Error::InvalidArgument(
                    "a passphrase must be at least 8 characters".into(),
                ));
            }
        }
        let kind = match user {
            UserKey::Passphrase(_) => {
                let mut salt = [0u8; 16];
                fill_random(&mut salt)?;
                SlotKind::Passphrase {
                    salt: hex::encode(salt),
                    stretch,
                }
            }
            UserKey::File(_) => SlotKind::KeyFile,
        };
        let wrapping = user
            .wrapping_key(&kind)?
            .ok_or_else(|| Error::InvalidArgument("a key of another kind".into()))?;
        let id = self.slots.iter().map(|s| s.id + 1).max().unwrap_or(0);
        self.slots.push(Slot {
            id,
            name: name.to_string(),
            kind,
            wrapped: hex::encode(wrapping.seal(master.as_bytes(), WRAP_AAD)?),
        });
        Ok(id)
    }

    /// The master key, unwrapped with `user`, and the slot it opened.
    pub fn unlock(&self, user: &UserKey) -> Result<(Key, u32)> {
        self.unlock_cached(user, None)
    }

    /// As [`unlock`](Self::unlock), a passphrase's stretched key looked up
    /// in `cache` first and remembered there once it opens a slot.
    pub fn unlock_cached(
        &self,
        user: &UserKey,
        cache: Option<&dyn StretchCache>,
    ) -> Result<(Key, u32)> {
        let mut tried = 0;
        for slot in &self.slots {
            let Some((wrapping, check)) = user.wrapping_key_cached(&slot.kind, cache)? else {
                continue;
            };
            tried += 1;
            let sealed = hex::decode(&slot.wrapped)
                .map_err(|_| Error::corrupt("the pool's key ring", "a wrapped key is not hex"))?;
            if let Ok(bytes) = wrapping.open(&sealed, WRAP_AAD, "a wrapped key") {
                let bytes: [u8; 32] = bytes.try_into().map_err(|_| {
                    Error::corrupt("the pool's key ring", "a wrapped key is not 32 bytes")
                })?;
                if let (Some(c), Some(check)) = (cache, check) {
                    c.put(&check, &wrapping);
                }
                return Ok((Key(bytes), slot.id));
            }
        }
        Err(Error::InvalidArgument(if tried == 0 {
            format!(
                "this pool has no {} key; give another kind",
                user.kind_name()
            )
        } else {
            format!(
                "the {} given opens none of this pool's keys",
                user.kind_name()
            )
        }))
    }

    /// Removes slot `id`; the last one is refused (the pool would be
    /// unreadable by anyone).
    pub fn remove(&mut self, id: u32) -> Result<Slot> {
        let Some(i) = self.slots.iter().position(|s| s.id == id) else {
            return Err(Error::InvalidArgument(format!("this pool has no key {id}")));
        };
        if self.slots.len() == 1 {
            return Err(Error::InvalidArgument(
                "that is the pool's last key: add another before removing it".into(),
            ));
        }
        Ok(self.slots.remove(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap stretching, for tests only.
    const QUICK: Stretch = Stretch {
        m_kib: 256,
        t: 1,
        p: 1,
    };

    fn pass(p: &str) -> UserKey {
        UserKey::Passphrase(Zeroizing::new(p.to_string()))
    }

    fn file(b: &[u8]) -> UserKey {
        UserKey::File(Zeroizing::new(b.to_vec()))
    }

    #[test]
    fn any_key_of_the_ring_opens_the_master_key_and_others_do_not() {
        let master = Key::random().unwrap();
        let mut ring = KeyRing::default();
        let alice = ring
            .add(&master, "alice", &pass("correct horse"), QUICK)
            .unwrap();
        let ci = ring.add(&master, "ci", &file(&[9; 32]), QUICK).unwrap();
        assert_ne!(alice, ci);
        assert_eq!(
            ring.unlock(&pass("correct horse")).unwrap(),
            (master.clone(), alice)
        );
        assert_eq!(ring.unlock(&file(&[9; 32])).unwrap(), (master.clone(), ci));
        let e = ring.unlock(&pass("wrong horse")).unwrap_err();
        assert!(e.to_string().contains("opens none"), "{e}");
        assert!(ring.unlock(&file(&[8; 32])).is_err());
        // it survives being written and read back, and holds no secret
        let json = serde_json::to_string(&ring).unwrap();
        assert!(!json.contains("correct horse"));
        assert!(!json.contains(&hex::encode(master.as_bytes())));
        let back: KeyRing = serde_json::from_str(&json).unwrap();
        assert_eq!(back.unlock(&pass("correct horse")).unwrap().0, master);
        // removing a key: it no longer opens; the last key stays
        ring.remove(alice).unwrap();
        assert!(ring
            .unlock(&pass("correct horse"))
            .unwrap_err()
            .to_string()
            .contains("no passphrase key"));
        let e = ring.remove(ci).unwrap_err();
        assert!(e.to_string().contains("last key"), "{e}");
    }

    /// A cache in memory, counting what it is asked.
    #[derive(Default)]
    struct Remember(std::sync::Mutex<Vec<([u8; 32], Key)>>);

    impl StretchCache for Remember {
        fn get(&self, check: &[u8; 32]) -> Option<Key> {
            let v = self.0.lock().unwrap();
            v.iter().find(|(c, _)| c == check).map(|(_, k)| k.clone())
        }
        fn put(&self, check: &[u8; 32], key: &Key) {
            self.0.lock().unwrap().push((*check, key.clone()));
        }
    }

    #[test]
    fn a_stretched_passphrase_is_remembered_once_it_opens() {
        let master = Key::random().unwrap();
        let mut ring = KeyRing::default();
        ring.add(&master, "a", &pass("correct horse"), QUICK)
            .unwrap();
        let cache = Remember::default();
        assert!(ring
            .unlock_cached(&pass("wrong horse"), Some(&cache))
            .is_err());
        assert!(
            cache.0.lock().unwrap().is_empty(),
            "a wrong one is not kept"
        );
        let (got, _) = ring
            .unlock_cached(&pass("correct horse"), Some(&cache))
            .unwrap();
        assert_eq!(got, master);
        assert_eq!(cache.0.lock().unwrap().len(), 1);
        // the remembered key is used: a wrong passphrase still fails
        assert_eq!(
            ring.unlock_cached(&pass("correct horse"), Some(&cache))
                .unwrap()
                .0,
            master
        );
        assert_eq!(cache.0.lock().unwrap().len(), 1);
        assert!(ring
            .unlock_cached(&pass("wrong horse"), Some(&cache))
            .is_err());
    }

    #[test]
    fn weak_keys_are_refused() {
        let master = Key::random().unwrap();
        let mut ring = KeyRing::default();
        assert!(ring.add(&master, "x", &pass("short"), QUICK).is_err());
        let e = ring
            .add(&master, "x", &file(b"too short"), QUICK)
            .unwrap_err();
        assert!(e.to_string().contains("at least 32 bytes"), "{e}");
        assert!(ring.slots.is_empty());
    }

    #[test]
    fn a_damaged_ring_is_named_not_a_panic() {
        let master = Key::random().unwrap();
        let mut ring = KeyRing::default();
        ring.add(&master, "a", &pass("passphrase!"), QUICK).unwrap();
        ring.slots[0].wrapped.replace_range(0..2, "zz");
        assert!(ring
            .unlock(&pass("passphrase!"))
            .unwrap_err()
            .to_string()
            .contains("key ring"));
    }
}
