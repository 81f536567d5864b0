//! Volumes, snapshots, clones and restore: catalog updates that move
//! pointers to trees, constant time whatever the data size (invariant 5).

use serde::{Deserialize, Serialize};

use crate::catalog::{self, RootMeta, SnapshotRow, Totals, VolumeRow};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::names::{check_name, Spec};
use crate::pool::Pool;
use crate::tree::{build_dir, DirRef};

/// A resolved `VOLUME[@SNAPSHOT]`: the tree it names.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// What was asked for.
    pub spec: Spec,
    /// Its root tree.
    pub root: ObjectId,
    /// Logical bytes.
    pub bytes: u64,
    /// Regular files.
    pub files: u64,
}

/// A volume as every front end shows it (`volume list/info --json`, the
/// Python package, the server): the one JSON shape, documented in
/// `docs/JSON.md`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct VolumeReport {
    /// Volume name.
    pub name: String,
    /// Content id of its current root tree.
    pub id: String,
    /// `VOLUME@SNAPSHOT` it was cloned from.
    pub origin: Option<String>,
    /// Logical bytes of regular files.
    pub logical_bytes: u64,
    /// Regular files.
    pub files: u64,
    /// Snapshots it has.
    pub snapshots: u64,
    /// Quota in bytes, if any.
    pub quota: Option<u64>,
    /// Creation time, RFC 3339 (UTC).
    pub created: String,
    /// Time of the last change of its root, RFC 3339 (UTC).
    pub updated: String,
    /// Bytes only it and its snapshots hold (asked for with `space`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_bytes: Option<u64>,
}

impl VolumeReport {
    /// The report of the volume recorded as `row`, which has `snapshots`.
    pub fn new(row: &VolumeRow, snapshots: u64) -> Self {
        VolumeReport {
            name: row.name.clone(),
            id: row.root.to_hex(),
            origin: row.origin.clone(),
            logical_bytes: row.bytes,
            files: row.files,
            snapshots,
            quota: row.quota,
            created: rfc3339(row.created),
            updated: rfc3339(row.updated),
            used_bytes: None,
        }
    }
}

/// A snapshot as every front end shows it: the one JSON shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SnapshotReport {
    /// The volume it belongs to.
    pub volume: String,
    /// Snapshot name.
    pub name: String,
    /// Content id of its root tree: the same id means the same data.
    pub id: String,
    /// Creation time, RFC 3339 (UTC).
    pub created: String,
    /// Logical bytes of regular files.
    pub logical_bytes: u64,
    /// Regular files.
    pub files: u64,
    /// Bytes only it holds (asked for with `space`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_bytes: Option<u64>,
}

impl From<&SnapshotRow> for SnapshotReport {
    fn from(s: &SnapshotRow) -> Self {
        SnapshotReport {
            volume: s.volume.clone(),
            name: s.name.clone(),
            id: s.root.to_hex(),
            created: rfc3339(s.created),
            logical_bytes: s.bytes,
            files: s.files,
            used_bytes: None,
        }
    }
}

/// What `VOLUME[@SNAPSHOT]` names, as every front end shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedReport {
    /// The volume.
    pub volume: String,
    /// The snapshot, if one was named.
    pub snapshot: Option<String>,
    /// Content id of the tree.
    pub id: String,
    /// Logical bytes of regular files.
    pub logical_bytes: u64,
    /// Regular files.
    pub files: u64,
}

impl From<&Resolved> for ResolvedReport {
    fn from(r: &Resolved) -> Self {
        ResolvedReport {
            volume: r.spec.volume.clone(),
            snapshot: r.spec.snapshot.clone(),
            id: r.root.to_hex(),
            logical_bytes: r.bytes,
            files: r.files,
        }
    }
}

/// Formats ns since the epoch as RFC 3339 (UTC).
pub fn rfc3339(ns: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The default snapshot name: `shale.YYYYMMDDhhmmss` (UTC).
pub fn default_snapshot_name() -> String {
    let stamp: String = rfc3339(catalog::now_ns())
        .chars()
        .filter(char::is_ascii_digit)
        .take(14)
        .collect();
    format!("shale.{stamp}")
}

impl Pool {
    /// Resolves a `VOLUME[@SNAPSHOT]` spec to its tree.
    pub fn resolve(&self, spec: &str) -> Result<Resolved> {
        let spec = Spec::parse(spec)?;
        let (root, bytes, files) = match &spec.snapshot {
            None => {
                self.sync_mounts(&spec.volume)?;
                let v = self.catalog().volume(&spec.volume)?;
                (v.root, v.bytes, v.files)
            }
            Some(s) => {
                let snap = self.catalog().snapshot(&spec.volume, s)?;
                (snap.root, snap.bytes, snap.files)
            }
        };
        Ok(Resolved {
            spec,
            root,
            bytes,
            files,
        })
    }

    /// Creates an empty volume.
    pub fn create_volume(&self, name: &str, quota: Option<u64>) -> Result<VolumeReport> {
        check_name(name)?;
        let w = self.store.writer("volume create")?;
        let empty = build_dir(&w, Vec::new())?;
        w.finish()?;
        let row = self.catalog().write(|tx| {
            catalog::insert_volume(tx, name, &empty.tree, 0, 0, None, quota)?;
            catalog::volume_by_name(tx, name)
        })?;
        Ok(VolumeReport::new(&row, 0))
    }

    /// Commits a new volume whose tree is durable.
    pub(crate) fn commit_new_volume(
        &self,
        name: &str,
        root: DirRef,
        quota: Option<u64>,
    ) -> Result<VolumeRow> {
        self.catalog().write(|tx| {
            catalog::insert_volume(tx, name, &root.tree, root.bytes, root.files, None, quota)?;
            catalog::volume_by_name(tx, name)
        })
    }

    /// All volumes with their snapshot counts.
    pub fn list_volumes(&self) -> Result<Vec<VolumeReport>> {
        let snaps = self.catalog().snapshots(None)?;
        Ok(self
            .catalog()
            .volumes()?
            .iter()
            .map(|row| {
                let snapshots = snaps.iter().filter(|s| s.volume == row.name).count() as u64;
                VolumeReport::new(row, snapshots)
            })
            .collect())
    }

    /// One volume with its snapshot count.
    pub fn volume_info(&self, name: &str) -> Result<VolumeReport> {
        check_name(name)?;
        let row = self.catalog().volume(name)?;
        let snapshots = self.catalog().snapshots(Some(name))?.len() as u64;
        Ok(VolumeReport::new(&row, snapshots))
    }

    /// Deletes a volume and its snapshots, or with `keep_snapshots` the
    /// volume alone: its snapshots then stay listable, readable and
    /// clonable as `NAME@SNAPSHOT` until deleted, and hold the name until
    /// the last one goes. Clones made from it keep their data: it is shared
    /// by content, not owned.
    pub fn delete_volume(&self, name: &str, keep_snapshots: bool) -> Result<()> {
        check_name(name)?;
        if let Some(at) = crate::coord::mounts::shown_at(self.root(), name, None) {
            return Err(Error::Mounted {
                what: format!("volume '{name}'"),
                at,
            });
        }
        let _hold = self.hold_mounts(name)?;
        self.catalog().write(|tx| {
            let v = catalog::volume_by_name(tx, name)?;
            catalog::delete_volume(tx, v.id, keep_snapshots)
        })
    }

    /// Sets a volume's quota (`None`: no limit), the size its mounts show
    /// as their disk. A quota below what the volume holds now is refused,
    /// so no data is ever cut off; running mounts commit first and then
    /// write within the new quota.
    pub fn resize_volume(&self, name: &str, quota: Option<u64>) -> Result<VolumeReport> {
        check_name(name)?;
        self.check_not_mirror(name, "resize")?;
        let _hold = self.hold_mounts(name)?;
        let row = self.catalog().write(|tx| {
            let v = catalog::volume_by_name(tx, name)?;
            if let Some(q) = quota {
                if q < v.bytes {
                    return Err(Error::QuotaExceeded {
                        volume: name.to_string(),
                        needed: v.bytes,
                        quota: q,
                    });
                }
            }
            catalog::set_quota(tx, v.id, quota)?;
            catalog::volume_by_name(tx, name)
        })?;
        let snapshots = self.catalog().snapshots(Some(name))?.len() as u64;
        Ok(VolumeReport::new(&row, snapshots))
    }

    /// Makes `new` a writable volume sharing all data with `from`
    /// (`VOLUME@SNAPSHOT`, or `VOLUME`, in which case a snapshot of the
    /// volume's current state is taken first to record the origin, as
    /// ONTAP's FlexClone does).
    pub fn clone_volume(&self, new: &str, from: &str) -> Result<VolumeReport> {
        check_name(new)?;
        let spec = Spec::parse(from)?;
        if spec.snapshot.is_none() {
            self.sync_mounts(&spec.volume)?;
        }
        self.catalog().write(|tx| {
            let source = match &spec.snapshot {
                Some(_) => catalog::volume_by_name_any(tx, &spec.volume)?,
                None => catalog::volume_by_name(tx, &spec.volume)?,
            };
            let snap = match &spec.snapshot {
                Some(s) => catalog::snapshot_by_name(tx, &spec.volume, s)?,
                None => {
                    if catalog::volume_by_name(tx, new).is_ok() {
                        return Err(Error::VolumeExists(new.to_string()));
                    }
                    let base = format!("clone.{new}");
                    let base: String = base.chars().take(crate::names::MAX_NAME - 4).collect();
                    let mut name = base.clone();
                    let mut n = 1;
                    while catalog::snapshot_by_name(tx, &spec.volume, &name).is_ok() {
                        n += 1;
                        name = format!("{base}.{n}");
                    }
                    catalog::insert_snapshot(tx, &source, &name)?
                }
            };
            let origin = format!("{}@{}", snap.volume, snap.name);
            catalog::insert_volume(
                tx,
                new,
                &snap.root,
                snap.bytes,
                snap.files,
                Some(&origin),
                source.quota,
            )?;
            let row = catalog::volume_by_name(tx, new)?;
            let meta = catalog::root_meta_of(tx, source.id)?;
            catalog::set_root_meta(tx, row.id, &meta)?;
            Ok(VolumeReport::new(&row, 0))
        })
    }

    /// Takes a snapshot of a volume's current state.
    /// Without a name, the default one (`shale.YYYYMMDDhhmmss`), with `.2`,
    /// `.3` … appended if that is taken (several snapshots in one second).
    pub fn create_snapshot(&self, volume: &str, name: Option<&str>) -> Result<SnapshotReport> {
        check_name(volume)?;
        if let Some(name) = name {
            check_name(name)?;
        }
        self.check_not_mirror(volume, "snapshot (take snapshots at the source of)")?;
        self.sync_mounts(volume)?;
        self.catalog()
            .write(|tx| {
                let v = catalog::volume_by_name(tx, volume)?;
                let name = match name {
                    Some(n) => n.to_string(),
                    None => {
                        let base = default_snapshot_name();
                        let mut name = base.clone();
                        let mut n = 1;
                        while catalog::snapshot_by_name(tx, volume, &name).is_ok() {
                            n += 1;
                            name = format!("{base}.{n}");
                        }
                        name
                    }
                };
                catalog::insert_snapshot(tx, &v, &name)
            })
            .map(|row| SnapshotReport::from(&row))
    }

    /// Snapshots of one volume, or of every volume.
    pub fn list_snapshots(&self, volume: Option<&str>) -> Result<Vec<SnapshotReport>> {
        if let Some(v) = volume {
            check_name(v)?;
        }
        Ok(self
            .catalog()
            .snapshots(volume)?
            .iter()
            .map(SnapshotReport::from)
            .collect())
    }

    /// Deletes one snapshot.
    pub fn delete_snapshot(&self, volume: &str, name: &str) -> Result<()> {
        check_name(volume)?;
        check_name(name)?;
        if let Some(at) = crate::coord::mounts::shown_at(self.root(), volume, Some(name)) {
            return Err(Error::Mounted {
                what: format!("snapshot '{volume}@{name}'"),
                at,
            });
        }
        self.catalog().write(|tx| {
            catalog::snapshot_by_name(tx, volume, name)?;
            let (id, _) = catalog::volume_id_any(tx, volume)?;
            catalog::delete_snapshot(tx, id, name)
        })
    }

    /// Points volume `name` at the tree `root`, if it is still at
    /// `expected` (else [`Error::Conflict`]); running mounts reload it.
    pub(crate) fn move_root(&self, name: &str, expected: &ObjectId, root: &DirRef) -> Result<()> {
        let _hold = self.hold_mounts(name)?;
        self.catalog().write(|tx| {
            catalog::set_root(tx, name, Some(expected), &root.tree, root.bytes, root.files)
        })
    }

    /// Puts a volume back to one of its snapshots. Later snapshots are kept.
    pub fn restore_snapshot(&self, volume: &str, name: &str) -> Result<SnapshotReport> {
        check_name(volume)?;
        check_name(name)?;
        self.check_not_mirror(volume, "restore")?;
        let _hold = self.hold_mounts(volume)?;
        self.catalog().write(|tx| {
            let snap = catalog::snapshot_by_name(tx, volume, name)?;
            catalog::set_root(tx, volume, None, &snap.root, snap.bytes, snap.files)?;
            Ok(SnapshotReport::from(&snap))
        })
    }

    /// The mode, owner and extended attributes of a volume's top directory.
    pub fn root_meta(&self, volume: &str) -> Result<RootMeta> {
        check_name(volume)?;
        self.catalog().read(|conn| {
            let v = catalog::volume_by_name(conn, volume)?;
            catalog::root_meta_of(conn, v.id)
        })
    }

    /// Sets the mode, owner and extended attributes of a volume's top directory.
    pub fn set_root_meta(&self, volume: &str, meta: &RootMeta) -> Result<()> {
        check_name(volume)?;
        self.catalog().write(|tx| {
            let v = catalog::volume_by_name(tx, volume)?;
            catalog::set_root_meta(tx, v.id, meta)
        })
    }

    /// Pool-wide totals.
    pub fn totals(&self) -> Result<Totals> {
        self.catalog().totals()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unnamed_snapshots_in_one_second_get_distinct_names() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::init(&dir.path().join("pool")).unwrap();
        pool.create_volume("v", None).unwrap();
        let names: Vec<String> = (0..3)
            .map(|_| pool.create_snapshot("v", None).unwrap().name)
            .collect();
        assert!(names.iter().all(|n| n.starts_with("shale.")), "{names:?}");
        let mut unique = names.clone();
        unique.dedup();
        assert_eq!(unique.len(), 3, "{names:?}");
        assert!(pool.create_snapshot("v", Some(&names[0])).is_err());
    }

    #[test]
    fn a_volume_deleted_with_its_snapshots_kept() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::init(&dir.path().join("pool")).unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("f"), b"kept").unwrap();
        pool.create_volume_from("v", &src, None, None, Default::default())
            .unwrap();
        let s1 = pool.create_snapshot("v", Some("s1")).unwrap();
        pool.create_snapshot("v", Some("s2")).unwrap();
        pool.delete_volume("v", true).unwrap();

        // The volume is gone, its snapshots are not.
        assert!(matches!(
            pool.volume_info("v"),
            Err(Error::VolumeNotFound(_))
        ));
        assert!(pool.list_volumes().unwrap().is_empty());
        let names: Vec<String> = pool
            .list_snapshots(Some("v"))
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["s1", "s2"]);
        assert_eq!(pool.resolve("v@s1").unwrap().root.to_hex(), s1.id);
        let c = pool.clone_volume("c", "v@s1").unwrap();
        assert_eq!(
            (c.id.as_str(), c.origin.as_deref()),
            (s1.id.as_str(), Some("v@s1"))
        );
        assert!(pool.create_snapshot("v", Some("s3")).is_err());

        // The snapshots hold the name until the last one goes.
        assert!(matches!(
            pool.create_volume("v", None),
            Err(Error::NameHeld { snapshots: 2, .. })
        ));
        pool.delete_snapshot("v", "s1").unwrap();
        pool.delete_snapshot("v", "s2").unwrap();
        assert!(pool.list_snapshots(None).unwrap().is_empty());
        pool.create_volume("v", None).unwrap();

        // Without snapshots, or without the flag, everything goes.
        pool.create_snapshot("v", Some("x")).unwrap();
        pool.delete_volume("v", false).unwrap();
        assert!(pool.list_snapshots(None).unwrap().is_empty());
        pool.create_volume("v", None).unwrap();
    }
}
