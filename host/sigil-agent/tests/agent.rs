//! The agent as a real process against an in-process server on loopback: the `sigil-agent`
//! binary is started from an `agent.conf`; the server (`sigil_server::Server` with its admin
//! socket and agent API on a loopback port, SQLite) runs in the test process so the test can
//! stop its agent API. Workloads are the test process itself, through the `spiffe` crate.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

mod common;
#[path = "agent/load.rs"]
mod load;

use common::{
    AGENT, Agent, BundleSite, JoinTokenSetup, Server, WAIT, X509popAgent, agent_conf, fetch_x509,
    uds_channel, unix_now, verify_chain,
};

#[path = "agent/caches.rs"]
mod caches;

#[path = "agent/k8s_psat.rs"]
mod k8s_psat;

// === the tests ===

#[test]
fn validate_accepts_a_good_config_and_refuses_a_bad_one_with_64() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.conf");
    std::fs::write(
        &good,
        agent_conf(dir.path(), 8081, "trust_bundle_path = \"/b.pem\""),
    )
    .expect("write");
    let out = Command::new(AGENT)
        .args(["validate", "-config"])
        .arg(&good)
        .output()
        .expect("run");
    assert!(out.status.success(), "{out:?}");

    let bad = dir.path().join("bad.conf");
    let text = agent_conf(dir.path(), 8081, "trust_bundle_path = \"/b.pem\"")
        .replace("server_port = 8081", "server_port = \"x\"");
    std::fs::write(&bad, text).expect("write");
    let out = Command::new(AGENT)
        .args(["validate", "-config"])
        .arg(&bad)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.conf:") && err.contains("server_port"),
        "{err}"
    );

    let out = Command::new(AGENT)
        .args(["run", "-config"])
        .arg(&good)
        .arg("-nope")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(64), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_bootstrap_bundle_is_downloaded_from_trust_bundle_url_over_https() {
    let dir = tempfile::tempdir().expect("tempdir");
    let JoinTokenSetup {
        server,
        token,
        bundle_pem,
        ..
    } = JoinTokenSetup::start(dir.path()).await;
    let web = BundleSite::start(dir.path(), bundle_pem.into_bytes()).await;
    let conf = |path: &str| {
        let conf = dir
            .path()
            .join(format!("agent{}.conf", path.replace('/', "-")));
        std::fs::write(
            &conf,
            agent_conf(
                dir.path(),
                server.address.port(),
                &format!(
                    "trust_bundle_url = \"https://127.0.0.1:{}{path}\"",
                    web.port
                ),
            ),
        )
        .expect("write config");
        conf
    };

    // A URL that answers 404: the agent stops naming it, and the token is not spent.
    let missing = conf("/missing");
    let out = tokio::task::spawn_blocking({
        let (token, ca) = (token.clone(), web.ca.clone());
        move || {
            Command::new(AGENT)
                .args(["run", "-config"])
                .arg(&missing)
                .args(["-joinToken", &token])
                .env("SSL_CERT_FILE", &ca)
                .output()
                .expect("run")
        }
    })
    .await
    .expect("join");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/missing") && err.contains("HTTP 404"),
        "{err}"
    );

    // Without the site's CA among the roots the download is refused too.
    let bundle_conf = conf("/bundle");
    let out = tokio::task::spawn_blocking({
        let (token, conf) = (token.clone(), bundle_conf.clone());
        move || {
            Command::new(AGENT)
                .args(["run", "-config"])
                .arg(&conf)
                .args(["-joinToken", &token])
                .env_remove("SSL_CERT_FILE")
                .output()
                .expect("run")
        }
    })
    .await
    .expect("join");
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    // With it, the agent bootstraps from the download, attests and serves.
    let mut agent = Agent::start_with_env(
        &bundle_conf,
        Some(&token),
        dir.path(),
        "url",
        &[("SSL_CERT_FILE", web.ca.as_os_str())],
    );
    let fetched = fetch_x509(&dir.path().join("agent.sock"), &mut agent).await;
    assert_eq!(fetched.ids, ["spiffe://example.org/workload"]);
    agent.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_workload_gets_its_svids_through_the_agent_and_keeps_them_across_restarts_and_outages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let JoinTokenSetup {
        mut server,
        token,
        agent_id,
        bundle_pem,
        uid,
    } = JoinTokenSetup::start(dir.path()).await;
    // An entry for a selector this process does not have: never served to it.
    server
        .cli_out(&[
            "entry",
            "create",
            "-spiffeID",
            "spiffe://example.org/someone-else",
            "-parentID",
            &agent_id,
            "-selector",
            &format!("unix:uid:{}", uid + 1),
        ])
        .await;

    let conf = JoinTokenSetup::write_conf(dir.path(), &server);
    let socket = dir.path().join("agent.sock");
    let mut agent = Agent::start(&conf, Some(&token), dir.path(), "first");

    // X509-SVID through the `spiffe` crate, verified against the server's bundle.
    let first = fetch_x509(&socket, &mut agent).await;
    assert_eq!(first.ids, ["spiffe://example.org/workload"]);
    let roots = pem::parse_many(&bundle_pem).expect("bundle PEM");
    verify_chain(&first.chain, &roots);

    // JWT-SVID through the crate, validated by the agent and independently against the
    // server's JWT authorities.
    let client = spiffe::WorkloadApiClient::connect_to(&format!("unix:{}", socket.display()))
        .await
        .expect("connect");
    let jwt = client
        .fetch_jwt_svid(["svc"], None)
        .await
        .expect("JWT-SVID");
    assert_eq!(jwt.spiffe_id().to_string(), "spiffe://example.org/workload");
    let validated = client
        .validate_jwt_token("svc", jwt.token())
        .await
        .expect("the agent validates it");
    assert_eq!(
        validated.spiffe_id().to_string(),
        "spiffe://example.org/workload"
    );
    let jwks = server
        .cli_out(&["bundle", "show", "-format", "spiffe"])
        .await;
    let server_bundle =
        sigil_types::Bundle::from_jwks("example.org".parse().expect("td"), &jwks).expect("JWKS");
    let checked = sigil_ca::validate_jwt_svid(jwt.token(), &server_bundle, "svc", unix_now())
        .expect("the JWT-SVID verifies against the server's bundle");
    assert_eq!(checked.spiffe_id.as_str(), "spiffe://example.org/workload");

    // The same through the binary's `spire-agent` CLI.
    let out = Command::new(AGENT)
        .args(["api", "fetch", "x509", "-socketPath"])
        .arg(&socket)
        .output()
        .expect("run the CLI");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        printed.contains("spiffe://example.org/workload"),
        "{printed}"
    );

    // On disk: the key 0600 in a 0700 directory.
    let data = dir.path().join("agent-data");
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(
        mode(&data.join(sigil_agent::storage::AGENT_KEY_FILE)),
        0o600
    );
    assert!(data.join(sigil_agent::storage::AGENT_SVID_FILE).exists());
    assert!(data.join(sigil_agent::storage::BUNDLE_FILE).exists());

    // Restart: the stored SVID is reused. The join token is spent, so an attempt to attest
    // again would fail and the agent would exit.
    agent.stop();
    let mut agent = Agent::start(&conf, Some(&token), dir.path(), "second");
    let second = fetch_x509(&socket, &mut agent).await;
    assert_eq!(second.ids, ["spiffe://example.org/workload"]);
    let log = agent.log();
    assert!(log.contains("reusing the stored agent SVID"), "{log}");
    assert!(!log.contains("node attested"), "{log}");
    let agents = server.cli_out(&["agent", "list"]).await;
    assert_eq!(agents.matches("join_token/").count(), 1, "{agents}");

    // The server's agent API goes away: the workload keeps getting the cached SVID.
    server.stop_agent_api();
    tokio::time::sleep(sigil_agent::SYNC_INTERVAL * 2).await;
    assert!(agent.running(), "{}", agent.log());
    let cached = fetch_x509(&socket, &mut agent).await;
    assert_eq!(cached.chain, second.chain);
    let log = agent.log();
    assert_eq!(
        log.matches("sync with the server failed").count(),
        1,
        "one warning per failure streak: {log}"
    );
    agent.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_evicted_join_token_agent_removes_its_svid_and_stops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let JoinTokenSetup {
        server,
        token,
        agent_id,
        ..
    } = JoinTokenSetup::start(dir.path()).await;
    let conf = JoinTokenSetup::write_conf(dir.path(), &server);
    let socket = dir.path().join("agent.sock");
    let mut agent = Agent::start(&conf, Some(&token), dir.path(), "evicted");
    fetch_x509(&socket, &mut agent).await;

    server
        .cli_out(&["agent", "evict", "-spiffeID", &agent_id])
        .await;
    let status = agent.wait_exit(WAIT + sigil_agent::SYNC_INTERVAL);
    assert_eq!(status.code(), Some(1), "{}", agent.log());
    let log = agent.log();
    assert!(
        log.contains("no longer accepts agent") && log.contains("new token"),
        "{log}"
    );
    let data = dir.path().join("agent-data");
    assert!(!data.join(sigil_agent::storage::AGENT_SVID_FILE).exists());
    assert!(!data.join(sigil_agent::storage::AGENT_KEY_FILE).exists());
    assert!(
        !socket.exists(),
        "the socket is removed when the agent stops"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_large_authorized_set_is_synced_by_revision_fetching_only_changed_entries() {
    use sigil_proto::spire::api::server::entry::v1 as entry_api;
    use sigil_proto::spire::api::types as wire;
    // Above the server's full-sync limit (10,000): revisions first, then entries by ID.
    const ENTRIES: usize = 10_050;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path()).await;
    let token = server.token().await;
    let bundle_path = dir.path().join("bootstrap.pem");
    std::fs::write(&bundle_path, server.cli_out(&["bundle", "show"]).await).expect("write");
    let agent_id = format!("spiffe://example.org/spire/agent/join_token/{token}");
    let uid = std::fs::metadata("/proc/self").expect("proc").uid();
    let mut admin = entry_api::entry_client::EntryClient::new(uds_channel(&server.socket).await);
    let parent = wire::Spiffeid {
        trust_domain: "example.org".into(),
        path: format!("/spire/agent/join_token/{token}"),
    };
    let mut first_id = String::new();
    for chunk in (0..ENTRIES).collect::<Vec<_>>().chunks(1_000) {
        let results = admin
            .batch_create_entry(entry_api::BatchCreateEntryRequest {
                entries: chunk
                    .iter()
                    .map(|i| wire::Entry {
                        spiffe_id: Some(wire::Spiffeid {
                            trust_domain: "example.org".into(),
                            path: format!("/bulk/{i}"),
                        }),
                        parent_id: Some(parent.clone()),
                        selectors: vec![wire::Selector {
                            r#type: "unix".into(),
                            value: format!(
                                "uid:{}",
                                if *i == 0 {
                                    uid
                                } else {
                                    100_000 + u32::try_from(*i).expect("small")
                                }
                            ),
                        }],
                        ..wire::Entry::default()
                    })
                    .collect(),
                output_mask: None,
            })
            .await
            .expect("BatchCreateEntry")
            .into_inner()
            .results;
        assert!(
            results
                .iter()
                .all(|r| r.status.as_ref().is_some_and(|s| s.code == 0))
        );
        if first_id.is_empty() {
            first_id = results[0].entry.as_ref().expect("entry").id.clone();
        }
    }
    let conf = dir.path().join("agent.conf");
    std::fs::write(
        &conf,
        agent_conf(
            dir.path(),
            server.address.port(),
            &format!("trust_bundle_path = \"{}\"", bundle_path.display()),
        )
        .replace("log_level = \"INFO\"", "log_level = \"DEBUG\""),
    )
    .expect("write config");
    let socket = dir.path().join("agent.sock");
    let mut agent = Agent::start(&conf, Some(&token), dir.path(), "bulk");
    let first = fetch_x509(&socket, &mut agent).await;
    assert_eq!(first.ids, ["spiffe://example.org/bulk/0"]);
    let syncs = |log: &str, fetched: usize| {
        let fields = [format!("revisions={ENTRIES}"), format!("fetched={fetched}")];
        log.lines().any(|line| {
            line.contains("synced by revision")
                && fields
                    .iter()
                    .all(|f| line.split_whitespace().any(|w| w == f))
        })
    };
    assert!(
        syncs(&agent.log(), ENTRIES),
        "the first sync fetches every entry: {}",
        agent.log()
    );

    // One entry changes: the next syncs fetch that one only, and its workload gets the
    // new SVID (a changed entry gets a new one).
    server
        .cli_out(&[
            "entry",
            "update",
            "-entryID",
            &first_id,
            "-spiffeID",
            "spiffe://example.org/bulk/renamed",
            "-parentID",
            &agent_id,
            "-selector",
            &format!("unix:uid:{uid}"),
        ])
        .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let fetched = fetch_x509(&socket, &mut agent).await;
        if fetched.ids == ["spiffe://example.org/bulk/renamed"] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", agent.log());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        syncs(&agent.log(), 1),
        "a later sync fetches the changed entry only: {}",
        agent.log()
    );
    // The next sync, with nothing changed, fetches nothing.
    let deadline = tokio::time::Instant::now() + sigil_agent::SYNC_INTERVAL * 3;
    while !syncs(&agent.log(), 0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "an unchanged set fetches nothing: {}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bootstrap_bundle_of_another_ca_refuses_the_server_and_spends_no_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path()).await;
    let token = server.token().await;
    let other_key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let other = params.self_signed(&other_key).expect("other CA");
    let bundle_path = dir.path().join("other.pem");
    std::fs::write(&bundle_path, other.pem()).expect("write");
    let conf = dir.path().join("agent.conf");
    std::fs::write(
        &conf,
        agent_conf(
            dir.path(),
            server.address.port(),
            &format!("trust_bundle_path = \"{}\"", bundle_path.display()),
        ),
    )
    .expect("write config");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(AGENT)
            .args(["run", "-config"])
            .arg(&conf)
            .args(["-joinToken", &token])
            .output()
            .expect("run")
    })
    .await
    .expect("join");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("AttestAgent"), "{err}");
    let agents = server.cli_out(&["agent", "list"]).await;
    assert!(!agents.contains("join_token/"), "{agents}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn x509pop_with_insecure_bootstrap_attests_over_challenges_and_drops_a_deleted_entry() {
    // Renewal of the agent SVID (here by attesting again, as x509pop is reattestable) runs
    // on a paused clock in `src/sync/tests.rs` instead of waiting for a short-lived SVID.
    let dir = tempfile::tempdir().expect("tempdir");
    let X509popAgent {
        server,
        mut agent,
        agent_id,
        socket,
        entry_id,
    } = X509popAgent::start(dir.path(), "").await;
    let first = fetch_x509(&socket, &mut agent).await;
    assert_eq!(first.ids, ["spiffe://example.org/node-workload"]);
    let log = agent.log();
    assert!(log.contains(&agent_id), "{log}");
    assert!(log.contains("insecure_bootstrap"), "{log}");
    let stored = std::fs::read_to_string(
        dir.path()
            .join("agent-data")
            .join(sigil_agent::storage::AGENT_SVID_FILE),
    )
    .expect("stored SVID");
    assert!(stored.contains(&agent_id), "{stored}");
    // x509pop can prove the node again: the agent is reattestable (so it renews by
    // attesting, as SPIRE's does).
    assert!(log.contains("reattestable=true"), "{log}");

    // A deleted entry's SVID is dropped at the next sync: the workload has no identity.
    server
        .cli_out(&["entry", "delete", "-entryID", &entry_id])
        .await;
    let client = spiffe::WorkloadApiClient::connect_to(&format!("unix:{}", socket.display()))
        .await
        .expect("connect");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match client.fetch_x509_context().await {
            Ok(_) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the SVID stayed: {}",
                    agent.log()
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(error) => {
                assert!(error.to_string().contains("no identity issued"), "{error}");
                break;
            }
        }
    }
    agent.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_evicted_x509pop_agent_attests_again_and_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let X509popAgent {
        server,
        mut agent,
        agent_id,
        socket,
        ..
    } = X509popAgent::start(dir.path(), "").await;
    fetch_x509(&socket, &mut agent).await;
    // Evicted, it attests again on its own and goes on serving.
    server
        .cli_out(&["agent", "evict", "-spiffeID", &agent_id])
        .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !agent.log().contains("node attested again") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no re-attestation: {}",
            agent.log()
        );
        assert!(agent.running(), "{}", agent.log());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let agents = server.cli_out(&["agent", "list"]).await;
    assert!(agents.contains(&agent_id), "{agents}");
    let after = fetch_x509(&socket, &mut agent).await;
    assert_eq!(after.ids, ["spiffe://example.org/node-workload"]);
    agent.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_banned_x509pop_agent_does_not_attest_again_and_stops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let X509popAgent {
        server,
        mut agent,
        agent_id,
        socket,
        ..
    } = X509popAgent::start(dir.path(), "").await;
    fetch_x509(&socket, &mut agent).await;
    // Unlike an eviction, a ban (the server's typed AGENT_BANNED reason) is final: no new
    // attestation, the SVID is removed and the agent stops.
    server
        .cli_out(&["agent", "ban", "-spiffeID", &agent_id])
        .await;
    let status = agent.wait_exit(WAIT + sigil_agent::SYNC_INTERVAL);
    assert_eq!(status.code(), Some(1), "{}", agent.log());
    let log = agent.log();
    assert!(
        log.contains("no longer accepts agent") && log.contains("is banned"),
        "{log}"
    );
    assert!(!log.contains("attesting again"), "{log}");
    let data = dir.path().join("agent-data");
    assert!(!data.join(sigil_agent::storage::AGENT_SVID_FILE).exists());
}
