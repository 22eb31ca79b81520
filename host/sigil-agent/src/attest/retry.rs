//! Node attestation at start, retried with backoff while the failure may pass: the server
//! is down or unreachable, overloaded (`Unavailable`, `ResourceExhausted`), too slow
//! (`DeadlineExceeded`), or the agent's own node attestor plugin is saturated.
//!
//! A refusal that retrying cannot change ends it at once: `PermissionDenied` (an invalid,
//! expired or used join token, a banned agent), `InvalidArgument`, a server certificate the
//! bootstrap bundle does not trust. The timing is SPIRE's agent's (`pkg/agent/agent.go`,
//! which has no setting for it): the first retry after 5 s, each wait 1.5 times the last
//! with ±10 % jitter, and no attempt that would start more than a minute after the first
//! failure. A `grpc-retry-pushback-ms` hint from the server lengthens a wait, never
//! shortens it.

use std::time::Duration;

use sigil_plugins::NodeAttestorAgent;
use tokio::time::Instant;
use tonic::Code;

use crate::client::ServerClient;
use crate::error::AgentError;
use crate::storage::AgentSvid;

/// The wait before the first retry.
const FIRST_WAIT: Duration = Duration::from_secs(5);
/// Each wait is this many times the last (SPIRE's backoff multiplier).
const GROWTH: f64 = 1.5;
/// Waits vary by this fraction either way.
const JITTER: f64 = 0.1;
/// No attempt starts later than this after the first failure.
const GIVE_UP_AFTER: Duration = Duration::from_secs(60);

/// Attests the node with `plugin`, retrying what may pass.
pub(crate) async fn attest_retrying(
    client: &ServerClient,
    plugin: &NodeAttestorAgent,
) -> Result<AgentSvid, AgentError> {
    let mut failures: u32 = 0;
    let mut first_failure = None;
    loop {
        let error = match super::attest(client, plugin).await {
            Ok(svid) => {
                if failures > 0 {
                    tracing::info!(
                        attempts = failures + 1,
                        "node attestation succeeded after retrying"
                    );
                }
                return Ok(svid);
            }
            Err(error) => error,
        };
        let Some(hint) = retryable(&error) else {
            if failures > 0 && refused_token(&error, plugin) {
                tracing::error!(error = %error, attempts = failures + 1, "the server refused the join token after an earlier attempt failed; that attempt may have spent it on the server (a join token works once): generate a new token");
            }
            return Err(error);
        };
        failures = failures.saturating_add(1);
        let since = *first_failure.get_or_insert_with(Instant::now);
        let wait = backoff(failures, jitter()).max(hint);
        if since.elapsed() + wait > GIVE_UP_AFTER {
            tracing::error!(error = %error, attempts = failures, "node attestation failed; giving up");
            return Err(error);
        }
        tracing::warn!(error = %error, attempt = failures, retry_in_ms = wait.as_millis(), "node attestation failed; retrying");
        // A fresh connection for the next attempt: the last one may be broken.
        client.reconnect();
        tokio::time::sleep(wait).await;
    }
}

/// `Some(hint)` when `error` may pass on retry (the server's pushback, or zero), `None`
/// when retrying cannot change it.
fn retryable(error: &AgentError) -> Option<Duration> {
    match error {
        AgentError::Server { status, .. } => {
            if tls_refusal(status) {
                return None;
            }
            let transient = matches!(
                status.code(),
                Code::Unavailable | Code::ResourceExhausted | Code::DeadlineExceeded
            );
            // A status the transport made (a refused or broken connection) has the
            // transport's error as its source; one the server sent has none.
            let transport = std::error::Error::source(status.as_ref()).is_some()
                && !matches!(
                    status.code(),
                    Code::PermissionDenied | Code::InvalidArgument | Code::Unauthenticated
                );
            (transient || transport)
                .then(|| sigil_proto::retry::retry_pushback(status).unwrap_or_default())
        }
        AgentError::Plugin { source, .. } if source.is_saturated() => Some(Duration::ZERO),
        _ => None,
    }
}

/// Whether the connection failed because TLS refused the peer (the server's certificate
/// is not trusted by the bundle, or names another SPIFFE ID): no retry changes that.
fn tls_refusal(status: &tonic::Status) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(error) = next {
        if error.is::<rustls::Error>() {
            return true;
        }
        // An I/O error's source skips the error it wraps: look at that one too.
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
        {
            return true;
        }
        next = error.source();
    }
    false
}

/// Whether the server refused the join token itself.
fn refused_token(error: &AgentError, plugin: &NodeAttestorAgent) -> bool {
    plugin.name() == "join_token"
        && matches!(error, AgentError::Server { status, .. } if status.code() == Code::PermissionDenied)
}

/// The wait after `failures` failed attempts, `jitter` in `-1.0..=1.0` scaling the ±10 %;
/// never more than [`GIVE_UP_AFTER`].
fn backoff(failures: u32, jitter: f64) -> Duration {
    let exponent = i32::try_from(failures.saturating_sub(1))
        .unwrap_or(i32::MAX)
        .min(32);
    let base = FIRST_WAIT.as_secs_f64() * GROWTH.powi(exponent);
    let seconds = base * (1.0 + JITTER * jitter.clamp(-1.0, 1.0));
    Duration::try_from_secs_f64(seconds)
        .unwrap_or(GIVE_UP_AFTER)
        .min(GIVE_UP_AFTER)
}

/// A uniform random number in `-1.0..=1.0` (0 when the system generator fails).
fn jitter() -> f64 {
    let mut bytes = [0u8; 4];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        return 0.0;
    }
    f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX) * 2.0 - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(status: tonic::Status) -> AgentError {
        AgentError::server("AttestAgent", status)
    }

    #[test]
    fn waits_grow_by_half_from_five_seconds_within_the_jitter() {
        assert_eq!(backoff(1, 0.0), Duration::from_secs(5));
        assert_eq!(backoff(2, 0.0), Duration::from_millis(7500));
        assert_eq!(backoff(3, 0.0), Duration::from_millis(11250));
        assert_eq!(backoff(1, 1.0), Duration::from_millis(5500));
        assert_eq!(backoff(1, -1.0), Duration::from_millis(4500));
        assert_eq!(backoff(u32::MAX, 0.0), GIVE_UP_AFTER);
        for _ in 0..100 {
            assert!((-1.0..=1.0).contains(&jitter()));
        }
    }

    #[test]
    fn only_what_may_pass_is_retried() {
        for code in [
            Code::Unavailable,
            Code::ResourceExhausted,
            Code::DeadlineExceeded,
        ] {
            let error = server(tonic::Status::new(code, "busy"));
            assert_eq!(retryable(&error), Some(Duration::ZERO), "{code:?}");
        }
        let hinted = server(sigil_proto::retry::unavailable_retry_after(
            "busy",
            Duration::from_secs(7),
        ));
        assert_eq!(retryable(&hinted), Some(Duration::from_secs(7)));
        for code in [
            Code::PermissionDenied,
            Code::InvalidArgument,
            Code::Internal,
            Code::Unauthenticated,
        ] {
            let error = server(tonic::Status::new(code, "no"));
            assert_eq!(retryable(&error), None, "{code:?}");
        }
        let bad = AgentError::bad("AttestAgent", "empty response");
        assert_eq!(retryable(&bad), None);
    }

    #[test]
    fn a_refused_connection_is_retried_and_an_untrusted_server_is_not() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let status = tonic::Status::from_error(Box::new(refused));
        assert_eq!(retryable(&server(status)), Some(Duration::ZERO));

        let untrusted = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let status = tonic::Status::from_error(Box::new(untrusted));
        assert!(tls_refusal(&status));
        assert_eq!(retryable(&server(status)), None);
    }
}
