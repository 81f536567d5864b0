//! [`FileList`]: a listing's files stored column by column.
//!
//! A million files held as a million `String` paths and a million chunk
//! `Vec`s cost two million allocations to make and as many to free. Here
//! all paths share one buffer and all chunk references another, with the
//! end of each file's part kept beside them.

use crate::tree::ChunkRef;

/// Regular files in order: each with a path, a size and its chunks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileList {
    /// Every path, one after another.
    paths: String,
    /// Where each file's path ends in `paths`.
    path_ends: Vec<usize>,
    sizes: Vec<u64>,
    /// Every file's chunks, one file after another.
    chunks: Vec<ChunkRef>,
    /// Where each file's chunks end in `chunks`.
    chunk_ends: Vec<usize>,
}

impl FileList {
    /// How many files.
    pub fn len(&self) -> usize {
        self.sizes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.sizes.is_empty()
    }

    /// File `i`'s path, relative to where the listing started.
    pub fn path(&self, i: usize) -> Option<&str> {
        let end = *self.path_ends.get(i)?;
        Some(&self.paths[start(&self.path_ends, i)..end])
    }

    /// File `i`'s chunks, in order.
    pub fn chunks(&self, i: usize) -> Option<&[ChunkRef]> {
        let end = *self.chunk_ends.get(i)?;
        Some(&self.chunks[start(&self.chunk_ends, i)..end])
    }

    /// Every file's path, in order.
    pub fn paths(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        (0..self.len()).map(|i| self.path(i).unwrap_or_default())
    }

    /// Every file's size, in order.
    pub fn sizes(&self) -> &[u64] {
        &self.sizes
    }

    /// Room for `n` more files (their paths and chunks grow as they come).
    pub(super) fn reserve(&mut self, n: usize) {
        self.path_ends.reserve(n);
        self.sizes.reserve(n);
        self.chunk_ends.reserve(n);
    }

    /// Adds file `name` of directory `rel` (empty at the top). A name that
    /// is not UTF-8 is added with U+FFFD in place of what is not.
    pub(super) fn push(&mut self, rel: &str, name: &[u8], size: u64, chunks: &[ChunkRef]) {
        if !rel.is_empty() {
            self.paths.push_str(rel);
            self.paths.push('/');
        }
        self.paths.push_str(&String::from_utf8_lossy(name));
        self.path_ends.push(self.paths.len());
        self.sizes.push(size);
        self.chunks.extend_from_slice(chunks);
        self.chunk_ends.push(self.chunks.len());
    }

    /// The lists one after another, each byte copied once.
    pub(super) fn concat(parts: Vec<FileList>) -> FileList {
        let sum = |f: fn(&FileList) -> usize| parts.iter().map(f).sum::<usize>();
        let mut out = FileList {
            paths: String::with_capacity(sum(|p| p.paths.len())),
            path_ends: Vec::with_capacity(sum(FileList::len)),
            sizes: Vec::with_capacity(sum(FileList::len)),
            chunks: Vec::with_capacity(sum(|p| p.chunks.len())),
            chunk_ends: Vec::with_capacity(sum(FileList::len)),
        };
        for p in parts {
            let (paths, chunks) = (out.paths.len(), out.chunks.len());
            out.paths.push_str(&p.paths);
            out.path_ends.extend(p.path_ends.iter().map(|e| e + paths));
            out.sizes.extend_from_slice(&p.sizes);
            out.chunks.extend_from_slice(&p.chunks);
            out.chunk_ends
                .extend(p.chunk_ends.iter().map(|e| e + chunks));
        }
        out
    }
}

/// Where item `i` starts, given where each item ends.
fn start(ends: &[usize], i: usize) -> usize {
    if i == 0 {
        0
    } else {
        ends[i - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ObjectId;

    fn chunk(n: u8, len: u32) -> ChunkRef {
        ChunkRef {
            id: ObjectId([n; 32]),
            len,
        }
    }

    #[test]
    fn files_pushed_and_joined_read_back_in_order() {
        let mut a = FileList::default();
        a.reserve(2);
        a.push("", b"top", 3, &[chunk(1, 3)]);
        a.push("d", b"empty", 0, &[]);
        let mut b = FileList::default();
        b.push("d/e", b"two", 5, &[chunk(2, 2), chunk(3, 3)]);
        b.push("d/e", b"bad\xff", 1, &[chunk(4, 1)]);
        let all = FileList::concat(vec![a, FileList::default(), b]);
        assert_eq!(all.len(), 4);
        assert!(!all.is_empty());
        assert_eq!(
            all.paths().collect::<Vec<_>>(),
            ["top", "d/empty", "d/e/two", "d/e/bad\u{fffd}"]
        );
        assert_eq!(all.sizes(), [3, 0, 5, 1]);
        assert_eq!(all.chunks(0), Some(&[chunk(1, 3)][..]));
        assert_eq!(all.chunks(1), Some(&[][..]));
        assert_eq!(all.chunks(2), Some(&[chunk(2, 2), chunk(3, 3)][..]));
        assert_eq!(all.chunks(3), Some(&[chunk(4, 1)][..]));
        assert_eq!(all.path(4), None);
        assert_eq!(all.chunks(4), None);
        assert!(FileList::concat(Vec::new()).is_empty());
    }
}
