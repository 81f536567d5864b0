//! Importing a directory into a volume.
//!
//! The source tree is walked in parallel (rayon), directory by directory.
//! A file whose size, mtime and mode match the volume's entry at the same
//! path is taken over without being read (unless `checksum` is set); other
//! files are chunked, hashed and written through one [`BlobWriter`]. New
//! directory nodes are built bottom-up; unchanged ones hash to ids the pool
//! already has and are not written again. The volume's root moves to the new
//! tree in one catalog transaction, after every pack is durable.
#![allow(unsafe_code)] // libc calls: each block says why it is sound

mod entry;
mod file;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use serde::Serialize;

use crate::catalog;
use crate::error::{Error, IoContext, Result};
use crate::filter::Filter;
use crate::id::ObjectId;
use crate::names::check_name;
use crate::pool::Pool;
use crate::progress::Progress;
use crate::store::blobs::{BlobWriter, Prepared, WriteStats};
use crate::tree::{
    build_dir, read_dir, split_path, ChunkRef, Content, DirBuilder, DirCursor, DirRef, Entry,
};

/// How to import.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Directory inside the volume to import into (created if missing).
    pub to: Option<String>,
    /// Remove what the source lacks, making the target an exact mirror.
    pub delete: bool,
    /// Read and hash every file instead of trusting size, mtime and mode.
    pub checksum: bool,
    /// Advanced after each file.
    pub progress: Option<Arc<dyn Progress>>,
    /// Source paths to leave out; the volume's entries at those paths are
    /// kept as they are, even with `delete`.
    pub filter: Filter,
}

/// Something in the source that was not imported, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Skipped {
    /// Path relative to the source directory.
    pub path: String,
    /// Why it was skipped.
    pub reason: String,
}

/// What an import did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ImportReport {
    /// Regular files found in the source.
    pub files: u64,
    /// Files read and chunked.
    pub files_read: u64,
    /// Files recognised as unchanged without reading.
    pub files_unchanged: u64,
    /// Directories found.
    pub dirs: u64,
    /// Symbolic links found.
    pub symlinks: u64,
    /// Bytes read from the source.
    pub bytes_read: u64,
    /// Entries not imported.
    pub skipped: Vec<Skipped>,
    /// New chunks and tree nodes written.
    pub new_objects: u64,
    /// Plaintext bytes of new chunks and tree nodes.
    pub new_bytes: u64,
    /// Bytes of packs written.
    pub written_bytes: u64,
    /// Logical size of the volume afterwards.
    pub volume_bytes: u64,
    /// Regular files in the volume afterwards.
    pub volume_files: u64,
    /// The volume's new root id.
    pub root: String,
}

#[derive(Default)]
struct Counters {
    files: AtomicU64,
    files_read: AtomicU64,
    files_unchanged: AtomicU64,
    dirs: AtomicU64,
    symlinks: AtomicU64,
    bytes_read: AtomicU64,
    source_bytes: AtomicU64,
}

/// Source names handled together: the unit of parallel work and of memory.
const BATCH: usize = 1024;
/// Names of a batch read in parallel before their small files are written
/// together, in name order. Reading a directory in order then reads its
/// packs in order, which the kernel's read-ahead turns into few, large
/// reads (measured in `bench/results/NOTES.md`, Decisions: 8 cold readers
/// of 20,000 small files through a mount, 3,612-3,750 files/s before,
/// 5,773-6,821 after). Written as each thread finished instead, consecutive
/// files lay about 1 MiB apart. What a group holds is bounded by
/// [`HELD_MAX`].
const GROUP: usize = 64;
/// Bytes of small files held across all groups at most: past it, small
/// files are written as they are read, in whatever order (the parallel
/// walk may have many directories open at once).
const HELD_MAX: u64 = 64 << 20;

/// One position in a directory being rebuilt.
enum Slot<'n> {
    /// An old entry the source does not have, kept (no `--delete`).
    Kept(Entry),
    /// A source name, with the old entry of the same name if any.
    Source(&'n OsStr, Option<Entry>),
}

/// Times a file that keeps changing is read before it is given up on.
const READ_ATTEMPTS: usize = 3;

/// What reading one source file gave.
enum ReadOutcome {
    /// Its content, and its metadata as of the read.
    Read(Content, Box<Metadata>),
    /// It could not be read in a consistent state.
    Unstable(&'static str),
}

/// (device, inode) of a file with several hard links.
type Inode = (u64, u64);

struct Importer<'a> {
    pool: &'a Pool,
    writer: &'a BlobWriter,
    opts: &'a ImportOptions,
    root: PathBuf,
    volume: String,
    quota: Option<u64>,
    counters: Counters,
    skipped: Mutex<Vec<Skipped>>,
    /// Hard-linked files already chunked.
    links: Mutex<HashMap<Inode, (i64, Vec<ChunkRef>)>>,
    buffers: Buffers,
    /// Bytes of small files held for their group (see [`HELD_MAX`]).
    held: AtomicU64,
}

/// Memory for small files, reused from one group of names to the next.
///
/// Each small file is held in memory until its group is written (see
/// [`GROUP`]). Read into new memory each time, importing 20,000 files took
/// 170,000 page faults (53,000 reusing buffers; 6,000 writing each file as
/// it was read): the allocator returns freed memory to the system between
/// groups, and memory touched anew is slow to get.
#[derive(Default)]
struct Buffers(Mutex<Vec<Vec<u8>>>);

impl Buffers {
    /// Buffers kept at most: a few groups' worth.
    const KEPT: usize = 2 * GROUP;

    fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_default()
    }

    fn give(&self, bufs: impl Iterator<Item = Vec<u8>>) {
        let mut kept = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for b in bufs {
            if kept.len() >= Self::KEPT {
                break;
            }
            kept.push(b);
        }
    }
}

fn mtime_ns(md: &Metadata) -> i64 {
    md.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(md.mtime_nsec())
}

impl Importer<'_> {
    fn rel(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned()
    }

    fn skip(&self, path: &Path, reason: impl Into<String>) {
        let s = Skipped {
            path: self.rel(path),
            reason: reason.into(),
        };
        tracing::warn!("skipped {}: {}", s.path, s.reason);
        self.skipped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(s);
    }

    /// Whether the filter leaves out source name `name` in directory
    /// `dir` (`is_dir` asked only when a pattern needs to know).
    fn left_out(&self, dir: &Path, name: &[u8], is_dir: impl FnOnce() -> bool) -> bool {
        let mut rel = dir
            .strip_prefix(&self.root)
            .unwrap_or(dir)
            .as_os_str()
            .as_bytes()
            .to_vec();
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(name);
        let is_dir = is_dir();
        self.opts.filter.leaves_out_here(&rel, is_dir)
    }

    /// Whether the volume's entry `old` in directory `dir` is at a path the
    /// filter leaves out (so that even `delete` keeps it).
    fn left_out_old(&self, dir: &Path, old: &Entry) -> bool {
        !self.opts.filter.is_empty()
            && self.left_out(dir, &old.name, || matches!(old.content, Content::Dir(_)))
    }

    fn add_source_bytes(&self, n: u64) -> Result<()> {
        let total = self.counters.source_bytes.fetch_add(n, Ordering::Relaxed) + n;
        match self.quota {
            // The volume holds at least every file of the source.
            Some(q) if total > q => Err(Error::QuotaExceeded {
                volume: self.volume.clone(),
                needed: total,
                quota: q,
            }),
            _ => Ok(()),
        }
    }

    /// Builds the tree of directory `path`, reusing what `old` has.
    ///
    /// Names are taken in sorted batches; the old directory is read through a
    /// cursor, one leaf at a time, and new nodes are written as leaves fill,
    /// so memory holds the names plus one batch, whatever the directory size.
    fn import_dir(&self, path: &Path, old: Option<&ObjectId>) -> Result<DirRef> {
        let mut names = Vec::new();
        for entry in fs::read_dir(path).at(path)? {
            let entry = entry.at(path)?;
            let name = entry.file_name();
            if self.opts.filter.is_empty()
                || !self.left_out(path, name.as_bytes(), || {
                    entry.file_type().is_ok_and(|t| t.is_dir())
                })
            {
                names.push(name);
            }
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let mut cursor = DirCursor::new(&self.pool.store, old)?;
        let mut builder = DirBuilder::new(self.writer);
        let keep = !self.opts.delete;
        for batch in names.chunks(BATCH) {
            let mut slots = Vec::with_capacity(batch.len());
            for name in batch {
                let name_bytes = name.as_bytes();
                // Old entries that sort before this name are absent from the source.
                while cursor
                    .peek()?
                    .is_some_and(|o| o.name.as_slice() < name_bytes)
                {
                    if let Some(o) = cursor.next_entry()? {
                        if keep || self.left_out_old(path, &o) {
                            slots.push(Slot::Kept(o));
                        }
                    }
                }
                let old = if cursor.peek()?.is_some_and(|o| o.name == name_bytes) {
                    cursor.next_entry()?
                } else {
                    None
                };
                slots.push(Slot::Source(name, old));
            }
            let mut slots = slots.into_iter().peekable();
            while slots.peek().is_some() {
                let group: Vec<Slot> = slots.by_ref().take(GROUP).collect();
                let done: Vec<(Option<Entry>, Vec<Prepared>)> = group
                    .into_par_iter()
                    .map(|slot| match slot {
                        Slot::Kept(e) => Ok((Some(e), Vec::new())),
                        Slot::Source(name, old) => {
                            let mut held = Vec::new();
                            let e = self.import_entry(path, name, old.as_ref(), &mut held)?;
                            Ok((e, held))
                        }
                    })
                    .collect::<Result<_>>()?;
                let mut held = Vec::new();
                let mut entries = Vec::with_capacity(done.len());
                for (e, h) in done {
                    held.extend(h);
                    entries.extend(e);
                }
                // The group's small files go into the pack in name order,
                // one after another, so that reading the directory in
                // order reads the pack in order.
                self.writer.append_prepared(&held)?;
                let bytes: u64 = held.iter().map(Prepared::stored_len).sum();
                self.held.fetch_sub(bytes, Ordering::Relaxed);
                self.buffers
                    .give(held.into_iter().map(Prepared::into_buffer));
                for e in entries {
                    builder.push(e)?;
                }
            }
        }
        while let Some(o) = cursor.next_entry()? {
            if keep || self.left_out_old(path, &o) {
                builder.push(o)?;
            }
        }
        builder.finish()
    }

    /// Rebuilds the directories along `path` with `f` applied at its end.
    fn splice(&self, base: Option<&ObjectId>, path: &[Vec<u8>], src: &Path) -> Result<DirRef> {
        let Some((first, rest)) = path.split_first() else {
            return self.import_dir(src, base);
        };
        let mut entries = match base {
            Some(tree) => read_dir(&self.pool.store, tree)?,
            None => Vec::new(),
        };
        match entries.binary_search_by(|e| e.name.as_slice().cmp(first)) {
            Ok(i) => {
                let Content::Dir(d) = &entries[i].content else {
                    return Err(Error::BadPath(format!(
                        "'{}' in volume '{}' is a {}, not a directory",
                        String::from_utf8_lossy(first),
                        self.volume,
                        entries[i].kind_name()
                    )));
                };
                let sub = self.splice(Some(&d.tree), rest, src)?;
                entries[i].content = Content::Dir(sub);
            }
            Err(i) => {
                let sub = self.splice(None, rest, src)?;
                // SAFETY: geteuid/getegid cannot fail.
                let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
                entries.insert(
                    i,
                    Entry {
                        name: first.clone(),
                        mode: 0o755,
                        uid,
                        gid,
                        mtime_ns: catalog::now_ns(),
                        content: Content::Dir(sub),
                        xattrs: Vec::new(),
                    },
                );
            }
        }
        build_dir(self.writer, entries)
    }

    /// The report, less what only the finished writer knows.
    fn into_report(self, root: DirRef) -> ImportReport {
        let c = &self.counters;
        ImportReport {
            files: c.files.load(Ordering::Relaxed),
            files_read: c.files_read.load(Ordering::Relaxed),
            files_unchanged: c.files_unchanged.load(Ordering::Relaxed),
            dirs: c.dirs.load(Ordering::Relaxed),
            symlinks: c.symlinks.load(Ordering::Relaxed),
            bytes_read: c.bytes_read.load(Ordering::Relaxed),
            skipped: self.skipped.into_inner().unwrap_or_else(|p| p.into_inner()),
            new_objects: 0,
            new_bytes: 0,
            written_bytes: 0,
            volume_bytes: root.bytes,
            volume_files: root.files,
            root: root.tree.to_hex(),
        }
    }
}

fn with_stats(mut report: ImportReport, stats: WriteStats) -> ImportReport {
    report.new_objects = stats.new_blobs;
    report.new_bytes = stats.new_bytes;
    report.written_bytes = stats.pack_bytes;
    report
}

fn check_source(src: &Path) -> Result<()> {
    match fs::metadata(src) {
        Ok(md) if md.is_dir() => Ok(()),
        Ok(_) => Err(Error::InvalidArgument(format!(
            "source {} is not a directory",
            src.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::InvalidArgument(format!(
            "source directory {} does not exist",
            src.display()
        ))),
        Err(e) => Err(Error::io(src, e)),
    }
}

impl Pool {
    fn importer<'a>(
        &'a self,
        writer: &'a BlobWriter,
        opts: &'a ImportOptions,
        src: &Path,
        volume: &str,
        quota: Option<u64>,
    ) -> Importer<'a> {
        Importer {
            pool: self,
            writer,
            opts,
            root: src.to_path_buf(),
            volume: volume.to_string(),
            quota,
            counters: Counters::default(),
            skipped: Mutex::new(Vec::new()),
            links: Mutex::new(HashMap::new()),
            buffers: Buffers::default(),
            held: AtomicU64::new(0),
        }
    }

    /// Creates a volume holding a copy of directory `src`, less what
    /// `filter` leaves out.
    pub fn create_volume_from(
        &self,
        name: &str,
        src: &Path,
        quota: Option<u64>,
        progress: Option<Arc<dyn Progress>>,
        filter: Filter,
    ) -> Result<ImportReport> {
        check_name(name)?;
        check_source(src)?;
        if self.catalog().volume(name).is_ok() {
            return Err(Error::VolumeExists(name.to_string()));
        }
        let opts = ImportOptions {
            delete: true,
            progress,
            filter,
            ..Default::default()
        };
        let writer = self.store.writer("import")?;
        let imp = self.importer(&writer, &opts, src, name, quota);
        let root = self
            .options()
            .with_io_threads(|| imp.import_dir(src, None))?;
        let report = imp.into_report(root);
        let stats = writer.finish()?;
        self.commit_new_volume(name, root, quota)?;
        Ok(with_stats(report, stats))
    }

    /// Copies directory `src` into volume `name`; see [`ImportOptions`].
    /// If anything fails, the volume is left as it was.
    pub fn import(&self, name: &str, src: &Path, opts: &ImportOptions) -> Result<ImportReport> {
        check_name(name)?;
        check_source(src)?;
        self.check_not_mirror(name, "import into")?;
        self.sync_mounts(name)?;
        let volume = self.catalog().volume(name)?;
        let to = split_path(opts.to.as_deref().unwrap_or(""))?;
        let writer = self.store.writer("import")?;
        let imp = self.importer(&writer, opts, src, name, volume.quota);
        let root = self
            .options()
            .with_io_threads(|| imp.splice(Some(&volume.root), &to, src))?;
        if let Some(q) = volume.quota {
            if root.bytes > q {
                return Err(Error::QuotaExceeded {
                    volume: name.to_string(),
                    needed: root.bytes,
                    quota: q,
                });
            }
        }
        let report = imp.into_report(root);
        let stats = writer.finish()?;
        self.move_root(name, &volume.root, &root)?;
        Ok(with_stats(report, stats))
    }
}

#[cfg(test)]
mod tests;
