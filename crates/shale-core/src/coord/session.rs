//! Writing sessions: each operation that writes blobs registers itself in
//! the catalog for as long as it may still commit, so that `gc` never frees
//! what it wrote or what it decided to share instead of writing.
//!
//! A session row records the process (host, pid and the process's start
//! time, so a reused pid is not mistaken for the writer). A session whose
//! process is gone from this host is stale: `gc` removes it. On a shared
//! catalog a session also expires unless its process renews it
//! (`leases.rs`), so that a machine that died does not hold `gc` up.

use std::sync::Arc;

use crate::args;
use crate::catalog::{now_ns, Catalog};
use crate::error::Result;

/// A registered writing session; unregistered on drop.
pub struct Session {
    catalog: Arc<Catalog>,
    id: i64,
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

/// This machine's host name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// Start time of a process in clock ticks since boot (field 22 of
/// `/proc/PID/stat`), if it exists.
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

impl SessionRow {
    /// Whether the writing process certainly no longer exists (or, on a
    /// shared catalog, stopped renewing its session).
    pub fn is_stale(&self) -> bool {
        crate::coord::leases::holder_is_gone(&self.host, self.pid, self.proc_start, self.expires)
    }
}

impl Session {
    /// Registers a session of this process.
    pub fn begin(catalog: Arc<Catalog>, what: &str) -> Result<Session> {
        let pid = std::process::id();
        let expires = crate::coord::leases::expiry_from_now(&catalog);
        let id = catalog.write_unsynced(|tx| {
            tx.query_one(
                "INSERT INTO sessions (host, pid, proc_start, started, what, expires) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
                args![
                    host_name(),
                    pid,
                    process_start(pid).unwrap_or(0) as i64,
                    now_ns(),
                    what,
                    expires
                ],
                |r| r.int(0),
            )
        })?;
        Ok(Session { catalog, id })
    }

    /// Catalog key of this session.
    pub fn id(&self) -> i64 {
        self.id
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let id = self.id;
        if let Err(e) = self.catalog.write_unsynced(|tx| {
            tx.execute("DELETE FROM sessions WHERE id = ?1", args![id])?;
            Ok(())
        }) {
            tracing::warn!("could not unregister writing session {id}: {e} (gc will remove it)");
        }
    }
}

/// Every registered session.
pub fn sessions(catalog: &Catalog) -> Result<Vec<SessionRow>> {
    catalog.read(|db| {
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
    })
}

/// Removes the sessions whose writers are gone; returns how many.
pub fn remove_stale(catalog: &Catalog) -> Result<usize> {
    let stale: Vec<i64> = sessions(catalog)?
        .into_iter()
        .filter(SessionRow::is_stale)
        .map(|s| s.id)
        .collect();
    if !stale.is_empty() {
        catalog.write(|tx| {
            for id in &stale {
                tx.execute("DELETE FROM sessions WHERE id = ?1", args![*id])?;
            }
            Ok(())
        })?;
    }
    Ok(stale.len())
}
