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
#![allow(unsafe_code)] // libc calls: each block says why it is sound

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::time::Duration;

use serde::Serialize;

use crate::args;
use crate::catalog::{now_ns, SealedPack, Sql};
use crate::coord::session::{self, host_name};
use crate::error::{Error, IoContext, Result};
use crate::id::ObjectId;
use crate::pool::Pool;
use crate::store::pack::{self, EntryHead};
use crate::tree::{load_node, Content, Node};

/// A pack whose garbage is at least this fraction of its bytes is repacked.
const REPACK_GARBAGE: f64 = 0.5;
/// Repacked live blobs are gathered into packs of about this size.
const REPACK_TARGET: usize = crate::store::blobs::PACK_TARGET;

/// How to collect.
#[derive(Clone, Debug, Default)]
pub struct GcOptions {
    /// Report what would be freed without changing anything.
    pub dry_run: bool,
}

/// What a collection freed (or, with `dry_run`, would free).
#[derive(Clone, Debug, Default, Serialize)]
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

/// Space figures for `pool info`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Space {
    /// Bytes of pack files.
    pub stored_bytes: u64,
    /// Bytes a `gc` run now would free (net of what it rewrites).
    pub reclaimable_bytes: u64,
    /// Bytes in packs that nothing reaches, including garbage in packs too
    /// live to be worth repacking yet.
    pub unused_bytes: u64,
}

/// Blob ids reachable from a set of roots, with the tree nodes walked.
#[derive(Default)]
struct Marks {
    nodes: HashSet<ObjectId>,
    blobs: HashSet<ObjectId>,
}

impl Marks {
    /// Adds everything reachable from directory node `id`.
    fn walk(&mut self, pool: &Pool, id: &ObjectId) -> Result<()> {
        let mut stack = vec![*id];
        while let Some(id) = stack.pop() {
            if !self.nodes.insert(id) {
                continue;
            }
            self.blobs.insert(id);
            match load_node(&pool.store, &id)? {
                Node::Interior(children) => stack.extend(children.iter().map(|c| c.node)),
                Node::Leaf(entries) => {
                    for e in entries {
                        match e.content {
                            Content::File { chunks, .. } => {
                                self.blobs.extend(chunks.iter().map(|c| c.id));
                            }
                            Content::Dir(d) => stack.push(d.tree),
                            Content::Symlink(_) | Content::Special(_) => {}
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Holds `POOL/gc.lock` exclusively for the life of the value.
struct GcLock(#[allow(dead_code)] File);

impl GcLock {
    fn take(pool: &Pool) -> Result<GcLock> {
        let path = pool.root().join("gc.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
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

fn roots(pool: &Pool) -> Result<HashSet<ObjectId>> {
    let mut out: HashSet<ObjectId> = pool
        .catalog()
        .volumes()?
        .into_iter()
        .map(|v| v.root)
        .collect();
    out.extend(pool.catalog().snapshots(None)?.into_iter().map(|s| s.root));
    Ok(out)
}

/// Removes a pack's row if no blob row points at it any more; whether it did.
/// (Its file is deleted by the caller, after the transaction commits.)
fn drop_pack_if_unused(tx: &dyn Sql, pack: i64) -> Result<bool> {
    let used = tx.exists("SELECT 1 FROM blobs WHERE pack = ?1", args![pack])?;
    if !used {
        tx.execute("DELETE FROM packs WHERE id = ?1", args![pack])?;
    }
    Ok(!used)
}

/// Per pack: (catalog key, name, size, live stored bytes incl. heads).
fn pack_usage(pool: &Pool) -> Result<Vec<(i64, ObjectId, u64, u64)>> {
    pool.catalog().read(|db| {
        db.query_all(
            "SELECT p.id, p.name, p.size, \
             CAST(coalesce((SELECT sum(stored_len + 44) FROM blobs b \
                            WHERE b.pack = p.id AND b.condemned = 0), 0) AS BIGINT) \
             FROM packs p",
            &[],
            |r| Ok((r.int(0)?, r.id(1)?, r.int(2)? as u64, r.int(3)? as u64)),
        )
    })
}

impl Pool {
    /// Stored, reclaimable and unused bytes (walks every tree: O(metadata)).
    pub fn space(&self) -> Result<Space> {
        let plan = self.gc(&GcOptions { dry_run: true })?;
        let mut marks = Marks::default();
        for root in roots(self)? {
            marks.walk(self, &root)?;
        }
        let mut live_by_pack: HashMap<i64, u64> = HashMap::new();
        self.catalog().read(|db| {
            live_by_pack.clear();
            db.query_each("SELECT id, pack, stored_len FROM blobs", &[], &mut |r| {
                if marks.blobs.contains(&r.id(0)?) {
                    *live_by_pack.entry(r.int(1)?).or_default() +=
                        r.int(2)? as u64 + pack::ENTRY_HEAD_LEN as u64;
                }
                Ok(())
            })
        })?;
        let mut space = Space {
            reclaimable_bytes: plan.freed_bytes.saturating_sub(plan.written_bytes),
            ..Default::default()
        };
        for (id, _, size, _) in pack_usage(self)? {
            space.stored_bytes += size;
            let live = live_by_pack.get(&id).copied().unwrap_or(0) + pack::HEADER_LEN as u64;
            space.unused_bytes += size.saturating_sub(live);
        }
        Ok(space)
    }

    /// Stored bytes that deleting a volume (with its snapshots) or one
    /// snapshot would free: bytes of blobs that it reaches and no other
    /// volume or snapshot does (`used` beside ZFS's `referenced`).
    pub fn exclusive_bytes(&self, volume: &str, snapshot: Option<&str>) -> Result<u64> {
        let volumes = self.catalog().volumes()?;
        let snapshots = self.catalog().snapshots(None)?;
        let mut mine = Marks::default();
        let mut others = Marks::default();
        let mut found = false;
        for v in &volumes {
            if v.name == volume && snapshot.is_none() {
                mine.walk(self, &v.root)?;
                found = true;
            } else {
                others.walk(self, &v.root)?;
            }
        }
        for s in &snapshots {
            let removed = s.volume == volume && snapshot.is_none_or(|n| n == s.name);
            if removed {
                mine.walk(self, &s.root)?;
                found |= snapshot.is_some();
            } else {
                others.walk(self, &s.root)?;
            }
        }
        if !found {
            return Err(match snapshot {
                None => Error::VolumeNotFound(volume.to_string()),
                Some(n) => Error::SnapshotNotFound {
                    volume: volume.to_string(),
                    name: n.to_string(),
                },
            });
        }
        let mut sum = 0;
        for id in mine.blobs.difference(&others.blobs) {
            if let Some(loc) = self.catalog().locate_blob(id)? {
                sum += loc.head.stored_len as u64 + pack::ENTRY_HEAD_LEN as u64;
            }
        }
        Ok(sum)
    }

    /// Frees what nothing can reach; see the module docs.
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

        // 1. mark
        let t_mark = now_ns();
        let first_roots = roots(self)?;
        let mut marks = Marks::default();
        for root in &first_roots {
            marks.walk(self, root).map_err(|e| {
                Error::InvalidArgument(format!(
                    "gc stopped, nothing was freed: it cannot read every tree ({e}); run `shale verify`"
                ))
            })?;
        }

        // 2. condemn
        let (condemned, waiting_for) = self.catalog().write(|tx| {
            let active: HashSet<i64> = tx
                .query_all("SELECT id FROM sessions", &[], |r| r.int(0))?
                .into_iter()
                .collect();
            let mut candidates = Vec::new();
            tx.query_each(
                "SELECT b.id, p.session FROM blobs b JOIN packs p ON p.id = b.pack \
                 WHERE b.condemned = 0 AND p.created < ?1",
                args![t_mark],
                &mut |r| {
                    let id = r.id(0)?;
                    let session = r.opt_int(1)?;
                    if !marks.blobs.contains(&id) && !session.is_some_and(|s| active.contains(&s)) {
                        candidates.push(id);
                    }
                    Ok(())
                },
            )?;
            if !opts.dry_run {
                for id in &candidates {
                    tx.execute("UPDATE blobs SET condemned = 1 WHERE id = ?1", args![id])?;
                }
            }
            Ok((candidates, active))
        })?;
        report.live_blobs = marks.blobs.len() as u64;
        if !opts.dry_run {
            crate::failpoint::fail_point("gc.condemned");
        }

        // 3. wait for sessions that may have shared a condemned blob
        if !opts.dry_run && !waiting_for.is_empty() {
            self.wait_for_sessions(&waiting_for)?;
        }

        // rescue: walk roots that appeared since the mark
        let mut rescued = Marks {
            nodes: marks.nodes,
            blobs: HashSet::new(),
        };
        for root in roots(self)? {
            if !first_roots.contains(&root) {
                rescued.walk(self, &root)?;
            }
        }
        let condemned: HashSet<ObjectId> = condemned
            .into_iter()
            .filter(|id| !rescued.blobs.contains(id))
            .collect();
        if opts.dry_run {
            return self.plan_dry_run(report, &condemned);
        }
        report.freed_blobs = self.catalog().write(|tx| {
            for id in &rescued.blobs {
                tx.execute("UPDATE blobs SET condemned = 0 WHERE id = ?1", args![id])?;
            }
            tx.execute("DELETE FROM blobs WHERE condemned = 1", &[])
        })?;

        // sweep packs: delete empty ones, repack mostly-garbage ones
        let usage = pack_usage(self)?;
        let mut empty = Vec::new();
        let mut repack = Vec::new();
        for (id, name, size, live) in usage {
            if live == 0 {
                empty.push((id, name, size));
            } else {
                let garbage = size.saturating_sub(live + pack::HEADER_LEN as u64);
                if garbage as f64 >= REPACK_GARBAGE * size as f64 {
                    repack.push((id, name, size));
                }
            }
        }
        let moved = self.repack(&repack, &mut report)?;
        if !moved.is_empty() {
            crate::failpoint::fail_point("gc.repacked");
        }
        // (the closure may run again on a new connection: it starts afresh)
        let (doomed, deleted, repacked) = self.catalog().write(|tx| {
            let mut doomed: Vec<(ObjectId, u64)> = Vec::new();
            let (mut deleted, mut repacked) = (0, 0);
            for (id, name, size) in &empty {
                if drop_pack_if_unused(tx, *id)? {
                    doomed.push((*name, *size));
                    deleted += 1;
                }
            }
            for (new_pack, entries, old) in &moved {
                let keys = crate::catalog::insert_packs(tx, std::slice::from_ref(new_pack), None)?;
                for (e, old_pack) in entries {
                    tx.execute(
                        "UPDATE blobs SET pack = ?1, \"offset\" = ?2 WHERE id = ?3 AND pack = ?4",
                        args![keys[0], e.offset as i64, &e.id, *old_pack],
                    )?;
                }
                for (old_id, old_name, old_size) in old {
                    if drop_pack_if_unused(tx, *old_id)? {
                        doomed.push((*old_name, *old_size));
                        repacked += 1;
                    }
                }
            }
            Ok((doomed, deleted, repacked))
        })?;
        report.deleted_packs += deleted;
        report.repacked_packs += repacked;
        crate::failpoint::fail_point("gc.swept");
        for (name, size) in doomed {
            self.store.objects().delete(&pack::key(&name))?;
            report.freed_bytes += size;
        }
        report.orphans_removed = self.remove_orphans()?;
        Ok(report)
    }

    fn plan_dry_run(
        &self,
        mut report: GcReport,
        condemned: &HashSet<ObjectId>,
    ) -> Result<GcReport> {
        report.freed_blobs = condemned.len() as u64;
        let mut garbage_by_pack: HashMap<ObjectId, u64> = HashMap::new();
        for id in condemned {
            if let Some(loc) = self.catalog().locate_blob(id)? {
                *garbage_by_pack.entry(loc.pack).or_default() +=
                    loc.head.stored_len as u64 + pack::ENTRY_HEAD_LEN as u64;
            }
        }
        for (_, name, size, live) in pack_usage(self)? {
            let live = live.saturating_sub(garbage_by_pack.get(&name).copied().unwrap_or(0));
            if live == 0 {
                report.deleted_packs += 1;
                report.freed_bytes += size;
            } else if size.saturating_sub(live + pack::HEADER_LEN as u64) as f64
                >= REPACK_GARBAGE * size as f64
            {
                report.repacked_packs += 1;
                report.freed_bytes += size;
                report.written_bytes += live + pack::HEADER_LEN as u64;
            }
        }
        Ok(report)
    }

    /// Copies the live blobs of `packs` into new packs (durable before
    /// return). Returns, per new pack, the moved entries (new head, old
    /// pack key) and the old packs it replaces.
    #[allow(clippy::type_complexity)]
    fn repack(
        &self,
        packs: &[(i64, ObjectId, u64)],
        report: &mut GcReport,
    ) -> Result<Vec<(SealedPack, Vec<(EntryHead, i64)>, Vec<(i64, ObjectId, u64)>)>> {
        let mut out = Vec::new();
        let mut buf = pack::header().to_vec();
        let mut moved: Vec<(EntryHead, i64)> = Vec::new();
        let mut olds = Vec::new();
        let nonce = *blake3::hash(format!("repack {} {}", std::process::id(), now_ns()).as_bytes())
            .as_bytes();
        let mut flush = |buf: &mut Vec<u8>,
                         moved: &mut Vec<(EntryHead, i64)>,
                         olds: &mut Vec<(i64, ObjectId, u64)>,
                         out: &mut Vec<_>|
         -> Result<()> {
            if moved.is_empty() {
                olds.clear();
                return Ok(());
            }
            let mut h = blake3::Hasher::new();
            h.update(&nonce);
            for (e, _) in moved.iter() {
                h.update(&e.id.0);
                h.update(&e.offset.to_le_bytes());
            }
            let name = ObjectId(*h.finalize().as_bytes());
            self.store.objects().put(&pack::key(&name), buf)?;
            report.written_bytes += buf.len() as u64;
            let sealed = SealedPack {
                name,
                size: buf.len() as u64,
                entries: moved.iter().map(|(e, _)| e.clone()).collect(),
            };
            out.push((sealed, std::mem::take(moved), std::mem::take(olds)));
            *buf = pack::header().to_vec();
            Ok(())
        };
        for (id, name, size) in packs {
            let data = self.store.objects().get(&pack::key(name))?;
            for head in self.catalog().blobs_in_pack(*id)? {
                let start = head.offset as usize;
                let Some(stored) = data.get(start..start + head.stored_len as usize) else {
                    return Err(Error::corrupt(
                        format!("pack {name}"),
                        "truncated; run `shale verify`",
                    ));
                };
                let new = pack::append(
                    &mut buf,
                    head.id,
                    head.kind,
                    head.compression,
                    head.raw_len,
                    stored,
                );
                moved.push((new, *id));
            }
            olds.push((*id, *name, *size));
            if buf.len() >= REPACK_TARGET {
                flush(&mut buf, &mut moved, &mut olds, &mut out)?;
            }
        }
        flush(&mut buf, &mut moved, &mut olds, &mut out)?;
        Ok(out)
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

    /// Removes pack files the catalog does not list and staging files of
    /// dead processes, when no running session can still claim them.
    ///
    /// Order matters: files are listed first, then the catalog's packs and
    /// sessions are read. A writer registers its session before it creates
    /// any file and indexes a pack before its session ends, so a file seen in
    /// the listing is either indexed or claimed by a session read after it.
    fn remove_orphans(&self) -> Result<u64> {
        let pack_keys = self.store.objects().list("packs/")?;
        let tmp = self.root().join("tmp");
        let staged: Vec<(u32, std::path::PathBuf)> = match std::fs::read_dir(&tmp) {
            Ok(entries) => entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let pid = name.split(['-', '.']).next()?.parse::<u32>().ok()?;
                    Some((pid, e.path()))
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        let listed: HashSet<ObjectId> = self
            .catalog()
            .packs()?
            .into_iter()
            .map(|(_, n)| n)
            .collect();
        let host = host_name();
        let live_sessions = session::sessions(self.catalog())?;
        let oldest = live_sessions
            .iter()
            .map(|s| s.started)
            .min()
            .unwrap_or(i64::MAX);
        let mut removed = 0;
        for key in pack_keys {
            let Some(name) = key
                .rsplit('/')
                .next()
                .and_then(|f| f.strip_suffix(".pack"))
                .and_then(ObjectId::from_hex)
            else {
                continue;
            };
            if listed.contains(&name) {
                continue;
            }
            // Unknown age: kept.
            let mtime = self
                .store
                .objects()
                .modified(&key)
                .ok()
                .flatten()
                .unwrap_or(i64::MAX);
            if mtime < oldest {
                self.store.objects().delete(&key)?;
                removed += 1;
            }
        }
        for (pid, path) in staged {
            let claimed = live_sessions
                .iter()
                .any(|s| s.host == host && s.pid == pid && !crate::coord::session::is_stale(s));
            if !claimed && pid != std::process::id() && std::fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}
