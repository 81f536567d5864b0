//! Saved syncs: the records behind `shale sync create/list/run/delete`
//! (running one is `shale_sync::saved`'s job).

use crate::catalog::{self, SavedSyncRow};
use crate::error::{Error, Result};
use crate::names::check_name;
use crate::pool::Pool;

impl Pool {
    /// Saves sync `name` from `source` to `destination` with `options`
    /// (JSON), run every `every_secs` by `sync run --due` if given.
    pub fn save_sync(
        &self,
        name: &str,
        source: &str,
        destination: &str,
        options: &serde_json::Value,
        every_secs: Option<u64>,
    ) -> Result<SavedSyncRow> {
        check_name(name)?;
        if every_secs == Some(0) {
            return Err(Error::InvalidArgument(
                "a sync's interval must be more than 0".into(),
            ));
        }
        self.catalog().write(|tx| {
            catalog::insert_saved_sync(tx, name, source, destination, options, every_secs)?;
            catalog::saved_sync(tx, name)?.ok_or_else(|| not_saved(name))
        })
    }

    /// Every saved sync, by name.
    pub fn saved_syncs(&self) -> Result<Vec<SavedSyncRow>> {
        self.catalog().read(|tx| catalog::saved_syncs(tx))
    }

    /// Saved sync `name`.
    pub fn saved_sync(&self, name: &str) -> Result<SavedSyncRow> {
        self.catalog()
            .read(|tx| catalog::saved_sync(tx, name))?
            .ok_or_else(|| not_saved(name))
    }

    /// Records how a run of saved sync `name`, started at `at` (ns), went.
    pub fn record_sync_run(
        &self,
        name: &str,
        at: i64,
        ok: bool,
        report: &serde_json::Value,
    ) -> Result<()> {
        self.catalog()
            .write(|tx| catalog::record_sync_run(tx, name, at, ok, report))
    }

    /// Forgets saved sync `name` (nothing it copied is touched).
    pub fn delete_saved_sync(&self, name: &str) -> Result<()> {
        if self
            .catalog()
            .write(|tx| catalog::delete_saved_sync(tx, name))?
        {
            Ok(())
        } else {
            Err(not_saved(name))
        }
    }
}

fn not_saved(name: &str) -> Error {
    Error::InvalidArgument(format!("no sync named '{name}' is saved (shale sync list)"))
}
