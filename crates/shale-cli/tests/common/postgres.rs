//! A real PostgreSQL server on 127.0.0.1 for the shared-catalog tests:
//! a fresh cluster per test (`initdb`, under 1 s) in a temporary directory,
//! stopped on drop. Needs `initdb` and `postgres` on PATH (Debian's
//! `postgresql` package puts them in /usr/lib/postgresql/*/bin, also
//! searched); as root the server runs as the `postgres` user (or `nobody`),
//! since PostgreSQL refuses to run as root.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Postgres {
    child: Option<Child>,
    bin: PathBuf,
    user: Option<String>,
    port: u16,
    dir: tempfile::TempDir,
    /// `postgres://shale@127.0.0.1:PORT/postgres`.
    pub url: String,
}

/// The directory holding `initdb` and `postgres`, if installed.
pub fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Ok(versions) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut found: Vec<PathBuf> = versions.flatten().map(|v| v.path().join("bin")).collect();
        found.sort();
        dirs.extend(found.into_iter().rev());
    }
    dirs.into_iter()
        .find(|d| d.join("initdb").is_file() && d.join("postgres").is_file())
}

fn run_as(user: &Option<String>, program: &Path) -> Command {
    match user {
        Some(u) => {
            let mut c = Command::new("runuser");
            c.args(["-u", u, "--"]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

impl Postgres {
    /// Starts a server, or explains why not and returns `None`.
    pub fn start() -> Option<Postgres> {
        let Some(bin) = bin_dir() else {
            eprintln!("skipped: needs PostgreSQL's initdb and postgres");
            return None;
        };
        // SAFETY: geteuid has no preconditions.
        let user = (unsafe { libc::geteuid() } == 0).then(|| {
            let exists = |u: &str| {
                Command::new("id")
                    .arg(u)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            };
            if exists("postgres") {
                "postgres"
            } else {
                "nobody"
            }
            .to_string()
        });
        let dir = tempfile::tempdir().unwrap();
        if let Some(u) = &user {
            let ok = Command::new("chown")
                .args([u.as_str(), dir.path().to_str().unwrap()])
                .status()
                .unwrap();
            assert!(ok.success(), "chown of the PostgreSQL directory failed");
        }
        let data = dir.path().join("data");
        let out = run_as(&user, &bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "shale", "--no-sync", "-E", "UTF8"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut pg = Postgres {
            child: None,
            bin,
            user,
            port,
            url: format!("postgres://shale@127.0.0.1:{port}/postgres"),
            dir,
        };
        pg.resume();
        Some(pg)
    }

    /// Starts the server (again) on the same data and port.
    pub fn resume(&mut self) {
        let log = self.dir.path().join("postgres.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        if let Some(u) = &self.user {
            let _ = Command::new("chown")
                .args([
                    u.as_str(),
                    self.dir.path().join("postgres.log").to_str().unwrap(),
                ])
                .status();
        }
        let child = run_as(&self.user, &self.bin.join("postgres"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args([
                "-p",
                &self.port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
            ])
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                self.dir.path().display()
            ))
            .args(["-c", "fsync=off"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let start = Instant::now();
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .map(|s| s.success())
                // without pg_isready: the port accepting connections
                .unwrap_or_else(|_| std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok());
            if ready {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "postgres did not start: {}",
                std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server (fast shutdown: clients are disconnected).
    pub fn stop(&mut self) {
        let pid_file = self.dir.path().join("data/postmaster.pid");
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<i32>().ok()))
        {
            // SAFETY: signalling the postmaster this test started.
            unsafe { libc::kill(pid, libc::SIGINT) };
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        let start = Instant::now();
        while pid_file.exists() && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
