//! Shared set-up of the agent's tests and benchmarks: an in-process server on loopback
//! (`sigil_server::Server` with its admin socket and agent API, SQLite), the `sigil-agent`
//! binary as a real process, and Workload API clients.

#![allow(
    dead_code,
    reason = "each test binary and bench uses a different part of the set-up"
)]
#![expect(
    clippy::expect_used,
    reason = "test helpers: a failed setup step must fail the test"
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tokio::sync::oneshot;
use tonic::transport::{Endpoint, Uri};

pub(crate) const AGENT: &str = env!("CARGO_BIN_EXE_sigil-agent");
pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// The `sigil-server` binary beside the agent's: `cargo test --workspace` builds every
/// package's binaries before it runs a test (`CARGO_BIN_EXE_*` names only this package's).
pub(crate) static SERVER: std::sync::LazyLock<PathBuf> = std::sync::LazyLock::new(|| {
    let path = Path::new(AGENT).with_file_name("sigil-server");
    assert!(
        path.exists(),
        "{} is missing: these tests run the server binary; build it with `cargo build -p sigil-server` or run `cargo test --workspace`",
        path.display()
    );
    path
});

/// Unix seconds now.
pub(crate) fn unix_now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs(),
    )
    .expect("time")
}

/// A loopback port nobody listens on right now.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// `GET path` on a loopback HTTP listener: the status line.
pub(crate) fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    response.lines().next().unwrap_or_default().to_owned()
}

/// A node CA and a node certificate with its key, for x509pop.
pub(crate) struct NodePki {
    pub(crate) root: PathBuf,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
    pub(crate) leaf_sha1: String,
}

impl NodePki {
    pub(crate) fn write(dir: &Path) -> NodePki {
        use rcgen::{
            BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
        };
        let root_key = KeyPair::generate().expect("root key");
        let mut root_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        root_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "Node Root");
        root_params.distinguished_name = name;
        let root = root_params.self_signed(&root_key).expect("root");
        let issuer = Issuer::from_params(&root_params, &root_key);
        let leaf_key = KeyPair::generate().expect("leaf key");
        let mut leaf_params =
            CertificateParams::new(vec!["node-1.example.org".to_owned()]).expect("params");
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "node-1");
        leaf_params.distinguished_name = name;
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).expect("leaf");
        let pki = NodePki {
            root: dir.join("node-root.pem"),
            cert: dir.join("node.pem"),
            key: dir.join("node.key"),
            leaf_sha1: aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
                leaf.der(),
            )
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        };
        std::fs::write(&pki.root, root.pem()).expect("write root");
        std::fs::write(&pki.cert, leaf.pem()).expect("write cert");
        std::fs::write(&pki.key, leaf_key.serialize_pem()).expect("write key");
        pki
    }
}

pub(crate) fn agent_conf(dir: &Path, port: u16, bundle: &str) -> String {
    agent_conf_with(
        dir,
        port,
        bundle,
        "NodeAttestor \"join_token\" {\n        plugin_data {}\n    }",
    )
}

pub(crate) fn agent_conf_with(dir: &Path, port: u16, bundle: &str, node_attestor: &str) -> String {
    format!(
        r#"agent {{
    data_dir = "{data}"
    log_level = "INFO"
    server_address = "127.0.0.1"
    server_port = {port}
    socket_path = "{socket}"
    trust_domain = "example.org"
    {bundle}
}}
plugins {{
    {node_attestor}
    KeyManager "memory" {{
        plugin_data {{}}
    }}
    WorkloadAttestor "unix" {{
        plugin_data {{}}
    }}
}}
"#,
        data = dir.join("agent-data").display(),
        socket = dir.join("agent.sock").display(),
    )
}

/// `agent_conf` with `extra` lines added to the `agent` block (the admin socket, say).
pub(crate) fn agent_conf_extra(dir: &Path, port: u16, bundle: &str, extra: &str) -> String {
    agent_conf(dir, port, &format!("{bundle}\n    {extra}"))
}

/// The in-process server.
pub(crate) struct Server {
    pub(crate) socket: PathBuf,
    pub(crate) address: SocketAddr,
    stop_agents: Option<oneshot::Sender<()>>,
    server: Arc<sigil_server::Server>,
}

impl Server {
    pub(crate) async fn start(dir: &Path) -> Server {
        Self::start_with(
            dir,
            "",
            "NodeAttestor \"join_token\" {\n        plugin_data {}\n    }",
        )
        .await
    }

    /// A server with extra `server` block lines and the given NodeAttestor block.
    pub(crate) async fn start_with(dir: &Path, server_extra: &str, node_attestor: &str) -> Server {
        let socket = dir.join("server.sock");
        let data = dir.join("server-data");
        let text = format!(
            r#"server {{
    socket_path = "{socket}"
    trust_domain = "example.org"
    data_dir = "{data}"
    {server_extra}
}}
plugins {{
    DataStore "sql" {{
        plugin_data {{
            database_type = "sqlite3"
            connection_string = "{data}/datastore.sqlite3"
        }}
    }}
    KeyManager "memory" {{
        plugin_data {{}}
    }}
    {node_attestor}
}}
"#,
            socket = socket.display(),
            data = data.display()
        );
        let config =
            sigil_config::ServerConfig::parse(&text, "server.conf", false).expect("server config");
        let server = sigil_server::Server::start(config)
            .await
            .expect("server start");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let (stop_agents, stopped) = oneshot::channel::<()>();
        tokio::spawn(sigil_server::serve(server.clone(), std::future::pending()));
        tokio::spawn(sigil_server::serve_agents_on(
            server.clone(),
            listener,
            async move {
                let _ = stopped.await;
            },
        ));
        for _ in 0..100 {
            if socket.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Server {
            socket,
            address,
            stop_agents: Some(stop_agents),
            server,
        }
    }

    /// Runs a CLI command against the admin socket; its output (it must succeed).
    pub(crate) async fn cli_out(&self, args: &[&str]) -> String {
        let mut args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        args.push("-socketPath".into());
        args.push(self.socket.display().to_string());
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = sigil_cli::run(&args, &mut out, &mut err).await;
        let out = String::from_utf8_lossy(&out).into_owned();
        assert_eq!(code, 0, "{args:?}: {out}{}", String::from_utf8_lossy(&err));
        out
    }

    pub(crate) async fn token(&self) -> String {
        self.cli_out(&["token", "generate"])
            .await
            .trim()
            .strip_prefix("Token: ")
            .expect("token")
            .to_owned()
    }

    /// Serves the agent API on loopback `port` too, until the test ends.
    pub(crate) async fn serve_agents_at(&self, port: u16) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the agent API port");
        tokio::spawn(sigil_server::serve_agents_on(
            self.server.clone(),
            listener,
            std::future::pending(),
        ));
    }

    /// Stops the agent API (the admin socket stays).
    pub(crate) fn stop_agent_api(&mut self) {
        if let Some(stop) = self.stop_agents.take() {
            let _ = stop.send(());
        }
    }
}

/// The agent process, its stderr in a file.
pub(crate) struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    pub(crate) fn start(conf: &Path, token: Option<&str>, dir: &Path, name: &str) -> Agent {
        Self::start_with_env(conf, token, dir, name, &[])
    }

    /// [`Agent::start`] with extra environment variables.
    pub(crate) fn start_with_env(
        conf: &Path,
        token: Option<&str>,
        dir: &Path,
        name: &str,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Agent {
        let mut command = Command::new(AGENT);
        command.envs(env.iter().copied());
        Self::spawn(command, conf, token, dir, name)
    }

    /// [`Agent::start`] with at most `nofile` open file descriptors (run under `prlimit`,
    /// which execs the agent: the child is the agent itself).
    pub(crate) fn start_with_nofile(
        conf: &Path,
        token: Option<&str>,
        dir: &Path,
        name: &str,
        nofile: u64,
    ) -> Agent {
        let mut command = Command::new("prlimit");
        command
            .arg(format!("--nofile={nofile}:{nofile}"))
            .arg(AGENT);
        Self::spawn(command, conf, token, dir, name)
    }

    /// Runs `command` (the agent binary and anything before it) with `run -config conf`.
    fn spawn(
        mut command: Command,
        conf: &Path,
        token: Option<&str>,
        dir: &Path,
        name: &str,
    ) -> Agent {
        let log = dir.join(format!("agent-{name}.log"));
        let stderr = std::fs::File::create(&log).expect("log file");
        command.args(["run", "-config"]).arg(conf);
        if let Some(token) = token {
            command.args(["-joinToken", token]);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start the agent");
        Agent { child, log }
    }

    /// The agent's PID.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits up to `limit` for the agent to exit on its own; its exit status.
    pub(crate) fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the agent did not exit: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Asks the agent to stop (SIGTERM) and waits for it to exit; its exit status.
    pub(crate) fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        self.wait_exit(WAIT)
    }

    pub(crate) fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the `spiffe` crate got.
pub(crate) struct Fetched {
    pub(crate) ids: Vec<String>,
    pub(crate) chain: Vec<Vec<u8>>,
}

/// Retries until the agent serves an X.509 context (it syncs right after starting).
pub(crate) async fn fetch_x509(socket: &Path, agent: &mut Agent) -> Fetched {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        assert!(agent.running(), "the agent exited: {}", agent.log());
        if socket.exists() {
            match spiffe::WorkloadApiClient::connect_to(&format!("unix:{}", socket.display())).await
            {
                Ok(client) => match client.fetch_x509_context().await {
                    Ok(context) => {
                        let ids = context
                            .svids()
                            .iter()
                            .map(|s| s.spiffe_id().to_string())
                            .collect();
                        let svid = context.default_svid().expect("a default SVID");
                        let chain = svid
                            .cert_chain()
                            .iter()
                            .map(|c| c.as_bytes().to_vec())
                            .collect();
                        return Fetched { ids, chain };
                    }
                    Err(error) => last = error.to_string(),
                },
                Err(error) => last = error.to_string(),
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no X509-SVID in time ({last}): {}", agent.log());
}

/// Each certificate is signed by the next, the last by one of `roots`.
pub(crate) fn verify_chain(chain: &[Vec<u8>], roots: &[pem::Pem]) {
    fn parse(der: &[u8]) -> x509_parser::certificate::X509Certificate<'_> {
        x509_parser::parse_x509_certificate(der)
            .expect("certificate")
            .1
    }
    for pair in chain.windows(2) {
        let (child, issuer) = (parse(&pair[0]), parse(&pair[1]));
        child
            .verify_signature(Some(issuer.public_key()))
            .expect("signed by the next certificate");
    }
    let last = parse(chain.last().expect("non-empty chain"));
    let signed_by_root = roots.iter().any(|root| {
        let root = parse(root.contents());
        last.verify_signature(Some(root.public_key())).is_ok()
    });
    assert!(signed_by_root, "the chain ends at a bundle root");
    let now = x509_parser::time::ASN1Time::now();
    assert!(parse(&chain[0]).validity().is_valid_at(now));
}

/// A raw Workload API channel (no security header added).
pub(crate) async fn uds_channel(path: &Path) -> tonic::transport::Channel {
    let path = path.to_owned();
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
        .expect("connect to the agent socket")
}

/// An in-process server with the x509pop node attestor, an entry for this process's uid
/// under the node's agent ID, and an agent attesting with x509pop (insecure bootstrap).
pub(crate) struct X509popAgent {
    pub(crate) server: Server,
    pub(crate) agent: Agent,
    pub(crate) agent_id: String,
    pub(crate) socket: std::path::PathBuf,
    pub(crate) entry_id: String,
}

impl X509popAgent {
    pub(crate) async fn start(dir: &Path, server_extra: &str) -> X509popAgent {
        let pki = NodePki::write(dir);
        let server = Server::start_with(
            dir,
            server_extra,
            &format!(
                "NodeAttestor \"x509pop\" {{\n        plugin_data {{\n            ca_bundle_path = \"{}\"\n        }}\n    }}",
                pki.root.display()
            ),
        )
        .await;
        let agent_id = format!("spiffe://example.org/spire/agent/x509pop/{}", pki.leaf_sha1);
        let uid =
            std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").expect("proc"));
        let created = server
            .cli_out(&[
                "entry",
                "create",
                "-spiffeID",
                "spiffe://example.org/node-workload",
                "-parentID",
                &agent_id,
                "-selector",
                &format!("unix:uid:{uid}"),
            ])
            .await;
        let entry_id = created
            .lines()
            .find_map(|l| l.strip_prefix("Entry ID         : "))
            .expect("entry ID")
            .trim()
            .to_owned();
        let conf = dir.join("agent.conf");
        std::fs::write(
            &conf,
            agent_conf_with(
                dir,
                server.address.port(),
                "insecure_bootstrap = true",
                &format!(
                    "NodeAttestor \"x509pop\" {{\n        plugin_data {{\n            certificate_path = \"{}\"\n            private_key_path = \"{}\"\n        }}\n    }}",
                    pki.cert.display(),
                    pki.key.display()
                ),
            ),
        )
        .expect("write config");
        let agent = Agent::start(&conf, None, dir, "x509pop");
        X509popAgent {
            server,
            agent,
            agent_id,
            socket: dir.join("agent.sock"),
            entry_id,
        }
    }
}

/// An HTTPS site on loopback serving one document at `/bundle` (404 elsewhere), with a
/// certificate for 127.0.0.1 from its own CA, written to `ca`.
pub(crate) struct BundleSite {
    pub(crate) port: u16,
    pub(crate) ca: PathBuf,
}

impl BundleSite {
    pub(crate) async fn start(dir: &Path, document: Vec<u8>) -> BundleSite {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("CA");
        let issuer = Issuer::from_params(&ca_params, &ca_key);
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names = vec![SanType::IpAddress([127, 0, 0, 1].into())];
        let cert = params.signed_by(&key, &issuer).expect("site certificate");
        let ca_path = dir.join("site-ca.pem");
        std::fs::write(&ca_path, ca.pem()).expect("write CA");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).expect("key"),
        )
        .expect("TLS config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let document = Arc::new(document);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, document) = (acceptor.clone(), document.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let mut head = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let found = head.starts_with(b"GET /bundle ");
                    let (status, body): (&str, &[u8]) = if found {
                        ("200 OK", &document)
                    } else {
                        ("404 Not Found", b"")
                    };
                    let reply = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = tls.write_all(reply.as_bytes()).await;
                    let _ = tls.write_all(body).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        BundleSite { port, ca: ca_path }
    }
}

/// An in-process server, a join token, the server's bundle written as the bootstrap bundle
/// (`bootstrap.pem`), and an entry `spiffe://example.org/workload` for this process's uid
/// under the token's agent ID.
pub(crate) struct JoinTokenSetup {
    pub(crate) server: Server,
    pub(crate) token: String,
    pub(crate) agent_id: String,
    pub(crate) bundle_pem: String,
    pub(crate) uid: u32,
}

impl JoinTokenSetup {
    pub(crate) async fn start(dir: &Path) -> JoinTokenSetup {
        let server = Server::start(dir).await;
        let token = server.token().await;
        let bundle_pem = server.cli_out(&["bundle", "show"]).await;
        std::fs::write(dir.join("bootstrap.pem"), &bundle_pem).expect("write bundle");
        let agent_id = format!("spiffe://example.org/spire/agent/join_token/{token}");
        let uid =
            std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").expect("proc"));
        server
            .cli_out(&[
                "entry",
                "create",
                "-spiffeID",
                "spiffe://example.org/workload",
                "-parentID",
                &agent_id,
                "-selector",
                &format!("unix:uid:{uid}"),
            ])
            .await;
        JoinTokenSetup {
            server,
            token,
            agent_id,
            bundle_pem,
            uid,
        }
    }

    /// `agent.conf` in `dir` for `server`, bootstrapping from `bootstrap.pem`.
    pub(crate) fn write_conf(dir: &Path, server: &Server) -> PathBuf {
        let conf = dir.join("agent.conf");
        let bundle = format!(
            "trust_bundle_path = \"{}\"",
            dir.join("bootstrap.pem").display()
        );
        std::fs::write(&conf, agent_conf(dir, server.address.port(), &bundle))
            .expect("write config");
        conf
    }
}
