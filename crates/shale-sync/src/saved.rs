//! Saved syncs (`shale sync create NAME SRC DST`): a named sync kept in
//! the pool's catalog, re-run by name or on a schedule (`sync run --due`
//! from a timer), with the last run's report kept beside it, as BlueXP Copy
//! and Sync relationships are.
//!
//! Only places and options are saved; credentials never are (they come
//! from the environment of each run, as for a one-shot sync).

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shale_core::catalog::{now_ns, SavedSyncRow};
use shale_core::filter::{Filter, FilterSpec};
use shale_core::progress::Progress;
use shale_core::{Error, Pool, PoolOptions, Result};

use crate::{sync, Location, SyncOptions, SyncReport};

/// How a saved sync runs: the flags of `shale sync`, as saved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SavedOptions {
    /// `--delete`.
    pub delete: bool,
    /// `--checksum`.
    pub checksum: bool,
    /// `--jobs`.
    pub jobs: usize,
    /// `--bwlimit`, bytes per second.
    pub bwlimit: Option<u64>,
    /// `--retries`.
    pub retries: u32,
    /// `--snapshot [NAME]` (empty: named by time).
    pub snapshot: Option<String>,
    /// `--exclude` patterns, then the lines of `--exclude-from` files.
    pub exclude: Vec<String>,
    /// `--include` patterns.
    pub include: Vec<String>,
    /// `--endpoint` of the object store.
    pub endpoint: Option<String>,
    /// `--region` of the object store.
    pub region: Option<String>,
}

impl Default for SavedOptions {
    fn default() -> Self {
        let d = SyncOptions::default();
        SavedOptions {
            delete: d.delete,
            checksum: d.checksum,
            jobs: d.jobs,
            bwlimit: d.bwlimit,
            retries: d.retries,
            snapshot: None,
            exclude: Vec::new(),
            include: Vec::new(),
            endpoint: None,
            region: None,
        }
    }
}

impl SavedOptions {
    fn filter(&self) -> Result<Filter> {
        Filter::new(&FilterSpec {
            exclude: self.exclude.clone(),
            include: self.include.clone(),
            exclude_from: Vec::new(),
        })
    }

    fn location(&self, place: &str) -> Result<Location> {
        let mut loc = Location::parse(OsStr::new(place))?;
        if let Location::Store(l) = &mut loc {
            l.endpoint = self.endpoint.clone();
            l.region = self.region.clone();
        }
        Ok(loc)
    }
}

/// Saves sync `name` from `source` to `destination`, run every `every` by
/// [`run_due`] if given. The places and filters are checked now.
pub fn save(
    pool: &Pool,
    name: &str,
    source: &str,
    destination: &str,
    options: &SavedOptions,
    every: Option<Duration>,
) -> Result<SavedSyncRow> {
    options.location(source)?;
    let dst = options.location(destination)?;
    options.filter()?;
    if options.jobs == 0 {
        return Err(Error::InvalidArgument("--jobs must be at least 1".into()));
    }
    if options.snapshot.is_some() && !matches!(dst, Location::Volume { .. }) {
        return Err(Error::InvalidArgument(
            "--snapshot is for a volume destination (volume:NAME)".into(),
        ));
    }
    let json = serde_json::to_value(options).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    pool.save_sync(
        name,
        source,
        destination,
        &json,
        every.map(|d| d.as_secs().max(1)),
    )
}

/// Runs saved sync `name` (its report, or why it could not run), and
/// records the outcome in the catalog.
pub fn run_saved(
    pool: &Pool,
    name: &str,
    pool_options: &PoolOptions,
    progress: Option<Arc<dyn Progress>>,
) -> Result<SyncReport> {
    let row = pool.saved_sync(name)?;
    let started = now_ns();
    let result = run_row(pool, &row, pool_options, progress);
    let (ok, json) = match &result {
        Ok(r) => (
            r.errors.is_empty(),
            serde_json::to_value(r).unwrap_or_default(),
        ),
        Err(e) => (false, serde_json::json!({ "error": e.to_string() })),
    };
    pool.record_sync_run(name, started, ok, &json)?;
    result
}

fn run_row(
    pool: &Pool,
    row: &SavedSyncRow,
    pool_options: &PoolOptions,
    progress: Option<Arc<dyn Progress>>,
) -> Result<SyncReport> {
    let saved: SavedOptions = serde_json::from_value(row.options.clone())
        .map_err(|e| Error::corrupt(format!("saved sync '{}'", row.name), e.to_string()))?;
    let opts = SyncOptions {
        delete: saved.delete,
        checksum: saved.checksum,
        dry_run: false,
        jobs: saved.jobs,
        bwlimit: saved.bwlimit,
        retries: saved.retries,
        snapshot: saved.snapshot.clone().map(|n| (!n.is_empty()).then_some(n)),
        progress,
        pool_options: pool_options.clone(),
        filter: saved.filter()?,
    };
    let src = saved.location(&row.source)?;
    let dst = saved.location(&row.destination)?;
    sync(Some(pool), &src, &dst, &opts)
}

/// When saved sync `row` is next due (ns since the epoch), if scheduled:
/// 90% of its interval after its last run (a timer firing at the interval,
/// a little early or late, runs it each time), or now if it never ran.
pub fn next_due(row: &SavedSyncRow) -> Option<i64> {
    let every = row.every_secs? as i64 * 1_000_000_000;
    Some(row.last_run.map_or(0, |t| t.saturating_add(every / 10 * 9)))
}

/// Runs every scheduled sync due at `now` (ns), in name order; each
/// outcome is recorded, and one failing does not stop the others.
pub fn run_due(
    pool: &Pool,
    now: i64,
    pool_options: &PoolOptions,
) -> Result<Vec<(String, Result<SyncReport>)>> {
    let mut out = Vec::new();
    for row in pool.saved_syncs()? {
        if next_due(&row).is_some_and(|t| t <= now) {
            let r = run_saved(pool, &row.name, pool_options, None);
            out.push((row.name, r));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_syncs_run_record_and_fall_due() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::init(&dir.path().join("pool")).unwrap();
        let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
        std::fs::create_dir_all(src.join(".git")).unwrap();
        std::fs::write(src.join("a.txt"), b"a").unwrap();
        std::fs::write(src.join(".git/HEAD"), b"h").unwrap();
        let opts = SavedOptions {
            exclude: vec![".git/".into()],
            ..Default::default()
        };
        let (s, d) = (src.to_str().unwrap(), dst.to_str().unwrap());
        let hour = Duration::from_secs(3600);
        save(&pool, "nightly", s, d, &opts, Some(hour)).unwrap();
        assert!(
            save(&pool, "nightly", s, d, &opts, None).is_err(),
            "names are unique"
        );
        let bad = SavedOptions {
            exclude: vec!["a{b".into()],
            ..Default::default()
        };
        assert!(save(&pool, "bad", s, d, &bad, None).is_err());
        // never run: due now; run, recorded, then not due until 54 minutes on
        let row = pool.saved_sync("nightly").unwrap();
        assert_eq!(next_due(&row), Some(0));
        let t0 = now_ns();
        let ran = run_due(&pool, t0, &PoolOptions::default()).unwrap();
        assert_eq!(ran.len(), 1);
        assert_eq!(ran[0].1.as_ref().unwrap().copied, 1);
        assert!(dst.join("a.txt").exists() && !dst.join(".git").exists());
        let row = pool.saved_sync("nightly").unwrap();
        assert_eq!(row.last_ok, Some(true));
        assert_eq!(row.last_report.as_ref().unwrap()["copied"], 1);
        assert!(
            run_due(&pool, t0 + 50 * 60 * 1_000_000_000, &PoolOptions::default())
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            run_due(&pool, t0 + 3600 * 1_000_000_000, &PoolOptions::default())
                .unwrap()
                .len(),
            1
        );
        // a failed run is recorded as such
        std::fs::remove_dir_all(&src).unwrap();
        assert!(run_saved(&pool, "nightly", &PoolOptions::default(), None).is_err());
        let row = pool.saved_sync("nightly").unwrap();
        assert_eq!(row.last_ok, Some(false));
        assert!(row.last_report.unwrap()["error"].is_string());
        pool.delete_saved_sync("nightly").unwrap();
        assert!(pool.delete_saved_sync("nightly").is_err());
    }
}
