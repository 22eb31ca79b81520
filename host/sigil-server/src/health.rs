//! The server's `health_checks`: [`sigil_daemon::health`]'s listener with the server's readiness
//! (the datastore answers and the active CA is still valid).

use std::sync::Arc;

use crate::error::ServerError;
use crate::setup::Server;
use crate::tokens::now;

/// Serve the health checks when `listener_enabled`, until `shutdown` completes.
pub async fn serve_health(
    server: Arc<Server>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let checks = server.config.health_checks.clone();
    let ready = move || {
        let server = server.clone();
        async move { readiness(&server).await }
    };
    sigil_daemon::health::serve(&checks, ready, shutdown)
        .await
        .map_err(|error| ServerError::Io {
            path: error.address.into(),
            source: error.source,
        })
}

/// Ready: the datastore answers and the active CA is valid now.
async fn readiness(server: &Server) -> Result<(), String> {
    server
        .store
        .count_bundles()
        .await
        .map_err(|_| "the datastore does not answer".to_owned())?;
    if server.ca.current().x509_ca().not_after() <= now() {
        return Err("the CA has expired".into());
    }
    Ok(())
}
