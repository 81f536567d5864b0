//! Blobs stored as edits of other blobs (pool format 3).
//!
//! A chunk rewritten by an in-place edit, or the tree node that lists a
//! large file's chunks, differs from blobs the pool already holds by a
//! few ranges. Stored whole, a 64 KiB edit of a large file cost the 128-512
//! KiB chunks around it and the file's whole chunk list (36 bytes per
//! chunk: 295 KB for 1 GiB) on every commit. A [`Delta`] stores such a
//! blob as copies of byte ranges of its *bases* and the new bytes between
//! them, so the pool grows by about what changed (issue 31).
//!
//! The blob's id stays the hash of its plaintext: trees, dedup and every
//! reader see the same ids and bytes as before; only the pack entry
//! differs. Bases are named by content id and are always stored whole: a
//! delta built on a delta is rewritten in terms of that delta's own bases
//! ([`Base::delta`]), so a read costs one level of indirection at most.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use serde::{Deserialize, Serialize};

use crate::id::{ObjectId, PassThrough};

/// Magic and version at the start of a delta record.
const MAGIC: &[u8; 3] = b"SD\x01";
/// The shortest run of bytes matched against a base.
const BLOCK: usize = 32;

/// A blob as copies of its bases' byte ranges and new bytes, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Delta {
    /// The content id of the blob this record rebuilds.
    pub id: ObjectId,
    /// The content ids of the blobs copied from, each stored whole.
    pub bases: Vec<ObjectId>,
    /// The blob's bytes, in order.
    pub ops: Vec<Op>,
}

/// One piece of a [`Delta`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Op {
    /// `len` bytes of base number `base`, starting at `offset`.
    Copy {
        /// Index into [`Delta::bases`].
        base: u32,
        /// Where the bytes start in the base.
        offset: u32,
        /// How many.
        len: u32,
    },
    /// Bytes the bases do not hold.
    Insert(#[serde(with = "serde_bytes")] Vec<u8>),
}

/// A blob a new one may copy from.
pub(crate) struct Base<'a> {
    /// Its content id.
    pub id: ObjectId,
    /// Its plaintext.
    pub bytes: &'a [u8],
    /// How it is stored, when it is itself a delta.
    pub delta: Option<&'a Delta>,
}

impl Delta {
    /// The record as stored (before sealing): magic, then the postcard
    /// encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        // Encoding into a Vec cannot fail for these types.
        out.extend(postcard::to_allocvec(self).unwrap_or_default());
        out
    }

    /// Parses a record; the error says what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<Delta, String> {
        let body = bytes
            .strip_prefix(MAGIC)
            .ok_or("not a delta record of a known version")?;
        postcard::from_bytes(body).map_err(|e| format!("damaged delta record: {e}"))
    }

    /// Rebuilds the blob, `len` bytes long, from its bases' plaintexts (in
    /// the order of [`Delta::bases`]).
    pub fn apply(&self, bases: &[Vec<u8>], len: usize) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(len);
        for op in &self.ops {
            match op {
                Op::Copy { base, offset, len } => {
                    let src = bases
                        .get(*base as usize)
                        .ok_or("a delta copies from a base it does not list")?;
                    let start = *offset as usize;
                    let part = start
                        .checked_add(*len as usize)
                        .and_then(|end| src.get(start..end))
                        .ok_or("a delta copies past the end of its base")?;
                    out.extend_from_slice(part);
                }
                Op::Insert(bytes) => out.extend_from_slice(bytes),
            }
            if out.len() > len {
                return Err("a delta rebuilds more bytes than its entry says".into());
            }
        }
        if out.len() != len {
            return Err("a delta rebuilds fewer bytes than its entry says".into());
        }
        Ok(out)
    }

    /// Appends to `out` the pieces that make bytes `offset..offset + len`
    /// of the blob this record rebuilds, in terms of its own bases.
    fn copy_range(&self, out: &mut Builder, offset: usize, len: usize) {
        let end = offset + len;
        let mut at = 0;
        for op in &self.ops {
            let op_len = match op {
                Op::Copy { len, .. } => *len as usize,
                Op::Insert(bytes) => bytes.len(),
            };
            let (from, to) = (offset.max(at), end.min(at + op_len));
            if from < to {
                match op {
                    Op::Copy { base, offset, .. } => {
                        let start = *offset as usize + (from - at);
                        out.copy(self.bases[*base as usize], start, to - from);
                    }
                    Op::Insert(bytes) => out.insert(&bytes[from - at..to - at]),
                }
            }
            at += op_len;
            if at >= end {
                break;
            }
        }
    }
}

/// Describes `data` (content id `id`) as copies of `bases` where they hold
/// runs of at least 32 of its bytes, and new bytes elsewhere.
pub(crate) fn diff(id: ObjectId, data: &[u8], bases: &[Base<'_>]) -> Delta {
    let index = BlockIndex::new(bases);
    let mut out = Builder::default();
    let (mut at, mut literal) = (0, 0);
    while at + BLOCK <= data.len() {
        let Some((b, found)) = index.find(&data[at..at + BLOCK], bases) else {
            at += 1;
            continue;
        };
        let base = bases[b].bytes;
        let (mut start, mut from) = (at, found);
        while start > literal && from > 0 && data[start - 1] == base[from - 1] {
            start -= 1;
            from -= 1;
        }
        let len = common_prefix(&data[start..], &base[from..]);
        out.insert(&data[literal..start]);
        match bases[b].delta {
            Some(d) => d.copy_range(&mut out, from, len),
            None => out.copy(bases[b].id, from, len),
        }
        at = start + len;
        literal = at;
    }
    out.insert(&data[literal..]);
    Delta {
        id,
        bases: out.bases,
        ops: out.ops,
    }
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// A delta being built: adjacent pieces are merged.
#[derive(Default)]
struct Builder {
    bases: Vec<ObjectId>,
    ops: Vec<Op>,
}

impl Builder {
    fn copy(&mut self, id: ObjectId, offset: usize, len: usize) {
        if len == 0 {
            return;
        }
        let b = match self.bases.iter().position(|x| *x == id) {
            Some(b) => b,
            None => {
                self.bases.push(id);
                self.bases.len() - 1
            }
        } as u32;
        if let Some(Op::Copy {
            base,
            offset: o,
            len: l,
        }) = self.ops.last_mut()
        {
            if *base == b && (*o + *l) as usize == offset {
                *l += len as u32;
                return;
            }
        }
        self.ops.push(Op::Copy {
            base: b,
            offset: offset as u32,
            len: len as u32,
        });
    }

    fn insert(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        match self.ops.last_mut() {
            Some(Op::Insert(last)) => last.extend_from_slice(bytes),
            _ => self.ops.push(Op::Insert(bytes.to_vec())),
        }
    }
}

/// The bases' bytes at every 32nd offset, by a hash of the 32 bytes there.
struct BlockIndex(HashMap<u64, (usize, usize), BuildHasherDefault<PassThrough>>);

impl BlockIndex {
    fn new(bases: &[Base<'_>]) -> Self {
        let mut map = HashMap::default();
        for (b, base) in bases.iter().enumerate() {
            for (i, block) in base.bytes.chunks_exact(BLOCK).enumerate() {
                map.entry(block_hash(block)).or_insert((b, i * BLOCK));
            }
        }
        BlockIndex(map)
    }

    /// A base and offset holding exactly `block`, if one was indexed.
    fn find(&self, block: &[u8], bases: &[Base<'_>]) -> Option<(usize, usize)> {
        let &(b, at) = self.0.get(&block_hash(block))?;
        (bases[b].bytes.get(at..at + BLOCK) == Some(block)).then_some((b, at))
    }
}

/// A hash of 32 bytes, cheap enough to take at every offset of new bytes.
fn block_hash(block: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    block.chunks_exact(8).fold(0, |h, w| {
        let mut word = [0u8; 8];
        word.copy_from_slice(w);
        (h ^ u64::from_le_bytes(word))
            .wrapping_mul(K)
            .rotate_left(29)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base<'a>(bytes: &'a [u8], delta: Option<&'a Delta>) -> Base<'a> {
        Base {
            id: delta.map_or_else(|| ObjectId::of(bytes), |d| d.id),
            bytes,
            delta,
        }
    }

    fn literal(d: &Delta) -> usize {
        d.ops
            .iter()
            .map(|op| match op {
                Op::Insert(b) => b.len(),
                Op::Copy { .. } => 0,
            })
            .sum()
    }

    fn rebuild(d: &Delta, store: &[(ObjectId, &[u8])], len: usize) -> Vec<u8> {
        let bases: Vec<Vec<u8>> = d
            .bases
            .iter()
            .map(|id| store.iter().find(|(i, _)| i == id).unwrap().1.to_vec())
            .collect();
        let decoded = Delta::decode(&d.encode()).unwrap();
        assert_eq!(&decoded, d);
        decoded.apply(&bases, len).unwrap()
    }

    #[test]
    fn an_edit_costs_its_bytes() {
        let old = crate::test_noise(1, 300_000);
        let mut new = old.clone();
        new[100_000..165_536].copy_from_slice(&crate::test_noise(2, 65_536));
        new.splice(200_000..200_010, b"shifted by a few".iter().copied());
        let id = ObjectId::of(&new);
        let d = diff(id, &new, &[base(&old, None)]);
        assert!(literal(&d) < 65_536 + 100, "{}", literal(&d));
        assert!(d.encode().len() < 65_536 + 200);
        let store = [(ObjectId::of(&old), &old[..])];
        assert_eq!(rebuild(&d, &store, new.len()), new);
    }

    #[test]
    fn a_delta_of_a_delta_copies_from_the_whole_blobs() {
        let a = crate::test_noise(3, 200_000);
        let b = crate::test_noise(4, 200_000);
        // `mid` takes the end of `a`, new bytes and the start of `b`.
        let mut mid = a[150_000..].to_vec();
        mid.extend(crate::test_noise(5, 1_000));
        mid.extend(&b[..60_000]);
        let bases = [base(&a, None), base(&b, None)];
        let d1 = diff(ObjectId::of(&mid), &mid, &bases);
        // `next` edits `mid` again, with `mid` stored as `d1`.
        let mut next = mid.clone();
        next[70_000..70_100].fill(9);
        let d2 = diff(ObjectId::of(&next), &next, &[base(&mid, Some(&d1))]);
        assert!(!d2.bases.contains(&d1.id), "only whole blobs are bases");
        assert!(literal(&d2) < 1_000 + 100 + 64, "{}", literal(&d2));
        let store = [(ObjectId::of(&a), &a[..]), (ObjectId::of(&b), &b[..])];
        assert_eq!(rebuild(&d2, &store, next.len()), next);
    }

    #[test]
    fn unrelated_bytes_are_all_literal() {
        let old = crate::test_noise(6, 10_000);
        let new = crate::test_noise(7, 10_000);
        let d = diff(ObjectId::of(&new), &new, &[base(&old, None)]);
        assert_eq!(literal(&d), new.len());
        assert!(d.bases.is_empty());
    }

    /// An edit of `old`: bytes overwritten, inserted or removed at `at`.
    fn edit(old: &[u8], kind: u8, at: usize, len: usize, seed: u64) -> Vec<u8> {
        let at = at % (old.len() + 1);
        let new = crate::test_noise(seed, len);
        let mut out = old.to_vec();
        match kind % 3 {
            0 => {
                let end = (at + len).min(out.len());
                out.splice(at..end, new);
            }
            1 => {
                out.splice(at..at, new);
            }
            _ => {
                let end = (at + len).min(out.len());
                out.drain(at..end);
            }
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Whatever the edits, a delta rebuilds the blob, one built on a
        /// delta copies only from whole blobs, and an edit of a few bytes
        /// stays small.
        #[test]
        fn deltas_rebuild_what_they_describe(
            edits in proptest::collection::vec((0u8..3, 0usize..70_000, 0usize..3_000, 0u64..1000), 1..4),
            size in 1_000usize..70_000,
        ) {
            let whole = crate::test_noise(99, size);
            let first = edits.iter().fold(whole.clone(), |b, &(k, at, len, seed)| edit(&b, k, at, len, seed));
            let d1 = diff(ObjectId::of(&first), &first, &[base(&whole, None)]);
            let store = [(ObjectId::of(&whole), &whole[..])];
            proptest::prop_assert!(rebuild(&d1, &store, first.len()) == first);
            let (k, at, len, seed) = edits[0];
            let second = edit(&first, k.wrapping_add(1), at / 2, len, seed + 1);
            let d2 = diff(ObjectId::of(&second), &second, &[base(&first, Some(&d1))]);
            proptest::prop_assert!(d2.bases.iter().all(|b| *b == ObjectId::of(&whole)));
            proptest::prop_assert!(rebuild(&d2, &store, second.len()) == second);
            let changed: usize = edits.iter().map(|e| e.2).sum::<usize>() + len;
            proptest::prop_assert!(literal(&d2) <= changed + 2 * (edits.len() + 1) * BLOCK);
        }
    }

    #[test]
    fn damaged_records_are_refused() {
        let d = Delta {
            id: ObjectId([1; 32]),
            bases: vec![ObjectId([2; 32])],
            ops: vec![Op::Copy {
                base: 0,
                offset: 10,
                len: 20,
            }],
        };
        assert!(Delta::decode(b"SD\x02").is_err());
        assert!(Delta::decode(&d.encode()[..20]).is_err());
        let short = vec![0u8; 25];
        assert!(d.apply(&[short], 20).unwrap_err().contains("past the end"));
        assert!(d.apply(&[], 20).is_err());
        assert!(d
            .apply(&[vec![0; 30]], 19)
            .unwrap_err()
            .contains("more bytes"));
        assert_eq!(d.apply(&[vec![0; 30]], 20).unwrap(), vec![0; 20]);
    }
}
