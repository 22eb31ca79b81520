//! AttestAgent under load: many agents at once, most with tokens that do not exist, over
//! real TLS connections. Every valid token attests (plugin calls beyond the pool queue for
//! a slot); the invalid ones are refused as the caller's fault, without an ERROR line each.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Semaphore;

use super::common::{attest, channel};
use super::harness::{cli, sqlite, start, token};

/// Calls in flight at once, twice the plugin host's default pool of 32 instances.
const CONCURRENCY: usize = 64;
const VALID: usize = 20;
const INVALID: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_attestations_admit_every_valid_token_and_log_no_error_per_refusal() {
    let log = capture_warnings();
    let dir = tempfile::tempdir().expect("tempdir");
    let harness = start(dir.path(), &sqlite(dir.path())).await;
    let (code, bundle) = cli(&harness.socket, &["bundle", "show"]).await;
    assert_eq!(code, 0, "{bundle}");
    let mut tokens = Vec::new();
    for _ in 0..VALID {
        tokens.push((token(&harness.socket).await, true));
    }
    tokens.extend((0..INVALID).map(|_| (uuid::Uuid::new_v4().to_string(), false)));
    // Valid tokens spread among the invalid ones, so they meet the pool at its fullest.
    tokens.sort_by(|a, b| a.0.cmp(&b.0));

    let gate = Arc::new(Semaphore::new(CONCURRENCY));
    let bundle = Arc::new(bundle);
    let calls: Vec<_> = tokens
        .into_iter()
        .map(|(token, valid)| {
            let (gate, bundle, address) = (gate.clone(), bundle.clone(), harness.address);
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.expect("gate");
                let key = rcgen::KeyPair::generate().expect("agent key");
                let result = attest(channel(address, &bundle, None).await, &token, &key).await;
                (token, valid, result)
            })
        })
        .collect();
    let mut refused_invalid = 0;
    for call in calls {
        let (token, valid, result) = call.await.expect("call task");
        match (valid, result) {
            (true, Ok(svid)) => assert_eq!(
                svid.id.map(|id| id.path),
                Some(format!("/spire/agent/join_token/{token}"))
            ),
            (true, Err(status)) => panic!("valid token {token} refused: {status:?}"),
            (false, Ok(_)) => panic!("a random token {token} attested"),
            (false, Err(status)) => {
                assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
                refused_invalid += 1;
            }
        }
    }
    assert_eq!(refused_invalid, INVALID);
    let (code, agents) = cli(&harness.socket, &["agent", "count"]).await;
    assert_eq!(code, 0, "{agents}");
    assert_eq!(agents.trim(), format!("{VALID} attested agents"));
    harness.server.shutdown();

    let log = log.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let log = String::from_utf8_lossy(&log);
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(
        errors.is_empty(),
        "{} ERROR lines: {errors:#?}",
        errors.len()
    );
}

/// Installs this test binary's subscriber: WARN and ERROR events, as text, into the buffer
/// returned.
fn capture_warnings() -> Arc<Mutex<Vec<u8>>> {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let writer = {
        let buffer = buffer.clone();
        move || Capture(buffer.clone())
    };
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(writer)
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    buffer
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
