//! Sweeping: packs left empty are dropped, mostly-garbage ones rewritten
//! with their live blobs, files nothing indexes removed; and the plan a
//! dry run reports instead.

use std::collections::{HashMap, HashSet};

use super::{GcReport, REPACK_GARBAGE, REPACK_TARGET};
use crate::catalog::{self, now_ns, SealedPack};
use crate::coord::session::{self, host_name};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::pool::Pool;
use crate::store::pack::{self, EntryHead};

/// A pack to drop or rewrite: its catalog key, name and size.
type PackRef = (i64, ObjectId, u64);

/// A rewritten pack: the new pack, each moved entry with its old pack's
/// key, and the packs it replaces.
type Repacked = (SealedPack, Vec<(EntryHead, i64)>, Vec<PackRef>);

impl Pool {
    /// Drops empty packs and rewrites mostly-garbage ones; files are
    /// deleted only after the transaction that drops their rows.
    pub(super) fn sweep(&self, report: &mut GcReport) -> Result<()> {
        let mut empty = Vec::new();
        let mut repack = Vec::new();
        for p in self.catalog().read(catalog::pack_usage)? {
            let garbage = p.size.saturating_sub(p.live + pack::HEADER_LEN as u64);
            if p.live == 0 {
                empty.push((p.key, p.name, p.size));
            } else if garbage as f64 >= REPACK_GARBAGE * p.size as f64 {
                repack.push((p.key, p.name, p.size));
            }
        }
        let moved = self.repack(&repack, report)?;
        if !moved.is_empty() {
            crate::failpoint::fail_point("gc.repacked");
        }
        // (the closure may run again on a new connection: it starts afresh)
        let (doomed, deleted, repacked) = self.catalog().write(|tx| {
            let mut doomed: Vec<(ObjectId, u64)> = Vec::new();
            let (mut deleted, mut repacked) = (0, 0);
            for (id, name, size) in &empty {
                if catalog::drop_pack_if_unused(tx, *id)? {
                    doomed.push((*name, *size));
                    deleted += 1;
                }
            }
            for (new_pack, entries, old) in &moved {
                let keys = catalog::insert_packs(tx, std::slice::from_ref(new_pack), None)?;
                for (e, old_pack) in entries {
                    catalog::move_blob(tx, e, keys[0], *old_pack)?;
                }
                for (old_id, old_name, old_size) in old {
                    if catalog::drop_pack_if_unused(tx, *old_id)? {
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
        Ok(())
    }

    pub(super) fn plan_dry_run(
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
        for p in self.catalog().read(catalog::pack_usage)? {
            let (size, live) = (p.size, p.live);
            let live = live.saturating_sub(garbage_by_pack.get(&p.name).copied().unwrap_or(0));
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
    fn repack(&self, packs: &[PackRef], report: &mut GcReport) -> Result<Vec<Repacked>> {
        let keys = self.store.keys();
        let mut out = Vec::new();
        let mut buf = pack::header_for(keys).to_vec();
        let mut moved: Vec<(EntryHead, i64)> = Vec::new();
        let mut olds = Vec::new();
        let nonce = *blake3::hash(format!("repack {} {}", std::process::id(), now_ns()).as_bytes())
            .as_bytes();
        let mut flush = |buf: &mut Vec<u8>,
                         moved: &mut Vec<(EntryHead, i64)>,
                         olds: &mut Vec<PackRef>,
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
            *buf = pack::header_for(keys).to_vec();
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
                let (new_head, new) = pack::head_bytes(
                    keys,
                    head.id,
                    head.kind,
                    head.compression,
                    head.raw_len,
                    head.stored_len,
                    buf.len() as u64,
                )?;
                buf.extend_from_slice(&new_head);
                buf.extend_from_slice(stored);
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

    /// Removes pack files the catalog does not list and staging files of
    /// dead processes, when no running session can still claim them.
    ///
    /// Order matters: files are listed first, then the catalog's packs and
    /// sessions are read. A writer registers its session before it creates
    /// any file and indexes a pack before its session ends, so a file seen in
    /// the listing is either indexed or claimed by a session read after it.
    pub(super) fn remove_orphans(&self) -> Result<u64> {
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
