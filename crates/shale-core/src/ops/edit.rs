//! Removing paths from a volume in one commit, without an import source:
//! only the directories on the way to a removed path are rebuilt.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::names::check_name;
use crate::pool::Pool;
use crate::tree::{build_dir, read_dir, Content, DirRef};

/// The paths to remove, as a tree of names.
#[derive(Default)]
struct Removals {
    /// This name itself goes.
    whole: bool,
    below: BTreeMap<Vec<u8>, Removals>,
}

impl Removals {
    fn add(&mut self, path: &[Vec<u8>]) {
        match path.split_first() {
            None => self.whole = true,
            Some((first, rest)) => self.below.entry(first.clone()).or_default().add(rest),
        }
    }
}

/// Directory `tree` without what `gone` names; counts what went.
fn without(
    store: &crate::store::blobs::BlobStore,
    w: &crate::store::blobs::BlobWriter,
    tree: &ObjectId,
    gone: &Removals,
    removed: &mut u64,
) -> Result<DirRef> {
    let mut kept = Vec::new();
    for mut e in read_dir(store, tree)? {
        match gone.below.get(&e.name) {
            Some(r) if r.whole => {
                *removed += 1;
                continue;
            }
            Some(r) => {
                if let Content::Dir(d) = &e.content {
                    e.content = Content::Dir(without(store, w, &d.tree, r, removed)?);
                }
            }
            None => {}
        }
        kept.push(e);
    }
    build_dir(w, kept)
}

impl Pool {
    /// Removes `paths` (each a list of names from the volume's top; absent
    /// ones are ignored) from volume `name` in one commit; returns how many
    /// entries went (a directory counts once, with everything in it).
    pub fn remove_paths(&self, name: &str, paths: &[Vec<Vec<u8>>]) -> Result<u64> {
        check_name(name)?;
        if paths.iter().any(Vec::is_empty) {
            return Err(Error::InvalidArgument(format!(
                "cannot remove the top directory of volume '{name}'"
            )));
        }
        if paths.is_empty() {
            return Ok(0);
        }
        self.check_not_mirror(name, "remove files from")?;
        self.sync_mounts(name)?;
        let volume = self.catalog().volume(name)?;
        let mut gone = Removals::default();
        for p in paths {
            gone.add(p);
        }
        let writer = self.store.writer("remove")?;
        let mut removed = 0;
        let root = without(&self.store, &writer, &volume.root, &gone, &mut removed)?;
        writer.finish()?;
        if removed == 0 {
            return Ok(0);
        }
        self.move_root(name, &volume.root, &root)?;
        Ok(removed)
    }
}
