//! The chunk layer: deduplicated, compressed blobs packed into pack objects.
//!
//! [`BlobStore`] reads blobs by id through the catalog's index and checks
//! every read against the id (invariant 1). [`BlobWriter`] is one writing
//! session: it skips blobs the pool already has, compresses those where it
//! pays, appends them to a pack buffer, and hands full packs to a background
//! thread that makes them durable and then lists them in the catalog's
//! index. Indexed blobs are reachable from nothing until the caller commits
//! the state change that uses them (after [`BlobWriter::finish`]); a crash
//! before that leaves them unreferenced, for `gc`.

mod writer;

use std::sync::Arc;

use crate::catalog::{BlobLocation, Catalog};
use crate::coord::session::Session;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::store::locations::LocationCache;
use crate::store::objects::ObjectStore;
use crate::store::pack::{self, Compression, EntryHead};

pub use writer::{BlobWriter, Prepared, WriteStats};

/// A pack is sealed once its buffer reaches this many bytes.
pub const PACK_TARGET: usize = 32 << 20;
/// A pack is also sealed once it holds this many blobs, which bounds the
/// session's set of not-yet-indexed ids when blobs are tiny.
pub const PACK_MAX_BLOBS: usize = 65_536;
/// The reason given when a blob's pack is gone.
const PACK_MISSING: &str = "its pack is missing";
/// Blobs shorter than this are never compressed.
const MIN_COMPRESS: usize = 256;
/// Bytes of a data chunk test-compressed to decide whether compressing pays.
const SAMPLE: usize = 4 << 10;
/// zstd level for blobs that pass the sample test.
const ZSTD_LEVEL: i32 = 3;

/// Read access to the blobs of a pool.
#[derive(Clone)]
pub struct BlobStore {
    objects: Arc<dyn ObjectStore>,
    catalog: Arc<Catalog>,
    locations: Arc<LocationCache>,
}

impl BlobStore {
    /// Joins an object store and the catalog that indexes it.
    pub fn new(objects: Arc<dyn ObjectStore>, catalog: Arc<Catalog>) -> Self {
        BlobStore {
            objects,
            catalog,
            locations: Arc::default(),
        }
    }

    /// The catalog.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// The object store.
    pub fn objects(&self) -> &Arc<dyn ObjectStore> {
        &self.objects
    }

    /// Reads, decompresses and checks one blob.
    pub fn get(&self, id: &ObjectId) -> Result<Vec<u8>> {
        match self.get_once(id, false) {
            // `gc` may have moved the blob to a new pack since we learnt
            // where it was: look it up again once.
            Err(Error::Corrupt { reason, .. }) if reason == PACK_MISSING => self.get_once(id, true),
            other => other,
        }
    }

    /// Reads, decompresses and checks one blob if that needs no waiting:
    /// its place is remembered and its bytes are at hand (see
    /// [`ObjectStore::get_range_now`]). `None` when it would wait; errors
    /// are left to [`BlobStore::get`], which reports them.
    pub fn get_now(&self, id: &ObjectId) -> Option<Vec<u8>> {
        let loc = self.locations.get(id)?;
        let stored = self.objects.get_range_now(
            &pack::key(&loc.pack),
            loc.head.offset,
            loc.head.stored_len as usize,
        )?;
        decode_blob(&loc.head, &loc.pack, stored).ok()
    }

    /// Where a blob is, if the index knows it (remembered per pack, as
    /// for reads).
    pub fn location(&self, id: &ObjectId) -> Result<Option<BlobLocation>> {
        self.location_of(id, false)
    }

    /// Where a blob is, asked of the catalog whatever is remembered: for
    /// a remembered place whose pack has gone (`gc`, in this process or
    /// another, moved the blob since), as `get` does.
    pub fn location_fresh(&self, id: &ObjectId) -> Result<Option<BlobLocation>> {
        self.location_of(id, true)
    }

    fn location_of(&self, id: &ObjectId, fresh: bool) -> Result<Option<BlobLocation>> {
        match self.locate(id, fresh) {
            Ok(loc) => Ok(Some(loc)),
            Err(Error::MissingObject(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Where a blob is: remembered, or asked of the catalog (with the rest
    /// of its pack, see `locations.rs`); `fresh` asks in any case.
    fn locate(&self, id: &ObjectId, fresh: bool) -> Result<BlobLocation> {
        if !fresh {
            if let Some(loc) = self.locations.get(id) {
                return Ok(loc);
            }
        }
        let pack = self.catalog.locate_pack_of(id)?;
        let found = pack.iter().find(|l| l.head.id == *id).cloned();
        self.locations.insert(pack);
        found.ok_or(Error::MissingObject(*id))
    }

    /// A blob as stored (its index entry and its bytes, compressed or
    /// not), for copying to another pool without recompressing.
    pub fn get_stored(&self, id: &ObjectId) -> Result<(EntryHead, Vec<u8>)> {
        match self.get_stored_once(id, false) {
            // As in `get`: the blob may have moved since we learnt where.
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                self.get_stored_once(id, true)
            }
            other => other,
        }
    }

    fn get_stored_once(&self, id: &ObjectId, fresh: bool) -> Result<(EntryHead, Vec<u8>)> {
        let loc = self.locate(id, fresh)?;
        let stored = self
            .objects
            .get_range(
                &pack::key(&loc.pack),
                loc.head.offset,
                loc.head.stored_len as usize,
            )
            .inspect_err(|e| {
                if matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound) {
                    self.locations.forget_pack(&loc.pack);
                }
            })?;
        Ok((loc.head, stored))
    }

    fn get_once(&self, id: &ObjectId, fresh: bool) -> Result<Vec<u8>> {
        let loc = self.locate(id, fresh)?;
        let key = pack::key(&loc.pack);
        let what = || format!("object {id} in pack {}", loc.pack);
        let stored = self
            .objects
            .get_range(&key, loc.head.offset, loc.head.stored_len as usize)
            .map_err(|e| match e {
                Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                    self.locations.forget_pack(&loc.pack);
                    Error::corrupt(what(), PACK_MISSING)
                }
                Error::Io { source, .. } if source.kind() == std::io::ErrorKind::UnexpectedEof => {
                    Error::corrupt(what(), "its pack is truncated")
                }
                other => other,
            })?;
        decode_blob(&loc.head, &loc.pack, stored)
    }

    /// Starts a writing session, registered in the catalog until the
    /// writer is dropped: drop it only after committing what it wrote.
    pub fn writer(&self, what: &str) -> Result<BlobWriter> {
        let session = Session::begin(self.catalog.clone(), what)?;
        Ok(BlobWriter::new(self.clone(), session))
    }
}

/// Turns a blob's stored bytes back into its plaintext and checks the hash.
fn decode_blob(head: &EntryHead, pack: &ObjectId, stored: Vec<u8>) -> Result<Vec<u8>> {
    let what = || format!("object {} in pack {pack}", head.id);
    let plain = match head.compression {
        Compression::None => stored,
        Compression::Zstd => zstd::bulk::decompress(&stored, head.raw_len as usize)
            .map_err(|e| Error::corrupt(what(), format!("cannot decompress: {e}")))?,
    };
    if plain.len() != head.raw_len as usize || ObjectId::of(&plain) != head.id {
        return Err(Error::corrupt(what(), "content does not match its hash"));
    }
    Ok(plain)
}

/// Checks one indexed blob inside the bytes of its whole pack.
pub fn check_in_pack(head: &EntryHead, pack: &ObjectId, data: &[u8]) -> Result<()> {
    let start = head.offset as usize;
    let Some(stored) = start
        .checked_add(head.stored_len as usize)
        .and_then(|end| data.get(start..end))
    else {
        return Err(Error::corrupt(
            format!("object {} in pack {pack}", head.id),
            "its pack is truncated",
        ));
    };
    decode_blob(head, pack, stored.to_vec()).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::writer::encode;
    use super::*;
    use crate::store::pack::BlobKind;

    use crate::test_store as store;

    #[test]
    fn write_commit_read() {
        let (store, _dir) = store();
        let w = store.writer("test").unwrap();
        let text = b"compressible ".repeat(1000);
        let noise = crate::test_noise(2, 100_000);
        let a = w.put(BlobKind::Data, &text).unwrap();
        let b = w.put(BlobKind::Data, &noise).unwrap();
        assert_eq!(w.put(BlobKind::Data, &text).unwrap(), a);
        assert!(
            matches!(store.get(&a), Err(Error::MissingObject(_))),
            "indexed only once durable"
        );
        let stats = w.finish().unwrap();
        assert_eq!(stats.blobs, 3);
        assert_eq!(stats.new_blobs, 2);
        assert!(stats.stored_bytes < (text.len() + noise.len()) as u64);
        assert_eq!(store.get(&a).unwrap(), text);
        assert_eq!(store.get(&b).unwrap(), noise);
        // a second session skips what the pool has
        let w = store.writer("test").unwrap();
        w.put(BlobKind::Data, &text).unwrap();
        assert_eq!(w.finish().unwrap().new_blobs, 0);
    }

    #[test]
    fn detects_corruption() {
        let (store, _dir) = store();
        let w = store.writer("test").unwrap();
        let id = w.put(BlobKind::Data, b"some data to damage later").unwrap();
        w.finish().unwrap();
        let key = store.objects.list("packs/").unwrap().pop().unwrap();
        let mut bytes = store.objects.get(&key).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        store.objects.put(&key, &bytes).unwrap();
        let err = store.get(&id).unwrap_err().to_string();
        assert!(err.contains("does not match its hash"), "{err}");
    }

    #[test]
    fn incompressible_data_is_stored_raw() {
        let noise = crate::test_noise(1, 200_000);
        assert_eq!(encode(BlobKind::Data, &noise).0, Compression::None);
        assert_eq!(
            encode(BlobKind::Data, &vec![7u8; 100_000]).0,
            Compression::Zstd
        );
    }
}
