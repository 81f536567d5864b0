//! `shale sync` and `shale scan` between local directories, a real Garage
//! bucket and volumes. Without garage installed, the store tests say so and
//! pass without running.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod common;
use common::garage::{Garage, BUCKET};
use common::{noise, same_tree, write};

struct T {
    g: Option<Garage>,
    dir: tempfile::TempDir,
}

impl T {
    fn new(with_store: bool) -> Option<T> {
        let g = if with_store {
            Some(Garage::start()?)
        } else {
            None
        };
        Some(T {
            g,
            dir: tempfile::tempdir().unwrap(),
        })
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn s(&self, rel: &str) -> String {
        self.path(rel).to_str().unwrap().to_string()
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut c = Command::new(assert_cmd::cargo::cargo_bin("shale"));
        c.env_remove("SHALE_POOL")
            .arg("--pool")
            .arg(self.path("pool"));
        if let Some(g) = &self.g {
            c.envs(g.env());
        }
        c.args(args).output().unwrap()
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

    /// `shale --json sync ARGS…`: the report.
    fn sync(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json", "sync"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }
}

/// A source tree with the awkward cases: spaces, unicode, a long path, an
/// empty directory and file, a symlink, modes, a file large enough for a
/// multipart upload.
fn awkward_tree(root: &Path) -> u64 {
    write(&root.join("plain.txt"), b"plain\n");
    write(&root.join("with space/and more.txt"), b"spaces\n");
    write(&root.join("données/été ☀.csv"), b"a,b\n1,2\n");
    let deep = (0..12)
        .map(|i| format!("level-{i:02}-xxxxxxxxxx"))
        .collect::<Vec<_>>()
        .join("/");
    write(&root.join(&deep).join("deep.bin"), &noise(7, 5000));
    write(&root.join("big/large.bin"), &noise(8, 20 << 20));
    write(&root.join("empty-file"), b"");
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    std::os::unix::fs::symlink("plain.txt", root.join("link")).unwrap();
    write(&root.join("secret.key"), b"k");
    fs::set_permissions(root.join("secret.key"), fs::Permissions::from_mode(0o600)).unwrap();
    write(&root.join("run.sh"), b"#!/bin/sh\n");
    fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    8 // regular files
}

/// Every regular file under `a` is in `b` with the same bytes (stores keep
/// no directories or symlinks).
fn same_files(a: &Path, b: &Path) {
    for e in walk(a) {
        if e.symlink_metadata().unwrap().is_file() {
            let rel = e.strip_prefix(a).unwrap();
            assert_eq!(
                fs::read(&e).unwrap(),
                fs::read(b.join(rel)).unwrap(),
                "{}",
                rel.display()
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.symlink_metadata().unwrap().is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

fn n(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"))
}

#[test]
fn local_directories_sync_with_everything_kept() {
    let t = T::new(false).unwrap();
    let files = awkward_tree(&t.path("src"));
    let r = t.sync(&[&t.s("src"), &t.s("dst")]);
    assert_eq!(n(&r, "copied"), files);
    same_tree(&t.path("src"), &t.path("dst"));
    let mode = |p: &str| fs::metadata(t.path(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("dst/secret.key"), 0o600);
    assert_eq!(mode("dst/run.sh"), 0o755);
    // nothing changed: nothing copied
    let r = t.sync(&[&t.s("src"), &t.s("dst")]);
    assert_eq!((n(&r, "copied"), n(&r, "unchanged")), (0, files + 1));
    // a change, a removal, a dry run first
    write(&t.path("src/plain.txt"), b"changed, longer\n");
    fs::remove_file(t.path("src/run.sh")).unwrap();
    let out = t.ok(&["sync", "--dry-run", "--delete", &t.s("src"), &t.s("dst")]);
    assert!(
        out.contains("copy   plain.txt (size") && out.contains("delete run.sh"),
        "{out}"
    );
    assert!(t.path("dst/run.sh").exists(), "a dry run changes nothing");
    let r = t.sync(&["--delete", &t.s("src"), &t.s("dst")]);
    assert_eq!((n(&r, "copied"), n(&r, "deleted")), (1, 1));
    same_tree(&t.path("src"), &t.path("dst"));
    // --checksum finds a change that size and mtime hide
    let before = fs::metadata(t.path("src/plain.txt"))
        .unwrap()
        .modified()
        .unwrap();
    fs::write(t.path("src/plain.txt"), b"CHANGED, longer\n").unwrap();
    filetime::set_file_mtime(
        t.path("src/plain.txt"),
        filetime::FileTime::from_system_time(before),
    )
    .unwrap();
    assert_eq!(n(&t.sync(&[&t.s("src"), &t.s("dst")]), "copied"), 0);
    assert_eq!(
        n(&t.sync(&["--checksum", &t.s("src"), &t.s("dst")]), "copied"),
        1
    );
    same_tree(&t.path("src"), &t.path("dst"));
    // a name that is not UTF-8
    let odd = t
        .path("src")
        .join(std::ffi::OsStr::from_bytes(b"caf\xe9.txt"));
    fs::write(&odd, b"latin-1").unwrap();
    t.sync(&[&t.s("src"), &t.s("dst")]);
    assert_eq!(
        fs::read(
            t.path("dst")
                .join(std::ffi::OsStr::from_bytes(b"caf\xe9.txt"))
        )
        .unwrap(),
        b"latin-1"
    );
    // the report file; a directory into itself is refused
    t.ok(&["sync", "--report", &t.s("r.json"), &t.s("src"), &t.s("dst")]);
    let r: Value = serde_json::from_slice(&fs::read(t.path("r.json")).unwrap()).unwrap();
    assert_eq!(n(&r, "copied"), 0);
    let out = t.run(&["sync", &t.s("src"), &t.s("src/inside")]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("overlap"));
}

#[test]
fn every_pair_of_places_syncs() {
    let Some(t) = T::new(true) else { return };
    let files = awkward_tree(&t.path("src"));
    let s3 = |p: &str| format!("s3://{BUCKET}/{p}");
    // local -> store: the symlink is skipped (stores have none), and said so
    let r = t.sync(&[&t.s("src"), &s3("a")]);
    assert_eq!(n(&r, "copied"), files);
    assert_eq!(r["skipped"][0]["path"], "link");
    assert_eq!(
        n(&t.sync(&[&t.s("src"), &s3("a")]), "copied"),
        0,
        "nothing changed"
    );
    // store -> local, store -> store
    t.sync(&[&s3("a"), &t.s("back")]);
    same_files(&t.path("src"), &t.path("back"));
    assert_eq!(
        n(&t.sync(&[&s3("a"), &t.s("back")]), "copied"),
        0,
        "times kept"
    );
    assert_eq!(n(&t.sync(&[&s3("a"), &s3("b")]), "copied"), files);
    // local -> volume (with a snapshot), volume -> local, volume -> store
    t.ok(&["volume", "create", "ds"]);
    let r = t.sync(&["--snapshot", "v1", &t.s("src"), "volume:ds"]);
    assert_eq!(r["snapshot"]["name"], "ds@v1");
    t.sync(&["volume:ds@v1", &t.s("from-vol")]);
    same_tree(&t.path("src"), &t.path("from-vol"));
    assert_eq!(n(&t.sync(&["volume:ds", &s3("c")]), "copied"), files);
    assert_eq!(n(&t.sync(&["volume:ds/données", &t.s("sub")]), "copied"), 1);
    // --checksum against the store uses its ETags (the large file's is multipart)
    assert_eq!(
        n(&t.sync(&["--checksum", &t.s("src"), &s3("a")]), "copied"),
        0
    );
    // changes and removals reach the store with --delete
    write(&t.path("src/plain.txt"), b"new content\n");
    fs::remove_file(t.path("src/run.sh")).unwrap();
    let r = t.sync(&["--delete", &t.s("src"), &s3("a")]);
    assert_eq!((n(&r, "copied"), n(&r, "deleted")), (1, 1));
    // back down with --delete: the directories that hold files stay
    let r = t.sync(&["--delete", &s3("a"), &t.s("back")]);
    assert_eq!((n(&r, "copied"), n(&r, "deleted")), (1, 1));
    same_files(&t.path("back"), &t.path("src"));
    let r = t.sync(&["--delete", "--snapshot", "", &t.s("src"), "volume:ds"]);
    assert_eq!(n(&r, "deleted"), 1);
    assert!(r["snapshot"]["id"].as_str().unwrap().len() == 64);
    // a snapshot is not a destination; an unsupported pair says so
    let out = t.run(&["sync", &t.s("src"), "volume:ds@v1"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("read-only"));
    // store -> volume and volume -> volume: fetched, imported, removals applied
    t.ok(&["volume", "create", "ds2"]);
    let r = t.sync(&[&s3("a"), "volume:ds2/from-s3", "--snapshot", "s"]);
    assert_eq!(
        n(&r, "copied"),
        files - 1,
        "run.sh was removed from the store"
    );
    t.sync(&["volume:ds2/from-s3", &t.s("ds2-out")]);
    same_files(&t.path("ds2-out"), &t.path("src"));
    write(&t.path("more/x.txt"), b"x");
    t.sync(&[&t.s("more"), &s3("a/extra")]);
    t.sync(&[&s3("a"), "volume:ds2/from-s3"]);
    t.ok(&["volume", "export", "ds2", &t.s("e1")]);
    assert_eq!(fs::read(t.path("e1/from-s3/extra/x.txt")).unwrap(), b"x");
    let r = t.sync(&["--delete", &s3("b"), "volume:ds2/from-s3"]);
    assert!(n(&r, "deleted") >= 2, "{r}");
    t.ok(&["volume", "export", "ds2", &t.s("e2")]);
    assert!(!t.path("e2/from-s3/extra").exists());
    assert!(t.path("e2/from-s3/run.sh").exists(), "b still has it");
    let r = t.sync(&["volume:ds2@s", "volume:ds"]);
    assert!(n(&r, "copied") >= 1, "{r}");
    t.ok(&["verify", "--read-data"]);
    // a name that is not UTF-8 cannot be an object name: that path fails, the rest syncs
    fs::write(
        t.path("src")
            .join(std::ffi::OsStr::from_bytes(b"caf\xe9.txt")),
        b"x",
    )
    .unwrap();
    write(&t.path("src/after.txt"), b"after");
    let out = t.run(&["sync", &t.s("src"), &s3("a")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("must be UTF-8") && err.contains("1 of 2 paths failed"),
        "{err}"
    );
    // a single file and a single object (the toolkit's push_file / pull_object)
    let r = t.sync(&[&t.s("src/big/large.bin"), &s3("models/large.bin")]);
    assert_eq!(n(&r, "copied"), 1);
    t.sync(&[&s3("models/large.bin"), &t.s("pulled.bin")]);
    assert_eq!(
        fs::read(t.path("pulled.bin")).unwrap(),
        fs::read(t.path("src/big/large.bin")).unwrap()
    );
    assert_eq!(
        n(
            &t.sync(&[&s3("models/large.bin"), &t.s("pulled.bin")]),
            "copied"
        ),
        0
    );
    // scan of the store and of the volume
    let scan: Value = serde_json::from_str(&t.ok(&["--json", "scan", &s3("b")])).unwrap();
    assert_eq!(n(&scan, "files"), files);
    let scan: Value =
        serde_json::from_str(&t.ok(&["--json", "scan", "volume:ds", "--dedup"])).unwrap();
    assert_eq!(n(&scan, "symlinks"), 1);
}

#[test]
fn an_outage_mid_sync_fails_cleanly_and_a_rerun_finishes() {
    let Some(mut t) = T::new(true) else { return };
    for i in 0..200u64 {
        write(&t.path(&format!("src/f{i:03}.bin")), &noise(i, 50_000));
    }
    let dst = format!("s3://{BUCKET}/out");
    let child = {
        let mut c = Command::new(assert_cmd::cargo::cargo_bin("shale"));
        c.envs(t.g.as_ref().unwrap().env())
            .env("SHALE_STORE_RETRY_SECS", "2")
            .args(["sync", "--jobs", "2", "--retries", "1", "--bwlimit", "2MiB"])
            .arg(t.path("src"))
            .arg(&dst);
        c.stderr(std::process::Stdio::piped()).spawn().unwrap()
    };
    std::thread::sleep(std::time::Duration::from_secs(2));
    t.g.as_mut().unwrap().stop();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("paths failed") && !err.contains("panicked"),
        "{err}"
    );
    assert!(
        err.contains("not attempted: 4 copies in a row failed"),
        "{err}"
    );
    t.g.as_mut().unwrap().resume();
    let r = t.sync(&[&t.s("src"), &dst]);
    assert!(n(&r, "copied") > 0 && n(&r, "copied") < 200, "{r}");
    t.sync(&[&dst, &t.s("back")]);
    same_files(&t.path("src"), &t.path("back"));

    // a sync into a directory killed mid-way leaves no partial file under a
    // final name; the next run removes its leftovers and finishes
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("shale"))
        .envs(t.g.as_ref().unwrap().env())
        .args(["sync", "--jobs", "2", "--bwlimit", "1MiB", &dst])
        .arg(t.path("killed"))
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    child.kill().unwrap();
    child.wait().unwrap();
    for f in walk(&t.path("killed")) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            assert_eq!(
                fs::read(&f).unwrap(),
                fs::read(t.path("src").join(&name)).unwrap()
            );
        }
    }
    t.sync(&[&dst, &t.s("killed")]);
    same_files(&t.path("src"), &t.path("killed"));
    assert_eq!(walk(&t.path("killed")).len(), 200, "no leftovers");
}

#[test]
fn bwlimit_caps_the_rate_of_all_jobs_together() {
    let t = T::new(false).unwrap();
    for i in 0..8u64 {
        write(&t.path(&format!("src/f{i}.bin")), &noise(i, 512 << 10));
    }
    // 4 MiB at 1 MiB/s over 4 jobs: the limit is shared, so at least
    // 3 seconds (the bucket starts empty and holds one second's worth).
    let start = std::time::Instant::now();
    let r = t.sync(&["--jobs", "4", "--bwlimit", "1MiB", &t.s("src"), &t.s("dst")]);
    let took = start.elapsed().as_secs_f64();
    assert_eq!((n(&r, "copied"), n(&r, "bytes")), (8, 4 << 20), "{r}");
    assert!(took >= 3.0, "4 MiB at 1 MiB/s took only {took:.2} s");
    same_files(&t.path("src"), &t.path("dst"));
}

#[test]
fn scan_reports_counts_sizes_and_duplicates() {
    let t = T::new(false).unwrap();
    write(&t.path("d/a.jpg"), &noise(1, 100_000));
    write(&t.path("d/b/a-copy.jpg"), &noise(1, 100_000));
    write(&t.path("d/b/c.txt"), b"text");
    write(&t.path("d/empty"), b"");
    let r: Value = serde_json::from_str(&t.ok(&[
        "--json",
        "scan",
        &t.s("d"),
        "--dedup",
        "--html",
        &t.s("r.html"),
    ]))
    .unwrap();
    assert_eq!(
        (n(&r, "files"), n(&r, "dirs"), n(&r, "empty_files")),
        (4, 1, 1)
    );
    assert_eq!(n(&r, "bytes"), 200_004);
    assert_eq!(r["extensions"][0]["extension"], "jpg");
    assert_eq!(r["largest_dirs"][0]["path"], "b");
    assert_eq!(n(&r["duplicates"], "redundant_bytes"), 100_000);
    let html = fs::read_to_string(t.path("r.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("Largest directories"));
    // the page renders: headless Chromium prints its DOM
    let Some(chromium) = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
    else {
        eprintln!("skipped rendering: needs chromium");
        return;
    };
    let out = Command::new(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("file://{}", t.s("r.html")))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("id=\"files\">4<") && dom.contains("<rect"),
        "{dom}"
    );
    // a table for people
    let text = t.ok(&["scan", &t.s("d")]);
    assert!(
        text.contains("LARGEST FILES") && text.contains("a-copy.jpg"),
        "{text}"
    );
}

/// A project tree with what filters are for: `.git/`, `__pycache__`,
/// temporary files and one checkpoint worth keeping.
fn project_tree(root: &Path) {
    for (p, d) in [
        ("src/main.py", "print()\n"),
        ("src/__pycache__/main.cpython-311.pyc", "bytecode"),
        (".git/HEAD", "ref: refs/heads/main\n"),
        (".git/objects/ab/cdef", "object"),
        ("notes.tmp", "scratch"),
        ("ckpt/last.ckpt", "last"),
        ("ckpt/best.ckpt", "best"),
        ("data/train.csv", "a,b\n"),
    ] {
        write(&root.join(p), d.as_bytes());
    }
}

const FILTERS: [&str; 10] = [
    "--exclude",
    ".git/",
    "--exclude",
    "__pycache__",
    "--exclude",
    "*.tmp",
    "--exclude",
    "*.ckpt",
    "--include",
    "best.ckpt",
];

#[test]
fn filters_leave_paths_out_of_syncs_and_imports_and_delete_never_touches_them() {
    let Some(t) = T::new(false) else { return };
    project_tree(&t.path("src"));
    let kept = ["ckpt/best.ckpt", "data/train.csv", "src/main.py"];
    let files_under = |dir: &Path| -> Vec<String> {
        let mut v: Vec<String> = walk(dir)
            .into_iter()
            .filter(|p| p.is_file())
            .map(|p| p.strip_prefix(dir).unwrap().to_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    // local -> local
    let mut args = FILTERS.to_vec();
    let (src, dst) = (t.s("src"), t.s("dst"));
    args.extend([src.as_str(), dst.as_str()]);
    let r = t.sync(&args);
    assert_eq!(files_under(&t.path("dst")), kept);
    assert_eq!(n(&r, "copied"), 3);
    assert!(n(&r, "excluded") >= 5, "{r}");
    // --delete leaves excluded destination files (and their directories) alone
    write(&t.path("dst/.git/config"), b"mine");
    write(&t.path("dst/cache/x.tmp"), b"mine");
    fs::remove_file(t.path("src/data/train.csv")).unwrap();
    let mut args = FILTERS.to_vec();
    args.extend(["--delete", src.as_str(), dst.as_str()]);
    let r = t.sync(&args);
    assert_eq!(n(&r, "deleted"), 1, "{r}");
    assert!(t.path("dst/.git/config").exists());
    assert!(t.path("dst/cache/x.tmp").exists());
    assert!(!t.path("dst/data/train.csv").exists());
    // --exclude-from, gitignore lines
    write(&t.path("ignore"), b"# build output\n*.pyc\n.git/\n*.tmp\n");
    let r = t.sync(&["--exclude-from", &t.s("ignore"), &src, &t.s("dst2")]);
    assert_eq!(n(&r, "copied"), 3, "{r}");
    assert!(t.path("dst2/ckpt/last.ckpt").exists());
    assert!(!t.path("dst2/src/__pycache__/main.cpython-311.pyc").exists());
    // volume create --from and volume import: the same rules; the
    // volume's own copies at excluded paths survive --delete
    let mut args = vec!["volume", "create", "p", "--from", src.as_str()];
    args.extend(FILTERS);
    t.ok(&args);
    t.ok(&["volume", "export", "p", &t.s("out")]);
    assert_eq!(
        files_under(&t.path("out")),
        ["ckpt/best.ckpt", "src/main.py"]
    );
    write(&t.path("more/.git/HEAD"), b"volume's own\n");
    t.ok(&["volume", "import", "p", &t.s("more")]);
    let mut args = vec!["volume", "import", "p", "--delete", src.as_str()];
    args.extend(FILTERS);
    t.ok(&args);
    t.ok(&["volume", "export", "p", &t.s("out2")]);
    assert_eq!(
        files_under(&t.path("out2")),
        [".git/HEAD", "ckpt/best.ckpt", "src/main.py"]
    );
    assert_eq!(
        fs::read(t.path("out2/.git/HEAD")).unwrap(),
        b"volume's own\n"
    );
    // a bad pattern is a clear error before anything is done
    let out = t.run(&["sync", "--exclude", "a{b", &src, &t.s("dst3")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--exclude \"a{b\""), "{err}");
    assert!(!t.path("dst3").exists());
}

#[test]
fn saved_syncs_run_by_name_and_when_due_and_keep_their_last_report() {
    let Some(t) = T::new(false) else { return };
    project_tree(&t.path("src"));
    let (src, dst) = (t.s("src"), t.s("dst"));
    let saved = t.ok(&[
        "sync",
        "create",
        "proj",
        &src,
        &dst,
        "--exclude",
        ".git/",
        "--delete",
        "--every",
        "1h",
    ]);
    assert!(saved.contains("saved sync proj"), "{saved}");
    let listed: Value = serde_json::from_str(&t.ok(&["--json", "sync", "list"])).unwrap();
    assert_eq!(listed[0]["name"], "proj");
    assert_eq!(listed[0]["options"]["exclude"][0], ".git/");
    assert_eq!(listed[0]["every_secs"], 3600);
    assert!(listed[0]["last_run"].is_null());
    assert!(!t.path("dst").exists(), "saving copies nothing");
    // run by name: the saved flags apply
    let r = t.sync(&["run", "proj"]);
    assert_eq!(n(&r, "copied"), 6);
    assert!(!t.path("dst/.git").exists());
    let listed: Value = serde_json::from_str(&t.ok(&["--json", "sync", "list"])).unwrap();
    assert_eq!(listed[0]["last_ok"], true);
    assert_eq!(listed[0]["last_report"]["copied"], 6);
    // just run: not due yet
    let due: Value = serde_json::from_str(&t.ok(&["--json", "sync", "run", "--due"])).unwrap();
    assert_eq!(due.as_array().unwrap().len(), 0);
    let table = t.ok(&["sync", "list"]);
    assert!(table.contains("proj") && table.contains("ok"), "{table}");
    // errors: a second save of the name, an unknown one
    let out = t.run(&["sync", "create", "proj", &src, &dst]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("already saved"));
    let out = t.run(&["sync", "run", "nope"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no sync named 'nope'"));
    t.ok(&["sync", "delete", "proj"]);
    assert_eq!(t.ok(&["--json", "sync", "list"]).trim(), "[]");
}

#[test]
fn a_missing_local_source_is_an_error_not_an_empty_source() {
    let Some(t) = T::new(false) else { return };
    write(&t.path("dst/keep.txt"), b"mine");
    let out = t.run(&["sync", "--delete", &t.s("no-such-dir"), &t.s("dst")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    assert!(t.path("dst/keep.txt").exists(), "--delete removed nothing");
}

#[test]
fn the_server_runs_what_policies_and_saved_syncs_have_due() {
    let Some(t) = T::new(false) else { return };
    project_tree(&t.path("src"));
    t.ok(&["volume", "create", "ds"]);
    t.ok(&["snapshot", "policy", "set", "ds", "--hourly", "2"]);
    t.ok(&[
        "sync",
        "create",
        "nightly",
        &t.s("src"),
        &t.s("dst"),
        "--every",
        "1h",
    ]);
    let mut shale = Command::new(assert_cmd::cargo::cargo_bin("shale"));
    shale
        .env_remove("SHALE_POOL")
        .arg("--pool")
        .arg(t.path("pool"));
    let (mut server, _) = common::spawn_server(
        shale,
        &["--run-schedules", "1s"],
        std::process::Stdio::null(),
    );
    let start = std::time::Instant::now();
    let done = loop {
        let snaps: Value =
            serde_json::from_str(&t.ok(&["--json", "snapshot", "list", "ds"])).unwrap();
        let syncs: Value = serde_json::from_str(&t.ok(&["--json", "sync", "list"])).unwrap();
        let hourly = snaps
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"].as_str().unwrap().starts_with("hourly."));
        if hourly && syncs[0]["last_ok"] == true {
            break true;
        }
        if start.elapsed().as_secs() > 30 {
            break false;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        done,
        "the server took no hourly snapshot or did not run the saved sync"
    );
    assert!(t.path("dst/src/main.py").exists());
    // taken once: a second check a second later found nothing due
    let snaps: Value = serde_json::from_str(&t.ok(&["--json", "snapshot", "list", "ds"])).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 1, "{snaps}");
}
