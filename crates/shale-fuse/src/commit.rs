//! Commits: folding a live volume's overlay into new tree nodes and
//! pointing the volume at them, and reloading a volume another process
//! replaced.
//!
//! A commit reads only what changed since the last one: clean directories
//! and files keep their tree entries, so a commit after writing one file
//! rewrites that file's chunks and the directories on its path, and a
//! commit with nothing changed does nothing. The new state becomes visible
//! in one catalog transaction after its blobs are durable (invariant 2);
//! the in-memory state is updated only after that transaction succeeds.
//!
//! Most of a commit's work is chunking, hashing, compressing and storing
//! the files written since the last one. For files held in memory that is
//! done first without the state lock ([`prepare`]), so the mount goes on
//! answering while it runs; the commit itself then uses those chunks for
//! every file not written to since.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use shale_core::catalog::now_ns;
use shale_core::store::blobs::BlobWriter;
use shale_core::tree::{ChunkRef, Content, DirBuilder, DirCursor, DirRef, Entry};
use shale_core::{Error, Pool};

use crate::inodes::{ChunkList, Data, Inode, Kind, Owner, Slot};
use crate::state::State;

/// Chunks of files held in memory, stored ahead of a commit without the
/// state lock. Keep it until that commit is done: its writing session keeps
/// `gc` away from the chunks until the commit references them.
#[derive(Default)]
pub struct Prepared {
    _writer: Option<BlobWriter>,
    files: HashMap<u64, (Arc<Vec<u8>>, Vec<ChunkRef>)>,
}

impl Prepared {
    /// The chunks stored for `ino` if its bytes are still `bytes`.
    fn chunks_of(&self, ino: u64, bytes: &Arc<Vec<u8>>) -> Option<&[ChunkRef]> {
        let (held, chunks) = self.files.get(&ino)?;
        Arc::ptr_eq(held, bytes).then_some(chunks.as_slice())
    }
}

/// Stores the chunks of the files in memory that the next commit will
/// fold, with `state` unlocked while it works, then commits every volume
/// (`volume`: only that one) using them.
pub fn commit_unlocked(state: &Mutex<State>, volume: Option<&str>) -> Result<bool, Error> {
    let lock = || state.lock().unwrap_or_else(|p| p.into_inner());
    let (pool, files) = {
        let st = lock();
        (st.pool.clone(), st.in_memory_to_commit())
    };
    let prepared = match prepare(&pool, files) {
        Ok(p) => p,
        Err(e) => {
            // The commit below stores them itself (and reports what fails).
            tracing::warn!("storing written files ahead of a commit: {e}");
            Prepared::default()
        }
    };
    let mut st = lock();
    match volume {
        Some(v) => st.commit_with(v, &prepared),
        None => {
            let mut any = false;
            for v in st.vols.keys().cloned().collect::<Vec<_>>() {
                any |= st.commit_with(&v, &prepared)?;
            }
            Ok(any)
        }
    }
}

fn prepare(pool: &Arc<Pool>, files: Vec<(u64, Arc<Vec<u8>>)>) -> Result<Prepared, Error> {
    if files.is_empty() {
        return Ok(Prepared::default());
    }
    let writer = pool.blobs().writer("mount commit")?;
    let mut stored = HashMap::new();
    for (ino, bytes) in files {
        let chunks = store_bytes(pool, &writer, &bytes)?;
        stored.insert(ino, (bytes, chunks));
    }
    writer.finish()?;
    Ok(Prepared {
        _writer: Some(writer),
        files: stored,
    })
}

/// Chunks and stores the bytes of a file held in memory.
fn store_bytes(pool: &Pool, w: &BlobWriter, bytes: &[u8]) -> Result<Vec<ChunkRef>, Error> {
    let mut chunks = Vec::new();
    pool.chunking().chunk_stream(
        bytes,
        bytes.len() as u64,
        std::path::Path::new("(a file written through the mount)"),
        |data| {
            chunks.push(w.put_chunk(&data)?);
            Ok(())
        },
    )?;
    Ok(chunks)
}

/// What a commit computed, applied once it is durable.
#[derive(Default)]
struct Plan {
    dirs: Vec<(u64, DirRef)>,
    files: Vec<(u64, Vec<ChunkRef>)>,
    cleaned: Vec<u64>,
}

impl State {
    /// Commits every change to `volume` made through this mount. Returns
    /// whether there was anything to commit.
    pub fn commit(&mut self, volume: &str) -> Result<bool, Error> {
        self.commit_with(volume, &Prepared::default())
    }

    /// The files held in memory that a commit would store now.
    fn in_memory_to_commit(&self) -> Vec<(u64, Arc<Vec<u8>>)> {
        self.table
            .iter()
            .filter_map(|(ino, i)| match &i.kind {
                Kind::File(Data::Memory(m)) if i.dirty && self.is_attached(i) => {
                    Some((ino, m.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// Commits `volume`, using the chunks `prepared` stored for files not
    /// written to since.
    fn commit_with(&mut self, volume: &str, prepared: &Prepared) -> Result<bool, Error> {
        let Some(vol) = self.vols.get(volume) else {
            return Ok(false);
        };
        let (root, committed) = (vol.root, vol.committed);
        if !self.table.get(root).is_some_and(|r| r.dirty) {
            return Ok(false);
        }
        let pool = self.pool.clone();
        let writer = pool.blobs().writer("mount commit")?;
        let mut plan = Plan::default();
        let tree = self.fold_dir(root, &writer, &pool, prepared, &mut plan)?;
        writer.finish()?;
        shale_core::failpoint::fail_point("mount.commit.before");
        let root_meta = self.root_meta_of(root).unwrap_or_default();
        let result = pool.commit_root(volume, &committed, &tree, &root_meta);
        match result {
            Ok(()) => {}
            Err(Error::Conflict(_)) => {
                // The volume was replaced without asking this mount: keep
                // what was written here as a snapshot rather than lose it.
                let name = format!("mount.conflict.{}", now_ns());
                pool.keep_as_snapshot(volume, &tree, &name)?;
                tracing::error!(
                    "volume {volume} was replaced by another process while mounted; \
                     the writes made through this mount are kept as snapshot {volume}@{name}"
                );
                self.reload(volume);
                return Ok(true);
            }
            Err(e) => return Err(e),
        }
        drop(writer);
        self.apply(plan, pool.chunking());
        if let Some(v) = self.vols.get_mut(volume) {
            v.committed = tree.tree;
            v.bytes = tree.bytes;
        }
        self.restart_journal(volume, tree);
        tracing::debug!("committed {volume}: root {}", tree.tree);
        shale_core::coord::mounts::announce_changed(pool.root(), volume);
        // An object-store pool's catalog copy follows each commit; the
        // commit itself is durable in the local catalog either way.
        if let Err(e) = pool.sync_catalog() {
            tracing::warn!("copying the catalog to the store after a commit: {e}");
        }
        Ok(true)
    }

    /// Commits every volume with changes.
    pub fn commit_all(&mut self) -> Result<(), Error> {
        // (Under the lock: at unmount and on fsync; the periodic commits
        // use `commit_unlocked`.)
        let names: Vec<String> = self.vols.keys().cloned().collect();
        for v in names {
            self.commit(&v)?;
        }
        Ok(())
    }

    fn fold_dir(
        &self,
        ino: u64,
        w: &BlobWriter,
        pool: &Arc<Pool>,
        prepared: &Prepared,
        plan: &mut Plan,
    ) -> Result<DirRef, Error> {
        let inode = self.table.get(ino).ok_or_else(|| lost(ino))?;
        let Kind::Dir(dir) = &inode.kind else {
            return Err(lost(ino));
        };
        if !inode.dirty {
            if let Some(base) = dir.base {
                return Ok(base);
            }
        }
        let mut builder = DirBuilder::new(w);
        let mut cursor = DirCursor::new(pool.blobs(), dir.base.as_ref().map(|b| &b.tree))?;
        let mut kids = dir.children.iter().peekable();
        loop {
            let base_name = cursor.peek()?.map(|e| e.name.clone());
            builder.near(cursor.take_loaded());
            match (kids.peek(), base_name) {
                (None, None) => break,
                (Some((name, slot)), base)
                    if base
                        .as_ref()
                        .is_none_or(|b| name.as_slice() <= b.as_slice()) =>
                {
                    if base.as_deref() == Some(name.as_slice()) {
                        cursor.next_entry()?;
                    }
                    if let Slot::Ino(c) = slot {
                        builder.push(self.fold_entry(*c, name, w, pool, prepared, plan)?)?;
                    }
                    kids.next();
                }
                _ => {
                    if let Some(e) = cursor.next_entry()? {
                        builder.push(e)?;
                    }
                }
            }
        }
        let new = builder.finish()?;
        plan.dirs.push((ino, new));
        Ok(new)
    }

    fn fold_entry(
        &self,
        ino: u64,
        name: &[u8],
        w: &BlobWriter,
        pool: &Arc<Pool>,
        prepared: &Prepared,
        plan: &mut Plan,
    ) -> Result<Entry, Error> {
        let inode: &Inode = self.table.get(ino).ok_or_else(|| lost(ino))?;
        let content = match &inode.kind {
            Kind::Dir(_) => Content::Dir(self.fold_dir(ino, w, pool, prepared, plan)?),
            Kind::File(Data::Chunks { size, chunks }) => Content::File {
                size: *size,
                chunks: chunks.refs.clone(),
            },
            Kind::File(Data::Memory(m)) => {
                let chunks = match prepared.chunks_of(ino, m) {
                    Some(c) => c.to_vec(),
                    None => store_bytes(pool, w, m)?,
                };
                plan.files.push((ino, chunks.clone()));
                Content::File {
                    size: m.len() as u64,
                    chunks,
                }
            }
            Kind::File(Data::Upper(u)) => {
                let chunks = u.chunks(w, pool.chunking())?;
                plan.files.push((ino, chunks.clone()));
                Content::File {
                    size: u.size,
                    chunks,
                }
            }
            Kind::Symlink(t) => Content::Symlink(t.clone()),
            Kind::Special(s) => Content::Special(*s),
            Kind::PoolRoot | Kind::SnapshotDir { .. } => return Err(lost(ino)),
        };
        if inode.dirty {
            plan.cleaned.push(ino);
        }
        Ok(Entry {
            name: name.to_vec(),
            mode: inode.meta.mode,
            uid: inode.meta.uid,
            gid: inode.meta.gid,
            mtime_ns: inode.meta.mtime_ns,
            content,
            xattrs: inode.xattrs.clone(),
        })
    }

    fn apply(&mut self, plan: Plan, params: shale_core::store::chunker::ChunkParams) {
        for (ino, base) in &plan.dirs {
            if let Some(i) = self.table.get_mut(*ino) {
                i.dirty = false;
                if let Some(d) = i.dir_mut() {
                    d.base = Some(*base);
                    d.children.retain(|_, s| *s != Slot::Whiteout);
                }
            }
        }
        for (ino, chunks) in plan.files {
            self.lingering.remove(&ino);
            let Some(i) = self.table.get_mut(ino) else {
                continue;
            };
            if i.opens == 0 && !i.written_unheld {
                // Nothing writes to it now: serve it from its chunks and
                // drop the local copy.
                self.serve_from_chunks(ino, chunks);
                continue;
            }
            // Open, or written through a handle the kernel opened without
            // asking (so perhaps open): its next writes and reads would
            // start over from its chunks. Kept until it is closed and a
            // commit interval passes without a write.
            i.written_unheld = false;
            self.lingering.insert(ino, chunks.clone());
            if let Some(Kind::File(Data::Upper(u))) = self.table.get_mut(ino).map(|i| &mut i.kind) {
                u.committed(chunks, params);
            }
        }
        for ino in &plan.cleaned {
            if let Some(i) = self.table.get_mut(*ino) {
                i.dirty = false;
            }
        }
        for ino in plan
            .cleaned
            .iter()
            .chain(plan.dirs.iter().map(|(i, _)| i))
            .copied()
            .collect::<Vec<_>>()
        {
            self.maybe_drop(ino);
        }
    }

    /// Serves `ino` from `chunks` (what a commit stored for it) and drops
    /// its local copy.
    fn serve_from_chunks(&mut self, ino: u64, chunks: Vec<ChunkRef>) {
        let mut freed = 0;
        if let Some(Kind::File(data)) = self.table.get_mut(ino).map(|i| &mut i.kind) {
            if let Data::Memory(m) = data {
                freed = m.len();
            }
            *data = Data::Chunks {
                size: data.size(),
                chunks: Arc::new(ChunkList::new(chunks)),
            };
        }
        self.memory_changed(freed, 0);
    }

    /// Drops the local copies of lingering files (see `apply`) that are
    /// closed and were not written since the commit that kept them. Runs
    /// before each periodic commit, so a file written without pause keeps
    /// its copy.
    pub fn settle_lingering(&mut self) {
        let lingering: Vec<u64> = self.lingering.keys().copied().collect();
        for ino in lingering {
            let stored: u64 = self.lingering[&ino].iter().map(|c| c.len as u64).sum();
            let Some(i) = self.table.get(ino) else {
                self.lingering.remove(&ino);
                continue;
            };
            let Kind::File(data @ (Data::Memory(_) | Data::Upper(_))) = &i.kind else {
                self.lingering.remove(&ino);
                continue;
            };
            if i.dirty || data.size() != stored {
                // Changed: back in the next commit, which decides again.
                self.lingering.remove(&ino);
            } else if i.opens == 0 && !i.written_unheld {
                if let Some(chunks) = self.lingering.remove(&ino) {
                    self.serve_from_chunks(ino, chunks);
                }
            }
        }
    }

    /// Reloads `volume` from the catalog if another process changed it;
    /// returns the names (directory inode, name) the kernel must forget.
    pub fn reload(&mut self, volume: &str) -> Vec<(u64, Vec<u8>)> {
        let Some(vol) = self.vols.get(volume) else {
            return Vec::new();
        };
        let root = vol.root;
        let row = match self.pool.catalog().volume(volume) {
            Ok(row) if row.root == vol.committed => return Vec::new(),
            Ok(row) => row,
            Err(_) => {
                // Deleted: every inode of it is detached.
                self.vols.remove(volume);
                let mut forget = self.take_absent();
                if root != fuser::INodeNo::ROOT.0 {
                    forget.push((fuser::INodeNo::ROOT.0, volume.as_bytes().to_vec()));
                }
                return forget;
            }
        };
        let generation = vol.generation + 1;
        // Names the kernel keeps as absent may exist now.
        let mut forget = self.take_absent();
        if let Some(r) = self.table.get_mut(root) {
            if let Some(d) = r.dir_mut() {
                forget.extend(d.children.keys().map(|n| (root, n.clone())));
                // The root's own attributes (an empty name stands for them).
                forget.push((root, Vec::new()));
                d.children.clear();
                d.subdirs = None;
                d.base = Some(DirRef {
                    tree: row.root,
                    bytes: row.bytes,
                    files: row.files,
                    entries: 0,
                });
            }
            r.dirty = false;
            r.meta.mtime_ns = row.updated;
            r.meta.ctime_ns = row.updated;
            if let Ok(meta) = self.pool.root_meta(volume) {
                r.meta.mode = meta.mode;
                r.meta.uid = meta.uid;
                r.meta.gid = meta.gid;
                r.xattrs = meta.xattrs;
            }
            r.owner = Owner::Live {
                volume: Arc::from(volume),
                generation,
            };
        }
        // A read-only view of a volume another mount wrote may now write it.
        let writer = match self.vols.get(volume).filter(|v| v.writer.is_none()) {
            Some(_) => self
                .claim_unless_logged(volume)
                .ok()
                .and_then(Result::ok)
                .flatten(),
            None => None,
        };
        let journal = writer
            .is_some()
            .then(|| self.new_journal(volume, &row, root));
        if let Some(v) = self.vols.get_mut(volume) {
            v.generation = generation;
            v.committed = row.root;
            v.bytes = row.bytes;
            v.quota = row.quota;
            if writer.is_some() {
                v.writer = writer;
                v.journal = journal;
            }
        }
        // What was written here since the last commit is gone with the
        // overlay: so is its log.
        let base = DirRef {
            tree: row.root,
            bytes: row.bytes,
            files: row.files,
            entries: 0,
        };
        self.restart_journal(volume, base);
        tracing::info!("volume {volume} changed by another process: reloaded");
        forget
    }
}

fn lost(ino: u64) -> Error {
    Error::corrupt(
        "mount state",
        format!("inode {ino} is missing or of the wrong kind"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Write;

    /// The bytes a file is served from after a commit.
    fn committed_bytes(st: &State, ino: u64) -> Vec<u8> {
        let Ok(Kind::File(Data::Chunks { chunks, .. })) = st.inode(ino).map(|i| &i.kind) else {
            panic!("not served from chunks")
        };
        let mut out = Vec::new();
        for c in chunks.refs.iter() {
            out.extend_from_slice(&st.pool.blobs().get(&c.id).unwrap());
        }
        out
    }

    #[test]
    fn a_file_written_after_its_chunks_were_prepared_is_committed_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = crate::state::tests::one_volume(dir.path());
        let root = fuser::INodeNo::ROOT.0;
        let file = |st: &mut State, name: &[u8], bytes: &[u8]| {
            let kind = Kind::File(Data::Memory(Arc::new(Vec::new())));
            let ino = st.add(root, name, kind, 0o644, 0, 0).unwrap();
            let w = Write {
                ino,
                append: false,
                held: true,
            };
            st.write(w, 0, bytes).unwrap();
            // held by the kernel, as after a lookup
            st.table.get_mut(ino).unwrap().lookups = 1;
            ino
        };
        let same = file(&mut st, b"same", b"written once");
        let changed = file(&mut st, b"changed", b"first version");
        let prepared = prepare(&st.pool.clone(), st.in_memory_to_commit()).unwrap();
        assert_eq!(prepared.files.len(), 2);
        let w = Write {
            ino: changed,
            append: false,
            held: true,
        };
        st.write(w, 0, b"FIRST").unwrap();
        assert!(st.commit_with("v", &prepared).unwrap());
        assert_eq!(committed_bytes(&st, same), b"written once");
        assert_eq!(committed_bytes(&st, changed), b"FIRST version");
    }
}
