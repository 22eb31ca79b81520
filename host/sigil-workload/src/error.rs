//! Errors of the crate, and the one place where they become gRPC statuses.

use std::path::PathBuf;

use tonic::{Code, Status};

use crate::IdentityError;

/// Why a socket could not be served (the workload socket, or another agent socket bound
/// with [`bind`](crate::bind)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Creating the socket's directory, removing a stale socket, binding or setting the
    /// socket's mode failed.
    #[error("socket {path}: {source}")]
    Io {
        /// The file or directory that failed.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("socket server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Why one call is refused. Internal: every variant becomes a [`Status`] in
/// `From<ApiError> for Status`, whose messages are the only thing a peer ever sees.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// A Workload API call without `workload.spiffe.io: true`.
    #[error("security header missing from request")]
    MissingSecurityHeader,
    /// The connection carries no peer credentials (not a Unix socket, or the kernel did not
    /// report them).
    #[error("caller credentials unavailable")]
    NoPeerCredentials,
    /// The caller attested but has no SVID (and unauthenticated verifiers are not allowed).
    #[error("no identity issued")]
    NoIdentityIssued,
    /// The agent refused or could not attest the caller.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// A required request field is empty; the text names it as SPIRE does.
    #[error("{0} must be specified")]
    Missing(&'static str),
    /// A JWT-SVID audience over sigil's limits (count, bytes per audience, bytes in total).
    #[error(transparent)]
    Audience(#[from] sigil_types::AudienceError),
    /// A request's SPIFFE ID does not parse.
    #[error("invalid SPIFFE ID {value:?}: {reason}")]
    InvalidSpiffeId {
        /// What the caller sent.
        value: String,
        /// The parser's complaint.
        reason: String,
    },
    /// A JWT-SVID did not validate.
    #[error("invalid JWT-SVID: {0}")]
    InvalidJwt(String),
    /// SDS names the caller may not have or that do not exist.
    #[error("workload is not authorized for the requested identities {0:?}")]
    UnknownResources(Vec<String>),
    /// `ALL` needs Envoy's SPIFFE validator: one `trusted_ca` for several trust domains would
    /// let any of them vouch for the others' SPIFFE IDs.
    #[error("{0:?} needs the SPIFFE certificate validator (Envoy 1.18 or later, not disabled)")]
    AllBundlesNeedSpiffeValidator(String),
    /// The agent dropped the caller's identities: nothing more will come on this stream.
    #[error("identities are gone")]
    IdentitiesGone,
    /// The socket is shutting down; open streams end so that shutdown does not wait for them.
    #[error("agent is shutting down")]
    ShuttingDown,
    /// SDS `DeltaSecrets`: only state-of-the-world streams are served, as SPIRE does.
    #[error("Method is not implemented")]
    Unimplemented,
    /// `FetchWITSVID`, `FetchWITBundles`: sigil issues no WIT-SVIDs (SPIRE's agent answers
    /// these Unimplemented too).
    #[error("WIT-SVIDs are not supported")]
    WitSvidUnsupported,
    /// Something the caller cannot fix; the detail is logged, not sent.
    #[error("internal error")]
    Internal,
}

/// The retry hint of an [`IdentityError::Unavailable`] (`grpc-retry-pushback-ms`).
const RETRY_PUSHBACK: std::time::Duration = std::time::Duration::from_secs(1);

/// At most this many characters of a peer's value are echoed back in an error.
const ECHO_LIMIT: usize = 128;
/// At most this many unknown SDS names are listed in an error.
const ECHO_NAMES: usize = 16;

impl ApiError {
    /// An invalid SPIFFE ID sent by the peer, echoed back shortened.
    pub(crate) fn invalid_spiffe_id(value: &str, reason: impl ToString) -> Self {
        Self::InvalidSpiffeId {
            value: echo(value),
            reason: reason.to_string(),
        }
    }

    /// Unknown SDS names sent by the peer, echoed back shortened and at most [`ECHO_NAMES`].
    pub(crate) fn unknown_resources<'a>(names: impl ExactSizeIterator<Item = &'a str>) -> Self {
        let count = names.len();
        let mut shown: Vec<String> = names.take(ECHO_NAMES).map(echo).collect();
        if count > ECHO_NAMES {
            shown.push(format!("… and {} more", count - ECHO_NAMES));
        }
        Self::UnknownResources(shown)
    }
}

/// `value` cut to [`ECHO_LIMIT`] characters, so an error never carries a peer's megabytes
/// back (gRPC puts the message in a trailer, whose size is limited).
fn echo(value: &str) -> String {
    match value.char_indices().nth(ECHO_LIMIT) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_owned(),
    }
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        let code = match &error {
            ApiError::MissingSecurityHeader
            | ApiError::Missing(_)
            | ApiError::Audience(_)
            | ApiError::InvalidSpiffeId { .. }
            | ApiError::InvalidJwt(_)
            | ApiError::UnknownResources(_) => Code::InvalidArgument,
            ApiError::NoIdentityIssued | ApiError::Identity(IdentityError::Denied(_)) => {
                Code::PermissionDenied
            }
            ApiError::Identity(IdentityError::Unavailable(_))
            | ApiError::IdentitiesGone
            | ApiError::ShuttingDown => Code::Unavailable,
            ApiError::AllBundlesNeedSpiffeValidator(_) => Code::FailedPrecondition,
            ApiError::Unimplemented | ApiError::WitSvidUnsupported => Code::Unimplemented,
            ApiError::NoPeerCredentials | ApiError::Internal => Code::Internal,
        };
        let mut status = Status::new(code, error.to_string());
        // The agent cannot answer yet or is saturated: the same call may succeed shortly.
        if let ApiError::Identity(IdentityError::Unavailable(_)) = error {
            sigil_proto::retry::set_retry_pushback(&mut status, RETRY_PUSHBACK);
        }
        status
    }
}
