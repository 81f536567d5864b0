//! Objects as files under a local directory.
//!
//! A put writes a temporary file in `tmp/`, fsyncs it, renames it to its key
//! and fsyncs the directory, so an object is either absent or complete.
#![allow(unsafe_code)] // libc calls (posix_fadvise, pread): each block says why it is sound

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};

use super::read_ahead::{hints_help, Advice, ReadAhead};
use super::ObjectStore;
use crate::error::{Error, IoContext, Result};

/// Open files kept for ranged reads.
const OPEN_FILES: usize = 64;

/// An object store rooted at a directory.
pub struct LocalDir {
    root: PathBuf,
    counter: AtomicU64,
    /// Recently read objects, most recent first. Reusing the open file keeps
    /// the kernel's read-ahead for it: reading a large file's chunks one by
    /// one from packs ran at a third of disk speed when every read opened
    /// the pack afresh. Objects never change, so a kept file is never stale.
    open: Mutex<VecDeque<OpenObject>>,
    /// Gives the kernel read-ahead advice off the reading thread.
    advisor: Advisor,
    /// Whether to hint read-ahead (see `read_ahead::hints_help`).
    hint: bool,
}

/// An object kept open for ranged reads.
struct OpenObject {
    key: String,
    file: Arc<File>,
    ahead: ReadAhead,
}

impl LocalDir {
    /// Opens (and creates if needed) a store rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        crate::private::create_dir_all(&root.join("tmp")).at(root.join("tmp"))?;
        Ok(LocalDir {
            counter: AtomicU64::new(0),
            open: Mutex::new(VecDeque::new()),
            advisor: Advisor::default(),
            hint: hints_help(&root),
            root,
        })
    }

    /// The open file of an object if it is kept open (made the most
    /// recent).
    fn kept_open(&self, key: &str) -> Option<Arc<File>> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let i = open.iter().position(|o| o.key == key)?;
        let hit = open.remove(i).expect("index from position");
        let file = hit.file.clone();
        open.push_front(hit);
        Some(file)
    }

    /// The open file of an object, kept open or opened now.
    fn open_file(&self, key: &str) -> Result<Arc<File>> {
        if let Some(file) = self.kept_open(key) {
            return Ok(file);
        }
        let path = self.path_of(key);
        let file = Arc::new(File::open(&path).at(&path)?);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.push_front(OpenObject {
            key: key.to_string(),
            file: file.clone(),
            ahead: ReadAhead::default(),
        });
        open.truncate(OPEN_FILES);
        Ok(file)
    }

    /// Notes a read of a kept-open object for its read-ahead, and tells the
    /// kernel what to read ahead and what to drop (see `read_ahead.rs`).
    fn read_ahead(&self, key: &str, file: &Arc<File>, offset: u64, len: usize) {
        let mut advice = {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            match open.iter_mut().find(|o| o.key == key) {
                Some(o) => o.ahead.after_read(offset, len as u64),
                None => return,
            }
        };
        if !self.hint {
            advice.will_need = None;
        }
        if advice != Advice::default() {
            self.advisor.advise(file, advice);
        }
    }

    /// The file that holds `key`.
    pub fn path_of(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// Creates (durably) the directory an object goes in; returns it.
    fn ensure_parent(&self, target: &Path) -> Result<PathBuf> {
        let dir = target.parent().unwrap_or(&self.root).to_path_buf();
        if !dir.is_dir() {
            crate::private::create_dir_all(&dir).at(&dir)?;
            sync_dir(dir.parent().unwrap_or(&self.root))?;
        }
        Ok(dir)
    }

    fn check_key(key: &str) -> Result<()> {
        let ok = !key.is_empty()
            && !key.starts_with('/')
            && key
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..");
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "invalid object key {key:?}"
            )))
        }
    }
}

/// Advice waiting for the advisor thread; more is dropped (it is advice).
const ADVICE_QUEUED: usize = 64;

/// Advice for the kernel about one file.
type Advise = (Arc<File>, Advice);

/// A thread that passes read-ahead advice to the kernel.
///
/// `POSIX_FADV_WILLNEED` allocates the pages and queues the disk reads, and
/// `POSIX_FADV_DONTNEED` takes pages out of the page cache, both before the
/// call returns: measured with `perf` on a sequential read through a mount,
/// the two took a quarter of the time of the thread that answers the
/// kernel's reads, which was the limit. Here they cost that thread a
/// message.
#[derive(Default)]
struct Advisor {
    queue: Mutex<Option<SyncSender<Advise>>>,
}

impl Advisor {
    fn advise(&self, file: &Arc<File>, advice: Advice) {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if queue.is_none() {
            let (tx, rx) = sync_channel::<Advise>(ADVICE_QUEUED);
            let started = std::thread::Builder::new()
                .name("shale-advise".into())
                .spawn(move || {
                    // Ends when the store, and with it the sender, is dropped.
                    for (file, advice) in rx {
                        apply(&file, &advice);
                    }
                });
            match started {
                Ok(_) => *queue = Some(tx),
                Err(_) => return apply(file, &advice),
            }
        }
        if let Some(tx) = queue.as_ref() {
            // A full queue drops the advice: the reads work without it.
            let _ = tx.try_send((file.clone(), advice));
        }
    }
}

/// Tells the kernel what to drop, then what to read ahead.
fn apply(file: &File, advice: &Advice) {
    let advise = |(from, len): (u64, u64), what| {
        // Advice: the read has succeeded whatever the kernel makes of it.
        // SAFETY: a plain system call on a descriptor `file` keeps open.
        unsafe {
            libc::posix_fadvise(
                file.as_raw_fd(),
                from as libc::off_t,
                len as libc::off_t,
                what,
            );
        }
    };
    if let Some(r) = advice.dont_need {
        advise(r, libc::POSIX_FADV_DONTNEED);
    }
    if let Some(r) = advice.will_need {
        advise(r, libc::POSIX_FADV_WILLNEED);
    }
}

/// Takes a durable file's pages out of the page cache. A pack is written
/// once and read back chunk by chunk by whoever keeps the bytes (a mount in
/// its own page cache, an export in its output), so its cached pages are a
/// second copy of data the writer just had in memory. Dropping them once
/// they are clean frees them at once for the next pack: on a VM whose free
/// memory goes back to the host (as here), a page touched for the first
/// time costs a fault in the host, and writing packs into new pages took
/// most of a mount's commit thread (20,000 small files copied in with
/// `cp -r`, by turns: 2,303-2,725 files/s dropping them, 752-1,140 not).
fn drop_cached(file: &File) {
    // Advice: the data is durable whatever the kernel makes of it.
    // SAFETY: a plain system call on a descriptor `file` keeps open.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

impl ObjectStore for LocalDir {
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        Self::check_key(key)?;
        let target = self.path_of(key);
        let dir = self.ensure_parent(&target)?;
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self.root.join("tmp").join(format!(
            "{}.{}.{n}.tmp",
            std::process::id(),
            key.replace('/', "_")
        ));
        let mut file = crate::private::open(
            &tmp,
            std::fs::OpenOptions::new().write(true).create_new(true),
        )
        .at(&tmp)?;
        let written = file.write_all(data).and_then(|_| file.sync_all());
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io(&tmp, e));
        }
        drop(file);
        fs::rename(&tmp, &target).at(&target)?;
        sync_dir(&dir)
    }

    fn put_file(&self, key: &str, path: &Path) -> Result<()> {
        Self::check_key(key)?;
        let target = self.path_of(key);
        let dir = self.ensure_parent(&target)?;
        let file = File::open(path).at(path)?;
        file.sync_all().at(path)?;
        drop_cached(&file);
        drop(file);
        match fs::rename(path, &target) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                let data = fs::read(path).at(path)?;
                self.put(key, &data)?;
                return fs::remove_file(path).at(path);
            }
            Err(e) => return Err(Error::io(&target, e)),
        }
        sync_dir(&dir)
    }

    fn staging_dir(&self) -> Option<PathBuf> {
        Some(self.root.join("tmp"))
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        Self::check_key(key)?;
        let path = self.path_of(key);
        let mut data = Vec::new();
        File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut data))
            .at(&path)?;
        Ok(data)
    }

    fn get_range(&self, key: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        Self::check_key(key)?;
        let file = self.open_file(key)?;
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, offset).at(self.path_of(key))?;
        self.read_ahead(key, &file, offset, len);
        Ok(buf)
    }

    fn get_range_now(&self, key: &str, offset: u64, len: usize) -> Option<Vec<u8>> {
        // Only objects kept open: opening a file may wait on the disk.
        let file = self.kept_open(key)?;
        // Not zeroed first: measured, zeroing took 4% of the thread that
        // answers a mount's reads.
        let mut buf = Vec::<u8>::with_capacity(len);
        let iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: len,
        };
        // RWF_NOWAIT: the bytes in the page cache, or EAGAIN at once.
        // SAFETY: `iov` describes `buf`'s allocation, alive and writable for
        // the call.
        let n = unsafe {
            libc::preadv2(
                file.as_raw_fd(),
                &iov,
                1,
                offset as libc::off_t,
                libc::RWF_NOWAIT,
            )
        };
        if usize::try_from(n).ok() != Some(len) {
            return None;
        }
        // SAFETY: the kernel wrote all `len` bytes.
        unsafe { buf.set_len(len) };
        self.read_ahead(key, &file, offset, len);
        Some(buf)
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let (dir_part, _) = prefix.rsplit_once('/').unwrap_or(("", prefix));
        let start = self.root.join(dir_part);
        if !start.is_dir() {
            return Ok(out);
        }
        let mut stack = vec![start];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).at(&dir)? {
                let entry = entry.at(&dir)?;
                let path = entry.path();
                let rel = path
                    .strip_prefix(&self.root)
                    .map_err(|_| {
                        Error::InvalidArgument(format!("{} outside store", path.display()))
                    })?
                    .to_string_lossy()
                    .into_owned();
                if entry.file_type().at(&path)?.is_dir() {
                    stack.push(path);
                } else if rel.starts_with(prefix) {
                    out.push(rel);
                }
            }
        }
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<()> {
        Self::check_key(key)?;
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|o| o.key != key);
        let path = self.path_of(key);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    fn size(&self, key: &str) -> Result<u64> {
        Self::check_key(key)?;
        let path = self.path_of(key);
        Ok(fs::metadata(&path).at(&path)?.len())
    }

    fn modified(&self, key: &str) -> Result<Option<i64>> {
        Self::check_key(key)?;
        let path = self.path_of(key);
        let mtime = fs::metadata(&path).at(&path)?.modified().at(&path)?;
        Ok(mtime
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_nanos() as i64))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn conformance() {
        let dir = tempfile::tempdir().unwrap();
        super::super::conformance::run(&super::LocalDir::new(dir.path()).unwrap());
    }

    #[test]
    fn rejects_escaping_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::LocalDir::new(dir.path()).unwrap();
        use super::ObjectStore;
        assert!(store.put("../evil", b"x").is_err());
        assert!(store.put("/abs", b"x").is_err());
        assert!(store.get("a/../../b").is_err());
    }
}
