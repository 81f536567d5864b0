//! Extended attributes.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use fuser::{Errno, INodeNo, ReplyEmpty, ReplyXattr};

use super::attr::reply_empty;
use super::{errno, ShaleFs};
use crate::journal::Op;

impl ShaleFs {
    /// Sets an extended attribute.
    pub(super) fn setxattr_op(
        &self,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        reply: ReplyEmpty,
    ) {
        let ino = ino.0;
        let (_next, mut st) = self.start();
        let name = name.as_bytes();
        let r = st.logged(
            ino,
            |st| st.set_xattr(ino, name, value, flags),
            |_| Op::SetXattr {
                ino,
                name: name.to_vec(),
                value: value.to_vec(),
                flags,
            },
        );
        reply_empty(r, reply)
    }

    /// An extended attribute's value, or its size when `size` is 0.
    pub(super) fn getxattr_op(&self, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let ino = ino.0;
        let (_next, st) = self.start();
        let value = st.get_xattr(ino, name.as_bytes());
        match value {
            Ok(v) if size == 0 => reply.size(v.len() as u32),
            Ok(v) if v.len() > size as usize => reply.error(Errno::ERANGE),
            Ok(v) => reply.data(&v),
            Err(e) => reply.error(errno(e)),
        }
    }

    /// The names of the extended attributes, or their size when `size` is 0.
    pub(super) fn listxattr_op(&self, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let ino = ino.0;
        let (_next, st) = self.start();
        match st.list_xattrs(ino) {
            Ok(names) if size == 0 => reply.size(names.len() as u32),
            Ok(names) if names.len() > size as usize => reply.error(Errno::ERANGE),
            Ok(names) => reply.data(&names),
            Err(e) => reply.error(errno(e)),
        }
    }

    /// Removes an extended attribute.
    pub(super) fn removexattr_op(&self, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let ino = ino.0;
        let (_next, mut st) = self.start();
        let name = name.as_bytes();
        let r = st.logged(
            ino,
            |st| st.remove_xattr(ino, name),
            |_| Op::RemoveXattr {
                ino,
                name: name.to_vec(),
            },
        );
        reply_empty(r, reply)
    }
}
