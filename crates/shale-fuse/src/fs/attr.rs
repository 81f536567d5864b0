//! Attributes as the kernel wants them: times, `FileAttr`s, how long it
//! may cache them, the common replies, and `statfs`.
#![allow(unsafe_code)] // statvfs(3): the blocks say why they are sound

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    FileAttr, FileType, Generation, INodeNo, ReplyEmpty, ReplyEntry, ReplyStatfs, TimeOrNow,
};
use shale_core::catalog::now_ns;

use super::{FROZEN_TTL, IO_SIZE, LISTING_TTL, TTL};
use crate::inodes::{Kind, Owner};
use crate::state::{special_type, Errno, State};

pub(super) fn time_of(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

pub(super) fn ns_of(t: TimeOrNow) -> i64 {
    match t {
        TimeOrNow::Now => now_ns(),
        TimeOrNow::SpecificTime(t) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_nanos() as i64,
            Err(e) => -(e.duration().as_nanos() as i64),
        },
    }
}

pub(super) fn ttl(st: &State, ino: u64) -> Duration {
    let Some(inode) = st.table.get(ino) else {
        return LISTING_TTL;
    };
    let under_special = inode
        .parents
        .first()
        .and_then(|p| st.table.get(*p))
        .is_some_and(|p| matches!(p.kind, Kind::PoolRoot | Kind::SnapshotDir { .. }));
    match &inode.owner {
        _ if under_special => LISTING_TTL,
        Owner::Snapshot => FROZEN_TTL,
        _ => TTL,
    }
}

/// How long the kernel may keep `name`'s absence from directory `parent`
/// (a negative entry), or `None` for it to ask again each time. Absences
/// last in snapshots; in live volumes only the kernel's own requests add
/// names, and a reload by another process makes the kernel forget the
/// absences it keeps ([`State::remember_absent`]). The pool root and
/// `.snapshot` directories change under other processes: never kept.
pub(super) fn absent_ttl(st: &mut State, parent: u64, name: &[u8]) -> Option<Duration> {
    let p = st.table.get(parent)?;
    if !matches!(p.kind, Kind::Dir(_)) {
        return None;
    }
    match p.owner {
        Owner::Snapshot => Some(FROZEN_TTL),
        Owner::Live { .. } => st.remember_absent(parent, name).then_some(TTL),
        Owner::None => None,
    }
}

/// A negative entry: `name` is not there, for `ttl`.
pub(super) fn reply_absent(ttl: Duration, reply: ReplyEntry) {
    let none = FileAttr {
        ino: INodeNo(0),
        size: 0,
        blocks: 0,
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind: FileType::RegularFile,
        perm: 0,
        nlink: 0,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 0,
        flags: 0,
    };
    reply.entry(&ttl, &none, Generation(0));
}

/// The attributes of an inode.
pub(super) fn attr(st: &mut State, ino: u64) -> Result<FileAttr, Errno> {
    let is_tree_dir = matches!(st.inode(ino)?.kind, Kind::Dir(_));
    let nlink = if is_tree_dir {
        2 + st.subdirs(ino)? as u32
    } else {
        let i = st.inode(ino)?;
        match i.kind {
            Kind::PoolRoot | Kind::SnapshotDir { .. } => 2,
            _ => i.parents.len() as u32,
        }
    };
    let i = st.inode(ino)?;
    let (size, kind, rdev) = match &i.kind {
        Kind::File(d) => (d.size(), FileType::RegularFile, 0),
        Kind::Symlink(t) => (t.len() as u64, FileType::Symlink, 0),
        Kind::Special(s) => (0, special_type(s.kind), s.rdev as u32),
        _ => (4096, FileType::Directory, 0),
    };
    Ok(FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: time_of(i.meta.atime_ns),
        mtime: time_of(i.meta.mtime_ns),
        ctime: time_of(i.meta.ctime_ns),
        crtime: time_of(i.meta.mtime_ns),
        kind,
        perm: (i.meta.mode & 0o7777) as u16,
        nlink,
        uid: i.meta.uid,
        gid: i.meta.gid,
        rdev,
        blksize: IO_SIZE,
        flags: 0,
    })
}

/// Looks `ino` up once more for the kernel and returns its attributes.
pub(super) fn entry(st: &mut State, ino: u64) -> Result<(Duration, FileAttr), Errno> {
    let a = attr(st, ino)?;
    if let Some(i) = st.table.get_mut(ino) {
        i.lookups += 1;
    }
    Ok((ttl(st, ino), a))
}

pub(super) fn reply_entry(st: &mut State, r: Result<u64, Errno>, reply: ReplyEntry) {
    match r.and_then(|ino| entry(st, ino)) {
        Ok((ttl, a)) => reply.entry(&ttl, &a, Generation(0)),
        Err(e) => reply.error(super::errno(e)),
    }
}

pub(super) fn reply_empty(r: Result<(), Errno>, reply: ReplyEmpty) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(super::errno(e)),
    }
}

/// Answers `statfs` for `ino`: a volume with a quota looks like a disk of
/// that size; anything else shows the pool's file system.
pub(super) fn statfs(st: &State, ino: u64, reply: ReplyStatfs) {
    let quota = st
        .volume_of(ino)
        .and_then(|v| st.vols.get(v.as_ref()))
        .and_then(|v| v.quota.map(|q| (q, v.bytes)));
    let files = st.table.len() as u64;
    if let Some((quota, used)) = quota {
        // A volume with a quota looks like a disk of that size.
        let blocks = quota.div_ceil(4096);
        let free = quota.saturating_sub(used) / 4096;
        // Inodes: those in use, and as many again as anyone could make.
        let spare = u32::MAX as u64;
        return reply.statfs(blocks, free, free, files + spare, spare, 4096, 255, 4096);
    }
    match statvfs(st.pool.root()) {
        Some(s) => reply.statfs(
            s.f_blocks * s.f_frsize / 4096,
            s.f_bfree * s.f_frsize / 4096,
            s.f_bavail * s.f_frsize / 4096,
            s.f_files,
            s.f_ffree,
            4096,
            255,
            4096,
        ),
        None => reply.statfs(0, 0, 0, files, 0, 4096, 255, 4096),
    }
}

fn statvfs(path: &Path) -> Option<libc::statvfs> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut s = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: c is a valid NUL-terminated path and s is writable memory of
    // the right size; statvfs fills it on success.
    let rc = unsafe { libc::statvfs(c.as_ptr(), s.as_mut_ptr()) };
    // SAFETY: statvfs returned 0, so it initialised s.
    (rc == 0).then(|| unsafe { s.assume_init() })
}
