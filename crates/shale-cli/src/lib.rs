//! `shale`: the command-line interface to Shale pools.
//!
//! This crate only parses arguments, calls `shale-core` and prints results;
//! it holds no storage logic. It is a library so that the Python package
//! can carry the same command ([`run_cli`]); `main.rs` only calls it.
#![deny(unsafe_code)]

mod args_data;
mod args_platform;
mod args_pool;
mod commands;
mod errors;
mod keys;
mod mirror;
mod mount;
mod output;
mod progress;
mod remote;
mod remote_cmds;
mod retention;
mod run;
mod saved_sync;
mod server;
mod sync;
mod volume;
mod workspace;

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::OnceLock;

use clap::{Args, Parser, Subcommand};
use errors::message;

pub use args_data::{CacheCmd, FilterArgs, SavedSyncCmd, ScanArgs, SyncArgs, SyncFlags};
pub use args_platform::{
    DiffArgs, ListenArgs, MountArgs, RunArgs, ServeArgs, TokenCmd, WorkspaceCmd,
};
pub use args_pool::PoolCmd;

/// Versioned data volumes with constant-time snapshots and clones.
#[derive(Parser, Debug)]
#[command(name = "shale", version, about, propagate_version = true)]
pub struct Cli {
    /// Pool directory, or s3://BUCKET/PREFIX [default: $SHALE_POOL, else $XDG_DATA_HOME/shale/pool]
    #[arg(long, global = true, env = "SHALE_POOL", value_name = "PATH|URL")]
    pub pool: Option<PathBuf>,
    /// Endpoint of an S3-compatible store (over AWS_ENDPOINT_URL).
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Region of the object store (over AWS_REGION).
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,
    /// Never ask a cloud's instance-metadata service for object-store
    /// credentials (also SHALE_NO_INSTANCE_METADATA=1; never asked for a
    /// custom --endpoint).
    #[arg(long, global = true)]
    pub no_instance_metadata: bool,
    /// The key file that opens an encrypted pool (over SHALE_KEY_FILE and
    /// SHALE_PASSPHRASE).
    #[arg(long, global = true, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Work through a `shale serve` server instead of opening the pool
    /// (volume and snapshot commands, lineage).
    #[arg(long, global = true, env = "SHALE_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// The token for --server.
    #[arg(
        long,
        global = true,
        env = "SHALE_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// Print nothing but errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// How pools are opened: the environment and the flags above, read
    /// once after parsing ([`with_options`]).
    #[arg(skip)]
    pub options: shale_core::PoolOptions,
}

/// `cli` with its pool options read from the environment, the flags
/// `--endpoint` and `--region` over the variables they stand for.
fn with_options(mut cli: Cli) -> anyhow::Result<Cli> {
    cli.options = shale_core::PoolOptions::from_env()?;
    let store = &mut cli.options.store.config;
    if let Some(e) = &cli.endpoint {
        store.insert("AWS_ENDPOINT_URL".into(), e.clone());
    }
    if let Some(r) = &cli.region {
        store.insert("AWS_REGION".into(), r.clone());
    }
    cli.options.store.no_instance_metadata |= cli.no_instance_metadata;
    if let Some(f) = &cli.key_file {
        cli.options.key = Some(shale_core::config::KeySource::File(f.clone()));
    }
    if cli.options.key.is_none() {
        cli.options.key = keys::ask_if_encrypted(&cli)?;
    }
    Ok(cli)
}

/// Top-level commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create or describe a pool.
    #[command(subcommand)]
    Pool(PoolCmd),
    /// Create, list, clone, import into and export volumes.
    #[command(subcommand)]
    Volume(VolumeCmd),
    /// Create, list, delete and restore snapshots.
    #[command(subcommand)]
    Snapshot(SnapshotCmd),
    /// Show what changed between two volumes or snapshots.
    Diff(DiffArgs),
    /// Mount the pool, a volume or a snapshot as a directory.
    Mount(MountArgs),
    /// Unmount a directory mounted by `shale mount`.
    Unmount {
        /// The mount point.
        mountpoint: PathBuf,
        /// Unmount even if the writes made through the mount cannot be
        /// committed first (they are then lost).
        #[arg(long)]
        force: bool,
    },
    /// Free what no volume, snapshot or running operation can reach.
    Gc {
        /// Report what would be freed, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run a command on a snapshot of a dataset volume, snapshot its model
    /// volume after, and record both as lineage.
    Run(RunArgs),
    /// Where a volume or snapshot came from and what was made from it.
    Lineage {
        /// VOLUME or VOLUME@SNAPSHOT.
        spec: String,
        /// Print a Graphviz (dot) graph.
        #[arg(long)]
        dot: bool,
    },
    /// Volumes that follow a volume of another pool, snapshot by snapshot.
    #[command(subcommand)]
    Mirror(MirrorCmd),
    /// Make DST hold what SRC holds, copying only what differs: local
    /// paths, s3://BUCKET/PREFIX (gs://, az://), volume:NAME[@SNAPSHOT][/PATH].
    Sync(Box<SyncArgs>),
    /// Report what a directory, bucket prefix or volume holds: counts,
    /// sizes, ages, largest files and directories, extensions, duplicates.
    Scan(ScanArgs),
    /// This machine's read cache of an object-store pool.
    #[command(subcommand)]
    Cache(CacheCmd),
    /// JupyterLab workspaces whose root directory is a volume: create,
    /// snapshot, clone, restore, start, stop, delete.
    #[command(subcommand)]
    Workspace(WorkspaceCmd),
    /// Tokens for `shale serve`: create (shown once), list, revoke.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Serve the pool's volumes and snapshots as an authenticated JSON API
    /// (/api/v1; tokens from `shale token create`).
    Serve(ServeArgs),
    /// An MCP server on stdin/stdout for AI assistants: tools to list,
    /// snapshot, clone, restore, diff and trace volumes.
    Mcp,
    /// Check that every object the volumes and snapshots reach is present and sound.
    Verify {
        /// Also re-read and re-hash every stored byte.
        #[arg(long)]
        read_data: bool,
        /// Check only this volume and its snapshots.
        #[arg(long, value_name = "NAME")]
        volume: Option<String>,
    },
}

/// `shale mirror …` (relationships are kept on the destination pool, `--pool`)
#[derive(Subcommand, Debug)]
pub enum MirrorCmd {
    /// Make VOLUME (new) a mirror of a volume of another pool, and transfer
    /// its snapshots.
    Create {
        /// The destination volume, created here.
        volume: String,
        /// POOL::VOLUME: the source pool (a path or URL) and volume.
        #[arg(long, value_name = "POOL::VOLUME")]
        source: String,
        /// Send every newer snapshot (all) or only the newest (latest).
        #[arg(long, default_value = "all")]
        policy: String,
        /// Create the relationship only; transfer at the next update.
        #[arg(long)]
        no_transfer: bool,
    },
    /// Transfer the source's new snapshots.
    Update {
        /// The mirror to update (or --all).
        volume: Option<String>,
        /// Every mirror of the pool.
        #[arg(long)]
        all: bool,
        /// Keep updating every INTERVAL (e.g. 5m, 30s) until stopped.
        #[arg(long, value_name = "INTERVAL")]
        watch: Option<String>,
        /// When the sides share no snapshot, transfer the source's again.
        #[arg(long)]
        force_baseline: bool,
        /// Bandwidth limit per second (`10MiB`).
        #[arg(long, value_name = "RATE")]
        bwlimit: Option<String>,
    },
    /// Every mirror: source, last snapshot, lag, last transfer, state.
    List,
    /// Make a mirror writable (updates stop until resync).
    Break {
        /// The mirror.
        volume: String,
    },
    /// Mirror again after a break: this side's changes are kept in a
    /// snapshot resync-TIME, then replaced by the source's.
    Resync {
        /// The mirror.
        volume: String,
    },
    /// End the relationship; the volume stays, writable.
    Delete {
        /// The mirror.
        volume: String,
    },
}

/// `shale volume …`
#[derive(Subcommand, Debug)]
pub enum VolumeCmd {
    /// Create a volume, empty or holding a copy of a directory.
    Create {
        /// Volume name.
        name: String,
        /// Directory to copy in.
        #[arg(long, value_name = "DIR")]
        from: Option<PathBuf>,
        /// Quota (e.g. 500GiB, 2T).
        #[arg(long, value_name = "SIZE")]
        size: Option<String>,
        /// What of --from to leave out.
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// List volumes.
    List,
    /// Describe one volume.
    Info {
        /// Volume name.
        name: String,
        /// Also compute the bytes deleting it (with its snapshots) would free.
        #[arg(long)]
        space: bool,
    },
    /// Delete a volume and its snapshots (clones of it are unaffected).
    Delete {
        /// Volume name.
        name: String,
        /// Keep its snapshots: they stay listable, mountable and clonable
        /// as NAME@SNAPSHOT, and hold the name, until deleted.
        #[arg(long)]
        keep_snapshots: bool,
    },
    /// Make a new volume that shares all data with a volume or snapshot.
    Clone {
        /// New volume name.
        new: String,
        /// Source: VOLUME or VOLUME@SNAPSHOT.
        #[arg(long, value_name = "VOLUME[@SNAPSHOT]")]
        from: String,
    },
    /// Set a volume's quota, the size its mounts show (`none`: no limit).
    /// A quota below what the volume holds is refused.
    Resize {
        /// Volume name.
        name: String,
        /// New quota (e.g. 500GiB, 2T), or `none`.
        #[arg(long, value_name = "SIZE")]
        size: String,
    },
    /// Copy a directory's contents into a volume.
    Import {
        /// Volume name.
        name: String,
        /// Source directory.
        dir: PathBuf,
        /// Directory inside the volume to import into.
        #[arg(long, value_name = "PATH")]
        to: Option<String>,
        /// Also remove what DIR does not have (exact mirror).
        #[arg(long)]
        delete: bool,
        /// Compare file contents, not size, mtime and mode.
        #[arg(long)]
        checksum: bool,
        /// What of DIR to leave out (the volume's entries there are kept).
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Write a volume or snapshot out to a directory.
    Export(ExportArgs),
}

/// Arguments of `volume export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// VOLUME or VOLUME@SNAPSHOT.
    pub spec: String,
    /// Target directory (new or empty).
    pub dir: PathBuf,
    /// Export only this path inside the volume.
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,
    /// Write into a non-empty directory.
    #[arg(long)]
    pub force: bool,
}

/// `shale snapshot …`
#[derive(Subcommand, Debug)]
pub enum SnapshotCmd {
    /// Take a snapshot (default name shale.YYYYMMDDhhmmss, UTC).
    Create {
        /// Volume name.
        volume: String,
        /// Snapshot name (with --keep or --keep-days: the series' prefix).
        name: Option<String>,
        /// Keep the newest N of this series: the snapshot is named
        /// NAME.YYYYMMDDhhmmss (NAME defaults to shale), and older
        /// snapshots of the series are deleted after it is taken, except
        /// those a clone, run or mirror depends on or that are mounted
        /// (said which, and why). Other snapshots are never touched.
        #[arg(long, value_name = "N")]
        keep: Option<usize>,
        /// Also delete the series' snapshots older than DAYS (the newest
        /// stays).
        #[arg(long, value_name = "DAYS")]
        keep_days: Option<u64>,
    },
    /// Hourly, daily and weekly snapshots, taken and pruned by
    /// `shale snapshot policy run` (from cron or a systemd timer).
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// List snapshots of one volume or of all.
    List {
        /// Volume name.
        volume: Option<String>,
        /// Also compute the bytes deleting each snapshot would free.
        #[arg(long)]
        space: bool,
    },
    /// Delete a snapshot.
    Delete {
        /// Volume name.
        volume: String,
        /// Snapshot name.
        name: String,
    },
    /// Put a volume back to a snapshot.
    Restore {
        /// Volume name.
        volume: String,
        /// Snapshot name.
        name: String,
    },
}

/// `shale snapshot policy …`
#[derive(Subcommand, Debug)]
pub enum PolicyCmd {
    /// Set how many hourly, daily and weekly snapshots a volume keeps
    /// (series hourly.*, daily.*, weekly.*); all 0 removes its policy.
    Set {
        /// Volume name.
        volume: String,
        /// Hourly snapshots kept.
        #[arg(long, value_name = "N", default_value_t = 0)]
        hourly: u32,
        /// Daily snapshots kept.
        #[arg(long, value_name = "N", default_value_t = 0)]
        daily: u32,
        /// Weekly snapshots kept.
        #[arg(long, value_name = "N", default_value_t = 0)]
        weekly: u32,
    },
    /// List the policies.
    List,
    /// Take the snapshots that are due (a class is due when its newest
    /// snapshot is at least 90% of its period old) and prune each class
    /// to its count. Run it from a timer, e.g. hourly.
    Run,
}

/// Parses the command line; a usage error becomes one line on stderr and
/// exit status 2, like every other error (help and version print as usual).
fn parse_args(args: Vec<OsString>) -> Result<Cli, i32> {
    match Cli::try_parse_from(args) {
        Ok(cli) => Ok(cli),
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            Err(0)
        }
        Err(e) => {
            let rendered = e.to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            // A message ending in ':' lists what it means on the lines
            // after (missing arguments): keep them on the one line.
            let listed: Vec<&str> = if first.ends_with(':') {
                rendered
                    .lines()
                    .skip(1)
                    .map(str::trim)
                    .take_while(|l| !l.is_empty())
                    .collect()
            } else {
                Vec::new()
            };
            let first = if listed.is_empty() {
                first.to_string()
            } else {
                format!("{first} {}", listed.join(", "))
            };
            eprintln!("shale: error: {first} (see 'shale --help')");
            Err(2)
        }
    }
}

/// How this program runs itself again (for background mounts); set by
/// embedders such as the Python package, whose process is not `shale`.
static REEXEC: OnceLock<Vec<OsString>> = OnceLock::new();

/// Sets the command that runs this program again (program and leading
/// arguments); the first call wins. Without it, the current executable.
pub fn set_reexec(command: Vec<OsString>) {
    if !command.is_empty() {
        let _ = REEXEC.set(command);
    }
}

/// The Python interpreter this program runs in, when it runs as the
/// Python package (`python -m shale`).
pub(crate) fn embedding_python() -> Option<PathBuf> {
    let c = REEXEC.get()?;
    (c.len() >= 3 && c[1] == "-m" && c[2] == "shale").then(|| PathBuf::from(&c[0]))
}

/// The command that runs this program again.
pub(crate) fn reexec() -> std::io::Result<std::process::Command> {
    match REEXEC.get() {
        Some(c) => {
            let mut cmd = std::process::Command::new(&c[0]);
            cmd.args(&c[1..]);
            Ok(cmd)
        }
        None => Ok(std::process::Command::new(std::env::current_exe()?)),
    }
}

/// Runs the command line `args` (program name first); returns the exit
/// status: 0 on success, 1 on failure, 2 for a usage error, and for
/// `shale run` the command's own status.
pub fn run_cli(args: Vec<OsString>) -> i32 {
    let cli = match parse_args(args).map(with_options) {
        Ok(Ok(cli)) => cli,
        Ok(Err(err)) => {
            eprintln!("shale: error: {}", message(&err));
            return 1;
        }
        Err(code) => return code,
    };
    // A second call in one process (the Python package) keeps the first setup.
    // On a terminal: plain lines. In a file (a background mount's log):
    // with the time, without colour codes.
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logger = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SHALE_LOG").unwrap_or_else(|_| {
                // fuser logs an error when the mount it serves is unmounted
                // from outside, the normal way to stop it: quiet unless
                // SHALE_LOG asks for it.
                tracing_subscriber::EnvFilter::new(if cli.quiet {
                    "error,fuser::mnt=off"
                } else {
                    "warn,fuser::mnt=off"
                })
            }),
        )
        .with_writer(std::io::stderr)
        // A background mount's stderr is a log file in the pool: on a full
        // disk, reporting the failed write (with `eprintln!`, which panics
        // when it cannot write) would take the mount down with it.
        .log_internal_errors(false)
        .with_ansi(terminal)
        .with_target(false);
    let _ = if terminal {
        logger.without_time().try_init()
    } else {
        logger.try_init()
    };
    quiet_on_closed_pipe(&cli.command);
    let result = match remote::from_cli(&cli) {
        Err(e) => Err(e),
        Ok(Some(server)) => remote_cmds::run(&cli, &server).map(|()| 0),
        Ok(None) => match &cli.command {
            Command::Run(args) => commands::pool_path(&cli).and_then(|p| run::run(&cli, &p, args)),
            _ => commands::run(&cli).map(|()| 0),
        },
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("shale: error: {}", message(&err));
            1
        }
    }
}

/// `shale volume list | head`: a command that only prints ends quietly
/// when its reader goes away (the default SIGPIPE), instead of panicking
/// on a failed print. Commands that serve, mount, transfer or supervise
/// keep Rust's ignored SIGPIPE: a peer that goes away must not kill them.
#[allow(unsafe_code)] // signal(2): the block says why it is sound
fn quiet_on_closed_pipe(command: &Command) {
    let long_lived = matches!(
        command,
        Command::Mount(_)
            | Command::Serve(_)
            | Command::Mcp
            | Command::Workspace(_)
            | Command::Run(_)
            | Command::Sync(_)
            | Command::Cache(_)
            | Command::Mirror(_)
    );
    if !long_lived {
        // SAFETY: setting a signal's disposition to its default has no
        // preconditions; no handler of ours is replaced.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
}
