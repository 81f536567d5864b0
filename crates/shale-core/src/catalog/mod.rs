//! The catalog: transactional records of packs, blobs, volumes and snapshots.
//!
//! Every state change is one transaction, made only after the objects it
//! points to are durable (invariant 2). The catalog lives in one of two
//! databases with the same schema (`schema.rs`, written down in
//! `docs/FORMAT.md`) and the same code (`sql.rs`):
//!
//! - SQLite (`sqlite.rs`): a file in the pool directory, for a pool used
//!   from one machine;
//! - PostgreSQL (`postgres.rs`): for a pool that several machines share.

#[cfg(not(feature = "postgres"))]
#[path = "no_postgres.rs"]
mod postgres;
#[cfg(feature = "postgres")]
mod postgres;
mod schema;
mod sql;
mod sqlite;
mod url;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::args;
use crate::config::PoolOptions;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::store::pack::{BlobKind, Compression, EntryHead};

pub use self::url::{is_postgres_url, without_password};
pub use schema::SCHEMA_VERSION;
pub use sql::{Dialect, Row, Sql, Value};

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
    backend: Mutex<Backend>,
    /// Where it is: a file path or a URL without password.
    location: String,
    /// Set by every committed write; read and cleared by [`Catalog::take_dirty`].
    dirty: AtomicBool,
    /// Whether it is a PostgreSQL database.
    shared: bool,
    /// How long leases and sessions last unless renewed (shared catalogs).
    lease: std::time::Duration,
}

enum Backend {
    Sqlite(rusqlite::Connection),
    Postgres(Box<postgres::Postgres>),
}

/// Current time in ns since the Unix epoch.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The index columns `offset, stored_len, raw_len, kind, compression`,
/// read from `row` starting at column `at`, checked into an entry head.
fn head_from_row(id: ObjectId, row: &Row, at: usize) -> Result<EntryHead> {
    let kind = row.int(at + 3)?;
    let compression = row.int(at + 4)?;
    let what = || format!("index entry of object {id}");
    let Some(kind) = u8::try_from(kind).ok().and_then(BlobKind::from_u8) else {
        return Err(Error::corrupt(what(), format!("unknown kind {kind}")));
    };
    let Some(compression) = u8::try_from(compression)
        .ok()
        .and_then(Compression::from_u8)
    else {
        return Err(Error::corrupt(
            what(),
            format!("unknown compression {compression}"),
        ));
    };
    Ok(EntryHead {
        id,
        kind,
        compression,
        offset: row.int(at)? as u64,
        stored_len: row.int(at + 1)? as u32,
        raw_len: row.int(at + 2)? as u32,
    })
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

/// Checks the schema version recorded in a catalog, upgrading an older one.
fn check_schema(db: &dyn Sql, location: &str, pool_id: Option<&str>) -> Result<()> {
    let what = || format!("catalog {location}");
    let meta = |key: &str| {
        db.query_opt("SELECT value FROM meta WHERE key = ?1", args![key], |r| {
            r.text(0)
        })
        .map_err(|e| Error::corrupt(what(), e.to_string()))
    };
    let version = meta("schema_version")?;
    match version.as_deref() {
        Some(v) if v == SCHEMA_VERSION.to_string() => {}
        Some(old) if schema::upgrade(old, db.dialect()).is_some() => {
            let sql = schema::upgrade(old, db.dialect()).unwrap_or_default();
            db.batch(&sql).map_err(|e| {
                Error::corrupt(
                    what(),
                    format!("upgrading schema {old} to {SCHEMA_VERSION}: {e}"),
                )
            })?
        }
        Some(v) => {
            return Err(Error::UnsupportedFormat {
                path: PathBuf::from(location),
                found: format!("catalog schema {v}"),
                supported: SCHEMA_VERSION,
                advice: "use the Shale release that created this pool",
            })
        }
        None => return Err(Error::corrupt(what(), "no schema version recorded")),
    }
    if let Some(expected) = pool_id {
        let found = meta("pool_id")?;
        if found.as_deref() != Some(expected) {
            return Err(Error::InvalidArgument(format!(
                "the catalog database {location} belongs to another pool ({}), not to this one ({expected})",
                found.as_deref().unwrap_or("none recorded")
            )));
        }
    }
    Ok(())
}

impl Catalog {
    /// Creates a new SQLite catalog at `path`; fails if one exists.
    pub fn create(path: &Path) -> Result<Self> {
        if path.exists() {
            return Err(Error::PoolExists(path.to_path_buf()));
        }
        let mut conn = sqlite::open(path)?;
        sqlite::write(&mut conn, true, |db| {
            db.batch(&schema::create(Dialect::Sqlite))
        })?;
        Ok(Catalog::new(
            Backend::Sqlite(conn),
            path.display().to_string(),
        ))
    }

    /// Opens an existing SQLite catalog and checks its schema version.
    pub fn open(path: &Path) -> Result<Self> {
        let location = path.display().to_string();
        if !path.is_file() {
            return Err(Error::corrupt(
                format!("catalog {location}"),
                "the file is missing",
            ));
        }
        let mut conn = sqlite::open(path)
            .map_err(|e| Error::corrupt(format!("catalog {location}"), e.to_string()))?;
        sqlite::write(&mut conn, true, |db| check_schema(db, &location, None))?;
        Ok(Catalog::new(Backend::Sqlite(conn), location))
    }

    /// Creates the catalog of pool `pool_id` in the (empty) PostgreSQL
    /// database at `url`.
    pub fn create_postgres(url: &str, pool_id: &str, options: &PoolOptions) -> Result<Self> {
        let mut pg = postgres::Postgres::connect(url, options)?;
        let location = pg.url().to_string();
        pg.write(|db| {
            let taken = db.exists(
                "SELECT 1 FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = 'meta'",
                &[],
            )?;
            if taken {
                return Err(Error::InvalidArgument(format!(
                    "the database {location} already holds a Shale catalog; \
                     give each pool its own database (or schema)"
                )));
            }
            db.batch(&schema::create(Dialect::Postgres))?;
            db.execute("INSERT INTO meta VALUES ('pool_id', ?1)", args![pool_id])?;
            Ok(())
        })?;
        Ok(Catalog::new(Backend::Postgres(Box::new(pg)), location))
    }

    /// Opens the catalog of pool `pool_id` in the PostgreSQL database at `url`.
    pub fn open_postgres(url: &str, pool_id: &str, options: &PoolOptions) -> Result<Self> {
        let mut pg = postgres::Postgres::connect(url, options)?;
        let location = pg.url().to_string();
        pg.write(|db| {
            if !db.exists(
                "SELECT 1 FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = 'meta'",
                &[],
            )? {
                return Err(Error::corrupt(
                    format!("catalog {location}"),
                    "the database holds no Shale catalog",
                ));
            }
            check_schema(db, &location, Some(pool_id))
        })?;
        Ok(Catalog::new(Backend::Postgres(Box::new(pg)), location))
    }

    fn new(backend: Backend, location: String) -> Self {
        Catalog {
            shared: matches!(backend, Backend::Postgres(_)),
            backend: Mutex::new(backend),
            location,
            dirty: AtomicBool::new(false),
            lease: PoolOptions::default().lease,
        }
    }

    /// This catalog with leases and sessions lasting `lease` unless renewed.
    pub fn with_lease(mut self, lease: std::time::Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How long a lease or session on this catalog lasts unless renewed.
    pub fn lease(&self) -> std::time::Duration {
        self.lease
    }

    /// Where the catalog is: its file, or its database URL (without password).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Whether several machines may use this catalog at once (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    fn lock(&self) -> MutexGuard<'_, Backend> {
        self.backend.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` inside one write transaction (taken at once, so concurrent
    /// writers queue instead of failing later). With a shared catalog `f`
    /// runs again if the connection is lost before the commit: it must act
    /// only through the transaction it is given.
    pub fn write<T>(&self, f: impl FnMut(&dyn Sql) -> Result<T>) -> Result<T> {
        self.write_as(true, f)
    }

    /// Like [`Catalog::write`], for bookkeeping that no caller reports as
    /// done on its own (writing sessions, the index of a pack its writer
    /// has yet to commit): the embedded catalog commits it without waiting
    /// for the disk. Its WAL is written in order, so the next synced
    /// transaction (the writer's root move) makes it durable too; a crash
    /// of the process loses nothing, and a crash of the machine before that
    /// leaves a stale session or an unindexed pack, both garbage that `gc`
    /// removes. A PostgreSQL catalog commits it synchronously all the same:
    /// its server may restart, losing such a commit, while the writer goes
    /// on to commit a root that needs it.
    pub fn write_unsynced<T>(&self, f: impl FnMut(&dyn Sql) -> Result<T>) -> Result<T> {
        self.write_as(false, f)
    }

    fn write_as<T>(&self, synced: bool, f: impl FnMut(&dyn Sql) -> Result<T>) -> Result<T> {
        let out = match &mut *self.lock() {
            Backend::Sqlite(conn) => sqlite::write(conn, synced, f)?,
            Backend::Postgres(pg) => pg.write(f)?,
        };
        self.dirty.store(true, Ordering::Release);
        crate::failpoint::fail_point("commit.after");
        Ok(out)
    }

    /// Whether a write committed since the last call (for pools whose
    /// catalog is copied elsewhere after changes).
    pub fn take_dirty(&self) -> bool {
        self.dirty.swap(false, Ordering::AcqRel)
    }

    /// Runs a read-only closure against the database.
    pub fn read<T>(&self, mut f: impl FnMut(&dyn Sql) -> Result<T>) -> Result<T> {
        match &mut *self.lock() {
            Backend::Sqlite(conn) => f(&sqlite::Sqlite(conn)),
            Backend::Postgres(pg) => pg.read(f),
        }
    }

    /// Writes a consistent copy of an SQLite catalog to `target`.
    pub fn copy_to(&self, target: &Path) -> Result<()> {
        match &*self.lock() {
            Backend::Sqlite(conn) => sqlite::copy_to(conn, target),
            Backend::Postgres(_) => Err(Error::InvalidArgument(format!(
                "the catalog {} is a PostgreSQL database: it is not copied",
                self.location
            ))),
        }
    }

    /// Whether the index knows a blob that a writer may share (one that
    /// `gc` has not condemned).
    pub fn has_blob(&self, id: &ObjectId) -> Result<bool> {
        self.read(|db| {
            db.exists(
                "SELECT 1 FROM blobs WHERE id = ?1 AND condemned = 0",
                args![id],
            )
        })
    }

    /// Where a blob is stored, if the index knows it.
    pub fn locate_blob(&self, id: &ObjectId) -> Result<Option<BlobLocation>> {
        self.read(|db| {
            db.query_opt(
                "SELECT p.name, b.\"offset\", b.stored_len, b.raw_len, b.kind, b.compression \
                 FROM blobs b JOIN packs p ON p.id = b.pack WHERE b.id = ?1",
                args![id],
                |r| {
                    Ok(BlobLocation {
                        pack: r.id(0)?,
                        head: head_from_row(*id, r, 1)?,
                    })
                },
            )
        })
    }

    /// Where a blob is, with every other entry of its pack (empty if the
    /// index does not know it).
    pub fn locate_pack_of(&self, id: &ObjectId) -> Result<Vec<BlobLocation>> {
        self.read(|db| {
            db.query_all(
                "SELECT p.name, b.id, b.\"offset\", b.stored_len, b.raw_len, b.kind, b.compression \
                 FROM blobs b JOIN packs p ON p.id = b.pack \
                 WHERE b.pack = (SELECT pack FROM blobs WHERE id = ?1)",
                args![id],
                |r| {
                    Ok(BlobLocation {
                        pack: r.id(0)?,
                        head: head_from_row(r.id(1)?, r, 2)?,
                    })
                },
            )
        })
    }

    /// Every pack: (catalog key, name).
    pub fn packs(&self) -> Result<Vec<(i64, ObjectId)>> {
        self.read(|db| {
            db.query_all("SELECT id, name FROM packs ORDER BY id", &[], |r| {
                Ok((r.int(0)?, r.id(1)?))
            })
        })
    }

    /// The index entries of one pack, in pack order.
    pub fn blobs_in_pack(&self, pack: i64) -> Result<Vec<EntryHead>> {
        self.read(|db| {
            db.query_all(
                "SELECT id, \"offset\", stored_len, raw_len, kind, compression FROM blobs \
                 WHERE pack = ?1 ORDER BY \"offset\"",
                args![pack],
                |r| head_from_row(r.id(0)?, r, 1),
            )
        })
    }

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

    /// Pool-wide totals.
    pub fn totals(&self) -> Result<Totals> {
        self.read(|db| {
            let q = |sql: &str| -> Result<u64> {
                Ok(db.query_one(sql, &[], |r| r.opt_int(0))?.unwrap_or(0) as u64)
            };
            Ok(Totals {
                volumes: q("SELECT count(*) FROM volumes")?,
                snapshots: q("SELECT count(*) FROM snapshots")?,
                logical_bytes: q(
                    "SELECT CAST(coalesce((SELECT sum(bytes) FROM volumes), 0) + \
                                  coalesce((SELECT sum(bytes) FROM snapshots), 0) AS BIGINT)",
                )?,
                unique_bytes: q("SELECT CAST(sum(raw_len) AS BIGINT) FROM blobs WHERE kind = 0")?,
                compressed_bytes: q(
                    "SELECT CAST(sum(stored_len) AS BIGINT) FROM blobs WHERE kind = 0",
                )?,
                stored_bytes: q("SELECT CAST(sum(size) AS BIGINT) FROM packs")?,
                packs: q("SELECT count(*) FROM packs")?,
            })
        })
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

/// Records durable packs and their blobs in the index. A blob already
/// indexed keeps its place, unless `gc` condemned it: then this new copy
/// replaces it (the writer chose to write it because it was condemned).
/// Returns the catalog keys of the packs, in order.
pub fn insert_packs(tx: &dyn Sql, packs: &[SealedPack], session: Option<i64>) -> Result<Vec<i64>> {
    let mut keys = Vec::with_capacity(packs.len());
    for pack in packs {
        tx.execute(
            "INSERT INTO packs (name, size, created, session) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT DO NOTHING",
            args![&pack.name, pack.size as i64, now_ns(), session],
        )?;
        let pack_id = tx.query_one(
            "SELECT id FROM packs WHERE name = ?1",
            args![&pack.name],
            |r| r.int(0),
        )?;
        keys.push(pack_id);
        for e in &pack.entries {
            tx.execute(
                "INSERT INTO blobs (id, pack, \"offset\", stored_len, raw_len, kind, compression) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (id) DO UPDATE SET pack = excluded.pack, \"offset\" = excluded.\"offset\", \
                   stored_len = excluded.stored_len, raw_len = excluded.raw_len, kind = excluded.kind, \
                   compression = excluded.compression, condemned = 0 \
                 WHERE blobs.condemned = 1",
                args![
                    &e.id,
                    pack_id,
                    e.offset as i64,
                    e.stored_len as i64,
                    e.raw_len as i64,
                    e.kind as u8,
                    e.compression as u8,
                ],
            )?;
        }
    }
    Ok(keys)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A catalog written by a version 1 build opens, upgraded to the current version.
    #[test]
    fn upgrades_schema_1() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let mut conn = sqlite::open(&path).unwrap();
        sqlite::write(&mut conn, true, |db| db.batch(&schema::version_1())).unwrap();
        drop(conn);
        let c = Catalog::open(&path).unwrap();
        let v = c
            .read(|db| {
                db.query_one(
                    "SELECT value FROM meta WHERE key = 'schema_version'",
                    &[],
                    |r| r.text(0),
                )
            })
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION.to_string());
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
        assert_eq!(c.read(|db| root_meta_of(db, id)).unwrap(), meta);
        // a catalog from a newer build is refused
        c.write(|tx| {
            tx.execute(
                "UPDATE meta SET value = '9' WHERE key = 'schema_version'",
                &[],
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
