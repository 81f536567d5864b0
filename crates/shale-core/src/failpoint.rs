//! Injected crashes for the crash-safety tests.
//!
//! When the environment variable `SHALE_FAIL_AT` is `NAME` or `NAME:N`, the
//! process aborts (as abruptly as a power cut, for what is on disk) the
//! first (or N-th) time it reaches fail point `NAME`. Unset, a fail point
//! costs one load of a cached value.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// Aborts the process if `SHALE_FAIL_AT` selects this hit of `name`.
pub fn fail_point(name: &str) {
    static TARGET: OnceLock<Option<(String, u32)>> = OnceLock::new();
    static HITS: AtomicU32 = AtomicU32::new(0);
    let target = TARGET.get_or_init(|| {
        let v = std::env::var("SHALE_FAIL_AT").ok()?;
        Some(match v.split_once(':') {
            Some((n, count)) => (n.to_string(), count.parse().unwrap_or(1)),
            None => (v, 1),
        })
    });
    if let Some((target, nth)) = target {
        if target == name && HITS.fetch_add(1, Ordering::Relaxed) + 1 == *nth {
            eprintln!("shale: fail point {name} reached, aborting");
            std::process::abort();
        }
    }
}

/// Every fail point, for tests to iterate over.
pub const FAIL_POINTS: &[&str] = &[
    "pack.stored",
    "pack.indexed",
    "commit.before",
    "commit.after",
    "gc.condemned",
    "gc.repacked",
    "gc.swept",
    "rekey.ring",
    "rekey.packs",
    "rekey.index",
    "rekey.sealed",
];
