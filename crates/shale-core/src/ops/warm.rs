//! Cache warm-up (`shale cache warm`, the DataOps Toolkit's
//! `prepopulate_flex_cache`): the data of a volume, a snapshot or paths
//! inside one is fetched from an object store into this machine's read
//! cache before a job reads it, so its first pass reads at warm speed.
//!
//! The files' chunks are located in the blob index and mapped to the
//! windows of packs the read cache keeps; windows already cached are left
//! alone, the rest are fetched in parallel, pack by pack in order. What
//! would not fit in the cache is refused before anything is fetched.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::catalog::BlobLocation;
use crate::error::{Error, Result};
use crate::pool::Pool;
use crate::progress::{self, Event, Progress};
use crate::size::format_size;
use crate::store::pack::{self, Compression};
use crate::tree::{lookup, read_dir, split_path, Content, Entry};

/// What warming did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct WarmReport {
    /// What was warmed: `VOLUME[@SNAPSHOT]`.
    pub spec: String,
    /// Files found.
    pub files: u64,
    /// Logical bytes of those files.
    pub logical_bytes: u64,
    /// Distinct chunks they hold.
    pub chunks: u64,
    /// Cache windows they lie in (each a stretch of a pack, fetched whole).
    pub windows: u64,
    /// Bytes fetched from the store now.
    pub bytes_fetched: u64,
    /// Bytes that were cached already.
    pub bytes_already_cached: u64,
    /// Bytes the cache holds afterwards.
    pub cache_used: u64,
    /// The most the cache keeps.
    pub cache_limit: u64,
    /// Wall time.
    pub seconds: f64,
}

/// The share of the cache a warm-up may fill: the cache evicts down to 90%
/// of its limit, so more than that would push out what was just fetched.
const FILL: u64 = 9;

impl Pool {
    /// Fetches the data of `spec` (`VOLUME[@SNAPSHOT]`), or of `paths`
    /// inside it, into the read cache, `jobs` windows at a time.
    pub fn warm_cache(
        &self,
        spec: &str,
        paths: &[String],
        jobs: usize,
        progress: Option<Arc<dyn Progress>>,
    ) -> Result<WarmReport> {
        let started = Instant::now();
        let objects = self.store.objects().clone();
        let Some(info) = objects.read_cache() else {
            return Err(Error::InvalidArgument(
                "cache warm is for object-store pools with a read cache (this pool reads \
                 from its own disk, or SHALE_READ_CACHE_SIZE is 0)"
                    .into(),
            ));
        };
        let resolved = self.resolve(spec)?;
        let mut report = WarmReport {
            spec: spec.to_string(),
            cache_limit: info.limit,
            ..Default::default()
        };
        let mut chunks = BTreeSet::new();
        let roots = self.starting_entries(&resolved.root, paths)?;
        for e in roots {
            self.collect_chunks(&e, &mut chunks, &mut report, 0)?;
        }
        report.chunks = chunks.len() as u64;
        let windows = self.windows_of(&chunks, info.window)?;
        report.windows = windows.len() as u64;
        let need = windows.len() as u64 * info.window;
        if need > info.limit / 10 * FILL {
            return Err(Error::InvalidArgument(format!(
                "{spec}: its data lies in {} of pack windows; the read cache keeps at most {} \
                 (SHALE_READ_CACHE_SIZE), so warming it would evict what it fetched: raise \
                 the cache size or warm less (name paths inside it)",
                format_size(need),
                format_size(info.limit)
            )));
        }
        let (fetched, cached) = (AtomicU64::new(0), AtomicU64::new(0));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(jobs.max(1))
            .build()
            .map_err(|e| Error::InvalidArgument(format!("cannot start threads: {e}")))?;
        pool.install(|| {
            windows.par_iter().try_for_each(|(key, w)| -> Result<()> {
                progress::check(&progress)?;
                let (len, now) = objects.warm_window(key, *w)?;
                let counter = if now { &fetched } else { &cached };
                counter.fetch_add(len, Ordering::Relaxed);
                progress::report(&progress, Event::File { bytes: len });
                Ok(())
            })
        })?;
        report.bytes_fetched = fetched.into_inner();
        report.bytes_already_cached = cached.into_inner();
        report.cache_used = objects.read_cache().map_or(0, |c| c.used);
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// The cache windows (pack key, window number) that `chunks` lie in,
    /// in pack order. A chunk stored as a delta brings the windows of its
    /// bases too: a read rebuilds it from them.
    fn windows_of(
        &self,
        chunks: &BTreeSet<crate::id::ObjectId>,
        window: u64,
    ) -> Result<Vec<(String, u64)>> {
        let mut windows = BTreeSet::new();
        let mut add = |loc: &BlobLocation| {
            let key = pack::key(&loc.pack);
            let first = loc.head.offset / window;
            let last = (loc.head.offset + u64::from(loc.head.stored_len).max(1) - 1) / window;
            for w in first..=last {
                windows.insert((key.clone(), w));
            }
        };
        let locate = |id| self.store.location(id)?.ok_or(Error::MissingObject(*id));
        let mut bases = BTreeSet::new();
        for id in chunks {
            let loc = locate(id)?;
            if loc.head.compression == Compression::Delta {
                bases.extend(self.store.delta_bases(&loc)?);
            }
            add(&loc);
        }
        for id in &bases {
            add(&locate(id)?);
        }
        Ok(windows.into_iter().collect())
    }

    /// The entries `paths` name under `root` (the root itself for none).
    fn starting_entries(&self, root: &crate::id::ObjectId, paths: &[String]) -> Result<Vec<Entry>> {
        if paths.is_empty() {
            return read_dir(&self.store, root);
        }
        let mut out = Vec::new();
        for p in paths {
            let comps = split_path(p)?;
            if comps.is_empty() {
                out.extend(read_dir(&self.store, root)?);
                continue;
            }
            match lookup(&self.store, root, &comps)? {
                Some(e) => out.push(e),
                None => return Err(Error::BadPath(format!("{p}: no such file or directory"))),
            }
        }
        Ok(out)
    }

    fn collect_chunks(
        &self,
        e: &Entry,
        chunks: &mut BTreeSet<crate::id::ObjectId>,
        report: &mut WarmReport,
        depth: u32,
    ) -> Result<()> {
        match &e.content {
            Content::File { size, chunks: c } => {
                report.files += 1;
                report.logical_bytes += size;
                chunks.extend(c.iter().map(|c| c.id));
            }
            Content::Dir(d) if depth < 4096 => {
                for child in read_dir(&self.store, &d.tree)? {
                    self.collect_chunks(&child, chunks, report, depth + 1)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}
