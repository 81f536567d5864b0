//! The catalog: transactional records of packs, blobs, volumes and snapshots.
//!
//! The embedded catalog is one SQLite database in the pool directory, opened
//! in WAL mode with `synchronous=FULL`. Every state change is one
//! transaction, made only after the objects it points to are durable
//! (invariant 2). The schema is written down in `docs/FORMAT.md`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::pack::{BlobKind, Compression, EntryHead};

/// Version of the catalog schema this build reads and writes. Version 1
/// catalogs are upgraded in place when opened (see [`UPGRADE_1_TO_2`]).
pub const SCHEMA_VERSION: u32 = 3;

/// Version 2 adds `root_meta`: the mode, owner and extended attributes of a
/// volume's top directory, which its tree does not hold.
const ROOT_META_TABLE: &str = "
CREATE TABLE IF NOT EXISTS root_meta (
    volume INTEGER PRIMARY KEY REFERENCES volumes(id) ON DELETE CASCADE,
    mode INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    gid INTEGER NOT NULL,
    xattrs BLOB NOT NULL
);
";

/// Version 3 adds the lineage records of runs (`lineage.rs`): a run, and
/// each snapshot it read (`output` 0) or wrote (1). Names are kept as text,
/// not keys: the record outlives the volumes and snapshots it names.
const RUNS_TABLES: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    command TEXT NOT NULL,
    host TEXT NOT NULL,
    started INTEGER NOT NULL,
    ended INTEGER,
    exit_code INTEGER,
    mlflow_run TEXT
);
CREATE TABLE IF NOT EXISTS run_data (
    run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    output INTEGER NOT NULL,
    volume TEXT NOT NULL,
    snapshot TEXT NOT NULL,
    snapshot_id BLOB NOT NULL,
    PRIMARY KEY (run, output, volume)
);
";

/// Brings a version 1 or 2 catalog to version 3 (every table added since
/// is created only if missing).
const UPGRADE_TO_3: &str = "UPDATE meta SET value = '3' WHERE key = 'schema_version';";

const SCHEMA: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE packs (
    id INTEGER PRIMARY KEY,
    name BLOB NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    created INTEGER NOT NULL,
    session INTEGER
);
CREATE TABLE blobs (
    id BLOB PRIMARY KEY,
    pack INTEGER NOT NULL REFERENCES packs(id),
    offset INTEGER NOT NULL,
    stored_len INTEGER NOT NULL,
    raw_len INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    compression INTEGER NOT NULL,
    condemned INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX blobs_by_pack ON blobs(pack);
CREATE TABLE volumes (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    root BLOB NOT NULL,
    bytes INTEGER NOT NULL,
    files INTEGER NOT NULL,
    origin TEXT,
    quota INTEGER,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL
);
CREATE TABLE sessions (
    id INTEGER PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    proc_start INTEGER NOT NULL,
    started INTEGER NOT NULL,
    what TEXT NOT NULL
);
CREATE TABLE snapshots (
    volume INTEGER NOT NULL REFERENCES volumes(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    root BLOB NOT NULL,
    bytes INTEGER NOT NULL,
    files INTEGER NOT NULL,
    created INTEGER NOT NULL,
    PRIMARY KEY (volume, name)
);
";

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

/// Records the top directory's metadata of the volume with catalog key `volume`.
pub fn set_root_meta(tx: &Transaction<'_>, volume: i64, meta: &RootMeta) -> Result<()> {
    let xattrs = postcard::to_allocvec(&meta.xattrs).unwrap_or_default();
    tx.execute(
        "INSERT INTO root_meta (volume, mode, uid, gid, xattrs) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT(volume) DO UPDATE SET mode = ?2, uid = ?3, gid = ?4, xattrs = ?5",
        params![volume, meta.mode, meta.uid, meta.gid, xattrs],
    )?;
    Ok(())
}

/// The top directory's metadata of the volume with catalog key `volume`
/// (the default if never set).
pub fn root_meta_of(conn: &Connection, volume: i64) -> Result<RootMeta> {
    let row = conn
        .query_row(
            "SELECT mode, uid, gid, xattrs FROM root_meta WHERE volume = ?1",
            [volume],
            |r| {
                Ok((
                    r.get::<_, u32>(0)?,
                    r.get::<_, u32>(1)?,
                    r.get::<_, u32>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                ))
            },
        )
        .optional()?;
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
        mode: mode & 0o7777,
        uid,
        gid,
        xattrs,
    })
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

/// Where a blob lives.
#[derive(Clone, Debug)]
pub struct BlobLocation {
    /// Name (hash) of the pack holding it.
    pub pack: ObjectId,
    /// Its entry in that pack.
    pub head: EntryHead,
}

/// A pack that is durable in the object store, with the entries it holds.
#[derive(Clone, Debug)]
pub struct SealedPack {
    /// BLAKE3 of the pack's bytes.
    pub name: ObjectId,
    /// Size in bytes.
    pub size: u64,
    /// Its entries.
    pub entries: Vec<EntryHead>,
}

/// Pool-wide totals for `pool info`.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    /// Number of volumes.
    pub volumes: u64,
    /// Number of snapshots.
    pub snapshots: u64,
    /// Sum of the logical sizes of all volumes and snapshots.
    pub logical_bytes: u64,
    /// Plaintext bytes of distinct data chunks.
    pub unique_bytes: u64,
    /// Stored bytes of distinct data chunks (after compression).
    pub compressed_bytes: u64,
    /// Bytes of all packs, metadata included.
    pub stored_bytes: u64,
    /// Number of packs.
    pub packs: u64,
}

/// A handle on the catalog database.
pub struct Catalog {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// Set by every committed write; read and cleared by [`Catalog::take_dirty`].
    dirty: AtomicBool,
}

fn sqlite_open(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(60))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// Current time in ns since the Unix epoch.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn id_col(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<ObjectId> {
    let bytes: Vec<u8> = row.get(idx)?;
    ObjectId::from_slice(&bytes).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            idx,
            rusqlite::types::Type::Blob,
            "object id is not 32 bytes".into(),
        )
    })
}

/// The index columns `offset, stored_len, raw_len, kind, compression`,
/// read from `row` starting at column `at`, checked into an entry head.
fn head_from_row(
    id: ObjectId,
    row: &rusqlite::Row<'_>,
    at: usize,
) -> rusqlite::Result<Result<EntryHead>> {
    let offset: i64 = row.get(at)?;
    let stored_len: i64 = row.get(at + 1)?;
    let raw_len: i64 = row.get(at + 2)?;
    let kind: u8 = row.get(at + 3)?;
    let compression: u8 = row.get(at + 4)?;
    let what = || format!("index entry of object {id}");
    let Some(kind) = BlobKind::from_u8(kind) else {
        return Ok(Err(Error::corrupt(what(), format!("unknown kind {kind}"))));
    };
    let Some(compression) = Compression::from_u8(compression) else {
        return Ok(Err(Error::corrupt(
            what(),
            format!("unknown compression {compression}"),
        )));
    };
    Ok(Ok(EntryHead {
        id,
        kind,
        compression,
        raw_len: raw_len as u32,
        stored_len: stored_len as u32,
        offset: offset as u64,
    }))
}

fn volume_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<VolumeRow> {
    Ok(VolumeRow {
        id: row.get(0)?,
        name: row.get(1)?,
        root: id_col(row, 2)?,
        bytes: row.get::<_, i64>(3)? as u64,
        files: row.get::<_, i64>(4)? as u64,
        origin: row.get(5)?,
        quota: row.get::<_, Option<i64>>(6)?.map(|q| q as u64),
        created: row.get(7)?,
        updated: row.get(8)?,
    })
}

fn snapshot_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SnapshotRow> {
    Ok(SnapshotRow {
        volume: row.get(0)?,
        name: row.get(1)?,
        root: id_col(row, 2)?,
        bytes: row.get::<_, i64>(3)? as u64,
        files: row.get::<_, i64>(4)? as u64,
        created: row.get(5)?,
    })
}

const VOLUME_COLS: &str =
    "id, name, root, bytes, files, origin, quota, created, updated FROM volumes";
const SNAPSHOT_COLS: &str = "v.name, s.name, s.root, s.bytes, s.files, s.created \
     FROM snapshots s JOIN volumes v ON v.id = s.volume";

impl Catalog {
    /// Creates a new catalog at `path`; fails if one exists.
    pub fn create(path: &Path) -> Result<Self> {
        if path.exists() {
            return Err(Error::PoolExists(path.to_path_buf()));
        }
        let conn = sqlite_open(path)?;
        conn.execute_batch(&format!(
            "BEGIN; {SCHEMA} {ROOT_META_TABLE} {RUNS_TABLES} INSERT INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}'); COMMIT;"
        ))?;
        Ok(Catalog {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            dirty: AtomicBool::new(false),
        })
    }

    /// Opens an existing catalog and checks its schema version.
    pub fn open(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::corrupt(
                format!("catalog {}", path.display()),
                "the file is missing",
            ));
        }
        let conn = sqlite_open(path)
            .map_err(|e| Error::corrupt(format!("catalog {}", path.display()), e.to_string()))?;
        let version: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| Error::corrupt(format!("catalog {}", path.display()), e.to_string()))?;
        match version.as_deref() {
            Some(v) if v == SCHEMA_VERSION.to_string() => {}
            Some(old @ ("1" | "2")) => conn
                .execute_batch(&format!(
                    "BEGIN IMMEDIATE; {ROOT_META_TABLE} {RUNS_TABLES} {UPGRADE_TO_3} COMMIT;"
                ))
                .map_err(|e| {
                    Error::corrupt(
                        format!("catalog {}", path.display()),
                        format!("upgrading schema {old} to {SCHEMA_VERSION}: {e}"),
                    )
                })?,
            Some(v) => {
                return Err(Error::UnsupportedFormat {
                    path: path.to_path_buf(),
                    found: format!("catalog schema {v}"),
                    supported: SCHEMA_VERSION,
                    advice: "use the Shale release that created this pool",
                })
            }
            None => {
                return Err(Error::corrupt(
                    format!("catalog {}", path.display()),
                    "no schema version recorded",
                ))
            }
        }
        Ok(Catalog {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            dirty: AtomicBool::new(false),
        })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` inside one write transaction (taken at once, so concurrent
    /// writers queue instead of failing later).
    pub fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        crate::failpoint::fail_point("commit.before");
        tx.commit()?;
        self.dirty.store(true, Ordering::Release);
        crate::failpoint::fail_point("commit.after");
        Ok(out)
    }

    /// Whether a write committed since the last call (for pools whose
    /// catalog is copied elsewhere after changes).
    pub fn take_dirty(&self) -> bool {
        self.dirty.swap(false, Ordering::AcqRel)
    }

    /// Runs a read-only closure against the connection.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.lock();
        f(&conn)
    }

    /// Whether the index knows a blob that a writer may share (one that
    /// `gc` has not condemned).
    pub fn has_blob(&self, id: &ObjectId) -> Result<bool> {
        let conn = self.lock();
        let mut stmt =
            conn.prepare_cached("SELECT 1 FROM blobs WHERE id = ?1 AND condemned = 0")?;
        Ok(stmt.exists([&id.0[..]])?)
    }

    /// Where a blob is stored, if the index knows it.
    pub fn locate_blob(&self, id: &ObjectId) -> Result<Option<BlobLocation>> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT p.name, b.offset, b.stored_len, b.raw_len, b.kind, b.compression \
             FROM blobs b JOIN packs p ON p.id = b.pack WHERE b.id = ?1",
        )?;
        let row = stmt
            .query_row([&id.0[..]], |r| {
                Ok((id_col(r, 0)?, head_from_row(*id, r, 1)?))
            })
            .optional()?;
        let Some((pack, head)) = row else {
            return Ok(None);
        };
        Ok(Some(BlobLocation { pack, head: head? }))
    }

    /// Every pack: (catalog key, name).
    pub fn packs(&self) -> Result<Vec<(i64, ObjectId)>> {
        let conn = self.lock();
        let mut stmt = conn.prepare("SELECT id, name FROM packs ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, id_col(r, 1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The index entries of one pack, in pack order.
    pub fn blobs_in_pack(&self, pack: i64) -> Result<Vec<EntryHead>> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT id, offset, stored_len, raw_len, kind, compression FROM blobs \
             WHERE pack = ?1 ORDER BY offset",
        )?;
        let rows = stmt.query_map([pack], |r| head_from_row(id_col(r, 0)?, r, 1))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row??);
        }
        Ok(out)
    }

    /// One volume by name.
    pub fn volume(&self, name: &str) -> Result<VolumeRow> {
        self.read(|c| volume_by_name(c, name))
    }

    /// All volumes, by name.
    pub fn volumes(&self) -> Result<Vec<VolumeRow>> {
        let conn = self.lock();
        let mut stmt = conn.prepare(&format!("SELECT {VOLUME_COLS} ORDER BY name"))?;
        let rows = stmt.query_map([], volume_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Snapshots of one volume (or of all), oldest first.
    pub fn snapshots(&self, volume: Option<&str>) -> Result<Vec<SnapshotRow>> {
        let conn = self.lock();
        if let Some(v) = volume {
            volume_by_name(&conn, v)?;
        }
        let mut stmt = conn.prepare(&format!(
            "SELECT {SNAPSHOT_COLS} WHERE ?1 IS NULL OR v.name = ?1 \
             ORDER BY v.name, s.created, s.name"
        ))?;
        let rows = stmt.query_map([volume], snapshot_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// One snapshot.
    pub fn snapshot(&self, volume: &str, name: &str) -> Result<SnapshotRow> {
        self.read(|c| snapshot_by_name(c, volume, name))
    }

    /// Pool-wide totals.
    pub fn totals(&self) -> Result<Totals> {
        self.read(|c| {
            let q = |sql: &str| -> Result<u64> {
                Ok(c.query_row(sql, [], |r| r.get::<_, Option<i64>>(0))?
                    .unwrap_or(0) as u64)
            };
            Ok(Totals {
                volumes: q("SELECT count(*) FROM volumes")?,
                snapshots: q("SELECT count(*) FROM snapshots")?,
                logical_bytes: q("SELECT (SELECT sum(bytes) FROM volumes) + \
                                  coalesce((SELECT sum(bytes) FROM snapshots), 0)")?,
                unique_bytes: q("SELECT sum(raw_len) FROM blobs WHERE kind = 0")?,
                compressed_bytes: q("SELECT sum(stored_len) FROM blobs WHERE kind = 0")?,
                stored_bytes: q("SELECT sum(size) FROM packs")?,
                packs: q("SELECT count(*) FROM packs")?,
            })
        })
    }
}

/// Reads a volume row inside any connection or transaction.
pub fn volume_by_name(conn: &Connection, name: &str) -> Result<VolumeRow> {
    conn.query_row(
        &format!("SELECT {VOLUME_COLS} WHERE name = ?1"),
        [name],
        volume_from_row,
    )
    .optional()?
    .ok_or_else(|| Error::VolumeNotFound(name.to_string()))
}

/// Reads a snapshot row inside any connection or transaction.
pub fn snapshot_by_name(conn: &Connection, volume: &str, name: &str) -> Result<SnapshotRow> {
    volume_by_name(conn, volume)?;
    conn.query_row(
        &format!("SELECT {SNAPSHOT_COLS} WHERE v.name = ?1 AND s.name = ?2"),
        [volume, name],
        snapshot_from_row,
    )
    .optional()?
    .ok_or_else(|| Error::SnapshotNotFound {
        volume: volume.to_string(),
        name: name.to_string(),
    })
}

/// Records durable packs and their blobs in the index. A blob already
/// indexed keeps its place, unless `gc` condemned it: then this new copy
/// replaces it (the writer chose to write it because it was condemned).
pub fn insert_packs(
    tx: &Transaction<'_>,
    packs: &[SealedPack],
    session: Option<i64>,
) -> Result<()> {
    let mut pack_stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO packs (name, size, created, session) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut id_stmt = tx.prepare_cached("SELECT id FROM packs WHERE name = ?1")?;
    let mut blob_stmt = tx.prepare_cached(
        "INSERT INTO blobs (id, pack, offset, stored_len, raw_len, kind, compression) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT (id) DO UPDATE SET pack = excluded.pack, offset = excluded.offset, \
           stored_len = excluded.stored_len, raw_len = excluded.raw_len, kind = excluded.kind, \
           compression = excluded.compression, condemned = 0 \
         WHERE blobs.condemned = 1",
    )?;
    for pack in packs {
        pack_stmt.execute(params![
            &pack.name.0[..],
            pack.size as i64,
            now_ns(),
            session
        ])?;
        let pack_id: i64 = id_stmt.query_row([&pack.name.0[..]], |r| r.get(0))?;
        for e in &pack.entries {
            blob_stmt.execute(params![
                &e.id.0[..],
                pack_id,
                e.offset as i64,
                e.stored_len as i64,
                e.raw_len as i64,
                e.kind as u8,
                e.compression as u8,
            ])?;
        }
    }
    Ok(())
}

/// Adds a volume row.
pub fn insert_volume(
    tx: &Transaction<'_>,
    name: &str,
    root: &ObjectId,
    bytes: u64,
    files: u64,
    origin: Option<&str>,
    quota: Option<u64>,
) -> Result<()> {
    if tx
        .query_row("SELECT 1 FROM volumes WHERE name = ?1", [name], |_| Ok(()))
        .optional()?
        .is_some()
    {
        return Err(Error::VolumeExists(name.to_string()));
    }
    let now = now_ns();
    tx.execute(
        "INSERT INTO volumes (name, root, bytes, files, origin, quota, created, updated) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        params![
            name,
            &root.0[..],
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
    tx: &Transaction<'_>,
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
        params![
            &root.0[..],
            bytes as i64,
            files as i64,
            now_ns(),
            current.id
        ],
    )?;
    Ok(())
}

/// Adds a snapshot row.
pub fn insert_snapshot(
    tx: &Transaction<'_>,
    volume: &VolumeRow,
    name: &str,
) -> Result<SnapshotRow> {
    let exists = tx
        .query_row(
            "SELECT 1 FROM snapshots WHERE volume = ?1 AND name = ?2",
            params![volume.id, name],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if exists {
        return Err(Error::SnapshotExists {
            volume: volume.name.clone(),
            name: name.to_string(),
        });
    }
    let created = now_ns();
    tx.execute(
        "INSERT INTO snapshots (volume, name, root, bytes, files, created) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            volume.id,
            name,
            &volume.root.0[..],
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A catalog written by a version 1 build opens, upgraded to the current version.
    #[test]
    fn upgrades_schema_1() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let conn = sqlite_open(&path).unwrap();
        conn.execute_batch(&format!(
            "BEGIN; {SCHEMA} INSERT INTO meta VALUES ('schema_version', '1'); COMMIT;"
        ))
        .unwrap();
        drop(conn);
        let c = Catalog::open(&path).unwrap();
        let v: String = c
            .read(|conn| {
                Ok(conn.query_row(
                    "SELECT value FROM meta WHERE key = 'schema_version'",
                    [],
                    |r| r.get(0),
                )?)
            })
            .unwrap();
        assert_eq!(v, "3");
        let meta = RootMeta {
            mode: 0o750,
            uid: 7,
            gid: 8,
            xattrs: vec![(b"user.a".to_vec(), b"b".to_vec())],
        };
        c.write(|tx| {
            insert_volume(tx, "v", &ObjectId::of(b"t"), 0, 0, None, None)?;
            let id = volume_by_name(tx, "v")?.id;
            assert_eq!(root_meta_of(tx, id)?, RootMeta::default());
            set_root_meta(tx, id, &meta)
        })
        .unwrap();
        let id = c.volume("v").unwrap().id;
        assert_eq!(c.read(|conn| root_meta_of(conn, id)).unwrap(), meta);
        // a catalog from a newer build is refused
        c.write(|tx| {
            tx.execute(
                "UPDATE meta SET value = '9' WHERE key = 'schema_version'",
                [],
            )?;
            Ok(())
        })
        .unwrap();
        drop(c);
        assert!(matches!(
            Catalog::open(&path),
            Err(Error::UnsupportedFormat { .. })
        ));
    }
}
