//! Where the CA manager keeps its journal and publishes bundle additions. A datastore
//! implements [`CaStorage`] by storing one opaque blob and appending to its bundle row.

use std::error::Error;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use sigil_types::Bundle;

/// Persistence for the CA manager. Object safe: `Arc<dyn CaStorage>`.
#[async_trait::async_trait]
pub trait CaStorage: Send + Sync + fmt::Debug {
    /// The journal saved last, or `None` before the first save.
    async fn load_journal(&self) -> Result<Option<Vec<u8>>, StorageError>;

    /// Replaces the journal. Must be durable when it returns.
    async fn save_journal(&self, journal: &[u8]) -> Result<(), StorageError>;

    /// Adds the authorities of `bundle` that the stored bundle of the same trust domain lacks
    /// (creating it if needed, as [`Bundle::append`] does) and returns the stored bundle. Must
    /// be durable when it returns: the CA signs with what it appended only afterwards.
    async fn append_bundle(&self, bundle: Bundle) -> Result<Bundle, StorageError>;
}

/// A storage failure, with the backend's error as its source.
#[derive(Debug, thiserror::Error)]
#[error("CA storage failed: {message}")]
pub struct StorageError {
    message: String,
    #[source]
    source: Option<Box<dyn Error + Send + Sync + 'static>>,
}

impl StorageError {
    /// A failure described by `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// A failure caused by a backend error.
    pub fn with_source(
        message: impl Into<String>,
        source: impl Into<Box<dyn Error + Send + Sync + 'static>>,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(source.into()),
        }
    }
}

/// A [`CaStorage`] in memory, for tests and single-process setups without a datastore.
#[derive(Debug, Default)]
pub struct MemoryCaStorage {
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    journal: Option<Vec<u8>>,
    bundle: Option<Bundle>,
}

impl MemoryCaStorage {
    /// Empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    /// The stored bundle.
    pub fn bundle(&self) -> Option<Bundle> {
        self.lock().bundle.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl CaStorage for MemoryCaStorage {
    async fn load_journal(&self) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.lock().journal.clone())
    }

    async fn save_journal(&self, journal: &[u8]) -> Result<(), StorageError> {
        self.lock().journal = Some(journal.to_vec());
        Ok(())
    }

    async fn append_bundle(&self, bundle: Bundle) -> Result<Bundle, StorageError> {
        let mut state = self.lock();
        match &mut state.bundle {
            Some(stored) if stored.trust_domain == bundle.trust_domain => {
                stored.append(&bundle);
                Ok(stored.clone())
            }
            Some(stored) => Err(StorageError::new(format!(
                "stored bundle is for {}, not {}",
                stored.trust_domain, bundle.trust_domain
            ))),
            None => {
                let mut stored = Bundle::new(bundle.trust_domain.clone());
                stored.append(&bundle);
                state.bundle = Some(stored.clone());
                Ok(stored)
            }
        }
    }
}
