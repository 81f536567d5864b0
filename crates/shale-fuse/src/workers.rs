//! A fixed set of threads that run jobs handed to them, for reads the
//! session thread should not wait on.
//!
//! Idle workers sleep on the job queue. Rayon's pool was used before: its
//! idle threads spin (`sched_yield`) before sleeping, which on a 2-core
//! machine took 40% of the mount's CPU from the threads doing the work
//! (measured with `perf` on cold reads of small files).

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// The worker threads; dropping this lets them finish queued jobs and exit.
pub struct Workers {
    jobs: Mutex<Sender<Job>>,
}

impl Workers {
    /// Starts `count` threads named `name-N`.
    pub fn start(count: usize, name: &str) -> std::io::Result<Workers> {
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..count {
            let rx = rx.clone();
            thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || work(&rx))?;
        }
        Ok(Workers {
            jobs: Mutex::new(tx),
        })
    }

    /// Queues `job` for the next free thread.
    pub fn spawn(&self, job: impl FnOnce() + Send + 'static) {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        // The threads only stop once `jobs` is dropped, so this cannot fail.
        let _ = jobs.send(Box::new(job));
    }
}

fn work(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = {
            let rx = rx.lock().unwrap_or_else(|p| p.into_inner());
            match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        job();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_every_job_on_the_threads() {
        let workers = Workers::start(3, "test").unwrap();
        let (tx, rx) = channel();
        for i in 0..100 {
            let tx = tx.clone();
            workers.spawn(move || {
                tx.send((i, thread::current().name().map(String::from)))
                    .unwrap()
            });
        }
        let mut got: Vec<_> = (0..100).map(|_| rx.recv().unwrap()).collect();
        got.sort();
        assert_eq!(
            got.iter().map(|g| g.0).collect::<Vec<_>>(),
            (0..100).collect::<Vec<_>>()
        );
        assert!(got
            .iter()
            .all(|g| g.1.as_deref().unwrap().starts_with("test-")));
    }
}
