//! The `health_checks` listener, as SPIRE serves it:
//! `live_path` answers 200 while the process serves, `ready_path` 200 when the caller's
//! readiness check passes and 503 with the reason otherwise; any other path 404, any other
//! method 405. A tiny HTTP/1.1 responder: two fixed paths need no HTTP framework.

use std::future::Future;
use std::time::Duration;

use sigil_config::HealthChecks;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Longest request head read.
const MAX_HEAD: usize = 8 << 10;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `checks` until `shutdown` completes; does nothing but wait when the listener is
/// not enabled. `ready` is asked on every request of the ready path.
///
/// # Errors
///
/// The address cannot be bound; the error names it.
pub async fn serve<R, F>(
    checks: &HealthChecks,
    ready: R,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), BindError>
where
    R: Fn() -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<(), String>> + Send,
{
    if !checks.listener_enabled {
        shutdown.await;
        return Ok(());
    }
    let address = format!("{}:{}", checks.bind_address, checks.bind_port);
    let listener = TcpListener::bind(&address)
        .await
        .map_err(|source| BindError {
            address: address.clone(),
            source,
        })?;
    // The bound address, not the configured one: with `bind_port = 0` this line is how an
    // operator (or a test) learns the port.
    match listener.local_addr() {
        Ok(bound) => tracing::info!(address = %bound, "health checks listening"),
        Err(_) => tracing::info!(%address, "health checks listening"),
    }
    let accept = async {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (ready, live_path, ready_path) = (
                ready.clone(),
                checks.live_path.clone(),
                checks.ready_path.clone(),
            );
            tokio::spawn(async move {
                let _ = answer(stream, &live_path, &ready_path, ready).await;
            });
        }
    };
    tokio::select! {
        () = accept => Ok(()),
        () = shutdown => Ok(()),
    }
}

/// The health listener's address could not be bound.
#[derive(Debug)]
pub struct BindError {
    /// `bind_address:bind_port`.
    pub address: String,
    /// What the OS said.
    pub source: std::io::Error,
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "health_checks: cannot listen on {}: {}",
            self.address, self.source
        )
    }
}

impl std::error::Error for BindError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

async fn answer<R, F>(
    mut stream: TcpStream,
    live: &str,
    ready_path: &str,
    ready: R,
) -> std::io::Result<()>
where
    R: Fn() -> F,
    F: Future<Output = Result<(), String>>,
{
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
        ("GET", path) if path == ready_path => match ready().await {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    async fn get(port: u16, request: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut out = String::new();
        stream.read_to_string(&mut out).await.expect("read");
        out
    }

    #[tokio::test]
    async fn live_ready_unknown_path_and_method() {
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind")
            .local_addr()
            .expect("address")
            .port();
        let checks = HealthChecks {
            listener_enabled: true,
            bind_address: "127.0.0.1".into(),
            bind_port: port,
            live_path: "/live".into(),
            ready_path: "/ready".into(),
        };
        let is_ready = Arc::new(AtomicBool::new(false));
        let flag = is_ready.clone();
        let ready = move || {
            let flag = flag.clone();
            async move {
                if flag.load(Ordering::SeqCst) {
                    Ok(())
                } else {
                    Err("not synced".to_owned())
                }
            }
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            serve(&checks, ready, async move {
                let _ = stopped.await;
            })
            .await
        });
        let mut live = String::new();
        for _ in 0..100 {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await {
                stream
                    .write_all(b"GET /live HTTP/1.1\r\n\r\n")
                    .await
                    .expect("write");
                stream.read_to_string(&mut live).await.expect("read");
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(live.starts_with("HTTP/1.1 200 OK"), "{live}");
        let unready = get(port, "GET /ready HTTP/1.1\r\n\r\n").await;
        assert!(unready.starts_with("HTTP/1.1 503"), "{unready}");
        assert!(unready.contains("not synced"), "{unready}");
        is_ready.store(true, Ordering::SeqCst);
        let ready = get(port, "GET /ready HTTP/1.1\r\n\r\n").await;
        assert!(ready.starts_with("HTTP/1.1 200 OK"), "{ready}");
        let missing = get(port, "GET /other HTTP/1.1\r\n\r\n").await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        let post = get(port, "POST /live HTTP/1.1\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        let _ = stop.send(());
        server.await.expect("join").expect("served");
    }

    #[tokio::test]
    async fn a_taken_port_is_an_error_naming_the_address() {
        let taken = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = taken.local_addr().expect("address").port();
        let checks = HealthChecks {
            listener_enabled: true,
            bind_address: "127.0.0.1".into(),
            bind_port: port,
            ..HealthChecks::default()
        };
        let error = serve(&checks, || async { Ok(()) }, std::future::pending())
            .await
            .expect_err("port taken");
        assert!(
            error.to_string().contains(&format!("127.0.0.1:{port}")),
            "{error}"
        );
    }
}
