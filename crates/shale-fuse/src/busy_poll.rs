//! Busy polling of the FUSE device: after answering a request, the session
//! thread watches the device for the next one for a short while (yielding
//! its CPU to any other runnable thread meanwhile) before going back to
//! sleep in `read`.
//!
//! A program working through files one by one (`cp -r`, `tar x`, a loader
//! opening one file after another) sends its next request a few tens of
//! microseconds after the last answer. A session thread asleep by then must
//! be woken, and when its CPU has gone idle that wake-up is slow: on the
//! 2-CPU VMs Shale is measured on (Firecracker, halt polling off), `cp -r`
//! of 20,000 files ran at 3,500 files/s with the thread sleeping and
//! 4,400-5,100 with it watching for 50-200 µs (see `bench/results/NOTES.md`).
//! `shale mount --busy-poll-us 0` turns it off. With several session
//! threads, one watches at a time: the others sleep in `read`.
#![allow(unsafe_code)] // poll(2) on the FUSE device: each block says why it is sound

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// How long a session thread watches for the next request by default.
pub const DEFAULT_BUSY_POLL: Duration = Duration::from_micros(100);

/// The device to watch, once the session has opened it, and for how long.
#[derive(Debug)]
pub struct BusyPoll {
    fd: AtomicI32,
    budget: Duration,
    /// A session thread is watching.
    watching: AtomicBool,
}

impl BusyPoll {
    /// Watching for `budget` after each answer (zero: never).
    pub fn new(budget: Duration) -> Self {
        BusyPoll {
            fd: AtomicI32::new(-1),
            budget,
            watching: AtomicBool::new(false),
        }
    }

    /// Sets the FUSE device to watch (the session's).
    pub fn watch(&self, fd: RawFd) {
        self.fd.store(fd, Ordering::Relaxed);
    }

    /// A guard to make first in a request's handler: dropped at its end,
    /// after the reply, it waits until the next request is there or the
    /// budget is spent.
    pub fn after_reply(&self) -> Linger<'_> {
        Linger {
            fd: self.fd.load(Ordering::Relaxed),
            budget: self.budget,
            watching: &self.watching,
        }
    }
}

/// Waits for the next request when dropped (see [`BusyPoll::after_reply`]).
#[must_use = "the wait happens when the guard is dropped"]
pub struct Linger<'a> {
    fd: RawFd,
    budget: Duration,
    watching: &'a AtomicBool,
}

impl Drop for Linger<'_> {
    fn drop(&mut self) {
        if self.fd < 0 || self.budget.is_zero() || self.watching.swap(true, Ordering::Acquire) {
            return;
        }
        let start = Instant::now();
        let mut watched = libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // Readable, closed (POLLNVAL) or gone (POLLERR) all end the wait:
        // `read` then takes the request or reports the error.
        // SAFETY: one valid pollfd, and a timeout of 0 (no waiting).
        while unsafe { libc::poll(&mut watched, 1, 0) } == 0 && start.elapsed() < self.budget {
            std::thread::yield_now();
        }
        self.watching.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    fn pipe() -> (std::fs::File, std::fs::File) {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe() returns.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        use std::os::fd::FromRawFd;
        // SAFETY: both descriptors were just opened and are owned here.
        unsafe {
            (
                std::fs::File::from_raw_fd(fds[0]),
                std::fs::File::from_raw_fd(fds[1]),
            )
        }
    }

    #[test]
    fn stops_watching_when_a_request_is_there() {
        let (read, mut write) = pipe();
        let poll = BusyPoll::new(Duration::from_secs(600));
        poll.watch(read.as_raw_fd());
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            write.write_all(b"x").unwrap();
            write
        });
        let start = Instant::now();
        drop(poll.after_reply());
        // Far below the budget: it returned because the pipe was readable.
        assert!(start.elapsed() < Duration::from_secs(300));
        drop(writer.join().unwrap());
    }

    #[test]
    fn watches_for_its_budget_when_nothing_comes() {
        let (read, _write) = pipe();
        let poll = BusyPoll::new(Duration::from_millis(30));
        poll.watch(read.as_raw_fd());
        let start = Instant::now();
        drop(poll.after_reply());
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn one_thread_watches_at_a_time() {
        let (read, _write) = pipe();
        let poll = BusyPoll::new(Duration::from_secs(600));
        poll.watch(read.as_raw_fd());
        poll.watching.store(true, Ordering::Relaxed);
        let start = Instant::now();
        drop(poll.after_reply());
        assert!(start.elapsed() < Duration::from_secs(300));
        // The one watching still is.
        assert!(poll.watching.load(Ordering::Relaxed));
    }

    #[test]
    fn does_not_wait_when_off_or_before_the_session_exists() {
        let (read, _write) = pipe();
        let off = BusyPoll::new(Duration::ZERO);
        off.watch(read.as_raw_fd());
        let unset = BusyPoll::new(Duration::from_secs(600));
        let start = Instant::now();
        drop(off.after_reply());
        drop(unset.after_reply());
        assert!(start.elapsed() < Duration::from_secs(300));
    }
}
