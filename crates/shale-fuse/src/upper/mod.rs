//! Upper files: the local copies of files written through a mount.
//!
//! A file gets an upper file in `POOL/upper/<mount>/` on its first write.
//! A file that had content is not copied up: its upper file starts sparse,
//! holds only the bytes written since, and the rest is read from the file's
//! chunks (so the first write to a 10 GB checkpoint costs what it writes,
//! not a copy of 10 GB). Past [`MAX_PRESENT`] separate written ranges the
//! gaps are filled in from the chunks, once.
//!
//! A commit splits again only the parts written since the last commit:
//! from the old chunk boundary before each change until the new cuts meet
//! an old boundary followed by an untouched chunk. The result is the one
//! splitting the whole file would give, at a cost that follows the bytes
//! written, not the file's size.
//!
//! An upper file's descriptor is opened when it is made and let go of when
//! the mount holds too many ([`OpenUppers`]; `State::limit_upper_fds`), and
//! opened again by path at the next use: a copy of tens of thousands of
//! files can outrun the commits that drop their upper files, and must not
//! run the server out of descriptors.

use std::fs::File;
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use shale_core::store::blobs::BlobWriter;
use shale_core::store::chunker::ChunkParams;
use shale_core::store::pack::BlobKind;
use shale_core::tree::ChunkRef;
use shale_core::Pool;

use crate::inodes::ChunkList;
use crate::ranges::{add_range, clip, covered, insert_range, touches};
use crate::reader::ChunkCache;

mod view;
use view::ReadAt;
pub use view::UpperView;

/// Separate written ranges an upper file keeps track of before the gaps
/// between them are filled in from its chunks.
pub const MAX_PRESENT: usize = 256;

/// How many upper-file descriptors a mount holds open (clones share it).
#[derive(Clone, Debug, Default)]
pub struct OpenUppers(Arc<AtomicUsize>);

impl OpenUppers {
    /// Descriptors open now.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// Where the bytes an upper file does not hold come from.
#[derive(Clone)]
struct Lower {
    /// The pool the known chunks are read from.
    pool: Arc<Pool>,
    /// The byte ranges the upper file holds (sorted, disjoint); the others,
    /// below the known chunks' end, are in the known chunks.
    present: Vec<(u64, u64)>,
}

/// A file's data as a local file.
#[derive(Debug)]
pub struct Upper {
    /// The open file (shared with reader threads), or `None` once let go.
    file: Mutex<Option<Arc<File>>>,
    /// The count it is in.
    open: OpenUppers,
    /// Where it is.
    pub path: PathBuf,
    /// Length in bytes.
    pub size: u64,
    /// Chunks of the file as of the last commit or copy-up.
    known: Arc<ChunkList>,
    /// Whether `known` was cut by content (the file was larger than one
    /// chunk), so that its inner boundaries can be reused.
    known_by_content: bool,
    /// The byte ranges changed since `known` was right (sorted, disjoint;
    /// they may reach past `size` after a truncation).
    written: Vec<(u64, u64)>,
    /// `None` once the upper file holds every byte.
    lower: Option<Lower>,
}

impl std::fmt::Debug for Lower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lower")
            .field("present", &self.present)
            .finish_non_exhaustive()
    }
}

impl Drop for Upper {
    fn drop(&mut self) {
        self.let_go();
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Upper {
    /// A new empty upper file at `path`, its descriptor counted in `open`.
    pub fn create(path: PathBuf, open: &OpenUppers) -> std::io::Result<Upper> {
        let file = shale_core::private::open(
            &path,
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true),
        )?;
        open.0.fetch_add(1, Ordering::Relaxed);
        Ok(Upper {
            file: Mutex::new(Some(Arc::new(file))),
            open: open.clone(),
            path,
            size: 0,
            known: Arc::new(ChunkList::default()),
            known_by_content: false,
            written: Vec::new(),
            lower: None,
        })
    }

    /// An upper file at `path` for a file of `size` bytes made of `chunks`
    /// (in `pool`), holding none of them yet: reads of what is not written
    /// come from the chunks.
    pub fn over(
        path: PathBuf,
        open: &OpenUppers,
        pool: Arc<Pool>,
        chunks: Arc<ChunkList>,
        size: u64,
    ) -> std::io::Result<Upper> {
        let mut up = Upper::create(path, open)?;
        up.file()?.set_len(size)?;
        up.size = size;
        up.known_by_content = size > pool.chunking().max() as u64;
        up.known = chunks;
        if size > 0 {
            up.lower = Some(Lower {
                pool,
                present: Vec::new(),
            });
        }
        Ok(up)
    }

    /// The open file, opened again (and kept open) if it was let go of.
    pub fn file(&self) -> std::io::Result<Arc<File>> {
        self.opened(true)
    }

    /// The open file, or if it was let go of, a descriptor for this use
    /// only (a commit reading every closed file must not reopen them all).
    pub fn file_once(&self) -> std::io::Result<Arc<File>> {
        self.opened(false)
    }

    fn opened(&self, keep: bool) -> std::io::Result<Arc<File>> {
        let mut slot = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = &*slot {
            return Ok(f.clone());
        }
        // (Made by `create` with its mode: no need to set it again.)
        let opened = Arc::new(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&self.path)?,
        );
        if keep {
            self.open.0.fetch_add(1, Ordering::Relaxed);
            *slot = Some(opened.clone());
        }
        Ok(opened)
    }

    /// Closes the descriptor (readers still using it keep it until they
    /// are done).
    pub fn let_go(&self) {
        let mut slot = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if slot.take().is_some() {
            self.open.0.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// What a read needs (`keep`: keep the descriptor open, as
    /// [`Upper::file`] does).
    pub fn view(&self, keep: bool) -> std::io::Result<UpperView> {
        Ok(UpperView {
            file: self.opened(keep)?,
            size: self.size,
            known: self.known.clone(),
            lower: self.lower.clone(),
        })
    }

    /// Writes `data` at `offset`.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.file()?.write_all_at(data, offset)?;
        let end = offset + data.len() as u64;
        // A write past the end also changes the hole before it (zeros now,
        // in the upper file too).
        let from = offset.min(self.size);
        add_range(&mut self.written, from, end);
        self.size = self.size.max(end);
        self.now_present(from, end);
        Ok(())
    }

    /// Sets the length.
    pub fn truncate(&mut self, size: u64) -> std::io::Result<()> {
        self.file()?.set_len(size)?;
        let old = self.size;
        self.size = size;
        if size != old {
            add_range(&mut self.written, size.min(old), size.max(old));
        }
        if let Some(lower) = &mut self.lower {
            clip(&mut lower.present, size);
        }
        if size > old {
            self.now_present(old, size);
        } else {
            self.settle();
        }
        Ok(())
    }

    /// Records that the upper file holds `start..end`; past
    /// [`MAX_PRESENT`] ranges, fills in every gap. (A fill that fails, the
    /// chunks out of reach, fails nothing: the write is done, the list of
    /// ranges stays right, and the next write tries again.)
    fn now_present(&mut self, start: u64, end: u64) {
        let Some(lower) = &mut self.lower else {
            return;
        };
        insert_range(&mut lower.present, start, end);
        if lower.present.len() > MAX_PRESENT {
            if let Err(e) = self.fill() {
                tracing::warn!("filling in {}: {e}", self.path.display());
            }
        }
        self.settle();
    }

    /// Drops `lower` once the upper file holds every byte the chunks would
    /// give.
    fn settle(&mut self) {
        let needed = self.size.min(self.known.end());
        if let Some(lower) = &self.lower {
            let whole = needed == 0
                || lower
                    .present
                    .first()
                    .is_some_and(|r| r.0 == 0 && r.1 >= needed);
            if whole {
                self.lower = None;
            }
        }
    }

    /// Copies every byte not written into the upper file from the chunks.
    fn fill(&mut self) -> std::io::Result<()> {
        let view = self.view(true)?;
        let Some(lower) = &view.lower else {
            return Ok(());
        };
        let file = self.file()?;
        let cache = ChunkCache::default();
        let needed = self.size.min(self.known.end());
        let mut buf = vec![0; 1 << 20];
        let mut at = 0;
        let last = (needed, needed);
        for &(start, end) in lower.present.iter().chain([&last]) {
            let gap_end = start.min(needed);
            while at < gap_end {
                let n = ((gap_end - at) as usize).min(buf.len());
                if view.read_full(&mut buf[..n], at, &cache)? < n {
                    return Err(std::io::Error::other("the file's chunks end early"));
                }
                file.write_all_at(&buf[..n], at)?;
                at += n as u64;
            }
            at = at.max(end);
            if at >= needed {
                break;
            }
        }
        self.lower = None;
        Ok(())
    }

    /// Whether bytes changed since the chunks were last computed.
    pub fn changed(&self) -> bool {
        !self.written.is_empty() || self.known.end() != self.size
    }

    /// The file's chunks, storing new ones through `w`. The upper file
    /// keeps using its previous chunks until [`Upper::committed`].
    pub fn chunks(&self, w: &BlobWriter, params: ChunkParams) -> shale_core::Result<Vec<ChunkRef>> {
        if !self.changed() {
            return Ok(self.known.refs.clone());
        }
        let view = self
            .view(false)
            .map_err(|e| shale_core::Error::io(&self.path, e))?;
        let cache = ChunkCache::default();
        let mut out = Vec::new();
        if self.known_by_content && self.size > params.max() as u64 {
            self.rechunk_written(&view, &cache, w, params, &mut out)?;
        } else {
            let reader = ReadAt {
                view: &view,
                cache: &cache,
                pos: 0,
                end: self.size,
            };
            params.chunk_stream(reader, self.size, &self.path, |data| {
                out.push(w.put_chunk(&data)?);
                Ok(())
            })?;
        }
        let total: u64 = out.iter().map(|c| c.len as u64).sum();
        if total != self.size {
            return Err(shale_core::Error::io(
                &self.path,
                std::io::Error::other(format!(
                    "upper file has {total} bytes where {} were written",
                    self.size
                )),
            ));
        }
        Ok(out)
    }

    /// Appends to `out` the chunks of a file whose `known` chunks were cut
    /// by content: each known chunk no write touched is kept; from the start
    /// of each touched one, the file is split again until a new cut lands
    /// on the start of a kept chunk. From a cut on, content-defined cuts
    /// depend only on the bytes that follow, so the result is what
    /// splitting the whole file would give.
    fn rechunk_written(
        &self,
        view: &UpperView,
        cache: &ChunkCache,
        w: &BlobWriter,
        params: ChunkParams,
        out: &mut Vec<ChunkRef>,
    ) -> shale_core::Result<()> {
        let known = &self.known;
        let n = known.refs.len();
        // The last known chunk ends at the old end of file, which is a cut
        // only if the file still ends there.
        let keep = |j: usize| {
            let (start, end) = (known.boundary(j), known.boundary(j + 1));
            let last_holds = j + 1 < n || end == self.size;
            end <= self.size && last_holds && !touches(&self.written, start, end)
        };
        let mut j = 0;
        loop {
            while j < n && keep(j) {
                out.push(known.refs[j]);
                j += 1;
            }
            let pos = known.boundary(j);
            if pos >= self.size {
                return Ok(());
            }
            let reader = ReadAt {
                view,
                cache,
                pos,
                end: self.size,
            };
            let (mut at, mut met) = (pos, None);
            params.chunk_while(reader, &self.path, |data| {
                let (from, to) = (at, at + data.len() as u64);
                // A chunk mostly written anew is stored whole, without
                // looking for what little it shares.
                let bases = match covered(&self.written, from, to) * 2 < to - from {
                    true => known.near(from, to),
                    false => Vec::new(),
                };
                at = to;
                let id = w.put_near(BlobKind::Data, &data, &bases)?;
                out.push(ChunkRef {
                    id,
                    len: data.len() as u32,
                });
                match known.starting_at(at) {
                    Some(k) if keep(k) => {
                        met = Some(k);
                        Ok(ControlFlow::Break(()))
                    }
                    _ => Ok(ControlFlow::Continue(())),
                }
            })?;
            match met {
                Some(k) => j = k,
                None => return Ok(()),
            }
        }
    }

    /// Records that `chunks` (from [`Upper::chunks`]) are committed.
    pub fn committed(&mut self, chunks: Vec<ChunkRef>, params: ChunkParams) {
        self.known_by_content = self.size > params.max() as u64;
        self.written.clear();
        self.known = Arc::new(ChunkList::new(chunks));
    }
}

/// This mount's upper directory, `POOL/upper/<pid>-<start>`; upper
/// directories of mounts whose process is gone are removed.
pub fn upper_dir(pool_root: &Path) -> std::io::Result<PathBuf> {
    let base = pool_root.join("upper");
    shale_core::private::create_dir_all(&base)?;
    for item in std::fs::read_dir(&base)?.flatten() {
        let name = item.file_name().to_string_lossy().to_string();
        let alive = name
            .split_once('-')
            .and_then(|(pid, start)| Some((pid.parse::<u32>().ok()?, start.parse::<u64>().ok()?)))
            .is_some_and(|(pid, start)| {
                shale_core::coord::session::process_start(pid) == Some(start)
            });
        if !alive {
            let _ = std::fs::remove_dir_all(item.path());
        }
    }
    let pid = std::process::id();
    let start = shale_core::coord::session::process_start(pid).unwrap_or(0);
    let dir = base.join(format!("{pid}-{start}"));
    shale_core::private::create_dir_all(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests;
