//! Coordination with read-write mounts of the pool on this machine.
//!
//! A read-write mount keeps recent writes in its overlay until it commits
//! them. Other processes that read a live volume (snapshot, clone, diff,
//! export) first ask every mount to commit that volume ("sync"); those that
//! replace a volume's tree (restore, import, delete) also keep the mounts
//! from writing to it until their change is committed ("hold"), after which
//! each mount reloads the volume.
//!
//! Each mount process listens on a Unix socket `POOL/mounts/<pid>.sock`.
//! The protocol is one line each way (see `docs/FORMAT.md`):
//! `sync VOLUME`, `hold VOLUME` or `changed VOLUME`, answered by `ok` or
//! `error MESSAGE`. A hold lasts until the client closes the connection.
//!
//! One mount at a time writes a volume: the first read-write mount to use
//! it holds `POOL/mounts/<volume>.writer` locked ([`claim_writer`]); other
//! mounts show it read-only, and the writer tells them (`changed`) after
//! each commit so that they show it as committed. On a pool whose catalog
//! several machines share, the writer also holds the volume's lease in the
//! catalog (`leases.rs`), which refuses writers on other machines; those
//! find the writer's commits by polling the catalog.
#![allow(unsafe_code)] // libc calls: each block says why it is sound

use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::pool::Pool;

/// What a mount does when asked.
pub trait MountControl: Send + Sync + 'static {
    /// Commits every completed write to `volume`; returns once durable.
    fn sync(&self, volume: &str) -> std::result::Result<(), String>;
    /// Commits `volume` like [`MountControl::sync`], then calls `held`
    /// while no write to it can start, then reloads it from the catalog.
    fn hold(&self, volume: &str, held: &mut dyn FnMut()) -> std::result::Result<(), String>;
    /// Another mount committed `volume`: show its new state.
    fn changed(&self, volume: &str);
    /// Commits every completed write to every volume this mount writes;
    /// returns once durable (asked by `shale unmount` before unmounting).
    fn flush(&self) -> std::result::Result<(), String>;
}

/// The right to write a volume through a mount; released when dropped.
pub struct WriterClaim {
    _lease: Option<crate::coord::leases::Lease>,
    _lock: std::fs::File,
}

impl std::fmt::Debug for WriterClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriterClaim")
    }
}

/// Claims the right to write `volume` for this process (described to
/// other machines as `holder`), or names the process (and its mount point)
/// that has it.
pub fn claim_writer(
    pool: &Pool,
    volume: &str,
    holder: &str,
) -> Result<std::result::Result<WriterClaim, String>> {
    use std::os::unix::io::AsRawFd;
    let dir = socket_dir(pool.root());
    crate::private::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let path = dir.join(format!("{volume}.writer"));
    let mut file = crate::private::open(
        &path,
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false),
    )
    .map_err(|e| Error::io(&path, e))?;
    // SAFETY: flock on a file descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let holder = std::fs::read_to_string(&path).unwrap_or_default();
        let pid = holder.trim();
        let at = std::fs::read_to_string(dir.join(format!("{pid}.mountpoint"))).unwrap_or_default();
        return Ok(Err(if at.is_empty() {
            format!("process {pid}")
        } else {
            format!("process {pid}, mounted at {at}")
        }));
    }
    let lease = if pool.catalog().is_shared() {
        match crate::coord::leases::take(pool.blobs().catalog(), volume, holder)? {
            Ok(lease) => Some(lease),
            Err(other) => return Ok(Err(other)),
        }
    } else {
        None
    };
    file.set_len(0).map_err(|e| Error::io(&path, e))?;
    file.write_all(std::process::id().to_string().as_bytes())
        .map_err(|e| Error::io(&path, e))?;
    Ok(Ok(WriterClaim {
        _lease: lease,
        _lock: file,
    }))
}

/// Tells the other mounts of the pool, in the background, that `volume`
/// was committed.
pub fn announce_changed(pool_root: &Path, volume: &str) {
    let (root, volume) = (pool_root.to_path_buf(), volume.to_string());
    let _ = std::thread::Builder::new()
        .name("shale-announce".into())
        .spawn(move || {
            let _ = ask_all(&root, "changed", &volume);
        });
}

/// The directory of mount control sockets of a pool.
pub fn socket_dir(pool_root: &Path) -> PathBuf {
    pool_root.join("mounts")
}

/// Connects to the control socket of mount `pid`; `None` when its process
/// is gone (nobody listens there).
fn connect(pool_root: &Path, pid: &str) -> std::io::Result<Option<UnixStream>> {
    match address(pool_root, pid).and_then(|a| UnixStream::connect_addr(&a)) {
        Ok(c) => Ok(Some(c)),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Asks the mount served by process `pid` to commit everything written
/// through it, and waits until that is durable. A server that is gone
/// (killed) has nothing left to commit.
pub fn flush(pool_root: &Path, pid: u32) -> std::result::Result<(), String> {
    let mut conn = match connect(pool_root, &pid.to_string()) {
        Ok(Some(c)) => c,
        Ok(None) => return Ok(()),
        Err(e) => return Err(format!("cannot reach the mount's server (pid {pid}): {e}")),
    };
    // A commit of many gigabytes takes minutes; a server that answers
    // nothing in ten is stuck.
    let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(600)));
    conn.write_all(b"flush\n")
        .map_err(|e| format!("asking the mount's server (pid {pid}) to commit: {e}"))?;
    let mut line = String::new();
    BufReader::new(&conn)
        .read_line(&mut line)
        .map_err(|e| format!("waiting for the mount's server (pid {pid}) to commit: {e}"))?;
    match line.trim_end() {
        "ok" => Ok(()),
        // A server from before `flush` existed: it commits at unmount, as
        // it always did.
        answer if answer.starts_with("error unknown request") => Ok(()),
        answer => Err(answer
            .strip_prefix("error ")
            .unwrap_or("the server ended without answering")
            .to_string()),
    }
}

/// Where a mount that could not make its last writes durable when it
/// ended says why: `POOL/mounts/PID.lost`.
fn lost_record(pool_root: &Path, pid: u32) -> PathBuf {
    socket_dir(pool_root).join(format!("{pid}.lost"))
}

/// Records, before this mount's record disappears, that its final commit
/// failed, for `shale unmount` to report.
pub fn record_lost(pool_root: &Path, reason: &str) {
    let _ = crate::private::write(&lost_record(pool_root, std::process::id()), reason);
}

/// Why the final commit of the mount served by `pid` failed, if it did;
/// the record is removed.
pub fn take_lost(pool_root: &Path, pid: u32) -> Option<String> {
    let path = lost_record(pool_root, pid);
    let reason = std::fs::read_to_string(&path).ok()?;
    let _ = std::fs::remove_file(&path);
    Some(reason)
}

/// Mounts that hold a volume still; the hold ends when this is dropped,
/// once every mount has reloaded the volume.
pub struct Hold {
    connections: Vec<UnixStream>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        for conn in &self.connections {
            // Hanging up our side ends the hold; the mount answers once it
            // has reloaded the volume, so that what comes next sees it.
            let _ = conn.shutdown(std::net::Shutdown::Write);
        }
        for conn in &self.connections {
            let mut line = String::new();
            let _ = BufReader::new(conn).read_line(&mut line);
        }
    }
}

/// Removes the socket when the mount ends.
pub struct Listening {
    path: PathBuf,
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_file(self.path.with_extension("mountpoint"));
        let _ = std::fs::remove_file(self.path.with_extension("shows"));
    }
}

/// Where a running mount of this pool shows `volume` (any snapshot of it
/// too) or, with `snapshot`, that snapshot, as its whole tree: such a mount
/// would show a deleted tree, and after `gc` fail every read.
pub fn shown_at(pool_root: &Path, volume: &str, snapshot: Option<&str>) -> Option<PathBuf> {
    mount_points(pool_root).into_iter().find_map(|(pid, at)| {
        let shows =
            std::fs::read_to_string(socket_dir(pool_root).join(format!("{pid}.shows"))).ok()?;
        let (v, s) = match shows.split_once('@') {
            Some((v, s)) => (v, Some(s)),
            None => (shows.as_str(), None),
        };
        let hit = v == volume && (snapshot.is_none() || s == snapshot);
        hit.then_some(at)
    })
}

/// The mounts of this pool recorded as serving: (pid, mount point), by pid.
/// A record whose process is gone is left out.
pub fn mount_points(pool_root: &Path) -> Vec<(u32, PathBuf)> {
    let Ok(listing) = std::fs::read_dir(socket_dir(pool_root)) else {
        return Vec::new();
    };
    let mut out: Vec<(u32, PathBuf)> = listing
        .flatten()
        .filter_map(|item| {
            let pid = item
                .file_name()
                .to_str()?
                .strip_suffix(".mountpoint")?
                .parse()
                .ok()?;
            let at = std::fs::read(item.path()).ok()?;
            let alive = Path::new(&format!("/proc/{pid}")).exists();
            alive.then(|| (pid, PathBuf::from(std::ffi::OsString::from_vec(at))))
        })
        .collect();
    out.sort();
    out
}

/// The process serving the mount at `mountpoint` (an absolute path), if
/// one of this pool's mounts is there.
pub fn server_of(pool_root: &Path, mountpoint: &Path) -> Option<u32> {
    mount_points(pool_root)
        .into_iter()
        .find(|(_, at)| at == mountpoint)
        .map(|(pid, _)| pid)
}

/// The longest socket path the kernel takes (`sun_path`, less its NUL).
const SOCKET_PATH_MAX: usize = 107;

/// Where mount `pid` of the pool at `pool_root` listens: the socket file
/// `POOL/mounts/PID.sock`, or, when that path is too long for a Unix
/// socket, a Linux abstract socket named after the pool and the pid.
fn address(pool_root: &Path, pid: &str) -> std::io::Result<std::os::unix::net::SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    let path = socket_dir(pool_root).join(format!("{pid}.sock"));
    if path.as_os_str().len() <= SOCKET_PATH_MAX {
        return std::os::unix::net::SocketAddr::from_pathname(path);
    }
    let root = std::fs::canonicalize(pool_root).unwrap_or_else(|_| pool_root.to_path_buf());
    let pool = crate::ObjectId::of(root.as_os_str().as_encoded_bytes()).to_hex();
    std::os::unix::net::SocketAddr::from_abstract_name(format!("shale/{}/{pid}", &pool[..32]))
}

/// Serves `control` for the mount at `mountpoint` (absolute) on this
/// process's socket, on background threads (one per connection), until the
/// returned guard is dropped or the process ends.
pub fn serve(
    pool_root: &Path,
    mountpoint: &Path,
    shows: Option<&str>,
    control: Arc<dyn MountControl>,
) -> Result<Listening> {
    let dir = socket_dir(pool_root);
    crate::private::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let path = dir.join(format!("{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = address(pool_root, &std::process::id().to_string())
        .and_then(|a| UnixListener::bind_addr(&a))
        .map_err(|e| Error::io(&path, e))?;
    // What it shows, so that it is not deleted under it.
    let shown = path.with_extension("shows");
    match shows {
        Some(s) => crate::private::write(&shown, s).map_err(|e| Error::io(&shown, e))?,
        None => {
            let _ = std::fs::remove_file(&shown);
        }
    }
    // Recorded once listening: clients find mounts by this file.
    let record = path.with_extension("mountpoint");
    crate::private::write(&record, mountpoint.as_os_str().as_encoded_bytes())
        .map_err(|e| Error::io(&record, e))?;
    std::thread::Builder::new()
        .name("shale-mountctl".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                let control = control.clone();
                let _ = std::thread::Builder::new()
                    .name("shale-mountctl-conn".into())
                    .spawn(move || answer(conn, control.as_ref()));
            }
        })
        .map_err(|e| Error::io(&path, e))?;
    Ok(Listening { path })
}

fn answer(conn: UnixStream, control: &dyn MountControl) {
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let reply = |w: &mut UnixStream, r: std::result::Result<(), String>| {
        let msg = match r {
            Ok(()) => "ok\n".to_string(),
            Err(e) => format!("error {}\n", e.replace('\n', " ")),
        };
        let _ = w.write_all(msg.as_bytes());
    };
    if line.trim_end() == "flush" {
        return reply(&mut writer, control.flush());
    }
    match line.trim_end().split_once(' ') {
        Some(("sync", volume)) => reply(&mut writer, control.sync(volume)),
        Some(("hold", volume)) => {
            let mut answered = false;
            let result = control.hold(volume, &mut || {
                reply(&mut writer, Ok(()));
                answered = true;
                // Held until the client hangs up.
                let mut rest = String::new();
                let _ = reader.read_line(&mut rest);
            });
            // Before the hold: its failure; after: that the reload is done.
            reply(
                &mut writer,
                result.map_err(|e| if answered { format!("reload: {e}") } else { e }),
            );
        }
        Some(("changed", volume)) => {
            control.changed(volume);
            reply(&mut writer, Ok(()))
        }
        _ => reply(
            &mut writer,
            Err(format!("unknown request {:?}", line.trim_end())),
        ),
    }
}

/// Sends `request` to every live mount of the pool but this process and
/// waits for each answer; the connections stay open.
fn ask_all(pool_root: &Path, request: &str, volume: &str) -> Result<Vec<UnixStream>> {
    let dir = socket_dir(pool_root);
    let Ok(listing) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let own = std::process::id().to_string();
    let mut open = Vec::new();
    for item in listing.flatten() {
        // Every mount records its mount point; that file names its pid.
        let name = item.file_name().to_string_lossy().to_string();
        let Some(pid) = name.strip_suffix(".mountpoint") else {
            continue;
        };
        if pid == own {
            continue;
        }
        let mut conn = match connect(pool_root, pid) {
            Ok(Some(c)) => c,
            Ok(None) => {
                // Its mount process is gone.
                let _ = std::fs::remove_file(item.path());
                let _ = std::fs::remove_file(dir.join(format!("{pid}.sock")));
                continue;
            }
            Err(_) => continue,
        };
        let asked = conn
            .write_all(format!("{request} {volume}\n").as_bytes())
            .and_then(|_| {
                let mut line = String::new();
                BufReader::new(&conn).read_line(&mut line)?;
                Ok(line)
            });
        match asked {
            Ok(line) if line.trim_end() == "ok" => open.push(conn),
            Ok(line) if line.starts_with("error ") => {
                return Err(Error::MountCommit {
                    volume: volume.to_string(),
                    reason: line["error ".len()..].trim_end().to_string(),
                })
            }
            // A mount that ended while we asked has nothing left to commit.
            _ => {}
        }
    }
    Ok(open)
}

impl Pool {
    /// Makes every write completed through a mount of `volume` part of its
    /// committed tree.
    pub fn sync_mounts(&self, volume: &str) -> Result<()> {
        ask_all(self.root(), "sync", volume).map(drop)
    }

    /// Commits what mounts wrote to `volume` and keeps them from writing to
    /// it until the returned [`Hold`] is dropped; they then reload it.
    pub fn hold_mounts(&self, volume: &str) -> Result<Hold> {
        Ok(Hold {
            connections: ask_all(self.root(), "hold", volume)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mount server that answers one request with `answer`.
    fn serve_once(
        pool_root: &Path,
        pid: u32,
        answer: &'static str,
    ) -> std::thread::JoinHandle<String> {
        std::fs::create_dir_all(socket_dir(pool_root)).unwrap();
        let listener =
            UnixListener::bind_addr(&address(pool_root, &pid.to_string()).unwrap()).unwrap();
        std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let mut line = String::new();
            BufReader::new(&conn).read_line(&mut line).unwrap();
            (&conn).write_all(answer.as_bytes()).unwrap();
            line
        })
    }

    #[test]
    fn flush_reports_what_the_server_says() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let asked = serve_once(root, 1, "ok\n");
        assert_eq!(flush(root, 1), Ok(()));
        assert_eq!(asked.join().unwrap(), "flush\n");
        let asked = serve_once(root, 2, "error disk full\n");
        assert_eq!(flush(root, 2), Err("disk full".to_string()));
        asked.join().unwrap();
        // A server from before `flush` commits at unmount: nothing to do.
        let asked = serve_once(root, 3, "error unknown request \"flush\"\n");
        assert_eq!(flush(root, 3), Ok(()));
        asked.join().unwrap();
        // Nobody listening: the server is gone.
        assert_eq!(flush(root, 4), Ok(()));
    }
}
