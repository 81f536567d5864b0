//! The CLI through `--server`: the same commands on a pool directly and on
//! another pool through `shale serve` give the same output, exit status and
//! errors (timestamps aside); commands that need the pool say so.

use std::process::Output;

mod common;
use common::Env;

/// A pool served by `shale serve`, and the environment that made it.
struct Served {
    env: Env,
    server: common::Served,
}

impl Served {
    fn start() -> Served {
        let env = Env::new();
        let server = env.serve();
        Served { env, server }
    }

    /// `shale --server URL ARGS`, with the token in the environment and no pool.
    fn run(&self, args: &[&str]) -> Output {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("shale"))
            .env_remove("SHALE_POOL")
            .env("SHALE_TOKEN", &self.server.token)
            .arg("--server")
            .arg(&self.server.url)
            .args(args)
            .output()
            .unwrap()
    }
}

/// Output with times (RFC 3339) made equal.
fn normal(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let s: String = chars[i..(i + 20).min(chars.len())].iter().collect();
        let is_time = s.len() == 20
            && s.as_bytes()[4] == b'-'
            && s.as_bytes()[10] == b'T'
            && s.ends_with('Z')
            && s[..4].bytes().all(|b| b.is_ascii_digit());
        if is_time {
            out.push_str("TIME");
            i += 20;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

#[test]
fn the_same_commands_through_the_server_answer_the_same() {
    let local = Env::new();
    let served = Served::start();
    let steps: &[&[&str]] = &[
        &["volume", "create", "data", "--size", "1GiB"],
        &["snapshot", "create", "data", "v1"],
        &["volume", "clone", "exp", "--from", "data@v1"],
        &["volume", "list"],
        &["volume", "info", "exp"],
        &["snapshot", "list", "data"],
        &["snapshot", "list"],
        &["snapshot", "restore", "data", "v1"],
        &["lineage", "data"],
        &["lineage", "data@v1"],
        &["volume", "resize", "data", "--size", "2GiB"],
        &["volume", "resize", "data", "--size", "none"],
        &["volume", "resize", "nope", "--size", "1GiB"],
        &["diff", "data@v1", "exp"],
        &["diff", "--stat", "data@v1", "data"],
        &["diff", "data@nope", "data"],
        &["verify"],
        &["verify", "--read-data", "--volume", "data"],
        &["mirror", "list"],
        &["volume", "info", "nope"],
        &["snapshot", "create", "nope"],
        &["snapshot", "create", "data", "v1"],
        &["volume", "create", "bad@name"],
        &["volume", "clone", "exp2", "--from", "data@nope"],
        &["snapshot", "delete", "data", "v1"],
        &["snapshot", "create", "exp", "e1"],
        &["volume", "delete", "exp", "--keep-snapshots"],
        &["snapshot", "list", "exp"],
        &["volume", "clone", "exp2", "--from", "exp@e1"],
        &["volume", "list"],
    ];
    for step in steps {
        for json in [true, false] {
            let args: Vec<&str> = if json {
                [&["--json"][..], step].concat()
            } else {
                step.to_vec()
            };
            // Each mutating step runs once per form: the JSON form on fresh names is not needed,
            // since a repeated create fails the same way on both sides.
            let here = local.run(&args);
            let there = served.run(&args);
            assert_eq!(
                here.status.code(),
                there.status.code(),
                "{args:?}: {}",
                normal(&there.stderr)
            );
            assert_eq!(normal(&here.stdout), normal(&there.stdout), "{args:?}");
            assert_eq!(normal(&here.stderr), normal(&there.stderr), "{args:?}");
        }
    }
}

/// Whether `key` of a pool report may be null: `store` of a local pool.
fn env_store(key: &str, report: &serde_json::Value) -> bool {
    key == "store" && (report[key].is_null() || report[key].is_object())
}

/// Reports whose figures differ between two pools (their paths and ids,
/// the seconds an operation took) in the same shape either way; tokens
/// made, listed and revoked through the server.
#[test]
fn pool_info_gc_and_tokens_through_the_server() {
    let local = Env::new();
    let served = Served::start();
    for env in [&local, &served.env] {
        env.ok(&["volume", "create", "v"]);
        env.ok(&["snapshot", "create", "v", "s"]);
    }
    let json = |out: Output| -> serde_json::Value {
        assert!(out.status.success(), "{}", normal(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let mut here = local.json(&["pool", "info"]);
    let mut there = json(served.run(&["--json", "pool", "info"]));
    for key in ["path", "id", "store"] {
        assert!(there[key].is_string() || env_store(key, &there));
        here[key] = serde_json::Value::Null;
        there[key] = serde_json::Value::Null;
    }
    assert_eq!(here, there);
    let gc = json(served.run(&["--json", "gc", "--dry-run"]));
    assert_eq!(gc["freed_blobs"], 0);
    assert!(gc["seconds"].is_f64());
    let text = served.run(&["gc"]);
    assert!(
        normal(&text.stdout).starts_with("freed "),
        "{}",
        normal(&text.stdout)
    );

    let made = json(served.run(&[
        "--json",
        "token",
        "create",
        "--role",
        "read",
        "--volume",
        "v",
        "--expires-in",
        "36h",
    ]));
    let id = made["id"].as_i64().unwrap();
    assert!(made["token"].as_str().unwrap().starts_with("shale_"));
    let list = json(served.run(&["--json", "token", "list"]));
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap()
        .clone();
    assert_eq!(
        (row["role"].as_str(), row["volume"].as_str()),
        (Some("read"), Some("v"))
    );
    // two days, rounded up from 36 hours
    let day = 86_400_000_000_000;
    let days =
        (row["expires"].as_i64().unwrap() - row["created"].as_i64().unwrap() + day / 2) / day;
    assert_eq!(days, 2);
    assert!(served
        .run(&["token", "revoke", &id.to_string()])
        .status
        .success());
    let list = json(served.run(&["--json", "token", "list"]));
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["id"] == id && !t["revoked"].is_null()));
    // the token itself now opens nothing
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("shale"))
        .args([
            "--server",
            &served.server.url,
            "--token",
            made["token"].as_str().unwrap(),
            "volume",
            "list",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn commands_that_need_the_pool_say_so_and_a_token_is_required() {
    let served = Served::start();
    let out = served.run(&["volume", "export", "x", "/tmp/x"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not through --server"));
    let out = served.run(&["mount", "/tmp/x"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not through --server"));
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("shale"))
        .env_remove("SHALE_TOKEN")
        .args(["--server", &served.server.url, "volume", "list"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("--server needs a token"));
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("shale"))
        .args([
            "--server",
            &served.server.url,
            "--token",
            "shale_wrong",
            "volume",
            "list",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid here"));
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("shale"))
        .args([
            "--server",
            "http://127.0.0.1:9",
            "--token",
            "t",
            "volume",
            "list",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the server"));
    let _ = served.env.path("");
}
