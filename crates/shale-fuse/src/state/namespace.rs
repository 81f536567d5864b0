//! Names: finding a name in a directory (its overlay, then its committed
//! tree), listing directories, and the volumes and snapshots a pool mount
//! shows at its top.

use super::*;

impl State {
    pub(super) fn node(&mut self, id: &ObjectId) -> Result<Arc<TreeNode>, Error> {
        if let Some(n) = self.nodes.get(id) {
            return Ok(n.clone());
        }
        let n = Arc::new(load_node(self.pool.blobs(), id)?);
        if self.nodes.len() >= NODE_CACHE {
            self.nodes.clear();
        }
        self.nodes.insert(*id, n.clone());
        Ok(n)
    }

    /// One name in a directory tree, through the node cache.
    pub fn find(&mut self, tree: &ObjectId, name: &[u8]) -> Result<Option<Entry>, Error> {
        let mut id = *tree;
        for _ in 0..64 {
            let node = self.node(&id)?;
            match node.as_ref() {
                TreeNode::Leaf(entries) => {
                    return Ok(entries
                        .binary_search_by(|e| e.name.as_slice().cmp(name))
                        .ok()
                        .map(|i| entries[i].clone()))
                }
                TreeNode::Interior(children) => {
                    let i = children.partition_point(|c| c.first.as_slice() <= name);
                    if i == 0 {
                        return Ok(None);
                    }
                    id = children[i - 1].node;
                }
            }
        }
        Err(Error::corrupt(
            format!("tree node {tree}"),
            "directory tree deeper than 64 levels",
        ))
    }

    /// Every entry of a directory tree, through the node cache.
    pub fn entries(&mut self, tree: &ObjectId) -> Result<Vec<Entry>, Error> {
        let mut out = Vec::new();
        self.each_entry(tree, |e| out.push(e.clone()))?;
        Ok(out)
    }

    /// Calls `f` on every entry of a directory tree, in name order,
    /// through the node cache (without copying them).
    pub fn each_entry(&mut self, tree: &ObjectId, mut f: impl FnMut(&Entry)) -> Result<(), Error> {
        let mut stack = vec![*tree];
        while let Some(id) = stack.pop() {
            match self.node(&id)?.as_ref() {
                TreeNode::Leaf(entries) => entries.iter().for_each(&mut f),
                TreeNode::Interior(children) => stack.extend(children.iter().rev().map(|c| c.node)),
            }
        }
        Ok(())
    }

    pub(super) fn base_has(&mut self, dir: u64, name: &[u8]) -> Result<bool, Errno> {
        let base = self.inode(dir)?.dir().and_then(|d| d.base);
        match base {
            Some(b) => Ok(self.find(&b.tree, name).map_err(|e| errno(&e))?.is_some()),
            None => Ok(false),
        }
    }

    // ---- names --------------------------------------------------------

    /// Loads a live volume (or returns its root) by name.
    pub(super) fn load_volume(&mut self, name: &str) -> Result<u64, Errno> {
        if let Some(v) = self.vols.get(name) {
            return Ok(v.root);
        }
        let row = self.pool.catalog().volume(name).map_err(|e| errno(&e))?;
        let mut root = self.volume_root_inode(&row, 1);
        root.parents = vec![fuser::INodeNo::ROOT.0];
        let writer = match self.claim_unless_logged(name).map_err(|e| errno(&e))? {
            Ok(claim) => claim,
            Err(holder) => {
                tracing::warn!("volume {name} is read-only in this mount: {holder} writes it");
                None
            }
        };
        let ino = self.table.add(root);
        let journal = writer.is_some().then(|| self.new_journal(name, &row, ino));
        self.vols.insert(
            name.to_string(),
            Vol {
                root: ino,
                generation: 1,
                committed: row.root,
                bytes: row.bytes,
                quota: row.quota,
                writer,
                journal,
            },
        );
        Ok(ino)
    }

    /// The inode of `name` in directory `parent`.
    pub fn child(&mut self, parent: u64, name: &[u8]) -> Result<u64, Errno> {
        if name.len() > NAME_MAX {
            return Err(libc::ENAMETOOLONG);
        }
        match &self.inode(parent)?.kind {
            Kind::PoolRoot => {
                let name = std::str::from_utf8(name).map_err(|_| libc::ENOENT)?;
                if shale_core::names::check_name(name).is_err() {
                    return Err(libc::ENOENT);
                }
                self.load_volume(name)
            }
            Kind::SnapshotDir { volume } => {
                let volume = volume.clone();
                let name = std::str::from_utf8(name).map_err(|_| libc::ENOENT)?;
                self.snapshot_child(parent, volume, name)
            }
            Kind::Dir(_) if name == SNAPSHOT_DIR && self.is_volume_root(parent) => {
                Ok(self.snapshot_dir(parent))
            }
            Kind::Dir(_) => self.dir_child(parent, name),
            _ => Err(libc::ENOTDIR),
        }
    }

    /// Snapshot `name` of `volume`, under the `.snapshot` directory `parent`.
    fn snapshot_child(&mut self, parent: u64, volume: String, name: &str) -> Result<u64, Errno> {
        let key = (volume.clone(), Some(name.to_string()));
        if let Some(&ino) = self.specials.get(&key) {
            // Snapshots can be deleted without telling the mount.
            if self.pool.catalog().snapshot(&volume, name).is_ok() {
                return Ok(ino);
            }
            self.specials.remove(&key);
            return Err(libc::ENOENT);
        }
        let snap = self
            .pool
            .catalog()
            .snapshot(&volume, name)
            .map_err(|e| errno(&e))?;
        let mut inode = snapshot_root(&snap);
        inode.parents = vec![parent];
        let ino = self.table.add(inode);
        self.specials.insert(key, ino);
        Ok(ino)
    }

    /// The `.snapshot` directory of the volume whose top is `parent`.
    fn snapshot_dir(&mut self, parent: u64) -> u64 {
        let volume = self.volume_of(parent).unwrap_or_else(|| Arc::from(""));
        let key = (volume.to_string(), None);
        if let Some(&ino) = self.specials.get(&key) {
            return ino;
        }
        let kind = Kind::SnapshotDir {
            volume: volume.to_string(),
        };
        let mut inode = special(kind, self.mounted_at, Owner::None);
        inode.parents = vec![parent];
        let ino = self.table.add(inode);
        self.specials.insert(key, ino);
        ino
    }

    /// `name` in directory `parent`: from its overlay, else its tree.
    fn dir_child(&mut self, parent: u64, name: &[u8]) -> Result<u64, Errno> {
        let p = self.inode(parent)?;
        let owner = p.owner.clone();
        let dir = p.dir().ok_or(libc::ENOTDIR)?;
        match dir.children.get(name) {
            Some(Slot::Ino(ino)) => return Ok(*ino),
            Some(Slot::Whiteout) => return Err(libc::ENOENT),
            None => {}
        }
        let base = dir.base.ok_or(libc::ENOENT)?;
        let entry = self
            .find(&base.tree, name)
            .map_err(|e| errno(&e))?
            .ok_or(libc::ENOENT)?;
        let ino = self.table.add(Inode::from_entry(&entry, parent, owner));
        if let Some(d) = self.inode_mut(parent)?.dir_mut() {
            d.children.insert(name.to_vec(), Slot::Ino(ino));
        }
        Ok(ino)
    }

    /// Opens directory `ino` to be listed, as handle `fh`.
    pub fn open_dir(&mut self, ino: u64) -> Result<u64, Errno> {
        match self.inode(ino)?.kind {
            Kind::PoolRoot | Kind::SnapshotDir { .. } | Kind::Dir(_) => {}
            _ => return Err(libc::ENOTDIR),
        }
        let fh = self.new_fh();
        self.listings.insert(fh, None);
        Ok(fh)
    }

    /// The listing of directory `ino`, open as `fh`, made at its first
    /// read: a listing the kernel keeps (a snapshot directory's) is not
    /// made again each time the directory is opened.
    pub fn listing(&mut self, ino: u64, fh: u64) -> Result<&Listing, Errno> {
        match self.listings.get(&fh) {
            None => return Err(libc::EBADF),
            Some(Some(_)) => {}
            Some(None) => {
                let listing = self.list(ino)?;
                self.listings.insert(fh, Some(listing));
            }
        }
        self.listings
            .get(&fh)
            .and_then(Option::as_ref)
            .ok_or(libc::EBADF)
    }

    /// A directory's listing: `.`, `..` and every name with its inode (a
    /// name the mount has not looked up gets a placeholder number, which
    /// `readdir` allows).
    pub fn list(&mut self, ino: u64) -> Result<Listing, Errno> {
        let parent = self.inode(ino)?.parents.first().copied().unwrap_or(ino);
        let mut out = vec![
            (ino, FileType::Directory, b".".to_vec()),
            (parent, FileType::Directory, b"..".to_vec()),
        ];
        let kind = match &self.inode(ino)?.kind {
            Kind::PoolRoot => 0,
            Kind::SnapshotDir { volume } => {
                let volume = volume.clone();
                let snaps = self
                    .pool
                    .catalog()
                    .snapshots(Some(&volume))
                    .map_err(|e| errno(&e))?;
                for s in snaps {
                    let child = self.child(ino, s.name.as_bytes())?;
                    out.push((child, FileType::Directory, s.name.into_bytes()));
                }
                return Ok(out);
            }
            Kind::Dir(_) => 2,
            _ => return Err(libc::ENOTDIR),
        };
        if kind == 0 {
            for v in self.pool.catalog().volumes().map_err(|e| errno(&e))? {
                let child = self.load_volume(&v.name)?;
                out.push((child, FileType::Directory, v.name.into_bytes()));
            }
            return Ok(out);
        }
        if self.show_snapshot_dir && self.is_volume_root(ino) {
            let child = self.child(ino, SNAPSHOT_DIR)?;
            out.push((child, FileType::Directory, SNAPSHOT_DIR.to_vec()));
        }
        let (base, children) = {
            let d = self.inode(ino)?.dir().ok_or(libc::ENOTDIR)?;
            (d.base, d.children.clone())
        };
        if children.is_empty() {
            // Nothing looked up or changed here yet: the tree alone (the
            // first listing of every directory of a walk).
            if let Some(b) = base {
                let mut subtrees = Vec::new();
                self.each_entry(&b.tree, |e| {
                    if let shale_core::tree::Content::Dir(d) = &e.content {
                        subtrees.push(d.tree);
                    }
                    out.push((placeholder_ino(ino, &e.name), entry_type(e), e.name.clone()))
                })
                .map_err(|e| errno(&e))?;
                // A walk lists them next; a listing with attributes counts
                // their subdirectories now.
                self.preload(&subtrees);
            }
            return Ok(out);
        }
        self.merge_changes(ino, base, children, &mut out)?;
        Ok(out)
    }

    /// Adds to `out` the names of directory `ino`: those the mount looked
    /// up or changed (`children`) merged, in name order, with the rest of
    /// its tree (`base`).
    fn merge_changes(
        &mut self,
        ino: u64,
        base: Option<DirRef>,
        children: std::collections::BTreeMap<Vec<u8>, Slot>,
        out: &mut Listing,
    ) -> Result<(), Errno> {
        let base_entries = match base {
            Some(b) => self.entries(&b.tree).map_err(|e| errno(&e))?,
            None => Vec::new(),
        };
        let mut kids = children.into_iter().peekable();
        let mut base_iter = base_entries.into_iter().peekable();
        loop {
            let take_kid = match (kids.peek(), base_iter.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((k, _)), Some(b)) => k.as_slice() <= b.name.as_slice(),
            };
            if take_kid {
                let Some((name, slot)) = kids.next() else {
                    break;
                };
                if base_iter.peek().is_some_and(|b| b.name == name) {
                    base_iter.next();
                }
                if let Slot::Ino(c) = slot {
                    if let Ok(i) = self.inode(c) {
                        out.push((c, file_type(i), name));
                    }
                }
            } else if let Some(e) = base_iter.next() {
                out.push((placeholder_ino(ino, &e.name), entry_type(&e), e.name));
            }
        }
        Ok(())
    }

    /// Number of subdirectories of a directory inode (for `nlink`).
    pub fn subdirs(&mut self, ino: u64) -> Result<u64, Errno> {
        let d = self.inode(ino)?.dir().ok_or(libc::ENOTDIR)?;
        if let Some(n) = d.subdirs {
            return Ok(n);
        }
        if let (Some(base), true) = (d.base, d.children.is_empty()) {
            // Counted in the tree, without listing.
            let mut n = 0;
            self.each_entry(&base.tree, |e| {
                n += u64::from(matches!(e.content, shale_core::tree::Content::Dir(_)))
            })
            .map_err(|e| errno(&e))?;
            if let Some(d) = self.inode_mut(ino)?.dir_mut() {
                d.subdirs = Some(n);
            }
            return Ok(n);
        }
        let n = self
            .list(ino)?
            .iter()
            .skip(2)
            .filter(|(_, k, n)| *k == FileType::Directory && n.as_slice() != SNAPSHOT_DIR)
            .count() as u64;
        if let Some(d) = self.inode_mut(ino)?.dir_mut() {
            d.subdirs = Some(n);
        }
        Ok(n)
    }

    /// Whether a directory has no entries.
    pub fn is_empty_dir(&mut self, ino: u64) -> Result<bool, Errno> {
        let (base, children) = {
            let d = self.inode(ino)?.dir().ok_or(libc::ENOTDIR)?;
            (d.base, d.children.clone())
        };
        if children.values().any(|s| matches!(s, Slot::Ino(_))) {
            return Ok(false);
        }
        let Some(base) = base else {
            return Ok(true);
        };
        let mut cursor = shale_core::tree::DirCursor::new(self.pool.blobs(), Some(&base.tree))
            .map_err(|e| errno(&e))?;
        while let Some(e) = cursor.next_entry().map_err(|e| errno(&e))? {
            if !children.contains_key(&e.name) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    // ---- changes ------------------------------------------------------
}

/// The file type of a tree entry.
fn entry_type(e: &Entry) -> FileType {
    match e.content {
        shale_core::tree::Content::File { .. } => FileType::RegularFile,
        shale_core::tree::Content::Dir(_) => FileType::Directory,
        shale_core::tree::Content::Symlink(_) => FileType::Symlink,
        shale_core::tree::Content::Special(s) => special_type(s.kind),
    }
}

/// A number for a name listed but not looked up, outside the range of real
/// inode numbers: a hash of directory and name, the same for the life of
/// the mount (a cold walk makes one per name; a cryptographic hash cost 5%
/// of it).
fn placeholder_ino(dir: u64, name: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    dir.hash(&mut h);
    name.hash(&mut h);
    h.finish() | (1 << 63)
}
