//! [`AgentError`]: why the agent cannot start or keep running.

use std::path::PathBuf;

/// Why the agent stopped, or a step of it failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// A setting the agent cannot act on (yet); exit code 64 like a refused config file.
    #[error("{key}: {reason}")]
    Unsupported {
        /// The dotted config key.
        key: &'static str,
        /// Why.
        reason: String,
    },
    /// A plugin could not be loaded or failed.
    #[error("plugin {name}: {source}")]
    Plugin {
        /// The configured plugin name.
        name: String,
        /// The plugin host's error.
        #[source]
        source: sigil_plugins::PluginError,
    },
    /// A file in the data directory (or the bootstrap bundle) could not be read or written.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A key or CSR could not be made.
    #[error("cannot generate a key or CSR: {0}")]
    Key(String),
    /// The TLS client could not be set up.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// The server refused a call or could not be reached.
    #[error("server call {call} failed: {status}")]
    Server {
        /// The RPC.
        call: &'static str,
        /// The status the server (or the transport) gave.
        status: Box<tonic::Status>,
    },
    /// The server answered with something the agent cannot use.
    #[error("server answer to {call} unusable: {reason}")]
    BadAnswer {
        /// The RPC.
        call: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The server no longer accepts the agent (evicted or banned) and it cannot attest
    /// again on its own; its stored SVID has been removed.
    #[error(
        "the server no longer accepts agent {spiffe_id} ({reason}); its stored SVID was removed: attest it again (a join token agent needs a new token)"
    )]
    Evicted {
        /// The agent's SPIFFE ID.
        spiffe_id: String,
        /// The server's message.
        reason: String,
    },
    /// The `health_checks` listener could not be started.
    #[error("{0}")]
    Health(#[from] sigil_daemon::health::BindError),
    /// The workload socket failed.
    #[error("workload socket: {0}")]
    Serve(#[from] sigil_workload::ServeError),
    /// The admin socket (`admin_socket_path`) could not be bound or failed.
    #[error("admin socket: {0}")]
    Admin(#[source] sigil_workload::ServeError),
}

impl AgentError {
    /// An RPC failure.
    pub(crate) fn server(call: &'static str, status: tonic::Status) -> Self {
        AgentError::Server {
            call,
            status: Box::new(status),
        }
    }

    /// An unusable answer.
    pub(crate) fn bad(call: &'static str, reason: impl ToString) -> Self {
        AgentError::BadAnswer {
            call,
            reason: reason.to_string(),
        }
    }

    /// A file error.
    pub(crate) fn file(path: impl Into<PathBuf>, reason: impl ToString) -> Self {
        AgentError::File {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}
