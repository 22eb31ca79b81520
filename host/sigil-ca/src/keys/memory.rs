//! A key manager that keeps keys in memory only: for tests and throwaway servers.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use super::{Key, KeyError, KeyManager};
use crate::KeyType;

/// Keys in process memory; they are gone when the process exits (SPIRE's `memory` KeyManager).
#[derive(Debug, Default)]
pub struct MemoryKeyManager {
    keys: Mutex<BTreeMap<String, Key>>,
}

impl MemoryKeyManager {
    /// An empty key manager.
    pub fn new() -> Self {
        Self::default()
    }
}

impl KeyManager for MemoryKeyManager {
    fn generate_key(&self, id: &str, key_type: KeyType) -> Result<Key, KeyError> {
        let key = Key::generate(id, key_type)?;
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_owned(), key.clone());
        Ok(key)
    }

    fn key(&self, id: &str) -> Result<Option<Key>, KeyError> {
        Ok(self
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned())
    }

    fn keys(&self) -> Result<Vec<Key>, KeyError> {
        Ok(self
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect())
    }
}
