//! Data movement for Shale: `shale sync` between local directories,
//! object-store prefixes and volumes, and `shale scan` reports.
//!
//! A sync lists both sides ([`Side`]: `local.rs`, `store.rs`, `volume.rs`),
//! plans what differs (`plan.rs`), then runs the plan (`run.rs`): copies in
//! parallel, each through a temporary name or an atomic put, with retries
//! and an optional bandwidth limit; removals last. Syncing into a volume
//! is an import (it commits the whole sync as one new root), optionally
//! followed by a snapshot.
#![deny(unsafe_code)]

pub mod entry;
pub mod local;
pub mod location;
pub mod plan;
mod run;
pub mod saved;
pub use run::Limiter;
pub mod scan;
pub mod side;
pub mod store;
pub mod volume;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use shale_core::filter::Filter;
use shale_core::ops::import::ImportOptions;
use shale_core::progress::{self, Progress};
use shale_core::{Error, Pool, PoolOptions, Result};

use entry::{Entry, Kind, StoredHash};
pub use location::Location;
use plan::{Action, Rules};
use side::Side;

/// How to sync.
#[derive(Clone, Debug)]
pub struct SyncOptions {
    /// Remove from the destination what the source lacks.
    pub delete: bool,
    /// Compare files of equal size by content, not modification time.
    pub checksum: bool,
    /// Only say what would be done.
    pub dry_run: bool,
    /// Files copied at once.
    pub jobs: usize,
    /// At most this many bytes per second, all copies together.
    pub bwlimit: Option<u64>,
    /// Further attempts of a failed copy to or from an object store.
    pub retries: u32,
    /// After syncing into a volume, snapshot it (with this name, if given).
    pub snapshot: Option<Option<String>>,
    /// Advanced after each file copied.
    pub progress: Option<Arc<dyn Progress>>,
    /// How stores are reached and directories walked.
    pub pool_options: PoolOptions,
    /// Paths left out on both sides (`--exclude`, `--include`): neither
    /// copied nor deleted.
    pub filter: Filter,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            delete: false,
            checksum: false,
            dry_run: false,
            jobs: 32,
            bwlimit: None,
            retries: 3,
            snapshot: None,
            progress: None,
            pool_options: PoolOptions::default(),
            filter: Filter::default(),
        }
    }
}

/// A path that failed, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    /// Relative path.
    pub path: String,
    /// The error.
    pub error: String,
}

/// One planned action, for `--dry-run`.
#[derive(Clone, Debug, Serialize)]
pub struct Planned {
    /// `mkdir`, `copy`, `link` or `delete`.
    pub action: &'static str,
    /// Relative path.
    pub path: String,
    /// Why (for copies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// Bytes (for copies).
    pub bytes: u64,
}

/// A snapshot taken after the sync.
#[derive(Clone, Debug, Serialize)]
pub struct SnapshotTaken {
    /// `VOLUME@NAME`.
    pub name: String,
    /// Its id.
    pub id: String,
}

/// What a sync did (or, with `--dry-run`, would do).
#[derive(Clone, Debug, Default, Serialize)]
pub struct SyncReport {
    /// Source, as given.
    pub source: String,
    /// Destination, as given.
    pub destination: String,
    /// Nothing was changed.
    pub dry_run: bool,
    /// Source entries found.
    pub scanned: u64,
    /// Files copied.
    pub copied: u64,
    /// Files already up to date.
    pub unchanged: u64,
    /// Entries removed from the destination.
    pub deleted: u64,
    /// Source and destination entries left out by `--exclude`/`--include`.
    pub excluded: u64,
    /// Directories created.
    pub dirs_created: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Bytes copied.
    pub bytes: u64,
    /// Wall time.
    pub seconds: f64,
    /// Bytes copied per second.
    pub bytes_per_second: f64,
    /// Entries left alone, and why.
    pub skipped: Vec<plan::Skip>,
    /// Paths that failed.
    pub errors: Vec<Problem>,
    /// With `--dry-run`: the plan.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub planned: Vec<Planned>,
    /// The snapshot taken afterwards (`--snapshot`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotTaken>,
}

/// Opens the side `loc` names (`pool` for volumes).
pub fn open_side<'a>(
    loc: &Location,
    pool: Option<&'a Pool>,
    options: &PoolOptions,
) -> Result<Box<dyn Side + 'a>> {
    Ok(match loc {
        Location::Local(p) => Box::new(local::Local::new(p, options)),
        Location::Store(l) => Box::new(store::Store::connect(l, &options.store)?),
        Location::Volume {
            volume,
            snapshot,
            path,
        } => {
            let pool = pool.ok_or_else(|| {
                Error::InvalidArgument(format!("{}: no pool to find it in", loc.describe()))
            })?;
            Box::new(volume::Volume::open(
                pool,
                volume,
                snapshot.as_deref(),
                path,
                loc.describe(),
            )?)
        }
    })
}

/// Whether two files hold the same bytes, using stored digests where the
/// sides have them and reading only what must be read.
fn same_content(src: &dyn Side, s: &Entry, dst: &dyn Side, d: &Entry) -> Result<bool> {
    if let (Some(a), Some(b)) = (&s.stored_hash, &d.stored_hash) {
        if std::mem::discriminant(a) == std::mem::discriminant(b) {
            return Ok(a == b);
        }
    }
    // One side has an ETag: compute the ETag the other side's bytes would get.
    for (tagged, other, side) in [(d, s, src), (s, d, dst)] {
        if let Some(StoredHash::ETag(tag)) = &tagged.stored_hash {
            let ours = store::etag_of(other.size, &mut |sink| side.read(other, sink))?;
            return Ok(&ours == tag);
        }
    }
    let digest = |side: &dyn Side, e: &Entry| -> Result<blake3::Hash> {
        let mut h = blake3::Hasher::new();
        side.read(e, &mut |piece| {
            h.update(piece);
            Ok(())
        })?;
        Ok(h.finalize())
    };
    Ok(digest(src, s)? == digest(dst, d)?)
}

/// Makes `dst` hold what `src` holds.
pub fn sync(
    pool: Option<&Pool>,
    src_loc: &Location,
    dst_loc: &Location,
    opts: &SyncOptions,
) -> Result<SyncReport> {
    let started = Instant::now();
    if let Location::Volume {
        snapshot: Some(_), ..
    } = dst_loc
    {
        return Err(Error::InvalidArgument(format!(
            "{}: a snapshot is read-only; sync into the volume itself",
            dst_loc.describe()
        )));
    }
    if opts.snapshot.is_some() && !matches!(dst_loc, Location::Volume { .. }) {
        return Err(Error::InvalidArgument(
            "--snapshot is for a volume destination (volume:NAME)".into(),
        ));
    }
    if let Location::Local(p) = src_loc {
        // A mistyped source must not read as an empty one (with --delete,
        // that would empty the destination).
        if std::fs::symlink_metadata(p).is_err() {
            return Err(Error::InvalidArgument(format!(
                "source {} does not exist",
                p.display()
            )));
        }
    }
    let src = open_side(src_loc, pool, &opts.pool_options)?;
    let mut report = SyncReport {
        source: src_loc.describe(),
        destination: dst_loc.describe(),
        dry_run: opts.dry_run,
        ..Default::default()
    };
    if let Location::Volume { volume, path, .. } = dst_loc {
        let pool = pool.ok_or_else(|| Error::InvalidArgument("no pool".into()))?;
        into_volume(pool, &*src, src_loc, volume, path, opts, &mut report)?;
    } else {
        let dst = open_side(dst_loc, pool, &opts.pool_options)?;
        if let (Location::Local(a), Location::Local(b)) = (src_loc, dst_loc) {
            check_not_nested(a, b)?;
        }
        between(&*src, &*dst, opts, &mut report)?;
        progress::check(&opts.progress)?;
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.bytes_per_second = report.bytes as f64 / report.seconds.max(1e-9);
    Ok(report)
}

/// Refuses to sync a directory into itself or its own subdirectory.
fn check_not_nested(a: &std::path::Path, b: &std::path::Path) -> Result<()> {
    let (Ok(a), Ok(b)) = (std::path::absolute(a), std::path::absolute(b)) else {
        return Ok(());
    };
    if b.starts_with(&a) || a.starts_with(&b) {
        return Err(Error::InvalidArgument(format!(
            "{} and {} overlap: one is inside the other",
            a.display(),
            b.display()
        )));
    }
    Ok(())
}

fn rules(src: &dyn Side, dst: &dyn Side, opts: &SyncOptions) -> Rules {
    Rules {
        dst_keeps_mtime: dst.keeps_mtime(),
        dst_has_dirs: dst.has_dirs(),
        coarse_times: !src.keeps_mtime() || !dst.keeps_mtime(),
        checksum: opts.checksum,
        delete: opts.delete,
    }
}

fn planned(actions: &[Action]) -> Vec<Planned> {
    actions
        .iter()
        .map(|a| {
            let (action, reason, bytes) = match a {
                Action::Mkdir(_) => ("mkdir", None, 0),
                Action::Copy(e, r) => ("copy", Some(*r), e.size),
                Action::Symlink(_) => ("link", None, 0),
                Action::Delete(_) => ("delete", None, 0),
            };
            Planned {
                action,
                path: String::from_utf8_lossy(plan::path_of(a)).into_owned(),
                reason,
                bytes,
            }
        })
        .collect()
}

fn between(
    src: &dyn Side,
    dst: &dyn Side,
    opts: &SyncOptions,
    report: &mut SyncReport,
) -> Result<()> {
    let (s_list, d_list) = rayon::join(|| src.list(), || dst.list());
    let (mut s_list, mut d_list) = (s_list?, d_list?);
    let mut holding = HashSet::new();
    if !opts.filter.is_empty() {
        let before = s_list.len() + d_list.len();
        let mut pass = opts.filter.pass();
        s_list.retain(|e| !pass.leaves_out(&e.path, e.kind == Kind::Dir));
        let mut pass = opts.filter.pass();
        d_list.retain(|e| {
            let out = pass.leaves_out(&e.path, e.kind == Kind::Dir);
            if out {
                holding.extend(ancestors(&e.path));
            }
            !out
        });
        report.excluded = (before - s_list.len() - d_list.len()) as u64;
    }
    let mut plan = plan::plan(&s_list, &d_list, &rules(src, dst, opts), &|s, d| {
        same_content(src, s, dst, d)
    })?;
    // A directory holding left-out entries is not deleted (it could not be
    // emptied without deleting them).
    plan.actions
        .retain(|a| !matches!(a, Action::Delete(e) if holding.contains(e.path.as_slice())));
    report.scanned = plan.scanned;
    report.unchanged = plan.unchanged;
    report.skipped = src.listing_skips();
    report.skipped.extend(dst.listing_skips());
    report.skipped.extend(plan.skipped);
    if opts.dry_run {
        report.planned = planned(&plan.actions);
        return Ok(());
    }
    run::run(src, dst, &plan.actions, opts, report);
    Ok(())
}

/// The directories above relative path `path`.
fn ancestors(path: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    path.iter()
        .enumerate()
        .filter(|(i, b)| **b == b'/' && *i > 0)
        .map(|(i, _)| path[..i].to_vec())
}

/// Syncs into a volume: an import of a local source (it recognises
/// unchanged files and commits one new root), then the snapshot asked for.
fn into_volume(
    pool: &Pool,
    src: &dyn Side,
    src_loc: &Location,
    volume: &str,
    path: &str,
    opts: &SyncOptions,
    report: &mut SyncReport,
) -> Result<()> {
    // The plan (from both listings) says what a dry run would do and how
    // much an import with --delete removes.
    let dst = volume::Volume::open(pool, volume, None, path, format!("volume:{volume}"))?;
    let mut dry = opts.clone();
    dry.dry_run = true;
    between(src, &dst, &dry, report)?;
    if opts.dry_run {
        return Ok(());
    }
    let deleted = report
        .planned
        .iter()
        .filter(|p| p.action == "delete")
        .count() as u64;
    let Location::Local(dir) = src_loc else {
        return from_elsewhere(pool, src, volume, path, opts, report);
    };
    report.planned.clear();
    let imported = pool.import(
        volume,
        dir,
        &ImportOptions {
            to: (!path.is_empty()).then(|| path.to_string()),
            delete: opts.delete,
            checksum: opts.checksum,
            progress: opts.progress.clone(),
            filter: opts.filter.clone(),
        },
    )?;
    report.scanned = imported.files + imported.dirs + imported.symlinks;
    report.copied = imported.files_read;
    report.unchanged = imported.files_unchanged;
    report.deleted = deleted;
    report.bytes = imported.bytes_read;
    report.skipped = imported
        .skipped
        .iter()
        .map(|s| plan::Skip {
            path: s.path.clone(),
            reason: s.reason.clone(),
        })
        .collect();
    snapshot_after(pool, volume, opts, report)
}

/// Into a volume from a bucket or another volume: what the plan copies is
/// fetched into a staging directory in the pool's `tmp/` and imported
/// there (files it does not name stay as they are), then what it deletes
/// is removed: two commits, each leaving the volume whole.
fn from_elsewhere(
    pool: &Pool,
    src: &dyn Side,
    volume: &str,
    path: &str,
    opts: &SyncOptions,
    report: &mut SyncReport,
) -> Result<()> {
    let planned = std::mem::take(&mut report.planned);
    let src_entries: std::collections::HashMap<Vec<u8>, Entry> = src
        .list()?
        .into_iter()
        .map(|e| (e.path.clone(), e))
        .collect();
    let mut copies = Vec::new();
    let mut removals = Vec::new();
    for p in &planned {
        let rel = p.path.as_bytes().to_vec();
        match p.action {
            "delete" => {
                let mut full = shale_core::tree::split_path(path)?;
                full.extend(rel.split(|b| *b == b'/').map(<[u8]>::to_vec));
                removals.push(full);
            }
            action => {
                if let Some(e) = src_entries.get(&rel) {
                    copies.push(match action {
                        "copy" => Action::Copy(e.clone(), "planned"),
                        "link" => Action::Symlink(e.clone()),
                        _ => Action::Mkdir(e.clone()),
                    });
                }
            }
        }
    }
    if !copies.is_empty() {
        let staging = pool
            .root()
            .join("tmp")
            .join(format!("sync-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
        let stage = local::Local::new(&staging, &opts.pool_options);
        run::run(src, &stage, &copies, opts, report);
        let cancelled = progress::check(&opts.progress);
        let imported = if report.errors.is_empty() && cancelled.is_ok() {
            Some(pool.import(
                volume,
                &staging,
                &ImportOptions {
                    to: (!path.is_empty()).then(|| path.to_string()),
                    delete: false,
                    checksum: false,
                    progress: None,
                    filter: Default::default(),
                },
            ))
        } else {
            None // the errors are in the report; the volume is not changed
        };
        let _ = std::fs::remove_dir_all(&staging);
        cancelled?;
        match imported {
            Some(r) => drop(r?),
            None => return Ok(()),
        }
    }
    // (each path the plan removes counts, as on the other sides; a removed
    // directory takes what is under it with it)
    pool.remove_paths(volume, &removals)?;
    report.deleted = removals.len() as u64;
    snapshot_after(pool, volume, opts, report)
}

/// Whether an entry is a file (for counting).
pub fn is_file(e: &Entry) -> bool {
    e.kind == Kind::File
}

/// With `--snapshot`: snapshots the volume a sync wrote into.
fn snapshot_after(
    pool: &Pool,
    volume: &str,
    opts: &SyncOptions,
    report: &mut SyncReport,
) -> Result<()> {
    if let Some(name) = &opts.snapshot {
        let snap = pool.create_snapshot(volume, name.as_deref())?;
        report.snapshot = Some(SnapshotTaken {
            name: format!("{volume}@{}", snap.name),
            id: snap.id,
        });
    }
    Ok(())
}
