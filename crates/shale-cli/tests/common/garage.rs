//! A real Garage server (S3-compatible, single node) on 127.0.0.1 for the
//! object-store tests: started per test in a temporary directory, with one
//! bucket and one key, stopped on drop. Needs the `garage` binary on PATH
//! or in ~/.cargo/bin (`.ci/run` installs it); without it, `start` says so
//! and returns `None`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Key id and secret the tests import (Garage key ids are GK + 24 hex digits).
pub const KEY_ID: &str = "GK5ba1e0f4a8c3b2d1e0f9a8b7";
pub const SECRET: &str = "6a0c9f3e2b1d4c5a6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5";
pub const BUCKET: &str = "shale-test";

pub struct Garage {
    child: Child,
    config: PathBuf,
    binary: PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

/// Three distinct ports free now (another process may still take one
/// before the server binds it: `start` then tries again).
fn free_ports() -> (u16, u16, u16) {
    let l: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let p = |i: usize| l[i].local_addr().unwrap().port();
    (p(0), p(1), p(2))
}

/// Times a server is started afresh (new ports, new directory) before
/// `start` gives up.
const ATTEMPTS: usize = 3;

/// The garage binary, if installed.
pub fn binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").into_iter().flat_map(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("garage"))
            .collect::<Vec<_>>()
    });
    let cargo = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/garage"));
    on_path.chain(cargo).find(|p| p.is_file())
}

impl Garage {
    /// Starts a server, or explains why not and returns `None`.
    pub fn start() -> Option<Garage> {
        let Some(binary) = binary() else {
            eprintln!("skipped: needs the garage binary (cargo install garage)");
            return None;
        };
        let mut failures = Vec::new();
        for _ in 0..ATTEMPTS {
            match Garage::try_start(&binary) {
                Ok(g) => return Some(g),
                Err(e) => failures.push(e),
            }
        }
        panic!(
            "garage did not start in {ATTEMPTS} attempts:\n{}",
            failures.join("\n---\n")
        );
    }

    /// Starts a server on fresh ports in a fresh directory and sets it up;
    /// on failure, says why with the server's log.
    fn try_start(binary: &Path) -> Result<Garage, String> {
        let binary = binary.to_path_buf();
        let dir = tempfile::tempdir().unwrap();
        let (rpc, s3, admin) = free_ports();
        let config = dir.path().join("garage.toml");
        std::fs::write(
            &config,
            format!(
                r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:{s3}"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
"#,
                meta = dir.path().join("meta").display(),
                data = dir.path().join("data").display(),
                secret = "1f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a7988",
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("garage.log")).unwrap();
        let child = Command::new(&binary)
            .arg("-c")
            .arg(&config)
            .arg("server")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut g = Garage {
            child,
            config,
            binary,
            endpoint: format!("http://127.0.0.1:{s3}"),
            _dir: dir,
        };
        match g.set_up() {
            Ok(()) => Ok(g),
            Err(e) => {
                let _ = g.child.kill();
                let _ = g.child.wait();
                Err(format!("{e}\ngarage.log:\n{}", g.log()))
            }
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("garage.log")).unwrap_or_default()
    }

    /// Runs `garage ARGS` against this server.
    fn run_cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(&self.binary)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs `garage ARGS` against this server, which must succeed; returns stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self.run_cli(args);
        assert!(
            out.status.success(),
            "garage {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits for the node, then gives it a layout, a bucket and a key.
    fn set_up(&mut self) -> Result<(), String> {
        let start = Instant::now();
        let node = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("garage exited ({status})"));
            }
            let out = Command::new(&self.binary)
                .arg("-c")
                .arg(&self.config)
                .args(["node", "id", "-q"])
                .output()
                .unwrap();
            if out.status.success() {
                let id = String::from_utf8_lossy(&out.stdout);
                break id.trim().split('@').next().unwrap().to_string();
            }
            if start.elapsed() > Duration::from_secs(30) {
                return Err("garage did not answer `node id` in 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        // A node that has just started may not answer every command yet
        // (seen on a loaded 2-core machine): each step is retried, unless
        // the server has exited (a port taken by another process after
        // `free_ports` chose it).
        let mut step = |args: &[&str]| -> Result<(), String> {
            let mut last = String::new();
            for _ in 0..20 {
                let out = self.run_cli(args);
                if out.status.success() {
                    return Ok(());
                }
                last = String::from_utf8_lossy(&out.stderr).into_owned();
                if let Ok(Some(status)) = self.child.try_wait() {
                    return Err(format!("garage exited ({status}) during {args:?}: {last}"));
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(format!("garage {args:?}: {last}"))
        };
        step(&["layout", "assign", "-z", "dc1", "-c", "1G", &node])?;
        step(&["layout", "apply", "--version", "1"])?;
        step(&["bucket", "create", BUCKET])?;
        step(&["key", "import", "--yes", "-n", "shale-test", KEY_ID, SECRET])?;
        step(&[
            "bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", KEY_ID,
        ])
    }

    /// Environment for a client of this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", KEY_ID.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.to_string()),
            ("AWS_REGION", "garage".to_string()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
        ]
    }

    /// Stops the server (as if the store went away); `resume` starts it again.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same data and ports.
    pub fn resume(&mut self) {
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self._dir.path().join("garage.log"))
            .unwrap();
        self.child = Command::new(&self.binary)
            .arg("-c")
            .arg(&self.config)
            .arg("server")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let start = Instant::now();
        while std::net::TcpStream::connect(self.endpoint.trim_start_matches("http://")).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "garage did not restart"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's data directory.
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.stop();
    }
}
