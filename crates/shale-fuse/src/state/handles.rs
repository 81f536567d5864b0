//! Open files: the handles the kernel holds, which keep a file's local
//! copy while it is open.
//!
//! Once the kernel opens files without asking (`FUSE_NO_OPEN_SUPPORT`,
//! after the first `OPEN` is answered `ENOSYS`), it sends no `RELEASE` for
//! the files created here either (measured on 6.18: a handle given out by
//! `CREATE` was never released, and every file `cp -r` wrote kept its
//! local copy until the server ran out of memory and descriptors). From
//! then on, creates give out handles that are not counted: their files are
//! written "unheld", like files the kernel opened, and keep their copies
//! only while writes keep coming (`State::settle_lingering`).

use super::*;

/// The handle of a file created once the kernel opens files alone.
pub const UNCOUNTED_FH: u64 = 0;
/// The same, for a file written with direct I/O.
pub const UNCOUNTED_DIRECT_FH: u64 = u64::MAX;

impl State {
    /// Opens file `ino` (for writing if `write`); returns its handle.
    pub fn open(&mut self, ino: u64, write: bool) -> Result<u64, Errno> {
        match &self.inode(ino)?.kind {
            Kind::File(_) => {}
            Kind::Symlink(_) => return Err(libc::ELOOP),
            _ => return Err(libc::EISDIR),
        }
        if write {
            self.writable(ino)?;
        }
        Ok(self.new_handle(ino, false))
    }

    /// Creates an empty file `name` in `parent` owned by `uid`/`gid` and
    /// opens it (its writes bypass the kernel's page cache if `direct`);
    /// returns its inode and handle.
    pub fn create(
        &mut self,
        parent: u64,
        name: &[u8],
        mode: u32,
        (uid, gid): (u32, u32),
        direct: bool,
    ) -> Result<(u64, u64), Errno> {
        self.writable(parent)?;
        let empty = Kind::File(Data::Chunks {
            size: 0,
            chunks: Default::default(),
        });
        let ino = self.add(parent, name, empty, mode, uid, gid)?;
        self.writable_data(ino, 0, false)?;
        let fh = match (self.opens_alone, direct) {
            (true, false) => UNCOUNTED_FH,
            (true, true) => UNCOUNTED_DIRECT_FH,
            (false, _) => self.new_handle(ino, direct),
        };
        Ok((ino, fh))
    }

    /// Closes handle `fh`.
    pub fn release(&mut self, fh: u64) {
        if let Some(h) = self.handles.remove(&fh) {
            if let Some(i) = self.table.get_mut(h.ino).filter(|_| h.counted) {
                i.opens = i.opens.saturating_sub(1);
            }
            self.maybe_drop(h.ino);
        }
    }

    /// The handle `fh` as the kernel named it in a write: whether it is
    /// one this mount counts, and whether it writes with direct I/O.
    pub fn write_handle(&self, fh: u64) -> (bool, bool) {
        match self.handles.get(&fh) {
            Some(h) => (h.counted, h.direct),
            None => (false, fh == UNCOUNTED_DIRECT_FH),
        }
    }

    /// The kernel opens files without asking from now on, and may never
    /// release the handles given out so far: they stop counting as opens,
    /// and their files are treated as written unheld.
    pub fn kernel_opens_alone(&mut self) {
        if self.opens_alone {
            return;
        }
        self.opens_alone = true;
        for h in self.handles.values_mut().filter(|h| h.counted) {
            h.counted = false;
            if let Some(i) = self.table.get_mut(h.ino) {
                i.opens = i.opens.saturating_sub(1);
                i.written_unheld = true;
            }
        }
    }

    fn new_handle(&mut self, ino: u64, direct: bool) -> u64 {
        if let Some(i) = self.table.get_mut(ino) {
            i.opens += 1;
        }
        let fh = self.new_fh();
        let counted = true;
        self.handles.insert(
            fh,
            Handle {
                ino,
                direct,
                counted,
            },
        );
        fh
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::one_volume;
    use super::{UNCOUNTED_DIRECT_FH, UNCOUNTED_FH};

    #[test]
    fn once_the_kernel_opens_alone_handles_stop_counting() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = one_volume(dir.path());
        let root = fuser::INodeNo::ROOT.0;
        let (before, fh) = st.create(root, b"a", 0o644, (0, 0), true).unwrap();
        assert_eq!(st.write_handle(fh), (true, true));
        st.kernel_opens_alone();
        // the handle given out before may never be released
        let i = st.inode(before).unwrap();
        assert_eq!((i.opens, i.written_unheld), (0, true));
        assert_eq!(st.write_handle(fh), (false, true));
        st.release(fh);
        assert_eq!(st.inode(before).unwrap().opens, 0);
        // and those given out after are not counted
        let (after, fh) = st.create(root, b"b", 0o644, (0, 0), false).unwrap();
        assert_eq!((fh, st.inode(after).unwrap().opens), (UNCOUNTED_FH, 0));
        assert_eq!(st.write_handle(fh), (false, false));
        let (_, fh) = st.create(root, b"c", 0o644, (0, 0), true).unwrap();
        assert_eq!(fh, UNCOUNTED_DIRECT_FH);
        assert_eq!(st.write_handle(fh), (false, true));
    }

    #[test]
    fn a_file_open_keeps_its_inode_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = one_volume(dir.path());
        let root = fuser::INodeNo::ROOT.0;
        let (ino, fh) = st.create(root, b"f", 0o644, (0, 0), false).unwrap();
        assert_eq!(st.inode(ino).unwrap().opens, 1);
        let again = st.open(ino, true).unwrap();
        assert_ne!(again, fh);
        assert_eq!(st.inode(ino).unwrap().opens, 2);
        st.unlink(root, b"f").unwrap();
        st.release(fh);
        assert!(st.inode(ino).is_ok(), "still open once");
        st.release(again);
        assert_eq!(st.open(root, false), Err(libc::EISDIR));
        assert_eq!(
            st.create(root, b"f", 0o644, (0, 0), false).map(drop),
            Ok(())
        );
        assert_eq!(
            st.create(root, b"f", 0o644, (0, 0), false).map(drop),
            Err(libc::EEXIST)
        );
    }
}
