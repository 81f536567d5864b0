//! The operations: one module per command, each a set of methods on
//! [`Pool`](crate::Pool) taking typed options and returning a typed,
//! `Serialize` report. Every front end (CLI, Python, FUSE, and the coming
//! server and CSI driver) calls these and nothing below them.

pub mod commit;
pub mod diff;
pub mod edit;
pub mod export;
pub mod files;
pub mod gc;
pub mod import;
pub mod info;
pub mod lineage;
pub mod mirror;
pub mod rekey;
pub mod retention;
pub mod syncs;
pub mod tokens;
pub mod verify;
pub mod volumes;
pub mod warm;
pub mod workspaces;
