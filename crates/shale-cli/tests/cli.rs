//! Runs the real `shale` binary through every command and every error.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;

mod common;
use common::{write, Env};

/// Runs and expects failure with a one-line error containing `needle`.
fn fails(env: &Env, args: &[&str], needle: &str) -> Output {
    let out = env.run(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "shale {args:?} succeeded");
    assert!(
        err.starts_with("shale: error: "),
        "unexpected stderr for {args:?}: {err}"
    );
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "error is not one line: {err}"
    );
    assert!(
        err.contains(needle),
        "stderr for {args:?} lacks {needle:?}: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    out
}

/// A small tree with every kind of entry the volumes keep.
fn sample_tree(root: &Path) {
    write(&root.join("train/cat/1.jpg"), &vec![1u8; 300_000]);
    write(&root.join("train/cat/2.jpg"), b"two");
    write(&root.join("train/dog/1.jpg"), &[7u8; 5000]);
    write(&root.join("labels.csv"), b"file,label\n1.jpg,cat\n");
    write(&root.join("empty-file"), b"");
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    symlink("train/cat/1.jpg", root.join("link-to-cat")).unwrap();
    symlink("/etc/passwd", root.join("outside-link")).unwrap();
    fs::set_permissions(root.join("labels.csv"), fs::Permissions::from_mode(0o640)).unwrap();
    filetime::set_file_mtime(
        root.join("train/cat/2.jpg"),
        filetime::FileTime::from_unix_time(1_600_000_000, 123_456_789),
    )
    .unwrap();
}

/// path → (kind, mode, owner, mtime ns, content or link target) for every entry below `root`.
#[allow(clippy::type_complexity)]
fn snapshot_of(root: &Path) -> Vec<(String, String, u32, (u32, u32), i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let md = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let mtime = md.mtime() * 1_000_000_000 + md.mtime_nsec();
            let (kind, data) = if md.file_type().is_symlink() {
                let target = fs::read_link(&p).unwrap();
                ("link", target.into_os_string().into_encoded_bytes())
            } else if md.is_dir() {
                stack.push(p.clone());
                ("dir", vec![])
            } else {
                ("file", fs::read(&p).unwrap())
            };
            let mode = if kind == "link" {
                0
            } else {
                md.mode() & 0o7777
            };
            out.push((
                rel,
                kind.to_string(),
                mode,
                (md.uid(), md.gid()),
                mtime,
                data,
            ));
        }
    }
    out.sort();
    out
}

#[test]
fn the_whole_workflow() {
    let env = Env::new();
    sample_tree(&env.path("src"));
    env.ok(&["volume", "create", "ds", "--from", &env.s("src")]);
    let snap = env.json(&["snapshot", "create", "ds", "before"]);
    assert_eq!(snap["volume"], "ds");
    assert_eq!(snap["name"], "before");
    assert_eq!(snap["id"].as_str().unwrap().len(), 64);
    assert!(snap["created"].as_str().unwrap().ends_with('Z'));

    // export is bit-identical, metadata included
    env.ok(&["volume", "export", "ds", &env.s("out1")]);
    assert_eq!(
        snapshot_of(&env.path("src")),
        snapshot_of(&env.path("out1"))
    );

    // clone, then change the clone under a sub-path with --delete
    env.ok(&["volume", "clone", "exp", "--from", "ds@before"]);
    write(&env.path("relabel/1.jpg"), b"relabelled");
    write(&env.path("relabel/3.jpg"), b"new");
    env.ok(&[
        "volume",
        "import",
        "exp",
        &env.s("relabel"),
        "--to",
        "train/cat",
        "--delete",
    ]);
    let diff = env.ok(&["diff", "ds@before", "exp"]);
    assert_eq!(
        diff,
        "M train/cat/1.jpg\nD train/cat/2.jpg\nA train/cat/3.jpg\n"
    );
    let stat = env.json(&["diff", "--stat", "ds@before", "exp"]);
    assert_eq!(
        (
            stat["added"].as_u64(),
            stat["removed"].as_u64(),
            stat["modified"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!(env.ok(&["diff", "ds", "ds@before"]), "");

    // the origin is untouched; the clone exports what was imported
    env.ok(&[
        "volume",
        "export",
        "exp",
        &env.s("out2"),
        "--path",
        "train/cat",
    ]);
    let mut names: Vec<_> = fs::read_dir(env.path("out2"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["1.jpg", "3.jpg"]);
    assert_eq!(fs::read(env.path("out2/1.jpg")).unwrap(), b"relabelled");

    // import without --delete adds and replaces, keeps the rest
    write(&env.path("more/extra.txt"), b"extra");
    env.ok(&["volume", "import", "ds", &env.s("more")]);
    let diff = env.ok(&["diff", "ds@before", "ds"]);
    assert_eq!(diff, "A extra.txt\n");

    // restore puts the volume back, in one step
    env.ok(&["snapshot", "restore", "ds", "before"]);
    assert_eq!(env.ok(&["diff", "ds@before", "ds"]), "");
    let info = env.json(&["volume", "info", "exp"]);
    assert_eq!(info["origin"], "ds@before");
    assert_eq!(info["name"], "exp");
    assert!(info["logical_bytes"].as_u64().unwrap() > 5000);

    let list = env.json(&["volume", "list"]);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ds", "exp"]);
    assert_eq!(list[0]["origin"], Value::Null);
    let snaps = env.json(&["snapshot", "list"]);
    assert_eq!(snaps.as_array().unwrap().len(), 1);
    let snaps = env.json(&["snapshot", "list", "exp"]);
    assert!(snaps.as_array().unwrap().is_empty());

    // pool info counts sharing: two copies of the data (ds and its snapshot), stored once
    let info = env.json(&["pool", "info"]);
    assert_eq!(info["volumes"], 2);
    assert_eq!(info["snapshots"], 1);
    assert!(info["dedup_ratio"].as_f64().unwrap() > 1.9, "{info}");
    assert!(info["compression_ratio"].as_f64().unwrap() > 1.0, "{info}");
    assert!(info["stored_bytes"].as_u64().unwrap() < info["logical_bytes"].as_u64().unwrap());

    // deleting the origin leaves the clone whole
    env.ok(&["volume", "delete", "ds"]);
    fails(&env, &["volume", "info", "ds"], "volume 'ds' not found");
    env.ok(&["volume", "export", "exp", &env.s("out3")]);
    assert_eq!(
        fs::read(env.path("out3/labels.csv")).unwrap(),
        b"file,label\n1.jpg,cat\n"
    );
    assert!(env
        .json(&["snapshot", "list"])
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn snapshots_and_clones_of_live_volumes() {
    let env = Env::new();
    env.ok(&["volume", "create", "ws"]);
    let snap = env.json(&["snapshot", "create", "ws"]);
    let name = snap["name"].as_str().unwrap();
    assert!(
        name.starts_with("shale.") && name.len() == "shale.".len() + 14,
        "{name}"
    );
    env.ok(&["snapshot", "delete", "ws", name]);
    fails(&env, &["snapshot", "delete", "ws", name], "not found");
    // a clone of a live volume records a snapshot as its origin
    let clone = env.json(&["volume", "clone", "ws2", "--from", "ws"]);
    let origin = clone["origin"].as_str().unwrap();
    assert!(origin.starts_with("ws@"), "{origin}");
    let snaps = env.json(&["snapshot", "list", "ws"]);
    assert_eq!(
        snaps[0]["name"].as_str().unwrap(),
        origin.trim_start_matches("ws@")
    );
    // same data, same id
    assert_eq!(env.json(&["volume", "info", "ws2"])["id"], snaps[0]["id"]);
}

#[test]
fn snapshot_series_keep_the_newest_and_policies_take_their_classes() {
    let env = Env::new();
    env.ok(&["volume", "create", "ds"]);
    env.ok(&["snapshot", "create", "ds", "hand"]);
    let mut names = Vec::new();
    for _ in 0..3 {
        let r = env.json(&["snapshot", "create", "ds", "nightly", "--keep", "2"]);
        names.push(r["snapshot"]["name"].as_str().unwrap().to_string());
    }
    assert!(names.iter().all(|n| n.starts_with("nightly.")), "{names:?}");
    let left: Vec<String> = env
        .json(&["snapshot", "list", "ds"])
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert!(left.contains(&"hand".to_string()), "{left:?}");
    assert!(!left.contains(&names[0]), "{left:?}");
    assert!(
        left.contains(&names[1]) && left.contains(&names[2]),
        "{left:?}"
    );
    fails(
        &env,
        &["snapshot", "create", "ds", "--keep", "0"],
        "keep at least 1",
    );
    // a policy: the first run takes one of each class it keeps
    env.ok(&[
        "snapshot", "policy", "set", "ds", "--hourly", "24", "--daily", "7",
    ]);
    let listed = env.json(&["snapshot", "policy", "list"]);
    assert_eq!(listed[0]["hourly"], 24);
    let run = env.json(&["snapshot", "policy", "run"]);
    let taken: Vec<&str> = run[0]["taken"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(taken.len() == 2 && taken[0].starts_with("hourly.") && taken[1].starts_with("daily."));
    let again = env.json(&["snapshot", "policy", "run"]);
    assert!(
        again[0]["taken"].as_array().unwrap().is_empty(),
        "nothing due yet"
    );
    fails(
        &env,
        &["snapshot", "policy", "set", "nope", "--daily", "1"],
        "nope",
    );
    env.ok(&["snapshot", "policy", "set", "ds"]);
    assert!(env
        .json(&["snapshot", "policy", "list"])
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn unchanged_files_are_not_read_again() {
    let env = Env::new();
    sample_tree(&env.path("src"));
    env.ok(&["volume", "create", "ds", "--from", &env.s("src")]);
    let again = env.json(&["volume", "import", "ds", &env.s("src")]);
    assert_eq!(again["files_read"], 0);
    assert_eq!(again["files_unchanged"], again["files"]);
    assert_eq!(again["written_bytes"], 0);
    let checked = env.json(&["volume", "import", "ds", &env.s("src"), "--checksum"]);
    assert_eq!(checked["files_read"], checked["files"]);
    assert_eq!(checked["written_bytes"], 0, "content already stored");
}

#[test]
fn hard_links_are_stored_once_and_special_files_are_skipped() {
    let env = Env::new();
    write(&env.path("src/a"), &vec![9u8; 100_000]);
    fs::hard_link(env.path("src/a"), env.path("src/b")).unwrap();
    let fifo = env.path("src/pipe");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let out = env
        .command()
        .args(["volume", "create", "ds", "--from", &env.s("src")])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("skipped pipe: FIFOs are not stored"), "{err}");
    let info = env.json(&["pool", "info"]);
    assert_eq!(info["unique_bytes"], 100_000);
    assert_eq!(
        env.json(&["volume", "info", "ds"])["logical_bytes"],
        200_000
    );
}

#[test]
fn quota_is_enforced_and_leaves_the_volume_unchanged() {
    let env = Env::new();
    write(&env.path("small/f"), &[1u8; 1000]);
    write(&env.path("big/g"), &[2u8; 5000]);
    env.ok(&[
        "volume",
        "create",
        "q",
        "--size",
        "4KiB",
        "--from",
        &env.s("small"),
    ]);
    let before = env.json(&["volume", "info", "q"]);
    assert_eq!(before["quota"], 4096);
    fails(
        &env,
        &["volume", "import", "q", &env.s("big")],
        "quota exceeded on volume 'q'",
    );
    assert_eq!(env.json(&["volume", "info", "q"])["id"], before["id"]);
    fails(
        &env,
        &[
            "volume",
            "create",
            "q2",
            "--size",
            "1K",
            "--from",
            &env.s("big"),
        ],
        "quota exceeded",
    );
    fails(&env, &["volume", "info", "q2"], "not found");
    fails(
        &env,
        &["volume", "create", "q3", "--size", "lots"],
        "invalid size 'lots'",
    );

    // Resizing changes the quota alone, never below what the volume holds.
    fails(
        &env,
        &["volume", "resize", "q", "--size", "512"],
        "quota exceeded on volume 'q'",
    );
    assert_eq!(env.json(&["volume", "info", "q"])["quota"], 4096);
    let grown = env.json(&["volume", "resize", "q", "--size", "16KiB"]);
    assert_eq!(grown["quota"], 16384);
    assert_eq!(grown["id"], before["id"]);
    env.ok(&["volume", "import", "q", &env.s("big")]);
    let unlimited = env.json(&["volume", "resize", "q", "--size", "none"]);
    assert_eq!(unlimited["quota"], Value::Null);
    fails(
        &env,
        &["volume", "resize", "nope", "--size", "1GiB"],
        "not found",
    );
}

/// The keys of a volume and of a snapshot in `--json`: the one shape every
/// front end uses (docs/JSON.md; the Python suite checks its dicts against
/// the same lists).
#[test]
fn volumes_and_snapshots_have_one_json_shape() {
    let env = Env::new();
    let keys =
        |v: &Value| -> Vec<String> { v.as_object().expect("an object").keys().cloned().collect() };
    let mut volume = vec![
        "name",
        "id",
        "origin",
        "logical_bytes",
        "files",
        "snapshots",
        "quota",
        "created",
        "updated",
    ];
    volume.sort();
    let mut snapshot = vec!["volume", "name", "id", "created", "logical_bytes", "files"];
    snapshot.sort();
    let created = env.json(&["volume", "create", "v", "--size", "1GiB"]);
    assert_eq!(keys(&created), volume);
    assert_eq!(keys(&env.json(&["volume", "info", "v"])), volume);
    assert_eq!(keys(&env.json(&["volume", "list"])[0]), volume);
    assert_eq!(
        keys(&env.json(&["volume", "clone", "w", "--from", "v"])),
        volume
    );
    assert_eq!(
        keys(&env.json(&["volume", "resize", "v", "--size", "2GiB"])),
        volume
    );
    let snap = env.json(&["snapshot", "create", "v", "s1"]);
    assert_eq!(keys(&snap), snapshot);
    assert_eq!(keys(&env.json(&["snapshot", "list", "v"])[0]), snapshot);
    assert_eq!(
        keys(&env.json(&["snapshot", "restore", "v", "s1"])),
        snapshot
    );
    let mut with_space = volume.clone();
    with_space.push("used_bytes");
    with_space.sort();
    assert_eq!(
        keys(&env.json(&["volume", "info", "v", "--space"])),
        with_space
    );
}

#[test]
fn every_user_error_is_named() {
    let env = Env::new();
    sample_tree(&env.path("src"));
    env.ok(&["volume", "create", "ds", "--from", &env.s("src")]);
    env.ok(&["snapshot", "create", "ds", "s1"]);
    fails(&env, &["volume", "info", "nope"], "volume 'nope' not found");
    fails(
        &env,
        &["volume", "export", "nope", &env.s("x")],
        "volume 'nope' not found",
    );
    fails(
        &env,
        &["volume", "clone", "c", "--from", "ds@nope"],
        "snapshot 'ds@nope' not found",
    );
    fails(
        &env,
        &["snapshot", "restore", "ds", "nope"],
        "snapshot 'ds@nope' not found",
    );
    fails(
        &env,
        &["diff", "ds@nope", "ds"],
        "snapshot 'ds@nope' not found",
    );
    fails(
        &env,
        &["volume", "create", "ds"],
        "volume 'ds' already exists",
    );
    fails(
        &env,
        &["volume", "clone", "ds", "--from", "ds@s1"],
        "volume 'ds' already exists",
    );
    fails(
        &env,
        &["snapshot", "create", "ds", "s1"],
        "snapshot 'ds@s1' already exists",
    );
    let long = "x".repeat(129);
    for (bad, why) in [
        ("a/b", "'/' is reserved"),
        ("a@b", "'@' is reserved"),
        ("..", "must start with a letter or a digit"),
        ("_x", "must start with a letter or a digit"),
        ("a\u{1}b", "control characters"),
        (long.as_str(), "at most 128"),
        ("", "may not be empty"),
    ] {
        fails(&env, &["volume", "create", bad], why);
        fails(&env, &["snapshot", "create", "ds", bad], why);
    }
    // export refuses a non-empty directory unless forced
    write(&env.path("busy/keep"), b"mine");
    fails(
        &env,
        &["volume", "export", "ds", &env.s("busy")],
        "is not empty",
    );
    env.ok(&["volume", "export", "ds", &env.s("busy"), "--force"]);
    assert_eq!(fs::read(env.path("busy/keep")).unwrap(), b"mine");
    assert_eq!(
        fs::read(env.path("busy/labels.csv")).unwrap(),
        b"file,label\n1.jpg,cat\n"
    );
    fails(
        &env,
        &["volume", "export", "ds", &env.s("x"), "--path", "no/such"],
        "no 'no/such' in ds",
    );
    fails(
        &env,
        &["volume", "export", "ds", &env.s("x"), "--path", "../etc"],
        "may not contain '..'",
    );
    // usage errors are one line too
    fails(&env, &["volume", "create"], "required");
    fails(
        &env,
        &["frobnicate"],
        "unrecognized subcommand 'frobnicate'",
    );
    fails(
        &env,
        &["volume", "create", "x", "--bogus"],
        "unexpected argument '--bogus'",
    );
    // missing source directory
    fails(
        &env,
        &["volume", "create", "v", "--from", &env.s("missing")],
        "does not exist",
    );
    fails(
        &env,
        &["volume", "import", "ds", &env.s("missing")],
        "does not exist",
    );
    fails(
        &env,
        &[
            "volume",
            "import",
            "ds",
            &env.s("src"),
            "--to",
            "labels.csv",
        ],
        "is a file, not a directory",
    );
    assert!(!env.path("x").join("etc").exists());
}

#[test]
fn unreadable_file_fails_cleanly() {
    // about local files and directories: a local pool
    let env = Env::local();
    write(&env.path("src/ok"), b"fine");
    write(&env.path("src/secret"), b"hidden");
    fs::set_permissions(env.path("src/secret"), fs::Permissions::from_mode(0o000)).unwrap();
    let is_root = unsafe { libc::geteuid() } == 0;
    let mut cmd = if is_root {
        // root reads everything: run as nobody, on a pool nobody may write,
        // with a copy of the binary nobody may run wherever the build is
        for p in [env.dir.path().to_path_buf(), env.path("src")] {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o777)).unwrap();
        }
        let bin = env.path("shale");
        fs::copy(assert_cmd::cargo::cargo_bin("shale"), &bin).unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(bin);
        c
    } else {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("shale"))
    };
    let out = cmd
        .env_remove("SHALE_POOL")
        .arg("--pool")
        .arg(env.pool())
        .args(["volume", "create", "v", "--from", &env.s("src")])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("src/secret") && err.contains("ermission denied"),
        "{err}"
    );
    let list = env.json(&["volume", "list"]);
    assert!(
        list.as_array().unwrap().is_empty(),
        "no volume may be created: {list}"
    );
}

#[test]
fn pools_are_found_created_and_versioned() {
    // about local files and directories: a local pool
    let env = Env::local();
    // the XDG default, created on first use
    let out = Command::cargo_bin("shale")
        .unwrap()
        .env_remove("SHALE_POOL")
        .env("XDG_DATA_HOME", env.path("xdg"))
        .args(["volume", "create", "v"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(env.path("xdg/shale/pool/pool.json").is_file());
    // $SHALE_POOL
    let out = Command::cargo_bin("shale")
        .unwrap()
        .env("SHALE_POOL", env.path("xdg/shale/pool"))
        .args(["--json", "volume", "list"])
        .output()
        .unwrap();
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["name"], "v");

    env.ok(&["pool", "init"]);
    fails(&env, &["pool", "init"], "already exists");
    let info = env.json(&["pool", "info"]);
    assert_eq!(info["volumes"], 0);
    assert_eq!(info["format_version"], 3);
    // the same chunk size as a pool created by first use
    assert_eq!(info["chunk_size"], 128 * 1024);

    // a pool made before deltas (format 1) is read and written as before;
    // format 2 is an encrypted pool's
    let desc = env.pool().join("pool.json");
    let set_version = |from: u32, to: u32| {
        let text = fs::read_to_string(&desc).unwrap().replace(
            &format!("\"version\": {from}"),
            &format!("\"version\": {to}"),
        );
        fs::write(&desc, text).unwrap();
    };
    set_version(3, 1);
    env.ok(&["volume", "create", "older"]);
    assert_eq!(env.json(&["pool", "info"])["format_version"], 1);
    assert!(env
        .ok(&["pool", "info"])
        .contains("until `shale pool upgrade`"));
    let up = env.json(&["pool", "upgrade"]);
    assert_eq!((up["from"].as_u64(), up["to"].as_u64()), (Some(1), Some(3)));
    assert!(env
        .ok(&["pool", "upgrade"])
        .contains("at format version 3 already"));
    assert_eq!(env.json(&["volume", "list"])[0]["name"], "older");
    set_version(3, 1);
    set_version(1, 2);
    fails(
        &env,
        &["volume", "list"],
        "its version and encryption disagree",
    );

    // a pool from a future Shale is refused with advice
    set_version(2, 99);
    fails(&env, &["volume", "list"], "format version 99");
    fails(&env, &["volume", "list"], "upgrade shale");

    // a directory that is not a pool is not taken over
    write(&env.path("notapool/file"), b"x");
    let out = Command::cargo_bin("shale")
        .unwrap()
        .args(["--pool", &env.s("notapool"), "volume", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no Shale pool at"));
}

/// `volume delete --keep-snapshots`: the snapshots outlive their volume
/// (as a VolumeSnapshot outlives its PVC), readable and clonable, and hold
/// the name until the last one is deleted.
#[test]
fn snapshots_outlive_a_volume_deleted_with_keep_snapshots() {
    let env = Env::new();
    write(&env.path("src/a.txt"), b"alpha");
    env.ok(&["volume", "create", "ds", "--from", &env.s("src")]);
    let s1 = env.json(&["snapshot", "create", "ds", "s1"]);
    env.ok(&["volume", "delete", "ds", "--keep-snapshots"]);
    assert_eq!(env.json(&["volume", "list"]), serde_json::json!([]));
    fails(&env, &["volume", "info", "ds"], "volume 'ds' not found");
    let listed = env.json(&["snapshot", "list", "ds"]);
    assert_eq!(listed[0]["id"], s1["id"]);
    let clone = env.json(&["volume", "clone", "exp", "--from", "ds@s1"]);
    assert_eq!(clone["id"], s1["id"]);
    env.ok(&["volume", "export", "ds@s1", &env.s("out")]);
    assert_eq!(fs::read(env.path("out/a.txt")).unwrap(), b"alpha");
    fails(&env, &["volume", "create", "ds"], "snapshot(s) kept");
    env.ok(&["snapshot", "delete", "ds", "s1"]);
    assert_eq!(env.json(&["snapshot", "list"]), serde_json::json!([]));
    env.ok(&["volume", "create", "ds"]);
    env.ok(&["verify"]);
}

/// A bucket at a custom endpoint, or with --no-instance-metadata, and no
/// credentials: a clear error naming the ways to give them, before any
/// request (none goes to a cloud's instance-metadata address).
#[test]
fn missing_object_store_credentials_are_named() {
    let env = Env::new();
    let without = |args: &[&str]| {
        let out = Command::cargo_bin("shale")
            .unwrap()
            .env("SHALE_CACHE_DIR", env.path("cache"))
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
            .env_remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
            .env_remove("AWS_CONTAINER_CREDENTIALS_FULL_URI")
            .env_remove("AWS_ENDPOINT_URL")
            .env("SHALE_STORE_RETRY_SECS", "0")
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = without(&[
        "--pool",
        "s3://nobucket/p",
        "--endpoint",
        "http://127.0.0.1:9",
        "pool",
        "init",
    ]);
    assert!(err.contains("no credentials for the object store"), "{err}");
    assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");
    assert!(!err.contains("169.254"), "{err}");
    let err = without(&[
        "--pool",
        "s3://nobucket/p",
        "--no-instance-metadata",
        "pool",
        "init",
    ]);
    assert!(err.contains("--no-instance-metadata"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

/// Every directory and file of a pool (or an object-store pool's cache) is
/// its owner's alone, even when made under umask 000 or the default umask,
/// so other local users cannot list or read any of it (the volumes' bytes
/// in packs, the catalog, the cache).
#[test]
fn pool_files_are_owner_only_whatever_the_umask() {
    use std::os::unix::fs::MetadataExt;
    for umask in ["000", "022"] {
        let env = Env::new();
        write(&env.path("src/a.txt"), b"private data");
        let under_umask = |args: &[&str]| env.ok_under_umask(umask, args);
        under_umask(&["volume", "create", "v", "--from", &env.s("src")]);
        under_umask(&["snapshot", "create", "v", "s"]);
        under_umask(&["volume", "export", "v", &env.s("out")]);
        let mut seen = 0;
        let mut stack = vec![env.pool()];
        while let Some(p) = stack.pop() {
            let md = fs::symlink_metadata(&p).unwrap();
            let mode = md.mode() & 0o7777;
            if md.is_dir() {
                assert_eq!(mode, 0o700, "{}", p.display());
                stack.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            } else if md.is_file() {
                assert_eq!(mode, 0o600, "{}", p.display());
            }
            seen += 1;
        }
        // (a cache beside a PostgreSQL catalog holds the fewest: itself,
        // tmp/, pool.json, cache-id)
        assert!(seen >= 4, "{seen} entries");
        // Another user can list or read none of it (root would: ask as
        // nobody, with the way to the pool open).
        if unsafe { libc::geteuid() } == 0 {
            common::open_the_way(&env);
            let (all, opened) = common::opened_by(common::NOBODY, &[], &env.pool());
            assert!(all.len() >= 4, "{all:?}");
            assert!(opened.is_empty(), "umask {umask}: nobody opened {opened:?}");
        }
    }
}

/// A pool whose files are open to others (made by an older Shale) is named
/// with a warning on every command until `pool fix-permissions` tightens it.
#[test]
fn loose_pool_permissions_are_warned_about_and_fixed() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    write(&env.path("src/a.txt"), b"private data");
    env.ok(&["volume", "create", "v", "--from", &env.s("src")]);
    let loosen = std::process::Command::new("chmod")
        .args(["-R", "go+rX"])
        .arg(env.pool())
        .status()
        .unwrap();
    assert!(loosen.success());
    // (the warning of the CLI that opens the pool)
    let out = env.run_on_pool(&["volume", "list"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success());
    assert!(
        err.contains("open to other users") && err.contains("shale pool fix-permissions"),
        "{err}"
    );
    let fixed = env.json(&["pool", "fix-permissions"]);
    assert!(fixed["changed"].as_u64().unwrap() >= 2, "{fixed}");
    let out = env.run(&["verify", "--read-data"]);
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = |p: std::path::PathBuf| fs::metadata(p).unwrap().mode() & 0o7777;
    assert_eq!(mode(env.pool()), 0o700);
    assert_eq!(mode(env.pool().join("pool.json")), 0o600);
    assert_eq!(env.json(&["pool", "fix-permissions"])["changed"], 0);
}

/// What `workspace` refuses before it makes anything (the servers
/// themselves are tested on real JupyterLab in the Python suite).
#[test]
fn workspace_input_is_checked_before_anything_is_made() {
    let env = Env::new();
    env.ok(&["volume", "create", "taken"]);
    fails(&env, &["workspace", "create", "a/b"], "invalid name 'a/b'");
    fails(
        &env,
        &["workspace", "create", "taken"],
        "volume 'taken' already exists",
    );
    fails(
        &env,
        &["workspace", "create", "w", "--ip", "0.0.0.0"],
        "over TLS with --certfile and --keyfile",
    );
    fails(
        &env,
        &["workspace", "create", "w", "--token", ""],
        "never an open server",
    );
    fails(
        &env,
        &["workspace", "create", "w", "--certfile", "c.pem"],
        "--certfile and --keyfile go together",
    );
    fails(
        &env,
        &["workspace", "create", "w", "--data", "taken"],
        "use VOLUME[@SNAPSHOT]:/PATH",
    );
    fails(
        &env,
        &["workspace", "create", "w", "--data", "taken@s:/d:rw"],
        "a snapshot is read-only",
    );
    fails(
        &env,
        &["workspace", "create", "w", "--data", "nope:/data"],
        "volume 'nope' not found",
    );
    fails(
        &env,
        &["workspace", "clone", "w", "--from", "taken@nope"],
        "snapshot 'taken@nope' not found",
    );
    for cmd in ["snapshot", "snapshots", "start", "stop", "delete"] {
        fails(
            &env,
            &["workspace", cmd, "ghost"],
            "workspace 'ghost' not found",
        );
    }
    fails(
        &env,
        &["workspace", "restore", "ghost", "s"],
        "workspace 'ghost' not found",
    );
    assert_eq!(env.json(&["workspace", "list"]), serde_json::json!([]));
    let names: Vec<Value> = env
        .json(&["volume", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].clone())
        .collect();
    assert_eq!(names, ["taken"]);
}
