//! Kept file lists: a listed tree's [`FileList`], saved beside the pool so
//! the next listing of the same tree reads one file instead of every node.
//!
//! A tree never changes (its id is its content's hash), so a list kept
//! under the tree's id is never stale: no invalidation. Every rank of a
//! training job, every epoch's new process and every new run list the
//! same snapshot; the first pays for the walk, the others read
//! `POOL/lists/<tree id>` (for an object-store pool, in this machine's
//! cache directory for it). The format is in `docs/FORMAT.md`.
//!
//! A list is a cache: one that cannot be read, is damaged or was made for
//! another tree is ignored (and written again); one that cannot be written
//! costs the next listing its speed, nothing else. The newest [`KEEP`] are
//! kept; `gc` removes them all. An encrypted pool keeps none: the list
//! holds every path in the clear.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use super::list::{le_u64, Counts, FileList};
use crate::id::ObjectId;

/// The directory of kept lists, in a pool's local root.
pub(crate) const DIR: &str = "lists";

/// How many lists are kept, the most recently used.
const KEEP: usize = 16;

/// What a kept list starts with, before its version.
const MAGIC: &[u8; 8] = b"shalelst";

/// The version of the format written.
const VERSION: u32 = 1;

/// Bytes before the files' part: magic, version, the part's length.
const HEADER: usize = 8 + 4 + 8;

/// Bytes after the files' columns, inside their compressed part: tree
/// id, three counts, the chunks' part's BLAKE3 hash.
const TRAILER: usize = 32 + 3 * 8 + 32;

/// zstd level: a low one keeps the first listing's extra cost small.
const LEVEL: i32 = 1;

/// A files' part decompressed to more than this many times its stored
/// size is taken for damaged (real ones: 2 to 10 times).
const MAX_RATIO: u64 = 1024;

/// Where the list of `tree` is kept under `root`.
fn path(root: &Path, tree: &ObjectId) -> PathBuf {
    root.join(DIR).join(tree.to_hex())
}

/// The kept list of `tree`, if there is a sound one; it is then marked
/// as just used.
pub(super) fn load(root: &Path, tree: &ObjectId) -> Option<FileList> {
    let file = path(root, tree);
    let stored = fs::read(&file).ok()?;
    let list = parse(&stored, tree);
    if list.is_some() {
        let _ = filetime::set_file_mtime(&file, filetime::FileTime::now());
    } else {
        tracing::debug!("ignoring the damaged kept list {}", file.display());
    }
    list
}

/// `stored` as a kept list of `tree`, or `None` if it is not one. The
/// files' part is checked by zstd's checksum, the chunks' part by the hash
/// the files' part holds (the directory is as trusted as the catalog
/// beside it: these find damage, not forgery). The two parts are read at
/// once, on two threads.
fn parse(stored: &[u8], tree: &ObjectId) -> Option<FileList> {
    if stored.len() < HEADER || &stored[..8] != MAGIC || stored[8..12] != VERSION.to_le_bytes() {
        return None;
    }
    let frame_len = usize::try_from(le_u64(&stored[12..20])).ok()?;
    let frame = stored[HEADER..].get(..frame_len)?;
    let chunk_bytes = &stored[HEADER + frame_len..];
    // A thread of its own, not rayon's global pool: a process forked after
    // using that pool (a DataLoader worker) would wait on its lost threads.
    let chunks_part = || {
        let hash = *blake3::hash(chunk_bytes).as_bytes();
        FileList::decode_chunks(chunk_bytes).map(|chunks| (hash, chunks))
    };
    let (files, chunks) = std::thread::scope(|s| {
        let thread = std::thread::Builder::new().spawn_scoped(s, chunks_part);
        let files = files_part(frame, tree);
        let chunks = match thread {
            Ok(thread) => thread.join().ok().flatten(),
            Err(_) => chunks_part(),
        };
        (files, chunks)
    });
    let ((files, counts, want), (hash, chunks)) = (files?, chunks?);
    if hash != want {
        return None;
    }
    FileList::decode(files, chunks, counts)
}

/// The files' part decompressed from `frame`, without its trailer, and
/// what the trailer says: the counts and the chunks' part's hash. `None`
/// unless the trailer names `tree`.
fn files_part(frame: &[u8], tree: &ObjectId) -> Option<(Vec<u8>, Counts, [u8; 32])> {
    let size = zstd::zstd_safe::get_frame_content_size(frame).ok()??;
    if size > MAX_RATIO.saturating_mul(frame.len() as u64) {
        return None;
    }
    let mut data = zstd::bulk::decompress(frame, usize::try_from(size).ok()?).ok()?;
    let columns = data.len().checked_sub(TRAILER)?;
    let trailer = &data[columns..];
    if trailer[..32] != tree.0 {
        return None;
    }
    let counts = Counts {
        files: le_u64(&trailer[32..40]),
        path_bytes: le_u64(&trailer[40..48]),
        chunks: le_u64(&trailer[48..56]),
    };
    let hash = trailer[56..].try_into().expect("32 bytes");
    data.truncate(columns);
    Some((data, counts, hash))
}

/// Keeps `list` as the list of `tree`, then leaves only the newest
/// [`KEEP`] lists. Written whole under another name and renamed, so a
/// reader sees the old list, none, or the new one.
pub(super) fn save(root: &Path, tree: &ObjectId, list: &FileList) -> io::Result<()> {
    let dir = root.join(DIR);
    crate::private::create_dir_all(&dir)?;
    let mut chunks = Vec::new();
    list.encode_chunks(&mut chunks);
    let mut files = Vec::new();
    list.encode_files(&mut files);
    files.extend_from_slice(&tree.0);
    let counts = list.counts();
    for n in [counts.files, counts.path_bytes, counts.chunks] {
        files.extend_from_slice(&n.to_le_bytes());
    }
    files.extend_from_slice(blake3::hash(&chunks).as_bytes());
    let mut zstd = zstd::bulk::Compressor::new(LEVEL)?;
    zstd.include_checksum(true)?;
    let frame = zstd.compress(&files)?;
    let mut stored = Vec::with_capacity(HEADER + frame.len() + chunks.len());
    stored.extend_from_slice(MAGIC);
    stored.extend_from_slice(&VERSION.to_le_bytes());
    stored.extend_from_slice(&(frame.len() as u64).to_le_bytes());
    stored.extend_from_slice(&frame);
    stored.extend_from_slice(&chunks);
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{}-{}-{}",
        tree.to_hex(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    crate::private::write(&tmp, &stored)?;
    let renamed = fs::rename(&tmp, path(root, tree));
    if renamed.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    renamed?;
    prune(&dir)
}

/// Removes all but the [`KEEP`] most recently used lists in `dir`.
fn prune(dir: &Path) -> io::Result<()> {
    let mut lists: Vec<(SystemTime, PathBuf)> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if lists.len() <= KEEP {
        return Ok(());
    }
    lists.sort_by_key(|l| std::cmp::Reverse(l.0));
    for (_, old) in lists.drain(KEEP..) {
        let _ = fs::remove_file(old);
    }
    Ok(())
}

/// Removes every kept list under `root` (what `gc` does: they hold the
/// names of files that may be gone).
pub(crate) fn clear(root: &Path) -> io::Result<()> {
    match fs::remove_dir_all(root.join(DIR)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::ChunkRef;

    fn list(n: u8) -> FileList {
        let mut l = FileList::default();
        let chunk = ChunkRef {
            id: ObjectId([n; 32]),
            len: 7,
        };
        l.push("a", b"f", 7, &[chunk]);
        l.push("", b"g", 0, &[]);
        l
    }

    #[test]
    fn a_kept_list_reads_back_for_its_tree_only() {
        let dir = tempfile::tempdir().unwrap();
        let (tree, other) = (ObjectId([1; 32]), ObjectId([2; 32]));
        assert_eq!(load(dir.path(), &tree), None);
        save(dir.path(), &tree, &list(1)).unwrap();
        assert_eq!(load(dir.path(), &tree), Some(list(1)));
        assert_eq!(load(dir.path(), &other), None);
        // Another tree's list under this tree's name is refused.
        fs::copy(path(dir.path(), &tree), path(dir.path(), &other)).unwrap();
        assert_eq!(load(dir.path(), &other), None);
        clear(dir.path()).unwrap();
        assert_eq!(load(dir.path(), &tree), None);
        clear(dir.path()).unwrap();
    }

    #[test]
    fn damaged_lists_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let tree = ObjectId([1; 32]);
        save(dir.path(), &tree, &list(1)).unwrap();
        let file = path(dir.path(), &tree);
        let good = fs::read(&file).unwrap();
        assert_eq!(load(dir.path(), &tree), Some(list(1)));
        for at in [0, 9, 13, HEADER + 6, good.len() - 40, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 1;
            fs::write(&file, &bad).unwrap();
            assert_eq!(load(dir.path(), &tree), None, "byte {at} changed");
        }
        for short in [0, 5, HEADER, good.len() - 1] {
            fs::write(&file, &good[..short]).unwrap();
            assert_eq!(load(dir.path(), &tree), None, "{short} bytes");
        }
        // Sound zstd, but not a list's files.
        let frame = zstd::bulk::compress(&[7; TRAILER + 3], 1).unwrap();
        let mut odd = good[..12].to_vec();
        odd.extend((frame.len() as u64).to_le_bytes());
        odd.extend(frame);
        fs::write(&file, &odd).unwrap();
        assert_eq!(load(dir.path(), &tree), None);
    }

    #[test]
    fn only_the_newest_lists_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let old = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        for n in 0..KEEP as u8 + 2 {
            let tree = ObjectId([n; 32]);
            save(dir.path(), &tree, &list(n)).unwrap();
            if n < 2 {
                filetime::set_file_mtime(path(dir.path(), &tree), old.into()).unwrap();
            }
        }
        let kept = |n: u8| load(dir.path(), &ObjectId([n; 32])).is_some();
        assert!(!kept(0) && !kept(1));
        assert!((2..KEEP as u8 + 2).all(kept));
    }
}
