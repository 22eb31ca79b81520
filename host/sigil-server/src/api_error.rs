//! Why an API call is refused, and the one place where that becomes a gRPC status: the admin
//! socket and the agent API alike (and the per-item statuses of batch calls).
//!
//! Handlers return [`ApiError`]; the tonic trait methods turn it into a [`Status`] with `?`.
//! Every variant but [`ApiError::Internal`] carries the text the peer reads (SPIRE's where it
//! has one). An internal failure is logged here with its cause, and the peer reads only a
//! fixed text: no SQL, key IDs, file paths or library messages leave the server.

use std::fmt::Display;
use std::time::Duration;

use sigil_plugins::PluginError;
use sigil_proto::denied::DeniedReason;
use sigil_proto::spire::api::types as wire;
use tonic::{Code, Status};

/// The retry hint sent with a refusal for want of plugin capacity.
const SATURATED_PUSHBACK: Duration = Duration::from_secs(1);

/// Why one call (or one item of a batch) is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ApiError {
    /// The request is malformed or asks for what cannot be done.
    #[error("{0}")]
    InvalidArgument(String),
    /// What the request names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// What the request would create exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// The caller may not make this call (not an admin, not authorized for the entry, a
    /// refused attestation).
    #[error("{0}")]
    PermissionDenied(String),
    /// The server refuses the calling agent itself, with SPIRE's typed reason attached as a
    /// status detail: the agent decides from the reason whether to attest again or stop.
    #[error("{message}")]
    AgentDenied {
        /// SPIRE's `PermissionDeniedDetails.Reason`.
        reason: DeniedReason,
        /// What the agent reads.
        message: String,
    },
    /// The system is not in the state the call needs (a bundle still used by entries).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The call needs the caller's X509-SVID.
    #[error("{0}")]
    Unauthenticated(String),
    /// The server cannot answer now; the caller may retry after `retry_after`.
    #[error("{message}")]
    Unavailable {
        /// What the caller reads.
        message: String,
        /// The retry hint (`grpc-retry-pushback-ms`); none when zero.
        retry_after: Duration,
    },
    /// The call is not served here.
    #[error("{0}")]
    Unimplemented(String),
    /// The caller went away.
    #[error("{0}")]
    Cancelled(String),
    /// The caller did not answer in time.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// The server's own failure. The peer reads only `what` (a fixed text); `cause` goes to
    /// the log.
    #[error("{what}: {cause}")]
    Internal {
        /// A fixed description, such as "datastore failure".
        what: &'static str,
        /// The underlying error, for the log only.
        cause: String,
    },
    /// A status tonic produced while reading the caller's request stream (a decode error,
    /// a reset), passed on as it is.
    #[error("{0}")]
    Stream(Status),
}

impl ApiError {
    /// InvalidArgument with `message`.
    pub(crate) fn invalid_argument(message: impl Into<String>) -> Self {
        Self::InvalidArgument(message.into())
    }

    /// NotFound with `message`.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(message.into())
    }

    /// PermissionDenied with `message`.
    pub(crate) fn permission_denied(message: impl Into<String>) -> Self {
        Self::PermissionDenied(message.into())
    }

    /// A refusal of the calling agent, with SPIRE's typed `reason`.
    pub(crate) fn agent_denied(reason: DeniedReason, message: impl Into<String>) -> Self {
        Self::AgentDenied {
            reason,
            message: message.into(),
        }
    }

    /// Unauthenticated with `message`.
    pub(crate) fn unauthenticated(message: impl Into<String>) -> Self {
        Self::Unauthenticated(message.into())
    }

    /// Unimplemented with `message`.
    pub(crate) fn unimplemented(message: impl Into<String>) -> Self {
        Self::Unimplemented(message.into())
    }

    /// The server's own failure: the peer reads `what`, the log gets `cause`.
    pub(crate) fn internal(what: &'static str, cause: impl Display) -> Self {
        Self::Internal {
            what,
            cause: cause.to_string(),
        }
    }

    /// The caller's request stream failed.
    pub(crate) fn stream(status: Status) -> Self {
        Self::Stream(status)
    }

    /// The answer to every WIT-SVID call (`MintWITSVID`, `BatchNewWITSVID`,
    /// `PublishWITAuthority`): sigil issues no WIT-SVIDs, which is also how SPIRE answers
    /// while its `wit-svid` feature flag is off (the default).
    pub(crate) fn wit_unsupported() -> Self {
        Self::unimplemented("WIT-SVIDs are not supported")
    }
}

/// A datastore error. Never carries SQL or connection details (the store's errors do not
/// either); backend failures say only that the datastore failed.
impl From<sigil_store::Error> for ApiError {
    fn from(error: sigil_store::Error) -> Self {
        use sigil_store::Error;
        let message = error.to_string();
        match error {
            Error::NotFound { .. } => Self::NotFound(message),
            Error::AlreadyExists { .. } => Self::AlreadyExists(message),
            Error::InvalidArgument { .. } => Self::InvalidArgument(message),
            Error::JoinTokenExpired { .. } => Self::PermissionDenied(message),
            Error::BundleInUse { .. } => Self::FailedPrecondition(message),
            _ => Self::internal("datastore failure", message),
        }
    }
}

/// A refused or failed X.509 mint: the CSR's faults are the peer's to read (prefixed `csr:`
/// as before); the CA's own failures are logged and answered with a fixed text.
impl From<sigil_ca::CaError> for ApiError {
    fn from(error: sigil_ca::CaError) -> Self {
        if error.is_peer_fault() {
            Self::InvalidArgument(format!("csr: {error}"))
        } else {
            Self::internal("the CA could not issue the certificate", error)
        }
    }
}

/// A refused or failed JWT-SVID mint, split as [`From<sigil_ca::CaError>`].
impl From<sigil_ca::JwtError> for ApiError {
    fn from(error: sigil_ca::JwtError) -> Self {
        if error.is_peer_fault() {
            Self::InvalidArgument(error.to_string())
        } else {
            Self::internal("cannot sign the JWT-SVID", error)
        }
    }
}

/// A node attestor's refusal as the agent sees it: the plugin's own reasons are for the
/// agent; a saturated plugin host is Unavailable with a retry hint (the plugin host reports
/// saturation in the log, at most every few seconds); host failures are logged and hidden.
impl From<PluginError> for ApiError {
    fn from(error: PluginError) -> Self {
        match error {
            PluginError::Saturated { .. } => {
                tracing::debug!(error = %error, "node attestor saturated");
                Self::Unavailable {
                    message: "the server is busy attesting other agents; retry later".into(),
                    retry_after: SATURATED_PUSHBACK,
                }
            }
            PluginError::Plugin { reason, .. } => {
                let message = format!("failed to attest: {reason}");
                if reason.starts_with("invalid-argument") {
                    Self::InvalidArgument(message)
                } else if reason.starts_with("unavailable") {
                    Self::Unavailable {
                        message,
                        retry_after: Duration::ZERO,
                    }
                } else {
                    Self::PermissionDenied(message)
                }
            }
            other => Self::internal("the node attestor failed", other),
        }
    }
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        let (code, message) = match error {
            ApiError::InvalidArgument(message) => (Code::InvalidArgument, message),
            ApiError::NotFound(message) => (Code::NotFound, message),
            ApiError::AlreadyExists(message) => (Code::AlreadyExists, message),
            ApiError::PermissionDenied(message) => (Code::PermissionDenied, message),
            ApiError::AgentDenied { reason, message } => {
                return sigil_proto::denied::permission_denied(reason, message);
            }
            ApiError::FailedPrecondition(message) => (Code::FailedPrecondition, message),
            ApiError::Unauthenticated(message) => (Code::Unauthenticated, message),
            ApiError::Unavailable {
                message,
                retry_after,
            } if !retry_after.is_zero() => {
                return sigil_proto::retry::unavailable_retry_after(message, retry_after);
            }
            ApiError::Unavailable { message, .. } => (Code::Unavailable, message),
            ApiError::Unimplemented(message) => (Code::Unimplemented, message),
            ApiError::Cancelled(message) => (Code::Cancelled, message),
            ApiError::DeadlineExceeded(message) => (Code::DeadlineExceeded, message),
            ApiError::Internal { what, cause } => {
                tracing::error!(failure = what, error = %cause, "request failed inside the server");
                (Code::Internal, format!("{what}; see the server log"))
            }
            ApiError::Stream(status) => return status,
        };
        Status::new(code, message)
    }
}

/// A batch item's refusal as its `spire.api.types.Status`.
pub(crate) fn item_status(error: ApiError) -> wire::Status {
    let status = Status::from(error);
    wire::Status {
        code: status.code() as i32,
        message: status.message().to_owned(),
    }
}

/// The OK per-item status.
pub(crate) fn ok_status() -> wire::Status {
    wire::Status {
        code: Code::Ok as i32,
        message: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_failure_is_internal_and_says_nothing_of_its_cause() {
        let failure = sigil_ca::CaError::SigningFailed("key /var/lib/sigil/keys/x509-CA-A".into());
        let status = Status::from(ApiError::from(failure));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(
            status.message(),
            "the CA could not issue the certificate; see the server log"
        );
        let refused = sigil_ca::CaError::CsrSignatureInvalid;
        let status = Status::from(ApiError::from(refused));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "csr: CSR signature is invalid");
    }

    #[test]
    fn a_backend_failure_hides_its_text() {
        let status = Status::from(ApiError::from(sigil_store::Error::Backend(
            "SELECT secret FROM agents".into(),
        )));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "datastore failure; see the server log");
    }

    #[test]
    fn an_agent_refusal_carries_the_typed_reason() {
        let status = Status::from(ApiError::agent_denied(
            DeniedReason::AgentBanned,
            "agent spiffe://example.org/a is banned",
        ));
        assert_eq!(status.code(), Code::PermissionDenied);
        assert_eq!(status.message(), "agent spiffe://example.org/a is banned");
        assert!(sigil_proto::denied::is_banned(&status));
        let plain = Status::from(ApiError::permission_denied("agent x is banned"));
        assert!(!sigil_proto::denied::is_banned(&plain));
    }
}
