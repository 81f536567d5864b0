//! Object-store pools whose catalog is a PostgreSQL database shared by
//! several machines (each simulated by its own cache directory), against a
//! real Garage and a real PostgreSQL server on 127.0.0.1. Without either
//! server installed, these tests say so and pass without running.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

mod common;
use common::garage::{Garage, BUCKET};
use common::postgres::Postgres;
use common::{noise, same_tree, write};

/// The two servers and a scratch directory.
struct Shared {
    g: Garage,
    pg: Postgres,
    dir: tempfile::TempDir,
    url: String,
}

impl Shared {
    fn start() -> Option<Shared> {
        let g = Garage::start()?;
        let pg = Postgres::start()?;
        Some(Shared {
            g,
            pg,
            dir: tempfile::tempdir().unwrap(),
            url: format!("s3://{BUCKET}/shared"),
        })
    }

    /// The cache directory of simulated machine `name`.
    fn machine(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("cache-{name}"))
    }

    fn command(&self, machine: &str, args: &[&str]) -> Command {
        let mut c = Command::new(assert_cmd::cargo::cargo_bin("shale"));
        c.env_remove("SHALE_POOL")
            .envs(self.g.env())
            .env("SHALE_CACHE_DIR", self.machine(machine))
            .arg("--pool")
            .arg(&self.url)
            .args(args);
        c
    }

    fn run(&self, machine: &str, args: &[&str]) -> Output {
        self.command(machine, args).output().unwrap()
    }

    fn ok(&self, machine: &str, args: &[&str]) -> String {
        let out = self.run(machine, args);
        assert!(
            out.status.success(),
            "shale {args:?} on {machine} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fails(&self, machine: &str, args: &[&str]) -> String {
        let out = self.run(machine, args);
        assert_eq!(out.status.code(), Some(1), "shale {args:?} should fail");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.starts_with("shale: error: "), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        err
    }

    fn init(&self) {
        self.ok("a", &["pool", "init", "--catalog", &self.pg.url]);
    }

    fn source(&self, files: u64) -> PathBuf {
        let src = self.dir.path().join("src");
        for i in 0..files {
            write(
                &src.join(format!("d{}/f{i}.bin", i % 4)),
                &noise(i, 1000 + (i as usize) * 2000),
            );
        }
        src
    }
}

#[test]
fn machines_share_one_pool_through_the_catalog_database() {
    let Some(s) = Shared::start() else { return };
    let src = s.source(30);
    s.init();
    // The pool describes itself: another machine needs only the URL.
    let info: serde_json::Value =
        serde_json::from_str(&s.ok("b", &["--json", "pool", "info"])).unwrap();
    assert_eq!(info["store"]["catalog"], s.pg.url.as_str());
    // A second init at the same URL, or into the same database, is refused.
    let e = s.fails("b", &["pool", "init", "--catalog", &s.pg.url]);
    assert!(e.contains("already exists"), "{e}");

    s.ok(
        "a",
        &["volume", "create", "ds", "--from", src.to_str().unwrap()],
    );
    s.ok("a", &["snapshot", "create", "ds", "v1"]);
    // b sees a's volume and snapshot at once, without attach
    let snaps = s.ok("b", &["snapshot", "list", "ds"]);
    assert!(snaps.contains("v1"), "{snaps}");
    let out = s.dir.path().join("out-b");
    s.ok("b", &["volume", "export", "ds@v1", out.to_str().unwrap()]);
    same_tree(&src, &out);
    // b writes; a sees it
    s.ok("b", &["volume", "clone", "exp", "--from", "ds@v1"]);
    s.ok("b", &["snapshot", "create", "exp", "from-b"]);
    let vols = s.ok("a", &["volume", "list"]);
    assert!(vols.contains("exp"), "{vols}");
    // attach is not needed, and harmless
    s.ok("a", &["pool", "attach"]);
    // the same snapshot id on both machines
    let id = |m: &str| {
        let v: serde_json::Value =
            serde_json::from_str(&s.ok(m, &["--json", "snapshot", "list", "exp"])).unwrap();
        v.to_string()
    };
    assert_eq!(id("a"), id("b"));
    // gc on one machine, verify on the other
    s.ok("a", &["volume", "delete", "exp"]);
    s.ok("b", &["gc"]);
    s.ok("a", &["verify", "--read-data"]);
}

#[test]
fn concurrent_writers_on_two_machines_lose_no_update() {
    let Some(s) = Shared::start() else { return };
    let src = s.source(8);
    s.init();
    s.ok(
        "a",
        &["volume", "create", "ds", "--from", src.to_str().unwrap()],
    );
    let work = |machine: &'static str| {
        let mut children = Vec::new();
        for i in 0..6 {
            let snap = format!("{machine}{i}");
            children.push(
                s.command(machine, &["snapshot", "create", "ds", &snap])
                    .spawn()
                    .unwrap(),
            );
            let clone = format!("c-{machine}{i}");
            children.push(
                s.command(machine, &["volume", "clone", &clone, "--from", "ds"])
                    .spawn()
                    .unwrap(),
            );
        }
        children
    };
    let mut all = work("a");
    all.extend(work("b"));
    all.push(s.command("a", &["gc"]).spawn().unwrap());
    all.push(s.command("b", &["gc"]).spawn().unwrap());
    for mut c in all {
        assert!(c.wait().unwrap().success());
    }
    let snaps = s.ok("b", &["snapshot", "list", "ds"]);
    let vols = s.ok("a", &["volume", "list"]);
    for m in ["a", "b"] {
        for i in 0..6 {
            assert!(snaps.contains(&format!("{m}{i}")), "{snaps}");
            assert!(vols.contains(&format!("c-{m}{i}")), "{vols}");
        }
    }
    s.ok("b", &["verify", "--read-data"]);
}

#[test]
fn a_catalog_server_restart_is_survived_and_an_outage_fails_cleanly() {
    let Some(mut s) = Shared::start() else { return };
    let src = s.source(12);
    s.init();
    s.ok(
        "a",
        &["volume", "create", "ds", "--from", src.to_str().unwrap()],
    );

    // Down for two seconds while commands run: they wait and complete.
    s.pg.stop();
    let snap = s
        .command("a", &["snapshot", "create", "ds", "during"])
        .spawn()
        .unwrap();
    let list = s.command("b", &["volume", "list"]).spawn().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    s.pg.resume();
    assert!(snap.wait_with_output().unwrap().status.success());
    assert!(list.wait_with_output().unwrap().status.success());

    // Down for longer than the retry window: a clean error naming the
    // database; after it is back, the re-run completes.
    s.pg.stop();
    let out = s
        .command(
            "a",
            &["volume", "create", "v2", "--from", src.to_str().unwrap()],
        )
        .env("SHALE_CATALOG_RETRY_SECS", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("catalog") && err.contains("127.0.0.1"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    s.pg.resume();
    s.ok(
        "a",
        &["volume", "create", "v2", "--from", src.to_str().unwrap()],
    );
    let snaps = s.ok("b", &["snapshot", "list", "ds"]);
    assert!(snaps.contains("during"), "{snaps}");
    s.ok("b", &["verify", "--read-data"]);
}

#[test]
fn a_postgres_catalog_is_only_for_object_store_pools() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(assert_cmd::cargo::cargo_bin("shale"))
        .env_remove("SHALE_POOL")
        .args(["--pool", dir.path().join("p").to_str().unwrap()])
        .args(["pool", "init", "--catalog", "postgres://x@127.0.0.1:1/db"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("object store"), "{err}");
}

/// Waits up to 20 s for `f` to hold.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_live_volume_has_one_writer_across_machines() {
    if !common::fuse_usable() {
        eprintln!("skipped: needs /dev/fuse and root");
        return;
    }
    let Some(s) = Shared::start() else { return };
    let src = s.source(4);
    s.init();
    s.ok(
        "a",
        &["volume", "create", "ds", "--from", src.to_str().unwrap()],
    );
    let mnt = |n: &str| {
        let p = s.dir.path().join(format!("mnt-{n}"));
        std::fs::create_dir_all(&p).unwrap();
        p
    };
    let (ma, mb, mc) = (mnt("a"), mnt("b"), mnt("c"));
    let (ma_s, mb_s, mc_s) = (
        ma.to_str().unwrap(),
        mb.to_str().unwrap(),
        mc.to_str().unwrap(),
    );

    s.ok(
        "a",
        &["mount", ma_s, "--volume", "ds", "--commit-interval", "1"],
    );
    let guard_a = common::Mounted(ma.clone());
    std::fs::write(ma.join("new.txt"), b"written on a\n").unwrap();

    // A second writer on another machine is refused, naming the holder.
    let e = s.fails("b", &["mount", mb_s, "--volume", "ds"]);
    assert!(e.contains(&format!("the shale mount at {ma_s}")), "{e}");
    // Readers are welcome, and see the writer's commits.
    s.ok(
        "b",
        &[
            "mount",
            mb_s,
            "--volume",
            "ds",
            "--read-only",
            "--commit-interval",
            "1",
        ],
    );
    let guard_b = common::Mounted(mb.clone());
    eventually("b sees a's write", || {
        std::fs::read(mb.join("new.txt")).is_ok_and(|d| d == b"written on a\n")
    });
    s.ok("b", &["unmount", mb_s]);
    drop(guard_b);

    // Once a unmounts, b may write.
    s.ok("a", &["unmount", ma_s]);
    drop(guard_a);
    s.ok("b", &["mount", mb_s, "--volume", "ds"]);
    let guard_b = common::Mounted(mb.clone());
    std::fs::write(mb.join("from-b.txt"), b"b\n").unwrap();
    s.ok("b", &["unmount", mb_s]);
    drop(guard_b);

    // A writer on a machine that dies (here: a process with another host
    // name, killed) holds the volume until its lease lapses.
    let mut dead = Command::new("unshare")
        .args(["--uts", "sh", "-c"])
        .arg(format!(
            "hostname lost-machine && exec \"$0\" --pool {} mount {mc_s} --volume ds --foreground",
            s.url
        ))
        .arg(assert_cmd::cargo::cargo_bin("shale"))
        .env_remove("SHALE_POOL")
        .envs(s.g.env())
        .env("SHALE_CACHE_DIR", s.machine("c"))
        .env("SHALE_LEASE_SECS", "3")
        .spawn()
        .unwrap();
    eventually("c mounts", || mc.join("from-b.txt").exists());
    let _ = dead.kill();
    let _ = dead.wait();
    let _ = Command::new("fusermount3")
        .args(["-u", "-z", mc_s])
        .status();
    let e = s.fails("b", &["mount", mb_s, "--volume", "ds"]);
    assert!(e.contains("lost-machine"), "{e}");
    std::thread::sleep(Duration::from_secs(4));
    s.ok("b", &["mount", mb_s, "--volume", "ds"]);
    let _guard_b = common::Mounted(mb.clone());
    std::fs::write(mb.join("after.txt"), b"after the lease lapsed\n").unwrap();
    s.ok("b", &["unmount", mb_s]);
    s.ok("a", &["verify", "--read-data"]);
}
