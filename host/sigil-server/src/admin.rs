//! The admin Unix socket: SPIRE's server API for local operators and tools (the CLI,
//! spire-controller-manager). Who may connect is decided by the socket file's mode (0770).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use sigil_proto::spire::api::server::agent::v1::agent_server::AgentServer;
use sigil_proto::spire::api::server::bundle::v1::bundle_server::BundleServer;
use sigil_proto::spire::api::server::entry::v1::entry_server::EntryServer;
use sigil_proto::spire::api::server::svid::v1::svid_server::SvidServer;
use sigil_proto::spire::api::server::trustdomain::v1::trust_domain_server::TrustDomainServer;
use tokio::net::UnixListener;
use tonic_health::ServingStatus as Health;

use crate::api::agent::AgentApi;
use crate::api::bundle::BundleApi;
use crate::api::entry::EntryApi;
use crate::api::svid::SvidAdminApi;
use crate::api::trustdomain::TrustDomainApi;
use crate::error::ServerError;
use crate::setup::{Server, create_private_dir};

/// Mode of the admin socket: the server's user and group.
const SOCKET_MODE: u32 = 0o770;

/// Serve the admin API on the configured `socket_path` until `shutdown` completes. A stale
/// socket file from an earlier run is replaced.
pub async fn serve(
    server: Arc<Server>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let path = server.config.socket_path.clone();
    let listener = bind(&path)?;
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_service_status("", Health::Serving).await;
    tracing::info!(socket = %path.display(), "admin API listening");
    // Operators' tools keep no connection for long: the default bounds and idle timeout.
    let incoming = sigil_listen::unix_incoming(listener, sigil_listen::Limits::default());
    let served = tonic::transport::Server::builder()
        .layer(sigil_listen::IdleLayer)
        .add_service(health_service)
        .add_service(EntryServer::new(EntryApi(server.clone())))
        .add_service(AgentServer::new(AgentApi(server.clone())))
        .add_service(BundleServer::new(BundleApi(server.clone())))
        .add_service(SvidServer::new(SvidAdminApi(server.clone())))
        .add_service(TrustDomainServer::new(TrustDomainApi(server.clone())))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    let _ = std::fs::remove_file(&path);
    server.shutdown();
    served.map_err(ServerError::from)
}

fn bind(path: &Path) -> Result<UnixListener, ServerError> {
    let io = |source| ServerError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => tracing::info!(socket = %path.display(), "removed a stale admin socket"),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(io(error)),
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE)).map_err(io)?;
    Ok(listener)
}
