//! A pool: the objects, the catalog, and the pool description file.
//!
//! ```text
//! POOL/
//!   pool.json     what this pool is: format name and version, pool id
//!   keys.json     an encrypted pool's key ring (see `keys.rs`)
//!   catalog.db    the SQLite catalog (with -wal and -shm beside it)
//!   packs/xx/…    pack objects
//!   tmp/          objects being written
//! ```
//!
//! A pool can also live in an S3-compatible object store (`s3pool.rs`):
//! then `root` is this machine's cache directory for it, holding the same
//! local files (catalog, tmp/, mounts/…), and packs go to the bucket.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::config::{KeySource, PoolOptions};
use crate::coord::s3pool::{self, StoreSettings};
use crate::crypt::PoolKeys;
use crate::error::{Error, IoContext, Result};
use crate::keys::{self, Encryption};
use crate::private::{Access, Fixed};
use crate::store::blobs::BlobStore;
use crate::store::chunker::ChunkParams;
use crate::store::objects::{LocalDir, ObjectStore, Remote, StoreLocation};

mod remote;
mod upgrade;

/// The pool format version this build writes: 3, which may store blobs
/// as deltas of others (in-place edits), plain or encrypted. It also reads
/// and writes 1 (plain) and 2 (encrypted), storing every blob whole there.
pub const POOL_VERSION: u32 = 3;
/// The version of a plain pool made before deltas.
const PLAIN_VERSION: u32 = 1;
/// The version of an encrypted pool made before deltas.
const SEALED_VERSION: u32 = 2;
const POOL_FILE: &str = "pool.json";
/// The catalog's file name in a pool directory (or an object-store pool's cache).
pub const CATALOG_FILE: &str = "catalog.db";
const FORMAT_NAME: &str = "shale-pool";

/// Contents of `pool.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PoolDescription {
    /// Always `shale-pool`.
    pub format: String,
    /// Format version.
    pub version: u32,
    /// Random id of this pool.
    pub id: String,
    /// Creation time (RFC 3339).
    pub created: String,
    /// How file content is cut into chunks (1 MiB average if absent).
    #[serde(default)]
    pub chunking: ChunkParams,
    /// For a pool in an object store: its settings (absent for a local pool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreSettings>,
    /// For a local pool shared by a group (`pool init --group`): the
    /// group's name. Absent: owner-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// For an encrypted pool: how (absent: a plain pool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
}

impl PoolDescription {
    /// The description of a new pool at `place` (which seeds its random id).
    fn new(place: &str, settings: &PoolSettings, store: Option<StoreSettings>) -> Self {
        let created = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let seed = format!("{created}{}{place}", std::process::id());
        let encryption = settings.encrypt.as_ref().map(|_| Encryption::current());
        PoolDescription {
            format: FORMAT_NAME.into(),
            version: POOL_VERSION,
            id: blake3::hash(seed.as_bytes()).to_hex()[..32].to_string(),
            created,
            chunking: settings.chunking,
            store,
            group: settings.group.clone(),
            encryption,
        }
    }
}

impl PoolDescription {
    /// Whether blobs may be stored as deltas of others (format 3).
    pub fn deltas(&self) -> bool {
        self.version >= POOL_VERSION
    }

    /// The URL (without password) of the PostgreSQL catalog, for a pool
    /// whose catalog is shared.
    pub fn shared_catalog(&self) -> Option<&str> {
        self.store
            .as_ref()
            .map(|s| s.catalog.as_str())
            .filter(|c| crate::catalog::is_postgres_url(c))
    }
}

/// Where a pool lives, as a user names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolSpec {
    /// A directory on this machine.
    Local(PathBuf),
    /// A bucket prefix in an object store.
    Store(StoreLocation),
}

impl PoolSpec {
    /// `s3://BUCKET[/PREFIX]`, `gs://…`, `az://…` or a path.
    pub fn parse(arg: &std::ffi::OsStr) -> Result<PoolSpec> {
        match arg.to_str() {
            Some(s) if crate::store::objects::StoreKind::of_url(s).is_some() => {
                Ok(PoolSpec::Store(StoreLocation::parse(s)?))
            }
            Some(s) if s.contains("://") => Err(Error::InvalidArgument(format!(
                "{s}: unsupported pool URL (a pool is a directory, s3://BUCKET/PREFIX, \
                 gs://BUCKET/PREFIX or az://CONTAINER/PREFIX)"
            ))),
            _ => Ok(PoolSpec::Local(PathBuf::from(arg))),
        }
    }

    /// The directory on this machine that holds the pool's local files:
    /// the pool itself, or its cache for an object-store pool.
    pub fn local_root(&self, options: &PoolOptions) -> Result<PathBuf> {
        match self {
            PoolSpec::Local(p) => Ok(p.clone()),
            PoolSpec::Store(l) => s3pool::cache_dir(l, options),
        }
    }

    /// How to name the pool to a user.
    pub fn name(&self) -> String {
        match self {
            PoolSpec::Local(p) => p.display().to_string(),
            PoolSpec::Store(l) => l.url(),
        }
    }
}

/// Settings chosen when a pool is created.
#[derive(Clone, Debug, Default)]
pub struct PoolSettings {
    /// Chunk sizes.
    pub chunking: ChunkParams,
    /// For an object-store pool shared by several machines: the URL of the
    /// PostgreSQL database that holds its catalog (`postgres://…`). None:
    /// an SQLite catalog.
    pub catalog: Option<String>,
    /// For a local pool: the group whose members may use it too (its
    /// directories 2770 with that group, its files 0660). None:
    /// owner-only.
    pub group: Option<String>,
    /// For an encrypted pool: the key that opens it at first (more are
    /// added with [`crate::keys::add`]). None: a plain pool.
    pub encrypt: Option<KeySource>,
    /// The name of that first key in the ring (default `first`).
    pub key_name: Option<String>,
    /// An encrypted pool's master key, when it is to share another pool's
    /// (mirrors between the two then send blobs as sealed); None: a new one.
    pub master: Option<crate::crypt::Key>,
}

impl PoolSettings {
    fn first_key_name(&self) -> &str {
        self.key_name.as_deref().unwrap_or("first")
    }
}

/// An open pool.
pub struct Pool {
    root: PathBuf,
    description: PoolDescription,
    pub(crate) store: BlobStore,
    /// For an object-store pool: the store and the pool's URL.
    remote: Option<(Arc<Remote>, String)>,
    /// How it was opened.
    options: PoolOptions,
}

impl Pool {
    /// Creates a pool in `root`, which must be absent or an empty directory.
    pub fn init(root: &Path) -> Result<Pool> {
        Pool::init_with(root, &PoolSettings::default())
    }

    /// Creates a pool with explicit settings.
    pub fn init_with(root: &Path, settings: &PoolSettings) -> Result<Pool> {
        if settings.catalog.is_some() {
            return Err(Error::InvalidArgument(format!(
                "cannot create a pool in {} with a PostgreSQL catalog: a shared catalog is for \
                 pools in an object store (s3://BUCKET/PREFIX); a local pool keeps its catalog beside its data",
                root.display()
            )));
        }
        if root.join(POOL_FILE).exists() {
            return Err(Error::PoolExists(root.to_path_buf()));
        }
        let gid = match &settings.group {
            Some(name) => Some(crate::private::group_id(name).at(root)?),
            None => None,
        };
        if root.exists() {
            let mut entries = fs::read_dir(root).at(root)?;
            if entries.next().is_some() {
                return Err(Error::InvalidArgument(format!(
                    "cannot create a pool in {}: the directory is not empty",
                    root.display()
                )));
            }
        }
        let access = match gid {
            Some(_) => Access::Group,
            None => Access::Owner,
        };
        crate::private::create_root(root, access, gid).map_err(|e| match gid {
            Some(gid) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                Error::InvalidArgument(format!(
                    "cannot give {} to group {} (gid {gid}): only its members (and root) can",
                    root.display(),
                    settings.group.as_deref().unwrap_or_default()
                ))
            }
            _ => Error::io(root, e),
        })?;
        let objects = LocalDir::new(root)?;
        let catalog = Catalog::create(&root.join(CATALOG_FILE))?;
        let description = PoolDescription::new(&root.display().to_string(), settings, None);
        let keys = match &settings.encrypt {
            Some(key) => Some(keys::create(
                &objects,
                key,
                settings.first_key_name(),
                settings.master.as_ref(),
            )?),
            None => None,
        };
        if let Some(k) = &keys {
            catalog.write(|tx| keys::record_check(tx, k))?;
        }
        // pool.json is written last: a pool is complete once it exists.
        let json = serde_json::to_vec_pretty(&description)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        upgrade::write_description(root, &json)?;
        Ok(Pool::local(root, description, objects, catalog, keys))
    }

    /// The local pool in `root`.
    fn local(
        root: &Path,
        description: PoolDescription,
        objects: LocalDir,
        catalog: Catalog,
        keys: Option<Arc<PoolKeys>>,
    ) -> Pool {
        let deltas = description.deltas();
        Pool {
            root: root.to_path_buf(),
            description,
            store: BlobStore::new(Arc::new(objects), Arc::new(catalog))
                .with_keys(keys)
                .with_deltas(deltas),
            remote: None,
            options: PoolOptions::default(),
        }
    }

    /// Opens the plain pool in `root` (an encrypted one needs its key:
    /// [`Pool::open_spec`]).
    pub fn open(root: &Path) -> Result<Pool> {
        Pool::open_local(root, &PoolOptions::default())
    }

    /// Opens the pool in `root`, an encrypted one with the key `options`
    /// gives.
    fn open_local(root: &Path, options: &PoolOptions) -> Result<Pool> {
        let desc_path = root.join(POOL_FILE);
        let text = match fs::read(&desc_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NoPool(root.to_path_buf()))
            }
            Err(e) => return Err(Error::io(desc_path, e)),
        };
        let description = parse_description(&text, &desc_path.display().to_string(), root)?;
        let objects = LocalDir::new(root)?;
        let name = root.display().to_string();
        let candidates = unlock(&description, &objects, &name, options)?;
        let catalog = Catalog::open(&root.join(CATALOG_FILE))?;
        let keys = choose(candidates, &catalog, &name)?;
        Ok(Pool::local(root, description, objects, catalog, keys))
    }

    /// Opens the pool `spec` names.
    pub fn open_spec(spec: &PoolSpec, options: &PoolOptions) -> Result<Pool> {
        match spec {
            PoolSpec::Local(root) => Ok(Pool::open_local(root, options)?.with_options(options)),
            PoolSpec::Store(location) => Pool::open_s3(location, options),
        }
    }

    /// Opens the pool `spec` names; a local one is created if its directory
    /// is absent or empty (an object-store pool needs `pool init`).
    pub fn open_or_init_spec(spec: &PoolSpec, options: &PoolOptions) -> Result<Pool> {
        match spec {
            PoolSpec::Local(root) => {
                Ok(Pool::open_or_init_local(root, options)?.with_options(options))
            }
            PoolSpec::Store(location) => Pool::open_s3(location, options),
        }
    }

    /// Creates the pool `spec` names.
    pub fn init_spec(
        spec: &PoolSpec,
        settings: &PoolSettings,
        options: &PoolOptions,
    ) -> Result<Pool> {
        match spec {
            PoolSpec::Local(root) => Ok(Pool::init_with(root, settings)?.with_options(options)),
            PoolSpec::Store(location) => Pool::init_s3(location, settings, options),
        }
    }

    /// This pool, used with `options` (a local pool's own files need none).
    fn with_options(mut self, options: &PoolOptions) -> Pool {
        self.options = options.clone();
        self
    }

    /// Who besides its owner may open the pool's local files.
    pub fn access(&self) -> Access {
        match (&self.description.group, &self.remote) {
            (Some(_), None) => Access::Group,
            _ => Access::Owner,
        }
    }

    /// The first of this pool's local files that is more open than the
    /// pool's description says, with its mode (a pool made by an older
    /// Shale, or changed by hand).
    pub fn open_to_others(&self) -> Option<(PathBuf, u32)> {
        crate::private::first_open(&self.root, self.access())
    }

    /// Sets every local file of the pool (or of an object-store pool's
    /// cache) to the modes its description says (owner-only, or its
    /// group's), and a group pool's files to its group. Safe while mounts
    /// and other commands use the pool.
    pub fn fix_permissions(&self) -> Result<Fixed> {
        let gid = match (&self.description.group, self.access()) {
            (Some(name), Access::Group) => Some(crate::private::group_id(name).at(&self.root)?),
            _ => None,
        };
        crate::private::fix(&self.root, self.access(), gid).map_err(|e| Error::io(&self.root, e))
    }

    /// The options it was opened with.
    pub fn options(&self) -> &PoolOptions {
        &self.options
    }

    /// How to name the pool to a user: its directory or URL.
    pub fn name(&self) -> String {
        match &self.remote {
            Some((_, url)) => url.clone(),
            None => self.root.display().to_string(),
        }
    }

    /// Opens the pool in `root`, creating it if `root` is absent or empty.
    pub fn open_or_init(root: &Path) -> Result<Pool> {
        Pool::open_or_init_local(root, &PoolOptions::default())
    }

    fn open_or_init_local(root: &Path, options: &PoolOptions) -> Result<Pool> {
        match Pool::open_local(root, options) {
            Err(Error::NoPool(_)) => {
                let empty = match fs::read_dir(root) {
                    Ok(mut d) => d.next().is_none(),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
                    Err(e) => return Err(Error::io(root, e)),
                };
                if empty {
                    Pool::init(root)
                } else {
                    Err(Error::NoPool(root.to_path_buf()))
                }
            }
            other => other,
        }
    }

    /// Where the pool lives.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The pool's description.
    pub fn description(&self) -> &PoolDescription {
        &self.description
    }

    /// How this pool chunks file content.
    pub fn chunking(&self) -> ChunkParams {
        self.description.chunking
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        self.store.catalog()
    }

    /// The blob store.
    pub fn blobs(&self) -> &BlobStore {
        &self.store
    }

    /// An encrypted pool's key ring (None for a plain pool), named as
    /// `name` names it.
    pub fn ring<'a>(&'a self, name: &'a str) -> Option<keys::PoolRing<'a>> {
        self.description.encryption.as_ref()?;
        Some(keys::PoolRing {
            objects: self.store.objects().as_ref(),
            name,
            id: &self.description.id,
        })
    }
}

/// The keys the key `options` gives opens in an encrypted pool (empty for
/// a plain pool; two while a `pool rekey` is unfinished); `name` names the
/// pool to users.
fn unlock(
    description: &PoolDescription,
    objects: &dyn ObjectStore,
    name: &str,
    options: &PoolOptions,
) -> Result<Vec<Arc<PoolKeys>>> {
    if description.encryption.is_none() {
        return Ok(Vec::new());
    }
    let ring = keys::PoolRing {
        objects,
        name,
        id: &description.id,
    };
    ring.unlock(options)
}

/// Of an encrypted pool's `candidates`, the keys `catalog` uses (None for
/// a plain pool).
fn choose(
    candidates: Vec<Arc<PoolKeys>>,
    catalog: &Catalog,
    name: &str,
) -> Result<Option<Arc<PoolKeys>>> {
    if candidates.is_empty() {
        return Ok(None);
    }
    keys::matching(candidates, catalog, name).map(Some)
}

/// Parses and checks a pool description (`what` names it in messages,
/// `root` in version errors).
fn parse_description(text: &[u8], what: &str, root: &Path) -> Result<PoolDescription> {
    let value: serde_json::Value =
        serde_json::from_slice(text).map_err(|e| Error::corrupt(what, e.to_string()))?;
    if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT_NAME) {
        return Err(Error::corrupt(what, "not a Shale pool description"));
    }
    let version = value.get("version").cloned().unwrap_or_default();
    if !matches!(version.as_u64(), Some(v) if (PLAIN_VERSION as u64..=POOL_VERSION as u64).contains(&v))
    {
        return Err(Error::UnsupportedFormat {
            path: root.to_path_buf(),
            found: version.to_string(),
            supported: POOL_VERSION,
            advice: if version.as_u64().is_some_and(|v| v > POOL_VERSION as u64) {
                "it was written by a newer Shale; upgrade shale to use it"
            } else {
                "it is not a format this release can read"
            },
        });
    }
    let description: PoolDescription =
        serde_json::from_value(value).map_err(|e| Error::corrupt(what, e.to_string()))?;
    match (&description.encryption, description.version) {
        (Some(e), SEALED_VERSION | POOL_VERSION) => e.check(what)?,
        (None, PLAIN_VERSION | POOL_VERSION) => {}
        _ => return Err(Error::corrupt(what, "its version and encryption disagree")),
    }
    ChunkParams::new(description.chunking.avg as u64)
        .map_err(|e| Error::corrupt(what, e.to_string()))?;
    Ok(description)
}

impl Drop for Pool {
    /// A last copy of a changed object-store catalog, for callers that did
    /// not call [`Pool::sync_catalog`].
    fn drop(&mut self) {
        if let Err(e) = self.sync_catalog() {
            tracing::warn!(
                "could not copy the catalog of {} to its store: {e}",
                self.name()
            );
        }
    }
}
