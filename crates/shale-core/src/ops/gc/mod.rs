//! Garbage collection and space accounting.
//!
//! `gc` frees blobs that no volume, snapshot or in-flight operation can
//! reach, in three steps:
//!
//! 1. **Mark**: read the roots (volumes and snapshots) and walk them,
//!    collecting every reachable blob id.
//! 2. **Condemn** (one transaction): flag every indexed blob that is not
//!    reachable, lives in a pack older than the mark, and was not written by
//!    a session that is still running. From then on writers treat condemned
//!    blobs as absent and write their own copy (which un-condemns the row).
//! 3. **Wait, rescue, sweep**: wait until every session that began before
//!    the condemnation has ended (it may have chosen to share a blob that is
//!    now condemned). Walk whatever roots appeared since the mark; a
//!    condemned blob they reach is rescued. Then, in one transaction, drop
//!    the still-condemned rows, and drop or repack packs that hold no live
//!    blob or are mostly garbage; only after that commit are pack files
//!    deleted.
//!
//! A crash at any point leaves a consistent pool: condemned rows are only
//! flags, and a pack file is deleted only after no row points at it (pack
//! files left behind are removed by the next `gc`).
#![allow(unsafe_code)] // flock(2) on gc.lock: the block says why it is sound

mod mark;
mod space;
mod sweep;

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::coord::session;
use crate::error::{Error, IoContext, Result};
use crate::pool::Pool;

pub use space::Space;

/// A pack whose garbage is at least this fraction of its bytes is repacked.
const REPACK_GARBAGE: f64 = 0.5;
/// Repacked live blobs are gathered into packs of about this size.
const REPACK_TARGET: usize = crate::store::blobs::PACK_TARGET;

/// How to collect.
#[derive(Clone, Debug, Default)]
pub struct GcOptions {
    /// Report what would be freed without changing anything.
    pub dry_run: bool,
    /// Asked whether to stop once marking is done, before anything is
    /// condemned or freed (a collection stopped then has changed nothing).
    pub progress: Option<std::sync::Arc<dyn crate::progress::Progress>>,
}

/// What a collection freed (or, with `dry_run`, would free).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct GcReport {
    /// Blobs reachable from volumes and snapshots.
    pub live_blobs: u64,
    /// Unreachable blobs removed from the index.
    pub freed_blobs: u64,
    /// Packs deleted because nothing in them was live.
    pub deleted_packs: u64,
    /// Packs rewritten because they were mostly garbage.
    pub repacked_packs: u64,
    /// Bytes of pack files deleted.
    pub freed_bytes: u64,
    /// Bytes of new packs written by repacking.
    pub written_bytes: u64,
    /// Pack files and staging files found without a catalog entry, removed.
    pub orphans_removed: u64,
    /// Stale sessions of crashed processes removed.
    pub stale_sessions: u64,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

/// Holds `POOL/gc.lock` exclusively for the life of the value.
struct GcLock(#[allow(dead_code)] File);

impl GcLock {
    fn take(pool: &Pool) -> Result<GcLock> {
        let path = pool.root().join("gc.lock");
        let file = crate::private::open(
            &path,
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true),
        )
        .at(&path)?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(Error::InvalidArgument(format!(
                "another gc is running on this pool (it holds {}); try again when it ends",
                path.display()
            )));
        }
        Ok(GcLock(file))
    }
}

impl Pool {
    /// Frees what nothing can reach; see the module docs. With `dry_run`,
    /// changes nothing and reports what a run would free.
    pub fn gc(&self, opts: &GcOptions) -> Result<GcReport> {
        let _lock = if opts.dry_run {
            None
        } else {
            Some(GcLock::take(self)?)
        };
        let mut report = GcReport {
            dry_run: opts.dry_run,
            ..Default::default()
        };
        if !opts.dry_run {
            report.stale_sessions = session::remove_stale(self.catalog())? as u64;
        }
        let mark = self.mark()?;
        report.live_blobs = mark.marks.blobs.len() as u64;
        crate::progress::check(&opts.progress)?;
        let condemned = self.condemn(&mark, opts.dry_run)?;
        if !opts.dry_run {
            crate::failpoint::fail_point("gc.condemned");
            // sessions that began before may have shared a condemned blob
            if !condemned.waiting_for.is_empty() {
                self.wait_for_sessions(&condemned.waiting_for)?;
            }
        }
        let (doomed, rescued) = self.rescue(mark, condemned)?;
        if opts.dry_run {
            return self.plan_dry_run(report, &doomed);
        }
        report.freed_blobs = self.free(&rescued)?;
        self.sweep(&mut report)?;
        report.orphans_removed = self.remove_orphans()?;
        // Kept file lists name files that may just have been freed.
        crate::ops::files::clear_kept_lists(self.root()).at(self.root())?;
        // The pool's totals after a collection, for the space history; the
        // collection itself has succeeded whether or not this is written.
        if let Err(e) = self.sample_space() {
            tracing::warn!("gc: the space history was not updated: {e}");
        }
        Ok(report)
    }

    fn wait_for_sessions(&self, ids: &HashSet<i64>) -> Result<()> {
        let mut warned = false;
        loop {
            let running: Vec<_> = session::sessions(self.catalog())?
                .into_iter()
                .filter(|s| ids.contains(&s.id) && !crate::coord::session::is_stale(s))
                .collect();
            if running.is_empty() {
                return Ok(());
            }
            if !warned {
                let who: Vec<String> = running
                    .iter()
                    .map(|s| format!("{} (pid {} on {})", s.what, s.pid, s.host))
                    .collect();
                tracing::warn!(
                    "gc: waiting for {} operation(s) in progress to finish: {}",
                    running.len(),
                    who.join(", ")
                );
                warned = true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
