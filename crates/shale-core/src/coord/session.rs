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

use crate::catalog::{self, Catalog, Holder};
use crate::error::Result;

/// A registered writing session; unregistered on drop.
pub struct Session {
    catalog: Arc<Catalog>,
    id: i64,
}

pub use crate::catalog::SessionRow;

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

/// This process, as a holder of sessions and leases on `catalog`.
pub fn this_process(catalog: &Catalog) -> Holder {
    let pid = std::process::id();
    Holder {
        host: host_name(),
        pid,
        proc_start: process_start(pid).unwrap_or(0),
        expires: crate::coord::leases::expiry_from_now(catalog),
    }
}

/// Whether a session's writing process certainly no longer exists (or, on
/// a shared catalog, stopped renewing its session).
pub fn is_stale(s: &SessionRow) -> bool {
    crate::coord::leases::holder_is_gone(&s.host, s.pid, s.proc_start, s.expires)
}

impl Session {
    /// Registers a session of this process.
    pub fn begin(catalog: Arc<Catalog>, what: &str) -> Result<Session> {
        let holder = this_process(&catalog);
        let id = catalog.write_unsynced(|tx| catalog::insert_session(tx, &holder, what))?;
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
        if let Err(e) = self
            .catalog
            .write_unsynced(|tx| catalog::delete_session(tx, id))
        {
            tracing::warn!("could not unregister writing session {id}: {e} (gc will remove it)");
        }
    }
}

/// Every registered session.
pub fn sessions(catalog: &Catalog) -> Result<Vec<SessionRow>> {
    catalog.read(catalog::sessions)
}

/// Removes the sessions whose writers are gone; returns how many.
pub fn remove_stale(catalog: &Catalog) -> Result<usize> {
    let stale: Vec<i64> = sessions(catalog)?
        .into_iter()
        .filter(is_stale)
        .map(|s| s.id)
        .collect();
    if !stale.is_empty() {
        catalog.write(|tx| {
            for id in &stale {
                catalog::delete_session(tx, *id)?;
            }
            Ok(())
        })?;
    }
    Ok(stale.len())
}
