//! The typed errors of the storage engine.

use std::path::PathBuf;

use crate::id::ObjectId;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A boxed underlying error, kept as an error's source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Everything that can go wrong in the engine. Each message names the thing
/// at fault and keeps the underlying error as its source; none gives advice
/// about a front end's flags (each front end adds its own).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file-system operation on `path` failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The catalog database failed.
    #[error("catalog: {message}")]
    Catalog {
        /// What failed.
        message: String,
        /// The database's own error, if it gave one.
        #[source]
        source: Option<BoxError>,
    },
    /// No pool exists at the path.
    #[error("no Shale pool at {}", .0.display())]
    NoPool(PathBuf),
    /// A pool already exists at the path.
    #[error("a Shale pool already exists at {}", .0.display())]
    PoolExists(PathBuf),
    /// The pool was written by a Shale that uses another format version.
    #[error("pool at {} has format version {found}; this shale reads version {supported}: {advice}", path.display())]
    UnsupportedFormat {
        /// Pool location.
        path: PathBuf,
        /// Version found in the pool.
        found: String,
        /// Version this build reads.
        supported: u32,
        /// What the user can do.
        advice: &'static str,
    },
    /// The named volume does not exist.
    #[error("volume '{0}' not found")]
    VolumeNotFound(String),
    /// The named snapshot does not exist.
    #[error("snapshot '{volume}@{name}' not found")]
    SnapshotNotFound {
        /// Volume name.
        volume: String,
        /// Snapshot name.
        name: String,
    },
    /// A volume of that name exists already.
    #[error("volume '{0}' already exists")]
    VolumeExists(String),
    /// The named workspace does not exist.
    #[error("workspace '{0}' not found")]
    WorkspaceNotFound(String),
    /// A workspace of that name exists already.
    #[error("workspace '{0}' already exists")]
    WorkspaceExists(String),
    /// A snapshot of that name exists already.
    #[error("snapshot '{volume}@{name}' already exists")]
    SnapshotExists {
        /// Volume name.
        volume: String,
        /// Snapshot name.
        name: String,
    },
    /// A deleted volume's snapshots, kept, still hold its name.
    #[error("volume '{volume}' was deleted with its {snapshots} snapshot(s) kept, which still hold the name: delete them or choose another name")]
    NameHeld {
        /// Volume name.
        volume: String,
        /// Snapshots kept.
        snapshots: u64,
    },
    /// A volume or snapshot name breaks the naming rules.
    #[error("invalid name '{name}': {reason}")]
    InvalidName {
        /// The offending name, with control characters escaped.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// An import would make the volume larger than its quota.
    #[error("quota exceeded on volume '{volume}': the result would hold {needed} bytes, the quota is {quota} bytes; the volume was left unchanged")]
    QuotaExceeded {
        /// Volume name.
        volume: String,
        /// Logical bytes the volume would hold.
        needed: u64,
        /// The quota.
        quota: u64,
    },
    /// An object is referenced but absent from the pool.
    #[error("object {0} is missing from the pool")]
    MissingObject(ObjectId),
    /// An object or file failed a consistency check.
    #[error("{what} is corrupt: {reason}")]
    Corrupt {
        /// The damaged thing (object id, pack, catalog row …).
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A path inside a volume does not exist or has the wrong type.
    #[error("{0}")]
    BadPath(String),
    /// The export target is not empty.
    #[error("{}: directory is not empty", .0.display())]
    NotEmpty(PathBuf),
    /// The caller asked the operation to stop ([`crate::progress::Progress`]);
    /// nothing it would have committed was committed.
    #[error("cancelled")]
    Cancelled,
    /// Another process changed the volume while this operation ran.
    #[error("volume '{0}' was changed by another process during this operation; nothing was committed, run it again")]
    Conflict(String),
    /// A volume or snapshot to delete is what a running mount shows.
    #[error("{what} is mounted at {}: unmount it first", at.display())]
    Mounted {
        /// `volume 'NAME'` or `snapshot 'VOLUME@NAME'`.
        what: String,
        /// The mount point.
        at: PathBuf,
    },
    /// A mount of the volume could not commit the writes made through it.
    #[error("volume '{volume}': a mount of this pool could not commit its writes: {reason}")]
    MountCommit {
        /// The volume.
        volume: String,
        /// What the mount reported.
        reason: String,
    },
    /// An error while handling one path of a volume or of a source tree.
    #[error("{path}: {source}")]
    AtPath {
        /// The path, relative to the volume or source root.
        path: String,
        /// What went wrong there.
        source: Box<Error>,
    },
    /// An argument is malformed.
    #[error("{0}")]
    InvalidArgument(String),
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A catalog error with no underlying error.
    pub fn catalog(message: impl Into<String>) -> Self {
        Error::Catalog {
            message: message.into(),
            source: None,
        }
    }

    /// Builds a corruption error.
    pub fn corrupt(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        // A full disk is the disk's fault, not the catalog's: said as such,
        // it reaches a mount's writer as ENOSPC.
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
            return Error::Io {
                path: PathBuf::from("catalog"),
                source: std::io::Error::from_raw_os_error(libc::ENOSPC),
            };
        }
        Error::Catalog {
            message: e.to_string(),
            source: Some(Box::new(e)),
        }
    }
}

/// Adds a path to `std::io::Result`s.
pub trait IoContext<T> {
    /// Maps the error into [`Error::Io`] naming `path`.
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
