//! `shale run` and `shale lineage`: a command run on a snapshot of its
//! dataset, its model volume snapshotted after, and the record read back.
//! `shale run` mounts, so it needs /dev/fuse and root (as in CI).

use std::fs;

mod common;
use common::{fuse_usable, write, Env};

/// A shell command that copies the dataset's file listing into the model.
const TRAIN: &str = "ls \"$SHALE_DATASET_PATH\" > \"$SHALE_MODEL_PATH/seen.txt\" && \
     echo \"$SHALE_DATASET_SNAPSHOT_ID\" > \"$SHALE_MODEL_PATH/id.txt\" && \
     ! touch \"$SHALE_DATASET_PATH/x\" 2>/dev/null";

#[test]
fn run_snapshots_mounts_and_records() {
    if !fuse_usable() {
        eprintln!("skipped: needs /dev/fuse and root");
        return;
    }
    let env = Env::new();
    write(&env.path("src/a.txt"), b"a");
    write(&env.path("src/b.txt"), b"b");
    env.ok(&["volume", "create", "data", "--from", &env.s("src")]);

    let rec = env.json(&[
        "run",
        "--dataset",
        "data",
        "--model",
        "model",
        "--",
        "sh",
        "-c",
        TRAIN,
    ]);
    assert_eq!(rec["exit_code"], 0);
    let run = rec["run"].as_i64().unwrap();
    let snap = format!("run-{run}");
    assert_eq!(rec["input"]["snapshot"], snap);
    assert_eq!(rec["output"]["volume"], "model");

    // The command saw exactly the snapshot the record names, read-only.
    env.ok(&["volume", "export", &format!("model@{snap}"), &env.s("out")]);
    assert_eq!(
        fs::read_to_string(env.path("out/seen.txt")).unwrap(),
        "a.txt\nb.txt\n"
    );
    let id = rec["input"]["snapshot_id"].as_str().unwrap();
    assert_eq!(
        fs::read_to_string(env.path("out/id.txt")).unwrap().trim(),
        id
    );
    let snaps = env.json(&["snapshot", "list", "data"]);
    assert_eq!(snaps[0]["name"], snap.as_str());

    // Lineage both ways.
    let up = env.json(&["lineage", &format!("model@{snap}")]);
    assert_eq!(up["produced_by"][0]["id"], run);
    assert_eq!(up["produced_by"][0]["inputs"][0]["snapshot_id"], id);
    assert_eq!(up["produced_by"][0]["command"][0], "sh");
    let down = env.json(&["lineage", "data"]);
    assert_eq!(down["used_by"][0]["outputs"][0]["snapshot"], snap.as_str());
    let text = env.ok(&["lineage", &format!("model@{snap}")]);
    assert!(text.contains(&format!("produced by run {run}")), "{text}");
    assert!(text.contains(&format!("read data@{snap}")), "{text}");
    let dot = env.ok(&["lineage", "--dot", "data"]);
    assert!(dot.starts_with("digraph lineage {"), "{dot}");
    assert!(
        dot.contains(&format!("\"data@{snap}\" -> \"run {run}\"")),
        "{dot}"
    );

    // A failing command: its status is passed on, no model snapshot.
    let out = env.run(&[
        "run",
        "--dataset",
        "data",
        "--model",
        "model",
        "--",
        "sh",
        "-c",
        "exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7));
    let model_snaps = env.json(&["snapshot", "list", "model"]);
    assert_eq!(model_snaps.as_array().unwrap().len(), 1);
    let l = env.json(&["lineage", "data"]);
    assert_eq!(l["used_by"][1]["exit_code"], 7);
    assert!(l["used_by"][1]["outputs"].as_array().unwrap().is_empty());
    // No mount is left behind.
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("shale-run-"), "{mounts}");
}

#[test]
fn run_and_lineage_errors() {
    let env = Env::new();
    env.ok(&["volume", "create", "data"]);
    let out = env.run(&["run", "--dataset", "nope", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("volume 'nope' not found"));
    let out = env.run(&["run", "--dataset", "data", "--model", "data", "--", "true"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("must not be the dataset"));
    let out = env.run(&["run", "--dataset", "data"]);
    assert_eq!(out.status.code(), Some(2));
    let out = env.run(&["lineage", "data@missing"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("snapshot 'data@missing' not found"));
    let l = env.ok(&["lineage", "data"]);
    assert!(l.contains("no recorded origin, runs or clones"), "{l}");
}
