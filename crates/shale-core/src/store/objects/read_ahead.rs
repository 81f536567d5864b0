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
//!
//! Behind such a run of reads the pack's pages are dropped
//! (`POSIX_FADV_DONTNEED`): whoever read the bytes keeps them (a mount in
//! its own page cache, an export in the files it writes), and keeping the
//! pack's copy too doubled the memory a sequential read went through —
//! measured: a 4 GiB file read through a mount touched 8 GiB of page cache
//! and ran at 60% of the speed of a 2 GiB one.
//!
//! Hints are not free: the kernel fills a `POSIX_FADV_WILLNEED` range with
//! single pages, where its own read-ahead uses large folios, and on a
//! device that already reads far ahead the hints cost more than they win.
//! Measured on a disk with an 8 MiB `read_ahead_kb`, reading through a
//! mount with no hints: a 2 GiB file 940 against 790 MB/s, 20,000 small
//! files with 8 readers 6,500-7,250 against 5,000-5,800 files/s, one
//! reader no different; with a 2 MiB `read_ahead_kb` one reader of small
//! files lost a third without hints. So [`hints_help`] looks at the
//! device: hints are given where it reads ahead less than
//! [`DEVICE_READS_FAR`].

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Reads that start within this distance of where the last one ended
/// count as following it (blobs already read, deduplicated ones and the
/// reordering of parallel readers leave small gaps).
const SLACK: u64 = 1 << 20;
/// The first window read ahead once reads follow one another.
const MIN_WINDOW: u64 = 1 << 20;
/// The largest window: doubling stops here.
const MAX_WINDOW: u64 = 16 << 20;
/// Pages this far behind a run of reads are dropped, in steps of this
/// much (parallel readers of one pack may still be just behind).
const BEHIND: u64 = 4 << 20;

/// A device reading ahead at least this far needs no hints.
pub const DEVICE_READS_FAR: u64 = 8 << 20;

/// Whether read-ahead hints help for files under `dir`: false where the
/// block device holding it reads ahead [`DEVICE_READS_FAR`] or more by
/// itself, true where it does not or cannot be found out.
pub fn hints_help(dir: &Path) -> bool {
    device_read_ahead(Path::new("/sys/dev/block"), dir).is_none_or(|ahead| ahead < DEVICE_READS_FAR)
}

/// How far (bytes) the block device holding `dir` reads ahead, from its
/// `queue/read_ahead_kb` under `sys_block` (`/sys/dev/block`); a
/// partition's is its disk's.
fn device_read_ahead(sys_block: &Path, dir: &Path) -> Option<u64> {
    let dev = std::fs::metadata(dir).ok()?.dev();
    let node = sys_block.join(format!("{}:{}", libc::major(dev), libc::minor(dev)));
    ["queue/read_ahead_kb", "../queue/read_ahead_kb"]
        .iter()
        .find_map(|f| std::fs::read_to_string(node.join(f)).ok())
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map(|kb| kb << 10)
}

/// What to tell the kernel after a read: ranges (offset, length).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Advice {
    /// Read this ahead.
    pub will_need: Option<(u64, u64)>,
    /// Drop this, read already.
    pub dont_need: Option<(u64, u64)>,
}

/// What is known of the reads of one object.
#[derive(Debug, Default)]
pub struct ReadAhead {
    /// Where the furthest read so far ended.
    next: u64,
    /// Up to where the kernel has been asked to read ahead.
    hinted: u64,
    /// The current window (0 until reads follow one another).
    window: u64,
    /// Where the current run of reads began, or up to where pages behind
    /// it have been dropped.
    dropped: u64,
}

impl ReadAhead {
    /// Notes a read of `len` bytes at `offset`; returns what to tell the
    /// kernel.
    pub fn after_read(&mut self, offset: u64, len: u64) -> Advice {
        let end = offset + len;
        let follows = offset + SLACK >= self.next && offset <= self.next + SLACK;
        self.next = if follows { self.next.max(end) } else { end };
        if !follows {
            self.window = 0;
            self.hinted = end;
            self.dropped = offset;
            return Advice::default();
        }
        let mut advice = Advice::default();
        let behind = self.next.saturating_sub(BEHIND);
        if behind >= self.dropped + BEHIND {
            advice.dont_need = Some((self.dropped, behind - self.dropped));
            self.dropped = behind;
        }
        self.window = (self.window * 2).clamp(MIN_WINDOW, MAX_WINDOW);
        // Hint in steps of half a window, not at every read.
        if self.hinted <= self.next + self.window / 2 {
            let from = self.hinted.max(self.next);
            let to = self.next + self.window;
            self.hinted = to;
            advice.will_need = Some((from, to - from));
        }
        advice
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
            if let Some(h) = ra.after_read(i * (256 << 10), 256 << 10).will_need {
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
    fn the_read_ahead_of_a_disk_or_of_the_disk_of_a_partition_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let dev = std::fs::metadata(dir.path()).unwrap().dev();
        let node = format!("{}:{}", libc::major(dev), libc::minor(dev));
        let sys = tempfile::tempdir().unwrap();
        // Not there (a file system without a block device): unknown.
        assert_eq!(device_read_ahead(sys.path(), dir.path()), None);
        // A partition: the disk's queue, one level up.
        let part = sys.path().join("disk/part");
        std::fs::create_dir_all(sys.path().join("disk/queue")).unwrap();
        std::fs::create_dir_all(&part).unwrap();
        std::fs::write(sys.path().join("disk/queue/read_ahead_kb"), "8192\n").unwrap();
        std::os::unix::fs::symlink(&part, sys.path().join(&node)).unwrap();
        assert_eq!(device_read_ahead(sys.path(), dir.path()), Some(8 << 20));
        // A disk: its own queue.
        std::fs::create_dir_all(part.join("queue")).unwrap();
        std::fs::write(part.join("queue/read_ahead_kb"), "128\n").unwrap();
        assert_eq!(device_read_ahead(sys.path(), dir.path()), Some(128 << 10));
    }

    #[test]
    fn scattered_reads_hint_nothing() {
        let mut ra = ReadAhead::default();
        ra.after_read(0, 4096);
        for off in [900u64 << 20, 10 << 20, 500 << 20, 100 << 20] {
            assert_eq!(ra.after_read(off, 4096), Advice::default());
        }
    }

    #[test]
    fn a_jump_starts_over_with_a_small_window() {
        let mut ra = ReadAhead::default();
        for i in 0..40u64 {
            ra.after_read(i << 20, 1 << 20);
        }
        assert_eq!(ra.after_read(900 << 20, 1 << 20), Advice::default());
        assert_eq!(
            ra.after_read(901 << 20, 1 << 20).will_need,
            Some((902 << 20, MIN_WINDOW))
        );
    }

    #[test]
    fn pages_behind_a_run_of_reads_are_dropped_from_where_it_began() {
        let mut ra = ReadAhead::default();
        ra.after_read(7 << 20, 4096); // a jump: the run begins here
        let mut drops = Vec::new();
        for i in 0..64u64 {
            if let Some(d) = ra
                .after_read((7 << 20) + 4096 + i * (256 << 10), 256 << 10)
                .dont_need
            {
                drops.push(d);
            }
        }
        assert_eq!(drops[0].0, 7 << 20);
        for w in drops.windows(2) {
            assert_eq!(w[0].0 + w[0].1, w[1].0, "no gap, no overlap");
        }
        // Never closer than BEHIND to where the reads are.
        let last = drops.last().unwrap();
        assert!(last.0 + last.1 + BEHIND <= ra.next);
        assert!(last.0 + last.1 + 2 * BEHIND > ra.next);
    }
}
