//! `shale._native`: the Rust side of the `shale` Python package.
//!
//! Kept thin on purpose: one pool handle whose `call(op, args)` runs a core
//! operation with the GIL released and answers in JSON, which the Python
//! layer (`python/shale/`) turns into dicts and objects; the `shale`
//! command line itself (`cli_main`), so that `pip install` also gives the
//! `shale` command; and the exception classes, mapped from core errors.

use std::ffi::OsString;
use std::path::PathBuf;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use serde_json::{json, Value};
use shale_core::export::ExportOptions;
use shale_core::import::ImportOptions;
use shale_core::lineage::RunData;
use shale_core::volumes::rfc3339;
use shale_core::{Error, Pool, PoolSpec};

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
        Error::VolumeExists(_) | Error::SnapshotExists { .. } | Error::PoolExists(_) => {
            NameExistsError::new_err(msg)
        }
        Error::InvalidName { .. } => InvalidNameError::new_err(msg),
        Error::QuotaExceeded { .. } => QuotaExceededError::new_err(msg),
        Error::Corrupt { .. } | Error::MissingObject(_) => CorruptDataError::new_err(msg),
        Error::Conflict(_) => ConflictError::new_err(msg),
        _ => ShaleError::new_err(msg),
    }
}

fn bad_args(what: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(what.to_string())
}

/// Argument `key` of `args` as a string.
fn s<'a>(args: &'a Value, key: &str) -> Result<&'a str, Error> {
    args[key]
        .as_str()
        .ok_or_else(|| bad_args(format!("{key} must be a string")))
}

/// Optional argument `key` as a string.
fn opt_s<'a>(args: &'a Value, key: &str) -> Option<&'a str> {
    args[key].as_str()
}

fn volume_json(v: &shale_core::volumes::VolumeInfo) -> Value {
    json!({
        "name": v.row.name,
        "root": v.row.root.to_hex(),
        "bytes": v.row.bytes,
        "files": v.row.files,
        "origin": v.row.origin,
        "quota": v.row.quota,
        "created": rfc3339(v.row.created),
        "updated": rfc3339(v.row.updated),
        "snapshots": v.snapshots,
    })
}

fn snapshot_json(s: &shale_core::catalog::SnapshotRow) -> Value {
    json!({
        "volume": s.volume,
        "name": s.name,
        "id": s.root.to_hex(),
        "bytes": s.bytes,
        "files": s.files,
        "created": rfc3339(s.created),
    })
}

/// Runs one operation on `pool`; `args` is a JSON object.
fn call(pool: &Pool, op: &str, args: &Value) -> Result<Value, Error> {
    Ok(match op {
        "list_volumes" => Value::Array(pool.list_volumes()?.iter().map(volume_json).collect()),
        "volume_info" => volume_json(&pool.volume_info(s(args, "name")?)?),
        "create_volume" => {
            let name = s(args, "name")?;
            let quota = match opt_s(args, "size") {
                Some(size) => Some(shale_core::size::parse_size(size)?),
                None => None,
            };
            match opt_s(args, "from_dir") {
                Some(dir) => {
                    pool.create_volume_from(name, std::path::Path::new(dir), quota, None)?;
                }
                None => {
                    pool.create_volume(name, quota)?;
                }
            }
            volume_json(&pool.volume_info(name)?)
        }
        "clone_volume" => {
            let new = s(args, "new")?;
            pool.clone_volume(new, s(args, "source")?)?;
            volume_json(&pool.volume_info(new)?)
        }
        "delete_volume" => {
            pool.delete_volume(s(args, "name")?)?;
            Value::Null
        }
        "create_snapshot" => {
            snapshot_json(&pool.create_snapshot(s(args, "volume")?, opt_s(args, "name"))?)
        }
        "delete_snapshot" => {
            pool.delete_snapshot(s(args, "volume")?, s(args, "name")?)?;
            Value::Null
        }
        "list_snapshots" => Value::Array(
            pool.list_snapshots(opt_s(args, "volume"))?
                .iter()
                .map(snapshot_json)
                .collect(),
        ),
        "restore_snapshot" => {
            snapshot_json(&pool.restore_snapshot(s(args, "volume")?, s(args, "name")?)?)
        }
        "resolve" => {
            let r = pool.resolve(s(args, "spec")?)?;
            json!({"volume": r.spec.volume, "snapshot": r.spec.snapshot, "id": r.root.to_hex(),
                   "bytes": r.bytes, "files": r.files})
        }
        "import_dir" => {
            let opts = ImportOptions {
                to: opt_s(args, "to").map(str::to_string),
                delete: args["delete"].as_bool().unwrap_or(false),
                checksum: args["checksum"].as_bool().unwrap_or(false),
                ..Default::default()
            };
            let r = pool.import(
                s(args, "volume")?,
                std::path::Path::new(s(args, "source")?),
                &opts,
            )?;
            serde_json::to_value(r).map_err(bad_args)?
        }
        "export" => {
            let opts = ExportOptions {
                path: opt_s(args, "path").map(str::to_string),
                force: args["force"].as_bool().unwrap_or(false),
                ..Default::default()
            };
            let r = pool.export(
                s(args, "spec")?,
                std::path::Path::new(s(args, "dest")?),
                &opts,
            )?;
            json!({"files": r.files, "dirs": r.dirs, "symlinks": r.symlinks, "bytes": r.bytes})
        }
        "lineage" => serde_json::to_value(pool.lineage(s(args, "spec")?)?).map_err(bad_args)?,
        "runs" => serde_json::to_value(pool.runs()?).map_err(bad_args)?,
        "begin_run" => {
            let command: Vec<String> =
                serde_json::from_value(args["command"].clone()).map_err(bad_args)?;
            json!(pool.begin_run(&command)?)
        }
        "add_run_data" => {
            let data = RunData {
                volume: s(args, "volume")?.to_string(),
                snapshot: s(args, "snapshot")?.to_string(),
                snapshot_id: s(args, "snapshot_id")?.to_string(),
            };
            let run = args["run"]
                .as_i64()
                .ok_or_else(|| bad_args("run must be an integer"))?;
            pool.add_run_data(run, args["output"].as_bool().unwrap_or(false), &data)?;
            Value::Null
        }
        "end_run" => {
            let run = args["run"]
                .as_i64()
                .ok_or_else(|| bad_args("run must be an integer"))?;
            pool.end_run(run, args["exit_code"].as_i64().unwrap_or(0) as i32)?;
            Value::Null
        }
        "set_run_mlflow" => {
            let run = args["run"]
                .as_i64()
                .ok_or_else(|| bad_args("run must be an integer"))?;
            pool.set_run_mlflow(run, s(args, "mlflow_run")?)?;
            Value::Null
        }
        "mounts" => Value::Array(
            shale_core::mounts::mount_points(pool.root())
                .into_iter()
                .map(|(pid, path)| json!({"pid": pid, "mountpoint": path}))
                .collect(),
        ),
        other => return Err(bad_args(format!("unknown operation {other}"))),
    })
}

/// An open pool.
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
                let spec = PoolSpec::parse(path.as_os_str())?;
                if create {
                    Pool::open_or_init_spec(&spec)
                } else {
                    Pool::open_spec(&spec)
                }
            })
            .map_err(to_py)?;
        Ok(NativePool { pool })
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

    /// Runs operation `op` with JSON `args`; returns JSON.
    fn call(&self, py: Python<'_>, op: &str, args: &str) -> PyResult<String> {
        let args: Value =
            serde_json::from_str(args).map_err(|e| ShaleError::new_err(e.to_string()))?;
        let out = py
            .allow_threads(|| call(&self.pool, op, &args))
            .map_err(to_py)?;
        Ok(out.to_string())
    }
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

/// The Rust side of the `shale` package.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<NativePool>()?;
    m.add_function(wrap_pyfunction!(cli_main, m)?)?;
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
