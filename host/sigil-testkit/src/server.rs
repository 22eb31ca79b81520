//! The server in process (`sigil_server::Server`): its admin socket, the agent API on a
//! loopback listener, driven with the CLI (`sigil_cli::run`) and raw gRPC channels.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, UnixStream};
use tokio::sync::oneshot;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::conf::ServerConf;
use crate::ports::ReservedPort;

/// A started server: its admin socket and the address of its agent API.
#[derive(Debug)]
pub struct InProcessServer {
    /// The server.
    pub server: Arc<sigil_server::Server>,
    /// The admin socket.
    pub socket: PathBuf,
    /// The agent API's loopback address.
    pub address: SocketAddr,
    stop_agents: Option<oneshot::Sender<()>>,
}

impl InProcessServer {
    /// [`ServerConf::in_dir`]: SQLite, keys in memory, join-token attestation.
    pub async fn start(dir: &Path) -> InProcessServer {
        Self::start_conf(&ServerConf::in_dir(dir)).await
    }

    /// [`ServerConf::in_dir`] with `server_extra` lines in the `server` block and the
    /// NodeAttestor block `node_attestor`.
    pub async fn start_with(
        dir: &Path,
        server_extra: &str,
        node_attestor: &str,
    ) -> InProcessServer {
        Self::start_conf(&ServerConf {
            server_extra: server_extra.to_owned(),
            node_attestor: node_attestor.to_owned(),
            ..ServerConf::in_dir(dir)
        })
        .await
    }

    /// Starts a server from `conf`; returns once its admin socket exists. The agent API is
    /// served on a loopback port of its own until [`InProcessServer::stop_agent_api`].
    pub async fn start_conf(conf: &ServerConf) -> InProcessServer {
        let config = sigil_config::ServerConfig::parse(&conf.text(), "server.conf", false)
            .expect("server config");
        let server = sigil_server::Server::start(config)
            .await
            .expect("server start");
        let listener = ReservedPort::new().listen();
        let address = listener.local_addr().expect("address");
        let (stop_agents, stopped) = oneshot::channel::<()>();
        tokio::spawn(sigil_server::serve(server.clone(), std::future::pending()));
        tokio::spawn(sigil_server::serve_agents_on(
            server.clone(),
            listener,
            // Only an explicit stop: a test that destructures the server with `..` drops the
            // sender and must keep its agent API.
            async move {
                if stopped.await.is_err() {
                    std::future::pending::<()>().await;
                }
            },
        ));
        let socket = conf.socket.clone();
        for _ in 0..100 {
            if socket.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        InProcessServer {
            server,
            socket,
            address,
            stop_agents: Some(stop_agents),
        }
    }

    /// Runs a CLI command against the admin socket: its exit code and its output and errors.
    pub async fn cli(&self, args: &[&str]) -> (i32, String) {
        cli(&self.socket, args).await
    }

    /// Runs a CLI command that must succeed; its output.
    pub async fn cli_out(&self, args: &[&str]) -> String {
        let (code, out) = cli(&self.socket, args).await;
        assert_eq!(code, 0, "{args:?}: {out}");
        out
    }

    /// A new join token.
    pub async fn token(&self) -> String {
        token(&self.socket).await
    }

    /// Serves the agent API on `listener` too (a [`ReservedPort`] a test handed out
    /// earlier), until the test ends.
    pub fn serve_agents_on(&self, listener: TcpListener) {
        tokio::spawn(sigil_server::serve_agents_on(
            self.server.clone(),
            listener,
            std::future::pending(),
        ));
    }

    /// Stops the agent API on [`InProcessServer::address`] (the admin socket stays).
    pub fn stop_agent_api(&mut self) {
        if let Some(stop) = self.stop_agents.take() {
            let _ = stop.send(());
        }
    }
}

/// Runs a CLI command against the admin socket `socket`: its exit code and its output and
/// errors.
pub async fn cli(socket: &Path, args: &[&str]) -> (i32, String) {
    let mut args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    args.push("-socketPath".into());
    args.push(socket.display().to_string());
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = sigil_cli::run(&args, &mut out, &mut err).await;
    (
        code,
        format!(
            "{}{}",
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&err)
        ),
    )
}

/// A new join token from the server at `socket`.
pub async fn token(socket: &Path) -> String {
    let (code, out) = cli(socket, &["token", "generate"]).await;
    assert_eq!(code, 0, "{out}");
    crate::join_token(&out)
}

/// A gRPC channel over the Unix socket `path` (an admin or workload socket), as SPIRE's
/// own tools open it: no security header added.
pub async fn uds_channel(path: &Path) -> Channel {
    let path = path.to_owned();
    let shown = path.display().to_string();
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
        .unwrap_or_else(|e| panic!("connect to {shown}: {e}"))
}
