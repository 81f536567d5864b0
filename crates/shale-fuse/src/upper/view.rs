//! Reading an upper file: the bytes written from the upper file, the
//! others from the file's chunks.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::Lower;
use crate::inodes::ChunkList;
use crate::reader::ChunkCache;

/// What a read of an upper file needs, taken while the state is locked and
/// read from without it (on a reader thread).
pub struct UpperView {
    pub(super) file: Arc<File>,
    pub(super) size: u64,
    pub(super) known: Arc<ChunkList>,
    pub(super) lower: Option<Lower>,
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

    /// Up to `len` bytes from `offset` (fewer only at the end of the file).
    pub fn read(&self, offset: u64, len: u32, cache: &ChunkCache) -> std::io::Result<Vec<u8>> {
        let len = self.size.saturating_sub(offset).min(len as u64) as usize;
        let mut buf = vec![0u8; len];
        let n = self.read_full(&mut buf, offset, cache)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Fills `buf` from `offset`, short only at the end of the file.
    pub(super) fn read_full(
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
pub(super) struct ReadAt<'a> {
    pub(super) view: &'a UpperView,
    pub(super) cache: &'a ChunkCache,
    pub(super) pos: u64,
    pub(super) end: u64,
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
