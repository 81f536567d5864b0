//! The `fuser::Filesystem` implementation.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    FileAttr, FileType, Filesystem, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyOpen,
    ReplyStatfs, Request,
};
use shale_core::tree::{encode, load_node, Content, Entry, Node as TreeNode};
use shale_core::{Error, ObjectId, Pool};

use crate::inodes::{Inodes, Node};

/// How long the kernel may cache names and attributes of a live volume:
/// short, because another process can restore or re-import it.
const TTL: Duration = Duration::from_secs(1);
/// The same inside a snapshot, which never changes.
const FROZEN_TTL: Duration = Duration::from_secs(3600);
/// The most recently read chunk, shared by the reader threads.
type ChunkCache = Mutex<Option<(ObjectId, Arc<Vec<u8>>)>>;

/// Threads serving file reads.
const READERS: usize = 8;
/// Decoded tree nodes kept in memory (about 10 KB each at most).
const NODE_CACHE: usize = 20_000;
/// The hidden per-volume snapshot directory.
const SNAPSHOT_DIR: &[u8] = b".snapshot";

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

/// A read-only view of a pool.
pub struct ShaleFs {
    pool: Arc<Pool>,
    /// Threads that fetch file data, so that slow (cold) reads of several
    /// files overlap instead of queueing behind the one session thread.
    readers: rayon::ThreadPool,
    inodes: Inodes,
    show_snapshot_dir: bool,
    listings: HashMap<u64, Vec<(u64, FileType, Vec<u8>)>>,
    next_fh: u64,
    /// The last chunk read, for the run of kernel reads that hit it.
    last_chunk: Arc<ChunkCache>,
    /// Decoded tree nodes (immutable, so never stale).
    nodes: HashMap<ObjectId, Arc<TreeNode>>,
    mounted_at: SystemTime,
}

fn errno(e: &Error) -> i32 {
    match e {
        Error::VolumeNotFound(_) | Error::SnapshotNotFound { .. } => libc::ENOENT,
        _ => libc::EIO,
    }
}

fn time_of(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

/// Whether everything below this node is inside a snapshot.
fn is_frozen(node: &Node) -> bool {
    match node {
        Node::VolumeRoot { snapshot, .. } => snapshot.is_some(),
        Node::Entry { frozen, .. } => *frozen,
        _ => false,
    }
}

/// Reads `size` bytes at `offset` of a file from its chunks.
fn read_range(
    pool: &Pool,
    cache: &ChunkCache,
    chunks: &[shale_core::tree::ChunkRef],
    file_size: u64,
    offset: u64,
    size: u32,
) -> Result<Vec<u8>, i32> {
    let end = (offset + size as u64).min(file_size);
    let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
    let mut pos = 0u64;
    for c in chunks {
        let (c_start, c_end) = (pos, pos + c.len as u64);
        pos = c_end;
        if c_end <= offset {
            continue;
        }
        if c_start >= end {
            break;
        }
        let cached = cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|(id, _)| *id == c.id)
            .map(|(_, d)| d.clone());
        let data = match cached {
            Some(d) => d,
            None => {
                let d = Arc::new(pool.blobs().get(&c.id).map_err(|e| {
                    tracing::error!("read of chunk {}: {e}", c.id);
                    libc::EIO
                })?);
                *cache.lock().unwrap_or_else(|p| p.into_inner()) = Some((c.id, d.clone()));
                d
            }
        };
        let from = offset.saturating_sub(c_start) as usize;
        let to = (end.min(c_end) - c_start) as usize;
        out.extend_from_slice(&data[from..to]);
    }
    Ok(out)
}

fn version_of(e: &Entry) -> ObjectId {
    ObjectId::of(&encode(&TreeNode::Leaf(vec![e.clone()])))
}

impl ShaleFs {
    /// A view of `target` in `pool`. Checks that the target exists.
    pub fn new(pool: Pool, target: Target, show_snapshot_dir: bool) -> shale_core::Result<Self> {
        let root = match target {
            Target::Pool => Node::PoolRoot,
            Target::Volume { volume, snapshot } => {
                match &snapshot {
                    Some(s) => pool.catalog().snapshot(&volume, s).map(|_| ())?,
                    None => pool.catalog().volume(&volume).map(|_| ())?,
                }
                Node::VolumeRoot { volume, snapshot }
            }
        };
        let readers = rayon::ThreadPoolBuilder::new()
            .num_threads(READERS)
            .thread_name(|i| format!("shale-read-{i}"))
            .build()
            .map_err(|e| Error::InvalidArgument(format!("cannot start reader threads: {e}")))?;
        Ok(ShaleFs {
            pool: Arc::new(pool),
            readers,
            inodes: Inodes::new(root),
            show_snapshot_dir,
            listings: HashMap::new(),
            next_fh: 1,
            last_chunk: Arc::new(Mutex::new(None)),
            nodes: HashMap::new(),
            mounted_at: SystemTime::now(),
        })
    }

    fn ttl(&self, ino: u64) -> Duration {
        match self.inodes.get(ino) {
            Some(n) if is_frozen(n) => FROZEN_TTL,
            _ => TTL,
        }
    }

    fn dir_attr(&self, ino: u64, mtime: SystemTime) -> FileAttr {
        FileAttr {
            ino,
            size: 4096,
            blocks: 8,
            atime: mtime,
            mtime,
            ctime: mtime,
            crtime: mtime,
            kind: FileType::Directory,
            perm: 0o755,
            nlink: 2,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    fn attr(&self, ino: u64) -> Result<FileAttr, i32> {
        let node = self.inodes.get(ino).ok_or(libc::ENOENT)?;
        Ok(match node {
            Node::PoolRoot | Node::SnapshotDir { .. } => self.dir_attr(ino, self.mounted_at),
            Node::VolumeRoot { volume, snapshot } => {
                let t = match snapshot {
                    Some(s) => self.pool.catalog().snapshot(volume, s).map(|s| s.created),
                    None => self.pool.catalog().volume(volume).map(|v| v.updated),
                }
                .map_err(|e| errno(&e))?;
                self.dir_attr(ino, time_of(t))
            }
            Node::Entry { entry: e, .. } => {
                let (kind, size) = match &e.content {
                    Content::File { size, .. } => (FileType::RegularFile, *size),
                    Content::Dir(_) => (FileType::Directory, 4096),
                    Content::Symlink(t) => (FileType::Symlink, t.len() as u64),
                };
                let mtime = time_of(e.mtime_ns);
                FileAttr {
                    ino,
                    size,
                    blocks: size.div_ceil(512),
                    atime: mtime,
                    mtime,
                    ctime: mtime,
                    crtime: mtime,
                    kind,
                    perm: (e.mode & 0o7777) as u16,
                    nlink: if kind == FileType::Directory { 2 } else { 1 },
                    uid: e.uid,
                    gid: e.gid,
                    rdev: 0,
                    blksize: 4096,
                    flags: 0,
                }
            }
        })
    }

    /// The tree a directory inode shows, if it is a tree.
    fn tree_of(&self, node: &Node) -> Result<Option<ObjectId>, Error> {
        Ok(match node {
            Node::VolumeRoot {
                volume,
                snapshot: Some(s),
            } => Some(self.pool.catalog().snapshot(volume, s)?.root),
            Node::VolumeRoot {
                volume,
                snapshot: None,
            } => Some(self.pool.catalog().volume(volume)?.root),
            Node::Entry { entry: e, .. } => match &e.content {
                Content::Dir(d) => Some(d.tree),
                _ => None,
            },
            _ => None,
        })
    }

    fn child(&mut self, parent: u64, name: &[u8]) -> Result<u64, i32> {
        let node = self.inodes.get(parent).cloned().ok_or(libc::ENOENT)?;
        let found = match &node {
            Node::PoolRoot => {
                let name = std::str::from_utf8(name).map_err(|_| libc::ENOENT)?;
                self.pool.catalog().volume(name).map_err(|e| errno(&e))?;
                (
                    None,
                    Node::VolumeRoot {
                        volume: name.to_string(),
                        snapshot: None,
                    },
                )
            }
            Node::SnapshotDir { volume } => {
                let name = std::str::from_utf8(name).map_err(|_| libc::ENOENT)?;
                self.pool
                    .catalog()
                    .snapshot(volume, name)
                    .map_err(|e| errno(&e))?;
                (
                    None,
                    Node::VolumeRoot {
                        volume: volume.clone(),
                        snapshot: Some(name.to_string()),
                    },
                )
            }
            Node::VolumeRoot {
                volume,
                snapshot: None,
            } if name == SNAPSHOT_DIR => (
                None,
                Node::SnapshotDir {
                    volume: volume.clone(),
                },
            ),
            other => {
                let frozen = is_frozen(other);
                let tree = self
                    .tree_of(other)
                    .map_err(|e| errno(&e))?
                    .ok_or(libc::ENOTDIR)?;
                let entry = self
                    .find(&tree, name)
                    .map_err(|e| {
                        tracing::error!("lookup of {:?}: {e}", String::from_utf8_lossy(name));
                        errno(&e)
                    })?
                    .ok_or(libc::ENOENT)?;
                let node = Node::Entry {
                    entry: Arc::new(entry.clone()),
                    frozen,
                };
                (Some(version_of(&entry)), node)
            }
        };
        Ok(self.inodes.intern(parent, name, found.0, found.1))
    }

    fn list(&mut self, ino: u64) -> Result<Vec<(u64, FileType, Vec<u8>)>, i32> {
        let node = self.inodes.get(ino).cloned().ok_or(libc::ENOENT)?;
        let mut out = vec![
            (ino, FileType::Directory, b".".to_vec()),
            (ino, FileType::Directory, b"..".to_vec()),
        ];
        match &node {
            Node::PoolRoot => {
                for v in self.pool.catalog().volumes().map_err(|e| errno(&e))? {
                    let child = self.inodes.intern(
                        ino,
                        v.name.as_bytes(),
                        None,
                        Node::VolumeRoot {
                            volume: v.name.clone(),
                            snapshot: None,
                        },
                    );
                    out.push((child, FileType::Directory, v.name.into_bytes()));
                }
            }
            Node::SnapshotDir { volume } => {
                for s in self
                    .pool
                    .catalog()
                    .snapshots(Some(volume))
                    .map_err(|e| errno(&e))?
                {
                    let child = self.inodes.intern(
                        ino,
                        s.name.as_bytes(),
                        None,
                        Node::VolumeRoot {
                            volume: volume.clone(),
                            snapshot: Some(s.name.clone()),
                        },
                    );
                    out.push((child, FileType::Directory, s.name.into_bytes()));
                }
            }
            other => {
                if let Node::VolumeRoot {
                    volume,
                    snapshot: None,
                } = other
                {
                    if self.show_snapshot_dir {
                        let child = self.inodes.intern(
                            ino,
                            SNAPSHOT_DIR,
                            None,
                            Node::SnapshotDir {
                                volume: volume.clone(),
                            },
                        );
                        out.push((child, FileType::Directory, SNAPSHOT_DIR.to_vec()));
                    }
                }
                let frozen = is_frozen(other);
                let tree = self
                    .tree_of(other)
                    .map_err(|e| errno(&e))?
                    .ok_or(libc::ENOTDIR)?;
                for e in self.entries(&tree).map_err(|e| errno(&e))? {
                    let kind = match e.content {
                        Content::File { .. } => FileType::RegularFile,
                        Content::Dir(_) => FileType::Directory,
                        Content::Symlink(_) => FileType::Symlink,
                    };
                    let name = e.name.clone();
                    let child = self.inodes.intern(
                        ino,
                        &name,
                        Some(version_of(&e)),
                        Node::Entry {
                            entry: Arc::new(e),
                            frozen,
                        },
                    );
                    out.push((child, kind, name));
                }
            }
        }
        Ok(out)
    }

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
    fn find(&mut self, tree: &ObjectId, name: &[u8]) -> Result<Option<Entry>, Error> {
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
    fn entries(&mut self, tree: &ObjectId) -> Result<Vec<Entry>, Error> {
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
}

impl Filesystem for ShaleFs {
    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        match self
            .child(parent, name.as_bytes())
            .and_then(|ino| self.attr(ino))
        {
            Ok(attr) => reply.entry(&TTL, &attr, 0),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match self.attr(ino) {
            Ok(attr) => reply.attr(&self.ttl(ino), &attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&mut self, _req: &Request<'_>, ino: u64, reply: ReplyData) {
        match self.inodes.get(ino) {
            Some(Node::Entry { entry: e, .. }) => match &e.content {
                Content::Symlink(t) => reply.data(t),
                _ => reply.error(libc::EINVAL),
            },
            _ => reply.error(libc::EINVAL),
        }
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, flags: i32, reply: ReplyOpen) {
        if flags & libc::O_ACCMODE != libc::O_RDONLY {
            return reply.error(libc::EROFS);
        }
        match self.inodes.get(ino) {
            Some(Node::Entry { entry: e, .. }) if matches!(e.content, Content::File { .. }) => {
                // Snapshot content never changes: let the kernel keep it cached.
                reply.opened(0, fuser::consts::FOPEN_KEEP_CACHE)
            }
            Some(_) => reply.error(libc::EISDIR),
            None => reply.error(libc::ENOENT),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn read(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock: Option<u64>,
        reply: ReplyData,
    ) {
        let Some(Node::Entry { entry: e, .. }) = self.inodes.get(ino).cloned() else {
            return reply.error(libc::ENOENT);
        };
        let Content::File {
            chunks,
            size: file_size,
        } = &e.content
        else {
            return reply.error(libc::EISDIR);
        };
        let (chunks, file_size) = (chunks.clone(), *file_size);
        let (pool, cache) = (self.pool.clone(), self.last_chunk.clone());
        self.readers.spawn(move || {
            match read_range(
                &pool,
                &cache,
                &chunks,
                file_size,
                offset.max(0) as u64,
                size,
            ) {
                Ok(data) => reply.data(&data),
                Err(e) => reply.error(e),
            }
        });
    }

    fn flush(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        _fh: u64,
        _lock_owner: u64,
        reply: fuser::ReplyEmpty,
    ) {
        // Nothing is buffered on a read-only view.
        reply.ok()
    }

    fn release(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        _fh: u64,
        _flags: i32,
        _lock_owner: Option<u64>,
        _flush: bool,
        reply: fuser::ReplyEmpty,
    ) {
        reply.ok()
    }

    fn opendir(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        match self.list(ino) {
            Ok(listing) => {
                let fh = self.next_fh;
                self.next_fh += 1;
                self.listings.insert(fh, listing);
                reply.opened(fh, 0)
            }
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        let Some(listing) = self.listings.get(&fh) else {
            return reply.error(libc::EBADF);
        };
        for (i, (ino, kind, name)) in listing.iter().enumerate().skip(offset.max(0) as usize) {
            if reply.add(*ino, (i + 1) as i64, *kind, OsStr::from_bytes(name)) {
                break;
            }
        }
        reply.ok()
    }

    fn releasedir(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _flags: i32,
        reply: fuser::ReplyEmpty,
    ) {
        self.listings.remove(&fh);
        reply.ok()
    }

    fn statfs(&mut self, _req: &Request<'_>, _ino: u64, reply: ReplyStatfs) {
        let stored = self.pool.totals().map(|t| t.stored_bytes).unwrap_or(0);
        let blocks = stored.div_ceil(4096);
        reply.statfs(blocks, 0, 0, self.inodes.count(), 0, 4096, 255, 4096)
    }
}
