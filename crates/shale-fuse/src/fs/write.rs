//! Requests that write: creating a file, writing to one, allocating
//! space.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use fuser::{
    Errno, FileHandle, FopenFlags, Generation, INodeNo, OpenFlags, ReplyCreate, ReplyEmpty,
    ReplyWrite, Request, WriteFlags,
};

use super::attr::{entry, reply_empty};
use super::{errno, ShaleFs};
use crate::journal::Op;
use crate::state::Write;

impl ShaleFs {
    /// Creates and opens a regular file with `mode` (umask applied).
    pub(super) fn create_op(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        reply: ReplyCreate,
    ) {
        let parent = parent.0;
        let (_next, mut st) = self.start();
        let (uid, gid) = (req.uid(), req.gid());
        let (name, direct) = (name.as_bytes(), self.direct_writes);
        let r = st
            .logged(
                parent,
                |st| st.create(parent, name, mode, (uid, gid), direct),
                |&(ino, _)| Op::Create {
                    ino,
                    parent,
                    name: name.to_vec(),
                    mode,
                    uid,
                    gid,
                },
            )
            .and_then(|(ino, fh)| Ok((entry(&mut st, ino)?, fh)));
        // A file created here is written through this handle without the
        // kernel's page cache: the kernel then neither copies each write
        // into its cache nor asks for `security.capability` before each
        // (a round trip: 5.3 requests a file where there were 6.7, when
        // `cp -r` copies small files in). Other opens of the file use the
        // page cache as usual; the kernel drops their pages a direct write
        // overlaps.
        let flags = if self.direct_writes {
            FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_DIRECT_IO
        } else {
            FopenFlags::FOPEN_KEEP_CACHE
        };
        match r {
            Ok(((ttl, a), fh)) => reply.created(&ttl, &a, Generation(0), FileHandle(fh), flags),
            Err(e) => reply.error(errno(e)),
        }
    }

    /// Writes `data` at `offset` through handle `fh` of file `ino`.
    pub(super) fn write_op(
        &self,
        (ino, fh): (u64, u64),
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        flags: OpenFlags,
        reply: ReplyWrite,
    ) {
        let (_next, mut st) = self.start();
        let (held, direct) = st.write_handle(fh);
        // A direct write: the kernel left clearing privileges to us.
        let mut mode_changed = false;
        if direct {
            let kill_suidgid = write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID);
            match st.drop_privileges(ino, kill_suidgid) {
                Ok(dropped) => {
                    if dropped.any {
                        st.record_now(ino, Op::DropPrivileges { ino, kill_suidgid });
                    }
                    mode_changed = dropped.mode;
                }
                Err(e) => return reply.error(errno(e)),
            }
        }
        // The kernel checked the file was opened for writing.
        let w = Write {
            ino,
            append: flags.0 & libc::O_APPEND != 0,
            held,
        };
        let r = st.write(w, offset, data);
        drop(st);
        if mode_changed {
            // Attributes only (a negative offset); nothing the kernel does
            // for it calls back into the mount.
            if let Some(n) = self.notifier.get() {
                let _ = n.inval_inode(INodeNo(ino), -1, 0);
            }
        }
        match r {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(errno(e)),
        }
    }

    /// Allocates or punches out a range of file `ino`.
    pub(super) fn fallocate_op(
        &self,
        ino: INodeNo,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let ino = ino.0;
        let (Ok(offset), Ok(length)) = (i64::try_from(offset), i64::try_from(length)) else {
            return reply.error(Errno::EINVAL);
        };
        let (_next, mut st) = self.start();
        let r = st.logged(
            ino,
            |st| st.fallocate(ino, offset, length, mode),
            |_| Op::Fallocate {
                ino,
                offset,
                length,
                mode,
            },
        );
        reply_empty(r, reply)
    }
}
