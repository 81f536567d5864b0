//! `shale mirror`: volumes that follow a volume of another pool, between
//! local pools and, with garage installed, to and from a pool in a bucket.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod common;
use common::garage::{Garage, BUCKET};
use common::{noise, same_tree, write, Served};

struct Site {
    pool: String,
    env: Vec<(&'static str, String)>,
    /// With `served`, commands go through `shale serve` of this pool where
    /// the CLI can run them so (the rest on the pool).
    served: Option<Served>,
}

impl Site {
    /// `shale --pool POOL`.
    fn on_pool(&self) -> Command {
        let mut c = Command::new(assert_cmd::cargo::cargo_bin("shale"));
        c.env_remove("SHALE_POOL")
            .envs(self.env.iter().cloned())
            .arg("--pool")
            .arg(&self.pool);
        c
    }

    /// `shale --server URL` if the site is served, else `shale --pool POOL`.
    fn command(&self) -> Command {
        let Some(s) = &self.served else {
            return self.on_pool();
        };
        let mut c = Command::new(assert_cmd::cargo::cargo_bin("shale"));
        c.env_remove("SHALE_POOL")
            .env("SHALE_TOKEN", &s.token)
            .arg("--server")
            .arg(&s.url);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = self.command().args(args).output().unwrap();
        let needs_pool = self.served.is_some()
            && !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("not through --server");
        if needs_pool {
            return self.on_pool().args(args).output().unwrap();
        }
        out
    }

    /// Starts `shale serve` on the site's pool; later commands go through it.
    fn serve(&mut self) {
        self.served = Some(common::serve_with(|| self.on_pool()));
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "shale {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(1), "shale {args:?} should fail");
        String::from_utf8(out.stderr).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }
}

fn dataset(dir: &Path) {
    for i in 0..30u64 {
        write(
            &dir.join(format!("c{}/f{i}.bin", i % 3)),
            &noise(i, 20_000 + i as usize * 500),
        );
    }
}

/// The whole workflow between two sites; `a` holds the source.
fn workflow(a: &Site, b: &Site, scratch: &Path) {
    let src = scratch.join("src");
    dataset(&src);
    a.ok(&["volume", "create", "ds", "--from", src.to_str().unwrap()]);
    a.ok(&["snapshot", "create", "ds", "s1"]);
    let source = format!("{}::ds", a.pool);

    // errors named: source pool or volume missing, destination exists
    let e = b.fails(&[
        "mirror",
        "create",
        "m",
        "--source",
        &format!("{}-nope::ds", a.pool),
    ]);
    assert!(e.contains("no Shale pool at"), "{e}");
    let e = b.fails(&[
        "mirror",
        "create",
        "m",
        "--source",
        &format!("{}::nope", a.pool),
    ]);
    assert!(e.contains("nope") && e.contains("not found"), "{e}");
    b.ok(&["volume", "create", "taken"]);
    let e = b.fails(&["mirror", "create", "taken", "--source", &source]);
    assert!(e.contains("exists and is not a mirror"), "{e}");

    // baseline
    let r = b.json(&["mirror", "create", "m", "--source", &source]);
    assert_eq!(r["snapshots"], serde_json::json!(["s1"]));
    let id = |s: &Site, v: &str| -> String {
        s.json(&["snapshot", "list", v])
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                format!(
                    "{}={}",
                    x["name"].as_str().unwrap(),
                    x["id"].as_str().unwrap()
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    assert_eq!(id(a, "ds"), id(b, "m"), "same names, same ids");
    b.ok(&["verify", "--read-data"]);

    // nothing new: nothing sent
    let r = b.json(&["mirror", "update", "m"]);
    assert_eq!(
        (
            r["objects"].as_u64(),
            r["snapshots"].as_array().unwrap().len()
        ),
        (Some(0), 0)
    );

    // changes, a rename, a delete: only what changed is sent
    let mut changed = 0u64;
    for i in [1u64, 7] {
        let data = noise(100 + i, 20_000 + i as usize * 500);
        changed += data.len() as u64;
        write(&src.join(format!("c{}/f{i}.bin", i % 3)), &data);
    }
    fs::rename(src.join("c0"), src.join("renamed")).unwrap();
    fs::remove_file(src.join("c2/f2.bin")).unwrap();
    a.ok(&["volume", "import", "ds", src.to_str().unwrap(), "--delete"]);
    a.ok(&["snapshot", "create", "ds", "s2"]);
    a.ok(&["snapshot", "create", "ds", "s3"]);
    let r = b.json(&["mirror", "update", "--all"]);
    assert_eq!(
        r["snapshots"],
        serde_json::json!(["s2", "s3"]),
        "policy all: every newer snapshot"
    );
    let sent = r["bytes"].as_u64().unwrap();
    assert!(
        sent >= changed && sent < changed + 20_000,
        "sent {sent} for {changed} changed"
    );
    assert_eq!(id(a, "ds"), id(b, "m"));
    let out = scratch.join("out");
    b.ok(&["volume", "export", "m", out.to_str().unwrap()]);
    same_tree(&src, &out);
    b.ok(&["verify", "--read-data"]);

    // the destination is read-only until break
    let e = b.fails(&["volume", "import", "m", src.to_str().unwrap()]);
    assert!(
        e.contains("is a mirror of") && e.contains("mirror break m"),
        "{e}"
    );
    let e = b.fails(&["snapshot", "restore", "m", "s1"]);
    assert!(e.contains("is a mirror of"), "{e}");
    let list = b.ok(&["mirror", "list"]);
    assert!(
        list.contains("m\t") && list.contains("mirrored") && list.contains("s3"),
        "{list}"
    );

    // break, write, resync: local changes kept in a snapshot, then replaced
    b.ok(&["mirror", "break", "m"]);
    let local = scratch.join("local");
    write(&local.join("mine.txt"), b"written at the destination");
    b.ok(&["volume", "import", "m", local.to_str().unwrap()]);
    let e = b.fails(&["mirror", "update", "m"]);
    assert!(e.contains("is broken") && e.contains("resync"), "{e}");
    a.ok(&["snapshot", "create", "ds", "s4"]);
    let r = b.json(&["mirror", "resync", "m"]);
    assert_eq!(r["snapshots"], serde_json::json!(["s4"]));
    let snaps = b.ok(&["snapshot", "list", "m"]);
    assert!(snaps.contains("resync-"), "{snaps}");
    let out2 = scratch.join("out2");
    b.ok(&["volume", "export", "m", out2.to_str().unwrap()]);
    same_tree(&src, &out2);

    // no shared snapshot: refused unless --force-baseline
    let other = scratch.join("other");
    write(&other.join("x"), b"x");
    a.ok(&["volume", "create", "ds2", "--from", other.to_str().unwrap()]);
    a.ok(&["snapshot", "create", "ds2", "t1"]);
    b.ok(&[
        "mirror",
        "create",
        "m2",
        "--source",
        &format!("{}::ds2", a.pool),
    ]);
    a.ok(&["snapshot", "delete", "ds2", "t1"]);
    a.ok(&["snapshot", "create", "ds2", "t2"]);
    let e = b.fails(&["mirror", "update", "m2"]);
    assert!(
        e.contains("share no snapshot") && e.contains("--force-baseline"),
        "{e}"
    );
    let r = b.json(&["mirror", "update", "m2", "--force-baseline"]);
    assert_eq!(r["snapshots"], serde_json::json!(["t2"]));
    // a source snapshot deleted: named at the next update
    a.ok(&["volume", "delete", "ds2"]);
    let e = b.fails(&["mirror", "update", "m2"]);
    assert!(e.contains("does not exist"), "{e}");
    // policy latest: only the newest snapshot; --watch keeps following
    a.ok(&["snapshot", "create", "ds", "s5"]);
    a.ok(&["snapshot", "create", "ds", "s6"]);
    b.ok(&[
        "mirror", "create", "m3", "--source", &source, "--policy", "latest",
    ]);
    assert_eq!(id(b, "m3").split(',').count(), 1, "{}", id(b, "m3"));
    assert!(id(b, "m3").starts_with("s6="));
    let mut watcher = b
        .command()
        .args(["mirror", "update", "--all", "--watch", "1s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    a.ok(&["snapshot", "create", "ds", "s7"]);
    let start = std::time::Instant::now();
    while !id(b, "m3").contains("s7=") {
        assert!(start.elapsed().as_secs() < 30, "--watch did not pick up s7");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    watcher.kill().unwrap();
    watcher.wait().unwrap();
    // a read-write mount of a mirror is refused, saying why
    if common::fuse_usable() {
        let mnt = scratch.join("mnt");
        fs::create_dir_all(&mnt).unwrap();
        let e = b.fails(&["mount", mnt.to_str().unwrap(), "--volume", "m3"]);
        assert!(e.contains("is a mirror of"), "{e}");
    }
    // delete ends the relationship and keeps the volume
    b.ok(&["mirror", "delete", "m"]);
    b.ok(&["volume", "import", "m", local.to_str().unwrap()]);
    b.ok(&["verify", "--read-data"]);
}

/// Two new local pools `a` and `b` in `dir`, made with `init` arguments.
fn two_local_sites(dir: &Path, init: &[&str]) -> (Site, Site) {
    let (a, b) = (local_site(dir, "a"), local_site(dir, "b"));
    for s in [&a, &b] {
        let mut args = vec!["pool", "init"];
        args.extend_from_slice(init);
        s.ok(&args);
    }
    (a, b)
}

fn local_site(dir: &Path, name: &str) -> Site {
    let pool: PathBuf = dir.join(name);
    Site {
        pool: pool.to_str().unwrap().to_string(),
        env: Vec::new(),
        served: None,
    }
}

#[test]
fn local_to_local() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_local_sites(dir.path(), &[]);
    workflow(&a, &b, dir.path());
}

/// The same workflow with the destination's commands through `shale serve`
/// (`--server`): relationships through the API, transfers as jobs.
#[test]
fn local_to_local_through_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let (a, mut b) = two_local_sites(dir.path(), &[]);
    b.serve();
    workflow(&a, &b, dir.path());
    // the relationships went through the API, the transfers as jobs
    let served = b.served.as_ref().unwrap();
    let audit: Value = reqwest::blocking::Client::new()
        .get(format!("{}/api/v1/audit", served.url))
        .bearer_auth(&served.token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for done in [
        "create mirror m of",
        "break mirror m",
        "(mirror_resync m)",
        "(mirror_update m2)",
        "end mirror m",
    ] {
        assert!(
            actions.iter().any(|a| a.contains(done)),
            "{done}: {actions:?}"
        );
    }
}

#[test]
fn bucket_to_local_and_local_to_bucket() {
    let Some(g) = Garage::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut env = g.env();
    env.push((
        "SHALE_CACHE_DIR",
        dir.path().join("cache").to_str().unwrap().to_string(),
    ));
    let s3 = Site {
        pool: format!("s3://{BUCKET}/site-a"),
        env: env.clone(),
        served: None,
    };
    s3.ok(&["pool", "init"]);
    let mut local = local_site(dir.path(), "site-b");
    local.env = env.clone();
    local.ok(&["pool", "init"]);
    workflow(&s3, &local, &dir.path().join("one"));

    let s3b = Site {
        pool: format!("s3://{BUCKET}/site-c"),
        env,
        served: None,
    };
    s3b.ok(&["pool", "init"]);
    let src = dir.path().join("two/src");
    dataset(&src);
    local.ok(&["volume", "create", "up", "--from", src.to_str().unwrap()]);
    local.ok(&["snapshot", "create", "up", "v1"]);
    s3b.ok(&[
        "mirror",
        "create",
        "up",
        "--source",
        &format!("{}::up", local.pool),
    ]);
    let out = dir.path().join("two/out");
    s3b.ok(&["volume", "export", "up@v1", out.to_str().unwrap()]);
    same_tree(&src, &out);
    s3b.ok(&["verify", "--read-data"]);
}

#[test]
fn an_interrupted_update_resumes_without_resending() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_local_sites(dir.path(), &["--chunk-size", "64KiB"]);
    let src = dir.path().join("src");
    for i in 0..40u64 {
        write(&src.join(format!("f{i}.bin")), &noise(i, 3_000_000));
    }
    a.ok(&["volume", "create", "ds", "--from", src.to_str().unwrap()]);
    a.ok(&["snapshot", "create", "ds", "s1"]);
    b.ok(&[
        "mirror",
        "create",
        "m",
        "--source",
        &format!("{}::ds", a.pool),
        "--no-transfer",
    ]);
    // killed after its second pack is stored and indexed
    let out = Command::new(assert_cmd::cargo::cargo_bin("shale"))
        .env("SHALE_FAIL_AT", "pack.indexed:2")
        .args(["--pool", &b.pool, "mirror", "update", "m"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    // the destination shows no half-transferred snapshot
    assert_eq!(
        b.ok(&["snapshot", "list", "m"]).lines().count(),
        1,
        "header only"
    );
    b.ok(&["verify"]);
    let r = b.json(&["mirror", "update", "m"]);
    let total: u64 = 40 * 3_000_000;
    let sent = r["bytes"].as_u64().unwrap();
    assert!(sent < total * 9 / 10, "resumed: sent {sent} of {total}");
    let out = dir.path().join("out");
    b.ok(&["volume", "export", "m@s1", out.to_str().unwrap()]);
    same_tree(&src, &out);
    b.ok(&["verify", "--read-data"]);
}

#[test]
fn a_source_snapshot_deleted_mid_transfer_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_local_sites(dir.path(), &[]);
    let src = dir.path().join("src");
    // 120 MB: several packs, most not yet opened when the source deletes
    // them (an update keeps the packs it has opened readable). Imported in
    // two steps, so that what the transfer reads first (`f*`, 30 MB, about
    // 8 s at 4 MiB/s) lies in packs of its own: an import packs files in
    // the order the directory lists them, not by name.
    let later = dir.path().join("later");
    for i in 0..120u64 {
        let at = if i < 30 { &src } else { &later };
        write(&at.join(format!("f{i}.bin")), &noise(i, 1_000_000));
    }
    a.ok(&["volume", "create", "ds", "--from", src.to_str().unwrap()]);
    a.ok(&[
        "volume",
        "import",
        "ds",
        later.to_str().unwrap(),
        "--to",
        "z",
    ]);
    a.ok(&["snapshot", "create", "ds", "s1"]);
    b.ok(&[
        "mirror",
        "create",
        "m",
        "--source",
        &format!("{}::ds", a.pool),
        "--no-transfer",
    ]);
    // at 4 MiB/s: the source goes away long before the transfer ends
    let update = Command::new(assert_cmd::cargo::cargo_bin("shale"))
        .args([
            "--pool",
            &b.pool,
            "mirror",
            "update",
            "m",
            "--bwlimit",
            "4MiB",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    a.ok(&["volume", "delete", "ds"]);
    a.ok(&["gc"]);
    let out = update.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("was deleted at the source during the transfer"),
        "{err}"
    );
    // nothing half-transferred shows
    assert!(b
        .json(&["snapshot", "list", "m"])
        .as_array()
        .unwrap()
        .is_empty());
    b.ok(&["verify", "--read-data"]);
}
