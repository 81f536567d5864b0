//! Helpers shared by the CLI test files: a temporary pool, the real
//! `shale` binary, deterministic data.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub mod garage;
pub mod postgres;

/// A temporary directory holding a pool and whatever else a test needs.
///
/// The pool is where `SHALE_TEST_STORE` says: `local` (default) a
/// directory `pool/`; `s3` a prefix of a bucket in a Garage server started
/// for the test, with an SQLite catalog; `s3-postgres` the same with its
/// catalog in a PostgreSQL server started for the test. The same tests
/// thus run against each kind of pool (`scripts/test.sh` runs all three).
/// With `SHALE_TEST_ENCRYPT=1` the pool is encrypted (`pool init
/// --encrypt`), every command given its key file through `SHALE_KEY_FILE`.
pub struct Env {
    /// `shale serve` of the pool, with `SHALE_TEST_VIA=server` (stopped
    /// first on drop).
    served: std::sync::OnceLock<Served>,
    /// Whether `run` goes through the server.
    serve: bool,
    /// The directory; removed on drop.
    pub dir: tempfile::TempDir,
    store: Option<Remote>,
    /// Whether the pool is encrypted (its key file is `DIR/pool.key`).
    encrypted: bool,
}

/// A `shale serve` of a test's pool and an admin token for it (stopped on
/// drop).
pub struct Served {
    server: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// An admin token.
    pub token: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// Whether commands go through `shale serve` (`SHALE_TEST_VIA=server`):
/// each runs as `shale --server URL` when the server can run it, and on
/// the pool when the CLI says it needs the pool. The same assertions then
/// hold for the CLI through the server.
fn via_server() -> bool {
    match std::env::var("SHALE_TEST_VIA").as_deref() {
        Ok("server") => true,
        Ok("pool") | Err(_) => false,
        Ok(other) => panic!("SHALE_TEST_VIA={other}: use pool or server"),
    }
}

/// The servers of an object-store pool.
struct Remote {
    garage: garage::Garage,
    postgres: Option<postgres::Postgres>,
    url: String,
}

impl Env {
    /// A pool of the kind `SHALE_TEST_STORE` names.
    pub fn new() -> Env {
        Env::build(Env::encrypt_wanted())
    }

    /// A plain pool of the kind `SHALE_TEST_STORE` names.
    pub fn new_plain() -> Env {
        Env::build(false)
    }

    /// An encrypted pool of the kind `SHALE_TEST_STORE` names.
    pub fn new_encrypted() -> Env {
        Env::build(true)
    }

    fn build(encrypted: bool) -> Env {
        let mut env = match std::env::var("SHALE_TEST_STORE").as_deref() {
            Ok("s3") => Env::remote(false, encrypted),
            Ok("s3-postgres") => Env::remote(true, encrypted),
            Ok("local") | Err(_) => Env::local_maybe_encrypted(encrypted),
            Ok(other) => panic!("SHALE_TEST_STORE={other}: use local, s3 or s3-postgres"),
        };
        env.serve = via_server();
        if env.is_local() && env.encrypted {
            env.ok(&["pool", "init", "--encrypt"]);
        }
        env
    }

    /// Whether `SHALE_TEST_ENCRYPT` asks for encrypted pools.
    fn encrypt_wanted() -> bool {
        std::env::var("SHALE_TEST_ENCRYPT").is_ok_and(|v| v == "1")
    }

    /// Whether the pool is encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.encrypted
    }

    /// Writes the key file of an encrypted pool.
    fn write_key(dir: &Path) {
        let key = dir.join("pool.key");
        std::fs::write(&key, noise(42, 32)).unwrap();
    }

    /// A pool in a local directory, whatever `SHALE_TEST_STORE` or
    /// `SHALE_TEST_VIA` say (for tests of the local layout itself).
    pub fn local() -> Env {
        Env {
            served: Default::default(),
            serve: false,
            dir: tempfile::tempdir().unwrap(),
            store: None,
            encrypted: false,
        }
    }

    /// An encrypted local pool, whatever `SHALE_TEST_STORE` says.
    pub fn local_encrypted() -> Env {
        let env = Env::local_maybe_encrypted(true);
        env.ok(&["pool", "init", "--encrypt"]);
        env
    }

    /// A local pool, encrypted or not (not yet created).
    fn local_maybe_encrypted(encrypted: bool) -> Env {
        let mut env = Env::local();
        env.encrypted = encrypted;
        if env.encrypted {
            Env::write_key(env.dir.path());
        }
        env
    }

    fn remote(with_postgres: bool, encrypted: bool) -> Env {
        let garage = garage::Garage::start().expect("SHALE_TEST_STORE needs garage");
        let postgres = with_postgres
            .then(|| postgres::Postgres::start().expect("SHALE_TEST_STORE needs PostgreSQL"));
        let env = Env {
            served: Default::default(),
            serve: false,
            dir: tempfile::tempdir().unwrap(),
            store: Some(Remote {
                garage,
                postgres,
                url: format!("s3://{}/pool", garage::BUCKET),
            }),
            encrypted,
        };
        let mut init = vec!["pool", "init"];
        if env.encrypted {
            Env::write_key(env.dir.path());
            init.push("--encrypt");
        }
        if let Some(pg) = env.store.as_ref().and_then(|r| r.postgres.as_ref()) {
            init.extend(["--catalog", pg.url.as_str()]);
        }
        env.ok(&init);
        env
    }

    /// Whether the pool is a local directory.
    pub fn is_local(&self) -> bool {
        self.store.is_none()
    }

    /// Whether the catalog is a PostgreSQL database.
    pub fn has_shared_catalog(&self) -> bool {
        self.store.as_ref().is_some_and(|r| r.postgres.is_some())
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `path` as a string, for arguments.
    pub fn s(&self, rel: &str) -> String {
        self.path(rel).to_str().unwrap().to_string()
    }

    /// What `--pool` names: the directory or the URL.
    pub fn pool_arg(&self) -> std::ffi::OsString {
        match &self.store {
            None => self.path("pool").into(),
            Some(r) => r.url.clone().into(),
        }
    }

    /// The directory with the pool's local files: the pool itself, or its
    /// cache on this (simulated) machine.
    pub fn pool(&self) -> PathBuf {
        match &self.store {
            None => self.path("pool"),
            Some(_) => std::fs::read_dir(self.path("cache"))
                .ok()
                .and_then(|mut d| d.next())
                .map(|e| e.unwrap().path())
                .unwrap_or_else(|| self.path("cache/none")),
        }
    }

    /// Points `c` at the pool: `--pool`, the store's credentials and this
    /// machine's cache directory, `$SHALE_POOL` cleared.
    pub fn apply(&self, c: &mut Command) {
        c.env_remove("SHALE_POOL");
        if self.encrypted {
            c.env("SHALE_KEY_FILE", self.path("pool.key"));
        }
        if let Some(r) = &self.store {
            c.envs(r.garage.env())
                .env("SHALE_CACHE_DIR", self.path("cache"));
        }
        c.arg("--pool").arg(self.pool_arg());
    }

    /// `shale args` on the pool under umask `umask`; fails the test if it
    /// fails.
    pub fn ok_under_umask(&self, umask: &str, args: &[&str]) {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
            .arg(assert_cmd::cargo::cargo_bin("shale"));
        self.apply(&mut cmd);
        let out = cmd.args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `shale --pool POOL`.
    pub fn command(&self) -> Command {
        let mut c = Command::new(assert_cmd::cargo::cargo_bin("shale"));
        self.apply(&mut c);
        c
    }

    /// The store of an object-store pool, to reach objects directly.
    fn objects(&self, r: &Remote) -> shale_core::store::objects::Remote {
        let s3 = object_store::aws::AmazonS3Builder::new()
            .with_access_key_id(garage::KEY_ID)
            .with_secret_access_key(garage::SECRET)
            .with_endpoint(&r.garage.endpoint)
            .with_allow_http(true)
            .with_region("garage")
            .with_bucket_name(garage::BUCKET)
            .build()
            .unwrap();
        shale_core::store::objects::Remote::new(
            std::sync::Arc::new(s3),
            "pool",
            &r.url,
            &self.path("test-staging"),
        )
        .unwrap()
    }

    /// Every object the pool's store holds (every file under a local
    /// pool's directory), by key, with its bytes.
    pub fn all_objects(&self) -> Vec<(String, Vec<u8>)> {
        use shale_core::store::objects::ObjectStore;
        match &self.store {
            None => walk_files(&self.path("pool"))
                .into_iter()
                .map(|(rel, path)| (rel, std::fs::read(path).unwrap()))
                .collect(),
            Some(r) => {
                let objects = self.objects(r);
                let keys = objects.list("").unwrap();
                keys.into_iter()
                    .map(|k| {
                        let data = objects.get(&k).unwrap();
                        (k, data)
                    })
                    .collect()
            }
        }
    }

    /// Keys of every pack object (`packs/xx/NAME.pack`), sorted.
    pub fn pack_keys(&self) -> Vec<String> {
        use shale_core::store::objects::ObjectStore;
        let mut out = match &self.store {
            None => {
                let mut out = Vec::new();
                for d in std::fs::read_dir(self.path("pool/packs")).unwrap() {
                    let d = d.unwrap();
                    for f in std::fs::read_dir(d.path()).unwrap() {
                        out.push(format!(
                            "packs/{}/{}",
                            d.file_name().to_str().unwrap(),
                            f.unwrap().file_name().to_str().unwrap()
                        ));
                    }
                }
                out
            }
            Some(r) => self.objects(r).list("packs/").unwrap(),
        };
        out.sort();
        out
    }

    /// An object's bytes.
    pub fn read_object(&self, key: &str) -> Vec<u8> {
        use shale_core::store::objects::ObjectStore;
        match &self.store {
            None => std::fs::read(self.path("pool").join(key)).unwrap(),
            Some(r) => self.objects(r).get(key).unwrap(),
        }
    }

    /// Replaces an object's bytes (as a failing disk or a tampering hand
    /// would), and forgets what this machine has cached of it.
    pub fn write_object(&self, key: &str, data: &[u8]) {
        use shale_core::store::objects::ObjectStore;
        match &self.store {
            None => std::fs::write(self.path("pool").join(key), data).unwrap(),
            Some(r) => {
                self.objects(r).put(key, data).unwrap();
                let _ = std::fs::remove_dir_all(self.pool().join("read"));
            }
        }
    }

    /// Deletes an object.
    pub fn delete_object(&self, key: &str) {
        use shale_core::store::objects::ObjectStore;
        match &self.store {
            None => std::fs::remove_file(self.path("pool").join(key)).unwrap(),
            Some(r) => {
                self.objects(r).delete(key).unwrap();
                let _ = std::fs::remove_dir_all(self.pool().join("read"));
            }
        }
    }

    /// Runs one SQL statement on the catalog (SQLite file or PostgreSQL).
    pub fn catalog_execute(&self, sql: &str) {
        match self.store.as_ref().and_then(|r| r.postgres.as_ref()) {
            None => {
                let db = rusqlite::Connection::open(self.pool().join("catalog.db")).unwrap();
                db.execute(sql, []).unwrap();
            }
            Some(pg) => {
                let id = self.json(&["pool", "info"])["id"]
                    .as_str()
                    .unwrap()
                    .to_string();
                let catalog =
                    shale_core::catalog::Catalog::open_postgres(&pg.url, &id, &Default::default())
                        .unwrap();
                catalog.write(|tx| tx.execute(sql, &[])).unwrap();
            }
        }
    }

    /// `shale ARGS` on the pool (or through its server: see `via_server`).
    pub fn run(&self, args: &[&str]) -> Output {
        if self.serve {
            if let Some(out) = self.run_served(args) {
                return out;
            }
        }
        self.command().args(args).output().unwrap()
    }

    /// `shale ARGS` on the pool itself, whatever `SHALE_TEST_VIA` says.
    pub fn run_on_pool(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    /// `shale --server URL ARGS`; `None` if the CLI says that needs the pool.
    fn run_served(&self, args: &[&str]) -> Option<Output> {
        let served = self.served.get_or_init(|| self.serve());
        let out = Command::new(assert_cmd::cargo::cargo_bin("shale"))
            .env_remove("SHALE_POOL")
            .env("SHALE_TOKEN", &served.token)
            .arg("--server")
            .arg(&served.url)
            .args(args)
            .output()
            .unwrap();
        let refused = !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("not through --server");
        (!refused).then_some(out)
    }

    /// Starts `shale serve` on the pool.
    pub fn serve(&self) -> Served {
        serve_with(|| self.command())
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "shale {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs with `--json` and parses stdout.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }
}

/// Makes an admin token and starts `shale serve` on a free port of
/// 127.0.0.1, with `shale --pool POOL` commands from `command`.
pub fn serve_with(command: impl Fn() -> Command) -> Served {
    let out = command()
        .args(["--json", "token", "create", "--role", "admin"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "token create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let made: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (server, port) = spawn_server(command(), &[], std::process::Stdio::null());
    Served {
        server,
        url: format!("http://127.0.0.1:{port}"),
        token: made["token"].as_str().unwrap().to_string(),
    }
}

/// Starts `COMMAND serve --listen 127.0.0.1:PORT EXTRA…` on a free port,
/// its stderr going to `stderr`, and waits until it takes connections.
pub fn spawn_server(
    mut command: Command,
    extra: &[&str],
    stderr: std::process::Stdio,
) -> (std::process::Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed().as_secs() < 30, "shale serve did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    (server, port)
}

/// Asserts that two trees are the same: names, contents, symlinks (`diff -r`).
pub fn same_tree(a: &Path, b: &Path) {
    let out = Command::new("diff")
        .arg("-r")
        .arg("--no-dereference")
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes a file, creating its parent directories.
pub fn write(path: &Path, data: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

/// Deterministic incompressible bytes (xorshift64).
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ seed.wrapping_mul(0x2545_F491_4F6C_DD1D);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Unmounts on drop, so a failing test leaves no mount behind.
pub struct Mounted(pub PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("fusermount3").arg("-u").arg(&self.0).output();
    }
}

/// A tmpfs mounted for a test (a small disk to fill); unmounted on drop.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`6m`) at `at`, created if missing; `None`
    /// (saying why) where this process may not mount.
    pub fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: mounting a small tmpfs needs root");
            return None;
        }
        std::fs::create_dir_all(at).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        if !mounted.success() {
            eprintln!("skipped: this machine does not allow mounting a tmpfs");
            return None;
        }
        Some(Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Whether this process can mount FUSE file systems (root and /dev/fuse).
pub fn fuse_usable() -> bool {
    Path::new("/dev/fuse").exists() && unsafe { libc::geteuid() } == 0
}

/// The user tests run other commands as: `nobody`.
pub const NOBODY: u32 = 65534;

/// `program args` run as user `uid` (and group `uid`) with `groups` as its
/// only supplementary groups, through `setpriv`.
pub fn as_user(uid: u32, groups: &[u32], program: &Path, args: &[&std::ffi::OsStr]) -> Output {
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"));
    if groups.is_empty() {
        c.arg("--clear-groups");
    } else {
        let list: Vec<String> = groups.iter().map(u32::to_string).collect();
        c.arg(format!("--groups={}", list.join(",")));
    }
    c.arg(program).args(args).output().unwrap()
}

/// Every entry under `root` (and `root`), and those of them that user
/// `uid` with `groups` could list (a directory) or read (a file).
pub fn opened_by(uid: u32, groups: &[u32], root: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut all = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if md.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().flatten().map(|e| e.path()));
        } else if !md.is_file() {
            continue;
        }
        all.push(p);
    }
    let opened = all
        .iter()
        .filter(|p| {
            let tool = if p.is_dir() { "/bin/ls" } else { "/bin/cat" };
            as_user(uid, groups, Path::new(tool), &[p.as_os_str()])
                .status
                .success()
        })
        .cloned()
        .collect();
    (all, opened)
}

/// Lets every user reach (not list) the test's directory, so what stops
/// another user is the pool's own modes, not the temporary directory's.
pub fn open_the_way(env: &Env) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
}

/// Every file under `root`, by path relative to it.
pub fn walk_files(root: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string();
                out.push((rel, path));
            }
        }
    }
    out.sort();
    out
}
