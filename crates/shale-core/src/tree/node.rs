//! Tree node types and their encoding.
//!
//! A node is encoded as `b"ST"`, a version byte, then the node in the
//! postcard format (see `docs/FORMAT.md`). Its id is the BLAKE3 hash of
//! that encoding.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::ObjectId;

/// The tree node format version this build writes. It also reads version
/// 1, whose entries have no extended attributes.
pub const TREE_VERSION: u8 = 2;
const MAGIC: &[u8; 2] = b"ST";

/// One node of a directory's tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Node {
    /// Directory entries, sorted by name bytes.
    Leaf(Vec<Entry>),
    /// Children covering consecutive runs of entries, sorted by first name.
    Interior(Vec<Child>),
}

/// A child of an interior node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Child {
    /// Name of the first entry below it.
    pub first: Vec<u8>,
    /// The child node.
    pub node: ObjectId,
    /// Directory entries below it.
    pub entries: u64,
    /// Logical bytes of regular files below it (recursively).
    pub bytes: u64,
    /// Regular files below it (recursively).
    pub files: u64,
}

/// One name in a directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// File name bytes (any bytes but `/` and NUL; never `.` or `..`).
    pub name: Vec<u8>,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, ns since the Unix epoch.
    pub mtime_ns: i64,
    /// What the name holds.
    pub content: Content,
    /// Extended attributes as (name, value), sorted by name, names unique.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Version 1 of [`Entry`]: the same, without extended attributes.
#[derive(Deserialize)]
struct EntryV1 {
    name: Vec<u8>,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime_ns: i64,
    content: Content,
}

/// Version 1 of [`Node`].
#[derive(Deserialize)]
enum NodeV1 {
    Leaf(Vec<EntryV1>),
    Interior(Vec<Child>),
}

impl From<NodeV1> for Node {
    fn from(n: NodeV1) -> Node {
        match n {
            NodeV1::Leaf(entries) => Node::Leaf(
                entries
                    .into_iter()
                    .map(|e| Entry {
                        name: e.name,
                        mode: e.mode,
                        uid: e.uid,
                        gid: e.gid,
                        mtime_ns: e.mtime_ns,
                        content: e.content,
                        xattrs: Vec::new(),
                    })
                    .collect(),
            ),
            NodeV1::Interior(children) => Node::Interior(children),
        }
    }
}

/// The content of an entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Content {
    /// A regular file: its chunks in order.
    File {
        /// Length in bytes (the sum of the chunk lengths).
        size: u64,
        /// Chunks, in file order.
        chunks: Vec<ChunkRef>,
    },
    /// A directory.
    Dir(DirRef),
    /// A symbolic link and its target bytes (never followed).
    Symlink(Vec<u8>),
    /// A FIFO, socket or device node (version 2 on).
    Special(Special),
}

/// A file that is neither regular, directory nor symlink.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Special {
    /// Which kind.
    pub kind: SpecialKind,
    /// Device number, for device nodes (0 otherwise).
    pub rdev: u64,
}

/// The kinds of special file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpecialKind {
    /// A named pipe.
    Fifo,
    /// A Unix socket (its name only: a socket has no content).
    Socket,
    /// A character device node.
    CharDevice,
    /// A block device node.
    BlockDevice,
}

impl SpecialKind {
    /// The `S_IF*` file type bits.
    pub fn mode_bits(self) -> u32 {
        match self {
            SpecialKind::Fifo => libc::S_IFIFO,
            SpecialKind::Socket => libc::S_IFSOCK,
            SpecialKind::CharDevice => libc::S_IFCHR,
            SpecialKind::BlockDevice => libc::S_IFBLK,
        }
    }

    /// The kind for `S_IF*` file type bits, if special.
    pub fn from_mode(mode: u32) -> Option<SpecialKind> {
        match mode & libc::S_IFMT {
            libc::S_IFIFO => Some(SpecialKind::Fifo),
            libc::S_IFSOCK => Some(SpecialKind::Socket),
            libc::S_IFCHR => Some(SpecialKind::CharDevice),
            libc::S_IFBLK => Some(SpecialKind::BlockDevice),
            _ => None,
        }
    }
}

/// A chunk of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    /// Chunk id.
    pub id: ObjectId,
    /// Chunk length.
    pub len: u32,
}

/// A directory tree by its root node, with totals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirRef {
    /// Root node of the directory.
    pub tree: ObjectId,
    /// Logical bytes of regular files, recursively.
    pub bytes: u64,
    /// Regular files, recursively.
    pub files: u64,
    /// Direct entries.
    pub entries: u64,
}

impl Entry {
    /// Logical bytes of regular files under this entry.
    pub fn bytes(&self) -> u64 {
        match &self.content {
            Content::File { size, .. } => *size,
            Content::Dir(d) => d.bytes,
            Content::Symlink(_) | Content::Special(_) => 0,
        }
    }

    /// Regular files under this entry (1 for a file).
    pub fn files(&self) -> u64 {
        match &self.content {
            Content::File { .. } => 1,
            Content::Dir(d) => d.files,
            Content::Symlink(_) | Content::Special(_) => 0,
        }
    }

    /// Short word for the entry's type.
    pub fn kind_name(&self) -> &'static str {
        match self.content {
            Content::File { .. } => "file",
            Content::Dir(_) => "dir",
            Content::Symlink(_) => "symlink",
            Content::Special(s) => match s.kind {
                SpecialKind::Fifo => "fifo",
                SpecialKind::Socket => "socket",
                SpecialKind::CharDevice => "char device",
                SpecialKind::BlockDevice => "block device",
            },
        }
    }
}

/// Whether `name` may appear in a directory.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

/// Encodes a node.
pub fn encode(node: &Node) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(MAGIC);
    out.push(TREE_VERSION);
    // Serialising plain data into a Vec cannot fail.
    postcard::to_extend(node, out).unwrap_or_default()
}

/// Decodes and checks a node: names valid and strictly ascending, sizes
/// consistent with chunk lists.
pub fn decode(bytes: &[u8]) -> Result<Node> {
    let bad = |reason: String| Error::corrupt("tree node", reason);
    let version = header(bytes)?;
    let undecodable = |e: postcard::Error| bad(format!("undecodable: {e}"));
    let (node, rest): (Node, &[u8]) = if version == 1 {
        postcard::take_from_bytes::<NodeV1>(&bytes[3..])
            .map(|(n, rest)| (n.into(), rest))
            .map_err(undecodable)?
    } else {
        postcard::take_from_bytes(&bytes[3..]).map_err(undecodable)?
    };
    if !rest.is_empty() {
        return Err(bad(format!("{} trailing bytes", rest.len())));
    }
    match &node {
        Node::Leaf(entries) => {
            let mut prev: Option<&[u8]> = None;
            for e in entries {
                let xattrs = e.xattrs.iter().map(|(n, _)| n.as_slice());
                check_entry(prev, &e.name, xattrs, &e.content).map_err(bad)?;
                prev = Some(&e.name);
            }
        }
        Node::Interior(children) => check_children(children).map_err(bad)?,
    }
    Ok(node)
}

/// The format version of an encoded node, checked: 1 or [`TREE_VERSION`].
pub(super) fn header(bytes: &[u8]) -> Result<u8> {
    let bad = |reason: String| Error::corrupt("tree node", reason);
    if bytes.len() < 3 || &bytes[..2] != MAGIC {
        return Err(bad("missing tree node header".into()));
    }
    match bytes[2] {
        v @ (1 | TREE_VERSION) => Ok(v),
        v => Err(bad(format!(
            "unknown tree node version {v}; this shale reads versions 1 and {TREE_VERSION}: \
             upgrade shale"
        ))),
    }
}

/// Checks one leaf entry: its name valid and above `prev` (the name
/// before it), its extended attribute names sorted, unique and named, a
/// file's size the sum of its chunks.
pub(super) fn check_entry<'a>(
    prev: Option<&[u8]>,
    name: &[u8],
    mut xattr_names: impl Iterator<Item = &'a [u8]>,
    content: &Content,
) -> std::result::Result<(), String> {
    let shown = || String::from_utf8_lossy(name).into_owned();
    if !valid_name(name) {
        return Err(format!("invalid entry name {:?}", shown()));
    }
    if prev.is_some_and(|p| p >= name) {
        return Err("entries not in strictly ascending order".into());
    }
    let mut last: Option<&[u8]> = None;
    let ordered = xattr_names.all(|n| {
        let ok = !n.is_empty() && !n.contains(&0) && last.is_none_or(|l| l < n);
        last = Some(n);
        ok
    });
    if !ordered {
        return Err(format!(
            "extended attributes of {:?} not unique, sorted and named",
            shown()
        ));
    }
    if let Content::File { size, chunks } = content {
        let sum: u64 = chunks.iter().map(|c| c.len as u64).sum();
        if sum != *size || chunks.iter().any(|c| c.len == 0) {
            return Err(format!(
                "file {:?} size {size} does not match its chunks",
                shown()
            ));
        }
    }
    Ok(())
}

/// Checks an interior node's children: some, in strictly ascending order.
pub(super) fn check_children(children: &[Child]) -> std::result::Result<(), String> {
    if children.is_empty() {
        return Err("empty interior node".into());
    }
    if children.windows(2).any(|w| w[0].first >= w[1].first) {
        return Err("children not in strictly ascending order".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::view::{decode_view, NodeView};
    use super::*;

    fn entry(name: &str, content: Content) -> Entry {
        Entry {
            name: name.as_bytes().to_vec(),
            mode: 0o644,
            uid: 1000,
            gid: 1000,
            mtime_ns: 1_700_000_000_123_456_789,
            content,
            xattrs: Vec::new(),
        }
    }

    #[test]
    fn round_trip() {
        let leaf = Node::Leaf(vec![
            entry(
                "a",
                Content::File {
                    size: 3,
                    chunks: vec![ChunkRef {
                        id: ObjectId::of(b"abc"),
                        len: 3,
                    }],
                },
            ),
            entry(
                "b",
                Content::Dir(DirRef {
                    tree: ObjectId::of(b"t"),
                    bytes: 9,
                    files: 2,
                    entries: 2,
                }),
            ),
            Entry {
                xattrs: vec![
                    (b"user.a".to_vec(), b"1".to_vec()),
                    (b"user.b".to_vec(), vec![]),
                ],
                ..entry("c", Content::Symlink(b"../x".to_vec()))
            },
            entry(
                "d",
                Content::File {
                    size: 0,
                    chunks: vec![],
                },
            ),
            entry(
                "e",
                Content::Special(Special {
                    kind: SpecialKind::CharDevice,
                    rdev: 0x0103,
                }),
            ),
        ]);
        assert_eq!(decode(&encode(&leaf)).unwrap(), leaf);
        let interior = Node::Interior(vec![Child {
            first: b"a".to_vec(),
            node: ObjectId::of(b"n"),
            entries: 4,
            bytes: 12,
            files: 3,
        }]);
        assert_eq!(decode(&encode(&interior)).unwrap(), interior);
    }

    #[test]
    fn rejects_hostile_nodes() {
        for name in ["..", ".", "a/b", ""] {
            let n = Node::Leaf(vec![entry(name, Content::Symlink(vec![]))]);
            assert!(decode(&encode(&n)).is_err(), "{name:?} accepted");
        }
        let unsorted = Node::Leaf(vec![
            entry("b", Content::Symlink(vec![])),
            entry("a", Content::Symlink(vec![])),
        ]);
        assert!(decode(&encode(&unsorted)).is_err());
        let lying = Node::Leaf(vec![entry(
            "f",
            Content::File {
                size: 10,
                chunks: vec![],
            },
        )]);
        assert!(decode(&encode(&lying)).is_err());
        let unsorted_xattrs = Node::Leaf(vec![Entry {
            xattrs: vec![(b"user.b".to_vec(), vec![]), (b"user.a".to_vec(), vec![])],
            ..entry("a", Content::Symlink(vec![]))
        }]);
        assert!(decode(&encode(&unsorted_xattrs)).is_err());
        let mut bytes = encode(&Node::Leaf(vec![]));
        bytes[2] = 99;
        assert!(decode(&bytes).is_err());
        assert!(decode(b"ST").is_err());
    }

    /// Version 1 nodes, written by earlier builds, still read.
    #[test]
    fn reads_version_1() {
        #[derive(Serialize)]
        struct V1 {
            name: Vec<u8>,
            mode: u32,
            uid: u32,
            gid: u32,
            mtime_ns: i64,
            content: Content,
        }
        #[derive(Serialize)]
        enum N1 {
            Leaf(Vec<V1>),
        }
        let old = N1::Leaf(vec![V1 {
            name: b"x".to_vec(),
            mode: 0o600,
            uid: 1,
            gid: 2,
            mtime_ns: 3,
            content: Content::Symlink(b"t".to_vec()),
        }]);
        let mut bytes = b"ST\x01".to_vec();
        bytes.extend(postcard::to_allocvec(&old).unwrap());
        let want = Node::Leaf(vec![Entry {
            name: b"x".to_vec(),
            mode: 0o600,
            uid: 1,
            gid: 2,
            mtime_ns: 3,
            content: Content::Symlink(b"t".to_vec()),
            xattrs: vec![],
        }]);
        assert_eq!(decode(&bytes).unwrap(), want);
        // and read in place alike
        let NodeView::Leaf(viewed) = decode_view(&bytes).unwrap() else {
            panic!("a leaf")
        };
        let e = &viewed[0];
        assert_eq!(
            (e.name, e.mode, e.uid, e.gid, e.mtime_ns),
            (&b"x"[..], 0o600, 1, 2, 3)
        );
        assert_eq!(e.content, Content::Symlink(b"t".to_vec()));
        assert!(e.xattrs.is_empty());
    }
}
