//! Coordination between processes and machines sharing a pool: writing
//! sessions that `gc` waits for, writer leases on live volumes, the mounts
//! of this machine and their control sockets, and the ownership of an
//! object-store pool's SQLite catalog.

pub(crate) mod leases;
pub mod mounts;
pub(crate) mod s3pool;
pub mod session;
