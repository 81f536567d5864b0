//! What a long operation reports as it goes, and how its caller stops it.
//!
//! An operation (import, export, verify, sync) is handed an
//! `Option<Arc<dyn Progress>>`: it sends [`Event`]s to it from any of its
//! threads, and asks [`Progress::cancelled`] between units of work (a file,
//! a pack), stopping with [`Error::Cancelled`] once it says so. The CLI
//! draws a bar from [`Counters`]; a server can stream the same events and
//! cancel a job through the same flag. The engine never prints.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::Serialize;

use crate::error::{Error, Result};

/// One step of a long operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// One more file (or pack, for `verify --read-data`) of `bytes` bytes
    /// was handled.
    File {
        /// Its size.
        bytes: u64,
    },
}

/// Receives a long operation's events and may ask it to stop.
pub trait Progress: Send + Sync {
    /// Called for each event, from any of the operation's threads.
    fn event(&self, event: Event);

    /// Whether the operation should stop; checked between units of work.
    fn cancelled(&self) -> bool {
        false
    }
}

impl std::fmt::Debug for dyn Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

/// Counts files and bytes, and holds a cancel flag: what a progress bar or
/// a job's status reads.
#[derive(Debug, Default)]
pub struct Counters {
    files: AtomicU64,
    bytes: AtomicU64,
    cancel: AtomicBool,
}

impl Counters {
    /// Files so far.
    pub fn files(&self) -> u64 {
        self.files.load(Ordering::Relaxed)
    }

    /// Bytes so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Asks the operation to stop at its next check.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

impl Progress for Counters {
    fn event(&self, event: Event) {
        match event {
            Event::File { bytes } => {
                self.files.fetch_add(1, Ordering::Relaxed);
                self.bytes.fetch_add(bytes, Ordering::Relaxed);
            }
        }
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

/// Sends `event` to `progress`, if there is one.
pub fn report(progress: &Option<std::sync::Arc<dyn Progress>>, event: Event) {
    if let Some(p) = progress {
        p.event(event);
    }
}

/// [`Error::Cancelled`] if `progress` asks the operation to stop.
pub fn check(progress: &Option<std::sync::Arc<dyn Progress>>) -> Result<()> {
    match progress {
        Some(p) if p.cancelled() => Err(Error::Cancelled),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counters_count_and_cancel() {
        let c = Arc::new(Counters::default());
        let p: Option<Arc<dyn Progress>> = Some(c.clone());
        report(&p, Event::File { bytes: 10 });
        report(&p, Event::File { bytes: 5 });
        assert_eq!((c.files(), c.bytes()), (2, 15));
        assert!(check(&p).is_ok());
        c.cancel();
        assert!(matches!(check(&p), Err(Error::Cancelled)));
        assert!(check(&None).is_ok());
    }
}
