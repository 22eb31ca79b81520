//! The connection types handed to tonic, and what each tells a handler about its peer.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::accept::Slot;
use crate::authority::AuthorityFix;
use crate::idle::{Activity, IdleClock};
use crate::peer::{PeerCredentials, PeerProcess};

/// What a handler learns about the connection a request came on: its connector, pinned at
/// accept. Found in every request's extensions (`request.extensions().get::<UnixPeer>()`).
#[derive(Debug, Clone)]
pub struct UnixPeer {
    process: Option<Arc<PeerProcess>>,
    pub(crate) activity: Arc<Activity>,
}

impl UnixPeer {
    /// The connector, or `None` when the kernel gave no peer credentials.
    pub fn process(&self) -> Option<&Arc<PeerProcess>> {
        self.process.as_ref()
    }

    /// The kernel's record of the connector at connect.
    pub fn credentials(&self) -> Option<PeerCredentials> {
        self.process.as_ref().map(|p| p.credentials())
    }
}

/// An accepted Unix-socket connection: HTTP/2 authority normalised, closed when idle, its
/// listener slot held until it closes.
#[derive(Debug)]
pub struct UnixConnection {
    io: AuthorityFix<UnixStream>,
    peer: UnixPeer,
    idle: Option<IdleClock>,
    _slot: Slot,
}

impl UnixConnection {
    pub(crate) fn new(
        stream: UnixStream,
        process: Option<Arc<PeerProcess>>,
        slot: Slot,
        idle_timeout: Option<Duration>,
    ) -> Self {
        let activity = Arc::new(Activity::new());
        UnixConnection {
            io: AuthorityFix::new(stream),
            idle: idle_timeout.map(|timeout| IdleClock::new(activity.clone(), timeout)),
            peer: UnixPeer { process, activity },
            _slot: slot,
        }
    }
}

impl Connected for UnixConnection {
    type ConnectInfo = UnixPeer;

    fn connect_info(&self) -> UnixPeer {
        self.peer.clone()
    }
}

impl AsyncRead for UnixConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Pending => {
                if this.idle.as_mut().is_some_and(|idle| idle.expired(cx)) {
                    // Reading nothing, i.e. end of stream: hyper closes the connection.
                    tracing::debug!(peer = ?this.peer.credentials(), "closing an idle connection");
                    return Poll::Ready(Ok(()));
                }
                Poll::Pending
            }
            ready => ready,
        }
    }
}

impl AsyncWrite for UnixConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// An accepted TCP connection holding its listener slot. tonic sees it as a TCP stream
/// (`TcpConnectInfo`), so TLS on top of it reports peer certificates as usual.
#[derive(Debug)]
pub struct TcpConnection {
    stream: TcpStream,
    _slot: Slot,
}

impl TcpConnection {
    pub(crate) fn new(stream: TcpStream, slot: Slot) -> Self {
        TcpConnection {
            stream,
            _slot: slot,
        }
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.stream.peer_addr()
    }
}

impl Connected for TcpConnection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for TcpConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TcpConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
