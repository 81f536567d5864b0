//! The inode table: every file, directory and special directory the kernel
//! knows by number, with what the mount has changed in it.
//!
//! A directory is its last committed tree (`base`) plus an overlay of the
//! names looked up or changed since (`children`): a name in the overlay is
//! an inode or a whiteout; a name not in it is as in the base tree. A file
//! is its chunks, or an upper file in the pool's `upper/` directory once it
//! has been written.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use shale_core::tree::{ChunkRef, Content, DirRef, Entry, Special};
use shale_core::ObjectId;

use crate::upper::Upper;

/// Owner, permissions and times.
#[derive(Clone, Debug)]
pub struct Meta {
    /// Permission bits with setuid, setgid and sticky (`mode & 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i64,
    /// Change time (not stored in trees; the mtime after a remount).
    pub ctime_ns: i64,
    /// Access time (not stored in trees; updated only by `utimens`).
    pub atime_ns: i64,
}

impl Meta {
    /// The metadata of a tree entry.
    pub fn of(e: &Entry) -> Meta {
        Meta {
            mode: e.mode & 0o7777,
            uid: e.uid,
            gid: e.gid,
            mtime_ns: e.mtime_ns,
            ctime_ns: e.mtime_ns,
            atime_ns: e.mtime_ns,
        }
    }
}

/// A name in a directory's overlay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// The name is this inode.
    Ino(u64),
    /// The name was removed (it may still be in the base tree).
    Whiteout,
}

/// A directory's state.
#[derive(Debug, Default)]
pub struct Dir {
    /// The committed tree; `None` for a directory made since.
    pub base: Option<DirRef>,
    /// Names looked up or changed since the base.
    pub children: BTreeMap<Vec<u8>, Slot>,
    /// Subdirectories, once counted (for `nlink`).
    pub subdirs: Option<u64>,
}

/// A file's chunks, with where each starts, so that the chunk holding a
/// byte is found by binary search (a 100 GB file has ~800,000 chunks).
#[derive(Debug, Default)]
pub struct ChunkList {
    /// The chunks, in file order.
    pub refs: Vec<ChunkRef>,
    starts: Vec<u64>,
}

impl ChunkList {
    /// The list of `refs`.
    pub fn new(refs: Vec<ChunkRef>) -> ChunkList {
        let mut at = 0u64;
        let starts = refs
            .iter()
            .map(|c| {
                let s = at;
                at += c.len as u64;
                s
            })
            .collect();
        ChunkList { refs, starts }
    }

    /// Index of the chunk holding byte `offset` (or the last one).
    pub fn find(&self, offset: u64) -> usize {
        self.starts
            .partition_point(|s| *s <= offset)
            .saturating_sub(1)
    }

    /// Where the last chunk ends: the bytes the chunks hold.
    pub fn end(&self) -> u64 {
        match (self.starts.last(), self.refs.last()) {
            (Some(s), Some(c)) => s + c.len as u64,
            _ => 0,
        }
    }

    /// Where chunk `i` starts, or for the index past the last, where the
    /// chunks end: chunk `i` is `boundary(i)..boundary(i + 1)`.
    pub fn boundary(&self, i: usize) -> u64 {
        self.starts.get(i).copied().unwrap_or_else(|| self.end())
    }

    /// The chunk that starts at `offset`, if one does.
    pub fn starting_at(&self, offset: u64) -> Option<usize> {
        self.starts.binary_search(&offset).ok()
    }

    /// The ids of the chunks holding bytes `start..end`, and of one more
    /// on each side: what a chunk cut there after an edit was most likely
    /// made from (the bases of its delta).
    pub fn near(&self, start: u64, end: u64) -> Vec<ObjectId> {
        if self.refs.is_empty() {
            return Vec::new();
        }
        let first = self.find(start).saturating_sub(1);
        let last = (self.find(end.saturating_sub(1)) + 1).min(self.refs.len() - 1);
        self.refs[first..=last].iter().map(|c| c.id).collect()
    }

    /// Where chunk `i` starts.
    pub fn start(&self, i: usize) -> u64 {
        self.starts.get(i).copied().unwrap_or(0)
    }
}

/// A regular file's data.
#[derive(Debug)]
pub enum Data {
    /// Unchanged since the last commit: its chunks.
    Chunks {
        /// Length in bytes.
        size: u64,
        /// Chunks in file order.
        chunks: Arc<ChunkList>,
    },
    /// Written through the mount, small: in memory.
    Memory(Arc<Vec<u8>>),
    /// Written through the mount: a local file.
    Upper(Upper),
}

impl Data {
    /// Length in bytes.
    pub fn size(&self) -> u64 {
        match self {
            Data::Chunks { size, .. } => *size,
            Data::Memory(m) => m.len() as u64,
            Data::Upper(u) => u.size,
        }
    }
}

/// What an inode is.
#[derive(Debug)]
pub enum Kind {
    /// The pool root of a pool mount: one directory per volume.
    PoolRoot,
    /// A volume's `.snapshot` directory.
    SnapshotDir {
        /// Its volume.
        volume: String,
    },
    /// A directory.
    Dir(Dir),
    /// A regular file.
    File(Data),
    /// A symbolic link and its target.
    Symlink(Vec<u8>),
    /// A FIFO, socket or device node (the kernel serves its opens).
    Special(Special),
}

/// Where an inode belongs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// The pool root or a `.snapshot` directory: no volume's tree.
    None,
    /// Inside a snapshot: never changes.
    Snapshot,
    /// Inside a live volume, as of one load of it (`generation`); after a
    /// restore or import reloads the volume, older inodes are detached.
    Live {
        /// Volume name.
        volume: Arc<str>,
        /// The volume's load this inode belongs to.
        generation: u64,
    },
}

/// One inode.
#[derive(Debug)]
pub struct Inode {
    /// What it is.
    pub kind: Kind,
    /// Owner, mode, times.
    pub meta: Meta,
    /// Extended attributes, sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Directories holding a name for it (one per hard link; a directory's
    /// parent; a volume or pool root lists none).
    pub parents: Vec<u64>,
    /// Where it belongs.
    pub owner: Owner,
    /// Changed since the last commit (for a directory: it or anything below).
    pub dirty: bool,
    /// References the kernel holds (lookups not yet forgotten).
    pub lookups: u64,
    /// Open file handles this mount gave out (see `ShaleFs::open`: where
    /// the kernel opens files without asking, only files created here
    /// count).
    pub opens: u32,
    /// Written since the last commit through a handle this mount did not
    /// give out: the kernel may still hold the file open for writing, so
    /// the commit keeps its local copy (see `State::settle_lingering`).
    pub written_unheld: bool,
}

impl Inode {
    /// A new inode of `kind` with `meta`, under `parents`, not looked up,
    /// opened or changed yet.
    pub fn new(kind: Kind, meta: Meta, parents: Vec<u64>, owner: Owner) -> Inode {
        Inode {
            kind,
            meta,
            xattrs: Vec::new(),
            parents,
            owner,
            dirty: false,
            lookups: 0,
            opens: 0,
            written_unheld: false,
        }
    }

    /// An inode for a tree entry.
    pub fn from_entry(e: &Entry, parent: u64, owner: Owner) -> Inode {
        let kind = match &e.content {
            Content::File { size, chunks } => Kind::File(Data::Chunks {
                size: *size,
                chunks: Arc::new(ChunkList::new(chunks.clone())),
            }),
            Content::Dir(d) => Kind::Dir(Dir {
                base: Some(*d),
                ..Dir::default()
            }),
            Content::Symlink(t) => Kind::Symlink(t.clone()),
            Content::Special(s) => Kind::Special(*s),
        };
        Inode {
            xattrs: e.xattrs.clone(),
            ..Inode::new(kind, Meta::of(e), vec![parent], owner)
        }
    }

    /// The directory state, if a directory of a tree.
    pub fn dir(&self) -> Option<&Dir> {
        match &self.kind {
            Kind::Dir(d) => Some(d),
            _ => None,
        }
    }

    /// The directory state, mutable.
    pub fn dir_mut(&mut self) -> Option<&mut Dir> {
        match &mut self.kind {
            Kind::Dir(d) => Some(d),
            _ => None,
        }
    }

    /// Whether it is a directory of any kind.
    pub fn is_dir(&self) -> bool {
        matches!(
            self.kind,
            Kind::Dir(_) | Kind::PoolRoot | Kind::SnapshotDir { .. }
        )
    }
}

/// All inodes, by number. Numbers are never reused during a mount.
#[derive(Default)]
pub struct Table {
    inodes: HashMap<u64, Inode>,
    next: u64,
}

impl Table {
    /// A table whose root (inode 1) is `root`.
    pub fn new(root: Inode) -> Self {
        let mut inodes = HashMap::new();
        inodes.insert(fuser::INodeNo::ROOT.0, root);
        Table {
            inodes,
            next: fuser::INodeNo::ROOT.0 + 1,
        }
    }

    /// Adds an inode and returns its number.
    pub fn add(&mut self, inode: Inode) -> u64 {
        let ino = self.next;
        self.next += 1;
        self.inodes.insert(ino, inode);
        ino
    }

    /// The inode numbered `ino`.
    pub fn get(&self, ino: u64) -> Option<&Inode> {
        self.inodes.get(&ino)
    }

    /// The inode numbered `ino`, mutable.
    pub fn get_mut(&mut self, ino: u64) -> Option<&mut Inode> {
        self.inodes.get_mut(&ino)
    }

    /// Drops an inode from the table.
    pub fn remove(&mut self, ino: u64) -> Option<Inode> {
        self.inodes.remove(&ino)
    }

    /// Every inode, with its number.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Inode)> {
        self.inodes.iter().map(|(ino, i)| (*ino, i))
    }

    /// Inodes in the table.
    pub fn len(&self) -> usize {
        self.inodes.len()
    }

    /// Every inode, mutable.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&u64, &mut Inode)> {
        self.inodes.iter_mut()
    }
}
