//! The records of volumes and snapshots: their rows, and every statement
//! that reads or changes them.

use super::{now_ns, Catalog, Row, Sql};
use crate::args;
use crate::error::{Error, Result};
use crate::id::ObjectId;

/// The mode, owner and extended attributes of a volume's top directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootMeta {
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Extended attributes, sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Default for RootMeta {
    /// What a volume's top directory is until changed: writable by all,
    /// sticky (as `/tmp`), owned by root.
    fn default() -> Self {
        RootMeta {
            mode: 0o1777,
            uid: 0,
            gid: 0,
            xattrs: Vec::new(),
        }
    }
}

/// The state of a volume as recorded in the catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeRow {
    /// Catalog key.
    pub id: i64,
    /// Volume name.
    pub name: String,
    /// Root tree id.
    pub root: ObjectId,
    /// Logical bytes of regular files.
    pub bytes: u64,
    /// Number of regular files.
    pub files: u64,
    /// `VOLUME@SNAPSHOT` it was cloned from.
    pub origin: Option<String>,
    /// Quota in bytes.
    pub quota: Option<u64>,
    /// Creation time, ns since the Unix epoch.
    pub created: i64,
    /// Time of the last root change, ns since the Unix epoch.
    pub updated: i64,
}

/// A snapshot as recorded in the catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotRow {
    /// Name of the volume it belongs to.
    pub volume: String,
    /// Snapshot name.
    pub name: String,
    /// Root tree id: the snapshot id.
    pub root: ObjectId,
    /// Logical bytes.
    pub bytes: u64,
    /// Number of regular files.
    pub files: u64,
    /// Creation time, ns since the Unix epoch.
    pub created: i64,
}

fn volume_from_row(row: &Row) -> Result<VolumeRow> {
    Ok(VolumeRow {
        id: row.int(0)?,
        name: row.text(1)?,
        root: row.id(2)?,
        bytes: row.int(3)? as u64,
        files: row.int(4)? as u64,
        origin: row.opt_text(5)?,
        quota: row.opt_int(6)?.map(|q| q as u64),
        created: row.int(7)?,
        updated: row.int(8)?,
    })
}

fn snapshot_from_row(row: &Row) -> Result<SnapshotRow> {
    Ok(SnapshotRow {
        volume: row.text(0)?,
        name: row.text(1)?,
        root: row.id(2)?,
        bytes: row.int(3)? as u64,
        files: row.int(4)? as u64,
        created: row.int(5)?,
    })
}

/// Volumes, live or deleted with their snapshots kept.
const ANY_VOLUME_SELECT: &str =
    "SELECT id, name, root, bytes, files, origin, quota, created, updated FROM volumes";
/// Live volumes (not deleted with their snapshots kept); callers go on
/// with `AND …` or `ORDER BY …`.
const VOLUME_SELECT: &str = "SELECT id, name, root, bytes, files, origin, quota, created, updated \
     FROM volumes WHERE deleted IS NULL";
const SNAPSHOT_COLS: &str = "v.name, s.name, s.root, s.bytes, s.files, s.created \
     FROM snapshots s JOIN volumes v ON v.id = s.volume";

impl Catalog {
    /// One volume by name.
    pub fn volume(&self, name: &str) -> Result<VolumeRow> {
        self.read(|db| volume_by_name(db, name))
    }

    /// All volumes, by name.
    pub fn volumes(&self) -> Result<Vec<VolumeRow>> {
        self.read(|db| {
            db.query_all(
                &format!("{VOLUME_SELECT} ORDER BY name"),
                &[],
                volume_from_row,
            )
        })
    }

    /// Snapshots of one volume (or of all), oldest first.
    pub fn snapshots(&self, volume: Option<&str>) -> Result<Vec<SnapshotRow>> {
        self.read(|db| match volume {
            Some(v) => {
                volume_id_any(db, v)?;
                db.query_all(
                    &format!("SELECT {SNAPSHOT_COLS} WHERE v.name = ?1 ORDER BY s.created, s.name"),
                    args![v],
                    snapshot_from_row,
                )
            }
            None => db.query_all(
                &format!("SELECT {SNAPSHOT_COLS} ORDER BY v.name, s.created, s.name"),
                &[],
                snapshot_from_row,
            ),
        })
    }

    /// One snapshot.
    pub fn snapshot(&self, volume: &str, name: &str) -> Result<SnapshotRow> {
        self.read(|db| snapshot_by_name(db, volume, name))
    }
}

/// Records the top directory's metadata of the volume with catalog key `volume`.
pub fn set_root_meta(tx: &dyn Sql, volume: i64, meta: &RootMeta) -> Result<()> {
    let xattrs = postcard::to_allocvec(&meta.xattrs).unwrap_or_default();
    tx.execute(
        "INSERT INTO root_meta (volume, mode, uid, gid, xattrs) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT(volume) DO UPDATE SET mode = ?2, uid = ?3, gid = ?4, xattrs = ?5",
        args![volume, meta.mode, meta.uid, meta.gid, &xattrs[..]],
    )?;
    Ok(())
}

/// The top directory's metadata of the volume with catalog key `volume`
/// (the default if never set).
pub fn root_meta_of(db: &dyn Sql, volume: i64) -> Result<RootMeta> {
    let row = db.query_opt(
        "SELECT mode, uid, gid, xattrs FROM root_meta WHERE volume = ?1",
        args![volume],
        |r| Ok((r.int(0)?, r.int(1)?, r.int(2)?, r.blob(3)?.to_vec())),
    )?;
    let Some((mode, uid, gid, xattrs)) = row else {
        return Ok(RootMeta::default());
    };
    let xattrs = postcard::from_bytes(&xattrs).map_err(|e| {
        Error::corrupt(
            format!("top directory attributes of volume {volume}"),
            e.to_string(),
        )
    })?;
    Ok(RootMeta {
        mode: mode as u32 & 0o7777,
        uid: uid as u32,
        gid: gid as u32,
        xattrs,
    })
}

/// Reads a volume row inside any connection or transaction.
pub fn volume_by_name(db: &dyn Sql, name: &str) -> Result<VolumeRow> {
    db.query_opt(
        &format!("{VOLUME_SELECT} AND name = ?1"),
        args![name],
        volume_from_row,
    )?
    .ok_or_else(|| Error::VolumeNotFound(name.to_string()))
}

/// Reads a snapshot row inside any connection or transaction.
/// The snapshots of a volume deleted with `--keep-snapshots` are found too.
pub fn snapshot_by_name(db: &dyn Sql, volume: &str, name: &str) -> Result<SnapshotRow> {
    volume_id_any(db, volume)?;
    db.query_opt(
        &format!("SELECT {SNAPSHOT_COLS} WHERE v.name = ?1 AND s.name = ?2"),
        args![volume, name],
        snapshot_from_row,
    )?
    .ok_or_else(|| Error::SnapshotNotFound {
        volume: volume.to_string(),
        name: name.to_string(),
    })
}

/// Reads a volume row, live or deleted with its snapshots kept (the
/// source of a clone of one of them).
pub fn volume_by_name_any(db: &dyn Sql, name: &str) -> Result<VolumeRow> {
    db.query_opt(
        &format!("{ANY_VOLUME_SELECT} WHERE name = ?1"),
        args![name],
        volume_from_row,
    )?
    .ok_or_else(|| Error::VolumeNotFound(name.to_string()))
}

/// The catalog key of volume `name`, live or deleted with its snapshots
/// kept, and whether it is deleted.
pub fn volume_id_any(db: &dyn Sql, name: &str) -> Result<(i64, bool)> {
    db.query_opt(
        "SELECT id, deleted FROM volumes WHERE name = ?1",
        args![name],
        |r| Ok((r.int(0)?, r.opt_int(1)?.is_some())),
    )?
    .ok_or_else(|| Error::VolumeNotFound(name.to_string()))
}

/// Adds a volume row.
pub fn insert_volume(
    tx: &dyn Sql,
    name: &str,
    root: &ObjectId,
    bytes: u64,
    files: u64,
    origin: Option<&str>,
    quota: Option<u64>,
) -> Result<()> {
    match volume_id_any(tx, name) {
        Ok((_, false)) => return Err(Error::VolumeExists(name.to_string())),
        Ok((id, true)) => {
            let snapshots = tx.query_one(
                "SELECT count(*) FROM snapshots WHERE volume = ?1",
                args![id],
                |r| r.int(0),
            )? as u64;
            return Err(Error::NameHeld {
                volume: name.to_string(),
                snapshots,
            });
        }
        Err(Error::VolumeNotFound(_)) => {}
        Err(e) => return Err(e),
    }
    let now = now_ns();
    tx.execute(
        "INSERT INTO volumes (name, root, bytes, files, origin, quota, created, updated) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        args![
            name,
            root,
            bytes as i64,
            files as i64,
            origin,
            quota.map(|q| q as i64),
            now
        ],
    )?;
    Ok(())
}

/// Points a volume at a new root, if its root is still `expected`.
pub fn set_root(
    tx: &dyn Sql,
    volume: &str,
    expected: Option<&ObjectId>,
    root: &ObjectId,
    bytes: u64,
    files: u64,
) -> Result<()> {
    let current = volume_by_name(tx, volume)?;
    if let Some(expected) = expected {
        if current.root != *expected {
            return Err(Error::Conflict(volume.to_string()));
        }
    }
    tx.execute(
        "UPDATE volumes SET root = ?1, bytes = ?2, files = ?3, updated = ?4 WHERE id = ?5",
        args![root, bytes as i64, files as i64, now_ns(), current.id],
    )?;
    Ok(())
}

/// Deletes volume `id` and its snapshots; with `keep_snapshots`, a volume
/// that has snapshots is only marked deleted (hidden from every listing,
/// its tree no longer a root) and its snapshots stay.
pub fn delete_volume(tx: &dyn Sql, id: i64, keep_snapshots: bool) -> Result<()> {
    let has_snapshots = tx.exists("SELECT 1 FROM snapshots WHERE volume = ?1", args![id])?;
    if keep_snapshots && has_snapshots {
        tx.execute(
            "UPDATE volumes SET deleted = ?1 WHERE id = ?2",
            args![now_ns(), id],
        )?;
        tx.execute("DELETE FROM leases WHERE volume = ?1", args![id])?;
        return Ok(());
    }
    tx.execute("DELETE FROM snapshots WHERE volume = ?1", args![id])?;
    tx.execute("DELETE FROM volumes WHERE id = ?1", args![id])?;
    Ok(())
}

/// Deletes snapshot `name` of volume `id`, and the volume's row too if it
/// was deleted and this was its last snapshot.
pub fn delete_snapshot(tx: &dyn Sql, volume: i64, name: &str) -> Result<()> {
    tx.execute(
        "DELETE FROM snapshots WHERE volume = ?1 AND name = ?2",
        args![volume, name],
    )?;
    tx.execute(
        "DELETE FROM volumes WHERE id = ?1 AND deleted IS NOT NULL \
         AND NOT EXISTS (SELECT 1 FROM snapshots WHERE volume = ?1)",
        args![volume],
    )?;
    Ok(())
}

/// Sets the quota of volume `id` (`None`: no limit).
pub fn set_quota(tx: &dyn Sql, id: i64, quota: Option<u64>) -> Result<()> {
    tx.execute(
        "UPDATE volumes SET quota = ?1 WHERE id = ?2",
        args![quota.map(|q| q as i64), id],
    )?;
    Ok(())
}

/// Adds a snapshot row.
pub fn insert_snapshot(tx: &dyn Sql, volume: &VolumeRow, name: &str) -> Result<SnapshotRow> {
    if tx.exists(
        "SELECT 1 FROM snapshots WHERE volume = ?1 AND name = ?2",
        args![volume.id, name],
    )? {
        return Err(Error::SnapshotExists {
            volume: volume.name.clone(),
            name: name.to_string(),
        });
    }
    let created = now_ns();
    tx.execute(
        "INSERT INTO snapshots (volume, name, root, bytes, files, created) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        args![
            volume.id,
            name,
            &volume.root,
            volume.bytes as i64,
            volume.files as i64,
            created
        ],
    )?;
    Ok(SnapshotRow {
        volume: volume.name.clone(),
        name: name.to_string(),
        root: volume.root,
        bytes: volume.bytes,
        files: volume.files,
        created,
    })
}
