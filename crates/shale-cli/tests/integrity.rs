//! Damaged pools: reads name the file and the object, unaffected data still
//! reads, `verify` lists exactly the affected paths, nothing panics.

use std::fs;

use serde_json::Value;

mod common;
use common::{noise, write, Env};

/// Runs `verify` with `--json`: (success, report, stderr).
fn verify(p: &Env, read_data: bool) -> (bool, Value, String) {
    let mut args = vec!["--json", "verify"];
    if read_data {
        args.push("--read-data");
    }
    let out = p.run(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (
        out.status.success(),
        serde_json::from_slice(&out.stdout).unwrap(),
        stderr,
    )
}

/// Every pack of the pool (keys, as in the object store).
fn packs(p: &Env) -> Vec<String> {
    p.pack_keys()
}

/// A pool with volume `good` and volume `bad` (with a snapshot `s`); `bad`'s
/// data lives in packs of its own. Returns those packs.
fn two_volumes(p: &Env) -> Vec<String> {
    write(&p.path("good/a.bin"), &noise(1, 50_000));
    write(&p.path("good/sub/b.bin"), &noise(2, 70_000));
    p.ok(&[
        "volume",
        "create",
        "good",
        "--from",
        p.path("good").to_str().unwrap(),
    ]);
    let before = packs(p);
    write(&p.path("bad/x.bin"), &noise(3, 60_000));
    write(&p.path("bad/dir/y.bin"), &noise(4, 80_000));
    write(&p.path("bad/dir/z.bin"), &noise(5, 90_000));
    p.ok(&[
        "volume",
        "create",
        "bad",
        "--from",
        p.path("bad").to_str().unwrap(),
    ]);
    p.ok(&["snapshot", "create", "bad", "s"]);
    packs(p)
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect()
}

fn affected(report: &Value) -> Vec<String> {
    let mut out: Vec<String> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["affected"].as_array().unwrap().iter())
        .map(|a| {
            format!(
                "{}:{}",
                a["spec"].as_str().unwrap(),
                a["path"].as_str().unwrap()
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_healthy_pool_verifies() {
    let p = Env::new();
    two_volumes(&p);
    let (ok, report, _) = verify(&p, true);
    assert!(ok);
    assert_eq!(report["roots"], 3);
    assert!(report["packs_read"].as_u64().unwrap() >= 2);
    assert!(report["problems"].as_array().unwrap().is_empty());
}

/// Flips one byte inside the stored content of a file of volume `bad`:
/// `dir/y.bin` in a plain pool (found by its bytes); in an encrypted one,
/// whose packs show no plaintext, the file whose blob the middle of the
/// largest new pack holds. Returns the error verify should give.
fn flip_a_byte(p: &Env, packs: &[String]) -> &'static str {
    let (pack, at) = if p.is_encrypted() {
        let pack = packs.iter().max_by_key(|f| p.read_object(f).len()).unwrap();
        (pack, p.read_object(pack).len() / 2)
    } else {
        let needle = &noise(4, 80_000)[1000..1032];
        let pack = packs
            .iter()
            .find(|f| p.read_object(f).windows(32).any(|w| w == needle))
            .unwrap();
        let at = p.read_object(pack).windows(32).position(|w| w == needle);
        (pack, at.unwrap() + 5)
    };
    let mut bytes = p.read_object(pack);
    bytes[at] ^= 0x40;
    p.write_object(pack, &bytes);
    if p.is_encrypted() {
        "does not authenticate"
    } else {
        "does not match its hash"
    }
}

#[test]
fn flipped_bytes_are_found_and_named() {
    let p = Env::new();
    let packs = two_volumes(&p);
    let expected_error = flip_a_byte(&p, &packs);

    // structure alone looks fine; re-reading the data finds it
    assert!(verify(&p, false).0);
    let (ok, report, stderr) = verify(&p, true);
    assert!(!ok);
    assert!(
        stderr.contains("verify found 1 damaged objects affecting 2 paths"),
        "{stderr}"
    );
    let paths = affected(&report);
    let file = paths[0].strip_prefix("bad:").unwrap().to_string();
    assert_eq!(paths, [format!("bad:{file}"), format!("bad@s:{file}")]);
    if !p.is_encrypted() {
        assert_eq!(file, "dir/y.bin");
    }
    assert!(report["problems"][0]["error"]
        .as_str()
        .unwrap()
        .contains(expected_error));

    // reading the file fails naming it and the object; the rest still reads
    let out = p.run(&["volume", "export", "bad", p.path("out").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&file) && err.contains("is corrupt"), "{err}");
    assert!(
        err.contains(report["problems"][0]["object"].as_str().unwrap()),
        "{err}"
    );
    let (other, data) = [("x.bin", noise(3, 60_000)), ("dir/z.bin", noise(5, 90_000))]
        .into_iter()
        .find(|(name, _)| *name != file)
        .unwrap();
    p.ok(&[
        "volume",
        "export",
        "bad",
        p.path("out2").to_str().unwrap(),
        "--path",
        other,
    ]);
    assert_eq!(fs::read(p.path("out2").join(other)).unwrap(), data);
    p.ok(&["volume", "export", "good", p.path("out3").to_str().unwrap()]);
    assert_eq!(
        fs::read(p.path("out3/sub/b.bin")).unwrap(),
        noise(2, 70_000)
    );
}

#[test]
fn a_truncated_pack_is_found_without_reading_data() {
    let p = Env::new();
    let packs = two_volumes(&p);
    for f in &packs {
        let bytes = p.read_object(f);
        p.write_object(f, &bytes[..bytes.len() / 2]);
    }
    let (ok, report, _) = verify(&p, false);
    assert!(!ok);
    let paths = affected(&report);
    assert!(!paths.is_empty());
    assert!(paths.iter().all(|a| a.starts_with("bad")), "{paths:?}");
    assert!(report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["error"].as_str().unwrap().contains("truncated")));
    let (ok, report2, _) = verify(&p, true);
    assert!(!ok);
    assert_eq!(affected(&report2), paths);
    p.ok(&["volume", "export", "good", p.path("out").to_str().unwrap()]);
}

#[test]
fn a_deleted_pack_is_found() {
    let p = Env::new();
    let packs = two_volumes(&p);
    for f in &packs {
        p.delete_object(f);
    }
    let (ok, report, _) = verify(&p, false);
    assert!(!ok);
    // the bad volume's root node was in the deleted pack: its root is affected
    assert_eq!(affected(&report), ["bad:", "bad@s:"]);
    assert!(report["problems"][0]["error"]
        .as_str()
        .unwrap()
        .contains("pack is missing"));
    let out = p.run(&["volume", "export", "bad", p.path("out").to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("its pack is missing"));
    p.ok(&["volume", "export", "good", p.path("out2").to_str().unwrap()]);
    // pool info still reports, with reclaimable space unknown
    let info: Value = serde_json::from_str(&p.ok(&["--json", "pool", "info"])).unwrap();
    assert_eq!(info["volumes"], 2);
    assert_eq!(info["reclaimable_bytes"], Value::Null);
    // gc refuses to collect a pool it cannot fully see
    let out = p.run(&["gc"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("gc stopped, nothing was freed"));
    // --volume narrows the check
    let out = p.run(&["verify", "--volume", "good"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_damaged_catalog_is_reported_not_panicked_on() {
    let p = Env::new();
    if p.has_shared_catalog() {
        // a PostgreSQL server keeps its own files consistent
        eprintln!("skipped: the catalog is a PostgreSQL database");
        return;
    }
    two_volumes(&p);
    let db = p.pool().join("catalog.db");
    let mut bytes = fs::read(&db).unwrap();
    for b in bytes.iter_mut().take(100) {
        *b = 0xAA;
    }
    fs::write(&db, bytes).unwrap();
    for args in [&["volume", "list"][..], &["verify"], &["pool", "info"]] {
        let out = p.run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            err.contains("catalog") && err.contains("is corrupt"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"));
    }
}

#[test]
fn a_lost_index_row_is_found_and_named() {
    let p = Env::new();
    two_volumes(&p);
    // bad/dir/z.bin is the only 90,000-byte blob
    p.catalog_execute("DELETE FROM blobs WHERE raw_len = 90000");
    let (ok, report, _) = verify(&p, false);
    assert!(!ok);
    assert_eq!(affected(&report), ["bad:dir/z.bin", "bad@s:dir/z.bin"]);
    assert!(report["problems"][0]["error"]
        .as_str()
        .unwrap()
        .contains("missing from the pool"));
    let out = p.run(&["volume", "export", "bad", p.path("out").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("dir/z.bin") && err.contains("missing from the pool"),
        "{err}"
    );
}
