//! Why a Delegated Identity API call is refused, and the one place where that becomes a
//! gRPC status. Codes and texts follow SPIRE's agent where it has them.

use sigil_workload::IdentityError;
use tonic::{Code, Status};

/// The retry hint of an Unavailable answer (`grpc-retry-pushback-ms`).
const RETRY_PUSHBACK: std::time::Duration = std::time::Duration::from_secs(1);

/// At most this many characters of a peer's value are echoed back in an error.
const ECHO_LIMIT: usize = 128;

/// Why one call is refused. Every variant's text is what the peer sees: no internals, no
/// key material.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DelegatedError {
    /// The connection carries no peer credentials.
    #[error("caller credentials unavailable")]
    NoPeerCredentials,
    /// The caller could not be attested (it exited, say). SPIRE answers Internal here; sigil
    /// answers PermissionDenied as on its workload socket.
    #[error("workload attestation failed")]
    CallerAttestation,
    /// The caller attested, but no entry matches its selectors.
    #[error("no identity issued")]
    NoIdentityIssued,
    /// The caller has identities, none of them in `authorized_delegates`.
    #[error("caller not configured as an authorized delegate")]
    NotAuthorized,
    /// A required field is empty; the text names it as SPIRE does.
    #[error("{0} must be specified")]
    Missing(&'static str),
    /// A JWT-SVID audience over sigil's limits (count, bytes per audience, bytes in total).
    #[error(transparent)]
    Audience(#[from] sigil_types::AudienceError),
    /// Neither or both of selectors and PID (SPIRE's text).
    #[error("must provide either selectors or non-zero PID, but not both")]
    SelectorsOrPid,
    /// A PID that cannot be a process.
    #[error("invalid PID {0}")]
    InvalidPid(i32),
    /// A selector that does not parse, named (shortened).
    #[error("could not parse provided selectors: {selector:?}: {reason}")]
    InvalidSelector {
        /// `type:value` as the caller sent it, shortened.
        selector: String,
        /// The parser's complaint.
        reason: String,
    },
    /// The PID the delegate named could not be attested (SPIRE's code and text).
    #[error("workload attestation with PID failed")]
    PidAttestation,
    /// The agent cannot answer now (no first sync yet, the server cannot mint a JWT-SVID,
    /// workload attestation is saturated); sent with a retry hint.
    #[error("{0}")]
    Unavailable(String),
    /// Serving is stopping; open streams end.
    #[error("agent is shutting down")]
    ShuttingDown,
    /// Something the caller cannot fix; the detail is logged, not sent.
    #[error("internal error")]
    Internal,
}

impl DelegatedError {
    /// A selector sent by the peer that does not parse.
    pub(crate) fn invalid_selector(
        selector_type: &str,
        value: &str,
        reason: impl ToString,
    ) -> Self {
        Self::InvalidSelector {
            selector: echo(&format!("{selector_type}:{value}")),
            reason: reason.to_string(),
        }
    }

    /// The caller's attestation failed.
    pub(crate) fn caller(error: IdentityError) -> Self {
        match error {
            IdentityError::Unavailable(reason) => Self::Unavailable(reason),
            _ => Self::CallerAttestation,
        }
    }
}

/// `value` cut to [`ECHO_LIMIT`] characters.
fn echo(value: &str) -> String {
    match value.char_indices().nth(ECHO_LIMIT) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_owned(),
    }
}

impl From<DelegatedError> for Status {
    fn from(error: DelegatedError) -> Self {
        let code = match &error {
            DelegatedError::CallerAttestation
            | DelegatedError::NoIdentityIssued
            | DelegatedError::NotAuthorized => Code::PermissionDenied,
            DelegatedError::Missing(_)
            | DelegatedError::Audience(_)
            | DelegatedError::SelectorsOrPid
            | DelegatedError::InvalidPid(_)
            | DelegatedError::InvalidSelector { .. } => Code::InvalidArgument,
            DelegatedError::Unavailable(_) | DelegatedError::ShuttingDown => Code::Unavailable,
            DelegatedError::NoPeerCredentials
            | DelegatedError::PidAttestation
            | DelegatedError::Internal => Code::Internal,
        };
        let mut status = Status::new(code, error.to_string());
        // Not synced yet, the server is unreachable, or workload attestation is saturated:
        // the same call may succeed shortly.
        if let DelegatedError::Unavailable(_) = error {
            sigil_proto::retry::set_retry_pushback(&mut status, RETRY_PUSHBACK);
        }
        status
    }
}
