//! Attributes: `setattr` (size, mode, owner, times), `fallocate`, extended
//! attributes with their create/replace rules.

use super::*;

/// What a `setattr` changes; `None` leaves it as it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SetAttr {
    /// New permission bits.
    pub mode: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New size (truncate or extend).
    pub size: Option<u64>,
    /// New access time, ns since the epoch.
    pub atime_ns: Option<i64>,
    /// New modification time, ns since the epoch.
    pub mtime_ns: Option<i64>,
}

impl State {
    /// Truncates, changes mode, owner and times of `ino`, as a local file
    /// system does: a change of owner drops set-user-ID, and set-group-ID
    /// where it means something; the change time moves.
    pub fn set_attr(&mut self, ino: u64, set: &SetAttr) -> Result<(), Errno> {
        self.writable(ino)?;
        if let Some(size) = set.size {
            if self.inode(ino)?.is_dir() {
                return Err(libc::EISDIR);
            }
            self.truncate(ino, size)?;
            let now = self.now();
            let i = self.inode_mut(ino)?;
            i.meta.mtime_ns = now;
            i.meta.ctime_ns = now;
        }
        let i = self.inode_mut(ino)?;
        if let Some(mode) = set.mode {
            i.meta.mode = mode & 0o7777;
        }
        if set.uid.is_some() || set.gid.is_some() {
            i.meta.uid = set.uid.unwrap_or(i.meta.uid);
            i.meta.gid = set.gid.unwrap_or(i.meta.gid);
            if !i.is_dir() && set.mode.is_none() {
                i.meta.mode &= !libc::S_ISUID;
                if i.meta.mode & libc::S_IXGRP != 0 {
                    i.meta.mode &= !libc::S_ISGID;
                }
            }
        }
        if let Some(t) = set.atime_ns {
            i.meta.atime_ns = t;
        }
        if let Some(t) = set.mtime_ns {
            i.meta.mtime_ns = t;
        }
        i.meta.ctime_ns = now_ns();
        self.touch(ino);
        Ok(())
    }

    /// `fallocate`: space is not reserved ahead (data goes to packs at
    /// commit), so mode 0 only extends the length and `KEEP_SIZE` does
    /// nothing; other modes are not supported.
    pub fn fallocate(
        &mut self,
        ino: u64,
        offset: i64,
        length: i64,
        mode: i32,
    ) -> Result<(), Errno> {
        self.writable(ino)?;
        if offset < 0 || length <= 0 {
            return Err(libc::EINVAL);
        }
        match mode {
            0 => {
                let end = (offset as u64).saturating_add(length as u64);
                if end > self.file_size(ino)? {
                    self.truncate(ino, end)?;
                }
                let now = self.now();
                let i = self.inode_mut(ino)?;
                i.meta.mtime_ns = now;
                i.meta.ctime_ns = now;
                self.touch(ino);
                Ok(())
            }
            libc::FALLOC_FL_KEEP_SIZE => Ok(()),
            _ => Err(libc::EOPNOTSUPP),
        }
    }

    /// Sets extended attribute `name` of `ino` (`XATTR_CREATE`: only if
    /// absent; `XATTR_REPLACE`: only if present). `system.` attributes
    /// (POSIX ACLs) are not supported.
    pub fn set_xattr(
        &mut self,
        ino: u64,
        name: &[u8],
        value: &[u8],
        flags: i32,
    ) -> Result<(), Errno> {
        if name.starts_with(b"system.") {
            return Err(libc::EOPNOTSUPP);
        }
        if value.len() > XATTR_MAX {
            return Err(libc::E2BIG);
        }
        self.writable(ino)?;
        let i = self.inode_mut(ino)?;
        match i.xattrs.binary_search_by(|(n, _)| n.as_slice().cmp(name)) {
            Ok(_) if flags & libc::XATTR_CREATE != 0 => return Err(libc::EEXIST),
            Err(_) if flags & libc::XATTR_REPLACE != 0 => return Err(libc::ENODATA),
            Ok(k) => i.xattrs[k].1 = value.to_vec(),
            Err(k) => i.xattrs.insert(k, (name.to_vec(), value.to_vec())),
        }
        i.meta.ctime_ns = now_ns();
        self.touch(ino);
        Ok(())
    }

    /// The value of extended attribute `name` of `ino`. An absent `system.`
    /// attribute or SELinux label is "not supported" rather than "no such
    /// attribute", so tools such as `ls -l` stop asking for every file.
    pub fn get_xattr(&self, ino: u64, name: &[u8]) -> Result<Vec<u8>, Errno> {
        let i = self.inode(ino)?;
        i.xattrs
            .binary_search_by(|(n, _)| n.as_slice().cmp(name))
            .map(|k| i.xattrs[k].1.clone())
            .map_err(|_| {
                if name.starts_with(b"system.") || name == b"security.selinux" {
                    libc::EOPNOTSUPP
                } else {
                    libc::ENODATA
                }
            })
    }

    /// The names of `ino`'s extended attributes, each followed by a NUL.
    pub fn list_xattrs(&self, ino: u64) -> Result<Vec<u8>, Errno> {
        let mut names = Vec::new();
        for (n, _) in &self.inode(ino)?.xattrs {
            names.extend_from_slice(n);
            names.push(0);
        }
        Ok(names)
    }

    /// Removes extended attribute `name` of `ino`.
    pub fn remove_xattr(&mut self, ino: u64, name: &[u8]) -> Result<(), Errno> {
        self.writable(ino)?;
        let i = self.inode_mut(ino)?;
        let k = i
            .xattrs
            .binary_search_by(|(n, _)| n.as_slice().cmp(name))
            .map_err(|_| libc::ENODATA)?;
        i.xattrs.remove(k);
        i.meta.ctime_ns = now_ns();
        self.touch(ino);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::one_volume;
    use super::*;

    fn new_file(st: &mut State, name: &[u8], mode: u32) -> u64 {
        let kind = Kind::File(Data::Chunks {
            size: 0,
            chunks: Default::default(),
        });
        st.add(fuser::INodeNo::ROOT.0, name, kind, mode, 1000, 1000)
            .unwrap()
    }

    #[test]
    fn xattrs_follow_create_and_replace() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = one_volume(dir.path());
        let f = new_file(&mut st, b"f", 0o644);
        let create = libc::XATTR_CREATE;
        let replace = libc::XATTR_REPLACE;
        assert_eq!(
            st.set_xattr(f, b"user.a", b"1", replace),
            Err(libc::ENODATA)
        );
        st.set_xattr(f, b"user.a", b"1", create).unwrap();
        assert_eq!(st.set_xattr(f, b"user.a", b"2", create), Err(libc::EEXIST));
        st.set_xattr(f, b"user.a", b"2", replace).unwrap();
        st.set_xattr(f, b"user.b", b"3", 0).unwrap();
        assert_eq!(st.get_xattr(f, b"user.a").unwrap(), b"2");
        assert_eq!(st.list_xattrs(f).unwrap(), b"user.a\0user.b\0");
        st.remove_xattr(f, b"user.a").unwrap();
        assert_eq!(st.get_xattr(f, b"user.a"), Err(libc::ENODATA));
        assert_eq!(st.remove_xattr(f, b"user.a"), Err(libc::ENODATA));
        assert_eq!(
            st.get_xattr(f, b"system.posix_acl_access"),
            Err(libc::EOPNOTSUPP)
        );
        assert_eq!(st.set_xattr(f, b"system.x", b"", 0), Err(libc::EOPNOTSUPP));
        let big = vec![0u8; XATTR_MAX + 1];
        assert_eq!(st.set_xattr(f, b"user.big", &big, 0), Err(libc::E2BIG));
    }

    #[test]
    fn fallocate_extends_and_keep_size_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = one_volume(dir.path());
        let f = new_file(&mut st, b"f", 0o644);
        st.fallocate(f, 0, 4096, 0).unwrap();
        assert_eq!(st.file_size(f).unwrap(), 4096);
        st.fallocate(f, 0, 1 << 20, libc::FALLOC_FL_KEEP_SIZE)
            .unwrap();
        assert_eq!(st.file_size(f).unwrap(), 4096);
        st.fallocate(f, 100, 10, 0).unwrap();
        assert_eq!(st.file_size(f).unwrap(), 4096);
        assert_eq!(st.fallocate(f, -1, 10, 0), Err(libc::EINVAL));
        assert_eq!(st.fallocate(f, 0, 0, 0), Err(libc::EINVAL));
        let punch = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        assert_eq!(st.fallocate(f, 0, 10, punch), Err(libc::EOPNOTSUPP));
    }

    #[test]
    fn a_change_of_owner_drops_setuid_and_setgid() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = one_volume(dir.path());
        let f = new_file(&mut st, b"f", 0o6755);
        let chown = SetAttr {
            uid: Some(1),
            ..Default::default()
        };
        st.set_attr(f, &chown).unwrap();
        let meta = st.inode(f).unwrap().meta.clone();
        assert_eq!((meta.uid, meta.mode & 0o7777), (1, 0o755));
        let truncate = SetAttr {
            size: Some(10),
            mode: Some(0o600),
            ..Default::default()
        };
        st.set_attr(f, &truncate).unwrap();
        assert_eq!(st.file_size(f).unwrap(), 10);
        assert_eq!(st.inode(f).unwrap().meta.mode & 0o7777, 0o600);
        let d = st.inode(fuser::INodeNo::ROOT.0).unwrap().is_dir();
        assert!(d);
        let on_dir = SetAttr {
            size: Some(0),
            ..Default::default()
        };
        assert_eq!(
            st.set_attr(fuser::INodeNo::ROOT.0, &on_dir),
            Err(libc::EISDIR)
        );
    }
}
