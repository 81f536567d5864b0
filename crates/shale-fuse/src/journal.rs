//! The intent log: what makes an `fsync` durable without a commit.
//!
//! A commit folds a volume's whole overlay into new tree nodes and moves
//! the volume's root in a catalog transaction: a few milliseconds, too much
//! for SQLite's two or three `fsync`s per transaction. Instead, each live
//! volume this mount writes keeps a log, `POOL/journal/<volume>.log`, of the
//! changes made since its last commit:
//!
//! - changes to names and attributes (create, rename, unlink, `chmod`…),
//!   recorded in memory as they succeed, with the time they used;
//! - the bytes written to a file, recorded when that file is `fsync`'d,
//!   as the ranges written since (the file's current content there).
//!
//! An `fsync` appends what is recorded to the file and makes it durable
//! with one `fdatasync`; an `fsync` that finds nothing new costs nothing.
//! Removing and renaming names also append what is recorded (without
//! waiting for the disk), since programs use them as their own commit
//! points (SQLite's rollback journal is deleted to commit a transaction,
//! and replacing a file by renaming over it is how many save): they then
//! survive a crash of the mount server, if not a power cut, as on a local
//! file system.
//! A commit empties the log. After a crash of the mount server, the next
//! mount (or `shale unmount` of the dead mount) applies the log again to
//! the volume's last commit, through the same file operations, and commits
//! (see `recover.rs`).
//!
//! Inodes are named by this mount's inode numbers: an inode made since the
//! commit is named by the record that made it; one from the committed tree,
//! by an `Ident` record (its directory and name, as of that point in the
//! log) before the first record that uses it.
//!
//! The format (`docs/FORMAT.md`, "Intent log"): `SHALEIL1`, then frames of
//! a little-endian `u32` length, the first 8 bytes of the BLAKE3 hash of
//! the payload, and the payload (postcard): one [`Header`], then
//! [`Record`]s. A torn or damaged frame ends the log (what follows it was
//! never acknowledged by an `fsync`).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use shale_core::tree::DirRef;

use crate::ranges::add_range;
use crate::state::SetAttr;

/// The first bytes of a log.
const MAGIC: &[u8; 8] = b"SHALEIL1";
/// Length and check of a frame.
const FRAME_HEAD: usize = 12;

/// What a log applies to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The volume.
    pub volume: String,
    /// Its root tree when the log began (its last commit).
    pub base: DirRef,
    /// The inode number of the volume's root directory in the log.
    pub root: u64,
}

/// One change, as the mount applied it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)] // each variant is the file operation it is named after
pub enum Op {
    /// Inode `ino` is entry `name` of directory `parent`.
    Ident {
        ino: u64,
        parent: u64,
        name: Vec<u8>,
    },
    Create {
        ino: u64,
        parent: u64,
        name: Vec<u8>,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Mkdir {
        ino: u64,
        parent: u64,
        name: Vec<u8>,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Mknod {
        ino: u64,
        parent: u64,
        name: Vec<u8>,
        mode: u32,
        rdev: u64,
        uid: u32,
        gid: u32,
    },
    Symlink {
        ino: u64,
        parent: u64,
        name: Vec<u8>,
        target: Vec<u8>,
        uid: u32,
        gid: u32,
    },
    Link {
        ino: u64,
        parent: u64,
        name: Vec<u8>,
    },
    Unlink {
        parent: u64,
        name: Vec<u8>,
    },
    Rmdir {
        parent: u64,
        name: Vec<u8>,
    },
    Rename {
        parent: u64,
        name: Vec<u8>,
        newparent: u64,
        newname: Vec<u8>,
        flags: u32,
    },
    SetAttr {
        ino: u64,
        set: SetAttr,
    },
    Fallocate {
        ino: u64,
        offset: i64,
        length: i64,
        mode: i32,
    },
    SetXattr {
        ino: u64,
        name: Vec<u8>,
        value: Vec<u8>,
        flags: i32,
    },
    RemoveXattr {
        ino: u64,
        name: Vec<u8>,
    },
    /// A direct write cleared privileges (see `State::drop_privileges`).
    DropPrivileges {
        ino: u64,
        kill_suidgid: bool,
    },
    /// File `ino` is `size` bytes long, holds `ranges` (offset, bytes)
    /// where it was written, and has `mode` and `mtime_ns`. (The bytes are
    /// a `ByteBuf`: postcard writes them in one copy, where a `Vec<u8>`
    /// went byte by byte, at 43% of the server's time in an `fsync` of
    /// 1 MiB; the encoding is the same.)
    Data {
        ino: u64,
        size: u64,
        mode: u32,
        mtime_ns: i64,
        ranges: Vec<(u64, ByteBuf)>,
    },
}

impl Op {
    /// The inode this record makes, if it makes one.
    pub fn made(&self) -> Option<u64> {
        match self {
            Op::Create { ino, .. }
            | Op::Mkdir { ino, .. }
            | Op::Mknod { ino, .. }
            | Op::Symlink { ino, .. } => Some(*ino),
            _ => None,
        }
    }

    /// The inodes it names that must exist before it.
    pub fn uses(&self) -> Vec<u64> {
        match self {
            Op::Ident { parent, .. }
            | Op::Create { parent, .. }
            | Op::Mkdir { parent, .. }
            | Op::Mknod { parent, .. }
            | Op::Symlink { parent, .. }
            | Op::Unlink { parent, .. }
            | Op::Rmdir { parent, .. } => vec![*parent],
            Op::Link { ino, parent, .. } => vec![*ino, *parent],
            Op::Rename {
                parent, newparent, ..
            } => vec![*parent, *newparent],
            Op::SetAttr { ino, .. }
            | Op::Fallocate { ino, .. }
            | Op::SetXattr { ino, .. }
            | Op::RemoveXattr { ino, .. }
            | Op::DropPrivileges { ino, .. }
            | Op::Data { ino, .. } => vec![*ino],
        }
    }
}

/// A change and the time it used, ns since the epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The time.
    pub t: i64,
    /// The change.
    pub op: Op,
}

/// The log of one volume.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    header: Header,
    /// Open once something was written to it.
    file: Option<File>,
    /// Bytes in the file (0: this log holds nothing yet).
    written: u64,
    /// Frames not yet written.
    pending: Vec<u8>,
    /// Written and not yet made durable.
    unsynced: bool,
    /// Inodes the log names so far.
    known: HashSet<u64>,
    /// Byte ranges written to files and not yet in the log.
    dirty: HashMap<u64, Vec<(u64, u64)>>,
    /// Something could not be recorded: `fsync` commits instead, which
    /// starts the log again.
    pub broken: bool,
}

/// Where the log of `volume` is kept.
pub fn path_of(pool_root: &Path, volume: &str) -> PathBuf {
    pool_root.join("journal").join(format!("{volume}.log"))
}

impl Journal {
    /// An empty log of `header.volume`, kept at `path` (not created until
    /// something is written to it).
    pub fn new(path: PathBuf, header: Header) -> Journal {
        let mut known = HashSet::new();
        known.insert(header.root);
        Journal {
            path,
            header,
            file: None,
            written: 0,
            pending: Vec::new(),
            unsynced: false,
            known,
            dirty: HashMap::new(),
            broken: false,
        }
    }

    /// The volume's root inode here.
    pub fn root(&self) -> u64 {
        self.header.root
    }

    /// Bytes in the file and recorded for it.
    pub fn len(&self) -> u64 {
        self.written + self.pending.len() as u64
    }

    /// Whether the log names `ino` already.
    pub fn knows(&self, ino: u64) -> bool {
        self.known.contains(&ino)
    }

    /// Records `op`, made at time `t`; the inodes it uses must be known.
    pub fn push(&mut self, t: i64, op: Op) {
        if let Some(ino) = op.made() {
            self.known.insert(ino);
        }
        if let Op::Ident { ino, .. } = &op {
            self.known.insert(*ino);
        }
        frame(&mut self.pending, &Record { t, op });
    }

    /// Notes that `len` bytes were written to `ino` at `offset`.
    pub fn wrote(&mut self, ino: u64, offset: u64, len: u64) {
        if len > 0 {
            add_range(self.dirty.entry(ino).or_default(), offset, offset + len);
        }
    }

    /// The ranges written to `ino` since it was last logged, forgetting them.
    pub fn take_written(&mut self, ino: u64) -> Vec<(u64, u64)> {
        self.dirty.remove(&ino).unwrap_or_default()
    }

    /// Appends what is recorded to the file and makes it durable.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.write()?;
        if self.unsynced {
            self.file.as_ref().expect("written").sync_data()?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Appends what is recorded to the file, without waiting for the disk:
    /// it survives the mount server, not a power cut.
    pub fn write(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.file.is_none() {
            self.file = Some(open_log(&self.path)?);
        }
        let file = self.file.as_mut().expect("opened above");
        if self.written == 0 {
            let mut head = MAGIC.to_vec();
            frame(&mut head, &self.header);
            self.pending.splice(0..0, head);
        }
        file.write_all(&self.pending)?;
        self.written += self.pending.len() as u64;
        self.pending.clear();
        self.unsynced = true;
        Ok(())
    }

    /// Starts again from a commit whose root tree is `base`: empties the
    /// file (durably, so that a crash cannot bring back a log of an older
    /// commit) and forgets what was recorded.
    pub fn reset(&mut self, base: DirRef) -> std::io::Result<()> {
        self.header.base = base;
        self.pending.clear();
        self.unsynced = false;
        self.dirty.clear();
        self.known.clear();
        self.known.insert(self.header.root);
        self.broken = false;
        if self.written > 0 {
            self.written = 0;
            if let Some(f) = self.file.as_mut() {
                f.set_len(0)?;
                f.sync_data()?;
            }
        }
        Ok(())
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // An empty log is not kept (a volume no longer written here).
        if self.written == 0 && self.file.is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Opens (creating) a log file for appending at its end, and makes its
/// name durable.
fn open_log(path: &Path) -> std::io::Result<File> {
    let dir = path.parent().expect("a log lives in a directory");
    shale_core::private::create_dir_all(dir)?;
    let file =
        shale_core::private::open(path, std::fs::OpenOptions::new().create(true).append(true))?;
    // What an older mount left there was recovered before this one began.
    file.set_len(0)?;
    File::open(dir)?.sync_all()?;
    Ok(file)
}

/// Appends `value` as a frame to `out`.
fn frame<T: Serialize>(out: &mut Vec<u8>, value: &T) {
    let payload = postcard::to_allocvec(value).expect("log records always encode");
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&blake3::hash(&payload).as_bytes()[..8]);
    out.extend_from_slice(&payload);
}

/// A log as read back.
#[derive(Debug)]
pub struct Read {
    /// What it applies to.
    pub header: Header,
    /// Its records, in order.
    pub records: Vec<Record>,
    /// Bytes after the last whole record (a write cut short by the crash).
    pub torn: usize,
}

/// Reads the log at `path`: `None` if there is none or it is empty.
pub fn read(path: &Path) -> std::io::Result<Option<Read>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if bytes.is_empty() {
        return Ok(None);
    }
    let bad = |what: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {what}", path.display()),
        )
    };
    let rest = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| bad("not a Shale intent log"))?;
    let mut frames = Frames { rest };
    let header: Header = frames
        .next_value()
        .ok_or_else(|| bad("its header is damaged"))?;
    let mut records = Vec::new();
    while let Some(r) = frames.next_value() {
        records.push(r);
    }
    Ok(Some(Read {
        header,
        records,
        torn: frames.rest.len(),
    }))
}

/// Frames read one by one; stops at the first torn or damaged one.
struct Frames<'a> {
    rest: &'a [u8],
}

impl Frames<'_> {
    fn next_value<T: serde::de::DeserializeOwned>(&mut self) -> Option<T> {
        let head = self.rest.get(..FRAME_HEAD)?;
        let len = u32::from_le_bytes(head[..4].try_into().ok()?) as usize;
        let payload = self.rest.get(FRAME_HEAD..FRAME_HEAD + len)?;
        if blake3::hash(payload).as_bytes()[..8] != head[4..FRAME_HEAD] {
            return None;
        }
        let value = postcard::from_bytes(payload).ok()?;
        self.rest = &self.rest[FRAME_HEAD + len..];
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> DirRef {
        DirRef {
            tree: shale_core::ObjectId::of(b"tree"),
            bytes: 1,
            files: 2,
            entries: 3,
        }
    }

    #[test]
    fn data_is_encoded_as_a_vec_of_bytes_was() {
        let bytes: Vec<u8> = (0..=255).collect();
        let plain = postcard::to_allocvec(&vec![(7u64, bytes.clone())]).unwrap();
        let buf = postcard::to_allocvec(&vec![(7u64, ByteBuf::from(bytes))]).unwrap();
        assert_eq!(plain, buf);
        let back: Vec<(u64, ByteBuf)> = postcard::from_bytes(&plain).unwrap();
        assert_eq!(back[0].1.len(), 256);
    }

    #[test]
    fn a_log_reads_back_up_to_a_torn_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_of(dir.path(), "v");
        let header = Header {
            volume: "v".into(),
            base: base(),
            root: 1,
        };
        let mut j = Journal::new(path.clone(), header.clone());
        assert!(read(&path).unwrap().is_none());
        let unlink = Op::Unlink {
            parent: 1,
            name: b"a".to_vec(),
        };
        j.push(7, unlink.clone());
        j.flush().unwrap();
        // nothing new: no write
        j.flush().unwrap();
        let data = Op::Data {
            ino: 1,
            size: 3,
            mode: 0o644,
            mtime_ns: 8,
            ranges: vec![(0, ByteBuf::from(b"abc".to_vec()))],
        };
        j.push(8, data.clone());
        j.flush().unwrap();
        let back = read(&path).unwrap().unwrap();
        assert_eq!(back.header, header);
        assert_eq!(back.records.len(), 2);
        assert_eq!(back.records[1].op, data);
        assert_eq!(back.torn, 0);
        // a record cut short, then one damaged: both end the log
        let mut bytes = std::fs::read(&path).unwrap();
        let whole = bytes.len();
        bytes.truncate(whole - 2);
        std::fs::write(&path, &bytes).unwrap();
        let back = read(&path).unwrap().unwrap();
        assert_eq!(back.records, vec![Record { t: 7, op: unlink }]);
        assert!(back.torn > 0);
        // a commit empties it, and an empty log is no log
        j.reset(base()).unwrap();
        assert!(read(&path).unwrap().is_none());
    }
}
