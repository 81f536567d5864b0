//! Mirror relationships, kept on the destination pool: which volume
//! mirrors what, and what the last transfer did.

use serde::{Deserialize, Serialize};

use super::{now_ns, Row, SnapshotRow, Sql, Value};
use crate::args;
use crate::error::{Error, Result};
use crate::id::ObjectId;

/// Which source snapshots an update sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Every snapshot newer than the last one both sides share.
    All,
    /// Only the newest.
    Latest,
}

impl Policy {
    /// `all` or `latest`.
    pub fn parse(s: &str) -> Result<Policy> {
        match s {
            "all" => Ok(Policy::All),
            "latest" => Ok(Policy::Latest),
            _ => Err(Error::InvalidArgument(format!(
                "mirror policy {s:?}: use all or latest"
            ))),
        }
    }

    /// Its name in the catalog and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Policy::All => "all",
            Policy::Latest => "latest",
        }
    }
}

/// A mirror relationship, as recorded on the destination.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MirrorRow {
    /// The destination volume (in this pool).
    pub volume: String,
    /// The source pool, as given (a path or URL).
    pub source_pool: String,
    /// The source volume.
    pub source_volume: String,
    /// Which snapshots an update sends.
    pub policy: Policy,
    /// `mirrored` (read-only, updated) or `broken` (writable).
    pub state: String,
    /// The newest snapshot transferred.
    pub last_snapshot: Option<String>,
    /// Its id.
    pub last_id: Option<String>,
    /// When the source took it (ns since the epoch): the lag is measured from it.
    pub last_source_created: Option<i64>,
    /// When the last update finished (ns since the epoch).
    pub last_update: Option<i64>,
    /// Bytes the last update sent (as stored).
    pub last_bytes: Option<u64>,
    /// Objects the last update sent.
    pub last_objects: Option<u64>,
    /// Seconds the last update took.
    pub last_seconds: Option<f64>,
}

const MIRROR_COLS: &str = "volume, source_pool, source_volume, policy, state, last_snapshot, \
     last_id, last_source_created, last_update, last_bytes, last_objects, last_seconds_ms FROM mirrors";

fn mirror_from_row(r: &Row) -> Result<MirrorRow> {
    Ok(MirrorRow {
        volume: r.text(0)?,
        source_pool: r.text(1)?,
        source_volume: r.text(2)?,
        policy: Policy::parse(&r.text(3)?)?,
        state: r.text(4)?,
        last_snapshot: r.opt_text(5)?,
        last_id: match r.0.get(6) {
            Some(Value::Blob(b)) => ObjectId::from_slice(b).map(|i| i.to_hex()),
            _ => None,
        },
        last_source_created: r.opt_int(7)?,
        last_update: r.opt_int(8)?,
        last_bytes: r.opt_int(9)?.map(|v| v as u64),
        last_objects: r.opt_int(10)?.map(|v| v as u64),
        last_seconds: r.opt_int(11)?.map(|ms| ms as f64 / 1000.0),
    })
}

/// The relationship of destination volume `volume`, if it is a mirror.
pub fn mirror_of(db: &dyn Sql, volume: &str) -> Result<Option<MirrorRow>> {
    db.query_opt(
        &format!("SELECT {MIRROR_COLS} WHERE volume = ?1"),
        args![volume],
        mirror_from_row,
    )
}

/// Every mirror relationship, by destination volume.
pub fn mirrors(db: &dyn Sql) -> Result<Vec<MirrorRow>> {
    db.query_all(
        &format!("SELECT {MIRROR_COLS} ORDER BY volume"),
        &[],
        mirror_from_row,
    )
}

/// Records that `volume` mirrors `source_volume` of the pool `source_pool`.
pub fn insert_mirror(
    tx: &dyn Sql,
    volume: &str,
    source_pool: &str,
    source_volume: &str,
    policy: Policy,
) -> Result<()> {
    tx.execute(
        "INSERT INTO mirrors (volume, source_pool, source_volume, policy, state) \
         VALUES (?1, ?2, ?3, ?4, 'mirrored')",
        args![volume, source_pool, source_volume, policy.name()],
    )?;
    Ok(())
}

/// Ends the relationship of `volume`.
pub fn delete_mirror(tx: &dyn Sql, volume: &str) -> Result<()> {
    tx.execute("DELETE FROM mirrors WHERE volume = ?1", args![volume])?;
    Ok(())
}

/// Sets the state (`mirrored` or `broken`) of the relationship of `volume`.
pub fn set_mirror_state(tx: &dyn Sql, volume: &str, state: &str) -> Result<()> {
    tx.execute(
        "UPDATE mirrors SET state = ?2 WHERE volume = ?1",
        args![volume, state],
    )?;
    Ok(())
}

/// What one transfer of an update sent.
#[derive(Clone, Copy, Debug)]
pub struct Transfer {
    /// Bytes sent, as stored.
    pub bytes: i64,
    /// Objects sent.
    pub objects: i64,
    /// Milliseconds it took.
    pub seconds_ms: i64,
}

/// Records an update of `volume`: the snapshot it brought (if any) and
/// what it sent.
pub fn record_transfer(
    tx: &dyn Sql,
    volume: &str,
    snapshot: Option<&SnapshotRow>,
    sent: &Transfer,
) -> Result<()> {
    match snapshot {
        Some(snap) => tx.execute(
            "UPDATE mirrors SET last_snapshot = ?2, last_id = ?3, last_source_created = ?4, \
             last_update = ?5, last_bytes = ?6, last_objects = ?7, last_seconds_ms = ?8 \
             WHERE volume = ?1",
            args![
                volume,
                &snap.name,
                &snap.root,
                snap.created,
                now_ns(),
                sent.bytes,
                sent.objects,
                sent.seconds_ms
            ],
        )?,
        None => tx.execute(
            "UPDATE mirrors SET last_update = ?2, last_bytes = ?3, last_objects = ?4, \
             last_seconds_ms = ?5 WHERE volume = ?1",
            args![volume, now_ns(), sent.bytes, sent.objects, sent.seconds_ms],
        )?,
    };
    Ok(())
}
