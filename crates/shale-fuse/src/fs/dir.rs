//! Listing directories with attributes (`READDIRPLUS`).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use fuser::{Generation, INodeNo, ReplyDirectoryPlus};

use super::attr::{attr, ttl};
use super::READDIR_BATCH;
use crate::state::State;

/// Answers a `READDIRPLUS` of directory `ino` from its listing `fh`,
/// starting at entry `next` and ending before entry `end`; each entry is
/// looked up (a lookup the kernel counts, but for `.` and `..`).
pub(super) fn list_plus(
    st: &mut State,
    (ino, fh): (u64, u64),
    mut next: usize,
    end: usize,
    mut reply: ReplyDirectoryPlus,
) {
    loop {
        // Names are taken a batch at a time (looking entries up needs
        // the state): taking all the rest at every call made listing
        // a 100,000-entry directory quadratic, most of it in malloc.
        let listing = match st.listing(ino, fh) {
            Ok(listing) => listing,
            Err(e) => return reply.error(super::errno(e)),
        };
        let batch: Vec<Vec<u8>> = listing
            .iter()
            .skip(next)
            .take(READDIR_BATCH.min(end.saturating_sub(next)))
            .map(|(_, _, n)| n.clone())
            .collect();
        let last_batch = batch.len() < READDIR_BATCH || next + batch.len() >= end;
        for name in batch {
            next += 1;
            let dot = name == b"." || name == b"..";
            let child = if name == b"." {
                Ok(ino)
            } else if name == b".." {
                Ok(st
                    .inode(ino)
                    .ok()
                    .and_then(|i| i.parents.first().copied())
                    .unwrap_or(ino))
            } else {
                st.child(ino, &name)
            };
            // A name gone since opendir is left out.
            let Ok(child) = child else { continue };
            let Ok(a) = attr(st, child) else {
                continue;
            };
            let ttl = ttl(st, child);
            let name = OsStr::from_bytes(&name);
            if reply.add(INodeNo(child), next as u64, name, &ttl, &a, Generation(0)) {
                return reply.ok();
            }
            // The kernel counts a lookup for every entry but . and ..
            if !dot {
                if let Some(inode) = st.table.get_mut(child) {
                    inode.lookups += 1;
                }
            }
        }
        if last_batch {
            return reply.ok();
        }
    }
}
