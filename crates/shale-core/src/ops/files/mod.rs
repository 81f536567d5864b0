//! Reading a snapshot's files without a mount (`shale.torch`): the list of
//! its regular files straight from the tree, each with where its data lies,
//! and a file's bytes straight from the pool.
//!
//! The list is made from the tree's nodes alone, subdirectories read in
//! parallel: no system call per file, no inode. A million files in a
//! thousand directories list in a fraction of a cold `os.walk`'s time.
//!
//! Each file can also be given a *group* ([`Pool::file_groups`]): the pack
//! its first chunk is in, numbered in the order packs are first met. Files
//! of one group were written together and lie together, so a reader that
//! shuffles groups and then files within a few groups at a time still
//! reads the pool in large, mostly sequential stretches. Groups ask the
//! index where every file's data is, so they are found only for readers
//! that shuffle.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::id::{ObjectId, PassThrough};
use crate::pool::Pool;
use crate::tree::{each_leaf_view, lookup, split_path, ChunkRef, Content, Entry};

mod kept;
mod list;
pub(crate) use kept::clear as clear_kept_lists;
pub use list::FileList;

/// Directories nested deeper than this are refused (a tree that deep is
/// damaged, or made to hurt).
const MAX_DEPTH: u32 = 4096;

/// Threads reading a tree's directories at once.
const LIST_THREADS: usize = 16;

/// A snapshot's files, as of one tree.
#[derive(Clone, Debug)]
pub struct SnapshotFiles {
    /// The content id of the tree listed (the snapshot id for a snapshot;
    /// a live volume is read as of this tree).
    pub id: ObjectId,
    /// Its regular files, in tree (name) order.
    pub files: FileList,
}

impl Pool {
    /// Every regular file of `spec` (`VOLUME@SNAPSHOT`, or a volume's
    /// current tree), or under `path` inside it.
    pub fn snapshot_files(&self, spec: &str, path: Option<&str>) -> Result<SnapshotFiles> {
        let resolved = self.resolve(spec)?;
        let comps = split_path(path.unwrap_or(""))?;
        let tree = if comps.is_empty() {
            resolved.root
        } else {
            let bad =
                |why: &str| Error::BadPath(format!("{spec}: {}: {why}", path.unwrap_or_default()));
            match lookup(&self.store, &resolved.root, &comps)? {
                Some(Entry {
                    content: Content::Dir(d),
                    ..
                }) => d.tree,
                Some(_) => return Err(bad("not a directory")),
                None => return Err(bad("no such directory")),
            }
        };
        Ok(SnapshotFiles {
            id: resolved.root,
            files: self.tree_files(&tree)?,
        })
    }

    /// The regular files below directory tree `tree`: its kept list if
    /// there is one ([`kept`]), else listed from its nodes and kept.
    fn tree_files(&self, tree: &ObjectId) -> Result<FileList> {
        // An encrypted pool's list would hold its paths in the clear.
        let keep = self.description().encryption.is_none();
        if keep {
            if let Some(files) = kept::load(self.root(), tree) {
                return Ok(files);
            }
        }
        // Reading nodes waits on the disk or the network far more than it
        // computes: more threads than cores keep more reads in flight.
        let threads = rayon::ThreadPoolBuilder::new()
            .num_threads(LIST_THREADS)
            .thread_name(|i| format!("shale-list-{i}"))
            .build()
            .map_err(|e| Error::InvalidArgument(format!("cannot start listing threads: {e}")))?;
        let files = FileList::concat(threads.install(|| self.list_dir(tree, "", 0))?);
        if keep {
            if let Err(e) = kept::save(self.root(), tree, &files) {
                tracing::debug!("cannot keep the list of tree {}: {e}", tree.short());
            }
        }
        Ok(files)
    }

    /// The regular files below directory tree `tree`, whose path is `rel`
    /// (empty at the top), in name order, as lists to be joined;
    /// subdirectories are listed in parallel. Leaves are read in place
    /// ([`each_leaf_view`]): a name is copied once, into its path.
    fn list_dir(&self, tree: &ObjectId, rel: &str, depth: u32) -> Result<Vec<FileList>> {
        if depth > MAX_DEPTH {
            return Err(Error::corrupt(
                format!("directory {rel}"),
                format!("nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        // This directory's files in runs: each run but the last is
        // followed by a subdirectory's files (listed next, in parallel).
        let mut runs = vec![FileList::default()];
        let mut subdirs: Vec<(String, ObjectId)> = Vec::new();
        each_leaf_view(&self.store, tree, &mut |entries| {
            let mut run = runs.last_mut().expect("never empty");
            run.reserve(entries.len());
            for e in entries {
                match e.content {
                    Content::File { size, chunks } => run.push(rel, e.name, size, &chunks),
                    Content::Dir(d) => {
                        subdirs.push((join(rel, e.name), d.tree));
                        runs.push(FileList::default());
                        run = runs.last_mut().expect("just pushed");
                    }
                    _ => {}
                }
            }
            Ok(())
        })?;
        let below: Vec<Vec<FileList>> = subdirs
            .par_iter()
            .map(|(path, tree)| self.list_dir(tree, path, depth + 1))
            .collect::<Result<_>>()?;
        let mut out = Vec::with_capacity(runs.len() + below.iter().map(Vec::len).sum::<usize>());
        let mut runs = runs.into_iter();
        out.extend(runs.next());
        for (sub, run) in below.into_iter().zip(runs) {
            out.extend(sub);
            out.push(run);
        }
        out.retain(|run| !run.is_empty());
        Ok(out)
    }

    /// Each file's group: the pack its first chunk is in, numbered in the
    /// order packs are first met (an empty file takes its predecessor's).
    /// One catalog query per pack met, each naming the pack's chunks.
    ///
    /// Chunks are told apart by the first 8 bytes of their index id (a
    /// hash): a million chunks share a prefix with odds of about 1 in
    /// 30 million, and two that did would only put a file in another
    /// pack's group, which orders reads and decides nothing else.
    pub fn file_groups(&self, files: &FileList) -> Result<Vec<u32>> {
        let blobs = self.blobs();
        // Packs met hold about as many chunks as there are files.
        let mut group_of: HashMap<u64, u32, BuildHasherDefault<PassThrough>> =
            HashMap::with_capacity_and_hasher(files.len(), Default::default());
        let mut packs: HashMap<i64, u32> = HashMap::new();
        let mut out: Vec<u32> = Vec::with_capacity(files.len());
        for i in 0..files.len() {
            let group = match files.chunks(i).and_then(<[ChunkRef]>::first) {
                Some(c) => {
                    let key = blobs.index_id(&c.id);
                    match group_of.get(&prefix(&key)) {
                        Some(g) => *g,
                        None => {
                            let kin = self.catalog().pack_kin(&key)?;
                            let pack = kin.first().ok_or(Error::MissingObject(c.id))?.0;
                            let next = packs.len() as u32;
                            let g = *packs.entry(pack).or_insert(next);
                            group_of.reserve(kin.len());
                            group_of.extend(kin.iter().map(|(_, id)| (prefix(id), g)));
                            g
                        }
                    }
                }
                None => out.last().copied().unwrap_or(0),
            };
            out.push(group);
        }
        Ok(out)
    }

    /// The bytes of a file listed by [`Pool::snapshot_files`], read and
    /// checked chunk by chunk.
    pub fn read_file_chunks(&self, chunks: &[ChunkRef]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(chunks.iter().map(|c| c.len as usize).sum());
        for c in chunks {
            out.extend_from_slice(&self.store.get(&c.id)?);
        }
        Ok(out)
    }
}

/// The first 8 bytes of an id: ids are hashes, so these are already
/// spread evenly, and a table keyed by them needs no hashing of its own.
fn prefix(id: &ObjectId) -> u64 {
    let mut first = [0; 8];
    first.copy_from_slice(&id.0[..8]);
    u64::from_le_bytes(first)
}

/// `name` below `rel` (a path relative to where the listing started).
fn join(rel: &str, name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    let mut path = String::with_capacity(rel.len() + 1 + name.len());
    if !rel.is_empty() {
        path.push_str(rel);
        path.push('/');
    }
    path.push_str(&name);
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_lists_its_files_with_groups_and_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        for (p, d) in [
            ("a.txt", "alpha"),
            ("sub/b.txt", "beta"),
            ("sub/deep/c.bin", "gamma"),
            ("e", ""),
        ] {
            let path = src.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, d).unwrap();
        }
        let pool = Pool::init(&dir.path().join("pool")).unwrap();
        pool.create_volume_from("v", &src, None, None, Default::default())
            .unwrap();
        let snap = pool.create_snapshot("v", Some("s")).unwrap();
        let all = pool.snapshot_files("v@s", None).unwrap();
        assert_eq!(all.id.to_hex(), snap.id);
        let paths: Vec<&str> = all.files.paths().collect();
        assert_eq!(paths, ["a.txt", "e", "sub/b.txt", "sub/deep/c.bin"]);
        assert_eq!(
            pool.file_groups(&all.files).unwrap(),
            [0, 0, 0, 0],
            "one import, one pack"
        );
        let chunks = |i| all.files.chunks(i).unwrap();
        assert_eq!(pool.read_file_chunks(chunks(3)).unwrap(), b"gamma");
        assert_eq!(pool.read_file_chunks(chunks(1)).unwrap(), b"");
        assert_eq!(all.files.sizes(), [5, 0, 4, 5]);
        let sub = pool.snapshot_files("v@s", Some("sub")).unwrap();
        let paths: Vec<&str> = sub.files.paths().collect();
        assert_eq!(paths, ["b.txt", "deep/c.bin"]);
        assert!(pool.snapshot_files("v@s", Some("a.txt")).is_err());
        assert!(pool.snapshot_files("v@nope", None).is_err());
    }

    /// A pool with one snapshot `v@s` of two files, one in `sub/`.
    fn pool_with_snapshot(dir: &std::path::Path, settings: &crate::pool::PoolSettings) -> Pool {
        let src = dir.join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("a"), "alpha").unwrap();
        std::fs::write(src.join("sub/b"), "beta").unwrap();
        let pool = Pool::init_with(&dir.join("pool"), settings).unwrap();
        pool.create_volume_from("v", &src, None, None, Default::default())
            .unwrap();
        pool.create_snapshot("v", Some("s")).unwrap();
        pool
    }

    fn kept_lists(pool: &Pool) -> usize {
        std::fs::read_dir(pool.root().join(kept::DIR)).map_or(0, |d| d.count())
    }

    #[test]
    fn a_listed_tree_is_read_back_from_its_kept_list_until_gc() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool_with_snapshot(dir.path(), &Default::default());
        let first = pool.snapshot_files("v@s", None).unwrap();
        pool.snapshot_files("v@s", Some("sub")).unwrap();
        assert_eq!(kept_lists(&pool), 2, "the snapshot's tree and sub/'s");
        // What is kept is what is read: a list kept in its place shows.
        let mut other = FileList::default();
        other.push("", b"kept", 1, &[]);
        kept::save(pool.root(), &first.id, &other).unwrap();
        let again = pool.snapshot_files("v@s", None).unwrap();
        assert_eq!(again.files, other);
        pool.gc(&Default::default()).unwrap();
        assert_eq!(kept_lists(&pool), 0);
        let listed = pool.snapshot_files("v@s", None).unwrap();
        assert_eq!(listed.files, first.files);
        let paths: Vec<&str> = listed.files.paths().collect();
        assert_eq!(paths, ["a", "sub/b"]);
    }

    #[test]
    fn an_encrypted_pool_keeps_no_list() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, [7u8; 32]).unwrap();
        let settings = crate::pool::PoolSettings {
            encrypt: Some(crate::config::KeySource::File(key)),
            ..Default::default()
        };
        let pool = pool_with_snapshot(dir.path(), &settings);
        let paths = pool.snapshot_files("v@s", None).unwrap();
        assert_eq!(paths.files.len(), 2);
        assert_eq!(kept_lists(&pool), 0);
    }
}
