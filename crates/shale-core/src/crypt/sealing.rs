//! What an encrypted pool seals, and how: the keys derived from its master
//! key, the keyed ids its index and packs use, and the sealing of blobs,
//! pack entry heads and the catalog copy.
//!
//! Trees keep naming their children by plaintext content id, so a
//! snapshot's id is the same in a plain and an encrypted pool. Only what
//! leaves the process is keyed: the index (and so every entry head) names a
//! blob by its *index id*, the keyed BLAKE3 of its plaintext id, which
//! tells nothing to whoever lacks the key and still deduplicates inside the
//! pool.

use super::Key;
use crate::error::Result;
use crate::id::ObjectId;

/// Context strings of the derived keys (BLAKE3 `derive_key`): one key per
/// purpose, none revealing another or the master key.
const IDS: &str = "shale 2026-12 index ids v1";
const BLOBS: &str = "shale 2026-12 blob sealing v1";
const CATALOG: &str = "shale 2026-12 catalog sealing v1";

/// The keys of an unlocked encrypted pool (equal for pools sharing a
/// master key).
#[derive(Debug, PartialEq, Eq)]
pub struct PoolKeys {
    ids: Key,
    blobs: Key,
    catalog: Key,
}

impl PoolKeys {
    /// The keys derived from a pool's master key.
    pub fn new(master: &Key) -> PoolKeys {
        PoolKeys {
            ids: master.derive(IDS),
            blobs: master.derive(BLOBS),
            catalog: master.derive(CATALOG),
        }
    }

    /// A value the catalog records, telling which master key its index ids
    /// are keyed with (reveals nothing of the key).
    pub fn check(&self) -> String {
        hex::encode(self.ids.keyed_hash(b"shale index ids check"))
    }

    /// The id the index and the packs give the blob whose plaintext id is
    /// `id`.
    pub fn index_id(&self, id: &ObjectId) -> ObjectId {
        ObjectId(self.ids.keyed_hash(&id.0))
    }

    /// Seals a blob's stored bytes (compressed or not), bound to its index
    /// id: moved under another id, it fails to open.
    pub fn seal_blob(&self, index_id: &ObjectId, stored: &[u8]) -> Result<Vec<u8>> {
        self.blobs.seal(stored, &aad(b"blob", &index_id.0))
    }

    /// Opens what [`seal_blob`](Self::seal_blob) made; `what` names it in
    /// the error.
    pub fn open_blob(&self, index_id: &ObjectId, sealed: Vec<u8>, what: &str) -> Result<Vec<u8>> {
        self.blobs
            .open_vec(sealed, &aad(b"blob", &index_id.0), what)
    }

    /// Seals a pack entry head (its id, kind and lengths).
    pub fn seal_head(&self, head: &[u8]) -> Result<Vec<u8>> {
        self.blobs.seal(head, b"head")
    }

    /// Opens a sealed entry head.
    pub fn open_head(&self, sealed: &[u8], what: &str) -> Result<Vec<u8>> {
        self.blobs.open(sealed, b"head", what)
    }

    /// Seals the catalog copy of pool `pool_id` (an object-store pool's
    /// SQLite catalog, as copied to the store).
    pub fn seal_catalog(&self, pool_id: &str, db: &[u8]) -> Result<Vec<u8>> {
        self.catalog.seal(db, &aad(b"catalog", pool_id.as_bytes()))
    }

    /// Opens a sealed catalog copy.
    pub fn open_catalog(&self, pool_id: &str, sealed: &[u8], what: &str) -> Result<Vec<u8>> {
        self.catalog
            .open(sealed, &aad(b"catalog", pool_id.as_bytes()), what)
    }
}

/// Associated data: a purpose tag, then the name it binds.
fn aad(tag: &[u8], name: &[u8]) -> Vec<u8> {
    [tag, b":", name].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_keyed_and_blobs_bound_to_them() {
        let a = PoolKeys::new(&Key::from_bytes([1; 32]));
        let b = PoolKeys::new(&Key::from_bytes([2; 32]));
        let id = ObjectId::of(b"chunk");
        assert_ne!(a.index_id(&id), id);
        assert_ne!(a.index_id(&id), b.index_id(&id));
        assert_eq!(a.index_id(&id), a.index_id(&id));
        let ix = a.index_id(&id);
        let sealed = a.seal_blob(&ix, b"chunk").unwrap();
        assert_eq!(a.open_blob(&ix, sealed.clone(), "x").unwrap(), b"chunk");
        let other = a.index_id(&ObjectId::of(b"other"));
        assert!(
            a.open_blob(&other, sealed.clone(), "x").is_err(),
            "moved blob"
        );
        assert!(b.open_blob(&ix, sealed.clone(), "x").is_err(), "other key");
        assert!(a.open_head(&sealed, "x").is_err(), "not a head");
        let cat = a.seal_catalog("pool1", b"db").unwrap();
        assert!(a.open_catalog("pool2", &cat, "x").is_err(), "other pool");
        assert_eq!(a.open_catalog("pool1", &cat, "x").unwrap(), b"db");
    }
}
