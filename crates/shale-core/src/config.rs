//! Settings of this machine and process for opening pools: built once at
//! the edge (the CLI's flags and environment, the Python package's
//! arguments) and passed in. Nothing else in the core reads the process
//! environment; [`PoolOptions::from_env`] is the one place that does, for
//! front ends to call.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};

/// How pools are opened on this machine. Its `Debug` form shows no secret.
#[derive(Clone)]
#[non_exhaustive]
pub struct PoolOptions {
    /// Where object-store pools keep their per-machine cache (catalog,
    /// staging, read cache, mounts); `None`: such pools cannot be opened.
    pub cache_dir: Option<PathBuf>,
    /// Size limit of an object-store pool's read cache, in bytes (0: none).
    pub read_cache_bytes: u64,
    /// How object stores are reached.
    pub store: StoreOptions,
    /// How long a lost PostgreSQL catalog connection is retried.
    pub catalog_retry: Duration,
    /// The PostgreSQL password when the catalog URL has none.
    pub catalog_password: Option<String>,
    /// Threads for file I/O (import, export, directory walks).
    pub io_threads: usize,
    /// How long a writer lease or session on a shared catalog lasts unless
    /// renewed (renewed every third of it).
    pub lease: Duration,
    /// The key that opens encrypted pools (None: they cannot be opened).
    pub key: Option<KeySource>,
}

/// Where the key of an encrypted pool comes from. Its `Debug` form shows
/// no secret.
#[derive(Clone)]
pub enum KeySource {
    /// A key file (at least 32 bytes; e.g. `head -c 32 /dev/urandom`).
    File(PathBuf),
    /// A passphrase (stretched with Argon2id).
    Passphrase(zeroize::Zeroizing<String>),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::File(p) => write!(f, "KeySource::File({})", p.display()),
            KeySource::Passphrase(_) => f.write_str("KeySource::Passphrase(…)"),
        }
    }
}

impl KeySource {
    /// The user key it gives: the key file read, or the passphrase.
    pub fn user_key(&self) -> Result<crate::crypt::keyring::UserKey> {
        use crate::crypt::keyring::UserKey;
        match self {
            KeySource::File(path) => std::fs::read(path)
                .map(|b| UserKey::File(zeroize::Zeroizing::new(b)))
                .map_err(|e| {
                    Error::InvalidArgument(format!("cannot read key file {}: {e}", path.display()))
                }),
            KeySource::Passphrase(p) => Ok(UserKey::Passphrase(p.clone())),
        }
    }

    /// How to name it to a user (`key file K`, `passphrase`).
    pub fn describe(&self) -> String {
        match self {
            KeySource::File(p) => format!("key file {}", p.display()),
            KeySource::Passphrase(_) => "passphrase".into(),
        }
    }
}

/// How object stores are reached. Its `Debug` form shows the settings'
/// names, not their values (credentials are among them).
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct StoreOptions {
    /// How long a failing request is retried (`None`: `object_store`'s
    /// default of 180 s; zero: not at all).
    pub retry: Option<Duration>,
    /// The store client's settings by their standard variable names
    /// (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT_URL`, `GOOGLE_…`, `AZURE_…`),
    /// as the providers' own tools read them.
    pub config: BTreeMap<String, String>,
    /// Never ask a cloud's instance-metadata service for credentials (it
    /// is never asked for a store at a custom endpoint either).
    pub no_instance_metadata: bool,
    /// The AWS shared credentials file, read (if it exists, is its
    /// owner's alone, and the environment gives no keys) for the profile
    /// `AWS_PROFILE` names, else `default`.
    pub credentials_file: Option<PathBuf>,
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field("retry", &self.retry)
            .field("config", &self.config.keys().collect::<Vec<_>>())
            .field("no_instance_metadata", &self.no_instance_metadata)
            .field("credentials_file", &self.credentials_file)
            .finish()
    }
}

impl std::fmt::Debug for PoolOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let password = self.catalog_password.as_ref().map(|_| "****");
        f.debug_struct("PoolOptions")
            .field("cache_dir", &self.cache_dir)
            .field("read_cache_bytes", &self.read_cache_bytes)
            .field("store", &self.store)
            .field("catalog_retry", &self.catalog_retry)
            .field("catalog_password", &password)
            .field("io_threads", &self.io_threads)
            .field("lease", &self.lease)
            .field("key", &self.key)
            .finish()
    }
}

impl StoreOptions {
    /// The setting `key`, if given and not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.config
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The settings whose names start with `prefix`.
    pub fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.config
            .iter()
            .filter(move |(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Threads for file I/O by default: with cold caches, reading and writing
/// many files is bound by how many requests are in flight, not by cores
/// (measured: importing 20,000 files cold took 4.9–7.0 s with 2 threads,
/// 3.4–4.1 s with 8, on 2 cores).
pub fn default_io_threads() -> usize {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    (cores * 4).clamp(8, 64)
}

impl Default for PoolOptions {
    /// Defaults with no cache directory: enough for local pools.
    fn default() -> Self {
        PoolOptions {
            cache_dir: None,
            read_cache_bytes: 20 << 30,
            store: StoreOptions::default(),
            catalog_retry: Duration::from_secs(120),
            catalog_password: None,
            io_threads: default_io_threads(),
            lease: Duration::from_secs(60),
            key: None,
        }
    }
}

/// Variables the object-store clients read, kept for [`StoreOptions`].
const STORE_PREFIXES: [&str; 3] = ["AWS_", "GOOGLE_", "AZURE_"];

impl PoolOptions {
    /// The options the environment gives, for front ends:
    ///
    /// | variable | option |
    /// |---|---|
    /// | `SHALE_CACHE_DIR`, else `$XDG_CACHE_HOME/shale`, else `~/.cache/shale` | [`cache_dir`](Self::cache_dir) |
    /// | `SHALE_READ_CACHE_SIZE` (e.g. `50GiB`, `0`) | [`read_cache_bytes`](Self::read_cache_bytes) |
    /// | `SHALE_STORE_RETRY_SECS` | [`StoreOptions::retry`] |
    /// | `AWS_*`, `GOOGLE_*`, `AZURE_*` | [`StoreOptions::config`] |
    /// | `SHALE_NO_INSTANCE_METADATA` (not `0`) | [`StoreOptions::no_instance_metadata`] |
    /// | `AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials` | [`StoreOptions::credentials_file`] |
    /// | `SHALE_CATALOG_RETRY_SECS` | [`catalog_retry`](Self::catalog_retry) |
    /// | `PGPASSWORD` | [`catalog_password`](Self::catalog_password) |
    /// | `SHALE_IO_THREADS` | [`io_threads`](Self::io_threads) |
    /// | `SHALE_LEASE_SECS` | [`lease`](Self::lease) |
    /// | `SHALE_KEY_FILE`, else `SHALE_PASSPHRASE` | [`key`](Self::key) |
    pub fn from_env() -> Result<PoolOptions> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let secs = |k: &str| -> Result<Option<Duration>> {
            var(k)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map(Duration::from_secs)
                        .map_err(|_| {
                            Error::InvalidArgument(format!("{k}={v}: not a number of seconds"))
                        })
                })
                .transpose()
        };
        let defaults = PoolOptions::default();
        let read_cache_bytes = match var("SHALE_READ_CACHE_SIZE") {
            Some(v) => crate::size::parse_size(&v)
                .map_err(|e| Error::InvalidArgument(format!("SHALE_READ_CACHE_SIZE: {e}")))?,
            None => defaults.read_cache_bytes,
        };
        let io_threads = match var("SHALE_IO_THREADS") {
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    Error::InvalidArgument(format!("SHALE_IO_THREADS={v}: not a positive number"))
                })?,
            None => defaults.io_threads,
        };
        let config = std::env::vars()
            .filter(|(k, _)| STORE_PREFIXES.iter().any(|p| k.starts_with(p)))
            .collect();
        Ok(PoolOptions {
            cache_dir: env_cache_dir(),
            read_cache_bytes,
            store: StoreOptions {
                retry: secs("SHALE_STORE_RETRY_SECS")?,
                config,
                no_instance_metadata: var("SHALE_NO_INSTANCE_METADATA").is_some_and(|v| v != "0"),
                credentials_file: var("AWS_SHARED_CREDENTIALS_FILE")
                    .map(PathBuf::from)
                    .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".aws/credentials"))),
            },
            catalog_retry: secs("SHALE_CATALOG_RETRY_SECS")?.unwrap_or(defaults.catalog_retry),
            catalog_password: var("PGPASSWORD"),
            io_threads,
            lease: secs("SHALE_LEASE_SECS")?
                .filter(|d| !d.is_zero())
                .unwrap_or(defaults.lease),
            key: var("SHALE_KEY_FILE")
                .map(|p| KeySource::File(PathBuf::from(p)))
                .or_else(|| var("SHALE_PASSPHRASE").map(|p| KeySource::Passphrase(p.into()))),
        })
    }

    /// The cache directory, or an error saying how to give one.
    pub fn cache_dir(&self) -> Result<&PathBuf> {
        self.cache_dir.as_ref().ok_or_else(|| {
            Error::InvalidArgument(
                "no cache directory for an object-store pool: set SHALE_CACHE_DIR (HOME is not set)"
                    .into(),
            )
        })
    }

    /// Runs `f` on a thread pool of [`io_threads`](Self::io_threads).
    pub fn with_io_threads<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        match rayon::ThreadPoolBuilder::new()
            .num_threads(self.io_threads)
            .build()
        {
            Ok(pool) => pool.install(f),
            // Could not start threads: run on the global pool.
            Err(_) => f(),
        }
    }
}

/// `SHALE_CACHE_DIR`, else `$XDG_CACHE_HOME/shale`, else `~/.cache/shale`.
fn env_cache_dir() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(d) = var("SHALE_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = var("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("shale"));
    }
    var("HOME").map(|h| PathBuf::from(h).join(".cache/shale"))
}

/// Shale's one retry policy for what it retries itself (a lost catalog
/// connection, a copy to or from an object store; object stores' own
/// requests are retried by `object_store`): waits of `first`, then twice as
/// long each time, at most 5 s apart, with no limit on the number of tries
/// (callers bound it with `with_total_delay` or `with_max_times`).
pub fn backoff(first: Duration) -> backon::ExponentialBuilder {
    backon::ExponentialBuilder::default()
        .with_min_delay(first)
        .with_max_delay(Duration::from_secs(5))
        .with_factor(2.0)
        .without_max_times()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_secret() {
        let mut o = PoolOptions {
            catalog_password: Some("hunter2".into()),
            ..Default::default()
        };
        o.store
            .config
            .insert("AWS_SECRET_ACCESS_KEY".into(), "s3cr3t".into());
        let shown = format!("{o:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cr3t"),
            "{shown}"
        );
        assert!(shown.contains("AWS_SECRET_ACCESS_KEY"), "{shown}");
    }
}
