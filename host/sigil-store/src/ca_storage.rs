//! The CA manager's persistence in the datastore: its slot journal under a name of its own and
//! the trust domain's bundle, so a restarted server keeps its active CA and several servers on
//! one PostgreSQL database publish their CAs into one bundle.

use std::sync::Arc;

use sigil_ca::{CaStorage, StorageError};
use sigil_types::Bundle;

use crate::DataStore;

/// [`CaStorage`] on a [`DataStore`].
#[derive(Debug, Clone)]
pub struct DataStoreCaStorage {
    store: Arc<dyn DataStore>,
    journal_name: String,
}

impl DataStoreCaStorage {
    /// Keeps the journal under `journal_name`, which must be unique per server sharing the
    /// database (each server has its own CA keys).
    pub fn new(store: Arc<dyn DataStore>, journal_name: impl Into<String>) -> Self {
        Self {
            store,
            journal_name: journal_name.into(),
        }
    }
}

#[async_trait::async_trait]
impl CaStorage for DataStoreCaStorage {
    async fn load_journal(&self) -> Result<Option<Vec<u8>>, StorageError> {
        self.store
            .fetch_ca_journal(&self.journal_name)
            .await
            .map_err(|e| StorageError::with_source("loading the CA journal", e))
    }

    async fn save_journal(&self, journal: &[u8]) -> Result<(), StorageError> {
        self.store
            .set_ca_journal(&self.journal_name, journal.to_vec())
            .await
            .map_err(|e| StorageError::with_source("saving the CA journal", e))
    }

    async fn append_bundle(&self, bundle: Bundle) -> Result<Bundle, StorageError> {
        self.store
            .append_bundle(bundle)
            .await
            .map_err(|e| StorageError::with_source("appending to the trust bundle", e))
    }
}
