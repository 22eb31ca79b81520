//! The agent under load and at a bad start: thousands of Workload API streams at once from a
//! caller that has an entry, and node attestation while the server is down.

use std::path::Path;
use std::time::{Duration, Instant};

use sigil_proto::workload::X509svidRequest;
use sigil_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use sigil_testkit::ports::ReservedPort;

use super::common::{Agent, JoinTokenSetup, WAIT, agent_conf, fetch_x509, uds_channel};

const STREAMS: usize = 2_000;
const CONNECTIONS: usize = 10;

/// Every stream attests its caller through the `unix` plugin: far more calls at once than
/// the plugin host has instances. They queue for one; none is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_thousand_streams_over_ten_connections_each_get_the_callers_svid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let setup = JoinTokenSetup::start(dir.path()).await;
    let conf = JoinTokenSetup::write_conf(dir.path(), &setup.server);
    let socket = dir.path().join("agent.sock");
    let mut agent = Agent::start(&conf, Some(&setup.token), dir.path(), "load");
    let first = fetch_x509(&socket, &mut agent).await;
    assert_eq!(first.ids, ["spiffe://example.org/workload"]);

    let mut channels = Vec::new();
    for _ in 0..CONNECTIONS {
        channels.push(uds_channel(&socket).await);
    }
    let started = Instant::now();
    let streams: Vec<_> = (0..STREAMS)
        .map(|i| {
            let channel = channels[i % CONNECTIONS].clone();
            tokio::spawn(async move {
                let mut request = tonic::Request::new(X509svidRequest {});
                request
                    .metadata_mut()
                    .insert("workload.spiffe.io", "true".parse().expect("header"));
                let mut stream = SpiffeWorkloadApiClient::new(channel)
                    .fetch_x509svid(request)
                    .await?
                    .into_inner();
                let first = stream.message().await?;
                Ok::<_, tonic::Status>(first.map(|response| {
                    response
                        .svids
                        .into_iter()
                        .map(|svid| svid.spiffe_id)
                        .collect::<Vec<_>>()
                }))
            })
        })
        .collect();
    let mut failures = Vec::new();
    for stream in streams {
        match stream.await.expect("stream task") {
            Ok(Some(ids)) => assert_eq!(ids, ["spiffe://example.org/workload"]),
            Ok(None) => failures.push("the stream ended without a message".to_owned()),
            Err(status) => failures.push(format!("{:?}: {}", status.code(), status.message())),
        }
    }
    let elapsed = started.elapsed();
    if !failures.is_empty() {
        let log = agent.log();
        let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN")).take(5).collect();
        panic!(
            "{} of {STREAMS} streams failed, first: {:?}; agent warnings: {warnings:#?}",
            failures.len(),
            failures.first()
        );
    }
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");
    assert!(agent.running(), "{}", agent.log());
    agent.stop();
}

/// The server is down when the agent starts: it retries attestation with backoff and
/// serves once the server is up. A join token the server already took is refused at once:
/// no retry, a prompt exit naming the refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn attestation_is_retried_until_the_server_is_up_but_a_used_token_is_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let setup = JoinTokenSetup::start(dir.path()).await;
    // The agent dials a port nobody listens on yet (held, so that nobody else takes it).
    let reserved = ReservedPort::new();
    let port = reserved.port();
    let conf = write_conf(dir.path(), port);
    let socket = dir.path().join("agent.sock");
    let mut agent = Agent::start(&conf, Some(&setup.token), dir.path(), "early");
    wait_for_log(&mut agent, "node attestation failed; retrying").await;

    setup.server.serve_agents_on(reserved.listen());
    let fetched = fetch_x509(&socket, &mut agent).await;
    assert_eq!(fetched.ids, ["spiffe://example.org/workload"]);
    let log = agent.log();
    assert!(
        log.contains("node attestation succeeded after retrying"),
        "{log}"
    );
    agent.stop();

    // The token is spent: a second agent with it gives up at the first refusal.
    let second = dir.path().join("second");
    std::fs::create_dir(&second).expect("second dir");
    std::fs::copy(
        dir.path().join("bootstrap.pem"),
        second.join("bootstrap.pem"),
    )
    .expect("copy bundle");
    let conf = write_conf(&second, port);
    let mut late = Agent::start(&conf, Some(&setup.token), &second, "late");
    let started = Instant::now();
    let status = late.wait_exit(Duration::from_secs(20));
    let log = late.log();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(started.elapsed() < Duration::from_secs(10), "{log}");
    assert!(log.contains("server call AttestAgent failed"), "{log}");
    assert!(log.contains("already used"), "{log}");
    assert!(!log.contains("retrying"), "{log}");
}

/// `agent.conf` in `dir` for a server at `port`, bootstrapping from `dir/bootstrap.pem`.
#[expect(
    clippy::expect_used,
    reason = "test helper: a failed setup step must fail the test"
)]
fn write_conf(dir: &Path, port: u16) -> std::path::PathBuf {
    let conf = dir.join("agent.conf");
    let bundle = format!(
        "trust_bundle_path = \"{}\"",
        dir.join("bootstrap.pem").display()
    );
    std::fs::write(&conf, agent_conf(dir, port, &bundle)).expect("write config");
    conf
}

/// Waits until the agent's log has `line`.
async fn wait_for_log(agent: &mut Agent, line: &str) {
    let deadline = Instant::now() + WAIT;
    while !agent.log().contains(line) {
        assert!(agent.running(), "the agent exited: {}", agent.log());
        assert!(Instant::now() < deadline, "no {line:?} in: {}", agent.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
