//! The agent's bounded SVID caches, seen from a workload: `jwt_svid_cache_max_size` (LRU,
//! hard), audience limits, and `x509_svid_cache_max_size` (soft: a subscriber always gets
//! its SVIDs).

use std::time::Duration;

use sigil_proto::workload::JwtsvidRequest;
use sigil_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use tonic::transport::Channel;

use crate::common::{Agent, JoinTokenSetup, agent_conf_extra, fetch_x509, uds_channel};

/// The token of the workload's one JWT-SVID for `audience`.
#[expect(
    clippy::expect_used,
    reason = "test helper: a constant header always parses"
)]
async fn fetch_jwt(
    client: &mut SpiffeWorkloadApiClient<Channel>,
    audience: &str,
) -> Result<String, tonic::Status> {
    let mut request = tonic::Request::new(JwtsvidRequest {
        audience: vec![audience.to_owned()],
        spiffe_id: String::new(),
    });
    request
        .metadata_mut()
        .insert("workload.spiffe.io", "true".parse().expect("header"));
    let mut svids = client.fetch_jwtsvid(request).await?.into_inner().svids;
    assert_eq!(svids.len(), 1, "one SPIFFE ID, one JWT-SVID");
    Ok(svids.remove(0).svid)
}

/// `agent.conf` for `setup` in `dir` with `extra` in the `agent` block.
#[expect(
    clippy::expect_used,
    reason = "test helper: a failed write must fail the test"
)]
fn write_conf(dir: &std::path::Path, setup: &JoinTokenSetup, extra: &str) -> std::path::PathBuf {
    let conf = dir.join("agent.conf");
    let bundle = format!(
        "trust_bundle_path = \"{}\"",
        dir.join("bootstrap.pem").display()
    );
    std::fs::write(
        &conf,
        agent_conf_extra(dir, setup.server.address.port(), &bundle, extra),
    )
    .expect("write config");
    conf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_jwt_svid_cache_stays_at_its_bound_and_oversized_audiences_are_refused() {
    const MAX: usize = 8;
    let dir = tempfile::tempdir().expect("tempdir");
    let setup = JoinTokenSetup::start(dir.path()).await;
    let conf = write_conf(
        dir.path(),
        &setup,
        &format!("jwt_svid_cache_max_size = {MAX}"),
    );
    let socket = dir.path().join("agent.sock");
    let mut agent = Agent::start(&conf, Some(&setup.token), dir.path(), "jwt-cache");
    fetch_x509(&socket, &mut agent).await;
    let mut client = SpiffeWorkloadApiClient::new(uds_channel(&socket).await);
    // Distinct audiences near the largest size allowed.
    let audience = |name: String| format!("{name}-{}", "x".repeat(4000));

    let mut first = Vec::new();
    for i in 0..MAX {
        first.push(
            fetch_jwt(&mut client, &audience(format!("a{i}")))
                .await
                .expect("JWT-SVID"),
        );
    }
    // A second later, a newly minted token differs from the first (its `iat` does).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for (i, token) in first.iter().enumerate() {
        let again = fetch_jwt(&mut client, &audience(format!("a{i}")))
            .await
            .expect("JWT-SVID");
        assert_eq!(
            &again, token,
            "a{i}: within the bound the cached token is served"
        );
    }

    // Many more distinct audiences than the bound push the first ones out...
    for i in 0..(4 * MAX) {
        fetch_jwt(&mut client, &audience(format!("b{i}")))
            .await
            .expect("JWT-SVID");
    }
    // ...so a repeat gets a new token, which is then cached in turn.
    let renewed = fetch_jwt(&mut client, &audience("a0".into()))
        .await
        .expect("JWT-SVID");
    assert_ne!(renewed, first[0], "an evicted token is minted again");
    let cached = fetch_jwt(&mut client, &audience("a0".into()))
        .await
        .expect("JWT-SVID");
    assert_eq!(cached, renewed);

    // Oversized audiences: InvalidArgument naming the limit and the value.
    for (bytes, text) in [
        (
            4097,
            "audience[0]: 4097 bytes, at most 4096 bytes per audience",
        ),
        (
            1 << 20,
            "audience[0]: 1048576 bytes, at most 4096 bytes per audience",
        ),
    ] {
        let refused = fetch_jwt(&mut client, &"y".repeat(bytes))
            .await
            .expect_err("oversized audience");
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
        assert!(refused.message().contains(text), "{refused:?}");
    }
    assert!(agent.running(), "{}", agent.log());
    agent.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn x509_svids_stay_within_x509_svid_cache_max_size_and_a_subscriber_gets_its_own() {
    const MAX: usize = 2;
    const OTHERS: u32 = 6;
    let dir = tempfile::tempdir().expect("tempdir");
    let setup = JoinTokenSetup::start(dir.path()).await;
    // Entries for uids that never connect: the agent may hold SVIDs for MAX of all entries.
    for i in 0..OTHERS {
        setup
            .server
            .cli_out(&[
                "entry",
                "create",
                "-spiffeID",
                &format!("spiffe://example.org/other-{i}"),
                "-parentID",
                &setup.agent_id,
                "-selector",
                &format!("unix:uid:{}", setup.uid + 1 + i),
            ])
            .await;
    }
    let conf = write_conf(
        dir.path(),
        &setup,
        &format!("x509_svid_cache_max_size = {MAX}"),
    );
    std::fs::write(
        &conf,
        std::fs::read_to_string(&conf)
            .expect("read config")
            .replace("log_level = \"INFO\"", "log_level = \"DEBUG\""),
    )
    .expect("write config");
    let socket = dir.path().join("agent.sock");
    let mut agent = Agent::start(&conf, Some(&setup.token), dir.path(), "x509-cache");

    // The workload gets its SVID whether or not it was among those minted ahead.
    let fetched = fetch_x509(&socket, &mut agent).await;
    assert_eq!(fetched.ids, ["spiffe://example.org/workload"]);
    // Two more syncs: every published cache held at most MAX SVIDs of the 7 entries.
    tokio::time::sleep(sigil_agent::SYNC_INTERVAL * 2).await;
    let again = fetch_x509(&socket, &mut agent).await;
    assert_eq!(again.ids, ["spiffe://example.org/workload"]);
    let log = agent.log();
    let held: Vec<usize> = log
        .lines()
        .filter(|line| line.contains("X509-SVIDs held"))
        .filter_map(|line| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix("svids="))
                .and_then(|n| n.parse().ok())
        })
        .collect();
    assert!(!held.is_empty(), "{log}");
    assert!(held.iter().all(|&n| n <= MAX), "{held:?}: {log}");
    assert!(
        log.lines()
            .any(|line| line.contains("X509-SVIDs held") && line.contains("entries=7")),
        "{log}"
    );
    agent.stop();
}
