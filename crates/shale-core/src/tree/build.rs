//! Building a directory's nodes from its sorted entries.

use super::node::{encode, Child, DirRef, Entry, Node};
use crate::error::Result;
use crate::id::ObjectId;
use crate::store::blobs::BlobWriter;
use crate::store::pack::BlobKind;

/// Average number of entries per leaf (a leaf ends after an entry whose name
/// hash is 0 modulo this).
const LEAF_TARGET: u32 = 64;
/// Hard cap on entries per node, against pathological names.
const NODE_MAX: usize = 512;
/// Average number of children per interior node.
const FANOUT: u32 = 64;

/// Whether a node ends after the item named `name` at `level`.
///
/// The boundary depends on the name alone, so inserting or changing one
/// entry moves no boundary but its own: the other nodes keep their bytes
/// and their ids, and are not written again.
fn is_boundary(level: u8, name: &[u8], target: u32) -> bool {
    let mut h = blake3::Hasher::new();
    h.update(&[level]);
    h.update(name);
    let b = h.finalize();
    let word = u32::from_le_bytes([
        b.as_bytes()[0],
        b.as_bytes()[1],
        b.as_bytes()[2],
        b.as_bytes()[3],
    ]);
    word.is_multiple_of(target)
}

fn store_node(w: &BlobWriter, node: &Node) -> Result<ObjectId> {
    w.put(BlobKind::Tree, &encode(node))
}

/// Builds a directory's nodes from entries pushed in name order, holding
/// only the current leaf and one [`Child`] per finished leaf in memory.
pub struct DirBuilder<'a> {
    writer: &'a BlobWriter,
    leaf: Vec<Entry>,
    leaves: Vec<Child>,
    count: u64,
    /// Leaves of the directory's last version that the current leaf's
    /// entries come from: the bases of its delta (see [`DirBuilder::near`]).
    bases: Vec<ObjectId>,
}

impl<'a> DirBuilder<'a> {
    /// Starts an empty directory.
    pub fn new(writer: &'a BlobWriter) -> Self {
        DirBuilder {
            writer,
            leaf: Vec::new(),
            leaves: Vec::new(),
            count: 0,
            bases: Vec::new(),
        }
    }

    /// Notes leaves of the directory's last version whose entries come
    /// next: a leaf written again after a small change (a large file's
    /// chunk list with one chunk edited) is then stored as a delta of them
    /// where the pool allows it.
    pub fn near(&mut self, leaves: Vec<ObjectId>) {
        self.bases.extend(leaves);
    }

    /// Adds the next entry; its name must sort after every earlier one.
    pub fn push(&mut self, entry: Entry) -> Result<()> {
        if let Some(last) = self
            .leaf
            .last()
            .map(|e| &e.name)
            .or(self.leaves.last().map(|c| &c.first))
        {
            if *last >= entry.name {
                return Err(crate::error::Error::InvalidArgument(format!(
                    "directory entries out of order at {:?}",
                    String::from_utf8_lossy(&entry.name)
                )));
            }
        }
        let cut = is_boundary(0, &entry.name, LEAF_TARGET);
        self.leaf.push(entry);
        self.count += 1;
        if cut || self.leaf.len() >= NODE_MAX {
            self.flush_leaf()?;
        }
        Ok(())
    }

    fn flush_leaf(&mut self) -> Result<()> {
        let leaf = std::mem::take(&mut self.leaf);
        let first = leaf[0].name.clone();
        let bytes = leaf.iter().map(Entry::bytes).sum();
        let files = leaf.iter().map(Entry::files).sum();
        let entries = leaf.len() as u64;
        let node = self
            .writer
            .put_near(BlobKind::Tree, &encode(&Node::Leaf(leaf)), &self.bases)?;
        // The last leaf noted may hold the next entries too.
        let last = self.bases.pop();
        self.bases.clear();
        self.bases.extend(last);
        self.leaves.push(Child {
            first,
            node,
            entries,
            bytes,
            files,
        });
        Ok(())
    }

    /// Stores the remaining nodes and returns the directory's root.
    pub fn finish(mut self) -> Result<DirRef> {
        if !self.leaf.is_empty() {
            self.flush_leaf()?;
        }
        let count = self.count;
        let w = self.writer;
        let mut level = self.leaves;
        if level.is_empty() {
            let tree = store_node(w, &Node::Leaf(Vec::new()))?;
            return Ok(DirRef {
                tree,
                bytes: 0,
                files: 0,
                entries: 0,
            });
        }
        let mut depth = 1u8;
        while level.len() > 1 {
            let mut upper = Vec::new();
            let mut group: Vec<Child> = Vec::new();
            let last = level.len() - 1;
            for (i, child) in level.into_iter().enumerate() {
                let cut = is_boundary(depth, &child.first, FANOUT);
                group.push(child);
                if cut || group.len() >= NODE_MAX || i == last {
                    let first = group[0].first.clone();
                    let entries = group.iter().map(|c| c.entries).sum();
                    let bytes = group.iter().map(|c| c.bytes).sum();
                    let files = group.iter().map(|c| c.files).sum();
                    let node = store_node(w, &Node::Interior(std::mem::take(&mut group)))?;
                    upper.push(Child {
                        first,
                        node,
                        entries,
                        bytes,
                        files,
                    });
                }
            }
            level = upper;
            depth = depth.saturating_add(1);
        }
        let root = level.pop().expect("one node remains");
        Ok(DirRef {
            tree: root.node,
            bytes: root.bytes,
            files: root.files,
            entries: count,
        })
    }
}

/// Stores the nodes of a directory holding `entries` (sorted by name,
/// unique) and returns a reference to its root node.
pub fn build_dir(w: &BlobWriter, entries: Vec<Entry>) -> Result<DirRef> {
    let mut b = DirBuilder::new(w);
    for e in entries {
        b.push(e)?;
    }
    b.finish()
}
