//! `shale._native`: the Rust side of the `shale` Python package.
//!
//! Kept thin on purpose: one pool handle with a typed method per core
//! operation, run with the GIL released, whose report becomes a Python
//! value of the same shape as the CLI's `--json`; the Python layer
//! (`python/shale/`) builds objects over it; the `shale`
//! command line itself (`cli_main`), so that `pip install` also gives the
//! `shale` command; and the exception classes, mapped from core errors.
#![deny(unsafe_code)]

use std::ffi::OsString;
use std::path::PathBuf;

mod files;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pythonize::pythonize;
use serde::Serialize;
use shale_core::coord::mounts::mount_points;
use shale_core::ops::export::ExportOptions;
use shale_core::ops::import::ImportOptions;
use shale_core::ops::lineage::RunData;
use shale_core::ops::volumes::ResolvedReport;
use shale_core::{Error, Pool, PoolOptions, PoolSpec};

create_exception!(shale, ShaleError, PyException, "Any Shale failure.");
create_exception!(
    _native,
    PoolNotFoundError,
    ShaleError,
    "No pool at the path."
);
create_exception!(shale, VolumeNotFoundError, ShaleError, "No such volume.");
create_exception!(
    _native,
    SnapshotNotFoundError,
    ShaleError,
    "No such snapshot."
);
create_exception!(shale, NameExistsError, ShaleError, "The name is taken.");
create_exception!(
    _native,
    InvalidNameError,
    ShaleError,
    "The name is not allowed."
);
create_exception!(
    _native,
    QuotaExceededError,
    ShaleError,
    "The change would exceed the volume's quota."
);
create_exception!(
    _native,
    CorruptDataError,
    ShaleError,
    "Stored data is missing or damaged."
);
create_exception!(
    _native,
    ConflictError,
    ShaleError,
    "Another process changed the volume meanwhile."
);

/// The Python exception for a core error.
fn to_py(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::NoPool(_) => PoolNotFoundError::new_err(msg),
        Error::VolumeNotFound(_) => VolumeNotFoundError::new_err(msg),
        Error::SnapshotNotFound { .. } => SnapshotNotFoundError::new_err(msg),
        Error::VolumeExists(_)
        | Error::SnapshotExists { .. }
        | Error::PoolExists(_)
        | Error::NameHeld { .. } => NameExistsError::new_err(msg),
        Error::InvalidName { .. } => InvalidNameError::new_err(msg),
        Error::QuotaExceeded { .. } => QuotaExceededError::new_err(msg),
        Error::Corrupt { .. } | Error::MissingObject(_) => CorruptDataError::new_err(msg),
        Error::Conflict(_) => ConflictError::new_err(msg),
        Error::NotEmpty(_) => {
            ShaleError::new_err(format!("{msg} (pass force=True to write into it anyway)"))
        }
        _ => ShaleError::new_err(msg),
    }
}

/// A Python value from a report, in the one JSON shape the CLI prints.
fn to_object<T: Serialize>(py: Python<'_>, value: &T) -> PyResult<PyObject> {
    Ok(pythonize(py, value)
        .map_err(|e| ShaleError::new_err(e.to_string()))?
        .unbind())
}

/// Runs `op` on the pool with the GIL released; a report becomes a Python
/// value, an error the matching exception.
fn run<T, F>(py: Python<'_>, op: F) -> PyResult<PyObject>
where
    T: Serialize,
    F: FnOnce() -> Result<T, Error> + Send,
    T: Send,
{
    let out = py.allow_threads(op).map_err(to_py)?;
    to_object(py, &out)
}

/// The filter of Python's `exclude=` and `include=` pattern lists.
fn filter_of(
    exclude: Option<Vec<String>>,
    include: Option<Vec<String>>,
) -> Result<shale_core::filter::Filter, Error> {
    shale_core::filter::Filter::new(&shale_core::filter::FilterSpec {
        exclude: exclude.unwrap_or_default(),
        include: include.unwrap_or_default(),
        exclude_from: Vec::new(),
    })
}

/// A size argument: bytes, or a string such as `"500GiB"`.
#[derive(FromPyObject)]
enum Size {
    Bytes(u64),
    Text(String),
}

impl Size {
    fn bytes(&self) -> Result<u64, Error> {
        match self {
            Size::Bytes(n) => Ok(*n),
            Size::Text(s) => shale_core::size::parse_size(s),
        }
    }
}

/// An open pool. Each method is one operation of `shale_core::ops`, with
/// the same options and report as the CLI's command of that name.
#[pyclass(module = "shale._native", frozen)]
struct NativePool {
    pool: Pool,
}

#[pymethods]
impl NativePool {
    /// Opens the pool at `path`, creating it if `create` and missing.
    #[new]
    fn new(py: Python<'_>, path: PathBuf, create: bool) -> PyResult<Self> {
        let pool = py
            .allow_threads(|| {
                // The Python edge: the process environment, read once here.
                let options = PoolOptions::from_env()?;
                let spec = PoolSpec::parse(path.as_os_str())?;
                if create {
                    Pool::open_or_init_spec(&spec, &options)
                } else {
                    Pool::open_spec(&spec, &options)
                }
            })
            .map_err(to_py)?;
        if let Some((path, mode)) = pool.open_to_others() {
            let message = format!(
                "{} is open to other users (mode {mode:04o}): run `shale pool fix-permissions` \
                 or Pool.fix_permissions()",
                path.display()
            );
            let category = py.get_type::<pyo3::exceptions::PyUserWarning>();
            PyErr::warn(py, &category, &std::ffi::CString::new(message)?, 1)?;
        }
        Ok(NativePool { pool })
    }

    /// Closes the pool's local files to everyone its description does not
    /// name; returns `{"changed": N, "not_owned": M}`.
    fn fix_permissions(&self, py: Python<'_>) -> PyResult<PyObject> {
        run(py, || self.pool.fix_permissions())
    }

    /// The pool: its directory, or its URL for an object-store pool.
    #[getter]
    fn path(&self) -> String {
        self.pool.name()
    }

    /// The directory on this machine with the pool's local files (the
    /// pool itself, or an object-store pool's cache).
    #[getter]
    fn local_root(&self) -> PathBuf {
        self.pool.root().to_path_buf()
    }

    /// Every volume.
    fn list_volumes(&self, py: Python<'_>) -> PyResult<PyObject> {
        run(py, || self.pool.list_volumes())
    }

    /// One volume.
    fn volume_info(&self, py: Python<'_>, name: &str) -> PyResult<PyObject> {
        run(py, || self.pool.volume_info(name))
    }

    /// Creates a volume, empty or holding a copy of `from_dir`; returns it.
    /// `exclude`/`include`: gitignore-style patterns of `from_dir` paths to
    /// leave out (as `shale volume create --exclude/--include`).
    #[pyo3(signature = (name, size=None, from_dir=None, exclude=None, include=None))]
    fn create_volume(
        &self,
        py: Python<'_>,
        name: &str,
        size: Option<Size>,
        from_dir: Option<PathBuf>,
        exclude: Option<Vec<String>>,
        include: Option<Vec<String>>,
    ) -> PyResult<PyObject> {
        let filter = filter_of(exclude, include).map_err(to_py)?;
        run(py, || {
            let quota = size.as_ref().map(Size::bytes).transpose()?;
            match from_dir {
                Some(dir) => {
                    self.pool
                        .create_volume_from(name, &dir, quota, None, filter)?;
                    self.pool.volume_info(name)
                }
                None => self.pool.create_volume(name, quota),
            }
        })
    }

    /// Makes `new` from `source` (`VOLUME[@SNAPSHOT]`); returns it.
    fn clone_volume(&self, py: Python<'_>, new: &str, source: &str) -> PyResult<PyObject> {
        run(py, || self.pool.clone_volume(new, source))
    }

    /// Sets a volume's quota (`None`: no limit); returns the volume.
    #[pyo3(signature = (name, size))]
    fn resize_volume(&self, py: Python<'_>, name: &str, size: Option<Size>) -> PyResult<PyObject> {
        run(py, || {
            let quota = size.as_ref().map(Size::bytes).transpose()?;
            self.pool.resize_volume(name, quota)
        })
    }

    /// Deletes a volume and its snapshots (or, with `keep_snapshots`, the
    /// volume alone).
    #[pyo3(signature = (name, keep_snapshots=false))]
    fn delete_volume(
        &self,
        py: Python<'_>,
        name: &str,
        keep_snapshots: bool,
    ) -> PyResult<PyObject> {
        run(py, || self.pool.delete_volume(name, keep_snapshots))
    }

    /// Takes a snapshot; returns it.
    #[pyo3(signature = (volume, name=None))]
    fn create_snapshot(
        &self,
        py: Python<'_>,
        volume: &str,
        name: Option<&str>,
    ) -> PyResult<PyObject> {
        run(py, || self.pool.create_snapshot(volume, name))
    }

    /// Takes snapshot `PREFIX.YYYYMMDDhhmmss` and prunes that series to the
    /// newest `keep` and/or those younger than `keep_days` (see
    /// `shale snapshot create --keep`); returns the snapshot and the pruning.
    #[pyo3(signature = (volume, prefix=None, keep=None, keep_days=None))]
    fn snapshot_series(
        &self,
        py: Python<'_>,
        volume: &str,
        prefix: Option<&str>,
        keep: Option<usize>,
        keep_days: Option<u64>,
    ) -> PyResult<PyObject> {
        let retention = shale_core::ops::retention::Retention {
            keep,
            max_age: keep_days.map(|d| std::time::Duration::from_secs(d.saturating_mul(86_400))),
        };
        run(py, || {
            self.pool
                .snapshot_series(volume, prefix, &retention, shale_core::catalog::now_ns())
        })
    }

    /// Sets the mode (permission bits), owner and group of a volume's top
    /// directory; `None` keeps each as it is.
    #[pyo3(signature = (volume, mode=None, uid=None, gid=None))]
    fn set_root(
        &self,
        py: Python<'_>,
        volume: &str,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> PyResult<PyObject> {
        run(py, || {
            let mut meta = self.pool.root_meta(volume)?;
            if let Some(m) = mode {
                if m > 0o7777 {
                    return Err(Error::InvalidArgument(format!(
                        "unix_permissions {m:o}: at most 7777 (octal)"
                    )));
                }
                meta.mode = m;
            }
            meta.uid = uid.unwrap_or(meta.uid);
            meta.gid = gid.unwrap_or(meta.gid);
            self.pool.set_root_meta(volume, &meta)?;
            self.pool.root_meta(volume).map(|m| (m.mode, m.uid, m.gid))
        })
    }

    /// Deletes a snapshot.
    fn delete_snapshot(&self, py: Python<'_>, volume: &str, name: &str) -> PyResult<PyObject> {
        run(py, || self.pool.delete_snapshot(volume, name))
    }

    /// Snapshots of one volume, or of all.
    #[pyo3(signature = (volume=None))]
    fn list_snapshots(&self, py: Python<'_>, volume: Option<&str>) -> PyResult<PyObject> {
        run(py, || self.pool.list_snapshots(volume))
    }

    /// Puts a volume back to a snapshot; returns the snapshot.
    fn restore_snapshot(&self, py: Python<'_>, volume: &str, name: &str) -> PyResult<PyObject> {
        run(py, || self.pool.restore_snapshot(volume, name))
    }

    /// What `VOLUME[@SNAPSHOT]` names.
    fn resolve(&self, py: Python<'_>, spec: &str) -> PyResult<PyObject> {
        run(py, || {
            self.pool.resolve(spec).map(|r| ResolvedReport::from(&r))
        })
    }

    /// Copies directory `source` into a volume; returns the import report.
    #[pyo3(signature = (volume, source, to=None, delete=false, checksum=false, exclude=None, include=None))]
    #[allow(clippy::too_many_arguments)] // Python's keyword arguments
    fn import_dir(
        &self,
        py: Python<'_>,
        volume: &str,
        source: PathBuf,
        to: Option<String>,
        delete: bool,
        checksum: bool,
        exclude: Option<Vec<String>>,
        include: Option<Vec<String>>,
    ) -> PyResult<PyObject> {
        let opts = ImportOptions {
            to,
            delete,
            checksum,
            filter: filter_of(exclude, include).map_err(to_py)?,
            ..Default::default()
        };
        run(py, || self.pool.import(volume, &source, &opts))
    }

    /// Writes `VOLUME[@SNAPSHOT]` (or `path` inside it) to `dest`.
    #[pyo3(signature = (spec, dest, path=None, force=false))]
    fn export(
        &self,
        py: Python<'_>,
        spec: &str,
        dest: PathBuf,
        path: Option<String>,
        force: bool,
    ) -> PyResult<PyObject> {
        let opts = ExportOptions {
            path,
            force,
            ..Default::default()
        };
        run(py, || self.pool.export(spec, &dest, &opts))
    }

    /// Where `VOLUME[@SNAPSHOT]` came from and what was made from it.
    fn lineage(&self, py: Python<'_>, spec: &str) -> PyResult<PyObject> {
        run(py, || self.pool.lineage(spec))
    }

    /// Every recorded run, oldest first.
    fn runs(&self, py: Python<'_>) -> PyResult<PyObject> {
        run(py, || self.pool.runs())
    }

    /// Records the start of a run of `command`, with `labels`; returns its id.
    #[pyo3(signature = (command, labels=None))]
    fn begin_run(
        &self,
        py: Python<'_>,
        command: Vec<String>,
        labels: Option<std::collections::BTreeMap<String, String>>,
    ) -> PyResult<i64> {
        let labels = labels.unwrap_or_default();
        py.allow_threads(|| self.pool.begin_run(&command, &labels))
            .map_err(to_py)
    }

    /// Records that run `run` read (or, with `output`, wrote) a snapshot.
    #[pyo3(signature = (run, volume, snapshot, snapshot_id, output=false))]
    fn add_run_data(
        &self,
        py: Python<'_>,
        run: i64,
        volume: String,
        snapshot: String,
        snapshot_id: String,
        output: bool,
    ) -> PyResult<()> {
        let data = RunData {
            volume,
            snapshot,
            snapshot_id,
        };
        py.allow_threads(|| self.pool.add_run_data(run, output, &data))
            .map_err(to_py)
    }

    /// Records the end of run `run`.
    fn end_run(&self, py: Python<'_>, run: i64, exit_code: i32) -> PyResult<()> {
        py.allow_threads(|| self.pool.end_run(run, exit_code))
            .map_err(to_py)
    }

    /// Records the MLflow run that run `run` was.
    fn set_run_mlflow(&self, py: Python<'_>, run: i64, mlflow_run: &str) -> PyResult<()> {
        py.allow_threads(|| self.pool.set_run_mlflow(run, mlflow_run))
            .map_err(to_py)
    }

    /// This pool's running mounts: `{"pid", "mountpoint"}` each.
    fn mounts(&self, py: Python<'_>) -> PyResult<PyObject> {
        let mounts: Vec<MountReport> = mount_points(self.pool.root())
            .into_iter()
            .map(|(pid, mountpoint)| MountReport { pid, mountpoint })
            .collect();
        to_object(py, &mounts)
    }
}

/// A running mount of the pool.
#[derive(Serialize)]
struct MountReport {
    pid: u32,
    mountpoint: PathBuf,
}

/// Runs the `shale` command line with `argv` (without the program name);
/// `reexec` is the command that runs it again (for background mounts).
/// Returns the exit status.
#[pyfunction]
fn cli_main(py: Python<'_>, argv: Vec<OsString>, reexec: Vec<OsString>) -> i32 {
    shale_cli::set_reexec(reexec);
    let mut args = vec![OsString::from("shale")];
    args.extend(argv);
    py.allow_threads(|| shale_cli::run_cli(args))
}

/// Bytes in a size such as `"500GiB"` (the CLI's rules).
#[pyfunction]
fn parse_size(text: &str) -> PyResult<u64> {
    shale_core::size::parse_size(text).map_err(to_py)
}

/// The Rust side of the `shale` package.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<NativePool>()?;
    m.add_class::<files::SnapshotReader>()?;
    m.add_function(wrap_pyfunction!(cli_main, m)?)?;
    m.add_function(wrap_pyfunction!(parse_size, m)?)?;
    m.add("ShaleError", py.get_type::<ShaleError>())?;
    m.add("PoolNotFoundError", py.get_type::<PoolNotFoundError>())?;
    m.add("VolumeNotFoundError", py.get_type::<VolumeNotFoundError>())?;
    m.add(
        "SnapshotNotFoundError",
        py.get_type::<SnapshotNotFoundError>(),
    )?;
    m.add("NameExistsError", py.get_type::<NameExistsError>())?;
    m.add("InvalidNameError", py.get_type::<InvalidNameError>())?;
    m.add("QuotaExceededError", py.get_type::<QuotaExceededError>())?;
    m.add("CorruptDataError", py.get_type::<CorruptDataError>())?;
    m.add("ConflictError", py.get_type::<ConflictError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
