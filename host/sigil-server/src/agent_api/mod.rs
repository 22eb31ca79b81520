//! The agent-facing API on TCP (`bind_address:bind_port`): TLS with the server's SVID;
//! `AttestAgent` anonymous (the node attestor decides), everything else with an agent SVID
//! (mTLS), authorized by the entry cache.

mod attest;
mod entries;
mod svid;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sigil_proto::spire::api::server::agent::v1::agent_server::AgentServer;
use sigil_proto::spire::api::server::entry::v1::entry_server::EntryServer;
use sigil_proto::spire::api::server::svid::v1::svid_server::SvidServer;
use sigil_types::SpiffeId;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tonic::{Request, Status};

use crate::error::ServerError;
use crate::setup::Server;
use crate::tls::{BundleClientVerifier, ServerSvid, peer_spiffe_id, provider};

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the server's own SVID is checked for renewal.
const SVID_CHECK: Duration = Duration::from_secs(30);

/// Serve the agent API until `shutdown` completes.
pub async fn serve_agents(
    server: Arc<Server>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let address = format!("{}:{}", server.config.bind_address, server.config.bind_port);
    let listener = TcpListener::bind(&address)
        .await
        .map_err(|source| ServerError::Io {
            path: address.clone().into(),
            source,
        })?;
    serve_agents_on(server, listener, shutdown).await
}

/// Serve the agent API on `listener` (tests bind port 0).
pub async fn serve_agents_on(
    server: Arc<Server>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let svid = Arc::new(ServerSvid::new(&server.ca).map_err(ServerError::Tls)?);
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?
        .with_client_cert_verifier(Arc::new(BundleClientVerifier::new(server.ca.clone())))
        .with_cert_resolver(svid.clone());
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let local: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(address = ?local, "agent API listening");

    let renewer = {
        let (server, svid) = (server.clone(), svid.clone());
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(SVID_CHECK);
            loop {
                ticks.tick().await;
                if let Err(error) = svid.renew_if_due(&server.ca) {
                    tracing::warn!(error = %error, "cannot renew the server SVID");
                }
            }
        })
    };

    let (connections, incoming) = tokio::sync::mpsc::channel(64);
    let accept = tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let (acceptor, connections) = (acceptor.clone(), connections.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = connections.send(Ok::<_, std::io::Error>(tls)).await;
                    }
                    Ok(Err(error)) => {
                        tracing::debug!(%peer, error = %error, "TLS handshake failed");
                    }
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });

    let served = tonic::transport::Server::builder()
        .add_service(AgentServer::new(attest::AgentPeerApi(server.clone())))
        .add_service(SvidServer::new(svid::SvidPeerApi(server.clone())))
        .add_service(EntryServer::new(entries::EntryPeerApi(server.clone())))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::ReceiverStream::new(incoming),
            shutdown,
        )
        .await;
    accept.abort();
    renewer.abort();
    served.map_err(ServerError::from)
}

/// Admin calls are refused on the TCP API until admin entries' SVIDs are recognised there.
pub(crate) fn admin_only() -> Status {
    Status::permission_denied("admin calls are served on the admin socket only")
}

/// The calling agent: the SPIFFE ID of its client certificate, which must belong to an
/// attested agent that is not banned.
pub(crate) fn calling_agent<T>(server: &Server, request: &Request<T>) -> Result<SpiffeId, Status> {
    let certs = request.peer_certs();
    let id = peer_spiffe_id(certs.as_deref().map(Vec::as_slice))
        .ok_or_else(|| Status::unauthenticated("this call needs an agent SVID (mTLS)"))?;
    match server.cache.agent(&id) {
        Some(agent) if agent.banned => {
            Err(Status::permission_denied(format!("agent {id} is banned")))
        }
        Some(_) => Ok(id),
        None => Err(Status::permission_denied(format!(
            "{id} is not an attested agent"
        ))),
    }
}
