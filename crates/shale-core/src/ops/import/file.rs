//! Reading one file into chunks: hard links read once, small files held
//! for their group, and a file that changes while read read again.

use std::fs::{File, Metadata};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::Ordering;

use super::{mtime_ns, Importer, ReadOutcome, HELD_MAX, READ_ATTEMPTS};
use crate::error::{IoContext, Result};
use crate::store::blobs::Prepared;
use crate::tree::{ChunkRef, Content};

impl Importer<'_> {
    /// Reads and chunks a file. The file's metadata is taken from the open
    /// handle before reading and checked again after: if size, mtime or
    /// ctime moved, the file changed under us and is read again.
    ///
    /// A file of one chunk is not written: its blob is left in `held` (see
    /// [`BlobWriter::prepare_chunk`]), every attempt's, since each is claimed.
    pub(super) fn read_file(
        &self,
        path: &Path,
        md: &Metadata,
        held: &mut Vec<Prepared>,
    ) -> Result<ReadOutcome> {
        let link_key = (md.nlink() > 1).then(|| (md.dev(), md.ino()));
        if let Some(content) = link_key.and_then(|key| self.linked(key, md)) {
            return Ok(ReadOutcome::Read(content, Box::new(md.clone())));
        }
        for _ in 0..READ_ATTEMPTS {
            let file = File::options()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(path)
                .at(path)?;
            let before = file.metadata().at(path)?;
            if !before.is_file() {
                return Ok(ReadOutcome::Unstable(
                    "was replaced by something that is not a regular file",
                ));
            }
            let chunks = self.chunk_file(&file, &before, path, held)?;
            let size: u64 = chunks.iter().map(|c| c.len as u64).sum();
            self.counters.bytes_read.fetch_add(size, Ordering::Relaxed);
            let after = file.metadata().at(path)?;
            let stable = size == after.len()
                && mtime_ns(&after) == mtime_ns(&before)
                && (after.ctime(), after.ctime_nsec()) == (before.ctime(), before.ctime_nsec());
            if !stable {
                continue;
            }
            self.counters.files_read.fetch_add(1, Ordering::Relaxed);
            if size > md.len() {
                self.add_source_bytes(size - md.len())?;
            }
            if let Some(key) = link_key {
                self.links
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key, (mtime_ns(&before), chunks.clone()));
            }
            let content = Content::File { size, chunks };
            return Ok(ReadOutcome::Read(content, Box::new(before)));
        }
        Ok(ReadOutcome::Unstable(
            "changed while being read, 3 times in a row",
        ))
    }

    /// The content of another link (`key`: device and inode) to the same
    /// file, if one was read this import and the file has not changed since.
    fn linked(&self, key: (u64, u64), md: &Metadata) -> Option<Content> {
        let links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        let (mtime, chunks) = links.get(&key)?;
        (*mtime == mtime_ns(md)).then(|| Content::File {
            size: chunks.iter().map(|c| c.len as u64).sum(),
            chunks: chunks.clone(),
        })
    }

    /// Cuts `file` (`md`: its metadata when opened) into chunks; a small
    /// file's blob is prepared and left in `held`, others are written.
    fn chunk_file(
        &self,
        file: &File,
        md: &Metadata,
        path: &Path,
        held: &mut Vec<Prepared>,
    ) -> Result<Vec<ChunkRef>> {
        let mut chunks = Vec::new();
        let chunking = self.pool.chunking();
        let small =
            md.len() <= u64::from(chunking.max()) && self.held.load(Ordering::Relaxed) < HELD_MAX;
        let buf = if small {
            self.buffers.take()
        } else {
            Vec::new()
        };
        chunking.chunk_stream_in(buf, file, md.len(), path, |data| {
            let chunk = if small {
                let (chunk, blob) = self.writer.prepare_chunk(data)?;
                if let Some(b) = blob {
                    self.held.fetch_add(b.stored_len(), Ordering::Relaxed);
                    held.push(b);
                }
                chunk
            } else {
                self.writer.put_chunk(&data)?
            };
            chunks.push(chunk);
            Ok(())
        })?;
        Ok(chunks)
    }
}
