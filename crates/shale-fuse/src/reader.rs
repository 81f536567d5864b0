//! Reading file data from chunks, for the reader threads: a small cache of
//! recently read chunks, shared by the threads so that the kernel's
//! neighbouring reads of one chunk fetch and check it once.
//!
//! The cache is small on purpose: measured on sequential reads of a large
//! file, 32 cached chunks read 25% slower than 1-4 (each new chunk buffer
//! then comes from fresh pages instead of memory just freed).
//!
//! Reading the next chunks ahead on another reader thread was measured
//! slower (see `crates/shale-fuse` in `bench/results/NOTES.md`): one thread fetching,
//! checking and answering a read while its bytes are in its CPU cache is
//! the fastest way found.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::inodes::ChunkList;
use shale_core::{ObjectId, Pool};

use crate::state::Errno;

/// Chunks kept (at most 512 KiB each at the default chunk size).
const CACHED_CHUNKS: usize = 4;

/// Recently read chunks, most recent first.
#[derive(Default)]
pub struct ChunkCache {
    chunks: Mutex<VecDeque<(ObjectId, Arc<Vec<u8>>)>>,
}

impl ChunkCache {
    /// A chunk's bytes if cached, or if the pool can read them without
    /// waiting (see `BlobStore::get_now`).
    pub fn get_now(&self, pool: &Pool, id: &ObjectId) -> Option<Arc<Vec<u8>>> {
        {
            let c = self.chunks.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((_, d)) = c.iter().find(|(k, _)| k == id) {
                return Some(d.clone());
            }
        }
        let data = Arc::new(pool.blobs().get_now(id)?);
        self.insert(*id, data.clone());
        Some(data)
    }

    fn insert(&self, id: ObjectId, data: Arc<Vec<u8>>) {
        let mut c = self.chunks.lock().unwrap_or_else(|p| p.into_inner());
        c.push_front((id, data));
        c.truncate(CACHED_CHUNKS);
    }

    /// A chunk's bytes, from the cache or the pool (checked against its id).
    pub fn get(&self, pool: &Pool, id: &ObjectId) -> Result<Arc<Vec<u8>>, Errno> {
        {
            let mut c = self.chunks.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(i) = c.iter().position(|(k, _)| k == id) {
                let hit = c.remove(i).expect("index from position");
                let data = hit.1.clone();
                c.push_front(hit);
                return Ok(data);
            }
        }
        let data = Arc::new(pool.blobs().get(id).map_err(|e| {
            tracing::error!("read of chunk {id}: {e}");
            libc::EIO
        })?);
        self.insert(*id, data.clone());
        Ok(data)
    }
}

/// Reads `size` bytes at `offset` of a file made of `chunks` and hands them
/// to `reply` (without copying them when they lie in one chunk). With
/// `now_only`, gives up (returning `Ok(false)`, `reply` not called) unless
/// every chunk needed is cached or at hand (`ChunkCache::get_now`): the
/// session thread answers such reads itself, without handing them to a
/// reader thread (two thread switches, which cost more than the read when
/// the bytes are in memory).
#[allow(clippy::too_many_arguments)]
pub fn read_chunks(
    pool: &Pool,
    cache: &ChunkCache,
    chunks: &ChunkList,
    file_size: u64,
    offset: u64,
    size: u32,
    now_only: bool,
    reply: impl FnOnce(&[u8]),
) -> Result<bool, Errno> {
    let end = (offset + size as u64).min(file_size);
    let mut parts: Vec<(Arc<Vec<u8>>, usize, usize)> = Vec::new();
    let first = chunks.find(offset);
    let mut pos = chunks.start(first);
    for c in chunks.refs.iter().skip(first) {
        let (c_start, c_end) = (pos, pos + c.len as u64);
        pos = c_end;
        if c_end <= offset {
            continue;
        }
        if c_start >= end {
            break;
        }
        let data = if now_only {
            match cache.get_now(pool, &c.id) {
                Some(d) => d,
                None => return Ok(false),
            }
        } else {
            cache.get(pool, &c.id)?
        };
        let from = offset.saturating_sub(c_start) as usize;
        let to = (end.min(c_end) - c_start) as usize;
        parts.push((data, from, to));
    }
    match parts.as_slice() {
        [] => reply(&[]),
        [(data, from, to)] => reply(&data[*from..*to]),
        many => {
            let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
            for (data, from, to) in many {
                out.extend_from_slice(&data[*from..*to]);
            }
            reply(&out)
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shale_core::tree::ChunkRef;

    #[test]
    fn finds_the_chunk_of_a_byte() {
        let c = |len| ChunkRef {
            id: ObjectId::of(b"x"),
            len,
        };
        let list = ChunkList::new(vec![c(10), c(5), c(20)]);
        assert_eq!(
            [0, 9, 10, 14, 15, 34, 99].map(|o| list.find(o)),
            [0, 0, 1, 1, 2, 2, 2]
        );
        assert_eq!(list.start(2), 15);
        assert_eq!(ChunkList::default().find(0), 0);
    }
}
