//! `/api/v1/mirrors`: mirror relationships (`shale mirror …`). Creating one
//! opens another pool with the server's own credentials, so it takes an
//! admin token; transfers (update, resync) are jobs (`api::jobs`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use shale_core::ops::mirror::{MirrorRow, Policy};
use shale_core::ops::tokens::Role;
use shale_core::{Pool, PoolSpec};

use super::{blocking, change, to_json, Answer, Changed, SyncPlaces};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Body, Params};

/// Opens a mirror's source pool, reaching object stores through the
/// endpoint and region that `shale serve` was given.
pub(crate) fn open_source(
    source_pool: &str,
    places: &SyncPlaces,
    options: &shale_core::PoolOptions,
) -> Result<Pool, String> {
    let mut spec = PoolSpec::parse(std::ffi::OsStr::new(source_pool)).map_err(|e| e.to_string())?;
    if let PoolSpec::Store(l) = &mut spec {
        l.endpoint = places.endpoint.clone();
        l.region = places.region.clone();
    }
    Pool::open_spec(&spec, options)
        .map_err(|e| format!("opening the source pool {source_pool}: {e}"))
}

/// The relationship of `volume`: 404 if it is not a mirror.
pub(crate) fn mirror_of(pool: &Pool, volume: &str) -> Result<MirrorRow, ApiError> {
    pool.mirrors()?
        .into_iter()
        .find(|r| r.volume == volume)
        .ok_or_else(|| ApiError::not_found(format!("volume '{volume}' is not a mirror")))
}

/// A relationship as the API shows it: with its lag, in seconds.
fn shown(row: MirrorRow) -> Result<Value, ApiError> {
    let lag = row
        .last_source_created
        .map(|t| ((super::now_ns() - t).max(0) / 1_000_000_000) as u64);
    let mut v = to_json(row)?;
    v["lag_seconds"] = json!(lag);
    Ok(v)
}

/// `GET /api/v1/mirrors`: the relationships the caller sees.
pub async fn list(State(pool): State<Arc<Pool>>, caller: Caller) -> Answer {
    blocking(&pool, move |p| {
        let mut rows = Vec::new();
        for row in p.mirrors()? {
            if caller.sees(p, &row.volume) {
                rows.push(shown(row)?);
            }
        }
        Ok(Json(Value::Array(rows)))
    })
    .await
}

/// The body of `POST /api/v1/mirrors`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMirror {
    /// The mirror, a new volume of this pool.
    volume: String,
    /// `POOL::VOLUME`: the source pool (a path or URL the server can
    /// open) and its volume.
    source: String,
    /// `all` (every newer snapshot) or `latest`.
    #[serde(default = "all")]
    policy: String,
}

fn all() -> String {
    "all".into()
}

/// `POST /api/v1/mirrors`: records a relationship (no transfer: start a
/// `mirror_update` job for that).
pub async fn create(
    State(pool): State<Arc<Pool>>,
    Extension(places): Extension<SyncPlaces>,
    caller: Caller,
    Body(body): Body<NewMirror>,
) -> Changed {
    let action = format!("create mirror {} of {}", body.volume, body.source);
    let work = move |p: &Pool, _: &Caller| make(p, &body, &places);
    change(
        &pool,
        caller,
        Role::Admin,
        StatusCode::CREATED,
        action,
        work,
    )
    .await
}

/// Checks the source and records the relationship.
fn make(pool: &Pool, body: &NewMirror, places: &SyncPlaces) -> Result<Value, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m);
    let Some((src_pool, src_volume)) = body
        .source
        .rsplit_once("::")
        .filter(|(p, v)| !p.is_empty() && !v.is_empty())
    else {
        return Err(bad(format!(
            "source {:?}: give it as POOL::VOLUME (a pool path or URL, then the volume)",
            body.source
        )));
    };
    let policy = Policy::parse(&body.policy)?;
    if pool.volume_info(&body.volume).is_ok() {
        let m = format!(
            "volume '{}' exists and is not a mirror: choose another name, or delete it first",
            body.volume
        );
        return Err(ApiError::new(StatusCode::CONFLICT, m));
    }
    let source = open_source(src_pool, places, pool.options()).map_err(bad)?;
    source.volume_info(src_volume)?;
    drop(source);
    shown(pool.mirror_create(&body.volume, src_pool, src_volume, policy)?)
}

/// `POST /api/v1/mirrors/{volume}/break`: the mirror becomes writable.
pub async fn break_off(
    State(pool): State<Arc<Pool>>,
    caller: Caller,
    Params(volume): Params<String>,
) -> Changed {
    let action = format!("break mirror {volume}");
    let work = move |p: &Pool, c: &Caller| {
        c.check_volume(p, &volume)?;
        if mirror_of(p, &volume)?.state == "broken" {
            let m = format!("mirror '{volume}' is already broken");
            return Err(ApiError::new(StatusCode::CONFLICT, m));
        }
        p.mirror_break(&volume)?;
        shown(mirror_of(p, &volume)?)
    };
    change(&pool, caller, Role::Write, StatusCode::OK, action, work).await
}

/// `DELETE /api/v1/mirrors/{volume}`: ends the relationship; the volume
/// stays, writable.
pub async fn delete(
    State(pool): State<Arc<Pool>>,
    caller: Caller,
    Params(volume): Params<String>,
) -> Changed {
    let action = format!("end mirror {volume}");
    let work = move |p: &Pool, c: &Caller| {
        c.check_volume(p, &volume)?;
        mirror_of(p, &volume)?;
        p.mirror_delete(&volume)?;
        Ok(json!({ "deleted": volume }))
    };
    change(&pool, caller, Role::Write, StatusCode::OK, action, work).await
}
