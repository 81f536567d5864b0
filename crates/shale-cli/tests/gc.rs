//! `gc`: frees what nothing reaches, keeps everything that something does,
//! also while other processes write to the pool.

use std::fs;
use std::path::Path;
use std::process::{Child, Stdio};

mod common;
use common::{noise, write, Env};

fn spawn(p: &Env, args: &[&str]) -> Child {
    p.command()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn verify_clean(p: &Env) {
    let out = p.ok(&["verify", "--read-data"]);
    assert!(out.contains("0 problems"), "{out}");
}

/// Exports `spec` and compares it with the directory `expected`.
fn exports_as(p: &Env, spec: &str, expected: &Path) {
    let out = p.path(&format!("check-{}", spec.replace('@', "_")));
    let _ = fs::remove_dir_all(&out);
    p.ok(&["volume", "export", spec, out.to_str().unwrap()]);
    let diff = std::process::Command::new("diff")
        .arg("-r")
        .arg(expected)
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        diff.status.success(),
        "{spec} differs: {}",
        String::from_utf8_lossy(&diff.stdout)
    );
    fs::remove_dir_all(&out).unwrap();
}

#[test]
fn create_clone_modify_delete_then_gc_frees_exactly_the_garbage() {
    let p = Env::new();
    for i in 0..20 {
        write(
            &p.path(&format!("v1/class{}/img{i}.jpg", i % 4)),
            &noise(i, 40_000 + i as usize * 1000),
        );
    }
    p.ok(&["volume", "create", "ds", "--from", &p.s("v1")]);
    p.ok(&["snapshot", "create", "ds", "v1"]);
    p.ok(&["volume", "clone", "exp", "--from", "ds@v1"]);
    // change half the files of the clone, delete the origin's snapshot and the origin
    fs::create_dir_all(p.path("v2")).unwrap();
    std::process::Command::new("cp")
        .args(["-a", &p.s("v1/."), &p.s("v2/")])
        .status()
        .unwrap();
    for i in 0..15 {
        write(
            &p.path(&format!("v2/class{}/img{i}.jpg", i % 4)),
            &noise(100 + i, 50_000),
        );
    }
    p.ok(&["volume", "import", "exp", &p.s("v2"), "--delete"]);
    let before = p.json(&["pool", "info"]);
    assert_eq!(
        before["reclaimable_bytes"], 0,
        "everything is still reachable from ds"
    );
    p.ok(&["volume", "delete", "ds"]);
    let info = p.json(&["pool", "info"]);
    let reclaimable = info["reclaimable_bytes"].as_u64().unwrap();
    assert!(reclaimable >= 15 * 40_000, "{info}");
    assert!(
        info["unused_bytes"].as_u64().unwrap() >= reclaimable,
        "{info}"
    );

    let dry = p.json(&["gc", "--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        p.json(&["pool", "info"])["stored_bytes"],
        info["stored_bytes"],
        "a dry run changes nothing"
    );
    let report = p.json(&["gc"]);
    assert_eq!(report["freed_blobs"], dry["freed_blobs"]);
    let after = p.json(&["pool", "info"]);
    let freed = info["stored_bytes"].as_u64().unwrap() - after["stored_bytes"].as_u64().unwrap();
    assert!(
        freed >= reclaimable * 9 / 10,
        "freed {freed} of {reclaimable} reclaimable: {report}"
    );
    assert_eq!(after["reclaimable_bytes"], 0, "{after}");
    assert!(after["unused_bytes"].as_u64().unwrap() < 4096, "{after}");
    verify_clean(&p);
    exports_as(&p, "exp", &p.path("v2"));
    // nothing left to do
    assert_eq!(p.json(&["gc"])["freed_blobs"], 0);
}

#[test]
fn mostly_garbage_packs_are_repacked() {
    let p = Env::new();
    write(&p.path("src/keep.bin"), &noise(1, 30_000));
    write(&p.path("src/drop.bin"), &noise(2, 3_000_000));
    p.ok(&["volume", "create", "v", "--from", &p.s("src")]);
    fs::remove_file(p.path("src/drop.bin")).unwrap();
    p.ok(&["volume", "import", "v", &p.s("src"), "--delete"]);
    let report = p.json(&["gc"]);
    assert_eq!(report["repacked_packs"], 1, "{report}");
    assert!(
        report["freed_bytes"].as_u64().unwrap() >= 3_000_000,
        "{report}"
    );
    verify_clean(&p);
    exports_as(&p, "v", &p.path("src"));
    let used = p.json(&["volume", "info", "v", "--space"])["used_bytes"]
        .as_u64()
        .unwrap();
    assert!((30_000..40_000).contains(&used), "{used}");
}

#[test]
fn space_shows_what_deleting_would_free() {
    let p = Env::new();
    write(&p.path("a/shared.bin"), &noise(1, 100_000));
    p.ok(&["volume", "create", "v", "--from", &p.s("a")]);
    p.ok(&["snapshot", "create", "v", "s1"]);
    write(&p.path("a/own.bin"), &noise(2, 200_000));
    p.ok(&["volume", "import", "v", &p.s("a")]);
    p.ok(&["snapshot", "create", "v", "s2"]);
    p.ok(&["volume", "clone", "c", "--from", "v@s1"]);
    // deleting s2 alone frees nothing (the live volume still has own.bin)
    let snaps = p.json(&["snapshot", "list", "v", "--space"]);
    assert_eq!(snaps[1]["used_bytes"], 0);
    // every volume's snapshots (only v has any), in the same order
    assert_eq!(p.json(&["snapshot", "list", "--space"]), snaps);
    // deleting v (with s1, s2) frees own.bin but not shared.bin (the clone has it)
    let used = p.json(&["volume", "info", "v", "--space"])["used_bytes"]
        .as_u64()
        .unwrap();
    assert!((200_000..250_000).contains(&used), "{used}");
}

#[test]
fn gc_while_other_processes_write_loses_nothing() {
    let p = Env::new();
    // garbage for gc to chew on
    write(&p.path("junk/j.bin"), &noise(9, 2_000_000));
    p.ok(&["volume", "create", "junk", "--from", &p.s("junk")]);
    p.ok(&["volume", "delete", "junk"]);
    for round in 0..3u64 {
        let mut children = Vec::new();
        for w in 0..3u64 {
            let dir = p.path(&format!("src-{round}-{w}"));
            for f in 0..30u64 {
                // some files repeat the deleted junk, so writers race gc over it
                let data = if f % 10 == 0 {
                    noise(9, 2_000_000)
                } else {
                    noise(round * 1000 + w * 100 + f, 20_000)
                };
                write(&dir.join(format!("d{}/f{f}", f % 3)), &data);
            }
            children.push((
                format!("v{round}-{w}"),
                dir.clone(),
                spawn(
                    &p,
                    &[
                        "volume",
                        "create",
                        &format!("v{round}-{w}"),
                        "--from",
                        dir.to_str().unwrap(),
                    ],
                ),
            ));
        }
        let gc = spawn(&p, &["gc"]);
        let snap = if round > 0 {
            Some(spawn(
                &p,
                &[
                    "snapshot",
                    "create",
                    &format!("v{}-0", round - 1),
                    &format!("s{round}"),
                ],
            ))
        } else {
            None
        };
        for (_, _, c) in children.iter_mut() {
            let out = c.wait().unwrap();
            assert!(out.success());
        }
        let out = gc.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "gc failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(s) = snap {
            assert!(s.wait_with_output().unwrap().status.success());
        }
        verify_clean(&p);
        for (name, dir, _) in &children {
            exports_as(&p, name, dir);
        }
    }
    p.ok(&["gc"]);
    verify_clean(&p);
}
