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

/// A list is encoded in two parts. Its files: the paths' bytes, then per
/// file its path's end, its chunks' end and its size (little-endian
/// `u64`s). Its chunks: each chunk's id (32 bytes) and length (`u32`). The
/// counts are kept apart and given back to [`FileList::decode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Counts {
    /// Files.
    pub files: u64,
    /// Bytes of all paths.
    pub path_bytes: u64,
    /// Chunk references.
    pub chunks: u64,
}

/// Bytes one chunk reference takes encoded.
const CHUNK_BYTES: usize = 36;

impl FileList {
    /// The counts the encoded list is read back by.
    pub(super) fn counts(&self) -> Counts {
        Counts {
            files: self.len() as u64,
            path_bytes: self.paths.len() as u64,
            chunks: self.chunks.len() as u64,
        }
    }

    /// Appends the files' part of the encoding to `out` (see [`Counts`]).
    pub(super) fn encode_files(&self, out: &mut Vec<u8>) {
        out.reserve(self.paths.len() + 24 * self.len());
        out.extend_from_slice(self.paths.as_bytes());
        for column in [&self.path_ends, &self.chunk_ends] {
            column
                .iter()
                .for_each(|&e| out.extend_from_slice(&(e as u64).to_le_bytes()));
        }
        self.sizes
            .iter()
            .for_each(|s| out.extend_from_slice(&s.to_le_bytes()));
    }

    /// Appends the chunks' part of the encoding to `out`.
    pub(super) fn encode_chunks(&self, out: &mut Vec<u8>) {
        out.reserve(CHUNK_BYTES * self.chunks.len());
        for c in &self.chunks {
            out.extend_from_slice(&c.id.0);
            out.extend_from_slice(&c.len.to_le_bytes());
        }
    }

    /// The chunks [`FileList::encode_chunks`] wrote, or `None` if `bytes`
    /// cannot be some.
    pub(super) fn decode_chunks(bytes: &[u8]) -> Option<Vec<ChunkRef>> {
        let chunks = bytes.chunks_exact(CHUNK_BYTES);
        if !chunks.remainder().is_empty() {
            return None;
        }
        let chunk = |c: &[u8]| ChunkRef {
            id: crate::id::ObjectId(c[..32].try_into().expect("32 bytes")),
            len: u32::from_le_bytes(c[32..].try_into().expect("4 bytes")),
        };
        Some(chunks.map(chunk).collect())
    }

    /// The list whose files' part [`FileList::encode_files`] wrote with
    /// `counts`, with `chunks`; or `None` if they are not one: wrong
    /// lengths, an end out of order or a path's inside a character, paths
    /// not UTF-8. The paths keep `files`' buffer.
    pub(super) fn decode(
        mut files: Vec<u8>,
        chunks: Vec<ChunkRef>,
        counts: Counts,
    ) -> Option<FileList> {
        let n = usize::try_from(counts.files).ok()?;
        let path_bytes = usize::try_from(counts.path_bytes).ok()?;
        let want = path_bytes.checked_add(n.checked_mul(24)?)?;
        if files.len() != want || chunks.len() as u64 != counts.chunks {
            return None;
        }
        let (path_ends, rest) = files[path_bytes..].split_at(8 * n);
        let (chunk_ends, sizes) = rest.split_at(8 * n);
        let path_ends = ends(path_ends, path_bytes)?;
        let chunk_ends = ends(chunk_ends, chunks.len())?;
        let sizes = sizes.chunks_exact(8).map(le_u64).collect();
        files.truncate(path_bytes);
        files.shrink_to_fit();
        let paths = String::from_utf8(files).ok()?;
        if !path_ends.iter().all(|&e| paths.is_char_boundary(e)) {
            return None;
        }
        Some(FileList {
            paths,
            path_ends,
            sizes,
            chunks,
            chunk_ends,
        })
    }
}

/// A little-endian `u64` from 8 bytes.
pub(super) fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b.try_into().expect("8 bytes"))
}

/// Ends read from `bytes`, or `None` unless they never go back and the
/// last is `total` (none: `total` is 0).
fn ends(bytes: &[u8], total: usize) -> Option<Vec<usize>> {
    let mut prev = 0;
    let mut out = Vec::with_capacity(bytes.len() / 8);
    for b in bytes.chunks_exact(8) {
        let e = usize::try_from(le_u64(b)).ok()?;
        if e < prev || e > total {
            return None;
        }
        out.push(e);
        prev = e;
    }
    (prev == total).then_some(out)
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

    fn sample() -> FileList {
        let mut l = FileList::default();
        l.push("", b"top", 3, &[chunk(1, 3)]);
        l.push("d\u{e9}", b"empty", 0, &[]);
        l.push("d/e", b"two", 5, &[chunk(2, 2), chunk(3, 3)]);
        l
    }

    /// `list`'s two parts, encoded.
    fn parts(list: &FileList) -> (Vec<u8>, Vec<u8>) {
        let (mut files, mut chunks) = (Vec::new(), Vec::new());
        list.encode_files(&mut files);
        list.encode_chunks(&mut chunks);
        (files, chunks)
    }

    #[test]
    fn a_list_encoded_decodes_to_itself() {
        for list in [sample(), FileList::default()] {
            let (files, chunks) = parts(&list);
            let chunks = FileList::decode_chunks(&chunks).unwrap();
            assert_eq!(FileList::decode(files, chunks, list.counts()), Some(list));
        }
    }

    #[test]
    fn damaged_encodings_are_refused() {
        let list = sample();
        let (files, chunk_bytes) = parts(&list);
        assert_eq!(FileList::decode_chunks(&chunk_bytes[1..]), None);
        let chunks = FileList::decode_chunks(&chunk_bytes).unwrap();
        let counts = list.counts();
        let decode = |files: Vec<u8>, counts| FileList::decode(files, chunks.clone(), counts);
        assert_eq!(decode(files[1..].to_vec(), counts), None);
        assert_eq!(decode(files.clone(), Counts { files: 4, ..counts }), None);
        assert_eq!(
            decode(
                files.clone(),
                Counts {
                    chunks: 2,
                    ..counts
                }
            ),
            None
        );
        let huge = Counts {
            files: u64::MAX,
            ..counts
        };
        assert_eq!(decode(files.clone(), huge), None);
        // The first path's end moved between the two bytes of the "é" after it.
        let ends = counts.path_bytes as usize;
        let mut inside = files.clone();
        inside[ends..ends + 8].copy_from_slice(&5u64.to_le_bytes());
        assert_eq!(decode(inside, counts), None);
        // Ends that go back.
        let mut back = files.clone();
        back[ends + 8..ends + 16].copy_from_slice(&1u64.to_le_bytes());
        assert_eq!(decode(back, counts), None);
        // Paths that are not UTF-8.
        let mut bad = files;
        bad[0] = 0xff;
        assert_eq!(decode(bad, counts), None);
    }
}
