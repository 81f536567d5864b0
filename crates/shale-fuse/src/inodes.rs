//! The inode table: what each inode number the kernel holds stands for.

use std::collections::HashMap;
use std::sync::Arc;

use shale_core::tree::Entry;
use shale_core::ObjectId;

/// What an inode is.
#[derive(Clone, Debug)]
pub enum Node {
    /// The pool root: one directory per volume.
    PoolRoot,
    /// The root directory of a volume (live: resolved on each access) or
    /// of a snapshot (fixed).
    VolumeRoot {
        volume: String,
        snapshot: Option<String>,
    },
    /// A volume's `.snapshot` directory.
    SnapshotDir { volume: String },
    /// A directory, file or symlink inside a tree; `frozen` when it is
    /// inside a snapshot, whose names can never change.
    Entry { entry: Arc<Entry>, frozen: bool },
}

/// Inode numbers, given out on lookup and kept for the life of the mount.
pub struct Inodes {
    nodes: Vec<Node>,
    by_name: HashMap<(u64, Vec<u8>, Option<ObjectId>), u64>,
}

impl Inodes {
    /// A table whose root is `root`.
    pub fn new(root: Node) -> Self {
        Inodes {
            nodes: vec![root],
            by_name: HashMap::new(),
        }
    }

    /// Inode numbers given out so far.
    pub fn count(&self) -> u64 {
        self.nodes.len() as u64
    }

    /// The node of an inode.
    pub fn get(&self, ino: u64) -> Option<&Node> {
        self.nodes.get(ino.checked_sub(1)? as usize)
    }

    /// The inode for `name` under `parent` standing for `node`; `version`
    /// distinguishes different contents under one name (a tree entry's
    /// identity), so a changed file gets a new inode.
    pub fn intern(
        &mut self,
        parent: u64,
        name: &[u8],
        version: Option<ObjectId>,
        node: Node,
    ) -> u64 {
        let key = (parent, name.to_vec(), version);
        if let Some(&ino) = self.by_name.get(&key) {
            return ino;
        }
        self.nodes.push(node);
        let ino = self.nodes.len() as u64;
        self.by_name.insert(key, ino);
        ino
    }
}
