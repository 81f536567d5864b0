//! A directory of a volume or snapshot, as a sync source.
//!
//! Listing walks the tree (directories in parallel); a file's chunk list
//! gives a content digest for free ([`StoredHash::Chunks`]). Writing into a
//! volume goes through import (`lib.rs`), which already moves only what
//! changed and commits the whole sync as one new root.

use std::collections::HashMap;
use std::sync::Mutex;

use rayon::prelude::*;
use shale_core::tree::{lookup, read_dir, split_path, ChunkRef, Content};
use shale_core::{Error, Pool, Result};

use crate::entry::{Entry, Kind, StoredHash};
use crate::side::{Feed, Side, Sink};

/// A directory of a volume or snapshot.
pub struct Volume<'a> {
    pool: &'a Pool,
    name: String,
    /// The tree of the directory synced, `None` if it does not exist.
    tree: Option<shale_core::ObjectId>,
    /// The chunks of every file listed, so reads need no lookup.
    chunks: Mutex<HashMap<Vec<u8>, Vec<ChunkRef>>>,
}

impl<'a> Volume<'a> {
    /// `path` in `volume` (or its snapshot `snapshot`), as it is now (a
    /// live volume's mounts are asked to commit first).
    pub fn open(
        pool: &'a Pool,
        volume: &str,
        snapshot: Option<&str>,
        path: &str,
        name: String,
    ) -> Result<Volume<'a>> {
        let root = match snapshot {
            Some(s) => pool.catalog().snapshot(volume, s)?.root,
            None => {
                pool.sync_mounts(volume)?;
                pool.catalog().volume(volume)?.root
            }
        };
        let parts = split_path(path)?;
        let tree = if parts.is_empty() {
            Some(root)
        } else {
            match lookup(pool.blobs(), &root, &parts)? {
                Some(e) => match e.content {
                    Content::Dir(d) => Some(d.tree),
                    _ => return Err(Error::InvalidArgument(format!("{name} is not a directory"))),
                },
                None => None,
            }
        };
        Ok(Volume {
            pool,
            name,
            tree,
            chunks: Mutex::default(),
        })
    }
}

fn chunk_digest(chunks: &[ChunkRef]) -> blake3::Hash {
    let mut h = blake3::Hasher::new();
    for c in chunks {
        h.update(&c.id.0);
    }
    h.finalize()
}

type Listed = (Vec<Entry>, Vec<(Vec<u8>, Vec<ChunkRef>)>);

fn walk(pool: &Pool, tree: &shale_core::ObjectId, rel: &[u8]) -> Result<Listed> {
    let mut out = Vec::new();
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for e in read_dir(pool.blobs(), tree)? {
        let path = if rel.is_empty() {
            e.name.clone()
        } else {
            [rel, b"/", &e.name].concat()
        };
        let (kind, size, hash) = match &e.content {
            Content::File { size, chunks } => {
                files.push((path.clone(), chunks.clone()));
                (
                    Kind::File,
                    *size,
                    Some(StoredHash::Chunks(chunk_digest(chunks))),
                )
            }
            Content::Dir(d) => {
                dirs.push((d.tree, path.clone()));
                (Kind::Dir, 0, None)
            }
            Content::Symlink(t) => (Kind::Symlink(t.clone()), 0, None),
            Content::Special(_) => continue,
        };
        out.push(Entry {
            path,
            kind,
            size,
            mtime_ns: e.mtime_ns,
            mode: e.mode,
            stored_hash: hash,
        });
    }
    let below: Vec<Result<Listed>> = dirs
        .par_iter()
        .map(|(tree, path)| walk(pool, tree, path))
        .collect();
    for b in below {
        let (entries, chunks) = b?;
        out.extend(entries);
        files.extend(chunks);
    }
    Ok((out, files))
}

impl Side for Volume<'_> {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn list(&self) -> Result<Vec<Entry>> {
        let Some(tree) = &self.tree else {
            return Ok(Vec::new());
        };
        let (mut out, files) = walk(self.pool, tree, b"")?;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        *self.chunks.lock().unwrap_or_else(|p| p.into_inner()) = files.into_iter().collect();
        Ok(out)
    }

    fn read(&self, e: &Entry, sink: &mut Sink<'_>) -> Result<()> {
        let known = self
            .chunks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&e.path)
            .cloned();
        if let Some(chunks) = known {
            for c in chunks {
                sink(&self.pool.blobs().get(&c.id)?)?;
            }
            return Ok(());
        }
        let tree = self
            .tree
            .ok_or_else(|| Error::InvalidArgument(format!("{}: no such directory", self.name)))?;
        let parts: Vec<Vec<u8>> = e.path.split(|b| *b == b'/').map(<[u8]>::to_vec).collect();
        let found = lookup(self.pool.blobs(), &tree, &parts)?;
        let Some(Content::File { chunks, .. }) = found.map(|f| f.content) else {
            return Err(Error::InvalidArgument(format!(
                "{}/{}: not a file any more",
                self.name,
                e.display()
            )));
        };
        for c in chunks {
            sink(&self.pool.blobs().get(&c.id)?)?;
        }
        Ok(())
    }

    fn write(&self, _: &Entry, _: &mut Feed<'_>) -> Result<()> {
        Err(self.not_writable())
    }

    fn mkdir(&self, _: &Entry) -> Result<()> {
        Err(self.not_writable())
    }

    fn symlink(&self, _: &Entry) -> Result<()> {
        Err(self.not_writable())
    }

    fn remove(&self, _: &Entry) -> Result<()> {
        Err(self.not_writable())
    }

    fn keeps_mtime(&self) -> bool {
        true
    }

    fn has_dirs(&self) -> bool {
        true
    }
}

impl Volume<'_> {
    fn not_writable(&self) -> Error {
        Error::InvalidArgument(format!(
            "{}: a volume is written by import, not file by file",
            self.name
        ))
    }
}
