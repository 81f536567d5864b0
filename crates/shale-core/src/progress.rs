//! Counters a long operation advances as it goes, so that a caller (the
//! CLI's progress bar, a server's status endpoint) can show them. The
//! engine never prints.

use std::sync::atomic::{AtomicU64, Ordering};

/// Files and bytes handled so far.
#[derive(Debug, Default)]
pub struct Progress {
    files: AtomicU64,
    bytes: AtomicU64,
}

impl Progress {
    /// Records one more file of `bytes` bytes.
    pub fn add_file(&self, bytes: u64) {
        self.files.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Files so far.
    pub fn files(&self) -> u64 {
        self.files.load(Ordering::Relaxed)
    }

    /// Bytes so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}
