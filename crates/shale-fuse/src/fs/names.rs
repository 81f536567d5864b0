//! Requests that change names: making, removing, renaming and linking
//! entries, each recorded in the intent log as it is made.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use fuser::{INodeNo, RenameFlags, ReplyEmpty, ReplyEntry, Request};

use super::attr::{reply_empty, reply_entry};
use super::ShaleFs;
use crate::journal::Op;

impl ShaleFs {
    /// Makes a special file (FIFO, socket, device) with `mode` (umask applied).
    pub(super) fn mknod_op(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let parent = parent.0;
        let (_next, mut st) = self.start();
        let (uid, gid) = (req.uid(), req.gid());
        let (name, rdev) = (name.as_bytes(), rdev.into());
        let r = st.logged(
            parent,
            |st| st.mknod(parent, name, mode, rdev, (uid, gid)),
            |&ino| Op::Mknod {
                ino,
                parent,
                name: name.to_vec(),
                mode,
                rdev,
                uid,
                gid,
            },
        );
        reply_entry(&mut st, r, reply)
    }

    /// Makes a directory with `mode` (umask applied).
    pub(super) fn mkdir_op(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        reply: ReplyEntry,
    ) {
        let parent = parent.0;
        let (_next, mut st) = self.start();
        let (uid, gid) = (req.uid(), req.gid());
        let name = name.as_bytes();
        let r = st.logged(
            parent,
            |st| st.mkdir(parent, name, mode, (uid, gid)),
            |&ino| Op::Mkdir {
                ino,
                parent,
                name: name.to_vec(),
                mode,
                uid,
                gid,
            },
        );
        reply_entry(&mut st, r, reply)
    }

    /// Removes a name that is not a directory.
    pub(super) fn unlink_op(&self, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let parent = parent.0;
        let (_next, mut st) = self.start();
        let name = name.as_bytes();
        let r = st.logged(
            parent,
            |st| st.unlink(parent, name),
            |_| Op::Unlink {
                parent,
                name: name.to_vec(),
            },
        );
        reply_empty(r, reply)
    }

    /// Removes an empty directory.
    pub(super) fn rmdir_op(&self, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let parent = parent.0;
        let (_next, mut st) = self.start();
        let name = name.as_bytes();
        let r = st.logged(
            parent,
            |st| st.rmdir(parent, name),
            |_| Op::Rmdir {
                parent,
                name: name.to_vec(),
            },
        );
        reply_empty(r, reply)
    }

    /// Makes a symbolic link to `target`.
    pub(super) fn symlink_op(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let parent = parent.0;
        let (_next, mut st) = self.start();
        let (uid, gid) = (req.uid(), req.gid());
        let (name, target) = (link_name.as_bytes(), target.as_os_str().as_bytes());
        let r = st.logged(
            parent,
            |st| st.symlink(parent, name, target, (uid, gid)),
            |&ino| Op::Symlink {
                ino,
                parent,
                name: name.to_vec(),
                target: target.to_vec(),
                uid,
                gid,
            },
        );
        reply_entry(&mut st, r, reply)
    }

    /// Renames an entry (`RENAME_NOREPLACE` and `RENAME_EXCHANGE` in `flags`).
    pub(super) fn rename_op(
        &self,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (parent, newparent) = (parent.0, newparent.0);
        let (_next, mut st) = self.start();
        let (name, newname) = (name.as_bytes(), newname.as_bytes());
        let r = st.logged(
            parent,
            |st| st.rename(parent, name, newparent, newname, flags.bits()),
            |_| Op::Rename {
                parent,
                name: name.to_vec(),
                newparent,
                newname: newname.to_vec(),
                flags: flags.bits(),
            },
        );
        reply_empty(r, reply)
    }

    /// Makes another name for file `ino`.
    pub(super) fn link_op(
        &self,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let (ino, newparent) = (ino.0, newparent.0);
        let (_next, mut st) = self.start();
        let name = newname.as_bytes();
        let r = st.logged(
            newparent,
            |st| st.link(ino, newparent, name).map(|()| ino),
            |_| Op::Link {
                ino,
                parent: newparent,
                name: name.to_vec(),
            },
        );
        reply_entry(&mut st, r, reply)
    }
}
