//! Snapshot policies: how many hourly, daily and weekly snapshots each
//! volume keeps (`shale snapshot policy`).

use serde::{Deserialize, Serialize};

use super::{now_ns, Row, Sql};
use crate::args;
use crate::error::Result;

/// One volume's snapshot policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SnapshotPolicy {
    /// The volume.
    pub volume: String,
    /// Hourly snapshots kept (0: none taken).
    pub hourly: u32,
    /// Daily snapshots kept.
    pub daily: u32,
    /// Weekly snapshots kept.
    pub weekly: u32,
    /// When it was last set (ns since the epoch).
    pub updated: i64,
}

const COLS: &str = "volume, hourly, daily, weekly, updated FROM snapshot_policies";

fn from_row(r: &Row) -> Result<SnapshotPolicy> {
    Ok(SnapshotPolicy {
        volume: r.text(0)?,
        hourly: r.int(1)? as u32,
        daily: r.int(2)? as u32,
        weekly: r.int(3)? as u32,
        updated: r.int(4)?,
    })
}

/// Every policy, by volume.
pub fn policies(db: &dyn Sql) -> Result<Vec<SnapshotPolicy>> {
    db.query_all(&format!("SELECT {COLS} ORDER BY volume"), &[], from_row)
}

/// Sets the policy of `volume` (replacing any).
pub fn set_policy(tx: &dyn Sql, volume: &str, hourly: u32, daily: u32, weekly: u32) -> Result<()> {
    tx.execute(
        "INSERT INTO snapshot_policies (volume, hourly, daily, weekly, updated) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (volume) DO UPDATE SET \
         hourly = excluded.hourly, daily = excluded.daily, weekly = excluded.weekly, \
         updated = excluded.updated",
        args![volume, hourly as i64, daily as i64, weekly as i64, now_ns()],
    )?;
    Ok(())
}

/// Removes the policy of `volume`; whether there was one.
pub fn delete_policy(tx: &dyn Sql, volume: &str) -> Result<bool> {
    Ok(tx.execute(
        "DELETE FROM snapshot_policies WHERE volume = ?1",
        args![volume],
    )? > 0)
}
