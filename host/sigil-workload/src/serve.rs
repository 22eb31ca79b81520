//! The socket itself: bind, serve the three services, clean up.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_server::SecretDiscoveryServiceServer;
use sigil_listen::{IdleLayer, UnixPeer};
use sigil_proto::workload::spiffe_workload_api_server::SpiffeWorkloadApiServer;
use tokio::net::UnixListener;
use tokio::sync::watch;

use crate::error::{ApiError, ServeError};
use crate::sds::SdsService;
use crate::workload_api::WorkloadApiService;
use crate::{Caller, IdentityError, WorkloadConfig, WorkloadIdentities, WorkloadUpdate};

/// Mode of the workload socket: any local user may connect; what each caller gets is decided
/// per call by attestation.
const SOCKET_MODE: u32 = 0o777;

/// Serves the SPIFFE Workload API, Envoy SDS v3 and `grpc.health.v1` on the Unix socket at
/// `socket_path` until `shutdown` completes.
///
/// The socket's directory is created when missing, a stale socket file is replaced, the
/// socket is made mode 0777, and it is removed again when serving ends. Every call attests
/// its caller through `identities` from the connection's peer credentials.
pub async fn serve<I: WorkloadIdentities>(
    socket_path: impl AsRef<Path>,
    identities: Arc<I>,
    config: WorkloadConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let socket_path = socket_path.as_ref();
    let listener = bind(socket_path, SOCKET_MODE)?;
    let incoming = sigil_listen::unix_incoming(listener, config.limits.clone());
    let config = Arc::new(config);
    // Streams never end on their own; they watch this and end when serving stops, or
    // tonic's graceful shutdown would wait for them forever.
    let (closing, closing_rx) = watch::channel(false);
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    tracing::info!(socket = %socket_path.display(), "workload API listening");
    let served = tonic::transport::Server::builder()
        .layer(IdleLayer)
        .add_service(health_service)
        .add_service(SpiffeWorkloadApiServer::new(WorkloadApiService::new(
            identities.clone(),
            config.clone(),
            closing_rx.clone(),
        )))
        .add_service(SecretDiscoveryServiceServer::new(SdsService::new(
            identities, config, closing_rx,
        )))
        .serve_with_incoming_shutdown(incoming, async move {
            shutdown.await;
            closing.send_replace(true);
        })
        .await;
    if let Err(error) = std::fs::remove_file(socket_path) {
        tracing::warn!(socket = %socket_path.display(), %error, "could not remove the workload socket");
    }
    served.map_err(ServeError::from)
}

/// Attests the caller of `request` from its connection's peer credentials.
pub(crate) async fn attest<I: WorkloadIdentities, T>(
    identities: &I,
    request: &tonic::Request<T>,
) -> Result<I::Workload, ApiError> {
    let caller = caller_of(request).ok_or(ApiError::NoPeerCredentials)?;
    let (pid, uid) = (caller.pid, caller.uid);
    identities.attest(caller).await.map_err(|error| {
        match &error {
            // Saturation is reported once in a while by the plugin host; a line per call
            // would let any local process flood the log.
            IdentityError::Unavailable(_) => {
                tracing::debug!(pid = ?pid, uid, %error, "workload attestation unavailable");
            }
            _ => tracing::warn!(pid = ?pid, uid, %error, "workload attestation refused"),
        }
        ApiError::from(error)
    })
}

/// Subscribes to an attested workload's identities.
pub(crate) async fn subscribe<I: WorkloadIdentities>(
    identities: &I,
    workload: &I::Workload,
) -> Result<watch::Receiver<Arc<WorkloadUpdate>>, ApiError> {
    identities.subscribe(workload).await.map_err(|error| {
        tracing::warn!(%error, "workload identities unavailable");
        ApiError::from(error)
    })
}

/// The caller of a request: the connector of its connection, pinned when the connection was
/// accepted on a Unix socket ([`sigil_listen::unix_incoming`]); `None` for any other
/// transport, or when the kernel reported no peer credentials.
///
/// Every service on an agent socket identifies its caller with this: the workload socket
/// here, and the agent's admin socket.
pub fn caller_of<T>(request: &tonic::Request<T>) -> Option<Caller> {
    let process = request.extensions().get::<UnixPeer>()?.process()?.clone();
    Some(Caller::from(process))
}

/// Resolves once serving is stopping (or its sender is gone).
pub(crate) async fn closed(closing: &mut watch::Receiver<bool>) {
    let _ = closing.wait_for(|&closing| closing).await;
}

/// Binds a Unix socket at `path` to serve on: the parent directory is created when missing,
/// a stale socket file left by an earlier run is replaced, and the socket is given `mode`
/// (`0o777` for the workload socket; the agent's admin socket uses a tighter one). The
/// caller removes the socket when it stops serving.
///
/// The mode is set right after binding; access control for each call is the caller's
/// attestation (see [`caller_of`]), not the file mode alone.
pub fn bind(path: &Path, mode: u32) -> Result<UnixListener, ServeError> {
    let io = |at: &Path| {
        let at = at.to_owned();
        move |source| ServeError::Io { path: at, source }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => tracing::info!(socket = %path.display(), "removed a stale socket"),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(io(path)(error)),
    }
    let listener = UnixListener::bind(path).map_err(io(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io(path))?;
    Ok(listener)
}
