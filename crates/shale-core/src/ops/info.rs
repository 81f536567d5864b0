//! `pool info`: what a pool holds and what sharing saves, as one report
//! that the CLI prints and the server answers with.

use serde::{Deserialize, Serialize};

use crate::catalog::SpaceSample;
use crate::coord::s3pool::StoreSettings;
use crate::error::Result;
use crate::pool::Pool;

/// A pool's totals and ratios.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PoolReport {
    /// The pool's directory or URL.
    pub path: String,
    /// An object-store pool's settings.
    pub store: Option<StoreSettings>,
    /// The pool's random id.
    pub id: String,
    /// The pool's format version.
    pub format_version: u32,
    /// For an encrypted pool: how, and how many keys open it (absent for
    /// a plain pool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<String>,
    /// Average chunk size in bytes.
    pub chunk_size: u32,
    /// Volumes.
    pub volumes: u64,
    /// Snapshots.
    pub snapshots: u64,
    /// Bytes of every volume and snapshot as plain copies.
    pub logical_bytes: u64,
    /// Bytes of distinct content.
    pub unique_bytes: u64,
    /// Bytes stored in packs.
    pub stored_bytes: u64,
    /// Packs.
    pub packs: u64,
    /// Logical over unique bytes.
    pub dedup_ratio: f64,
    /// Unique over compressed bytes.
    pub compression_ratio: f64,
    /// Logical minus stored bytes.
    pub saved_bytes: u64,
    /// What `shale gc` would free (when asked for and computable).
    pub reclaimable_bytes: Option<u64>,
    /// Bytes in packs that nothing reaches (same).
    pub unused_bytes: Option<u64>,
    /// Why the space accounting could not be made (a damaged pool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub space_error: Option<String>,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}

impl Pool {
    /// The pool's report; `space` adds what gc would free, which walks
    /// every tree (on a damaged pool it cannot: `space_error` says why).
    pub fn report(&self, space: bool) -> Result<PoolReport> {
        let t = self.totals()?;
        let mut r = PoolReport {
            path: self.name(),
            store: self.description().store.clone(),
            id: self.description().id.clone(),
            format_version: self.description().version,
            encryption: self.encryption_summary()?,
            chunk_size: self.chunking().avg,
            volumes: t.volumes,
            snapshots: t.snapshots,
            logical_bytes: t.logical_bytes,
            unique_bytes: t.unique_bytes,
            stored_bytes: t.stored_bytes,
            packs: t.packs,
            dedup_ratio: ratio(t.logical_bytes, t.unique_bytes),
            compression_ratio: ratio(t.unique_bytes, t.compressed_bytes),
            saved_bytes: t.logical_bytes.saturating_sub(t.stored_bytes),
            ..PoolReport::default()
        };
        if space {
            match self.space() {
                Ok(s) => {
                    r.reclaimable_bytes = Some(s.reclaimable_bytes);
                    r.unused_bytes = Some(s.unused_bytes);
                }
                Err(e) => r.space_error = Some(e.to_string()),
            }
        }
        Ok(r)
    }

    /// How an encrypted pool is sealed, and how many keys open it.
    fn encryption_summary(&self) -> Result<Option<String>> {
        let name = self.name();
        let Some(ring) = self.ring(&name) else {
            return Ok(None);
        };
        let ring = ring.read()?;
        Ok(Some(format!(
            "encrypted (AES-256-GCM, keyed BLAKE3 ids; {} key{})",
            ring.slots.len(),
            if ring.slots.len() == 1 { "" } else { "s" }
        )))
    }

    /// Records the pool's totals now (see `catalog::SpaceSample`), unless
    /// they are those of the last sample; whether it was recorded.
    pub fn sample_space(&self) -> Result<bool> {
        let sample = SpaceSample::of(crate::catalog::now_ns(), &self.totals()?);
        self.catalog()
            .write(|tx| crate::catalog::record_space(tx, &sample))
    }

    /// The last `limit` samples of the pool's totals, oldest first.
    pub fn space_history(&self, limit: i64) -> Result<Vec<SpaceSample>> {
        self.catalog()
            .read(|db| crate::catalog::space_history(db, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_is_kept_when_the_totals_change() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::init(&dir.path().join("pool")).unwrap();
        assert!(pool.sample_space().unwrap());
        assert!(!pool.sample_space().unwrap(), "the same figures again");
        pool.create_volume("v", None).unwrap();
        pool.create_snapshot("v", Some("s")).unwrap();
        assert!(pool.sample_space().unwrap());
        let history = pool.space_history(10).unwrap();
        assert_eq!(history.len(), 2);
        assert!(history[0].at < history[1].at, "oldest first");
        assert_eq!((history[1].volumes, history[1].snapshots), (1, 1));
        assert_eq!(pool.space_history(1).unwrap(), history[1..]);
    }
}
