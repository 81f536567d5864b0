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
//! decides, as NFS clients do: it watches the last listing answered
//! plain, a probe; if a quarter of its names were then looked up, walks
//! are statting and listings carry attributes again. While they do, one
//! listing in [`PROBE_EVERY`] is still answered plain, to notice when
//! walks stop statting. Small directories always get attributes: they
//! cost little either way and say little about the walk.

/// Listings answered with attributes between two plain probes.
const PROBE_EVERY: u32 = 16;
/// Directories with fewer names always get attributes.
const SMALL: usize = 16;

/// The state of the adaptive choice, for one mount.
#[derive(Debug)]
pub(super) struct PlusAdvisor {
    /// Whether listings carry attributes (between probes).
    attrs: bool,
    /// Listings answered with attributes since the last probe.
    since_probe: u32,
    /// The last listing answered plain, and how many of its names were
    /// looked up since.
    probe: Option<Probe>,
}

#[derive(Debug)]
struct Probe {
    dir: u64,
    names: usize,
    lookups: usize,
}

impl Default for PlusAdvisor {
    fn default() -> Self {
        PlusAdvisor {
            attrs: true,
            since_probe: 0,
            probe: None,
        }
    }
}

impl PlusAdvisor {
    /// A listing of directory `dir`, of `names` names (`.` and `..` not
    /// counted), is starting: whether to answer it with attributes.
    pub(super) fn listing(&mut self, dir: u64, names: usize) -> bool {
        if let Some(p) = self.probe.take() {
            self.attrs = p.lookups * 4 >= p.names;
            self.since_probe = 0;
        }
        if names < SMALL {
            return true;
        }
        if self.attrs && self.since_probe + 1 < PROBE_EVERY {
            self.since_probe += 1;
            return true;
        }
        self.probe = Some(Probe {
            dir,
            names,
            lookups: 0,
        });
        false
    }

    /// A name in directory `parent` was looked up.
    pub(super) fn lookup(&mut self, parent: u64) {
        if let Some(p) = self.probe.as_mut().filter(|p| p.dir == parent) {
            p.lookups += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lists `dirs` directories of 100 names, looking up `stat` of the
    /// names of each; how many listings carried attributes.
    fn walk(a: &mut PlusAdvisor, dirs: u64, stat: usize) -> u64 {
        let mut with = 0;
        for d in 0..dirs {
            if a.listing(d, 100) {
                with += 1;
            } else {
                (0..stat).for_each(|_| a.lookup(d));
            }
        }
        with
    }

    #[test]
    fn a_walk_that_only_lists_goes_plain_after_one_probe() {
        let mut a = PlusAdvisor::default();
        let with = walk(&mut a, 1000, 0);
        assert_eq!(with, u64::from(PROBE_EVERY) - 1);
        assert!(!a.listing(5000, 100));
    }

    #[test]
    fn a_walk_that_stats_keeps_attributes_but_for_probes() {
        let mut a = PlusAdvisor::default();
        let with = walk(&mut a, 1600, 100);
        assert_eq!(with, 1600 - 100);
    }

    #[test]
    fn a_statting_walk_after_a_listing_one_turns_attributes_back_on() {
        let mut a = PlusAdvisor::default();
        walk(&mut a, 100, 0);
        assert!(!a.listing(1, 100));
        (0..30).for_each(|_| a.lookup(1));
        assert!(a.listing(2, 100));
    }

    #[test]
    fn lookups_elsewhere_and_small_directories_do_not_count() {
        let mut a = PlusAdvisor::default();
        walk(&mut a, 100, 0);
        assert!(!a.listing(1, 100));
        (0..100).for_each(|_| a.lookup(2));
        assert!(a.listing(3, SMALL - 1));
        assert!(!a.listing(4, 100));
    }
}
