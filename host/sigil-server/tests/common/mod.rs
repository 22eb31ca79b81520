//! What the agent-API tests share: a TLS channel that trusts the bundle and checks the
//! server's SPIFFE ID, and a join-token attestation.

#![expect(
    clippy::expect_used,
    reason = "test helpers: a failed setup step must fail the test"
)]

use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use sigil_proto::spire::api::server::agent::v1 as agent;
use sigil_proto::spire::api::types as wire;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};

const SERVER_ID: &str = "spiffe://example.org/spire/server";

/// A gRPC channel to `address` over TLS, trusting `bundle_pem`, with `identity` (an agent
/// SVID chain and its key) when given.
pub(crate) async fn channel(
    address: SocketAddr,
    bundle_pem: &str,
    identity: Option<(Vec<Vec<u8>>, Vec<u8>)>,
) -> Channel {
    let verifier = sigil_tls::SpiffeServerVerifier::new(
        sigil_tls::provider(),
        SERVER_ID.parse().expect("server ID"),
    );
    let roots: Vec<Vec<u8>> = pem::parse_many(bundle_pem)
        .expect("bundle PEM")
        .into_iter()
        .map(pem::Pem::into_contents)
        .collect();
    verifier
        .set_roots(roots.iter().map(Vec::as_slice))
        .expect("roots");
    connect(address, verifier, identity).await
}

/// A gRPC channel to `address` over TLS, checking the server with `verifier`, with
/// `identity` when given.
pub(crate) async fn connect(
    address: SocketAddr,
    verifier: sigil_tls::SpiffeServerVerifier,
    identity: Option<(Vec<Vec<u8>>, Vec<u8>)>,
) -> Channel {
    let builder = rustls::ClientConfig::builder_with_provider(sigil_tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut config = match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(
                chain.into_iter().map(CertificateDer::from).collect(),
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
            )
            .expect("client auth"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = TlsConnector::from(Arc::new(config));
    Endpoint::from_static("http://sigil-server")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let connector = connector.clone();
            async move {
                let tcp = TcpStream::connect(address).await?;
                tcp.set_nodelay(true)?;
                let name = ServerName::try_from("sigil-server").map_err(std::io::Error::other)?;
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await
        .expect("connect to the agent API")
}

/// Attest with `token`; the agent key is generated here and never leaves the test.
pub(crate) async fn attest(
    channel: Channel,
    token: &str,
    key: &rcgen::KeyPair,
) -> Result<wire::X509svid, tonic::Status> {
    let csr = sigil_testkit::certs::csr_der(key);
    let first = agent::AttestAgentRequest {
        step: Some(agent::attest_agent_request::Step::Params(
            agent::attest_agent_request::Params {
                data: Some(wire::AttestationData {
                    r#type: "join_token".into(),
                    payload: token.as_bytes().to_vec(),
                }),
                params: Some(agent::AgentX509svidParams { csr }),
            },
        )),
    };
    let mut client = agent::agent_client::AgentClient::new(channel);
    let mut responses = client
        .attest_agent(tokio_stream::iter(vec![first]))
        .await?
        .into_inner();
    let response = responses
        .message()
        .await?
        .expect("a response before the stream ends");
    match response.step {
        Some(agent::attest_agent_response::Step::Result(result)) => Ok(result.svid.expect("svid")),
        other => panic!("join_token has no challenge, got {other:?}"),
    }
}
