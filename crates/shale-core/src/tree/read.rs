//! Reading directories back from their nodes.

use super::node::{decode, Content, Entry, Node};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::store::blobs::BlobStore;

/// Loads and decodes one node, naming it in any error.
pub fn load_node(store: &BlobStore, id: &ObjectId) -> Result<Node> {
    let bytes = store.get(id)?;
    decode(&bytes).map_err(|e| match e {
        Error::Corrupt { reason, .. } => Error::corrupt(format!("tree node {id}"), reason),
        other => other,
    })
}

/// All entries of the directory whose root node is `tree`, in name order.
pub fn read_dir(store: &BlobStore, tree: &ObjectId) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    each_leaf(store, tree, 0, &mut |_, entries| out.extend(entries))?;
    Ok(out)
}

/// The leaf node ids of a directory, in order (every node is read: only
/// reading a node tells whether it is a leaf).
pub fn dir_leaves(store: &BlobStore, tree: &ObjectId) -> Result<Vec<ObjectId>> {
    let mut leaves = Vec::new();
    each_leaf(store, tree, 0, &mut |id, _| leaves.push(id))?;
    Ok(leaves)
}

/// Calls `f` with each leaf below node `id` and its entries, in order,
/// each node read once.
fn each_leaf(
    store: &BlobStore,
    id: &ObjectId,
    depth: u32,
    f: &mut impl FnMut(ObjectId, Vec<Entry>),
) -> Result<()> {
    if depth > 64 {
        return Err(Error::corrupt(
            format!("tree node {id}"),
            "directory tree deeper than 64 levels",
        ));
    }
    match load_node(store, id)? {
        Node::Leaf(entries) => f(*id, entries),
        Node::Interior(children) => {
            for c in children {
                each_leaf(store, &c.node, depth + 1, f)?;
            }
        }
    }
    Ok(())
}

/// Walks a directory's entries in name order, one leaf in memory at a time.
pub struct DirCursor<'a> {
    store: &'a BlobStore,
    leaves: std::vec::IntoIter<ObjectId>,
    current: std::collections::VecDeque<Entry>,
    /// Leaves read since [`DirCursor::take_loaded`] last asked.
    loaded: Vec<ObjectId>,
}

impl<'a> DirCursor<'a> {
    /// A cursor over the directory whose root node is `tree` (or an empty one).
    pub fn new(store: &'a BlobStore, tree: Option<&ObjectId>) -> Result<Self> {
        let leaves = match tree {
            Some(t) => dir_leaves(store, t)?,
            None => Vec::new(),
        };
        Ok(DirCursor {
            store,
            leaves: leaves.into_iter(),
            current: Default::default(),
            loaded: Vec::new(),
        })
    }

    /// The next entry without taking it.
    pub fn peek(&mut self) -> Result<Option<&Entry>> {
        while self.current.is_empty() {
            match self.leaves.next() {
                Some(leaf) => {
                    self.current = leaf_entries(self.store, &leaf)?.into();
                    self.loaded.push(leaf);
                }
                None => return Ok(None),
            }
        }
        Ok(self.current.front())
    }

    /// The leaves read since the last call: what a new version of the
    /// directory is made from (see [`DirBuilder::near`](super::DirBuilder::near)).
    pub fn take_loaded(&mut self) -> Vec<ObjectId> {
        std::mem::take(&mut self.loaded)
    }

    /// Takes the next entry.
    pub fn next_entry(&mut self) -> Result<Option<Entry>> {
        self.peek()?;
        Ok(self.current.pop_front())
    }
}

/// The entries of one leaf node.
pub fn leaf_entries(store: &BlobStore, leaf: &ObjectId) -> Result<Vec<Entry>> {
    match load_node(store, leaf)? {
        Node::Leaf(entries) => Ok(entries),
        Node::Interior(_) => Err(Error::corrupt(
            format!("tree node {leaf}"),
            "expected a leaf",
        )),
    }
}

/// Finds one name in a directory, reading O(log n) nodes.
fn find(store: &BlobStore, tree: &ObjectId, name: &[u8]) -> Result<Option<Entry>> {
    let mut id = *tree;
    for _ in 0..64 {
        match load_node(store, &id)? {
            Node::Leaf(entries) => {
                return Ok(entries
                    .binary_search_by(|e| e.name.as_slice().cmp(name))
                    .ok()
                    .map(|i| entries[i].clone()));
            }
            Node::Interior(children) => {
                let idx = children.partition_point(|c| c.first.as_slice() <= name);
                if idx == 0 {
                    return Ok(None);
                }
                id = children[idx - 1].node;
            }
        }
    }
    Err(Error::corrupt(
        format!("tree node {tree}"),
        "directory tree deeper than 64 levels",
    ))
}

/// Looks up a path (as components) below the directory `root`.
pub fn lookup(store: &BlobStore, root: &ObjectId, path: &[Vec<u8>]) -> Result<Option<Entry>> {
    let mut dir = *root;
    let mut found = None;
    for (i, comp) in path.iter().enumerate() {
        let Some(entry) = find(store, &dir, comp)? else {
            return Ok(None);
        };
        if i + 1 < path.len() {
            match &entry.content {
                Content::Dir(d) => dir = d.tree,
                _ => return Ok(None),
            }
        }
        found = Some(entry);
    }
    Ok(found)
}

/// Splits a path inside a volume into components. `.` and empty components
/// are dropped; `..` is refused.
pub fn split_path(path: &str) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                return Err(Error::BadPath(format!(
                    "path '{path}' inside a volume may not contain '..'"
                )))
            }
            c if c.contains('\0') => {
                return Err(Error::BadPath(format!("path {path:?} contains a NUL byte")))
            }
            c => out.push(c.as_bytes().to_vec()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::{build_dir, Content, Entry};
    use super::*;

    use crate::test_store as store;

    fn link(name: String) -> Entry {
        Entry {
            name: name.into_bytes(),
            mode: 0o777,
            uid: 0,
            gid: 0,
            mtime_ns: 0,
            content: Content::Symlink(b"t".to_vec()),
            xattrs: Vec::new(),
        }
    }

    #[test]
    fn big_directory_splits_and_changes_locally() {
        let (store, _d) = store();
        let names: Vec<String> = (0..20_000).map(|i| format!("file{i:06}")).collect();
        let w = store.writer("test").unwrap();
        let dir = build_dir(&w, names.iter().cloned().map(link).collect()).unwrap();
        let first = w.finish().unwrap();
        assert_eq!(dir.entries, 20_000);
        let leaves = dir_leaves(&store, &dir.tree).unwrap();
        assert!(leaves.len() > 100, "only {} leaves", leaves.len());
        let back = read_dir(&store, &dir.tree).unwrap();
        assert_eq!(back.len(), 20_000);
        let mut viewed = Vec::new();
        crate::tree::each_leaf_view(&store, &dir.tree, &mut |entries| {
            viewed.extend(entries.iter().map(|e| e.name.to_vec()));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            viewed,
            names
                .iter()
                .map(|n| n.as_bytes().to_vec())
                .collect::<Vec<_>>()
        );
        assert_eq!(
            lookup(&store, &dir.tree, &[b"file012345".to_vec()])
                .unwrap()
                .unwrap()
                .name,
            b"file012345"
        );
        assert!(lookup(&store, &dir.tree, &[b"nope".to_vec()])
            .unwrap()
            .is_none());

        // change one entry: only a leaf and its ancestors are new
        let mut changed = back.clone();
        changed[777].mtime_ns = 42;
        let w = store.writer("test").unwrap();
        build_dir(&w, changed).unwrap();
        let second = w.finish().unwrap();
        assert!(second.new_blobs <= 4, "{} new nodes", second.new_blobs);
        assert!(
            second.new_bytes * 50 < first.new_bytes,
            "{second:?} vs {first:?}"
        );
    }

    #[test]
    fn paths() {
        assert_eq!(
            split_path("/a//b/./c/").unwrap(),
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
        );
        assert!(split_path("a/../b").is_err());
        assert!(split_path("").unwrap().is_empty());
    }
}
