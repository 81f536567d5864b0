//! Finding garbage: marking what the roots reach, condemning the rest
//! (with the writers' sessions it must wait for), and rescuing what roots
//! committed meanwhile reach.

use std::collections::HashSet;

use crate::catalog::{self, now_ns, BlobLocation};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::pool::Pool;
use crate::tree::{load_node, Content, Node};

/// Blobs reachable from a set of roots (by index id, as the catalog
/// knows them), with the tree nodes walked (by content id).
#[derive(Default)]
pub(super) struct Marks {
    pub(super) nodes: HashSet<ObjectId>,
    pub(super) blobs: HashSet<ObjectId>,
}

impl Marks {
    /// Adds everything reachable from directory node `id`.
    pub(super) fn walk(&mut self, pool: &Pool, id: &ObjectId) -> Result<()> {
        let mut stack = vec![*id];
        while let Some(id) = stack.pop() {
            if !self.nodes.insert(id) {
                continue;
            }
            self.blobs.insert(pool.store.index_id(&id));
            match load_node(&pool.store, &id)? {
                Node::Interior(children) => stack.extend(children.iter().map(|c| c.node)),
                Node::Leaf(entries) => {
                    for e in entries {
                        match e.content {
                            Content::File { chunks, .. } => {
                                let ids = chunks.iter().map(|c| pool.store.index_id(&c.id));
                                self.blobs.extend(ids);
                            }
                            Content::Dir(d) => stack.push(d.tree),
                            Content::Symlink(_) | Content::Special(_) => {}
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Adds the bases of the marked blobs stored as deltas (`deltas`: where
    /// every delta is). Bases are always stored whole, so one pass is all.
    pub(super) fn add_bases(&mut self, pool: &Pool, deltas: &[BlobLocation]) -> Result<()> {
        for loc in deltas {
            if self.blobs.contains(&loc.head.id) {
                let bases = pool.store.delta_bases(loc)?;
                self.blobs
                    .extend(bases.iter().map(|b| pool.store.index_id(b)));
            }
        }
        Ok(())
    }
}

/// The roots (volumes and snapshots) of the pool now.
pub(super) fn roots(pool: &Pool) -> Result<HashSet<ObjectId>> {
    let mut out: HashSet<ObjectId> = pool
        .catalog()
        .volumes()?
        .into_iter()
        .map(|v| v.root)
        .collect();
    out.extend(pool.catalog().snapshots(None)?.into_iter().map(|s| s.root));
    Ok(out)
}

/// What the roots reached when marked.
pub(super) struct Mark {
    /// When the mark began: packs indexed later are not collected.
    time: i64,
    /// The roots walked.
    roots: HashSet<ObjectId>,
    /// What they reach.
    pub(super) marks: Marks,
}

/// The blobs condemned, and the sessions that were running then.
pub(super) struct Condemned {
    blobs: Vec<ObjectId>,
    pub(super) waiting_for: HashSet<i64>,
}

impl Pool {
    /// Walks every root.
    pub(super) fn mark(&self) -> Result<Mark> {
        let time = now_ns();
        let roots = roots(self)?;
        let mut marks = Marks::default();
        let unreadable = |e: Error| {
            Error::InvalidArgument(format!(
                "gc stopped, nothing was freed: it cannot read every tree ({e}); run `shale verify`"
            ))
        };
        for root in &roots {
            marks.walk(self, root).map_err(unreadable)?;
        }
        let deltas = self.catalog().delta_blobs()?;
        marks.add_bases(self, &deltas).map_err(unreadable)?;
        Ok(Mark { time, roots, marks })
    }

    /// In one transaction: the blobs unreached by `mark`, in packs older
    /// than it and not written by a running session, flagged condemned
    /// (only listed with `dry_run`).
    pub(super) fn condemn(&self, mark: &Mark, dry_run: bool) -> Result<Condemned> {
        self.catalog().write(|tx| {
            let active = catalog::session_ids(tx)?;
            let mut blobs = Vec::new();
            catalog::blobs_written_before(tx, mark.time, &mut |id, session| {
                let written_now = session.is_some_and(|s| active.contains(&s));
                if !mark.marks.blobs.contains(&id) && !written_now {
                    blobs.push(id);
                }
            })?;
            if !dry_run {
                catalog::set_condemned(tx, &blobs, true)?;
            }
            Ok(Condemned {
                blobs,
                waiting_for: active,
            })
        })
    }

    /// Walks the roots committed since `mark`; returns the condemned blobs
    /// they do not reach (still garbage) and those they do (rescued).
    pub(super) fn rescue(
        &self,
        mark: Mark,
        condemned: Condemned,
    ) -> Result<(HashSet<ObjectId>, HashSet<ObjectId>)> {
        let mut rescued = Marks {
            nodes: mark.marks.nodes,
            blobs: HashSet::new(),
        };
        for root in roots(self)? {
            if !mark.roots.contains(&root) {
                rescued.walk(self, &root)?;
            }
        }
        // Deltas committed since the mark may build on blobs it condemned.
        let deltas = self.catalog().delta_blobs()?;
        rescued.add_bases(self, &deltas)?;
        let doomed = condemned
            .blobs
            .into_iter()
            .filter(|id| !rescued.blobs.contains(id))
            .collect();
        Ok((doomed, rescued.blobs))
    }

    /// Clears the flag of `rescued` blobs and drops the rows still
    /// condemned, in one transaction; returns how many were dropped.
    pub(super) fn free(&self, rescued: &HashSet<ObjectId>) -> Result<u64> {
        self.catalog().write(|tx| {
            catalog::set_condemned(tx, rescued, false)?;
            catalog::drop_condemned(tx)
        })
    }
}
