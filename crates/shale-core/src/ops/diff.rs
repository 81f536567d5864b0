//! Comparing two trees. Subtrees (and directory leaves) with equal ids are
//! skipped without being read, so a diff costs O(change), not O(size).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::id::ObjectId;
use crate::pool::Pool;
use crate::tree::{dir_leaves, leaf_entries, read_dir, Content, Entry};

/// Kind of change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Only in the second tree.
    Added,
    /// Only in the first tree.
    Removed,
    /// In both, different content or metadata.
    Modified,
}

impl Change {
    /// One-letter code, as `git diff --name-status` prints.
    pub fn letter(self) -> char {
        match self {
            Change::Added => 'A',
            Change::Removed => 'D',
            Change::Modified => 'M',
        }
    }
}

/// One changed path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DiffEntry {
    /// What happened.
    pub change: Change,
    /// Path inside the volume (lossy UTF-8).
    pub path: String,
    /// `file`, `dir` or `symlink` (the new kind for a modification).
    pub kind: String,
    /// File size in the first tree (0 if absent or not a file).
    pub old_size: u64,
    /// File size in the second tree (0 if absent or not a file).
    pub new_size: u64,
}

/// Totals of a diff, for `--stat`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DiffStat {
    /// Paths added.
    pub added: u64,
    /// Paths removed.
    pub removed: u64,
    /// Paths modified.
    pub modified: u64,
    /// File bytes in the second tree that are added or modified.
    pub bytes_added: u64,
    /// File bytes in the first tree that are removed or modified.
    pub bytes_removed: u64,
}

impl DiffStat {
    /// Sums a list of changes.
    pub fn of(entries: &[DiffEntry]) -> DiffStat {
        let mut s = DiffStat::default();
        for e in entries {
            match e.change {
                Change::Added => s.added += 1,
                Change::Removed => s.removed += 1,
                Change::Modified => s.modified += 1,
            }
            s.bytes_added += e.new_size;
            s.bytes_removed += e.old_size;
        }
        s
    }
}

fn file_size(e: &Entry) -> u64 {
    match e.content {
        Content::File { size, .. } => size,
        _ => 0,
    }
}

fn join(prefix: &str, name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    if prefix.is_empty() {
        name.into_owned()
    } else {
        format!("{prefix}/{name}")
    }
}

impl Pool {
    /// The changes that turn `a` into `b` (each `VOLUME[@SNAPSHOT]`), sorted by path.
    pub fn diff(&self, a: &str, b: &str) -> Result<Vec<DiffEntry>> {
        let a = self.resolve(a)?;
        let b = self.resolve(b)?;
        let mut out = Vec::new();
        self.diff_dirs(&a.root, &b.root, "", &mut out)?;
        out.sort_by(|x, y| x.path.cmp(&y.path));
        Ok(out)
    }

    /// Entries of the leaves of `tree` that are not in `skip`.
    fn entries_outside(&self, leaves: &[ObjectId], skip: &HashSet<ObjectId>) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        for leaf in leaves.iter().filter(|l| !skip.contains(l)) {
            out.extend(leaf_entries(&self.store, leaf)?);
        }
        Ok(out)
    }

    fn diff_dirs(
        &self,
        a: &ObjectId,
        b: &ObjectId,
        prefix: &str,
        out: &mut Vec<DiffEntry>,
    ) -> Result<()> {
        if a == b {
            return Ok(());
        }
        let la = dir_leaves(&self.store, a)?;
        let lb = dir_leaves(&self.store, b)?;
        // A leaf present on both sides holds the same entries on both
        // sides; names are unique, so those entries cannot differ.
        let sa: HashSet<ObjectId> = la.iter().copied().collect();
        let shared: HashSet<ObjectId> = lb.iter().copied().filter(|l| sa.contains(l)).collect();
        let ea = self.entries_outside(&la, &shared)?;
        let eb = self.entries_outside(&lb, &shared)?;
        let (mut i, mut j) = (0, 0);
        while i < ea.len() || j < eb.len() {
            let order = match (ea.get(i), eb.get(j)) {
                (Some(x), Some(y)) => x.name.cmp(&y.name),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match order {
                std::cmp::Ordering::Less => {
                    self.whole(&ea[i], prefix, Change::Removed, out)?;
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    self.whole(&eb[j], prefix, Change::Added, out)?;
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    self.diff_entry(&ea[i], &eb[j], prefix, out)?;
                    i += 1;
                    j += 1;
                }
            }
        }
        Ok(())
    }

    fn diff_entry(
        &self,
        x: &Entry,
        y: &Entry,
        prefix: &str,
        out: &mut Vec<DiffEntry>,
    ) -> Result<()> {
        if x == y {
            return Ok(());
        }
        let path = join(prefix, &x.name);
        match (&x.content, &y.content) {
            (Content::Dir(dx), Content::Dir(dy)) => {
                if (x.mode, x.uid, x.gid) != (y.mode, y.uid, y.gid) {
                    out.push(DiffEntry {
                        change: Change::Modified,
                        path: path.clone(),
                        kind: "dir".into(),
                        old_size: 0,
                        new_size: 0,
                    });
                }
                self.diff_dirs(&dx.tree, &dy.tree, &path, out)
            }
            (Content::File { .. }, Content::File { .. })
            | (Content::Symlink(_), Content::Symlink(_))
            | (Content::Special(_), Content::Special(_)) => {
                out.push(DiffEntry {
                    change: Change::Modified,
                    path,
                    kind: y.kind_name().into(),
                    old_size: file_size(x),
                    new_size: file_size(y),
                });
                Ok(())
            }
            _ => {
                self.whole(x, prefix, Change::Removed, out)?;
                self.whole(y, prefix, Change::Added, out)
            }
        }
    }

    /// Reports an entry and, for a directory, everything below it.
    fn whole(
        &self,
        e: &Entry,
        prefix: &str,
        change: Change,
        out: &mut Vec<DiffEntry>,
    ) -> Result<()> {
        let path = join(prefix, &e.name);
        let size = file_size(e);
        let (old_size, new_size) = if change == Change::Added {
            (0, size)
        } else {
            (size, 0)
        };
        out.push(DiffEntry {
            change,
            path: path.clone(),
            kind: e.kind_name().into(),
            old_size,
            new_size,
        });
        if let Content::Dir(d) = &e.content {
            for child in read_dir(&self.store, &d.tree)? {
                self.whole(&child, &path, change, out)?;
            }
        }
        Ok(())
    }
}
