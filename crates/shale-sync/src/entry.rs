//! What a listing of one side holds: every file, directory and symlink
//! under its root, by relative path.

/// What a path holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular file (an object, in a store).
    File,
    /// A directory (stores have none).
    Dir,
    /// A symbolic link and its target.
    Symlink(Vec<u8>),
}

/// A content digest a side keeps, so comparing content need not read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoredHash {
    /// An object store's ETag (MD5 of the content for a single-part upload;
    /// `MD5-of-part-MD5s-N` for a multipart one), without quotes.
    ETag(String),
    /// A Shale file's chunk ids, hashed together: equal iff the same bytes.
    Chunks(blake3::Hash),
}

/// One path of a listing.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Relative path, components joined by `/`; may be any bytes on a
    /// local side.
    pub path: Vec<u8>,
    /// What it holds.
    pub kind: Kind,
    /// Bytes of a file (0 otherwise).
    pub size: u64,
    /// Modification time, ns since the epoch (an object's: when it was written).
    pub mtime_ns: i64,
    /// Permission bits, where the side has them (0o644 / 0o755 otherwise).
    pub mode: u32,
    /// A digest of the content the side already has, if any.
    pub stored_hash: Option<StoredHash>,
}

impl Entry {
    /// The path for messages (invalid UTF-8 shown lossily).
    pub fn display(&self) -> String {
        if self.path.is_empty() {
            return ".".into(); // a single file synced by itself
        }
        String::from_utf8_lossy(&self.path).into_owned()
    }

    /// The parent directory's path ("" at the top).
    pub fn parent(&self) -> &[u8] {
        match self.path.iter().rposition(|b| *b == b'/') {
            Some(i) => &self.path[..i],
            None => &[],
        }
    }
}
