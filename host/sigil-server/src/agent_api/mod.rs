//! The agent-facing API on TCP (`bind_address:bind_port`): TLS with the server's SVID and
//! SPIRE's authorization policy. `AttestAgent` and `GetBundle` are anonymous (the node
//! attestor decides who becomes an agent); agent calls need the agent's active SVID (mTLS,
//! `caller.rs`) and are authorized by the entry cache; admin calls need the SVID of an entry with `admin` set,
//! downstream calls one with `downstream` set.

mod attest;
mod bundle;
mod caller;
mod entries;
mod svid;

use std::sync::Arc;
use std::time::Duration;

use sigil_proto::spire::api::server::agent::v1::agent_server::AgentServer;
use sigil_proto::spire::api::server::bundle::v1::bundle_server::BundleServer;
use sigil_proto::spire::api::server::entry::v1::entry_server::EntryServer;
use sigil_proto::spire::api::server::svid::v1::svid_server::SvidServer;
use sigil_proto::spire::api::server::trustdomain::v1::trust_domain_server::TrustDomainServer;
use sigil_store::EntryFilter;
use sigil_types::{RegistrationEntry, SpiffeId};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_stream::StreamExt;
use tonic::Request;

use crate::api_error::ApiError;
use crate::error::ServerError;
use crate::setup::Server;
use crate::tls::{ServerSvid, client_verifier, peer_spiffe_id, provider};

pub(crate) use caller::calling_agent;

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Agent connections open at once (TLS handshakes in progress included); more are closed as
/// they arrive. Each agent keeps one.
const MAX_AGENT_CONNECTIONS: usize = 16_384;
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
        .with_client_cert_verifier(Arc::new(client_verifier(server.ca.clone())))
        .with_cert_resolver(svid.clone());
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    // The bound address, not the configured one: with `bind_port = 0` this line is how an
    // operator (or a test) learns the port.
    match listener.local_addr() {
        Ok(address) => tracing::info!(%address, "agent API listening"),
        Err(error) => tracing::info!(error = %error, "agent API listening"),
    }

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
        // Agents keep their connections open between syncs: no idle timeout here.
        let limits = sigil_listen::Limits {
            max_connections: MAX_AGENT_CONNECTIONS,
            idle_timeout: None,
            ..sigil_listen::Limits::default()
        };
        let mut accepted = std::pin::pin!(sigil_listen::tcp_incoming(listener, limits));
        while let Some(Ok(stream)) = accepted.next().await {
            let peer = stream.peer_addr().ok();
            let (acceptor, connections) = (acceptor.clone(), connections.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = connections.send(Ok::<_, std::io::Error>(tls)).await;
                    }
                    Ok(Err(error)) => {
                        tracing::debug!(?peer, error = %error, "TLS handshake failed");
                    }
                    Err(_) => tracing::debug!(?peer, "TLS handshake timed out"),
                }
            });
        }
    });

    let served = tonic::transport::Server::builder()
        .add_service(AgentServer::new(attest::AgentPeerApi(server.clone())))
        .add_service(SvidServer::new(svid::SvidPeerApi(server.clone())))
        .add_service(EntryServer::new(entries::EntryPeerApi(server.clone())))
        .add_service(BundleServer::new(bundle::BundlePeerApi(server.clone())))
        .add_service(TrustDomainServer::new(bundle::TrustDomainPeerApi(
            server.clone(),
        )))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::ReceiverStream::new(incoming),
            shutdown,
        )
        .await;
    accept.abort();
    renewer.abort();
    served.map_err(ServerError::from)
}

/// The caller's SPIFFE ID: the URI SAN of its client certificate, which the TLS layer has
/// already verified against the bundle.
fn caller_id<T>(request: &Request<T>) -> Result<SpiffeId, ApiError> {
    let certs = request.peer_certs();
    peer_spiffe_id(certs.as_deref().map(Vec::as_slice))
        .ok_or_else(|| ApiError::unauthenticated("this call needs an X509-SVID (mTLS)"))
}

/// The registration entries of the caller's SPIFFE ID. Admin and downstream calls are rare
/// (operators' tools, nested servers), so they read the datastore's SPIFFE-ID index rather
/// than keeping a second index in the entry cache.
async fn caller_entries<T>(
    server: &Server,
    request: &Request<T>,
) -> Result<(SpiffeId, Vec<RegistrationEntry>), ApiError> {
    let id = caller_id(request)?;
    let filter = EntryFilter {
        by_spiffe_id: Some(id.clone()),
        ..EntryFilter::default()
    };
    let entries = server
        .store
        .list_entries(&filter, None)
        .await
        .map_err(ApiError::from)?;
    Ok((id, entries.items))
}

/// An admin caller: its SVID's SPIFFE ID has a registration entry with `admin` set (SPIRE's
/// rule). Admin calls on the TCP API then behave exactly as on the admin socket.
pub(crate) async fn calling_admin<T>(
    server: &Server,
    request: &Request<T>,
) -> Result<(), ApiError> {
    let (id, entries) = caller_entries(server, request).await?;
    if entries.iter().any(|e| e.admin) {
        Ok(())
    } else {
        Err(ApiError::permission_denied(format!(
            "{id} is not an admin: no registration entry with admin set has this SPIFFE ID"
        )))
    }
}

/// A downstream caller (a nested server): the entry of its SPIFFE ID with `downstream` set.
pub(crate) async fn calling_downstream<T>(
    server: &Server,
    request: &Request<T>,
) -> Result<RegistrationEntry, ApiError> {
    let (id, entries) = caller_entries(server, request).await?;
    entries.into_iter().find(|e| e.downstream).ok_or_else(|| {
        ApiError::permission_denied(format!(
            "{id} is not a downstream server: no registration entry with downstream set has \
             this SPIFFE ID"
        ))
    })
}
