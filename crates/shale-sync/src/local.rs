//! A directory on this machine.

use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use shale_core::error::IoContext;
use shale_core::{Error, PoolOptions, Result};

use crate::entry::{Entry, Kind};
use crate::side::{Feed, Side, Sink};

/// Files are read and written in pieces of this size.
const PIECE: usize = 1 << 20;

/// A local directory as a sync side.
pub struct Local {
    root: PathBuf,
    /// How walks run (their I/O threads).
    options: PoolOptions,
}

impl Local {
    /// The directory `root` (need not exist for a destination).
    pub fn new(root: &Path, options: &PoolOptions) -> Local {
        Local {
            root: root.to_path_buf(),
            options: options.clone(),
        }
    }

    /// The path of `rel` under the root; a name that would lead elsewhere
    /// (`..`, `.` or empty segments, a leading `/`) is refused, whatever
    /// side it came from.
    fn at(&self, rel: &[u8]) -> Result<PathBuf> {
        if rel.is_empty() {
            return Ok(self.root.clone());
        }
        if let Some(why) = crate::store::not_a_local_name(rel) {
            return Err(Error::InvalidArgument(format!(
                "{}: not written under {}: {why}",
                String::from_utf8_lossy(rel),
                self.root.display()
            )));
        }
        Ok(self.root.join(OsStr::from_bytes(rel)))
    }
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        name.to_vec()
    } else {
        [dir, b"/", name].concat()
    }
}

/// Marks the temporary name of a file being written: `.NAME` + this + pid.
const TEMP_MARK: &[u8] = b".shale-sync-";

/// Whether `name` is the temporary file of a sync process that is gone.
fn is_leftover(name: &[u8]) -> bool {
    if !name.starts_with(b".") {
        return false;
    }
    let Some(at) = name.windows(TEMP_MARK.len()).rposition(|w| w == TEMP_MARK) else {
        return false;
    };
    let pid = std::str::from_utf8(&name[at + TEMP_MARK.len()..])
        .ok()
        .and_then(|p| p.parse::<u32>().ok());
    pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists())
}

/// Lists `dir` (relative path `rel`) and everything under it, directories
/// in parallel: a cold walk waits on the disk, not the CPU.
fn walk(root: &Path, rel: &[u8], out: &mut Vec<Entry>) -> Result<()> {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(OsStr::from_bytes(rel))
    };
    let mut subdirs = Vec::new();
    for item in fs::read_dir(&dir).at(&dir)? {
        let item = item.at(&dir)?;
        if is_leftover(item.file_name().as_bytes()) {
            // a partial copy of a sync that was killed: never a real file
            let _ = fs::remove_file(item.path());
            continue;
        }
        let path = join(rel, item.file_name().as_bytes());
        let md = item.metadata().at(item.path())?; // of the link itself, not its target
        let ft = md.file_type();
        let kind = if ft.is_file() {
            Kind::File
        } else if ft.is_dir() {
            Kind::Dir
        } else if ft.is_symlink() {
            Kind::Symlink(
                fs::read_link(item.path())
                    .at(item.path())?
                    .as_os_str()
                    .as_bytes()
                    .to_vec(),
            )
        } else {
            continue; // FIFOs, sockets, devices are not synced
        };
        if kind == Kind::Dir {
            subdirs.push(path.clone());
        }
        out.push(Entry {
            path,
            size: if kind == Kind::File { md.len() } else { 0 },
            mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
            mode: md.mode() & 0o7777,
            kind,
            stored_hash: None,
        });
    }
    let below: Vec<Result<Vec<Entry>>> = subdirs
        .par_iter()
        .map(|sub| {
            let mut v = Vec::new();
            walk(root, sub, &mut v).map(|()| v)
        })
        .collect();
    for b in below {
        out.extend(b?);
    }
    Ok(())
}

impl Side for Local {
    fn name(&self) -> String {
        self.root.display().to_string()
    }

    fn list(&self) -> Result<Vec<Entry>> {
        let mut out = self.list_any_order()?;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn list_any_order(&self) -> Result<Vec<Entry>> {
        let md = match self.root.metadata() {
            Ok(md) => md,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&self.root, e)),
        };
        if md.is_file() {
            // A single file: it is the whole listing, under the empty path
            // (the other side names it by its own root).
            return Ok(vec![Entry {
                path: Vec::new(),
                kind: Kind::File,
                size: md.len(),
                mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
                mode: md.mode() & 0o7777,
                stored_hash: None,
            }]);
        }
        if !md.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "{} is neither a file nor a directory",
                self.root.display()
            )));
        }
        let mut out = Vec::new();
        // Cold directories wait on the disk: many in flight, not one per core.
        self.options
            .with_io_threads(|| walk(&self.root, b"", &mut out))?;
        Ok(out)
    }

    fn read(&self, e: &Entry, sink: &mut Sink<'_>) -> Result<()> {
        let path = self.at(&e.path)?;
        let mut f = fs::File::open(&path).at(&path)?;
        // Sized to the file (a zeroed 1 MiB per small file costs more than reading it).
        let mut buf = vec![0u8; (e.size as usize).saturating_add(1).clamp(4096, PIECE)];
        loop {
            let n = f.read(&mut buf).at(&path)?;
            if n == 0 {
                return Ok(());
            }
            sink(&buf[..n])?;
        }
    }

    fn write(&self, e: &Entry, feed: &mut Feed<'_>) -> Result<()> {
        let path = self.at(&e.path)?;
        let parent = path.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&parent).at(&parent)?;
        let name = path.file_name().map(|n| n.as_bytes()).unwrap_or(b"file");
        // A hidden name beside the target, renamed over it once complete.
        let mut tmp_name = b".".to_vec();
        tmp_name.extend_from_slice(&name[..name.len().min(200)]);
        tmp_name.extend_from_slice(TEMP_MARK);
        tmp_name.extend_from_slice(std::process::id().to_string().as_bytes());
        let tmp = parent.join(OsStr::from_bytes(&tmp_name));
        let result = (|| {
            let mut f = fs::File::create(&tmp).at(&tmp)?;
            feed(&mut |piece: &[u8]| f.write_all(piece).at(&tmp))?;
            drop(f);
            fs::set_permissions(&tmp, fs::Permissions::from_mode(e.mode)).at(&tmp)?;
            let t = filetime::FileTime::from_unix_time(
                e.mtime_ns.div_euclid(1_000_000_000),
                e.mtime_ns.rem_euclid(1_000_000_000) as u32,
            );
            filetime::set_file_mtime(&tmp, t).at(&tmp)?;
            if path.is_dir() {
                fs::remove_dir_all(&path).at(&path)?;
            }
            fs::rename(&tmp, &path).at(&path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn mkdir(&self, e: &Entry) -> Result<()> {
        let path = self.at(&e.path)?;
        if path.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
            fs::remove_file(&path).at(&path)?;
        }
        fs::create_dir_all(&path).at(&path)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(e.mode | 0o700)).at(&path)
    }

    fn symlink(&self, e: &Entry) -> Result<()> {
        let Kind::Symlink(target) = &e.kind else {
            return Ok(());
        };
        let path = self.at(&e.path)?;
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).at(parent)?;
        }
        match path.symlink_metadata() {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&path).at(&path)?,
            Ok(_) => fs::remove_file(&path).at(&path)?,
            Err(_) => {}
        }
        std::os::unix::fs::symlink(OsStr::from_bytes(target), &path).at(&path)
    }

    fn remove(&self, e: &Entry) -> Result<()> {
        let path = self.at(&e.path)?;
        let r = if e.kind == Kind::Dir {
            fs::remove_dir(&path)
        } else {
            fs::remove_file(&path)
        };
        match r {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other.at(&path),
        }
    }

    fn keeps_mtime(&self) -> bool {
        true
    }

    fn has_dirs(&self) -> bool {
        true
    }
}
