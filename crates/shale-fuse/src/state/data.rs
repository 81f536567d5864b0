//! File data: the write path (copy-up into memory or an upper file), the
//! memory budget of files kept in memory, quotas, truncation, and the
//! privileges a write removes.
#![allow(unsafe_code)] // sysconf for the memory budget: the block says why it is sound

use super::*;

/// ...and while all of them together stay under this: an eighth of the
/// machine's memory, from 256 MiB to 1 GiB (ZFS lets dirty data take a
/// tenth, up to 4 GiB). Beyond, they go to upper files: creating and
/// deleting a local file per small file written costs more than the copy
/// of its bytes (ext4 inode allocation). A commit starts early when they
/// pass a quarter of it, so at a few hundred MB/s of small files the
/// budget is not reached (measured: with 256 MiB and commits every 5 s
/// only, `cp -r` of 20,000 files spent a quarter of the mount's CPU
/// creating upper files).
pub(super) fn memory_budget() -> u64 {
    // SAFETY: sysconf only reads system constants.
    let (pages, page) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let ram = (pages.max(0) as u64).saturating_mul(page.max(0) as u64);
    (ram / 8).clamp(256 << 20, 1 << 30)
}

/// Most upper-file descriptors a mount keeps open: a quarter of its limit
/// of open files (raised to the hard limit at mount), from 64 to 8,192.
/// Past it, those of files no handle holds are let go (a copy of 20,000
/// files through handles the kernel opened without asking ran a server with
/// a limit of 20,000 out of descriptors); reopening one costs an `open`.
pub(super) fn upper_fd_cap() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur
    } else {
        1024
    };
    (soft / 4).clamp(64, 8192) as usize
}

/// What [`State::drop_privileges`] changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dropped {
    /// Anything (the mode, or a capability).
    pub any: bool,
    /// The mode.
    pub mode: bool,
}

impl State {
    /// Accounts for a file in memory growing or shrinking.
    pub fn memory_changed(&mut self, old: usize, new: usize) {
        self.memory_bytes = (self.memory_bytes + new as u64).saturating_sub(old as u64);
        if self.memory_bytes >= self.memory_budget / 4 {
            self.ask_commit();
        }
    }

    /// Lets go of the descriptors of upper files no handle holds (but not
    /// `ino`'s, in use) once the mount holds more than its cap.
    pub fn limit_upper_fds(&mut self, ino: u64) {
        let (cap, at) = self.upper_fds;
        if self.open_uppers.count() <= at {
            return;
        }
        let mut gone = Vec::new();
        for &other in &self.uppers {
            match self.table.get(other).map(|i| (i.opens, &i.kind)) {
                Some((opens, Kind::File(Data::Upper(u)))) => {
                    if opens == 0 && other != ino {
                        u.let_go();
                    }
                }
                _ => gone.push(other),
            }
        }
        for other in gone {
            self.uppers.remove(&other);
        }
        // Those handles hold stay open: look again only once as many more
        // as half the cap were opened.
        let left = self.open_uppers.count();
        self.upper_fds = (cap, cap.max(left + cap / 2));
    }

    /// Asks the committer to commit soon (once until it has).
    fn ask_commit(&mut self) {
        if !self.commit_asked {
            if let Some(wake) = &self.commit_soon {
                self.commit_asked = true;
                let _ = wake.try_send(());
            }
        }
    }

    /// Makes a regular file writable up to length `len`: in memory if small
    /// enough, else in an upper file (copied up from its chunks, unless its
    /// old content is not needed: `keep` false).
    pub fn writable_data(&mut self, ino: u64, len: u64, keep: bool) -> Result<(), Errno> {
        let path = self.upper_dir.join(ino.to_string());
        let pool = self.pool.clone();
        let fits = |current: u64, st: &State| {
            len <= MEMORY_FILE_MAX
                && st.memory_bytes + len.saturating_sub(current) <= st.memory_budget
        };
        let io = |what: &str, e: std::io::Error| {
            tracing::error!("{what}: {e}");
            e.raw_os_error().unwrap_or(libc::EIO)
        };
        let (size, in_memory) = match &self.inode(ino)?.kind {
            Kind::File(Data::Upper(_)) => return Ok(()),
            Kind::File(Data::Memory(m)) => (m.len() as u64, true),
            Kind::File(Data::Chunks { size, .. }) => (*size, false),
            other => {
                return Err(if matches!(other, Kind::Dir(_)) {
                    libc::EISDIR
                } else {
                    libc::EINVAL
                })
            }
        };
        let wanted = if keep { size } else { 0 };
        if in_memory && fits(size, self) {
            return Ok(());
        }
        let new = if fits(wanted, self) && !in_memory {
            // Small: read its chunks into memory.
            let mut bytes = Vec::with_capacity(wanted as usize);
            if keep {
                if let Kind::File(Data::Chunks { chunks, .. }) = &self.inode(ino)?.kind {
                    for c in chunks.refs.iter() {
                        bytes.extend_from_slice(&pool.blobs().get(&c.id).map_err(|e| errno(&e))?);
                    }
                }
            }
            self.memory_changed(0, bytes.len());
            Data::Memory(Arc::new(bytes))
        } else {
            match &self.inode(ino)?.kind {
                Kind::File(Data::Memory(m)) => {
                    // Grown out of memory: spill to an upper file.
                    let mut up = Upper::create(path, &self.open_uppers)
                        .map_err(|e| io("creating an upper file", e))?;
                    if keep {
                        up.write(0, m).map_err(|e| io("writing an upper file", e))?;
                    }
                    let held = m.len();
                    self.memory_changed(held, 0);
                    Data::Upper(up)
                }
                Kind::File(Data::Chunks { chunks, size }) => if keep {
                    Upper::over(path, &self.open_uppers, pool, chunks.clone(), *size)
                } else {
                    Upper::create(path, &self.open_uppers)
                }
                .map(Data::Upper)
                .map_err(|e| io("copying a file up for writing", e))?,
                _ => return Ok(()),
            }
        };
        let upper = matches!(new, Data::Upper(_));
        if let Kind::File(data) = &mut self.inode_mut(ino)?.kind {
            *data = new;
        }
        if upper {
            self.uppers.insert(ino);
            self.limit_upper_fds(ino);
        }
        Ok(())
    }

    /// Charges `grow` more bytes to the volume of `ino`, within its quota.
    pub fn charge(&mut self, ino: u64, old: u64, new: u64) -> Result<(), Errno> {
        let Some(v) = self
            .volume_of(ino)
            .and_then(|v| self.vols.get_mut(v.as_ref()))
        else {
            return Ok(());
        };
        let bytes = (v.bytes + new).saturating_sub(old);
        if new > old {
            if let Some(q) = v.quota {
                if bytes > q {
                    return Err(libc::EDQUOT);
                }
            }
        }
        v.bytes = bytes;
        Ok(())
    }

    /// Writes `data` at `offset` (or at the end, for an append).
    pub fn write(&mut self, w: Write, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        let ino = w.ino;
        self.writable(ino)?;
        let old = self.file_size(ino)?;
        let offset = if w.append { old } else { offset };
        let end = offset + data.len() as u64;
        self.writable_data(ino, end.max(old), true)?;
        self.charge(ino, old, end.max(old))?;
        let mut grown = None;
        let now = self.now();
        let inode = self.inode_mut(ino)?;
        inode.written_unheld |= !w.held;
        match &mut inode.kind {
            Kind::File(Data::Upper(u)) => u.write(offset, data).map_err(|e| {
                tracing::error!("writing an upper file: {e}");
                e.raw_os_error().unwrap_or(libc::EIO)
            })?,
            Kind::File(Data::Memory(m)) => {
                let m = Arc::make_mut(m);
                let before = m.len();
                if offset as usize == before {
                    // Appending (a file being written from start to end):
                    // no zeroing first.
                    m.extend_from_slice(data);
                } else {
                    if (end as usize) > before {
                        m.resize(end as usize, 0);
                    }
                    m[offset as usize..end as usize].copy_from_slice(data);
                }
                grown = Some((before, m.len()));
            }
            _ => {}
        }
        inode.meta.mtime_ns = now;
        inode.meta.ctime_ns = now;
        if let Some((before, after)) = grown {
            self.memory_changed(before, after);
        }
        self.touch(ino);
        self.note_written(ino, offset, data.len() as u64);
        self.limit_upper_fds(ino);
        Ok(data.len() as u32)
    }

    /// What a write to `ino` does to its privileges when the kernel leaves
    /// that to the mount (a direct write): the `security.capability`
    /// attribute goes, and where the writer may not keep them
    /// (`kill_suidgid`: it lacks `CAP_FSETID`), the setuid bit and a setgid
    /// bit that marks a group-executable file, as `should_remove_suid` in
    /// the kernel does. Says what changed: the mode changing means the
    /// kernel's copy of it must be dropped.
    pub fn drop_privileges(&mut self, ino: u64, kill_suidgid: bool) -> Result<Dropped, Errno> {
        self.writable(ino)?;
        let i = self.inode_mut(ino)?;
        let mut changed = false;
        if let Ok(k) = i
            .xattrs
            .binary_search_by(|(n, _)| n.as_slice().cmp(CAPABILITY_XATTR))
        {
            i.xattrs.remove(k);
            changed = true;
        }
        let mode = i.meta.mode;
        let mut kept = mode;
        if kill_suidgid {
            kept &= !libc::S_ISUID;
            if mode & libc::S_IXGRP != 0 {
                kept &= !libc::S_ISGID;
            }
        }
        let mode_changed = kept != mode;
        if changed || mode_changed {
            i.meta.mode = kept;
            i.meta.ctime_ns = now_ns();
            self.touch(ino);
        }
        Ok(Dropped {
            any: changed || mode_changed,
            mode: mode_changed,
        })
    }

    /// A regular file's length.
    pub fn file_size(&self, ino: u64) -> Result<u64, Errno> {
        match &self.inode(ino)?.kind {
            Kind::File(d) => Ok(d.size()),
            _ => Err(libc::EINVAL),
        }
    }

    /// Sets a regular file's length.
    pub fn truncate(&mut self, ino: u64, size: u64) -> Result<(), Errno> {
        let old = self.file_size(ino)?;
        self.writable_data(ino, size, size > 0)?;
        self.charge(ino, old, size)?;
        let mut resized = None;
        match &mut self.inode_mut(ino)?.kind {
            Kind::File(Data::Upper(u)) => u
                .truncate(size)
                .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?,
            Kind::File(Data::Memory(m)) => {
                let m = Arc::make_mut(m);
                let before = m.len();
                m.resize(size as usize, 0);
                resized = Some((before, m.len()));
            }
            _ => {}
        }
        if let Some((before, after)) = resized {
            self.memory_changed(before, after);
        }
        Ok(())
    }

    /// Drops an inode nothing refers to any more.
    pub fn maybe_drop(&mut self, ino: u64) {
        let Some(i) = self.table.get(ino) else { return };
        if ino == fuser::INodeNo::ROOT.0 || i.lookups > 0 || i.opens > 0 {
            return;
        }
        let attached = self.is_attached(i);
        let unlinked = i.parents.is_empty();
        let clean_leaf = !i.dirty
            && match &i.kind {
                Kind::Dir(d) => d.children.is_empty(),
                Kind::File(Data::Chunks { .. }) | Kind::Symlink(_) | Kind::Special(_) => true,
                Kind::File(Data::Upper(_)) | Kind::File(Data::Memory(_)) => false,
                Kind::PoolRoot | Kind::SnapshotDir { .. } => false,
            };
        let special_root = self.is_volume_root(ino)
            || matches!(i.kind, Kind::SnapshotDir { .. })
            || self.specials.values().any(|v| *v == ino);
        if special_root {
            return;
        }
        // Detached: left over from before a reload, never committed again.
        let detached = !attached && matches!(i.owner, Owner::Live { .. });
        let removable = unlinked || clean_leaf || detached;
        if !removable {
            return;
        }
        let parents = i.parents.clone();
        for p in parents {
            if let Some(d) = self.table.get_mut(p).and_then(Inode::dir_mut) {
                if let Some(name) = d
                    .children
                    .iter()
                    .find(|(_, s)| **s == Slot::Ino(ino))
                    .map(|(n, _)| n.clone())
                {
                    d.children.remove(&name);
                }
            }
        }
        if let Some(Inode {
            kind: Kind::File(Data::Memory(m)),
            ..
        }) = self.table.remove(ino)
        {
            self.memory_changed(m.len(), 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::one_volume;
    use super::*;

    const ROOT: u64 = fuser::INodeNo::ROOT.0;

    fn write(st: &mut State, ino: u64, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        let w = Write {
            ino,
            append: false,
            held: true,
        };
        st.write(w, offset, data)
    }

    #[test]
    fn writes_and_truncates_change_size_and_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = one_volume(dir.path());
        let (f, _) = st.create(ROOT, b"f", 0o644, (0, 0), false).unwrap();
        assert_eq!(write(&mut st, f, 0, b"hello").unwrap(), 5);
        assert_eq!(write(&mut st, f, 10, b"!").unwrap(), 1);
        assert_eq!(st.file_size(f).unwrap(), 11);
        st.truncate(f, 3).unwrap();
        assert_eq!(st.file_size(f).unwrap(), 3);
        st.truncate(f, 1 << 20).unwrap();
        assert_eq!(st.file_size(f).unwrap(), 1 << 20);
        assert_eq!(st.file_size(ROOT), Err(libc::EINVAL));
        let appended = Write {
            ino: f,
            append: true,
            held: true,
        };
        st.truncate(f, 2).unwrap();
        st.write(appended, 0, b"xyz").unwrap();
        assert_eq!(st.file_size(f).unwrap(), 5, "O_APPEND writes at the end");
    }

    #[test]
    fn a_quota_refuses_growth_past_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = one_volume(dir.path());
        st.pool.resize_volume("v", Some(10)).unwrap();
        for v in st.vols.values_mut() {
            v.quota = Some(10);
        }
        let (f, _) = st.create(ROOT, b"f", 0o644, (0, 0), false).unwrap();
        assert_eq!(write(&mut st, f, 0, b"0123456789").unwrap(), 10);
        assert_eq!(write(&mut st, f, 10, b"x"), Err(libc::EDQUOT));
        assert_eq!(st.truncate(f, 11), Err(libc::EDQUOT));
        st.truncate(f, 4).unwrap();
        assert_eq!(write(&mut st, f, 4, b"abc").unwrap(), 3);
    }
}
