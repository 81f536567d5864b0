//! The pack format: many blobs appended into one immutable object.
//!
//! ```text
//! pack    = header entry*
//! header  = "SHPK" version:u8 0:u8 0:u8 0:u8           (8 bytes)
//! entry   = id:[u8;32] kind:u8 compression:u8 0:u8 0:u8
//!           raw_len:u32le stored_len:u32le data:[u8; stored_len]   (44-byte head)
//! ```
//!
//! An encrypted pool's packs are version 2: each entry head is sealed
//! (84 bytes: the 44-byte head, tag, salt; see `crypt/`) and so is
//! each blob's data, bound to its keyed id (see `crypt/sealing.rs`). The
//! store sees neither ids nor where one blob ends and the next begins.
//!
//! A pack's object key is `packs/<first two hex digits>/<pack name>.pack`, where
//! the name is a hash of its entry heads and a per-writer nonce.
//! The catalog's index maps a blob id to (pack, offset of its data, lengths), so a
//! read needs one ranged get; the entry heads make every pack self-describing so
//! that the index can be checked or rebuilt from the packs alone.

use crate::crypt::PoolKeys;
use crate::error::{Error, Result};
use crate::id::ObjectId;

/// Magic bytes at the start of every pack.
pub const MAGIC: &[u8; 4] = b"SHPK";
/// The pack format version this build writes and reads.
pub const VERSION: u8 = 1;
/// Length of the pack header.
pub const HEADER_LEN: usize = 8;
/// Length of an entry head.
pub const ENTRY_HEAD_LEN: usize = 44;
/// The version of an encrypted pool's packs (sealed heads and data).
pub const SEALED_VERSION: u8 = 2;
/// Length of a sealed entry head.
pub const SEALED_HEAD_LEN: usize = ENTRY_HEAD_LEN + crate::crypt::OVERHEAD;

/// What a blob holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobKind {
    /// A chunk of file content.
    Data = 0,
    /// An encoded tree node.
    Tree = 1,
}

impl BlobKind {
    /// Decodes the kind byte.
    pub fn from_u8(b: u8) -> Option<Self> {
        match b {
            0 => Some(BlobKind::Data),
            1 => Some(BlobKind::Tree),
            _ => None,
        }
    }
}

/// How a blob's bytes are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Stored as is.
    None = 0,
    /// A zstd frame.
    Zstd = 1,
    /// A delta record: the blob as copies of other blobs' bytes and new
    /// bytes (pool format 3; see `blobs/delta.rs`).
    Delta = 2,
}

impl Compression {
    /// Decodes the compression byte.
    pub fn from_u8(b: u8) -> Option<Self> {
        match b {
            0 => Some(Compression::None),
            1 => Some(Compression::Zstd),
            2 => Some(Compression::Delta),
            _ => None,
        }
    }
}

/// Where and how one blob is stored inside its pack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryHead {
    /// BLAKE3 of the plaintext.
    pub id: ObjectId,
    /// Data or tree.
    pub kind: BlobKind,
    /// How the stored bytes are encoded.
    pub compression: Compression,
    /// Plaintext length.
    pub raw_len: u32,
    /// Stored length.
    pub stored_len: u32,
    /// Offset of the stored bytes from the start of the pack.
    pub offset: u64,
}

/// The 8-byte pack header.
pub fn header() -> [u8; HEADER_LEN] {
    [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], VERSION, 0, 0, 0]
}

/// The header of a pack in a pool sealed with `keys` (plain without).
pub fn header_for(keys: Option<&PoolKeys>) -> [u8; HEADER_LEN] {
    let mut h = header();
    if keys.is_some() {
        h[4] = SEALED_VERSION;
    }
    h
}

/// The bytes of an entry head to write at `at`, sealed under `keys` when
/// the pool is encrypted, and the entry as the index records it (`id` is
/// the index id; `stored_len` counts the data as written, sealed or not).
pub fn head_bytes(
    keys: Option<&PoolKeys>,
    id: ObjectId,
    kind: BlobKind,
    compression: Compression,
    raw_len: u32,
    stored_len: u32,
    at: u64,
) -> Result<(Vec<u8>, EntryHead)> {
    let mut head = [0u8; ENTRY_HEAD_LEN];
    let mut e = entry_head(&mut head, id, kind, compression, raw_len, stored_len, at);
    let Some(keys) = keys else {
        return Ok((head.to_vec(), e));
    };
    let sealed = keys.seal_head(&head)?;
    e.offset = at + sealed.len() as u64;
    Ok((sealed, e))
}

/// Fills `out` with the head of an entry whose head starts at `at`, and
/// returns the entry as the index records it.
pub fn entry_head(
    out: &mut [u8; ENTRY_HEAD_LEN],
    id: ObjectId,
    kind: BlobKind,
    compression: Compression,
    raw_len: u32,
    stored_len: u32,
    at: u64,
) -> EntryHead {
    out[..32].copy_from_slice(&id.0);
    out[32..36].copy_from_slice(&[kind as u8, compression as u8, 0, 0]);
    out[36..40].copy_from_slice(&raw_len.to_le_bytes());
    out[40..44].copy_from_slice(&stored_len.to_le_bytes());
    EntryHead {
        id,
        kind,
        compression,
        raw_len,
        stored_len,
        offset: at + ENTRY_HEAD_LEN as u64,
    }
}

/// Appends one entry to an in-memory pack and returns its head.
pub fn append(
    pack: &mut Vec<u8>,
    id: ObjectId,
    kind: BlobKind,
    compression: Compression,
    raw_len: u32,
    stored: &[u8],
) -> EntryHead {
    let mut head = [0u8; ENTRY_HEAD_LEN];
    let e = entry_head(
        &mut head,
        id,
        kind,
        compression,
        raw_len,
        stored.len() as u32,
        pack.len() as u64,
    );
    pack.extend_from_slice(&head);
    pack.extend_from_slice(stored);
    e
}

/// Parses a whole plain pack and returns the heads of its entries.
pub fn parse(pack: &[u8]) -> Result<Vec<EntryHead>> {
    parse_with(pack, None)
}

/// Parses a whole pack, sealed ones with the pool's `keys`, and returns
/// the heads of its entries.
pub fn parse_with(pack: &[u8], keys: Option<&PoolKeys>) -> Result<Vec<EntryHead>> {
    let bad = |reason: String| Error::corrupt("pack", reason);
    if pack.len() < HEADER_LEN || &pack[..4] != MAGIC {
        return Err(bad("missing pack header".into()));
    }
    let keys = match (pack[4], keys) {
        (VERSION, _) => None,
        (SEALED_VERSION, Some(k)) => Some(k),
        (SEALED_VERSION, None) => {
            return Err(bad("the pack is sealed: it needs the pool's key".into()))
        }
        (v, _) => return Err(bad(format!("unknown pack version {v}"))),
    };
    let head_len = if keys.is_some() {
        SEALED_HEAD_LEN
    } else {
        ENTRY_HEAD_LEN
    };
    let mut heads = Vec::new();
    let mut pos = HEADER_LEN;
    while pos < pack.len() {
        let raw = pack
            .get(pos..pos + head_len)
            .ok_or_else(|| bad(format!("truncated entry head at offset {pos}")))?;
        let opened;
        let head = match keys {
            Some(k) => {
                opened = k.open_head(raw, &format!("entry head at offset {pos}"))?;
                &opened[..]
            }
            None => raw,
        };
        let id = ObjectId::from_slice(&head[..32]).expect("32 bytes");
        let kind = BlobKind::from_u8(head[32])
            .ok_or_else(|| bad(format!("unknown blob kind {} at offset {pos}", head[32])))?;
        let compression = Compression::from_u8(head[33])
            .ok_or_else(|| bad(format!("unknown compression {} at offset {pos}", head[33])))?;
        let raw_len = u32::from_le_bytes(head[36..40].try_into().expect("4 bytes"));
        let stored_len = u32::from_le_bytes(head[40..44].try_into().expect("4 bytes"));
        let offset = pos + head_len;
        let end = offset
            .checked_add(stored_len as usize)
            .filter(|&e| e <= pack.len())
            .ok_or_else(|| bad(format!("entry at offset {pos} runs past the end")))?;
        heads.push(EntryHead {
            id,
            kind,
            compression,
            raw_len,
            stored_len,
            offset: offset as u64,
        });
        pos = end;
    }
    Ok(heads)
}

/// The object key of a pack named by its hash.
pub fn key(name: &ObjectId) -> String {
    let hex = name.to_hex();
    format!("packs/{}/{hex}.pack", &hex[..2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut pack = header().to_vec();
        let a = append(
            &mut pack,
            ObjectId::of(b"a"),
            BlobKind::Data,
            Compression::None,
            1,
            b"a",
        );
        let b = append(
            &mut pack,
            ObjectId::of(b"bb"),
            BlobKind::Tree,
            Compression::Zstd,
            2,
            b"xyz",
        );
        assert_eq!(parse(&pack).unwrap(), vec![a.clone(), b]);
        assert_eq!(&pack[a.offset as usize..][..1], b"a");
    }

    #[test]
    fn sealed_packs_parse_with_the_key_only() {
        use crate::crypt::Key;
        let keys = PoolKeys::new(&Key::from_bytes([3; 32]));
        let mut pack = header_for(Some(&keys)).to_vec();
        let id = keys.index_id(&ObjectId::of(b"abc"));
        let sealed = keys.seal_blob(&id, b"abc").unwrap();
        let at = pack.len() as u64;
        let n = sealed.len() as u32;
        let (head, e) =
            head_bytes(Some(&keys), id, BlobKind::Data, Compression::None, 3, n, at).unwrap();
        assert_eq!(head.len(), SEALED_HEAD_LEN);
        pack.extend_from_slice(&head);
        pack.extend_from_slice(&sealed);
        assert_eq!(parse_with(&pack, Some(&keys)).unwrap(), vec![e]);
        let err = parse(&pack).unwrap_err().to_string();
        assert!(err.contains("needs the pool's key"), "{err}");
        assert!(!pack.windows(32).any(|w| w == id.0), "no id in the clear");
        let other = PoolKeys::new(&Key::from_bytes([4; 32]));
        assert!(parse_with(&pack, Some(&other)).is_err());
    }

    #[test]
    fn rejects_damage() {
        let mut pack = header().to_vec();
        append(
            &mut pack,
            ObjectId::of(b"a"),
            BlobKind::Data,
            Compression::None,
            1,
            b"a",
        );
        assert!(parse(&pack[..pack.len() - 1]).is_err());
        assert!(parse(b"XXXX").is_err());
        let mut bad_kind = pack.clone();
        bad_kind[HEADER_LEN + 32] = 9;
        assert!(parse(&bad_kind).is_err());
    }
}
