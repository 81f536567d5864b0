//! Which paths an import or a sync leaves out: `--exclude`, `--include`
//! and `--exclude-from`, as gitignore-style globs (the `ignore` crate's
//! gitignore matcher, the one ripgrep uses).
//!
//! The rules, in the words `shale sync --help` uses:
//! - A pattern without a `/` matches a name at any depth (`*.tmp`,
//!   `__pycache__`); one with a `/` is anchored at the root of the sync
//!   (`/build`, `data/raw`); a trailing `/` matches directories only
//!   (`.git/`); `**` spans directories.
//! - An excluded directory is left out with everything under it; nothing
//!   inside it can be included again (as in a `.gitignore`).
//! - `--include` only takes back a path an `--exclude` matched (a `!`
//!   pattern after the excludes, as rsync's include); on its own it leaves
//!   nothing out. To keep only some files, exclude the rest:
//!   `--exclude '*' --include '*/' --include '*.py'`.
//! - Lines of an `--exclude-from` file are excludes, with `.gitignore`
//!   syntax (`#` comments, `!` to re-include).
//!
//! A left-out path is neither copied nor, with `--delete`, deleted.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use ignore::gitignore::{Gitignore, GitignoreBuilder};

use crate::error::{Error, Result};

/// Paths to leave out. The default leaves out nothing.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    rules: Option<Rules>,
}

#[derive(Clone, Debug)]
struct Rules {
    exclude: Gitignore,
    include: Gitignore,
}

/// The patterns a filter is built from, as the user gave them.
#[derive(Clone, Debug, Default)]
pub struct FilterSpec {
    /// `--exclude PATTERN`, in order.
    pub exclude: Vec<String>,
    /// `--include PATTERN`, in order.
    pub include: Vec<String>,
    /// `--exclude-from FILE`, in order.
    pub exclude_from: Vec<std::path::PathBuf>,
}

impl FilterSpec {
    /// Whether no pattern was given.
    pub fn is_empty(&self) -> bool {
        self.exclude.is_empty() && self.include.is_empty() && self.exclude_from.is_empty()
    }
}

impl Filter {
    /// Builds the filter `spec` describes; a bad pattern or an unreadable
    /// file is an error naming it.
    pub fn new(spec: &FilterSpec) -> Result<Filter> {
        if spec.is_empty() {
            return Ok(Filter::default());
        }
        let mut exclude = GitignoreBuilder::new("");
        for file in &spec.exclude_from {
            let text = std::fs::read_to_string(file).map_err(|e| {
                Error::InvalidArgument(format!("--exclude-from {}: {e}", file.display()))
            })?;
            for line in text.lines() {
                exclude
                    .add_line(Some(file.clone()), line)
                    .map_err(|e| bad("--exclude-from", line, e))?;
            }
        }
        for p in &spec.exclude {
            exclude
                .add_line(None, p)
                .map_err(|e| bad("--exclude", p, e))?;
        }
        let mut include = GitignoreBuilder::new("");
        for p in &spec.include {
            include
                .add_line(None, p)
                .map_err(|e| bad("--include", p, e))?;
        }
        let build = |b: GitignoreBuilder, what: &str| {
            b.build()
                .map_err(|e| Error::InvalidArgument(format!("{what}: {e}")))
        };
        Ok(Filter {
            rules: Some(Rules {
                exclude: build(exclude, "--exclude")?,
                include: build(include, "--include")?,
            }),
        })
    }

    /// Whether the filter leaves nothing out.
    pub fn is_empty(&self) -> bool {
        self.rules.is_none()
    }

    /// Whether `path` (relative, `/`-separated bytes), a directory if
    /// `is_dir`, is left out by its own name. A walker that does not enter
    /// left-out directories needs no more; for a flat listing use
    /// [`Filter::leaves_out`].
    pub fn leaves_out_here(&self, path: &[u8], is_dir: bool) -> bool {
        let Some(r) = &self.rules else {
            return false;
        };
        let path = Path::new(OsStr::from_bytes(path));
        r.exclude.matched(path, is_dir).is_ignore() && !r.include.matched(path, is_dir).is_ignore()
    }

    /// Whether `path` is left out, by its own name or because a directory
    /// above it is.
    pub fn leaves_out(&self, path: &[u8], is_dir: bool) -> bool {
        self.pass().leaves_out(path, is_dir)
    }

    /// A pass over one listing: what it decided for each directory is
    /// remembered, so a path costs one match of its own name and one
    /// lookup of its parent's decision, however deep it lies.
    pub fn pass(&self) -> FilterPass<'_> {
        FilterPass {
            filter: self,
            dirs: Default::default(),
        }
    }
}

/// [`Filter::leaves_out`] over many paths, remembering directories.
pub struct FilterPass<'a> {
    filter: &'a Filter,
    /// Directory path → whether it is left out (itself or from above).
    dirs: std::collections::HashMap<Vec<u8>, bool>,
}

impl FilterPass<'_> {
    /// Whether `path` is left out, by its own name or because a directory
    /// above it is.
    pub fn leaves_out(&mut self, path: &[u8], is_dir: bool) -> bool {
        if self.filter.is_empty() {
            return false;
        }
        let above = match path.iter().rposition(|b| *b == b'/') {
            Some(i) if i > 0 => self.dir_left_out(&path[..i]),
            _ => false,
        };
        above || self.filter.leaves_out_here(path, is_dir)
    }

    fn dir_left_out(&mut self, dir: &[u8]) -> bool {
        if let Some(out) = self.dirs.get(dir) {
            return *out;
        }
        let out = self.leaves_out(dir, true);
        self.dirs.insert(dir.to_vec(), out);
        out
    }
}

fn bad(flag: &str, pattern: &str, e: ignore::Error) -> Error {
    Error::InvalidArgument(format!("{flag} {pattern:?}: not a valid pattern ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(exclude: &[&str], include: &[&str]) -> Filter {
        Filter::new(&FilterSpec {
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude_from: Vec::new(),
        })
        .unwrap()
    }

    #[test]
    fn no_patterns_leave_out_nothing() {
        let f = Filter::new(&FilterSpec::default()).unwrap();
        assert!(f.is_empty());
        assert!(!f.leaves_out(b"a/b.tmp", false));
    }

    #[test]
    fn names_match_at_any_depth_and_slashes_anchor() {
        let f = filter(&["*.tmp", "__pycache__", "/build", "data/raw"], &[]);
        assert!(f.leaves_out(b"x.tmp", false));
        assert!(f.leaves_out(b"a/b/x.tmp", false));
        assert!(f.leaves_out(b"src/__pycache__/m.pyc", false));
        assert!(f.leaves_out(b"build/out.o", false));
        assert!(
            !f.leaves_out(b"src/build/out.o", false),
            "anchored at the root"
        );
        assert!(f.leaves_out(b"data/raw/1.bin", false));
        assert!(!f.leaves_out(b"x.tmpl", false));
        assert!(!f.leaves_out(b"src/main.py", false));
    }

    #[test]
    fn a_trailing_slash_matches_directories_only() {
        let f = filter(&[".git/"], &[]);
        assert!(f.leaves_out(b".git", true));
        assert!(f.leaves_out(b".git/objects/ab", false));
        assert!(!f.leaves_out(b".git", false), "a file named .git stays");
    }

    #[test]
    fn includes_take_files_back_but_not_from_excluded_directories() {
        let f = filter(&["*.ckpt", "scratch/"], &["best.ckpt", "scratch/keep.txt"]);
        assert!(f.leaves_out(b"run/last.ckpt", false));
        assert!(!f.leaves_out(b"run/best.ckpt", false));
        assert!(
            f.leaves_out(b"scratch/keep.txt", false),
            "its directory is out"
        );
    }

    #[test]
    fn includes_alone_leave_nothing_out_and_keep_only_with_an_exclude_all() {
        let f = filter(&[], &["*.py"]);
        assert!(!f.leaves_out(b"a/b/m.txt", false));
        let f = filter(&["*"], &["*/", "*.py"]);
        assert!(!f.leaves_out(b"a/b/m.py", false));
        assert!(f.leaves_out(b"a/b/m.txt", false));
        assert!(!f.leaves_out(b"a/b", true), "directories stay");
    }

    #[test]
    fn exclude_from_reads_gitignore_lines() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ignore");
        std::fs::write(&file, "# comment\n\n*.log\n!keep.log\nvenv/\n").unwrap();
        let f = Filter::new(&FilterSpec {
            exclude_from: vec![file],
            ..Default::default()
        })
        .unwrap();
        assert!(f.leaves_out(b"a.log", false));
        assert!(!f.leaves_out(b"keep.log", false));
        assert!(f.leaves_out(b"venv/bin/python", false));
    }

    #[test]
    fn bad_patterns_and_missing_files_are_errors_naming_them() {
        let e = Filter::new(&FilterSpec {
            exclude: vec!["a{b".into()],
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("--exclude \"a{b\""), "{e}");
        let e = Filter::new(&FilterSpec {
            exclude_from: vec!["/nonexistent/ignore".into()],
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ignore"), "{e}");
    }
}
