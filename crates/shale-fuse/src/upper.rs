//! Upper files: the local copies of files written through a mount.
//!
//! A file gets an upper file in `POOL/upper/<mount>/` on its first write
//! (copied up from its chunks, unless truncated to nothing). A commit splits
//! the upper file into chunks again, reusing the chunks of the part before
//! the first byte written since the last commit.
//!
//! An upper file's descriptor is opened when it is made and let go of when
//! the mount holds too many ([`OpenUppers`]; `State::limit_upper_fds`), and
//! opened again by path at the next use: a copy of tens of thousands of
//! files can outrun the commits that drop their upper files, and must not
//! run the server out of descriptors.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use shale_core::store::blobs::BlobWriter;
use shale_core::store::chunker::ChunkParams;
use shale_core::tree::ChunkRef;
use shale_core::Pool;

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
    /// The first byte changed since `known` was right.
    dirty_from: u64,
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
            dirty_from: 0,
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
        up.dirty_from = size;
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
        self.file()?.write_all_at(data, offset)?;
        self.size = self.size.max(offset + data.len() as u64);
        self.dirty_from = self.dirty_from.min(offset);
        Ok(())
    }

    /// Sets the length.
    pub fn truncate(&mut self, size: u64) -> std::io::Result<()> {
        self.file()?.set_len(size)?;
        self.size = size;
        self.dirty_from = self.dirty_from.min(size);
        Ok(())
    }

    /// Whether bytes changed since the chunks were last computed.
    pub fn changed(&self) -> bool {
        self.dirty_from < self.size || self.known_size() != self.size
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
        let mut out = Vec::new();
        let mut start = 0u64;
        if self.known_by_content && self.size > params.max() as u64 {
            // Inner boundaries before the first changed byte still hold; the
            // last known chunk ended at the old end of file, not a boundary.
            let inner = &self.known[..self.known.len().saturating_sub(1)];
            for c in inner {
                if start + c.len as u64 > self.dirty_from {
                    break;
                }
                out.push(*c);
                start += c.len as u64;
            }
        }
        let file = self
            .file_once()
            .map_err(|e| shale_core::Error::io(&self.path, e))?;
        let reader = ReadAt {
            file: &file,
            pos: start,
            end: self.size,
        };
        let mut sink = |data: Vec<u8>| {
            out.push(w.put_chunk(&data)?);
            Ok(())
        };
        if start > 0 {
            params.chunk_all(reader, &self.path, &mut sink)?;
        } else {
            params.chunk_stream(reader, self.size, &self.path, &mut sink)?;
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

    /// Records that `chunks` (from [`Upper::chunks`]) are committed.
    pub fn committed(&mut self, chunks: Vec<ChunkRef>, params: ChunkParams) {
        self.known_by_content = self.size > params.max() as u64;
        self.dirty_from = self.size;
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
