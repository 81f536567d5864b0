//! The write path: one writing session's blobs, deduplicated, compressed
//! where it pays, appended to staged packs, sealed by a background thread
//! and indexed once durable.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::delta::{self, Base};
use super::{
    decode_blob, BlobStore, Rehash, MIN_COMPRESS, PACK_MAX_BLOBS, PACK_TARGET, SAMPLE, ZSTD_LEVEL,
};
use crate::catalog::{insert_packs, SealedPack};
use crate::coord::session::Session;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::store::pack::{self, BlobKind, Compression, EntryHead};

/// Blobs shorter than this are always stored whole: a delta would save
/// too little to be worth a second read.
const MIN_DELTA: usize = 4 << 10;

/// Counters of one writing session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Blobs offered.
    pub blobs: u64,
    /// Blobs that were new to the pool.
    pub new_blobs: u64,
    /// Plaintext bytes of new blobs.
    pub new_bytes: u64,
    /// Bytes of new blobs as stored.
    pub stored_bytes: u64,
    /// Bytes of packs written (including heads).
    pub pack_bytes: u64,
}

/// A pack being filled, staged in a local file.
struct Open {
    file: BufWriter<File>,
    path: PathBuf,
    len: u64,
    entries: Vec<EntryHead>,
}

struct State {
    open: Option<Open>,
    /// Index ids written in this session, not yet in the catalog.
    pending: HashSet<ObjectId>,
    stats: WriteStats,
    staged: u64,
}

/// A blob made ready by [`BlobWriter::prepare_chunk`], not yet written.
pub struct Prepared {
    /// The index id.
    id: ObjectId,
    kind: BlobKind,
    compression: Compression,
    raw_len: u32,
    stored: Vec<u8>,
}

impl Prepared {
    /// Bytes the blob takes in a pack, without its entry head.
    pub fn stored_len(&self) -> u64 {
        self.stored.len() as u64
    }

    /// The memory that held the blob, for reuse once it is appended.
    pub fn into_buffer(self) -> Vec<u8> {
        self.stored
    }
}

/// One session of writing blobs; see the module docs.
pub struct BlobWriter {
    store: BlobStore,
    /// Registered until the writer is dropped (after the uploader is done).
    _session: Session,
    staging: PathBuf,
    nonce: [u8; 16],
    state: Arc<Mutex<State>>,
    /// Held by [`BlobWriter::append_prepared`] through one run of blobs.
    ordered: Mutex<()>,
    uploads: Mutex<Option<SyncSender<Open>>>,
    uploader: Mutex<Option<JoinHandle<Result<()>>>>,
}

thread_local! {
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

fn zstd_compress(data: &[u8], level: i32) -> Option<Vec<u8>> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = zstd::bulk::Compressor::new(level).ok();
        }
        let comp = c.as_mut()?;
        comp.set_compression_level(level).ok()?;
        comp.compress(data).ok()
    })
}

/// Compresses `data` when that saves at least 1/16 of it.
///
/// Data chunks first compress a 4 KiB sample at level 1: incompressible
/// content (images, archives, shards) is then stored raw after paying only
/// for the sample, not for a full compression attempt.
pub(super) fn encode(kind: BlobKind, data: &[u8]) -> (Compression, Option<Vec<u8>>) {
    if data.len() < MIN_COMPRESS {
        return (Compression::None, None);
    }
    if kind == BlobKind::Data && data.len() > 4 * SAMPLE {
        match zstd_compress(&data[..SAMPLE], 1) {
            Some(s) if s.len() < SAMPLE - SAMPLE / 8 => {}
            _ => return (Compression::None, None),
        }
    }
    match zstd_compress(data, ZSTD_LEVEL) {
        Some(c) if c.len() <= data.len() - data.len() / 16 => (Compression::Zstd, Some(c)),
        _ => (Compression::None, None),
    }
}

/// Names a sealed pack: the hash of its entry heads and of the writer's
/// random nonce. The heads pin every blob's id and placement; the nonce
/// keeps two writers that happen to pack the same blobs from picking one
/// name for two different files. (Hashing heads instead of the whole pack
/// spares a second pass over every byte; each blob is checked by its own id.)
fn pack_name(nonce: &[u8; 16], entries: &[EntryHead]) -> ObjectId {
    let mut h = blake3::Hasher::new();
    h.update(nonce);
    for e in entries {
        h.update(&e.id.0);
        h.update(&[e.kind as u8, e.compression as u8]);
        h.update(&e.raw_len.to_le_bytes());
        h.update(&e.stored_len.to_le_bytes());
        h.update(&e.offset.to_le_bytes());
    }
    ObjectId(*h.finalize().as_bytes())
}

/// Makes a full pack durable, then lists its blobs in the catalog's index,
/// then forgets them from the session's pending set. The blobs stay
/// unreferenced until the caller commits the state change that uses them.
fn seal(
    store: &BlobStore,
    state: &Mutex<State>,
    nonce: &[u8; 16],
    session: i64,
    open: Open,
) -> Result<()> {
    let Open {
        file,
        path,
        len,
        entries,
    } = open;
    let moved = file
        .into_inner()
        .map_err(|e| Error::io(&path, e.into_error()))
        .and_then(|f| {
            drop(f);
            let name = pack_name(nonce, &entries);
            store
                .objects
                .put_file(&pack::key(&name), &path)
                .map(|_| name)
        });
    let name = match moved {
        Ok(name) => name,
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
    };
    crate::failpoint::fail_point("pack.stored");
    let sealed = SealedPack {
        name,
        size: len,
        entries,
    };
    store
        .catalog
        .write_unsynced(|tx| insert_packs(tx, std::slice::from_ref(&sealed), Some(session)))?;
    crate::failpoint::fail_point("pack.indexed");
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    for e in &sealed.entries {
        st.pending.remove(&e.id);
    }
    Ok(())
}

fn new_nonce() -> [u8; 16] {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = format!(
        "{:?}{}{}{:?}",
        std::time::SystemTime::now(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        std::thread::current().id()
    );
    let mut out = [0u8; 16];
    out.copy_from_slice(&blake3::hash(seed.as_bytes()).as_bytes()[..16]);
    out
}

impl BlobWriter {
    pub(super) fn new(store: BlobStore, session: Session) -> Self {
        let (tx, rx) = sync_channel::<Open>(1);
        let nonce = new_nonce();
        let state = Arc::new(Mutex::new(State {
            open: None,
            pending: HashSet::new(),
            stats: WriteStats::default(),
            staged: 0,
        }));
        let uploader = {
            let store = store.clone();
            let state = state.clone();
            let session_id = session.id();
            std::thread::spawn(move || {
                let mut first_error = None;
                for open in rx {
                    if first_error.is_some() {
                        let _ = std::fs::remove_file(&open.path);
                        continue;
                    }
                    if let Err(e) = seal(&store, &state, &nonce, session_id, open) {
                        first_error = Some(e);
                    }
                }
                first_error.map_or(Ok(()), Err)
            })
        };
        let staging = store
            .objects
            .staging_dir()
            .unwrap_or_else(|| std::env::temp_dir().join("shale-staging"));
        BlobWriter {
            store,
            _session: session,
            staging,
            nonce,
            state,
            ordered: Mutex::new(()),
            uploads: Mutex::new(Some(tx)),
            uploader: Mutex::new(Some(uploader)),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a blob unless the pool or this session has it; returns its id.
    pub fn put(&self, kind: BlobKind, data: &[u8]) -> Result<ObjectId> {
        let id = ObjectId::of(data);
        self.put_with_id(id, kind, data)?;
        Ok(id)
    }

    /// Stores a chunk of file data; returns its reference for a file entry.
    pub fn put_chunk(&self, data: &[u8]) -> Result<crate::tree::ChunkRef> {
        Ok(crate::tree::ChunkRef {
            id: self.put(BlobKind::Data, data)?,
            len: data.len() as u32,
        })
    }

    /// Like [`put`](Self::put) for a caller that already hashed `data`.
    pub fn put_with_id(&self, id: ObjectId, kind: BlobKind, data: &[u8]) -> Result<()> {
        let Some(ix) = self.claim(id)? else {
            return Ok(());
        };
        let (compression, stored) = self.stored_form(&ix, kind, data)?;
        let stored = stored.as_deref().unwrap_or(data);
        self.append(ix, kind, compression, data.len() as u32, stored)
    }

    /// Stores a blob like [`put`](Self::put), as a delta of `bases` (the
    /// content ids of blobs it was made from, such as the chunks an
    /// in-place edit rewrote) when the pool allows deltas and the delta
    /// takes at most half what the whole blob would. A base that cannot
    /// be read is left out (the blob is then stored whole).
    pub fn put_near(&self, kind: BlobKind, data: &[u8], bases: &[ObjectId]) -> Result<ObjectId> {
        let id = ObjectId::of(data);
        if !self.store.deltas || bases.is_empty() || data.len() < MIN_DELTA {
            self.put_with_id(id, kind, data)?;
            return Ok(id);
        }
        let Some(ix) = self.claim(id)? else {
            return Ok(id);
        };
        let (compression, compressed) = encode(kind, data);
        let whole = compressed.as_ref().map_or(data.len(), Vec::len);
        let record = match self.delta_of(id, data, bases) {
            Some(r) if r.len() <= whole / 2 => r,
            _ => {
                let (compression, stored) = self.seal(&ix, compression, compressed, data)?;
                let stored = stored.as_deref().unwrap_or(data);
                self.append(ix, kind, compression, data.len() as u32, stored)?;
                return Ok(id);
            }
        };
        let stored = match self.store.keys() {
            Some(keys) => keys.seal_blob(&ix, &record)?,
            None => record,
        };
        self.append(ix, kind, Compression::Delta, data.len() as u32, &stored)?;
        Ok(id)
    }

    /// The delta record of `data` against whichever of `bases` the pool
    /// holds (indexed and not condemned: `gc` keeps what a committed delta
    /// names); None if none can be read.
    fn delta_of(&self, id: ObjectId, data: &[u8], bases: &[ObjectId]) -> Option<Vec<u8>> {
        let mut read = Vec::new();
        for base in bases {
            if *base == id || read.iter().any(|(b, _)| b == base) {
                continue;
            }
            if !self.store.has(base).unwrap_or(false) {
                continue;
            }
            match self.store.get_for_base(base) {
                Ok(found) => read.push((*base, found)),
                Err(e) => tracing::debug!("delta base {base} left out: {e}"),
            }
        }
        if read.is_empty() {
            return None;
        }
        let bases: Vec<Base<'_>> = read
            .iter()
            .map(|(id, (bytes, record))| Base {
                id: *id,
                bytes,
                delta: record.as_ref(),
            })
            .collect();
        Some(delta::diff(id, data, &bases).encode())
    }

    /// Counts a blob and, unless the pool or this session has it, claims
    /// it for this session: its index id when the caller must write it.
    fn claim(&self, id: ObjectId) -> Result<Option<ObjectId>> {
        let ix = self.store.index_id(&id);
        let mut st = self.state();
        st.stats.blobs += 1;
        if st.pending.contains(&ix) || self.store.catalog.has_blob(&ix)? {
            return Ok(None);
        }
        st.pending.insert(ix);
        Ok(Some(ix))
    }

    /// A blob's bytes as its pack holds them: compressed where that pays,
    /// then sealed in an encrypted pool (None: `data` itself). Done before
    /// the writer's lock is taken, so writers compress and seal at once.
    fn stored_form(
        &self,
        ix: &ObjectId,
        kind: BlobKind,
        data: &[u8],
    ) -> Result<(Compression, Option<Vec<u8>>)> {
        let (compression, compressed) = encode(kind, data);
        self.seal(ix, compression, compressed, data)
    }

    /// Seals a blob's stored form in an encrypted pool.
    fn seal(
        &self,
        ix: &ObjectId,
        compression: Compression,
        compressed: Option<Vec<u8>>,
        data: &[u8],
    ) -> Result<(Compression, Option<Vec<u8>>)> {
        let Some(keys) = self.store.keys() else {
            return Ok((compression, compressed));
        };
        let sealed = keys.seal_blob(ix, compressed.as_deref().unwrap_or(data))?;
        Ok((compression, Some(sealed)))
    }

    /// Makes a chunk of file data ready to be written, without writing it:
    /// hashed, checked against the pool and this session, compressed where
    /// that pays. Returns its reference, and the blob to hand to
    /// [`append_prepared`](Self::append_prepared) unless the pool or this
    /// session already has it.
    ///
    /// The blob is claimed for this session at once (other writers of the
    /// same bytes skip it), so the caller must append it before
    /// [`finish`](Self::finish): the import holds the small files of a
    /// group of names this way and appends them in name order (see
    /// `import.rs`).
    pub fn prepare_chunk(
        &self,
        data: Vec<u8>,
    ) -> Result<(crate::tree::ChunkRef, Option<Prepared>)> {
        let id = ObjectId::of(&data);
        let chunk = crate::tree::ChunkRef {
            id,
            len: data.len() as u32,
        };
        let Some(ix) = self.claim(id)? else {
            return Ok((chunk, None));
        };
        let (compression, stored) = self.stored_form(&ix, BlobKind::Data, &data)?;
        let prepared = Prepared {
            id: ix,
            kind: BlobKind::Data,
            compression,
            raw_len: data.len() as u32,
            stored: stored.unwrap_or(data),
        };
        Ok((chunk, Some(prepared)))
    }

    /// Appends prepared blobs to the open pack one after another, in the
    /// order given; another caller's prepared blobs wait their turn. The
    /// state is locked blob by blob, not for the whole run: every file read
    /// claims its blob under that lock (measured, holding it through a
    /// group's writes made a cold import of 20,000 small files 20-35%
    /// slower). A large file's chunk or a tree node written meanwhile may
    /// land between two of the blobs.
    pub fn append_prepared(&self, blobs: &[Prepared]) -> Result<()> {
        let _turn = self.ordered.lock().unwrap_or_else(|p| p.into_inner());
        for b in blobs {
            self.append(b.id, b.kind, b.compression, b.raw_len, &b.stored)?;
        }
        Ok(())
    }

    /// Stores a blob as another pool stored it (`head` and its stored
    /// bytes, compressed or not, sealed or not), unless this pool or
    /// session has it; checks it against its id first. Returns whether it
    /// was written. Both pools must be plain, or share a master key (then
    /// ids and seals are the same in both); otherwise blobs are copied as
    /// plaintext with [`put`](Self::put).
    pub fn put_stored(&self, head: &EntryHead, stored: &[u8]) -> Result<bool> {
        {
            let mut st = self.state();
            st.stats.blobs += 1;
            if st.pending.contains(&head.id) || self.store.catalog.has_blob(&head.id)? {
                return Ok(false);
            }
        }
        decode_blob(
            self.store.keys(),
            head,
            &ObjectId([0; 32]),
            stored.to_vec(),
            &head.id,
            Rehash::Always,
            None,
        )
        .map_err(|e| Error::corrupt(format!("object {} as received", head.id), e.to_string()))?;
        self.state().pending.insert(head.id);
        self.append(head.id, head.kind, head.compression, head.raw_len, stored)?;
        Ok(true)
    }

    /// Appends one blob's stored bytes to the open pack.
    fn append(
        &self,
        id: ObjectId,
        kind: BlobKind,
        compression: Compression,
        raw_len: u32,
        stored: &[u8],
    ) -> Result<()> {
        let full = {
            let mut st = self.state();
            self.append_locked(&mut st, id, kind, compression, raw_len, stored)?
        };
        if let Some(open) = full {
            self.send(open)?;
        }
        Ok(())
    }

    /// Appends one blob with the state locked; returns the pack it filled,
    /// if it did, to be sent once the lock is released.
    fn append_locked(
        &self,
        st: &mut State,
        id: ObjectId,
        kind: BlobKind,
        compression: Compression,
        raw_len: u32,
        stored: &[u8],
    ) -> Result<Option<Open>> {
        let seq = st.staged;
        if st.open.is_none() {
            st.staged += 1;
            st.open = Some(self.open_pack(seq)?);
        }
        let open = st.open.as_mut().expect("opened above");
        let (head, entry) = pack::head_bytes(
            self.store.keys(),
            id,
            kind,
            compression,
            raw_len,
            stored.len() as u32,
            open.len,
        )?;
        open.file
            .write_all(&head)
            .and_then(|_| open.file.write_all(stored))
            .map_err(|e| Error::io(&open.path, e))?;
        open.len = entry.offset + stored.len() as u64;
        open.entries.push(entry);
        let full = open.len >= PACK_TARGET as u64 || open.entries.len() >= PACK_MAX_BLOBS;
        st.stats.new_blobs += 1;
        st.stats.new_bytes += raw_len as u64;
        st.stats.stored_bytes += stored.len() as u64;
        Ok(if full { self.take_open(st) } else { None })
    }

    fn open_pack(&self, seq: u64) -> Result<Open> {
        crate::private::create_dir_all(&self.staging).map_err(|e| Error::io(&self.staging, e))?;
        let path = self.staging.join(format!(
            "{}-{}-{seq}.pack",
            std::process::id(),
            hex::encode(&self.nonce[..6])
        ));
        let file = crate::private::open(
            &path,
            std::fs::OpenOptions::new().write(true).create_new(true),
        )
        .map_err(|e| Error::io(&path, e))?;
        let mut file = BufWriter::with_capacity(64 << 10, file);
        file.write_all(&pack::header_for(self.store.keys()))
            .map_err(|e| Error::io(&path, e))?;
        Ok(Open {
            file,
            path,
            len: pack::HEADER_LEN as u64,
            entries: Vec::new(),
        })
    }

    fn take_open(&self, st: &mut State) -> Option<Open> {
        let open = st.open.take()?;
        st.stats.pack_bytes += open.len;
        Some(open)
    }

    fn send(&self, open: Open) -> Result<()> {
        let sender = self
            .uploads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(sender) = sender else {
            let _ = std::fs::remove_file(&open.path);
            return Err(Error::InvalidArgument(
                "blob writer already finished".into(),
            ));
        };
        if let Err(returned) = sender.send(open) {
            let _ = std::fs::remove_file(&returned.0.path);
            // The uploader stopped early: report its error.
            return self.finish_uploads();
        }
        Ok(())
    }

    fn finish_uploads(&self) -> Result<()> {
        drop(
            self.uploads
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        let handle = self
            .uploader
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        match handle {
            Some(h) => h
                .join()
                .map_err(|_| Error::InvalidArgument("pack uploader thread panicked".into()))?,
            None => Ok(()),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> WriteStats {
        self.state().stats
    }

    /// Seals the last pack and waits until every pack is durable and
    /// indexed. Only then may the caller commit a state change that
    /// references what was written.
    pub fn finish(&self) -> Result<WriteStats> {
        let last = {
            let mut st = self.state();
            self.take_open(&mut st)
        };
        if let Some(open) = last {
            self.send(open)?;
        }
        self.finish_uploads()?;
        Ok(self.stats())
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // An abandoned session leaves no staged file behind; packs already
        // moved into the store are unreferenced and left to `gc`.
        if let Some(open) = self.state().open.take() {
            let _ = std::fs::remove_file(&open.path);
        }
        let _ = self.finish_uploads();
    }
}
