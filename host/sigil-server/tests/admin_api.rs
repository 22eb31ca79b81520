//! SPIRE's server API on the admin socket, driven with clients generated from sigil's .proto
//! files under SPIRE's package names (what spire-controller-manager and SPIRE's CLI do):
//! listing entries, federation relationships, bundle appends and updates, and bad input that
//! must be refused without changing anything.

#![expect(
    clippy::expect_used,
    reason = "test helpers outside #[test] functions: a failed setup step must fail the test"
)]

use sigil_proto::spire::api::server::agent::v1 as agent_api;
use sigil_proto::spire::api::server::bundle::v1 as bundle_api;
use sigil_proto::spire::api::server::entry::v1 as entry_api;
use sigil_proto::spire::api::server::svid::v1 as svid_api;
use sigil_proto::spire::api::server::trustdomain::v1 as td_api;
use sigil_proto::spire::api::types as wire;
use tonic::Code;
use tonic::transport::Channel;

mod harness;

mod entry_rules;

use harness::{Harness, admin_channel, cli, create_entry, start, token};
use wire::federation_relationship::BundleEndpointProfile as Profile;

fn relationship(trust_domain: &str, url: &str) -> wire::FederationRelationship {
    wire::FederationRelationship {
        trust_domain: trust_domain.into(),
        bundle_endpoint_url: url.into(),
        bundle_endpoint_profile: Some(Profile::HttpsWeb(wire::HttpsWebProfile {})),
        trust_domain_bundle: None,
    }
}

fn selector(kind: &str, value: &str) -> wire::Selector {
    wire::Selector {
        r#type: kind.into(),
        value: value.into(),
    }
}

fn id(path: &str) -> Option<wire::Spiffeid> {
    Some(wire::Spiffeid {
        trust_domain: "example.org".into(),
        path: path.into(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_clients_list_entries_and_manage_federation_and_bundles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Harness { server, socket, .. } = start(dir.path(), &harness::sqlite(dir.path())).await;
    let parent = "spiffe://example.org/spire/agent/join_token/node-1";
    let mut created = Vec::new();
    for name in ["a", "b", "c"] {
        created.push(create_entry(&socket, &format!("spiffe://example.org/{name}"), parent).await);
    }
    let channel = admin_channel(&socket).await;

    // ListEntries, two per page, as spire-controller-manager pages through them.
    let mut entries = entry_api::entry_client::EntryClient::new(channel.clone());
    let (mut listed, mut token) = (Vec::new(), String::new());
    loop {
        let page = entries
            .list_entries(entry_api::ListEntriesRequest {
                page_size: 2,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("ListEntries")
            .into_inner();
        assert!(page.entries.len() <= 2);
        listed.extend(page.entries);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let mut ids: Vec<String> = listed.iter().map(|e| e.id.clone()).collect();
    ids.sort();
    created.sort();
    assert_eq!(ids, created);

    // Federation relationships: create, get, list, update under a mask, delete.
    let mut trust_domains = td_api::trust_domain_client::TrustDomainClient::new(channel.clone());
    let results = trust_domains
        .batch_create_federation_relationship(td_api::BatchCreateFederationRelationshipRequest {
            federation_relationships: vec![
                relationship("other.org", "https://other.org/bundle"),
                relationship("example.org", "https://example.org/bundle"),
            ],
            output_mask: None,
        })
        .await
        .expect("BatchCreateFederationRelationship")
        .into_inner()
        .results;
    let codes: Vec<i32> = results
        .iter()
        .map(|r| r.status.as_ref().expect("status").code)
        .collect();
    assert_eq!(codes, [Code::Ok as i32, Code::InvalidArgument as i32]);
    assert!(
        results[1]
            .status
            .as_ref()
            .is_some_and(|s| s.message.contains("own trust domain")),
        "{results:?}"
    );
    let (code, shown) = cli(
        &socket,
        &["federation", "show", "-trustDomain", "other.org"],
    )
    .await;
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("https://other.org/bundle"), "{shown}");

    let mut moved = relationship("other.org", "https://bundles.other.org/v2");
    moved.bundle_endpoint_profile = None;
    let updated = trust_domains
        .batch_update_federation_relationship(td_api::BatchUpdateFederationRelationshipRequest {
            federation_relationships: vec![wire::FederationRelationship {
                bundle_endpoint_profile: Some(Profile::HttpsWeb(wire::HttpsWebProfile {})),
                ..moved
            }],
            input_mask: Some(wire::FederationRelationshipMask {
                bundle_endpoint_url: true,
                ..Default::default()
            }),
            output_mask: None,
        })
        .await
        .expect("BatchUpdateFederationRelationship")
        .into_inner()
        .results;
    assert_eq!(
        updated[0]
            .federation_relationship
            .as_ref()
            .map(|r| r.bundle_endpoint_url.as_str()),
        Some("https://bundles.other.org/v2"),
        "{updated:?}"
    );
    let fetched = trust_domains
        .get_federation_relationship(td_api::GetFederationRelationshipRequest {
            trust_domain: "other.org".into(),
            output_mask: Some(wire::FederationRelationshipMask::default()),
        })
        .await
        .expect("GetFederationRelationship")
        .into_inner();
    assert_eq!(fetched.trust_domain, "other.org");
    assert!(
        fetched.bundle_endpoint_url.is_empty(),
        "masked out: {fetched:?}"
    );
    let refresh = trust_domains
        .refresh_bundle(td_api::RefreshBundleRequest {
            trust_domain: "other.org".into(),
        })
        .await
        .expect_err("bundle endpoints are not fetched yet");
    assert_eq!(refresh.code(), Code::Unimplemented);
    let deleted = trust_domains
        .batch_delete_federation_relationship(td_api::BatchDeleteFederationRelationshipRequest {
            trust_domains: vec!["other.org".into()],
        })
        .await
        .expect("BatchDeleteFederationRelationship")
        .into_inner()
        .results;
    assert_eq!(deleted[0].status.as_ref().map(|s| s.code), Some(0));
    let listed = trust_domains
        .list_federation_relationships(td_api::ListFederationRelationshipsRequest::default())
        .await
        .expect("ListFederationRelationships")
        .into_inner();
    assert!(listed.federation_relationships.is_empty(), "{listed:?}");

    // AppendBundle adds an authority to the own bundle.
    let mut bundles = bundle_api::bundle_client::BundleClient::new(channel.clone());
    let before = bundles
        .get_bundle(bundle_api::GetBundleRequest::default())
        .await
        .expect("GetBundle")
        .into_inner();
    let extra = sigil_testkit::certs::self_signed_ca_der();
    let appended = bundles
        .append_bundle(bundle_api::AppendBundleRequest {
            x509_authorities: vec![wire::X509Certificate {
                asn1: extra.clone(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .expect("AppendBundle")
        .into_inner();
    assert_eq!(
        appended.x509_authorities.len(),
        before.x509_authorities.len() + 1
    );
    assert!(appended.x509_authorities.iter().any(|a| a.asn1 == extra));

    // BatchUpdateFederatedBundle copies only the masked fields.
    bundles
        .batch_create_federated_bundle(bundle_api::BatchCreateFederatedBundleRequest {
            bundle: vec![wire::Bundle {
                trust_domain: "other.org".into(),
                x509_authorities: vec![wire::X509Certificate {
                    asn1: sigil_testkit::certs::self_signed_ca_der(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            output_mask: None,
        })
        .await
        .expect("BatchCreateFederatedBundle");
    let updated = bundles
        .batch_update_federated_bundle(bundle_api::BatchUpdateFederatedBundleRequest {
            bundle: vec![wire::Bundle {
                trust_domain: "other.org".into(),
                refresh_hint: 300,
                ..Default::default()
            }],
            input_mask: Some(wire::BundleMask {
                refresh_hint: true,
                ..Default::default()
            }),
            output_mask: None,
        })
        .await
        .expect("BatchUpdateFederatedBundle")
        .into_inner()
        .results;
    let bundle = updated[0].bundle.as_ref().expect("updated bundle");
    assert_eq!(bundle.refresh_hint, 300);
    assert_eq!(
        bundle.x509_authorities.len(),
        1,
        "authorities kept: not in the mask"
    );
    server.shutdown();
}

/// Everything an admin can read back, to show that refused calls changed nothing.
#[derive(Debug, PartialEq)]
struct Snapshot {
    entries: Vec<wire::Entry>,
    bundle: wire::Bundle,
    federated: Vec<wire::Bundle>,
    relationships: Vec<wire::FederationRelationship>,
    agents: i32,
}

async fn snapshot(channel: &Channel) -> Snapshot {
    let mut entries = entry_api::entry_client::EntryClient::new(channel.clone())
        .list_entries(entry_api::ListEntriesRequest::default())
        .await
        .expect("ListEntries")
        .into_inner()
        .entries;
    entries.sort_by(|a, b| a.id.cmp(&b.id));
    let mut bundles = bundle_api::bundle_client::BundleClient::new(channel.clone());
    Snapshot {
        entries,
        bundle: bundles
            .get_bundle(bundle_api::GetBundleRequest::default())
            .await
            .expect("GetBundle")
            .into_inner(),
        federated: bundles
            .list_federated_bundles(bundle_api::ListFederatedBundlesRequest::default())
            .await
            .expect("ListFederatedBundles")
            .into_inner()
            .bundles,
        relationships: td_api::trust_domain_client::TrustDomainClient::new(channel.clone())
            .list_federation_relationships(td_api::ListFederationRelationshipsRequest::default())
            .await
            .expect("ListFederationRelationships")
            .into_inner()
            .federation_relationships,
        agents: agent_api::agent_client::AgentClient::new(channel.clone())
            .count_agents(agent_api::CountAgentsRequest::default())
            .await
            .expect("CountAgents")
            .into_inner()
            .count,
    }
}

/// The per-item status codes of a batch answer.
fn codes<'a>(statuses: impl IntoIterator<Item = Option<&'a wire::Status>>) -> Vec<Code> {
    statuses
        .into_iter()
        .map(|s| Code::from(s.expect("status").code))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_api_input_is_refused_by_name_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Harness { server, socket, .. } = start(dir.path(), &harness::sqlite(dir.path())).await;
    let existing = create_entry(
        &socket,
        "spiffe://example.org/web",
        "spiffe://example.org/spire/agent/join_token/node-1",
    )
    .await;
    let channel = admin_channel(&socket).await;
    let before = snapshot(&channel).await;

    let mut entries = entry_api::entry_client::EntryClient::new(channel.clone());
    let good = wire::Entry {
        spiffe_id: id("/new"),
        parent_id: id("/spire/agent/join_token/node-1"),
        selectors: vec![selector("unix", "uid:1")],
        ..Default::default()
    };
    let bad_entries = vec![
        wire::Entry {
            spiffe_id: Some(wire::Spiffeid {
                trust_domain: "other.org".into(),
                path: "/x".into(),
            }),
            ..good.clone()
        },
        wire::Entry {
            selectors: vec![],
            ..good.clone()
        },
        wire::Entry {
            selectors: vec![selector("unix", "")],
            ..good.clone()
        },
        wire::Entry {
            x509_svid_ttl: -1,
            ..good.clone()
        },
        wire::Entry {
            federates_with: vec!["unknown.org".into()],
            ..good.clone()
        },
        wire::Entry {
            spiffe_id: id("no-leading-slash"),
            ..good.clone()
        },
        // sigil stores no additional attributes: refused rather than silently dropped.
        wire::Entry {
            additional_attributes: Some(wire::entry::AdditionalAttributes {
                jwt_svid_include_jti: true,
                ..Default::default()
            }),
            ..good.clone()
        },
    ];
    let results = entries
        .batch_create_entry(entry_api::BatchCreateEntryRequest {
            entries: bad_entries,
            output_mask: None,
        })
        .await
        .expect("BatchCreateEntry answers per item")
        .into_inner()
        .results;
    let statuses = codes(results.iter().map(|r| r.status.as_ref()));
    assert_eq!(
        statuses,
        [
            Code::InvalidArgument,
            Code::InvalidArgument,
            Code::InvalidArgument,
            Code::InvalidArgument,
            Code::InvalidArgument,
            Code::InvalidArgument,
            Code::InvalidArgument
        ],
        "{results:?}"
    );
    let refused = &results[6].status.as_ref().expect("status").message;
    assert!(
        refused.contains("additional_attributes.jwt_svid_include_jti"),
        "{refused}"
    );
    for result in &results {
        let message = &result.status.as_ref().expect("status").message;
        assert!(!message.is_empty(), "every refusal says why");
        assert!(result.entry.is_none());
    }

    let results = entries
        .batch_update_entry(entry_api::BatchUpdateEntryRequest {
            entries: vec![
                wire::Entry {
                    id: uuid::Uuid::new_v4().to_string(),
                    ..good.clone()
                },
                wire::Entry {
                    id: existing.clone(),
                    selectors: vec![selector("", "uid:1")],
                    ..good.clone()
                },
            ],
            ..Default::default()
        })
        .await
        .expect("BatchUpdateEntry answers per item")
        .into_inner()
        .results;
    assert_eq!(
        codes(results.iter().map(|r| r.status.as_ref())),
        [Code::NotFound, Code::InvalidArgument],
        "{results:?}"
    );
    let results = entries
        .batch_delete_entry(entry_api::BatchDeleteEntryRequest {
            ids: vec!["not an id".into(), uuid::Uuid::new_v4().to_string()],
        })
        .await
        .expect("BatchDeleteEntry answers per item")
        .into_inner()
        .results;
    let statuses = codes(results.iter().map(|r| r.status.as_ref()));
    assert!(statuses.iter().all(|c| *c != Code::Ok), "{results:?}");
    let negative = entries
        .list_entries(entry_api::ListEntriesRequest {
            page_size: -1,
            ..Default::default()
        })
        .await
        .expect_err("negative page size");
    assert_eq!(negative.code(), Code::InvalidArgument);
    assert!(negative.message().contains("page_size"), "{negative}");

    let mut bundles = bundle_api::bundle_client::BundleClient::new(channel.clone());
    let garbage = bundles
        .append_bundle(bundle_api::AppendBundleRequest {
            x509_authorities: vec![
                wire::X509Certificate {
                    asn1: sigil_testkit::certs::self_signed_ca_der(),
                    ..Default::default()
                },
                wire::X509Certificate {
                    asn1: b"not DER".to_vec(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        })
        .await
        .expect_err("a bad certificate");
    assert_eq!(garbage.code(), Code::InvalidArgument);
    assert!(
        garbage.message().contains("x509_authorities[1]"),
        "{garbage}"
    );
    let empty = bundles
        .append_bundle(bundle_api::AppendBundleRequest::default())
        .await
        .expect_err("nothing to append");
    assert_eq!(empty.code(), Code::InvalidArgument);
    let results = bundles
        .batch_create_federated_bundle(bundle_api::BatchCreateFederatedBundleRequest {
            bundle: vec![
                wire::Bundle {
                    trust_domain: "example.org".into(),
                    x509_authorities: vec![wire::X509Certificate {
                        asn1: sigil_testkit::certs::self_signed_ca_der(),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
                wire::Bundle {
                    trust_domain: "other.org".into(),
                    jwt_authorities: vec![wire::JwtKey {
                        public_key: b"not a key".to_vec(),
                        key_id: "k".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ],
            output_mask: None,
        })
        .await
        .expect("BatchCreateFederatedBundle answers per item")
        .into_inner()
        .results;
    assert_eq!(
        codes(results.iter().map(|r| r.status.as_ref())),
        [Code::InvalidArgument, Code::InvalidArgument],
        "{results:?}"
    );

    let mut trust_domains = td_api::trust_domain_client::TrustDomainClient::new(channel.clone());
    let results = trust_domains
        .batch_create_federation_relationship(td_api::BatchCreateFederationRelationshipRequest {
            federation_relationships: vec![
                relationship("other.org", "http://other.org/bundle"),
                wire::FederationRelationship {
                    bundle_endpoint_profile: None,
                    ..relationship("other.org", "https://other.org/bundle")
                },
                relationship("not a trust domain", "https://other.org/bundle"),
            ],
            output_mask: None,
        })
        .await
        .expect("BatchCreateFederationRelationship answers per item")
        .into_inner()
        .results;
    assert_eq!(
        codes(results.iter().map(|r| r.status.as_ref())),
        [
            Code::InvalidArgument,
            Code::InvalidArgument,
            Code::InvalidArgument
        ],
        "{results:?}"
    );
    let messages: Vec<&str> = results
        .iter()
        .filter_map(|r| r.status.as_ref().map(|s| s.message.as_str()))
        .collect();
    assert!(messages[0].contains("bundle_endpoint_url"), "{messages:?}");
    assert!(
        messages[1].contains("bundle_endpoint_profile"),
        "{messages:?}"
    );
    let results = trust_domains
        .batch_update_federation_relationship(td_api::BatchUpdateFederationRelationshipRequest {
            federation_relationships: vec![relationship("never.org", "https://never.org/b")],
            ..Default::default()
        })
        .await
        .expect("BatchUpdateFederationRelationship answers per item")
        .into_inner()
        .results;
    assert_eq!(
        codes(results.iter().map(|r| r.status.as_ref())),
        [Code::NotFound]
    );

    let mut agents = agent_api::agent_client::AgentClient::new(channel.clone());
    let negative_ttl = agents
        .create_join_token(agent_api::CreateJoinTokenRequest {
            ttl: -5,
            ..Default::default()
        })
        .await
        .expect_err("negative ttl");
    assert_eq!(negative_ttl.code(), Code::InvalidArgument);
    let unknown = agents
        .ban_agent(agent_api::BanAgentRequest {
            id: id("/spire/agent/join_token/nobody"),
        })
        .await
        .expect_err("no such agent");
    assert_eq!(unknown.code(), Code::NotFound);
    let bad_csr = svid_api::svid_client::SvidClient::new(channel.clone())
        .mint_x509svid(svid_api::MintX509svidRequest {
            csr: b"not a CSR".to_vec(),
            ttl: 0,
        })
        .await
        .expect_err("bad CSR");
    assert_eq!(bad_csr.code(), Code::InvalidArgument);
    assert!(bad_csr.message().contains("csr"), "{bad_csr}");
    let big_audience = svid_api::svid_client::SvidClient::new(channel.clone())
        .mint_jwtsvid(svid_api::MintJwtsvidRequest {
            id: id("/web"),
            audience: vec!["a".repeat(5000), "b".repeat(5000)],
            ttl: 0,
        })
        .await
        .expect_err("audience over the limits");
    assert_eq!(big_audience.code(), Code::InvalidArgument);
    assert!(
        big_audience
            .message()
            .contains("audience[0]: 5000 bytes, at most 4096"),
        "{big_audience}"
    );

    assert_eq!(snapshot(&channel).await, before, "nothing changed");
    // The server still works after all that: a token can be made.
    assert!(!token(&socket).await.is_empty());
    server.shutdown();
}
