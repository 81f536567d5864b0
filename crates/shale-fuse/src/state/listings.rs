//! Directory listings being read. A listing is taken when a reader starts
//! at the top of a directory and read from by offset until it ends, so a
//! reader sees one state of the directory whatever changes meanwhile.
//!
//! Where the kernel opens directories without asking
//! (`FUSE_NO_OPENDIR_SUPPORT`: no `OPENDIR` or `RELEASEDIR`, two round
//! trips less per directory listed), nothing says when a reader is done:
//! its listing's number rides in the offsets the kernel hands back
//! ([`cookie`]), and listings are dropped oldest first beyond a bound. A
//! reader whose listing was dropped gets a fresh one from where it was.

use std::collections::{HashMap, VecDeque};

use fuser::FileType;

/// One entry: inode, type, name.
pub type Listed = (u64, FileType, Vec<u8>);

/// Entries kept in listings nobody releases (about 40 bytes each and
/// their names: some 100 MB at most).
const UNHELD_ENTRIES: usize = 2_000_000;
/// Listings nobody releases, kept at most.
const UNHELD_LISTINGS: usize = 4096;

/// Listings by number: those of open directory handles (released by
/// `RELEASEDIR`), and unheld ones (dropped oldest first).
#[derive(Default)]
pub struct Listings {
    by_id: HashMap<u64, Vec<Listed>>,
    unheld: VecDeque<u64>,
    unheld_entries: usize,
    next_unheld: u64,
}

/// The offset the kernel hands back to continue listing `id` after its
/// entry `index` (0-based): the listing's number above the entry's.
pub fn cookie(id: u64, index: usize) -> i64 {
    ((id << 32) | (index as u64 + 1)) as i64
}

/// The listing and the entry to go on from, of an offset made by
/// [`cookie`] (0: none yet).
pub fn uncookie(offset: i64) -> (u64, usize) {
    let offset = offset.max(0) as u64;
    (offset >> 32, (offset & 0xffff_ffff) as usize)
}

impl Listings {
    /// Keeps `listing` under handle `fh` until [`Listings::release`].
    pub fn hold(&mut self, fh: u64, listing: Vec<Listed>) {
        self.by_id.insert(fh, listing);
    }

    /// Drops the listing of handle `fh`.
    pub fn release(&mut self, fh: u64) {
        self.by_id.remove(&fh);
    }

    /// Keeps `listing` without a handle; returns its number (below 2^31,
    /// for [`cookie`]), dropping the oldest such listings beyond the bound.
    pub fn keep(&mut self, listing: Vec<Listed>) -> u64 {
        self.next_unheld = self.next_unheld % ((1 << 31) - 1) + 1;
        let id = self.next_unheld;
        self.unheld_entries += listing.len();
        if let Some(old) = self.by_id.insert(id, listing) {
            self.unheld_entries -= old.len();
            self.unheld.retain(|i| *i != id);
        }
        self.unheld.push_back(id);
        while self.unheld.len() > UNHELD_LISTINGS || self.unheld_entries > UNHELD_ENTRIES {
            let Some(old) = self.unheld.pop_front() else {
                break;
            };
            if old == id {
                // The newest alone is over the bound: keep it anyway.
                self.unheld.push_back(id);
                break;
            }
            if let Some(l) = self.by_id.remove(&old) {
                self.unheld_entries -= l.len();
            }
        }
        id
    }

    /// Listing `id`, if kept.
    pub fn get(&self, id: u64) -> Option<&Vec<Listed>> {
        self.by_id.get(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_carry_the_listing_and_the_place() {
        assert_eq!(uncookie(0), (0, 0));
        assert_eq!(uncookie(cookie(7, 0)), (7, 1));
        assert_eq!(uncookie(cookie((1 << 31) - 1, 99)), ((1 << 31) - 1, 100));
        assert!(cookie((1 << 31) - 1, u32::MAX as usize - 1) > 0);
    }

    #[test]
    fn unheld_listings_are_dropped_oldest_first() {
        let mut l = Listings::default();
        let entry = || (1, FileType::RegularFile, b"x".to_vec());
        let first = l.keep(vec![entry()]);
        for _ in 0..UNHELD_LISTINGS {
            l.keep(vec![entry()]);
        }
        assert!(l.get(first).is_none(), "the oldest went");
        assert_eq!(l.unheld.len(), UNHELD_LISTINGS);
        let big = l.keep(vec![entry(); UNHELD_ENTRIES + 1]);
        assert!(
            l.get(big).is_some(),
            "a listing over the bound is kept alone"
        );
        assert_eq!(l.unheld.len(), 1);
        l.hold(u64::MAX, vec![entry()]);
        l.keep(vec![entry()]);
        assert!(
            l.get(u64::MAX).is_some(),
            "held listings stay until released"
        );
        l.release(u64::MAX);
        assert!(l.get(u64::MAX).is_none());
    }
}
