//! The SQL the catalog speaks, whichever database holds it.
//!
//! Catalog code is written once, against [`Sql`]: statements in the subset
//! SQLite and PostgreSQL share, with numbered placeholders `?1`, `?2` …
//! (the PostgreSQL backend rewrites them to `$1` …), arguments and columns
//! as [`Value`]s. Integers are 64-bit on both sides, byte strings are
//! `BLOB`/`BYTEA`. The two backends are `sqlite.rs` and `postgres.rs`.

use crate::error::{Error, Result};
use crate::id::ObjectId;

/// One argument or column value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// A 64-bit integer (booleans are 0 and 1).
    Int(i64),
    /// Text.
    Text(String),
    /// A byte string.
    Blob(Vec<u8>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(v.into())
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Int(v.into())
    }
}
impl From<u8> for Value {
    fn from(v: u8) -> Self {
        Value::Int(v.into())
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Int(v.into())
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Blob(v.to_vec())
    }
}
impl From<&ObjectId> for Value {
    fn from(v: &ObjectId) -> Self {
        Value::Blob(v.0.to_vec())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// The arguments of a statement: `args![a, b]` is `&[Value::from(a), Value::from(b)]`.
#[macro_export]
macro_rules! args {
    ($($v:expr),* $(,)?) => { &[$($crate::catalog::Value::from($v)),*][..] };
}

/// One result row.
#[derive(Clone, Debug, Default)]
pub struct Row(pub Vec<Value>);

impl Row {
    fn get(&self, i: usize) -> Result<&Value> {
        self.0
            .get(i)
            .ok_or_else(|| Error::catalog(format!("a query has no column {i}")))
    }

    fn mismatch(&self, i: usize, want: &str) -> Error {
        Error::corrupt(
            "catalog",
            format!("column {i} should hold {want}, found {:?}", self.0[i]),
        )
    }

    /// Column `i` as an integer.
    pub fn int(&self, i: usize) -> Result<i64> {
        self.opt_int(i)?
            .ok_or_else(|| self.mismatch(i, "an integer"))
    }

    /// Column `i` as an integer or `NULL`.
    pub fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        match self.get(i)? {
            Value::Int(v) => Ok(Some(*v)),
            Value::Null => Ok(None),
            _ => Err(self.mismatch(i, "an integer")),
        }
    }

    /// Column `i` as text.
    pub fn text(&self, i: usize) -> Result<String> {
        self.opt_text(i)?.ok_or_else(|| self.mismatch(i, "text"))
    }

    /// Column `i` as text or `NULL`.
    pub fn opt_text(&self, i: usize) -> Result<Option<String>> {
        match self.get(i)? {
            Value::Text(v) => Ok(Some(v.clone())),
            Value::Null => Ok(None),
            _ => Err(self.mismatch(i, "text")),
        }
    }

    /// Column `i` as bytes.
    pub fn blob(&self, i: usize) -> Result<&[u8]> {
        match self.get(i)? {
            Value::Blob(v) => Ok(v),
            _ => Err(self.mismatch(i, "bytes")),
        }
    }

    /// Column `i` as an object id (32 bytes).
    pub fn id(&self, i: usize) -> Result<ObjectId> {
        ObjectId::from_slice(self.blob(i)?).ok_or_else(|| self.mismatch(i, "a 32-byte id"))
    }
}

/// Which database a connection talks to (for the few statements that differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// The embedded SQLite catalog.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// A connection or an open transaction on the catalog database.
pub trait Sql {
    /// Runs one statement; returns the number of rows it changed.
    fn execute(&self, sql: &str, args: &[Value]) -> Result<u64>;

    /// Runs a query, calling `each` for every row in order.
    fn query_each(
        &self,
        sql: &str,
        args: &[Value],
        each: &mut dyn FnMut(Row) -> Result<()>,
    ) -> Result<()>;

    /// Runs several statements without arguments (schema changes).
    fn batch(&self, sql: &str) -> Result<()>;

    /// The database on the other end.
    fn dialect(&self) -> Dialect;
}

impl dyn Sql + '_ {
    /// Every row, each turned into a `T` by `f`.
    pub fn query_all<T>(
        &self,
        sql: &str,
        args: &[Value],
        mut f: impl FnMut(&Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        self.query_each(sql, args, &mut |row| {
            out.push(f(&row)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// The first row, if any, turned into a `T` by `f`.
    pub fn query_opt<T>(
        &self,
        sql: &str,
        args: &[Value],
        f: impl FnOnce(&Row) -> Result<T>,
    ) -> Result<Option<T>> {
        let mut first = None;
        self.query_each(sql, args, &mut |row| {
            if first.is_none() {
                first = Some(row);
            }
            Ok(())
        })?;
        first.as_ref().map(f).transpose()
    }

    /// The first row, which must exist, turned into a `T` by `f`.
    pub fn query_one<T>(
        &self,
        sql: &str,
        args: &[Value],
        f: impl FnOnce(&Row) -> Result<T>,
    ) -> Result<T> {
        self.query_opt(sql, args, f)?
            .ok_or_else(|| Error::catalog(format!("no row from: {sql}")))
    }

    /// Whether the query returns any row.
    pub fn exists(&self, sql: &str, args: &[Value]) -> Result<bool> {
        Ok(self.query_opt(sql, args, |_| Ok(()))?.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_check_their_types() {
        let row = Row(vec![
            Value::Int(7),
            Value::Null,
            Value::Text("a".into()),
            Value::Blob(vec![1; 32]),
        ]);
        assert_eq!(row.int(0).unwrap(), 7);
        assert_eq!(row.opt_int(1).unwrap(), None);
        assert!(row.int(1).is_err());
        assert_eq!(row.text(2).unwrap(), "a");
        assert!(row.int(2).is_err());
        assert_eq!(row.id(3).unwrap().0, [1; 32]);
        assert!(matches!(row.blob(9), Err(Error::Catalog { .. })));
        assert_eq!(args![1i64, "x", None::<i64>].len(), 3);
    }
}
