//! Shale's storage engine: content-addressed volumes with constant-time
//! snapshots and clones.
//!
//! Layers, bottom up (see `docs/ARCHITECTURE.md`):
//! - [`objects`]: immutable named objects (a local directory; memory for tests);
//! - [`pack`] and [`blobs`]: deduplicated, compressed blobs packed into objects;
//! - [`chunker`]: content-defined chunking of files;
//! - [`tree`]: Merkle trees of directories;
//! - [`catalog`]: transactional records (SQLite);
//! - [`Pool`] and its operations: volumes, snapshots, clones, import,
//!   export, diff.

pub mod blobs;
pub mod catalog;
pub mod chunker;
pub mod diff;
pub mod edit;
pub mod error;
pub mod export;
pub mod failpoint;
pub mod gc;
pub mod id;
pub mod import;
pub mod leases;
pub mod lineage;
pub mod locations;
pub mod mirror;
pub mod mounts;
pub mod names;
pub mod objects;
pub mod pack;
pub mod pool;
pub mod progress;
pub mod s3pool;
pub mod session;
pub mod size;
pub mod tree;
pub mod verify;
pub mod volumes;

pub use error::{Error, Result};
pub use id::ObjectId;
pub use pool::{Pool, PoolSpec};

/// Deterministic incompressible bytes for tests.
#[cfg(test)]
pub(crate) fn test_noise(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

/// A blob store over memory with a catalog in a temporary directory, for tests.
#[cfg(test)]
pub(crate) fn test_store() -> (blobs::BlobStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let catalog = catalog::Catalog::create(&dir.path().join("c.db")).expect("catalog");
    let store = blobs::BlobStore::new(
        std::sync::Arc::new(objects::Memory::default()),
        std::sync::Arc::new(catalog),
    );
    (store, dir)
}
