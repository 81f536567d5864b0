//! Read-ahead for ranged reads of one local object, larger than the
//! kernel's.
//!
//! Blobs are read one at a time, each a `pread` that waits on the disk, and
//! the kernel's own read-ahead for a file stops at the device's
//! `read_ahead_kb` (128 KiB by default). Reading a large file from its
//! packs, or a directory of small files in the order they were imported,
//! therefore alternated between waiting on the disk and working. When reads
//! of a pack follow one another, [`ReadAhead`] asks the kernel to fetch the
//! next few MiB in the background (`POSIX_FADV_WILLNEED`), as it would for
//! a sequential read of its own, so the disk works while the reader does.
//! Reads that jump about hint nothing: scattered reads fetch no more than
//! they ask for.

/// Reads that start within this distance of where the last one ended
/// count as following it (blobs already read, deduplicated ones and the
/// reordering of parallel readers leave small gaps).
const SLACK: u64 = 1 << 20;
/// The first window read ahead once reads follow one another.
const MIN_WINDOW: u64 = 1 << 20;
/// The largest window: doubling stops here.
const MAX_WINDOW: u64 = 16 << 20;

/// What is known of the reads of one object.
#[derive(Debug, Default)]
pub struct ReadAhead {
    /// Where the furthest read so far ended.
    next: u64,
    /// Up to where the kernel has been asked to read ahead.
    hinted: u64,
    /// The current window (0 until reads follow one another).
    window: u64,
}

impl ReadAhead {
    /// Notes a read of `len` bytes at `offset`; returns the range
    /// (offset, length) to ask the kernel for, if any.
    pub fn after_read(&mut self, offset: u64, len: u64) -> Option<(u64, u64)> {
        let end = offset + len;
        let follows = offset + SLACK >= self.next && offset <= self.next + SLACK;
        self.next = if follows { self.next.max(end) } else { end };
        if !follows {
            self.window = 0;
            self.hinted = end;
            return None;
        }
        self.window = (self.window * 2).clamp(MIN_WINDOW, MAX_WINDOW);
        // Hint in steps of half a window, not at every read.
        if self.hinted > self.next + self.window / 2 {
            return None;
        }
        let from = self.hinted.max(self.next);
        let to = self.next + self.window;
        self.hinted = to;
        Some((from, to - from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_that_follow_one_another_are_read_ahead_in_growing_windows() {
        let mut ra = ReadAhead::default();
        let mut hints = Vec::new();
        for i in 0..64u64 {
            if let Some(h) = ra.after_read(i * (256 << 10), 256 << 10) {
                hints.push(h);
            }
        }
        // The first hint starts where the first read ended.
        assert_eq!(hints[0], (256 << 10, 1 << 20));
        // Hints never overlap and leave no gap.
        for w in hints.windows(2) {
            assert_eq!(w[0].0 + w[0].1, w[1].0);
        }
        // The window grew to its largest and stays at least half ahead.
        assert_eq!(ra.window, MAX_WINDOW);
        assert!(ra.hinted >= 64 * (256 << 10) + MAX_WINDOW / 2);
        // Not one hint per read.
        assert!(hints.len() < 32, "{} hints", hints.len());
    }

    #[test]
    fn scattered_reads_hint_nothing() {
        let mut ra = ReadAhead::default();
        ra.after_read(0, 4096);
        for off in [900u64 << 20, 10 << 20, 500 << 20, 100 << 20] {
            assert_eq!(ra.after_read(off, 4096), None);
        }
    }

    #[test]
    fn a_jump_starts_over_with_a_small_window() {
        let mut ra = ReadAhead::default();
        for i in 0..40u64 {
            ra.after_read(i << 20, 1 << 20);
        }
        assert_eq!(ra.after_read(900 << 20, 1 << 20), None);
        assert_eq!(
            ra.after_read(901 << 20, 1 << 20),
            Some((902 << 20, MIN_WINDOW))
        );
    }
}
