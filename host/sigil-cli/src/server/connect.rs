//! The gRPC channel to the server's admin API over its Unix socket.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::error::CliError;

/// SPIRE's default admin socket, which `-socketPath` overrides.
pub const DEFAULT_SOCKET_PATH: &str = "/tmp/spire-server/private/api.sock";

/// Connects to the admin API at `socket`. The URI is required by tonic but unused: the
/// connector always dials the socket.
pub(crate) async fn channel(socket: &Path) -> Result<Channel, CliError> {
    let path: PathBuf = socket.to_owned();
    Endpoint::from_static("http://localhost")
        .connect_timeout(Duration::from_secs(5))
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
        .map_err(|e| CliError::Connect {
            socket: socket.display().to_string(),
            reason: source_text(&e),
        })
}

/// The innermost cause of a transport error, which names what actually failed
/// ("No such file or directory") rather than tonic's "transport error".
fn source_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}
