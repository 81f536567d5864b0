//! Hostile and awkward input: each gets a clear error or a reported skip,
//! and nothing is ever written outside the target.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::Value;

mod common;
use common::{write, Env, Tmpfs};

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

fn run_pool(pool: &Path, args: &[&str]) -> Output {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("shale"))
        .env_remove("SHALE_POOL")
        .arg("--pool")
        .arg(pool)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn hostile_names_are_refused() {
    let env = Env::new();
    env.ok(&["volume", "create", "v"]);
    let long = "a".repeat(300);
    for bad in [
        "..",
        "../x",
        "a/b",
        "v@s",
        "tab\there",
        "nl\nx",
        "esc\u{1b}[2J",
        long.as_str(),
        "@",
        "/",
    ] {
        for args in [
            vec!["volume", "create", bad],
            vec!["snapshot", "create", "v", bad],
            vec!["volume", "clone", bad, "--from", "v"],
        ] {
            let out = env.run(&args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{args:?} accepted");
            assert!(
                err.starts_with("shale: error: invalid name"),
                "{args:?}: {err}"
            );
            assert_eq!(
                err.lines().count(),
                1,
                "control characters must be escaped: {err:?}"
            );
        }
    }
    assert_eq!(env.json(&["volume", "list"]).as_array().unwrap().len(), 1);
    assert!(env
        .json(&["snapshot", "list"])
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn special_files_are_skipped_and_reported() {
    let env = Env::new();
    write(&env.path("src/regular"), b"data");
    let c = |p: &Path| std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    assert_eq!(
        unsafe { libc::mkfifo(c(&env.path("src/fifo")).as_ptr(), 0o644) },
        0
    );
    let _sock = std::os::unix::net::UnixListener::bind(env.path("src/sock")).unwrap();
    let mut expected = vec!["fifo: FIFOs", "sock: sockets"];
    if is_root() {
        assert_eq!(
            unsafe {
                libc::mknod(
                    c(&env.path("src/null")).as_ptr(),
                    libc::S_IFCHR | 0o666,
                    libc::makedev(1, 3),
                )
            },
            0
        );
        assert_eq!(
            unsafe {
                libc::mknod(
                    c(&env.path("src/blk")).as_ptr(),
                    libc::S_IFBLK | 0o600,
                    libc::makedev(7, 0),
                )
            },
            0
        );
        expected.extend(["null: character devices", "blk: block devices"]);
    }
    let out = env.run(&["--json", "volume", "create", "v", "--from", &env.s("src")]);
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let skipped: Vec<String> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}: {}",
                s["path"].as_str().unwrap(),
                s["reason"].as_str().unwrap()
            )
        })
        .collect();
    for e in &expected {
        assert!(
            skipped.iter().any(|s| s.starts_with(e)),
            "{e} not reported in {skipped:?}"
        );
    }
    assert_eq!(report["files"], 1);
    // without --json, every skip is named on stderr
    let out = env.run(&["volume", "import", "v", &env.s("src")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("skipped fifo: FIFOs are not stored in volumes"),
        "{err}"
    );
}

#[test]
fn symlinks_are_stored_never_followed() {
    let env = Env::new();
    write(&env.path("outside/secret"), b"must not be imported");
    fs::create_dir_all(env.path("src")).unwrap();
    symlink(env.path("outside"), env.path("src/to-outside-dir")).unwrap();
    symlink(env.path("outside/secret"), env.path("src/to-outside-file")).unwrap();
    symlink(
        "../../../../../../etc/passwd",
        env.path("src/relative-escape"),
    )
    .unwrap();
    symlink("dangling-target", env.path("src/dangling")).unwrap();
    let report = env.json(&["volume", "create", "v", "--from", &env.s("src")]);
    assert_eq!(report["symlinks"], 4);
    assert_eq!(report["files"], 0);
    assert_eq!(report["volume_bytes"], 0);
    env.ok(&["volume", "export", "v", &env.s("out")]);
    for name in [
        "to-outside-dir",
        "to-outside-file",
        "relative-escape",
        "dangling",
    ] {
        let md = fs::symlink_metadata(env.path("out").join(name)).unwrap();
        assert!(md.file_type().is_symlink(), "{name} is not a link");
        assert_eq!(
            fs::read_link(env.path("out").join(name)).unwrap(),
            fs::read_link(env.path("src").join(name)).unwrap()
        );
    }
    // import --to a path that is a symlink in the volume is refused
    write(&env.path("more/x"), b"x");
    let out = env.run(&[
        "volume",
        "import",
        "v",
        &env.s("more"),
        "--to",
        "to-outside-dir",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is a symlink, not a directory"));
    assert!(!env.path("outside/x").exists());
}

#[test]
fn export_never_follows_links_in_the_target() {
    let env = Env::new();
    write(&env.path("src/data/file"), b"inside");
    write(&env.path("src/top"), b"top");
    env.ok(&["volume", "create", "v", "--from", &env.s("src")]);
    fs::create_dir_all(env.path("victim")).unwrap();
    fs::create_dir_all(env.path("target")).unwrap();
    // the target holds links where the volume has a directory and a file
    symlink(env.path("victim"), env.path("target/data")).unwrap();
    write(&env.path("victim/top"), b"precious");
    symlink(env.path("victim/top"), env.path("target/top")).unwrap();
    let out = env.run(&["volume", "export", "v", &env.s("target")]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not empty"));
    env.ok(&["volume", "export", "v", &env.s("target"), "--force"]);
    assert!(fs::symlink_metadata(env.path("target/data"))
        .unwrap()
        .is_dir());
    assert_eq!(fs::read(env.path("target/data/file")).unwrap(), b"inside");
    assert_eq!(fs::read(env.path("target/top")).unwrap(), b"top");
    assert_eq!(fs::read(env.path("victim/top")).unwrap(), b"precious");
    assert!(!env.path("victim/file").exists());
}

#[test]
fn unreadable_directories_fail_cleanly() {
    // as root, whom permissions do not stop, the binary runs as nobody
    let env = Env::local();
    write(&env.path("src/ok/f"), b"fine");
    write(&env.path("src/locked/f"), b"hidden");
    fs::set_permissions(env.path("src/locked"), fs::Permissions::from_mode(0o000)).unwrap();
    for p in [
        env.dir.path().to_path_buf(),
        env.path("src"),
        env.path("src/ok"),
    ] {
        fs::set_permissions(&p, fs::Permissions::from_mode(0o777)).unwrap();
    }
    let bin = env.path("shale");
    fs::copy(assert_cmd::cargo::cargo_bin("shale"), &bin).unwrap();
    let mut cmd = if is_root() {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin);
        c
    } else {
        std::process::Command::new(&bin)
    };
    let out = cmd
        .arg("--pool")
        .arg(env.path("pool"))
        .args(["volume", "create", "v", "--from", &env.s("src")])
        .output()
        .unwrap();
    fs::set_permissions(env.path("src/locked"), fs::Permissions::from_mode(0o755)).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("src/locked") && err.contains("ermission denied"),
        "{err}"
    );
    assert!(!err.contains("panicked"));
}

#[test]
fn files_changing_or_vanishing_during_import_are_stored_whole_or_reported() {
    let env = Env::new();
    let versions = 8u8;
    let size = 8 << 20;
    write(&env.path("src/busy.bin"), &vec![0u8; size]);
    write(&env.path("src/flicker.bin"), &vec![0u8; 1000]);
    write(&env.path("src/calm.bin"), b"calm");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, busy, flicker) = (
            stop.clone(),
            env.path("src/busy.bin"),
            env.path("src/flicker.bin"),
        );
        std::thread::spawn(move || {
            let mut i = 0u8;
            while !stop.load(Ordering::Relaxed) {
                i = (i + 1) % versions;
                // rewrite in place, in pieces, so readers can see a torn file
                use std::io::{Seek, Write};
                let mut f = fs::OpenOptions::new().write(true).open(&busy).unwrap();
                for _ in 0..8 {
                    f.write_all(&vec![i; size / 8]).unwrap();
                }
                f.rewind().unwrap();
                let _ = fs::remove_file(&flicker);
                fs::write(&flicker, vec![i; 1000]).unwrap();
            }
        })
    };
    let mut skips = 0;
    for round in 0..6 {
        let out = if round == 0 {
            env.run(&["--json", "volume", "create", "v", "--from", &env.s("src")])
        } else {
            env.run(&["--json", "volume", "import", "v", &env.s("src")])
        };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        skips += report["skipped"].as_array().unwrap().len();
        let dest = env.path(&format!("out{round}"));
        env.ok(&["volume", "export", "v", dest.to_str().unwrap()]);
        assert_eq!(fs::read(dest.join("calm.bin")).unwrap(), b"calm");
        // flicker.bin is created empty, then written: both are real states
        for (name, lens) in [("busy.bin", &[size][..]), ("flicker.bin", &[0, 1000][..])] {
            if let Ok(data) = fs::read(dest.join(name)) {
                assert!(
                    lens.contains(&data.len()),
                    "{name} stored with length {}",
                    data.len()
                );
                assert!(
                    data.iter().all(|b| *b == data[0]),
                    "{name} stored torn, mixing versions"
                );
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    eprintln!("{skips} changing or vanishing files reported as skipped over 6 imports");
    let out = env.run(&["verify", "--read-data"]);
    assert!(out.status.success());
}

#[test]
fn a_full_disk_leaves_the_pool_consistent_and_the_volume_unchanged() {
    let env = Env::new();
    let mnt = env.path("small");
    let Some(_tmpfs) = Tmpfs::mount(&mnt, "6m") else {
        return;
    };
    let pool = mnt.join("pool");
    write(&env.path("small-src/a"), &vec![1u8; 10_000]);
    assert!(run_pool(
        &pool,
        &["volume", "create", "v", "--from", &env.s("small-src")]
    )
    .status
    .success());
    let id = || -> String {
        let out = run_pool(&pool, &["--json", "volume", "info", "v"]);
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let before = id();
    // 12 MB of incompressible data into a 6 MB file system
    let mut x: u64 = 88172645463325252;
    let big: Vec<u8> = (0..12 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    write(&env.path("big-src/big.bin"), &big);
    let out = run_pool(&pool, &["volume", "import", "v", &env.s("big-src")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("No space left on device"), "{err}");
    assert!(!err.contains("panicked"));
    assert_eq!(id(), before, "the volume must be unchanged");
    let out = run_pool(&pool, &["verify", "--read-data"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // gc gives the space back, and the pool works again
    assert!(run_pool(&pool, &["gc"]).status.success());
    write(&env.path("after/b"), b"after");
    assert!(run_pool(&pool, &["volume", "import", "v", &env.s("after")])
        .status
        .success());
    assert!(run_pool(&pool, &["verify", "--read-data"]).status.success());
}
