//! `sigil-server` as a real process: started from an HCL file on SQLite and on PostgreSQL,
//! driven with its own CLI over the admin socket, stopped and started again.

#![expect(
    clippy::expect_used,
    reason = "test helpers outside #[test] functions: a failed setup step must fail the test"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sigil_testkit::certs::csr_der;
use sigil_testkit::conf::{ServerConf, disk_key_manager, postgres_data_store};
use sigil_testkit::postgres::Schema;
use sigil_testkit::process::{ServerProcess, cpu_share};
use sigil_testkit::{http_get, join_token};

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_sigil-server");

/// The server process of `config`, its log beside it.
fn start(config: &Path, socket: &Path) -> ServerProcess {
    ServerProcess::start(config, socket, &config.with_file_name("server.log"))
}

/// [`start`] with at most `nofile` open descriptors.
fn start_with_nofile(config: &Path, socket: &Path, nofile: u64) -> ServerProcess {
    ServerProcess::start_with_nofile(config, socket, &config.with_file_name("server.log"), nofile)
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn ok(output: Output) -> String {
    assert!(output.status.success(), "command failed: {}", text(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `server.conf` in `dir` on `data_store` (`DATA_DIR` in it stands for the data directory):
/// the agent API and the health checks on loopback ports the server picks and logs. The
/// config's path and the admin socket's.
fn write_config(dir: &Path, data_store: &str) -> (PathBuf, PathBuf) {
    let data = dir.join("data");
    let conf = ServerConf {
        socket: dir.join("private/api.sock"),
        bind_port: Some(0),
        log_level: Some("INFO"),
        data_store: data_store.replace("DATA_DIR", &data.display().to_string()),
        key_manager: disk_key_manager(&data.join("keys")),
        server_extra: r#"ca_subject {
        country = ["US"]
        organization = ["SPIFFE"]
        common_name = ""
    }"#
        .to_owned(),
        tail: r#"
health_checks {
    listener_enabled = true
    bind_address = "127.0.0.1"
    bind_port = "0"
    live_path = "/live"
    ready_path = "/ready"
}
"#
        .to_owned(),
        data_dir: data,
        ..ServerConf::in_dir(dir)
    };
    let config = dir.join("server.conf");
    conf.write(&config);
    (config, conf.socket)
}

/// The whole operator flow against one data store.
fn operator_flow(data_store: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, socket) = write_config(dir.path(), data_store);
    assert!(
        ok(Command::new(BIN)
            .args(["validate", "-config"])
            .arg(&config)
            .output()
            .expect("validate"))
        .contains("valid")
    );
    let mut server = start(&config, &socket);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&socket).expect("socket").permissions(),
    ) & 0o777;
    assert_eq!(mode, 0o770);

    let health = server.health().port();
    assert_eq!(http_get(health, "/live"), "HTTP/1.1 200 OK");
    assert_eq!(http_get(health, "/ready"), "HTTP/1.1 200 OK");
    assert_eq!(http_get(health, "/other"), "HTTP/1.1 404 Not Found");
    let created = ok(server.cli(&[
        "entry",
        "create",
        "-spiffeID",
        "spiffe://example.org/web",
        "-parentID",
        "spiffe://example.org/spire/agent/join_token/node-1",
        "-selector",
        "unix:uid:1000",
        "-dns",
        "web.example.org",
    ]));
    let entry_id = sigil_testkit::entry_id(&created);
    assert!(
        created.contains("Selector         : unix:uid:1000"),
        "{created}"
    );

    // The same entry again: AlreadyExists, echoing the stored entry; nothing added.
    let again = server.cli(&[
        "entry",
        "create",
        "-spiffeID",
        "spiffe://example.org/web",
        "-parentID",
        "spiffe://example.org/spire/agent/join_token/node-1",
        "-selector",
        "unix:uid:1000",
    ]);
    assert!(!again.status.success());
    assert!(text(&again).contains("AlreadyExists"), "{}", text(&again));
    // Bad input: a selector without a value, an unknown federated trust domain.
    let bad = server.cli(&[
        "entry",
        "create",
        "-spiffeID",
        "spiffe://example.org/x",
        "-parentID",
        "spiffe://example.org/y",
        "-selector",
        "unix",
    ]);
    assert!(!bad.status.success(), "{}", text(&bad));
    let bad = server.cli(&[
        "entry",
        "create",
        "-spiffeID",
        "spiffe://example.org/x",
        "-parentID",
        "spiffe://example.org/y",
        "-selector",
        "unix:uid:1",
        "-federatesWith",
        "spiffe://other.org",
    ]);
    assert!(!bad.status.success());
    assert!(
        text(&bad).contains("no bundle for trust domain other.org"),
        "{}",
        text(&bad)
    );
    assert!(ok(server.cli(&["entry", "count"])).contains('1'));

    let updated = ok(server.cli(&[
        "entry",
        "update",
        "-entryID",
        &entry_id,
        "-spiffeID",
        "spiffe://example.org/web",
        "-parentID",
        "spiffe://example.org/spire/agent/join_token/node-1",
        "-selector",
        "unix:uid:2000",
    ]));
    assert!(updated.contains("unix:uid:2000"), "{updated}");
    let shown = ok(server.cli(&["entry", "show", "-spiffeID", "spiffe://example.org/web"]));
    assert!(
        shown.contains(&entry_id) && shown.contains("unix:uid:2000") && !shown.contains("uid:1000"),
        "{shown}"
    );

    let token = ok(server.cli(&["token", "generate", "-ttl", "600"]));
    assert!(
        token.starts_with("Token: ") && token.trim().len() > 20,
        "{token}"
    );
    let minted = dir.path().join("minted");
    std::fs::create_dir(&minted).expect("mint directory");
    ok(server.cli(&[
        "x509",
        "mint",
        "-spiffeID",
        "spiffe://example.org/web",
        "-write",
        &minted.display().to_string(),
    ]));
    let svid_pem = std::fs::read_to_string(minted.join("svid.pem")).expect("svid.pem");
    assert!(svid_pem.contains("BEGIN CERTIFICATE"), "{svid_pem}");
    let foreign = server.cli(&["x509", "mint", "-spiffeID", "spiffe://other.org/web"]);
    assert!(!foreign.status.success());
    assert!(
        text(&foreign).contains("not in trust domain"),
        "{}",
        text(&foreign)
    );
    let jwt = ok(server.cli(&[
        "jwt",
        "mint",
        "-spiffeID",
        "spiffe://example.org/web",
        "-audience",
        "db",
    ]));
    assert_eq!(
        jwt.trim().split('.').count(),
        3,
        "a JWS compact token: {jwt}"
    );
    let bundle = ok(server.cli(&["bundle", "show"]));
    assert!(bundle.contains("BEGIN CERTIFICATE"), "{bundle}");
    assert!(ok(server.cli(&["agent", "list"])).contains("No attested agents found"));

    ok(server.cli(&[
        "federation",
        "create",
        "-trustDomain",
        "other.org",
        "-bundleEndpointURL",
        "https://other.org/bundle",
        "-bundleEndpointProfile",
        "https_web",
    ]));
    let listed = ok(server.cli(&["federation", "list"]));
    assert!(listed.contains("other.org"), "{listed}");

    // A restart keeps the entries, the federation relationships and the CA.
    server.stop();
    let server = start(&config, &socket);
    let shown = ok(server.cli(&["entry", "show", "-entryID", &entry_id]));
    assert!(shown.contains("spiffe://example.org/web"), "{shown}");
    let federation = ok(server.cli(&["federation", "show", "-trustDomain", "other.org"]));
    assert!(
        federation.contains("https://other.org/bundle"),
        "{federation}"
    );
    ok(server.cli(&["federation", "delete", "-id", "other.org"]));
    let gone = server.cli(&["federation", "show", "-trustDomain", "other.org"]);
    assert!(!gone.status.success(), "{}", text(&gone));
    assert_eq!(
        ok(server.cli(&["bundle", "show"])),
        bundle,
        "the same CA after a restart"
    );

    ok(server.cli(&["entry", "delete", "-entryID", &entry_id]));
    let missing = server.cli(&["entry", "show", "-entryID", &entry_id]);
    assert!(
        !missing.status.success() && text(&missing).contains("NotFound"),
        "{}",
        text(&missing)
    );
    server.stop();
}

#[test]
fn operator_flow_on_sqlite() {
    operator_flow(
        r#"database_type = "sqlite3"
            connection_string = "DATA_DIR/datastore.sqlite3""#,
    );
}

#[test]
fn operator_flow_on_postgres() {
    on_postgres(operator_flow);
}

/// Run `flow` with a DataStore `plugin_data` body for a fresh schema of the PostgreSQL
/// database at `DATABASE_URL`, dropped afterwards.
fn on_postgres(flow: fn(&str)) {
    let schema = Schema::create("sigil_server");
    flow(&postgres_data_store(&schema.store_url()));
}

#[test]
fn bad_configuration_exits_64_naming_file_line_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("bad.conf");
    std::fs::write(
        &config,
        "server {\n    trust_domain = \"example.org\"\n    data_dir = \"/tmp/x\"\n    ca_ttl = \"3x\"\n}\n",
    )
    .expect("write");
    for command in ["validate", "run"] {
        let output = Command::new(BIN)
            .args([command, "-config"])
            .arg(&config)
            .output()
            .expect("run");
        assert_eq!(
            output.status.code(),
            Some(64),
            "{command}: {}",
            text(&output)
        );
        let message = text(&output);
        assert!(
            message.contains("bad.conf:4") && message.contains("server.ca_ttl"),
            "{message}"
        );
    }
    let output = Command::new(BIN)
        .args(["run", "-nonsense"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(64), "{}", text(&output));
}

/// A flood of TCP connections that never finish a TLS handshake takes the server to its
/// descriptor limit: the accept loop backs off instead of spinning, and once the flood is
/// gone TLS clients are served again.
#[test]
fn at_the_descriptor_limit_the_agent_api_backs_off_and_accepts_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, socket) = write_config(
        dir.path(),
        r#"database_type = "sqlite3"
            connection_string = "DATA_DIR/datastore.sqlite3""#,
    );
    let mut server = start_with_nofile(&config, &socket, 128);
    let port = server.agent_api().port();
    let flood: Vec<_> = (0..400)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect"))
        .collect();
    // Let the server accept what it can and hit EMFILE with connections still queued.
    std::thread::sleep(Duration::from_secs(1));
    let cpu = cpu_share(server.daemon().pid(), Duration::from_secs(3));
    assert!(
        cpu < 0.10,
        "the server used {:.0} % of a core while out of descriptors",
        cpu * 100.0
    );
    drop(flood);
    // A TLS client completes a handshake once descriptors are free again.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let handshake = Command::new("openssl")
            .args(["s_client", "-brief", "-alpn", "h2", "-connect"])
            .arg(format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .output()
            .expect("run openssl s_client");
        if handshake.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no TLS handshake after the flood: {}",
            text(&handshake)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    server.stop();
}

#[test]
fn an_agent_attests_to_the_server_process_and_survives_its_restart_on_sqlite() {
    agent_flow(
        r#"database_type = "sqlite3"
            connection_string = "DATA_DIR/datastore.sqlite3""#,
    );
}

#[test]
fn an_agent_attests_to_the_server_process_and_survives_its_restart_on_postgres() {
    on_postgres(agent_flow);
}

/// A server process on `data_store`: an agent attests with a join token, gets an SVID for its
/// entry and is refused another agent's; after a restart the agent, the CA and the SVID path
/// still work and the used token is still refused.
fn agent_flow(data_store: &str) {
    use sigil_proto::spire::api::server::svid::v1 as svid;

    let dir = tempfile::tempdir().expect("tempdir");
    let (config, socket) = write_config(dir.path(), data_store);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let mut server = start(&config, &socket);
    let address = server.agent_api();
    let token = join_token(&ok(server.cli(&["token", "generate"])));
    let bundle = ok(server.cli(&["bundle", "show"]));
    let key = rcgen::KeyPair::generate().expect("agent key");
    let agent_svid = runtime
        .block_on(async {
            common::attest(common::channel(address, &bundle, None).await, &token, &key).await
        })
        .expect("attested");
    let agent_id = format!("spiffe://example.org/spire/agent/join_token/{token}");
    let created = ok(server.cli(&[
        "entry",
        "create",
        "-spiffeID",
        "spiffe://example.org/web",
        "-parentID",
        &agent_id,
        "-selector",
        "unix:uid:1000",
    ]));
    let entry_id = sigil_testkit::entry_id(&created);
    let identity = Some((agent_svid.cert_chain.clone(), key.serialize_der()));
    let csr = csr_der(&rcgen::KeyPair::generate().expect("key"));
    let new_svid = |address| {
        let (identity, entry_id, csr, bundle) = (
            identity.clone(),
            entry_id.clone(),
            csr.clone(),
            bundle.clone(),
        );
        runtime.block_on(async move {
            let mut client = svid::svid_client::SvidClient::new(
                common::channel(address, &bundle, identity).await,
            );
            for _ in 0..50 {
                let results = client
                    .batch_new_x509svid(svid::BatchNewX509svidRequest {
                        params: vec![svid::NewX509svidParams {
                            entry_id: entry_id.clone(),
                            csr: csr.clone(),
                        }],
                    })
                    .await
                    .map(|r| r.into_inner().results);
                if let Ok(results) = &results
                    && results[0].status.as_ref().is_some_and(|s| s.code == 0)
                {
                    return results[0].svid.clone().expect("svid");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("BatchNewX509SVID never succeeded for the agent's entry");
        })
    };
    let first = new_svid(address);
    assert_eq!(first.id.as_ref().map(|id| id.path.as_str()), Some("/web"));

    // An entry of another agent: refused, naming its SPIFFE ID.
    let theirs = ok(server.cli(&[
        "entry",
        "create",
        "-spiffeID",
        "spiffe://example.org/db",
        "-parentID",
        "spiffe://example.org/spire/agent/join_token/someone-else",
        "-selector",
        "unix:uid:1000",
    ]));
    let their_id = sigil_testkit::entry_id(&theirs);
    let refused = runtime.block_on(async {
        svid::svid_client::SvidClient::new(
            common::channel(address, &bundle, identity.clone()).await,
        )
        .batch_new_x509svid(svid::BatchNewX509svidRequest {
            params: vec![svid::NewX509svidParams {
                entry_id: their_id.clone(),
                csr: csr.clone(),
            }],
        })
        .await
        .expect("answered per item")
        .into_inner()
        .results
    });
    let status = refused[0].status.clone().expect("status");
    assert_eq!(
        status.code,
        tonic::Code::PermissionDenied as i32,
        "{status:?}"
    );
    // Named by SPIFFE ID once the server's cache has the entry, by entry ID before.
    assert!(
        status.message.contains("spiffe://example.org/db") || status.message.contains(&their_id),
        "{status:?}"
    );

    // After a restart (on another port the server picks): the same agent, the same CA, the
    // agent's SVID still works.
    server.stop();
    let mut server = start(&config, &socket);
    let address = server.agent_api();
    let agents = ok(server.cli(&["agent", "list"]));
    assert!(agents.contains(&agent_id), "{agents}");
    assert_eq!(ok(server.cli(&["bundle", "show"])), bundle);
    let again = new_svid(address);
    assert_eq!(again.id.as_ref().map(|id| id.path.as_str()), Some("/web"));
    let reused = runtime
        .block_on(async {
            common::attest(common::channel(address, &bundle, None).await, &token, &key).await
        })
        .expect_err("the token was used");
    assert_eq!(reused.code(), tonic::Code::PermissionDenied, "{reused}");
    server.stop();
}
