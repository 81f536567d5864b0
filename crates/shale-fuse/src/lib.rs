//! Shale volumes and snapshots as a FUSE file system.
//!
//! A mount shows either the whole pool (one directory per volume; `mkdir`
//! there creates a volume) or one volume or snapshot. Every volume root has
//! a `.snapshot/` directory, not listed by `ls -a` (as on the reference
//! arrays) but reachable by name, holding one read-only directory per
//! snapshot.
//!
//! Live volumes are read-write (see `bench/results/NOTES.md`, "Live writes"):
//! changes live in an overlay — directories as their last committed tree
//! plus changed names, written files as upper files in the pool — until a
//! commit folds them into new tree nodes. Commits happen on `fsync`, every
//! few seconds while there are changes, at unmount, and when another
//! process asks through [`shale_core::coord::mounts`] (before a snapshot, clone,
//! diff or export; around a restore or import, after which the volume is
//! reloaded).
#![deny(unsafe_code)]

mod busy_poll;
mod commit;
mod fs;
mod inodes;
mod journal;
mod ranges;
mod reader;
mod recover;
mod state;
mod upper;
mod workers;

pub use busy_poll::DEFAULT_BUSY_POLL;
pub use fs::ShaleFs;
pub use recover::{recover, recover_all};
pub use state::{State, Target};

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use shale_core::coord::mounts::MountControl;
use shale_core::Pool;

/// The least time between the end of a commit and a commit started early
/// because files held in memory pass a quarter of their budget.
const EARLY_COMMIT_GAP: Duration = Duration::from_secs(1);

/// Mount settings.
#[derive(Clone, Debug)]
pub struct MountOptions {
    /// Refuse every change.
    pub read_only: bool,
    /// List `.snapshot` in volume roots.
    pub show_snapshot_dir: bool,
    /// How often changes are committed without an `fsync`.
    pub commit_interval: Duration,
    /// How long a session thread watches for the next request after
    /// answering one (zero: it sleeps at once; see `busy_poll.rs`).
    pub busy_poll: Duration,
    /// Threads serving FUSE requests, each on its own clone of the FUSE
    /// device (`None`: sized from the CPU count; see [`default_threads`]).
    pub threads: Option<usize>,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            read_only: false,
            show_snapshot_dir: false,
            commit_interval: Duration::from_secs(5),
            busy_poll: DEFAULT_BUSY_POLL,
            threads: None,
        }
    }
}

/// Answers other processes' requests (see [`shale_core::coord::mounts`]).
struct Control {
    state: Arc<Mutex<State>>,
    notifier: Arc<OnceLock<fuser::Notifier>>,
}

impl Control {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Control {
    /// Tells the kernel to forget names (an empty name: the inode's
    /// attributes). Call without the state lock: the kernel may call back.
    fn forget(&self, names: Vec<(u64, Vec<u8>)>) {
        if let Some(n) = self.notifier.get() {
            for (dir, name) in names {
                let _ = if name.is_empty() {
                    n.inval_inode(fuser::INodeNo(dir), 0, 0)
                } else {
                    n.inval_entry(fuser::INodeNo(dir), std::ffi::OsStr::from_bytes(&name))
                };
            }
        }
    }
}

impl MountControl for Control {
    fn changed(&self, volume: &str) {
        let names = self.lock().reload(volume);
        self.forget(names);
    }

    fn sync(&self, volume: &str) -> Result<(), String> {
        commit::commit_unlocked(&self.state, Some(volume))
            .map(drop)
            .map_err(|e| e.to_string())
    }

    fn flush(&self) -> Result<(), String> {
        commit::commit_unlocked(&self.state, None)
            .map(drop)
            .map_err(|e| e.to_string())
    }

    fn hold(&self, volume: &str, held: &mut dyn FnMut()) -> Result<(), String> {
        let forget = {
            let mut st = self.lock();
            st.commit(volume).map_err(|e| e.to_string())?;
            held();
            st.reload(volume)
        };
        // After the lock is released: the kernel may need to call back in.
        self.forget(forget);
        Ok(())
    }
}

/// Mounts `target` of `pool` at `mountpoint` and serves it until unmounted,
/// committing every change at the end. The process should exit once it
/// returns: the ended session is left to the exit to close.
#[allow(unsafe_code)] // mallopt: the block says why it is sound
pub fn mount(
    pool: Pool,
    target: Target,
    mountpoint: &Path,
    fs_name: &str,
    opts: &MountOptions,
) -> shale_core::Result<()> {
    // Chunk buffers (up to a few hundred KiB) come and go with every read:
    // keep freed memory for the next one instead of returning it to the
    // kernel and faulting fresh zeroed pages in again.
    // SAFETY: mallopt only tunes the allocator; these values are valid.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 8 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
    raise_open_file_limit();
    let io = |e| shale_core::Error::io(mountpoint, e);
    let pool_root = pool.root().to_path_buf();
    let upper = upper::upper_dir(&pool_root).map_err(|e| shale_core::Error::io(&pool_root, e))?;
    let absolute = std::path::absolute(mountpoint).map_err(io)?;
    let shows = match &target {
        Target::Pool => None,
        Target::Volume { volume, snapshot } => Some(match snapshot {
            Some(s) => format!("{volume}@{s}"),
            None => volume.clone(),
        }),
    };
    // A snapshot never changes: mounted read-only in the kernel too, which
    // then refuses writes itself and keeps files' attributes valid while
    // they are read (on a writable mount each read marks the access time
    // stale, and the next `stat`, as `cat` makes, asked the mount again:
    // a second epoch through plain listings ran 0.63x as fast).
    let kernel_read_only = opts.read_only
        || matches!(
            &target,
            Target::Volume {
                snapshot: Some(_),
                ..
            }
        );
    let pool = Arc::new(pool);
    if !opts.read_only {
        for said in recover_all(&pool, &upper)? {
            tracing::warn!("{said}");
        }
    }
    let state = State::with_pool(
        pool,
        target,
        opts.read_only,
        opts.show_snapshot_dir,
        upper.clone(),
        &absolute,
    )?;
    let state = Arc::new(Mutex::new(state));
    let notifier = Arc::new(OnceLock::new());
    let busy_poll = Arc::new(busy_poll::BusyPoll::new(opts.busy_poll));
    let fs = ShaleFs::new(state.clone(), notifier.clone(), busy_poll.clone())?;
    let control = Arc::new(Control {
        state: state.clone(),
        notifier: notifier.clone(),
    });
    let listening =
        shale_core::coord::mounts::serve(&pool_root, &absolute, shows.as_deref(), control.clone())?;
    let threads = opts.threads.unwrap_or_else(default_threads).max(1);
    tracing::info!("serving FUSE requests on {threads} thread(s)");
    let config = session_config(fs_name, kernel_read_only, threads);
    let session = fuser::Session::new(fs, mountpoint, &config).map_err(io)?;
    let _ = notifier.set(session.notifier());
    busy_poll.watch(session.as_fd().as_raw_fd());
    stop_on_signals(state.clone(), absolute.clone()).map_err(io)?;
    start_committer(&state, control, opts.commit_interval).map_err(io)?;
    let served = serve(session);
    let committed = finish(&state, &pool_root);
    let _ = std::fs::remove_dir_all(&upper);
    drop(listening);
    served.map_err(io)?;
    committed
}

/// Serves `session` until the kernel ends it (the mount point was
/// unmounted). Its threads run under a background session, which fuser
/// would unmount by path when dropped, and so unmount whatever was mounted
/// there since (a script that unmounts and mounts again at once lost its
/// new mount): it is left to the process's exit instead (`shale mount` is
/// the only caller, and exits next).
fn serve(session: fuser::Session<ShaleFs>) -> std::io::Result<()> {
    let mut background = session.spawn()?;
    let finished = std::thread::spawn(|| Ok(()));
    let running = std::mem::replace(&mut background.guard, finished);
    let served = running
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the FUSE session panicked")));
    std::mem::forget(background);
    served
}

/// How many threads serve FUSE requests when the user does not say:
/// `$SHALE_MOUNT_THREADS` if set, else one per two CPUs, up to eight (on
/// two CPUs a second thread gained nothing measurable: see
/// `bench/results/NOTES.md`).
pub fn default_threads() -> usize {
    if let Some(n) = std::env::var("SHALE_MOUNT_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| (1..=64).contains(n))
    {
        return n;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cpus / 2).clamp(1, 8)
}

/// Raises this process's limit of open files to the most it may have: a
/// mount holds a descriptor for each file in an upper file until a commit
/// after it is closed, and the usual default of 1,024 is soon reached.
#[allow(unsafe_code)] // getrlimit, setrlimit: the block says why it is sound
fn raise_open_file_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: both calls only read or write the struct they are given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                tracing::warn!("could not raise the limit of open files");
            }
        }
    }
}

/// The options of the FUSE mount and its session, served by `threads`
/// threads.
#[allow(unsafe_code)] // geteuid: the block says why it is sound
fn session_config(fs_name: &str, read_only: bool, threads: usize) -> fuser::Config {
    let mut options = vec![
        fuser::MountOption::FSName(fs_name.to_string()),
        fuser::MountOption::Subtype("shale".into()),
        fuser::MountOption::DefaultPermissions,
    ];
    if read_only {
        options.push(fuser::MountOption::RO);
    }
    // Other users may use a root-owned mount (permissions still apply);
    // for an ordinary user that needs user_allow_other in /etc/fuse.conf.
    // SAFETY: geteuid cannot fail.
    let mut config = fuser::Config::default();
    if unsafe { libc::geteuid() } == 0 {
        config.acl = fuser::SessionACL::All;
    }
    config.mount_options = options;
    config.n_threads = Some(threads);
    // Each thread reads requests from its own clone of the device.
    config.clone_fd = threads > 1;
    config
}

/// Starts the thread that commits every `interval`, or early when files
/// held in memory pass a quarter of their budget (at most once a second);
/// on a shared catalog it also looks for other machines' commits.
fn start_committer(
    state: &Arc<Mutex<State>>,
    watcher: Arc<Control>,
    interval: Duration,
) -> std::io::Result<()> {
    let committer = state.clone();
    let (wake, woken) = std::sync::mpsc::sync_channel(1);
    state.lock().unwrap_or_else(|p| p.into_inner()).commit_soon = Some(wake);
    std::thread::Builder::new()
        .name("shale-commit".into())
        .spawn(move || loop {
            let start = std::time::Instant::now();
            if woken.recv_timeout(interval).is_ok() {
                std::thread::sleep(EARLY_COMMIT_GAP.saturating_sub(start.elapsed()));
            }
            committer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .settle_lingering();
            if let Err(e) = commit::commit_unlocked(&committer, None) {
                tracing::error!("periodic commit: {e}");
            }
            let mut st = committer.lock().unwrap_or_else(|p| p.into_inner());
            st.commit_asked = false;
            if st.pool.catalog().is_shared() {
                // Writers on other machines cannot tell this mount about
                // their commits: look for them in the catalog.
                let others: Vec<String> = st
                    .vols
                    .iter()
                    .filter(|(_, v)| v.writer.is_none())
                    .map(|(name, _)| name.clone())
                    .collect();
                drop(st);
                for volume in others {
                    watcher.changed(&volume);
                }
            }
        })
        .map(drop)
}

/// Once the kernel is done with the mount: commits what is left and lets
/// other mounts write its volumes; a failed commit is recorded for
/// `shale unmount` to report.
fn finish(state: &Mutex<State>, pool_root: &Path) -> shale_core::Result<()> {
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    let committed = st.commit_all();
    st.handles.clear();
    // Before saying the mount is gone (`shale unmount` returns when the
    // mount point record disappears).
    for v in st.vols.values_mut() {
        v.writer = None;
        // Empty after the commit (unless it failed): removed.
        v.journal = None;
    }
    drop(st);
    if let Err(e) = &committed {
        shale_core::coord::mounts::record_lost(pool_root, &e.to_string());
    }
    committed
}

/// On SIGTERM (`docker stop`, Kubernetes), SIGINT (Ctrl-C in the
/// foreground) or SIGHUP: commits what was written, then detaches the mount
/// (lazily: files still open keep working until closed), which ends the
/// session and with it the mount, through its usual final commit. A second
/// signal ends the server at once.
fn stop_on_signals(
    state: Arc<Mutex<State>>,
    mountpoint: std::path::PathBuf,
) -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    std::thread::Builder::new()
        .name("shale-signals".into())
        .spawn(move || {
            let Some(signal) = signals.forever().next() else {
                return;
            };
            tracing::warn!(
                "signal {signal}: committing, then unmounting {}",
                mountpoint.display()
            );
            if let Err(e) = commit::commit_unlocked(&state, None) {
                tracing::error!("commit on signal {signal}: {e}");
            }
            detach(&mountpoint);
            // The mount ends once the files still open are closed; a second
            // signal does not wait for them.
            if let Some(signal) = signals.forever().next() {
                tracing::warn!("signal {signal} again: stopping without waiting for open files");
                std::process::exit(128 + signal);
            }
        })?;
    Ok(())
}

/// Unmounts `mountpoint` lazily (`MNT_DETACH`), through `fusermount3` where
/// this process may not unmount itself.
#[allow(unsafe_code)] // umount2: the block says why it is sound
fn detach(mountpoint: &Path) {
    let Ok(path) = std::ffi::CString::new(mountpoint.as_os_str().as_bytes()) else {
        return;
    };
    // SAFETY: `path` is a valid NUL-terminated string.
    if unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) } == 0 {
        return;
    }
    let detached = std::process::Command::new("fusermount3")
        .args(["-u", "-z", "--"])
        .arg(mountpoint)
        .status();
    if !detached.is_ok_and(|s| s.success()) {
        tracing::error!("could not unmount {}", mountpoint.display());
    }
}
