//! An in-process server for the API tests: started from an HCL text with its admin socket and
//! its agent API on a loopback port, driven with the CLI and generated gRPC clients.

#![expect(
    clippy::expect_used,
    reason = "test helpers: a failed setup step must fail the test"
)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// Run a CLI command against the admin socket: its exit code and its output and errors.
pub(crate) async fn cli(socket: &Path, args: &[&str]) -> (i32, String) {
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
pub(crate) struct Harness {
    pub(crate) server: Arc<sigil_server::Server>,
    pub(crate) socket: std::path::PathBuf,
    pub(crate) address: SocketAddr,
}

/// Start a server in `dir` with the DataStore `plugin_data` body `data_store`.
pub(crate) async fn start(dir: &Path, data_store: &str) -> Harness {
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
pub(crate) async fn token(socket: &Path) -> String {
    let (code, token) = cli(socket, &["token", "generate"]).await;
    assert_eq!(code, 0, "{token}");
    token
        .trim()
        .strip_prefix("Token: ")
        .expect("token")
        .to_owned()
}

/// Create an entry through `socket`; its ID.
pub(crate) async fn create_entry(socket: &Path, spiffe_id: &str, parent: &str) -> String {
    create_entry_with(socket, spiffe_id, parent, &[]).await
}

/// Create an entry with `extra` flags (`-admin`, `-downstream`, …) through `socket`; its ID.
pub(crate) async fn create_entry_with(
    socket: &Path,
    spiffe_id: &str,
    parent: &str,
    extra: &[&str],
) -> String {
    let mut args = vec![
        "entry",
        "create",
        "-spiffeID",
        spiffe_id,
        "-parentID",
        parent,
        "-selector",
        "unix:uid:1000",
    ];
    args.extend_from_slice(extra);
    let (code, out) = cli(socket, &args).await;
    assert_eq!(code, 0, "{out}");
    out.lines()
        .find_map(|l| l.strip_prefix("Entry ID         : "))
        .expect("entry ID")
        .trim()
        .to_owned()
}

/// The SQLite DataStore `plugin_data` body for a database in `dir`.
pub(crate) fn sqlite(dir: &Path) -> String {
    format!(
        "database_type = \"sqlite3\"\n            connection_string = \"{}/datastore.sqlite3\"",
        dir.join("data").display()
    )
}

/// A gRPC channel to the admin socket, as SPIRE's own tools open it.
pub(crate) async fn admin_channel(socket: &Path) -> Channel {
    let path = socket.to_owned();
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
        .expect("connect to the admin socket")
}
