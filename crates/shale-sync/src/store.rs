//! Objects under a prefix of a bucket (S3 and S3-compatible, GCS, Azure),
//! through `object_store` (the same clients as object-store pools).
//!
//! Stores keep no directories, symlinks, modes or settable mtimes: a file
//! becomes an object named by its path, and an object is "up to date" when
//! it has the same size and was written after the file last changed (as
//! `aws s3 sync` decides). Objects up to [`PART`] bytes are written with one
//! request, larger ones as multipart uploads of `PART`-byte parts.

use std::sync::Mutex;

use object_store::path::Path as ObjectPath;
use shale_core::store::objects::listing::Listed;
pub use shale_core::store::objects::PART;
use shale_core::store::objects::{Bucket, StoreLocation};
use shale_core::{Error, Result, StoreOptions};

use crate::entry::{Entry, Kind, StoredHash};
use crate::plan::Skip;
use crate::side::{Feed, Side, Sink};

/// A prefix of a bucket as a sync side.
pub struct Store {
    bucket: Bucket,
    /// Keys the last listing left out, and why.
    skips: Mutex<Vec<Skip>>,
}

impl Store {
    /// Connects to the bucket of `location` (no request is made yet).
    pub fn connect(location: &StoreLocation, options: &StoreOptions) -> Result<Store> {
        Ok(Store {
            bucket: Bucket::connect(location, options, 4)?,
            skips: Mutex::new(Vec::new()),
        })
    }

    fn key(&self, rel: &[u8]) -> Result<ObjectPath> {
        let prefix = self.bucket.prefix();
        if rel.is_empty() {
            // a single object: the prefix names it
            if prefix.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "{}: name the object (s3://BUCKET/KEY) to copy a single file",
                    self.bucket.name()
                )));
            }
            return Ok(ObjectPath::from(prefix));
        }
        let rel = std::str::from_utf8(rel).map_err(|_| {
            Error::InvalidArgument(format!(
                "{}: object names must be UTF-8; this name is not",
                String::from_utf8_lossy(rel)
            ))
        })?;
        let full = if prefix.is_empty() {
            rel.to_string()
        } else {
            format!("{prefix}/{rel}")
        };
        ObjectPath::parse(&full)
            .map_err(|e| Error::InvalidArgument(format!("{rel}: not a valid object name ({e})")))
    }
}

/// The listing entry of listed object `l` at relative path `path`.
fn listed_entry(path: Vec<u8>, l: Listed) -> Entry {
    Entry {
        path,
        kind: Kind::File,
        size: l.size,
        mtime_ns: l.mtime_ns,
        mode: 0o644,
        stored_hash: l.e_tag.map(StoredHash::ETag),
    }
}

/// Why relative path `rel` cannot be a local path as it is, if it cannot:
/// an empty, `.` or `..` segment, a leading `/`, a segment over 255 bytes,
/// a NUL byte. (Such a name cannot be mapped back and forth reversibly:
/// `a//b` and `a/b` would be one file; so it is skipped, and named.)
pub fn not_a_local_name(rel: &[u8]) -> Option<&'static str> {
    if rel.first() == Some(&b'/') {
        return Some("invalid local name (a leading /)");
    }
    if rel.contains(&0) {
        return Some("invalid local name (a NUL byte)");
    }
    for seg in rel.split(|b| *b == b'/') {
        match seg {
            b"" => return Some("invalid local name (an empty segment)"),
            b"." | b".." => return Some("invalid local name (a . or .. segment)"),
            s if s.len() > 255 => return Some("invalid local name (a segment over 255 bytes)"),
            _ => {}
        }
    }
    None
}

/// Whether the object at relative key `rel` can be synced, and if not why.
fn usable(rel: &str) -> std::result::Result<(), &'static str> {
    if rel.ends_with('/') {
        return Err("a directory marker (stores keep no directories)");
    }
    if let Some(why) = not_a_local_name(rel.as_bytes()) {
        return Err(why);
    }
    if rel.chars().any(|c| c.is_ascii_control()) {
        return Err("a control character in the key (the object client cannot address it)");
    }
    Ok(())
}

/// The listing entry of an object at relative path `path`.
fn entry_of(path: Vec<u8>, m: object_store::ObjectMeta) -> Entry {
    Entry {
        path,
        kind: Kind::File,
        size: m.size,
        mtime_ns: m.last_modified.timestamp_nanos_opt().unwrap_or(0),
        mode: 0o644,
        stored_hash: m
            .e_tag
            .map(|t| StoredHash::ETag(t.trim_matches('"').to_string())),
    }
}

impl Side for Store {
    fn name(&self) -> String {
        self.bucket.name().to_string()
    }

    fn list(&self) -> Result<Vec<Entry>> {
        let prefix = self.bucket.prefix();
        let strip = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        let listed = self
            .bucket
            .list_keys(&strip)
            .map_err(|e| self.bucket.error(&ObjectPath::from(prefix), e))?;
        let mut out = Vec::with_capacity(listed.len());
        let mut skips = Vec::new();
        for l in listed {
            let Some(rel) = l.key.strip_prefix(&strip) else {
                continue;
            };
            match usable(rel) {
                Ok(()) => out.push(listed_entry(rel.as_bytes().to_vec(), l)),
                Err(why) => skips.push(Skip {
                    path: rel.to_string(),
                    reason: why.to_string(),
                }),
            }
        }
        if out.is_empty() && skips.is_empty() && !prefix.is_empty() {
            // Not a prefix of anything: perhaps one object.
            let path = ObjectPath::from(prefix);
            match self.bucket.head(&path) {
                Ok(m) => out.push(entry_of(Vec::new(), m)),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.bucket.error(&path, e)),
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        *self.skips.lock().unwrap_or_else(|p| p.into_inner()) = skips;
        Ok(out)
    }

    fn listing_skips(&self) -> Vec<Skip> {
        self.skips.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn read(&self, e: &Entry, sink: &mut Sink<'_>) -> Result<()> {
        let key = self.key(&e.path)?;
        if e.size as usize <= PART {
            let data = self
                .bucket
                .get(&key)
                .map_err(|err| self.bucket.error(&key, err))?;
            if data.len() as u64 != e.size {
                return Err(self.bucket.error(
                    &key,
                    object_store::Error::Generic {
                        store: "sync",
                        source: "the object changed while it was read".into(),
                    },
                ));
            }
            return sink(&data);
        }
        let mut at = 0u64;
        while at < e.size {
            let end = (at + PART as u64).min(e.size);
            let data = self
                .bucket
                .get_range(&key, at..end)
                .map_err(|err| self.bucket.error(&key, err))?;
            sink(&data)?;
            at = end;
        }
        Ok(())
    }

    fn write(&self, e: &Entry, feed: &mut Feed<'_>) -> Result<()> {
        // Parts go up as they fill; an upload that fails is aborted, so
        // no object appears under the name.
        let mut upload = self.bucket.upload(self.key(&e.path)?);
        feed(&mut |piece: &[u8]| upload.write(piece))?;
        upload.finish().map(drop)
    }

    fn mkdir(&self, _: &Entry) -> Result<()> {
        Ok(())
    }

    fn symlink(&self, _: &Entry) -> Result<()> {
        Ok(())
    }

    fn remove(&self, e: &Entry) -> Result<()> {
        if e.kind != Kind::File {
            return Ok(());
        }
        let key = self.key(&e.path)?;
        self.bucket
            .delete(&key)
            .map_err(|err| self.bucket.error(&key, err))
    }

    fn keeps_mtime(&self) -> bool {
        false
    }

    fn has_dirs(&self) -> bool {
        false
    }

    fn retries(&self) -> bool {
        true
    }
}

/// The ETag a store gives `data` when written as [`Store::write`] does:
/// plain MD5 up to [`PART`] bytes, else the MD5 of the parts' MD5s and `-N`.
pub fn etag_of(size: u64, read: &mut dyn FnMut(&mut Sink<'_>) -> Result<()>) -> Result<String> {
    use md5::{Digest, Md5};
    let mut whole = Md5::new();
    let mut part = Md5::new();
    let mut in_part = 0usize;
    let mut parts: Vec<u8> = Vec::new();
    read(&mut |mut piece: &[u8]| {
        whole.update(piece);
        while !piece.is_empty() {
            let n = (PART - in_part).min(piece.len());
            part.update(&piece[..n]);
            in_part += n;
            piece = &piece[n..];
            if in_part == PART {
                parts.extend_from_slice(&std::mem::take(&mut part).finalize());
                in_part = 0;
            }
        }
        Ok(())
    })?;
    if size as usize <= PART {
        return Ok(format!("{:x}", whole.finalize()));
    }
    let mut count = parts.len() / 16;
    if in_part > 0 {
        parts.extend_from_slice(&part.finalize());
        count += 1;
    }
    Ok(format!("{:x}-{count}", Md5::digest(&parts)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_cannot_be_local_names_say_why() {
        for ok in [
            "a",
            "a/b.txt",
            "données/été",
            "with space/f 1",
            "..a/b..",
            ".hidden",
        ] {
            assert_eq!(usable(ok), Ok(()), "{ok}");
        }
        let why = |k: &str| usable(k).unwrap_err();
        assert!(why("a//b").contains("empty segment"));
        assert!(why("../x").contains(". or .."));
        assert!(why("a/./x").contains(". or .."));
        assert!(why("/x").contains("leading /"));
        assert!(why(&"s".repeat(256)).contains("over 255"));
        assert!(why("dir/").contains("directory marker"));
        assert!(why("a\u{1}b").contains("control character"));
        assert!(not_a_local_name(b"a\0b").is_some());
    }
}
