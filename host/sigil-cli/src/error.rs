//! The crate's error type. Every variant is printed as SPIRE's CLI prints a failed command:
//! `Error: <text>` on stderr, exit code 1.

use crate::flags::FlagError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The command line did not parse; the usage text follows the message.
    #[error(transparent)]
    Flags(#[from] FlagError),
    /// A flag value is missing or inconsistent (`a SPIFFE ID is required`).
    #[error("{0}")]
    Invalid(String),
    /// The server API socket could not be reached.
    #[error("connection error: {socket}: {reason}")]
    Connect { socket: String, reason: String },
    /// The server answered the RPC with an error status. Printed as grpc-go prints a status.
    #[error("{context}rpc error: code = {} desc = {}", crate::output::code_name(.status.code()), .status.message())]
    Rpc {
        /// Text SPIRE puts before the status for this call, e.g. `error fetching entries: `.
        context: String,
        status: tonic::Status,
    },
    /// One or more items of a batch failed; their details were printed already.
    #[error("{0}")]
    Batch(String),
    /// `healthcheck` found the server unhealthy. Printed without the `Error: ` prefix.
    #[error("Server is unhealthy: {0}")]
    Unhealthy(String),
    /// The agent's `healthcheck` found the agent unhealthy. Printed without the `Error: `
    /// prefix.
    #[error("Agent is unhealthy: {0}")]
    AgentUnhealthy(String),
    /// Reading or writing a local file failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl CliError {
    /// An RPC error without a prefix.
    pub(crate) fn rpc(status: tonic::Status) -> Self {
        Self::Rpc {
            context: String::new(),
            status,
        }
    }

    /// An RPC error with SPIRE's prefix for that call.
    pub(crate) fn rpc_in(context: &str) -> impl FnOnce(tonic::Status) -> Self + '_ {
        move |status| Self::Rpc {
            context: format!("{context}: "),
            status,
        }
    }

    /// A validation failure.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }

    /// A file error naming what was being done.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}
