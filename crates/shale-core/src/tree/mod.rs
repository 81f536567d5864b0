//! The tree layer: content-addressed Merkle trees of directories and files.
//!
//! A directory is a sorted list of [`Entry`]s. Small directories are one
//! leaf node; large ones are split into leaves at content-defined
//! boundaries (chosen by a hash of the entry name), with interior nodes
//! above them, so that changing one entry rewrites O(log n) small nodes.

mod build;
mod node;
mod read;
mod view;

pub use build::{build_dir, DirBuilder};
pub use node::{
    decode, encode, Child, ChunkRef, Content, DirRef, Entry, Node, Special, SpecialKind,
    TREE_VERSION,
};
pub use read::{dir_leaves, leaf_entries, load_node, lookup, read_dir, split_path, DirCursor};
pub use view::{each_leaf_view, EntryView};
