//! Pools in an S3-compatible object store, against a real Garage server on
//! 127.0.0.1 (`.ci/run` installs garage; without it these tests say so and
//! pass without running).

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::garage::{Garage, BUCKET};
use common::{fuse_usable, noise, same_tree, write, Mounted};

/// `shale --pool URL` as a client of `g`, with its own cache directory
/// (one per simulated machine).
fn shale(g: &Garage, url: &str, cache: &Path, args: &[&str]) -> Output {
    Command::new(assert_cmd::cargo::cargo_bin("shale"))
        .env_remove("SHALE_POOL")
        .envs(g.env())
        .env("SHALE_CACHE_DIR", cache)
        .arg("--pool")
        .arg(url)
        .args(args)
        .output()
        .unwrap()
}

fn ok(g: &Garage, url: &str, cache: &Path, args: &[&str]) -> String {
    let out = shale(g, url, cache, args);
    assert!(
        out.status.success(),
        "shale {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(g: &Garage, url: &str, cache: &Path, args: &[&str]) -> String {
    let out = shale(g, url, cache, args);
    assert_eq!(out.status.code(), Some(1), "shale {args:?} should fail");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("shale: error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn a_pool_in_a_bucket_works_like_a_local_one_and_moves_between_machines() {
    let Some(g) = Garage::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("cache-a"), dir.path().join("cache-b"));
    let url = format!("s3://{BUCKET}/pools/one");
    let src = dir.path().join("src");
    for i in 0..40u64 {
        write(
            &src.join(format!("d{}/f{i}.bin", i % 4)),
            &noise(i, 1000 + (i as usize) * 3000),
        );
    }
    write(&src.join("big.bin"), &noise(99, 3_000_000));

    let e = fails(&g, &url, &a, &["volume", "list"]);
    assert!(e.contains(&format!("no Shale pool at {url}")), "{e}");
    ok(&g, &url, &a, &["pool", "init"]);
    let e = fails(&g, &url, &a, &["pool", "init"]);
    assert!(e.contains("already exists"), "{e}");
    ok(
        &g,
        &url,
        &a,
        &["volume", "create", "ds", "--from", src.to_str().unwrap()],
    );
    ok(&g, &url, &a, &["snapshot", "create", "ds", "v1"]);
    ok(&g, &url, &a, &["volume", "clone", "exp", "--from", "ds@v1"]);
    let out = dir.path().join("out-a");
    ok(
        &g,
        &url,
        &a,
        &["volume", "export", "exp", out.to_str().unwrap()],
    );
    same_tree(&src, &out);
    ok(&g, &url, &a, &["verify", "--read-data"]);
    let info: serde_json::Value =
        serde_json::from_str(&ok(&g, &url, &a, &["--json", "pool", "info"])).unwrap();
    assert_eq!(info["path"], url.as_str());
    // The pool describes itself: store kind, endpoint, catalog (no secret).
    assert_eq!(info["store"]["kind"], "s3");
    assert_eq!(info["store"]["endpoint"], g.endpoint.as_str());
    assert_eq!(info["store"]["catalog"], "sqlite");
    assert!(!info.to_string().contains(common::garage::SECRET));

    // Packs are in the bucket, not in the cache.
    let packs = g.cli(&["bucket", "info", BUCKET]);
    assert!(!packs.is_empty());
    assert!(!a
        .read_dir()
        .unwrap()
        .flatten()
        .any(|d| d.path().join("packs").exists()));

    // A second machine (another cache) is refused until it attaches…
    let e = fails(&g, &url, &b, &["volume", "list"]);
    assert!(e.contains("pool attach"), "{e}");
    ok(&g, &url, &b, &["pool", "attach"]);
    let vols = ok(&g, &url, &b, &["volume", "list"]);
    assert!(vols.contains("ds") && vols.contains("exp"), "{vols}");
    let out_b = dir.path().join("out-b");
    ok(
        &g,
        &url,
        &b,
        &["volume", "export", "ds@v1", out_b.to_str().unwrap()],
    );
    same_tree(&src, &out_b);
    ok(&g, &url, &b, &["snapshot", "create", "ds", "from-b"]);
    // …and then the first one is, before it could overwrite the catalog.
    let e = fails(&g, &url, &a, &["snapshot", "create", "ds", "from-a"]);
    assert!(e.contains("attached to"), "{e}");
    ok(&g, &url, &a, &["pool", "attach"]);
    let snaps = ok(&g, &url, &a, &["snapshot", "list", "ds"]);
    assert!(
        snaps.contains("from-b"),
        "the catalog copy must carry b's snapshot: {snaps}"
    );
    ok(&g, &url, &a, &["verify", "--read-data"]);
}

#[test]
fn a_store_outage_fails_cleanly_and_a_rerun_completes() {
    let Some(mut g) = Garage::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let url = format!("s3://{BUCKET}/outage");
    let src = dir.path().join("src");
    for i in 0..20u64 {
        write(&src.join(format!("f{i}.bin")), &noise(i, 200_000));
    }
    ok(&g, &url, &cache, &["pool", "init"]);
    g.stop();
    let e = fails(
        &g,
        &url,
        &cache,
        &["volume", "create", "ds", "--from", src.to_str().unwrap()],
    );
    assert!(e.contains(&url), "the error names the store: {e}");
    g.resume();
    ok(
        &g,
        &url,
        &cache,
        &["volume", "create", "ds", "--from", src.to_str().unwrap()],
    );
    let out = dir.path().join("out");
    ok(
        &g,
        &url,
        &cache,
        &["volume", "export", "ds", out.to_str().unwrap()],
    );
    same_tree(&src, &out);
    ok(&g, &url, &cache, &["verify", "--read-data"]);
    // A writer killed after storing packs but before its catalog commit
    // leaves packs no catalog lists: gc frees them from the bucket.
    let fresh = dir.path().join("fresh");
    write(&fresh.join("new.bin"), &noise(777, 500_000));
    let crashed = Command::new(assert_cmd::cargo::cargo_bin("shale"))
        .envs(g.env())
        .env("SHALE_CACHE_DIR", &cache)
        .env("SHALE_FAIL_AT", "pack.stored")
        .args(["--pool", &url, "volume", "create", "lost", "--from"])
        .arg(&fresh)
        .output()
        .unwrap();
    assert!(!crashed.status.success());
    let gc: serde_json::Value =
        serde_json::from_str(&ok(&g, &url, &cache, &["--json", "gc"])).unwrap();
    assert!(gc["orphans_removed"].as_u64().unwrap() >= 1, "{gc}");
    ok(&g, &url, &cache, &["verify", "--read-data"]);
    let e = fails(&g, "s3://no-such-bucket/x", &cache, &["volume", "list"]);
    assert!(e.contains("no-such-bucket"), "{e}");
}

#[test]
fn an_object_store_pool_mounts() {
    if !fuse_usable() {
        eprintln!("skipped: needs /dev/fuse and root");
        return;
    }
    let Some(g) = Garage::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let url = format!("s3://{BUCKET}/mounted");
    let src = dir.path().join("src");
    write(&src.join("a.txt"), b"from the bucket\n");
    ok(&g, &url, &cache, &["pool", "init"]);
    ok(
        &g,
        &url,
        &cache,
        &["volume", "create", "ds", "--from", src.to_str().unwrap()],
    );
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    ok(&g, &url, &cache, &["mount", mnt.to_str().unwrap()]);
    let guard = Mounted(mnt.clone());
    assert_eq!(
        std::fs::read(mnt.join("ds/a.txt")).unwrap(),
        b"from the bucket\n"
    );
    std::fs::write(mnt.join("ds/b.txt"), b"written through the mount\n").unwrap();
    ok(&g, &url, &cache, &["snapshot", "create", "ds", "after"]);
    ok(&g, &url, &cache, &["unmount", mnt.to_str().unwrap()]);
    drop(guard);
    let out = dir.path().join("out");
    ok(
        &g,
        &url,
        &cache,
        &["volume", "export", "ds@after", out.to_str().unwrap()],
    );
    assert_eq!(
        std::fs::read(out.join("b.txt")).unwrap(),
        b"written through the mount\n"
    );
    // A second machine sees the mount's writes once attached.
    let other = dir.path().join("cache-2");
    ok(&g, &url, &other, &["pool", "attach"]);
    let out2 = dir.path().join("out2");
    ok(
        &g,
        &url,
        &other,
        &["volume", "export", "ds", out2.to_str().unwrap()],
    );
    assert!(out2.join("b.txt").exists());
}

#[test]
fn a_store_outage_under_a_mount_keeps_the_writes_until_it_ends() {
    if !fuse_usable() {
        eprintln!("skipped: needs /dev/fuse and root");
        return;
    }
    let Some(mut g) = Garage::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let url = format!("s3://{BUCKET}/outage");
    ok(&g, &url, &cache, &["pool", "init"]);
    ok(&g, &url, &cache, &["volume", "create", "ws"]);
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let m = mnt.to_str().unwrap();
    ok(&g, &url, &cache, &["mount", m, "--volume", "ws"]);
    let _guard = Mounted(mnt.clone());
    std::fs::write(mnt.join("notes.txt"), b"written during the outage\n").unwrap();
    g.stop();
    let err = fails(&g, &url, &cache, &["unmount", m]);
    assert!(err.contains("stays mounted"), "{err}");
    assert_eq!(
        std::fs::read(mnt.join("notes.txt")).unwrap(),
        b"written during the outage\n"
    );
    g.resume();
    ok(&g, &url, &cache, &["unmount", m]);
    let out = dir.path().join("out");
    ok(
        &g,
        &url,
        &cache,
        &["volume", "export", "ws", out.to_str().unwrap()],
    );
    assert_eq!(
        std::fs::read(out.join("notes.txt")).unwrap(),
        b"written during the outage\n"
    );
}

/// A file edited in place through a mount is stored as deltas of its old
/// chunks (pool format 3): warming it fetches those too, so a cold mount
/// on another machine reads it with the store stopped.
#[test]
fn warming_an_edited_file_brings_the_chunks_its_deltas_copy_from() {
    if !fuse_usable() {
        eprintln!("skipped: needs /dev/fuse and root");
        return;
    }
    let Some(mut g) = Garage::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (writer, reader) = (dir.path().join("cache-w"), dir.path().join("cache-r"));
    let url = format!("s3://{BUCKET}/warm-deltas");
    let src = dir.path().join("src");
    let mut model = noise(7, 2 << 20);
    write(&src.join("ckpt.bin"), &model);
    ok(&g, &url, &writer, &["pool", "init"]);
    ok(&g, &url, &writer, &["volume", "create", "ds"]);
    ok(
        &g,
        &url,
        &writer,
        &["volume", "import", "ds", src.to_str().unwrap()],
    );
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let m = mnt.to_str().unwrap();
    let rw = ["mount", m, "--volume", "ds", "--commit-interval", "3600"];
    ok(&g, &url, &writer, &rw);
    {
        let _guard = Mounted(mnt.clone());
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(mnt.join("ckpt.bin"))
            .unwrap();
        // A few bytes in every 64 KiB: every chunk is cut again, and each
        // is stored as a delta of the ones it replaces.
        for at in (0..model.len()).step_by(65536) {
            std::os::unix::fs::FileExt::write_all_at(&file, b"edit", at as u64).unwrap();
            model[at..at + 4].copy_from_slice(b"edit");
        }
        drop(file);
        ok(&g, &url, &writer, &["unmount", m]);
    }
    ok(&g, &url, &writer, &["snapshot", "create", "ds", "v1"]);
    ok(&g, &url, &reader, &["pool", "attach"]);
    ok(&g, &url, &reader, &["cache", "warm", "ds@v1"]);
    ok(&g, &url, &reader, &["mount", m, "--volume", "ds@v1"]);
    let _guard = Mounted(mnt.clone());
    g.stop();
    let read = std::fs::read(mnt.join("ckpt.bin"));
    g.resume();
    assert!(read.unwrap() == model, "the edited file as written");
    ok(&g, &url, &reader, &["unmount", m]);
}

#[test]
fn a_warmed_cache_serves_a_cold_mount_with_the_store_stopped() {
    if !fuse_usable() {
        eprintln!("skipped: needs /dev/fuse and root");
        return;
    }
    let Some(mut g) = Garage::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (writer, reader) = (dir.path().join("cache-w"), dir.path().join("cache-r"));
    let url = format!("s3://{BUCKET}/warm");
    let src = dir.path().join("src");
    for i in 0..23u64 {
        let (d, len) = if i < 20 {
            ("train", 50_000 + i as usize * 7_000)
        } else {
            ("test", 3 << 20)
        };
        write(&src.join(format!("{d}/f{i}.bin")), &noise(i, len));
    }
    ok(&g, &url, &writer, &["pool", "init"]);
    // train/ and test/ imported apart, so their bytes lie in different
    // packs and warming train/ (whole 4 MiB windows) cannot bring test/ in
    ok(&g, &url, &writer, &["volume", "create", "ds"]);
    for d in ["train", "test"] {
        let from = src.join(d);
        let args = ["volume", "import", "ds", from.to_str().unwrap(), "--to", d];
        ok(&g, &url, &writer, &args);
    }
    ok(&g, &url, &writer, &["snapshot", "create", "ds", "v1"]);
    // another machine: attach, warm only train/ of the snapshot
    ok(&g, &url, &reader, &["pool", "attach"]);
    let warm = |g: &Garage, args: &[&str]| -> serde_json::Value {
        let mut all = vec!["--json", "cache", "warm"];
        all.extend_from_slice(args);
        serde_json::from_str(&ok(g, &url, &reader, &all)).unwrap()
    };
    // a cache too small for the ask is refused before fetching anything
    let small = Command::new(assert_cmd::cargo::cargo_bin("shale"))
        .envs(g.env())
        .env("SHALE_CACHE_DIR", &reader)
        .env("SHALE_READ_CACHE_SIZE", "64KiB")
        .args(["--pool", &url, "cache", "warm", "ds@v1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&small.stderr);
    assert!(
        !small.status.success() && err.contains("SHALE_READ_CACHE_SIZE"),
        "{err}"
    );
    let r = warm(&g, &["ds@v1", "train"]);
    assert_eq!(r["files"], 20);
    // (the window holding the directory nodes was cached by the walk itself)
    let total = r["bytes_fetched"].as_u64().unwrap() + r["bytes_already_cached"].as_u64().unwrap();
    assert!(total >= 2_330_000, "{r}");
    let again = warm(&g, &["ds@v1", "train"]);
    assert_eq!(again["bytes_fetched"], 0, "{again}");
    assert_eq!(again["bytes_already_cached"], total);
    // mounted, then the store stops: what was warmed reads, the rest fails
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    ok(
        &g,
        &url,
        &reader,
        &["mount", mnt.to_str().unwrap(), "--volume", "ds@v1"],
    );
    let _guard = Mounted(mnt.clone());
    g.stop();
    for i in 0..20u64 {
        let rel = format!("train/f{i}.bin");
        assert_eq!(
            std::fs::read(mnt.join(&rel)).unwrap(),
            std::fs::read(src.join(&rel)).unwrap(),
            "{rel}"
        );
    }
    // (the import writes files in parallel, so a test/ chunk may share a
    // window with train/ and come in with it; 9 MiB of test/ cannot all)
    assert!(
        (20..23).any(|i| std::fs::read(mnt.join(format!("test/f{i}.bin"))).is_err()),
        "not warmed"
    );
    g.resume();
    ok(&g, &url, &reader, &["unmount", mnt.to_str().unwrap()]);
    // the whole snapshot covers the test/ windows too (some may have come
    // in meanwhile: the mount's read-ahead retries once the store is back)
    let all = warm(&g, &["ds@v1"]);
    let covered =
        all["bytes_fetched"].as_u64().unwrap() + all["bytes_already_cached"].as_u64().unwrap();
    assert!(covered >= 11_767_184, "{all}");
    assert_eq!(all["files"], 23);
    // a local pool says cache warm is not for it
    let out = Command::new(assert_cmd::cargo::cargo_bin("shale"))
        .args([
            "--pool",
            dir.path().join("local").to_str().unwrap(),
            "cache",
            "warm",
            "x",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("object-store pools"));
}

/// No credential reaches a file the pool or its cache holds, the bucket's
/// `pool.json`, a log line or `--json` output.
#[test]
fn no_credential_is_written_anywhere() {
    let Some(g) = Garage::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let url = format!("s3://{BUCKET}/pools/secrets");
    write(&dir.path().join("src/a.bin"), &noise(1, 300_000));
    let src = dir.path().join("src");
    let mut printed = String::new();
    for args in [
        vec!["--json", "pool", "init"],
        vec![
            "--json",
            "volume",
            "create",
            "v",
            "--from",
            src.to_str().unwrap(),
        ],
        vec!["--json", "snapshot", "create", "v", "s"],
        vec!["--json", "pool", "info"],
        vec!["--json", "volume", "list"],
    ] {
        let out = shale(&g, &url, &cache, &args);
        printed.push_str(&String::from_utf8_lossy(&out.stdout));
        printed.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    // Everything the client logs, too.
    let logged = Command::new(assert_cmd::cargo::cargo_bin("shale"))
        .envs(g.env())
        .env("SHALE_CACHE_DIR", &cache)
        .env("SHALE_LOG", "trace")
        .args(["--pool", &url, "volume", "list"])
        .output()
        .unwrap();
    printed.push_str(&String::from_utf8_lossy(&logged.stderr));
    let secret = common::garage::SECRET;
    assert!(!printed.contains(secret), "a secret in the output");
    let mut stack = vec![cache.clone()];
    let mut files = 0;
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if let Ok(bytes) = std::fs::read(&p) {
            files += 1;
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(secret), "a secret in {}", p.display());
        }
    }
    // (the cache holds the bucket's pool.json and catalog copy as well)
    assert!(files > 3, "{files} files");
}

/// With no keys in the environment, a profile of the AWS credentials file
/// gives them, if only its owner can read it; otherwise the error says
/// how to fix the file, or every way to give keys.
#[test]
fn credentials_come_from_a_private_credentials_file() {
    use std::os::unix::fs::PermissionsExt;
    let Some(g) = Garage::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials");
    let (id, secret) = (common::garage::KEY_ID, common::garage::SECRET);
    std::fs::write(
        &file,
        format!("[default]\naws_access_key_id = wrong\n\n[ci]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n"),
    )
    .unwrap();
    let run = |args: &[&str], profile: &str| {
        let endpoint = g
            .env()
            .into_iter()
            .find(|(k, _)| *k == "AWS_ENDPOINT_URL")
            .unwrap()
            .1;
        Command::new(assert_cmd::cargo::cargo_bin("shale"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("HOME", dir.path())
            .env("AWS_SHARED_CREDENTIALS_FILE", &file)
            .env("AWS_PROFILE", profile)
            .env("AWS_REGION", "garage")
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("SHALE_STORE_RETRY_SECS", "0")
            .env("SHALE_CACHE_DIR", dir.path().join("cache"))
            .args(["--pool", &format!("s3://{BUCKET}/from-file")])
            .args(args)
            .output()
            .unwrap()
    };
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(&["pool", "init"], "ci");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("chmod 600") && err.contains("credentials"),
        "{err}"
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = run(&["pool", "init"], "ci");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["volume", "create", "v"], "ci");
    assert!(out.status.success());
    let out = run(&["volume", "list"], "missing");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("[missing]"), "{err}");
    std::fs::remove_file(&file).unwrap();
    let out = run(&["volume", "list"], "ci");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("AWS_ACCESS_KEY_ID")
            && err.contains("credentials file")
            && err.contains("AWS_PROFILE"),
        "{err}"
    );
}
