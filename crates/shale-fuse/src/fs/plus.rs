//! Whether a listing should carry attributes: READDIRPLUS, adaptively.
//!
//! A `READDIRPLUS` entry carries the name's attributes, so a walk that
//! stats every name (`ls -l`, `du`, `rsync`, `os.walk` + `stat`) needs no
//! `LOOKUP` per name. But the kernel makes an inode and a dentry for every
//! such entry, and the mount an inode too: a walk that only wants names
//! (`find`, `os.walk`, torchvision's `ImageFolder`) paid 3 to 4 µs per name
//! for nothing, 7× native's time over a million files.
//!
//! The kernel asks for attributes at the start of every listing
//! (`FUSE_READDIRPLUS_AUTO`), then for the rest only once names of that
//! directory were looked up. A listing answered with just `.` and `..`
//! (which never make inodes) leaves the rest of it plain. This advisor
//! decides, as NFS clients do, from what follows listings answered plain:
//! once a quarter of the files (not subdirectories, which a walk looks up
//! to descend) of one of the last [`RECENT`] of them are looked up (or
//! their attributes asked for: a cached name whose attributes went stale), walks
//! are statting or reading what they list, and listings carry attributes
//! again. While they do, one listing in [`PROBE_EVERY`] is still answered
//! plain, and if too few of its files were looked up by the next probe,
//! walks stopped wanting attributes. Each probe that finds them still
//! wanted doubles the gap to the next, up to [`PROBE_MAX`]: a probe costs
//! a `LOOKUP` per file of its directory (20,000 files read in 100
//! directories paid 1,200-1,400 of them an epoch with a probe every 16). Directories with few files always
//! get them: they cost little either way and say little about the walk.

use std::collections::VecDeque;

/// Listings answered with attributes between two plain probes, at first.
const PROBE_EVERY: u32 = 16;
/// ... and at most, as probes keep finding attributes wanted.
const PROBE_MAX: u32 = 256;
/// Directories with fewer files always get attributes.
const SMALL: usize = 16;
/// Plain listings watched for lookups of their files.
const RECENT: usize = 64;

/// The state of the adaptive choice, for one mount.
#[derive(Debug)]
pub(super) struct PlusAdvisor {
    /// Whether listings carry attributes (between probes).
    attrs: bool,
    /// Listings answered with attributes since the last probe.
    since_probe: u32,
    /// Listings answered with attributes between two probes now.
    probe_every: u32,
    /// The last listings answered plain, newest last.
    plain: VecDeque<Plain>,
}

/// A listing answered plain, and how many of its files were looked up
/// since.
#[derive(Debug)]
struct Plain {
    dir: u64,
    files: usize,
    lookups: usize,
}

impl Plain {
    fn wanted(&self) -> bool {
        self.lookups * 4 >= self.files
    }
}

impl Default for PlusAdvisor {
    fn default() -> Self {
        PlusAdvisor {
            attrs: true,
            since_probe: 0,
            probe_every: PROBE_EVERY,
            plain: VecDeque::new(),
        }
    }
}

impl PlusAdvisor {
    /// A listing of directory `dir`, holding `files` names that are not
    /// directories, is starting: whether to answer it with attributes.
    pub(super) fn listing(&mut self, dir: u64, files: usize) -> bool {
        if files < SMALL {
            return true;
        }
        if self.attrs {
            self.since_probe += 1;
            if self.since_probe < self.probe_every {
                return true;
            }
            // Time for a probe: the last one says whether walks still
            // look up what they list.
            self.since_probe = 0;
            match self.plain.back().map(Plain::wanted) {
                Some(false) => {
                    self.attrs = false;
                    self.probe_every = PROBE_EVERY;
                }
                Some(true) => self.probe_every = (self.probe_every * 2).min(PROBE_MAX),
                None => {}
            }
        }
        if self.plain.len() == RECENT {
            self.plain.pop_front();
        }
        self.plain.push_back(Plain {
            dir,
            files,
            lookups: 0,
        });
        false
    }

    /// A file (not a directory) in directory `parent` was looked up, or
    /// its attributes asked for.
    pub(super) fn lookup(&mut self, parent: u64) {
        let Some(p) = self.plain.iter_mut().rev().find(|p| p.dir == parent) else {
            return;
        };
        p.lookups += 1;
        if p.wanted() && !self.attrs {
            self.attrs = true;
            self.since_probe = 0;
            self.probe_every = PROBE_EVERY;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lists `dirs` directories of 100 files, looking up `stat` of the
    /// files of each plain one; how many listings carried attributes.
    fn walk(a: &mut PlusAdvisor, dirs: std::ops::Range<u64>, stat: usize) -> u64 {
        let mut with = 0;
        for d in dirs {
            if a.listing(d, 100) {
                with += 1;
            } else {
                (0..stat).for_each(|_| a.lookup(d));
            }
        }
        with
    }

    #[test]
    fn a_walk_that_only_lists_goes_plain_after_two_probes() {
        let mut a = PlusAdvisor::default();
        let with = walk(&mut a, 0..1000, 0);
        assert_eq!(with, 2 * u64::from(PROBE_EVERY - 1));
        assert!(!a.listing(5000, 100));
    }

    #[test]
    fn a_walk_that_stats_keeps_attributes_but_for_ever_rarer_probes() {
        let mut a = PlusAdvisor::default();
        let with = walk(&mut a, 0..1600, 100);
        // probes after 16, 16, 32, 64, 128, 256, 256, ... listings
        assert_eq!(1600 - with, 10);
        // a walk that stops statting is noticed at the next probe or two
        let with = walk(&mut a, 1600..2200, 0);
        assert!(with < 2 * PROBE_MAX as u64, "{with}");
        assert!(!a.listing(9000, 100));
    }

    #[test]
    fn reading_files_of_an_earlier_plain_listing_turns_attributes_back_on() {
        let mut a = PlusAdvisor::default();
        walk(&mut a, 0..100, 0);
        assert!(!a.listing(100, 100));
        assert!(!a.listing(101, 100));
        // A reader behind the walk reaches directory 90's files.
        (0..24).for_each(|_| a.lookup(90));
        assert!(!a.listing(102, 100));
        a.lookup(90);
        assert!(a.listing(103, 100));
    }

    #[test]
    fn lookups_elsewhere_and_small_directories_do_not_count() {
        let mut a = PlusAdvisor::default();
        walk(&mut a, 0..100, 0);
        (0..100).for_each(|_| a.lookup(5000));
        (0..100).for_each(|_| a.lookup(10));
        assert!(a.listing(101, SMALL - 1));
        assert!(!a.listing(102, 100));
    }
}
