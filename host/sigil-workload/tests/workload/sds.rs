//! Envoy SDS v3 through an envoy-types client over the socket.

use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType;
use envoy_types::pb::envoy::config::core::v3::{BuildVersion, DataSource, Node};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::secret::Type as SecretType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, Secret, SpiffeCertValidatorConfig, TlsCertificate,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_client::SecretDiscoveryServiceClient;
use envoy_types::pb::envoy::r#type::v3::SemanticVersion;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use prost::{Message, Name};
use sigil_workload::{WorkloadConfig, WorkloadUpdate};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic::transport::Channel;

use crate::support::*;

/// An open StreamSecrets call, as Envoy holds one.
struct Envoy {
    requests: mpsc::Sender<DiscoveryRequest>,
    responses: tonic::Streaming<DiscoveryResponse>,
}

impl Envoy {
    async fn open(socket: &Socket) -> Self {
        let mut client = SecretDiscoveryServiceClient::new(socket.channel().await);
        let (requests, rx) = mpsc::channel(8);
        let responses = client
            .stream_secrets(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        Self {
            requests,
            responses,
        }
    }

    async fn send(&self, request: DiscoveryRequest) {
        self.requests.send(request).await.unwrap();
    }

    async fn recv(&mut self) -> DiscoveryResponse {
        next(&mut self.responses)
            .await
            .unwrap()
            .expect("the stream ended")
    }

    async fn quiet(&mut self, why: &str) {
        assert_quiet(&mut self.responses, why).await;
    }
}

fn request(names: &[&str], version: &str, nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        version_info: version.into(),
        resource_names: names.iter().map(|n| (*n).to_owned()).collect(),
        type_url: Secret::type_url(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

/// An Envoy node reporting build version `major.minor.0`.
fn node(major: u32, minor: u32) -> Node {
    Node {
        id: "sidecar~10.0.0.1~web".into(),
        cluster: "web".into(),
        user_agent_name: "envoy".into(),
        user_agent_version_type: Some(UserAgentVersionType::UserAgentBuildVersion(BuildVersion {
            version: Some(SemanticVersion {
                major_number: major,
                minor_number: minor,
                patch: 0,
            }),
            metadata: None,
        })),
        ..Default::default()
    }
}

fn first_request(names: &[&str], node: Node) -> DiscoveryRequest {
    DiscoveryRequest {
        node: Some(node),
        ..request(names, "", "")
    }
}

fn secrets(response: &DiscoveryResponse) -> Vec<Secret> {
    response
        .resources
        .iter()
        .map(|any| {
            assert_eq!(any.type_url, Secret::type_url());
            Secret::decode(any.value.as_slice()).unwrap()
        })
        .collect()
}

fn names(response: &DiscoveryResponse) -> Vec<String> {
    secrets(response).into_iter().map(|s| s.name).collect()
}

fn secret(response: &DiscoveryResponse, name: &str) -> Secret {
    secrets(response)
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no secret {name:?} in {:?}", names(response)))
}

fn inline(source: &Option<DataSource>) -> &[u8] {
    match source.as_ref().and_then(|s| s.specifier.as_ref()) {
        Some(Specifier::InlineBytes(bytes)) => bytes,
        other => panic!("not inline bytes: {other:?}"),
    }
}

fn tls(secret: &Secret) -> &TlsCertificate {
    match &secret.r#type {
        Some(SecretType::TlsCertificate(tls)) => tls,
        other => panic!("not a TLS certificate: {other:?}"),
    }
}

fn validation(secret: &Secret) -> &CertificateValidationContext {
    match &secret.r#type {
        Some(SecretType::ValidationContext(context)) => context,
        other => panic!("not a validation context: {other:?}"),
    }
}

/// The SPIFFE validator's trust domains: (name, PEM bundle).
fn spiffe_validator(secret: &Secret) -> Vec<(String, Vec<u8>)> {
    let context = validation(secret);
    assert!(context.trusted_ca.is_none());
    let custom = context.custom_validator_config.as_ref().unwrap();
    assert_eq!(custom.name, "envoy.tls.cert_validator.spiffe");
    let typed = custom.typed_config.as_ref().unwrap();
    assert_eq!(
        typed.type_url,
        "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.SPIFFECertValidatorConfig"
    );
    let config = SpiffeCertValidatorConfig::decode(typed.value.as_slice()).unwrap();
    config
        .trust_domains
        .iter()
        .map(|td| (td.name.clone(), inline(&td.trust_bundle).to_vec()))
        .collect()
}

fn pem_certs(der: &[&[u8]]) -> Vec<Vec<u8>> {
    der.iter().map(|d| d.to_vec()).collect()
}

/// The DER certificates of a PEM document.
fn parse_pem(pem_text: &[u8], label: &str) -> Vec<Vec<u8>> {
    let blocks = pem::parse_many(pem_text).unwrap();
    assert!(!blocks.is_empty());
    blocks
        .into_iter()
        .map(|b| {
            assert_eq!(b.tag(), label);
            b.into_contents()
        })
        .collect()
}

async fn sds_socket(config: WorkloadConfig) -> (World, Socket) {
    let world = World::new();
    let socket = Socket::start(world.identities(), config).await;
    (world, socket)
}

#[tokio::test]
async fn default_rootca_and_all_names() {
    let (world, socket) = sds_socket(WorkloadConfig::default()).await;
    let mut envoy = Envoy::open(&socket).await;
    envoy
        .send(first_request(&["default", "ROOTCA", "ALL"], node(1, 30)))
        .await;
    let response = envoy.recv().await;
    assert_eq!(response.type_url, Secret::type_url());
    assert!(!response.version_info.is_empty());
    assert!(!response.nonce.is_empty());
    let mut got = names(&response);
    got.sort();
    assert_eq!(got, ["ALL", "ROOTCA", "default"]);

    // default: the first SVID in entry-ID order (/db, entry "a"), chain and PKCS#8 key in PEM.
    let current = socket.identities.current();
    let first = &current.svids()[0].svid;
    let default = secret(&response, "default");
    let tls = tls(&default);
    assert_eq!(
        parse_pem(inline(&tls.certificate_chain), "CERTIFICATE"),
        first.cert_chain
    );
    let key_pem = inline(&tls.private_key);
    assert!(key_pem.starts_with(b"-----BEGIN PRIVATE KEY-----\n"));
    assert_eq!(
        parse_pem(key_pem, "PRIVATE KEY"),
        [first.private_key.secret_pkcs8_der().to_vec()]
    );
    // The key is usable as PKCS#8 P-256.
    aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &parse_pem(key_pem, "PRIVATE KEY")[0],
    )
    .unwrap();

    // ROOTCA: the own bundle only, in Envoy's SPIFFE validator (Envoy 1.30).
    let rootca = spiffe_validator(&secret(&response, "ROOTCA"));
    assert_eq!(rootca.len(), 1);
    assert_eq!(rootca[0].0, "example.org");
    assert_eq!(
        parse_pem(&rootca[0].1, "CERTIFICATE"),
        pem_certs(&[world.own.ca.cert_der()])
    );

    // ALL: own and federated, one trust domain each, sorted by name.
    let all = spiffe_validator(&secret(&response, "ALL"));
    let tds: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(tds, ["example.org", "federated.test"]);
    assert_eq!(
        parse_pem(&all[1].1, "CERTIFICATE"),
        pem_certs(&[world.federated.ca.cert_der()])
    );
}

#[tokio::test]
async fn names_are_configurable() {
    let mut config = WorkloadConfig::default();
    config.default_svid_name = "my-svid".into();
    config.default_bundle_name = "my-ca".into();
    config.default_all_bundles_name = "my-all".into();
    let (_world, socket) = sds_socket(config).await;
    let mut envoy = Envoy::open(&socket).await;
    envoy
        .send(first_request(&["my-svid", "my-ca", "my-all"], node(1, 30)))
        .await;
    let mut got = names(&envoy.recv().await);
    got.sort();
    assert_eq!(got, ["my-all", "my-ca", "my-svid"]);

    // The SPIRE names are now unknown.
    let mut envoy = Envoy::open(&socket).await;
    envoy.send(first_request(&["default"], node(1, 30))).await;
    let status = next(&mut envoy.responses).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn svids_by_spiffe_id_and_bundles_by_trust_domain() {
    let (world, socket) = sds_socket(WorkloadConfig::default()).await;
    let mut envoy = Envoy::open(&socket).await;
    envoy
        .send(first_request(
            &[
                "spiffe://example.org/web",
                "spiffe://federated.test",
                "spiffe://example.org",
            ],
            node(1, 30),
        ))
        .await;
    let response = envoy.recv().await;
    let mut got = names(&response);
    got.sort();
    assert_eq!(
        got,
        [
            "spiffe://example.org",
            "spiffe://example.org/web",
            "spiffe://federated.test"
        ]
    );
    let web = secret(&response, "spiffe://example.org/web");
    let current = socket.identities.current();
    assert_eq!(
        parse_pem(inline(&tls(&web).certificate_chain), "CERTIFICATE"),
        current.svids()[1].svid.cert_chain
    );
    let federated = spiffe_validator(&secret(&response, "spiffe://federated.test"));
    assert_eq!(federated.len(), 1);
    assert_eq!(federated[0].0, "federated.test");
    assert_eq!(
        parse_pem(&federated[0].1, "CERTIFICATE"),
        pem_certs(&[world.federated.ca.cert_der()])
    );
}

#[tokio::test]
async fn an_empty_name_list_means_everything() {
    let (_world, socket) = sds_socket(WorkloadConfig::default()).await;
    let mut envoy = Envoy::open(&socket).await;
    envoy.send(first_request(&[], node(1, 30))).await;
    let mut got = names(&envoy.recv().await);
    got.sort();
    assert_eq!(
        got,
        [
            "spiffe://example.org",
            "spiffe://example.org/db",
            "spiffe://example.org/web",
            "spiffe://federated.test"
        ]
    );
}

#[tokio::test]
async fn trusted_ca_when_the_spiffe_validator_is_disabled_or_envoy_is_old() {
    // Disabled by config.
    let mut config = WorkloadConfig::default();
    config.disable_spiffe_cert_validation = true;
    let (world, socket) = sds_socket(config).await;
    let mut envoy = Envoy::open(&socket).await;
    envoy.send(first_request(&["ROOTCA"], node(1, 30))).await;
    let rootca = secret(&envoy.recv().await, "ROOTCA");
    let context = validation(&rootca);
    assert!(context.custom_validator_config.is_none());
    assert_eq!(
        parse_pem(inline(&context.trusted_ca), "CERTIFICATE"),
        pem_certs(&[world.own.ca.cert_der()])
    );
    // ALL cannot be one trusted_ca without letting one trust domain vouch for another.
    let mut envoy = Envoy::open(&socket).await;
    envoy.send(first_request(&["ALL"], node(1, 30))).await;
    let status = next(&mut envoy.responses).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");

    // Envoy before 1.18, and an Envoy that does not report its build version.
    let (_world, socket) = sds_socket(WorkloadConfig::default()).await;
    for old in [node(1, 17), Node::default()] {
        let mut envoy = Envoy::open(&socket).await;
        envoy.send(first_request(&["ROOTCA"], old)).await;
        let rootca = secret(&envoy.recv().await, "ROOTCA");
        assert!(validation(&rootca).trusted_ca.is_some());
    }

    // One Envoy disabling it through its node metadata, as SPIRE allows.
    let mut disabling = node(1, 30);
    disabling.metadata = Some(Struct {
        fields: [(
            "disable_spiffe_cert_validation".to_owned(),
            Value {
                kind: Some(Kind::StringValue("true".into())),
            },
        )]
        .into(),
    });
    let mut envoy = Envoy::open(&socket).await;
    envoy.send(first_request(&["ROOTCA"], disabling)).await;
    let rootca = secret(&envoy.recv().await, "ROOTCA");
    assert!(validation(&rootca).trusted_ca.is_some());
}

#[tokio::test]
async fn stream_versioning_acks_nacks_stale_nonces_and_rotation() {
    let (world, socket) = sds_socket(WorkloadConfig::default()).await;
    let mut envoy = Envoy::open(&socket).await;

    // 1. First request, with the node: answered.
    envoy.send(first_request(&["ROOTCA"], node(1, 30))).await;
    let r1 = envoy.recv().await;
    assert_eq!(names(&r1), ["ROOTCA"]);

    // 2. Pure ACK (same names, current nonce and version): no response.
    envoy
        .send(request(&["ROOTCA"], &r1.version_info, &r1.nonce))
        .await;
    envoy.quiet("pure ACK").await;

    // 3. New names with the current nonce, without the node: answered, with a new version and
    //    nonce, and still in the SPIFFE validator style (the node was remembered).
    envoy
        .send(request(&["ROOTCA", "default"], &r1.version_info, &r1.nonce))
        .await;
    let r2 = envoy.recv().await;
    let mut got = names(&r2);
    got.sort();
    assert_eq!(got, ["ROOTCA", "default"]);
    assert_ne!(r2.version_info, r1.version_info);
    assert_ne!(r2.nonce, r1.nonce);
    assert_eq!(spiffe_validator(&secret(&r2, "ROOTCA")).len(), 1);

    // 4. A request with a stale nonce is ignored, even with new names.
    envoy
        .send(request(
            &["spiffe://example.org/web"],
            &r1.version_info,
            &r1.nonce,
        ))
        .await;
    envoy.quiet("stale nonce").await;

    // 5. A NACK (error_detail set, current nonce, same names): no response.
    envoy
        .send(DiscoveryRequest {
            error_detail: Some(RpcStatus {
                code: 3,
                message: "bad certificate".into(),
                details: Vec::new(),
            }),
            ..request(&["ROOTCA", "default"], &r1.version_info, &r2.nonce)
        })
        .await;
    envoy.quiet("NACK").await;

    // 6. Rotation pushes the whole requested set with a new version and nonce.
    let rotated = world.own.svid("a", "/db");
    let new_chain = rotated.svid.cert_chain.clone();
    socket.identities.set(WorkloadUpdate::new(
        vec![rotated, world.own.svid("b", "/web")],
        world.own.bundle(),
        [world.federated.bundle()],
    ));
    let r3 = envoy.recv().await;
    let mut got = names(&r3);
    got.sort();
    assert_eq!(got, ["ROOTCA", "default"]);
    assert_ne!(r3.version_info, r2.version_info);
    assert_ne!(r3.nonce, r2.nonce);
    assert_eq!(
        parse_pem(
            inline(&tls(&secret(&r3, "default")).certificate_chain),
            "CERTIFICATE"
        ),
        new_chain
    );

    // 7. Its ACK is quiet again; the stream stays open for the next rotation.
    envoy
        .send(request(&["ROOTCA", "default"], &r3.version_info, &r3.nonce))
        .await;
    envoy.quiet("ACK of the push").await;
    socket.identities.set(world.update());
    let r4 = envoy.recv().await;
    assert_ne!(r4.nonce, r3.nonce);
    assert_ne!(r4.version_info, r3.version_info);
}

#[tokio::test]
async fn unknown_names_end_the_stream_with_invalid_argument() {
    let (_world, socket) = sds_socket(WorkloadConfig::default()).await;
    let mut envoy = Envoy::open(&socket).await;
    envoy
        .send(first_request(
            &[
                "ROOTCA",
                "spiffe://example.org/nope",
                "spiffe://elsewhere.test",
            ],
            node(1, 30),
        ))
        .await;
    let status = next(&mut envoy.responses).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("spiffe://example.org/nope"),
        "{status:?}"
    );
    assert!(
        status.message().contains("spiffe://elsewhere.test"),
        "{status:?}"
    );

    // An unknown name added later, on an open stream, ends it too.
    let mut envoy = Envoy::open(&socket).await;
    envoy.send(first_request(&["ROOTCA"], node(1, 30))).await;
    let r1 = envoy.recv().await;
    envoy
        .send(request(&["ROOTCA", "nope"], &r1.version_info, &r1.nonce))
        .await;
    let status = next(&mut envoy.responses).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn delta_secrets_is_unimplemented() {
    let (_world, socket) = sds_socket(WorkloadConfig::default()).await;
    let mut client = SecretDiscoveryServiceClient::new(socket.channel().await);
    let (tx, rx) = mpsc::channel::<DeltaDiscoveryRequest>(1);
    tx.send(DeltaDiscoveryRequest::default()).await.unwrap();
    let status = match client.delta_secrets(ReceiverStream::new(rx)).await {
        Err(status) => status,
        Ok(response) => next(&mut response.into_inner()).await.unwrap_err(),
    };
    assert_eq!(status.code(), Code::Unimplemented);
}

#[tokio::test]
async fn fetch_secrets_answers_once() {
    let (_world, socket) = sds_socket(WorkloadConfig::default()).await;
    let mut client: SecretDiscoveryServiceClient<Channel> =
        SecretDiscoveryServiceClient::new(socket.channel().await);
    let response = client
        .fetch_secrets(first_request(
            &["default", "spiffe://federated.test"],
            node(1, 30),
        ))
        .await
        .unwrap()
        .into_inner();
    let mut got = names(&response);
    got.sort();
    assert_eq!(got, ["default", "spiffe://federated.test"]);
    let status = client
        .fetch_secrets(first_request(&["nope"], node(1, 30)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn hostile_requests_do_not_break_the_server() {
    let (_world, socket) = sds_socket(WorkloadConfig::default()).await;
    // A stream that hangs up mid-way, huge and odd names, garbage nonces.
    {
        let envoy = Envoy::open(&socket).await;
        envoy
            .send(first_request(
                &["", "\u{0}", &"x".repeat(100_000)],
                Node::default(),
            ))
            .await;
        drop(envoy);
    }
    let mut envoy = Envoy::open(&socket).await;
    envoy.send(request(&[""], "garbage", "garbage")).await;
    // Only empty names: everything.
    let response = envoy.recv().await;
    assert_eq!(secrets(&response).len(), 4);
    // Unknown names are echoed back shortened, however many and long they are.
    let long = "y".repeat(100_000);
    let mut many: Vec<String> = (0..100).map(|i| format!("unknown-{i}")).collect();
    many.push(long);
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let mut envoy = Envoy::open(&socket).await;
    envoy.send(first_request(&many, node(1, 30))).await;
    let status = next(&mut envoy.responses).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().len() < 4096, "{}", status.message().len());
    assert!(status.message().contains("more"), "{}", status.message());

    // The server still answers new calls.
    let mut envoy = Envoy::open(&socket).await;
    envoy.send(first_request(&["default"], node(1, 30))).await;
    assert_eq!(names(&envoy.recv().await), ["default"]);
}
