//! `shale pool upgrade`: raising a pool made by an older release to the
//! format this one writes.

use std::fs;
use std::path::Path;

use super::{Pool, POOL_FILE, POOL_VERSION};
use crate::error::{Error, IoContext, Result};

impl Pool {
    /// Raises the pool's format version to [`POOL_VERSION`], from which
    /// in-place edits are stored as deltas; returns the version it had
    /// (unchanged if already there). Releases that predate the version
    /// cannot open the pool afterwards. This process keeps its settings:
    /// the next one to open the pool writes deltas.
    pub fn upgrade_format(&self) -> Result<u32> {
        let from = self.description.version;
        if from >= POOL_VERSION {
            return Ok(from);
        }
        let mut description = self.description.clone();
        description.version = POOL_VERSION;
        let json = serde_json::to_vec_pretty(&description)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        if let Some((remote, _)) = &self.remote {
            crate::store::objects::ObjectStore::put(remote.as_ref(), POOL_FILE, &json)?;
        }
        // A local pool's description, or an object-store pool's copy on
        // this machine.
        write_description(&self.root, &json)?;
        Ok(from)
    }
}

/// Writes `pool.json` in `root` whole or not at all: aside, synced, then
/// renamed over the old one.
pub(super) fn write_description(root: &Path, json: &[u8]) -> Result<()> {
    let tmp = root
        .join("tmp")
        .join(format!("{POOL_FILE}.{}", std::process::id()));
    crate::private::write(&tmp, json).at(&tmp)?;
    fs::File::open(&tmp).and_then(|f| f.sync_all()).at(&tmp)?;
    fs::rename(&tmp, root.join(POOL_FILE)).at(root.join(POOL_FILE))?;
    fs::File::open(root).and_then(|f| f.sync_all()).at(root)
}
