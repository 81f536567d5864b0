//! Running a plan: directories first, then files and links on `jobs`
//! threads, then removals; each failure is recorded with its path and the
//! rest goes on.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use backon::BlockingRetryable;
use shale_core::config::backoff;
use shale_core::progress::{self, Event};
use shale_core::Result;

use crate::entry::Entry;
use crate::plan::Action;
use crate::side::Side;
use crate::{Problem, SyncOptions, SyncReport};

/// A shared budget of bytes per second (a token bucket holding at most one
/// second's worth).
pub struct Limiter {
    rate: f64,
    state: Mutex<(Instant, f64)>,
}

impl Limiter {
    /// At most `rate` bytes per second.
    pub fn new(rate: u64) -> Limiter {
        Limiter {
            rate: rate.max(1) as f64,
            state: Mutex::new((Instant::now(), 0.0)),
        }
    }

    /// Waits until `n` more bytes may pass.
    pub fn take(&self, n: usize) {
        let wait = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let refill = now.duration_since(st.0).as_secs_f64() * self.rate;
            st.1 = (st.1 + refill).min(self.rate) - n as f64;
            st.0 = now;
            if st.1 < 0.0 {
                Duration::from_secs_f64(-st.1 / self.rate)
            } else {
                Duration::ZERO
            }
        };
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

/// Copies to or from a network side failing in a row (each after its
/// retries) that stop the run: the rest is reported as not attempted.
const GIVE_UP_AFTER: u32 = 4;

#[derive(Default)]
struct Tally {
    copied: AtomicU64,
    bytes: AtomicU64,
    dirs: AtomicU64,
    links: AtomicU64,
    deleted: AtomicU64,
    errors: Mutex<Vec<Problem>>,
}

impl Tally {
    fn failed(&self, e: &Entry, err: shale_core::Error) {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Problem {
                path: e.display(),
                error: err.to_string(),
            });
    }
}

fn copy(src: &dyn Side, dst: &dyn Side, e: &Entry, limiter: Option<&Limiter>) -> Result<u64> {
    let mut moved = 0u64;
    dst.write(e, &mut |sink| {
        moved = 0;
        src.read(e, &mut |piece| {
            if let Some(l) = limiter {
                l.take(piece.len());
            }
            moved += piece.len() as u64;
            sink(piece)
        })
    })?;
    Ok(moved)
}

/// Runs `actions` (in plan order) from `src` to `dst`, adding to `report`.
pub fn run(
    src: &dyn Side,
    dst: &dyn Side,
    actions: &[Action],
    opts: &SyncOptions,
    report: &mut SyncReport,
) {
    let runner = Runner {
        src,
        dst,
        opts,
        tally: Tally::default(),
        limiter: opts.bwlimit.map(Limiter::new),
        attempts: 1 + if src.retries() || dst.retries() {
            opts.retries
        } else {
            0
        },
        next: AtomicUsize::new(0),
        failing: AtomicU32::new(0),
        gave_up: Mutex::new(None),
    };
    // Directories, in order (parents first).
    let mut rest = Vec::new();
    let mut removals = Vec::new();
    for a in actions {
        match a {
            Action::Mkdir(e) => match dst.mkdir(e) {
                Ok(()) => {
                    runner.tally.dirs.fetch_add(1, Ordering::Relaxed);
                }
                Err(err) => runner.tally.failed(e, err),
            },
            Action::Delete(e) => removals.push(e),
            other => rest.push(other),
        }
    }
    // Files and links, in parallel.
    std::thread::scope(|s| {
        for _ in 0..opts.jobs.clamp(1, 256) {
            s.spawn(|| runner.work(&rest));
        }
    });
    // Removals, children before their directories (the plan's order).
    for e in removals {
        match dst.remove(e) {
            Ok(()) => {
                runner.tally.deleted.fetch_add(1, Ordering::Relaxed);
            }
            Err(err) => runner.tally.failed(e, err),
        }
    }
    runner.tally.into_report(report);
}

/// The shared state of a plan's worker threads.
struct Runner<'a> {
    src: &'a dyn Side,
    dst: &'a dyn Side,
    opts: &'a SyncOptions,
    tally: Tally,
    limiter: Option<Limiter>,
    /// Tries of each copy (retries only for network sides).
    attempts: u32,
    /// The next action to take.
    next: AtomicUsize,
    /// Copies that failed in a row.
    failing: AtomicU32,
    /// Why the run stopped trying, once a network side failed every copy
    /// in a row (it went away) rather than failing each file after its own
    /// retries.
    gave_up: Mutex<Option<String>>,
}

impl Runner<'_> {
    /// Takes actions from `rest` until none is left or the run is cancelled.
    fn work(&self, rest: &[&Action]) {
        loop {
            // A cancelled run takes no further work (the caller reports it).
            if progress::check(&self.opts.progress).is_err() {
                return;
            }
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(a) = rest.get(i) else { return };
            if let Some(why) = self
                .gave_up
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
            {
                let e = match a {
                    Action::Copy(e, _)
                    | Action::Symlink(e)
                    | Action::Mkdir(e)
                    | Action::Delete(e) => e,
                };
                let err = shale_core::Error::InvalidArgument(format!("not attempted: {why}"));
                self.tally.failed(e, err);
                continue;
            }
            match a {
                Action::Copy(e, _) => self.copy_with_retries(e),
                Action::Symlink(e) => match self.dst.symlink(e) {
                    Ok(()) => {
                        self.tally.links.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(err) => self.tally.failed(e, err),
                },
                Action::Mkdir(_) | Action::Delete(_) => {}
            }
        }
    }

    /// Copies one file, retrying with Shale's backoff (from 500 ms) for a
    /// network side; gives the run up after [`GIVE_UP_AFTER`] failed copies
    /// in a row.
    fn copy_with_retries(&self, e: &Entry) {
        let retries = self.attempts.saturating_sub(1) as usize;
        let copied = (|| copy(self.src, self.dst, e, self.limiter.as_ref()))
            .retry(backoff(Duration::from_millis(500)).with_max_times(retries))
            .sleep(std::thread::sleep)
            .notify(|err, pause| tracing::warn!("{}: {err}; retrying in {pause:?}", e.display()))
            .call();
        match copied {
            Ok(n) => {
                self.failing.store(0, Ordering::Relaxed);
                self.tally.copied.fetch_add(1, Ordering::Relaxed);
                self.tally.bytes.fetch_add(n, Ordering::Relaxed);
                progress::report(&self.opts.progress, Event::File { bytes: n });
            }
            Err(err) => {
                let in_a_row = self.failing.fetch_add(1, Ordering::Relaxed) + 1;
                if self.attempts > 1 && in_a_row >= GIVE_UP_AFTER {
                    *self.gave_up.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!(
                        "{in_a_row} copies in a row failed, the last with: {err}"
                    ));
                }
                self.tally.failed(e, err);
            }
        }
    }
}

impl Tally {
    /// Adds what was counted to `report`, errors sorted by path.
    fn into_report(self, report: &mut SyncReport) {
        report.copied += self.copied.into_inner();
        report.bytes += self.bytes.into_inner();
        report.dirs_created += self.dirs.into_inner();
        report.symlinks += self.links.into_inner();
        report.deleted += self.deleted.into_inner();
        let mut errors = self.errors.into_inner().unwrap_or_else(|p| p.into_inner());
        errors.sort_by(|a, b| a.path.cmp(&b.path));
        report.errors.extend(errors);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_holds_the_rate() {
        let l = Limiter::new(1_000_000);
        let start = Instant::now();
        for _ in 0..30 {
            l.take(100_000); // 3 MB at 1 MB/s, one second's burst allowed
        }
        let took = start.elapsed().as_secs_f64();
        assert!(took > 1.5, "{took}");
    }
}
