//! The mount's state and the file operations on it, independent of FUSE's
//! calling conventions: each returns a result or an errno.

mod attrs;
mod data;
mod handles;
mod logged;
use data::{memory_budget, upper_fd_cap};
#[cfg(test)]
pub(crate) use logged::LOG_FILE_MAX;

pub use attrs::SetAttr;
mod names;
mod namespace;
mod preload;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fuser::FileType;
use shale_core::catalog::{now_ns, RootMeta};
use shale_core::tree::{load_node, ChunkRef, DirRef, Entry, Node as TreeNode, SpecialKind};
use shale_core::{Error, ObjectId, Pool};

use crate::inodes::{Data, Dir, Inode, Kind, Meta, Owner, Slot, Table};
use crate::upper::{OpenUppers, Upper};

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

/// An errno.
pub type Errno = i32;

/// A directory's listing: `.`, `..`, then each name with its inode number
/// and type.
pub type Listing = Vec<(u64, FileType, Vec<u8>)>;

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
    /// Its intent log, while this mount writes it.
    pub journal: Option<crate::journal::Journal>,
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
    /// Counted in its inode's `opens` (see [`State::kernel_opens_alone`]).
    pub counted: bool,
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
    /// The kernel opens files without asking this mount (an `OPEN` was
    /// answered `ENOSYS`); see [`State::kernel_opens_alone`].
    pub opens_alone: bool,
    /// Files whose local copy a commit kept because they were being written
    /// through a handle this mount did not give out, with the chunks that
    /// commit stored for them.
    pub lingering: HashMap<u64, Vec<ChunkRef>>,
    /// Files that were given upper files (some may have none now).
    pub uppers: HashSet<u64>,
    /// The upper-file descriptors open now.
    pub open_uppers: OpenUppers,
    /// Most of them kept open ([`upper_fd_cap`]), and the count past which
    /// the next look for some to let go of is made.
    upper_fds: (usize, usize),
    /// Open directories' listings, made at their first read.
    pub listings: HashMap<u64, Option<Listing>>,
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
    /// The time the change being applied uses (see [`State::logged`]).
    clock: Option<i64>,
    /// Names the kernel was told are absent from live directories, for
    /// some time (see [`State::remember_absent`]).
    absent: HashSet<(u64, Vec<u8>)>,
}

/// Most absent names told to the kernel between two reloads of volumes.
const ABSENT_CAP: usize = 16_384;

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
    Inode::new(kind, dir_meta(mtime_ns, 0o755), Vec::new(), owner)
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
        let pool = Arc::new(pool);
        State::with_pool(
            pool,
            target,
            read_only,
            show_snapshot_dir,
            upper_dir,
            mountpoint,
        )
    }

    /// [`State::new`] of a pool already shared.
    pub fn with_pool(
        pool: Arc<Pool>,
        target: Target,
        read_only: bool,
        show_snapshot_dir: bool,
        upper_dir: PathBuf,
        mountpoint: &Path,
    ) -> shale_core::Result<State> {
        let mounted_at = now_ns();
        let mut st = State {
            holder: format!("the shale mount at {}", mountpoint.display()),
            pool,
            table: Table::default(),
            vols: HashMap::new(),
            specials: HashMap::new(),
            read_only,
            show_snapshot_dir,
            upper_dir,
            mounted_at,
            handles: HashMap::new(),
            opens_alone: false,
            lingering: HashMap::new(),
            uppers: HashSet::new(),
            open_uppers: OpenUppers::default(),
            upper_fds: (upper_fd_cap(), upper_fd_cap()),
            listings: HashMap::new(),
            next_fh: 1,
            nodes: HashMap::new(),
            memory_bytes: 0,
            memory_budget: memory_budget(),
            commit_soon: None,
            commit_asked: false,
            clock: None,
            absent: HashSet::new(),
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
                let writer = match st.claim_unless_logged(&volume)? {
                    Ok(claim) => claim,
                    Err(holder) => {
                        return Err(Error::InvalidArgument(format!(
                            "volume '{volume}' is mounted read-write by {holder}: \
                             mount it --read-only, or unmount that first"
                        )))
                    }
                };
                let journal = writer
                    .is_some()
                    .then(|| st.new_journal(&volume, &row, fuser::INodeNo::ROOT.0));
                st.vols.insert(
                    volume,
                    Vol {
                        root: fuser::INodeNo::ROOT.0,
                        generation: 1,
                        committed: row.root,
                        bytes: row.bytes,
                        quota: row.quota,
                        writer,
                        journal,
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

    /// Records that the kernel will be told `name` is not in the live
    /// directory `dir`, so that a reload of the volume (a restore, an
    /// import, another mount's commit) can make it forget that; false when
    /// too many are recorded already (then the kernel is not told to keep it).
    pub fn remember_absent(&mut self, dir: u64, name: &[u8]) -> bool {
        let key = (dir, name.to_vec());
        if self.absent.len() >= ABSENT_CAP && !self.absent.contains(&key) {
            return false;
        }
        self.absent.insert(key);
        true
    }

    /// The absent names told to the kernel so far, for it to forget.
    pub fn take_absent(&mut self) -> Vec<(u64, Vec<u8>)> {
        self.absent.drain().collect()
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
        let claim = match self.claim_unless_logged(volume) {
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
        let root = vol.root;
        let journal = self.new_journal(volume, &current, root);
        if let Some(vol) = self.vols.get_mut(volume) {
            vol.journal = Some(journal);
        }
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
        let root = fuser::INodeNo::ROOT.0;
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
        assert!(!st.drop_privileges(a, false).unwrap().mode);
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
        assert!(st.drop_privileges(a, true).unwrap().mode);
        assert_eq!(mode(&st, a), 0o0755);
        // but not a setgid bit without group execution (a locking mark).
        let b = file(&mut st, b"b", 0o6744);
        assert!(st.drop_privileges(b, true).unwrap().mode);
        assert_eq!(mode(&st, b), 0o2744);
        let again = st.drop_privileges(b, true).unwrap();
        assert!(!again.any && !again.mode);
    }
}
