//! `shale.torch`'s reader: a snapshot's files, listed from its tree and
//! read straight from the pool, without a mount.

use pyo3::exceptions::PyIndexError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use shale_core::ops::files::FileList;

use crate::{to_py, NativePool};

/// The regular files of a snapshot (or of a directory in it), in name
/// order, each read on demand with the GIL released.
#[pyclass(module = "shale._native", frozen)]
pub struct SnapshotReader {
    owner: Py<NativePool>,
    id: String,
    files: FileList,
}

#[pymethods]
impl SnapshotReader {
    /// Lists `spec` (`VOLUME@SNAPSHOT`; a volume is read as of now), or
    /// the directory `path` inside it.
    #[new]
    #[pyo3(signature = (pool, spec, path=None))]
    fn new(py: Python<'_>, pool: Py<NativePool>, spec: &str, path: Option<&str>) -> PyResult<Self> {
        let listed = {
            let p = pool.get();
            py.allow_threads(|| p.pool.snapshot_files(spec, path))
                .map_err(to_py)?
        };
        Ok(SnapshotReader {
            owner: pool,
            id: listed.id.to_hex(),
            files: listed.files,
        })
    }

    fn __len__(&self) -> usize {
        self.files.len()
    }

    /// The content id of the tree listed (the snapshot id).
    #[getter]
    fn id(&self) -> &str {
        &self.id
    }

    /// Each file's path, relative to where the listing started (made
    /// into Python strings straight from the list, nothing copied first).
    fn paths<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.files.paths())
    }

    /// Each file's size.
    fn sizes(&self) -> Vec<u64> {
        self.files.sizes().to_vec()
    }

    /// Each file's group: the pack its data starts in, numbered in order
    /// (asks the index where each file is: only readers that shuffle
    /// need it).
    fn groups(&self, py: Python<'_>) -> PyResult<Vec<u32>> {
        let pool = self.owner.get();
        py.allow_threads(|| pool.pool.file_groups(&self.files))
            .map_err(to_py)
    }

    /// The bytes of file `index`.
    fn read<'py>(&self, py: Python<'py>, index: usize) -> PyResult<Bound<'py, PyBytes>> {
        let Some(chunks) = self.files.chunks(index) else {
            return Err(PyIndexError::new_err(format!(
                "file {index} of {}",
                self.files.len()
            )));
        };
        let pool = self.owner.get();
        let data = py
            .allow_threads(|| pool.pool.read_file_chunks(chunks))
            .map_err(to_py)?;
        Ok(PyBytes::new(py, &data))
    }
}
