//! Shared set-up of the agent's tests and benchmarks: the agent's configuration, the
//! `sigil-agent` binary as a real process, Workload API clients, and set-ups made of an
//! in-process server and an agent. What the server's tests share with these (the in-process
//! server, processes, certificates, ports) is in sigil-testkit.

#![allow(
    dead_code,
    unused_imports,
    reason = "each test binary and bench uses a different part of the set-up"
)]
#![expect(
    clippy::expect_used,
    reason = "test helpers: a failed setup step must fail the test"
)]

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use sigil_testkit::certs::{NodePki, verify_chain};
pub(crate) use sigil_testkit::process::Daemon;
pub(crate) use sigil_testkit::server::{InProcessServer as Server, uds_channel};
pub(crate) use sigil_testkit::{WAIT, http_get, unix_now};

pub(crate) const AGENT: &str = env!("CARGO_BIN_EXE_sigil-agent");

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

/// The agent process, its stderr in `agent-<name>.log`; the process calls ([`Daemon`]'s
/// `pid`, `log`, `running`, `wait_exit`, `terminate`, `stop`) go through to it.
pub(crate) struct Agent(Daemon);

impl Deref for Agent {
    type Target = Daemon;
    fn deref(&self) -> &Daemon {
        &self.0
    }
}

impl DerefMut for Agent {
    fn deref_mut(&mut self) -> &mut Daemon {
        &mut self.0
    }
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
        let command = sigil_testkit::process::with_nofile(Path::new(AGENT), nofile);
        Self::spawn(command, conf, token, dir, name)
    }

    /// Runs `command` (the agent binary and anything before it) with `run -config conf`.
    fn spawn(command: Command, conf: &Path, token: Option<&str>, dir: &Path, name: &str) -> Agent {
        let log = dir.join(format!("agent-{name}.log"));
        let token: &[&str] = match token {
            Some(token) => &["-joinToken", token],
            None => &[],
        };
        Agent(Daemon::run(command, conf, token, &log))
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
        let entry_id = sigil_testkit::entry_id(&created);
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
        use sigil_testkit::https::{Request, Response, TestServer, TestTls};
        let tls = TestTls::new();
        let ca_path = dir.join("site-ca.pem");
        std::fs::write(&ca_path, &tls.ca_pem).expect("write CA");
        let site = TestServer::tls(
            &tls,
            Arc::new(move |request: &Request| match request.path() {
                "/bundle" if request.method == "GET" => Response::json(200, document.clone()),
                _ => Response::json(404, ""),
            }),
        );
        BundleSite {
            port: site.port(),
            ca: ca_path,
        }
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
