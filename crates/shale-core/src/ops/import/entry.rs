//! One source entry: a file (read unless unchanged, see `file.rs`), a
//! directory (walked), a symlink, or something volumes do not hold.

use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::atomic::Ordering;

use super::{mtime_ns, Importer, ReadOutcome};
use crate::error::{Error, IoContext, Result};
use crate::progress::{self, Event};
use crate::store::blobs::Prepared;
use crate::tree::{Content, Entry};

impl Importer<'_> {
    /// Imports one source entry. The blobs of a small file are left in
    /// `held`, for the caller to append in name order.
    pub(super) fn import_entry(
        &self,
        dir: &Path,
        name: &OsStr,
        old: Option<&Entry>,
        held: &mut Vec<Prepared>,
    ) -> Result<Option<Entry>> {
        progress::check(&self.opts.progress)?;
        let path = dir.join(name);
        let md = match fs::symlink_metadata(&path) {
            Ok(md) => md,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.skip(&path, "vanished while importing");
                return Ok(None);
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        let mut entry = Entry {
            name: name.as_bytes().to_vec(),
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            mtime_ns: mtime_ns(&md),
            content: Content::Symlink(Vec::new()),
            xattrs: Vec::new(),
        };
        let ft = md.file_type();
        if ft.is_file() {
            return self.import_file(&path, &md, entry, old, held);
        }
        if ft.is_dir() {
            self.counters.dirs.fetch_add(1, Ordering::Relaxed);
            let old_tree = match old {
                Some(Entry {
                    content: Content::Dir(d),
                    ..
                }) => Some(d.tree),
                _ => None,
            };
            entry.content = Content::Dir(self.import_dir(&path, old_tree.as_ref())?);
        } else if ft.is_symlink() {
            self.counters.symlinks.fetch_add(1, Ordering::Relaxed);
            let target = fs::read_link(&path).at(&path)?;
            entry.content = Content::Symlink(target.as_os_str().as_bytes().to_vec());
        } else {
            self.skip(
                &path,
                format!("{}s are not stored in volumes", special_name(&md)),
            );
            return Ok(None);
        }
        Ok(Some(entry))
    }

    /// Imports a regular file: its old chunks if size, mtime and mode say
    /// it is unchanged (and `checksum` is off), else its content read anew.
    fn import_file(
        &self,
        path: &Path,
        md: &Metadata,
        mut entry: Entry,
        old: Option<&Entry>,
        held: &mut Vec<Prepared>,
    ) -> Result<Option<Entry>> {
        self.counters.files.fetch_add(1, Ordering::Relaxed);
        progress::report(&self.opts.progress, Event::File { bytes: md.len() });
        self.add_source_bytes(md.len())?;
        if let Some(content) = self.unchanged(md, &entry, old) {
            self.counters
                .files_unchanged
                .fetch_add(1, Ordering::Relaxed);
            entry.content = content;
            return Ok(Some(entry));
        }
        match self.read_file(path, md, held) {
            Ok(ReadOutcome::Read(content, now)) => {
                entry.mode = now.mode() & 0o7777;
                entry.uid = now.uid();
                entry.gid = now.gid();
                entry.mtime_ns = mtime_ns(&now);
                entry.content = content;
                Ok(Some(entry))
            }
            Ok(ReadOutcome::Unstable(why)) => {
                let kept = old.filter(|o| matches!(o.content, Content::File { .. }));
                let what = if kept.is_some() {
                    "the previous version is kept"
                } else {
                    "not imported"
                };
                self.skip(path, format!("{why}; {what}"));
                Ok(kept.cloned())
            }
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                self.skip(path, "vanished while importing");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The content of `old` if the file `md` is the same as it by size,
    /// mtime and mode (never with `checksum`).
    fn unchanged(&self, md: &Metadata, entry: &Entry, old: Option<&Entry>) -> Option<Content> {
        match old {
            Some(Entry {
                content: Content::File { size, chunks },
                mode,
                mtime_ns,
                ..
            }) if !self.opts.checksum
                && *size == md.len()
                && *mtime_ns == entry.mtime_ns
                && *mode == entry.mode =>
            {
                Some(Content::File {
                    size: *size,
                    chunks: chunks.clone(),
                })
            }
            _ => None,
        }
    }
}

/// What a special file is called in a message.
fn special_name(md: &Metadata) -> &'static str {
    let ft = md.file_type();
    if ft.is_fifo() {
        "FIFO"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_char_device() {
        "character device"
    } else {
        "special file"
    }
}
