//! Encryption at rest, the key layer (issue 33): a pool's master key, the
//! keys derived from it, authenticated encryption of byte strings, and the
//! key ring that wraps the master key under each user key.
//!
//! Nothing here is home-made cryptography: XChaCha20-Poly1305 (RustCrypto's
//! `chacha20poly1305`) seals, with a random 24-byte nonce per message (safe
//! to draw at random at this nonce size); Argon2id (`argon2`) turns a
//! passphrase into a key; BLAKE3's `derive_key` separates the master key
//! into keys for distinct purposes, and its keyed mode makes chunk ids that
//! reveal nothing without the key.
//!
//! Status: this layer is built and tested; pools do not use it yet (no
//! pool is encrypted, `pool init` has no `--encrypt`).

pub mod keyring;
pub mod sealing;

pub use sealing::PoolKeys;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{Error, Result};

/// Bytes a sealed message adds: the nonce before, the tag after.
pub const OVERHEAD: usize = NONCE + TAG;
const NONCE: usize = 24;
const TAG: usize = 16;

/// 32 secret bytes, wiped from memory when dropped.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Key([u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(…)")
    }
}

impl Key {
    /// A new random key (from the operating system's generator).
    pub fn random() -> Result<Key> {
        let mut k = [0u8; 32];
        fill_random(&mut k)?;
        Ok(Key(k))
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Key {
        Key(bytes)
    }

    /// Its bytes (to wrap it).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A key for one purpose, derived from this one (`context` names the
    /// purpose, e.g. `"shale 2026 pack encryption"`): knowing one derived
    /// key tells nothing of another or of this one.
    pub fn derive(&self, context: &str) -> Key {
        Key(blake3::derive_key(context, &self.0))
    }

    /// The keyed BLAKE3 hash of `data` under this key.
    pub fn keyed_hash(&self, data: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(&self.0, data).as_bytes()
    }

    /// Encrypts and authenticates `plain`, binding `aad` (associated data,
    /// not stored: e.g. an object's name, so a sealed object cannot be
    /// passed off under another name). Output: nonce, ciphertext, tag.
    pub fn seal(&self, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE];
        fill_random(&mut nonce)?;
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let sealed = cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad })
            .map_err(|_| Error::InvalidArgument("encryption failed".into()))?;
        let mut out = Vec::with_capacity(NONCE + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Checks and decrypts what [`Key::seal`] made with this key and the
    /// same `aad`; `what` names it in the error. A wrong key, a changed
    /// byte or another `aad` all fail the same way, never giving garbage.
    pub fn open(&self, sealed: &[u8], aad: &[u8], what: &str) -> Result<Vec<u8>> {
        if sealed.len() < OVERHEAD {
            return Err(Error::corrupt(what, "too short to be sealed"));
        }
        let (nonce, body) = sealed.split_at(NONCE);
        XChaCha20Poly1305::new((&self.0).into())
            .decrypt(XNonce::from_slice(nonce), Payload { msg: body, aad })
            .map_err(|_| {
                Error::corrupt(
                    what,
                    "it does not authenticate: damaged, replaced, or sealed with another key",
                )
            })
    }
}

/// Fills `buf` from the operating system's random number generator.
pub fn fill_random(buf: &mut [u8]) -> Result<()> {
    use chacha20poly1305::aead::rand_core::RngCore;
    chacha20poly1305::aead::OsRng
        .try_fill_bytes(buf)
        .map_err(|e| Error::InvalidArgument(format!("no randomness from the system: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_bytes_open_only_with_the_key_and_the_same_name() {
        let k = Key::random().unwrap();
        let sealed = k.seal(b"plain text", b"packs/ab/x").unwrap();
        assert_eq!(sealed.len(), 10 + OVERHEAD);
        assert!(!sealed.windows(5).any(|w| w == b"plain"));
        assert_eq!(k.open(&sealed, b"packs/ab/x", "x").unwrap(), b"plain text");
        // two seals of the same bytes differ (random nonces)
        assert_ne!(
            k.seal(b"plain text", b"n").unwrap(),
            k.seal(b"plain text", b"n").unwrap()
        );
        let other = Key::random().unwrap();
        let e = other.open(&sealed, b"packs/ab/x", "pack x").unwrap_err();
        assert!(e.to_string().contains("pack x"), "{e}");
        assert!(k.open(&sealed, b"packs/ab/y", "x").is_err(), "another name");
        for i in [0, 30, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(
                k.open(&bad, b"packs/ab/x", "x").is_err(),
                "flipped byte {i}"
            );
        }
        assert!(k.open(&sealed[..20], b"packs/ab/x", "x").is_err());
    }

    #[test]
    fn derived_and_keyed_hashes_differ_by_purpose_and_key() {
        let k = Key::from_bytes([7; 32]);
        let (a, b) = (k.derive("purpose a"), k.derive("purpose b"));
        assert_ne!(a, b);
        assert_eq!(a, Key::from_bytes([7; 32]).derive("purpose a"));
        assert_ne!(a.keyed_hash(b"chunk"), b.keyed_hash(b"chunk"));
        assert_ne!(a.keyed_hash(b"chunk"), *blake3::hash(b"chunk").as_bytes());
        assert_eq!(format!("{a:?}"), "Key(…)");
    }
}
