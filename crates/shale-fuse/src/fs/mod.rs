//! The `fuser::Filesystem` implementation: FUSE requests in, [`State`]
//! operations, replies out. Reads of file data run on reader threads so
//! that slow (cold) reads of several files overlap.

mod attr;
mod dir;
mod names;
mod plus;
mod read;
mod write;
mod xattr;

use attr::{attr, ns_of, reply_empty, reply_entry, statfs, ttl};
use dir::list_plus;
use plus::PlusAdvisor;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime};

use fuser::{
    BsdFileFlags, Errno, FileHandle, Filesystem, FopenFlags, INodeNo, InitFlags, IoctlFlags,
    KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyOpen,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use crate::busy_poll::{BusyPoll, Linger};
use crate::inodes::{Kind, Owner};
use crate::journal::Op;
use crate::reader::ChunkCache;
use crate::state::{SetAttr, State};
use crate::workers::Workers;

/// How long the kernel may cache names and attributes in a live volume.
/// Every change to a live volume is made through this mount (the kernel
/// then updates what it caches) or announced to it by the process that
/// makes it (see `shale_core::coord::mounts`; the mount then invalidates what the
/// kernel holds), so this can be long: a second training epoch finds its
/// names cached.
const TTL: Duration = Duration::from_secs(60);
/// The same inside a snapshot, which never changes.
const FROZEN_TTL: Duration = Duration::from_secs(3600);
/// Names of the pool root and of `.snapshot` directories: volumes and
/// snapshots can be deleted without telling the mount.
const LISTING_TTL: Duration = Duration::from_secs(1);
/// Threads serving file reads.
const READERS: usize = 8;
/// The largest write the kernel sends, and the I/O size files report
/// (`st_blksize`): `cp` and stdio size their buffers by it, so a file of
/// up to 1 MiB is copied in with one `WRITE` instead of one per 128 KiB.
const IO_SIZE: u32 = 1 << 20;
/// Names looked up at a time for a `READDIRPLUS` reply (a 4 KiB reply
/// holds about 25).
const READDIR_BATCH: usize = 64;

/// A mount's file system: shared state behind a lock, plus reader threads.
pub struct ShaleFs {
    state: Arc<Mutex<State>>,
    readers: Workers,
    chunks: Arc<ChunkCache>,
    /// The kernel can open files without asking (`FUSE_NO_OPEN_SUPPORT`).
    opens_without_asking: bool,
    /// The kernel maps files opened for direct I/O shared too
    /// (`FUSE_DIRECT_IO_ALLOW_MMAP`), so files created here are written
    /// without its page cache (see `create`).
    direct_writes: bool,
    /// To drop what the kernel caches of an inode.
    notifier: Arc<OnceLock<fuser::Notifier>>,
    /// Watching for the next request after each answer.
    busy_poll: Arc<BusyPoll>,
    /// Whether listings carry attributes.
    plus: Mutex<PlusAdvisor>,
}

impl ShaleFs {
    /// A file system over `state`, telling the kernel what changed through
    /// `notifier` (set once the session is made), watching for the next
    /// request after each answer as `busy_poll` says.
    pub fn new(
        state: Arc<Mutex<State>>,
        notifier: Arc<OnceLock<fuser::Notifier>>,
        busy_poll: Arc<BusyPoll>,
    ) -> shale_core::Result<Self> {
        let readers = Workers::start(READERS, "shale-read").map_err(|e| {
            shale_core::Error::InvalidArgument(format!("cannot start reader threads: {e}"))
        })?;
        Ok(ShaleFs {
            state,
            readers,
            chunks: Arc::new(ChunkCache::default()),
            opens_without_asking: false,
            direct_writes: false,
            notifier,
            busy_poll,
            plus: Mutex::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The advisor on listings with attributes.
    fn plus(&self) -> MutexGuard<'_, PlusAdvisor> {
        self.plus.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The opening of every request's handler: the busy-poll guard, to be
    /// dropped last (after the reply and the state lock), and the state.
    fn start(&self) -> (Linger<'_>, MutexGuard<'_, State>) {
        (self.busy_poll.after_reply(), self.lock())
    }
}

/// The error `e` (an `errno` value) as fuser takes it.
fn errno(e: crate::state::Errno) -> Errno {
    Errno::from_i32(e)
}

impl Filesystem for ShaleFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(IO_SIZE);
        // Large reads (up to 1 MiB) for sequential reads of big files. The
        // kernel takes the smaller of this and the mount's read-ahead (128
        // KiB unless raised in /sys/class/bdi): raising it to 1 MiB was
        // measured (see `bench/results/NOTES.md`) and not kept.
        if let Err(max) = config.set_max_readahead(1 << 20) {
            let _ = config.set_max_readahead(max);
        }
        // Names and attributes in one reply for listings that stat
        // (`ls -l`); plain listings when the kernel sees no need.
        let _ = config
            .add_capabilities(InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_READDIRPLUS_AUTO);
        self.opens_without_asking = config
            .add_capabilities(InitFlags::FUSE_NO_OPEN_SUPPORT)
            .is_ok();
        // Without it a shared mapping of a file opened for direct I/O
        // fails (ENODEV: SQLite's `-shm` file, for one), so files created
        // here use the page cache like the rest.
        self.direct_writes = config
            .add_capabilities(InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP)
            .is_ok();
        Ok(())
    }

    fn destroy(&mut self) {
        let mut st = self.lock();
        if let Err(e) = st.commit_all() {
            tracing::error!("final commit at unmount: {e}");
        }
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let parent = parent.0;
        let (_next, mut st) = self.start();
        let r = st.child(parent, name.as_bytes());
        if r == Err(libc::ENOENT) {
            if let Some(ttl) = attr::absent_ttl(&mut st, parent, name.as_bytes()) {
                return attr::reply_absent(ttl, reply);
            }
        }
        let file = r.is_ok_and(|ino| st.inode(ino).is_ok_and(|i| i.dir().is_none()));
        reply_entry(&mut st, r, reply);
        drop(st);
        if file {
            self.plus().lookup(parent);
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let ino = ino.0;
        let mut st = self.lock();
        if let Some(i) = st.table.get_mut(ino) {
            i.lookups = i.lookups.saturating_sub(nlookup);
        }
        st.maybe_drop(ino);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let ino = ino.0;
        let (_next, mut st) = self.start();
        match attr(&mut st, ino) {
            Ok(a) => reply.attr(&ttl(&st, ino), &a),
            Err(e) => reply.error(errno(e)),
        }
        // A file's attributes asked for after a plain listing of its
        // directory: walks want them (a second epoch of `find | xargs cat`
        // on a writable mount, where each read marks the access time stale
        // and `cat`'s `fstat` asks again, made 14,400 `GETATTR`s for
        // 20,000 files and ran at half the speed of listings with them).
        let parent = st
            .inode(ino)
            .ok()
            .filter(|i| i.dir().is_none())
            .and_then(|i| i.parents.first().copied());
        drop(st);
        if let Some(parent) = parent {
            self.plus().lookup(parent);
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let ino = ino.0;
        let (_next, mut st) = self.start();
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime_ns: atime.map(ns_of),
            mtime_ns: mtime.map(ns_of),
        };
        let r = st.logged(
            ino,
            |st| st.set_attr(ino, &set),
            |_| Op::SetAttr { ino, set },
        );
        match r.and_then(|()| attr(&mut st, ino)) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let ino = ino.0;
        let (_next, st) = self.start();
        match st.inode(ino).map(|i| &i.kind) {
            Ok(Kind::Symlink(t)) => reply.data(t),
            Ok(_) => reply.error(Errno::EINVAL),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        self.mknod_op(req, parent, name, mode & !umask, rdev, reply)
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        self.mkdir_op(req, parent, name, mode & !umask, reply)
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.unlink_op(parent, name, reply)
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.rmdir_op(parent, name, reply)
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        self.symlink_op(req, parent, link_name, target, reply)
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        self.rename_op(parent, name, newparent, newname, flags, reply)
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        self.link_op(ino, newparent, newname, reply)
    }

    /// Where the kernel can, it is told to open files without asking (the
    /// first open answers `ENOSYS`): opening and closing a file then costs
    /// no round trip to this process, which is most of the work of reading
    /// a small file whose pages are cached (a second epoch). The kernel
    /// still checks permissions and read-only mounts; writes name the inode
    /// and carry the open flags, and a write to a snapshot view fails with
    /// `EROFS` at the write rather than at the open. From then on the
    /// kernel sends no `RELEASE` for files created here either, so their
    /// handles are not counted (`State::kernel_opens_alone`); see
    /// `State::settle_lingering` for when their local copies go.
    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let ino = ino.0;
        let _next = self.busy_poll.after_reply();
        if self.opens_without_asking {
            self.lock().kernel_opens_alone();
            return reply.error(Errno::ENOSYS);
        }
        let write = flags.acc_mode() != OpenAccMode::O_RDONLY;
        let r = self.lock().open(ino, write);
        match r {
            // Every change to a file goes through this mount (and a reload
            // gives new inodes), so cached pages stay valid across opens.
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        self.create_op(req, parent, name, mode & !umask, reply)
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let ino = ino.0;
        let (_next, st) = self.start();
        self.read_data(st, ino, offset, size, reply)
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        self.write_op((ino.0, fh.0), offset, data, write_flags, flags, reply)
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock: LockOwner,
        reply: ReplyEmpty,
    ) {
        let _next = self.busy_poll.after_reply();
        // Writes are in the upper file already and durability is fsync's
        // job: ENOSYS tells the kernel to stop sending flushes (one round
        // trip less per close).
        reply.error(Errno::ENOSYS)
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let fh = fh.0;
        let (_next, mut st) = self.start();
        st.release(fh);
        reply.ok()
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let ino = ino.0;
        let (_next, mut st) = self.start();
        reply_empty(st.fsync(ino), reply)
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        self.fallocate_op(ino, offset, length, mode, reply)
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let ino = ino.0;
        let (_next, mut st) = self.start();
        // A snapshot's directories never change: the kernel may keep their
        // listings, so a second walk lists them without asking.
        let frozen = st
            .inode(ino)
            .is_ok_and(|i| i.dir().is_some() && matches!(i.owner, Owner::Snapshot));
        let flags = if frozen {
            FopenFlags::FOPEN_CACHE_DIR | FopenFlags::FOPEN_KEEP_CACHE
        } else {
            FopenFlags::empty()
        };
        match st.open_dir(ino) {
            Ok(fh) => reply.opened(FileHandle(fh), flags),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let (ino, fh) = (ino.0, fh.0);
        let (_next, mut st) = self.start();
        let listing = match st.listing(ino, fh) {
            Ok(listing) => listing,
            Err(e) => return reply.error(errno(e)),
        };
        for (i, (ino, kind, name)) in listing.iter().enumerate().skip(offset as usize) {
            if reply.add(
                INodeNo(*ino),
                (i + 1) as u64,
                *kind,
                OsStr::from_bytes(name),
            ) {
                break;
            }
        }
        reply.ok()
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectoryPlus,
    ) {
        let (ino, fh) = (ino.0, fh.0);
        // Only `.` and `..` when the advisor says the walk wants names
        // alone: the kernel then asks for the rest as a plain `READDIR`.
        let mut end = usize::MAX;
        if offset == 0 {
            let files = self.lock().listing(ino, fh).map_or(0, |l| {
                l.iter()
                    .filter(|(_, kind, _)| *kind != fuser::FileType::Directory)
                    .count()
            });
            if !self.plus().listing(ino, files) {
                end = 2;
            }
        }
        let (_next, mut st) = self.start();
        list_plus(&mut st, (ino, fh), offset as usize, end, reply)
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        let fh = fh.0;
        let _next = self.busy_poll.after_reply();
        self.lock().listings.remove(&fh);
        reply.ok()
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let ino = ino.0;
        let (_next, mut st) = self.start();
        reply_empty(st.fsync(ino), reply)
    }

    /// No `ioctl` is supported: `ENOTTY`, at once and without a word in
    /// the log. The kernel sends every `ioctl` of a file here and keeps no
    /// memory of a refusal, and Python's `open()` makes one for each file
    /// (`isatty`): fuser's default logged a warning for each, 200 bytes
    /// of `mount.log` per file a data loader opened.
    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        let _next = self.busy_poll.after_reply();
        reply.error(Errno::ENOTTY);
    }

    fn statfs(&self, _req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        let ino = ino.0;
        let (_next, st) = self.start();
        statfs(&st, ino, reply)
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        self.setxattr_op(ino, name, value, flags, reply)
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        self.getxattr_op(ino, name, size, reply)
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        self.listxattr_op(ino, size, reply)
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.removexattr_op(ino, name, reply)
    }
}
