//! The mount's state and the file operations on it, independent of FUSE's
//! calling conventions: each returns a result or an errno.
#![allow(unsafe_code)] // libc calls: each block says why it is sound

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fuser::FileType;
use shale_core::catalog::{now_ns, RootMeta};
use shale_core::tree::{load_node, ChunkRef, DirRef, Entry, Node as TreeNode, SpecialKind};
use shale_core::{Error, ObjectId, Pool};

use crate::inodes::{Data, Dir, Inode, Kind, Meta, Owner, Slot, Table};
use crate::upper::Upper;

/// Decoded tree nodes kept in memory (about 10 KB each at most).
const NODE_CACHE: usize = 20_000;
/// The hidden per-volume snapshot directory.
pub const SNAPSHOT_DIR: &[u8] = b".snapshot";
/// The longest name a directory takes.
pub const NAME_MAX: usize = 255;
/// The largest extended attribute value.
pub const XATTR_MAX: usize = 64 << 10;
/// The extended attribute holding a file's capabilities, which a write
/// removes.
const CAPABILITY_XATTR: &[u8] = b"security.capability";
/// Files written through the mount stay in memory up to this size...
const MEMORY_FILE_MAX: u64 = 1 << 20;

/// ...and while all of them together stay under this: an eighth of the
/// machine's memory, from 256 MiB to 1 GiB (ZFS lets dirty data take a
/// tenth, up to 4 GiB). Beyond, they go to upper files: creating and
/// deleting a local file per small file written costs more than the copy
/// of its bytes (ext4 inode allocation). A commit starts early when they
/// pass a quarter of it, so at a few hundred MB/s of small files the
/// budget is not reached (measured: with 256 MiB and commits every 5 s
/// only, `cp -r` of 20,000 files spent a quarter of the mount's CPU
/// creating upper files).
fn memory_budget() -> u64 {
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

/// An errno.
pub type Errno = i32;

/// What a mount shows.
#[derive(Clone, Debug)]
pub enum Target {
    /// Every volume, as a directory.
    Pool,
    /// One volume (live), or one snapshot of it.
    Volume {
        /// Volume name.
        volume: String,
        /// Snapshot name.
        snapshot: Option<String>,
    },
}

/// A live volume as loaded by this mount.
#[derive(Debug)]
pub struct Vol {
    /// Its root directory inode.
    pub root: u64,
    /// Bumped each time the volume is reloaded from the catalog.
    pub generation: u64,
    /// The root tree this mount's view is based on (its last commit or load).
    pub committed: ObjectId,
    /// Logical bytes, as written so far.
    pub bytes: u64,
    /// Quota, if any.
    pub quota: Option<u64>,
    /// This mount's right to write the volume (`None`: read-only here,
    /// because the mount is, or another mount writes it).
    pub writer: Option<shale_core::coord::mounts::WriterClaim>,
}

/// A file handle this mount gave out (by `create`, or by `open` where the
/// kernel asks): it holds the file's local copy until released.
#[derive(Clone, Copy, Debug)]
pub struct Handle {
    /// Its inode.
    pub ino: u64,
    /// Opened for direct I/O (`FOPEN_DIRECT_IO`, see `ShaleFs::create`):
    /// writes through it bypass the kernel's page cache, and with it the
    /// kernel's clearing of privileges, which [`State::drop_privileges`]
    /// does instead.
    pub direct: bool,
}

/// Who writes, for [`State::write`].
#[derive(Clone, Copy, Debug)]
pub struct Write {
    /// The file.
    pub ino: u64,
    /// The file was opened with `O_APPEND`.
    pub append: bool,
    /// Through a handle this mount gave out.
    pub held: bool,
}

/// Everything a mount knows.
pub struct State {
    /// The pool.
    pub pool: Arc<Pool>,
    /// How this mount is named to others when it writes a volume.
    pub holder: String,
    /// Inodes.
    pub table: Table,
    /// Live volumes loaded so far, by name.
    pub vols: HashMap<String, Vol>,
    /// Snapshot roots and `.snapshot` directories made so far.
    specials: HashMap<(String, Option<String>), u64>,
    /// Refuse every change.
    pub read_only: bool,
    /// List `.snapshot` in volume roots.
    pub show_snapshot_dir: bool,
    /// Where upper files go.
    pub upper_dir: PathBuf,
    /// When the mount started, ns.
    pub mounted_at: i64,
    /// Open files.
    pub handles: HashMap<u64, Handle>,
    /// Files whose local copy a commit kept because they were being written
    /// through a handle this mount did not give out, with the chunks that
    /// commit stored for them.
    pub lingering: HashMap<u64, Vec<ChunkRef>>,
    /// Open directory listings.
    pub listings: HashMap<u64, Vec<(u64, FileType, Vec<u8>)>>,
    next_fh: u64,
    nodes: HashMap<ObjectId, Arc<TreeNode>>,
    /// Bytes of files held in memory (`Data::Memory`).
    memory_bytes: u64,
    /// Most bytes of files held in memory ([`memory_budget`]).
    memory_budget: u64,
    /// Wakes the commit thread early (when files held in memory pass a
    /// quarter of their budget).
    pub commit_soon: Option<std::sync::mpsc::SyncSender<()>>,
    /// The commit thread was woken and has not committed yet.
    pub commit_asked: bool,
}

/// Maps a core error to an errno, logging what is not a plain "not found".
pub fn errno(e: &Error) -> Errno {
    match e {
        Error::VolumeNotFound(_) | Error::SnapshotNotFound { .. } => libc::ENOENT,
        Error::VolumeExists(_) => libc::EEXIST,
        Error::InvalidName { .. } => libc::EINVAL,
        Error::QuotaExceeded { .. } => libc::EDQUOT,
        other => {
            tracing::error!("{other}");
            no_space(other).unwrap_or(libc::EIO)
        }
    }
}

/// `ENOSPC` or `EDQUOT` where the pool's disk is full (or its owner over
/// quota), so that writers are told so rather than of an I/O error.
pub fn no_space(e: &Error) -> Option<Errno> {
    match e {
        Error::Io { source, .. } => source
            .raw_os_error()
            .filter(|n| matches!(*n, libc::ENOSPC | libc::EDQUOT)),
        _ => None,
    }
}

fn dir_meta(mtime_ns: i64, mode: u32) -> Meta {
    Meta {
        mode,
        uid: 0,
        gid: 0,
        mtime_ns,
        ctime_ns: mtime_ns,
        atime_ns: mtime_ns,
    }
}

fn special(kind: Kind, mtime_ns: i64, owner: Owner) -> Inode {
    Inode {
        kind,
        meta: dir_meta(mtime_ns, 0o755),
        xattrs: Vec::new(),
        parents: Vec::new(),
        owner,
        dirty: false,
        lookups: 0,
        opens: 0,
        written_unheld: false,
    }
}

impl State {
    /// The state of a mount of `target`. Checks that the target exists.
    pub fn new(
        pool: Pool,
        target: Target,
        read_only: bool,
        show_snapshot_dir: bool,
        upper_dir: PathBuf,
        mountpoint: &Path,
    ) -> shale_core::Result<State> {
        let mounted_at = now_ns();
        let mut st = State {
            holder: format!("the shale mount at {}", mountpoint.display()),
            pool: Arc::new(pool),
            table: Table::default(),
            vols: HashMap::new(),
            specials: HashMap::new(),
            read_only,
            show_snapshot_dir,
            upper_dir,
            mounted_at,
            handles: HashMap::new(),
            lingering: HashMap::new(),
            listings: HashMap::new(),
            next_fh: 1,
            nodes: HashMap::new(),
            memory_bytes: 0,
            memory_budget: memory_budget(),
            commit_soon: None,
            commit_asked: false,
        };
        match target {
            Target::Pool => {
                st.table = Table::new(special(Kind::PoolRoot, mounted_at, Owner::None));
            }
            Target::Volume {
                volume,
                snapshot: None,
            } => {
                let row = st.pool.catalog().volume(&volume)?;
                if !st.read_only {
                    st.pool.check_not_mirror(&volume, "mount read-write")?;
                }
                let root = st.volume_root_inode(&row, 1);
                st.table = Table::new(root);
                let writer = match st.claim(&volume)? {
                    Ok(claim) => claim,
                    Err(holder) => {
                        return Err(Error::InvalidArgument(format!(
                            "volume '{volume}' is mounted read-write by {holder}: \
                             mount it --read-only, or unmount that first"
                        )))
                    }
                };
                st.vols.insert(
                    volume,
                    Vol {
                        root: fuser::FUSE_ROOT_ID,
                        generation: 1,
                        committed: row.root,
                        bytes: row.bytes,
                        quota: row.quota,
                        writer,
                    },
                );
            }
            Target::Volume {
                volume,
                snapshot: Some(s),
            } => {
                let snap = st.pool.catalog().snapshot(&volume, &s)?;
                st.table = Table::new(snapshot_root(&snap));
            }
        }
        Ok(st)
    }

    fn volume_root_inode(&self, row: &shale_core::catalog::VolumeRow, generation: u64) -> Inode {
        let mut root = special(
            Kind::Dir(Dir {
                base: Some(DirRef {
                    tree: row.root,
                    bytes: row.bytes,
                    files: row.files,
                    entries: 0,
                }),
                ..Dir::default()
            }),
            row.updated,
            Owner::Live {
                volume: Arc::from(row.name.as_str()),
                generation,
            },
        );
        let meta = self.pool.root_meta(&row.name).unwrap_or_else(|e| {
            tracing::error!("top directory of volume {}: {e}", row.name);
            RootMeta::default()
        });
        root.meta.mode = meta.mode;
        root.meta.uid = meta.uid;
        root.meta.gid = meta.gid;
        root.xattrs = meta.xattrs;
        root
    }

    /// The metadata of a volume root inode, as the catalog keeps it.
    pub fn root_meta_of(&self, ino: u64) -> Option<RootMeta> {
        let i = self.table.get(ino)?;
        Some(RootMeta {
            mode: i.meta.mode,
            uid: i.meta.uid,
            gid: i.meta.gid,
            xattrs: i.xattrs.clone(),
        })
    }

    /// Claims the right to write `volume` if this mount is read-write
    /// (`Ok(None)` if it is not; `Err(holder)` if another mount has it).
    pub fn claim(
        &self,
        volume: &str,
    ) -> shale_core::Result<Result<Option<shale_core::coord::mounts::WriterClaim>, String>> {
        if self.read_only || self.pool.check_not_mirror(volume, "write").is_err() {
            // a mirror destination is read-only until `mirror break`
            return Ok(Ok(None));
        }
        Ok(shale_core::coord::mounts::claim_writer(&self.pool, volume, &self.holder)?.map(Some))
    }

    /// A new file handle number.
    pub fn new_fh(&mut self) -> u64 {
        let fh = self.next_fh;
        self.next_fh += 1;
        fh
    }

    /// The inode numbered `ino`.
    pub fn inode(&self, ino: u64) -> Result<&Inode, Errno> {
        self.table.get(ino).ok_or(libc::ENOENT)
    }

    fn inode_mut(&mut self, ino: u64) -> Result<&mut Inode, Errno> {
        self.table.get_mut(ino).ok_or(libc::ENOENT)
    }

    /// Whether an inode belongs to the current load of a live volume.
    pub fn is_attached(&self, inode: &Inode) -> bool {
        match &inode.owner {
            Owner::Live { volume, generation } => self
                .vols
                .get(volume.as_ref())
                .is_some_and(|v| v.generation == *generation),
            _ => false,
        }
    }

    /// Fails with `EROFS` unless `ino` may be changed.
    pub fn writable(&mut self, ino: u64) -> Result<(), Errno> {
        let inode = self.inode(ino)?;
        let Owner::Live { volume, .. } = &inode.owner else {
            return Err(libc::EROFS);
        };
        let volume = volume.clone();
        if self.read_only {
            return Err(libc::EROFS);
        }
        let Some(vol) = self.vols.get(volume.as_ref()) else {
            return Err(libc::EROFS);
        };
        if vol.writer.is_none() {
            self.take_over(&volume)?;
        }
        Ok(())
    }

    /// Becomes the writer of a volume another mount wrote, if that mount
    /// is gone and this mount shows the volume as last committed.
    fn take_over(&mut self, volume: &str) -> Result<(), Errno> {
        let claim = match self.claim(volume) {
            Ok(Ok(Some(claim))) => claim,
            Ok(Err(holder)) => {
                tracing::debug!("volume {volume} stays read-only here: {holder} writes it");
                return Err(libc::EROFS);
            }
            _ => return Err(libc::EROFS),
        };
        let current = self.pool.catalog().volume(volume).map_err(|e| errno(&e))?;
        let vol = self.vols.get_mut(volume).ok_or(libc::EROFS)?;
        if current.root != vol.committed {
            // Its last commit has not reached this mount yet.
            tracing::info!("volume {volume} stays read-only here until its last commit is shown");
            return Err(libc::EROFS);
        }
        tracing::info!("this mount now writes volume {volume}");
        vol.writer = Some(claim);
        Ok(())
    }

    /// The volume an inode belongs to, if live.
    pub fn volume_of(&self, ino: u64) -> Option<Arc<str>> {
        match &self.table.get(ino)?.owner {
            Owner::Live { volume, .. } => Some(volume.clone()),
            _ => None,
        }
    }

    /// Whether `ino` is the root of a live volume.
    pub fn is_volume_root(&self, ino: u64) -> bool {
        self.volume_of(ino)
            .and_then(|v| self.vols.get(v.as_ref()).map(|vol| vol.root == ino))
            .unwrap_or(false)
    }

    // ---- tree reading -------------------------------------------------

    fn node(&mut self, id: &ObjectId) -> Result<Arc<TreeNode>, Error> {
        if let Some(n) = self.nodes.get(id) {
            return Ok(n.clone());
        }
        let n = Arc::new(load_node(self.pool.blobs(), id)?);
        if self.nodes.len() >= NODE_CACHE {
            self.nodes.clear();
        }
        self.nodes.insert(*id, n.clone());
        Ok(n)
    }

    /// One name in a directory tree, through the node cache.
    pub fn find(&mut self, tree: &ObjectId, name: &[u8]) -> Result<Option<Entry>, Error> {
        let mut id = *tree;
        for _ in 0..64 {
            let node = self.node(&id)?;
            match node.as_ref() {
                TreeNode::Leaf(entries) => {
                    return Ok(entries
                        .binary_search_by(|e| e.name.as_slice().cmp(name))
                        .ok()
                        .map(|i| entries[i].clone()))
                }
                TreeNode::Interior(children) => {
                    let i = children.partition_point(|c| c.first.as_slice() <= name);
                    if i == 0 {
                        return Ok(None);
                    }
                    id = children[i - 1].node;
                }
            }
        }
        Err(Error::corrupt(
            format!("tree node {tree}"),
            "directory tree deeper than 64 levels",
        ))
    }

    /// Every entry of a directory tree, through the node cache.
    pub fn entries(&mut self, tree: &ObjectId) -> Result<Vec<Entry>, Error> {
        let mut out = Vec::new();
        let mut stack = vec![*tree];
        while let Some(id) = stack.pop() {
            match self.node(&id)?.as_ref() {
                TreeNode::Leaf(entries) => out.extend(entries.iter().cloned()),
                TreeNode::Interior(children) => stack.extend(children.iter().rev().map(|c| c.node)),
            }
        }
        Ok(out)
    }

    fn base_has(&mut self, dir: u64, name: &[u8]) -> Result<bool, Errno> {
        let base = self.inode(dir)?.dir().and_then(|d| d.base);
        match base {
            Some(b) => Ok(self.find(&b.tree, name).map_err(|e| errno(&e))?.is_some()),
            None => Ok(false),
        }
    }

    // ---- names --------------------------------------------------------

    /// Loads a live volume (or returns its root) by name.
    fn load_volume(&mut self, name: &str) -> Result<u64, Errno> {
        if let Some(v) = self.vols.get(name) {
            return Ok(v.root);
        }
        let row = self.pool.catalog().volume(name).map_err(|e| errno(&e))?;
        let mut root = self.volume_root_inode(&row, 1);
        root.parents = vec![fuser::FUSE_ROOT_ID];
        let writer = match self.claim(name).map_err(|e| errno(&e))? {
            Ok(claim) => claim,
            Err(holder) => {
                tracing::warn!("volume {name} is read-only in this mount: {holder} writes it");
                None
            }
        };
        let ino = self.table.add(root);
        self.vols.insert(
            name.to_string(),
            Vol {
                root: ino,
                generation: 1,
                committed: row.root,
                bytes: row.bytes,
                quota: row.quota,
                writer,
            },
        );
        Ok(ino)
    }

    /// The inode of `name` in directory `parent`.
    pub fn child(&mut self, parent: u64, name: &[u8]) -> Result<u64, Errno> {
        if name.len() > NAME_MAX {
            return Err(libc::ENAMETOOLONG);
        }
        let (kind_is, owner) = {
            let p = self.inode(parent)?;
            let k = match &p.kind {
                Kind::PoolRoot => 0,
                Kind::SnapshotDir { .. } => 1,
                Kind::Dir(_) => 2,
                _ => return Err(libc::ENOTDIR),
            };
            (k, p.owner.clone())
        };
        match kind_is {
            0 => {
                let name = std::str::from_utf8(name).map_err(|_| libc::ENOENT)?;
                if shale_core::names::check_name(name).is_err() {
                    return Err(libc::ENOENT);
                }
                self.load_volume(name)
            }
            1 => {
                let Kind::SnapshotDir { volume } = &self.inode(parent)?.kind else {
                    return Err(libc::ENOENT);
                };
                let volume = volume.clone();
                let name = std::str::from_utf8(name).map_err(|_| libc::ENOENT)?;
                let key = (volume.clone(), Some(name.to_string()));
                if let Some(&ino) = self.specials.get(&key) {
                    if self.pool.catalog().snapshot(&volume, name).is_ok() {
                        return Ok(ino);
                    }
                    self.specials.remove(&key);
                    return Err(libc::ENOENT);
                }
                let snap = self
                    .pool
                    .catalog()
                    .snapshot(&volume, name)
                    .map_err(|e| errno(&e))?;
                let mut inode = snapshot_root(&snap);
                inode.parents = vec![parent];
                let ino = self.table.add(inode);
                self.specials.insert(key, ino);
                Ok(ino)
            }
            _ => {
                if name == SNAPSHOT_DIR && self.is_volume_root(parent) {
                    let volume = self.volume_of(parent).unwrap_or_else(|| Arc::from(""));
                    let key = (volume.to_string(), None);
                    if let Some(&ino) = self.specials.get(&key) {
                        return Ok(ino);
                    }
                    let mut inode = special(
                        Kind::SnapshotDir {
                            volume: volume.to_string(),
                        },
                        self.mounted_at,
                        Owner::None,
                    );
                    inode.parents = vec![parent];
                    let ino = self.table.add(inode);
                    self.specials.insert(key, ino);
                    return Ok(ino);
                }
                let dir = self.inode(parent)?.dir().ok_or(libc::ENOTDIR)?;
                match dir.children.get(name) {
                    Some(Slot::Ino(ino)) => return Ok(*ino),
                    Some(Slot::Whiteout) => return Err(libc::ENOENT),
                    None => {}
                }
                let base = dir.base.ok_or(libc::ENOENT)?;
                let entry = self
                    .find(&base.tree, name)
                    .map_err(|e| errno(&e))?
                    .ok_or(libc::ENOENT)?;
                let ino = self.table.add(Inode::from_entry(&entry, parent, owner));
                if let Some(d) = self.inode_mut(parent)?.dir_mut() {
                    d.children.insert(name.to_vec(), Slot::Ino(ino));
                }
                Ok(ino)
            }
        }
    }

    /// A directory's listing: `.`, `..` and every name with its inode (a
    /// name the mount has not looked up gets a placeholder number, which
    /// `readdir` allows).
    pub fn list(&mut self, ino: u64) -> Result<Vec<(u64, FileType, Vec<u8>)>, Errno> {
        let parent = self.inode(ino)?.parents.first().copied().unwrap_or(ino);
        let mut out = vec![
            (ino, FileType::Directory, b".".to_vec()),
            (parent, FileType::Directory, b"..".to_vec()),
        ];
        let kind = match &self.inode(ino)?.kind {
            Kind::PoolRoot => 0,
            Kind::SnapshotDir { volume } => {
                let volume = volume.clone();
                let snaps = self
                    .pool
                    .catalog()
                    .snapshots(Some(&volume))
                    .map_err(|e| errno(&e))?;
                for s in snaps {
                    let child = self.child(ino, s.name.as_bytes())?;
                    out.push((child, FileType::Directory, s.name.into_bytes()));
                }
                return Ok(out);
            }
            Kind::Dir(_) => 2,
            _ => return Err(libc::ENOTDIR),
        };
        if kind == 0 {
            for v in self.pool.catalog().volumes().map_err(|e| errno(&e))? {
                let child = self.load_volume(&v.name)?;
                out.push((child, FileType::Directory, v.name.into_bytes()));
            }
            return Ok(out);
        }
        if self.show_snapshot_dir && self.is_volume_root(ino) {
            let child = self.child(ino, SNAPSHOT_DIR)?;
            out.push((child, FileType::Directory, SNAPSHOT_DIR.to_vec()));
        }
        let (base, children) = {
            let d = self.inode(ino)?.dir().ok_or(libc::ENOTDIR)?;
            (d.base, d.children.clone())
        };
        let base_entries = match base {
            Some(b) => self.entries(&b.tree).map_err(|e| errno(&e))?,
            None => Vec::new(),
        };
        let mut kids = children.into_iter().peekable();
        let mut base_iter = base_entries.into_iter().peekable();
        loop {
            let take_kid = match (kids.peek(), base_iter.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((k, _)), Some(b)) => k.as_slice() <= b.name.as_slice(),
            };
            if take_kid {
                let Some((name, slot)) = kids.next() else {
                    break;
                };
                if base_iter.peek().is_some_and(|b| b.name == name) {
                    base_iter.next();
                }
                if let Slot::Ino(c) = slot {
                    if let Ok(i) = self.inode(c) {
                        out.push((c, file_type(i), name));
                    }
                }
            } else if let Some(e) = base_iter.next() {
                let kind = match e.content {
                    shale_core::tree::Content::File { .. } => FileType::RegularFile,
                    shale_core::tree::Content::Dir(_) => FileType::Directory,
                    shale_core::tree::Content::Symlink(_) => FileType::Symlink,
                    shale_core::tree::Content::Special(s) => special_type(s.kind),
                };
                out.push((placeholder_ino(ino, &e.name), kind, e.name));
            }
        }
        Ok(out)
    }

    /// Number of subdirectories of a directory inode (for `nlink`).
    pub fn subdirs(&mut self, ino: u64) -> Result<u64, Errno> {
        if let Some(n) = self.inode(ino)?.dir().and_then(|d| d.subdirs) {
            return Ok(n);
        }
        let n = self
            .list(ino)?
            .iter()
            .skip(2)
            .filter(|(_, k, n)| *k == FileType::Directory && n.as_slice() != SNAPSHOT_DIR)
            .count() as u64;
        if let Some(d) = self.inode_mut(ino)?.dir_mut() {
            d.subdirs = Some(n);
        }
        Ok(n)
    }

    /// Whether a directory has no entries.
    pub fn is_empty_dir(&mut self, ino: u64) -> Result<bool, Errno> {
        let (base, children) = {
            let d = self.inode(ino)?.dir().ok_or(libc::ENOTDIR)?;
            (d.base, d.children.clone())
        };
        if children.values().any(|s| matches!(s, Slot::Ino(_))) {
            return Ok(false);
        }
        let Some(base) = base else {
            return Ok(true);
        };
        let mut cursor = shale_core::tree::DirCursor::new(self.pool.blobs(), Some(&base.tree))
            .map_err(|e| errno(&e))?;
        while let Some(e) = cursor.next_entry().map_err(|e| errno(&e))? {
            if !children.contains_key(&e.name) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    // ---- changes ------------------------------------------------------

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
    fn names_changed(&mut self, dir: u64) {
        let now = now_ns();
        if let Some(d) = self.table.get_mut(dir) {
            d.meta.mtime_ns = now;
            d.meta.ctime_ns = now;
        }
        self.touch_dir(dir);
    }

    fn check_new_name(&mut self, parent: u64, name: &[u8]) -> Result<(), Errno> {
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
        let now = now_ns();
        let inode = Inode {
            kind,
            meta: Meta {
                mode,
                uid,
                gid,
                mtime_ns: now,
                ctime_ns: now,
                atime_ns: now,
            },
            xattrs: Vec::new(),
            parents: vec![parent],
            owner,
            dirty: false,
            lookups: 0,
            opens: 0,
            written_unheld: false,
        };
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
    fn drop_name(&mut self, parent: u64, name: &[u8]) -> Result<(), Errno> {
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
    fn unlink_inode(&mut self, parent: u64, name: &[u8], child: u64) -> Result<(), Errno> {
        self.drop_name(parent, name)?;
        let volume = self.volume_of(parent);
        let now = now_ns();
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
        let now = now_ns();
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
        let dst = match self.child(new_parent, new_name) {
            Ok(d) => Some(d),
            Err(libc::ENOENT) => None,
            Err(e) => return Err(e),
        };
        let src_dir = self.inode(src)?.is_dir();
        if src_dir {
            // A directory cannot move below itself.
            let mut at = new_parent;
            for _ in 0..4096 {
                if at == src {
                    return Err(libc::EINVAL);
                }
                match self.inode(at)?.parents.first() {
                    Some(&p) if p != at && !self.is_volume_root(at) => at = p,
                    _ => break,
                }
            }
        }
        const EXCHANGE: u32 = libc::RENAME_EXCHANGE;
        const NOREPLACE: u32 = libc::RENAME_NOREPLACE;
        if flags & EXCHANGE != 0 {
            let dst = dst.ok_or(libc::ENOENT)?;
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
            return Ok(());
        }
        if let Some(dst) = dst {
            if dst == src {
                return Ok(());
            }
            if flags & NOREPLACE != 0 {
                return Err(libc::EEXIST);
            }
            let dst_dir = self.inode(dst)?.is_dir();
            match (src_dir, dst_dir) {
                (true, false) => return Err(libc::ENOTDIR),
                (false, true) => return Err(libc::EISDIR),
                (true, true) => {
                    if !matches!(self.inode(dst)?.kind, Kind::Dir(_)) {
                        return Err(libc::EBUSY);
                    }
                    if !self.is_empty_dir(dst)? {
                        return Err(libc::ENOTEMPTY);
                    }
                }
                (false, false) => {}
            }
            self.unlink_inode(new_parent, new_name, dst)?;
        }
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
        let now = now_ns();
        let s = self.inode_mut(src)?;
        if let Some(k) = s.parents.iter().position(|p| *p == parent) {
            s.parents[k] = new_parent;
        }
        s.meta.ctime_ns = now;
        self.names_changed(parent);
        self.names_changed(new_parent);
        Ok(())
    }

    /// Accounts for a file in memory growing or shrinking.
    pub fn memory_changed(&mut self, old: usize, new: usize) {
        self.memory_bytes = (self.memory_bytes + new as u64).saturating_sub(old as u64);
        if self.memory_bytes >= self.memory_budget / 4 && !self.commit_asked {
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
                    let mut up =
                        Upper::create(path).map_err(|e| io("creating an upper file", e))?;
                    if keep {
                        up.write(0, m).map_err(|e| io("writing an upper file", e))?;
                    }
                    let held = m.len();
                    self.memory_changed(held, 0);
                    Data::Upper(up)
                }
                Kind::File(Data::Chunks { chunks, size }) => if keep {
                    Upper::copy_up(path, &pool, &chunks.refs, *size)
                } else {
                    Upper::create(path)
                }
                .map(Data::Upper)
                .map_err(|e| io("copying a file up for writing", e))?,
                _ => return Ok(()),
            }
        };
        if let Kind::File(data) = &mut self.inode_mut(ino)?.kind {
            *data = new;
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
        let now = now_ns();
        inode.meta.mtime_ns = now;
        inode.meta.ctime_ns = now;
        if let Some((before, after)) = grown {
            self.memory_changed(before, after);
        }
        self.touch(ino);
        Ok(data.len() as u32)
    }

    /// What a write to `ino` does to its privileges when the kernel leaves
    /// that to the mount (a direct write): the `security.capability`
    /// attribute goes, and where the writer may not keep them
    /// (`kill_suidgid`: it lacks `CAP_FSETID`), the setuid bit and a setgid
    /// bit that marks a group-executable file, as `should_remove_suid` in
    /// the kernel does. Returns whether the mode changed, so that the
    /// kernel's copy of it can be dropped.
    pub fn drop_privileges(&mut self, ino: u64, kill_suidgid: bool) -> Result<bool, Errno> {
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
        Ok(mode_changed)
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
        if ino == fuser::FUSE_ROOT_ID || i.lookups > 0 || i.opens > 0 {
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

/// The inode of a snapshot's root directory.
pub fn snapshot_root(snap: &shale_core::catalog::SnapshotRow) -> Inode {
    let mut inode = special(
        Kind::Dir(Dir {
            base: Some(DirRef {
                tree: snap.root,
                bytes: snap.bytes,
                files: snap.files,
                entries: 0,
            }),
            ..Dir::default()
        }),
        snap.created,
        Owner::Snapshot,
    );
    inode.meta.mode = 0o555;
    inode
}

/// The FUSE type of an inode.
pub fn file_type(i: &Inode) -> FileType {
    match &i.kind {
        Kind::File(_) => FileType::RegularFile,
        Kind::Symlink(_) => FileType::Symlink,
        Kind::Special(s) => special_type(s.kind),
        _ => FileType::Directory,
    }
}

/// The FUSE type of a special file.
pub fn special_type(kind: SpecialKind) -> FileType {
    match kind {
        SpecialKind::Fifo => FileType::NamedPipe,
        SpecialKind::Socket => FileType::Socket,
        SpecialKind::CharDevice => FileType::CharDevice,
        SpecialKind::BlockDevice => FileType::BlockDevice,
    }
}

/// A number for a name listed but not looked up, outside the range of real
/// inode numbers.
fn placeholder_ino(dir: u64, name: &[u8]) -> u64 {
    let mut key = dir.to_le_bytes().to_vec();
    key.extend_from_slice(name);
    let id = ObjectId::of(&key);
    let mut w = [0u8; 8];
    w.copy_from_slice(&id.0[..8]);
    u64::from_le_bytes(w) | (1 << 63)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The state of a read-write mount of volume `v` of a new pool in `dir`.
    pub(crate) fn one_volume(dir: &Path) -> State {
        let pool = Pool::init(&dir.join("pool")).unwrap();
        pool.create_volume("v", None).unwrap();
        let target = Target::Volume {
            volume: "v".into(),
            snapshot: None,
        };
        let upper = dir.join("upper");
        std::fs::create_dir_all(&upper).unwrap();
        State::new(pool, target, false, false, upper, dir).unwrap()
    }

    #[test]
    fn a_direct_write_drops_privileges_as_the_kernel_would() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = one_volume(dir.path());
        let root = fuser::FUSE_ROOT_ID;
        let file = |st: &mut State, name: &[u8], mode: u32| {
            let kind = Kind::File(Data::Memory(Arc::new(Vec::new())));
            let ino = st.add(root, name, kind, mode, 0, 0).unwrap();
            let i = st.table.get_mut(ino).unwrap();
            i.xattrs = vec![
                (CAPABILITY_XATTR.to_vec(), vec![1]),
                (b"user.note".to_vec(), vec![2]),
            ];
            ino
        };
        let mode = |st: &State, ino: u64| st.inode(ino).unwrap().meta.mode;
        // A writer with CAP_FSETID keeps the bits; capabilities go anyway.
        let a = file(&mut st, b"a", 0o6755);
        assert!(!st.drop_privileges(a, false).unwrap());
        assert_eq!(mode(&st, a), 0o6755);
        let names: Vec<_> = st
            .inode(a)
            .unwrap()
            .xattrs
            .iter()
            .map(|x| x.0.clone())
            .collect();
        assert_eq!(names, vec![b"user.note".to_vec()]);
        // Without it: setuid goes, setgid too on a group-executable file,
        assert!(st.drop_privileges(a, true).unwrap());
        assert_eq!(mode(&st, a), 0o0755);
        // but not a setgid bit without group execution (a locking mark).
        let b = file(&mut st, b"b", 0o6744);
        assert!(st.drop_privileges(b, true).unwrap());
        assert_eq!(mode(&st, b), 0o2744);
        assert!(!st.drop_privileges(b, true).unwrap());
    }
}
