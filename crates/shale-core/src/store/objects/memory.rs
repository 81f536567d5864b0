//! An in-memory object store, for tests.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::ObjectStore;
use crate::error::{Error, Result};

/// Objects held in a map; lost when dropped.
#[derive(Default)]
pub struct Memory {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
}

fn not_found(key: &str) -> Error {
    Error::io(key, std::io::Error::from(std::io::ErrorKind::NotFound))
}

impl Memory {
    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<String, Vec<u8>>) -> T) -> T {
        let mut guard = self.objects.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}

impl ObjectStore for Memory {
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        self.with(|m| m.insert(key.to_string(), data.to_vec()));
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        self.with(|m| m.get(key).cloned())
            .ok_or_else(|| not_found(key))
    }

    fn get_range(&self, key: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        let data = self.get(key)?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        match start.checked_add(len) {
            Some(end) if end <= data.len() => Ok(data[start..end].to_vec()),
            _ => Err(Error::io(
                key,
                std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
            )),
        }
    }

    fn get_range_now(&self, key: &str, offset: u64, len: usize) -> Option<Vec<u8>> {
        self.get_range(key, offset, len).ok()
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self.with(|m| {
            m.keys()
                .filter(|k| k.starts_with(prefix))
                .cloned()
                .collect()
        }))
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.with(|m| m.remove(key));
        Ok(())
    }

    fn size(&self, key: &str) -> Result<u64> {
        self.with(|m| m.get(key).map(|d| d.len() as u64))
            .ok_or_else(|| not_found(key))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn conformance() {
        super::super::conformance::run(&super::Memory::default());
    }
}
