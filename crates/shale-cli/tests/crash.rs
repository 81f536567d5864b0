//! Crash safety: `shale` is killed with SIGKILL at random moments during
//! import, create, snapshot, clone, restore, delete and gc. After every
//! kill, `verify --read-data` passes and every volume and snapshot holds
//! exactly one of the two states it can legitimately hold, bit for bit.
//!
//! Half the operations are killed after a random delay, half abort at a
//! random injected fail point (`SHALE_FAIL_AT`, see `shale_core::failpoint`).
//! `SHALE_CRASH_ITERATIONS` sets the number of operations (default 40, for
//! CI); `SHALE_CRASH_SEED` the random seed.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&r.next().to_le_bytes());
    }
    out.truncate(len);
    out
}

fn make_tree(root: &Path, seed: u64) {
    for i in 0..120u64 {
        let p = root.join(format!("c{}/f{i}.bin", i % 6));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        // a third of the files are shared between the two trees
        let s = if i % 3 == 0 { i } else { seed * 1000 + i };
        fs::write(&p, noise(s, 20_000 + (s as usize % 7) * 11_000)).unwrap();
    }
    fs::write(root.join("big.bin"), noise(seed + 77, 3_000_000)).unwrap();
}

struct Env {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Env {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn cmd(&self, pool: &str, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.env_remove("SHALE_POOL")
            .arg("--pool")
            .arg(self.path(pool))
            .args(args);
        c
    }
    fn ok(&self, pool: &str, args: &[&str]) -> String {
        let out = self.cmd(pool, args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
    fn json(&self, pool: &str, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(pool, &all)).unwrap()
    }
}

#[test]
fn killed_operations_leave_the_previous_or_the_new_state() {
    let iterations: u64 = std::env::var("SHALE_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let seed: u64 = std::env::var("SHALE_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(42);
    let env = Env {
        dir: tempfile::tempdir().unwrap(),
        bin: assert_cmd::cargo::cargo_bin("shale"),
    };
    make_tree(&env.path("A"), 1);
    make_tree(&env.path("B"), 2);
    let (a, b) = (env.path("A"), env.path("B"));
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());

    // the two legitimate tree ids, from a reference pool
    env.ok("ref", &["volume", "create", "x", "--from", a]);
    let id_a = env.json("ref", &["volume", "info", "x"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    env.ok("ref", &["volume", "import", "x", b, "--delete"]);
    let id_b = env.json("ref", &["volume", "info", "x"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let trees: BTreeMap<String, &str> = [(id_a.clone(), a), (id_b.clone(), b)].into();

    env.ok("pool", &["volume", "create", "v", "--from", a]);
    let mut rng = Rng(seed | 1);
    let mut kills = 0;
    for i in 0..iterations {
        let op: Vec<String> = match rng.below(9) {
            0 | 1 => vec![
                "volume".into(),
                "import".into(),
                "v".into(),
                if rng.below(2) == 0 { a } else { b }.into(),
                "--delete".into(),
            ],
            2 => vec![
                "volume".into(),
                "create".into(),
                format!("n{i}"),
                "--from".into(),
                if rng.below(2) == 0 { a } else { b }.into(),
            ],
            3 => vec![
                "snapshot".into(),
                "create".into(),
                "v".into(),
                format!("s{i}"),
            ],
            4 => vec![
                "volume".into(),
                "clone".into(),
                format!("c{i}"),
                "--from".into(),
                "v".into(),
            ],
            5 => {
                let snaps = env.json("pool", &["snapshot", "list", "v"]);
                match snaps.as_array().unwrap().first() {
                    Some(s) => vec![
                        "snapshot".into(),
                        "restore".into(),
                        "v".into(),
                        s["name"].as_str().unwrap().into(),
                    ],
                    None => vec![
                        "snapshot".into(),
                        "create".into(),
                        "v".into(),
                        format!("s{i}"),
                    ],
                }
            }
            6 => {
                let vols = env.json("pool", &["volume", "list"]);
                let names: Vec<String> = vols
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v["name"].as_str().unwrap().to_string())
                    .filter(|n| n != "v")
                    .collect();
                match names.first() {
                    Some(n) => vec!["volume".into(), "delete".into(), n.clone()],
                    None => vec!["gc".into()],
                }
            }
            _ => vec!["gc".into()],
        };
        let args: Vec<&str> = op.iter().map(String::as_str).collect();
        let mut cmd = env.cmd("pool", &args);
        // fail points this kind of operation passes through
        let points: &[&str] = match args[0] {
            "volume" if args[1] == "import" || args[1] == "create" && args.len() > 3 => &[
                "pack.stored",
                "pack.indexed",
                "commit.before",
                "commit.after",
            ],
            "gc" => &[
                "gc.condemned",
                "gc.repacked",
                "gc.swept",
                "commit.before",
                "commit.after",
            ],
            _ => &["commit.before", "commit.after"],
        };
        assert!(points
            .iter()
            .all(|p| shale_core::failpoint::FAIL_POINTS.contains(p)));
        let fail_at = (i % 2 == 1).then(|| {
            let p = points[rng.below(points.len() as u64) as usize];
            let nth = if p.starts_with("commit") {
                1 + rng.below(3)
            } else {
                1
            };
            format!("{p}:{nth}")
        });
        if let Some(f) = &fail_at {
            cmd.env("SHALE_FAIL_AT", f);
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let status = if fail_at.is_some() {
            child.wait().unwrap()
        } else {
            std::thread::sleep(Duration::from_micros(rng.below(12_000)));
            let _ = child.kill();
            child.wait().unwrap()
        };
        if std::os::unix::process::ExitStatusExt::signal(&status).is_some() {
            kills += 1;
        }

        // the pool is sound …
        let out = env
            .cmd("pool", &["verify", "--read-data"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "after killing {args:?} (iteration {i}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // … and everything in it is one of the two legitimate trees, whole
        let mut specs: Vec<(String, String)> = Vec::new();
        for v in env.json("pool", &["volume", "list"]).as_array().unwrap() {
            specs.push((
                v["name"].as_str().unwrap().into(),
                v["id"].as_str().unwrap().into(),
            ));
        }
        for s in env.json("pool", &["snapshot", "list"]).as_array().unwrap() {
            specs.push((
                format!(
                    "{}@{}",
                    s["volume"].as_str().unwrap(),
                    s["name"].as_str().unwrap()
                ),
                s["id"].as_str().unwrap().into(),
            ));
        }
        assert!(specs.iter().any(|(n, _)| n == "v"));
        for (spec, id) in &specs {
            let Some(src) = trees.get(id) else {
                panic!("{spec} has id {id}, neither tree A nor B, after killing {args:?}")
            };
            // export one volume per iteration in full (all of them would be slow)
            if spec == "v" || rng.below(specs.len() as u64) == 0 {
                let out = env.path("out");
                let _ = fs::remove_dir_all(&out);
                env.ok("pool", &["volume", "export", spec, out.to_str().unwrap()]);
                let diff = Command::new("diff")
                    .arg("-r")
                    .arg(src)
                    .arg(&out)
                    .output()
                    .unwrap();
                assert!(
                    diff.status.success(),
                    "{spec} differs from its tree after killing {args:?}"
                );
            }
        }
    }
    // a last gc cleans up after every crash and leaves the pool sound
    env.ok("pool", &["gc"]);
    env.ok("pool", &["verify", "--read-data"]);
    assert!(env.json("pool", &["gc", "--dry-run"])["freed_blobs"] == 0);
    eprintln!("crash test: {iterations} operations, {kills} killed while running");
    assert!(
        kills * 3 >= iterations,
        "only {kills} of {iterations} operations were killed mid-way: the timing needs tuning"
    );
}
