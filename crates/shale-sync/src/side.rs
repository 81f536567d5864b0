//! One side of a sync: list it, read a file from it, write one into it.

use shale_core::Result;

use crate::entry::Entry;

/// Receives a file's bytes, in order.
pub type Sink<'a> = dyn FnMut(&[u8]) -> Result<()> + 'a;

/// Feeds a file's bytes, in order, to the sink it is given.
pub type Feed<'a> = dyn FnMut(&mut Sink<'_>) -> Result<()> + 'a;

/// A place files can be listed, read and (for most) written.
pub trait Side: Sync {
    /// How to name it in messages.
    fn name(&self) -> String;

    /// Every entry under the root, sorted by path.
    fn list(&self) -> Result<Vec<Entry>>;

    /// Every entry under the root, in any order (cheaper where a side
    /// finds them unsorted).
    fn list_any_order(&self) -> Result<Vec<Entry>> {
        self.list()
    }

    /// Passes the content of file `e` to `sink`, in pieces.
    fn read(&self, e: &Entry, sink: &mut Sink<'_>) -> Result<()>;

    /// Writes file `e` (its path, size, mode and mtime) with the bytes
    /// `feed` produces. Never leaves a partial file under the final name.
    fn write(&self, e: &Entry, feed: &mut Feed<'_>) -> Result<()>;

    /// Creates directory `e` (with its mode and mtime where kept).
    fn mkdir(&self, e: &Entry) -> Result<()>;

    /// Creates symlink `e`.
    fn symlink(&self, e: &Entry) -> Result<()>;

    /// Removes `e` (a directory only once empty).
    fn remove(&self, e: &Entry) -> Result<()>;

    /// Whether written files keep the mtime given (else the side stamps
    /// its own time, and "newer" is how a copy is recognised).
    fn keeps_mtime(&self) -> bool;

    /// Whether the side has directories and symlinks (object stores do not).
    fn has_dirs(&self) -> bool;

    /// What the last [`Side::list`] found and left out (keys that cannot be
    /// local names), and why.
    fn listing_skips(&self) -> Vec<crate::plan::Skip> {
        Vec::new()
    }

    /// Whether a failure is worth retrying (a network side: yes).
    fn retries(&self) -> bool {
        false
    }
}
