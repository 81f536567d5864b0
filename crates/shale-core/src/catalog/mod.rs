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

mod gc;
mod history;
mod holders;
mod index;
mod mirrors;
mod policies;
#[cfg(not(feature = "postgres"))]
#[path = "no_postgres.rs"]
mod postgres;
#[cfg(feature = "postgres")]
mod postgres;
mod runs;
mod schema;
mod sql;
mod sqlite;
mod syncs;
mod tokens;
mod url;
mod volumes;
mod workspaces;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::args;
use crate::config::PoolOptions;
use crate::error::{Error, Result};

pub use self::url::{is_postgres_url, without_password};
pub use gc::PackUsage;
pub(crate) use gc::{
    blobs_written_before, drop_condemned, drop_pack_if_unused, each_blob, move_blob, pack_usage,
    session_ids, set_condemned,
};
pub use history::SpaceSample;
pub(crate) use history::{record_space, space_history};
pub(crate) use holders::{
    delete_lease, delete_session, insert_session, lease_of, put_lease, renew, sessions,
};
pub use holders::{Holder, LeaseRow, SessionRow};
pub(crate) use index::insert_packs;
pub use index::{BlobLocation, SealedPack, Totals};
pub(crate) use mirrors::{
    delete_mirror, insert_mirror, mirror_of, mirrors, record_transfer, set_mirror_state,
};
pub use mirrors::{MirrorRow, Policy, Transfer};
pub use policies::SnapshotPolicy;
pub(crate) use policies::{delete_policy, policies, set_policy};
pub(crate) use runs::{end_run, insert_run, insert_run_data, runs, set_run_mlflow};
pub use runs::{Run, RunData};
pub use schema::SCHEMA_VERSION;
pub use sql::{Dialect, Row, Sql, Value};
pub use syncs::SavedSyncRow;
pub(crate) use syncs::{
    delete_saved_sync, insert_saved_sync, record_sync_run, saved_sync, saved_syncs,
};
pub(crate) use tokens::{audit, insert_audit, insert_token, revoke_token, token_by_hash, tokens};
pub use tokens::{AuditRow, TokenRow};
pub(crate) use volumes::{
    delete_snapshot, delete_volume, insert_snapshot, insert_volume, root_meta_of, set_quota,
    set_root, set_root_meta, snapshot_by_name, volume_by_name, volume_by_name_any, volume_id_any,
};
pub use volumes::{RootMeta, SnapshotRow, VolumeRow};
pub use workspaces::WorkspaceRow;
pub(crate) use workspaces::{delete_workspace, insert_workspace, workspace, workspaces};

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
        // Made owner-only first: SQLite gives its -wal and -shm files the
        // database file's mode.
        crate::private::write(path, b"").map_err(|e| Error::io(path, e))?;
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ObjectId;

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
                &format!(
                    "UPDATE meta SET value = '{}' WHERE key = 'schema_version'",
                    SCHEMA_VERSION + 1
                ),
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
