//! `kill -9` of a mount server in the middle of real work: what `fsync`
//! made durable (in the mount's intent log, not yet committed) is there
//! after `shale unmount` or the next `shale mount`, and the pool verifies.
//! Needs /dev/fuse and the right to mount (root in CI), and python3 for
//! SQLite; elsewhere each test says so and stops.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{fuse_usable, noise, Env, Mounted};

/// Commits one row per transaction (SQLite's defaults: a rollback journal,
/// `synchronous=FULL`), printing each transaction's number once committed.
const SQLITE_WRITER: &str = r#"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("create table if not exists t (i integer primary key, v text)")
i = db.execute("select coalesce(max(i) + 1, 0) from t").fetchone()[0]
while True:
    db.execute("begin")
    db.execute("insert into t values (?, ?)", (i, "row %d" % i * 20))
    db.execute("commit")
    print(i, flush=True)
    i += 1
"#;

/// Checks a database: prints `integrity_check`'s answer and the row count.
const SQLITE_CHECK: &str = r#"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
print(db.execute("pragma integrity_check").fetchone()[0], db.execute("select count(*) from t").fetchone()[0])
"#;

/// fsyncs every file and directory under a directory.
const FSYNC_TREE: &str = r#"
import os, sys
for d, _, files in os.walk(sys.argv[1]):
    for f in files:
        fd = os.open(os.path.join(d, f), os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    fd = os.open(d, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
"#;

fn usable() -> bool {
    if !fuse_usable() {
        eprintln!("skipped: needs /dev/fuse and root");
        return false;
    }
    if Command::new("python3")
        .arg("-c")
        .arg("import sqlite3")
        .output()
        .is_err()
    {
        eprintln!("skipped: needs python3");
        return false;
    }
    true
}

/// A pool with an empty volume `ws`, an empty directory `mnt` (its path),
/// and a guard unmounting it; `None` (saying why) where the tests cannot run.
fn volume_ws_and_mount_point() -> Option<(Env, String, Mounted)> {
    if !usable() {
        return None;
    }
    let env = Env::new();
    env.ok(&["volume", "create", "ws"]);
    fs::create_dir_all(env.path("mnt")).unwrap();
    let m = env.s("mnt");
    let guard = Mounted(env.path("mnt"));
    Some((env, m, guard))
}

fn python(script: &str, arg: &Path) -> Command {
    let mut c = Command::new("python3");
    c.arg("-u").arg("-c").arg(script).arg(arg);
    c
}

/// A mount server of pool `env` at `mnt`, in the foreground (so that it
/// can be killed), committing only when asked.
fn serve(env: &Env, mnt: &str) -> Child {
    let server = env
        .command()
        .args(["mount", mnt, "--foreground", "--commit-interval", "3600"])
        .spawn()
        .unwrap();
    let ws = Path::new(mnt).join("ws");
    let start = Instant::now();
    while !ws.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "mount did not come up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

fn kill(mut server: Child) {
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn sqlite_transactions_committed_before_kill_9_are_there_after() {
    let Some((env, m, _guard)) = volume_ws_and_mount_point() else {
        return;
    };
    let db = env.path("mnt/ws/state.db");
    for round in 0..2 {
        let server = serve(&env, &m);
        let mut writer = python(SQLITE_WRITER, &db)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(writer.stdout.take().unwrap()).lines();
        let mut acknowledged = None;
        // Kill the server in the middle of the writer's transactions.
        for line in lines.by_ref() {
            let i: u64 = line.unwrap().trim().parse().unwrap();
            acknowledged = Some(i);
            if i >= 150 * (round + 1) {
                break;
            }
        }
        kill(server);
        // What the writer heard back before it failed.
        for line in lines.map_while(Result::ok) {
            if let Ok(i) = line.trim().parse::<u64>() {
                acknowledged = Some(i);
            }
        }
        let _ = writer.kill();
        writer.wait().unwrap();
        let acknowledged = acknowledged.expect("the writer committed something");
        // `shale unmount` of the dead mount applies its intent log.
        let out = env.run(&["unmount", &m]);
        assert!(out.status.success(), "{out:?}");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("intent log"), "{said}");
        env.ok(&["verify", "--read-data"]);
        env.ok(&["mount", &m]);
        let check = python(SQLITE_CHECK, &db).output().unwrap();
        let check = String::from_utf8_lossy(&check.stdout).to_string();
        let (verdict, rows) = check.trim().split_once(' ').expect("the check's answer");
        assert_eq!(verdict, "ok", "round {round}: integrity check");
        let rows: u64 = rows.parse().unwrap();
        assert!(
            rows > acknowledged,
            "round {round}: {rows} rows where {} transactions were acknowledged",
            acknowledged + 1
        );
        env.ok(&["unmount", &m]);
    }
    env.ok(&["verify", "--read-data"]);
}

#[test]
fn a_tree_fsyncd_before_kill_9_during_an_untar_is_there_after_the_next_mount() {
    let Some((env, m, _guard)) = volume_ws_and_mount_point() else {
        return;
    };
    // A source tree: small files and a few over 1 MiB (upper files).
    let src = env.path("src");
    for i in 0..300u64 {
        let dir = src.join(format!("d{}/e{}", i % 7, i % 3));
        fs::create_dir_all(&dir).unwrap();
        let size = if i % 50 == 0 {
            1_500_000
        } else {
            100 + i as usize * 37
        };
        fs::write(dir.join(format!("f{i}")), noise(i, size)).unwrap();
    }
    let tar = env.path("src.tar");
    let ok = Command::new("tar")
        .arg("cf")
        .arg(&tar)
        .arg("-C")
        .arg(&src)
        .arg(".")
        .status()
        .unwrap();
    assert!(ok.success());
    let server = serve(&env, &m);
    let untar = |into: &str| {
        let dir = env.path(&format!("mnt/ws/{into}"));
        fs::create_dir_all(&dir).unwrap();
        Command::new("tar")
            .arg("xf")
            .arg(&tar)
            .arg("-C")
            .arg(&dir)
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    assert!(untar("a").wait().unwrap().success());
    let synced = python(FSYNC_TREE, &env.path("mnt/ws")).status().unwrap();
    assert!(synced.success());
    // A second untar, killed in the middle with its server.
    let mut second = untar("b");
    std::thread::sleep(Duration::from_millis(50));
    kill(server);
    let _ = second.kill();
    let _ = second.wait();
    // Detached by hand: the next `shale mount` applies the log.
    let out = Command::new("fusermount3")
        .arg("-uz")
        .arg(&m)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    env.ok(&["mount", &m]);
    let same = Command::new("diff")
        .arg("-r")
        .arg(&src)
        .arg(env.path("mnt/ws/a"))
        .output()
        .unwrap();
    assert!(
        same.status.success(),
        "{}",
        String::from_utf8_lossy(&same.stdout)
    );
    env.ok(&["unmount", &m]);
    env.ok(&["verify", "--read-data"]);
    assert!(
        fs::read_dir(env.pool().join("journal"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0,
        "no intent log is left"
    );
}

/// Edits a file in place (argv 1) and the same edits to a copy outside the
/// mount (argv 2): writes at offsets across it and one past its end, each
/// `fsync`'d before the next.
const EDIT_IN_PLACE: &str = r#"
import os, random, sys
rng = random.Random(9)
fds = [os.open(p, os.O_WRONLY) for p in sys.argv[1:3]]
size = os.fstat(fds[1]).st_size
for i in range(40):
    at = size + 1000 if i == 20 else rng.randrange(0, size)
    data = rng.randbytes(rng.choice([4096, 65536, 200000]))
    for fd in fds:
        os.pwrite(fd, data, at)
        os.fsync(fd)
    size = os.fstat(fds[1]).st_size
"#;

#[test]
fn in_place_edits_of_a_large_file_fsyncd_before_kill_9_are_there_after() {
    let Some((env, m, _guard)) = volume_ws_and_mount_point() else {
        return;
    };
    // Committed before the mount: its upper file starts empty, and what is
    // not written is read from its chunks.
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("big.bin"), noise(5, 8 << 20)).unwrap();
    env.ok(&["volume", "import", "ws", &env.s("src")]);
    let model = env.path("model.bin");
    fs::copy(src.join("big.bin"), &model).unwrap();
    let server = serve(&env, &m);
    let mut edit = Command::new("python3");
    edit.arg("-c")
        .arg(EDIT_IN_PLACE)
        .arg(env.path("mnt/ws/big.bin"))
        .arg(&model);
    assert!(edit.status().unwrap().success());
    kill(server);
    let out = env.run(&["unmount", &m]);
    assert!(out.status.success(), "{out:?}");
    env.ok(&["verify", "--read-data"]);
    env.ok(&["mount", &m]);
    let back = fs::read(env.path("mnt/ws/big.bin")).unwrap();
    env.ok(&["unmount", &m]);
    assert!(
        back == fs::read(&model).unwrap(),
        "the file differs from its model"
    );
}
