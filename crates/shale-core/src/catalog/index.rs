//! The index of packs and blobs: where each blob lies, what each pack
//! holds, and pool-wide totals.

use super::{now_ns, Catalog, Row, Sql};
use crate::args;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::store::pack::{BlobKind, Compression, EntryHead};

/// Where a blob lives.
#[derive(Clone, Debug)]
pub struct BlobLocation {
    /// Name (hash) of the pack holding it.
    pub pack: ObjectId,
    /// Its entry in that pack.
    pub head: EntryHead,
}

/// A pack that is durable in the object store, with the entries it holds.
#[derive(Clone, Debug)]
pub struct SealedPack {
    /// BLAKE3 of the pack's bytes.
    pub name: ObjectId,
    /// Size in bytes.
    pub size: u64,
    /// Its entries.
    pub entries: Vec<EntryHead>,
}

/// Pool-wide totals for `pool info`.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    /// Number of volumes.
    pub volumes: u64,
    /// Number of snapshots.
    pub snapshots: u64,
    /// Sum of the logical sizes of all volumes and snapshots.
    pub logical_bytes: u64,
    /// Plaintext bytes of distinct data chunks.
    pub unique_bytes: u64,
    /// Stored bytes of distinct data chunks (after compression).
    pub compressed_bytes: u64,
    /// Bytes of all packs, metadata included.
    pub stored_bytes: u64,
    /// Number of packs.
    pub packs: u64,
}

/// The index columns `offset, stored_len, raw_len, kind, compression`,
/// read from `row` starting at column `at`, checked into an entry head.
fn head_from_row(id: ObjectId, row: &Row, at: usize) -> Result<EntryHead> {
    let kind = row.int(at + 3)?;
    let compression = row.int(at + 4)?;
    let what = || format!("index entry of object {id}");
    let Some(kind) = u8::try_from(kind).ok().and_then(BlobKind::from_u8) else {
        return Err(Error::corrupt(what(), format!("unknown kind {kind}")));
    };
    let Some(compression) = u8::try_from(compression)
        .ok()
        .and_then(Compression::from_u8)
    else {
        return Err(Error::corrupt(
            what(),
            format!("unknown compression {compression}"),
        ));
    };
    Ok(EntryHead {
        id,
        kind,
        compression,
        offset: row.int(at)? as u64,
        stored_len: row.int(at + 1)? as u32,
        raw_len: row.int(at + 2)? as u32,
    })
}

impl Catalog {
    /// Whether the index knows a blob that a writer may share (one that
    /// `gc` has not condemned).
    pub fn has_blob(&self, id: &ObjectId) -> Result<bool> {
        self.read(|db| {
            db.exists(
                "SELECT 1 FROM blobs WHERE id = ?1 AND condemned = 0",
                args![id],
            )
        })
    }

    /// Where a blob is stored, if the index knows it.
    pub fn locate_blob(&self, id: &ObjectId) -> Result<Option<BlobLocation>> {
        self.read(|db| {
            db.query_opt(
                "SELECT p.name, b.\"offset\", b.stored_len, b.raw_len, b.kind, b.compression \
                 FROM blobs b JOIN packs p ON p.id = b.pack WHERE b.id = ?1",
                args![id],
                |r| {
                    Ok(BlobLocation {
                        pack: r.id(0)?,
                        head: head_from_row(*id, r, 1)?,
                    })
                },
            )
        })
    }

    /// Where a blob is, with every other entry of its kind in its pack
    /// (empty if the index does not know it): a tree node brings the
    /// pack's other tree nodes, not the thousands of chunks beside them.
    pub fn locate_pack_of(&self, id: &ObjectId) -> Result<Vec<BlobLocation>> {
        self.read(|db| {
            db.query_all(
                "SELECT p.name, b.id, b.\"offset\", b.stored_len, b.raw_len, b.kind, b.compression \
                 FROM blobs w JOIN blobs b ON b.pack = w.pack AND b.kind = w.kind \
                 JOIN packs p ON p.id = b.pack WHERE w.id = ?1",
                args![id],
                |r| {
                    Ok(BlobLocation {
                        pack: r.id(0)?,
                        head: head_from_row(r.id(1)?, r, 2)?,
                    })
                },
            )
        })
    }

    /// Where every blob stored as a delta is (`gc` keeps their bases).
    pub fn delta_blobs(&self) -> Result<Vec<BlobLocation>> {
        self.read(|db| {
            db.query_all(
                "SELECT p.name, b.id, b.\"offset\", b.stored_len, b.raw_len, b.kind, b.compression \
                 FROM blobs b JOIN packs p ON p.id = b.pack WHERE b.compression = ?1",
                args![Compression::Delta as i64],
                |r| {
                    Ok(BlobLocation {
                        pack: r.id(0)?,
                        head: head_from_row(r.id(1)?, r, 2)?,
                    })
                },
            )
        })
    }

    /// The index ids of the blobs of the kind of blob `id` in its pack,
    /// with that pack's catalog key (empty if the index does not know
    /// `id`): [`Catalog::locate_pack_of`] without the entries, for callers
    /// that only group blobs by pack.
    pub fn pack_kin(&self, id: &ObjectId) -> Result<Vec<(i64, ObjectId)>> {
        self.read(|db| {
            db.query_all(
                "SELECT b.pack, b.id FROM blobs w \
                 JOIN blobs b ON b.pack = w.pack AND b.kind = w.kind WHERE w.id = ?1",
                args![id],
                |r| Ok((r.int(0)?, r.id(1)?)),
            )
        })
    }

    /// Every pack: (catalog key, name).
    pub fn packs(&self) -> Result<Vec<(i64, ObjectId)>> {
        self.read(|db| {
            db.query_all("SELECT id, name FROM packs ORDER BY id", &[], |r| {
                Ok((r.int(0)?, r.id(1)?))
            })
        })
    }

    /// The index entries of one pack, in pack order.
    pub fn blobs_in_pack(&self, pack: i64) -> Result<Vec<EntryHead>> {
        self.read(|db| {
            db.query_all(
                "SELECT id, \"offset\", stored_len, raw_len, kind, compression FROM blobs \
                 WHERE pack = ?1 ORDER BY \"offset\"",
                args![pack],
                |r| head_from_row(r.id(0)?, r, 1),
            )
        })
    }

    /// Pool-wide totals.
    pub fn totals(&self) -> Result<Totals> {
        self.read(|db| {
            let q = |sql: &str| -> Result<u64> {
                Ok(db.query_one(sql, &[], |r| r.opt_int(0))?.unwrap_or(0) as u64)
            };
            Ok(Totals {
                volumes: q("SELECT count(*) FROM volumes WHERE deleted IS NULL")?,
                snapshots: q("SELECT count(*) FROM snapshots")?,
                logical_bytes: q(
                    "SELECT CAST(coalesce((SELECT sum(bytes) FROM volumes WHERE deleted IS NULL), 0) + \
                                  coalesce((SELECT sum(bytes) FROM snapshots), 0) AS BIGINT)",
                )?,
                unique_bytes: q("SELECT CAST(sum(raw_len) AS BIGINT) FROM blobs WHERE kind = 0")?,
                compressed_bytes: q(
                    "SELECT CAST(sum(stored_len) AS BIGINT) FROM blobs WHERE kind = 0",
                )?,
                stored_bytes: q("SELECT CAST(sum(size) AS BIGINT) FROM packs")?,
                packs: q("SELECT count(*) FROM packs")?,
            })
        })
    }
}

/// Records durable packs and their blobs in the index. A blob already
/// indexed keeps its place, unless `gc` condemned it: then this new copy
/// replaces it (the writer chose to write it because it was condemned).
/// Returns the catalog keys of the packs, in order.
pub fn insert_packs(tx: &dyn Sql, packs: &[SealedPack], session: Option<i64>) -> Result<Vec<i64>> {
    let mut keys = Vec::with_capacity(packs.len());
    for pack in packs {
        tx.execute(
            "INSERT INTO packs (name, size, created, session) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT DO NOTHING",
            args![&pack.name, pack.size as i64, now_ns(), session],
        )?;
        let pack_id = tx.query_one(
            "SELECT id FROM packs WHERE name = ?1",
            args![&pack.name],
            |r| r.int(0),
        )?;
        keys.push(pack_id);
        for e in &pack.entries {
            tx.execute(
                "INSERT INTO blobs (id, pack, \"offset\", stored_len, raw_len, kind, compression) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (id) DO UPDATE SET pack = excluded.pack, \"offset\" = excluded.\"offset\", \
                   stored_len = excluded.stored_len, raw_len = excluded.raw_len, kind = excluded.kind, \
                   compression = excluded.compression, condemned = 0 \
                 WHERE blobs.condemned = 1",
                args![
                    &e.id,
                    pack_id,
                    e.offset as i64,
                    e.stored_len as i64,
                    e.raw_len as i64,
                    e.kind as u8,
                    e.compression as u8,
                ],
            )?;
        }
    }
    Ok(keys)
}
