//! Who holds what: writing sessions (which `gc` waits for) and writer
//! leases on live volumes, each naming its process (host, pid, the
//! process's start time) and, on a shared catalog, when it lapses.

use super::{now_ns, Sql};
use crate::args;
use crate::error::Result;

/// A process holding a session or a lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// The process's start time (clock ticks since boot), 0 if unknown.
    pub proc_start: u64,
    /// When it lapses unless renewed, ns since the epoch (0: never).
    pub expires: i64,
}

/// A session as recorded in the catalog.
#[derive(Clone, Debug)]
pub struct SessionRow {
    /// Catalog key.
    pub id: i64,
    /// Host name of the writer.
    pub host: String,
    /// Process id of the writer.
    pub pid: u32,
    /// The writer's process start time (clock ticks since boot), 0 if unknown.
    pub proc_start: u64,
    /// When the session began, ns since the epoch.
    pub started: i64,
    /// What it is doing.
    pub what: String,
    /// When it lapses unless renewed, ns since the epoch (0: never).
    pub expires: i64,
}

/// A writer lease as recorded in the catalog.
#[derive(Clone, Debug)]
pub struct LeaseRow {
    /// What holds it (a mount, described for messages).
    pub what: String,
    /// Its process.
    pub holder: Holder,
    /// When it was taken, ns since the epoch.
    pub taken: i64,
}

/// Registers a session of `holder` doing `what`; returns its key.
pub fn insert_session(tx: &dyn Sql, holder: &Holder, what: &str) -> Result<i64> {
    tx.query_one(
        "INSERT INTO sessions (host, pid, proc_start, started, what, expires) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
        args![
            &holder.host,
            holder.pid,
            holder.proc_start as i64,
            now_ns(),
            what,
            holder.expires
        ],
        |r| r.int(0),
    )
}

/// Removes session `id`.
pub fn delete_session(tx: &dyn Sql, id: i64) -> Result<()> {
    tx.execute("DELETE FROM sessions WHERE id = ?1", args![id])?;
    Ok(())
}

/// Every registered session, oldest first.
pub fn sessions(db: &dyn Sql) -> Result<Vec<SessionRow>> {
    db.query_all(
        "SELECT id, host, pid, proc_start, started, what, expires FROM sessions ORDER BY id",
        &[],
        |r| {
            Ok(SessionRow {
                id: r.int(0)?,
                host: r.text(1)?,
                pid: r.int(2)? as u32,
                proc_start: r.int(3)? as u64,
                started: r.int(4)?,
                what: r.text(5)?,
                expires: r.int(6)?,
            })
        },
    )
}

/// The lease of volume `volume` (catalog key), if one is recorded.
pub fn lease_of(db: &dyn Sql, volume: i64) -> Result<Option<LeaseRow>> {
    db.query_opt(
        "SELECT holder, host, pid, proc_start, taken, expires FROM leases WHERE volume = ?1",
        args![volume],
        |r| {
            Ok(LeaseRow {
                what: r.text(0)?,
                holder: Holder {
                    host: r.text(1)?,
                    pid: r.int(2)? as u32,
                    proc_start: r.int(3)? as u64,
                    expires: r.int(5)?,
                },
                taken: r.int(4)?,
            })
        },
    )
}

/// Records `holder` as the writer of volume `volume`, described as `what`.
pub fn put_lease(tx: &dyn Sql, volume: i64, what: &str, holder: &Holder) -> Result<()> {
    tx.execute(
        "INSERT INTO leases (volume, holder, host, pid, proc_start, taken, expires) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT (volume) DO UPDATE SET holder = ?2, host = ?3, pid = ?4, \
           proc_start = ?5, taken = ?6, expires = ?7",
        args![
            volume,
            what,
            &holder.host,
            holder.pid,
            holder.proc_start as i64,
            now_ns(),
            holder.expires
        ],
    )?;
    Ok(())
}

/// Releases the lease of volume `volume` if process `pid` of `host` holds it.
pub fn delete_lease(tx: &dyn Sql, volume: i64, host: &str, pid: u32) -> Result<()> {
    tx.execute(
        "DELETE FROM leases WHERE volume = ?1 AND host = ?2 AND pid = ?3",
        args![volume, host, pid],
    )?;
    Ok(())
}

/// Pushes the expiry of every lease and session of process `pid` of `host`
/// to `expires`.
pub fn renew(tx: &dyn Sql, host: &str, pid: u32, expires: i64) -> Result<()> {
    for table in ["leases", "sessions"] {
        tx.execute(
            &format!("UPDATE {table} SET expires = ?1 WHERE host = ?2 AND pid = ?3"),
            args![expires, host, pid],
        )?;
    }
    Ok(())
}
