//! Writer leases: at most one mount, on any machine, writes a live volume.
//!
//! A lease is a row of the catalog's `leases` table naming its holder
//! (what, host, process). On a shared catalog (PostgreSQL) it carries an
//! expiry time that the holding process renews ([`start_heartbeat`]); a
//! machine that dies stops renewing and its leases lapse after
//! [`Catalog::lease`]. On this machine a holder whose process is gone is
//! stale at once, as for writing sessions (`session.rs`).

use std::sync::{Arc, Weak};

use crate::catalog::{self, now_ns, volume_by_name, Catalog};
use crate::coord::session::{host_name, process_start, this_process};
use crate::error::Result;

/// When a lease or session taken now expires: `0` (never: liveness is
/// checked by process) for a catalog on one machine.
pub fn expiry_from_now(catalog: &Catalog) -> i64 {
    if catalog.is_shared() {
        now_ns() + catalog.lease().as_nanos() as i64
    } else {
        0
    }
}

/// Whether a holder recorded as (`host`, `pid`, `proc_start`, `expires`)
/// is certainly gone.
pub fn holder_is_gone(host: &str, pid: u32, proc_start: u64, expires: i64) -> bool {
    (expires != 0 && expires < now_ns())
        || (host == host_name() && process_start(pid) != Some(proc_start))
}

/// The right to write one volume; released when dropped.
pub struct Lease {
    catalog: Arc<Catalog>,
    volume: i64,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Lease(volume {})", self.volume)
    }
}

/// Takes the writer lease of `volume` for this process, described to
/// others as `holder`; or, if another live process holds it, describes
/// that one (`Ok(Err(…))`).
pub fn take(
    catalog: &Arc<Catalog>,
    volume: &str,
    holder: &str,
) -> Result<std::result::Result<Lease, String>> {
    let me = this_process(catalog);
    let taken = catalog.write(|tx| {
        let v = volume_by_name(tx, volume)?;
        if let Some(current) = catalog::lease_of(tx, v.id)? {
            let h = &current.holder;
            let mine = h.host == me.host && h.pid == me.pid;
            if !mine && !holder_is_gone(&h.host, h.pid, h.proc_start, h.expires) {
                let since = crate::ops::volumes::rfc3339(current.taken);
                return Ok(Err(format!(
                    "{} (pid {} on {}, since {since})",
                    current.what, h.pid, h.host
                )));
            }
        }
        catalog::put_lease(tx, v.id, holder, &me)?;
        Ok(Ok(v.id))
    })?;
    Ok(taken.map(|volume| Lease {
        catalog: catalog.clone(),
        volume,
    }))
}

impl Drop for Lease {
    fn drop(&mut self) {
        let (host, pid) = (host_name(), std::process::id());
        let volume = self.volume;
        if let Err(e) = self
            .catalog
            .write(|tx| catalog::delete_lease(tx, volume, &host, pid))
        {
            tracing::warn!(
                "could not release the writer lease of volume {volume}: {e} (it lapses)"
            );
        }
    }
}

/// Pushes back the expiry of every lease and session this process holds.
pub fn renew(catalog: &Catalog) -> Result<()> {
    let (host, pid) = (host_name(), std::process::id());
    let expires = expiry_from_now(catalog);
    catalog.write(|tx| catalog::renew(tx, &host, pid, expires))
}

/// Starts a thread that renews this process's leases and sessions on a
/// shared catalog (nothing for a catalog on one machine); it ends once the
/// catalog is dropped.
pub fn start_heartbeat(catalog: &Arc<Catalog>) {
    if !catalog.is_shared() {
        return;
    }
    let weak: Weak<Catalog> = Arc::downgrade(catalog);
    let every = catalog.lease() / 3;
    let _ = std::thread::Builder::new()
        .name("shale-heartbeat".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            let Some(catalog) = weak.upgrade() else {
                return;
            };
            if let Err(e) = renew(&catalog) {
                tracing::warn!("could not renew this process's leases: {e}");
            }
        });
}
