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
    _dir: tempfile::TempDir,
}

impl Api {
    fn new() -> Api {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::init(&dir.path().join("pool")).unwrap();
        for v in ["imagenet", "hr-data"] {
            pool.create_volume(v, None).unwrap();
        }
        Api {
            pool: Arc::new(pool),
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
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let resp = shale_server::router(self.pool.clone())
            .oneshot(req)
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

fn concrete(path: &str) -> String {
    path.replace("{name}", "imagenet")
        .replace("{snapshot}", "v1")
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
