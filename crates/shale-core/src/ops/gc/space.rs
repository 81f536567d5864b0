//! Space accounting: what the pool stores, what `gc` would free, and what
//! deleting one volume or snapshot would free.

use std::collections::HashMap;

use serde::Serialize;

use super::mark::{roots, Marks};
use super::GcOptions;
use crate::catalog;
use crate::error::{Error, Result};
use crate::pool::Pool;
use crate::store::pack;

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

impl Pool {
    /// Stored, reclaimable and unused bytes (walks every tree: O(metadata)).
    pub fn space(&self) -> Result<Space> {
        let plan = self.gc(&GcOptions {
            dry_run: true,
            progress: None,
        })?;
        let mut marks = Marks::default();
        for root in roots(self)? {
            marks.walk(self, &root)?;
        }
        let mut live_by_pack: HashMap<i64, u64> = HashMap::new();
        self.catalog().read(|db| {
            live_by_pack.clear();
            catalog::each_blob(db, &mut |id, pack, stored| {
                if marks.blobs.contains(&id) {
                    *live_by_pack.entry(pack).or_default() += stored + pack::ENTRY_HEAD_LEN as u64;
                }
            })
        })?;
        let mut space = Space {
            reclaimable_bytes: plan.freed_bytes.saturating_sub(plan.written_bytes),
            ..Default::default()
        };
        for p in self.catalog().read(catalog::pack_usage)? {
            space.stored_bytes += p.size;
            let live = live_by_pack.get(&p.key).copied().unwrap_or(0) + pack::HEADER_LEN as u64;
            space.unused_bytes += p.size.saturating_sub(live);
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
}
