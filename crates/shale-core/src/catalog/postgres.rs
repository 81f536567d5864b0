//! The shared catalog: a PostgreSQL database, for a pool that several
//! machines use at once.
//!
//! Writers are serialized as in SQLite: every write transaction first takes
//! one transaction-scoped advisory lock, so the catalog behaves the same on
//! both backends (one writer at a time, readers never blocked).
//!
//! A lost connection (server restart, failover, network) is retried with
//! backoff for up to `PoolOptions::catalog_retry` (default 120 s): a
//! transaction that fails before its commit is sent is run again from the
//! start on a new connection. A commit whose answer is lost is reported,
//! never guessed.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use postgres::{Client, Config, GenericClient, NoTls, Statement};

use super::sql::{Dialect, Row, Sql, Value};
use super::without_password;
use backon::BlockingRetryable;

use crate::config::{backoff, PoolOptions};
use crate::error::{Error, Result};

/// The advisory lock every write transaction takes ("SHALE" in ASCII).
const WRITE_LOCK: i64 = 0x0053_4841_4c45;

/// A connection to the catalog database, re-established when lost.
pub struct Postgres {
    config: Config,
    /// The URL without its password, for messages.
    url: String,
    conn: Option<Connection>,
    /// How long a lost connection is retried.
    retry: Duration,
}

struct Connection {
    client: Client,
    /// Prepared statements by their SQL (as written, with `?N`).
    statements: HashMap<String, Statement>,
}

/// What a PostgreSQL error says: the server's message and detail, or a
/// client error with its cause ("error connecting to server" says little
/// without it).
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_string(),
        },
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Self {
        Error::Catalog {
            message: describe(&e),
            source: Some(Box::new(e)),
        }
    }
}

/// Whether an error means the connection, not the statement, failed.
fn is_connection_loss(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        // class 08: connection exception; class 57: operator intervention
        // (server shutting down, connection terminated)
        Some(code) => code.code().starts_with("08") || code.code().starts_with("57"),
        None => {
            // no SQL state: an I/O or protocol failure of the connection
            std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
        }
    }
}

impl Postgres {
    /// Connects to the database at `url` (`postgres://USER[:PASSWORD]@HOST[:PORT]/DB`).
    /// A password not in the URL is `options.catalog_password`; a lost
    /// connection is retried for `options.catalog_retry`.
    pub fn connect(url: &str, options: &PoolOptions) -> Result<Postgres> {
        let public = without_password(url);
        let mut config: Config = url.parse().map_err(|e| {
            Error::InvalidArgument(format!("catalog URL {public} is not valid: {e}"))
        })?;
        if config.get_password().is_none() {
            if let Some(p) = &options.catalog_password {
                config.password(p);
            }
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config.application_name("shale");
        let mut pg = Postgres {
            config,
            url: public,
            conn: None,
            retry: options.catalog_retry,
        };
        pg.connection(Instant::now() + pg.retry)?;
        Ok(pg)
    }

    /// The database's URL, without password.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The open connection, connecting (with backoff until `deadline`) if needed.
    fn connection(&mut self, deadline: Instant) -> Result<&mut Connection> {
        if self.conn.as_ref().is_some_and(|c| c.client.is_closed()) {
            self.conn = None;
        }
        if self.conn.is_none() {
            let url = &self.url;
            let config = &self.config;
            let left = deadline.saturating_duration_since(Instant::now());
            let client = (|| config.connect(NoTls))
                .retry(backoff(Duration::from_millis(100)).with_total_delay(Some(left)))
                .sleep(std::thread::sleep)
                .when(is_connection_loss)
                .notify(|e, pause| {
                    let e = describe(e);
                    tracing::warn!("catalog {url}: {e}; retrying in {pause:?}");
                })
                .call()
                .map_err(|e| {
                    Error::catalog(format!(
                        "cannot connect to the catalog database {url}: {}",
                        Error::from(e)
                    ))
                })?;
            self.conn = Some(Connection {
                client,
                statements: HashMap::new(),
            });
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }

    /// Runs `attempt` until it succeeds, fails for a reason other than a
    /// lost connection, or the retry window closes.
    fn retrying<T>(
        &mut self,
        mut attempt: impl FnMut(&mut Connection, &LossFlag) -> Result<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + self.retry;
        let window = self.retry;
        let url = self.url.clone();
        // Whether the last failure lost the connection before a commit was
        // sent: only then is the attempt run again, on a new connection.
        let retryable = Cell::new(false);
        let mut run = || {
            retryable.set(false);
            let lost = LossFlag::default();
            let conn = self.connection(deadline)?;
            match attempt(conn, &lost) {
                Err(e) if lost.get() || conn.client.is_closed() => {
                    self.conn = None;
                    retryable.set(!lost.committing());
                    Err(e)
                }
                other => other,
            }
        };
        (|| run())
            .retry(backoff(Duration::from_millis(100)).with_total_delay(Some(window)))
            .sleep(std::thread::sleep)
            .when(|_| retryable.get())
            .notify(|e, pause| tracing::warn!("catalog {url}: {e}; retrying in {pause:?}"))
            .call()
    }

    /// Runs `f` in one write transaction, committing if it succeeds.
    /// `f` may run more than once (after a lost connection): it must
    /// only act through the transaction it is given.
    pub fn write<T>(&mut self, mut f: impl FnMut(&dyn Sql) -> Result<T>) -> Result<T> {
        let url = self.url.clone();
        self.retrying(|conn, lost| {
            let mut tx = conn.client.transaction().map_err(|e| lost.note(e))?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
                .map_err(|e| lost.note(e))?;
            let session = Session {
                client: RefCell::new(&mut tx),
                statements: RefCell::new(&mut conn.statements),
                lost,
            };
            let out = f(&session)?;
            crate::failpoint::fail_point("commit.before");
            lost.enter_commit();
            tx.commit().map_err(|e| {
                if is_connection_loss(&e) {
                    lost.set();
                    Error::catalog(format!(
                        "the connection to the catalog database {url} was lost while a change \
                         was being committed; it may or may not have been made (check, then re-run)"
                    ))
                } else {
                    Error::from(e)
                }
            })?;
            Ok(out)
        })
    }

    /// Runs `f` on the connection, outside any transaction.
    pub fn read<T>(&mut self, mut f: impl FnMut(&dyn Sql) -> Result<T>) -> Result<T> {
        self.retrying(|conn, lost| {
            f(&Session {
                client: RefCell::new(&mut conn.client),
                statements: RefCell::new(&mut conn.statements),
                lost,
            })
        })
    }
}

/// Remembers whether an attempt lost its connection, and whether that
/// happened while committing.
#[derive(Default)]
struct LossFlag(std::cell::Cell<u8>);

impl LossFlag {
    const LOST: u8 = 1;
    const COMMITTING: u8 = 2;

    fn note(&self, e: postgres::Error) -> Error {
        if is_connection_loss(&e) {
            self.set();
        }
        Error::from(e)
    }
    fn set(&self) {
        self.0.set(self.0.get() | Self::LOST);
    }
    fn get(&self) -> bool {
        self.0.get() & Self::LOST != 0
    }
    fn enter_commit(&self) {
        self.0.set(self.0.get() | Self::COMMITTING);
    }
    fn committing(&self) -> bool {
        self.0.get() & Self::COMMITTING != 0
    }
}

/// [`Sql`] over a client or a transaction.
struct Session<'a, C: GenericClient> {
    client: RefCell<&'a mut C>,
    statements: RefCell<&'a mut HashMap<String, Statement>>,
    lost: &'a LossFlag,
}

/// `sql` with SQLite's `?N` placeholders written as PostgreSQL's `$N`.
fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

impl<C: GenericClient> Session<'_, C> {
    fn statement(&self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.statements.borrow().get(sql) {
            return Ok(s.clone());
        }
        let stmt = self
            .client
            .borrow_mut()
            .prepare(&placeholders(sql))
            .map_err(|e| self.lost.note(e))?;
        self.statements
            .borrow_mut()
            .insert(sql.to_string(), stmt.clone());
        Ok(stmt)
    }
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) => match *ty {
                Type::INT8 => v.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                Type::BOOL => (*v != 0).to_sql(ty, out),
                _ => Err(format!("an integer cannot be stored as {ty}").into()),
            },
            Value::Text(v) => v.to_sql(ty, out),
            Value::Blob(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn row_of(row: &postgres::Row) -> Result<Row> {
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let v = match *column.type_() {
            Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map(Value::Int),
            Type::INT4 => row.try_get::<_, Option<i32>>(i)?.map(Value::from),
            Type::INT2 => row
                .try_get::<_, Option<i16>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::BOOL => row.try_get::<_, Option<bool>>(i)?.map(Value::from),
            Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR => {
                row.try_get::<_, Option<String>>(i)?.map(Value::Text)
            }
            Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob),
            Type::VOID => None,
            ref other => {
                return Err(Error::catalog(format!(
                    "column {} has type {other}, which the catalog does not use",
                    column.name()
                )))
            }
        };
        values.push(v.unwrap_or(Value::Null));
    }
    Ok(Row(values))
}

impl<C: GenericClient> Sql for Session<'_, C> {
    fn execute(&self, sql: &str, args: &[Value]) -> Result<u64> {
        let stmt = self.statement(sql)?;
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as _).collect();
        self.client
            .borrow_mut()
            .execute(&stmt, &params)
            .map_err(|e| self.lost.note(e))
    }

    fn query_each(
        &self,
        sql: &str,
        args: &[Value],
        each: &mut dyn FnMut(Row) -> Result<()>,
    ) -> Result<()> {
        let stmt = self.statement(sql)?;
        let mut client = self.client.borrow_mut();
        let mut rows = client
            .query_raw(&stmt, args.iter())
            .map_err(|e| self.lost.note(e))?;
        while let Some(row) = postgres::fallible_iterator::FallibleIterator::next(&mut rows)
            .map_err(|e| self.lost.note(e))?
        {
            each(row_of(&row)?)?;
        }
        Ok(())
    }

    fn batch(&self, sql: &str) -> Result<()> {
        self.client
            .borrow_mut()
            .batch_execute(sql)
            .map_err(|e| self.lost.note(e))
    }

    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            without_password("postgres://shale:secret@db:5432/shale?sslmode=disable"),
            "postgres://shale@db:5432/shale?sslmode=disable"
        );
        assert_eq!(
            without_password("postgresql://shale@db/shale"),
            "postgresql://shale@db/shale"
        );
        assert_eq!(without_password("postgres://db/x"), "postgres://db/x");
    }

    #[test]
    fn placeholders_are_rewritten() {
        assert_eq!(
            placeholders("SELECT a FROM t WHERE b = ?1 AND c = ?12"),
            "SELECT a FROM t WHERE b = $1 AND c = $12"
        );
    }
}
