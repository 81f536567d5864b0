//! Shale's storage engine: content-addressed volumes with constant-time
//! snapshots and clones.
//!
//! Layers, bottom up (see `docs/ARCHITECTURE.md`):
//! - [`store`]: immutable objects; chunks and tree nodes as deduplicated,
//!   compressed blobs in packs;
//! - [`tree`]: Merkle trees of directories;
//! - [`catalog`]: transactional records (SQLite or PostgreSQL), all SQL;
//! - [`coord`]: sessions, leases, mounts and object-store pool ownership;
//! - [`Pool`] ([`pool`]): an open pool, the handle every operation takes;
//! - [`ops`]: the operations every front end calls.
#![deny(unsafe_code)]

pub mod catalog;
pub mod config;
pub mod coord;
pub mod crypt;
pub mod error;
pub mod failpoint;
pub mod filter;
pub mod id;
pub mod keys;
pub mod names;
pub mod ops;
pub mod pool;
pub mod private;
pub mod progress;
pub mod size;
pub mod store;
pub mod tree;

pub use config::{PoolOptions, StoreOptions};
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
pub(crate) fn test_store() -> (store::blobs::BlobStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let catalog = catalog::Catalog::create(&dir.path().join("c.db")).expect("catalog");
    let store = store::blobs::BlobStore::new(
        std::sync::Arc::new(store::objects::Memory::default()),
        std::sync::Arc::new(catalog),
    );
    (store, dir)
}
