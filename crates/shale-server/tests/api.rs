//! The API through its router (no network): every route against its
//! OpenAPI document, tokens and their roles and scopes, the audit log,
//! and hostile input.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use shale_core::ops::tokens::Role;
use shale_core::Pool;
use tower::ServiceExt;

struct Api {
    pool: Arc<Pool>,
    /// One router, so jobs started by one call are seen by the next.
    router: axum::Router,
    _dir: tempfile::TempDir,
}

impl Api {
    fn new() -> Api {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::init(&dir.path().join("pool")).unwrap();
        for v in ["imagenet", "hr-data"] {
            pool.create_volume(v, None).unwrap();
        }
        let pool = Arc::new(pool);
        Api {
            router: shale_server::router(pool.clone()),
            pool,
            _dir: dir,
        }
    }

    fn token(&self, role: Role, volume: Option<&str>) -> String {
        self.pool
            .create_token(role, volume, "test", None)
            .unwrap()
            .token
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let body = body.map(|b| b.to_string().into_bytes());
        let (status, bytes) = self.raw(method, path, token, body).await;
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// A request with any body; the answer's bytes.
    async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (StatusCode, Vec<u8>) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b)),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, bytes.to_vec())
    }

    /// Polls a job until it ends; its last state.
    async fn wait_job(&self, id: &Value, token: &str) -> Value {
        for _ in 0..600 {
            let (status, job) = self
                .call(
                    Method::GET,
                    &format!("/api/v1/jobs/{id}"),
                    Some(token),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{job}");
            if job["state"] != "running" {
                return job;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("job {id} did not end in 30 s");
    }
}

fn concrete(path: &str) -> String {
    path.replace("{name}", "imagenet")
        .replace("{snapshot}", "v1")
        .replace("{path}", "dir/x.txt")
        .replace("{id}", "1")
        .replace("{volume}", "imagenet")
}

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_routes_and_every_route_answers() {
    let api = Api::new();
    let doc: Value = serde_json::from_str(shale_server::OPENAPI).unwrap();
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "delete", "patch"] {
            if item.get(method).is_some() {
                documented.push((method.into(), path.clone()));
            }
        }
    }
    let mut routes: Vec<(String, String)> = shale_server::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    documented.sort();
    routes.sort();
    assert_eq!(documented, routes);

    // Every route is served: with an admin token, none falls through to 404
    // "no such resource" or 405.
    let admin = api.token(Role::Admin, None);
    api.pool.create_snapshot("imagenet", Some("v1")).unwrap();
    for (method, path) in shale_server::ROUTES.iter().rev() {
        let method: Method = method.to_uppercase().parse().unwrap();
        let body = (method == Method::POST).then(|| json!({"name": "made-by-route-test"}));
        let (status, answer) = api
            .call(method.clone(), &concrete(path), Some(&admin), body)
            .await;
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert!(
            !answer["error"]
                .as_str()
                .unwrap_or("")
                .starts_with("no such resource"),
            "{method} {path}: {answer}"
        );
        assert!(
            status != StatusCode::INTERNAL_SERVER_ERROR,
            "{method} {path}: {answer}"
        );
    }
}

#[tokio::test]
async fn no_token_is_401_a_wrong_role_or_scope_403() {
    let api = Api::new();
    for (method, path) in shale_server::ROUTES {
        if path.ends_with("openapi.json") {
            continue;
        }
        let method: Method = method.to_uppercase().parse().unwrap();
        let (status, _) = api.call(method.clone(), &concrete(path), None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        let (status, _) = api
            .call(method, &concrete(path), Some("shale_not-a-token"), None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let read = api.token(Role::Read, None);
    let (status, answer) = api
        .call(
            Method::POST,
            "/api/v1/volumes/imagenet/snapshots",
            Some(&read),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let (status, _) = api
        .call(Method::GET, "/api/v1/audit", Some(&read), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Revoked and expired tokens stop working.
    let made = api.pool.create_token(Role::Admin, None, "", None).unwrap();
    api.pool.revoke_token(made.record.id).unwrap();
    let (status, _) = api
        .call(Method::GET, "/api/v1/volumes", Some(&made.token), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let old = api
        .pool
        .create_token(Role::Admin, None, "", Some(1))
        .unwrap();
    let (status, _) = api
        .call(Method::GET, "/api/v1/volumes", Some(&old.token), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_volume_token_sees_its_volume_and_its_clones_and_nothing_else() {
    let api = Api::new();
    let own = api.token(Role::Write, Some("imagenet"));
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, list) = api
        .call(Method::GET, "/api/v1/volumes", Some(&own), None)
        .await;
    assert_eq!(names(&list), ["imagenet"]);
    for (method, path) in [
        (Method::GET, "/api/v1/volumes/hr-data"),
        (Method::GET, "/api/v1/volumes/hr-data/snapshots"),
        (Method::GET, "/api/v1/volumes/hr-data/lineage"),
        (Method::POST, "/api/v1/volumes/hr-data/snapshots"),
        (Method::DELETE, "/api/v1/volumes/hr-data"),
        (Method::GET, "/api/v1/volumes/no-such-volume"),
    ] {
        let (status, answer) = api.call(method.clone(), path, Some(&own), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        assert!(!answer.to_string().contains("not found"), "{answer}");
    }
    let (status, _) = api
        .call(
            Method::POST,
            "/api/v1/volumes/hr-data/clone",
            Some(&own),
            Some(json!({"name": "stolen"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = api
        .call(
            Method::POST,
            "/api/v1/volumes",
            Some(&own),
            Some(json!({"name": "mine"})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "making volumes needs a pool-wide token"
    );

    // Its own volume: snapshot, clone (the clone is then its own), restore, delete.
    let (status, snap) = api
        .call(
            Method::POST,
            "/api/v1/volumes/imagenet/snapshots",
            Some(&own),
            Some(json!({"name": "v1"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{snap}");
    assert_eq!(snap["id"].as_str().unwrap().len(), 64);
    let (status, clone) = api
        .call(
            Method::POST,
            "/api/v1/volumes/imagenet/clone",
            Some(&own),
            Some(json!({"name": "exp", "snapshot": "v1"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{clone}");
    let (_, list) = api
        .call(Method::GET, "/api/v1/volumes", Some(&own), None)
        .await;
    assert_eq!(names(&list), ["exp", "imagenet"]);
    let (_, lineage) = api
        .call(
            Method::GET,
            "/api/v1/volumes/imagenet/lineage",
            Some(&own),
            None,
        )
        .await;
    assert_eq!(lineage["clones"], json!(["exp"]));
    let (status, _) = api
        .call(
            Method::POST,
            "/api/v1/volumes/imagenet/snapshots/v1/restore",
            Some(&own),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api
        .call(Method::DELETE, "/api/v1/volumes/exp", Some(&own), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, pool) = api
        .call(Method::GET, "/api/v1/pool", Some(&own), None)
        .await;
    assert_eq!(pool["volumes"], 2);
    assert!(!pool.to_string().contains("hr-data"));

    // Every change, refused ones too, is in the audit log.
    let admin = api.token(Role::Admin, None);
    let (_, log) = api
        .call(Method::GET, "/api/v1/audit", Some(&admin), None)
        .await;
    let actions: Vec<String> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} -> {}",
                e["action"].as_str().unwrap(),
                e["result"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        actions.contains(&"snapshot imagenet -> 201".to_string()),
        "{actions:?}"
    );
    assert!(
        actions
            .iter()
            .any(|a| a.starts_with("snapshot hr-data -> 403")),
        "{actions:?}"
    );
    assert!(
        actions
            .iter()
            .any(|a| a.starts_with("create volume mine -> 403")),
        "{actions:?}"
    );
}

#[tokio::test]
async fn hostile_names_and_bodies_are_refused_not_crashed_on() {
    let api = Api::new();
    let admin = api.token(Role::Admin, None);
    for path in [
        "/api/v1/volumes/..%2F..%2Fetc",
        "/api/v1/volumes/%00",
        "/api/v1/volumes/a%40b/snapshots",
        "/api/v1/volumes/imagenet/snapshots/..",
        "/api/v1/nothing",
    ] {
        let (status, answer) = api.call(Method::GET, path, Some(&admin), None).await;
        assert!(status.is_client_error(), "{path}: {status} {answer}");
    }
    for body in [
        json!({"name": "../x"}),
        json!({"name": ""}),
        json!({"name": "a@b"}),
        json!({"nme": "x"}),
    ] {
        let (status, answer) = api
            .call(
                Method::POST,
                "/api/v1/volumes",
                Some(&admin),
                Some(body.clone()),
            )
            .await;
        assert!(status.is_client_error(), "{body}: {status} {answer}");
    }
    // An optional body may be left out, but whitespace is not JSON
    // (schemathesis sent a tab).
    let snapshots = "/api/v1/volumes/imagenet/snapshots";
    let (status, _) = api
        .raw(Method::POST, snapshots, Some(&admin), Some(b"\t".to_vec()))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = api.raw(Method::POST, snapshots, Some(&admin), None).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = api
        .call(
            Method::POST,
            "/api/v1/volumes",
            Some(&admin),
            Some(json!({"name": "imagenet"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn files_are_listed_downloaded_and_uploaded_within_the_tokens_reach() {
    let api = Api::new();
    let write = api.token(Role::Write, Some("imagenet"));
    let read = api.token(Role::Read, None);
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (status, _) = api
        .raw(
            Method::PUT,
            "/api/v1/volumes/imagenet/files/train/a.bin",
            Some(&write),
            Some(data.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, listed) = api
        .call(
            Method::GET,
            "/api/v1/volumes/imagenet/files",
            Some(&read),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed[0]["name"], "train");
    assert_eq!(listed[0]["kind"], "dir");
    let (_, listed) = api
        .call(
            Method::GET,
            "/api/v1/volumes/imagenet/files?path=train",
            Some(&read),
            None,
        )
        .await;
    assert_eq!(listed[0]["name"], "a.bin");
    assert_eq!(listed[0]["size"], data.len());
    api.pool.create_snapshot("imagenet", Some("v1")).unwrap();
    // Replaced in the volume; the snapshot keeps the first bytes.
    let (status, _) = api
        .raw(
            Method::PUT,
            "/api/v1/volumes/imagenet/files/train/a.bin",
            Some(&write),
            Some(b"new".to_vec()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, got) = api
        .raw(
            Method::GET,
            "/api/v1/volumes/imagenet/files/train/a.bin?snapshot=v1",
            Some(&read),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(got == data, "the snapshot's bytes come back whole");
    let (_, got) = api
        .raw(
            Method::GET,
            "/api/v1/volumes/imagenet/files/train/a.bin",
            Some(&read),
            None,
        )
        .await;
    assert_eq!(got, b"new");

    // What the caller may not do, and what is not there.
    let other = api.token(Role::Write, Some("hr-data"));
    for (method, path, token, want) in [
        (
            Method::GET,
            "/api/v1/volumes/imagenet/files/train/a.bin",
            &other,
            StatusCode::FORBIDDEN,
        ),
        (
            Method::GET,
            "/api/v1/volumes/imagenet/files",
            &other,
            StatusCode::FORBIDDEN,
        ),
        (
            Method::PUT,
            "/api/v1/volumes/imagenet/files/x",
            &other,
            StatusCode::FORBIDDEN,
        ),
        (
            Method::PUT,
            "/api/v1/volumes/imagenet/files/x",
            &read,
            StatusCode::FORBIDDEN,
        ),
        (
            Method::PUT,
            "/api/v1/volumes/imagenet/files/..%2F..%2Fx",
            &write,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v1/volumes/imagenet/files/nothing",
            &read,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            "/api/v1/volumes/imagenet/files/train",
            &read,
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let body = (method == Method::PUT).then(|| b"x".to_vec());
        let (status, answer) = api.raw(method.clone(), path, Some(token), body).await;
        assert_eq!(
            status,
            want,
            "{method} {path}: {}",
            String::from_utf8_lossy(&answer)
        );
    }

    // A diff of what the uploads did, within reach too.
    let (status, diff) = api
        .call(
            Method::GET,
            "/api/v1/diff?a=imagenet@v1&b=imagenet",
            Some(&read),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{diff}");
    assert_eq!(
        diff,
        json!([{"change": "modified", "path": "train/a.bin", "kind": "file", "old_size": 3_000_000, "new_size": 3}])
    );
    let (_, stat) = api
        .call(
            Method::GET,
            "/api/v1/diff?a=imagenet@v1&b=imagenet&stat=true",
            Some(&read),
            None,
        )
        .await;
    assert_eq!(stat["modified"], 1);
    let (status, _) = api
        .call(
            Method::GET,
            "/api/v1/diff?a=imagenet@v1&b=hr-data",
            Some(&write),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn verify_gc_and_sync_run_as_jobs_that_report_and_can_be_stopped() {
    let api = Api::new();
    let admin = api.token(Role::Admin, None);
    let scoped = api.token(Role::Write, Some("imagenet"));
    for i in 0..200 {
        let (status, _) = api
            .raw(
                Method::PUT,
                &format!("/api/v1/volumes/imagenet/files/d/{i}.txt"),
                Some(&admin),
                Some(format!("file {i}").repeat(100).into_bytes()),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, job) = api
        .call(
            Method::POST,
            "/api/v1/jobs",
            Some(&admin),
            Some(json!({"kind": "verify", "read_data": true})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let done = api.wait_job(&job["id"], &admin).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["result"]["problems"], json!([]));
    assert!(
        done["files"].as_u64().unwrap() > 0,
        "progress was counted: {done}"
    );

    let (_, job) = api
        .call(
            Method::POST,
            "/api/v1/jobs",
            Some(&admin),
            Some(json!({"kind": "gc", "dry_run": true})),
        )
        .await;
    let done = api.wait_job(&job["id"], &admin).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["result"]["dry_run"], true);

    // A sync job between two volumes, by a token that may write the target.
    let (status, job) = api
        .call(
            Method::POST,
            "/api/v1/jobs",
            Some(&scoped),
            Some(json!({"kind": "sync", "source": "volume:imagenet/d", "destination": "volume:imagenet/copy"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let done = api.wait_job(&job["id"], &scoped).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let (_, listed) = api
        .call(
            Method::GET,
            "/api/v1/volumes/imagenet/files?path=copy",
            Some(&scoped),
            None,
        )
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 200);

    // Refusals: the wrong role, another volume, the server's own
    // directories, a bucket for a non-admin.
    for (token, body, want) in [
        (&scoped, json!({"kind": "gc"}), StatusCode::FORBIDDEN),
        (&scoped, json!({"kind": "verify"}), StatusCode::FORBIDDEN),
        (
            &scoped,
            json!({"kind": "sync", "source": "volume:hr-data", "destination": "volume:imagenet/x"}),
            StatusCode::FORBIDDEN,
        ),
        (
            &scoped,
            json!({"kind": "sync", "source": "s3://bucket/p", "destination": "volume:imagenet/x"}),
            StatusCode::FORBIDDEN,
        ),
        (
            &admin,
            json!({"kind": "sync", "source": "/etc", "destination": "volume:imagenet/etc"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            &admin,
            json!({"kind": "mirror_update", "volume": "imagenet"}),
            StatusCode::NOT_FOUND,
        ),
        (&admin, json!({"kind": "format"}), StatusCode::BAD_REQUEST),
    ] {
        let (status, answer) = api
            .call(
                Method::POST,
                "/api/v1/jobs",
                Some(token),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, want, "{body}: {answer}");
    }

    // The scoped token sees its own jobs only; an admin sees all.
    let (_, mine) = api
        .call(Method::GET, "/api/v1/jobs", Some(&scoped), None)
        .await;
    assert_eq!(mine.as_array().unwrap().len(), 1, "{mine}");
    let (status, _) = api
        .call(Method::GET, "/api/v1/jobs/1", Some(&scoped), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, all) = api
        .call(Method::GET, "/api/v1/jobs", Some(&admin), None)
        .await;
    assert_eq!(all.as_array().unwrap().len(), 3);

    // Stopping: an ended job cannot be; a running one stops at its next
    // check (or ends first, if it was quicker than the request).
    let (status, _) = api
        .call(Method::DELETE, "/api/v1/jobs/1", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, job) = api
        .call(
            Method::POST,
            "/api/v1/jobs",
            Some(&admin),
            Some(json!({"kind": "verify", "read_data": true})),
        )
        .await;
    let (status, answer) = api
        .call(
            Method::DELETE,
            &format!("/api/v1/jobs/{}", job["id"]),
            Some(&admin),
            None,
        )
        .await;
    let done = api.wait_job(&job["id"], &admin).await;
    if status == StatusCode::ACCEPTED {
        assert_eq!(answer["cancel_requested"], true);
        assert!(
            ["cancelled", "succeeded"].contains(&done["state"].as_str().unwrap()),
            "{done}"
        );
        if done["state"] == "cancelled" {
            assert!(done["error"].as_str().unwrap().contains("cancel"), "{done}");
        }
    } else {
        assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    }
    assert_eq!(
        api.pool.verify(&Default::default()).unwrap().problems.len(),
        0
    );
}

#[tokio::test]
async fn admins_manage_tokens_through_the_api_and_runs_and_mirrors_are_listed() {
    let api = Api::new();
    let admin = api.token(Role::Admin, None);
    let (status, made) = api
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&admin),
            Some(json!({"role": "read", "volume": "imagenet", "note": "ci", "expires_days": 7})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let secret = made["token"].as_str().unwrap().to_string();
    assert!(made["expires"].is_i64());
    let (status, _) = api
        .call(Method::GET, "/api/v1/volumes/imagenet", Some(&secret), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = api
        .call(Method::GET, "/api/v1/tokens", Some(&admin), None)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(!list.to_string().contains(&secret), "no secret is listed");
    for (method, path, body) in [
        (Method::GET, "/api/v1/tokens", None),
        (
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"role": "admin"})),
        ),
        (Method::DELETE, "/api/v1/tokens/1", None),
    ] {
        let (status, _) = api.call(method.clone(), path, Some(&secret), body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
    }
    let own = api.pool.tokens().unwrap()[0].id;
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{own}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a token does not revoke itself"
    );
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{}", made["id"]),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api
        .call(Method::GET, "/api/v1/volumes/imagenet", Some(&secret), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Runs: a scoped token sees the runs that touched its volumes, with
    // the other volumes taken out.
    let snap = api.pool.create_snapshot("imagenet", Some("v1")).unwrap();
    let model = api.pool.create_snapshot("hr-data", Some("m1")).unwrap();
    let run = api
        .pool
        .begin_run(&["train".into()], &Default::default())
        .unwrap();
    use shale_core::ops::lineage::RunData;
    api.pool
        .add_run_data(run, false, &RunData::of(&snap))
        .unwrap();
    api.pool
        .add_run_data(run, true, &RunData::of(&model))
        .unwrap();
    api.pool.end_run(run, 0).unwrap();
    let scoped = api.token(Role::Read, Some("imagenet"));
    let (_, runs) = api
        .call(Method::GET, "/api/v1/runs", Some(&scoped), None)
        .await;
    assert_eq!(runs.as_array().unwrap().len(), 1);
    assert_eq!(runs[0]["inputs"][0]["volume"], "imagenet");
    assert_eq!(runs[0]["outputs"], json!([]));
    let (status, one) = api
        .call(
            Method::GET,
            &format!("/api/v1/runs/{run}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["outputs"][0]["volume"], "hr-data");
    let (status, _) = api
        .call(Method::GET, "/api/v1/runs/999", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, mirrors) = api
        .call(Method::GET, "/api/v1/mirrors", Some(&admin), None)
        .await;
    assert_eq!((status, mirrors), (StatusCode::OK, json!([])));
}

#[tokio::test]
async fn mirrors_are_made_broken_resynced_and_ended_by_the_tokens_allowed_to() {
    let api = Api::new();
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    let src = Pool::init(&source).unwrap();
    src.create_volume("ds", None).unwrap();
    src.create_snapshot("ds", Some("s1")).unwrap();
    drop(src);
    let admin = api.token(Role::Admin, None);
    let writer = api.token(Role::Write, None);
    let reader = api.token(Role::Read, None);
    let scoped = api.token(Role::Write, Some("imagenet"));
    let at = |s: &str| format!("{}::{s}", source.display());
    let post = |body: Value| (Method::POST, "/api/v1/mirrors".to_string(), Some(body));

    // Making one opens another pool with the server's credentials: admins.
    for (token, (method, path, body), want) in [
        (
            &writer,
            post(json!({"volume": "m", "source": at("ds")})),
            StatusCode::FORBIDDEN,
        ),
        (
            &admin,
            post(json!({"volume": "m", "source": "nope"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            &admin,
            post(json!({"volume": "m", "source": at("nope")})),
            StatusCode::NOT_FOUND,
        ),
        (
            &admin,
            post(json!({"volume": "m", "source": at("ds"), "policy": "some"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            &admin,
            post(json!({"volume": "m", "source": at("ds")})),
            StatusCode::CREATED,
        ),
        (
            &admin,
            post(json!({"volume": "m", "source": at("ds")})),
            StatusCode::CONFLICT,
        ),
    ] {
        let (status, answer) = api.call(method, &path, Some(token), body.clone()).await;
        assert_eq!(status, want, "{body:?}: {answer}");
    }
    let update = json!({"kind": "mirror_update", "volume": "m", "bwlimit": 10_000_000});
    let (status, job) = api
        .call(Method::POST, "/api/v1/jobs", Some(&writer), Some(update))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let done = api.wait_job(&job["id"], &writer).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["result"]["snapshots"], json!(["s1"]));
    let zero = json!({"kind": "mirror_update", "volume": "m", "bwlimit": 0});
    let (status, _) = api
        .call(Method::POST, "/api/v1/jobs", Some(&admin), Some(zero))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a rate of 0 never ends");

    // A token for another volume neither sees nor breaks it; a reader
    // does not break it.
    let (_, seen) = api
        .call(Method::GET, "/api/v1/mirrors", Some(&scoped), None)
        .await;
    assert_eq!(seen, json!([]));
    for token in [&scoped, &reader] {
        let (status, _) = api
            .call(Method::POST, "/api/v1/mirrors/m/break", Some(token), None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let (status, row) = api
        .call(Method::POST, "/api/v1/mirrors/m/break", Some(&writer), None)
        .await;
    assert_eq!(
        (status, &row["state"]),
        (StatusCode::OK, &json!("broken")),
        "{row}"
    );
    let (status, _) = api
        .call(Method::POST, "/api/v1/mirrors/m/break", Some(&writer), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "already broken");
    let resync = json!({"kind": "mirror_resync", "volume": "m"});
    let (_, job) = api
        .call(Method::POST, "/api/v1/jobs", Some(&writer), Some(resync))
        .await;
    let done = api.wait_job(&job["id"], &writer).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let (_, rows) = api
        .call(Method::GET, "/api/v1/mirrors", Some(&reader), None)
        .await;
    assert_eq!(rows[0]["state"], "mirrored", "{rows}");

    let (status, _) = api
        .call(Method::DELETE, "/api/v1/mirrors/m", Some(&writer), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api
        .call(Method::DELETE, "/api/v1/mirrors/m", Some(&writer), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no longer a mirror");
    assert!(api.pool.volume_info("m").is_ok(), "the volume stays");
}

#[tokio::test]
async fn the_space_history_answers_the_samples_oldest_first() {
    let api = Api::new();
    assert!(api.pool.sample_space().unwrap());
    api.pool.create_snapshot("imagenet", Some("v1")).unwrap();
    assert!(api.pool.sample_space().unwrap());
    let scoped = api.token(Role::Read, Some("imagenet"));
    let (status, history) = api
        .call(Method::GET, "/api/v1/pool/history", Some(&scoped), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{history}");
    let samples = history.as_array().unwrap();
    assert_eq!(samples.len(), 2, "{history}");
    assert!(samples[0]["at"].as_i64() < samples[1]["at"].as_i64());
    assert_eq!(samples[1]["snapshots"], 1);
    let (_, newest) = api
        .call(
            Method::GET,
            "/api/v1/pool/history?limit=1",
            Some(&scoped),
            None,
        )
        .await;
    assert_eq!(newest, json!([samples[1]]));
    let (status, _) = api
        .call(
            Method::GET,
            "/api/v1/pool/history?limit=x",
            Some(&scoped),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
