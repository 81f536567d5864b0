//! Read-only FUSE mounts of the pool, a volume and a snapshot, driven with
//! ordinary file APIs. Needs /dev/fuse and the right to mount (root in CI);
//! elsewhere the test says so and stops.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::{fuse_usable, noise, write, Env, Mounted};

#[test]
fn read_only_mounts_show_volumes_and_snapshots() {
    if !fuse_usable() {
        eprintln!("skipped: needs /dev/fuse and root");
        return;
    }
    let env = Env::new();
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    write(&env.path("src/train/cat/1.jpg"), &big);
    write(&env.path("src/labels.csv"), b"1.jpg,cat\n");
    fs::set_permissions(
        env.path("src/labels.csv"),
        fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    symlink("train/cat/1.jpg", env.path("src/link")).unwrap();
    fs::create_dir_all(env.path("src/empty")).unwrap();
    env.ok(&[
        "volume",
        "create",
        "ds",
        "--from",
        env.path("src").to_str().unwrap(),
    ]);
    env.ok(&["snapshot", "create", "ds", "v1"]);
    write(&env.path("more/new.txt"), b"new");
    env.ok(&["volume", "import", "ds", env.path("more").to_str().unwrap()]);

    // errors first: missing, non-empty, no such volume
    let out = env.run(&["mount", env.path("nope").to_str().unwrap(), "--read-only"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    write(&env.path("busy/x"), b"x");
    let out = env.run(&["mount", env.path("busy").to_str().unwrap(), "--read-only"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not empty"));
    fs::create_dir_all(env.path("mnt")).unwrap();
    let mnt = env.path("mnt");
    let m = mnt.to_str().unwrap();
    let out = env.run(&["mount", m, "--read-only", "--volume", "nope"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("volume 'nope' not found"));

    // the pool root
    env.ok(&["mount", m, "--read-only"]);
    let _guard = Mounted(mnt.clone());
    let mut names: Vec<String> = fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["ds"]);
    assert_eq!(fs::read(mnt.join("ds/train/cat/1.jpg")).unwrap(), big);
    assert_eq!(fs::read(mnt.join("ds/new.txt")).unwrap(), b"new");
    let md = fs::metadata(mnt.join("ds/labels.csv")).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o640);
    assert_eq!(
        md.mtime(),
        fs::metadata(env.path("src/labels.csv")).unwrap().mtime()
    );
    assert_eq!(
        fs::read_link(mnt.join("ds/link")).unwrap(),
        Path::new("train/cat/1.jpg")
    );
    assert!(fs::read_dir(mnt.join("ds/empty")).unwrap().next().is_none());
    // .snapshot: hidden from listings, there by name, read-only
    let listed: Vec<String> = fs::read_dir(mnt.join("ds"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(!listed.contains(&".snapshot".to_string()), "{listed:?}");
    let snaps: Vec<String> = fs::read_dir(mnt.join("ds/.snapshot"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(snaps, ["v1"]);
    assert!(!mnt.join("ds/.snapshot/v1/new.txt").exists());
    assert_eq!(
        fs::read(mnt.join("ds/.snapshot/v1/labels.csv")).unwrap(),
        b"1.jpg,cat\n"
    );
    // writes are refused with EROFS
    let err = fs::write(mnt.join("ds/new.txt"), b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    let err = fs::create_dir(mnt.join("ds/newdir")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    // (the kernel opens files without asking the mount where it can, so an
    // open for appending may succeed; its first write fails)
    let err = fs::OpenOptions::new()
        .append(true)
        .open(mnt.join("ds/.snapshot/v1/labels.csv"))
        .and_then(|mut f| f.write_all(b"x"))
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    // changes made by other processes show at once: a restore, a new snapshot
    env.ok(&["snapshot", "restore", "ds", "v1"]);
    env.ok(&["snapshot", "create", "ds", "v2"]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(
        !mnt.join("ds/new.txt").exists(),
        "the restore is not visible"
    );
    assert!(mnt.join("ds/.snapshot/v2/labels.csv").exists());
    // a second mount on the same point is refused
    let out = env.run(&["mount", m, "--read-only"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("already a mount point"));
    env.ok(&["unmount", m]);
    assert!(fs::read_dir(&mnt).unwrap().next().is_none());
    let out = env.run(&["unmount", m]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not mounted"));

    // one snapshot alone, in the foreground (as in a container)
    let mut server = env
        .command()
        .args([
            "mount",
            m,
            "--read-only",
            "--foreground",
            "--volume",
            "ds@v1",
        ])
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !mnt.join("labels.csv").exists() && start.elapsed().as_secs() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(fs::read(mnt.join("labels.csv")).unwrap(), b"1.jpg,cat\n");
    assert!(
        !mnt.join(".snapshot").exists(),
        "a snapshot has no .snapshot"
    );
    let mut f = fs::File::open(mnt.join("train/cat/1.jpg")).unwrap();
    let mut back = Vec::new();
    std::io::Read::read_to_end(&mut f, &mut back).unwrap();
    assert_eq!(back, big);
    drop(f);
    let _ = std::io::stdout().flush();
    env.ok(&["unmount", m]);
    assert!(server.wait().unwrap().success());

    // a server killed with SIGKILL leaves a stale mount: named, and cleaned by unmount
    let mut server = env
        .command()
        .args(["mount", m, "--read-only", "--foreground"])
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !mnt.join("ds").exists() && start.elapsed().as_secs() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    server.kill().unwrap();
    server.wait().unwrap();
    let out = env.run(&["mount", m, "--read-only"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is a stale mount"), "{err}");
    env.ok(&["unmount", m]);
    assert!(fs::read_dir(&mnt).unwrap().next().is_none());
}

#[test]
fn a_large_directory_lists_every_entry_once_with_its_attributes() {
    if !fuse_usable() {
        eprintln!("skipped: needs /dev/fuse and root");
        return;
    }
    let env = Env::new();
    // Far more entries than one reply, or one batch of names, holds.
    const N: usize = 3000;
    for i in 0..N {
        write(&env.path(&format!("src/f-{i:05}")), &vec![b'x'; i % 7]);
    }
    env.ok(&[
        "volume",
        "create",
        "wide",
        "--from",
        env.path("src").to_str().unwrap(),
    ]);
    fs::create_dir_all(env.path("mnt")).unwrap();
    let mnt = env.path("mnt");
    env.ok(&["mount", mnt.to_str().unwrap(), "--volume", "wide"]);
    let _guard = Mounted(mnt.clone());
    let mut seen: Vec<(String, u64)> = fs::read_dir(&mnt)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    seen.sort();
    let want: Vec<(String, u64)> = (0..N)
        .map(|i| (format!("f-{i:05}"), (i % 7) as u64))
        .collect();
    assert_eq!(seen, want);
}

#[test]
fn a_damaged_chunk_reads_as_an_io_error_never_as_wrong_bytes() {
    if !fuse_usable() {
        eprintln!("skipped: needs /dev/fuse and root");
        return;
    }
    let env = Env::new();
    // Larger than the largest chunk (4 MiB where `pool init` chose 1 MiB
    // chunks), so that the damage is in another chunk than the start.
    let data = common::noise(3, 12_000_000);
    write(&env.path("src/bad.bin"), &data);
    write(&env.path("src/good.txt"), b"good");
    env.ok(&["volume", "create", "ds", "--from", &env.s("src")]);
    // In an encrypted pool, whose packs show no plaintext, the byte at
    // 11/12 of the largest pack lies as far into the file.
    let (pack, at) = if env.is_encrypted() {
        let pack = env
            .pack_keys()
            .into_iter()
            .max_by_key(|k| env.read_object(k).len())
            .unwrap();
        let at = env.read_object(&pack).len() / 12 * 11;
        (pack, at)
    } else {
        let needle = &data[11_000_000..11_000_032];
        let pack = env
            .pack_keys()
            .into_iter()
            .find(|k| env.read_object(k).windows(32).any(|w| w == needle))
            .unwrap();
        let at = env.read_object(&pack).windows(32).position(|w| w == needle);
        (pack, at.unwrap() + 7)
    };
    let mut bytes = env.read_object(&pack);
    bytes[at] ^= 0x01;
    env.write_object(&pack, &bytes);

    fs::create_dir_all(env.path("mnt")).unwrap();
    let m = env.s("mnt");
    env.ok(&["mount", &m, "--volume", "ds", "--read-only"]);
    let _guard = Mounted(env.path("mnt"));
    assert_eq!(fs::read(env.path("mnt/good.txt")).unwrap(), b"good");
    for _ in 0..2 {
        let e = fs::read(env.path("mnt/bad.bin")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    }
    // The chunks before the damaged one still read.
    let mut f = fs::File::open(env.path("mnt/bad.bin")).unwrap();
    let mut head = vec![0u8; 100_000];
    std::io::Read::read_exact(&mut f, &mut head).unwrap();
    assert_eq!(head, data[..100_000]);
    drop(f);
    env.ok(&["unmount", &m]);
    let log = fs::read_to_string(env.pool().join("mount.log")).unwrap();
    let why = if env.is_encrypted() {
        "does not authenticate"
    } else {
        "does not match its hash"
    };
    assert!(log.contains(why), "{log}");
}

#[test]
fn ioctls_are_refused_without_filling_the_log() {
    if !fuse_usable() {
        eprintln!("skipped: needs /dev/fuse and root");
        return;
    }
    use std::io::IsTerminal;
    let env = Env::new();
    write(&env.path("src/a.txt"), b"a");
    env.ok(&["volume", "create", "ds", "--from", &env.s("src")]);
    fs::create_dir_all(env.path("mnt")).unwrap();
    let m = env.s("mnt");
    env.ok(&["mount", &m, "--volume", "ds"]);
    let _guard = Mounted(env.path("mnt"));
    // `isatty`, as Python's `open()` asks of every file: an `ioctl` the
    // kernel hands to the server each time.
    for _ in 0..3 {
        let f = fs::File::open(env.path("mnt/a.txt")).unwrap();
        assert!(!f.is_terminal());
    }
    env.ok(&["unmount", &m]);
    let log = fs::read_to_string(env.pool().join("mount.log")).unwrap();
    assert!(!log.contains("ioctl"), "{log}");
}

#[test]
fn unmount_leaves_alone_what_shale_did_not_mount() {
    let env = Env::new();
    let Some(_tmpfs) = common::Tmpfs::mount(&env.path("other"), "1m") else {
        return;
    };
    let out = env.run(&["unmount", &env.s("other")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("is not a Shale mount (it is tmpfs"), "{err}");
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(info.contains(&format!(" {} ", env.s("other"))), "unmounted");
}

#[test]
fn what_a_mount_shows_is_not_deleted_under_it() {
    if !fuse_usable() {
        eprintln!("skipped: needs /dev/fuse and root");
        return;
    }
    let env = Env::new();
    write(&env.path("src/a.bin"), &common::noise(5, 300_000));
    env.ok(&["volume", "create", "v", "--from", &env.s("src")]);
    env.ok(&["snapshot", "create", "v", "s1"]);
    fs::create_dir_all(env.path("mnt")).unwrap();
    let m = env.s("mnt");
    let refused = |args: &[&str], what: &str| {
        let out = env.run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            err.contains(&format!("{what} is mounted at {m}: unmount it first")),
            "{err}"
        );
    };

    let said = env.ok(&["mount", &m, "--volume", "v@s1"]);
    assert!(said.contains("read-only"), "{said}");
    let guard = Mounted(env.path("mnt"));
    refused(&["snapshot", "delete", "v", "s1"], "snapshot 'v@s1'");
    refused(&["volume", "delete", "v"], "volume 'v'");
    env.ok(&["gc"]);
    assert_eq!(
        fs::read(env.path("mnt/a.bin")).unwrap(),
        common::noise(5, 300_000)
    );
    env.ok(&["unmount", &m]);
    drop(guard);

    env.ok(&["mount", &m, "--volume", "v"]);
    let guard = Mounted(env.path("mnt"));
    refused(&["volume", "delete", "v"], "volume 'v'");
    // Its snapshots are not what it shows: they go.
    env.ok(&["snapshot", "delete", "v", "s1"]);
    env.ok(&["unmount", &m]);
    drop(guard);

    // In a mount of the whole pool, a volume is one directory of many: it
    // goes, and its directory with it.
    env.ok(&["mount", &m]);
    let _guard = Mounted(env.path("mnt"));
    env.ok(&["volume", "delete", "v"]);
    let start = std::time::Instant::now();
    while env.path("mnt/v").exists() && start.elapsed().as_secs() < 5 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!env.path("mnt/v").exists());
    env.ok(&["unmount", &m]);
    assert!(
        fs::read_dir(env.pool().join("mounts"))
            .unwrap()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().ends_with(".shows")),
        "the records of ended mounts are removed"
    );
}

/// `fusermount3 -u` returns once the kernel lets go; the server then
/// commits and exits. A mount made at the same place meanwhile must
/// outlive it (fuser unmounted its mount point by path as its session
/// was dropped, taking the new mount with it).
#[test]
fn a_mount_made_again_at_once_outlives_the_server_before() {
    if !fuse_usable() {
        eprintln!("skipped: needs /dev/fuse and root");
        return;
    }
    let env = Env::new();
    write(&env.path("src/kept.txt"), b"kept");
    env.ok(&["volume", "create", "ws", "--from", &env.s("src")]);
    env.ok(&["snapshot", "create", "ws", "s1"]);
    fs::create_dir_all(env.path("mnt")).unwrap();
    let m = env.s("mnt");
    let (mut first, _guard) = serve_in_foreground(&env, &["--commit-interval", "3600"]);
    // Enough written that the first server's last commit takes a while.
    fs::write(env.path("mnt/big.bin"), noise(7, 96 << 20)).unwrap();
    let unmounted = Command::new("fusermount3").arg("-u").arg(&m).status();
    assert!(unmounted.unwrap().success());
    env.ok(&["mount", &m, "--volume", "ws@s1"]);
    assert!(first.wait().unwrap().success());
    assert_eq!(fs::read(env.path("mnt/kept.txt")).unwrap(), b"kept");
    assert!(!env.path("mnt/big.bin").exists(), "the snapshot is mounted");
    env.ok(&["unmount", &m]);
    let out = env.s("out");
    env.ok(&["volume", "export", "ws", &out]);
    assert_eq!(fs::read(env.path("out/big.bin")).unwrap().len(), 96 << 20);
}

/// A mount keeps a local upper file for each file over 1 MiB written since
/// its last commit. Writing more of them between two commits than the
/// server may open files must not run it out of descriptors: it lets go of
/// those of closed files and opens them again when it needs them.
#[test]
fn more_big_files_written_between_commits_than_the_server_may_open() {
    if !fuse_usable() {
        eprintln!("skipped: needs /dev/fuse and root");
        return;
    }
    let env = Env::local();
    env.ok(&["volume", "create", "ws"]);
    fs::create_dir_all(env.path("mnt")).unwrap();
    let m = env.s("mnt");
    let mut mount = env.command();
    mount.args(["mount", &m, "--volume", "ws", "--commit-interval", "3600"]);
    let limit = libc::rlimit {
        rlim_cur: 128,
        rlim_max: 128,
    };
    // SAFETY: setrlimit only reads the struct it is given; nothing else
    // runs between fork and exec.
    unsafe {
        mount.pre_exec(move || match libc::setrlimit(libc::RLIMIT_NOFILE, &limit) {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        });
    }
    assert!(mount.status().unwrap().success());
    let _guard = Mounted(env.path("mnt"));
    // 160 files of 1.1 MiB, each in an upper file until the commit; the
    // last ones written again by path (no handle the mount gave out)
    let file = |i: u64| env.path(&format!("mnt/d/f{i}.bin"));
    fs::create_dir(env.path("mnt/d")).unwrap();
    for i in 0..160u64 {
        fs::write(file(i), noise(i, 1_100_000)).unwrap();
    }
    for i in 150..160u64 {
        let mut f = fs::OpenOptions::new().append(true).open(file(i)).unwrap();
        f.write_all(b"more").unwrap();
    }
    for i in 0..160u64 {
        let mut want = noise(i, 1_100_000);
        if i >= 150 {
            want.extend_from_slice(b"more");
        }
        assert!(fs::read(file(i)).unwrap() == want, "f{i}.bin");
    }
    env.ok(&["unmount", &m]);
    let out = env.s("out");
    env.ok(&["volume", "export", "ws", &out]);
    for i in [0u64, 80, 159] {
        let got = fs::read(env.path(&format!("out/d/f{i}.bin"))).unwrap();
        assert_eq!(got.len(), 1_100_000 + if i >= 150 { 4 } else { 0 });
    }
}

/// `--threads N` serves the mount on N session threads, each reading
/// requests from its own clone of the FUSE device: several clients working
/// at once are answered by more than one of them, and every change arrives.
#[test]
fn several_session_threads_serve_clients_working_at_once() {
    if !fuse_usable() {
        eprintln!("skipped: needs /dev/fuse and root");
        return;
    }
    let env = Env::local();
    env.ok(&["volume", "create", "ws"]);
    fs::create_dir_all(env.path("mnt")).unwrap();
    let m = env.s("mnt");
    let (mut server, _guard) = serve_in_foreground(&env, &["--threads", "3"]);
    let clients: Vec<_> = (0..8u64)
        .map(|c| {
            let dir = env.path(&format!("mnt/c{c}"));
            std::thread::spawn(move || {
                fs::create_dir(&dir).unwrap();
                for i in 0..200u64 {
                    let f = dir.join(format!("f{i}"));
                    fs::write(&f, noise(c * 1000 + i, 3000)).unwrap();
                    assert!(fs::read(&f).unwrap() == noise(c * 1000 + i, 3000));
                    fs::rename(&f, dir.join(format!("g{i}"))).unwrap();
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let busy = session_threads(server.id())
        .iter()
        .filter(|switches| **switches > 10)
        .count();
    assert_eq!(session_threads(server.id()).len(), 3);
    assert!(busy >= 2, "one session thread answered everything");
    env.ok(&["unmount", &m]);
    assert!(server.wait().unwrap().success());
    let out = env.s("out");
    env.ok(&["volume", "export", "ws", &out]);
    for (c, i) in [(0u64, 0u64), (3, 117), (7, 199)] {
        let got = fs::read(env.path(&format!("out/c{c}/g{i}"))).unwrap();
        assert!(got == noise(c * 1000 + i, 3000), "c{c}/g{i}");
    }
}

/// The context switches of each FUSE session thread (`fuser-0`...) of process
/// `pid`: a thread woken for requests switches often.
fn session_threads(pid: u32) -> Vec<u64> {
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    let mut found = Vec::new();
    for task in tasks.flatten() {
        let comm = fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        // `fuser-bg` runs the session and joins the threads that serve it.
        if !comm.starts_with("fuser-") || comm.trim() == "fuser-bg" {
            continue;
        }
        let status = fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let switches = status
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum();
        found.push(switches);
    }
    found
}

/// Serves volume `ws` at `mnt` from a `shale mount --foreground` child
/// with `extra` options, once its root is there (inode 1).
fn serve_in_foreground(env: &Env, extra: &[&str]) -> (std::process::Child, Mounted) {
    let m = env.s("mnt");
    let child = env
        .command()
        .args(["mount", &m, "--volume", "ws", "--foreground"])
        .args(extra)
        .spawn()
        .unwrap();
    let guard = Mounted(env.path("mnt"));
    let start = Instant::now();
    while !fs::metadata(env.path("mnt")).is_ok_and(|m| m.ino() == 1) {
        assert!(start.elapsed() < Duration::from_secs(10), "not mounted");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, guard)
}
