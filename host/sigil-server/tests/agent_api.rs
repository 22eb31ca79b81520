//! The agent-facing API over loopback TLS, in process: join-token attestation, a reused
//! token, BatchNewX509SVID and NewJWTSVID for authorized and unauthorized entries, a banned
//! agent, admin and downstream callers, two servers on one PostgreSQL database, and many
//! attestations at once (`load`).

#![expect(
    clippy::expect_used,
    reason = "test helpers outside #[test] functions: a failed setup step must fail the test"
)]

use std::time::Duration;

use sigil_proto::spire::api::server::agent::v1 as agentv1;
use sigil_proto::spire::api::server::svid::v1 as svid;
use sigil_proto::spire::api::types as wire;
use sigil_testkit::certs::csr_der;
use sigil_testkit::conf::postgres_data_store;
use sigil_testkit::postgres::Schema;
use tonic::transport::Channel;

#[path = "agent_api/ca_failure.rs"]
mod ca_failure;
mod common;
mod harness;
#[path = "agent_api/load.rs"]
mod load;
mod renewal;

use common::{attest, channel};
use harness::{Harness, cli, create_entry, create_entry_with, start, token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_attest_with_a_join_token_and_get_only_authorized_svids() {
    let Attested {
        harness:
            Harness {
                server,
                socket,
                address,
                ..
            },
        token,
        agent_id,
        bundle,
        identity,
        _dir,
    } = attested_agent().await;

    // The token works once.
    let other_key = rcgen::KeyPair::generate().expect("key");
    let reused = attest(channel(address, &bundle, None).await, &token, &other_key)
        .await
        .expect_err("a used token is refused");
    assert_eq!(reused.code(), tonic::Code::PermissionDenied, "{reused}");

    // Entries: one for this agent, one for another.
    let mine = create_entry(&socket, "spiffe://example.org/web", &agent_id).await;
    let theirs = create_entry(
        &socket,
        "spiffe://example.org/db",
        "spiffe://example.org/spire/agent/join_token/someone-else",
    )
    .await;

    let identity = Some(identity);
    let mut svids =
        svid::svid_client::SvidClient::new(channel(address, &bundle, identity.clone()).await);
    let workload_key = rcgen::KeyPair::generate().expect("workload key");
    let csr = csr_der(&workload_key);
    let mut results = Vec::new();
    for _ in 0..50 {
        // The cache follows the datastore's event log: give it a moment for the entries.
        results = svids
            .batch_new_x509svid(svid::BatchNewX509svidRequest {
                params: vec![
                    svid::NewX509svidParams {
                        entry_id: mine.clone(),
                        csr: csr.clone(),
                    },
                    svid::NewX509svidParams {
                        entry_id: theirs.clone(),
                        csr: csr.clone(),
                    },
                ],
            })
            .await
            .expect("batch")
            .into_inner()
            .results;
        if results[0].status.as_ref().is_some_and(|s| s.code == 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = |i: usize| results[i].status.clone().expect("status");
    assert_eq!(status(0).code, 0, "{:?}", status(0));
    assert_eq!(
        results[0]
            .svid
            .as_ref()
            .and_then(|s| s.id.as_ref())
            .map(|id| id.path.as_str()),
        Some("/web")
    );
    assert_eq!(status(1).code, tonic::Code::PermissionDenied as i32);
    assert!(
        status(1).message.contains("spiffe://example.org/db"),
        "{}",
        status(1).message
    );

    // Without an SVID, BatchNewX509SVID is refused.
    let mut anonymous = svid::svid_client::SvidClient::new(channel(address, &bundle, None).await);
    let refused = anonymous
        .batch_new_x509svid(svid::BatchNewX509svidRequest { params: vec![] })
        .await
        .expect_err("anonymous");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    // PostStatus stores the agent's version, which `agent show` prints as SPIRE does; an
    // overlong one is refused.
    let mut agents =
        agentv1::agent_client::AgentClient::new(channel(address, &bundle, identity.clone()).await);
    agents
        .post_status(agentv1::PostStatusRequest {
            current_bundle_serial: 1,
            agent_version: "1.14.0".into(),
        })
        .await
        .expect("PostStatus");
    let (code, out) = cli(&socket, &["agent", "show", "-spiffeID", &agent_id]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Agent version     : 1.14.0\n"), "{out}");
    let long = agents
        .post_status(agentv1::PostStatusRequest {
            current_bundle_serial: 1,
            agent_version: "v".repeat(256),
        })
        .await
        .expect_err("an overlong version");
    assert_eq!(long.code(), tonic::Code::InvalidArgument, "{long}");

    // WIT-SVIDs are not issued: Unimplemented, as SPIRE with its wit-svid flag off.
    let wit = svids
        .batch_new_witsvid(svid::BatchNewWitsvidRequest { params: vec![] })
        .await
        .expect_err("no WIT-SVIDs");
    assert_eq!(wit.code(), tonic::Code::Unimplemented, "{wit}");

    // A banned agent is refused.
    let (code, out) = cli(&socket, &["agent", "ban", "-spiffeID", &agent_id]).await;
    assert_eq!(code, 0, "{out}");
    let mut banned = None;
    for _ in 0..50 {
        match svids
            .batch_new_x509svid(svid::BatchNewX509svidRequest { params: vec![] })
            .await
        {
            Err(status) => {
                banned = Some(status);
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let banned = banned.expect("the ban reaches the cache");
    assert_eq!(banned.code(), tonic::Code::PermissionDenied);
    assert!(banned.message().contains("banned"), "{banned}");
    server.shutdown();
}

/// An X509-SVID for `entry_id` through the agent's BatchNewX509SVID, once the cache has the
/// entry: the chain and the new key (PKCS#8 DER).
async fn svid_for(
    svids: &mut svid::svid_client::SvidClient<Channel>,
    entry_id: &str,
) -> (Vec<Vec<u8>>, Vec<u8>) {
    let key = rcgen::KeyPair::generate().expect("key");
    let csr = csr_der(&key);
    for _ in 0..50 {
        let mut results = svids
            .batch_new_x509svid(svid::BatchNewX509svidRequest {
                params: vec![svid::NewX509svidParams {
                    entry_id: entry_id.to_owned(),
                    csr: csr.clone(),
                }],
            })
            .await
            .expect("batch")
            .into_inner()
            .results;
        if let Some(svid) = results.pop().and_then(|r| r.svid) {
            return (svid.cert_chain, key.serialize_der());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no SVID for entry {entry_id}");
}

/// A server in a temporary directory with one agent attested by a join token.
struct Attested {
    harness: Harness,
    token: String,
    agent_id: String,
    /// The bundle as PEM, which the agent trusts.
    bundle: String,
    /// The agent's SVID chain and key (PKCS#8 DER).
    identity: (Vec<Vec<u8>>, Vec<u8>),
    _dir: tempfile::TempDir,
}

async fn attested_agent() -> Attested {
    let dir = tempfile::tempdir().expect("tempdir");
    let harness = start(dir.path(), &harness::sqlite(dir.path())).await;
    let token = token(&harness.socket).await;
    let (code, bundle) = cli(&harness.socket, &["bundle", "show"]).await;
    assert_eq!(code, 0, "{bundle}");
    let key = rcgen::KeyPair::generate().expect("agent key");
    let svid = attest(channel(harness.address, &bundle, None).await, &token, &key)
        .await
        .expect("attested");
    let agent_id = format!("spiffe://example.org/spire/agent/join_token/{token}");
    assert_eq!(
        svid.id.as_ref().map(|id| id.path.as_str()),
        Some(format!("/spire/agent/join_token/{token}").as_str()),
        "the agent ID is SPIRE's join_token form"
    );
    Attested {
        harness,
        token,
        agent_id,
        bundle,
        identity: (svid.cert_chain, key.serialize_der()),
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_downstream_and_jwt_calls_follow_the_callers_entries() {
    use sigil_proto::spire::api::server::bundle::v1 as bundle_api;
    use sigil_proto::spire::api::server::entry::v1 as entry_api;

    let Attested {
        harness:
            Harness {
                server,
                socket,
                address,
                ..
            },
        agent_id,
        bundle,
        identity: agent_identity,
        _dir,
        ..
    } = attested_agent().await;
    let agent_identity = Some(agent_identity);

    let web = create_entry(&socket, "spiffe://example.org/web", &agent_id).await;
    let theirs = create_entry(
        &socket,
        "spiffe://example.org/db",
        "spiffe://example.org/spire/agent/join_token/someone-else",
    )
    .await;
    let admin =
        create_entry_with(&socket, "spiffe://example.org/ops", &agent_id, &["-admin"]).await;
    let nested = create_entry_with(
        &socket,
        "spiffe://example.org/nested-server",
        &agent_id,
        &["-downstream"],
    )
    .await;
    let agent_channel = channel(address, &bundle, agent_identity).await;
    let mut svids = svid::svid_client::SvidClient::new(agent_channel.clone());
    let web_identity = Some(svid_for(&mut svids, &web).await);
    let admin_identity = Some(svid_for(&mut svids, &admin).await);
    let nested_identity = Some(svid_for(&mut svids, &nested).await);

    // NewJWTSVID: for an authorized entry only.
    let jwt = svids
        .new_jwtsvid(svid::NewJwtsvidRequest {
            entry_id: web.clone(),
            audience: vec!["db".into()],
        })
        .await
        .expect("NewJWTSVID")
        .into_inner()
        .svid
        .expect("svid");
    assert_eq!(jwt.id.as_ref().map(|id| id.path.as_str()), Some("/web"));
    assert_eq!(jwt.token.split('.').count(), 3, "{}", jwt.token);
    let refused = svids
        .new_jwtsvid(svid::NewJwtsvidRequest {
            entry_id: theirs,
            audience: vec!["db".into()],
        })
        .await
        .expect_err("not authorized");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    assert!(
        refused.message().contains("spiffe://example.org/db"),
        "{refused}"
    );
    // A compromised agent cannot make the server sign megabyte tokens.
    let oversized = svids
        .new_jwtsvid(svid::NewJwtsvidRequest {
            entry_id: web.clone(),
            audience: vec!["a".repeat(1 << 20)],
        })
        .await
        .expect_err("a 1 MiB audience");
    assert_eq!(oversized.code(), tonic::Code::InvalidArgument);
    assert!(
        oversized
            .message()
            .contains("audience[0]: 1048576 bytes, at most 4096"),
        "{oversized}"
    );
    let too_many = svids
        .new_jwtsvid(svid::NewJwtsvidRequest {
            entry_id: web.clone(),
            audience: vec!["db".into(); 33],
        })
        .await
        .expect_err("33 audiences");
    assert_eq!(too_many.code(), tonic::Code::InvalidArgument);
    assert!(too_many.message().contains("33 audiences"), "{too_many}");
    let no_audience = svids
        .new_jwtsvid(svid::NewJwtsvidRequest {
            entry_id: web,
            audience: vec![],
        })
        .await
        .expect_err("no audience");
    assert_eq!(no_audience.code(), tonic::Code::InvalidArgument);

    // Admin calls over TCP: the admin entry's SVID may list entries; the agent and a plain
    // workload may not.
    let list = |channel: Channel| async move {
        entry_api::entry_client::EntryClient::new(channel)
            .list_entries(entry_api::ListEntriesRequest::default())
            .await
    };
    let listed = list(channel(address, &bundle, admin_identity.clone()).await)
        .await
        .expect("an admin lists entries over TCP")
        .into_inner();
    let on_socket = list(harness::admin_channel(&socket).await)
        .await
        .expect("list on the admin socket")
        .into_inner();
    assert_eq!(listed.entries.len(), 4);
    assert_eq!(listed, on_socket, "the same answer on TCP as on the socket");
    for (who, channel) in [
        ("agent", agent_channel.clone()),
        (
            "workload",
            channel(address, &bundle, web_identity.clone()).await,
        ),
    ] {
        let refused = list(channel).await.expect_err(who);
        assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{who}");
        assert!(refused.message().contains("not an admin"), "{refused}");
    }
    let anonymous = list(channel(address, &bundle, None).await)
        .await
        .expect_err("anonymous");
    assert_eq!(anonymous.code(), tonic::Code::Unauthenticated);

    // GetBundle is public on TCP.
    let public =
        bundle_api::bundle_client::BundleClient::new(channel(address, &bundle, None).await)
            .get_bundle(bundle_api::GetBundleRequest::default())
            .await
            .expect("GetBundle without an SVID")
            .into_inner();
    assert_eq!(public.trust_domain, "example.org");

    // NewDownstreamX509CA: a CA certificate for the downstream entry's SVID only.
    let ca_key = rcgen::KeyPair::generate().expect("downstream CA key");
    let ca_csr = csr_der(&ca_key);
    let downstream = svid::svid_client::SvidClient::new(
        channel(address, &bundle, nested_identity.clone()).await,
    )
    .new_downstream_x509ca(svid::NewDownstreamX509caRequest {
        csr: ca_csr.clone(),
        preferred_ttl: 3600,
    })
    .await
    .expect("NewDownstreamX509CA")
    .into_inner();
    let (_, ca) = x509_parser::parse_x509_certificate(&downstream.ca_cert_chain[0]).expect("DER");
    assert!(ca.is_ca(), "the downstream certificate is a CA");
    let authorities: Vec<String> = downstream
        .x509_authorities
        .iter()
        .map(|der| {
            x509_parser::parse_x509_certificate(der)
                .expect("authority")
                .1
                .subject()
                .to_string()
        })
        .collect();
    assert!(
        authorities.contains(&ca.issuer().to_string()),
        "issued by one of {authorities:?}"
    );
    let validity = ca.validity().time_to_expiration().expect("valid now");
    assert!(validity.whole_seconds() <= 3600, "{validity:?}");
    let refused = svids
        .new_downstream_x509ca(svid::NewDownstreamX509caRequest {
            csr: ca_csr,
            preferred_ttl: 0,
        })
        .await
        .expect_err("the agent is not a downstream server");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    assert!(
        refused.message().contains("not a downstream server"),
        "{refused}"
    );

    // PublishJWTAuthority: the downstream server's key joins the bundle.
    let published_key = rcgen::KeyPair::generate().expect("JWT key");
    let published = bundle_api::bundle_client::BundleClient::new(
        channel(address, &bundle, nested_identity).await,
    )
    .publish_jwt_authority(bundle_api::PublishJwtAuthorityRequest {
        jwt_authority: Some(wire::JwtKey {
            public_key: rcgen::PublicKeyData::subject_public_key_info(&published_key),
            key_id: "nested-1".into(),
            expires_at: 4_000_000_000,
            ..wire::JwtKey::default()
        }),
    })
    .await
    .expect("PublishJWTAuthority")
    .into_inner();
    assert!(
        published
            .jwt_authorities
            .iter()
            .any(|k| k.key_id == "nested-1"),
        "{:?}",
        published.jwt_authorities
    );
    let refused =
        bundle_api::bundle_client::BundleClient::new(channel(address, &bundle, web_identity).await)
            .publish_jwt_authority(bundle_api::PublishJwtAuthorityRequest {
                jwt_authority: None,
            })
            .await
            .expect_err("a workload is not a downstream server");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_batch_is_minted_on_every_core_and_answered_in_order() {
    let Attested {
        harness:
            Harness {
                server,
                socket,
                address,
                ..
            },
        agent_id,
        bundle,
        identity,
        _dir,
        ..
    } = attested_agent().await;
    let web = create_entry(&socket, "spiffe://example.org/web", &agent_id).await;
    let api = create_entry(&socket, "spiffe://example.org/api", &agent_id).await;
    let theirs = create_entry(
        &socket,
        "spiffe://example.org/db",
        "spiffe://example.org/spire/agent/join_token/someone-else",
    )
    .await;
    let mut svids =
        svid::svid_client::SvidClient::new(channel(address, &bundle, Some(identity)).await);
    // Wait until the cache has both entries.
    svid_for(&mut svids, &web).await;
    svid_for(&mut svids, &api).await;

    let csr = csr_der(&rcgen::KeyPair::generate().expect("key"));
    // Well over the parallel threshold, with refusals and a bad CSR spread through it.
    let expected: Vec<Option<&str>> = (0..150)
        .map(|i| match i % 5 {
            0 | 3 => Some("/web"),
            1 => Some("/api"),
            _ => None,
        })
        .collect();
    let params = (0..150)
        .map(|i| svid::NewX509svidParams {
            entry_id: match i % 5 {
                0 | 3 | 4 => web.clone(),
                1 => api.clone(),
                _ => theirs.clone(),
            },
            csr: if i % 5 == 4 {
                b"not a CSR".to_vec()
            } else {
                csr.clone()
            },
        })
        .collect();
    let results = svids
        .batch_new_x509svid(svid::BatchNewX509svidRequest { params })
        .await
        .expect("batch")
        .into_inner()
        .results;
    assert_eq!(results.len(), 150);
    for (i, (result, expected)) in results.iter().zip(&expected).enumerate() {
        let code = result.status.as_ref().map(|s| s.code);
        let path = result
            .svid
            .as_ref()
            .and_then(|s| s.id.as_ref())
            .map(|id| id.path.as_str());
        match (i % 5, expected) {
            (_, Some(want)) => {
                assert_eq!((code, path), (Some(0), Some(*want)), "item {i}");
            }
            (2, None) => assert_eq!(code, Some(tonic::Code::PermissionDenied as i32), "item {i}"),
            (_, None) => assert_eq!(code, Some(tonic::Code::InvalidArgument as i32), "item {i}"),
        }
    }
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_created_on_one_server_reaches_an_agent_of_another_within_a_second() {
    let schema = Schema::create("sigil_ha");
    let store = postgres_data_store(&schema.store_url());
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let a = start(dir_a.path(), &store).await;
    let b = start(dir_b.path(), &store).await;

    // The agent attests to server B with a token from B, trusting B's view of the bundle
    // (which holds both servers' CAs).
    let (code, bundle) = cli(&b.socket, &["bundle", "show"]).await;
    assert_eq!(code, 0, "{bundle}");
    assert_eq!(
        bundle.matches("BEGIN CERTIFICATE").count(),
        2,
        "both servers' CAs are in the shared bundle"
    );
    let key = rcgen::KeyPair::generate().expect("agent key");
    let token = token(&b.socket).await;
    let svid = attest(channel(b.address, &bundle, None).await, &token, &key)
        .await
        .expect("attested to B");
    let agent_id = format!("spiffe://example.org/spire/agent/join_token/{token}");
    let mut entries = sigil_proto::spire::api::server::entry::v1::entry_client::EntryClient::new(
        channel(
            b.address,
            &bundle,
            Some((svid.cert_chain, key.serialize_der())),
        )
        .await,
    );
    let authorized =
        |entries: &mut sigil_proto::spire::api::server::entry::v1::entry_client::EntryClient<
            Channel,
        >| {
            let mut entries = entries.clone();
            async move {
                entries
                    .get_authorized_entries(
                        sigil_proto::spire::api::server::entry::v1::GetAuthorizedEntriesRequest {
                            output_mask: None,
                        },
                    )
                    .await
                    .expect("authorized entries")
                    .into_inner()
                    .entries
            }
        };
    assert!(authorized(&mut entries).await.is_empty());

    // Created on A; seen through B.
    let started = std::time::Instant::now();
    let id = create_entry(&a.socket, "spiffe://example.org/web", &agent_id).await;
    let elapsed = loop {
        if authorized(&mut entries).await.iter().any(|e| e.id == id) {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the entry never reached server B"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    println!("entry created on A visible to an agent of B after {elapsed:?}");
    a.server.shutdown();
    b.server.shutdown();
    drop(schema);
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
}

/// The refusals of the calling agent carry SPIRE's typed reason, which the agent decides on:
/// an evicted agent may attest again (AGENT_NOT_ATTESTED), a banned one may not
/// (AGENT_BANNED). The messages stay as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_of_the_calling_agent_carry_spires_typed_reason() {
    use sigil_proto::denied::{DeniedReason, denied_reason, is_banned, should_reattest};

    let Attested {
        harness:
            Harness {
                server,
                socket,
                address,
                ..
            },
        agent_id,
        bundle,
        identity,
        _dir,
        ..
    } = attested_agent().await;
    let svids = svid::svid_client::SvidClient::new(channel(address, &bundle, Some(identity)).await);
    let call = |mut svids: svid::svid_client::SvidClient<Channel>| async move {
        svids
            .batch_new_x509svid(svid::BatchNewX509svidRequest { params: vec![] })
            .await
    };

    let (code, out) = cli(&socket, &["agent", "ban", "-spiffeID", &agent_id]).await;
    assert_eq!(code, 0, "{out}");
    let mut banned = None;
    for _ in 0..50 {
        match call(svids.clone()).await {
            Err(status) => {
                banned = Some(status);
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let banned = banned.expect("the ban reaches the cache");
    assert_eq!(banned.code(), tonic::Code::PermissionDenied, "{banned}");
    assert_eq!(banned.message(), format!("agent {agent_id} is banned"));
    assert_eq!(denied_reason(&banned), Some(DeniedReason::AgentBanned));
    assert!(is_banned(&banned) && !should_reattest(&banned));

    let (code, out) = cli(&socket, &["agent", "evict", "-spiffeID", &agent_id]).await;
    assert_eq!(code, 0, "{out}");
    let mut evicted = None;
    for _ in 0..50 {
        match call(svids.clone()).await {
            Err(status) if !is_banned(&status) => {
                evicted = Some(status);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let evicted = evicted.expect("the eviction reaches the cache");
    assert_eq!(evicted.code(), tonic::Code::PermissionDenied, "{evicted}");
    assert_eq!(
        evicted.message(),
        format!("{agent_id} is not an attested agent")
    );
    assert_eq!(
        denied_reason(&evicted),
        Some(DeniedReason::AgentNotAttested)
    );
    assert!(should_reattest(&evicted));
    server.shutdown();
}
