//! SPIRE's typed reason for refusing an agent: `spire.api.types.PermissionDeniedDetails` as a
//! gRPC status detail.
//!
//! SPIRE's server attaches it to a PermissionDenied (`pkg/common/errorutil`
//! `PermissionDenied`: grpc-go's `Status.WithDetails`) when the caller's agent SVID is expired,
//! the agent is not attested, its SVID is not the active one, it is banned, or it asked to renew
//! but must attest again. SPIRE's agent decides from the reason, never from the message
//! (`pkg/common/nodeutil` `ShouldAgentReattest`, `ShouldAgentShutdown`). On the wire the
//! detail travels in the `grpc-status-details-bin` trailer: an encoded `google.rpc.Status`
//! whose `details` hold the message as a `google.protobuf.Any`.

use prost::Message;
use tonic::{Code, Status};

use crate::spire::api::types::PermissionDeniedDetails;
pub use crate::spire::api::types::permission_denied_details::Reason as DeniedReason;

/// The full name of the detail message; the `Any` type URL ends with it.
const DETAILS_NAME: &str = "spire.api.types.PermissionDeniedDetails";

/// `google.rpc.Status` (googleapis `google/rpc/status.proto`): the message gRPC carries,
/// encoded, in `grpc-status-details-bin`. Its code and message repeat the status's own, as
/// grpc-go checks.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    /// A `google.rpc.Code` value.
    #[prost(int32, tag = "1")]
    code: i32,
    /// The status message.
    #[prost(string, tag = "2")]
    message: String,
    /// The details, each an `Any`.
    #[prost(message, repeated, tag = "3")]
    details: Vec<prost_types::Any>,
}

/// PermissionDenied with `message` and the typed `reason`, as SPIRE's server sends it.
pub fn permission_denied(reason: DeniedReason, message: impl Into<String>) -> Status {
    let message = message.into();
    let details = RpcStatus {
        code: Code::PermissionDenied as i32,
        message: message.clone(),
        details: vec![prost_types::Any {
            type_url: format!("type.googleapis.com/{DETAILS_NAME}"),
            value: PermissionDeniedDetails {
                reason: reason as i32,
            }
            .encode_to_vec(),
        }],
    };
    Status::with_details(
        Code::PermissionDenied,
        message,
        details.encode_to_vec().into(),
    )
}

/// The typed reason of a PermissionDenied `status`; `None` for any other code, or when the
/// status carries no readable `PermissionDeniedDetails` (an older server, another detail).
/// A reason number this build does not know reads as [`DeniedReason::Unknown`].
pub fn denied_reason(status: &Status) -> Option<DeniedReason> {
    if status.code() != Code::PermissionDenied || status.details().is_empty() {
        return None;
    }
    let details = RpcStatus::decode(status.details()).ok()?;
    details
        .details
        .iter()
        // As grpc-go resolves an `Any`: by the name after the type URL's last '/'.
        .filter(|any| any.type_url.rsplit('/').next() == Some(DETAILS_NAME))
        .find_map(|any| PermissionDeniedDetails::decode(any.value.as_slice()).ok())
        .map(|d| DeniedReason::try_from(d.reason).unwrap_or(DeniedReason::Unknown))
}

/// Whether the server refused the agent because it is banned (SPIRE's agent shuts down and
/// does not attest again).
pub fn is_banned(status: &Status) -> bool {
    denied_reason(status) == Some(DeniedReason::AgentBanned)
}

/// Whether the server refused the agent in a way that attesting again can mend: SVID
/// expired, not attested (evicted), SVID not the active one, or renewal refused for a
/// re-attestable agent (SPIRE's `ShouldAgentReattest`).
pub fn should_reattest(status: &Status) -> bool {
    matches!(
        denied_reason(status),
        Some(
            DeniedReason::AgentExpired
                | DeniedReason::AgentNotAttested
                | DeniedReason::AgentNotActive
                | DeniedReason::AgentMustReattest
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_detail_is_encoded_as_grpc_go_encodes_it() {
        let status = permission_denied(DeniedReason::AgentBanned, "x");
        assert_eq!(status.code(), Code::PermissionDenied);
        assert_eq!(status.message(), "x");
        // google.rpc.Status { code = 1: 7, message = 2: "x", details = 3: Any { type_url = 1,
        // value = 2: PermissionDeniedDetails { reason = 1: 4 } } }, written out by hand.
        let url = b"type.googleapis.com/spire.api.types.PermissionDeniedDetails";
        let mut any = vec![0x0a, u8::try_from(url.len()).unwrap()];
        any.extend_from_slice(url);
        any.extend_from_slice(&[0x12, 0x02, 0x08, 0x04]);
        let mut expected = vec![0x08, 0x07, 0x12, 0x01, b'x', 0x1a];
        expected.push(u8::try_from(any.len()).unwrap());
        expected.extend_from_slice(&any);
        assert_eq!(status.details(), expected.as_slice());
    }

    #[test]
    fn each_reason_round_trips_and_decides_as_spire_agent_does() {
        use DeniedReason::*;
        for (reason, banned, reattest) in [
            (Unknown, false, false),
            (AgentExpired, false, true),
            (AgentNotAttested, false, true),
            (AgentNotActive, false, true),
            (AgentBanned, true, false),
            (AgentMustReattest, false, true),
        ] {
            let status = permission_denied(reason, "refused");
            assert_eq!(denied_reason(&status), Some(reason));
            assert_eq!(is_banned(&status), banned, "{reason:?}");
            assert_eq!(should_reattest(&status), reattest, "{reason:?}");
        }
    }

    #[test]
    fn no_reason_without_the_typed_detail_whatever_the_message_says() {
        for status in [
            Status::permission_denied("agent spiffe://example.org/a is banned"),
            Status::new(Code::PermissionDenied, ""),
            Status::with_details(Code::PermissionDenied, "banned", vec![0xff, 0x01].into()),
        ] {
            assert_eq!(denied_reason(&status), None, "{status:?}");
            assert!(!is_banned(&status));
        }
        // Another code with the detail's bytes: not a refusal of the agent.
        let banned = permission_denied(DeniedReason::AgentBanned, "banned");
        let other =
            Status::with_details(Code::Internal, "banned", banned.details().to_vec().into());
        assert_eq!(denied_reason(&other), None);
        // Another detail type with the same bytes.
        let foreign = RpcStatus {
            code: Code::PermissionDenied as i32,
            message: "banned".into(),
            details: vec![prost_types::Any {
                type_url: "type.googleapis.com/google.rpc.ErrorInfo".into(),
                value: vec![0x08, 0x04],
            }],
        };
        let status = Status::with_details(
            Code::PermissionDenied,
            "banned",
            foreign.encode_to_vec().into(),
        );
        assert!(!is_banned(&status));
    }
}
