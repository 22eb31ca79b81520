//! The agent-facing API over loopback TLS, in process: join-token attestation, a reused
//! token, BatchNewX509SVID for authorized and unauthorized entries, a banned agent.

#![expect(
    clippy::expect_used,
    reason = "test helpers outside #[test] functions: a failed setup step must fail the test"
)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sigil_proto::spire::api::server::svid::v1 as svid;
use tonic::transport::Channel;

mod common;

use common::{attest, channel};

async fn cli(socket: &Path, args: &[&str]) -> (i32, String) {
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

/// A started server: its admin socket and its agent API address.
struct Harness {
    server: Arc<sigil_server::Server>,
    socket: std::path::PathBuf,
    address: SocketAddr,
}

/// Start a server in `dir` with the DataStore `plugin_data` body `data_store`.
async fn start(dir: &Path, data_store: &str) -> Harness {
    let socket = dir.join("api.sock");
    let text = format!(
        r#"server {{
    socket_path = "{socket}"
    trust_domain = "example.org"
    data_dir = "{data}"
}}
plugins {{
    DataStore "sql" {{
        plugin_data {{
            {data_store}
        }}
    }}
    KeyManager "memory" {{
        plugin_data {{}}
    }}
    NodeAttestor "join_token" {{
        plugin_data {{}}
    }}
}}
"#,
        socket = socket.display(),
        data = dir.join("data").display()
    );
    let config = sigil_config::ServerConfig::parse(&text, "server.conf", false).expect("config");
    let server = sigil_server::Server::start(config).await.expect("start");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(sigil_server::serve(server.clone(), std::future::pending()));
    tokio::spawn(sigil_server::serve_agents_on(
        server.clone(),
        listener,
        std::future::pending(),
    ));
    for _ in 0..100 {
        if socket.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Harness {
        server,
        socket,
        address,
    }
}

/// A new join token from `socket`.
async fn token(socket: &Path) -> String {
    let (code, token) = cli(socket, &["token", "generate"]).await;
    assert_eq!(code, 0, "{token}");
    token
        .trim()
        .strip_prefix("Token: ")
        .expect("token")
        .to_owned()
}

/// Create an entry through `socket`; its ID.
async fn create_entry(socket: &Path, spiffe_id: &str, parent: &str) -> String {
    let (code, out) = cli(
        socket,
        &[
            "entry",
            "create",
            "-spiffeID",
            spiffe_id,
            "-parentID",
            parent,
            "-selector",
            "unix:uid:1000",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    out.lines()
        .find_map(|l| l.strip_prefix("Entry ID         : "))
        .expect("entry ID")
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_attest_with_a_join_token_and_get_only_authorized_svids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let Harness {
        server,
        socket,
        address,
    } = start(
        dir.path(),
        &format!(
            "database_type = \"sqlite3\"\n            connection_string = \"{}/datastore.sqlite3\"",
            data.display()
        ),
    )
    .await;

    let (code, token) = cli(&socket, &["token", "generate"]).await;
    assert_eq!(code, 0, "{token}");
    let token = token
        .trim()
        .strip_prefix("Token: ")
        .expect("token")
        .to_owned();
    let (code, bundle) = cli(&socket, &["bundle", "show"]).await;
    assert_eq!(code, 0, "{bundle}");

    // Attestation: the agent ID is SPIRE's join_token form.
    let key = rcgen::KeyPair::generate().expect("agent key");
    let agent_svid = attest(channel(address, &bundle, None).await, &token, &key)
        .await
        .expect("attested");
    let agent_id = format!("spiffe://example.org/spire/agent/join_token/{token}");
    assert_eq!(
        agent_svid.id.as_ref().map(|id| id.path.as_str()),
        Some(format!("/spire/agent/join_token/{token}").as_str())
    );

    // The token works once.
    let other_key = rcgen::KeyPair::generate().expect("key");
    let reused = attest(channel(address, &bundle, None).await, &token, &other_key)
        .await
        .expect_err("a used token is refused");
    assert_eq!(reused.code(), tonic::Code::PermissionDenied, "{reused}");

    // Entries: one for this agent, one for another.
    let mine = create_entry(&socket, "spiffe://example.org/web", &agent_id).await;
    let theirs = create_entry(
        &socket,
        "spiffe://example.org/db",
        "spiffe://example.org/spire/agent/join_token/someone-else",
    )
    .await;

    let identity = Some((agent_svid.cert_chain.clone(), key.serialize_der()));
    let mut svids =
        svid::svid_client::SvidClient::new(channel(address, &bundle, identity.clone()).await);
    let workload_key = rcgen::KeyPair::generate().expect("workload key");
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .expect("params")
        .serialize_request(&workload_key)
        .expect("csr")
        .der()
        .to_vec();
    let mut results = Vec::new();
    for _ in 0..50 {
        // The cache follows the datastore's event log: give it a moment for the entries.
        results = svids
            .batch_new_x509svid(svid::BatchNewX509svidRequest {
                params: vec![
                    svid::NewX509svidParams {
                        entry_id: mine.clone(),
                        csr: csr.clone(),
                    },
                    svid::NewX509svidParams {
                        entry_id: theirs.clone(),
                        csr: csr.clone(),
                    },
                ],
            })
            .await
            .expect("batch")
            .into_inner()
            .results;
        if results[0].status.as_ref().is_some_and(|s| s.code == 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = |i: usize| results[i].status.clone().expect("status");
    assert_eq!(status(0).code, 0, "{:?}", status(0));
    assert_eq!(
        results[0]
            .svid
            .as_ref()
            .and_then(|s| s.id.as_ref())
            .map(|id| id.path.as_str()),
        Some("/web")
    );
    assert_eq!(status(1).code, tonic::Code::PermissionDenied as i32);
    assert!(
        status(1).message.contains("spiffe://example.org/db"),
        "{}",
        status(1).message
    );

    // Without an SVID, BatchNewX509SVID is refused.
    let mut anonymous = svid::svid_client::SvidClient::new(channel(address, &bundle, None).await);
    let refused = anonymous
        .batch_new_x509svid(svid::BatchNewX509svidRequest { params: vec![] })
        .await
        .expect_err("anonymous");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    // A banned agent is refused.
    let (code, out) = cli(&socket, &["agent", "ban", "-spiffeID", &agent_id]).await;
    assert_eq!(code, 0, "{out}");
    let mut banned = None;
    for _ in 0..50 {
        match svids
            .batch_new_x509svid(svid::BatchNewX509svidRequest { params: vec![] })
            .await
        {
            Err(status) => {
                banned = Some(status);
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let banned = banned.expect("the ban reaches the cache");
    assert_eq!(banned.code(), tonic::Code::PermissionDenied);
    assert!(banned.message().contains("banned"), "{banned}");
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_created_on_one_server_reaches_an_agent_of_another_within_a_second() {
    let url = std::env::var("DATABASE_URL")
        .expect("DATABASE_URL must name the test PostgreSQL database (scripts/test.sh sets it)");
    let schema = format!("sigil_ha_{}", uuid::Uuid::new_v4().simple());
    let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL");
    tokio::spawn(connection);
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("schema");
    let separator = if url.contains('?') { '&' } else { '?' };
    let store = format!(
        "database_type = \"postgres\"\n            connection_string = \"{url}{separator}options=-csearch_path%3D{schema}\""
    );
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let a = start(dir_a.path(), &store).await;
    let b = start(dir_b.path(), &store).await;

    // The agent attests to server B with a token from B, trusting B's view of the bundle
    // (which holds both servers' CAs).
    let (code, bundle) = cli(&b.socket, &["bundle", "show"]).await;
    assert_eq!(code, 0, "{bundle}");
    assert_eq!(
        bundle.matches("BEGIN CERTIFICATE").count(),
        2,
        "both servers' CAs are in the shared bundle"
    );
    let key = rcgen::KeyPair::generate().expect("agent key");
    let token = token(&b.socket).await;
    let svid = attest(channel(b.address, &bundle, None).await, &token, &key)
        .await
        .expect("attested to B");
    let agent_id = format!("spiffe://example.org/spire/agent/join_token/{token}");
    let mut entries = sigil_proto::spire::api::server::entry::v1::entry_client::EntryClient::new(
        channel(
            b.address,
            &bundle,
            Some((svid.cert_chain, key.serialize_der())),
        )
        .await,
    );
    let authorized =
        |entries: &mut sigil_proto::spire::api::server::entry::v1::entry_client::EntryClient<
            Channel,
        >| {
            let mut entries = entries.clone();
            async move {
                entries
                    .get_authorized_entries(
                        sigil_proto::spire::api::server::entry::v1::GetAuthorizedEntriesRequest {
                            output_mask: None,
                        },
                    )
                    .await
                    .expect("authorized entries")
                    .into_inner()
                    .entries
            }
        };
    assert!(authorized(&mut entries).await.is_empty());

    // Created on A; seen through B.
    let started = std::time::Instant::now();
    let id = create_entry(&a.socket, "spiffe://example.org/web", &agent_id).await;
    let elapsed = loop {
        if authorized(&mut entries).await.iter().any(|e| e.id == id) {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the entry never reached server B"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    println!("entry created on A visible to an agent of B after {elapsed:?}");
    a.server.shutdown();
    b.server.shutdown();
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .expect("drop schema");
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
}
