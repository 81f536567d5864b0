//! Leaves read in place: a directory's entries with their names (and
//! extended attributes) borrowed from the node's bytes, for readers that
//! walk a whole tree and keep little of each entry.
//!
//! The encoding is the one [`Node`](super::Node) has: postcard writes a
//! `Vec<u8>` and a `&[u8]` alike (a length, then the bytes), so the same
//! bytes decode either way. Listing a million files this way allocates a
//! million fewer names (measured in `bench/results/NOTES.md`).

use serde::Deserialize;

use super::node::{check_children, check_entry, header, Child, Content};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::store::blobs::BlobStore;

/// One name in a directory, borrowed from its leaf's bytes.
#[derive(Debug, Deserialize)]
pub struct EntryView<'a> {
    /// File name bytes.
    #[serde(borrow)]
    pub name: &'a [u8],
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, ns since the Unix epoch.
    pub mtime_ns: i64,
    /// What the name holds.
    pub content: Content,
    /// Extended attributes as (name, value).
    #[serde(borrow)]
    pub xattrs: Vec<(&'a [u8], &'a [u8])>,
}

/// Version 1 of [`EntryView`] (no extended attributes).
#[derive(Deserialize)]
struct EntryViewV1<'a> {
    #[serde(borrow)]
    name: &'a [u8],
    mode: u32,
    uid: u32,
    gid: u32,
    mtime_ns: i64,
    content: Content,
}

/// One node, its leaf entries borrowed.
#[derive(Deserialize)]
pub(super) enum NodeView<'a> {
    Leaf(#[serde(borrow)] Vec<EntryView<'a>>),
    Interior(Vec<Child>),
}

/// Version 1 of [`NodeView`].
#[derive(Deserialize)]
enum NodeViewV1<'a> {
    Leaf(#[serde(borrow)] Vec<EntryViewV1<'a>>),
    Interior(Vec<Child>),
}

/// Decodes and checks a node as [`decode`](super::decode) does, leaf
/// entries borrowed from `bytes`.
pub(super) fn decode_view(bytes: &[u8]) -> Result<NodeView<'_>> {
    let bad = |reason: String| Error::corrupt("tree node", reason);
    let undecodable = |e: postcard::Error| bad(format!("undecodable: {e}"));
    let version = header(bytes)?;
    let body = &bytes[3..];
    let (node, rest) = if version == 1 {
        let (node, rest) = postcard::take_from_bytes::<NodeViewV1>(body).map_err(undecodable)?;
        (from_v1(node), rest)
    } else {
        postcard::take_from_bytes::<NodeView>(body).map_err(undecodable)?
    };
    if !rest.is_empty() {
        return Err(bad(format!("{} trailing bytes", rest.len())));
    }
    match &node {
        NodeView::Leaf(entries) => {
            let mut prev: Option<&[u8]> = None;
            for e in entries {
                let xattrs = e.xattrs.iter().map(|(n, _)| *n);
                check_entry(prev, e.name, xattrs, &e.content).map_err(bad)?;
                prev = Some(e.name);
            }
        }
        NodeView::Interior(children) => check_children(children).map_err(bad)?,
    }
    Ok(node)
}

fn from_v1(node: NodeViewV1<'_>) -> NodeView<'_> {
    match node {
        NodeViewV1::Leaf(entries) => NodeView::Leaf(
            entries
                .into_iter()
                .map(|e| EntryView {
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
        NodeViewV1::Interior(children) => NodeView::Interior(children),
    }
}

/// Calls `f` with the entries of each leaf of the directory whose root
/// node is `tree`, in name order, one leaf's bytes in memory at a time.
pub fn each_leaf_view(
    store: &BlobStore,
    tree: &ObjectId,
    f: &mut impl FnMut(Vec<EntryView<'_>>) -> Result<()>,
) -> Result<()> {
    walk(store, tree, 0, f)
}

fn walk(
    store: &BlobStore,
    id: &ObjectId,
    depth: u32,
    f: &mut impl FnMut(Vec<EntryView<'_>>) -> Result<()>,
) -> Result<()> {
    if depth > 64 {
        return Err(Error::corrupt(
            format!("tree node {id}"),
            "directory tree deeper than 64 levels",
        ));
    }
    let bytes = store.get(id)?;
    let named = |e: Error| match e {
        Error::Corrupt { reason, .. } => Error::corrupt(format!("tree node {id}"), reason),
        other => other,
    };
    match decode_view(&bytes).map_err(named)? {
        NodeView::Leaf(entries) => f(entries),
        NodeView::Interior(children) => children
            .iter()
            .try_for_each(|c| walk(store, &c.node, depth + 1, f)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::node::{decode, encode, ChunkRef, Entry, Node};
    use super::*;

    fn entry(name: &str, xattrs: Vec<(Vec<u8>, Vec<u8>)>, content: Content) -> Entry {
        Entry {
            name: name.as_bytes().to_vec(),
            mode: 0o640,
            uid: 7,
            gid: 8,
            mtime_ns: -5,
            content,
            xattrs,
        }
    }

    fn file(bytes: &[u8]) -> Content {
        let chunk = ChunkRef {
            id: ObjectId::of(bytes),
            len: bytes.len() as u32,
        };
        Content::File {
            size: bytes.len() as u64,
            chunks: if bytes.is_empty() {
                vec![]
            } else {
                vec![chunk]
            },
        }
    }

    /// The entries `decode` gives, made again from their views.
    fn owned(bytes: &[u8]) -> Vec<Entry> {
        let NodeView::Leaf(views) = decode_view(bytes).unwrap() else {
            panic!("a leaf")
        };
        views
            .into_iter()
            .map(|v| Entry {
                name: v.name.to_vec(),
                mode: v.mode,
                uid: v.uid,
                gid: v.gid,
                mtime_ns: v.mtime_ns,
                content: v.content,
                xattrs: v
                    .xattrs
                    .iter()
                    .map(|(n, x)| (n.to_vec(), x.to_vec()))
                    .collect(),
            })
            .collect()
    }

    #[test]
    fn a_view_holds_what_decode_gives() {
        let leaf = Node::Leaf(vec![
            entry("a", vec![(b"user.k".to_vec(), b"v".to_vec())], file(b"abc")),
            entry("b", vec![], Content::Symlink(b"a".to_vec())),
            entry("c", vec![], file(b"")),
        ]);
        let bytes = encode(&leaf);
        let Node::Leaf(want) = decode(&bytes).unwrap() else {
            panic!("a leaf")
        };
        assert_eq!(owned(&bytes), want);
    }

    #[test]
    fn a_damaged_leaf_is_refused_as_decode_refuses_it() {
        let leaf = Node::Leaf(vec![
            entry("b", vec![], file(b"x")),
            entry("a", vec![], file(b"y")),
        ]);
        let bytes = encode(&leaf);
        assert!(decode(&bytes).is_err());
        let err = decode_view(&bytes).err().expect("refused");
        assert!(err.to_string().contains("ascending"), "{err}");
        let mut cut = encode(&Node::Leaf(vec![entry("a", vec![], file(b"x"))]));
        cut.push(0);
        assert!(decode_view(&cut).is_err());
        assert!(decode_view(b"ST\x09").is_err());
        assert!(decode_view(b"S").is_err());
        assert!(decode_view(b"").is_err());
    }
}
