//! `sigil-server` as a real process: started from an HCL file on SQLite and on PostgreSQL,
//! driven with its own CLI over the admin socket, stopped and started again.

#![expect(
    clippy::expect_used,
    reason = "test helpers outside #[test] functions: a failed setup step must fail the test"
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_sigil-server");

/// A server process and the paths of its test directory.
struct Running {
    child: Child,
    socket: PathBuf,
}

impl Running {
    fn start(config: &Path, socket: &Path) -> Self {
        Self::start_command(Command::new(BIN), config, socket)
    }

    /// [`Running::start`] with at most `nofile` open descriptors (`prlimit` execs the server).
    fn start_with_nofile(config: &Path, socket: &Path, nofile: u64) -> Self {
        let mut command = Command::new("prlimit");
        command.arg(format!("--nofile={nofile}:{nofile}")).arg(BIN);
        Self::start_command(command, config, socket)
    }

    fn start_command(mut command: Command, config: &Path, socket: &Path) -> Self {
        let child = command
            .args(["run", "-config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn sigil-server");
        let running = Running {
            child,
            socket: socket.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if running.cli(&["healthcheck"]).status.success() {
                return running;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not become healthy"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Run a CLI command against this server's socket.
    fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .arg("-socketPath")
            .arg(&self.socket)
            .output()
            .expect("run the CLI")
    }

    /// Stop with SIGTERM and wait.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(killed.success());
        let status = self.child.wait().expect("wait");
        assert!(
            status.success(),
            "the server exits cleanly on SIGTERM: {status}"
        );
        assert!(!self.socket.exists(), "the socket is removed on shutdown");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

fn write_config(dir: &Path, data_store: &str) -> (PathBuf, PathBuf) {
    write_config_on_port(dir, data_store, 0)
}

fn write_config_on_port(dir: &Path, data_store: &str, port: u16) -> (PathBuf, PathBuf) {
    let socket = dir.join("private/api.sock");
    let config = dir.join("server.conf");
    std::fs::write(
        &config,
        format!(
            r#"server {{
    bind_address = "127.0.0.1"
    bind_port = "{port}"
    socket_path = "{socket}"
    trust_domain = "example.org"
    data_dir = "{data}"
    log_level = "WARN"
    ca_subject {{
        country = ["US"]
        organization = ["SPIFFE"]
        common_name = ""
    }}
}}

plugins {{
    DataStore "sql" {{
        plugin_data {{
            {data_store}
        }}
    }}
    KeyManager "disk" {{
        plugin_data {{
            keys_path = "{data}/keys"
        }}
    }}
    NodeAttestor "join_token" {{
        plugin_data {{}}
    }}
}}

health_checks {{
    listener_enabled = true
    bind_address = "127.0.0.1"
    bind_port = "{health_port}"
    live_path = "/live"
    ready_path = "/ready"
}}
"#,
            socket = socket.display(),
            data = dir.join("data").display(),
            health_port = health_port(dir),
            data_store = data_store.replace("DATA_DIR", &dir.join("data").display().to_string()),
        ),
    )
    .expect("write server.conf");
    (config, socket)
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
    let server = Running::start(&config, &socket);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&socket).expect("socket").permissions(),
    ) & 0o777;
    assert_eq!(mode, 0o770);

    assert_eq!(health(dir.path(), "/live"), "HTTP/1.1 200 OK");
    assert_eq!(health(dir.path(), "/ready"), "HTTP/1.1 200 OK");
    assert_eq!(health(dir.path(), "/other"), "HTTP/1.1 404 Not Found");
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
    let entry_id = created
        .lines()
        .find_map(|l| l.strip_prefix("Entry ID         : "))
        .expect("Entry ID line")
        .trim()
        .to_owned();
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
    let server = Running::start(&config, &socket);
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
    let url = std::env::var("DATABASE_URL")
        .expect("DATABASE_URL must name the test PostgreSQL database (scripts/test.sh sets it)");
    let schema = format!("sigil_server_{}", uuid::Uuid::new_v4().simple());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let admin = |sql: String| {
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("connect to PostgreSQL");
            tokio::spawn(connection);
            client.batch_execute(&sql).await.expect("admin SQL");
        });
    };
    admin(format!("CREATE SCHEMA {schema}"));
    let separator = if url.contains('?') { '&' } else { '?' };
    let store_url = format!("{url}{separator}options=-csearch_path%3D{schema}");
    let result = std::panic::catch_unwind(|| {
        flow(&format!(
            "database_type = \"postgres\"\n            connection_string = \"{store_url}\""
        ));
    });
    admin(format!("DROP SCHEMA {schema} CASCADE"));
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
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

/// The health-check port of the server in `dir`, chosen once per directory.
fn health_port(dir: &Path) -> u16 {
    let file = dir.join("health-port");
    if let Ok(port) = std::fs::read_to_string(&file) {
        return port.trim().parse().expect("port");
    }
    let port = free_port();
    std::fs::write(&file, port.to_string()).expect("write");
    port
}

/// `GET path` on the health-check listener of the server in `dir`: the status line.
fn health(dir: &Path, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", health_port(dir))).expect("health listener");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    response.lines().next().unwrap_or_default().to_owned()
}

/// A flood of TCP connections that never finish a TLS handshake takes the server to its
/// descriptor limit: the accept loop backs off instead of spinning, and once the flood is
/// gone TLS clients are served again.
#[test]
fn at_the_descriptor_limit_the_agent_api_backs_off_and_accepts_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let (config, socket) = write_config_on_port(
        dir.path(),
        r#"database_type = "sqlite3"
            connection_string = "DATA_DIR/datastore.sqlite3""#,
        port,
    );
    let server = Running::start_with_nofile(&config, &socket, 128);
    let flood: Vec<_> = (0..400)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect"))
        .collect();
    // Let the server accept what it can and hit EMFILE with connections still queued.
    std::thread::sleep(Duration::from_secs(1));
    let cpu = cpu_share(server.child.id(), Duration::from_secs(3));
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

/// The share of one core `pid` used over `window`, from its utime and stime.
fn cpu_share(pid: u32, window: Duration) -> f64 {
    let ticks = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        let after_name = &stat[stat.rfind(')').expect("stat name") + 1..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // utime and stime are fields 14 and 15; fields[0] is field 3.
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
    };
    let before = ticks();
    std::thread::sleep(window);
    let used = ticks() - before;
    // Clock ticks are 1/100 s on Linux (USER_HZ).
    used as f64 / 100.0 / window.as_secs_f64()
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
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
    let port = free_port();
    let (config, socket) = write_config_on_port(dir.path(), data_store, port);
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let server = Running::start(&config, &socket);
    let token = ok(server.cli(&["token", "generate"]));
    let token = token
        .trim()
        .strip_prefix("Token: ")
        .expect("token")
        .to_owned();
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
    let entry_id = created
        .lines()
        .find_map(|l| l.strip_prefix("Entry ID         : "))
        .expect("entry ID")
        .trim()
        .to_owned();
    let identity = Some((agent_svid.cert_chain.clone(), key.serialize_der()));
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .expect("params")
        .serialize_request(&rcgen::KeyPair::generate().expect("key"))
        .expect("csr")
        .der()
        .to_vec();
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
    let their_id = theirs
        .lines()
        .find_map(|l| l.strip_prefix("Entry ID         : "))
        .expect("entry ID")
        .trim()
        .to_owned();
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

    // After a restart: the same agent, the same CA, the agent's SVID still works.
    server.stop();
    let server = Running::start(&config, &socket);
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
