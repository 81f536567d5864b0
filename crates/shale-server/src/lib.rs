//! `shale serve`: the pool's operations as an authenticated JSON API
//! (`/api/v1/…`), for notebooks, pipelines and browsers that should not
//! hold the pool's credentials.
//!
//! Every request carries `Authorization: Bearer TOKEN` (`shale token
//! create`); a token has a role (`read`, `write`, `admin`) over the pool or
//! over one volume and its clones. Every change is written to the audit
//! log. The pool's operations are blocking; each request runs one on
//! tokio's blocking pool.

mod api;
mod auth;
mod error;
mod extract;
mod jobs;
pub mod mcp;
mod ui;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use shale_core::Pool;

pub use api::{router, router_with, SyncPlaces, ROUTES};
pub use jobs::Jobs;

/// The OpenAPI document of the API (served at `/api/v1/openapi.json`).
pub const OPENAPI: &str = include_str!("openapi.json");

/// Where and how to listen.
pub struct ServeOptions {
    /// The address (`127.0.0.1:8470`).
    pub listen: SocketAddr,
    /// A PEM certificate chain and key: TLS, required beyond loopback.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Where sync jobs find buckets.
    pub places: SyncPlaces,
    /// How often the pool's totals are sampled for the space history
    /// (`GET /api/v1/pool/history`); also once at start.
    pub sample_every: std::time::Duration,
    /// How often to take the snapshots policies have due and run the
    /// saved syncs that are due (`None`: never; timers do it).
    pub run_schedules: Option<std::time::Duration>,
    /// How the saved syncs reach stores and walk directories.
    pub pool_options: shale_core::PoolOptions,
}

/// Serves `pool` until SIGINT or SIGTERM; requests under way finish first.
pub fn serve(pool: Pool, options: ServeOptions) -> Result<()> {
    if !options.listen.ip().is_loopback() && options.tls.is_none() {
        bail!(
            "{} is not a loopback address: serving beyond this machine needs TLS \
             (--tls-cert and --tls-key)",
            options.listen
        );
    }
    // The pool is dropped after the runtime, outside it: a PostgreSQL
    // catalog's client blocks on its own runtime when it closes.
    let pool = Arc::new(pool);
    let jobs = Arc::new(Jobs::default());
    let app = router_with(pool.clone(), jobs.clone(), options.places.clone());
    let sampled = pool.clone();
    let scheduled = pool.clone();
    let runtime = tokio::runtime::Runtime::new().context("starting the server's runtime")?;
    let served = runtime.block_on(async move {
        let handle = axum_server::Handle::new();
        let stopper = handle.clone();
        tokio::spawn(sample_space(sampled, options.sample_every));
        if let Some(every) = options.run_schedules {
            tokio::spawn(run_schedules(
                scheduled,
                every,
                options.pool_options.clone(),
            ));
        }
        tokio::spawn(async move {
            shutdown_signal().await;
            // Running jobs stop at their next check, leaving the pool as a
            // crash would (which it survives); then requests finish.
            jobs.cancel_all();
            stopper.graceful_shutdown(Some(std::time::Duration::from_secs(30)));
        });
        let service = app.into_make_service();
        let scheme = if options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        eprintln!("shale: serving on {scheme}://{}", options.listen);
        match &options.tls {
            Some((cert, key)) => {
                let _ = rustls::crypto::ring::default_provider().install_default();
                let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                    .await
                    .with_context(|| {
                        format!(
                            "reading the TLS certificate {} and key {}",
                            cert.display(),
                            key.display()
                        )
                    })?;
                axum_server::bind_rustls(options.listen, config)
                    .handle(handle)
                    .serve(service)
                    .await
            }
            None => {
                axum_server::bind(options.listen)
                    .handle(handle)
                    .serve(service)
                    .await
            }
        }
        .with_context(|| format!("serving on {}", options.listen))
    });
    drop(runtime);
    drop(pool);
    served
}

/// Samples the pool's totals every `every` for the space history (a
/// sample that repeats the last is not kept). A failure is said once, not
/// fatal: the history is a statistic.
async fn sample_space(pool: Arc<Pool>, every: std::time::Duration) {
    let mut ticks = tokio::time::interval(every);
    let mut warned = false;
    loop {
        ticks.tick().await;
        let p = pool.clone();
        match tokio::task::spawn_blocking(move || p.sample_space()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) if !warned => {
                warned = true;
                eprintln!("shale: warning: the space history is not being recorded: {e}");
            }
            _ => {}
        }
    }
}

/// Every `every` (and at start), takes the snapshots policies have due and
/// runs the saved syncs that are due; what failed is said on stderr, and
/// recorded with each sync.
async fn run_schedules(
    pool: Arc<Pool>,
    every: std::time::Duration,
    options: shale_core::PoolOptions,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let (p, o) = (pool.clone(), options.clone());
        let ran = tokio::task::spawn_blocking(move || {
            let now = shale_core::catalog::now_ns();
            let policies = p.run_snapshot_policies(now);
            let syncs = shale_sync::saved::run_due(&p, now, &o);
            (policies, syncs)
        })
        .await;
        let Ok((policies, syncs)) = ran else { continue };
        match policies {
            Ok(runs) => {
                for r in runs.iter().filter(|r| r.error.is_some()) {
                    eprintln!(
                        "shale: warning: snapshot policy of {}: {}",
                        r.volume,
                        r.error.as_deref().unwrap_or_default()
                    );
                }
            }
            Err(e) => eprintln!("shale: warning: snapshot policies: {e}"),
        }
        match syncs {
            Ok(ran) => {
                for (name, r) in ran {
                    if let Err(e) = r {
                        eprintln!("shale: warning: saved sync {name}: {e}");
                    }
                }
            }
            Err(e) => eprintln!("shale: warning: saved syncs: {e}"),
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
