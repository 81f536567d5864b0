//! Content-defined chunking of file content (FastCDC 2020).
//!
//! Boundaries depend on content, so an insertion early in a large file
//! changes only the chunks around it. Files shorter than [`MIN_CHUNK`] are
//! one chunk and are read in one call.

use std::io::Read;

use std::path::Path;

use crate::error::{Error, IoContext, Result};

/// Smallest chunk (except a file's last).
pub const MIN_CHUNK: u32 = 256 << 10;
/// Average chunk size.
pub const AVG_CHUNK: u32 = 1 << 20;
/// Largest chunk.
pub const MAX_CHUNK: u32 = 4 << 20;

/// Splits everything `reader` yields into chunks and hands each to `sink`.
/// `expected` is the size the caller saw (a hint for small files); `path`
/// names the source in errors.
pub fn chunk_stream<R: Read>(
    mut reader: R,
    expected: u64,
    path: &Path,
    mut sink: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    if expected < MIN_CHUNK as u64 {
        let mut buf = Vec::with_capacity(expected as usize + 1);
        reader.read_to_end(&mut buf).at(path)?;
        if buf.len() < MIN_CHUNK as usize {
            return if buf.is_empty() { Ok(()) } else { sink(&buf) };
        }
        // The file grew past the small-file size while we read it.
        return chunk_all(std::io::Cursor::new(buf), path, sink);
    }
    chunk_all(reader, path, sink)
}

fn chunk_all<R: Read>(
    reader: R,
    path: &Path,
    mut sink: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    for chunk in fastcdc::v2020::StreamCDC::new(reader, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK) {
        let chunk = chunk.map_err(|e| match e {
            fastcdc::v2020::Error::IoError(io) => Error::io(path, io),
            other => Error::io(path, std::io::Error::other(format!("chunker: {other:?}"))),
        })?;
        sink(&chunk.data)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(data: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        chunk_stream(data, data.len() as u64, Path::new("test"), |c| {
            out.push(c.to_vec());
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn small_empty_and_large() {
        assert!(chunks(b"").is_empty());
        assert_eq!(chunks(b"abc"), vec![b"abc".to_vec()]);
        let big = crate::test_noise(3, 9_000_000);
        let parts = chunks(&big);
        assert!(parts.len() >= 3);
        assert!(parts.iter().all(|p| p.len() <= MAX_CHUNK as usize));
        assert_eq!(parts.concat(), big);
        // an insertion near the start leaves later chunks unchanged
        let mut edited = big.clone();
        edited.splice(1000..1000, b"inserted".iter().copied());
        let again = chunks(&edited);
        let shared = again.iter().filter(|c| parts.contains(c)).count();
        assert!(
            shared >= parts.len() - 2,
            "{shared} of {} shared",
            parts.len()
        );
    }
}
