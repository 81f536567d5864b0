//! Reading the trees of a directory's subdirectories ahead, in parallel.
//!
//! A walk lists a directory, then each of its subdirectories; and a
//! listing with attributes needs each subdirectory's tree to count its own
//! subdirectories (`nlink`). Read one node at a time on the session
//! thread, a cold walk of a million files in a thousand directories waited
//! on 18,000 node reads in a row, each decoded while the other core sat
//! idle. When a directory is listed, the trees of its subdirectories that
//! are not in memory are read by a few threads at once (disk or network
//! reads overlap, decoding uses every core), up to a thousand trees and half
//! the node cache.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::*;

/// Threads reading trees at once (reads wait on the disk or network more
/// than they compute).
const THREADS: usize = 8;
/// Fewer trees than this are left to be read when needed.
const MIN_TREES: usize = 16;
/// At most this many trees are read ahead per listing: the session thread
/// waits for them (on an object-store pool a node is a request).
const MAX_TREES: usize = 1024;

impl State {
    /// Reads the nodes of `trees` (directory trees) that are not cached
    /// into the node cache; stops at [`MAX_TREES`] trees or half the cache. Errors are left for
    /// the reads that need the nodes to report.
    pub(super) fn preload(&mut self, trees: &[ObjectId]) {
        let trees: Vec<ObjectId> = trees
            .iter()
            .filter(|t| !self.nodes.contains_key(*t))
            .take(MAX_TREES)
            .copied()
            .collect();
        if trees.len() < MIN_TREES {
            return;
        }
        if self.nodes.len() + trees.len() > NODE_CACHE {
            self.nodes.clear();
        }
        let budget = NODE_CACHE / 2;
        let loaded = AtomicUsize::new(0);
        let next = AtomicUsize::new(0);
        let found = Mutex::new(Vec::new());
        let blobs = self.pool.blobs();
        std::thread::scope(|s| {
            for _ in 0..THREADS.min(trees.len()) {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    while loaded.load(Ordering::Relaxed) < budget {
                        let Some(tree) = trees.get(next.fetch_add(1, Ordering::Relaxed)) else {
                            break;
                        };
                        read_tree(blobs, tree, &mut mine, &loaded);
                    }
                    found.lock().unwrap_or_else(|p| p.into_inner()).extend(mine);
                });
            }
        });
        let found = found.into_inner().unwrap_or_else(|p| p.into_inner());
        self.nodes.extend(found);
    }
}

/// Every node of one tree into `out` (as far as they can be read).
fn read_tree(
    blobs: &shale_core::store::blobs::BlobStore,
    tree: &ObjectId,
    out: &mut Vec<(ObjectId, Arc<TreeNode>)>,
    loaded: &AtomicUsize,
) {
    let mut stack = vec![*tree];
    while let Some(id) = stack.pop() {
        let Ok(node) = load_node(blobs, &id) else {
            return;
        };
        if let TreeNode::Interior(children) = &node {
            stack.extend(children.iter().map(|c| c.node));
        }
        out.push((id, Arc::new(node)));
        loaded.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_a_directory_reads_its_subdirectories_trees_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        for d in 0..MIN_TREES + 4 {
            for f in 0..3 {
                let path = src.join(format!("d{d:02}/sub/f{f}"));
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, format!("{d}/{f}")).unwrap();
            }
        }
        let pool = Pool::init(&dir.path().join("pool")).unwrap();
        pool.create_volume_from("v", &src, None, None, Default::default())
            .unwrap();
        let target = Target::Volume {
            volume: "v".into(),
            snapshot: None,
        };
        let upper = dir.path().join("upper");
        std::fs::create_dir_all(&upper).unwrap();
        let mut st = State::new(pool, target, true, false, upper, dir.path()).unwrap();
        let root = fuser::INodeNo::ROOT.0;
        let fh = st.open_dir(root).unwrap();
        assert!(
            st.nodes.is_empty(),
            "nothing is read before the first READDIR"
        );
        let names = st.listing(root, fh).unwrap().len() - 2;
        assert_eq!(names, MIN_TREES + 4);
        // The root and each subdirectory's tree; not the trees below those.
        assert_eq!(st.nodes.len(), 1 + MIN_TREES + 4);
        let d00 = st.child(root, b"d00").unwrap();
        let cached = st.nodes.len();
        assert_eq!(
            st.subdirs(d00).unwrap(),
            1,
            "counted from the read-ahead tree"
        );
        assert_eq!(st.nodes.len(), cached, "nothing read again");
        assert_eq!(st.listing(root, fh + 1), Err(libc::EBADF));
    }
}
