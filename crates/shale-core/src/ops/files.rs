//! Reading a snapshot's files without a mount (`shale.torch`): the list of
//! its regular files straight from the tree, each with where its data lies,
//! and a file's bytes straight from the pool.
//!
//! The list carries each file's *group*: the pack its first chunk is in,
//! numbered in the order packs are first met. Files of one group were
//! written together and lie together, so a reader that shuffles groups and
//! then files within a few groups at a time still reads the pool in large,
//! mostly sequential stretches.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::pool::Pool;
use crate::tree::{lookup, read_dir, split_path, ChunkRef, Content, Entry};

/// A regular file of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotFile {
    /// Its path, relative to where the listing started.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its chunks, in order.
    pub chunks: Vec<ChunkRef>,
    /// The pack of its first chunk, numbered in listing order (an empty
    /// file takes its predecessor's).
    pub group: u32,
}

/// A snapshot's files, as of one tree.
#[derive(Clone, Debug)]
pub struct SnapshotFiles {
    /// The content id of the tree listed (the snapshot id for a snapshot;
    /// a live volume is read as of this tree).
    pub id: ObjectId,
    /// Its regular files, in tree (name) order.
    pub files: Vec<SnapshotFile>,
}

impl Pool {
    /// Every regular file of `spec` (`VOLUME@SNAPSHOT`, or a volume's
    /// current tree), or under `path` inside it.
    pub fn snapshot_files(&self, spec: &str, path: Option<&str>) -> Result<SnapshotFiles> {
        let resolved = self.resolve(spec)?;
        let mut files = Vec::new();
        let comps = split_path(path.unwrap_or(""))?;
        let start = if comps.is_empty() {
            read_dir(&self.store, &resolved.root)?
        } else {
            match lookup(&self.store, &resolved.root, &comps)? {
                Some(
                    e @ Entry {
                        content: Content::Dir(_),
                        ..
                    },
                ) => vec![e],
                Some(_) => {
                    return Err(Error::BadPath(format!(
                        "{spec}: {}: not a directory",
                        path.unwrap_or_default()
                    )))
                }
                None => {
                    return Err(Error::BadPath(format!(
                        "{spec}: {}: no such directory",
                        path.unwrap_or_default()
                    )))
                }
            }
        };
        let mut groups = HashMap::new();
        for e in &start {
            // Listed under `path`, the starting directory's own name is dropped.
            let rel = if comps.is_empty() {
                String::from_utf8_lossy(&e.name).into_owned()
            } else {
                String::new()
            };
            self.list_entry(e, &rel, &mut files, &mut groups, 0)?;
        }
        Ok(SnapshotFiles {
            id: resolved.root,
            files,
        })
    }

    fn list_entry(
        &self,
        e: &Entry,
        rel: &str,
        out: &mut Vec<SnapshotFile>,
        groups: &mut HashMap<ObjectId, u32>,
        depth: u32,
    ) -> Result<()> {
        match &e.content {
            Content::File { size, chunks } => {
                let group = match chunks.first() {
                    Some(c) => {
                        let pack = self
                            .store
                            .location(&c.id)?
                            .ok_or(Error::MissingObject(c.id))?
                            .pack;
                        let next = groups.len() as u32;
                        *groups.entry(pack).or_insert(next)
                    }
                    None => out.last().map_or(0, |f| f.group),
                };
                out.push(SnapshotFile {
                    path: rel.to_string(),
                    size: *size,
                    chunks: chunks.clone(),
                    group,
                });
            }
            Content::Dir(d) if depth < 4096 => {
                for child in read_dir(&self.store, &d.tree)? {
                    let name = String::from_utf8_lossy(&child.name);
                    let path = if rel.is_empty() {
                        name.into_owned()
                    } else {
                        format!("{rel}/{name}")
                    };
                    self.list_entry(&child, &path, out, groups, depth + 1)?;
                }
            }
            _ => {}
        }
        Ok(())
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
        let paths: Vec<&str> = all.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["a.txt", "e", "sub/b.txt", "sub/deep/c.bin"]);
        assert!(
            all.files.iter().all(|f| f.group == 0),
            "one import, one pack"
        );
        let c = &all.files[3];
        assert_eq!(pool.read_file_chunks(&c.chunks).unwrap(), b"gamma");
        assert_eq!(pool.read_file_chunks(&all.files[1].chunks).unwrap(), b"");
        let sub = pool.snapshot_files("v@s", Some("sub")).unwrap();
        let paths: Vec<&str> = sub.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["b.txt", "deep/c.bin"]);
        assert!(pool.snapshot_files("v@s", Some("a.txt")).is_err());
        assert!(pool.snapshot_files("v@nope", None).is_err());
    }
}
