//! `shale mount` and `shale unmount`.
#![allow(unsafe_code)] // libc calls (geteuid, statfs of mount points): each block says why it is sound

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use shale_core::names::Spec;
use shale_fuse::{MountOptions, State, Target};

use crate::{Cli, MountArgs};

/// Whether `path` is a mount point, by /proc/self/mountinfo.
pub(crate) fn is_mounted(path: &Path) -> bool {
    mounted_type(path).is_some()
}

/// Whether `path` is a mount point whose server answers (a listing of a
/// mount whose server is gone fails with ENOTCONN).
pub(crate) fn is_live(path: &Path) -> bool {
    is_mounted(path) && !is_stale(path)
}

/// Whether the file system at `path` has lost its server. Reading the
/// directory asks the server: attributes may come from the kernel's
/// cache, and a FUSE file system may have the kernel open directories
/// without asking it.
fn is_stale(path: &Path) -> bool {
    let gone = |e: &std::io::Error| e.raw_os_error() == Some(libc::ENOTCONN);
    match std::fs::read_dir(path) {
        Err(e) => gone(&e),
        Ok(mut entries) => matches!(entries.next(), Some(Err(e)) if gone(&e)),
    }
}

/// What is mounted at `path`, if anything: its type and source (`fuse`
/// and `shale:POOL` for a Shale mount).
fn mounted_type(path: &Path) -> Option<(String, String)> {
    let at = match path.canonicalize() {
        Ok(canon) => canon,
        // A stale mount cannot be looked at: resolve the directory it is in.
        Err(_) => {
            let abs = std::path::absolute(path).ok()?;
            abs.parent()?.canonicalize().ok()?.join(abs.file_name()?)
        }
    };
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mount_type(&info, &at).map(|(t, s)| (t.to_string(), s.to_string()))
}

/// The type and source of the file system the mount table `mountinfo` has
/// at `mountpoint` (an absolute path without symbolic links): of the last
/// mounted there, the one on top.
fn mount_type<'a>(mountinfo: &'a str, mountpoint: &Path) -> Option<(&'a str, &'a str)> {
    // Space, tab, newline and backslash are written in octal there.
    let mut want = String::new();
    for c in mountpoint.to_string_lossy().chars() {
        match c {
            ' ' => want.push_str("\\040"),
            '\t' => want.push_str("\\011"),
            '\n' => want.push_str("\\012"),
            '\\' => want.push_str("\\134"),
            c => want.push(c),
        }
    }
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL…] - TYPE SOURCE …
    mountinfo
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some(want.as_str()))
        .and_then(|l| {
            let mut after = l.split(" - ").nth(1)?.split(' ');
            Some((after.next()?, after.next().unwrap_or("")))
        })
}

fn check_mountpoint(mountpoint: &Path) -> Result<()> {
    match std::fs::metadata(mountpoint) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => bail!(
            "{} is a stale mount (its server is gone): run `shale unmount {0}` first",
            mountpoint.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("mount point {} does not exist", mountpoint.display())
        }
        Err(e) => bail!("mount point {}: {e}", mountpoint.display()),
        Ok(md) if !md.is_dir() => bail!("mount point {} is not a directory", mountpoint.display()),
        Ok(_) => {}
    }
    if is_mounted(mountpoint) {
        // Cached attributes can outlive a dead server; listing asks it.
        if is_stale(mountpoint) {
            bail!(
                "{} is a stale mount (its server is gone): run `shale unmount {0}` first",
                mountpoint.display()
            );
        }
        bail!("{} is already a mount point", mountpoint.display());
    }
    if std::fs::read_dir(mountpoint)?.next().is_some() {
        bail!("mount point {} is not empty", mountpoint.display());
    }
    if !Path::new("/dev/fuse").exists() {
        bail!("FUSE is not available on this machine (no /dev/fuse); install the fuse3 package and load the fuse module");
    }
    Ok(())
}

/// Mounts, in the foreground or as a detached child that this process
/// waits for until the mount is up.
pub fn mount(cli: &Cli, pool_path: &Path, args: &MountArgs) -> Result<()> {
    let Some((read_only, log_path)) = start(cli, pool_path, args)? else {
        return Ok(());
    };
    if !cli.quiet && !cli.json {
        println!(
            "mounted on {} ({}; log in {})",
            args.mountpoint.display(),
            if read_only { "read-only" } else { "read-write" },
            log_path.display()
        );
    }
    Ok(())
}

/// Mounts as [`mount`] does, printing nothing; for a background mount,
/// once it is up, whether it is read-only and where its server logs
/// (`None` after a foreground mount ended).
pub(crate) fn start(
    cli: &Cli,
    pool_path: &Path,
    args: &MountArgs,
) -> Result<Option<(bool, PathBuf)>> {
    check_mountpoint(&args.mountpoint)?;
    let pool = crate::commands::open(cli)?;
    let target = match &args.volume {
        None => Target::Pool,
        Some(spec) => {
            let spec = Spec::parse(spec)?;
            Target::Volume {
                volume: spec.volume,
                snapshot: spec.snapshot,
            }
        }
    };
    // Check the target exists before detaching.
    drop(State::new(
        crate::commands::open(cli)?,
        target.clone(),
        true,
        false,
        std::env::temp_dir(),
        &args.mountpoint,
    )?);
    if args.commit_interval == 0 {
        bail!("--commit-interval must be at least 1 second");
    }
    if args.foreground {
        let opts = MountOptions {
            read_only: args.read_only,
            show_snapshot_dir: args.show_snapshot_dir,
            commit_interval: Duration::from_secs(args.commit_interval),
            busy_poll: Duration::from_micros(args.busy_poll_us),
            threads: args.threads.map(usize::from),
        };
        let name = format!("shale:{}", crate::commands::pool_spec(cli)?.name());
        shale_fuse::mount(pool, target, &args.mountpoint, &name, &opts)
            .with_context(|| format!("serving the mount on {}", args.mountpoint.display()))?;
        return Ok(None);
    }
    drop(pool);
    let log_path = crate::commands::local_root(cli)?.join("mount.log");
    let child = spawn_server(cli, pool_path, args, &log_path)?;
    let read_only = args.read_only
        || matches!(
            &target,
            Target::Volume {
                snapshot: Some(_),
                ..
            }
        );
    wait_until_mounted(args, child, &log_path)?;
    Ok(Some((read_only, log_path)))
}

/// Starts this program again as the mount's server, in the foreground of
/// a session of its own, its output in `log_path`.
fn spawn_server(
    cli: &Cli,
    pool_path: &Path,
    args: &MountArgs,
    log_path: &Path,
) -> Result<std::process::Child> {
    let log = shale_core::private::open(
        log_path,
        std::fs::OpenOptions::new().create(true).append(true),
    )
    .with_context(|| format!("opening {}", log_path.display()))?;
    let mut child = crate::reexec()?;
    if let Some(e) = &cli.endpoint {
        child.arg("--endpoint").arg(e);
    }
    if let Some(r) = &cli.region {
        child.arg("--region").arg(r);
    }
    if cli.no_instance_metadata {
        child.arg("--no-instance-metadata");
    }
    if let Some(k) = &cli.key_file {
        // The server runs from another directory: the key file's full path.
        let k = std::path::absolute(k).with_context(|| format!("{}", k.display()))?;
        child.arg("--key-file").arg(k);
    }
    child
        .arg("--pool")
        .arg(pool_path)
        .arg("mount")
        .arg(&args.mountpoint)
        .arg("--foreground")
        .arg("--commit-interval")
        .arg(args.commit_interval.to_string())
        .arg("--busy-poll-us")
        .arg(args.busy_poll_us.to_string());
    if let Some(n) = args.threads {
        child.arg("--threads").arg(n.to_string());
    }
    if args.read_only {
        child.arg("--read-only");
    }
    if let Some(v) = &args.volume {
        child.arg("--volume").arg(v);
    }
    if args.show_snapshot_dir {
        child.arg("--show-snapshot-dir");
    }
    child
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; it detaches the server from our terminal.
    unsafe {
        child.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    child.spawn().context("starting the mount server")
}

/// Waits up to 15 s for the server to mount; if it exits first, its last
/// logged line is the error.
fn wait_until_mounted(
    args: &MountArgs,
    mut child: std::process::Child,
    log_path: &Path,
) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        if is_mounted(&args.mountpoint) {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(log_path).unwrap_or_default();
            let last = log
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no message");
            let last = last.strip_prefix("shale: error: ").unwrap_or(last);
            bail!("the mount server exited ({status}): {last}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    bail!(
        "the mount did not come up within 15 s; see {}",
        log_path.display()
    )
}

/// Whether a process exists and has not exited (a zombie has).
pub(crate) fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let after = &s[s.rfind(')')? + 1..];
            after.split_whitespace().next().map(|state| state != "Z")
        })
        .unwrap_or(false)
}

/// Unmounts a FUSE mount point, after its server has committed what was
/// written through it (unless `force`).
pub fn unmount(cli: &Cli, mountpoint: &Path, force: bool) -> Result<()> {
    stop(cli, mountpoint, force)?;
    if !cli.quiet && !cli.json {
        println!("unmounted {}", mountpoint.display());
    }
    Ok(())
}

/// Unmounts as [`unmount`] does, printing nothing.
pub(crate) fn stop(cli: &Cli, mountpoint: &Path, force: bool) -> Result<()> {
    match mounted_type(mountpoint) {
        None => bail!("{} is not mounted", mountpoint.display()),
        // `shale mount` names its mounts `shale:POOL`.
        Some((t, source)) if !(t.starts_with("fuse") && source.starts_with("shale:")) => bail!(
            "{} is not a Shale mount (it is {t} from {source}); unmount it with umount",
            mountpoint.display()
        ),
        Some(_) => {}
    }
    let pool_root = crate::commands::local_root(cli).ok();
    let server = std::path::absolute(mountpoint)
        .ok()
        .zip(pool_root.as_deref())
        .and_then(|(m, pool)| shale_core::coord::mounts::server_of(pool, &m));
    // Commit first, while the mount can still take the writes back if that
    // fails (a full disk): after the kernel lets go they would be lost.
    if let (Some(pid), Some(pool)) = (server, &pool_root) {
        if let Err(reason) = shale_core::coord::mounts::flush(pool, pid) {
            if !force {
                bail!(
                    "{} stays mounted: it could not commit what was written through it: {reason}; \
                     fix that (if the pool's disk is full, free space there) and unmount again, \
                     or unmount with --force and lose the writes since its last commit",
                    mountpoint.display()
                );
            }
            eprintln!("shale: unmounting anyway (--force): {reason}");
        }
    }
    // The server commits what is left after the kernel lets go: wait for it.
    let out = std::process::Command::new("fusermount3")
        .arg("-u")
        .arg(mountpoint)
        .output();
    let ok = match out {
        Ok(o) if o.status.success() => true,
        _ => std::process::Command::new("umount")
            .arg(mountpoint)
            .status()
            .map(|s| s.success())
            .unwrap_or(false),
    };
    if !ok {
        bail!(
            "could not unmount {} (is a process still using it?)",
            mountpoint.display()
        );
    }
    if let (Some(pid), Some(pool)) = (server, &pool_root) {
        let start = Instant::now();
        // Gone once its mount point record is: it removes that last, after
        // its final commit and after giving up its volumes.
        let record = shale_core::coord::mounts::socket_dir(pool).join(format!("{pid}.mountpoint"));
        while is_running(pid) && record.exists() {
            if start.elapsed() > Duration::from_secs(600) {
                bail!(
                    "unmounted {}, but its server (pid {pid}) is still committing after 10 minutes",
                    mountpoint.display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(reason) = shale_core::coord::mounts::take_lost(pool, pid) {
            bail!(
                "unmounted {}, but the writes made through it since its last commit were lost: {reason}",
                mountpoint.display()
            );
        }
    }
    // A server that stopped without unmounting (kill -9, a crash) left
    // what fsync made durable in its intent logs.
    let logs = pool_root.as_ref().map(|p| p.join("journal"));
    if logs.is_some_and(|d| std::fs::read_dir(d).is_ok_and(|mut i| i.next().is_some())) {
        apply_intent_logs(cli)?;
    }
    Ok(())
}

/// Applies what a mount that stopped without unmounting made durable in its
/// intent logs (see `shale_fuse::recover`), saying so.
fn apply_intent_logs(cli: &Cli) -> Result<()> {
    let pool = std::sync::Arc::new(crate::commands::open(cli)?);
    let done = shale_fuse::recover(&pool)
        .map_err(|e| anyhow::anyhow!("applying the intent log of the stopped mount: {e}"))?;
    for said in done {
        eprintln!("shale: {said}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_mount_points_by_their_escaped_names() {
        let info = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 22 0:39 / /mnt/my\\040data rw,nosuid,nodev shared:20 - fuse shale:pool rw
41 22 0:40 / /mnt/a\\134b\\011c rw shared:21 - fuse.shale pool rw
42 41 0:41 / /mnt/a\\134b\\011c rw shared:22 - tmpfs tmpfs rw
";
        let at = |p: &str| mount_type(info, Path::new(p));
        assert_eq!(at("/mnt/my data"), Some(("fuse", "shale:pool")));
        assert_eq!(at("/mnt/a\\b\tc"), Some(("tmpfs", "tmpfs")));
        assert_eq!(at("/"), Some(("ext4", "/dev/vda")));
        assert_eq!(at("/mnt"), None);
        assert_eq!(at("/mnt/my"), None);
    }
}
