//! Several `shale` processes hammer one pool at once: imports into
//! different volumes, snapshots, clones, deletes, gc and verify. Every
//! command succeeds (waiting where it must), nothing committed is lost, and
//! the pool verifies at the end.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

mod common;
use common::noise;

fn tree(root: &Path, worker: u64, version: u64) {
    let _ = fs::remove_dir_all(root);
    for f in 0..25u64 {
        let p = root.join(format!("d{}/f{f}", f % 4));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        // files shared by every worker and version, so writers race to share them
        let seed = if f % 5 == 0 {
            f
        } else {
            worker * 10_000 + version * 100 + f
        };
        fs::write(&p, noise(seed, 10_000 + (seed as usize % 13) * 3_000)).unwrap();
    }
}

struct Shale {
    bin: PathBuf,
    pool: PathBuf,
}

impl Shale {
    fn run(&self, args: &[&str]) {
        let out = Command::new(&self.bin)
            .arg("--pool")
            .arg(&self.pool)
            .args(args)
            .env_remove("SHALE_POOL")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "shale {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn many_processes_one_pool() {
    let dir = tempfile::tempdir().unwrap();
    let shale = Arc::new(Shale {
        bin: assert_cmd::cargo::cargo_bin("shale"),
        pool: dir.path().join("pool"),
    });
    shale.run(&["pool", "init"]);
    let workers = 4u64;
    let rounds = 6u64;
    let mut handles = Vec::new();
    for w in 0..workers {
        let shale = shale.clone();
        let base = dir.path().to_path_buf();
        handles.push(std::thread::spawn(move || {
            let vol = format!("w{w}");
            for r in 0..rounds {
                let src = base.join(format!("src-{w}"));
                tree(&src, w, r);
                if r == 0 {
                    shale.run(&["volume", "create", &vol, "--from", src.to_str().unwrap()]);
                } else {
                    shale.run(&["volume", "import", &vol, src.to_str().unwrap(), "--delete"]);
                }
                shale.run(&["snapshot", "create", &vol, &format!("r{r}")]);
                shale.run(&[
                    "volume",
                    "clone",
                    &format!("{vol}-c{r}"),
                    "--from",
                    &format!("{vol}@r{r}"),
                ]);
                if r > 1 {
                    shale.run(&["volume", "delete", &format!("{vol}-c{}", r - 2)]);
                    shale.run(&["snapshot", "delete", &vol, &format!("r{}", r - 2)]);
                }
            }
        }));
    }
    let janitor = {
        let shale = shale.clone();
        std::thread::spawn(move || {
            for _ in 0..4 {
                shale.run(&["gc"]);
                shale.run(&["verify"]);
            }
        })
    };
    for h in handles {
        h.join().unwrap();
    }
    janitor.join().unwrap();
    shale.run(&["gc"]);
    shale.run(&["verify", "--read-data"]);
    // nothing committed was lost: every volume and the kept snapshots hold their last trees
    for w in 0..workers {
        let expected = dir.path().join("expected");
        for (spec, version) in [
            (format!("w{w}"), rounds - 1),
            (format!("w{w}@r{}", rounds - 2), rounds - 2),
            (format!("w{w}-c{}", rounds - 2), rounds - 2),
        ] {
            tree(&expected, w, version);
            let out = dir.path().join("out");
            let _ = fs::remove_dir_all(&out);
            shale.run(&["volume", "export", &spec, out.to_str().unwrap()]);
            let diff = Command::new("diff")
                .arg("-r")
                .arg(&expected)
                .arg(&out)
                .output()
                .unwrap();
            assert!(diff.status.success(), "{spec} lost its committed state");
        }
    }
}
