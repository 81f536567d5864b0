//! `verify`: is every object reachable from the volumes and snapshots
//! present, sound, and (with `read_data`) bit-exact?
//!
//! Pass 1 walks each distinct tree once (shared subtrees are checked once),
//! checking every tree node by hash and decoder and every chunk against the
//! index and its pack; it remembers which nodes lead to a problem. With
//! `read_data`, every pack is first read whole and every blob in it
//! re-hashed. Pass 2 runs only if something is wrong: it walks every
//! volume and snapshot again, descending only into damaged subtrees, to
//! name each affected path.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::catalog::BlobLocation;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::pool::Pool;
use crate::progress::{self, Event, Progress};
use crate::store::pack::{self, Compression};
use crate::tree::{load_node, Content, Node};

/// What to check.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// Re-read and re-hash every blob of every pack.
    pub read_data: bool,
    /// Check only this volume and its snapshots.
    pub volume: Option<String>,
    /// Advanced per pack read (bytes) or per tree node.
    pub progress: Option<Arc<dyn Progress>>,
}

/// A path that a damaged object makes unreadable.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Affected {
    /// `VOLUME` or `VOLUME@SNAPSHOT`.
    pub spec: String,
    /// Path inside it (`""` for the root directory).
    pub path: String,
}

/// One damaged or missing object.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Problem {
    /// The object's id.
    pub object: String,
    /// `data` or `tree`.
    pub kind: String,
    /// What is wrong with it.
    pub error: String,
    /// Every path it affects.
    pub affected: Vec<Affected>,
}

/// The outcome of a verification.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Volumes and snapshots checked.
    pub roots: u64,
    /// Distinct tree nodes checked.
    pub tree_nodes: u64,
    /// Distinct chunks checked.
    pub chunks: u64,
    /// Packs read whole (with `read_data`).
    pub packs_read: u64,
    /// Bytes of packs read (with `read_data`).
    pub bytes_read: u64,
    /// Everything found wrong.
    pub problems: Vec<Problem>,
}

struct Checker<'a> {
    pool: &'a Pool,
    /// Blob id → error, for blobs found bad while reading packs.
    /// By index id (keyed in an encrypted pool).
    bad_blobs: HashMap<ObjectId, String>,
    /// Known pack sizes (None: the pack is missing).
    pack_sizes: HashMap<ObjectId, Option<u64>>,
    /// Tree node → whether anything below it is damaged.
    nodes: HashMap<ObjectId, bool>,
    /// Chunk → its problem, if any.
    chunks: HashMap<ObjectId, Option<String>>,
    /// Damaged objects found, with their kind and error.
    damaged: BTreeMap<ObjectId, (&'static str, String)>,
    progress: Option<Arc<dyn Progress>>,
}

impl Checker<'_> {
    fn pack_size(&mut self, name: &ObjectId) -> Option<u64> {
        *self
            .pack_sizes
            .entry(*name)
            .or_insert_with(|| self.pool.store.objects().size(&pack::key(name)).ok())
    }

    /// Reads every indexed pack and re-hashes each blob in it.
    fn read_packs(&mut self, report: &mut VerifyReport) -> Result<()> {
        let store = self.pool.store.clone();
        for (rowid, name) in self.pool.catalog().packs()? {
            let heads = self.pool.catalog().blobs_in_pack(rowid)?;
            let key = pack::key(&name);
            let data = match self.pool.store.objects().get(&key) {
                Ok(d) => d,
                Err(e) => {
                    let why = match &e {
                        Error::Io { source, .. }
                            if source.kind() == std::io::ErrorKind::NotFound =>
                        {
                            "its pack is missing".to_string()
                        }
                        other => format!("its pack cannot be read: {other}"),
                    };
                    for h in heads {
                        self.bad_blobs.insert(
                            h.id,
                            format!("object {} in pack {name} is corrupt: {why}", h.id),
                        );
                    }
                    continue;
                }
            };
            report.packs_read += 1;
            report.bytes_read += data.len() as u64;
            progress::report(
                &self.progress,
                Event::File {
                    bytes: data.len() as u64,
                },
            );
            progress::check(&self.progress)?;
            for h in heads {
                if let Err(e) = crate::store::blobs::check_in_pack(&store, &h, &name, &data) {
                    self.bad_blobs.insert(h.id, e.to_string());
                }
            }
        }
        Ok(())
    }

    /// What reading the packs found wrong with the blob of content id
    /// `id`, named by that id (the packs know it by its index id).
    fn bad_blob(&self, id: &ObjectId) -> Option<String> {
        let ix = self.pool.store.index_id(id);
        let e = self.bad_blobs.get(&ix)?;
        Some(e.replace(&ix.to_string(), &id.to_string()))
    }

    /// Where `id` is: remembered, or, when the remembered pack has gone
    /// (`gc` moved the blob since this process learnt its place), asked
    /// of the catalog again.
    fn location(&mut self, id: &ObjectId) -> Result<Option<BlobLocation>> {
        match self.pool.blobs().location(id)? {
            Some(loc) if self.pack_size(&loc.pack).is_none() => {
                self.pool.blobs().location_fresh(id)
            }
            other => Ok(other),
        }
    }

    fn check_chunk(&mut self, id: &ObjectId) -> Result<Option<String>> {
        if let Some(known) = self.chunks.get(id) {
            return Ok(known.clone());
        }
        let problem = match self.bad_blob(id) {
            Some(e) => Some(e),
            None => self.stored_problem(id, true)?,
        };
        if let Some(e) = &problem {
            self.damaged.insert(*id, ("data", e.clone()));
        }
        self.chunks.insert(*id, problem.clone());
        Ok(problem)
    }

    /// What is wrong with where blob `id` is stored, if anything; with
    /// `bases`, for a blob stored as a delta, with where its bases are
    /// stored too (they are whole, so no deeper).
    fn stored_problem(&mut self, id: &ObjectId, bases: bool) -> Result<Option<String>> {
        let Some(loc) = self.location(id)? else {
            return Ok(Some(format!("object {id} is missing from the pool")));
        };
        let why = match self.pack_size(&loc.pack) {
            None => Some("its pack is missing"),
            Some(size) if loc.head.offset + loc.head.stored_len as u64 > size => {
                Some("its pack is truncated")
            }
            Some(_) => None,
        };
        if let Some(why) = why {
            return Ok(Some(format!(
                "object {id} in pack {} is corrupt: {why}",
                loc.pack
            )));
        }
        if !bases || loc.head.compression != Compression::Delta {
            return Ok(None);
        }
        let record = match self.pool.blobs().delta_bases(&loc) {
            Ok(b) => b,
            Err(e) if is_damage(&e) => return Ok(Some(e.to_string())),
            Err(e) => return Err(e),
        };
        for base in record {
            if let Some(p) = self.stored_problem(&base, false)? {
                return Ok(Some(format!(
                    "object {id} is a delta of a damaged blob: {p}"
                )));
            }
        }
        Ok(None)
    }

    /// Pass 1: whether anything under directory node `id` is damaged.
    fn check_tree(&mut self, id: &ObjectId, depth: u32) -> Result<bool> {
        if let Some(&tainted) = self.nodes.get(id) {
            return Ok(tainted);
        }
        let node = match self.bad_blob(id) {
            Some(e) => Err(Error::corrupt(format!("tree node {id}"), e)),
            None => load_node(&self.pool.store, id),
        };
        let mut tainted = false;
        match node {
            Err(e) if is_damage(&e) => {
                self.damaged.insert(*id, ("tree", e.to_string()));
                tainted = true;
            }
            Err(e) => return Err(e),
            Ok(_) if depth > 4096 => {
                self.damaged.insert(
                    *id,
                    ("tree", "directory tree deeper than 4096 levels".into()),
                );
                tainted = true;
            }
            Ok(Node::Interior(children)) => {
                for c in children {
                    tainted |= self.check_tree(&c.node, depth + 1)?;
                }
            }
            Ok(Node::Leaf(entries)) => {
                for e in entries {
                    match &e.content {
                        Content::File { chunks, .. } => {
                            for c in chunks {
                                tainted |= self.check_chunk(&c.id)?.is_some();
                            }
                        }
                        Content::Dir(d) => tainted |= self.check_tree(&d.tree, depth + 1)?,
                        Content::Symlink(_) | Content::Special(_) => {}
                    }
                }
            }
        }
        progress::report(&self.progress, Event::File { bytes: 0 });
        progress::check(&self.progress)?;
        self.nodes.insert(*id, tainted);
        Ok(tainted)
    }

    /// Pass 2: names the paths under a damaged directory node.
    fn affected(
        &self,
        spec: &str,
        id: &ObjectId,
        path: &str,
        out: &mut BTreeMap<ObjectId, Vec<Affected>>,
    ) -> Result<()> {
        if !self.nodes.get(id).copied().unwrap_or(false) {
            return Ok(());
        }
        if self.damaged.contains_key(id) {
            out.entry(*id).or_default().push(Affected {
                spec: spec.into(),
                path: path.into(),
            });
            return Ok(());
        }
        match load_node(&self.pool.store, id)? {
            Node::Interior(children) => {
                for c in children {
                    self.affected(spec, &c.node, path, out)?;
                }
            }
            Node::Leaf(entries) => {
                for e in entries {
                    let name = String::from_utf8_lossy(&e.name);
                    let child = if path.is_empty() {
                        name.into_owned()
                    } else {
                        format!("{path}/{name}")
                    };
                    match &e.content {
                        Content::File { chunks, .. } => {
                            let mut seen = HashSet::new();
                            for c in chunks {
                                if self.damaged.contains_key(&c.id) && seen.insert(c.id) {
                                    out.entry(c.id).or_default().push(Affected {
                                        spec: spec.into(),
                                        path: child.clone(),
                                    });
                                }
                            }
                        }
                        Content::Dir(d) => self.affected(spec, &d.tree, &child, out)?,
                        Content::Symlink(_) | Content::Special(_) => {}
                    }
                }
            }
        }
        Ok(())
    }
}

/// Whether an error means damage in the pool (as opposed to, say, a
/// catalog that cannot be queried at all).
fn is_damage(e: &Error) -> bool {
    matches!(
        e,
        Error::Corrupt { .. } | Error::MissingObject(_) | Error::Io { .. }
    )
}

impl Pool {
    /// Checks the pool; see [`VerifyOptions`]. Problems are returned in the
    /// report, not as an error.
    pub fn verify(&self, opts: &VerifyOptions) -> Result<VerifyReport> {
        let mut roots: Vec<(String, ObjectId)> = Vec::new();
        for v in self.catalog().volumes()? {
            if opts.volume.as_deref().is_none_or(|n| n == v.name) {
                roots.push((v.name.clone(), v.root));
            }
        }
        if let Some(name) = &opts.volume {
            if roots.is_empty() {
                return Err(Error::VolumeNotFound(name.clone()));
            }
        }
        for s in self.catalog().snapshots(opts.volume.as_deref())? {
            roots.push((format!("{}@{}", s.volume, s.name), s.root));
        }
        let mut c = Checker {
            pool: self,
            bad_blobs: HashMap::new(),
            pack_sizes: HashMap::new(),
            nodes: HashMap::new(),
            chunks: HashMap::new(),
            damaged: BTreeMap::new(),
            progress: opts.progress.clone(),
        };
        let mut report = VerifyReport {
            roots: roots.len() as u64,
            ..Default::default()
        };
        if opts.read_data {
            c.read_packs(&mut report)?;
        }
        let mut any = false;
        for (_, root) in &roots {
            any |= c.check_tree(root, 0)?;
        }
        report.tree_nodes = c.nodes.len() as u64;
        report.chunks = c.chunks.len() as u64;
        if any {
            let mut affected: BTreeMap<ObjectId, Vec<Affected>> = BTreeMap::new();
            for (spec, root) in &roots {
                c.affected(spec, root, "", &mut affected)?;
            }
            for (id, (kind, error)) in &c.damaged {
                let mut paths = affected.remove(id).unwrap_or_default();
                paths.sort();
                report.problems.push(Problem {
                    object: id.to_hex(),
                    kind: kind.to_string(),
                    error: error.clone(),
                    affected: paths,
                });
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gc::GcOptions;
    use crate::ops::import::ImportOptions;

    /// A long-lived process (`shale serve`) remembers where blobs were; a
    /// `gc` that moves them must not make its next verify see damage.
    #[test]
    fn a_verify_after_gc_in_the_same_process_finds_nothing_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::init(&dir.path().join("pool")).unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        let noise = |seed: u64, n: usize| -> Vec<u8> {
            let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        };
        for i in 0..20 {
            std::fs::write(src.join(format!("f{i}")), noise(i, 40_000)).unwrap();
        }
        pool.create_volume_from("v", &src, None, None, Default::default())
            .unwrap();
        pool.create_snapshot("v", Some("s")).unwrap();
        for i in 0..15 {
            std::fs::write(src.join(format!("f{i}")), noise(100 + i, 40_000)).unwrap();
        }
        let replace = ImportOptions {
            delete: true,
            ..Default::default()
        };
        pool.import("v", &src, &replace).unwrap();
        // Learn where every blob is, then let gc move the live ones.
        assert!(pool
            .verify(&VerifyOptions::default())
            .unwrap()
            .problems
            .is_empty());
        pool.delete_snapshot("v", "s").unwrap();
        let gc = pool.gc(&GcOptions::default()).unwrap();
        assert!(gc.repacked_packs > 0, "{gc:?}");
        let after = pool.verify(&VerifyOptions::default()).unwrap();
        assert!(after.problems.is_empty(), "{:?}", after.problems);
    }
}
