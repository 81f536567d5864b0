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
use std::io::Read;
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use shale_core::store::blobs::BlobWriter;
use shale_core::store::chunker::ChunkParams;
use shale_core::tree::ChunkRef;
use shale_core::Pool;

use crate::inodes::ChunkList;
use crate::ranges::{add_range, clip, insert_range, touches};
use crate::reader::ChunkCache;

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

/// What a read of an upper file needs, taken while the state is locked and
/// read from without it (on a reader thread).
pub struct UpperView {
    file: Arc<File>,
    size: u64,
    known: Arc<ChunkList>,
    lower: Option<Lower>,
}

impl UpperView {
    /// Reads at `offset` into `buf`, from the upper file or the known
    /// chunks, as `pread` does: some bytes, or 0 at the end of the file.
    pub fn read_at(
        &self,
        buf: &mut [u8],
        offset: u64,
        cache: &ChunkCache,
    ) -> std::io::Result<usize> {
        let want = (self.size.saturating_sub(offset)).min(buf.len() as u64);
        if want == 0 {
            return Ok(0);
        }
        let Some(lower) = &self.lower else {
            return self.file.read_at(&mut buf[..want as usize], offset);
        };
        let i = lower.present.partition_point(|r| r.1 <= offset);
        let next = lower.present.get(i).copied();
        if let Some((_, end)) = next.filter(|r| r.0 <= offset) {
            let n = (end - offset).min(want) as usize;
            return self.file.read_at(&mut buf[..n], offset);
        }
        // Not written: from the chunk holding it, up to the next written byte.
        let until = next.map_or(u64::MAX, |r| r.0);
        let c = self.known.find(offset);
        let (c_start, c_ref) = (self.known.start(c), self.known.refs.get(c));
        let Some(c_ref) = c_ref.filter(|r| offset < c_start + r.len as u64) else {
            return Err(std::io::Error::other(format!(
                "byte {offset} is neither written nor in the file's chunks"
            )));
        };
        let data = cache
            .get(&lower.pool, &c_ref.id)
            .map_err(std::io::Error::from_raw_os_error)?;
        if data.len() != c_ref.len as usize {
            return Err(std::io::Error::other(format!(
                "chunk {} has {} bytes where {} were expected",
                c_ref.id,
                data.len(),
                c_ref.len
            )));
        }
        let from = (offset - c_start) as usize;
        let n = (data.len() - from)
            .min(want as usize)
            .min((until - offset) as usize);
        buf[..n].copy_from_slice(&data[from..from + n]);
        Ok(n)
    }

    /// Fills `buf` from `offset`, short only at the end of the file.
    pub fn read_full(
        &self,
        buf: &mut [u8],
        offset: u64,
        cache: &ChunkCache,
    ) -> std::io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match self.read_at(&mut buf[done..], offset + done as u64, cache)? {
                0 => break,
                n => done += n,
            }
        }
        Ok(done)
    }
}

/// Reads a file's view from an offset up to an end, as a stream.
struct ReadAt<'a> {
    view: &'a UpperView,
    cache: &'a ChunkCache,
    pos: u64,
    end: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = (self.end - self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.view.read_at(&mut buf[..want], self.pos, self.cache)?;
        self.pos += n as u64;
        Ok(n)
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
        self.now_present(from, end)
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
            self.now_present(old, size)
        } else {
            self.settle();
            Ok(())
        }
    }

    /// Records that the upper file holds `start..end`; past
    /// [`MAX_PRESENT`] ranges, fills in every gap.
    fn now_present(&mut self, start: u64, end: u64) -> std::io::Result<()> {
        let Some(lower) = &mut self.lower else {
            return Ok(());
        };
        insert_range(&mut lower.present, start, end);
        if lower.present.len() > MAX_PRESENT {
            self.fill()?;
        }
        self.settle();
        Ok(())
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
        let known = &self.known.refs;
        let n = known.len();
        let mut starts = Vec::with_capacity(n + 1);
        starts.push(0u64);
        for c in known {
            starts.push(starts[starts.len() - 1] + c.len as u64);
        }
        // The last known chunk ends at the old end of file, which is a cut
        // only if the file still ends there.
        let keep = |j: usize| {
            let (start, end) = (starts[j], starts[j + 1]);
            let last_holds = j + 1 < n || end == self.size;
            end <= self.size && last_holds && !touches(&self.written, start, end)
        };
        let mut j = 0;
        loop {
            while j < n && keep(j) {
                out.push(known[j]);
                j += 1;
            }
            let pos = starts[j];
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
                at += data.len() as u64;
                out.push(w.put_chunk(&data)?);
                match starts.binary_search(&at) {
                    Ok(k) if k < n && keep(k) => {
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
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift64).
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n.max(1)
        }

        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.below(256) as u8).collect()
        }
    }

    /// What splitting all of `data` gives, stored through `w`.
    fn split_whole(data: &[u8], w: &BlobWriter, params: ChunkParams) -> Vec<ChunkRef> {
        let mut out = Vec::new();
        params
            .chunk_stream(data, data.len() as u64, Path::new("model"), |c| {
                out.push(w.put_chunk(&c).unwrap());
                Ok(())
            })
            .unwrap();
        out
    }

    fn setup(dir: &Path) -> (Arc<Pool>, ChunkParams) {
        let pool = Pool::init(&dir.join("pool")).unwrap();
        (Arc::new(pool), ChunkParams::new(16 << 10).unwrap())
    }

    /// `data` stored in `pool` as its chunks.
    fn stored(pool: &Pool, data: &[u8], params: ChunkParams) -> Arc<ChunkList> {
        let w = pool.blobs().writer("test").unwrap();
        let chunks = split_whole(data, &w, params);
        w.finish().unwrap();
        Arc::new(ChunkList::new(chunks))
    }

    /// Everything a read of `up` gives.
    fn read_all(up: &Upper) -> Vec<u8> {
        let mut buf = vec![0; up.size as usize + 10];
        let n = up
            .view(false)
            .unwrap()
            .read_full(&mut buf, 0, &ChunkCache::default())
            .unwrap();
        buf.truncate(n);
        buf
    }

    /// Random writes and truncations of `up` (holding `model`), each
    /// round read back and committed, the chunks compared with splitting
    /// the whole file.
    fn edit_and_commit(
        pool: &Pool,
        params: ChunkParams,
        mut up: Upper,
        mut model: Vec<u8>,
        seed: u64,
    ) {
        let mut rng = Rng(seed);
        for round in 0..60 {
            for _ in 0..=rng.below(3) {
                let size = model.len() as u64;
                if rng.below(6) == 0 {
                    let to = rng.below(size + (200 << 10)) as usize;
                    up.truncate(to as u64).unwrap();
                    model.resize(to, 0);
                } else {
                    let at = rng.below(size + (100 << 10)) as usize;
                    let len = 1 + rng.below(80 << 10) as usize;
                    let data = rng.bytes(len);
                    up.write(at as u64, &data).unwrap();
                    if model.len() < at + data.len() {
                        model.resize(at + data.len(), 0);
                    }
                    model[at..at + data.len()].copy_from_slice(&data);
                }
                assert!(read_all(&up) == model, "round {round}: read back");
            }
            let w = pool.blobs().writer("test").unwrap();
            let chunks = up.chunks(&w, params).unwrap();
            assert_eq!(chunks, split_whole(&model, &w, params), "round {round}");
            w.finish().unwrap();
            up.committed(chunks, params);
            assert!(!up.changed());
            assert!(
                read_all(&up) == model,
                "round {round}: read after the commit"
            );
        }
    }

    #[test]
    fn committing_writes_splits_as_splitting_the_whole_file_would() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, params) = setup(dir.path());
        let model = Rng(0x5eed).bytes(1 << 20);
        let mut up = Upper::create(dir.path().join("up"), &OpenUppers::default()).unwrap();
        up.write(0, &model).unwrap();
        edit_and_commit(&pool, params, up, model, 0x5eed);
    }

    #[test]
    fn a_file_written_over_its_chunks_reads_and_commits_as_a_copy_would() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, params) = setup(dir.path());
        let model = Rng(11).bytes(1 << 20);
        let known = stored(&pool, &model, params);
        let path = dir.path().join("up");
        let up = Upper::over(path, &OpenUppers::default(), pool.clone(), known, 1 << 20).unwrap();
        edit_and_commit(&pool, params, up, model, 11);
    }

    #[test]
    fn a_first_write_copies_nothing_and_many_writes_fill_the_rest_once() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, params) = setup(dir.path());
        let mut model = Rng(3).bytes(8 << 20);
        let known = stored(&pool, &model, params);
        let path = dir.path().join("up");
        let mut up =
            Upper::over(path.clone(), &OpenUppers::default(), pool, known, 8 << 20).unwrap();
        up.write(4 << 20, &[1; 4096]).unwrap();
        model[4 << 20..(4 << 20) + 4096].fill(1);
        let held =
            |p: &Path| std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(p).unwrap()) * 512;
        assert!(
            held(&path) < 1 << 20,
            "{} bytes held after one write",
            held(&path)
        );
        assert!(read_all(&up) == model);
        for i in 0..=MAX_PRESENT as u64 {
            let at = (i * 20_000) as usize;
            up.write(at as u64, b"x").unwrap();
            model[at] = b'x';
        }
        assert!(up.lower.is_none(), "filled in");
        assert!(held(&path) >= 8 << 20);
        assert!(read_all(&up) == model);
        let mut whole = vec![0; 8 << 20];
        up.file().unwrap().read_exact_at(&mut whole, 0).unwrap();
        assert!(whole == model, "the upper file itself holds the file");
    }

    #[test]
    fn a_commit_reads_only_around_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, params) = setup(dir.path());
        let w = pool.blobs().writer("test").unwrap();
        let mut rng = Rng(7);
        let model = rng.bytes(4 << 20);
        let mut up = Upper::create(dir.path().join("up"), &OpenUppers::default()).unwrap();
        up.write(0, &model).unwrap();
        let before = up.chunks(&w, params).unwrap();
        up.committed(before.clone(), params);
        // Bytes changed behind the upper file's back, far from the edit,
        // are not read: the chunks there are the ones already known.
        up.file()
            .unwrap()
            .write_all_at(&[0; 4096], 3 << 20)
            .unwrap();
        up.write(100_000, b"edited").unwrap();
        let after = up.chunks(&w, params).unwrap();
        let tail = |c: &[ChunkRef]| c[c.len() - 20..].to_vec();
        assert_eq!(tail(&after), tail(&before));
        let new = after.iter().filter(|c| !before.contains(c)).count();
        assert!(
            (1..=4).contains(&new),
            "{new} new chunks for one small edit"
        );
    }
}
