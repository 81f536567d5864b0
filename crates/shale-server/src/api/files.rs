//! A volume's files: a directory listed, a file downloaded (streamed chunk
//! by chunk) or uploaded (staged on the server, then imported into the
//! volume as one commit).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Body as RawBody;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use shale_core::ops::import::ImportOptions;
use shale_core::ops::tokens::Role;
use shale_core::tree::{lookup, read_dir, split_path, Content};
use shale_core::{Error, ObjectId, Pool};
use tokio::io::AsyncWriteExt;

use super::{blocking, change, refused, to_json, Answer, Changed};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Params, QueryOf};

/// `?path=&snapshot=` of a listing; `?snapshot=` of a download.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Where {
    #[serde(default)]
    path: String,
    snapshot: Option<String>,
}

fn spec(volume: &str, snapshot: &Option<String>) -> String {
    match snapshot {
        Some(s) => format!("{volume}@{s}"),
        None => volume.to_string(),
    }
}

/// The entry at `path` in `volume[@snapshot]`; the root directory for "".
fn entry_at(
    p: &Pool,
    volume: &str,
    snapshot: &Option<String>,
    path: &str,
) -> Result<Option<Content>, ApiError> {
    let root = p.resolve(&spec(volume, snapshot))?.root;
    let parts = split_path(path)?;
    if parts.is_empty() {
        return Ok(Some(Content::Dir(shale_core::tree::DirRef {
            tree: root,
            bytes: 0,
            files: 0,
            entries: 0,
        })));
    }
    Ok(lookup(p.blobs(), &root, &parts)?.map(|e| e.content))
}

fn no_such(volume: &str, path: &str) -> ApiError {
    ApiError::not_found(format!("{volume}: no such file or directory: {path}"))
}

/// `GET /api/v1/volumes/{name}/files`: one directory's entries.
pub async fn list(
    State(pool): State<Arc<Pool>>,
    caller: Caller,
    Params(name): Params<String>,
    QueryOf(q): QueryOf<Where>,
) -> Answer {
    blocking(&pool, move |p| {
        caller.check_volume(p, &name)?;
        let tree: ObjectId = match entry_at(p, &name, &q.snapshot, &q.path)? {
            Some(Content::Dir(d)) => d.tree,
            Some(_) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("{name}: {} is not a directory", q.path),
                ))
            }
            None => return Err(no_such(&name, &q.path)),
        };
        let entries: Vec<Value> = read_dir(p.blobs(), &tree)?
            .iter()
            .map(|e| {
                json!({
                    "name": String::from_utf8_lossy(&e.name),
                    "kind": e.kind_name(),
                    "size": e.bytes(),
                    "mode": e.mode,
                    "mtime": shale_core::ops::volumes::rfc3339(e.mtime_ns),
                })
            })
            .collect();
        to_json(entries).map(Json)
    })
    .await
}

/// `GET /api/v1/volumes/{name}/files/{path}`: a file's bytes.
pub async fn download(
    State(pool): State<Arc<Pool>>,
    caller: Caller,
    Params((name, path)): Params<(String, String)>,
    QueryOf(q): QueryOf<Where>,
) -> Result<Response, ApiError> {
    if !q.path.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "path: given in the URL here",
        ));
    }
    let (shown, wanted) = (path.clone(), name.clone());
    let (size, chunks) = blocking(&pool, move |p| {
        caller.check_volume(p, &name)?;
        match entry_at(p, &name, &q.snapshot, &path)? {
            Some(Content::File { size, chunks }) => Ok((size, chunks)),
            Some(_) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("{name}: {path} is not a file"),
            )),
            None => Err(no_such(&name, &path)),
        }
    })
    .await?;
    // Chunks are read on the blocking pool and sent on as they come; a
    // damaged chunk ends the body early (the client sees a short read).
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, Error>>(4);
    let reader = pool.clone();
    tokio::task::spawn_blocking(move || {
        for c in chunks {
            let data = reader.blobs().get(&c.id);
            let failed = data.is_err();
            if tx.blocking_send(data.map(|d| d.to_vec())).is_err() || failed {
                if failed {
                    warn_cut_short(&wanted, &shown);
                }
                return;
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, size.to_string()),
        ],
        RawBody::from_stream(stream),
    )
        .into_response())
}

fn warn_cut_short(volume: &str, path: &str) {
    eprintln!("shale serve: {volume}/{path}: a chunk could not be read; the download was cut short (run `shale verify`)");
}

/// Numbers the staging directories of uploads under way.
static UPLOADS: AtomicU64 = AtomicU64::new(0);

/// `PUT /api/v1/volumes/{name}/files/{path}`: writes a file (replacing
/// one there), creating the directories above it.
pub async fn upload(
    State(pool): State<Arc<Pool>>,
    caller: Caller,
    Params((name, path)): Params<(String, String)>,
    body: RawBody,
) -> Changed {
    let action = format!("upload {name}/{path}");
    // Refuse before reading a byte what would be refused after.
    let check = (Caller(caller.0.clone()), name.clone(), path.clone());
    let allowed = blocking(&pool, move |p| {
        let (c, name, path) = check;
        c.require(Role::Write)?;
        c.check_volume(p, &name)?;
        p.volume_info(&name)?;
        Ok(split_path(&path)?)
    })
    .await;
    let parts = match allowed {
        Ok(parts) if !parts.is_empty() => parts,
        Ok(_) => {
            return refused(
                &pool,
                &caller,
                action,
                ApiError::new(StatusCode::BAD_REQUEST, "a file path is needed"),
            )
            .await
        }
        Err(e) => return refused(&pool, &caller, action, e).await,
    };
    let (file, dirs) = parts.split_last().expect("not empty");
    let staging = pool.root().join("tmp").join(format!(
        "upload-{}-{}",
        std::process::id(),
        UPLOADS.fetch_add(1, Ordering::Relaxed)
    ));
    let target = staging.join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(file));
    let staged = stage(&staging, &target, body).await;
    let into: Vec<String> = dirs
        .iter()
        .map(|d| String::from_utf8_lossy(d).into_owned())
        .collect();
    let answer = match staged {
        Err(e) => refused(&pool, &caller, action, e).await,
        Ok(bytes) => {
            let staging = staging.clone();
            change(&pool, caller, Role::Write, StatusCode::CREATED, action, move |p, c| {
                c.check_volume(p, &name)?;
                p.volume_info(&name)?;
                let report = p.import(
                    &name,
                    &staging,
                    &ImportOptions {
                        to: (!into.is_empty()).then(|| into.join("/")),
                        delete: false,
                        checksum: true,
                        ..Default::default()
                    },
                )?;
                Ok(json!({ "volume": name, "path": path, "bytes": bytes, "files_read": report.files_read }))
            })
            .await
        }
    };
    let _ = tokio::fs::remove_dir_all(&staging).await;
    answer
}

/// Writes the request body to `target`; its length.
async fn stage(
    staging: &std::path::Path,
    target: &std::path::Path,
    body: RawBody,
) -> Result<u64, ApiError> {
    let io = |e: std::io::Error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("staging the upload: {e}"),
        )
    };
    tokio::fs::create_dir_all(staging).await.map_err(io)?;
    let mut out = tokio::fs::File::create(target).await.map_err(io)?;
    let mut stream = body.into_data_stream();
    let mut bytes = 0u64;
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, format!("reading the upload: {e}"))
        })?;
        bytes += piece.len() as u64;
        out.write_all(&piece).await.map_err(io)?;
    }
    out.flush().await.map_err(io)?;
    out.sync_all().await.map_err(io)?;
    Ok(bytes)
}
