//! Deciding what to do: two listings in, a list of actions out.
//!
//! A file is copied when the destination lacks it, when the sizes differ,
//! or when its modification time says so: different mtimes where the
//! destination keeps them (a copy made by sync carries the source's mtime),
//! a source newer than the object where it does not (stores stamp their own
//! time). With `--checksum` files of equal size are compared by content
//! instead, using digests a side already has where it can.

use std::collections::HashSet;

use rayon::prelude::*;
use serde::Serialize;
use shale_core::Result;

use crate::entry::{Entry, Kind};

/// One thing a sync does.
#[derive(Clone, Debug)]
pub enum Action {
    /// Create a directory.
    Mkdir(Entry),
    /// Copy a file, for this reason (`new`, `size`, `mtime`, `newer`, `content`).
    Copy(Entry, &'static str),
    /// Create a symlink.
    Symlink(Entry),
    /// Remove something the source lacks (`--delete`).
    Delete(Entry),
}

/// A path left alone, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Skip {
    /// Relative path.
    pub path: String,
    /// Why.
    pub reason: String,
}

/// What a sync will do.
#[derive(Debug, Default)]
pub struct Plan {
    /// Actions, in the order they can run: directories, files and links,
    /// then removals (children before their directory).
    pub actions: Vec<Action>,
    /// Source entries found.
    pub scanned: u64,
    /// Files already up to date.
    pub unchanged: u64,
    /// Entries the destination cannot hold.
    pub skipped: Vec<Skip>,
}

/// How the destination behaves, and what was asked.
pub struct Rules {
    /// Written files keep the source's mtime.
    pub dst_keeps_mtime: bool,
    /// The destination has directories and symlinks.
    pub dst_has_dirs: bool,
    /// Either side is an object store (its times have whole seconds).
    pub coarse_times: bool,
    /// Compare content, not times.
    pub checksum: bool,
    /// Remove what the source lacks.
    pub delete: bool,
}

/// The actions that make `dst` match `src`. `same_content` answers
/// `--checksum` comparisons (called in parallel).
pub fn plan(
    src: &[Entry],
    dst: &[Entry],
    rules: &Rules,
    same_content: &(dyn Fn(&Entry, &Entry) -> Result<bool> + Sync),
) -> Result<Plan> {
    let mut plan = Plan {
        scanned: src.len() as u64,
        ..Default::default()
    };
    let mut dst_at = std::collections::HashMap::with_capacity(dst.len());
    for e in dst {
        dst_at.insert(e.path.as_slice(), e);
    }
    let mut sorted = Sorted::default();
    for s in src {
        let d = dst_at.get(s.path.as_slice()).copied();
        sorted.add(s, d, rules, &mut plan);
    }
    let compared: Vec<Result<bool>> = sorted
        .to_compare
        .par_iter()
        .map(|(s, d)| same_content(s, d))
        .collect();
    for ((s, _), same) in sorted.to_compare.iter().zip(compared) {
        if same? {
            plan.unchanged += 1;
        } else {
            sorted.copies.push(Action::Copy((*s).clone(), "content"));
        }
    }
    sorted.copies.sort_by(|a, b| path_of(a).cmp(path_of(b)));
    plan.actions.extend(sorted.dirs);
    plan.actions.extend(sorted.copies);
    plan.actions.extend(sorted.links);
    if rules.delete {
        plan.actions.extend(removals(src, dst));
    }
    Ok(plan)
}

/// Source entries sorted by what they need, before `--checksum`
/// comparisons settle the files of equal size.
#[derive(Default)]
struct Sorted<'a> {
    dirs: Vec<Action>,
    links: Vec<Action>,
    copies: Vec<Action>,
    to_compare: Vec<(&'a Entry, &'a Entry)>,
}

impl<'a> Sorted<'a> {
    /// Sorts source entry `s`, whose counterpart at the destination is `d`.
    fn add(&mut self, s: &'a Entry, d: Option<&'a Entry>, rules: &Rules, plan: &mut Plan) {
        match &s.kind {
            Kind::Dir => {
                if rules.dst_has_dirs && !d.is_some_and(|d| d.kind == Kind::Dir) {
                    self.dirs.push(Action::Mkdir(s.clone()));
                }
            }
            Kind::Symlink(_) => {
                if !rules.dst_has_dirs {
                    plan.skipped.push(Skip {
                        path: s.display(),
                        reason: "a symlink (an object store has none)".into(),
                    });
                } else if d.is_some_and(|d| d.kind == s.kind) {
                    plan.unchanged += 1;
                } else {
                    self.links.push(Action::Symlink(s.clone()));
                }
            }
            Kind::File => match d {
                Some(d) if d.kind == Kind::File => {
                    if s.size != d.size {
                        self.copies.push(Action::Copy(s.clone(), "size"));
                    } else if rules.checksum {
                        self.to_compare.push((s, d));
                    } else if let Some(reason) = by_time(s, d, rules) {
                        self.copies.push(Action::Copy(s.clone(), reason));
                    } else {
                        plan.unchanged += 1;
                    }
                }
                _ => self.copies.push(Action::Copy(s.clone(), "new")),
            },
        }
    }
}

/// What the destination has and the source lacks, children (longer paths
/// under it) before their directory. A store lists no directories: every
/// directory above a source path counts as in the source.
fn removals(src: &[Entry], dst: &[Entry]) -> Vec<Action> {
    let mut in_src: HashSet<&[u8]> = HashSet::with_capacity(src.len());
    for e in src {
        let mut p = e.path.as_slice();
        while in_src.insert(p) {
            match p.iter().rposition(|b| *b == b'/') {
                Some(i) => p = &p[..i],
                None => break,
            }
        }
    }
    let mut gone: Vec<&Entry> = dst
        .iter()
        .filter(|d| !in_src.contains(d.path.as_slice()))
        .collect();
    gone.sort_by(|a, b| b.path.cmp(&a.path));
    gone.into_iter()
        .map(|e| Action::Delete(e.clone()))
        .collect()
}

fn by_time(s: &Entry, d: &Entry, rules: &Rules) -> Option<&'static str> {
    let slack = if rules.coarse_times { 1_000_000_000 } else { 0 };
    if rules.dst_keeps_mtime {
        ((s.mtime_ns - d.mtime_ns).abs() > slack).then_some("mtime")
    } else {
        (s.mtime_ns > d.mtime_ns + slack).then_some("newer")
    }
}

/// The entry an action is about.
pub fn path_of(a: &Action) -> &[u8] {
    match a {
        Action::Mkdir(e) | Action::Copy(e, _) | Action::Symlink(e) | Action::Delete(e) => &e.path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64, mtime_ns: i64) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            kind: Kind::File,
            size,
            mtime_ns,
            mode: 0o644,
            stored_hash: None,
        }
    }

    fn names(p: &Plan) -> Vec<String> {
        p.actions
            .iter()
            .map(|a| {
                let what = match a {
                    Action::Mkdir(_) => "mkdir".to_string(),
                    Action::Copy(_, r) => format!("copy({r})"),
                    Action::Symlink(_) => "link".to_string(),
                    Action::Delete(_) => "delete".to_string(),
                };
                format!("{what} {}", String::from_utf8_lossy(path_of(a)))
            })
            .collect()
    }

    #[test]
    fn copies_what_differs_and_deletes_what_is_gone() {
        let src = [
            file("a", 1, 10),
            file("b", 2, 10),
            file("c", 3, 10),
            file("e", 5, 9),
        ];
        let dst = [
            file("a", 1, 10),
            file("b", 9, 10),
            file("c", 3, 5),
            file("d", 4, 1),
        ];
        let mut rules = Rules {
            dst_keeps_mtime: true,
            dst_has_dirs: true,
            coarse_times: false,
            checksum: false,
            delete: true,
        };
        let never = |_: &Entry, _: &Entry| -> Result<bool> { unreachable!() };
        let p = plan(&src, &dst, &rules, &never).unwrap();
        assert_eq!(
            names(&p),
            ["copy(size) b", "copy(mtime) c", "copy(new) e", "delete d"]
        );
        assert_eq!(p.unchanged, 1);
        // a store: only a newer source is copied
        rules.dst_keeps_mtime = false;
        rules.delete = false;
        let dst = [file("c", 3, 50)];
        let p = plan(&src[2..3], &dst, &rules, &never).unwrap();
        assert!(p.actions.is_empty());
        // checksum compares equal sizes by content
        rules.checksum = true;
        let differ = |_: &Entry, _: &Entry| -> Result<bool> { Ok(false) };
        let p = plan(&src[2..3], &dst, &rules, &differ).unwrap();
        assert_eq!(names(&p), ["copy(content) c"]);
        // a source without directories (a store) keeps the destination's
        // directories that hold its files
        let mut dir = file("d", 0, 1);
        dir.kind = Kind::Dir;
        let mut gone = file("old", 0, 1);
        gone.kind = Kind::Dir;
        let dst = [dir, file("d/x", 1, 10), gone];
        let src = [file("d/x", 1, 10)];
        rules.checksum = false;
        rules.delete = true;
        rules.dst_keeps_mtime = true;
        let p = plan(&src, &dst, &rules, &never).unwrap();
        assert_eq!(names(&p), ["delete old"]);
    }
}
