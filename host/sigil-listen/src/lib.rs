//! Accepting connections on the daemons' listeners.
//!
//! Every gRPC listener of sigil-server and sigil-agent accepts through this crate:
//! - [`unix_incoming`] for the Unix sockets (the agent's Workload API and admin sockets, the
//!   server's admin socket): each connection's connector is pinned at accept
//!   ([`PeerProcess`]: pidfd, start time, `SO_PEERCRED`), its HTTP/2 `:authority` is made
//!   acceptable to h2 for every gRPC stack's clients ([`authority`]), idle connections are
//!   closed ([`IdleLayer`]), and connections are bounded in total and per uid.
//! - [`tcp_incoming`] for the server's agent API: the same back-off at the descriptor limit
//!   and the same total bound.

mod accept;
pub mod authority;
mod connection;
mod idle;
mod peer;

use std::time::Duration;

pub use accept::{Slot, tcp_incoming, unix_incoming};
pub use connection::{TcpConnection, UnixConnection, UnixPeer};
pub use idle::{IdleLayer, IdleService, TrackedBody};
pub use peer::{PeerCredentials, PeerError, PeerProcess};

/// Bounds of one listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once; more are closed as they arrive.
    pub max_connections: usize,
    /// Connections open at once from one local uid (Unix sockets only).
    pub max_connections_per_uid: usize,
    /// A connection with no open request for this long is closed; `None` keeps it.
    pub idle_timeout: Option<Duration>,
}

impl Default for Limits {
    /// 1,024 connections, 256 per uid, closed after 5 minutes without a request.
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            max_connections_per_uid: 256,
            idle_timeout: Some(Duration::from_secs(300)),
        }
    }
}
