//! Content-defined chunking of file content (FastCDC 2020).
//!
//! Boundaries depend on content, so an insertion or an in-place edit in a
//! large file changes only the chunks around it. A file no longer than the
//! maximum chunk size is one chunk and is read in one call: most dataset
//! files (images, audio clips, label files) then cost one read, one hash and
//! one index row, and pay nothing for boundary search.

use std::io::Read;
use std::ops::ControlFlow;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};

/// Chunk sizes of a pool: minimum `avg / 4`, maximum `avg * 4`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkParams {
    /// Average chunk size in bytes: a power of two from 16 KiB to 4 MiB.
    pub avg: u32,
}

impl Default for ChunkParams {
    fn default() -> Self {
        ChunkParams { avg: DEFAULT_AVG }
    }
}

/// The default average chunk size (see `bench/results/NOTES.md` for the measurements behind it).
pub const DEFAULT_AVG: u32 = 128 << 10;

impl ChunkParams {
    /// Checks and builds parameters for an average size.
    pub fn new(avg: u64) -> Result<Self> {
        if !avg.is_power_of_two() || !(16 << 10..=4 << 20).contains(&avg) {
            return Err(Error::InvalidArgument(format!(
                "chunk size {avg} must be a power of two from 16KiB to 4MiB"
            )));
        }
        Ok(ChunkParams { avg: avg as u32 })
    }

    /// Smallest chunk (except a file's last).
    pub fn min(&self) -> u32 {
        self.avg / 4
    }

    /// Largest chunk.
    pub fn max(&self) -> u32 {
        self.avg * 4
    }

    /// Splits everything `reader` yields into chunks and hands each to
    /// `sink`, which owns it from there. `expected` is the size the caller saw (a hint for small
    /// files); `path` names the source in errors.
    pub fn chunk_stream<R: Read>(
        &self,
        reader: R,
        expected: u64,
        path: &Path,
        sink: impl FnMut(Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        self.chunk_stream_in(Vec::new(), reader, expected, path, sink)
    }

    /// Like [`chunk_stream`](Self::chunk_stream), reading a small file into
    /// `buf` (emptied first) instead of new memory.
    pub fn chunk_stream_in<R: Read>(
        &self,
        mut buf: Vec<u8>,
        mut reader: R,
        expected: u64,
        path: &Path,
        mut sink: impl FnMut(Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        let whole = self.max() as usize;
        if expected <= whole as u64 {
            buf.clear();
            buf.reserve(expected as usize + 1);
            reader.read_to_end(&mut buf).at(path)?;
            if buf.len() <= whole {
                return if buf.is_empty() { Ok(()) } else { sink(buf) };
            }
            // The file grew past the small-file size while we read it.
            return self.chunk_all(std::io::Cursor::new(buf), path, sink);
        }
        self.chunk_all(reader, path, sink)
    }

    /// Splits everything `reader` yields by content, whatever its size
    /// (for data that starts at a chunk boundary of a larger file).
    pub fn chunk_all<R: Read>(
        &self,
        reader: R,
        path: &Path,
        mut sink: impl FnMut(Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        self.chunk_while(reader, path, |data| {
            sink(data).map(|()| ControlFlow::Continue(()))
        })
    }

    /// Like [`chunk_all`](Self::chunk_all), stopping (without reading
    /// further chunks) as soon as `sink` says [`ControlFlow::Break`]: for
    /// re-chunking part of a file until its old boundaries are met again.
    pub fn chunk_while<R: Read>(
        &self,
        reader: R,
        path: &Path,
        mut sink: impl FnMut(Vec<u8>) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        let chunks = fastcdc::v2020::StreamCDC::new(reader, self.min(), self.avg, self.max());
        for chunk in chunks {
            let chunk = chunk.map_err(|e| match e {
                fastcdc::v2020::Error::IoError(io) => Error::io(path, io),
                other => Error::io(path, std::io::Error::other(format!("chunker: {other:?}"))),
            })?;
            if sink(chunk.data)?.is_break() {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(params: ChunkParams, data: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        params
            .chunk_stream(data, data.len() as u64, Path::new("test"), |c| {
                out.push(c);
                Ok(())
            })
            .unwrap();
        out
    }

    #[test]
    fn small_empty_and_large() {
        let p = ChunkParams::default();
        assert!(chunks(p, b"").is_empty());
        assert_eq!(chunks(p, b"abc"), vec![b"abc".to_vec()]);
        let one = crate::test_noise(5, p.max() as usize);
        assert_eq!(
            chunks(p, &one),
            vec![one.clone()],
            "a file up to the maximum is one chunk"
        );
        let big = crate::test_noise(3, 9_000_000);
        let parts = chunks(p, &big);
        assert!(parts.len() >= 3);
        assert!(parts.iter().all(|c| c.len() <= p.max() as usize));
        assert_eq!(parts.concat(), big);
        // an insertion near the start leaves later chunks unchanged
        let mut edited = big.clone();
        edited.splice(1000..1000, b"inserted".iter().copied());
        let again = chunks(p, &edited);
        let shared = again.iter().filter(|c| parts.contains(c)).count();
        assert!(
            shared >= parts.len() - 2,
            "{shared} of {} shared",
            parts.len()
        );
    }

    #[test]
    fn sizes_follow_the_average() {
        let p = ChunkParams::new(64 << 10).unwrap();
        let data = crate::test_noise(4, 4 << 20);
        let parts = chunks(p, &data);
        let mean = data.len() / parts.len();
        assert!((32 << 10..=128 << 10).contains(&mean), "mean chunk {mean}");
        assert!(ChunkParams::new(1000).is_err());
        assert!(ChunkParams::new(8 << 20).is_err());
        assert!(ChunkParams::new(8 << 10).is_err());
    }
}
