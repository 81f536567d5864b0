//! What the pool knows beyond volumes and snapshots: diffs, runs and the
//! tokens themselves.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use shale_core::ops::diff::DiffStat;
use shale_core::ops::tokens::Role;
use shale_core::Pool;

use super::{blocking, change, to_json, Answer, Changed};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Body, Params, QueryOf};

/// The query of `GET /api/v1/diff`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    /// The older side: `VOLUME@SNAPSHOT` or `VOLUME`.
    a: String,
    /// The newer side.
    b: String,
    /// Totals only.
    #[serde(default)]
    stat: bool,
}

/// The volume a spec names.
fn volume_of(spec: &str) -> &str {
    spec.split('@').next().unwrap_or(spec)
}

/// `GET /api/v1/diff?a=&b=`: what changed from `a` to `b`.
pub async fn diff(
    State(pool): State<Arc<Pool>>,
    caller: Caller,
    QueryOf(q): QueryOf<DiffQuery>,
) -> Answer {
    blocking(&pool, move |p| {
        caller.check_volume(p, volume_of(&q.a))?;
        caller.check_volume(p, volume_of(&q.b))?;
        let changes = p.diff(&q.a, &q.b)?;
        if q.stat {
            to_json(DiffStat::of(&changes)).map(Json)
        } else {
            to_json(changes).map(Json)
        }
    })
    .await
}

/// A run with what the caller may not see taken out; `None` if it touched
/// none of the caller's volumes.
fn shown_run(p: &Pool, caller: &Caller, mut run: shale_core::ops::lineage::Run) -> Option<Value> {
    if caller.0.token.volume.is_some() {
        let touched = run
            .inputs
            .iter()
            .chain(&run.outputs)
            .any(|d| caller.sees(p, &d.volume));
        if !touched {
            return None;
        }
        run.inputs.retain(|d| caller.sees(p, &d.volume));
        run.outputs.retain(|d| caller.sees(p, &d.volume));
    }
    serde_json::to_value(run).ok()
}

/// `GET /api/v1/runs`: runs recorded by `shale run`, newest first.
pub async fn runs(State(pool): State<Arc<Pool>>, caller: Caller) -> Answer {
    blocking(&pool, move |p| {
        let shown: Vec<Value> = p
            .runs()?
            .into_iter()
            .filter_map(|r| shown_run(p, &caller, r))
            .collect();
        Ok(Json(Value::Array(shown)))
    })
    .await
}

/// `GET /api/v1/runs/{id}`.
pub async fn run(
    State(pool): State<Arc<Pool>>,
    caller: Caller,
    Params(id): Params<String>,
) -> Answer {
    blocking(&pool, move |p| {
        let missing = || ApiError::not_found(format!("no run {id}"));
        let number: i64 = id.parse().map_err(|_| missing())?;
        let run = p.run_record(number).map_err(|_| missing())?;
        shown_run(p, &caller, run).map(Json).ok_or_else(missing)
    })
    .await
}

/// `GET /api/v1/tokens` (admins): every token, never a secret.
pub async fn tokens(State(pool): State<Arc<Pool>>, caller: Caller) -> Answer {
    caller.require(Role::Admin)?;
    blocking(&pool, move |p| to_json(p.tokens()?).map(Json)).await
}

/// The body of `POST /api/v1/tokens`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    role: Role,
    volume: Option<String>,
    #[serde(default)]
    note: String,
    /// Days until it stops working.
    expires_days: Option<u32>,
}

/// `POST /api/v1/tokens` (admins): the new secret, shown once.
pub async fn create_token(
    State(pool): State<Arc<Pool>>,
    caller: Caller,
    Body(body): Body<NewToken>,
) -> Changed {
    let action = format!(
        "create token {} {}",
        body.role,
        body.volume.as_deref().unwrap_or("pool")
    );
    change(
        &pool,
        caller,
        Role::Admin,
        StatusCode::CREATED,
        action,
        move |p, _| {
            let expires = match body.expires_days {
                Some(0) | None => None,
                Some(d) if d > 36_500 => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "expires_days: at most 36500",
                    ))
                }
                Some(d) => Some(super::now_ns() + i64::from(d) * 86_400 * 1_000_000_000),
            };
            let made = p.create_token(body.role, body.volume.as_deref(), &body.note, expires)?;
            to_json(made)
        },
    )
    .await
}

/// `DELETE /api/v1/tokens/{id}` (admins).
pub async fn revoke_token(
    State(pool): State<Arc<Pool>>,
    caller: Caller,
    Params(id): Params<String>,
) -> Changed {
    let own = caller.0.token.id;
    let action = format!("revoke token {id}");
    change(
        &pool,
        caller,
        Role::Admin,
        StatusCode::OK,
        action,
        move |p, _| {
            let missing = || ApiError::not_found(format!("no token {id}"));
            let number: i64 = id.parse().map_err(|_| missing())?;
            if number == own {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "this is the token making the request: revoke it with another admin token \
                     or `shale token revoke` on the pool",
                ));
            }
            p.revoke_token(number).map_err(|_| missing())?;
            Ok(json!({ "revoked": number }))
        },
    )
    .await
}
