//! Loopback ports without the bind-and-release race. Binding port 0, reading the port and
//! closing the socket leaves a window in which another test (or the kernel, for an outgoing
//! connection) takes the port. Instead:
//!
//! - an in-process listener keeps its socket: [`ReservedPort`] is bound now, refuses
//!   connections until [`ReservedPort::listen`], and is never released in between;
//! - a daemon process is given port 0 and says which port it got: [`logged_address`] reads
//!   the `… listening address=IP:PORT` line both daemons log at INFO.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// A loopback TCP port held by a bound socket that does not listen yet: connections to it
/// are refused (as to a port nobody serves) and nobody else can take it.
#[derive(Debug)]
pub struct ReservedPort {
    socket: TcpSocket,
    address: SocketAddr,
}

impl ReservedPort {
    /// Binds `127.0.0.1:0`.
    pub fn new() -> ReservedPort {
        let socket = TcpSocket::new_v4().expect("a TCP socket");
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind 127.0.0.1:0");
        let address = socket.local_addr().expect("the bound address");
        ReservedPort { socket, address }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// The address (`127.0.0.1:port`).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Starts listening on the port: from now on connections queue for `accept`. Needs a
    /// tokio runtime.
    pub fn listen(self) -> TcpListener {
        self.socket
            .listen(1024)
            .expect("listen on the reserved port")
    }
}

impl Default for ReservedPort {
    fn default() -> Self {
        Self::new()
    }
}

/// The address in the last line of `log` that contains `message` and an
/// `address=IP:PORT` field (a daemon's `agent API listening` or `health checks listening`).
pub fn logged_address(log: &str, message: &str) -> Option<SocketAddr> {
    log.lines()
        .rev()
        .filter(|line| line.contains(message))
        .find_map(|line| {
            line.split_whitespace()
                .find_map(|field| field.strip_prefix("address="))
                .and_then(|value| value.trim_matches('"').parse().ok())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_of_the_last_matching_line_is_read() {
        let log = "\
2026-12-03T10:00:00Z  INFO sigil_server::agent_api: agent API listening address=127.0.0.1:4000
2026-12-03T10:00:01Z  INFO sigil_daemon::health: health checks listening address=127.0.0.1:4001
2026-12-03T10:00:02Z  INFO sigil_server::agent_api: agent API listening address=127.0.0.1:4002
";
        assert_eq!(
            logged_address(log, "agent API listening"),
            Some(SocketAddr::from(([127, 0, 0, 1], 4002)))
        );
        assert_eq!(
            logged_address(log, "health checks listening"),
            Some(SocketAddr::from(([127, 0, 0, 1], 4001)))
        );
        assert_eq!(logged_address(log, "admin API listening"), None);
    }

    #[tokio::test]
    async fn a_reserved_port_refuses_until_it_listens_and_is_not_handed_out_again() {
        let reserved = ReservedPort::new();
        let refused = tokio::net::TcpStream::connect(reserved.address()).await;
        assert!(refused.is_err(), "a reserved port refuses connections");
        let taken = std::net::TcpListener::bind(reserved.address());
        assert!(taken.is_err(), "nobody else can bind the reserved port");
        let address = reserved.address();
        let listener = reserved.listen();
        let (connected, accepted) =
            tokio::join!(tokio::net::TcpStream::connect(address), listener.accept());
        connected.expect("connects once listening");
        accepted.expect("accepted");
    }
}
