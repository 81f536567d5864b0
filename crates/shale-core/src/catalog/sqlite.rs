//! The embedded catalog: one SQLite database file, opened in WAL mode with
//! `synchronous=FULL` (NORMAL for `Catalog::write_unsynced`); writers take the database lock when their
//! transaction begins (`BEGIN IMMEDIATE`), so concurrent writers queue.

use std::path::Path;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params_from_iter, Connection, TransactionBehavior};

use super::sql::{Dialect, Row, Sql, Value};
use crate::error::Result;

/// Opens (creating if absent) the database file at `path`.
pub fn open(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(60))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// Runs `f` in one write transaction on `conn`, committing if it succeeds;
/// unless `synced`, without waiting for the disk (see
/// `Catalog::write_unsynced`).
pub fn write<T>(
    conn: &mut Connection,
    synced: bool,
    f: impl FnOnce(&dyn Sql) -> Result<T>,
) -> Result<T> {
    if !synced {
        conn.pragma_update(None, "synchronous", "NORMAL")?;
    }
    let out = (|| {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&Sqlite(&tx))?;
        crate::failpoint::fail_point("commit.before");
        tx.commit()?;
        Ok(out)
    })();
    if !synced {
        conn.pragma_update(None, "synchronous", "FULL")?;
    }
    out
}

/// Writes a consistent copy of the database to `target` (`VACUUM INTO`).
pub fn copy_to(conn: &Connection, target: &Path) -> Result<()> {
    conn.execute("VACUUM INTO ?1", [target.to_string_lossy()])?;
    Ok(())
}

/// [`Sql`] over a SQLite connection or transaction.
pub struct Sqlite<'a>(pub &'a Connection);

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(v) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Value::Text(v) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
            Value::Blob(v) => ToSqlOutput::Borrowed(ValueRef::Blob(v)),
        })
    }
}

fn value_of(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        // The schema has no REAL columns; an aggregate may still give one.
        ValueRef::Real(f) => Value::Int(f as i64),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

impl Sql for Sqlite<'_> {
    fn execute(&self, sql: &str, args: &[Value]) -> Result<u64> {
        let mut stmt = self.0.prepare_cached(sql)?;
        Ok(stmt.execute(params_from_iter(args))? as u64)
    }

    fn query_each(
        &self,
        sql: &str,
        args: &[Value],
        each: &mut dyn FnMut(Row) -> Result<()>,
    ) -> Result<()> {
        let mut stmt = self.0.prepare_cached(sql)?;
        let columns = stmt.column_count();
        let mut rows = stmt.query(params_from_iter(args))?;
        while let Some(r) = rows.next()? {
            let mut values = Vec::with_capacity(columns);
            for i in 0..columns {
                values.push(value_of(r.get_ref(i)?));
            }
            each(Row(values))?;
        }
        Ok(())
    }

    fn batch(&self, sql: &str) -> Result<()> {
        self.0.execute_batch(sql)?;
        Ok(())
    }

    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }
}
