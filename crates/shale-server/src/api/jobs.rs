//! `/api/v1/jobs`: verify, gc, sync and mirror updates as jobs (see
//! `crate::jobs`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::Value;
use shale_core::ops::gc::GcOptions;
use shale_core::ops::mirror::UpdateOptions;
use shale_core::ops::tokens::Role;
use shale_core::ops::verify::VerifyOptions;
use shale_core::progress::{Event, Progress};
use shale_core::Pool;
use shale_sync::{Location, SyncOptions};

use super::mirrors::{mirror_of, open_source};
use super::{blocking, to_json, Answer, Changed};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Body, Params};
use crate::jobs::{Job, Jobs};

/// Where sync jobs find buckets: the `--endpoint` and `--region` that
/// `shale serve` was given.
#[derive(Clone, Default)]
pub struct SyncPlaces {
    /// The endpoint of S3-compatible buckets.
    pub endpoint: Option<String>,
    /// Their region.
    pub region: Option<String>,
}

/// The body of `POST /api/v1/jobs`.
#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum NewJob {
    /// `shale verify [--read-data] [--volume V]`.
    Verify {
        #[serde(default)]
        read_data: bool,
        volume: Option<String>,
    },
    /// `shale gc [--dry-run]`.
    Gc {
        #[serde(default)]
        dry_run: bool,
    },
    /// `shale sync SOURCE DESTINATION` between volumes and buckets.
    Sync {
        source: String,
        destination: String,
        #[serde(default)]
        delete: bool,
        #[serde(default)]
        checksum: bool,
    },
    /// `shale mirror update VOLUME [--force-baseline] [--bwlimit RATE]`.
    MirrorUpdate {
        volume: String,
        #[serde(default)]
        force_baseline: bool,
        /// Bytes per second at most.
        bwlimit: Option<std::num::NonZeroU64>,
    },
    /// `shale mirror resync VOLUME`: this side's changes kept in a
    /// snapshot, then the source's state again.
    MirrorResync { volume: String },
}

/// A job's work, once allowed: runs on the blocking pool.
type Work = Box<dyn FnOnce(&Pool, &Arc<Job>) -> Result<Value, String> + Send>;

/// Checks what `caller` may start and prepares the work.
fn plan(
    pool: &Pool,
    caller: &Caller,
    job: NewJob,
    places: &SyncPlaces,
) -> Result<(&'static str, String, bool, Work), ApiError> {
    match job {
        NewJob::Verify { read_data, volume } => {
            caller.require(Role::Read)?;
            match &volume {
                Some(v) => {
                    caller.check_volume(pool, v)?;
                    pool.volume_info(v)?;
                }
                None => caller.require_pool_wide()?,
            }
            let target = volume.clone().unwrap_or_else(|| "pool".into());
            let work: Work = Box::new(move |p, job| {
                let opts = VerifyOptions {
                    read_data,
                    volume,
                    progress: Some(job.counters.clone()),
                };
                p.verify(&opts)
                    .map_err(|e| e.to_string())
                    .and_then(|r| json_of(&r))
            });
            Ok(("verify", target, true, work))
        }
        NewJob::Gc { dry_run } => {
            caller.require(Role::Admin)?;
            let work: Work = Box::new(move |p, job| {
                let opts = GcOptions {
                    dry_run,
                    progress: Some(job.counters.clone()),
                };
                p.gc(&opts)
                    .map_err(|e| e.to_string())
                    .and_then(|r| json_of(&r))
            });
            Ok(("gc", "pool".into(), true, work))
        }
        NewJob::Sync {
            source,
            destination,
            delete,
            checksum,
        } => {
            let src = place(pool, caller, &source, places, false)?;
            let dst = place(pool, caller, &destination, places, true)?;
            let target = format!("{source} -> {destination}");
            let work: Work = Box::new(move |p, job| {
                let opts = SyncOptions {
                    delete,
                    checksum,
                    dry_run: false,
                    jobs: 8,
                    bwlimit: None,
                    retries: 3,
                    snapshot: None,
                    progress: Some(job.counters.clone()),
                    pool_options: p.options().clone(),
                    filter: Default::default(),
                };
                let report =
                    shale_sync::sync(Some(p), &src, &dst, &opts).map_err(|e| e.to_string())?;
                json_of(&report)
            });
            Ok(("sync", target, true, work))
        }
        NewJob::MirrorUpdate {
            volume,
            force_baseline,
            bwlimit,
        } => mirror_transfer(pool, caller, places, volume, false, force_baseline, bwlimit),
        NewJob::MirrorResync { volume } => {
            mirror_transfer(pool, caller, places, volume, true, false, None)
        }
    }
}

/// A mirror update (or, with `resync`, a resync) of `volume` as a job.
fn mirror_transfer(
    pool: &Pool,
    caller: &Caller,
    places: &SyncPlaces,
    volume: String,
    resync: bool,
    force_baseline: bool,
    bwlimit: Option<std::num::NonZeroU64>,
) -> Result<(&'static str, String, bool, Work), ApiError> {
    caller.require(Role::Write)?;
    caller.check_volume(pool, &volume)?;
    let source = mirror_of(pool, &volume)?.source_pool;
    let (places, target) = (places.clone(), volume.clone());
    let work: Work = Box::new(move |p, job| {
        let source = open_source(&source, &places, p.options())?;
        let opts = UpdateOptions {
            force_baseline,
            on_bytes: Some(sent(job, bwlimit)),
        };
        let report = if resync {
            p.mirror_resync(&source, &volume, &opts)
        } else {
            p.mirror_update(&source, &volume, &opts)
        };
        report.map_err(|e| e.to_string()).and_then(|r| json_of(&r))
    });
    let kind = if resync {
        "mirror_resync"
    } else {
        "mirror_update"
    };
    Ok((kind, target, false, work))
}

/// Counts a mirror transfer's bytes in the job's progress, at most
/// `bwlimit` bytes a second.
fn sent(job: &Arc<Job>, bwlimit: Option<std::num::NonZeroU64>) -> Arc<dyn Fn(u64) + Send + Sync> {
    let counters = job.counters.clone();
    let limiter = bwlimit.map(|rate| shale_sync::Limiter::new(rate.get()));
    Arc::new(move |bytes| {
        if let Some(l) = &limiter {
            l.take(bytes as usize);
        }
        counters.event(Event::File { bytes })
    })
}

fn json_of<T: serde::Serialize>(value: &T) -> Result<Value, String> {
    serde_json::to_value(value).map_err(|e| e.to_string())
}

/// A sync job's side: a volume the caller may read (or, as the
/// destination, write), or a bucket (admins only: the server's own
/// credentials reach it). A directory would be the server's, not the
/// caller's: refused.
fn place(
    pool: &Pool,
    caller: &Caller,
    arg: &str,
    places: &SyncPlaces,
    written: bool,
) -> Result<Location, ApiError> {
    let mut loc = Location::parse(std::ffi::OsStr::new(arg))?;
    match &mut loc {
        Location::Volume { volume, .. } => {
            caller.require(if written { Role::Write } else { Role::Read })?;
            caller.check_volume(pool, volume)?;
            pool.volume_info(volume)?;
        }
        Location::Store(l) => {
            caller.require(Role::Admin)?;
            l.endpoint = places.endpoint.clone();
            l.region = places.region.clone();
        }
        Location::Local(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "{arg}: a sync job moves data between volumes (volume:NAME/PATH) and buckets \
                     (s3://…); a directory would be the server's: run `shale sync` where it is, \
                     or upload files"
                ),
            ))
        }
    }
    Ok(loc)
}

/// `POST /api/v1/jobs`.
pub async fn start(
    State(pool): State<Arc<Pool>>,
    Extension(jobs): Extension<Arc<Jobs>>,
    Extension(places): Extension<SyncPlaces>,
    caller: Caller,
    Body(body): Body<NewJob>,
) -> Changed {
    let token = caller.0.token.id;
    let planned = blocking(&pool, move |p| plan(p, &caller, body, &places)).await;
    let (kind, target, cancellable, work) = match planned {
        Ok(p) => p,
        Err(e) => {
            let outcome = format!("{}: {}", e.status.as_u16(), e.message);
            audit(&pool, token, "start job".into(), outcome).await?;
            return Err(e);
        }
    };
    let job = jobs.start(kind, target, token, cancellable);
    audit(
        &pool,
        token,
        format!("start job {} ({kind} {})", job.id, job.target),
        "202".into(),
    )
    .await?;
    let (runner, running) = (pool.clone(), job.clone());
    tokio::task::spawn_blocking(move || {
        let result = work(&runner, &running);
        running.finish(result);
    });
    Ok((StatusCode::ACCEPTED, Json(job.to_json())))
}

async fn audit(
    pool: &Arc<Pool>,
    token: i64,
    action: String,
    outcome: String,
) -> Result<(), ApiError> {
    blocking(pool, move |p| {
        Ok(p.record_audit(Some(token), &action, &outcome)?)
    })
    .await
}

/// A job the caller may see: its own, or any for an admin.
fn visible(caller: &Caller, job: &Job) -> bool {
    caller.0.role >= Role::Admin || job.token == caller.0.token.id
}

/// `GET /api/v1/jobs`.
pub async fn list(Extension(jobs): Extension<Arc<Jobs>>, caller: Caller) -> Answer {
    let shown: Vec<Value> = jobs
        .list()
        .iter()
        .filter(|j| visible(&caller, j))
        .map(|j| j.to_json())
        .collect();
    to_json(shown).map(Json)
}

fn find(jobs: &Jobs, caller: &Caller, id: &str) -> Result<Arc<Job>, ApiError> {
    id.parse::<u64>()
        .ok()
        .and_then(|id| jobs.get(id))
        .filter(|j| visible(caller, j))
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))
}

/// `GET /api/v1/jobs/{id}`.
pub async fn get(
    Extension(jobs): Extension<Arc<Jobs>>,
    caller: Caller,
    Params(id): Params<String>,
) -> Answer {
    Ok(Json(find(&jobs, &caller, &id)?.to_json()))
}

/// `DELETE /api/v1/jobs/{id}`: asks a running job to stop.
pub async fn cancel(
    State(pool): State<Arc<Pool>>,
    Extension(jobs): Extension<Arc<Jobs>>,
    caller: Caller,
    Params(id): Params<String>,
) -> Changed {
    let token = caller.0.token.id;
    let job = find(&jobs, &caller, &id)?;
    let answer = if !job.running() {
        Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("job {id} has already ended"),
        ))
    } else if !job.cancellable {
        Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "job {id} ({}) cannot be stopped part way; it ends by itself",
                job.kind
            ),
        ))
    } else {
        job.counters.cancel();
        Ok((StatusCode::ACCEPTED, Json(job.to_json())))
    };
    let outcome = match &answer {
        Ok(_) => "202".to_string(),
        Err(e) => format!("{}: {}", e.status.as_u16(), e.message),
    };
    audit(&pool, token, format!("cancel job {id}"), outcome).await?;
    answer
}
