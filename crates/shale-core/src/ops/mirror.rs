//! Mirrors: a volume of this pool that follows a volume of another pool,
//! snapshot by snapshot (the SnapMirror workflow). The relationship lives
//! in the destination's catalog (table `mirrors`); an update pulls.
//!
//! An update finds the newest snapshot both sides have (same name, same
//! id), then sends each newer source snapshot (or only the newest, with
//! policy `latest`): it walks the snapshot's tree and copies every object
//! the destination lacks, as stored (compressed bytes are not recompressed;
//! each is checked against its id on arrival), children before the node
//! that names them, so a node present at the destination always has its
//! whole subtree — the walk skips it. Packs are indexed as they are sealed:
//! an interrupted update re-sends nothing that arrived. The destination's
//! root and snapshot move in one transaction once everything is durable,
//! so it never shows a half-transferred snapshot.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::catalog::{self, now_ns, SnapshotRow};
pub use crate::catalog::{MirrorRow, Policy};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::names::check_name;
use crate::pool::Pool;
use crate::store::blobs::BlobWriter;
use crate::store::pack::Compression;
use crate::tree::{load_node, Content, Node};

/// What one update did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct UpdateReport {
    /// The destination volume.
    pub volume: String,
    /// Snapshots transferred, oldest first.
    pub snapshots: Vec<String>,
    /// Objects sent.
    pub objects: u64,
    /// Bytes sent, as stored (compressed where they were).
    pub bytes: u64,
    /// Objects already at the destination (whole subtrees count once).
    pub skipped: u64,
    /// Wall time.
    pub seconds: f64,
}

/// How to update.
#[derive(Clone, Default)]
pub struct UpdateOptions {
    /// When the sides share no snapshot, start again from the source's
    /// (the destination's own snapshots are kept).
    pub force_baseline: bool,
    /// Called with the bytes of each object sent (for progress and `--bwlimit`).
    pub on_bytes: Option<std::sync::Arc<dyn Fn(u64) + Send + Sync>>,
}

/// Copies what the destination lacks of the tree under node `id`,
/// children first.
struct Sender<'a> {
    source: &'a Pool,
    dest: &'a Pool,
    writer: &'a BlobWriter,
    report: &'a mut UpdateReport,
    on_bytes: Option<&'a (dyn Fn(u64) + Send + Sync)>,
}

impl Sender<'_> {
    /// Copies one blob; between plain pools, or pools sharing a master
    /// key, as stored (no recompression, no re-sealing), otherwise as
    /// plaintext, sealed again (or for the first time, or no longer) by
    /// the destination. A blob stored as a delta is sent whole: its bases
    /// may be nowhere else in what is sent.
    fn copy(&mut self, id: &ObjectId) -> Result<()> {
        let as_stored = self.source.blobs().keys() == self.dest.blobs().keys();
        let stored = match as_stored {
            true => Some(self.source.blobs().get_stored(id)?),
            false => None,
        };
        let written = match stored {
            Some((head, stored)) if head.compression != Compression::Delta => {
                let n = stored.len() as u64;
                self.writer.put_stored(&head, &stored)?.then_some(n)
            }
            _ => self.copy_plaintext(id)?,
        };
        if let Some(n) = written {
            self.report.objects += 1;
            self.report.bytes += n;
            if let Some(f) = self.on_bytes {
                f(n);
            }
        }
        Ok(())
    }

    /// Copies one blob as plaintext; its size when it was written.
    fn copy_plaintext(&mut self, id: &ObjectId) -> Result<Option<u64>> {
        if self.dest.blobs().has(id)? {
            return Ok(None);
        }
        let kind = match self.source.blobs().location(id)? {
            Some(loc) => loc.head.kind,
            None => return Err(crate::error::Error::MissingObject(*id)),
        };
        let data = self.source.blobs().get(id)?;
        self.writer.put_with_id(*id, kind, &data)?;
        Ok(Some(data.len() as u64))
    }

    fn send_node(&mut self, id: &ObjectId) -> Result<()> {
        if self.dest.blobs().has(id)? {
            self.report.skipped += 1;
            return Ok(());
        }
        match load_node(self.source.blobs(), id)? {
            Node::Interior(children) => {
                for c in &children {
                    self.send_node(&c.node)?;
                }
            }
            Node::Leaf(entries) => {
                for e in &entries {
                    match &e.content {
                        Content::File { chunks, .. } => {
                            for c in chunks {
                                if self.dest.blobs().has(&c.id)? {
                                    self.report.skipped += 1;
                                } else {
                                    self.copy(&c.id)?;
                                }
                            }
                        }
                        Content::Dir(d) => self.send_node(&d.tree)?,
                        Content::Symlink(_) | Content::Special(_) => {}
                    }
                }
            }
        }
        self.copy(id)
    }
}

impl Pool {
    /// The mirror relationship of destination volume `volume`.
    pub fn mirror(&self, volume: &str) -> Result<MirrorRow> {
        self.catalog()
            .read(|db| catalog::mirror_of(db, volume))?
            .ok_or_else(|| Error::InvalidArgument(format!("volume '{volume}' is not a mirror")))
    }

    /// Every mirror relationship of this pool.
    pub fn mirrors(&self) -> Result<Vec<MirrorRow>> {
        self.catalog().read(catalog::mirrors)
    }

    /// Refuses to change `volume` if it is a mirror destination (read-only
    /// until `mirror break`); `what` names the change.
    pub fn check_not_mirror(&self, volume: &str, what: &str) -> Result<()> {
        let row = self.catalog().read(|db| catalog::mirror_of(db, volume))?;
        match row {
            Some(MirrorRow {
                source_pool: pool,
                source_volume: src,
                state,
                ..
            }) if state == "mirrored" => Err(Error::InvalidArgument(format!(
                "cannot {what} volume '{volume}': it is a mirror of {pool}::{src}, read-only \
                 until `shale mirror break {volume}`"
            ))),
            _ => Ok(()),
        }
    }

    /// Records that volume `volume` (created here, empty) mirrors
    /// `source_volume` of the pool at `source_pool`.
    pub fn mirror_create(
        &self,
        volume: &str,
        source_pool: &str,
        source_volume: &str,
        policy: Policy,
    ) -> Result<MirrorRow> {
        check_name(volume)?;
        check_name(source_volume)?;
        if self.catalog().volume(volume).is_ok() {
            return Err(Error::InvalidArgument(format!(
                "volume '{volume}' exists and is not a mirror: choose another name, \
                 or delete it first"
            )));
        }
        self.create_volume(volume, None)?;
        self.catalog()
            .write(|tx| catalog::insert_mirror(tx, volume, source_pool, source_volume, policy))?;
        self.mirror(volume)
    }

    /// Ends the relationship; the volume stays, writable.
    pub fn mirror_delete(&self, volume: &str) -> Result<()> {
        self.mirror(volume)?;
        self.catalog()
            .write(|tx| catalog::delete_mirror(tx, volume))?;
        Ok(())
    }

    /// Makes the destination writable; updates stop until `resync`.
    pub fn mirror_break(&self, volume: &str) -> Result<()> {
        let row = self.mirror(volume)?;
        if row.state == "broken" {
            return Err(Error::InvalidArgument(format!(
                "mirror '{volume}' is already broken"
            )));
        }
        self.set_mirror_state(volume, "broken")
    }

    fn set_mirror_state(&self, volume: &str, state: &str) -> Result<()> {
        self.catalog()
            .write(|tx| catalog::set_mirror_state(tx, volume, state))?;
        Ok(())
    }

    /// Brings a broken mirror back: the destination's changes since the
    /// break are kept in a snapshot `resync-TIME`, the volume returns to the
    /// last snapshot both sides share, and an update follows.
    pub fn mirror_resync(
        &self,
        source: &Pool,
        volume: &str,
        opts: &UpdateOptions,
    ) -> Result<UpdateReport> {
        let row = self.mirror(volume)?;
        if row.state != "broken" {
            return Err(Error::InvalidArgument(format!(
                "mirror '{volume}' is not broken: use `shale mirror update {volume}`"
            )));
        }
        let stamp = crate::ops::volumes::rfc3339(now_ns())
            .replace([':', '-'], "")
            .replace('T', "")
            .trim_end_matches('Z')
            .to_string();
        self.create_snapshot(volume, Some(&format!("resync-{stamp}")))?;
        if let Some(last) = &row.last_snapshot {
            self.restore_snapshot(volume, last)?;
        }
        self.set_mirror_state(volume, "mirrored")?;
        self.mirror_update(source, volume, opts)
    }

    /// Pulls what the source has that the destination lacks (see the
    /// module documentation).
    pub fn mirror_update(
        &self,
        source: &Pool,
        volume: &str,
        opts: &UpdateOptions,
    ) -> Result<UpdateReport> {
        let started = Instant::now();
        let row = self.mirror(volume)?;
        if row.state != "mirrored" {
            return Err(Error::InvalidArgument(format!(
                "mirror '{volume}' is broken: `shale mirror resync {volume}` to mirror again"
            )));
        }
        let to_send = self.snapshots_to_send(source, &row, opts)?;
        let mut report = UpdateReport {
            volume: volume.to_string(),
            ..Default::default()
        };
        for snap in &to_send {
            self.transfer(source, &row, snap, opts, &mut report)?;
            let sent = catalog::Transfer {
                bytes: report.bytes as i64,
                objects: report.objects as i64,
                seconds_ms: started.elapsed().as_millis() as i64,
            };
            // mounts showing the mirror reload it once this commits
            let _hold = self.hold_mounts(volume)?;
            self.catalog().write(|tx| {
                catalog::set_root(tx, volume, None, &snap.root, snap.bytes, snap.files)?;
                let v = catalog::volume_by_name(tx, volume)?;
                catalog::insert_snapshot(tx, &v, &snap.name)?;
                catalog::record_transfer(tx, volume, Some(snap), &sent)
            })?;
            report.snapshots.push(snap.name.clone());
        }
        if report.snapshots.is_empty() {
            let sent = catalog::Transfer {
                bytes: 0,
                objects: 0,
                seconds_ms: started.elapsed().as_millis() as i64,
            };
            self.catalog()
                .write(|tx| catalog::record_transfer(tx, volume, None, &sent))?;
        }
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// The source snapshots newer than the newest one both sides share (by
    /// name and id), all or the newest as the policy says.
    fn snapshots_to_send(
        &self,
        source: &Pool,
        row: &MirrorRow,
        opts: &UpdateOptions,
    ) -> Result<Vec<SnapshotRow>> {
        let volume = &row.volume;
        let src_name = format!("{}::{}", row.source_pool, row.source_volume);
        let src_snaps = match source.catalog().snapshots(Some(&row.source_volume)) {
            Ok(s) => s,
            Err(Error::VolumeNotFound(_)) => {
                return Err(Error::InvalidArgument(format!(
                    "the source volume {src_name} does not exist"
                )))
            }
            Err(e) => return Err(e),
        };
        let dst_snaps = self.catalog().snapshots(Some(volume))?;
        let shared = src_snaps.iter().rposition(|s| {
            dst_snaps
                .iter()
                .any(|d| d.name == s.name && d.root == s.root)
        });
        if shared.is_none() && !dst_snaps.is_empty() && !opts.force_baseline {
            return Err(Error::InvalidArgument(format!(
                "{volume} and {src_name} share no snapshot: nothing to update from \
                 (--force-baseline transfers the source's snapshots again, keeping this side's)"
            )));
        }
        let newer = &src_snaps[shared.map_or(0, |i| i + 1)..];
        let to_send: Vec<SnapshotRow> = match row.policy {
            Policy::All => newer.to_vec(),
            Policy::Latest => newer.last().cloned().into_iter().collect(),
        };
        if let Some(clash) = to_send
            .iter()
            .find(|s| dst_snaps.iter().any(|d| d.name == s.name))
        {
            return Err(Error::InvalidArgument(format!(
                "{volume}@{} exists with other content than {src_name}@{}: \
                 delete it here, then update",
                clash.name, clash.name
            )));
        }
        Ok(to_send)
    }

    /// Copies what this pool lacks of source snapshot `snap`, durably.
    fn transfer(
        &self,
        source: &Pool,
        row: &MirrorRow,
        snap: &SnapshotRow,
        opts: &UpdateOptions,
        report: &mut UpdateReport,
    ) -> Result<()> {
        let writer = self
            .blobs()
            .writer(&format!("mirror update {}", row.volume))?;
        let sent = Sender {
            source,
            dest: self,
            writer: &writer,
            report,
            on_bytes: opts.on_bytes.as_deref(),
        }
        .send_node(&snap.root);
        if let Err(e) = sent {
            // a snapshot deleted at the source mid-way: its objects may be gone
            if source
                .catalog()
                .snapshot(&row.source_volume, &snap.name)
                .is_err()
            {
                return Err(Error::InvalidArgument(format!(
                    "{}::{}@{} was deleted at the source during the transfer; \
                     run the update again",
                    row.source_pool, row.source_volume, snap.name
                )));
            }
            return Err(e);
        }
        writer.finish().map(drop)
    }
}
