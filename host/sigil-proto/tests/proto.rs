//! sigil-proto's integration tests: domain ↔ wire round trips, SPIRE field numbers checked
//! against hand-encoded bytes, and a generated client talking to a generated server over a
//! real Unix socket.
#![expect(
    clippy::expect_used,
    reason = "test helpers: a panic is a test failure with its message"
)]

use std::time::Duration;

use hyper_util::rt::TokioIo;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use prost::Message;
use sigil_proto::spire::api::server::entry::v1 as entryv1;
use sigil_proto::spire::api::types as wire;
use sigil_proto::spire::api::types::federation_relationship::BundleEndpointProfile as WireProfile;
use sigil_types::{
    AttestedAgent, Bundle, BundleEndpointProfile, EntryId, FederationRelationship, JoinToken,
    JwtAuthority, RegistrationEntry, Selector, SpiffeId, TrustDomain, X509Authority,
};
use tokio::net::{UnixListener, UnixStream};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::{Endpoint, Server, Uri};
use tonic::{Request, Response, Status};

#[path = "proto/sdk.rs"]
mod sdk;

fn id(s: &str) -> SpiffeId {
    s.parse().expect("test SPIFFE ID")
}

fn sel(s: &str) -> Selector {
    s.parse().expect("test selector")
}

fn td(s: &str) -> TrustDomain {
    s.parse().expect("test trust domain")
}

/// An entry with every field set to something other than its default.
fn full_entry() -> RegistrationEntry {
    let mut e = RegistrationEntry::new(
        id("spiffe://example.org/ns/prod/sa/web"),
        id("spiffe://example.org/spire/agent/join_token/abc"),
        vec![sel("unix:uid:1000"), sel("unix:gid:1000")],
    );
    e.id = EntryId::new("entry-1").expect("entry ID");
    e.x509_svid_ttl = 3600;
    e.jwt_svid_ttl = 300;
    e.federates_with = vec![td("other.org"), td("third.org")];
    e.admin = true;
    e.downstream = true;
    e.dns_names = vec!["web.example.org".into(), "*.web.example.org".into()];
    e.hint = "internal".into();
    e.store_svid = true;
    e.expires_at = Some(1_900_000_000);
    e.revision_number = 7;
    e.created_at = 1_700_000_000;
    e.canonicalize();
    e
}

/// A self-signed CA certificate (DER) and an EC public key (SPKI DER), made fresh.
fn authorities() -> (Vec<u8>, Vec<u8>) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).expect("certificate");
    (
        cert.der().to_vec(),
        rcgen::PublicKeyData::subject_public_key_info(&key),
    )
}

fn full_bundle(trust_domain: &str) -> Bundle {
    let (cert, spki) = authorities();
    let (cert2, _) = authorities();
    Bundle {
        trust_domain: td(trust_domain),
        x509_authorities: vec![
            X509Authority {
                der: cert,
                tainted: false,
            },
            X509Authority {
                der: cert2,
                tainted: true,
            },
        ],
        jwt_authorities: vec![JwtAuthority {
            key_id: "kid-1".into(),
            public_key_der: spki,
            expires_at: 1_800_000_000,
            tainted: true,
        }],
        refresh_hint: 300,
        sequence_number: 42,
    }
}

// === round trips: domain → wire → domain ===

#[test]
fn entry_round_trips() {
    let entry = full_entry();
    let dto = wire::Entry::from(&entry);
    assert_eq!(
        dto.spiffe_id,
        Some(wire::Spiffeid {
            trust_domain: "example.org".into(),
            path: "/ns/prod/sa/web".into(),
        })
    );
    assert_eq!(dto.federates_with, ["other.org", "third.org"]);
    assert_eq!(RegistrationEntry::try_from(&dto), Ok(entry.clone()));

    // Through the bytes too, as a peer would see it.
    let decoded = wire::Entry::decode(dto.encode_to_vec().as_slice()).expect("decode");
    assert_eq!(RegistrationEntry::try_from(&decoded), Ok(entry));
}

#[test]
fn entry_with_defaults_round_trips() {
    let entry = RegistrationEntry::new(
        id("spiffe://example.org/web"),
        id("spiffe://example.org/spire/server"),
        vec![sel("k8s:pod-label:app:web")],
    );
    let dto = wire::Entry::from(&entry);
    assert_eq!(dto.expires_at, 0, "no expiry is 0 on the wire");
    assert_eq!(RegistrationEntry::try_from(&dto), Ok(entry));
}

#[test]
fn selector_and_spiffe_id_round_trip() {
    let s = sel("k8s:pod-label:app:web");
    let dto = wire::Selector::from(&s);
    assert_eq!(
        (dto.r#type.as_str(), dto.value.as_str()),
        ("k8s", "pod-label:app:web")
    );
    assert_eq!(Selector::try_from(&dto), Ok(s));

    for raw in ["spiffe://example.org/a/b.c", "spiffe://example.org"] {
        let spiffe_id = id(raw);
        let dto = wire::Spiffeid::from(&spiffe_id);
        assert_eq!(dto.trust_domain, "example.org");
        assert!(dto.path.is_empty() || dto.path.starts_with('/'));
        assert_eq!(SpiffeId::try_from(&dto), Ok(spiffe_id));
    }
}

#[test]
fn agent_round_trips() {
    let agent = AttestedAgent {
        spiffe_id: id("spiffe://example.org/spire/agent/x509pop/abc"),
        attestation_type: "x509pop".into(),
        cert_serial_number: "123456789".into(),
        cert_not_after: 1_800_000_000,
        new_cert_serial_number: String::new(),
        new_cert_not_after: 0,
        selectors: vec![sel("x509pop:subject:cn:node-1")],
        banned: true,
        can_reattest: true,
        agent_version: String::new(),
    };
    let dto = wire::Agent::from(&agent);
    assert_eq!(dto.x509svid_serial_number, "123456789");
    assert_eq!(dto.x509svid_expires_at, 1_800_000_000);
    assert!(dto.banned && dto.can_reattest);
    assert_eq!(AttestedAgent::try_from(&dto), Ok(agent));
}

#[test]
fn join_token_round_trips() {
    let token = JoinToken {
        token: "8f7c1c1e-5f8e-4a4c-9d2b-1b0a7e6f1c2d".into(),
        expires_at: 1_700_000_600,
    };
    let dto = wire::JoinToken::from(&token);
    assert_eq!(dto.value, token.token);
    assert_eq!(JoinToken::try_from(&dto), Ok(token));
}

#[test]
fn bundle_round_trips() {
    let bundle = full_bundle("example.org");
    let dto = wire::Bundle::from(&bundle);
    assert_eq!(dto.x509_authorities[0].asn1, bundle.x509_authorities[0].der);
    assert!(dto.x509_authorities[1].tainted);
    assert_eq!(dto.jwt_authorities[0].key_id, "kid-1");
    assert_eq!(
        dto.jwt_authorities[0].public_key,
        bundle.jwt_authorities[0].public_key_der
    );
    assert_eq!(dto.jwt_authorities[0].expires_at, 1_800_000_000);
    assert!(dto.jwt_authorities[0].tainted);
    assert_eq!((dto.refresh_hint, dto.sequence_number), (300, 42));
    assert_eq!(Bundle::try_from(&dto), Ok(bundle));
}

#[test]
fn federation_relationship_round_trips() {
    let web = FederationRelationship {
        trust_domain: td("other.org"),
        bundle_endpoint_url: "https://other.org:8443/bundle".into(),
        profile: BundleEndpointProfile::HttpsWeb,
        trust_domain_bundle: None,
    };
    let dto = wire::FederationRelationship::from(&web);
    assert!(matches!(
        dto.bundle_endpoint_profile,
        Some(WireProfile::HttpsWeb(_))
    ));
    assert_eq!(FederationRelationship::try_from(&dto), Ok(web));

    let spiffe = FederationRelationship {
        trust_domain: td("other.org"),
        bundle_endpoint_url: "https://bundle.other.org/".into(),
        profile: BundleEndpointProfile::HttpsSpiffe {
            endpoint_spiffe_id: id("spiffe://other.org/spire/server"),
        },
        trust_domain_bundle: Some(full_bundle("other.org")),
    };
    let dto = wire::FederationRelationship::from(&spiffe);
    match &dto.bundle_endpoint_profile {
        Some(WireProfile::HttpsSpiffe(p)) => {
            assert_eq!(p.endpoint_spiffe_id, "spiffe://other.org/spire/server");
        }
        other => panic!("wrong profile {other:?}"),
    }
    assert_eq!(FederationRelationship::try_from(&dto), Ok(spiffe));
}

// === wire compatibility: SPIRE's field numbers, checked byte by byte ===

/// Encodes `msg` and compares with bytes written out by hand from SPIRE's .proto field
/// numbers and wire types, then decodes those bytes back. A renumbered or retyped field
/// fails one direction or the other.
pub(crate) fn assert_wire<M: Message + Default + PartialEq + std::fmt::Debug>(
    msg: &M,
    bytes: &[u8],
) {
    assert_eq!(msg.encode_to_vec(), bytes, "encoding of {msg:?}");
    assert_eq!(
        &M::decode(bytes).expect("decode"),
        msg,
        "decoding {bytes:02x?}"
    );
}

#[test]
fn entry_field_numbers_match_spire() {
    // id = 1, length-delimited: tag (1 << 3) | 2.
    assert_wire(
        &wire::Entry {
            id: "a".into(),
            ..Default::default()
        },
        &[0x0a, 0x01, b'a'],
    );
    // spiffe_id = 2 holding SPIFFEID { trust_domain = 1, path = 2 }.
    assert_wire(
        &wire::Entry {
            spiffe_id: Some(wire::Spiffeid {
                trust_domain: "x".into(),
                path: "/y".into(),
            }),
            ..Default::default()
        },
        &[0x12, 0x07, 0x0a, 0x01, b'x', 0x12, 0x02, b'/', b'y'],
    );
    // x509_svid_ttl = 5 and jwt_svid_ttl = 13, varints.
    assert_wire(
        &wire::Entry {
            x509_svid_ttl: 60,
            jwt_svid_ttl: 30,
            ..Default::default()
        },
        &[0x28, 60, 0x68, 30],
    );
    // store_svid = 12 (varint: 12 << 3 = 0x60), hint = 14 (0x72), created_at = 15 (0x78).
    assert_wire(
        &wire::Entry {
            store_svid: true,
            hint: "h".into(),
            created_at: 5,
            ..Default::default()
        },
        &[0x60, 0x01, 0x72, 0x01, b'h', 0x78, 0x05],
    );
    // EntryMask.hint is a bool (= 14) in current SPIRE, not a string.
    assert_wire(
        &wire::EntryMask {
            hint: true,
            created_at: true,
            ..Default::default()
        },
        &[0x70, 0x01, 0x78, 0x01],
    );
}

#[test]
fn selector_field_numbers_match_spire() {
    assert_wire(
        &wire::Selector {
            r#type: "unix".into(),
            value: "uid:1".into(),
        },
        &[
            0x0a, 0x04, b'u', b'n', b'i', b'x', 0x12, 0x05, b'u', b'i', b'd', b':', b'1',
        ],
    );
    // SelectorMatch { selectors = 1, match = 2 (enum; MATCH_ANY = 3) }.
    assert_wire(
        &wire::SelectorMatch {
            selectors: vec![],
            r#match: wire::selector_match::MatchBehavior::MatchAny as i32,
        },
        &[0x10, 0x03],
    );
}

#[test]
fn bundle_and_agent_field_numbers_match_spire() {
    // refresh_hint = 4, sequence_number = 5.
    assert_wire(
        &wire::Bundle {
            refresh_hint: 2,
            sequence_number: 3,
            ..Default::default()
        },
        &[0x20, 0x02, 0x28, 0x03],
    );
    // X509Certificate { asn1 = 1, tainted = 2 }.
    assert_wire(
        &wire::X509Certificate {
            asn1: vec![0xde],
            tainted: true,
        },
        &[0x0a, 0x01, 0xde, 0x10, 0x01],
    );
    // JWTKey { public_key = 1, key_id = 2, expires_at = 3, tainted = 4 }.
    assert_wire(
        &wire::JwtKey {
            public_key: vec![0x01],
            key_id: "k".into(),
            expires_at: 9,
            tainted: true,
        },
        &[0x0a, 0x01, 0x01, 0x12, 0x01, b'k', 0x18, 0x09, 0x20, 0x01],
    );
    // Agent { banned = 6, can_reattest = 7 }.
    assert_wire(
        &wire::Agent {
            banned: true,
            can_reattest: true,
            ..Default::default()
        },
        &[0x30, 0x01, 0x38, 0x01],
    );
    // FederationRelationship { https_web = 3 (empty message), trust_domain_bundle = 5 }.
    assert_wire(
        &wire::FederationRelationship {
            bundle_endpoint_profile: Some(WireProfile::HttpsWeb(wire::HttpsWebProfile {})),
            trust_domain_bundle: Some(wire::Bundle::default()),
            ..Default::default()
        },
        &[0x1a, 0x00, 0x2a, 0x00],
    );
}

#[test]
fn entry_service_messages_match_spire() {
    // ListEntriesRequest.filter = 1 { by_hint = 5: google.protobuf.StringValue { value = 1 } }.
    assert_wire(
        &entryv1::ListEntriesRequest {
            filter: Some(entryv1::list_entries_request::Filter {
                by_hint: Some("h".into()),
                ..Default::default()
            }),
            page_size: 10,
            ..Default::default()
        },
        &[0x0a, 0x05, 0x2a, 0x03, 0x0a, 0x01, b'h', 0x18, 0x0a],
    );
    // SyncAuthorizedEntriesResponse { entry_revisions = 1 { id = 1, revision_number = 2,
    // created_at = 3 }, more = 3 }.
    assert_wire(
        &entryv1::SyncAuthorizedEntriesResponse {
            entry_revisions: vec![entryv1::EntryRevision {
                id: "e".into(),
                revision_number: 2,
                created_at: 3,
            }],
            entries: vec![],
            more: true,
        },
        &[
            0x0a, 0x07, 0x0a, 0x01, b'e', 0x10, 0x02, 0x18, 0x03, 0x18, 0x01,
        ],
    );
}

#[test]
fn agent_service_messages_match_spire() {
    use sigil_proto::spire::api::server::agent::v1 as agentv1;
    // ListAgentsRequest.filter = 1 { by_banned = 3: google.protobuf.BoolValue { value = 1 },
    // by_expires_before = 5 }.
    assert_wire(
        &agentv1::ListAgentsRequest {
            filter: Some(agentv1::list_agents_request::Filter {
                by_banned: Some(true),
                by_expires_before: "t".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
        &[0x0a, 0x07, 0x1a, 0x02, 0x08, 0x01, 0x2a, 0x01, b't'],
    );
    // AttestAgentRequest: oneof step { params = 1, challenge_response = 2 }.
    assert_wire(
        &agentv1::AttestAgentRequest {
            step: Some(agentv1::attest_agent_request::Step::ChallengeResponse(
                vec![0x07],
            )),
        },
        &[0x12, 0x01, 0x07],
    );
}

#[test]
fn workload_api_messages_match_spiffe() {
    use sigil_proto::workload;
    // X509SVID { spiffe_id = 1, x509_svid = 2, x509_svid_key = 3, bundle = 4, hint = 5 }.
    assert_wire(
        &workload::X509svid {
            spiffe_id: "s".into(),
            x509_svid: vec![0x01],
            x509_svid_key: vec![0x02],
            bundle: vec![0x03],
            hint: "h".into(),
        },
        &[
            0x0a, 0x01, b's', 0x12, 0x01, 0x01, 0x1a, 0x01, 0x02, 0x22, 0x01, 0x03, 0x2a, 0x01,
            b'h',
        ],
    );
    // JWTSVIDRequest { audience = 1, spiffe_id = 2 }.
    assert_wire(
        &workload::JwtsvidRequest {
            audience: vec!["a".into()],
            spiffe_id: "s".into(),
        },
        &[0x0a, 0x01, b'a', 0x12, 0x01, b's'],
    );
}

#[test]
fn delegated_identity_requests_match_spire() {
    use sigil_proto::spire::api::agent::delegatedidentity::v1 as delegated;
    // SubscribeToX509SVIDsRequest { selectors = 1 { type = 1, value = 2 }, pid = 2 }.
    assert_wire(
        &delegated::SubscribeToX509sviDsRequest {
            selectors: vec![wire::Selector {
                r#type: "t".into(),
                value: "v".into(),
            }],
            pid: 7,
        },
        &[0x0a, 0x06, 0x0a, 0x01, b't', 0x12, 0x01, b'v', 0x10, 0x07],
    );
    // FetchJWTSVIDsRequest { audience = 1, selectors = 2, pid = 3 }.
    assert_wire(
        &delegated::FetchJwtsviDsRequest {
            audience: vec!["a".into()],
            selectors: Vec::new(),
            pid: 7,
        },
        &[0x0a, 0x01, b'a', 0x18, 0x07],
    );
}

#[test]
fn service_names_match_spire() {
    use sigil_proto::spire::api::agent::delegatedidentity::v1::delegated_identity_server;
    use sigil_proto::spire::api::server::{agent, bundle, svid, trustdomain};
    use sigil_proto::workload::spiffe_workload_api_server;
    assert_eq!(
        entryv1::entry_server::SERVICE_NAME,
        "spire.api.server.entry.v1.Entry"
    );
    assert_eq!(
        agent::v1::agent_server::SERVICE_NAME,
        "spire.api.server.agent.v1.Agent"
    );
    assert_eq!(
        bundle::v1::bundle_server::SERVICE_NAME,
        "spire.api.server.bundle.v1.Bundle"
    );
    assert_eq!(
        svid::v1::svid_server::SERVICE_NAME,
        "spire.api.server.svid.v1.SVID"
    );
    assert_eq!(
        trustdomain::v1::trust_domain_server::SERVICE_NAME,
        "spire.api.server.trustdomain.v1.TrustDomain"
    );
    assert_eq!(
        delegated_identity_server::SERVICE_NAME,
        "spire.api.agent.delegatedidentity.v1.DelegatedIdentity"
    );
    assert_eq!(
        spiffe_workload_api_server::SERVICE_NAME,
        "SpiffeWorkloadAPI"
    );
}

// === properties: whatever a peer sends, conversion never panics and what it accepts is stable ===

/// Strings near the edge of validity: mostly well-formed pieces, some stray characters.
fn fragment() -> impl Strategy<Value = String> {
    proptest::string::string_regex("(/?[a-z0-9._:-]{0,6}){0,3}[ /A\n]?").expect("regex")
}

/// Mostly valid, sometimes not: nine parts `valid`, one part [`fragment`].
fn mostly(valid: &str) -> impl Strategy<Value = String> {
    let valid = proptest::string::string_regex(valid).expect("regex");
    prop_oneof![9 => valid, 1 => fragment()]
}

fn wire_spiffe_id() -> impl Strategy<Value = Option<wire::Spiffeid>> {
    (
        mostly("[a-z0-9]{1,6}\\.org"),
        mostly("(/[a-z0-9_.-]{1,5}){0,3}"),
    )
        .prop_map(|(trust_domain, path)| Some(wire::Spiffeid { trust_domain, path }))
}

fn arbitrary_entry() -> impl Strategy<Value = wire::Entry> {
    let selector = (mostly("[a-z]{1,5}"), mostly("[a-z0-9:]{1,6}"))
        .prop_map(|(r#type, value)| wire::Selector { r#type, value });
    (
        (mostly("[a-z0-9-]{0,8}"), wire_spiffe_id(), wire_spiffe_id()),
        proptest::collection::vec(selector, 0..3),
        (-1..4000i32, -1..4000i32, -1..2_000_000_000i64),
        proptest::collection::vec(mostly("[a-z0-9]{1,6}\\.org"), 0..3),
        proptest::collection::vec(mostly("[a-z]{1,5}\\.example"), 0..3),
        (
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            mostly("[a-z ]{0,8}"),
        ),
    )
        .prop_map(
            |(
                (id, spiffe_id, parent_id),
                selectors,
                (x509_svid_ttl, jwt_svid_ttl, expires_at),
                federates_with,
                dns_names,
                (admin, downstream, store_svid, hint),
            )| wire::Entry {
                id,
                spiffe_id,
                parent_id,
                selectors,
                x509_svid_ttl,
                federates_with,
                admin,
                downstream,
                expires_at,
                dns_names,
                revision_number: 3,
                store_svid,
                jwt_svid_ttl,
                hint,
                created_at: 1_700_000_000,
                additional_attributes: None,
            },
        )
}

/// The property below means something only if the generator produces valid entries too.
#[test]
fn entry_generator_produces_both_outcomes() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = arbitrary_entry();
    let accepted = (0..300)
        .filter(|_| {
            let dto = strategy.new_tree(&mut runner).expect("sample").current();
            RegistrationEntry::try_from(&dto).is_ok()
        })
        .count();
    assert!((30..270).contains(&accepted), "{accepted} of 300 accepted");
}

proptest! {
    /// An accepted entry survives domain → wire → domain unchanged.
    #[test]
    fn accepted_entries_round_trip(dto in arbitrary_entry()) {
        if let Ok(entry) = RegistrationEntry::try_from(&dto) {
            let again = RegistrationEntry::try_from(&wire::Entry::from(&entry));
            prop_assert_eq!(again, Ok(entry));
        }
    }

    /// Arbitrary bytes either fail to decode or convert without panicking.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(dto) = wire::Entry::decode(bytes.as_slice()) {
            let _ = RegistrationEntry::try_from(&dto);
        }
        if let Ok(dto) = wire::FederationRelationship::decode(bytes.as_slice()) {
            let _ = FederationRelationship::try_from(&dto);
        }
        if let Ok(dto) = wire::Agent::decode(bytes.as_slice()) {
            let _ = AttestedAgent::try_from(&dto);
        }
    }
}

// === a generated client and server over a Unix socket ===

/// An Entry service that serves a fixed list and implements nothing else.
struct FixedEntries(Vec<RegistrationEntry>);

#[tonic::async_trait]
impl entryv1::entry_server::Entry for FixedEntries {
    async fn list_entries(
        &self,
        request: Request<entryv1::ListEntriesRequest>,
    ) -> Result<Response<entryv1::ListEntriesResponse>, Status> {
        let filter = request.into_inner().filter.unwrap_or_default();
        let by_spiffe_id = filter
            .by_spiffe_id
            .as_ref()
            .map(SpiffeId::try_from)
            .transpose()?;
        let entries = self
            .0
            .iter()
            .filter(|e| by_spiffe_id.as_ref().is_none_or(|id| *id == e.spiffe_id))
            .map(wire::Entry::from)
            .collect();
        Ok(Response::new(entryv1::ListEntriesResponse {
            entries,
            next_page_token: String::new(),
        }))
    }

    async fn count_entries(
        &self,
        _: Request<entryv1::CountEntriesRequest>,
    ) -> Result<Response<entryv1::CountEntriesResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn get_entry(
        &self,
        _: Request<entryv1::GetEntryRequest>,
    ) -> Result<Response<wire::Entry>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn batch_create_entry(
        &self,
        _: Request<entryv1::BatchCreateEntryRequest>,
    ) -> Result<Response<entryv1::BatchCreateEntryResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn batch_update_entry(
        &self,
        _: Request<entryv1::BatchUpdateEntryRequest>,
    ) -> Result<Response<entryv1::BatchUpdateEntryResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn batch_delete_entry(
        &self,
        _: Request<entryv1::BatchDeleteEntryRequest>,
    ) -> Result<Response<entryv1::BatchDeleteEntryResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn get_authorized_entries(
        &self,
        _: Request<entryv1::GetAuthorizedEntriesRequest>,
    ) -> Result<Response<entryv1::GetAuthorizedEntriesResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    type SyncAuthorizedEntriesStream =
        tokio_stream::Empty<Result<entryv1::SyncAuthorizedEntriesResponse, Status>>;

    async fn sync_authorized_entries(
        &self,
        _: Request<tonic::Streaming<entryv1::SyncAuthorizedEntriesRequest>>,
    ) -> Result<Response<Self::SyncAuthorizedEntriesStream>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}

#[tokio::test]
async fn list_entries_over_a_unix_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("api.sock");
    let listener = UnixListener::bind(&socket).expect("bind");
    let web = full_entry();
    let mut db = RegistrationEntry::new(
        id("spiffe://example.org/db"),
        id("spiffe://example.org/spire/server"),
        vec![sel("unix:uid:999")],
    );
    db.id = EntryId::new("entry-2").expect("entry ID");
    let service = entryv1::entry_server::EntryServer::new(FixedEntries(vec![web.clone(), db]));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
                let _ = stopped.await;
            }),
    );

    // The URI is required by the API but unused: the connector always dials the socket.
    let channel = Endpoint::from_static("http://localhost")
        .connect_timeout(Duration::from_secs(5))
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(socket).await?)) }
        }))
        .await
        .expect("connect over the socket");

    // The generated client, filtering by SPIFFE ID, gets back exactly the entry it asked for.
    let mut client = entryv1::entry_client::EntryClient::new(channel.clone());
    let response = client
        .list_entries(entryv1::ListEntriesRequest {
            filter: Some(entryv1::list_entries_request::Filter {
                by_spiffe_id: Some((&web.spiffe_id).into()),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("ListEntries")
        .into_inner();
    let got: Vec<RegistrationEntry> = response
        .entries
        .iter()
        .map(|e| RegistrationEntry::try_from(e).expect("valid entry from server"))
        .collect();
    assert_eq!(got, vec![web]);

    // A malformed filter is refused with InvalidArgument naming the field.
    let err = client
        .list_entries(entryv1::ListEntriesRequest {
            filter: Some(entryv1::list_entries_request::Filter {
                by_spiffe_id: Some(wire::Spiffeid {
                    trust_domain: "example.org".into(),
                    path: "no-slash".into(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect_err("bad filter");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("path"), "{}", err.message());

    // A hand-built call on SPIRE's exact method path reaches the same handler: this is the
    // path Go's generated client (spire-server CLI, spire-controller-manager) sends.
    let mut grpc = tonic::client::Grpc::new(channel);
    let path = "/spire.api.server.entry.v1.Entry/ListEntries";
    grpc.ready().await.expect("ready");
    let all = grpc
        .unary(
            Request::new(entryv1::ListEntriesRequest::default()),
            tonic::codegen::http::uri::PathAndQuery::from_static(path),
            tonic_prost::ProstCodec::<entryv1::ListEntriesRequest, entryv1::ListEntriesResponse>::default(),
        )
        .await
        .expect("raw ListEntries")
        .into_inner();
    assert_eq!(all.entries.len(), 2);

    // Any other service name is not routed.
    grpc.ready().await.expect("ready");
    let err = grpc
        .unary(
            Request::new(entryv1::ListEntriesRequest::default()),
            tonic::codegen::http::uri::PathAndQuery::from_static(
                "/spire.api.server.entry.v2.Entry/ListEntries",
            ),
            tonic_prost::ProstCodec::<entryv1::ListEntriesRequest, entryv1::ListEntriesResponse>::default(),
        )
        .await
        .expect_err("unknown service");
    assert_eq!(err.code(), tonic::Code::Unimplemented);

    let _ = stop.send(());
    server
        .await
        .expect("server task")
        .expect("server shut down cleanly");
}
