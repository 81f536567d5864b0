//! The arguments of `shale pool …` (creating, describing and keying pools).

use std::path::PathBuf;

use clap::Subcommand;

/// `shale pool …`
#[derive(Subcommand, Debug)]
pub enum PoolCmd {
    /// Create a new, empty pool.
    Init {
        /// Where to create it: a directory or s3://BUCKET/PREFIX [default: --pool].
        path: Option<PathBuf>,
        /// Average chunk size for file content (power of two, 16KiB to 4MiB;
        /// see "128 KiB average chunks" in bench/results/NOTES.md).
        #[arg(long, value_name = "SIZE", default_value = "128KiB")]
        chunk_size: String,
        /// For an object-store pool that several machines share: keep its
        /// catalog in this PostgreSQL database (postgres://USER@HOST[:PORT]/DB;
        /// the password comes from PGPASSWORD and is never stored in the pool).
        #[arg(long, value_name = "URL")]
        catalog: Option<String>,
        /// For a local pool that the members of a group use too: its
        /// directories 2770 with that group, its files 0660 (default: its
        /// owner's alone, 0700 and 0600).
        #[arg(long, value_name = "NAME")]
        group: Option<String>,
        /// Encrypt everything the pool stores, under the key given with
        /// --key-file, SHALE_KEY_FILE or SHALE_PASSPHRASE (asked for at a
        /// terminal when none is).
        #[arg(long)]
        encrypt: bool,
        /// The name of that first key in the pool's key ring.
        #[arg(
            long,
            value_name = "NAME",
            requires = "encrypt",
            default_value = "first"
        )]
        key_name: String,
        /// Share the master key of this encrypted pool (opened with the
        /// same key): mirrors between the two then send blobs as sealed,
        /// without decrypting them.
        #[arg(long, value_name = "POOL", requires = "encrypt")]
        same_key_as: Option<std::ffi::OsString>,
    },
    /// Volumes, snapshots, the space saved by sharing, and what gc would reclaim.
    Info,
    /// The keys that open an encrypted pool.
    #[command(subcommand)]
    Key(crate::keys::KeyCmd),
    /// Seal an encrypted pool again under a new master key, every pack
    /// rewritten; afterwards only the key given opens it (add the others
    /// again). Needs the pool to itself: no writer, no mount (on other
    /// machines of a shared pool too). For a full revocation: a removed
    /// key's holder who kept the old master key reads none of it then.
    Rekey,
    /// Raise a pool made by an older release to the format this one
    /// writes (version 3), from which in-place edits through a mount are
    /// stored as deltas of the chunks they change. Releases before it
    /// cannot open the pool afterwards: upgrade once every machine that
    /// uses the pool runs this release.
    Upgrade,
    /// Make this machine the one working on an object-store pool with an
    /// SQLite catalog (used from one machine at a time; a pool with a
    /// PostgreSQL catalog needs no attach).
    Attach,
    /// Close the pool's local files (or an object-store pool's cache) to
    /// everyone its description does not name: directories 0700 and files
    /// 0600, or 2770 and 0660 with its group for a pool made with
    /// --group. Safe while mounts and other commands use the pool.
    FixPermissions,
}
