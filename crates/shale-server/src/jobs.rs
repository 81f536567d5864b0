//! Long operations as jobs: `POST /api/v1/jobs` starts a verify, a gc, a
//! sync or a mirror update on a thread of the blocking pool and answers at
//! once (202); `GET /api/v1/jobs/{id}` shows its progress (files and bytes
//! so far) and, once it ends, its report or error; `DELETE` asks it to stop
//! at its next check. Jobs live in the server's memory: a restart forgets
//! finished ones, and the newest [`KEEP`] finished jobs are kept.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;
use shale_core::progress::{Counters, Progress};

/// Finished jobs kept for their reports.
pub const KEEP: usize = 200;

/// Where a job stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

/// How a job ended (or that it has not).
#[derive(Debug)]
struct Outcome {
    state: State,
    ended: Option<String>,
    elapsed_ms: Option<u64>,
    result: Option<Value>,
    error: Option<String>,
}

/// One long operation.
pub struct Job {
    pub id: u64,
    /// `verify`, `gc`, `sync`, `mirror_update` or `mirror_resync`.
    pub kind: &'static str,
    /// What it works on, in words (`pool`, `imagenet`, `s3://b/p -> volume:x`).
    pub target: String,
    /// The token that started it: it, and admins, may see and cancel it.
    pub token: i64,
    /// Whether DELETE can stop it.
    pub cancellable: bool,
    started: String,
    clock: Instant,
    pub counters: Arc<Counters>,
    outcome: Mutex<Outcome>,
}

impl Job {
    /// Whether it has ended.
    pub fn running(&self) -> bool {
        self.lock().state == State::Running
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Outcome> {
        self.outcome.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the end of the work.
    pub fn finish(&self, result: Result<Value, String>) {
        let mut o = self.lock();
        o.ended = Some(now());
        o.elapsed_ms = Some(self.clock.elapsed().as_millis() as u64);
        match result {
            Ok(v) => {
                o.state = State::Succeeded;
                o.result = Some(v);
            }
            Err(e) => {
                o.state = if self.counters.cancelled() {
                    State::Cancelled
                } else {
                    State::Failed
                };
                o.error = Some(e);
            }
        }
    }

    /// The job as the API shows it.
    pub fn to_json(&self) -> Value {
        let o = self.lock();
        serde_json::json!({
            "id": self.id,
            "kind": self.kind,
            "target": self.target,
            "state": o.state,
            "cancellable": self.cancellable,
            "cancel_requested": self.counters.cancelled(),
            "files": self.counters.files(),
            "bytes": self.counters.bytes(),
            "started": self.started,
            "ended": o.ended,
            "elapsed_ms": o.elapsed_ms.unwrap_or(self.clock.elapsed().as_millis() as u64),
            "result": o.result,
            "error": o.error,
        })
    }
}

fn now() -> String {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    shale_core::ops::volumes::rfc3339(ns)
}

/// Every job this server has started (the newest finished ones).
#[derive(Default)]
pub struct Jobs {
    next: AtomicU64,
    all: Mutex<BTreeMap<u64, Arc<Job>>>,
}

impl Jobs {
    /// Registers a new running job.
    pub fn start(
        &self,
        kind: &'static str,
        target: String,
        token: i64,
        cancellable: bool,
    ) -> Arc<Job> {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let job = Arc::new(Job {
            id,
            kind,
            target,
            token,
            cancellable,
            started: now(),
            clock: Instant::now(),
            counters: Arc::new(Counters::default()),
            outcome: Mutex::new(Outcome {
                state: State::Running,
                ended: None,
                elapsed_ms: None,
                result: None,
                error: None,
            }),
        });
        let mut all = self.lock();
        all.insert(id, job.clone());
        let finished: Vec<u64> = all
            .values()
            .filter(|j| !j.running())
            .map(|j| j.id)
            .collect();
        for id in finished.iter().take(finished.len().saturating_sub(KEEP)) {
            all.remove(id);
        }
        job
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Job>>> {
        self.all.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One job.
    pub fn get(&self, id: u64) -> Option<Arc<Job>> {
        self.lock().get(&id).cloned()
    }

    /// Every job, newest first.
    pub fn list(&self) -> Vec<Arc<Job>> {
        self.lock().values().rev().cloned().collect()
    }

    /// Asks every running job to stop (the server is shutting down).
    pub fn cancel_all(&self) {
        for job in self.lock().values() {
            job.counters.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_ends_succeeded_failed_or_cancelled_and_old_ones_are_dropped() {
        let jobs = Jobs::default();
        let ok = jobs.start("gc", "pool".into(), 1, true);
        ok.finish(Ok(serde_json::json!({"freed_bytes": 0})));
        assert_eq!(ok.to_json()["state"], "succeeded");
        let failed = jobs.start("verify", "pool".into(), 1, true);
        failed.finish(Err("damaged".into()));
        assert_eq!(failed.to_json()["state"], "failed");
        let stopped = jobs.start("verify", "pool".into(), 1, true);
        stopped.counters.cancel();
        stopped.finish(Err("cancelled".into()));
        let shown = stopped.to_json();
        assert_eq!(shown["state"], "cancelled");
        assert_eq!(shown["cancel_requested"], true);
        assert_eq!(jobs.list()[0].id, stopped.id, "newest first");
        for _ in 0..KEEP + 10 {
            jobs.start("gc", "pool".into(), 1, true)
                .finish(Ok(Value::Null));
        }
        let running = jobs.start("gc", "pool".into(), 1, true);
        assert!(jobs.list().len() <= KEEP + 1);
        assert!(
            jobs.get(running.id).is_some(),
            "a running job is never dropped"
        );
        jobs.cancel_all();
        assert_eq!(running.to_json()["cancel_requested"], true);
    }
}
