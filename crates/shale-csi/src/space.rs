//! Room left in a pool, and use of a mounted volume, from `statvfs`.

use std::path::Path;

use shale_core::Pool;

/// `statvfs` of `path`.
pub fn statvfs(path: &Path) -> std::io::Result<nix::sys::statvfs::Statvfs> {
    nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)
}

/// Bytes new volumes may still take in `pool`: the free space of a local
/// pool's disk; for a pool in an object store, which sets no limit,
/// `i64::MAX`.
pub fn available(pool: &Pool) -> i64 {
    if pool.description().store.is_some() {
        return i64::MAX;
    }
    statvfs(pool.root())
        .map(|s| {
            (s.blocks_available() as u128 * s.fragment_size() as u128).min(i64::MAX as u128) as i64
        })
        .unwrap_or(0)
}
