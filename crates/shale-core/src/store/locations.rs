//! Where recently read blobs are: a cache of catalog index entries, so a
//! read does not ask the catalog each time.
//!
//! A miss loads the entries of the blob's whole pack in one query: reads
//! go mostly in the order data was written (files, then the chunks of each
//! file), so the next blobs wanted are usually in the same pack. On a
//! shared catalog that turns one network round trip per chunk into one per
//! pack; on SQLite it spares the catalog lock that reader threads share.
//!
//! An entry may go stale when `gc` moves a blob to another pack: reading
//! it then finds the old pack gone, and the reader looks it up afresh
//! ([`LocationCache::forget_pack`]). Until the old pack is deleted its copy
//! is as good as the new one (blobs are checked against their ids).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::catalog::BlobLocation;
use crate::id::ObjectId;

/// Entries kept at most (about 150 bytes each); when full, a shard starts over.
const CAPACITY: usize = 1 << 20;
const SHARDS: usize = 16;

/// Index entries of recently read packs, by blob id.
pub struct LocationCache {
    shards: Vec<Mutex<HashMap<ObjectId, BlobLocation>>>,
}

impl Default for LocationCache {
    fn default() -> Self {
        LocationCache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl LocationCache {
    fn shard(&self, id: &ObjectId) -> MutexGuard<'_, HashMap<ObjectId, BlobLocation>> {
        self.shards[id.0[0] as usize % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Where `id` is, if known.
    pub fn get(&self, id: &ObjectId) -> Option<BlobLocation> {
        self.shard(id).get(id).cloned()
    }

    /// Remembers where blobs are.
    pub fn insert(&self, locations: Vec<BlobLocation>) {
        for loc in locations {
            let mut shard = self.shard(&loc.head.id);
            if shard.len() >= CAPACITY / SHARDS {
                shard.clear();
            }
            shard.insert(loc.head.id, loc);
        }
    }

    /// Forgets every entry that points into `pack` (it was found missing).
    pub fn forget_pack(&self, pack: &ObjectId) {
        for shard in &self.shards {
            shard
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|_, loc| loc.pack != *pack);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::pack::{BlobKind, Compression, EntryHead};

    fn loc(pack: u8, id: u8) -> BlobLocation {
        BlobLocation {
            pack: ObjectId([pack; 32]),
            head: EntryHead {
                id: ObjectId([id; 32]),
                kind: BlobKind::Data,
                compression: Compression::None,
                raw_len: 1,
                stored_len: 1,
                offset: id as u64,
            },
        }
    }

    #[test]
    fn remembers_and_forgets_by_pack() {
        let c = LocationCache::default();
        c.insert(vec![loc(1, 10), loc(1, 11), loc(2, 20)]);
        assert_eq!(c.get(&ObjectId([11; 32])).unwrap().head.offset, 11);
        c.forget_pack(&ObjectId([1; 32]));
        assert!(c.get(&ObjectId([10; 32])).is_none());
        assert!(c.get(&ObjectId([20; 32])).is_some());
    }
}
