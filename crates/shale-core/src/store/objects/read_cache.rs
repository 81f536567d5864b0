//! The read cache of remote objects: whole windows of packs on local disk.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{IoContext, Result};

/// Windows of remote objects kept on local disk, one file per window,
/// evicted least recently used first once over the size limit. Objects
/// never change once written, so a cached window is never stale; what is
/// read from it is checked like any read (blobs against their ids). A
/// cache that cannot be written to is simply not used.
pub(super) struct ReadCache {
    dir: PathBuf,
    limit: u64,
    pub(super) window: u64,
    /// Bytes cached, as counted when opened plus what was added since.
    used: std::sync::atomic::AtomicU64,
    evicting: std::sync::Mutex<()>,
    /// Fetches of one window are serialized through one of these.
    fetching: Vec<std::sync::Mutex<()>>,
    /// Recently read window files, kept open, most recent first.
    open: std::sync::Mutex<std::collections::VecDeque<(PathBuf, Arc<std::fs::File>)>>,
}

/// Window files kept open by the read cache.
const OPEN_WINDOWS: usize = 32;

impl ReadCache {
    pub(super) fn open(dir: &Path, limit: u64, window: u64) -> Result<ReadCache> {
        crate::private::create_dir_all(dir).at(dir)?;
        let used = walk(dir).iter().map(|(_, len, _)| len).sum();
        Ok(ReadCache {
            dir: dir.to_path_buf(),
            limit,
            window,
            used: std::sync::atomic::AtomicU64::new(used),
            evicting: std::sync::Mutex::new(()),
            fetching: (0..64).map(|_| std::sync::Mutex::new(())).collect(),
            open: Default::default(),
        })
    }

    fn name(&self, key: &str, w: u64) -> blake3::Hash {
        blake3::hash(format!("{key}\0{}\0{w}", self.window).as_bytes())
    }

    fn path(&self, key: &str, w: u64) -> PathBuf {
        let h = self.name(key, w).to_hex();
        self.dir.join(&h[..2]).join(&h[2..32])
    }

    pub(super) fn lock(&self, key: &str, w: u64) -> std::sync::MutexGuard<'_, ()> {
        let i = self.name(key, w).as_bytes()[0] as usize % self.fetching.len();
        self.fetching[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes `from..to` of a cached window.
    pub(super) fn read_part(&self, key: &str, w: u64, from: usize, to: usize) -> Option<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let path = self.path(key, w);
        let file = self.open_window(&path)?;
        let md = file.metadata().ok()?;
        if md.len() < to as u64 {
            return None;
        }
        let mut buf = vec![0u8; to - from];
        file.read_exact_at(&mut buf, from as u64).ok()?;
        // Recently used: its mtime orders eviction (refreshed at most once a
        // minute, to spare a metadata write per read).
        let age = md.modified().ok().and_then(|m| m.elapsed().ok());
        let stale = !matches!(age, Some(a) if a.as_secs() <= 60);
        if stale {
            let _ = filetime::set_file_handle_times(&file, None, Some(filetime::FileTime::now()));
        }
        Some(buf)
    }

    /// An open window file: recently used ones stay open, so neighbouring
    /// reads share one file (and its readahead) instead of opening it each.
    fn open_window(&self, path: &Path) -> Option<Arc<std::fs::File>> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = open.iter().position(|(p, _)| p == path) {
            let hit = open.remove(i)?;
            let file = hit.1.clone();
            open.push_front(hit);
            return Some(file);
        }
        drop(open);
        let file = Arc::new(std::fs::File::open(path).ok()?);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.push_front((path.to_path_buf(), file.clone()));
        open.truncate(OPEN_WINDOWS);
        Some(file)
    }

    /// Whether window `w` of `key` is cached whole (`len` bytes).
    pub(super) fn has_window(&self, key: &str, w: u64, len: u64) -> bool {
        std::fs::metadata(self.path(key, w)).is_ok_and(|m| m.len() >= len)
    }

    /// Bytes cached, and the limit.
    pub(super) fn usage(&self) -> (u64, u64) {
        (
            self.used.load(std::sync::atomic::Ordering::Acquire),
            self.limit,
        )
    }

    pub(super) fn put_window(&self, key: &str, w: u64, data: &[u8]) {
        let path = self.path(key, w);
        let Some(parent) = path.parent() else { return };
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let written = crate::private::create_dir_all(parent)
            .and_then(|()| crate::private::write(&tmp, data))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
            return;
        }
        let used = self
            .used
            .fetch_add(data.len() as u64, std::sync::atomic::Ordering::AcqRel)
            + data.len() as u64;
        if used > self.limit {
            self.evict();
        }
    }

    /// Removes the least recently used windows until 90% of the limit.
    fn evict(&self) {
        let Ok(_one) = self.evicting.try_lock() else {
            return;
        };
        let mut files = walk(&self.dir);
        files.sort_by_key(|(_, _, mtime)| *mtime);
        let mut used: u64 = files.iter().map(|(_, len, _)| len).sum();
        for (path, len, _) in files {
            if used <= self.limit / 10 * 9 {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                used -= len;
            }
        }
        self.used.store(used, std::sync::atomic::Ordering::Release);
    }
}

/// The files under `dir` (two levels): path, size, mtime.
pub(super) fn walk(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    for sub in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(sub.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(md) = f.metadata() {
                let mtime = md.modified().unwrap_or(std::time::UNIX_EPOCH);
                out.push((f.path(), md.len(), mtime));
            }
        }
    }
    out
}
