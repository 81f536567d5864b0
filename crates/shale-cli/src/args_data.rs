//! The arguments of the data-movement commands: `shale sync` (and its
//! saved syncs), `shale scan`, `shale cache`, and the filters sync and
//! import share.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `shale sync …`
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SyncArgs {
    /// Saved syncs (a source named `create`, `list`, `run` or `delete`:
    /// write it `./create`).
    #[command(subcommand)]
    pub saved: Option<SavedSyncCmd>,
    /// Where to copy from.
    #[arg(required = true)]
    pub src: Option<std::ffi::OsString>,
    /// Where to copy to (a snapshot is read-only: not a destination).
    #[arg(required = true)]
    pub dst: Option<std::ffi::OsString>,
    /// How to sync.
    #[command(flatten)]
    pub how: SyncFlags,
    /// Print what would be done; change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Also write the report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Exit with status 1 when anything was skipped (a key that cannot be
    /// a local name, a symlink a store cannot hold), after syncing the rest.
    #[arg(long)]
    pub strict: bool,
}

/// The flags of a sync that a saved sync keeps.
#[derive(Args, Debug, Clone)]
pub struct SyncFlags {
    /// Remove from DST what SRC lacks.
    #[arg(long)]
    pub delete: bool,
    /// Compare files of equal size by content (stored hashes where a side
    /// has them: ETags, Shale chunk ids), not by modification time.
    #[arg(long)]
    pub checksum: bool,
    /// Files copied at once.
    #[arg(long, short = 'j', default_value_t = 32)]
    pub jobs: usize,
    /// Bandwidth limit per second, all copies together (`10MiB`, `1G`).
    #[arg(long, value_name = "RATE")]
    pub bwlimit: Option<String>,
    /// Further attempts of a failed copy to or from an object store.
    #[arg(long, default_value_t = 3)]
    pub retries: u32,
    /// After syncing into a volume, snapshot it (named NAME, else by time).
    #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "")]
    pub snapshot: Option<String>,
    /// What to leave out.
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// `shale sync create|list|run|delete`: saved syncs, kept in the pool's
/// catalog.
#[derive(Subcommand, Debug)]
pub enum SavedSyncCmd {
    /// Save a sync under NAME, to run by name or on a schedule (nothing is
    /// copied now). Credentials are not saved: each run takes them from
    /// its environment.
    Create {
        /// Its name.
        name: String,
        /// Where to copy from.
        src: std::ffi::OsString,
        /// Where to copy to.
        dst: std::ffi::OsString,
        /// How to sync.
        #[command(flatten)]
        how: Box<SyncFlags>,
        /// Run it every INTERVAL (`1h`, `30m`, `1day`) with `shale sync run
        /// --due`, from a timer.
        #[arg(long, value_name = "INTERVAL")]
        every: Option<String>,
    },
    /// List saved syncs: last run, its outcome, when next due.
    List,
    /// Run a saved sync (its report is kept with it), or with --due every
    /// scheduled one that is due.
    Run {
        /// The saved sync.
        #[arg(required_unless_present = "due")]
        name: Option<String>,
        /// Run every saved sync whose interval has (90%) passed.
        #[arg(long, conflicts_with = "name")]
        due: bool,
    },
    /// Forget a saved sync (nothing it copied is touched).
    Delete {
        /// The saved sync.
        name: String,
    },
}

/// `--exclude`, `--include`, `--exclude-from`: paths left out of a sync
/// or an import (gitignore-style globs).
#[derive(Args, Debug, Clone, Default)]
pub struct FilterArgs {
    /// Leave out paths matching PATTERN, a gitignore-style glob: `*.tmp`,
    /// `__pycache__` (any depth), `/build` (at the root), `.git/`
    /// (directories only), `**`. Left-out paths are neither copied nor
    /// deleted. Repeatable.
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Take back paths an --exclude matched (not inside an excluded
    /// directory); alone it leaves nothing out. To keep only `*.py`:
    /// `--exclude '*' --include '*/' --include '*.py'`. Repeatable.
    #[arg(long, value_name = "PATTERN")]
    pub include: Vec<String>,
    /// Read --exclude patterns from FILE, one per line, .gitignore syntax
    /// (`#` comments, `!` to take back). Repeatable.
    #[arg(long, value_name = "FILE")]
    pub exclude_from: Vec<PathBuf>,
}

impl FilterArgs {
    /// The filter these flags describe.
    pub fn filter(&self) -> anyhow::Result<shale_core::filter::Filter> {
        Ok(shale_core::filter::Filter::new(
            &shale_core::filter::FilterSpec {
                exclude: self.exclude.clone(),
                include: self.include.clone(),
                exclude_from: self.exclude_from.clone(),
            },
        )?)
    }
}

/// `shale scan …`
#[derive(Args, Debug)]
pub struct ScanArgs {
    /// A path, s3://BUCKET/PREFIX, or volume:NAME[@SNAPSHOT][/PATH].
    pub place: std::ffi::OsString,
    /// Also find files with the same content (reads files whose size
    /// another shares, unless the side stores their hashes).
    #[arg(long)]
    pub dedup: bool,
    /// Also write the report as a self-contained HTML page with charts.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

/// `shale cache …`
#[derive(Subcommand, Debug)]
pub enum CacheCmd {
    /// Fetch a volume's (or snapshot's, or paths') data from the object
    /// store into this machine's read cache before a job reads it; refused
    /// when it would not fit (SHALE_READ_CACHE_SIZE).
    Warm {
        /// VOLUME or VOLUME@SNAPSHOT.
        spec: String,
        /// Paths inside it (default: all of it).
        paths: Vec<String>,
        /// Windows fetched at once.
        #[arg(long, short = 'j', default_value_t = 32)]
        jobs: usize,
    },
}
