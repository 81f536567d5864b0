//! Saved syncs (`shale sync create`): a named source and destination, how
//! to sync them, how often, and the last run's outcome.

use serde::{Deserialize, Serialize};

use super::{now_ns, Row, Sql};
use crate::args;
use crate::error::{Error, Result};

/// A saved sync.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SavedSyncRow {
    /// Its name.
    pub name: String,
    /// Where to copy from, as given (`DIR`, `s3://…`, `volume:…`).
    pub source: String,
    /// Where to copy to, as given.
    pub destination: String,
    /// How to sync, as JSON (`shale_sync::SavedOptions`).
    pub options: serde_json::Value,
    /// Seconds between scheduled runs (`sync run --due`), if scheduled.
    pub every_secs: Option<u64>,
    /// When it was saved (ns since the epoch).
    pub created: i64,
    /// When it last ran (ns since the epoch).
    pub last_run: Option<i64>,
    /// Whether that run succeeded.
    pub last_ok: Option<bool>,
    /// That run's report (JSON), or its error.
    pub last_report: Option<serde_json::Value>,
}

const COLS: &str = "name, source, destination, options, every_secs, created, last_run, \
                    last_ok, last_report FROM syncs";

fn json_of(text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text)
        .map_err(|e| Error::corrupt("a saved sync in the catalog", e.to_string()))
}

fn from_row(r: &Row) -> Result<SavedSyncRow> {
    Ok(SavedSyncRow {
        name: r.text(0)?,
        source: r.text(1)?,
        destination: r.text(2)?,
        options: json_of(&r.text(3)?)?,
        every_secs: r.opt_int(4)?.map(|v| v as u64),
        created: r.int(5)?,
        last_run: r.opt_int(6)?,
        last_ok: r.opt_int(7)?.map(|v| v != 0),
        last_report: r.opt_text(8)?.as_deref().map(json_of).transpose()?,
    })
}

/// Every saved sync, by name.
pub fn saved_syncs(db: &dyn Sql) -> Result<Vec<SavedSyncRow>> {
    db.query_all(&format!("SELECT {COLS} ORDER BY name"), &[], from_row)
}

/// The saved sync `name`, if there is one.
pub fn saved_sync(db: &dyn Sql, name: &str) -> Result<Option<SavedSyncRow>> {
    db.query_opt(
        &format!("SELECT {COLS} WHERE name = ?1"),
        args![name],
        from_row,
    )
}

/// Saves a new sync; one of that name already saved is an error.
pub fn insert_saved_sync(
    tx: &dyn Sql,
    name: &str,
    source: &str,
    destination: &str,
    options: &serde_json::Value,
    every_secs: Option<u64>,
) -> Result<()> {
    if saved_sync(tx, name)?.is_some() {
        return Err(Error::InvalidArgument(format!(
            "a sync named '{name}' is already saved (delete it first)"
        )));
    }
    tx.execute(
        "INSERT INTO syncs (name, source, destination, options, every_secs, created) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        args![
            name,
            source,
            destination,
            options.to_string(),
            every_secs.map(|s| s as i64),
            now_ns()
        ],
    )?;
    Ok(())
}

/// Records the outcome of a run of saved sync `name` that started at `at`.
pub fn record_sync_run(
    tx: &dyn Sql,
    name: &str,
    at: i64,
    ok: bool,
    report: &serde_json::Value,
) -> Result<()> {
    tx.execute(
        "UPDATE syncs SET last_run = ?2, last_ok = ?3, last_report = ?4 WHERE name = ?1",
        args![name, at, ok as i64, report.to_string()],
    )?;
    Ok(())
}

/// Forgets saved sync `name`; whether there was one.
pub fn delete_saved_sync(tx: &dyn Sql, name: &str) -> Result<bool> {
    Ok(tx.execute("DELETE FROM syncs WHERE name = ?1", args![name])? > 0)
}
