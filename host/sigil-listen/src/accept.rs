//! The accept loop shared by every listener of both daemons.
//!
//! Three things a plain `loop { listener.accept() }` gets wrong under a hostile or overloaded
//! machine:
//! - At the file-descriptor limit `accept` fails with EMFILE while the pending connection stays
//!   queued, so the listener stays readable and the loop spins at full CPU. Here it backs off
//!   (10 ms doubling to 1 s) and resumes as soon as a descriptor frees.
//! - Nothing bounds how many connections one listener holds. [`Limits::max_connections`] does,
//!   and on Unix sockets [`Limits::max_connections_per_uid`] keeps one local user from taking
//!   every slot. A connection over a bound is closed at once (the client sees a reset, gRPC
//!   reports Unavailable) and counted in a warning at most once a minute.
//! - Errors about one connection (ECONNABORTED and the like) must not stop the loop.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use crate::Limits;
use crate::connection::{TcpConnection, UnixConnection};
use crate::peer::{PeerCredentials, PeerProcess};

/// The first pause after an accept failed for lack of descriptors or memory.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// The longest pause between accepts while descriptors are exhausted.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How often refused connections are reported.
const REPORT_EVERY: Duration = Duration::from_secs(60);

/// Accepts connections on a Unix socket, each pinned to its connector and wrapped for
/// HTTP/2 clients of every gRPC stack: a stream to hand to tonic's
/// `serve_with_incoming_shutdown`.
pub fn unix_incoming(
    listener: UnixListener,
    limits: Limits,
) -> impl tokio_stream::Stream<Item = io::Result<UnixConnection>> + Send + 'static {
    let slots = Slots::new(limits.clone());
    async_stream(move |send| async move {
        let mut backoff = Backoff::default();
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    backoff.after(&error).await;
                    continue;
                }
            };
            backoff.reset();
            let credentials = peer_credentials(&stream);
            let Some(slot) = slots.take(credentials.map(|c| c.uid)) else {
                drop(stream);
                continue;
            };
            let peer = credentials.map(|c| Arc::new(PeerProcess::pin(c)));
            let connection = UnixConnection::new(stream, peer, slot, limits.idle_timeout);
            if send.send(Ok(connection)).await.is_err() {
                return;
            }
        }
    })
}

/// Accepts TCP connections with the same back-off and connection bound (no per-user bound:
/// a TCP peer has no local uid). `TCP_NODELAY` is set on each.
pub fn tcp_incoming(
    listener: TcpListener,
    limits: Limits,
) -> impl tokio_stream::Stream<Item = io::Result<TcpConnection>> + Send + 'static {
    let slots = Slots::new(limits);
    async_stream(move |send| async move {
        let mut backoff = Backoff::default();
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    backoff.after(&error).await;
                    continue;
                }
            };
            backoff.reset();
            let Some(slot) = slots.take(None) else {
                drop(stream);
                continue;
            };
            nodelay(&stream, peer);
            if send
                .send(Ok(TcpConnection::new(stream, slot)))
                .await
                .is_err()
            {
                return;
            }
        }
    })
}

/// gRPC writes whole messages: with Nagle on, a response's last segment waits for the peer's
/// delayed ACK (40 ms on Linux). tonic sets this only on listeners it binds itself.
fn nodelay(stream: &TcpStream, peer: std::net::SocketAddr) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%peer, %error, "cannot set TCP_NODELAY");
    }
}

fn peer_credentials(stream: &UnixStream) -> Option<PeerCredentials> {
    let credentials = stream.peer_cred().ok()?;
    Some(PeerCredentials {
        pid: credentials.pid(),
        uid: credentials.uid(),
        gid: credentials.gid(),
    })
}

/// Runs `body` as a task feeding a bounded channel, and returns the channel as a stream. The
/// task ends when the stream is dropped (serving stopped).
fn async_stream<T, F, Fut>(body: F) -> tokio_stream::wrappers::ReceiverStream<T>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (send, receive) = tokio::sync::mpsc::channel(1);
    tokio::spawn(body(send));
    tokio_stream::wrappers::ReceiverStream::new(receive)
}

// === impl Backoff ===

/// The pause between failed accepts.
#[derive(Debug, Default)]
struct Backoff {
    next: Option<Duration>,
    since: Option<Instant>,
}

impl Backoff {
    /// Waits as `error` calls for: nothing for an error about one connection, a growing pause
    /// when the process is out of descriptors or memory.
    async fn after(&mut self, error: &io::Error) {
        if !is_resource_exhaustion(error) {
            tracing::debug!(%error, "accept failed");
            return;
        }
        let pause = self.next.unwrap_or(FIRST_BACKOFF);
        if self.since.is_none() {
            self.since = Some(Instant::now());
            tracing::warn!(%error, "cannot accept connections: out of file descriptors or memory; backing off");
        }
        self.next = Some((pause * 2).min(MAX_BACKOFF));
        tokio::time::sleep(pause).await;
    }

    fn reset(&mut self) {
        if let Some(since) = self.since.take() {
            tracing::info!(after = ?since.elapsed(), "accepting connections again");
        }
        self.next = None;
    }
}

fn is_resource_exhaustion(error: &io::Error) -> bool {
    matches!(
        rustix::io::Errno::from_io_error(error),
        Some(
            rustix::io::Errno::MFILE
                | rustix::io::Errno::NFILE
                | rustix::io::Errno::NOBUFS
                | rustix::io::Errno::NOMEM
        )
    )
}

// === impl Slots ===

/// Connection counts of one listener, in total and per uid.
#[derive(Debug, Clone)]
struct Slots {
    limits: Limits,
    counts: Arc<Mutex<Counts>>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_uid: HashMap<u32, usize>,
    refused: u64,
    reported: Option<Instant>,
}

/// One connection's place in its listener's counts, given back when the connection closes.
#[derive(Debug)]
pub struct Slot {
    uid: Option<u32>,
    counts: Arc<Mutex<Counts>>,
}

impl Slots {
    fn new(limits: Limits) -> Self {
        Slots {
            limits,
            counts: Arc::default(),
        }
    }

    /// A slot for a new connection of `uid`, or `None` when a bound is reached.
    fn take(&self, uid: Option<u32>) -> Option<Slot> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let of_uid = uid.map_or(0, |uid| counts.by_uid.get(&uid).copied().unwrap_or(0));
        if counts.total >= self.limits.max_connections
            || (uid.is_some() && of_uid >= self.limits.max_connections_per_uid)
        {
            counts.refused += 1;
            let due = counts
                .reported
                .is_none_or(|at| at.elapsed() >= REPORT_EVERY);
            if due {
                tracing::warn!(
                    refused = counts.refused,
                    open = counts.total,
                    ?uid,
                    max_connections = self.limits.max_connections,
                    max_connections_per_uid = self.limits.max_connections_per_uid,
                    "connections refused: the listener is at its connection limit"
                );
                counts.refused = 0;
                counts.reported = Some(Instant::now());
            }
            return None;
        }
        counts.total += 1;
        if let Some(uid) = uid {
            counts.by_uid.insert(uid, of_uid + 1);
        }
        Some(Slot {
            uid,
            counts: self.counts.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        if let Some(uid) = self.uid
            && let Some(count) = counts.by_uid.get_mut(&uid)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.by_uid.remove(&uid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_bound_the_total_and_each_uid_and_come_back_on_drop() {
        let slots = Slots::new(Limits {
            max_connections: 3,
            max_connections_per_uid: 2,
            idle_timeout: None,
        });
        let a1 = slots.take(Some(1)).unwrap();
        let _a2 = slots.take(Some(1)).unwrap();
        assert!(slots.take(Some(1)).is_none(), "uid 1 is at its bound");
        let _b1 = slots.take(Some(2)).unwrap();
        assert!(slots.take(Some(3)).is_none(), "the listener is full");
        drop(a1);
        assert!(
            slots.take(Some(3)).is_some(),
            "a closed connection frees its slot"
        );
    }

    #[test]
    fn only_exhaustion_errors_back_off() {
        assert!(is_resource_exhaustion(&io::Error::from_raw_os_error(24)));
        assert!(!is_resource_exhaustion(&io::Error::from(
            io::ErrorKind::ConnectionAborted
        )));
    }
}
