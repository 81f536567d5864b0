//! Storage: immutable objects, content-defined chunks, and the packs that
//! hold chunks and tree nodes as deduplicated, compressed blobs.
//!
//! Bottom up: [`objects`] (put/get/list/delete of whole objects: a local
//! directory, any `object_store` backend, memory), [`pack`] (the pack
//! format), [`chunker`] (FastCDC parameters), [`locations`] (where blobs
//! are, remembered per pack) and [`blobs`] (the read path, checked by hash,
//! and the write path: dedup, compression, pack staging and sealing).

pub mod blobs;
pub mod chunker;
pub(crate) mod locations;
pub mod objects;
pub mod pack;
