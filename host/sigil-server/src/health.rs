//! The `health_checks` HTTP listener: `live_path` answers 200 while the process serves,
//! `ready_path` 200 when the datastore answers and the CA can sign, 503 otherwise. A tiny
//! HTTP/1.1 responder: two fixed paths need no HTTP framework.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::error::ServerError;
use crate::setup::Server;
use crate::tokens::now;

/// Longest request head read.
const MAX_HEAD: usize = 8 << 10;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Serve the health checks when `listener_enabled`, until `shutdown` completes.
pub async fn serve_health(
    server: Arc<Server>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let checks = server.config.health_checks.clone();
    if !checks.listener_enabled {
        shutdown.await;
        return Ok(());
    }
    let address = format!("{}:{}", checks.bind_address, checks.bind_port);
    let listener = TcpListener::bind(&address)
        .await
        .map_err(|source| ServerError::Io {
            path: address.clone().into(),
            source,
        })?;
    tracing::info!(%address, "health checks listening");
    let accept = async {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (server, live, ready) = (
                server.clone(),
                checks.live_path.clone(),
                checks.ready_path.clone(),
            );
            tokio::spawn(async move {
                let _ = answer(stream, &server, &live, &ready).await;
            });
        }
    };
    tokio::select! {
        () = accept => Ok(()),
        () = shutdown => Ok(()),
    }
}

async fn answer(
    mut stream: TcpStream,
    server: &Server,
    live: &str,
    ready: &str,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        let read = tokio::time::timeout(READ_TIMEOUT, stream.read(&mut buffer))
            .await
            .map_err(|_| std::io::Error::other("timed out"))??;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..read]);
    }
    let line = String::from_utf8_lossy(&head);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, body) = match (method, path) {
        ("GET", path) if path == live => (200, "{\"live\":true}".to_owned()),
        ("GET", path) if path == ready => match readiness(server).await {
            Ok(()) => (200, "{\"ready\":true}".to_owned()),
            Err(reason) => (503, format!("{{\"ready\":false,\"reason\":{reason:?}}}")),
        },
        ("GET", _) => (404, "{}".to_owned()),
        _ => (405, "{}".to_owned()),
    };
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
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
