//! The cache's error type.

/// What loading or syncing the cache can fail with. Reads of the cache itself never fail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A datastore call failed; the cache is unchanged by the failed step and the next sync
    /// retries it.
    #[error("datastore call failed: {0}")]
    Store(#[from] sigil_store::Error),
}

/// The cache's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
