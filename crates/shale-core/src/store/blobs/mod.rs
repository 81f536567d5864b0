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

mod delta;
mod writer;

use std::sync::Arc;

use crate::catalog::{BlobLocation, Catalog};
use crate::coord::session::Session;
use crate::crypt::PoolKeys;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::store::locations::LocationCache;
use crate::store::objects::ObjectStore;
use crate::store::pack::{self, Compression, EntryHead};
use delta::Delta;

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
    /// An encrypted pool's keys: blobs are then indexed by keyed id and
    /// sealed (see `crypt/sealing.rs`).
    keys: Option<Arc<PoolKeys>>,
    /// Whether new blobs may be stored as deltas of others (pool format 3).
    deltas: bool,
}

impl BlobStore {
    /// Joins an object store and the catalog that indexes it.
    pub fn new(objects: Arc<dyn ObjectStore>, catalog: Arc<Catalog>) -> Self {
        BlobStore {
            objects,
            catalog,
            locations: Arc::default(),
            keys: None,
            deltas: false,
        }
    }

    /// This store, storing blobs written with
    /// [`BlobWriter::put_near`] as deltas of their bases where that pays
    /// (only in pools of format 3: older releases cannot read them).
    pub fn with_deltas(mut self, deltas: bool) -> Self {
        self.deltas = deltas;
        self
    }

    /// This store, sealing and opening blobs with an encrypted pool's keys.
    pub fn with_keys(mut self, keys: Option<Arc<PoolKeys>>) -> Self {
        self.keys = keys;
        self
    }

    /// An encrypted pool's keys (None for a plain pool).
    pub fn keys(&self) -> Option<&PoolKeys> {
        self.keys.as_deref()
    }

    /// The id under which the index and the packs know the blob whose
    /// content id is `id`: keyed in an encrypted pool, `id` itself in a
    /// plain one.
    pub fn index_id(&self, id: &ObjectId) -> ObjectId {
        match &self.keys {
            Some(k) => k.index_id(id),
            None => *id,
        }
    }

    /// Whether the pool has the blob whose content id is `id`.
    pub fn has(&self, id: &ObjectId) -> Result<bool> {
        self.catalog.has_blob(&self.index_id(id))
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
        self.get_as(id, Role::Blob)
    }

    fn get_as(&self, id: &ObjectId, role: Role) -> Result<Vec<u8>> {
        match self.get_once(id, false, role) {
            // `gc` may have moved the blob to a new pack since we learnt
            // where it was: look it up again once.
            Err(Error::Corrupt { reason, .. }) if reason == PACK_MISSING => {
                self.get_once(id, true, role)
            }
            other => other,
        }
    }

    /// A blob and, when it is stored as a delta, its record: what a new
    /// blob built on it needs (see [`delta::Base`]).
    fn get_for_base(&self, id: &ObjectId) -> Result<(Vec<u8>, Option<Delta>)> {
        let loc = self.locate(id, false)?;
        let record = match loc.head.compression {
            Compression::Delta => Some(self.delta_record(&loc)?),
            Compression::None | Compression::Zstd => None,
        };
        Ok((self.get(id)?, record))
    }

    /// The record of a blob stored as a delta at `loc`.
    fn delta_record(&self, loc: &BlobLocation) -> Result<Delta> {
        let what = || format!("object {} in pack {}", loc.head.id, loc.pack);
        let stored = self.objects.get_range(
            &pack::key(&loc.pack),
            loc.head.offset,
            loc.head.stored_len as usize,
        )?;
        let stored = match self.keys() {
            Some(k) => k.open_blob(&loc.head.id, stored, &what())?,
            None => stored,
        };
        Delta::decode(&stored).map_err(|e| Error::corrupt(what(), e))
    }

    /// The content ids of the bases of the blob stored as a delta at
    /// `loc` (what `gc` must keep while the blob lives).
    pub fn delta_bases(&self, loc: &BlobLocation) -> Result<Vec<ObjectId>> {
        Ok(self.delta_record(loc)?.bases)
    }

    /// Reads, decompresses and checks one blob if that needs no waiting:
    /// its place is remembered and its bytes are at hand (see
    /// [`ObjectStore::get_range_now`]). `None` when it would wait; errors
    /// are left to [`BlobStore::get`], which reports them.
    pub fn get_now(&self, id: &ObjectId) -> Option<Vec<u8>> {
        let loc = self.locations.get(&self.index_id(id))?;
        let stored = self.objects.get_range_now(
            &pack::key(&loc.pack),
            loc.head.offset,
            loc.head.stored_len as usize,
        )?;
        self.decode(&loc, stored, id, Role::Base).ok()
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
    /// of its pack, see `locations.rs`); `fresh` asks in any case. The
    /// location's head names the blob by its index id.
    fn locate(&self, id: &ObjectId, fresh: bool) -> Result<BlobLocation> {
        let index_id = self.index_id(id);
        if !fresh {
            if let Some(loc) = self.locations.get(&index_id) {
                return Ok(loc);
            }
        }
        let pack = self.catalog.locate_pack_of(&index_id)?;
        let found = pack.iter().find(|l| l.head.id == index_id).cloned();
        self.locations.insert(pack);
        found.ok_or(Error::MissingObject(*id))
    }

    /// A blob as stored (its index entry and its bytes, compressed or
    /// not, sealed in an encrypted pool), for copying to another plain pool
    /// without recompressing.
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

    fn get_once(&self, id: &ObjectId, fresh: bool, role: Role) -> Result<Vec<u8>> {
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
        self.decode(&loc, stored, id, role)
    }

    /// A blob read from its pack, decoded for the reader of content id
    /// `id` (see [`decode_blob`]); a delta's bases are read if `role`
    /// allows a delta.
    fn decode(
        &self,
        loc: &BlobLocation,
        stored: Vec<u8>,
        id: &ObjectId,
        role: Role,
    ) -> Result<Vec<u8>> {
        let fetch = |base: &ObjectId| self.get_as(base, Role::Base);
        let bases: Bases<'_> = match role {
            Role::Blob => Some(&fetch),
            Role::Base => None,
        };
        decode_blob(
            self.keys(),
            &loc.head,
            &loc.pack,
            stored,
            id,
            Rehash::UnlessSealed,
            bases,
        )
    }

    /// Starts a writing session, registered in the catalog until the
    /// writer is dropped: drop it only after committing what it wrote.
    pub fn writer(&self, what: &str) -> Result<BlobWriter> {
        let session = Session::begin(self.catalog.clone(), what)?;
        Ok(BlobWriter::new(self.clone(), session))
    }
}

/// What a blob is read as.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A blob a caller asked for: it may be a delta.
    Blob,
    /// The base of a delta (or a read that must not wait): it must be
    /// stored whole, which bounds a read to one level of indirection
    /// (and a damaged pool cannot make it loop).
    Base,
}

/// Reads the bases of a delta by content id; None where a blob must be
/// stored whole.
type Bases<'a> = Option<&'a dyn Fn(&ObjectId) -> Result<Vec<u8>>>;

/// Whether [`decode_blob`] hashes the plaintext again.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rehash {
    /// Always (`verify`, blobs received from another pool).
    Always,
    /// Unless the blob was sealed: opening it already proved that these
    /// are the bytes sealed under its keyed id, which its writer derived
    /// from their hash (AES-GCM's tag, under the pool's key). Reads of an
    /// encrypted pool so check once, not twice (measured: the second check
    /// made a cold mount read 0.86x a plain pool's).
    UnlessSealed,
}

/// Turns a blob's stored bytes back into its plaintext (opening them with
/// an encrypted pool's `keys`) and checks them against the blob's id (see
/// [`Rehash`]); errors name the blob `name` (its content id where the
/// caller knows it).
fn decode_blob(
    keys: Option<&PoolKeys>,
    head: &EntryHead,
    pack: &ObjectId,
    stored: Vec<u8>,
    name: &ObjectId,
    rehash: Rehash,
    bases: Bases<'_>,
) -> Result<Vec<u8>> {
    let what = || format!("object {name} in pack {pack}");
    let stored = match keys {
        Some(k) => k.open_blob(&head.id, stored, &what())?,
        None => stored,
    };
    let plain = match head.compression {
        Compression::None => stored,
        Compression::Zstd => zstd_decompress(&stored, head.raw_len as usize)
            .map_err(|e| Error::corrupt(what(), format!("cannot decompress: {e}")))?,
        Compression::Delta => {
            let Some(fetch) = bases else {
                return Err(Error::corrupt(
                    what(),
                    "it is a delta where only a whole blob may be",
                ));
            };
            let delta = Delta::decode(&stored).map_err(|e| Error::corrupt(what(), e))?;
            let bases = delta.bases.iter().map(fetch).collect::<Result<Vec<_>>>()?;
            delta
                .apply(&bases, head.raw_len as usize)
                .map_err(|e| Error::corrupt(what(), e))?
        }
    };
    let checked = keys.is_some() && rehash == Rehash::UnlessSealed;
    let hash_ok = || {
        let id = ObjectId::of(&plain);
        keys.map_or(id, |k| k.index_id(&id)) == head.id
    };
    if plain.len() != head.raw_len as usize || !(checked || hash_ok()) {
        return Err(Error::corrupt(what(), "content does not match its hash"));
    }
    Ok(plain)
}

thread_local! {
    /// A decompression context per thread: making one costs more than
    /// decompressing a small tree node (a cold walk of a million-file tree
    /// spent 6% of its time creating them).
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Decompresses a blob whose plaintext is `len` bytes long.
pub(crate) fn zstd_decompress(stored: &[u8], len: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(zstd::bulk::Decompressor::new()?);
        }
        match d.as_mut() {
            Some(d) => d.decompress(stored, len),
            None => zstd::bulk::decompress(stored, len),
        }
    })
}

/// The content id of the blob a delta record rebuilds (for `pool rekey`,
/// which moves records without rebuilding them).
pub fn delta_id(record: &[u8]) -> std::result::Result<ObjectId, String> {
    Delta::decode(record).map(|d| d.id)
}

/// Checks one indexed blob of `store` inside the bytes of its whole pack
/// (a delta's bases are read from the store).
pub fn check_in_pack(
    store: &BlobStore,
    head: &EntryHead,
    pack: &ObjectId,
    data: &[u8],
) -> Result<()> {
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
    let fetch = |base: &ObjectId| store.get_as(base, Role::Base);
    decode_blob(
        store.keys(),
        head,
        pack,
        stored.to_vec(),
        &head.id,
        Rehash::Always,
        Some(&fetch),
    )
    .map(|_| ())
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
