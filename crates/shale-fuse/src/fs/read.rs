//! Reading file data: answered at once where the bytes are at hand, on a
//! reader thread where they must be fetched.

use std::sync::MutexGuard;

use fuser::ReplyData;

use super::ShaleFs;
use crate::inodes::{Data, Kind};
use crate::reader::read_chunks;
use crate::state::State;

impl ShaleFs {
    /// Answers a read of `size` bytes at `offset` of file `ino`; `st` is
    /// released before any wait.
    pub(super) fn read_data(
        &self,
        mut st: MutexGuard<'_, State>,
        ino: u64,
        offset: u64,
        size: u32,
        reply: ReplyData,
    ) {
        match st.inode(ino).map(|i| &i.kind) {
            Ok(Kind::File(Data::Chunks {
                size: file_size,
                chunks,
            })) => {
                let (chunks, file_size) = (chunks.clone(), *file_size);
                let (pool, cache) = (st.pool.clone(), self.chunks.clone());
                drop(st);
                // `reply` is used once: by the read or, on failure, here.
                let mut reply = Some(reply);
                let answer = |reply: &mut Option<ReplyData>, d: &[u8]| {
                    if let Some(r) = reply.take() {
                        r.data(d)
                    }
                };
                // What is cached is answered here; the rest on a reader thread.
                let _ = read_chunks(&pool, &cache, &chunks, file_size, offset, size, true, |d| {
                    answer(&mut reply, d)
                });
                if reply.is_some() {
                    self.readers.spawn(move || {
                        let r = read_chunks(
                            &pool,
                            &cache,
                            &chunks,
                            file_size,
                            offset,
                            size,
                            false,
                            |d| answer(&mut reply, d),
                        );
                        if let (Err(e), Some(r)) = (r, reply.take()) {
                            r.error(super::errno(e))
                        }
                    });
                }
            }
            Ok(Kind::File(Data::Memory(m))) => {
                let from = (offset as usize).min(m.len());
                let to = (from + size as usize).min(m.len());
                reply.data(&m[from..to])
            }
            Ok(Kind::File(Data::Upper(u))) => {
                let view = match u.view(true) {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::error!("opening an upper file: {e}");
                        return reply.error(e.into());
                    }
                };
                st.limit_upper_fds(ino);
                drop(st);
                let cache = self.chunks.clone();
                self.readers
                    .spawn(move || match view.read(offset, size, &cache) {
                        Ok(data) => reply.data(&data),
                        Err(e) => {
                            tracing::error!("reading an upper file: {e}");
                            reply.error(e.into())
                        }
                    });
            }
            Ok(_) => reply.error(fuser::Errno::EISDIR),
            Err(e) => reply.error(super::errno(e)),
        }
    }
}
