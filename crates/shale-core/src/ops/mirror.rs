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

use serde::Serialize;

use crate::args;
use crate::catalog::{self, now_ns, SnapshotRow};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::names::check_name;
use crate::pool::Pool;
use crate::store::blobs::BlobWriter;
use crate::tree::{load_node, Content, Node};

/// Which source snapshots an update sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Every snapshot newer than the last one both sides share.
    All,
    /// Only the newest.
    Latest,
}

impl Policy {
    /// `all` or `latest`.
    pub fn parse(s: &str) -> Result<Policy> {
        match s {
            "all" => Ok(Policy::All),
            "latest" => Ok(Policy::Latest),
            _ => Err(Error::InvalidArgument(format!(
                "mirror policy {s:?}: use all or latest"
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Policy::All => "all",
            Policy::Latest => "latest",
        }
    }
}

/// A mirror relationship, as recorded on the destination.
#[derive(Clone, Debug, Serialize)]
pub struct MirrorRow {
    /// The destination volume (in this pool).
    pub volume: String,
    /// The source pool, as given (a path or URL).
    pub source_pool: String,
    /// The source volume.
    pub source_volume: String,
    /// Which snapshots an update sends.
    pub policy: Policy,
    /// `mirrored` (read-only, updated) or `broken` (writable).
    pub state: String,
    /// The newest snapshot transferred.
    pub last_snapshot: Option<String>,
    /// Its id.
    pub last_id: Option<String>,
    /// When the source took it (ns since the epoch): the lag is measured from it.
    pub last_source_created: Option<i64>,
    /// When the last update finished (ns since the epoch).
    pub last_update: Option<i64>,
    /// Bytes the last update sent (as stored).
    pub last_bytes: Option<u64>,
    /// Objects the last update sent.
    pub last_objects: Option<u64>,
    /// Seconds the last update took.
    pub last_seconds: Option<f64>,
}

/// What one update did.
#[derive(Clone, Debug, Default, Serialize)]
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

const MIRROR_COLS: &str = "volume, source_pool, source_volume, policy, state, last_snapshot, \
     last_id, last_source_created, last_update, last_bytes, last_objects, last_seconds_ms FROM mirrors";

fn mirror_from_row(r: &catalog::Row) -> Result<MirrorRow> {
    Ok(MirrorRow {
        volume: r.text(0)?,
        source_pool: r.text(1)?,
        source_volume: r.text(2)?,
        policy: Policy::parse(&r.text(3)?)?,
        state: r.text(4)?,
        last_snapshot: r.opt_text(5)?,
        last_id: match r.0.get(6) {
            Some(catalog::Value::Blob(b)) => ObjectId::from_slice(b).map(|i| i.to_hex()),
            _ => None,
        },
        last_source_created: r.opt_int(7)?,
        last_update: r.opt_int(8)?,
        last_bytes: r.opt_int(9)?.map(|v| v as u64),
        last_objects: r.opt_int(10)?.map(|v| v as u64),
        last_seconds: r.opt_int(11)?.map(|ms| ms as f64 / 1000.0),
    })
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
    fn copy(&mut self, id: &ObjectId) -> Result<()> {
        let (head, stored) = self.source.blobs().get_stored(id)?;
        let n = stored.len() as u64;
        if self.writer.put_stored(&head, &stored)? {
            self.report.objects += 1;
            self.report.bytes += n;
            if let Some(f) = self.on_bytes {
                f(n);
            }
        }
        Ok(())
    }

    fn send_node(&mut self, id: &ObjectId) -> Result<()> {
        if self.dest.catalog().has_blob(id)? {
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
                                if self.dest.catalog().has_blob(&c.id)? {
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
            .read(|db| {
                db.query_opt(
                    &format!("SELECT {MIRROR_COLS} WHERE volume = ?1"),
                    args![volume],
                    mirror_from_row,
                )
            })?
            .ok_or_else(|| Error::InvalidArgument(format!("volume '{volume}' is not a mirror")))
    }

    /// Every mirror relationship of this pool.
    pub fn mirrors(&self) -> Result<Vec<MirrorRow>> {
        self.catalog().read(|db| {
            db.query_all(
                &format!("SELECT {MIRROR_COLS} ORDER BY volume"),
                &[],
                mirror_from_row,
            )
        })
    }

    /// Refuses to change `volume` if it is a mirror destination (read-only
    /// until `mirror break`); `what` names the change.
    pub fn check_not_mirror(&self, volume: &str, what: &str) -> Result<()> {
        let row = self.catalog().read(|db| {
            db.query_opt(
                "SELECT source_pool, source_volume, state FROM mirrors WHERE volume = ?1",
                args![volume],
                |r| Ok((r.text(0)?, r.text(1)?, r.text(2)?)),
            )
        })?;
        match row {
            Some((pool, src, state)) if state == "mirrored" => {
                Err(Error::InvalidArgument(format!(
                    "cannot {what} volume '{volume}': it is a mirror of {pool}::{src}, read-only \
                 until `shale mirror break {volume}`"
                )))
            }
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
        self.catalog().write(|tx| {
            tx.execute(
                "INSERT INTO mirrors (volume, source_pool, source_volume, policy, state) \
                 VALUES (?1, ?2, ?3, ?4, 'mirrored')",
                args![volume, source_pool, source_volume, policy.name()],
            )
        })?;
        self.mirror(volume)
    }

    /// Ends the relationship; the volume stays, writable.
    pub fn mirror_delete(&self, volume: &str) -> Result<()> {
        self.mirror(volume)?;
        self.catalog()
            .write(|tx| tx.execute("DELETE FROM mirrors WHERE volume = ?1", args![volume]))?;
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
        self.catalog().write(|tx| {
            tx.execute(
                "UPDATE mirrors SET state = ?2 WHERE volume = ?1",
                args![volume, state],
            )
        })?;
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
        let to_send: Vec<&SnapshotRow> = match row.policy {
            Policy::All => newer.iter().collect(),
            Policy::Latest => newer.last().into_iter().collect(),
        };
        let mut report = UpdateReport {
            volume: volume.to_string(),
            ..Default::default()
        };
        for snap in to_send {
            if dst_snaps.iter().any(|d| d.name == snap.name) {
                return Err(Error::InvalidArgument(format!(
                    "{volume}@{} exists with other content than {src_name}@{}: \
                     delete it here, then update",
                    snap.name, snap.name
                )));
            }
            let writer = self.blobs().writer(&format!("mirror update {volume}"))?;
            let sent = Sender {
                source,
                dest: self,
                writer: &writer,
                report: &mut report,
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
                        "{src_name}@{} was deleted at the source during the transfer; \
                         run the update again",
                        snap.name
                    )));
                }
                return Err(e);
            }
            writer.finish()?;
            let seconds_ms = started.elapsed().as_millis() as i64;
            let (bytes, objects) = (report.bytes as i64, report.objects as i64);
            // mounts showing the mirror reload it once this commits
            let _hold = self.hold_mounts(volume)?;
            self.catalog().write(|tx| {
                catalog::set_root(tx, volume, None, &snap.root, snap.bytes, snap.files)?;
                let v = catalog::volume_by_name(tx, volume)?;
                catalog::insert_snapshot(tx, &v, &snap.name)?;
                tx.execute(
                    "UPDATE mirrors SET last_snapshot = ?2, last_id = ?3, last_source_created = ?4, \
                     last_update = ?5, last_bytes = ?6, last_objects = ?7, last_seconds_ms = ?8 \
                     WHERE volume = ?1",
                    args![
                        volume,
                        &snap.name,
                        &snap.root,
                        snap.created,
                        now_ns(),
                        bytes,
                        objects,
                        seconds_ms
                    ],
                )?;
                Ok(())
            })?;
            report.snapshots.push(snap.name.clone());
        }
        if report.snapshots.is_empty() {
            let seconds_ms = started.elapsed().as_millis() as i64;
            self.catalog().write(|tx| {
                tx.execute(
                    "UPDATE mirrors SET last_update = ?2, last_bytes = 0, last_objects = 0, \
                     last_seconds_ms = ?3 WHERE volume = ?1",
                    args![volume, now_ns(), seconds_ms],
                )
            })?;
        }
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }
}
