//! What `gc` asks of and changes in the index: which blobs may be
//! condemned, condemning and rescuing them, dropping what stays condemned,
//! and the packs it empties or rewrites.

use std::collections::HashSet;

use super::Sql;
use crate::args;
use crate::error::Result;
use crate::id::ObjectId;
use crate::store::pack::{EntryHead, ENTRY_HEAD_LEN};

/// How full a pack is: its catalog key, name, size, and the stored bytes
/// of its live (not condemned) blobs, entry heads included.
#[derive(Clone, Copy, Debug)]
pub struct PackUsage {
    /// Catalog key.
    pub key: i64,
    /// Pack name.
    pub name: ObjectId,
    /// Size in bytes.
    pub size: u64,
    /// Stored bytes of live blobs, with their entry heads.
    pub live: u64,
}

/// The catalog keys of every registered writing session.
pub fn session_ids(db: &dyn Sql) -> Result<HashSet<i64>> {
    Ok(db
        .query_all("SELECT id FROM sessions", &[], |r| r.int(0))?
        .into_iter()
        .collect())
}

/// Calls `f` with each uncondemned blob in a pack indexed before `before`
/// (ns since the epoch) and the session that wrote that pack, if any.
pub fn blobs_written_before(
    db: &dyn Sql,
    before: i64,
    f: &mut dyn FnMut(ObjectId, Option<i64>),
) -> Result<()> {
    db.query_each(
        "SELECT b.id, p.session FROM blobs b JOIN packs p ON p.id = b.pack \
         WHERE b.condemned = 0 AND p.created < ?1",
        args![before],
        &mut |r| {
            f(r.id(0)?, r.opt_int(1)?);
            Ok(())
        },
    )
}

/// Sets (`condemned`) or clears the condemned flag of each blob of `ids`.
pub fn set_condemned<'a>(
    tx: &dyn Sql,
    ids: impl IntoIterator<Item = &'a ObjectId>,
    condemned: bool,
) -> Result<()> {
    for id in ids {
        tx.execute(
            "UPDATE blobs SET condemned = ?1 WHERE id = ?2",
            args![condemned, id],
        )?;
    }
    Ok(())
}

/// Drops the index rows of every condemned blob; returns how many.
pub fn drop_condemned(tx: &dyn Sql) -> Result<u64> {
    tx.execute("DELETE FROM blobs WHERE condemned = 1", &[])
}

/// How full each pack is.
pub fn pack_usage(db: &dyn Sql) -> Result<Vec<PackUsage>> {
    db.query_all(
        &format!(
            "SELECT p.id, p.name, p.size, \
             CAST(coalesce((SELECT sum(stored_len + {ENTRY_HEAD_LEN}) FROM blobs b \
                            WHERE b.pack = p.id AND b.condemned = 0), 0) AS BIGINT) \
             FROM packs p"
        ),
        &[],
        |r| {
            Ok(PackUsage {
                key: r.int(0)?,
                name: r.id(1)?,
                size: r.int(2)? as u64,
                live: r.int(3)? as u64,
            })
        },
    )
}

/// Calls `f` with each indexed blob, its pack's key and its stored length.
pub fn each_blob(db: &dyn Sql, f: &mut dyn FnMut(ObjectId, i64, u64)) -> Result<()> {
    db.query_each("SELECT id, pack, stored_len FROM blobs", &[], &mut |r| {
        f(r.id(0)?, r.int(1)?, r.int(2)? as u64);
        Ok(())
    })
}

/// Removes pack `pack`'s row if no blob row points at it any more; whether
/// it did. (Its file is deleted by the caller, after the transaction.)
pub fn drop_pack_if_unused(tx: &dyn Sql, pack: i64) -> Result<bool> {
    let used = tx.exists("SELECT 1 FROM blobs WHERE pack = ?1", args![pack])?;
    if !used {
        tx.execute("DELETE FROM packs WHERE id = ?1", args![pack])?;
    }
    Ok(!used)
}

/// Points blob `entry.id`, if still in pack `old_pack`, at its copy in pack
/// `new_pack` at `entry.offset`.
pub fn move_blob(tx: &dyn Sql, entry: &EntryHead, new_pack: i64, old_pack: i64) -> Result<()> {
    tx.execute(
        "UPDATE blobs SET pack = ?1, \"offset\" = ?2 WHERE id = ?3 AND pack = ?4",
        args![new_pack, entry.offset as i64, &entry.id, old_pack],
    )?;
    Ok(())
}
