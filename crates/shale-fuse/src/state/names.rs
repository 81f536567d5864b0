//! Changing names: creating, removing, linking and renaming entries, and
//! the times a change touches.

use super::*;

impl State {
    /// Marks `ino` changed, and every directory above it.
    pub fn touch(&mut self, ino: u64) {
        let Some(inode) = self.table.get(ino) else {
            return;
        };
        if !self.is_attached(inode) {
            return;
        }
        let parents = inode.parents.clone();
        if let Some(i) = self.table.get_mut(ino) {
            i.dirty = true;
        }
        for p in parents {
            self.touch_dir(p);
        }
    }

    /// Marks a directory and those above it changed.
    pub fn touch_dir(&mut self, mut dir: u64) {
        loop {
            let Some(d) = self.table.get(dir) else { return };
            if d.dirty || !self.is_attached(d) {
                return;
            }
            let next = d.parents.first().copied();
            if let Some(d) = self.table.get_mut(dir) {
                d.dirty = true;
            }
            match next {
                Some(p) if p != dir && !self.is_volume_root(dir) => dir = p,
                _ => return,
            }
        }
    }

    /// Sets a directory's mtime and ctime to now after a change of names.
    pub(super) fn names_changed(&mut self, dir: u64) {
        let now = self.now();
        if let Some(d) = self.table.get_mut(dir) {
            d.meta.mtime_ns = now;
            d.meta.ctime_ns = now;
        }
        self.touch_dir(dir);
    }

    pub(super) fn check_new_name(&mut self, parent: u64, name: &[u8]) -> Result<(), Errno> {
        if name.len() > NAME_MAX {
            return Err(libc::ENAMETOOLONG);
        }
        if name == SNAPSHOT_DIR && self.is_volume_root(parent) {
            return Err(libc::EEXIST);
        }
        match self.child(parent, name) {
            Ok(_) => Err(libc::EEXIST),
            Err(libc::ENOENT) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Adds a new inode under `name` in `parent`, with owner and group
    /// from the caller (or the parent's group if it is set-group-ID).
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        parent: u64,
        name: &[u8],
        kind: Kind,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<u64, Errno> {
        self.writable(parent)?;
        self.check_new_name(parent, name)?;
        let p = self.inode(parent)?;
        let owner = p.owner.clone();
        let is_dir = matches!(kind, Kind::Dir(_));
        let (gid, mut mode) = if p.meta.mode & libc::S_ISGID != 0 {
            (p.meta.gid, if is_dir { mode | libc::S_ISGID } else { mode })
        } else {
            (gid, mode)
        };
        mode &= 0o7777;
        let now = self.now();
        let meta = Meta {
            mode,
            uid,
            gid,
            mtime_ns: now,
            ctime_ns: now,
            atime_ns: now,
        };
        let inode = Inode::new(kind, meta, vec![parent], owner);
        let ino = self.table.add(inode);
        if let Some(d) = self.inode_mut(parent)?.dir_mut() {
            d.children.insert(name.to_vec(), Slot::Ino(ino));
            if is_dir {
                d.subdirs = d.subdirs.map(|n| n + 1);
            }
        }
        self.names_changed(parent);
        self.touch(ino);
        Ok(ino)
    }

    /// Removes `name` from `parent` (a whiteout if the base tree has it).
    pub(super) fn drop_name(&mut self, parent: u64, name: &[u8]) -> Result<(), Errno> {
        let in_base = self.base_has(parent, name)?;
        if let Some(d) = self.inode_mut(parent)?.dir_mut() {
            if in_base {
                d.children.insert(name.to_vec(), Slot::Whiteout);
            } else {
                d.children.remove(name);
            }
        }
        Ok(())
    }

    /// Unlinks one name of inode `child` from `parent`.
    pub(super) fn unlink_inode(
        &mut self,
        parent: u64,
        name: &[u8],
        child: u64,
    ) -> Result<(), Errno> {
        self.drop_name(parent, name)?;
        let volume = self.volume_of(parent);
        let now = self.now();
        let c = self.inode_mut(child)?;
        if let Some(i) = c.parents.iter().position(|p| *p == parent) {
            c.parents.remove(i);
        }
        c.meta.ctime_ns = now;
        let (gone, is_dir, size) = (
            c.parents.is_empty(),
            c.is_dir(),
            match &c.kind {
                Kind::File(d) => d.size(),
                _ => 0,
            },
        );
        if gone {
            c.dirty = false;
            if let Some(v) = volume.and_then(|v| self.vols.get_mut(v.as_ref())) {
                v.bytes = v.bytes.saturating_sub(size);
            }
        }
        if is_dir {
            if let Some(d) = self.inode_mut(parent)?.dir_mut() {
                d.subdirs = d.subdirs.map(|n| n.saturating_sub(1));
            }
        }
        self.names_changed(parent);
        self.maybe_drop(child);
        Ok(())
    }

    /// `unlink`.
    pub fn unlink(&mut self, parent: u64, name: &[u8]) -> Result<(), Errno> {
        if matches!(self.inode(parent)?.kind, Kind::PoolRoot) {
            return Err(libc::EPERM);
        }
        self.writable(parent)?;
        let child = self.child(parent, name)?;
        if self.inode(child)?.is_dir() {
            return Err(libc::EISDIR);
        }
        self.unlink_inode(parent, name, child)
    }

    /// `rmdir`.
    pub fn rmdir(&mut self, parent: u64, name: &[u8]) -> Result<(), Errno> {
        if matches!(self.inode(parent)?.kind, Kind::PoolRoot) {
            tracing::warn!(
                "refused to remove volume {:?} through the mount: use `shale volume delete`",
                String::from_utf8_lossy(name)
            );
            return Err(libc::EPERM);
        }
        self.writable(parent)?;
        let child = self.child(parent, name)?;
        if !matches!(self.inode(child)?.kind, Kind::Dir(_)) {
            return Err(if self.inode(child)?.is_dir() {
                libc::EBUSY
            } else {
                libc::ENOTDIR
            });
        }
        if !self.is_empty_dir(child)? {
            return Err(libc::ENOTEMPTY);
        }
        self.unlink_inode(parent, name, child)
    }

    /// `link`.
    pub fn link(&mut self, ino: u64, parent: u64, name: &[u8]) -> Result<(), Errno> {
        self.writable(parent)?;
        self.writable(ino)?;
        if self.inode(ino)?.is_dir() {
            return Err(libc::EPERM);
        }
        if self.volume_of(ino) != self.volume_of(parent)
            || !self.is_attached(self.inode(ino)?)
            || !self.is_attached(self.inode(parent)?)
        {
            return Err(libc::EXDEV);
        }
        self.check_new_name(parent, name)?;
        if let Some(d) = self.inode_mut(parent)?.dir_mut() {
            d.children.insert(name.to_vec(), Slot::Ino(ino));
        }
        let now = self.now();
        let c = self.inode_mut(ino)?;
        c.parents.push(parent);
        c.meta.ctime_ns = now;
        self.names_changed(parent);
        self.touch(ino);
        Ok(())
    }

    /// `rename`, with the `RENAME_NOREPLACE` and `RENAME_EXCHANGE` flags.
    pub fn rename(
        &mut self,
        parent: u64,
        name: &[u8],
        new_parent: u64,
        new_name: &[u8],
        flags: u32,
    ) -> Result<(), Errno> {
        let (src, dst) = self.rename_ends(parent, name, new_parent, new_name)?;
        let src_dir = self.inode(src)?.is_dir();
        if src_dir {
            self.check_not_below(src, new_parent)?;
        }
        if flags & libc::RENAME_EXCHANGE != 0 {
            let dst = dst.ok_or(libc::ENOENT)?;
            return self.exchange((parent, name, src), (new_parent, new_name, dst));
        }
        if let Some(dst) = dst {
            if dst == src {
                return Ok(());
            }
            if flags & libc::RENAME_NOREPLACE != 0 {
                return Err(libc::EEXIST);
            }
            self.check_replaceable(src_dir, dst)?;
            self.unlink_inode(new_parent, new_name, dst)?;
        }
        self.move_entry((parent, name), (new_parent, new_name), src, src_dir)
    }

    /// The inode a rename moves and the one it replaces, if any, once the
    /// rename is allowed: not at a pool's top, within one live volume, the
    /// new name not too long nor `.snapshot` at a volume's top.
    fn rename_ends(
        &mut self,
        parent: u64,
        name: &[u8],
        new_parent: u64,
        new_name: &[u8],
    ) -> Result<(u64, Option<u64>), Errno> {
        if matches!(self.inode(parent)?.kind, Kind::PoolRoot)
            || matches!(self.inode(new_parent)?.kind, Kind::PoolRoot)
        {
            return Err(libc::EPERM);
        }
        self.writable(parent)?;
        self.writable(new_parent)?;
        if new_name.len() > NAME_MAX {
            return Err(libc::ENAMETOOLONG);
        }
        if self.volume_of(parent) != self.volume_of(new_parent)
            || !self.is_attached(self.inode(parent)?)
            || !self.is_attached(self.inode(new_parent)?)
        {
            return Err(libc::EXDEV);
        }
        let src = self.child(parent, name)?;
        if !matches!(self.inode(src)?.owner, Owner::Live { .. }) {
            return Err(libc::EBUSY);
        }
        if new_name == SNAPSHOT_DIR && self.is_volume_root(new_parent) {
            return Err(libc::EEXIST);
        }
        match self.child(new_parent, new_name) {
            Ok(d) => Ok((src, Some(d))),
            Err(libc::ENOENT) => Ok((src, None)),
            Err(e) => Err(e),
        }
    }

    /// `EINVAL` if directory `src` is `dir` or one of its ancestors (a
    /// directory cannot move below itself).
    fn check_not_below(&self, src: u64, dir: u64) -> Result<(), Errno> {
        let mut at = dir;
        for _ in 0..4096 {
            if at == src {
                return Err(libc::EINVAL);
            }
            match self.inode(at)?.parents.first() {
                Some(&p) if p != at && !self.is_volume_root(at) => at = p,
                _ => break,
            }
        }
        Ok(())
    }

    /// Whether `dst` may be replaced by a file (`src_dir` false) or a
    /// directory: same kind, and an empty directory of a tree.
    fn check_replaceable(&mut self, src_dir: bool, dst: u64) -> Result<(), Errno> {
        match (src_dir, self.inode(dst)?.is_dir()) {
            (true, false) => Err(libc::ENOTDIR),
            (false, true) => Err(libc::EISDIR),
            (true, true) if !matches!(self.inode(dst)?.kind, Kind::Dir(_)) => Err(libc::EBUSY),
            (true, true) if !self.is_empty_dir(dst)? => Err(libc::ENOTEMPTY),
            _ => Ok(()),
        }
    }

    /// `RENAME_EXCHANGE`: each name then names the other's inode.
    fn exchange(
        &mut self,
        (parent, name, src): (u64, &[u8], u64),
        (new_parent, new_name, dst): (u64, &[u8], u64),
    ) -> Result<(), Errno> {
        if dst == src {
            return Ok(());
        }
        if self.inode(dst)?.is_dir() && !matches!(self.inode(dst)?.owner, Owner::Live { .. }) {
            return Err(libc::EBUSY);
        }
        for (dir, n, ino, other_dir) in [
            (parent, name, dst, new_parent),
            (new_parent, new_name, src, parent),
        ] {
            if let Some(d) = self.inode_mut(dir)?.dir_mut() {
                d.children.insert(n.to_vec(), Slot::Ino(ino));
                d.subdirs = None;
            }
            let i = self.inode_mut(ino)?;
            if let Some(k) = i.parents.iter().position(|p| *p == other_dir) {
                i.parents[k] = dir;
            }
            i.meta.ctime_ns = now_ns();
        }
        self.names_changed(parent);
        self.names_changed(new_parent);
        Ok(())
    }

    /// Moves `src` from `name` in `parent` to `new_name` in `new_parent`
    /// (whatever was there is gone): one overlay slot, whatever it holds.
    fn move_entry(
        &mut self,
        (parent, name): (u64, &[u8]),
        (new_parent, new_name): (u64, &[u8]),
        src: u64,
        src_dir: bool,
    ) -> Result<(), Errno> {
        self.drop_name(parent, name)?;
        if let Some(d) = self.inode_mut(new_parent)?.dir_mut() {
            d.children.insert(new_name.to_vec(), Slot::Ino(src));
            if src_dir {
                d.subdirs = d.subdirs.map(|n| n + 1);
            }
        }
        if src_dir {
            if let Some(d) = self.inode_mut(parent)?.dir_mut() {
                d.subdirs = d.subdirs.map(|n| n.saturating_sub(1));
            }
        }
        let s = self.inode_mut(src)?;
        if let Some(k) = s.parents.iter().position(|p| *p == parent) {
            s.parents[k] = new_parent;
        }
        s.meta.ctime_ns = now_ns();
        self.names_changed(parent);
        self.names_changed(new_parent);
        Ok(())
    }

    /// Makes directory `name` in `parent`, owned by `uid`/`gid`; at the top
    /// of a pool mount, a new volume.
    pub fn mkdir(
        &mut self,
        parent: u64,
        name: &[u8],
        mode: u32,
        (uid, gid): (u32, u32),
    ) -> Result<u64, Errno> {
        if !matches!(self.inode(parent)?.kind, Kind::PoolRoot) {
            let dir = Kind::Dir(Dir {
                subdirs: Some(0),
                ..Dir::default()
            });
            return self.add(parent, name, dir, mode, uid, gid);
        }
        if self.read_only {
            return Err(libc::EROFS);
        }
        let name = std::str::from_utf8(name).map_err(|_| libc::EINVAL)?;
        let meta = RootMeta {
            mode: mode & 0o7777,
            uid,
            gid,
            xattrs: Vec::new(),
        };
        self.pool
            .create_volume(name, None)
            .and_then(|_| self.pool.set_root_meta(name, &meta))
            .map_err(|e| errno(&e))?;
        self.child(parent, name.as_bytes())
    }

    /// Makes symbolic link `name` in `parent` to `target`, owned by
    /// `uid`/`gid`.
    pub fn symlink(
        &mut self,
        parent: u64,
        name: &[u8],
        target: &[u8],
        (uid, gid): (u32, u32),
    ) -> Result<u64, Errno> {
        let kind = Kind::Symlink(target.to_vec());
        self.add(parent, name, kind, 0o777, uid, gid)
    }

    /// Makes a device node, FIFO, socket or (`S_IFREG`) empty file `name`
    /// in `parent`, owned by `uid`/`gid`.
    pub fn mknod(
        &mut self,
        parent: u64,
        name: &[u8],
        mode: u32,
        rdev: u64,
        (uid, gid): (u32, u32),
    ) -> Result<u64, Errno> {
        let kind = match SpecialKind::from_mode(mode) {
            Some(kind) => Kind::Special(shale_core::tree::Special { kind, rdev }),
            None if mode & libc::S_IFMT == libc::S_IFREG => Kind::File(Data::Chunks {
                size: 0,
                chunks: Default::default(),
            }),
            None => return Err(libc::EINVAL),
        };
        self.add(parent, name, kind, mode, uid, gid)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::one_volume;

    const ROOT: u64 = fuser::INodeNo::ROOT.0;

    #[test]
    fn rename_moves_replaces_and_refuses_as_posix_says() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = one_volume(dir.path());
        let me = (0, 0);
        let a = st.mkdir(ROOT, b"a", 0o755, me).unwrap();
        let b = st.mkdir(a, b"b", 0o755, me).unwrap();
        let (f, _) = st.create(ROOT, b"f", 0o644, me, false).unwrap();
        let (g, _) = st.create(ROOT, b"g", 0o644, me, false).unwrap();

        assert_eq!(st.rename(ROOT, b"a", b, b"a", 0), Err(libc::EINVAL));
        assert_eq!(
            st.rename(ROOT, b"f", ROOT, b"g", libc::RENAME_NOREPLACE),
            Err(libc::EEXIST)
        );
        assert_eq!(st.rename(ROOT, b"f", ROOT, b"a", 0), Err(libc::EISDIR));
        assert_eq!(st.rename(ROOT, b"a", ROOT, b"f", 0), Err(libc::ENOTDIR));
        assert_eq!(st.rename(ROOT, b"nope", ROOT, b"x", 0), Err(libc::ENOENT));

        st.rename(ROOT, b"f", ROOT, b"g", libc::RENAME_EXCHANGE)
            .unwrap();
        assert_eq!(
            (st.child(ROOT, b"f").unwrap(), st.child(ROOT, b"g").unwrap()),
            (g, f)
        );

        st.rename(ROOT, b"f", a, b"moved", 0).unwrap();
        assert_eq!(st.child(a, b"moved").unwrap(), g);
        assert_eq!(st.child(ROOT, b"f"), Err(libc::ENOENT));
        assert_eq!(st.inode(g).unwrap().parents, vec![a]);

        st.rename(ROOT, b"g", a, b"moved", 0).unwrap();
        assert_eq!(st.child(a, b"moved").unwrap(), f);
        assert_eq!(
            st.rename(a, b"moved", ROOT, b".snapshot", 0),
            Err(libc::EEXIST)
        );
    }

    #[test]
    fn unlink_rmdir_and_link_keep_names_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = one_volume(dir.path());
        let me = (0, 0);
        let a = st.mkdir(ROOT, b"a", 0o755, me).unwrap();
        let (f, fh) = st.create(a, b"f", 0o644, me, false).unwrap();
        st.release(fh);
        assert_eq!(st.rmdir(ROOT, b"a"), Err(libc::ENOTEMPTY));
        assert_eq!(st.unlink(ROOT, b"a"), Err(libc::EISDIR));
        assert_eq!(st.link(a, ROOT, b"dir-link"), Err(libc::EPERM));
        st.link(f, ROOT, b"g").unwrap();
        assert_eq!(st.child(ROOT, b"g").unwrap(), f);
        let mut parents = st.inode(f).unwrap().parents.clone();
        parents.sort();
        let mut want = vec![ROOT, a];
        want.sort();
        assert_eq!(parents, want);
        assert_eq!(st.link(f, ROOT, b"g"), Err(libc::EEXIST));
        st.unlink(a, b"f").unwrap();
        assert_eq!(st.child(a, b"f"), Err(libc::ENOENT));
        assert_eq!(st.child(ROOT, b"g").unwrap(), f, "the other name stays");
        assert_eq!(st.rmdir(ROOT, b"g"), Err(libc::ENOTDIR));
        st.rmdir(ROOT, b"a").unwrap();
        assert_eq!(st.child(ROOT, b"a"), Err(libc::ENOENT));
        assert_eq!(st.unlink(ROOT, b"nope"), Err(libc::ENOENT));
        let long = vec![b'x'; super::super::NAME_MAX + 1];
        assert_eq!(st.mkdir(ROOT, &long, 0o755, me), Err(libc::ENAMETOOLONG));
    }
}
