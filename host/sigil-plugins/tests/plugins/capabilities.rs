//! The capability imports against real servers on loopback: allow-listed HTTP, the
//! Kubernetes API over TLS, the kubelet's pod list, granted files; and the rule that host
//! I/O does not count against the CPU budget.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sigil_plugins::{Grants, KubeletAccess, KubernetesAccess, ProcRoots, ProcessFacts};

use super::*;

const CAPABILITIES: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/capability_node_server.wasm"));
const POD_ATTESTOR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pod_attestor.wasm"));

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    authorization: String,
    body: String,
}

type Route = dyn Fn(&Seen) -> (u16, String) + Send + Sync;

/// A small HTTP/1.1 server on loopback, plain or TLS, answering every request through
/// `route` and remembering what it was asked.
struct TestServer {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl TestServer {
    fn start(tls: Option<Arc<rustls::ServerConfig>>, route: Arc<Route>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (tls, route, log) = (tls.clone(), route.clone(), log.clone());
                std::thread::spawn(move || match tls {
                    Some(config) => {
                        let Ok(connection) = rustls::ServerConnection::new(config) else {
                            return;
                        };
                        answer(rustls::StreamOwned::new(connection, stream), &*route, &log);
                    }
                    None => answer(stream, &*route, &log),
                });
            }
        });
        TestServer { port, seen }
    }

    fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

fn answer<S: Read + Write>(stream: S, route: &Route, log: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or_default().to_owned(),
        parts.next().unwrap_or_default().to_owned(),
    );
    let (mut length, mut authorization) = (0usize, String::new());
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap_or_default();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().unwrap_or(0),
            "authorization" => authorization = value.trim().to_owned(),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let seen = Seen {
        method,
        path,
        authorization,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    log.lock().expect("lock").push(seen.clone());
    let (status, text) = route(&seen);
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = stream.flush();
}

/// A CA and a TLS server configuration for 127.0.0.1 signed by it; the CA as PEM.
fn tls_server() -> (Arc<rustls::ServerConfig>, String) {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("cert");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .expect("server config");
    (Arc::new(config), ca.pem())
}

fn capabilities(host: &PluginHost, grants: Grants, limits: Limits) -> NodeAttestorServer {
    let spec = PluginSpec::bytes("caps", CAPABILITIES, "")
        .with_grants(grants)
        .with_limits(limits);
    host.load_node_attestor_server(&td(), &spec)
        .expect("capability fixture loads")
}

/// The selectors of one `attest` with `command`, or the error.
fn run(plugin: &NodeAttestorServer, command: &str) -> Result<Vec<String>, PluginError> {
    match plugin.attest(command.as_bytes())? {
        AttestationStep::Done(node) => Ok(node.selectors.iter().map(ToString::to_string).collect()),
        other => panic!("the fixture never challenges: {other:?}"),
    }
}

/// Kubernetes access nobody answers: the fixture imports every server capability, so
/// tests of the others grant this one too.
fn unused_kubernetes() -> KubernetesAccess {
    KubernetesAccess::new(
        "https://127.0.0.1:1",
        tls_server().1.as_bytes(),
        "/nonexistent/token",
        Duration::from_secs(1),
    )
    .expect("access")
}

fn plain_server() -> TestServer {
    TestServer::start(
        None,
        Arc::new(|seen: &Seen| match seen.path.as_str() {
            "/allowed/slow" => {
                std::thread::sleep(Duration::from_millis(400));
                (200, "slow".into())
            }
            "/allowed/hello" => (200, "hello".into()),
            _ => (404, "nope".into()),
        }),
    )
}

#[test]
fn http_requests_reach_only_allowed_prefixes() {
    let server = plain_server();
    let grants = Grants::default()
        .with_http_allow(&server.url("http", "/allowed/"))
        .with_file("f", "/dev/null")
        .with_kubernetes(unused_kubernetes());
    let plugin = capabilities(&host(), grants, Limits::default());
    let selectors = run(
        &plugin,
        &format!("fetch GET {}", server.url("http", "/allowed/hello")),
    )
    .expect("allowed");
    assert_eq!(selectors, ["caps:status:200", "caps:body:hello"]);
    assert_eq!(server.seen().len(), 1);

    for url in [
        server.url("http", "/other"),
        server.url("http", "/allowed/../other"),
        server.url("http", "/allowed/%2e%2e/other"),
        format!("http://user@127.0.0.1:{}/allowed/hello", server.port),
        server.url("https", "/allowed/hello"),
    ] {
        let error = run(&plugin, &format!("fetch GET {url}")).expect_err("denied");
        assert!(
            error.to_string().contains("permission-denied"),
            "{url}: {error}"
        );
    }
    let error = run(
        &plugin,
        &format!("fetch PATCH {}", server.url("http", "/allowed/hello")),
    )
    .expect_err("method");
    assert!(error.to_string().contains("PATCH"), "{error}");
    assert_eq!(
        server.seen().len(),
        1,
        "no denied request reached the server"
    );
}

#[test]
fn host_io_does_not_count_against_the_cpu_budget_but_has_its_own_timeout() {
    let server = plain_server();
    let host = host();
    let grants = Grants::default()
        .with_http_allow(&server.url("http", "/allowed/"))
        .with_file("f", "/dev/null")
        .with_kubernetes(unused_kubernetes());
    let slow = format!("fetch GET {}", server.url("http", "/allowed/slow"));
    // 400 ms of waiting on the network inside a 100 ms CPU budget.
    let plugin = capabilities(&host, grants.clone(), Limits::default());
    assert_eq!(run(&plugin, &slow).expect("waited")[0], "caps:status:200");
    // An I/O timeout shorter than the server's delay ends the request, not the call.
    let limits = Limits::default().with_io_timeout(Duration::from_millis(100));
    let plugin = capabilities(&host, grants, limits);
    let error = run(&plugin, &slow).expect_err("timed out");
    assert!(error.to_string().contains("unavailable"), "{error}");
}

#[test]
fn capabilities_not_granted_refuse_the_load_naming_the_import() {
    let error = host()
        .load_node_attestor_server(&td(), &PluginSpec::bytes("caps", CAPABILITIES, ""))
        .expect_err("nothing granted");
    let PluginError::CapabilityNotGranted { import, .. } = &error else {
        panic!("expected CapabilityNotGranted, got {error}");
    };
    assert!(import.starts_with("sigil:plugin/"), "{import}");
    // The fixture needs all three: granting two is not enough.
    let error = host()
        .load_node_attestor_server(
            &td(),
            &PluginSpec::bytes("caps", CAPABILITIES, "").with_grants(
                Grants::default()
                    .with_http_allow("http://127.0.0.1/")
                    .with_file("f", "/dev/null"),
            ),
        )
        .expect_err("kubernetes not granted");
    assert!(error.to_string().contains("kubernetes"), "{error}");
}

fn kubernetes_server() -> (TestServer, String) {
    let (tls, ca_pem) = tls_server();
    let server = TestServer::start(
        Some(tls),
        Arc::new(
            |seen: &Seen| match (seen.method.as_str(), seen.path.as_str()) {
                ("POST", "/apis/authentication.k8s.io/v1/tokenreviews") => {
                    let good = seen.body.contains("\"token\":\"good\"");
                    (
                        201,
                        format!(
                            r#"{{"kind":"TokenReview","status":{{"authenticated":{good},"user":{{"username":"system:serviceaccount:prod:web","uid":"u1","groups":["g"]}},"audiences":["sigil"]}}}}"#
                        ),
                    )
                }
                ("GET", "/api/v1/namespaces/prod/pods/web-0") => {
                    (200, r#"{"kind":"Pod","metadata":{"name":"web-0"}}"#.into())
                }
                ("GET", "/api/v1/nodes/node-1") => (
                    200,
                    r#"{"kind":"Node","metadata":{"name":"node-1"}}"#.into(),
                ),
                _ => (404, r#"{"kind":"Status","code":404}"#.into()),
            },
        ),
    );
    (server, ca_pem)
}

fn write_token(dir: &Path, token: &str) -> std::path::PathBuf {
    let path = dir.join("token");
    std::fs::write(&path, format!("{token}\n")).expect("token");
    path
}

#[test]
fn kubernetes_token_reviews_and_lookups_use_the_servers_credentials() {
    let (server, ca_pem) = kubernetes_server();
    let dir = tempfile::tempdir().expect("tempdir");
    let access = KubernetesAccess::new(
        &server.url("https", ""),
        ca_pem.as_bytes(),
        write_token(dir.path(), "server-token"),
        Duration::from_secs(5),
    )
    .expect("access");
    let plugin = capabilities(
        &host(),
        Grants::default()
            .with_kubernetes(access)
            .with_http_allow("http://127.0.0.1:1/")
            .with_file("f", "/dev/null"),
        Limits::default(),
    );
    let selectors = run(&plugin, "review good").expect("review");
    assert_eq!(
        selectors,
        [
            "caps:authenticated:true",
            "caps:user:system:serviceaccount:prod:web",
            "caps:audiences:sigil"
        ]
    );
    assert_eq!(
        run(&plugin, "review bad").expect("review")[0],
        "caps:authenticated:false"
    );
    let review = &server.seen()[0];
    assert_eq!(review.authorization, "Bearer server-token");
    assert!(
        review.body.contains("\"audiences\":[\"sigil\"]"),
        "{}",
        review.body
    );

    assert!(run(&plugin, "pod prod web-0").expect("pod")[0].contains("\"name\":\"web-0\""));
    assert!(run(&plugin, "node node-1").expect("node")[0].contains("node-1"));
    let error = run(&plugin, "pod prod missing").expect_err("404");
    assert!(error.to_string().contains("not-found"), "{error}");
    let error = run(&plugin, "pod prod ../../secrets").expect_err("path");
    assert!(error.to_string().contains("invalid-argument"), "{error}");
}

#[test]
fn kubernetes_access_refuses_an_untrusted_api_server() {
    let (server, _) = kubernetes_server();
    let (_, other_ca) = tls_server();
    let dir = tempfile::tempdir().expect("tempdir");
    let access = KubernetesAccess::new(
        &server.url("https", ""),
        other_ca.as_bytes(),
        write_token(dir.path(), "server-token"),
        Duration::from_secs(5),
    )
    .expect("access");
    let plugin = capabilities(
        &host(),
        Grants::default()
            .with_kubernetes(access)
            .with_http_allow("http://127.0.0.1:1/")
            .with_file("f", "/dev/null"),
        Limits::default(),
    );
    let error = run(&plugin, "review good").expect_err("TLS fails");
    assert!(error.to_string().contains("unavailable"), "{error}");
    assert!(server.seen().is_empty(), "no request was sent in the clear");
}

#[test]
fn granted_files_are_read_by_name_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bundle.pem");
    std::fs::write(&path, "the bundle").expect("write");
    let plugin = capabilities(
        &host(),
        Grants::default()
            .with_file("bundle", &path)
            .with_http_allow("http://127.0.0.1:1/")
            .with_kubernetes(
                KubernetesAccess::new(
                    "https://127.0.0.1:1",
                    tls_server().1.as_bytes(),
                    "/none",
                    Duration::from_secs(1),
                )
                .expect("access"),
            ),
        Limits::default(),
    );
    assert_eq!(
        run(&plugin, "read bundle").expect("read"),
        ["caps:file:the bundle"]
    );
    let error = run(&plugin, "read /etc/passwd").expect_err("not granted");
    assert!(error.to_string().contains("not-found"), "{error}");
}

/// A fake procfs with one process, `4242`, in the container `container_id`.
fn fake_process(dir: &Path, container_id: &str) -> ProcessFacts {
    let proc_dir = dir.join("proc/4242");
    std::fs::create_dir_all(&proc_dir).expect("proc dir");
    std::fs::create_dir_all(dir.join("etc")).expect("etc");
    std::fs::write(
        proc_dir.join("stat"),
        "4242 (app) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 555 1000 200 0",
    )
    .expect("stat");
    std::fs::write(
        proc_dir.join("status"),
        "Uid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nGroups:\t\n",
    )
    .expect("status");
    std::fs::write(
        proc_dir.join("cgroup"),
        format!("0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-{container_id}.scope\n"),
    )
    .expect("cgroup");
    let roots = ProcRoots {
        proc: dir.join("proc"),
        etc: dir.join("etc"),
    };
    ProcessFacts::resolve_in(&roots, 4242).expect("facts")
}

#[test]
fn pod_lookup_finds_the_pod_running_the_callers_container() {
    let running = "b".repeat(64);
    let pods = format!(
        r#"{{"items":[{{"metadata":{{"name":"other"}},"status":{{"containerStatuses":[{{"containerID":"containerd://{}"}}]}}}},{{"metadata":{{"name":"web-0"}},"status":{{"containerStatuses":[{{"containerID":"containerd://{running}"}}]}}}}]}}"#,
        "c".repeat(64)
    );
    let (tls, ca_pem) = tls_server();
    let kubelet = TestServer::start(
        Some(tls),
        Arc::new(move |seen: &Seen| match seen.path.as_str() {
            "/pods" => (200, pods.clone()),
            _ => (404, String::new()),
        }),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let access = KubeletAccess::new(
        &kubelet.url("https", ""),
        ca_pem.as_bytes(),
        Some(write_token(dir.path(), "node-token")),
        Duration::from_secs(5),
    )
    .expect("access");
    let host = host();
    let plugin = host
        .load_workload_attestor(
            &td(),
            &PluginSpec::bytes("k8s", POD_ATTESTOR, "")
                .with_grants(Grants::default().with_kubelet(access)),
        )
        .expect("pod attestor loads");
    let selectors = plugin
        .attest_process(fake_process(dir.path(), &running))
        .expect("attested");
    let text = selectors[0].to_string();
    assert!(
        text.starts_with("k8s:pod:") && text.contains("web-0") && !text.contains("other"),
        "{text}"
    );
    assert_eq!(kubelet.seen()[0].authorization, "Bearer node-token");

    let elsewhere = tempfile::tempdir().expect("tempdir");
    let selectors = plugin
        .attest_process(fake_process(elsewhere.path(), &"d".repeat(64)))
        .expect("attested");
    assert_eq!(selectors[0].to_string(), "k8s:no-pod");

    let error = host
        .load_workload_attestor(&td(), &PluginSpec::bytes("k8s", POD_ATTESTOR, ""))
        .expect_err("pod-lookup not granted");
    assert!(error.to_string().contains("pod-lookup"), "{error}");
}
