//! A stand-in for the server's agent API, for the paused-clock tests of the sync loop. It is
//! not the server: it serves the generated tonic traits of the four services the loop calls
//! (Agent, Entry, Bundle, SVID) with only what the loop needs, over TLS on in-memory streams
//! (`ServerClient::in_memory`: on a loopback socket tokio's paused clock would jump ahead of
//! the I/O). It mints with a real `sigil_ca::X509Ca` on the test's clock, so the SVIDs'
//! validity follows the paused time. It answers `SyncAuthorizedEntries` with
//! `Unimplemented`, so the loop uses `GetAuthorizedEntries` (the revision protocol is
//! covered by the real-server tests), and it counts calls so that tests assert on what
//! happened rather than on log lines.
//!
//! Every call returns `Unavailable` while `State::unavailable` is set, and
//! `PermissionDenied` with `State::refusal` when set (the server refusing the agent).

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime as TlsTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use sigil_ca::{KeyType, Subject, X509Ca, X509SvidParams};
use sigil_proto::spire::api::server::agent::v1 as agent_api;
use sigil_proto::spire::api::server::bundle::v1 as bundle_api;
use sigil_proto::spire::api::server::entry::v1 as entry_api;
use sigil_proto::spire::api::server::svid::v1 as svid_api;
use sigil_proto::spire::api::types as wire;
use sigil_types::{Bundle, Clock, RegistrationEntry, SpiffeId, TrustDomain, X509Authority};
use tokio::io::DuplexStream;
use tokio::sync::mpsc;
use tonic::transport::server::TlsConnectInfo;
use tonic::{Request, Response, Status, Streaming};

type BoxStream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

/// What the stand-in serves and what it saw.
#[derive(Debug, Default)]
pub(super) struct State {
    /// The authorized entries.
    pub(super) entries: Vec<RegistrationEntry>,
    /// Lifetime of the agent SVIDs `RenewAgent` mints.
    pub(super) agent_ttl: Duration,
    /// Lifetime of the workload X509-SVIDs.
    pub(super) svid_ttl: Duration,
    /// Every call fails with `Unavailable` (the server is down).
    pub(super) unavailable: bool,
    /// Every call fails with `PermissionDenied` and this message (the agent is refused).
    pub(super) refusal: Option<String>,
    /// `RenewAgent` calls answered.
    pub(super) renewals: usize,
    /// `AttestAgent` calls answered.
    pub(super) attestations: usize,
    /// `GetAuthorizedEntries` calls answered (one per successful sync round).
    pub(super) entry_fetches: usize,
    /// Calls refused with `Unavailable`.
    pub(super) failed_calls: usize,
    /// X509-SVIDs minted by `BatchNewX509SVID`.
    pub(super) minted: usize,
    /// The client certificate (leaf) of the last `GetAuthorizedEntries` call.
    pub(super) last_client_cert: Option<Vec<u8>>,
}

/// The stand-in server: its CA, its address and its state.
#[derive(Clone)]
pub(super) struct StandIn {
    /// Where the agent's client sends the server end of each new connection.
    pub(super) dial: mpsc::UnboundedSender<DuplexStream>,
    pub(super) ca: Arc<X509Ca>,
    pub(super) state: Arc<Mutex<State>>,
    clock: Arc<dyn Clock>,
}

impl StandIn {
    /// Serves the stand-in over in-memory TLS connections with a CA made at `clock`'s time.
    pub(super) async fn start(clock: Arc<dyn Clock>, state: State) -> StandIn {
        let td = trust_domain();
        let key = sigil_ca::Key::generate("ca", KeyType::EcP256).expect("CA key");
        let ca = X509Ca::self_signed(
            &td,
            key,
            &Subject::spire_ca_default(),
            Duration::from_secs(86_400),
            clock.now(),
        )
        .expect("CA");
        let ca = Arc::new(ca);
        let mut params = X509SvidParams::new(SpiffeId::new(&td, "/spire/server").expect("ID"));
        params.ttl = Some(Duration::from_secs(86_400));
        let server_svid = ca
            .mint_x509_svid_with_new_key(KeyType::EcP256, &params, clock.now())
            .expect("server SVID");
        let chain = server_svid
            .cert_chain
            .iter()
            .cloned()
            .map(CertificateDer::from)
            .collect();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            server_svid.private_key.secret_pkcs8_der().to_vec(),
        ));
        let mut config = rustls::ServerConfig::builder_with_provider(sigil_tls::provider())
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_client_cert_verifier(Arc::new(AnyClientCert))
            .with_single_cert(chain, key)
            .expect("server certificate");
        config.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let (dial, mut dialed) = mpsc::unbounded_channel::<DuplexStream>();
        let stand_in = StandIn {
            dial,
            ca,
            state: Arc::new(Mutex::new(state)),
            clock,
        };
        let (connections, incoming) = mpsc::channel(16);
        tokio::spawn(async move {
            while let Some(stream) = dialed.recv().await {
                let (acceptor, connections) = (acceptor.clone(), connections.clone());
                tokio::spawn(async move {
                    // A failed handshake (the agent reconnecting mid-way) drops that one only.
                    if let Ok(tls) = acceptor.accept(stream).await {
                        let _ = connections.send(Ok::<_, std::io::Error>(tls)).await;
                    }
                });
            }
        });
        let incoming = tokio_stream::wrappers::ReceiverStream::new(incoming);
        let router = tonic::transport::Server::builder()
            .add_service(agent_api::agent_server::AgentServer::new(stand_in.clone()))
            .add_service(entry_api::entry_server::EntryServer::new(stand_in.clone()))
            .add_service(bundle_api::bundle_server::BundleServer::new(
                stand_in.clone(),
            ))
            .add_service(svid_api::svid_server::SvidServer::new(stand_in.clone()));
        tokio::spawn(router.serve_with_incoming(incoming));
        stand_in
    }

    /// The state, locked.
    pub(super) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The bundle: the stand-in's CA.
    pub(super) fn bundle(&self) -> Bundle {
        let mut bundle = Bundle::new(trust_domain());
        bundle.x509_authorities.push(X509Authority {
            der: self.ca.cert_der().to_vec(),
            tainted: false,
        });
        bundle.sequence_number = 1;
        bundle
    }

    /// A certificate chain for `spiffe_id` from `csr`, living `ttl` from now on the clock.
    pub(super) fn mint(&self, csr: &[u8], spiffe_id: &SpiffeId, ttl: Duration) -> wire::X509svid {
        let mut params = X509SvidParams::new(spiffe_id.clone());
        params.ttl = Some(ttl);
        let issued = self
            .ca
            .mint_x509_svid(csr, &params, self.clock.now())
            .expect("mint");
        wire::X509svid {
            id: Some(wire::Spiffeid::from(spiffe_id)),
            cert_chain: issued.cert_chain,
            expires_at: issued.expires_at,
            ..wire::X509svid::default()
        }
    }

    /// `Err` when the stand-in is set to fail every call.
    fn check(&self) -> Result<(), Status> {
        let mut state = self.state();
        if let Some(reason) = &state.refusal {
            return Err(Status::permission_denied(reason.clone()));
        }
        if state.unavailable {
            state.failed_calls += 1;
            return Err(Status::unavailable("the stand-in is down"));
        }
        Ok(())
    }
}

/// The stand-in's trust domain.
pub(super) fn trust_domain() -> TrustDomain {
    TrustDomain::new("example.org").expect("trust domain")
}

/// The agent's SPIFFE ID at the stand-in.
pub(super) fn agent_id() -> SpiffeId {
    SpiffeId::new(&trust_domain(), "/spire/agent/test/node").expect("agent ID")
}

fn not_in_the_stand_in() -> Status {
    Status::unimplemented("not part of the test stand-in")
}

/// Accepts any client certificate: the stand-in records it instead of checking it (the
/// real server's checks are covered by its own tests).
#[derive(Debug)]
struct AnyClientCert;

impl ClientCertVerifier for AnyClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: TlsTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = sigil_tls::provider().signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, &algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = sigil_tls::provider().signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, &algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        sigil_tls::provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

// === the services: what the sync loop calls, and `Unimplemented` for the rest ===

#[tonic::async_trait]
impl agent_api::agent_server::Agent for StandIn {
    type AttestAgentStream = BoxStream<agent_api::AttestAgentResponse>;

    async fn count_agents(
        &self,
        _: Request<agent_api::CountAgentsRequest>,
    ) -> Result<Response<agent_api::CountAgentsResponse>, Status> {
        Err(not_in_the_stand_in())
    }
    async fn list_agents(
        &self,
        _: Request<agent_api::ListAgentsRequest>,
    ) -> Result<Response<agent_api::ListAgentsResponse>, Status> {
        Err(not_in_the_stand_in())
    }
    async fn get_agent(
        &self,
        _: Request<agent_api::GetAgentRequest>,
    ) -> Result<Response<wire::Agent>, Status> {
        Err(not_in_the_stand_in())
    }
    async fn delete_agent(
        &self,
        _: Request<agent_api::DeleteAgentRequest>,
    ) -> Result<Response<()>, Status> {
        Err(not_in_the_stand_in())
    }
    async fn ban_agent(
        &self,
        _: Request<agent_api::BanAgentRequest>,
    ) -> Result<Response<()>, Status> {
        Err(not_in_the_stand_in())
    }
    async fn attest_agent(
        &self,
        request: Request<Streaming<agent_api::AttestAgentRequest>>,
    ) -> Result<Response<Self::AttestAgentStream>, Status> {
        self.check()?;
        // No challenge: the stand-in takes any attestation data and answers reattestable.
        let first = request
            .into_inner()
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("no request"))?;
        let Some(agent_api::attest_agent_request::Step::Params(params)) = first.step else {
            return Err(Status::invalid_argument("params come first"));
        };
        let csr = params.params.map(|p| p.csr).unwrap_or_default();
        let ttl = self.state().agent_ttl;
        let svid = self.mint(&csr, &agent_id(), ttl);
        self.state().attestations += 1;
        let result = agent_api::attest_agent_response::Result {
            svid: Some(svid),
            reattestable: true,
        };
        let response = agent_api::AttestAgentResponse {
            step: Some(agent_api::attest_agent_response::Step::Result(result)),
        };
        Ok(Response::new(Box::pin(tokio_stream::once(Ok(response)))))
    }
    async fn renew_agent(
        &self,
        request: Request<agent_api::RenewAgentRequest>,
    ) -> Result<Response<agent_api::RenewAgentResponse>, Status> {
        self.check()?;
        let csr = request
            .into_inner()
            .params
            .map(|p| p.csr)
            .unwrap_or_default();
        let ttl = self.state().agent_ttl;
        let svid = self.mint(&csr, &agent_id(), ttl);
        self.state().renewals += 1;
        Ok(Response::new(agent_api::RenewAgentResponse {
            svid: Some(svid),
        }))
    }
    async fn create_join_token(
        &self,
        _: Request<agent_api::CreateJoinTokenRequest>,
    ) -> Result<Response<wire::JoinToken>, Status> {
        Err(not_in_the_stand_in())
    }
    async fn post_status(
        &self,
        _: Request<agent_api::PostStatusRequest>,
    ) -> Result<Response<agent_api::PostStatusResponse>, Status> {
        Err(not_in_the_stand_in())
    }
}

#[tonic::async_trait]
impl bundle_api::bundle_server::Bundle for StandIn {
    async fn count_bundles(
        &self,
        _: Request<bundle_api::CountBundlesRequest>,
    ) -> Result<Response<bundle_api::CountBundlesResponse>, Status> {
        Err(not_in_the_stand_in())
    }
    async fn get_bundle(
        &self,
        request: Request<bundle_api::GetBundleRequest>,
    ) -> Result<Response<wire::Bundle>, Status> {
        let _ = request;
        self.check()?;
        Ok(Response::new(wire::Bundle::from(&self.bundle())))
    }
    async fn append_bundle(
        &self,
        _: Request<bundle_api::AppendBundleRequest>,
    ) -> Result<Response<wire::Bundle>, Status> {
        Err(not_in_the_stand_in())
    }
    async fn publish_jwt_authority(
        &self,
        _: Request<bundle_api::PublishJwtAuthorityRequest>,
    ) -> Result<Response<bundle_api::PublishJwtAuthorityResponse>, Status> {
        Err(not_in_the_stand_in())
    }
    async fn publish_wit_authority(
        &self,
        _: Request<bundle_api::PublishWitAuthorityRequest>,
    ) -> Result<Response<bundle_api::PublishWitAuthorityResponse>, Status> {
        Err(not_in_the_stand_in())
    }
    async fn list_federated_bundles(
        &self,
        _: Request<bundle_api::ListFederatedBundlesRequest>,
    ) -> Result<Response<bundle_api::ListFederatedBundlesResponse>, Status> {
        Err(not_in_the_stand_in())
    }
    async fn get_federated_bundle(
        &self,
        _: Request<bundle_api::GetFederatedBundleRequest>,
    ) -> Result<Response<wire::Bundle>, Status> {
        Err(not_in_the_stand_in())
    }
    async fn batch_create_federated_bundle(
        &self,
        _: Request<bundle_api::BatchCreateFederatedBundleRequest>,
    ) -> Result<Response<bundle_api::BatchCreateFederatedBundleResponse>, Status> {
        Err(not_in_the_stand_in())
    }
    async fn batch_update_federated_bundle(
        &self,
        _: Request<bundle_api::BatchUpdateFederatedBundleRequest>,
    ) -> Result<Response<bundle_api::BatchUpdateFederatedBundleResponse>, Status> {
        Err(not_in_the_stand_in())
    }
    async fn batch_set_federated_bundle(
        &self,
        _: Request<bundle_api::BatchSetFederatedBundleRequest>,
    ) -> Result<Response<bundle_api::BatchSetFederatedBundleResponse>, Status> {
        Err(not_in_the_stand_in())
    }
    async fn batch_delete_federated_bundle(
        &self,
        _: Request<bundle_api::BatchDeleteFederatedBundleRequest>,
    ) -> Result<Response<bundle_api::BatchDeleteFederatedBundleResponse>, Status> {
        Err(not_in_the_stand_in())
    }
}

#[tonic::async_trait]
impl entry_api::entry_server::Entry for StandIn {
    type SyncAuthorizedEntriesStream = BoxStream<entry_api::SyncAuthorizedEntriesResponse>;

    async fn count_entries(
        &self,
        _: Request<entry_api::CountEntriesRequest>,
    ) -> Result<Response<entry_api::CountEntriesResponse>, Status> {
        Err(not_in_the_stand_in())
    }
    async fn list_entries(
        &self,
        _: Request<entry_api::ListEntriesRequest>,
    ) -> Result<Response<entry_api::ListEntriesResponse>, Status> {
        Err(not_in_the_stand_in())
    }
    async fn get_entry(
        &self,
        _: Request<entry_api::GetEntryRequest>,
    ) -> Result<Response<wire::Entry>, Status> {
        Err(not_in_the_stand_in())
    }
    async fn batch_create_entry(
        &self,
        _: Request<entry_api::BatchCreateEntryRequest>,
    ) -> Result<Response<entry_api::BatchCreateEntryResponse>, Status> {
        Err(not_in_the_stand_in())
    }
    async fn batch_update_entry(
        &self,
        _: Request<entry_api::BatchUpdateEntryRequest>,
    ) -> Result<Response<entry_api::BatchUpdateEntryResponse>, Status> {
        Err(not_in_the_stand_in())
    }
    async fn batch_delete_entry(
        &self,
        _: Request<entry_api::BatchDeleteEntryRequest>,
    ) -> Result<Response<entry_api::BatchDeleteEntryResponse>, Status> {
        Err(not_in_the_stand_in())
    }
    async fn get_authorized_entries(
        &self,
        request: Request<entry_api::GetAuthorizedEntriesRequest>,
    ) -> Result<Response<entry_api::GetAuthorizedEntriesResponse>, Status> {
        self.check()?;
        // The TLS layer's record of the client certificate (over an in-memory stream, so
        // not `Request::peer_certs`, which looks for a TCP connection).
        let client_cert = request
            .extensions()
            .get::<TlsConnectInfo<()>>()
            .and_then(TlsConnectInfo::peer_certs)
            .and_then(|certs| certs.first().map(|c| c.to_vec()));
        let mut state = self.state();
        state.entry_fetches += 1;
        state.last_client_cert = client_cert;
        let entries = state.entries.iter().map(wire::Entry::from).collect();
        Ok(Response::new(entry_api::GetAuthorizedEntriesResponse {
            entries,
        }))
    }
    async fn sync_authorized_entries(
        &self,
        _: Request<Streaming<entry_api::SyncAuthorizedEntriesRequest>>,
    ) -> Result<Response<Self::SyncAuthorizedEntriesStream>, Status> {
        Err(not_in_the_stand_in())
    }
}

#[tonic::async_trait]
impl svid_api::svid_server::Svid for StandIn {
    async fn mint_x509svid(
        &self,
        _: Request<svid_api::MintX509svidRequest>,
    ) -> Result<Response<svid_api::MintX509svidResponse>, Status> {
        Err(not_in_the_stand_in())
    }
    async fn mint_jwtsvid(
        &self,
        _: Request<svid_api::MintJwtsvidRequest>,
    ) -> Result<Response<svid_api::MintJwtsvidResponse>, Status> {
        Err(not_in_the_stand_in())
    }
    async fn mint_witsvid(
        &self,
        _: Request<svid_api::MintWitsvidRequest>,
    ) -> Result<Response<svid_api::MintWitsvidResponse>, Status> {
        Err(not_in_the_stand_in())
    }
    async fn batch_new_x509svid(
        &self,
        request: Request<svid_api::BatchNewX509svidRequest>,
    ) -> Result<Response<svid_api::BatchNewX509svidResponse>, Status> {
        self.check()?;
        let (entries, ttl) = {
            let state = self.state();
            (state.entries.clone(), state.svid_ttl)
        };
        let mut results = Vec::new();
        for params in request.into_inner().params {
            let entry = entries
                .iter()
                .find(|e| e.id.as_str() == params.entry_id)
                .ok_or_else(|| Status::not_found("no such entry"))?;
            results.push(svid_api::batch_new_x509svid_response::Result {
                status: Some(wire::Status::default()),
                svid: Some(self.mint(&params.csr, &entry.spiffe_id, ttl)),
            });
        }
        self.state().minted += results.len();
        Ok(Response::new(svid_api::BatchNewX509svidResponse {
            results,
        }))
    }
    async fn new_jwtsvid(
        &self,
        _: Request<svid_api::NewJwtsvidRequest>,
    ) -> Result<Response<svid_api::NewJwtsvidResponse>, Status> {
        Err(not_in_the_stand_in())
    }
    async fn batch_new_witsvid(
        &self,
        _: Request<svid_api::BatchNewWitsvidRequest>,
    ) -> Result<Response<svid_api::BatchNewWitsvidResponse>, Status> {
        Err(not_in_the_stand_in())
    }
    async fn new_downstream_x509ca(
        &self,
        _: Request<svid_api::NewDownstreamX509caRequest>,
    ) -> Result<Response<svid_api::NewDownstreamX509caResponse>, Status> {
        Err(not_in_the_stand_in())
    }
}
