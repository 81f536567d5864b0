//! Encrypted pools (issue 33): what the store holds, snapshot ids and
//! mirrors across plain and encrypted pools, keys, and tampering.
//!
//! The pool is local or in Garage as `SHALE_TEST_STORE` says.

use std::fs;
use std::path::Path;
use std::process::Output;

mod common;
use common::{noise, write, Env};

const CSV: &[u8] = b"employee,salary\nalice,123456\nbob,654321\n";

/// A small dataset whose names and bytes the store must never show.
fn dataset(env: &Env) {
    write(&env.path("src/confidential-payroll-2026.csv"), CSV);
    write(
        &env.path("src/models/weights-unreleased.bin"),
        &noise(7, 300_000),
    );
    env.ok(&["volume", "create", "ds", "--from", &env.s("src")]);
    env.ok(&["snapshot", "create", "ds", "s1"]);
}

/// The snapshot ids of volume `v`, as `NAME=ID`.
fn snapshot_ids(env: &Env, v: &str) -> Vec<String> {
    env.json(&["snapshot", "list", v])
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
        .collect()
}

/// What must not be seen: names, contents, content ids (raw and hex).
fn secrets(env: &Env) -> Vec<(String, Vec<u8>)> {
    let weights = noise(7, 300_000);
    let csv_id = shale_core::id::ObjectId::of(CSV);
    let snap = snapshot_ids(env, "ds")[0]
        .split('=')
        .nth(1)
        .unwrap()
        .to_string();
    let snap_raw = (0..32)
        .map(|i| u8::from_str_radix(&snap[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    vec![
        ("a file name".into(), b"confidential-payroll".to_vec()),
        ("a directory name".into(), b"models".to_vec()),
        ("text content".into(), b"alice,123456".to_vec()),
        ("binary content".into(), weights[150_000..150_032].to_vec()),
        ("a chunk's BLAKE3".into(), csv_id.0.to_vec()),
        (
            "a chunk's BLAKE3 in hex".into(),
            csv_id.to_hex().into_bytes(),
        ),
        ("the snapshot id".into(), snap_raw),
        ("the snapshot id in hex".into(), snap.into_bytes()),
    ]
}

/// Which secrets which stored objects show. A local pool's catalog
/// (`catalog.db`, beside the packs on the owner's disk) is not sealed and
/// is left out; an object-store pool's catalog copy is sealed and checked.
fn leaks(env: &Env) -> Vec<String> {
    let secrets = secrets(env);
    let mut found = Vec::new();
    for (key, data) in env.all_objects() {
        if env.is_local() && key.starts_with("catalog.db") {
            continue;
        }
        for (what, needle) in &secrets {
            if data.windows(needle.len()).any(|w| w == &needle[..]) {
                found.push(format!("{key} shows {what}"));
            }
        }
    }
    found
}

#[test]
fn the_store_holds_no_name_content_or_content_id() {
    let env = Env::new_encrypted();
    dataset(&env);
    assert!(!env.pack_keys().is_empty());
    assert_eq!(leaks(&env), Vec::<String>::new());
    let info = env.json(&["pool", "info"]);
    assert!(info["encryption"].as_str().unwrap().contains("AES-256-GCM"));
    assert_eq!(info["format_version"], 3);
    // An encrypted pool made before deltas (version 2) is raised to 3.
    let desc = env.pool().join("pool.json");
    let text = fs::read_to_string(&desc).unwrap();
    fs::write(&desc, text.replace("\"version\": 3", "\"version\": 2")).unwrap();
    assert_eq!(env.json(&["pool", "info"])["format_version"], 2);
    assert_eq!(env.json(&["pool", "upgrade"])["from"], 2);
    assert_eq!(env.json(&["pool", "info"])["format_version"], 3);

    // The same scan finds them in a plain pool: it can fail.
    let plain = Env::new_plain();
    dataset(&plain);
    let found = leaks(&plain);
    assert!(
        found.iter().any(|f| f.contains("binary content")),
        "{found:?}"
    );
    assert!(
        found.iter().any(|f| f.contains("a chunk's BLAKE3")),
        "{found:?}"
    );
}

#[test]
fn snapshot_ids_are_the_same_and_mirrors_cross_both_ways() {
    // Both made by `pool init` (same chunking), from the same files.
    let plain = Env::local();
    plain.ok(&["pool", "init"]);
    let sealed = Env::local_encrypted();
    dataset(&plain);
    sealed.ok(&["volume", "create", "ds", "--from", &plain.s("src")]);
    sealed.ok(&["snapshot", "create", "ds", "s1"]);
    assert_eq!(snapshot_ids(&plain, "ds"), snapshot_ids(&sealed, "ds"));

    // plain -> encrypted, then encrypted -> another plain pool
    let source = format!("{}::ds", plain.s("pool"));
    sealed.ok(&["mirror", "create", "m", "--source", &source]);
    assert_eq!(snapshot_ids(&sealed, "m"), snapshot_ids(&plain, "ds"));
    sealed.ok(&["verify", "--read-data"]);
    let back = Env::local();
    back.ok(&["pool", "init"]);
    let key = sealed.s("pool.key");
    let source = format!("{}::m", sealed.s("pool"));
    back.ok(&[
        "--key-file",
        &key,
        "mirror",
        "create",
        "m",
        "--source",
        &source,
    ]);
    assert_eq!(snapshot_ids(&back, "m"), snapshot_ids(&plain, "ds"));
    back.ok(&["verify", "--read-data"]);
    back.ok(&["volume", "export", "m@s1", &back.s("out")]);
    assert_eq!(
        std::fs::read(back.path("out/confidential-payroll-2026.csv")).unwrap(),
        CSV
    );
}

/// `shale ARGS` on `env`'s pool with `key` (a key file) or none.
fn with_key(env: &Env, key: Option<&Path>, args: &[&str]) -> Output {
    let mut c = env.command();
    c.env_remove("SHALE_KEY_FILE")
        .env_remove("SHALE_PASSPHRASE");
    if let Some(k) = key {
        c.env("SHALE_KEY_FILE", k);
    }
    c.args(args).output().unwrap()
}

/// Adds a key file of `len` bytes (seeded by `seed`) named `name` to the
/// pool; returns its path.
fn add_key_file(env: &Env, name: &str, seed: u64, len: usize) -> std::path::PathBuf {
    let path = env.path(&format!("{name}.key"));
    write(&path, &noise(seed, len));
    env.ok(&[
        "pool",
        "key",
        "add",
        "--name",
        name,
        "--new-key-file",
        path.to_str().unwrap(),
    ]);
    path
}

/// Expects failure with `needle` in the error.
fn refused(out: Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "succeeded");
    assert!(err.contains(needle) && !err.contains("panicked"), "{err}");
}

#[test]
fn missing_wrong_added_and_removed_keys() {
    let env = Env::new_encrypted();
    dataset(&env);
    let first = env.path("pool.key");
    let before = env.all_objects();

    refused(
        with_key(&env, None, &["volume", "create", "x"]),
        "is encrypted: give its key",
    );
    let wrong = env.path("wrong.key");
    write(&wrong, &noise(9, 32));
    refused(
        with_key(&env, Some(&wrong), &["volume", "create", "x"]),
        "opens none of this pool's keys",
    );
    assert_eq!(env.all_objects(), before, "nothing written without the key");

    // a key file and a passphrase added
    let ci = add_key_file(&env, "ci", 10, 64);
    let short = env.path("short.key");
    write(&short, b"too short");
    let out = env.run(&[
        "pool",
        "key",
        "add",
        "--name",
        "s",
        "--new-key-file",
        short.to_str().unwrap(),
    ]);
    refused(out, "at least 32 bytes");
    let out = env
        .command()
        .env("SHALE_NEW_PASSPHRASE", "correct horse battery")
        .args(["pool", "key", "add", "--name", "alice"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<String> = env
        .json(&["pool", "key", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            format!(
                "{}:{}",
                k["name"].as_str().unwrap(),
                k["kind"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(names, ["first:key file", "ci:key file", "alice:passphrase"]);
    refused(
        env.run(&[
            "pool",
            "key",
            "add",
            "--name",
            "ci",
            "--new-key-file",
            ci.to_str().unwrap(),
        ]),
        "already has a key named",
    );
    let passphrase = |p: &str| {
        let mut c = env.command();
        c.env_remove("SHALE_KEY_FILE").env("SHALE_PASSPHRASE", p);
        c.env("SHALE_CACHE_DIR", env.path("cache"));
        c.args(["volume", "list"]).output().unwrap()
    };
    assert!(passphrase("correct horse battery").status.success());
    refused(
        passphrase("wrong horse battery"),
        "opens none of this pool's keys",
    );
    // Argon2id is paid once per machine: the stretched key is remembered,
    // owner-only, and a wrong passphrase still fails beside it.
    let id = env.json(&["pool", "info"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let remembered = env.path("cache/keys").join(format!("{id}.json"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&remembered).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "{mode:o}");
    assert!(passphrase("correct horse battery").status.success());
    refused(
        passphrase("wrong horse battery"),
        "opens none of this pool's keys",
    );

    // a key rotated: the new one opens, the old one no longer does
    let ci2 = env.path("ci2.key");
    write(&ci2, &noise(12, 32));
    let new = ci2.to_str().unwrap();
    let out = with_key(
        &env,
        Some(&ci),
        &["pool", "key", "rotate", "ci", "--new-key-file", new],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    refused(with_key(&env, Some(&ci), &["volume", "list"]), "opens none");
    let ci = ci2;

    // the first key removed: it opens nothing any more, the others do
    assert!(
        with_key(&env, Some(&ci), &["pool", "key", "remove", "first"])
            .status
            .success()
    );
    refused(
        with_key(&env, Some(&first), &["volume", "list"]),
        "opens none",
    );
    assert!(with_key(&env, Some(&ci), &["volume", "list"])
        .status
        .success());
    assert!(
        with_key(&env, Some(&ci), &["pool", "key", "remove", "alice"])
            .status
            .success()
    );
    refused(
        with_key(&env, Some(&ci), &["pool", "key", "remove", "ci"]),
        "the pool's last key",
    );
    let out = with_key(&env, Some(&ci), &["volume", "export", "ds", &env.s("out")]);
    assert!(out.status.success());
    assert_eq!(
        std::fs::read(env.path("out/confidential-payroll-2026.csv")).unwrap(),
        CSV
    );
}

#[test]
fn replaced_packs_and_a_damaged_key_ring_are_refused() {
    let env = Env::new_encrypted();
    dataset(&env);
    write(&env.path("more/other.bin"), &noise(11, 200_000));
    env.ok(&["volume", "create", "other", "--from", &env.s("more")]);
    let packs = env.pack_keys();
    assert!(packs.len() >= 2);
    // One pack's bytes under another's name: every blob fails to open.
    let (a, b) = (&packs[0], &packs[1]);
    env.write_object(a, &env.read_object(b));
    let out = env.run(&["--json", "verify", "--read-data"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("damaged objects affecting"), "{err}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors: Vec<&str> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["error"].as_str().unwrap())
        .collect();
    assert!(
        errors
            .iter()
            .all(|e| e.contains("does not authenticate") || e.contains("truncated")),
        "{errors:?}"
    );

    // An object-store pool's catalog copy, damaged: attaching refuses it
    // and keeps this machine's catalog.
    if !env.is_local() && !env.has_shared_catalog() {
        let mut copy = env.read_object("catalog/catalog.db");
        let mid = copy.len() / 2;
        copy[mid] ^= 1;
        env.write_object("catalog/catalog.db", &copy);
        refused(env.run(&["pool", "attach"]), "does not authenticate");
        assert!(env.run(&["volume", "list"]).status.success());
    }

    // A flipped byte in the key ring: a clear error, nothing opened.
    let mut ring = env.read_object("keys.json");
    let at = ring.windows(9).position(|w| w == b"\"wrapped\"").unwrap() + 14;
    ring[at] = if ring[at] == b'0' { b'1' } else { b'0' };
    env.write_object("keys.json", &ring);
    refused(
        env.run(&["volume", "list"]),
        "opens none of this pool's keys",
    );
}

#[test]
fn a_mount_opens_an_encrypted_pool_with_the_key_file_flag() {
    if !common::fuse_usable() {
        eprintln!("skipped: needs /dev/fuse and root");
        return;
    }
    let env = Env::new_encrypted();
    dataset(&env);
    std::fs::create_dir_all(env.path("mnt")).unwrap();
    // a relative --key-file, no SHALE_KEY_FILE: the mount's server, started
    // elsewhere, is given the file's full path
    let mut c = env.command();
    c.env_remove("SHALE_KEY_FILE").current_dir(env.dir.path());
    let out = c
        .args([
            "--key-file",
            "pool.key",
            "mount",
            "mnt",
            "--volume",
            "ds@s1",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = std::fs::read(env.path("mnt/confidential-payroll-2026.csv"));
    env.ok(&["unmount", &env.s("mnt")]);
    assert_eq!(read.unwrap(), CSV);
}

#[test]
fn sync_goes_into_and_out_of_an_encrypted_volume() {
    let env = Env::new_encrypted();
    write(&env.path("src/confidential-payroll-2026.csv"), CSV);
    write(&env.path("src/big.bin"), &noise(13, 700_000));
    env.ok(&["volume", "create", "ds"]);
    env.ok(&["sync", &env.s("src"), "volume:ds", "--snapshot", "s1"]);
    env.ok(&["sync", "volume:ds@s1", &env.s("back")]);
    common::same_tree(&env.path("src"), &env.path("back"));
    assert_eq!(leaks(&env), Vec::<String>::new());
}

#[test]
fn pools_sharing_a_master_key_mirror_sealed_blobs_as_they_are() {
    let a = Env::local_encrypted();
    dataset(&a);
    // b shares a's master key (opened with a's key file)
    let b = tempfile::tempdir().unwrap();
    let b_pool = b.path().join("pool");
    let key = a.s("pool.key");
    let b_arg = b_pool.to_str().unwrap();
    a.ok(&[
        "--key-file",
        &key,
        "pool",
        "init",
        b_arg,
        "--encrypt",
        "--same-key-as",
        &a.s("pool"),
    ]);
    let source = format!("{}::ds", a.s("pool"));
    let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("shale"));
    c.args([
        "--pool",
        b_arg,
        "--key-file",
        &key,
        "--json",
        "mirror",
        "create",
        "m",
        "--source",
        &source,
    ]);
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // sent as sealed: b's packs hold exactly a's blobs, byte for byte
    let blobs = |root: &Path| {
        let mut all: Vec<Vec<u8>> = common::walk_files(&root.join("packs"))
            .into_iter()
            .map(|(_, p)| std::fs::read(p).unwrap())
            .collect();
        all.sort();
        all
    };
    let (in_a, in_b) = (blobs(&a.path("pool")), blobs(&b_pool));
    let sealed_data = |packs: &[Vec<u8>]| packs.iter().map(|p| p.len()).sum::<usize>();
    assert!(sealed_data(&in_b) > 300_000, "the data went over");
    let shown = &in_a[0][in_a[0].len() - 40..];
    assert!(
        in_b.iter().any(|p| p.windows(40).any(|w| w == shown)),
        "a's sealed bytes are in b's packs as they are"
    );
    let mut v = std::process::Command::new(assert_cmd::cargo::cargo_bin("shale"));
    v.args(["--pool", b_arg, "--key-file", &key, "verify", "--read-data"]);
    assert!(v.output().unwrap().status.success());
}

/// Whether `env`'s pool opens and holds the dataset (key file `key`).
fn holds_the_dataset(env: &Env, key: &Path, out: &str) {
    let out_dir = env.s(out);
    let r = with_key(env, Some(key), &["volume", "export", "ds@s1", &out_dir]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(
        std::fs::read(env.path(out).join("confidential-payroll-2026.csv")).unwrap(),
        CSV
    );
}

#[test]
fn rekey_seals_everything_again_and_only_the_key_given_opens() {
    let env = Env::new_encrypted();
    dataset(&env);
    let key = env.path("pool.key");
    let ci = add_key_file(&env, "ci", 20, 32);
    let before = env.pack_keys();
    let ids = snapshot_ids(&env, "ds");

    let r = env.json(&["pool", "rekey"]);
    assert_eq!(r["keys_dropped"], serde_json::json!(["ci"]));
    assert!(r["blobs"].as_u64().unwrap() >= 3);
    let after = env.pack_keys();
    assert!(after.iter().all(|k| !before.contains(k)), "every pack new");
    refused(with_key(&env, Some(&ci), &["volume", "list"]), "opens none");
    assert_eq!(snapshot_ids(&env, "ds"), ids);
    env.ok(&["verify", "--read-data"]);
    holds_the_dataset(&env, &key, "out");
    assert_eq!(leaks(&env), Vec::<String>::new());
    if !env.is_local() && !env.has_shared_catalog() {
        env.ok(&["pool", "attach"]);
        holds_the_dataset(&env, &key, "out2");
    }
}

#[test]
fn a_rekey_stopped_at_any_step_opens_and_finishes() {
    for point in ["rekey.ring", "rekey.packs", "rekey.index", "rekey.sealed"] {
        let env = Env::new_encrypted();
        dataset(&env);
        let key = env.path("pool.key");
        let out = env
            .command()
            .env("SHALE_FAIL_AT", point)
            .args(["pool", "rekey"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{point}: did not stop");
        holds_the_dataset(&env, &key, "out");
        env.ok(&["pool", "rekey"]);
        env.ok(&["verify", "--read-data"]);
        holds_the_dataset(&env, &key, "out2");
        env.ok(&["gc"]);
        env.ok(&["verify", "--read-data"]);
        assert_eq!(
            env.json(&["pool", "key", "list"]).as_array().unwrap().len(),
            1
        );
    }
}

#[test]
fn rekey_is_refused_while_the_pool_is_in_use() {
    if !common::fuse_usable() {
        eprintln!("skipped: needs /dev/fuse and root");
        return;
    }
    let env = Env::new_encrypted();
    dataset(&env);
    std::fs::create_dir_all(env.path("mnt")).unwrap();
    env.ok(&["mount", &env.s("mnt"), "--volume", "ds", "--read-only"]);
    let out = env.run(&["pool", "rekey"]);
    env.ok(&["unmount", &env.s("mnt")]);
    refused(out, "needs it to itself");
}

#[test]
fn a_terminal_is_asked_for_the_passphrase() {
    // `script` gives the command a terminal; its input is typed into it
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: needs script(1)");
        return;
    }
    let env = Env::local();
    let shale = assert_cmd::cargo::cargo_bin("shale");
    let pool = env.s("pool");
    let out = std::process::Command::new(&shale)
        .env("SHALE_PASSPHRASE", "correct horse battery")
        .args(["--pool", &pool, "pool", "init", "--encrypt"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let typed = |text: &str| {
        let mut c = std::process::Command::new("script");
        c.args([
            "-qec",
            &format!("{} --pool {pool} volume create typed", shale.display()),
            "/dev/null",
        ])
        .env_remove("SHALE_PASSPHRASE")
        .env_remove("SHALE_KEY_FILE")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, shown) = typed("wrong horse battery\n");
    assert!(
        !ok && shown.contains("passphrase for") && shown.contains("opens none"),
        "{shown}"
    );
    let (ok, shown) = typed("correct horse battery\n");
    assert!(ok && shown.contains("created volume typed"), "{shown}");
}

#[test]
fn an_unfinished_rekey_is_finished_with_its_own_key_only() {
    let env = Env::new_encrypted();
    dataset(&env);
    let ci = add_key_file(&env, "ci", 21, 32);
    let out = env
        .command()
        .env("SHALE_FAIL_AT", "rekey.packs")
        .args(["pool", "rekey"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    refused(
        with_key(&env, Some(&ci), &["pool", "rekey"]),
        "begun with another key did not finish",
    );
    refused(
        with_key(&env, Some(&ci), &["pool", "key", "remove", "first"]),
        "did not finish",
    );
    holds_the_dataset(&env, &ci, "out");
    env.ok(&["pool", "rekey"]);
    holds_the_dataset(&env, &env.path("pool.key"), "out2");
}
