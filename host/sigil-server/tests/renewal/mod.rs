//! Agent SVID renewal over real TLS connections: during the handover the old and the new
//! SVID both work; once the agent has used the new one, the old one is refused, and the
//! agent listing shows the new serial number and expiry.

use std::time::Duration;

use sigil_proto::spire::api::server::agent::v1 as agent_api;
use sigil_proto::spire::api::server::entry::v1 as entry_api;
use sigil_testkit::certs::csr_der;
use tonic::transport::Channel;

use super::common::channel;
use super::harness::{admin_channel, cli, create_entry};
use super::{Attested, attested_agent};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_hands_over_to_the_new_svid_and_then_refuses_the_old_one() {
    let Attested {
        harness,
        agent_id,
        bundle,
        identity,
        _dir,
        ..
    } = attested_agent().await;
    create_entry(&harness.socket, "spiffe://example.org/web", &agent_id).await;
    let old_serial = serial(&identity.0[0]);
    let old = channel(harness.address, &bundle, Some(identity.clone())).await;
    wait_for_entries(&old).await;

    let key = rcgen::KeyPair::generate().expect("key");
    let csr = csr_der(&key);
    let renewed = agent_api::agent_client::AgentClient::new(old.clone())
        .renew_agent(agent_api::RenewAgentRequest {
            params: Some(agent_api::AgentX509svidParams { csr }),
        })
        .await
        .expect("renew")
        .into_inner()
        .svid
        .expect("svid");
    let new_serial = serial(&renewed.cert_chain[0]);
    assert_ne!(new_serial, old_serial);

    // The handover: the old SVID still works until the new one is used.
    entries(&old)
        .await
        .expect("the old SVID before the new one is used");
    let shown = show(&harness.socket, &agent_id).await;
    assert_eq!(
        shown.x509svid_serial_number, old_serial,
        "not yet activated"
    );

    let new = channel(
        harness.address,
        &bundle,
        Some((renewed.cert_chain.clone(), key.serialize_der())),
    )
    .await;
    entries(&new).await.expect("the new SVID");

    // Once the new SVID is in use, the old one is refused, on the connection it already
    // had and on a new one.
    let reconnected = channel(harness.address, &bundle, Some(identity)).await;
    for old in [&old, &reconnected] {
        let refused = entries(old)
            .await
            .expect_err("the old SVID after the handover");
        assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused}");
        assert!(refused.message().contains(&old_serial), "{refused}");
    }
    entries(&new).await.expect("the new SVID keeps working");

    // GetAgent, ListAgents and `agent show` report the new SVID.
    let shown = show(&harness.socket, &agent_id).await;
    assert_eq!(shown.x509svid_serial_number, new_serial);
    assert_eq!(shown.x509svid_expires_at, renewed.expires_at);
    let listed = agent_api::agent_client::AgentClient::new(admin_channel(&harness.socket).await)
        .list_agents(agent_api::ListAgentsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .agents;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].x509svid_serial_number, new_serial);
    assert_eq!(listed[0].x509svid_expires_at, renewed.expires_at);
    let (code, out) = cli(
        &harness.socket,
        &["agent", "show", "-spiffeID", &agent_id, "-output", "json"],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&new_serial), "{out}");
    assert!(!out.contains(&old_serial), "{out}");
    assert!(out.contains(&renewed.expires_at.to_string()), "{out}");
    harness.server.shutdown();
}

/// GetAuthorizedEntries with the channel's SVID.
async fn entries(channel: &Channel) -> Result<usize, tonic::Status> {
    entry_api::entry_client::EntryClient::new(channel.clone())
        .get_authorized_entries(entry_api::GetAuthorizedEntriesRequest::default())
        .await
        .map(|r| r.into_inner().entries.len())
}

/// Waits until the cache has the agent's entry.
async fn wait_for_entries(channel: &Channel) {
    for _ in 0..50 {
        if entries(channel).await.expect("authorized entries") == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the entry never reached the cache");
}

/// The agent as GetAgent on the admin socket reports it.
async fn show(socket: &std::path::Path, agent_id: &str) -> sigil_proto::spire::api::types::Agent {
    let id = agent_id.parse::<sigil_types::SpiffeId>().expect("agent ID");
    agent_api::agent_client::AgentClient::new(admin_channel(socket).await)
        .get_agent(agent_api::GetAgentRequest {
            id: Some((&id).into()),
            output_mask: None,
        })
        .await
        .expect("get agent")
        .into_inner()
}

/// A certificate's serial number in decimal.
fn serial(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("certificate");
    cert.serial.to_str_radix(10)
}
