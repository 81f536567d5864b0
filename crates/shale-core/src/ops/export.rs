//! Exporting a volume or snapshot (or a path inside one) to a directory.
//!
//! Files are written in parallel, each chunk checked against its id as it
//! is read. Nothing is written outside the target: names come from
//! validated tree nodes, and with `force` an existing file or symlink in
//! the way is removed, never followed.
#![allow(unsafe_code)] // libc calls (mknod, lchown, utimensat): each block says why it is sound

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use filetime::FileTime;
use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, IoContext, Result};
use crate::id::ObjectId;
use crate::pool::Pool;
use crate::progress::{self, Event, Progress};
use crate::tree::{
    dir_leaves, leaf_entries, lookup, split_path, ChunkRef, Content, Entry, Special,
};

/// How to export.
#[derive(Clone, Debug, Default)]
pub struct ExportOptions {
    /// Export only this path inside the volume.
    pub path: Option<String>,
    /// Write into a non-empty directory, replacing what is in the way.
    pub force: bool,
    /// Advanced after each file.
    pub progress: Option<Arc<dyn Progress>>,
}

/// What an export wrote.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ExportReport {
    /// Regular files written.
    pub files: u64,
    /// Directories created.
    pub dirs: u64,
    /// Symbolic links created.
    pub symlinks: u64,
    /// FIFOs, sockets and device nodes created.
    pub specials: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

#[derive(Default)]
struct Counters {
    files: AtomicU64,
    dirs: AtomicU64,
    symlinks: AtomicU64,
    specials: AtomicU64,
    bytes: AtomicU64,
}

/// Sets extended attributes on `path` (not following a symlink).
fn set_xattrs(path: &Path, xattrs: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
    if xattrs.is_empty() {
        return Ok(());
    }
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::io(path, std::io::ErrorKind::InvalidInput.into()))?;
    for (name, value) in xattrs {
        let c_name = std::ffi::CString::new(name.clone())
            .map_err(|_| Error::io(path, std::io::ErrorKind::InvalidInput.into()))?;
        // SAFETY: both strings are NUL-terminated; value is a live slice.
        let rc = unsafe {
            libc::lsetxattr(
                c_path.as_ptr(),
                c_name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            return Err(Error::io(
                path,
                std::io::Error::new(
                    err.kind(),
                    format!(
                        "setting extended attribute {}: {err}",
                        String::from_utf8_lossy(name)
                    ),
                ),
            ));
        }
    }
    Ok(())
}

struct Exporter<'a> {
    pool: &'a Pool,
    progress: Option<Arc<dyn Progress>>,
    force: bool,
    as_root: bool,
    counters: Counters,
}

fn at_path(rel: &str, e: Error) -> Error {
    match e {
        Error::AtPath { .. } | Error::Io { .. } => e,
        other => Error::AtPath {
            path: rel.to_string(),
            source: Box::new(other),
        },
    }
}

impl Exporter<'_> {
    /// Writes a directory's entries, one leaf node at a time (memory stays
    /// bounded however large the directory).
    fn export_dir(&self, tree: &ObjectId, dest: &Path, rel: &str) -> Result<()> {
        let leaves = dir_leaves(&self.pool.store, tree).map_err(|e| at_path(rel, e))?;
        leaves.par_iter().try_for_each(|leaf| {
            let entries = leaf_entries(&self.pool.store, leaf).map_err(|e| at_path(rel, e))?;
            entries
                .par_iter()
                .try_for_each(|e| self.export_entry(e, dest, rel))
        })
    }

    /// Removes what is at `path` unless it is a directory and `keep_dir`.
    fn clear(&self, path: &Path, keep_dir: bool) -> Result<bool> {
        match fs::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(path, e)),
            Ok(md) if md.is_dir() && keep_dir => Ok(true),
            Ok(md) if md.is_dir() => Err(Error::io(
                path,
                std::io::Error::other("a directory is in the way of a file; not replaced"),
            )),
            Ok(_) if self.force => fs::remove_file(path).at(path).map(|_| false),
            Ok(_) => Err(Error::io(
                path,
                std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            )),
        }
    }

    fn export_entry(&self, e: &Entry, dir: &Path, parent_rel: &str) -> Result<()> {
        let path = dir.join(OsStr::from_bytes(&e.name));
        let rel = if parent_rel.is_empty() {
            String::from_utf8_lossy(&e.name).into_owned()
        } else {
            format!("{parent_rel}/{}", String::from_utf8_lossy(&e.name))
        };
        let mtime = FileTime::from_unix_time(
            e.mtime_ns.div_euclid(1_000_000_000),
            e.mtime_ns.rem_euclid(1_000_000_000) as u32,
        );
        progress::check(&self.progress)?;
        match &e.content {
            Content::File { chunks, size } => {
                self.export_file(e, chunks, &path, &rel, mtime)?;
                self.counters.files.fetch_add(1, Ordering::Relaxed);
                self.counters.bytes.fetch_add(*size, Ordering::Relaxed);
                progress::report(&self.progress, Event::File { bytes: *size });
            }
            Content::Dir(d) => {
                if !self.clear(&path, true)? {
                    fs::create_dir(&path).at(&path)?;
                }
                self.export_dir(&d.tree, &path, &rel)?;
                self.set_owner(e, &path)?;
                fs::set_permissions(&path, fs::Permissions::from_mode(e.mode)).at(&path)?;
                filetime::set_file_mtime(&path, mtime).at(&path)?;
                self.counters.dirs.fetch_add(1, Ordering::Relaxed);
            }
            Content::Symlink(target) => {
                self.clear(&path, false)?;
                std::os::unix::fs::symlink(OsStr::from_bytes(target), &path).at(&path)?;
                self.set_owner(e, &path)?;
                filetime::set_symlink_file_times(&path, mtime, mtime).at(&path)?;
                self.counters.symlinks.fetch_add(1, Ordering::Relaxed);
            }
            Content::Special(s) => {
                self.clear(&path, false)?;
                make_node(e, s, &path)?;
                self.set_owner(e, &path)?;
                fs::set_permissions(&path, fs::Permissions::from_mode(e.mode)).at(&path)?;
                filetime::set_symlink_file_times(&path, mtime, mtime).at(&path)?;
                self.counters.specials.fetch_add(1, Ordering::Relaxed);
            }
        }
        set_xattrs(&path, &e.xattrs).map_err(|err| at_path(&rel, err))?;
        Ok(())
    }

    /// Writes a file's chunks to a new file at `path`, then its owner (as
    /// root), mode and mtime.
    fn export_file(
        &self,
        e: &Entry,
        chunks: &[ChunkRef],
        path: &Path,
        rel: &str,
        mtime: FileTime,
    ) -> Result<()> {
        self.clear(path, false)?;
        let mut file = File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .at(path)?;
        for c in chunks {
            let data = self
                .pool
                .store
                .get(&c.id)
                .map_err(|err| at_path(rel, err))?;
            file.write_all(&data).at(path)?;
        }
        if self.as_root {
            std::os::unix::fs::fchown(&file, Some(e.uid), Some(e.gid)).at(path)?;
        }
        file.set_permissions(fs::Permissions::from_mode(e.mode))
            .at(path)?;
        filetime::set_file_handle_times(&file, None, Some(mtime)).at(path)
    }

    /// Gives `path` the entry's owner, when exporting as root.
    fn set_owner(&self, e: &Entry, path: &Path) -> Result<()> {
        if self.as_root {
            std::os::unix::fs::lchown(path, Some(e.uid), Some(e.gid)).at(path)?;
        }
        Ok(())
    }
}

/// Creates the device node, FIFO or socket `s` at `path`.
fn make_node(e: &Entry, s: &Special, path: &Path) -> Result<()> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::io(path, std::io::ErrorKind::InvalidInput.into()))?;
    // SAFETY: c_path is NUL-terminated; mknod does not keep it.
    let rc = unsafe {
        libc::mknod(
            c_path.as_ptr(),
            s.kind.mode_bits() | 0o600,
            s.rdev as libc::dev_t,
        )
    };
    if rc != 0 {
        let os = std::io::Error::last_os_error();
        let message = format!("cannot create {}: {os}", e.kind_name());
        return Err(Error::io(path, std::io::Error::new(os.kind(), message)));
    }
    Ok(())
}

impl Pool {
    /// Writes the tree named by `spec` (`VOLUME[@SNAPSHOT]`) into `dest`.
    pub fn export(&self, spec: &str, dest: &Path, opts: &ExportOptions) -> Result<ExportReport> {
        let resolved = self.resolve(spec)?;
        let inner = split_path(opts.path.as_deref().unwrap_or(""))?;
        let target = if inner.is_empty() {
            None
        } else {
            let found = lookup(&self.store, &resolved.root, &inner)?;
            Some(found.ok_or_else(|| {
                Error::BadPath(format!(
                    "no '{}' in {}",
                    opts.path.as_deref().unwrap_or(""),
                    resolved.spec
                ))
            })?)
        };
        match fs::symlink_metadata(dest) {
            Ok(md) if md.is_dir() => {
                let mut it = fs::read_dir(dest).at(dest)?;
                if it.next().is_some() && !opts.force {
                    return Err(Error::NotEmpty(dest.to_path_buf()));
                }
            }
            Ok(_) => {
                return Err(Error::io(
                    dest,
                    std::io::Error::other("exists and is not a directory"),
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir_all(dest).at(dest)?;
            }
            Err(e) => return Err(Error::io(dest, e)),
        }
        let exporter = Exporter {
            pool: self,
            progress: opts.progress.clone(),
            force: opts.force,
            // SAFETY: geteuid cannot fail.
            as_root: unsafe { libc::geteuid() } == 0,
            counters: Counters::default(),
        };
        self.options().with_io_threads(|| match &target {
            None => exporter.export_dir(&resolved.root, dest, ""),
            Some(Entry {
                content: Content::Dir(d),
                ..
            }) => exporter.export_dir(&d.tree, dest, opts.path.as_deref().unwrap_or("")),
            Some(entry) => exporter.export_entry(entry, dest, ""),
        })?;
        let c = &exporter.counters;
        Ok(ExportReport {
            files: c.files.load(Ordering::Relaxed),
            dirs: c.dirs.load(Ordering::Relaxed),
            symlinks: c.symlinks.load(Ordering::Relaxed),
            specials: c.specials.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
        })
    }
}
