//! The arguments of the commands around the data: `shale mount`, `run`,
//! `diff`, `serve`, `token` and `workspace`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// Arguments of `mount`.
#[derive(Args, Debug)]
pub struct MountArgs {
    /// An empty directory to mount on.
    pub mountpoint: PathBuf,
    /// Mount one volume or snapshot instead of the whole pool.
    #[arg(long, value_name = "VOLUME[@SNAPSHOT]")]
    pub volume: Option<String>,
    /// Refuse every change (snapshots are always read-only).
    #[arg(long)]
    pub read_only: bool,
    /// Seconds between commits of changes not yet fsync'd.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub commit_interval: u64,
    /// Microseconds the server watches for the next request after answering
    /// one, before it sleeps: faster for programs working through files one
    /// by one, at the cost of some CPU; 0 turns it off.
    #[arg(long, value_name = "MICROSECONDS", default_value_t = shale_fuse::DEFAULT_BUSY_POLL.as_micros() as u64)]
    pub busy_poll_us: u64,
    /// Threads serving FUSE requests, each on its own clone of the FUSE
    /// device (default: one per two CPUs, 1 to 8; or $SHALE_MOUNT_THREADS).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub threads: Option<u16>,
    /// Stay in the foreground (for containers) instead of detaching.
    #[arg(long)]
    pub foreground: bool,
    /// List `.snapshot` in volume roots (it is always reachable by name).
    #[arg(long)]
    pub show_snapshot_dir: bool,
}

/// `shale token …`
#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Make a token and print it, once (only its hash is kept).
    Create {
        /// admin (tokens and the audit log too), write (snapshot, clone,
        /// restore, delete) or read.
        #[arg(long, value_name = "ROLE")]
        role: String,
        /// Limit it to this volume and its clones (not for admin).
        #[arg(long, value_name = "NAME")]
        volume: Option<String>,
        /// Stop it working after this long (`30d`, `12h`).
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
        /// What it is for.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Every token: number, role, volume, note, created, expires, revoked.
    List,
    /// Make a token stop working.
    Revoke {
        /// Its number (from `token list`).
        id: i64,
    },
}

/// Arguments of `serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on; beyond loopback only with TLS.
    #[arg(long, value_name = "ADDRESS:PORT", default_value = "127.0.0.1:8470")]
    pub listen: std::net::SocketAddr,
    /// PEM certificate chain for TLS.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// How often to record the pool's totals for the dashboard's space
    /// history (also at start and after each gc).
    #[arg(long, value_name = "INTERVAL", default_value = "10m")]
    pub sample_every: String,
    /// Also take the snapshots policies have due and run the saved syncs
    /// that are due (as `snapshot policy run` and `sync run --due` from a
    /// timer would), checking every INTERVAL (default 1m) and at start.
    #[arg(long, value_name = "INTERVAL", num_args = 0..=1, default_missing_value = "1m")]
    pub run_schedules: Option<String>,
}

/// `shale workspace …`
#[derive(Subcommand, Debug)]
pub enum WorkspaceCmd {
    /// Make a volume, mount it and start JupyterLab on it; prints its URL.
    Create {
        /// The workspace's name (its volume takes it too).
        name: String,
        /// Its volume's quota (e.g. 200GiB); none by default.
        #[arg(long, value_name = "SIZE")]
        size: Option<String>,
        /// Where its JupyterLab listens.
        #[command(flatten)]
        listen: ListenArgs,
        /// Also mount VOLUME[@SNAPSHOT] at /PATH inside it (read-only;
        /// `:rw` at the end to write a volume); repeatable.
        #[arg(long, value_name = "VOLUME[@SNAPSHOT]:/PATH[:rw]")]
        data: Vec<String>,
    },
    /// A new running workspace from a workspace (or volume), or one of its
    /// snapshots: constant time, whatever it holds.
    Clone {
        /// The new workspace's name.
        name: String,
        /// WORKSPACE[@SNAPSHOT] or VOLUME[@SNAPSHOT].
        #[arg(long, value_name = "SOURCE[@SNAPSHOT]")]
        from: String,
        /// Where its JupyterLab listens.
        #[command(flatten)]
        listen: ListenArgs,
        /// Also mount VOLUME[@SNAPSHOT] at /PATH inside it; repeatable.
        #[arg(long, value_name = "VOLUME[@SNAPSHOT]:/PATH[:rw]")]
        data: Vec<String>,
    },
    /// Snapshot a workspace (running or not): every file saved before.
    Snapshot {
        /// The workspace.
        name: String,
        /// The snapshot's name [default: shale.YYYYMMDDhhmmss].
        snapshot: Option<String>,
    },
    /// List a workspace's snapshots.
    Snapshots {
        /// The workspace.
        name: String,
    },
    /// List workspaces: state, URL, volume, size, snapshots, origin.
    List,
    /// Put a workspace back to a snapshot (stopping and restarting it).
    Restore {
        /// The workspace.
        name: String,
        /// The snapshot.
        snapshot: String,
        /// Discard the changes made since without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Start a stopped workspace (or one whose server died).
    Start {
        /// The workspace.
        name: String,
        /// Where its JupyterLab listens.
        #[command(flatten)]
        listen: ListenArgs,
    },
    /// Stop a workspace's server and unmount it, committing its files.
    Stop {
        /// The workspace.
        name: String,
    },
    /// Stop and delete a workspace and (unless --keep-volume) its volume.
    Delete {
        /// The workspace.
        name: String,
        /// Keep its volume and snapshots.
        #[arg(long)]
        keep_volume: bool,
        /// Delete the volume without asking.
        #[arg(long)]
        yes: bool,
    },
}

/// Where a workspace's JupyterLab listens.
#[derive(Args, Debug)]
pub struct ListenArgs {
    /// Port [default: the one it had, else a free one].
    #[arg(long)]
    pub port: Option<u16>,
    /// The token requests must carry [default: a new random one].
    #[arg(long)]
    pub token: Option<String>,
    /// Address to listen on [default: 127.0.0.1]; beyond loopback only
    /// with --certfile and --keyfile.
    #[arg(long)]
    pub ip: Option<std::net::IpAddr>,
    /// TLS certificate (PEM).
    #[arg(long, value_name = "FILE")]
    pub certfile: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "FILE")]
    pub keyfile: Option<PathBuf>,
}

/// Arguments of `run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Dataset volume: snapshotted as run-N and mounted read-only at
    /// $SHALE_DATASET_PATH for the command; VOLUME@SNAPSHOT mounts that
    /// snapshot instead.
    #[arg(long, value_name = "VOLUME[@SNAPSHOT]")]
    pub dataset: String,
    /// Model volume (created if missing): mounted read-write at
    /// $SHALE_MODEL_PATH, snapshotted as run-N after a successful exit.
    #[arg(long, value_name = "VOLUME")]
    pub model: Option<String>,
    /// Also log the run to MLflow (needs the shale Python package and mlflow).
    #[arg(long)]
    pub mlflow: bool,
    /// Also write the run's record as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
    /// Label the run's record (a pipeline's run id, its task); repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// Parses a run label, `KEY=VALUE` with a non-empty key.
fn parse_label(s: &str) -> std::result::Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

/// Arguments of `diff`.
#[derive(Args, Debug)]
pub struct DiffArgs {
    /// VOLUME or VOLUME@SNAPSHOT.
    pub a: String,
    /// VOLUME or VOLUME@SNAPSHOT.
    pub b: String,
    /// Print counts and bytes instead of paths.
    #[arg(long)]
    pub stat: bool,
}
