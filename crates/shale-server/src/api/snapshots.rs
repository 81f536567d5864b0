//! `/api/v1/…/snapshots`: list, take, show, delete and restore snapshots,
//! and a snapshot's lineage.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use shale_core::ops::tokens::Role;
use shale_core::Pool;

use super::{blocking, change, scoped_lineage, to_json, Answer, Changed, SpaceQuery};
use crate::auth::Caller;
use crate::extract::{Body, Params, QueryOf};

pub(super) async fn snapshot_lineage(
    State(pool): State<Arc<Pool>>,
    caller: Caller,
    Params((name, snapshot)): Params<(String, String)>,
) -> Answer {
    blocking(&pool, move |p| {
        caller.check_volume(p, &name)?;
        let l = p.lineage(&format!("{name}@{snapshot}"))?;
        to_json(scoped_lineage(p, &caller, l)).map(Json)
    })
    .await
}

pub(super) async fn list_snapshots(
    State(pool): State<Arc<Pool>>,
    caller: Caller,
    Params(name): Params<String>,
    QueryOf(q): QueryOf<SpaceQuery>,
) -> Answer {
    blocking(&pool, move |p| {
        caller.check_volume(p, &name)?;
        // As the CLI: a volume deleted with --keep-snapshots still has them.
        let mut snaps = p.list_snapshots(Some(&name))?;
        if q.space {
            for s in &mut snaps {
                s.used_bytes = Some(p.exclusive_bytes(&s.volume, Some(&s.name))?);
            }
        }
        to_json(snaps).map(Json)
    })
    .await
}

/// Every snapshot the caller sees, oldest first.
pub(super) async fn all_snapshots(
    State(pool): State<Arc<Pool>>,
    caller: Caller,
    QueryOf(q): QueryOf<SpaceQuery>,
) -> Answer {
    blocking(&pool, move |p| {
        let mut all = p.list_snapshots(None)?;
        let mut seen = std::collections::HashMap::new();
        all.retain(|s| {
            *seen
                .entry(s.volume.clone())
                .or_insert_with(|| caller.sees(p, &s.volume))
        });
        if q.space {
            for s in &mut all {
                s.used_bytes = Some(p.exclusive_bytes(&s.volume, Some(&s.name))?);
            }
        }
        all.sort_by(|a, b| a.created.cmp(&b.created));
        to_json(all).map(Json)
    })
    .await
}

/// The body of `POST …/snapshots` (optional).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct NewSnapshot {
    name: Option<String>,
}

pub(super) async fn create_snapshot(
    State(pool): State<Arc<Pool>>,
    caller: Caller,
    Params(name): Params<String>,
    Body(body): Body<Option<NewSnapshot>>,
) -> Changed {
    let snap = body.unwrap_or_default().name;
    let action = format!("snapshot {name}");
    change(
        &pool,
        caller,
        Role::Write,
        StatusCode::CREATED,
        action,
        move |p, c| {
            c.check_volume(p, &name)?;
            to_json(p.create_snapshot(&name, snap.as_deref())?)
        },
    )
    .await
}

pub(super) async fn snapshot(
    State(pool): State<Arc<Pool>>,
    caller: Caller,
    Params((name, snapshot)): Params<(String, String)>,
) -> Answer {
    blocking(&pool, move |p| {
        caller.check_volume(p, &name)?;
        let found = p
            .list_snapshots(Some(&name))?
            .into_iter()
            .find(|s| s.name == snapshot);
        match found {
            Some(s) => to_json(s).map(Json),
            None => Err(shale_core::Error::SnapshotNotFound {
                volume: name,
                name: snapshot,
            }
            .into()),
        }
    })
    .await
}

pub(super) async fn delete_snapshot(
    State(pool): State<Arc<Pool>>,
    caller: Caller,
    Params((name, snapshot)): Params<(String, String)>,
) -> Changed {
    let action = format!("delete snapshot {name}@{snapshot}");
    change(
        &pool,
        caller,
        Role::Write,
        StatusCode::OK,
        action,
        move |p, c| {
            c.check_volume(p, &name)?;
            p.delete_snapshot(&name, &snapshot)?;
            Ok(json!({ "deleted": format!("{name}@{snapshot}") }))
        },
    )
    .await
}

pub(super) async fn restore(
    State(pool): State<Arc<Pool>>,
    caller: Caller,
    Params((name, snapshot)): Params<(String, String)>,
) -> Changed {
    let action = format!("restore {name}@{snapshot}");
    change(
        &pool,
        caller,
        Role::Write,
        StatusCode::OK,
        action,
        move |p, c| {
            c.check_volume(p, &name)?;
            to_json(p.restore_snapshot(&name, &snapshot)?)
        },
    )
    .await
}
