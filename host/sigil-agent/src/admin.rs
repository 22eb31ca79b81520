//! The agent's admin socket (`admin_socket_path`): SPIRE's Delegated Identity API
//! (`spire.api.agent.delegatedidentity.v1`, in [`delegated`]) and `grpc.health.v1`.
//!
//! A delegate (a node proxy, a CNI) asks here for the identities of other workloads on the
//! node. Every call attests its caller from `SO_PEERCRED` with the agent's workload
//! attestors, exactly as the workload socket does; the caller is served only when one of the
//! entries its selectors match has a SPIFFE ID listed in `authorized_delegates`.
//!
//! The socket is bound with [`sigil_workload::bind`] (directory created, stale socket
//! replaced) in mode [`SOCKET_MODE`], and removed when serving ends.

mod delegated;
mod error;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sigil_proto::spire::api::agent::delegatedidentity::v1::delegated_identity_server::DelegatedIdentityServer;
use sigil_types::SpiffeId;
use tokio::net::UnixListener;
use tokio::sync::watch;

use crate::error::AgentError;
use crate::workload::Workloads;

/// Mode of the admin socket: the agent's user and group may connect, others may not.
///
/// The Workload API socket is 0777 because any local process may be a workload. The admin
/// socket hands out other workloads' private keys, so it is closed to "other": a delegate
/// runs as the agent's user or is put in its group. The file mode is only the first gate;
/// every call is still attested and checked against `authorized_delegates`.
pub(crate) const SOCKET_MODE: u32 = 0o770;

/// The admin socket, bound and ready to serve.
#[derive(Debug)]
pub(crate) struct AdminSocket {
    path: PathBuf,
    listener: UnixListener,
    workloads: Arc<Workloads>,
    delegates: Arc<HashSet<SpiffeId>>,
}

impl AdminSocket {
    /// Binds the socket at `path`. Binding happens before the agent serves anything, so a
    /// path that cannot be bound stops the agent at start.
    pub(crate) fn bind(
        path: &Path,
        workloads: Arc<Workloads>,
        delegates: &[SpiffeId],
    ) -> Result<Self, AgentError> {
        let listener = sigil_workload::bind(path, SOCKET_MODE).map_err(AgentError::Admin)?;
        if delegates.is_empty() {
            tracing::warn!(
                "authorized_delegates is empty: every Delegated Identity API call is refused"
            );
        }
        Ok(AdminSocket {
            path: path.to_owned(),
            listener,
            workloads,
            delegates: Arc::new(delegates.iter().cloned().collect()),
        })
    }

    /// Serves until `shutdown` resolves; open streams end then. The socket file is removed
    /// when this returns or is dropped.
    pub(crate) async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), AgentError> {
        let _remove = RemoveOnDrop(self.path.clone());
        // Streams watch this and end when serving stops; tonic's graceful shutdown would
        // otherwise wait for them forever.
        let (closing, closing_rx) = watch::channel(false);
        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
        tracing::info!(socket = %self.path.display(), "admin API listening");
        let incoming = sigil_listen::unix_incoming(self.listener, sigil_listen::Limits::default());
        tonic::transport::Server::builder()
            .layer(sigil_listen::IdleLayer)
            .add_service(health_service)
            .add_service(DelegatedIdentityServer::new(delegated::Delegated::new(
                self.workloads,
                self.delegates,
                closing_rx,
            )))
            .serve_with_incoming_shutdown(incoming, async move {
                shutdown.await;
                closing.send_replace(true);
            })
            .await
            .map_err(|e| AgentError::Admin(e.into()))
    }
}

/// Removes the socket file when serving ends, also when the serving task is aborted.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_file(&self.0) {
            tracing::warn!(socket = %self.0.display(), %error, "could not remove the admin socket");
        }
    }
}
