//! Open files: the handles the kernel holds, which keep a file's local
//! copy while it is open.

use super::*;

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
        Ok((ino, self.new_handle(ino, direct)))
    }

    /// Closes handle `fh`.
    pub fn release(&mut self, fh: u64) {
        if let Some(h) = self.handles.remove(&fh) {
            if let Some(i) = self.table.get_mut(h.ino) {
                i.opens = i.opens.saturating_sub(1);
            }
            self.maybe_drop(h.ino);
        }
    }

    fn new_handle(&mut self, ino: u64, direct: bool) -> u64 {
        if let Some(i) = self.table.get_mut(ino) {
            i.opens += 1;
        }
        let fh = self.new_fh();
        self.handles.insert(fh, Handle { ino, direct });
        fh
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::one_volume;

    #[test]
    fn a_file_open_keeps_its_inode_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = one_volume(dir.path());
        let root = fuser::FUSE_ROOT_ID;
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
