//! The routes of `/api/v1` and their handlers: the pool and volumes here,
//! the rest in the submodules.

mod files;
pub(crate) mod jobs;
mod mirrors;
mod records;
mod snapshots;

use std::sync::Arc;

use axum::extract::Request;
use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use shale_core::ops::lineage::Lineage;
use shale_core::ops::tokens::Role;
use shale_core::Pool;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Body, Params, QueryOf};
use crate::jobs::Jobs;
pub use jobs::SyncPlaces;

type Answer = Result<Json<Value>, ApiError>;

/// Every route: method and path (as the OpenAPI document spells it).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/pool"),
    ("get", "/api/v1/pool/history"),
    ("get", "/api/v1/volumes"),
    ("post", "/api/v1/volumes"),
    ("get", "/api/v1/volumes/{name}"),
    ("delete", "/api/v1/volumes/{name}"),
    ("patch", "/api/v1/volumes/{name}"),
    ("post", "/api/v1/volumes/{name}/clone"),
    ("get", "/api/v1/volumes/{name}/lineage"),
    ("get", "/api/v1/volumes/{name}/snapshots"),
    ("post", "/api/v1/volumes/{name}/snapshots"),
    ("get", "/api/v1/volumes/{name}/snapshots/{snapshot}"),
    ("get", "/api/v1/volumes/{name}/snapshots/{snapshot}/lineage"),
    ("delete", "/api/v1/volumes/{name}/snapshots/{snapshot}"),
    (
        "post",
        "/api/v1/volumes/{name}/snapshots/{snapshot}/restore",
    ),
    ("get", "/api/v1/snapshots"),
    ("get", "/api/v1/volumes/{name}/files"),
    ("get", "/api/v1/volumes/{name}/files/{path}"),
    ("put", "/api/v1/volumes/{name}/files/{path}"),
    ("get", "/api/v1/diff"),
    ("get", "/api/v1/runs"),
    ("get", "/api/v1/runs/{id}"),
    ("get", "/api/v1/mirrors"),
    ("post", "/api/v1/mirrors"),
    ("delete", "/api/v1/mirrors/{volume}"),
    ("post", "/api/v1/mirrors/{volume}/break"),
    ("get", "/api/v1/jobs"),
    ("post", "/api/v1/jobs"),
    ("get", "/api/v1/jobs/{id}"),
    ("delete", "/api/v1/jobs/{id}"),
    ("get", "/api/v1/tokens"),
    ("post", "/api/v1/tokens"),
    ("delete", "/api/v1/tokens/{id}"),
    ("get", "/api/v1/audit"),
];

/// The API's router over `pool`, with a job list of its own.
pub fn router(pool: Arc<Pool>) -> Router {
    router_with(pool, Arc::default(), SyncPlaces::default())
}

/// The API's router over `pool`, keeping its jobs in `jobs`; sync jobs
/// reach buckets through `places`.
pub fn router_with(pool: Arc<Pool>, jobs: Arc<Jobs>, places: SyncPlaces) -> Router {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/pool", get(pool_info))
        .route("/api/v1/pool/history", get(pool_history))
        .route("/api/v1/volumes", get(list_volumes).post(create_volume))
        .route(
            "/api/v1/volumes/{name}",
            get(volume).delete(delete_volume).patch(resize_volume),
        )
        .route("/api/v1/volumes/{name}/clone", post(clone_volume))
        .route("/api/v1/volumes/{name}/lineage", get(lineage))
        .route(
            "/api/v1/volumes/{name}/snapshots",
            get(snapshots::list_snapshots).post(snapshots::create_snapshot),
        )
        .route(
            "/api/v1/volumes/{name}/snapshots/{snapshot}",
            get(snapshots::snapshot).delete(snapshots::delete_snapshot),
        )
        .route(
            "/api/v1/volumes/{name}/snapshots/{snapshot}/lineage",
            get(snapshots::snapshot_lineage),
        )
        .route(
            "/api/v1/volumes/{name}/snapshots/{snapshot}/restore",
            post(snapshots::restore),
        )
        .route("/api/v1/snapshots", get(snapshots::all_snapshots))
        .route("/api/v1/volumes/{name}/files", get(files::list))
        .route(
            "/api/v1/volumes/{name}/files/{*path}",
            get(files::download).put(files::upload),
        )
        .route("/api/v1/diff", get(records::diff))
        .route("/api/v1/runs", get(records::runs))
        .route("/api/v1/runs/{id}", get(records::run))
        .route("/api/v1/mirrors", get(mirrors::list).post(mirrors::create))
        .route("/api/v1/mirrors/{volume}", delete(mirrors::delete))
        .route("/api/v1/mirrors/{volume}/break", post(mirrors::break_off))
        .route("/api/v1/jobs", get(jobs::list).post(jobs::start))
        .route("/api/v1/jobs/{id}", get(jobs::get).delete(jobs::cancel))
        .route(
            "/api/v1/tokens",
            get(records::tokens).post(records::create_token),
        )
        .route("/api/v1/tokens/{id}", delete(records::revoke_token))
        .route("/api/v1/audit", get(audit))
        .merge(crate::ui::routes())
        .merge(mcp_route(pool.clone()))
        .fallback(|| async { ApiError::not_found("no such resource: see /api/v1/openapi.json") })
        .layer(Extension(jobs))
        .layer(Extension(places))
        .with_state(pool)
}

/// `/mcp`: the MCP tools over streamable HTTP, for requests with a token
/// that works (its grant rides along in the request for the tools).
fn mcp_route(pool: Arc<Pool>) -> Router<Arc<Pool>> {
    async fn authenticate(caller: Caller, mut request: Request, next: Next) -> Response {
        request.extensions_mut().insert(caller.0);
        next.run(request).await
    }
    Router::new()
        .route_service("/mcp", crate::mcp::http_service(pool.clone()))
        .layer(axum::middleware::from_fn_with_state(pool, authenticate))
}

/// Nanoseconds since the Unix epoch.
fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Writes a refused change to the audit log and answers with the refusal.
async fn refused<T>(
    pool: &Arc<Pool>,
    caller: &Caller,
    action: String,
    e: ApiError,
) -> Result<T, ApiError> {
    let (token, outcome) = (
        caller.0.token.id,
        format!("{}: {}", e.status.as_u16(), e.message),
    );
    blocking(pool, move |p| {
        Ok(p.record_audit(Some(token), &action, &outcome)?)
    })
    .await?;
    Err(e)
}

/// Runs a pool operation on the blocking pool.
async fn blocking<T: Send + 'static>(
    pool: &Arc<Pool>,
    work: impl FnOnce(&Pool) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || work(&pool))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

/// Runs a change that needs `need`, and writes it to the audit log
/// whatever its result (refusals too); answers `status` when it succeeds.
async fn change(
    pool: &Arc<Pool>,
    caller: Caller,
    need: Role,
    status: StatusCode,
    action: String,
    work: impl FnOnce(&Pool, &Caller) -> Result<Value, ApiError> + Send + 'static,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let token = caller.0.token.id;
    let result = match caller.require(need) {
        Ok(()) => blocking(pool, move |p| work(p, &caller)).await,
        Err(e) => Err(e),
    };
    let outcome = match &result {
        Ok(_) => status.as_u16().to_string(),
        Err(e) => format!("{}: {}", e.status.as_u16(), e.message),
    };
    blocking(pool, move |p| {
        Ok(p.record_audit(Some(token), &action, &outcome)?)
    })
    .await?;
    result.map(|v| (status, Json(v)))
}

type Changed = Result<(StatusCode, Json<Value>), ApiError>;

fn to_json<T: serde::Serialize>(value: T) -> Result<Value, ApiError> {
    serde_json::to_value(value)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

async fn openapi() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        crate::OPENAPI,
    )
}

/// The query of `GET /api/v1/pool`.
#[derive(Deserialize)]
struct PoolQuery {
    /// Add what gc would free (walks every tree: slower).
    #[serde(default)]
    space: bool,
}

async fn pool_info(
    State(pool): State<Arc<Pool>>,
    caller: Caller,
    QueryOf(q): QueryOf<PoolQuery>,
) -> Answer {
    let scoped = caller.0.token.volume.clone();
    blocking(&pool, move |p| {
        let mut report = p.report(q.space)?;
        if caller.0.role != Role::Admin {
            // Where the data and the catalog live is the admins' business.
            report.store = None;
        }
        let mut v = to_json(report)?;
        v["name"] = json!(p.name());
        v["compressed_bytes"] = json!(p.totals()?.compressed_bytes);
        v["token"] = json!({"role": caller.0.role, "volume": scoped});
        Ok(Json(v))
    })
    .await
}

/// The query of `GET /api/v1/pool/history`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    /// The newest samples to answer with (at most 10,000).
    #[serde(default = "history_limit")]
    limit: u32,
}

fn history_limit() -> u32 {
    2_000
}

/// `GET /api/v1/pool/history`: the pool's totals as sampled over time
/// (pool totals only: every token may read them).
async fn pool_history(
    State(pool): State<Arc<Pool>>,
    _caller: Caller,
    QueryOf(q): QueryOf<HistoryQuery>,
) -> Answer {
    let limit = i64::from(q.limit.min(10_000));
    blocking(&pool, move |p| to_json(p.space_history(limit)?).map(Json)).await
}

async fn list_volumes(State(pool): State<Arc<Pool>>, caller: Caller) -> Answer {
    blocking(&pool, move |p| {
        let all = p.list_volumes()?;
        to_json(
            all.into_iter()
                .filter(|v| caller.sees(p, &v.name))
                .collect::<Vec<_>>(),
        )
        .map(Json)
    })
    .await
}

/// The body of `POST /api/v1/volumes`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewVolume {
    name: String,
    /// Bytes; a JSON number with no fraction (`445.0` too).
    quota: Option<serde_json::Number>,
}

/// A quota from JSON: a whole number of bytes.
fn bytes(n: &Option<serde_json::Number>) -> Result<Option<u64>, ApiError> {
    let Some(n) = n else { return Ok(None) };
    n.as_u64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 9.2e18)
                .map(|f| f as u64)
        })
        .filter(|b| *b <= i64::MAX as u64) // the catalog keeps sizes as i64
        .map(Some)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("quota {n}: a whole number of bytes"),
            )
        })
}

async fn create_volume(
    State(pool): State<Arc<Pool>>,
    caller: Caller,
    Body(body): Body<NewVolume>,
) -> Changed {
    let action = format!("create volume {}", body.name);
    change(
        &pool,
        caller,
        Role::Write,
        StatusCode::CREATED,
        action,
        move |p, c| {
            c.require_pool_wide()?;
            to_json(p.create_volume(&body.name, bytes(&body.quota)?)?)
        },
    )
    .await
}

/// The query of `GET /api/v1/volumes/{name}` and of its snapshot list.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SpaceQuery {
    /// Also count the bytes only this volume (or snapshot) holds: what
    /// deleting it would free (`used_bytes`; `--space` in the CLI).
    #[serde(default)]
    space: bool,
}

async fn volume(
    State(pool): State<Arc<Pool>>,
    caller: Caller,
    Params(name): Params<String>,
    QueryOf(q): QueryOf<SpaceQuery>,
) -> Answer {
    blocking(&pool, move |p| {
        caller.check_volume(p, &name)?;
        let mut v = p.volume_info(&name)?;
        if q.space {
            v.used_bytes = Some(p.exclusive_bytes(&name, None)?);
        }
        to_json(v).map(Json)
    })
    .await
}

/// The query of `DELETE /api/v1/volumes/{name}`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DeleteQuery {
    /// Keep the volume's snapshots (readable, clonable) after it is gone.
    #[serde(default)]
    keep_snapshots: bool,
}

async fn delete_volume(
    State(pool): State<Arc<Pool>>,
    caller: Caller,
    Params(name): Params<String>,
    QueryOf(q): QueryOf<DeleteQuery>,
) -> Changed {
    let keep = q.keep_snapshots;
    let action = format!(
        "delete volume {name}{}",
        if keep { " (keeping its snapshots)" } else { "" }
    );
    change(
        &pool,
        caller,
        Role::Write,
        StatusCode::OK,
        action,
        move |p, c| {
            c.check_volume(p, &name)?;
            p.delete_volume(&name, keep)?;
            Ok(json!({ "deleted": name }))
        },
    )
    .await
}

/// The body of `PATCH /api/v1/volumes/{name}`: `{"quota": BYTES}`, or
/// `{"quota": null}` to remove it (required: an empty body changes nothing
/// by mistake).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Resize {
    #[serde(deserialize_with = "present")]
    quota: Option<serde_json::Number>,
}

/// A field that must be given, `null` allowed.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Number>, D::Error> {
    Option::deserialize(d)
}

async fn resize_volume(
    State(pool): State<Arc<Pool>>,
    caller: Caller,
    Params(name): Params<String>,
    Body(body): Body<Resize>,
) -> Changed {
    let action = format!("resize volume {name}");
    change(
        &pool,
        caller,
        Role::Write,
        StatusCode::OK,
        action,
        move |p, c| {
            c.check_volume(p, &name)?;
            to_json(p.resize_volume(&name, bytes(&body.quota)?)?)
        },
    )
    .await
}

/// The body of `POST …/clone`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewClone {
    name: String,
    snapshot: Option<String>,
}

async fn clone_volume(
    State(pool): State<Arc<Pool>>,
    caller: Caller,
    Params(name): Params<String>,
    Body(body): Body<NewClone>,
) -> Changed {
    let source = match &body.snapshot {
        Some(s) => format!("{name}@{s}"),
        None => name.clone(),
    };
    let action = format!("clone {source} into {}", body.name);
    change(
        &pool,
        caller,
        Role::Write,
        StatusCode::CREATED,
        action,
        move |p, c| {
            c.check_volume(p, &name)?;
            if body.snapshot.is_none() {
                p.volume_info(&name)?; // 404: the volume in the path
            }
            // A snapshot named in the body that does not exist is a bad
            // request, not a missing resource. (A snapshot outlives a volume
            // deleted with --keep-snapshots: it clones, as with the CLI.)
            match p.clone_volume(&body.name, &source) {
                Err(e @ shale_core::Error::SnapshotNotFound { .. }) => Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    e.to_string(),
                )),
                other => to_json(other?),
            }
        },
    )
    .await
}

/// `l` with what a volume-scoped token may not see taken out: other
/// volumes' clones and the runs' other datasets.
pub(crate) fn scoped_lineage(p: &Pool, caller: &Caller, mut l: Lineage) -> Lineage {
    l.clones
        .retain(|c| caller.sees(p, c.split('@').next().unwrap_or(c)));
    for run in l.produced_by.iter_mut().chain(l.used_by.iter_mut()) {
        run.inputs.retain(|d| caller.sees(p, &d.volume));
        run.outputs.retain(|d| caller.sees(p, &d.volume));
    }
    l
}

async fn lineage(
    State(pool): State<Arc<Pool>>,
    caller: Caller,
    Params(name): Params<String>,
) -> Answer {
    blocking(&pool, move |p| {
        caller.check_volume(p, &name)?;
        to_json(scoped_lineage(p, &caller, p.lineage(&name)?)).map(Json)
    })
    .await
}

/// `?limit=N` of `GET /api/v1/audit`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Limit {
    limit: Option<i64>,
}

async fn audit(
    State(pool): State<Arc<Pool>>,
    caller: Caller,
    QueryOf(q): QueryOf<Limit>,
) -> Answer {
    caller.require(Role::Admin)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "limit: from 1 to 10000",
        ));
    }
    blocking(&pool, move |p| to_json(p.audit(limit)?).map(Json)).await
}
