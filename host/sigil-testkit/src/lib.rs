//! What the tests of several sigil crates share, in one place: the daemons as real processes
//! ([`process`]), the server in process (module `server`, feature `server`), loopback ports without
//! the bind-and-release race ([`ports`]), certificates made at test time ([`certs`]), a pod's container cgroup for
//! a real process ([`cgroup`]), a
//! PostgreSQL schema per test ([`postgres`]), an HTTP(S) server for stand-ins ([`https`]) and
//! the Kubernetes stand-ins (module `kube`, feature `kube`); [`conf`] writes the servers'
//! configuration.
//!
//! A dev-dependency only: nothing here is built into a daemon. Set-up steps panic with a
//! message naming what failed, because a failed set-up must fail the test.

#![warn(missing_docs)]
#![expect(
    clippy::expect_used,
    reason = "test support: a failed set-up step must fail the test, with the step named"
)]

pub mod certs;
pub mod cgroup;
pub mod conf;
pub mod https;
#[cfg(feature = "kube")]
pub mod kube;
pub mod ports;
pub mod postgres;
pub mod process;
#[cfg(feature = "server")]
pub mod server;

use std::time::Duration;

/// How long a test waits for a daemon to come up, serve or exit before it fails.
pub const WAIT: Duration = Duration::from_secs(30);

/// Unix seconds now, on the system clock.
pub use sigil_clock::unix_now;

/// `GET path` on a loopback HTTP listener (a health-check listener): the status line.
pub fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("send the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    response.lines().next().unwrap_or_default().to_owned()
}

/// The ID in the `Entry ID         : …` line the CLI prints for a created or shown entry.
pub fn entry_id(cli_output: &str) -> String {
    cli_output
        .lines()
        .find_map(|l| l.strip_prefix("Entry ID         : "))
        .unwrap_or_else(|| panic!("no `Entry ID` line in the CLI output: {cli_output}"))
        .trim()
        .to_owned()
}

/// The token in the `Token: …` line of `token generate`.
pub fn join_token(cli_output: &str) -> String {
    cli_output
        .trim()
        .strip_prefix("Token: ")
        .unwrap_or_else(|| panic!("no `Token:` line in the CLI output: {cli_output}"))
        .to_owned()
}
