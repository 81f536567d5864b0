//! Read-write mounts of live volumes, driven with ordinary file APIs:
//! every file operation, snapshots/clones/restores/imports from other
//! processes while the mount is written, and `kill -9` of the mount server.
//! Needs /dev/fuse and the right to mount (root in CI); elsewhere each test
//! says so and stops.

use std::ffi::CString;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;
use common::{fuse_usable, noise, write, Env, Mounted, Tmpfs};

fn c(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn set_xattr(p: &Path, name: &str, value: &[u8], flags: i32) -> std::io::Result<()> {
    let n = CString::new(name).unwrap();
    let rc = unsafe {
        libc::lsetxattr(
            c(p).as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn get_xattr(p: &Path, name: &str) -> std::io::Result<Vec<u8>> {
    let n = CString::new(name).unwrap();
    let mut buf = vec![0u8; 1024];
    let rc = unsafe {
        libc::lgetxattr(
            c(p).as_ptr(),
            n.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    buf.truncate(rc as usize);
    Ok(buf)
}

fn list_xattrs(p: &Path) -> Vec<String> {
    let mut buf = vec![0u8; 1024];
    let rc = unsafe { libc::llistxattr(c(p).as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(rc >= 0, "{}", std::io::Error::last_os_error());
    buf.truncate(rc as usize);
    buf.split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| String::from_utf8(n.to_vec()).unwrap())
        .collect()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn wait_for(path: &Path) {
    let start = Instant::now();
    while !path.exists() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A pool with an empty volume `ws` and an empty directory `mnt`, and that
/// directory's path; `None` (saying why) where FUSE cannot be used.
fn volume_ws_and_mount_point() -> Option<(Env, String)> {
    if !fuse_usable() {
        eprintln!("skipped: needs /dev/fuse and root");
        return None;
    }
    let env = Env::new();
    env.ok(&["volume", "create", "ws"]);
    fs::create_dir_all(env.path("mnt")).unwrap();
    let m = env.s("mnt");
    Some((env, m))
}

#[test]
fn live_volumes_take_every_file_operation() {
    if !fuse_usable() {
        eprintln!("skipped: needs /dev/fuse and root");
        return;
    }
    let env = Env::new();
    let big = noise(1, 3_000_000);
    write(&env.path("src/data/big.bin"), &big);
    write(&env.path("src/data/small.txt"), b"0123456789");
    env.ok(&["volume", "create", "ws", "--from", &env.s("src")]);
    env.ok(&["volume", "create", "capped", "--size", "1M"]);
    env.ok(&["snapshot", "create", "ws", "base"]);
    fs::create_dir_all(env.path("mnt")).unwrap();
    let m = env.s("mnt");
    env.ok(&["mount", &m]);
    let _guard = Mounted(env.path("mnt"));
    let ws = env.path("mnt/ws");

    // create, write, read back
    fs::write(ws.join("new.txt"), b"hello").unwrap();
    assert_eq!(fs::read(ws.join("new.txt")).unwrap(), b"hello");
    // files ask for 1 MiB I/O (`cp` then copies a file of up to 1 MiB in
    // with one write), committed ones as new ones
    for f in ["new.txt", "data/big.bin"] {
        assert_eq!(fs::metadata(ws.join(f)).unwrap().blksize(), 1 << 20, "{f}");
    }
    // write at an offset inside an existing (committed) file: copy-up
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(ws.join("data/big.bin"))
        .unwrap();
    f.seek(SeekFrom::Start(1_000_000)).unwrap();
    f.write_all(b"PATCHED").unwrap();
    drop(f);
    let mut want_big = big.clone();
    want_big[1_000_000..1_000_007].copy_from_slice(b"PATCHED");
    assert_eq!(fs::read(ws.join("data/big.bin")).unwrap(), want_big);
    // append
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(ws.join("data/small.txt"))
        .unwrap();
    f.write_all(b"abc").unwrap();
    drop(f);
    assert_eq!(
        fs::read(ws.join("data/small.txt")).unwrap(),
        b"0123456789abc"
    );
    // truncate, shorter and longer
    let f = fs::OpenOptions::new()
        .write(true)
        .open(ws.join("data/small.txt"))
        .unwrap();
    f.set_len(4).unwrap();
    assert_eq!(fs::read(ws.join("data/small.txt")).unwrap(), b"0123");
    f.set_len(6).unwrap();
    drop(f);
    assert_eq!(fs::read(ws.join("data/small.txt")).unwrap(), b"0123\0\0");
    // a file written in pieces grows out of memory into an upper file
    let grown = noise(3, 1_500_000);
    let mut f = fs::File::create(ws.join("grown.bin")).unwrap();
    for piece in grown.chunks(65536) {
        f.write_all(piece).unwrap();
    }
    drop(f);
    assert_eq!(fs::read(ws.join("grown.bin")).unwrap(), grown);
    fs::remove_file(ws.join("grown.bin")).unwrap();
    // read and write through one handle
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(ws.join("new.txt"))
        .unwrap();
    f.seek(SeekFrom::Start(1)).unwrap();
    f.write_all(b"EL").unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    let mut back = String::new();
    f.read_to_string(&mut back).unwrap();
    assert_eq!(back, "hELlo");
    f.sync_all().unwrap();
    drop(f);
    // mkdir, rename a file, rename a whole directory, rmdir
    fs::create_dir(ws.join("dir")).unwrap();
    fs::create_dir_all(ws.join("dir/sub/deeper")).unwrap();
    fs::write(ws.join("dir/sub/deeper/f"), b"deep").unwrap();
    fs::rename(ws.join("new.txt"), ws.join("dir/renamed.txt")).unwrap();
    assert!(!ws.join("new.txt").exists());
    fs::rename(ws.join("data"), ws.join("dir/sub/data")).unwrap();
    assert_eq!(fs::read(ws.join("dir/sub/data/big.bin")).unwrap(), want_big);
    let err = fs::rename(ws.join("dir"), ws.join("dir/sub/inside")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    let err = fs::remove_dir(ws.join("dir/sub")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTEMPTY));
    fs::create_dir(ws.join("empty")).unwrap();
    fs::remove_dir(ws.join("empty")).unwrap();
    // rename over an existing file replaces it
    fs::write(ws.join("a"), b"A").unwrap();
    fs::write(ws.join("b"), b"B").unwrap();
    fs::rename(ws.join("a"), ws.join("b")).unwrap();
    assert_eq!(fs::read(ws.join("b")).unwrap(), b"A");
    // unlink, also of a file still open
    let mut open = fs::File::open(ws.join("b")).unwrap();
    fs::remove_file(ws.join("b")).unwrap();
    assert!(!ws.join("b").exists());
    let mut s = String::new();
    open.read_to_string(&mut s).unwrap();
    assert_eq!(s, "A", "an unlinked open file stays readable");
    drop(open);
    // symlink, readlink
    symlink("dir/renamed.txt", ws.join("link")).unwrap();
    assert_eq!(
        fs::read_link(ws.join("link")).unwrap(),
        Path::new("dir/renamed.txt")
    );
    assert_eq!(fs::read(ws.join("link")).unwrap(), b"hELlo");
    // hard links share one inode
    fs::hard_link(ws.join("dir/renamed.txt"), ws.join("hard")).unwrap();
    let (a, b) = (
        fs::metadata(ws.join("hard")).unwrap(),
        fs::metadata(ws.join("dir/renamed.txt")).unwrap(),
    );
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 2));
    fs::OpenOptions::new()
        .append(true)
        .open(ws.join("hard"))
        .unwrap()
        .write_all(b"!")
        .unwrap();
    assert_eq!(fs::read(ws.join("dir/renamed.txt")).unwrap(), b"hELlo!");
    // chmod, chown, utimens
    fs::set_permissions(ws.join("hard"), fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(
        fs::metadata(ws.join("hard")).unwrap().mode() & 0o7777,
        0o600
    );
    std::os::unix::fs::chown(ws.join("hard"), Some(1234), Some(5678)).unwrap();
    let md = fs::metadata(ws.join("hard")).unwrap();
    assert_eq!((md.uid(), md.gid()), (1234, 5678));
    let when = std::time::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    fs::File::options()
        .write(true)
        .open(ws.join("hard"))
        .unwrap()
        .set_modified(when)
        .unwrap();
    assert_eq!(
        fs::metadata(ws.join("hard")).unwrap().mtime(),
        1_600_000_000
    );
    // extended attributes
    set_xattr(&ws.join("hard"), "user.origin", b"camera-7", 0).unwrap();
    set_xattr(&ws.join("dir"), "user.owner", b"team-a", 0).unwrap();
    assert_eq!(
        get_xattr(&ws.join("hard"), "user.origin").unwrap(),
        b"camera-7"
    );
    let err = set_xattr(&ws.join("hard"), "user.origin", b"x", libc::XATTR_CREATE).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EEXIST));
    set_xattr(&ws.join("hard"), "user.tmp", b"", 0).unwrap();
    assert_eq!(list_xattrs(&ws.join("hard")), ["user.origin", "user.tmp"]);
    assert_eq!(
        unsafe { libc::lremovexattr(c(&ws.join("hard")).as_ptr(), c"user.tmp".as_ptr()) },
        0
    );
    let err = get_xattr(&ws.join("hard"), "user.tmp").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENODATA));
    // statfs of a volume with a quota shows the quota; writes past it fail
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { libc::statvfs(c(&env.path("mnt/capped")).as_ptr(), &mut st) },
        0
    );
    assert_eq!(st.f_blocks * st.f_frsize, 1 << 20);
    let err = fs::write(env.path("mnt/capped/too-big"), noise(2, 2 << 20)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EDQUOT));
    // snapshots stay read-only
    let err = fs::write(ws.join(".snapshot/base/data/small.txt"), b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    let err = fs::create_dir(ws.join(".snapshot/base/x")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    assert_eq!(
        fs::read(ws.join(".snapshot/base/data/small.txt")).unwrap(),
        b"0123456789"
    );
    // a new directory at the pool root is a new volume; removing one is refused
    fs::create_dir(env.path("mnt/made-here")).unwrap();
    fs::write(env.path("mnt/made-here/f"), b"x").unwrap();
    let listed = env.ok(&["volume", "list"]);
    assert!(listed.contains("made-here"), "{listed}");
    let err = fs::remove_dir(env.path("mnt/capped")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPERM));
    // a volume's top directory: writable by all until changed; its mode,
    // owner and attributes are kept (in the catalog: its tree cannot)
    assert_eq!(fs::metadata(&ws).unwrap().mode() & 0o7777, 0o1777);
    std::os::unix::fs::chown(&ws, Some(1000), Some(100)).unwrap();
    fs::set_permissions(&ws, fs::Permissions::from_mode(0o750)).unwrap();
    set_xattr(&ws, "user.project", b"vision", 0).unwrap();

    // everything is committed by unmount, and survives it
    env.ok(&["unmount", &m]);
    let tree = |root: &Path| -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for e in walkdir(root) {
            let md = fs::symlink_metadata(&e).unwrap();
            let rel = e.strip_prefix(root).unwrap().to_string_lossy().to_string();
            let content = if md.file_type().is_symlink() {
                fs::read_link(&e).unwrap().as_os_str().as_bytes().to_vec()
            } else if md.is_file() {
                fs::read(&e).unwrap()
            } else {
                b"<dir>".to_vec()
            };
            out.push((rel, content));
        }
        out.sort();
        out
    };
    env.ok(&["volume", "export", "ws", &env.s("out")]);
    let got = tree(&env.path("out"));
    let want: Vec<(String, Vec<u8>)> = vec![
        ("dir", b"<dir>".to_vec()),
        ("dir/renamed.txt", b"hELlo!".to_vec()),
        ("dir/sub", b"<dir>".to_vec()),
        ("dir/sub/data", b"<dir>".to_vec()),
        ("dir/sub/data/big.bin", want_big.clone()),
        ("dir/sub/data/small.txt", b"0123\0\0".to_vec()),
        ("dir/sub/deeper", b"<dir>".to_vec()),
        ("dir/sub/deeper/f", b"deep".to_vec()),
        ("hard", b"hELlo!".to_vec()),
        ("link", b"dir/renamed.txt".to_vec()),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b))
    .collect();
    assert_eq!(got, want);
    env.ok(&["verify", "--read-data"]);
    // a remount shows the same, metadata and extended attributes included
    env.ok(&["mount", &m]);
    let _guard = Mounted(env.path("mnt"));
    let md = fs::metadata(ws.join("hard")).unwrap();
    assert_eq!(
        (md.mode() & 0o7777, md.uid(), md.gid(), md.mtime()),
        (0o600, 1234, 5678, 1_600_000_000)
    );
    assert_eq!(
        get_xattr(&ws.join("hard"), "user.origin").unwrap(),
        b"camera-7"
    );
    assert_eq!(get_xattr(&ws.join("dir"), "user.owner").unwrap(), b"team-a");
    assert_eq!(fs::read(env.path("mnt/made-here/f")).unwrap(), b"x");
    let md = fs::metadata(&ws).unwrap();
    assert_eq!((md.mode() & 0o7777, md.uid(), md.gid()), (0o750, 1000, 100));
    assert_eq!(get_xattr(&ws, "user.project").unwrap(), b"vision");
    let md = fs::metadata(env.path("mnt/made-here")).unwrap();
    assert_eq!(
        (md.mode() & 0o7777, md.uid()),
        (0o755, 0),
        "made by root with umask 022"
    );
    // a clone takes its origin's top directory as it is
    env.ok(&["volume", "clone", "ws2", "--from", "ws"]);
    let md = fs::metadata(env.path("mnt/ws2")).unwrap();
    assert_eq!((md.mode() & 0o7777, md.uid()), (0o750, 1000));
    env.ok(&["unmount", &m]);
}

fn walkdir(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

/// Files a background writer finished (written and closed), in order.
struct Writer {
    done: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(dir: PathBuf) -> Writer {
        let done = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (d, s) = (done.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut i = 0u64;
            while !s.load(Ordering::Relaxed) {
                let name = format!("w{i:05}");
                let path = dir.join(&name);
                match fs::write(&path, noise(i, 20_000 + (i as usize % 7) * 1000)) {
                    Ok(()) => d.lock().unwrap().push(name),
                    // a restore may remove the directory under the writer
                    Err(_) => {
                        let _ = fs::create_dir_all(&dir);
                    }
                }
                i += 1;
            }
        });
        Writer {
            done,
            stop,
            thread: Some(thread),
        }
    }

    fn completed(&self) -> Vec<String> {
        self.done.lock().unwrap().clone()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn content_of(name: &str) -> Vec<u8> {
    let i: u64 = name[1..].parse().unwrap();
    noise(i, 20_000 + (i as usize % 7) * 1000)
}

#[test]
fn snapshots_of_a_large_file_edited_in_place_hold_the_edits_made_before_each() {
    let Some((env, m)) = volume_ws_and_mount_point() else {
        return;
    };
    // Committed before the mount: written in place, its upper file holds
    // only the edits, the rest read from its chunks.
    let mut model = noise(21, 6 << 20);
    write(&env.path("src/big.bin"), &model);
    env.ok(&["volume", "import", "ws", &env.s("src")]);
    env.ok(&["mount", &m, "--commit-interval", "3600"]);
    let _guard = Mounted(env.path("mnt"));
    let live = env.path("mnt/ws/big.bin");
    let file = fs::OpenOptions::new().write(true).open(&live).unwrap();
    let edit = |model: &mut Vec<u8>, at: usize, seed: u64, len: usize| {
        let data = noise(seed, len);
        file.write_all_at(&data, at as u64).unwrap();
        model[at..at + len].copy_from_slice(&data);
    };
    edit(&mut model, 1 << 20, 1, 65536);
    edit(&mut model, 5_000_000, 2, 4096);
    env.ok(&["snapshot", "create", "ws", "s1"]);
    let at_s1 = model.clone();
    // Later writes, one over an earlier edit, do not leak into s1.
    edit(&mut model, (1 << 20) + 30_000, 3, 200_000);
    edit(&mut model, 100, 4, 10);
    env.ok(&["snapshot", "create", "ws", "s2"]);
    let at_s2 = model.clone();
    edit(&mut model, 3 << 20, 5, 65536);
    drop(file);
    let read = |rel: &str| fs::read(env.path(rel)).unwrap();
    assert!(read("mnt/ws/.snapshot/s1/big.bin") == at_s1, "s1");
    assert!(read("mnt/ws/.snapshot/s2/big.bin") == at_s2, "s2");
    assert!(read("mnt/ws/big.bin") == model, "the live file");
    env.ok(&["unmount", &m]);
    env.ok(&["verify", "--read-data"]);
    env.ok(&["mount", &m]);
    assert!(read("mnt/ws/big.bin") == model, "after a remount");
    env.ok(&["unmount", &m]);
}

/// An in-place edit of a committed file is stored as deltas of the blobs
/// it changed (the chunks around it and the leaf listing the file's
/// chunks): the pool grows by about the bytes written. `gc` keeps the
/// chunks the deltas copy from once nothing else names them, and a mirror
/// receives the edited file whole.
#[test]
fn in_place_edits_grow_the_pool_by_what_they_change_and_gc_keeps_what_deltas_need() {
    let Some((env, m)) = volume_ws_and_mount_point() else {
        return;
    };
    let mut model = noise(22, 8 << 20);
    write(&env.path("src/big.bin"), &model);
    env.ok(&["volume", "import", "ws", &env.s("src")]);
    let stored = || {
        env.json(&["pool", "info"])["stored_bytes"]
            .as_u64()
            .unwrap()
    };
    let before = stored();
    env.ok(&["mount", &m, "--commit-interval", "3600"]);
    let _guard = Mounted(env.path("mnt"));
    let file = fs::OpenOptions::new()
        .write(true)
        .open(env.path("mnt/ws/big.bin"))
        .unwrap();
    for (i, at) in [1_000_000usize, 3_500_000, 7_000_000]
        .into_iter()
        .enumerate()
    {
        let data = noise(30 + i as u64, 65536);
        file.write_all_at(&data, at as u64).unwrap();
        model[at..at + data.len()].copy_from_slice(&data);
    }
    drop(file);
    env.ok(&["unmount", &m]);
    // Stored whole, the chunks around three 64 KiB edits took 909 KiB
    // here (measured before deltas).
    let grown = stored() - before;
    assert!(grown < 2 * 3 * 65536, "the pool grew by {grown} bytes");
    // The chunks the edits replaced are named by the deltas alone now.
    env.ok(&["gc"]);
    env.ok(&["verify"]);
    env.ok(&["verify", "--read-data"]);
    env.ok(&["mount", &m]);
    assert!(
        fs::read(env.path("mnt/ws/big.bin")).unwrap() == model,
        "after gc"
    );
    env.ok(&["unmount", &m]);
    if env.pool_arg() == env.path("pool").as_os_str() {
        let copy = Env::local();
        copy.ok(&["pool", "init"]);
        let source = format!("{}::ws", env.s("pool"));
        copy.ok(&["mirror", "create", "m", "--source", &source]);
        copy.ok(&["verify", "--read-data"]);
    }
}

#[test]
fn snapshot_clone_restore_and_import_while_written() {
    let Some((env, m)) = volume_ws_and_mount_point() else {
        return;
    };
    // a long commit interval: only the protocol makes writes visible
    env.ok(&["mount", &m, "--commit-interval", "3600"]);
    let _guard = Mounted(env.path("mnt"));
    let ws = env.path("mnt/ws");
    fs::create_dir(ws.join("out")).unwrap();
    fs::write(ws.join("marker"), b"before").unwrap();
    let writer = Writer::start(ws.join("out"));
    std::thread::sleep(Duration::from_millis(300));

    // a snapshot holds every write completed before the command began
    let before = writer.completed();
    assert!(!before.is_empty());
    env.ok(&["snapshot", "create", "ws", "s1"]);
    let snap = ws.join(".snapshot/s1/out");
    for name in &before {
        assert!(
            fs::read(snap.join(name)).unwrap() == content_of(name),
            "{name} missing or torn in the snapshot"
        );
    }
    // the snapshot is one instant: every file in it is what was written to
    // it by then, so all are whole but the one being written (a prefix)
    let mut partial = 0;
    for name in names(&snap) {
        let (got, full) = (fs::read(snap.join(&name)).unwrap(), content_of(&name));
        assert!(full.starts_with(&got), "{name} is not a state it ever had");
        if got.len() < full.len() {
            partial += 1;
        }
    }
    assert!(partial <= 1, "{partial} files caught mid-write");
    assert_eq!(fs::read(ws.join(".snapshot/s1/marker")).unwrap(), b"before");

    // a clone of the live volume appears at the pool root at once
    let before = writer.completed();
    env.ok(&["volume", "clone", "exp", "--from", "ws"]);
    for name in &before {
        assert!(
            fs::read(env.path("mnt/exp/out").join(name)).unwrap() == content_of(name),
            "{name} missing or torn in the clone"
        );
    }
    // diff and export from other processes see completed writes too
    let before = writer.completed();
    env.ok(&["volume", "export", "ws", &env.s("exported")]);
    for name in &before {
        assert!(env.path("exported/out").join(name).exists(), "{name}");
    }
    let d = env.ok(&["diff", "ws@s1", "ws"]);
    assert!(d.contains("out/"), "{d}");

    // a restore is seen by the mount at once, names the kernel was told
    // are absent too
    fs::write(ws.join("marker"), b"after").unwrap();
    fs::rename(ws.join("marker"), ws.join("marker.moved")).unwrap();
    assert!(!ws.join("marker").exists());
    env.ok(&["snapshot", "restore", "ws", "s1"]);
    assert_eq!(fs::read(ws.join("marker")).unwrap(), b"before");
    assert!(!ws.join("marker.moved").exists());
    drop(writer);
    for name in names(&ws.join("out")) {
        let (got, full) = (
            fs::read(ws.join("out").join(&name)).unwrap(),
            content_of(&name),
        );
        assert!(full.starts_with(&got), "{name} after the restore");
    }

    // an import into the mounted volume replaces what the mount shows
    write(&env.path("src/imported.txt"), b"from import");
    assert!(!ws.join("incoming").exists());
    env.ok(&["volume", "import", "ws", &env.s("src"), "--to", "incoming"]);
    assert_eq!(
        fs::read(ws.join("incoming/imported.txt")).unwrap(),
        b"from import"
    );
    // and the mount goes on writing on top of it
    fs::write(ws.join("incoming/mine.txt"), b"mine").unwrap();
    env.ok(&["snapshot", "create", "ws", "s2"]);
    assert_eq!(
        fs::read(ws.join(".snapshot/s2/incoming/mine.txt")).unwrap(),
        b"mine"
    );
    env.ok(&["unmount", &m]);
    env.ok(&["verify", "--read-data"]);
}

/// Each change to a live volume's directories shows in the next listing,
/// however often they were listed before: made through the mount, or by
/// another process (a restore, which replaces the volume's tree under the
/// mount). A guard for any listing the kernel or the mount keeps.
#[test]
fn listings_show_every_change() {
    let Some((env, m)) = volume_ws_and_mount_point() else {
        return;
    };
    env.ok(&["mount", &m]);
    let _guard = Mounted(env.path("mnt"));
    let ws = env.path("mnt/ws");
    fs::write(ws.join("a"), b"a").unwrap();
    fs::create_dir(ws.join("d")).unwrap();
    fs::write(ws.join("d/x"), b"x").unwrap();
    for _ in 0..2 {
        assert_eq!(names(&ws), ["a", "d"]);
        assert_eq!(names(&ws.join("d")), ["x"]);
    }
    env.ok(&["snapshot", "create", "ws", "s1"]);
    fs::write(ws.join("b"), b"b").unwrap();
    fs::remove_file(ws.join("d/x")).unwrap();
    fs::rename(ws.join("a"), ws.join("d/a")).unwrap();
    assert_eq!(names(&ws), ["b", "d"]);
    assert_eq!(names(&ws.join("d")), ["a"]);
    env.ok(&["snapshot", "restore", "ws", "s1"]);
    assert_eq!(names(&ws), ["a", "d"]);
    assert_eq!(names(&ws.join("d")), ["x"]);
    env.ok(&["unmount", &m]);
}

/// The names one `getdents64` of 4 KiB gives from open directory `dir`
/// (none at its end).
fn getdents(dir: &fs::File) -> Vec<String> {
    use std::os::fd::AsRawFd;
    let mut buf = vec![0u8; 4096];
    let n = unsafe {
        libc::syscall(
            libc::SYS_getdents64,
            dir.as_raw_fd(),
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    assert!(n >= 0, "getdents64: {}", std::io::Error::last_os_error());
    let mut out = Vec::new();
    let mut at = 0;
    // struct linux_dirent64: inode (8 bytes), offset (8), record length
    // (2), type (1), then the name, NUL-terminated.
    while at < n as usize {
        let len = u16::from_ne_bytes([buf[at + 16], buf[at + 17]]) as usize;
        let name = &buf[at + 19..at + len];
        let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
        out.push(String::from_utf8(name[..end].to_vec()).unwrap());
        at += len;
    }
    out
}

/// A directory changed while one reader lists it, and listed again from
/// the start by another in between: the first reader still lists every
/// entry that was there throughout exactly once. (Kept listings whose
/// positions were indexes failed this: a listing made again after the
/// change gave the same index to another entry; see
/// `bench/results/NOTES.md`.)
#[test]
fn a_listing_interrupted_by_changes_lists_each_lasting_entry_once() {
    let Some((env, m)) = volume_ws_and_mount_point() else {
        return;
    };
    env.ok(&["mount", &m]);
    let _guard = Mounted(env.path("mnt"));
    let dir = env.path("mnt/ws/many");
    fs::create_dir(&dir).unwrap();
    let made: Vec<String> = (0..3000).map(|i| format!("file-{i:05}")).collect();
    for name in &made {
        fs::write(dir.join(name), b"").unwrap();
    }
    assert_eq!(names(&dir), made);
    // the first reader takes a few entries (one small `getdents64`)
    let reader = fs::File::open(&dir).unwrap();
    let mut seen = getdents(&reader);
    assert!(seen.len() > 2 && seen.len() < 200, "{} entries", seen.len());
    let removed: Vec<&String> = made.iter().skip(1).step_by(7).collect();
    for name in &removed {
        fs::remove_file(dir.join(name)).unwrap();
    }
    fs::write(dir.join("added"), b"").unwrap();
    // another lists it all from the start
    assert_eq!(names(&dir).len(), made.len() - removed.len() + 1);
    loop {
        let batch = getdents(&reader);
        if batch.is_empty() {
            break;
        }
        seen.extend(batch);
    }
    drop(reader);
    for name in &made {
        let times = seen.iter().filter(|n| *n == name).count();
        if removed.contains(&name) {
            assert!(times <= 1, "{name} listed {times} times");
        } else {
            assert_eq!(times, 1, "{name} listed {times} times");
        }
    }
    env.ok(&["unmount", &m]);
}

#[test]
fn fsynced_data_survives_kill_9() {
    let Some((env, m)) = volume_ws_and_mount_point() else {
        return;
    };
    for round in 0..3u64 {
        let mut server = env
            .command()
            .args(["mount", &m, "--foreground", "--commit-interval", "3600"])
            .spawn()
            .unwrap();
        let ws = env.path("mnt/ws");
        wait_for(&ws);
        let _guard = Mounted(env.path("mnt"));
        // fsync'd: must survive
        let name = format!("synced-{round}");
        let data = noise(round, 300_000 + round as usize);
        let mut f = fs::File::create(ws.join(&name)).unwrap();
        f.write_all(&data).unwrap();
        f.sync_all().unwrap();
        drop(f);
        fs::create_dir_all(ws.join("dir")).unwrap();
        fs::rename(ws.join(&name), ws.join("dir").join(&name)).unwrap();
        fs::File::open(ws.join("dir")).unwrap().sync_all().unwrap();
        // not fsync'd: may be lost
        fs::write(ws.join(format!("unsynced-{round}")), b"maybe").unwrap();
        server.kill().unwrap();
        server.wait().unwrap();
        env.ok(&["unmount", &m]);
        env.ok(&["verify"]);
        env.ok(&["volume", "export", "ws", &env.s(&format!("out{round}"))]);
        for r in 0..=round {
            let name = format!("synced-{r}");
            assert_eq!(
                fs::read(env.path(&format!("out{round}/dir/{name}"))).unwrap(),
                noise(r, 300_000 + r as usize),
                "round {round}: {name} lost"
            );
        }
    }
    // the upper files of killed servers are cleaned up by the next mount
    env.ok(&["mount", &m]);
    let _guard = Mounted(env.path("mnt"));
    let uppers = fs::read_dir(env.pool().join("upper")).unwrap().count();
    assert_eq!(
        uppers, 1,
        "only the running mount's upper directory is left"
    );
    env.ok(&["unmount", &m]);
    env.ok(&["verify", "--read-data"]);
}

#[test]
fn one_mount_writes_a_volume_and_others_follow_it() {
    if !fuse_usable() {
        eprintln!("skipped: needs /dev/fuse and root");
        return;
    }
    let env = Env::new();
    env.ok(&["volume", "create", "ws"]);
    for d in ["a", "b", "c"] {
        fs::create_dir_all(env.path(d)).unwrap();
    }
    let (a, b, c) = (env.s("a"), env.s("b"), env.s("c"));
    env.ok(&["mount", &a, "--commit-interval", "3600"]);
    let _ga = Mounted(env.path("a"));
    fs::write(env.path("a/ws/first"), b"1").unwrap();
    // a second read-write pool mount shows the volume, read-only
    env.ok(&["mount", &b, "--commit-interval", "3600"]);
    let _gb = Mounted(env.path("b"));
    let err = fs::write(env.path("b/ws/other"), b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    // a single-volume read-write mount of it is refused, naming the writer
    let out = env.run(&["mount", &c, "--volume", "ws"]);
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && msg.contains("mounted read-write by process"),
        "{msg}"
    );
    // what the writer commits shows in the other mount at once (an fsync
    // goes to the writer's intent log; a snapshot commits)
    assert!(!env.path("b/ws/first").exists(), "not committed yet");
    let f = fs::File::open(env.path("a/ws/first")).unwrap();
    f.sync_all().unwrap();
    drop(f);
    assert!(!env.path("b/ws/first").exists(), "fsync does not commit");
    env.ok(&["snapshot", "create", "ws", "now"]);
    let start = Instant::now();
    while !env.path("b/ws/first").exists() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(fs::read(env.path("b/ws/first")).unwrap(), b"1");
    // once the writer is gone, the other mount may write
    env.ok(&["unmount", &a]);
    fs::write(env.path("b/ws/second"), b"2").unwrap();
    env.ok(&["unmount", &b]);
    env.ok(&["volume", "export", "ws", &env.s("out")]);
    assert_eq!(names(&env.path("out")), ["first", "second"]);
}

/// A pool whose path is too long for a Unix socket path still coordinates
/// with its mounts (through an abstract socket).
#[test]
fn pools_in_deep_directories_coordinate_too() {
    if !fuse_usable() {
        eprintln!("skipped: needs /dev/fuse and root");
        return;
    }
    let env = Env::new();
    let deep = env.path(&"d".repeat(120)).join("pool");
    let shale = |args: &[&str]| {
        let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("shale"))
            .env_remove("SHALE_POOL")
            .arg("--pool")
            .arg(&deep)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    shale(&["volume", "create", "v"]);
    fs::create_dir_all(env.path("mnt")).unwrap();
    shale(&["mount", &env.s("mnt"), "--commit-interval", "3600"]);
    let _guard = Mounted(env.path("mnt"));
    fs::write(env.path("mnt/v/f"), b"deep").unwrap();
    shale(&["snapshot", "create", "v", "s"]);
    assert_eq!(fs::read(env.path("mnt/v/.snapshot/s/f")).unwrap(), b"deep");
    shale(&["unmount", &env.s("mnt")]);
}

/// The files in the mount's upper directory (local copies of files being
/// written).
fn upper_files(pool: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in fs::read_dir(pool.join("upper")).unwrap() {
        for f in fs::read_dir(dir.unwrap().path()).unwrap() {
            files.push(f.unwrap().path());
        }
    }
    files
}

#[test]
fn a_file_reopened_for_writing_keeps_its_local_copy_while_written() {
    if !fuse_usable() {
        eprintln!("skipped: needs /dev/fuse and root");
        return;
    }
    // The kernel opens existing files without asking the mount, so the
    // mount cannot count their handles: a file written that way keeps its
    // local copy across commits while writes keep coming (copying a big
    // file up again after every commit would cost the whole file each
    // time), and drops it once a commit interval passes without a write.
    let env = Env::local();
    let big = noise(7, 3_000_000);
    write(&env.path("src/big.bin"), &big);
    env.ok(&["volume", "create", "ws", "--from", &env.s("src")]);
    fs::create_dir_all(env.path("mnt")).unwrap();
    env.ok(&["mount", &env.s("mnt"), "--commit-interval", "2"]);
    let guard = Mounted(env.path("mnt"));
    let path = env.path("mnt/ws/big.bin");
    let mut want = big.clone();
    let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < Duration::from_secs(5) {
        if i > 0 {
            assert_eq!(
                upper_files(&env.pool()).len(),
                1,
                "the file being written keeps its local copy"
            );
        }
        let at = 1000 * i;
        f.write_all_at(b"WRITTEN", at as u64).unwrap();
        want[at..at + 7].copy_from_slice(b"WRITTEN");
        i += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(f);
    assert_eq!(fs::read(&path).unwrap(), want);
    // appends to an existing file land at its end
    let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(b"tail").unwrap();
    drop(f);
    want.extend_from_slice(b"tail");
    assert_eq!(fs::read(&path).unwrap(), want);
    // quiet and closed: the local copy goes, the file reads from the pool
    let start = Instant::now();
    while !upper_files(&env.pool()).is_empty() && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(upper_files(&env.pool()).is_empty(), "local copy dropped");
    assert_eq!(fs::read(&path).unwrap(), want);
    env.ok(&["unmount", &env.s("mnt")]);
    drop(guard);
    env.ok(&["volume", "export", "ws", &env.s("out")]);
    assert_eq!(fs::read(env.path("out/big.bin")).unwrap(), want);
}

#[test]
fn files_created_once_the_kernel_opens_alone_let_their_local_copies_go() {
    if !fuse_usable() {
        eprintln!("skipped: needs /dev/fuse and root");
        return;
    }
    // Reading a file makes the kernel open files without asking the mount;
    // it then sends no RELEASE for files created through it either, and
    // their local copies must still go once they are committed and quiet
    // (they stayed until the server ran out of memory and descriptors).
    let env = Env::local();
    write(&env.path("src/old.txt"), b"old");
    env.ok(&["volume", "create", "ws", "--from", &env.s("src")]);
    fs::create_dir_all(env.path("mnt")).unwrap();
    env.ok(&["mount", &env.s("mnt"), "--commit-interval", "1"]);
    let guard = Mounted(env.path("mnt"));
    assert_eq!(fs::read(env.path("mnt/ws/old.txt")).unwrap(), b"old");
    for i in 0..5u64 {
        write(
            &env.path(&format!("mnt/ws/new{i}.bin")),
            &noise(i, 1_500_000),
        );
    }
    assert_eq!(upper_files(&env.pool()).len(), 5);
    let start = Instant::now();
    while !upper_files(&env.pool()).is_empty() && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(upper_files(&env.pool()).is_empty(), "local copies dropped");
    for i in 0..5u64 {
        let got = fs::read(env.path(&format!("mnt/ws/new{i}.bin"))).unwrap();
        assert!(got == noise(i, 1_500_000), "new{i}.bin");
    }
    env.ok(&["unmount", &env.s("mnt")]);
    drop(guard);
}

/// Waits (up to a minute) until the file system holding `dir` has `bytes`
/// free.
fn wait_for_free_space(dir: &Path, bytes: u64) {
    let start = Instant::now();
    loop {
        // SAFETY: a valid C string and a zeroed statvfs to fill.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statvfs(c(dir).as_ptr(), &mut st) }, 0);
        if st.f_bavail as u64 * st.f_frsize as u64 >= bytes {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{} did not get {bytes} bytes free",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Fills the volume's disk through the mount with file `at`, until a
/// write or the final `fsync` fails; returns that error.
fn fill(at: &Path) -> std::io::Error {
    let block = noise(7, 1 << 20);
    let mut f = fs::File::create(at).unwrap();
    for _ in 0..200 {
        if let Err(e) = f.write_all(&block) {
            return e;
        }
    }
    f.sync_all()
        .expect_err("the disk is smaller than what was written")
}

#[test]
fn a_full_disk_under_a_mount_is_reported_and_nothing_committed_is_lost() {
    if !fuse_usable() {
        eprintln!("skipped: needs /dev/fuse and root");
        return;
    }
    let env = Env::local();
    let Some(_tmpfs) = Tmpfs::mount(&env.path("pool"), "24m") else {
        return;
    };
    env.ok(&["volume", "create", "ws"]);
    fs::create_dir_all(env.path("mnt")).unwrap();
    let m = env.s("mnt");
    let ws = env.path("mnt");
    // In the background, as users mount: its log is on the full disk too.
    env.ok(&["mount", &m, "--volume", "ws"]);
    let _guard = Mounted(ws.clone());
    let kept = noise(1, 4 << 20);
    let mut f = fs::File::create(ws.join("kept.bin")).unwrap();
    f.write_all(&kept).unwrap();
    f.sync_all().unwrap();
    drop(f);

    // A file larger than the disk: its writer is told the disk is full.
    let e = fill(&ws.join("big.bin"));
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
    // Small files are taken in memory; fsync says they could not be stored.
    for i in 0..10 {
        fs::write(ws.join(format!("small-{i}")), noise(10 + i, 50_000)).unwrap();
    }
    let e = fs::File::open(ws.join("small-0"))
        .unwrap()
        .sync_all()
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
    // The mount still serves, and will not unmount while that would lose
    // writes.
    assert_eq!(fs::read(ws.join("kept.bin")).unwrap(), kept);
    let out = env.run(&["unmount", &m]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("stays mounted"), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert_eq!(fs::read(ws.join("small-3")).unwrap(), noise(13, 50_000));

    // Space freed, everything written is committed and survives unmounting.
    // The mount drops a deleted file's upper file once the kernel forgets
    // the file, which it may do a little after the unlink has returned
    // (seen: the next `fsync` reached the mount first).
    fs::remove_file(ws.join("big.bin")).unwrap();
    wait_for_free_space(&env.path("pool"), 8 << 20);
    fs::File::open(ws.join("small-0"))
        .unwrap()
        .sync_all()
        .unwrap();
    env.ok(&["unmount", &m]);
    env.ok(&["verify", "--read-data"]);
    env.ok(&["mount", &m, "--volume", "ws"]);
    assert_eq!(fs::read(ws.join("kept.bin")).unwrap(), kept);
    for i in 0..10 {
        assert_eq!(
            fs::read(ws.join(format!("small-{i}"))).unwrap(),
            noise(10 + i, 50_000)
        );
    }

    // Forced while full, the unmount says what was lost.
    let _ = fill(&ws.join("big.bin"));
    fs::write(ws.join("lost"), b"lost").unwrap();
    let out = env.run(&["unmount", &m, "--force"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("were lost"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    env.ok(&["verify", "--read-data"]);
    env.ok(&["mount", &m, "--volume", "ws"]);
    assert!(!ws.join("lost").exists());
    assert_eq!(fs::read(ws.join("small-9")).unwrap(), noise(19, 50_000));
    env.ok(&["unmount", &m]);
}

#[test]
fn a_mount_stopped_by_a_signal_commits_and_unmounts() {
    let Some((env, m)) = volume_ws_and_mount_point() else {
        return;
    };
    for (round, signal) in [libc::SIGTERM, libc::SIGINT].into_iter().enumerate() {
        let mut server = env
            .command()
            .args(["mount", &m, "--volume", "ws", "--foreground"])
            .args(["--commit-interval", "3600"])
            .spawn()
            .unwrap();
        let _guard = Mounted(env.path("mnt"));
        let name = format!("written-{round}");
        wait_for(&env.path("mnt/.snapshot"));
        fs::write(env.path("mnt").join(&name), b"not fsync'd").unwrap();
        // A file still open when the signal comes keeps reading.
        let mut open = fs::File::open(env.path("mnt").join(&name)).unwrap();
        unsafe { libc::kill(server.id() as i32, signal) };
        let start = Instant::now();
        while fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(&format!(" {m} "))
        {
            assert!(start.elapsed() < Duration::from_secs(10), "still mounted");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut text = String::new();
        open.read_to_string(&mut text).unwrap();
        assert_eq!(text, "not fsync'd");
        drop(open);
        assert!(server.wait().unwrap().success(), "signal {signal}");
        let out = env.s(&format!("out-{round}"));
        env.ok(&["volume", "export", "ws", &out]);
        assert_eq!(
            fs::read(env.path(&format!("out-{round}")).join(&name)).unwrap(),
            b"not fsync'd"
        );
    }
    env.ok(&["verify", "--read-data"]);
}

/// A valid `security.capability` value (VFS_CAP_REVISION_2, one permitted
/// capability), which the kernel checks before passing it on.
const CAPABILITY: [u8; 20] = [0, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

#[test]
fn files_created_through_a_mount_are_written_coherently_and_lose_privileges() {
    // Where the kernel allows it, a file created through the mount is
    // written without the kernel's page cache (see `ShaleFs::create`): the
    // kernel then leaves clearing setuid bits and capabilities to the
    // mount, and other opens of the file must still see every write.
    let Some((env, m)) = volume_ws_and_mount_point() else {
        return;
    };
    env.ok(&["mount", &m, "--volume", "ws"]);
    let _guard = Mounted(env.path("mnt"));
    let mnt = env.path("mnt");

    // Another open of the file, with the file's pages cached, sees writes
    // made through the creating handle afterwards.
    let path = mnt.join("shared.bin");
    let mut writer = fs::File::create(&path).unwrap();
    writer.write_all(&[b'a'; 8192]).unwrap();
    let reader = fs::File::open(&path).unwrap();
    let mut buf = vec![0u8; 8192];
    reader.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(buf, [b'a'; 8192]);
    writer.write_all_at(b"bbbb", 4096).unwrap();
    reader.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf[4096..4100], b"bbbb");
    assert_eq!(buf.iter().filter(|b| **b == b'a').count(), 8188);
    drop((writer, reader));

    // A new file can be mapped shared and written through the map.
    let path = mnt.join("mapped.bin");
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    f.set_len(8192).unwrap();
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            8192,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            std::os::fd::AsRawFd::as_raw_fd(&f),
            0,
        );
        assert_ne!(p, libc::MAP_FAILED, "{}", std::io::Error::last_os_error());
        std::ptr::copy_nonoverlapping(b"mapped".as_ptr(), p.cast::<u8>().add(5000), 6);
        assert_eq!(libc::msync(p, 8192, libc::MS_SYNC), 0);
        libc::munmap(p, 8192);
    }
    drop(f);
    assert_eq!(&fs::read(&path).unwrap()[5000..5006], b"mapped");
    // ... and so SQLite in WAL mode (its `-shm` file is created and
    // mapped shared) works in a new database.
    let db = rusqlite::Connection::open(mnt.join("new.db")).unwrap();
    let mode: String = db
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    db.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1), (2), (3);")
        .unwrap();
    drop(db);
    let db = rusqlite::Connection::open(mnt.join("new.db")).unwrap();
    let n: i64 = db
        .query_row("SELECT sum(x) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 6);
    drop(db);

    // A write takes a file's capabilities away, whoever writes...
    let path = mnt.join("tool");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o4755)
        .open(&path)
        .unwrap();
    set_xattr(&path, "security.capability", &CAPABILITY, 0).unwrap();
    f.write_all(b"#!/bin/sh\n").unwrap();
    drop(f);
    let e = get_xattr(&path, "security.capability").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENODATA));
    // ... and root (CAP_FSETID) keeps the setuid bit,
    assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o4755);
    // but a user without it loses setuid, and setgid on a file its group
    // may run, at once (as the kernel's attributes show).
    fs::create_dir(mnt.join("tmp")).unwrap();
    fs::set_permissions(mnt.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    let path = mnt.join("tmp/theirs");
    let script = "import os, sys\n\
        os.umask(0)\n\
        fd = os.open(sys.argv[1], os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o6775)\n\
        print(oct(os.fstat(fd).st_mode & 0o7777))\n\
        os.write(fd, b'data')\n\
        os.close(fd)\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0o6775");
    let meta = fs::metadata(&path).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o0775);
    assert_eq!(fs::read(&path).unwrap(), b"data");
    env.ok(&["unmount", &m]);
    // What was written is what was committed.
    env.ok(&["volume", "export", "ws", &env.s("out")]);
    assert_eq!(
        fs::metadata(env.path("out/tmp/theirs")).unwrap().mode() & 0o7777,
        0o0775
    );
    assert_eq!(
        &fs::read(env.path("out/shared.bin")).unwrap()[4096..4100],
        b"bbbb"
    );
}

/// Reads `path` as user `uid` (through `setpriv`); whether it worked.
fn reads_as(uid: u32, path: &Path) -> bool {
    std::process::Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .args(["--clear-groups", "cat"])
        .arg(path)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The mount is the one door to a volume's files for other users: a 0600
/// file of one user is refused to another, a 0644 one is readable, a
/// snapshot keeps the modes; the pool's own files stay closed to them,
/// and `pool fix-permissions` run while the mount writes loses nothing.
#[test]
fn other_users_reach_files_only_through_the_mount_by_their_modes() {
    let Some((env, m)) = volume_ws_and_mount_point() else {
        return;
    };
    env.ok(&["mount", &m, "--volume", "ws"]);
    let _guard = Mounted(env.path("mnt"));
    let mnt = env.path("mnt");
    // The volume's top is 1777: any user may create there.
    for (name, mode) in [("private", 0o600), ("shared", 0o644)] {
        fs::write(mnt.join(name), name).unwrap();
        fs::set_permissions(mnt.join(name), fs::Permissions::from_mode(mode)).unwrap();
        std::os::unix::fs::chown(mnt.join(name), Some(1000), Some(1000)).unwrap();
    }
    let nobody = 65534;
    assert!(
        !reads_as(nobody, &mnt.join("private")),
        "0600 file read by another user"
    );
    assert!(reads_as(nobody, &mnt.join("shared")));
    assert!(reads_as(1000, &mnt.join("private")), "its owner reads it");
    env.ok(&["snapshot", "create", "ws", "s1"]);
    let snap = mnt.join(".snapshot/s1");
    assert!(!reads_as(nobody, &snap.join("private")));
    assert!(reads_as(nobody, &snap.join("shared")));
    assert!(!reads_as(nobody, &env.pool().join("catalog.db")));

    // Loosen the pool's files, then tighten them while a writer goes on.
    let loosen = std::process::Command::new("chmod")
        .args(["-R", "go+rX"])
        .arg(env.pool())
        .status();
    assert!(loosen.unwrap().success());
    let writer = {
        let mnt = mnt.clone();
        std::thread::spawn(move || {
            for i in 0..200 {
                fs::write(mnt.join(format!("w{i:03}")), content_of(&format!("w{i}"))).unwrap();
            }
        })
    };
    env.ok(&["pool", "fix-permissions"]);
    writer.join().unwrap();
    env.ok(&["unmount", &m]);
    assert!(!reads_as(nobody, &env.pool().join("catalog.db")));
    for i in [0, 99, 199] {
        let got = env.run(&[
            "volume",
            "export",
            "ws",
            &env.s(&format!("out{i}")),
            "--path",
            &format!("w{i:03}"),
        ]);
        assert!(
            got.status.success(),
            "{}",
            String::from_utf8_lossy(&got.stderr)
        );
        assert_eq!(
            fs::read(env.path(&format!("out{i}/w{i:03}"))).unwrap(),
            content_of(&format!("w{i}"))
        );
    }
    env.ok(&["verify", "--read-data"]);
}

/// Makes a pool (created with `init`, under umask `umask`) with a volume,
/// mounts it, and holds a file open for writing in the mount, so the pool
/// has packs, a catalog, an overlay file and a mount log; runs `check`
/// on the pool's directory while all of that exists.
fn with_a_busy_pool(env: &Env, umask: &str, init: &[&str], check: impl FnOnce(&Path)) {
    let under_umask = |args: &[&str]| env.ok_under_umask(umask, args);
    write(&env.path("src/data.bin"), &noise(7, 300_000));
    if !init.is_empty() {
        under_umask(init);
    }
    under_umask(&["volume", "create", "v", "--from", &env.s("src")]);
    fs::create_dir_all(env.path("mnt")).unwrap();
    under_umask(&["mount", &env.s("mnt"), "--volume", "v"]);
    let _guard = Mounted(env.path("mnt"));
    let mut open = fs::File::create(env.path("mnt/being-written")).unwrap();
    open.write_all(b"private words").unwrap();
    let pool = env.pool();
    assert!(pool.join("mount.log").exists());
    assert!(
        fs::read_dir(pool.join("upper")).unwrap().next().is_some(),
        "no overlay"
    );
    check(&pool);
    drop(open);
    env.ok(&["unmount", &env.s("mnt")]);
}

/// As another local user, nothing of a pool made by root can be listed or
/// read (its directory, packs, catalog, mount overlay, mount log) under
/// the default umask or umask 000; a member of the group of a pool made
/// with `--group` can, and can run commands on it, and others still
/// cannot.
#[test]
fn a_pools_files_are_closed_to_other_users_but_its_group() {
    if !fuse_usable() {
        eprintln!("skipped: needs /dev/fuse and root");
        return;
    }
    for umask in ["022", "000"] {
        let env = Env::new();
        common::open_the_way(&env);
        with_a_busy_pool(&env, umask, &[], |pool| {
            let (all, opened) = common::opened_by(common::NOBODY, &[], pool);
            assert!(all.len() >= 8, "{all:?}");
            assert!(opened.is_empty(), "umask {umask}: nobody opened {opened:?}");
        });
    }
    // A group pool: local only (an object-store pool's cache is per user).
    let env = Env::local();
    common::open_the_way(&env);
    let init = ["pool", "init", "--group", "users"];
    with_a_busy_pool(&env, "022", &init, |pool| {
        let gid = fs::metadata(pool).unwrap().gid();
        assert_eq!(fs::metadata(pool).unwrap().mode() & 0o7777, 0o2770);
        let (all, opened) = common::opened_by(common::NOBODY, &[gid], pool);
        assert_eq!(all, opened, "a member could not open some");
        let (_, opened) = common::opened_by(common::NOBODY, &[], pool);
        assert!(opened.is_empty(), "a non-member opened {opened:?}");
        // A member runs commands, writing the catalog (and its -wal/-shm).
        let bin = env.path("shale");
        fs::copy(assert_cmd::cargo::cargo_bin("shale"), &bin).unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        let pool_arg = pool.as_os_str();
        for args in [
            &["snapshot", "create", "v", "by-member"][..],
            &["volume", "list"][..],
        ] {
            let mut argv: Vec<&std::ffi::OsStr> = vec!["--pool".as_ref(), pool_arg];
            argv.extend(args.iter().map(std::ffi::OsStr::new));
            let out = common::as_user(common::NOBODY, &[gid], &bin, &argv);
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!err.contains("warning"), "{err}");
        }
        let out = common::as_user(
            common::NOBODY,
            &[],
            &bin,
            &[
                "--pool".as_ref(),
                pool_arg,
                "volume".as_ref(),
                "list".as_ref(),
            ],
        );
        assert!(!out.status.success(), "a non-member used the pool");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("ask its owner"), "{err}");
    });
    // Still the group's after the member's writes, and root's commands
    // see no loose file.
    let out = env.run(&["snapshot", "list", "v"]);
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (all, opened) = common::opened_by(common::NOBODY, &[100], &env.pool());
    assert_eq!(all, opened);
    assert_eq!(env.json(&["pool", "fix-permissions"])["changed"], 0);
}
