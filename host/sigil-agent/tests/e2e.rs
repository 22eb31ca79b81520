//! End to end with every part a real process: the `sigil-server` binary (SQLite, disk key
//! manager, its own CLI), the `sigil-agent` binary, and workloads that are processes too —
//! `sigil-agent api …` as this uid and as another — plus an Envoy-style SDS client and the
//! `spiffe` crate over the agent's socket. The server is killed and started again while a
//! stream is open: the agent serves from its cache meanwhile and rotation resumes.
//!
//! The server binary is the workspace's `target/<profile>/sigil-server`, built by the same
//! `cargo test --workspace` run (see `sigil_testkit::process::binary`).

#![expect(
    clippy::expect_used,
    reason = "test helpers outside #[test] functions: a failed setup step must fail the test"
)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::secret::Type as SecretType;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_client::SecretDiscoveryServiceClient;
use prost::{Message, Name};
use sigil_proto::workload::X509svidRequest;
use sigil_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

mod common;

use common::{AGENT, Agent, WAIT, http_get, uds_channel, unix_now, verify_chain};
use sigil_testkit::conf::{ServerConf, disk_key_manager};
use sigil_testkit::process::ServerProcess;

/// Lifetime of the workload's X509-SVIDs: short, so rotations happen during the test.
const SVID_TTL: i64 = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_agent_and_workload_processes_end_to_end_with_a_server_restart() {
    assert_eq!(
        std::fs::metadata("/proc/self").expect("proc").uid(),
        0,
        "this test runs a workload as another uid (nobody), which needs root; CI runs as root"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    // Other uids reach the socket (0777) through the test directory.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).expect("chmod");
    let mut server = start_server(dir.path());
    let token = server
        .cli_ok(&["token", "generate"])
        .trim()
        .strip_prefix("Token: ")
        .expect("token")
        .to_owned();
    let bundle_pem = server.cli_ok(&["bundle", "show"]);
    let bundle_path = dir.path().join("bootstrap.pem");
    std::fs::write(&bundle_path, &bundle_pem).expect("write bundle");
    let agent_id = format!("spiffe://example.org/spire/agent/join_token/{token}");
    server.cli_ok(&[
        "entry",
        "create",
        "-spiffeID",
        "spiffe://example.org/e2e",
        "-parentID",
        &agent_id,
        "-selector",
        "unix:uid:0",
        "-x509SVIDTTL",
        &SVID_TTL.to_string(),
    ]);

    let socket = dir.path().join("run/agent.sock");
    let conf = dir.path().join("agent.conf");
    std::fs::write(
        &conf,
        format!(
            r#"agent {{
    data_dir = "{data}"
    log_level = "DEBUG"
    server_address = "127.0.0.1"
    server_port = {port}
    socket_path = "{socket}"
    trust_domain = "example.org"
    trust_bundle_path = "{bundle}"
}}
plugins {{
    NodeAttestor "join_token" {{
        plugin_data {{}}
    }}
    KeyManager "disk" {{
        plugin_data {{
            directory = "{data}"
        }}
    }}
    WorkloadAttestor "unix" {{
        plugin_data {{}}
    }}
}}
health_checks {{
    listener_enabled = true
    bind_address = "127.0.0.1"
    bind_port = "0"
}}
"#,
            data = dir.path().join("agent-data").display(),
            port = server.agent_api().port(),
            socket = socket.display(),
            bundle = bundle_path.display(),
        ),
    )
    .expect("write agent.conf");
    let mut agent = Agent::start(&conf, Some(&token), dir.path(), "e2e");
    // The health listener is on a port the agent picked and logged.
    let health_port = agent.logged_address("health checks listening").port();

    // A workload process fetches and writes its SVID, key and bundle.
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).expect("mkdir");
    let written = retry(&mut agent, || {
        let mut command = Command::new(AGENT);
        command
            .args(["api", "fetch", "x509", "-socketPath"])
            .arg(&socket)
            .arg("-write")
            .arg(&out_dir);
        command.output().expect("run the workload")
    });
    assert!(text(&written).contains("svid.0.pem"), "{}", text(&written));
    let svid =
        pem::parse_many(std::fs::read(out_dir.join("svid.0.pem")).expect("svid")).expect("PEM");
    let bundle =
        pem::parse_many(std::fs::read(out_dir.join("bundle.0.pem")).expect("bundle")).expect("PEM");
    let chain: Vec<Vec<u8>> = svid.iter().map(|p| p.contents().to_vec()).collect();
    verify_chain(&chain, &bundle);
    assert_eq!(uri_of(&chain[0]), "spiffe://example.org/e2e");
    let key_mode = std::fs::metadata(out_dir.join("svid.0.key"))
        .expect("key")
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);

    // JWT-SVID: fetched by one workload process, validated by another.
    let fetched = Command::new(AGENT)
        .args(["api", "fetch", "jwt", "-audience", "svc", "-socketPath"])
        .arg(&socket)
        .output()
        .expect("fetch jwt");
    assert!(fetched.status.success(), "{}", text(&fetched));
    let printed = String::from_utf8_lossy(&fetched.stdout).into_owned();
    let token_line = printed
        .lines()
        .skip_while(|l| !l.starts_with("token(spiffe://example.org/e2e)"))
        .nth(1)
        .expect("a token for the workload");
    let jwt = token_line.trim();
    let validated = Command::new(AGENT)
        .args(["api", "validate", "jwt", "-audience", "svc", "-svid", jwt])
        .arg("-socketPath")
        .arg(&socket)
        .output()
        .expect("validate jwt");
    assert!(validated.status.success(), "{}", text(&validated));
    assert!(
        text(&validated).contains("SPIFFE ID : spiffe://example.org/e2e"),
        "{}",
        text(&validated)
    );
    let wrong_audience = Command::new(AGENT)
        .args(["api", "validate", "jwt", "-audience", "other", "-svid", jwt])
        .arg("-socketPath")
        .arg(&socket)
        .output()
        .expect("validate jwt");
    assert!(
        !wrong_audience.status.success(),
        "{}",
        text(&wrong_audience)
    );

    // A workload process of another uid: no entry names it.
    let other = Command::new(AGENT)
        .args(["api", "fetch", "x509", "-socketPath"])
        .arg(&socket)
        .uid(65534)
        .gid(65534)
        .output()
        .expect("run as uid 65534");
    assert!(!other.status.success(), "{}", text(&other));
    assert!(
        text(&other).contains("code = PermissionDenied")
            && text(&other).contains("no identity issued"),
        "{}",
        text(&other)
    );

    // Without the security header: refused before attestation.
    let refused = SpiffeWorkloadApiClient::new(uds_channel(&socket).await)
        .fetch_x509svid(X509svidRequest {})
        .await
        .expect_err("no security header");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");

    // The plugins were compiled by a short-lived child process into the artifact cache, so
    // the compiler's memory is not the daemon's.
    assert!(
        agent.log().contains("plugins compiled in a child process"),
        "{}",
        agent.log()
    );
    let cached = std::fs::read_dir(dir.path().join("agent-data/plugin-cache"))
        .expect("plugin cache")
        .count();
    assert!(cached >= 2, "unix and join_token compiled: {cached}");

    // The agent's health checks.
    assert_eq!(http_get(health_port, "/live"), "HTTP/1.1 200 OK");
    assert_eq!(http_get(health_port, "/ready"), "HTTP/1.1 200 OK");

    // An Envoy-style SDS stream for the default SVID: the rotation arrives before the SVID
    // it replaces expires.
    let mut envoy = Envoy::open(&socket).await;
    let first = envoy.next_certificate().await;
    assert_eq!(uri_of(&first.leaf), "spiffe://example.org/e2e");
    let second = envoy.next_certificate().await;
    assert_ne!(second.leaf, first.leaf, "a new SVID");
    assert!(
        second.received_at < first.not_after,
        "rotated at {} before the old one expired at {}",
        second.received_at,
        first.not_after
    );

    // The server dies. The workloads keep being served what the agent holds.
    server.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let client = spiffe::WorkloadApiClient::connect_to(&format!("unix:{}", socket.display()))
        .await
        .expect("connect");
    let cached = client
        .fetch_x509_context()
        .await
        .expect("served from the cache while the server is down");
    let cached_leaf = cached
        .default_svid()
        .expect("an SVID")
        .cert_chain()
        .first()
        .expect("leaf")
        .as_bytes()
        .to_vec();
    assert_eq!(cached_leaf, second.leaf);
    assert_eq!(http_get(health_port, "/ready"), "HTTP/1.1 200 OK");
    assert!(agent.running(), "{}", agent.log());

    // The server comes back: rotation resumes, still before expiry, on the same stream.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let server = restart(dir.path(), server);
    let third = envoy.next_certificate().await;
    assert_ne!(third.leaf, second.leaf);
    assert!(
        third.received_at < second.not_after,
        "rotated at {} before the old one expired at {}",
        third.received_at,
        second.not_after
    );
    verify_chain(std::slice::from_ref(&third.leaf), &bundle);
    let log = agent.log();
    assert!(log.contains("sync with the server failed"), "{log}");
    assert!(log.contains("sync with the server restored"), "{log}");
    assert!(agent.running(), "{log}");
    drop(server);
}

// === helpers ===

/// SPIRE's getting-started commands, unchanged, against the real binaries: a join token
/// generated with `-spiffeID`, a workload entry parented to that ID, the agent run with the
/// token, and `api fetch x509` as this uid. The token's alias entry is what carries the
/// workload entry to the agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spire_getting_started_commands_work_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = start_server(dir.path());
    let token = server
        .cli_ok(&[
            "token",
            "generate",
            "-spiffeID",
            "spiffe://example.org/myagent",
        ])
        .trim()
        .strip_prefix("Token: ")
        .expect("token")
        .to_owned();
    let uid = std::fs::metadata("/proc/self").expect("proc").uid();
    server.cli_ok(&[
        "entry",
        "create",
        "-parentID",
        "spiffe://example.org/myagent",
        "-spiffeID",
        "spiffe://example.org/myservice",
        "-selector",
        &format!("unix:uid:{uid}"),
    ]);
    let bundle_path = dir.path().join("bootstrap.pem");
    std::fs::write(&bundle_path, server.cli_ok(&["bundle", "show"])).expect("write bundle");
    let conf = dir.path().join("agent.conf");
    std::fs::write(
        &conf,
        common::agent_conf(
            dir.path(),
            server.agent_api().port(),
            &format!("trust_bundle_path = \"{}\"", bundle_path.display()),
        ),
    )
    .expect("write agent.conf");
    let mut agent = Agent::start(&conf, Some(&token), dir.path(), "quickstart");

    let socket = dir.path().join("agent.sock");
    let fetched = retry(&mut agent, || {
        Command::new(AGENT)
            .args(["api", "fetch", "x509", "-socketPath"])
            .arg(&socket)
            .output()
            .expect("run the workload")
    });
    assert!(
        text(&fetched).contains("spiffe://example.org/myservice"),
        "{}",
        text(&fetched)
    );
}

/// The `sigil-server` binary as a process (SQLite, disk key manager), its agent API on a port
/// it picks and logs.
fn start_server(dir: &Path) -> ServerProcess {
    start_server_on(dir, 0)
}

fn start_server_on(dir: &Path, port: u16) -> ServerProcess {
    let defaults = ServerConf::in_dir(dir);
    let conf = ServerConf {
        socket: dir.join("server/api.sock"),
        bind_port: Some(port),
        log_level: Some("INFO"),
        key_manager: disk_key_manager(&defaults.data_dir.join("keys")),
        ..defaults
    };
    let config = dir.join("server.conf");
    conf.write(&config);
    ServerProcess::start(&config, &conf.socket, &dir.join("server.log"))
}

/// Kills the server and starts it again from the same config and data, on the same port
/// (the agent is configured with it).
fn restart(dir: &Path, mut old: ServerProcess) -> ServerProcess {
    let port = old.agent_api().port();
    old.kill();
    start_server_on(dir, port)
}

/// An open StreamSecrets call for the `default` secret, acknowledging what it receives.
struct Envoy {
    requests: mpsc::Sender<DiscoveryRequest>,
    responses: tonic::Streaming<DiscoveryResponse>,
}

/// One `default` secret received.
struct Received {
    leaf: Vec<u8>,
    not_after: i64,
    received_at: i64,
}

impl Envoy {
    async fn open(socket: &Path) -> Envoy {
        let (requests, receive) = mpsc::channel(4);
        requests
            .send(DiscoveryRequest {
                node: Some(Node {
                    id: "sidecar~10.0.0.1~e2e".into(),
                    cluster: "e2e".into(),
                    ..Node::default()
                }),
                resource_names: vec!["default".into()],
                type_url: Secret::type_url(),
                ..DiscoveryRequest::default()
            })
            .await
            .expect("first request");
        let responses = SecretDiscoveryServiceClient::new(uds_channel(socket).await)
            .stream_secrets(ReceiverStream::new(receive))
            .await
            .expect("StreamSecrets")
            .into_inner();
        Envoy {
            requests,
            responses,
        }
    }

    /// The next response's certificate, acknowledged as Envoy would.
    async fn next_certificate(&mut self) -> Received {
        let response = tokio::time::timeout(
            Duration::from_secs(u64::try_from(SVID_TTL).expect("ttl") * 2),
            self.responses.message(),
        )
        .await
        .expect("a response in time")
        .expect("stream")
        .expect("the stream ended");
        let received_at = unix_now();
        self.requests
            .send(DiscoveryRequest {
                version_info: response.version_info.clone(),
                resource_names: vec!["default".into()],
                type_url: Secret::type_url(),
                response_nonce: response.nonce.clone(),
                ..DiscoveryRequest::default()
            })
            .await
            .expect("ACK");
        let secret = response
            .resources
            .iter()
            .map(|any| Secret::decode(any.value.as_slice()).expect("a Secret"))
            .find(|s| s.name == "default")
            .expect("the default secret");
        let Some(SecretType::TlsCertificate(tls)) = secret.r#type else {
            panic!("not a TLS certificate")
        };
        let Some(Specifier::InlineBytes(chain)) = tls.certificate_chain.and_then(|c| c.specifier)
        else {
            panic!("no inline chain")
        };
        let leaf = pem::parse_many(&chain)
            .expect("PEM chain")
            .first()
            .expect("leaf")
            .contents()
            .to_vec();
        let not_after = x509_parser::parse_x509_certificate(&leaf)
            .expect("certificate")
            .1
            .validity()
            .not_after
            .timestamp();
        Received {
            leaf,
            not_after,
            received_at,
        }
    }
}

/// Runs `command` until it succeeds (the agent syncs right after it starts).
fn retry(agent: &mut Agent, mut command: impl FnMut() -> Output) -> Output {
    let deadline = Instant::now() + WAIT;
    loop {
        let out = command();
        if out.status.success() {
            return out;
        }
        assert!(
            Instant::now() < deadline && agent.running(),
            "{}\n{}",
            text(&out),
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The URI SAN of a certificate.
fn uri_of(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("certificate");
    cert.subject_alternative_name()
        .ok()
        .flatten()
        .and_then(|san| {
            san.value.general_names.iter().find_map(|name| match name {
                x509_parser::extensions::GeneralName::URI(uri) => Some((*uri).to_owned()),
                _ => None,
            })
        })
        .expect("a URI SAN")
}
