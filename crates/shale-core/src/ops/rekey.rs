//! `pool rekey`: a new master key for an encrypted pool, every blob sealed
//! again under it, and a key ring holding only the key given, so that no
//! key removed before (nor a copy of the old master key) opens anything
//! written after, nor the packs as they are now.
//!
//! It needs the pool to itself: no writer (import, mount, server) may run.
//! Crash-safe in this order:
//! 1. the ring gains a `next` ring, the new master key wrapped under the
//!    key given (the catalog still says the old keys are in use);
//! 2. every pack is read, each blob opened and checked, and written to new
//!    packs under the new keys and index ids (unlisted: `gc` removes them
//!    if the rekey stops here);
//! 3. one catalog transaction replaces the whole index by the new packs'
//!    and records the new keys' check value; an object-store pool's
//!    catalog copy is sealed under the new catalog key;
//! 4. the ring becomes the next ring alone;
//! 5. the old packs are deleted (left to `gc` if this stops).
//!
//! Opening picks whichever master key the catalog's check value names, so
//! a pool stopped between two steps opens; a second `pool rekey` finishes
//! the work with the same new key.

use std::sync::Arc;

use serde::Serialize;

use crate::catalog::{insert_packs, SealedPack, Sql};
use crate::crypt::keyring::{KeyRing, Stretch};
use crate::crypt::{Key, PoolKeys};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::pool::Pool;
use crate::progress::{self, Event, Progress};
use crate::store::pack::{self, Compression, EntryHead};

/// What `pool rekey` did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RekeyReport {
    /// Packs read (and deleted).
    pub packs_read: u64,
    /// Packs written.
    pub packs_written: u64,
    /// Blobs sealed again.
    pub blobs: u64,
    /// Bytes of packs written.
    pub bytes_written: u64,
    /// The names of the keys that no longer open the pool (only the key
    /// given does; add the others again with `pool key add`).
    pub keys_dropped: Vec<String>,
}

/// New packs being filled.
struct Packer<'a> {
    pool: &'a Pool,
    keys: &'a PoolKeys,
    nonce: [u8; 32],
    buf: Vec<u8>,
    entries: Vec<EntryHead>,
    done: Vec<SealedPack>,
}

impl Packer<'_> {
    fn add(&mut self, ix: ObjectId, head: &EntryHead, stored: &[u8]) -> Result<()> {
        let sealed = self.keys.seal_blob(&ix, stored)?;
        let at = self.buf.len() as u64;
        let n = sealed.len() as u32;
        let (h, e) = pack::head_bytes(
            Some(self.keys),
            ix,
            head.kind,
            head.compression,
            head.raw_len,
            n,
            at,
        )?;
        self.buf.extend_from_slice(&h);
        self.buf.extend_from_slice(&sealed);
        self.entries.push(e);
        if self.buf.len() >= crate::store::blobs::PACK_TARGET {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.entries.is_empty() {
            return Ok(());
        }
        let mut h = blake3::Hasher::new();
        h.update(&self.nonce);
        for e in &self.entries {
            h.update(&e.id.0);
            h.update(&e.offset.to_le_bytes());
        }
        let name = ObjectId(*h.finalize().as_bytes());
        self.pool
            .blobs()
            .objects()
            .put(&pack::key(&name), &self.buf)?;
        self.done.push(SealedPack {
            name,
            size: self.buf.len() as u64,
            entries: std::mem::take(&mut self.entries),
        });
        self.buf = pack::header_for(Some(self.keys)).to_vec();
        Ok(())
    }
}

impl Pool {
    /// Seals the pool again under a new master key (see the module docs);
    /// only the key this pool was opened with opens it afterwards.
    pub fn rekey(&self, progress: Option<Arc<dyn Progress>>) -> Result<RekeyReport> {
        let name = self.name();
        let (Some(ring), Some(old)) = (self.ring(&name), self.blobs().keys()) else {
            return Err(Error::InvalidArgument(format!("{name} is not encrypted")));
        };
        self.refuse_writers(&name)?;
        let (new_master, keys_dropped) = self.next_ring(&ring)?;
        let new = PoolKeys::new(&new_master);
        crate::failpoint::fail_point("rekey.ring");
        let mut report = RekeyReport {
            keys_dropped,
            ..RekeyReport::default()
        };
        let old_packs = self.catalog().packs()?;
        let mut packer = Packer {
            pool: self,
            keys: &new,
            nonce: crate::crypt::Key::random()?.as_bytes().to_owned(),
            buf: pack::header_for(Some(&new)).to_vec(),
            entries: Vec::new(),
            done: Vec::new(),
        };
        for (rowid, pack_name) in &old_packs {
            let data = self.blobs().objects().get(&pack::key(pack_name))?;
            for head in self.catalog().blobs_in_pack(*rowid)? {
                let (ix, stored) = reseal_one(old, &new, &head, pack_name, &data)?;
                packer.add(ix, &head, &stored)?;
                report.blobs += 1;
            }
            report.packs_read += 1;
            progress::report(
                &progress,
                Event::File {
                    bytes: data.len() as u64,
                },
            );
            progress::check(&progress)?;
        }
        packer.flush()?;
        crate::failpoint::fail_point("rekey.packs");
        let new_packs = std::mem::take(&mut packer.done);
        report.packs_written = new_packs.len() as u64;
        report.bytes_written = new_packs.iter().map(|p| p.size).sum();
        self.catalog()
            .write(|tx| swap_index(tx, &new_packs, &new))?;
        self.upload_catalog_sealed(&new)?;
        crate::failpoint::fail_point("rekey.index");
        let mut done = ring.read()?;
        done = *done.next.take().expect("written by next_ring");
        ring.write(&done)?;
        crate::failpoint::fail_point("rekey.sealed");
        for (_, pack_name) in &old_packs {
            let _ = self.blobs().objects().delete(&pack::key(pack_name));
        }
        Ok(report)
    }

    /// Refuses to rekey while anything else writes to the pool.
    fn refuse_writers(&self, name: &str) -> Result<()> {
        crate::coord::session::remove_stale(self.catalog())?;
        let writers = crate::coord::session::sessions(self.catalog())?;
        let mounts = crate::coord::mounts::mount_points(self.root());
        if writers.is_empty() && mounts.is_empty() {
            return Ok(());
        }
        Err(Error::InvalidArgument(format!(
            "{name} is in use ({} writers, {} mounts on this machine): `pool rekey` needs it \
             to itself; stop them and run it again",
            writers.len(),
            mounts.len()
        )))
    }

    /// The new master key: the unfinished rekey's, if the key given opens
    /// it, else a new one wrapped in a `next` ring written now. Returns it
    /// with the names of the keys left behind.
    fn next_ring(&self, ring: &crate::keys::PoolRing<'_>) -> Result<(Key, Vec<String>)> {
        let source = self.options().key.as_ref().ok_or_else(|| {
            Error::InvalidArgument(
                "give the key to keep with --key-file or SHALE_PASSPHRASE".into(),
            )
        })?;
        let user = source.user_key()?;
        let mut current = ring.read()?;
        let (_, slot) = current.unlock(&user).or_else(|e| match &current.next {
            Some(next) => next.unlock(&user).map_err(|_| e),
            None => Err(e),
        })?;
        let kept = current
            .slots
            .iter()
            .find(|s| s.id == slot)
            .map(|s| s.name.clone());
        let dropped = current
            .slots
            .iter()
            .filter(|s| s.id != slot)
            .map(|s| s.name.clone())
            .collect();
        if let Some(next) = &current.next {
            // An unfinished rekey: finish it with its key, never replace
            // it (the catalog may already use that key).
            return match next.unlock(&user) {
                Ok((m, _)) => Ok((m, dropped)),
                Err(_) => Err(Error::InvalidArgument(
                    "a `pool rekey` begun with another key did not finish: run it again \
                     with that key"
                        .into(),
                )),
            };
        }
        let master = Key::random()?;
        let mut next = KeyRing::default();
        next.add(
            &master,
            &kept.unwrap_or_else(|| "first".into()),
            &user,
            Stretch::default(),
        )?;
        current.next = Some(Box::new(next));
        ring.write(&current)?;
        Ok((master, dropped))
    }
}

/// Opens one blob under the old keys, checks it against its id, and seals
/// it for the new: its new index id and its stored bytes (compressed or
/// not, as they were).
fn reseal_one(
    old: &PoolKeys,
    new: &PoolKeys,
    head: &EntryHead,
    pack_name: &ObjectId,
    data: &[u8],
) -> Result<(ObjectId, Vec<u8>)> {
    let what = || format!("object {} in pack {pack_name}", head.id);
    let start = head.offset as usize;
    let sealed = start
        .checked_add(head.stored_len as usize)
        .and_then(|end| data.get(start..end))
        .ok_or_else(|| Error::corrupt(what(), "its pack is truncated; run `shale verify`"))?;
    let stored = old.open_blob(&head.id, sealed.to_vec(), &what())?;
    let plain = match head.compression {
        Compression::None => None,
        Compression::Zstd => Some(
            crate::store::blobs::zstd_decompress(&stored, head.raw_len as usize)
                .map_err(|e| Error::corrupt(what(), format!("cannot decompress: {e}")))?,
        ),
        // A delta names its bases by content id, which the new keys do
        // not change; its record, opened under the old key, names the
        // blob it rebuilds.
        Compression::Delta => {
            let content =
                crate::store::blobs::delta_id(&stored).map_err(|e| Error::corrupt(what(), e))?;
            if old.index_id(&content) != head.id {
                return Err(Error::corrupt(
                    what(),
                    "its delta record names another blob",
                ));
            }
            return Ok((new.index_id(&content), stored));
        }
    };
    let content = ObjectId::of(plain.as_deref().unwrap_or(&stored));
    if old.index_id(&content) != head.id {
        return Err(Error::corrupt(what(), "content does not match its hash"));
    }
    Ok((new.index_id(&content), stored))
}

/// Replaces the whole index by the new packs' and records the new keys,
/// unless a writer started meanwhile (its blobs would be lost: the rekey
/// stops, the pool unchanged, to be run again).
fn swap_index(tx: &dyn Sql, packs: &[SealedPack], keys: &PoolKeys) -> Result<()> {
    if !crate::catalog::session_ids(tx)?.is_empty() {
        return Err(Error::InvalidArgument(
            "a writer started while `pool rekey` ran: nothing was changed; run it again \
             when the pool is not in use"
                .into(),
        ));
    }
    tx.execute("DELETE FROM blobs", &[])?;
    tx.execute("DELETE FROM packs", &[])?;
    insert_packs(tx, packs, None)?;
    crate::keys::record_check(tx, keys)
}
