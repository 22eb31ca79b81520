//! The retry hint of a refusal for want of capacity: `Unavailable` with gRPC's
//! `grpc-retry-pushback-ms` trailer (gRFC A6, "gRPC Retry Design").
//!
//! A client whose service config has a retry policy for `UNAVAILABLE` (grpc-go, grpc-core,
//! grpc-java) waits the pushback before its next attempt instead of its own backoff; other
//! clients see a plain `Unavailable` and may read the trailer themselves, as the agent does
//! with [`retry_pushback`]. The alternative, `google.rpc.RetryInfo` in
//! `grpc-status-details-bin`, would need the `google.rpc` protos and no gRPC library acts on
//! it by itself.

use std::time::Duration;

use tonic::Status;
use tonic::metadata::MetadataValue;

/// The trailer's name.
pub const RETRY_PUSHBACK: &str = "grpc-retry-pushback-ms";

/// `Unavailable` with `message`, telling the client to retry after `after`.
pub fn unavailable_retry_after(message: impl Into<String>, after: Duration) -> Status {
    let mut status = Status::unavailable(message);
    set_retry_pushback(&mut status, after);
    status
}

/// Adds the pushback `after` to `status` (whole milliseconds, at most `i32::MAX` as gRFC A6
/// has it).
pub fn set_retry_pushback(status: &mut Status, after: Duration) {
    let millis = i32::try_from(after.as_millis()).unwrap_or(i32::MAX);
    status
        .metadata_mut()
        .insert(RETRY_PUSHBACK, MetadataValue::from(millis));
}

/// The pushback a server sent with `status`; `None` without one or when it is not a
/// non-negative number of milliseconds (a negative one means "do not retry" in gRFC A6).
pub fn retry_pushback(status: &Status) -> Option<Duration> {
    let value = status.metadata().get(RETRY_PUSHBACK)?.to_str().ok()?;
    let millis: u64 = value.trim().parse().ok()?;
    Some(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pushback_round_trips_and_rejects_what_is_not_a_count_of_milliseconds() {
        let status = unavailable_retry_after("busy", Duration::from_millis(1500));
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(
            status
                .metadata()
                .get(RETRY_PUSHBACK)
                .and_then(|v| v.to_str().ok()),
            Some("1500")
        );
        assert_eq!(retry_pushback(&status), Some(Duration::from_millis(1500)));
        assert_eq!(retry_pushback(&Status::unavailable("no hint")), None);
        for bad in ["-1", "soon", ""] {
            let mut status = Status::unavailable("x");
            status.metadata_mut().insert(
                RETRY_PUSHBACK,
                bad.parse()
                    .unwrap_or_else(|_| MetadataValue::from_static("x")),
            );
            assert_eq!(retry_pushback(&status), None, "{bad:?}");
        }
        let mut huge = Status::unavailable("x");
        set_retry_pushback(&mut huge, Duration::from_secs(u64::MAX));
        assert_eq!(
            retry_pushback(&huge),
            Some(Duration::from_millis(i32::MAX.unsigned_abs().into()))
        );
    }
}
