//! Why the server could not start or stopped.

use std::path::PathBuf;

/// A startup or serving failure. The binary prints it and exits 1.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The datastore could not be opened.
    #[error("datastore: {0}")]
    Store(#[from] sigil_store::Error),
    /// The key manager could not be opened.
    #[error("key manager: {0}")]
    Keys(#[from] sigil_ca::KeyError),
    /// The CA could not start.
    #[error("CA: {0}")]
    Ca(#[from] sigil_ca::CaManagerError),
    /// The entry cache could not load.
    #[error("entry cache: {0}")]
    Cache(#[from] sigil_entrycache::Error),
    /// A plugin could not be loaded.
    #[error("{0}")]
    Plugin(#[from] sigil_plugins::PluginError),
    /// A file or directory the server needs.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The configuration asks for something this server cannot do (a value the config
    /// reader accepted but this build does not support).
    #[error("configuration: {0}")]
    Unsupported(String),
    /// The agent API's TLS setup failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The gRPC server failed.
    #[error("serving: {0}")]
    Serve(#[from] tonic::transport::Error),
}
