//! Upper files: the local copies of files written through a mount.
//!
//! A file gets an upper file in `POOL/upper/<mount>/` on its first write
//! (copied up from its chunks, unless truncated to nothing). A commit splits
//! again only the parts written since the last commit: from the old chunk
//! boundary before each change until the new cuts meet an old boundary
//! followed by an untouched chunk. The result is the one splitting the
//! whole file would give, at a cost that follows the bytes written, not the
//! file's size.
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

use crate::ranges::{add_range, touches};

/// How many upper-file descriptors a mount holds open (clones share it).
#[derive(Clone, Debug, Default)]
pub struct OpenUppers(Arc<AtomicUsize>);

impl OpenUppers {
    /// Descriptors open now.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
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
    known: Vec<ChunkRef>,
    /// Whether `known` was cut by content (the file was larger than one
    /// chunk), so that its inner boundaries can be reused.
    known_by_content: bool,
    /// The byte ranges changed since `known` was right (sorted, disjoint;
    /// they may reach past `size` after a truncation).
    written: Vec<(u64, u64)>,
}

impl Drop for Upper {
    fn drop(&mut self) {
        self.let_go();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads a file from an offset with `pread`, leaving its position alone.
struct ReadAt<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = (self.end - self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

fn io_err(e: shale_core::Error) -> std::io::Error {
    std::io::Error::other(e.to_string())
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
            known: Vec::new(),
            known_by_content: false,
            written: Vec::new(),
        })
    }

    /// An upper file at `path` holding the data of `chunks`.
    pub fn copy_up(
        path: PathBuf,
        open: &OpenUppers,
        pool: &Pool,
        chunks: &[ChunkRef],
        size: u64,
    ) -> std::io::Result<Upper> {
        let mut up = Upper::create(path, open)?;
        let file = up.file()?;
        let mut pos = 0u64;
        for c in chunks {
            let data = pool.blobs().get(&c.id).map_err(io_err)?;
            file.write_all_at(&data, pos)?;
            pos += data.len() as u64;
        }
        up.size = size;
        up.known = chunks.to_vec();
        up.known_by_content = size > pool.chunking().max() as u64;
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

    /// Writes `data` at `offset`.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.file()?.write_all_at(data, offset)?;
        let end = offset + data.len() as u64;
        // A write past the end also changes the hole before it (zeros now).
        add_range(&mut self.written, offset.min(self.size), end);
        self.size = self.size.max(end);
        Ok(())
    }

    /// Sets the length.
    pub fn truncate(&mut self, size: u64) -> std::io::Result<()> {
        self.file()?.set_len(size)?;
        if size != self.size {
            add_range(&mut self.written, size.min(self.size), size.max(self.size));
        }
        self.size = size;
        Ok(())
    }

    /// Whether bytes changed since the chunks were last computed.
    pub fn changed(&self) -> bool {
        !self.written.is_empty() || self.known_size() != self.size
    }

    fn known_size(&self) -> u64 {
        self.known.iter().map(|c| c.len as u64).sum()
    }

    /// The file's chunks, storing new ones through `w`. The upper file
    /// keeps using its previous chunks until [`Upper::committed`].
    pub fn chunks(&self, w: &BlobWriter, params: ChunkParams) -> shale_core::Result<Vec<ChunkRef>> {
        if !self.changed() {
            return Ok(self.known.clone());
        }
        let file = self
            .file_once()
            .map_err(|e| shale_core::Error::io(&self.path, e))?;
        let mut out = Vec::new();
        if self.known_by_content && self.size > params.max() as u64 {
            self.rechunk_written(&file, w, params, &mut out)?;
        } else {
            let reader = ReadAt {
                file: &file,
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
        file: &File,
        w: &BlobWriter,
        params: ChunkParams,
        out: &mut Vec<ChunkRef>,
    ) -> shale_core::Result<()> {
        let n = self.known.len();
        let mut starts = Vec::with_capacity(n + 1);
        starts.push(0u64);
        for c in &self.known {
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
                out.push(self.known[j]);
                j += 1;
            }
            let pos = starts[j];
            if pos >= self.size {
                return Ok(());
            }
            let reader = ReadAt {
                file,
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
        self.known = chunks;
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

    fn setup(dir: &Path) -> (Pool, ChunkParams) {
        let pool = Pool::init(&dir.join("pool")).unwrap();
        (pool, ChunkParams::new(16 << 10).unwrap())
    }

    #[test]
    fn committing_writes_splits_as_splitting_the_whole_file_would() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, params) = setup(dir.path());
        let w = pool.blobs().writer("test").unwrap();
        let mut rng = Rng(0x5eed);
        let mut model = rng.bytes(1 << 20);
        let mut up = Upper::create(dir.path().join("up"), &OpenUppers::default()).unwrap();
        up.write(0, &model).unwrap();
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
            }
            let chunks = up.chunks(&w, params).unwrap();
            assert_eq!(chunks, split_whole(&model, &w, params), "round {round}");
            up.committed(chunks, params);
            assert!(!up.changed());
        }
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
