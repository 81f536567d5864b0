//! The pool's totals over time (`space_history`): what the dashboard
//! charts as dedup and compression over time. A sample is taken by
//! `shale serve` at intervals and by `gc`; one that repeats the last
//! sample's figures is not kept.

use serde::{Deserialize, Serialize};

use super::{Row, Sql, Totals};
use crate::args;
use crate::error::Result;

/// The pool's totals at one moment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpaceSample {
    /// When (ns since the epoch).
    pub at: i64,
    /// Volumes.
    pub volumes: u64,
    /// Snapshots.
    pub snapshots: u64,
    /// Bytes of every volume and snapshot as plain copies.
    pub logical_bytes: u64,
    /// Bytes of distinct content.
    pub unique_bytes: u64,
    /// Those bytes compressed.
    pub compressed_bytes: u64,
    /// Bytes in packs.
    pub stored_bytes: u64,
}

impl SpaceSample {
    /// The sample of `t` taken at `at`.
    pub fn of(at: i64, t: &Totals) -> SpaceSample {
        SpaceSample {
            at,
            volumes: t.volumes,
            snapshots: t.snapshots,
            logical_bytes: t.logical_bytes,
            unique_bytes: t.unique_bytes,
            compressed_bytes: t.compressed_bytes,
            stored_bytes: t.stored_bytes,
        }
    }

    /// Whether the figures (not the time) are those of `other`.
    fn same_figures(&self, other: &SpaceSample) -> bool {
        SpaceSample { at: 0, ..*other } == SpaceSample { at: 0, ..*self }
    }
}

const COLS: &str = "at, volumes, snapshots, logical_bytes, unique_bytes, compressed_bytes, \
                    stored_bytes FROM space_history";

fn from_row(r: &Row) -> Result<SpaceSample> {
    let n = |i| r.int(i).map(|v| v.max(0) as u64);
    Ok(SpaceSample {
        at: r.int(0)?,
        volumes: n(1)?,
        snapshots: n(2)?,
        logical_bytes: n(3)?,
        unique_bytes: n(4)?,
        compressed_bytes: n(5)?,
        stored_bytes: n(6)?,
    })
}

/// How long samples are kept (400 days).
const KEPT_NS: i64 = 400 * 86_400 * 1_000_000_000;

/// Records `s` unless the last sample has the same figures (or is not
/// older); drops samples past their keeping. Whether it was recorded.
pub fn record_space(tx: &dyn Sql, s: &SpaceSample) -> Result<bool> {
    let last = tx.query_opt(
        &format!("SELECT {COLS} ORDER BY at DESC LIMIT 1"),
        &[],
        from_row,
    )?;
    if last.is_some_and(|l| l.same_figures(s) || l.at >= s.at) {
        return Ok(false);
    }
    let big = |v: u64| v.min(i64::MAX as u64) as i64;
    tx.execute(
        "INSERT INTO space_history (at, volumes, snapshots, logical_bytes, unique_bytes, \
         compressed_bytes, stored_bytes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        args![
            s.at,
            big(s.volumes),
            big(s.snapshots),
            big(s.logical_bytes),
            big(s.unique_bytes),
            big(s.compressed_bytes),
            big(s.stored_bytes)
        ],
    )?;
    tx.execute(
        "DELETE FROM space_history WHERE at < ?1",
        args![s.at - KEPT_NS],
    )?;
    Ok(true)
}

/// The last `limit` samples, oldest first.
pub fn space_history(db: &dyn Sql, limit: i64) -> Result<Vec<SpaceSample>> {
    let mut rows = db.query_all(
        &format!("SELECT {COLS} ORDER BY at DESC LIMIT ?1"),
        args![limit],
        from_row,
    )?;
    rows.reverse();
    Ok(rows)
}
