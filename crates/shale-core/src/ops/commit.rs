//! Committing a mount's writes: moving a live volume's root, with its top
//! directory's attributes, in one transaction; or, when another process
//! replaced the volume meanwhile, keeping the writes as a snapshot.

use crate::catalog::{self, RootMeta};
use crate::error::Result;
use crate::id::ObjectId;
use crate::pool::Pool;
use crate::tree::DirRef;

impl Pool {
    /// Points volume `volume` at the durable tree `tree` with top directory
    /// attributes `meta`, if its root is still `expected` (else
    /// [`Error::Conflict`](crate::Error::Conflict), and nothing changes).
    pub fn commit_root(
        &self,
        volume: &str,
        expected: &ObjectId,
        tree: &DirRef,
        meta: &RootMeta,
    ) -> Result<()> {
        self.catalog().write(|tx| {
            catalog::set_root(
                tx,
                volume,
                Some(expected),
                &tree.tree,
                tree.bytes,
                tree.files,
            )?;
            let id = catalog::volume_by_name(tx, volume)?.id;
            catalog::set_root_meta(tx, id, meta)
        })
    }

    /// Records the durable tree `tree` as snapshot `name` of volume
    /// `volume`, without moving the volume (writes that lost a race).
    pub fn keep_as_snapshot(&self, volume: &str, tree: &DirRef, name: &str) -> Result<()> {
        self.catalog().write(|tx| {
            let mut row = catalog::volume_by_name(tx, volume)?;
            row.root = tree.tree;
            row.bytes = tree.bytes;
            row.files = tree.files;
            catalog::insert_snapshot(tx, &row, name)
        })?;
        Ok(())
    }
}
