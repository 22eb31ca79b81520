//! The fields where sigil's .proto files once differed from spire-api-sdk (commit adb81b3b,
//! July 2026) and go-spiffe's workload.proto, each pinned to the upstream number and type.
//!
//! Two kinds of check: [`assert_wire`] on a message built in Rust, and [`sdk_bytes`] on
//! bytes written out by hand from the upstream .proto: decoding them and encoding again
//! must give the same bytes, so a field the SDK has and sigil lacks (prost drops unknown
//! fields) or numbers differently fails, and so does a field sigil has and the SDK lacks.

use prost::Message;
use sigil_proto::spire::api::agent::delegatedidentity::v1 as delegated;
use sigil_proto::spire::api::server::agent::v1 as agentv1;
use sigil_proto::spire::api::server::bundle::v1 as bundlev1;
use sigil_proto::spire::api::server::svid::v1 as svidv1;
use sigil_proto::spire::api::server::trustdomain::v1 as tdv1;
use sigil_proto::spire::api::types as wire;
use sigil_proto::workload;

use super::assert_wire;

/// What is wrong with `sdk` decoded as `M` and encoded again, if it does not give exactly
/// `expect`.
fn sdk_bytes<M: Message + Default>(sdk: &[u8], expect: &[u8]) -> Option<String> {
    let name = std::any::type_name::<M>();
    match M::decode(sdk) {
        Err(e) => Some(format!("{name} cannot decode {sdk:02x?}: {e}")),
        Ok(m) if m.encode_to_vec() != expect => Some(format!(
            "{name}: {sdk:02x?} re-encodes as {:02x?}, not {expect:02x?}",
            m.encode_to_vec()
        )),
        Ok(_) => None,
    }
}

/// Bytes of upstream messages, hand-encoded, that must survive a decode and an encode. These
/// compile against any revision of sigil's generated code, so they also show what an older
/// revision got wrong.
#[test]
fn sdk_messages_survive_a_round_trip() {
    let mut wrong = Vec::new();
    // delegatedidentity SubscribeToX509SVIDsRequest { selectors = 1, pid = 2 }.
    let subscribe = [0x0a, 0x06, 0x0a, 0x01, b't', 0x12, 0x01, b'v', 0x10, 0x07];
    wrong.extend(sdk_bytes::<delegated::SubscribeToX509sviDsRequest>(
        &subscribe, &subscribe,
    ));
    // delegatedidentity FetchJWTSVIDsRequest { audience = 1, pid = 3 }.
    let fetch = [0x0a, 0x01, b'a', 0x18, 0x07];
    wrong.extend(sdk_bytes::<delegated::FetchJwtsviDsRequest>(&fetch, &fetch));
    // agent v1 PostStatusRequest { current_bundle_serial = 1, agent_version = 2 }.
    let post_status = [0x08, 0x2a, 0x12, 0x03, b'1', b'.', b'2'];
    wrong.extend(sdk_bytes::<agentv1::PostStatusRequest>(
        &post_status,
        &post_status,
    ));
    // types Agent { agent_version = 8 } and AgentMask { agent_version = 8 }.
    wrong.extend(sdk_bytes::<wire::Agent>(
        &[0x42, 0x01, b'v'],
        &[0x42, 0x01, b'v'],
    ));
    wrong.extend(sdk_bytes::<wire::AgentMask>(&[0x40, 0x01], &[0x40, 0x01]));
    // types Bundle { wit_authorities = 6: WITKey { public_key = 1, key_id = 2,
    // expires_at = 3, tainted = 4 } } and BundleMask { wit_authorities = 6 }.
    let bundle = [
        0x32, 0x0a, 0x0a, 0x01, 0x01, 0x12, 0x01, b'k', 0x18, 0x09, 0x20, 0x01,
    ];
    wrong.extend(sdk_bytes::<wire::Bundle>(&bundle, &bundle));
    wrong.extend(sdk_bytes::<wire::BundleMask>(&[0x30, 0x01], &[0x30, 0x01]));
    // types X509Certificate and JWTKey have no `hint`: a field 3 (resp. 5) is unknown.
    wrong.extend(sdk_bytes::<wire::X509Certificate>(
        &[0x0a, 0x01, 0xde, 0x1a, 0x01, b'h'],
        &[0x0a, 0x01, 0xde],
    ));
    wrong.extend(sdk_bytes::<wire::JwtKey>(
        &[0x12, 0x01, b'k', 0x2a, 0x01, b'h'],
        &[0x12, 0x01, b'k'],
    ));
    // types Entry { additional_attributes = 16 (tag 0x82 0x01): { disable_x509_svid_prefetch
    // = 1, jwt_svid_include_jti = 2 } } and EntryMask { additional_attributes = 16 }.
    let entry = [0x82, 0x01, 0x04, 0x08, 0x01, 0x10, 0x01];
    wrong.extend(sdk_bytes::<wire::Entry>(&entry, &entry));
    wrong.extend(sdk_bytes::<wire::EntryMask>(
        &[0x80, 0x01, 0x01],
        &[0x80, 0x01, 0x01],
    ));
    // trustdomain GetFederationRelationshipRequest { trust_domain = 1, output_mask = 2 }.
    let get = [0x0a, 0x01, b't', 0x12, 0x02, 0x08, 0x01];
    wrong.extend(sdk_bytes::<tdv1::GetFederationRelationshipRequest>(
        &get, &get,
    ));
    // trustdomain ListFederationRelationshipsRequest { page_size = 2 } has no `include_static` (4).
    wrong.extend(sdk_bytes::<tdv1::ListFederationRelationshipsRequest>(
        &[0x10, 0x05, 0x20, 0x01],
        &[0x10, 0x05],
    ));
    // bundle v1 AppendBundleRequest { wit_authorities = 4 }.
    let append = [0x22, 0x03, 0x12, 0x01, b'k'];
    wrong.extend(sdk_bytes::<bundlev1::AppendBundleRequest>(&append, &append));
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn delegated_identity_has_no_by_pid_calls() {
    // The service's methods are the SDK's four; the `*ByPID` calls of a reverted SDK
    // revision (#58, reverted by #62) are gone, so their request types are too.
    let source =
        include_str!("../../proto/spire/api/agent/delegatedidentity/v1/delegatedidentity.proto");
    let rpcs: Vec<&str> = source
        .lines()
        .filter_map(|l| l.trim().strip_prefix("rpc "))
        .filter_map(|l| l.split('(').next())
        .collect();
    assert_eq!(
        rpcs,
        [
            "SubscribeToX509SVIDs",
            "SubscribeToX509Bundles",
            "FetchJWTSVIDs",
            "SubscribeToJWTBundles",
        ]
    );
}

#[test]
fn new_fields_have_the_sdk_types() {
    // PostStatusRequest.current_bundle_serial is uint64 (a u64 here, not an i64).
    assert_wire(
        &agentv1::PostStatusRequest {
            current_bundle_serial: u64::MAX,
            agent_version: "1.2".into(),
        },
        &[
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x12, 0x03, b'1',
            b'.', b'2',
        ],
    );
    assert_wire(
        &wire::Agent {
            agent_version: "v".into(),
            ..Default::default()
        },
        &[0x42, 0x01, b'v'],
    );
    assert_wire(
        &wire::AgentMask {
            agent_version: true,
            ..Default::default()
        },
        &[0x40, 0x01],
    );
    // Entry.additional_attributes is proto3 `optional`: present-but-default is sent.
    assert_wire(
        &wire::Entry {
            additional_attributes: Some(wire::entry::AdditionalAttributes::default()),
            ..Default::default()
        },
        &[0x82, 0x01, 0x00],
    );
    assert_wire(
        &wire::Entry {
            additional_attributes: Some(wire::entry::AdditionalAttributes {
                disable_x509_svid_prefetch: true,
                jwt_svid_include_jti: true,
            }),
            ..Default::default()
        },
        &[0x82, 0x01, 0x04, 0x08, 0x01, 0x10, 0x01],
    );
    assert_wire(
        &wire::EntryMask {
            additional_attributes: true,
            ..Default::default()
        },
        &[0x80, 0x01, 0x01],
    );
    // PermissionDeniedDetails.Reason 5 is AGENT_MUST_REATTEST.
    let must_reattest = wire::permission_denied_details::Reason::AgentMustReattest;
    assert_eq!(must_reattest as i32, 5);
    assert_eq!(must_reattest.as_str_name(), "AGENT_MUST_REATTEST");
    assert_wire(
        &wire::PermissionDeniedDetails {
            reason: must_reattest as i32,
        },
        &[0x08, 0x05],
    );
    // BatchCreateFederationRelationshipRequest.federation_relationships = 1 (plural, as
    // the JSON name `federation_relationships` shows).
    assert_wire(
        &tdv1::BatchCreateFederationRelationshipRequest {
            federation_relationships: vec![wire::FederationRelationship::default()],
            output_mask: None,
        },
        &[0x0a, 0x00],
    );
    assert_wire(
        &tdv1::GetFederationRelationshipRequest {
            trust_domain: "t".into(),
            output_mask: Some(wire::FederationRelationshipMask {
                bundle_endpoint_url: true,
                ..Default::default()
            }),
        },
        &[0x0a, 0x01, b't', 0x12, 0x02, 0x08, 0x01],
    );
}

#[test]
fn wit_svid_messages_match_the_sdk() {
    let key = wire::WitKey {
        public_key: vec![0x01],
        key_id: "k".into(),
        expires_at: 9,
        tainted: true,
    };
    let key_bytes = [0x0a, 0x01, 0x01, 0x12, 0x01, b'k', 0x18, 0x09, 0x20, 0x01];
    assert_wire(&key, &key_bytes);
    assert_wire(
        &wire::Bundle {
            wit_authorities: vec![key.clone()],
            ..Default::default()
        },
        &[&[0x32, 0x0a][..], &key_bytes].concat(),
    );
    assert_wire(
        &wire::BundleMask {
            wit_authorities: true,
            ..Default::default()
        },
        &[0x30, 0x01],
    );
    assert_wire(
        &bundlev1::AppendBundleRequest {
            wit_authorities: vec![key.clone()],
            ..Default::default()
        },
        &[&[0x22, 0x0a][..], &key_bytes].concat(),
    );
    assert_wire(
        &bundlev1::PublishWitAuthorityRequest {
            wit_authority: Some(key.clone()),
        },
        &[&[0x0a, 0x0a][..], &key_bytes].concat(),
    );
    assert_wire(
        &bundlev1::PublishWitAuthorityResponse {
            wit_authorities: vec![key],
        },
        &[&[0x0a, 0x0a][..], &key_bytes].concat(),
    );
    // types WITSVID { token = 1, id = 2, expires_at = 3, issued_at = 4, hint = 5 }.
    let svid = wire::Witsvid {
        token: "t".into(),
        id: Some(wire::Spiffeid::default()),
        expires_at: 3,
        issued_at: 4,
        hint: "h".into(),
    };
    let svid_bytes = [
        0x0a, 0x01, b't', 0x12, 0x00, 0x18, 0x03, 0x20, 0x04, 0x2a, 0x01, b'h',
    ];
    assert_wire(&svid, &svid_bytes);
    // svid v1 MintWITSVIDRequest { id = 1, public_key = 2, ttl = 3, signing_algorithm = 4 }.
    assert_wire(
        &svidv1::MintWitsvidRequest {
            id: Some(wire::Spiffeid::default()),
            public_key: vec![0x01],
            ttl: 5,
            signing_algorithm: "ES256".into(),
        },
        &[
            0x0a, 0x00, 0x12, 0x01, 0x01, 0x18, 0x05, 0x22, 0x05, b'E', b'S', b'2', b'5', b'6',
        ],
    );
    assert_wire(
        &svidv1::MintWitsvidResponse {
            svid: Some(svid.clone()),
        },
        &[&[0x0a, 0x0c][..], &svid_bytes].concat(),
    );
    // NewWITSVIDParams { entry_id = 1, public_key = 2, signing_algorithm = 3 }.
    assert_wire(
        &svidv1::BatchNewWitsvidRequest {
            params: vec![svidv1::NewWitsvidParams {
                entry_id: "e".into(),
                public_key: vec![0x01],
                signing_algorithm: "a".into(),
            }],
        },
        &[
            0x0a, 0x09, 0x0a, 0x01, b'e', 0x12, 0x01, 0x01, 0x1a, 0x01, b'a',
        ],
    );
    // BatchNewWITSVIDResponse { results = 1: Result { status = 1, svid = 2 } }.
    assert_wire(
        &svidv1::BatchNewWitsvidResponse {
            results: vec![svidv1::batch_new_witsvid_response::Result {
                status: Some(wire::Status::default()),
                svid: Some(svid),
            }],
        },
        &[&[0x0a, 0x10, 0x0a, 0x00, 0x12, 0x0c][..], &svid_bytes].concat(),
    );
}

#[test]
fn workload_wit_messages_match_go_spiffe() {
    // WITSVIDRequest { spiffe_id = 1 }.
    assert_wire(
        &workload::WitsvidRequest {
            spiffe_id: "s".into(),
        },
        &[0x0a, 0x01, b's'],
    );
    // WITSVIDResponse { svids = 1: WITSVID { spiffe_id = 1, wit_svid = 2, wit_svid_key = 3,
    // hint = 4 } }: every field a string.
    assert_wire(
        &workload::WitsvidResponse {
            svids: vec![workload::Witsvid {
                spiffe_id: "s".into(),
                wit_svid: "t".into(),
                wit_svid_key: "k".into(),
                hint: "h".into(),
            }],
        },
        &[
            0x0a, 0x0c, 0x0a, 0x01, b's', 0x12, 0x01, b't', 0x1a, 0x01, b'k', 0x22, 0x01, b'h',
        ],
    );
    // WITBundlesResponse { bundles = 1: map<string, string> }.
    assert_wire(
        &workload::WitBundlesResponse {
            bundles: [("td".to_owned(), "{}".to_owned())].into(),
        },
        &[0x0a, 0x08, 0x0a, 0x02, b't', b'd', 0x12, 0x02, b'{', b'}'],
    );
}
