//! The capability imports against real servers on loopback: allow-listed HTTP, the
//! Kubernetes API over TLS, the kubelet's pod list, granted files; and the rule that host
//! I/O does not count against the CPU budget.

use std::path::Path;
use std::sync::Arc;

use sigil_plugins::{Grants, KubeletAccess, KubernetesAccess, ProcRoots, ProcessFacts};
use sigil_testkit::https::{Request, Response, TestServer, TestTls};
use sigil_testkit::kube::{self, ApiServer, ServiceAccountToken};

use super::*;

const CAPABILITIES: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/capability_node_server.wasm"));
const POD_ATTESTOR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pod_attestor.wasm"));

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
        TestTls::new().ca_pem.as_bytes(),
        "/nonexistent/token",
        Duration::from_secs(1),
    )
    .expect("access")
}

fn plain_server() -> TestServer {
    TestServer::plain(Arc::new(|request: &Request| match request.path() {
        "/allowed/slow" => {
            std::thread::sleep(Duration::from_millis(400));
            Response::json(200, "slow")
        }
        "/allowed/hello" => Response::json(200, "hello"),
        _ => Response::json(404, "nope"),
    }))
}

#[test]
fn http_requests_reach_only_allowed_prefixes() {
    let server = plain_server();
    let grants = Grants::default()
        .with_http_allow(&server.url("/allowed/"))
        .with_file("f", "/dev/null")
        .with_kubernetes("prod", unused_kubernetes());
    let plugin = capabilities(&host(), grants, Limits::default());
    let selectors = run(
        &plugin,
        &format!("fetch GET {}", server.url("/allowed/hello")),
    )
    .expect("allowed");
    assert_eq!(selectors, ["caps:status:200", "caps:body:hello"]);
    assert_eq!(server.requests().len(), 1);

    for url in [
        server.url("/other"),
        server.url("/allowed/../other"),
        server.url("/allowed/%2e%2e/other"),
        format!("http://user@127.0.0.1:{}/allowed/hello", server.port()),
        server.url("/allowed/hello").replace("http:", "https:"),
    ] {
        let error = run(&plugin, &format!("fetch GET {url}")).expect_err("denied");
        assert!(
            error.to_string().contains("permission-denied"),
            "{url}: {error}"
        );
    }
    let error = run(
        &plugin,
        &format!("fetch PATCH {}", server.url("/allowed/hello")),
    )
    .expect_err("method");
    assert!(error.to_string().contains("PATCH"), "{error}");
    assert_eq!(
        server.requests().len(),
        1,
        "no denied request reached the server"
    );
}

#[test]
fn host_io_does_not_count_against_the_cpu_budget_but_has_its_own_timeout() {
    let server = plain_server();
    let host = host();
    let grants = Grants::default()
        .with_http_allow(&server.url("/allowed/"))
        .with_file("f", "/dev/null")
        .with_kubernetes("prod", unused_kubernetes());
    let slow = format!("fetch GET {}", server.url("/allowed/slow"));
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

/// The API server stand-in with a pod `prod/web-0` on `node-1`, and a projected token
/// for it with the audience `sigil`.
fn kubernetes_server() -> (ApiServer, String) {
    let server = ApiServer::start();
    server.put_pod(kube::pod(
        "prod",
        "web-0",
        "pod-uid-1",
        "node-1",
        "10.0.0.1",
        &[],
    ));
    server.put_node(kube::node("node-1", "node-uid-1", &[]));
    let token = server.issue_token(ServiceAccountToken {
        namespace: "prod".into(),
        service_account: "web".into(),
        pod_name: "web-0".into(),
        pod_uid: "pod-uid-1".into(),
        audiences: vec!["sigil".into()],
    });
    (server, token)
}

fn write_token(dir: &Path, token: &str) -> std::path::PathBuf {
    let path = dir.join("token");
    std::fs::write(&path, format!("{token}\n")).expect("token");
    path
}

#[test]
fn kubernetes_token_reviews_and_lookups_use_the_servers_credentials() {
    let (server, token) = kubernetes_server();
    let dir = tempfile::tempdir().expect("tempdir");
    let access = KubernetesAccess::new(
        &server.url(),
        server.ca_pem().as_bytes(),
        write_token(dir.path(), server.client_token()),
        Duration::from_secs(5),
    )
    .expect("access");
    let plugin = capabilities(
        &host(),
        Grants::default()
            .with_kubernetes("prod", access)
            .with_http_allow("http://127.0.0.1:1/")
            .with_file("f", "/dev/null"),
        Limits::default(),
    );
    let selectors = run(&plugin, &format!("review prod {token}")).expect("review");
    assert_eq!(
        selectors,
        [
            "caps:authenticated:true",
            "caps:user:system:serviceaccount:prod:web",
            "caps:audiences:sigil",
            "caps:extra:authentication.kubernetes.io/pod-name:web-0",
            "caps:extra:authentication.kubernetes.io/pod-uid:pod-uid-1",
        ]
    );
    let refused = run(&plugin, "review prod forged").expect("review");
    assert_eq!(refused[0], "caps:authenticated:false");
    assert!(
        refused.iter().any(|s| s.contains("invalid bearer token")),
        "the API server's reason reaches the plugin: {refused:?}"
    );
    let review = &server.requests()[0];
    assert_eq!(review.bearer(), Some(server.client_token()));
    let body = String::from_utf8_lossy(&review.body);
    assert!(body.contains("\"audiences\":[\"sigil\"]"), "{body}");

    assert!(run(&plugin, "pod prod prod web-0").expect("pod")[0].contains("\"uid\":\"pod-uid-1\""));
    assert!(run(&plugin, "node prod node-1").expect("node")[0].contains("node-uid-1"));
    let error = run(&plugin, "pod prod prod missing").expect_err("404");
    assert!(error.to_string().contains("not-found"), "{error}");
    let error = run(&plugin, "pod prod prod ../../secrets").expect_err("path");
    assert!(error.to_string().contains("invalid-argument"), "{error}");
    let error = run(&plugin, "node staging node-1").expect_err("no such cluster");
    assert!(
        error
            .to_string()
            .contains("no Kubernetes cluster named \"staging\""),
        "{error}"
    );
}

#[test]
fn kubernetes_access_from_a_kubeconfig_reaches_the_cluster() {
    let (server, token) = kubernetes_server();
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = server.write_kubeconfig(dir.path());
    let access =
        KubernetesAccess::from_kubeconfig(&kubeconfig, Duration::from_secs(5)).expect("kubeconfig");
    let plugin = capabilities(
        &host(),
        Grants::default()
            .with_kubernetes("prod", access)
            .with_http_allow("http://127.0.0.1:1/")
            .with_file("f", "/dev/null"),
        Limits::default(),
    );
    let selectors = run(&plugin, &format!("review prod {token}")).expect("review");
    assert_eq!(selectors[0], "caps:authenticated:true");
    assert_eq!(server.requests()[0].bearer(), Some(server.client_token()));

    // What cannot be used is refused when the configuration is read, naming the problem.
    let text = std::fs::read_to_string(&kubeconfig).expect("read");
    for (edit, expected) in [
        (
            text.replace("current-context: standin", ""),
            "no current-context",
        ),
        (
            text.replace("    token: ", "    exec:\n      command: gcloud\n    x: "),
            "exec and auth-provider credentials are not supported",
        ),
        (text.replace("https://", "http://"), "is not an https URL"),
        (
            text.replace(
                "certificate-authority-data",
                "insecure-skip-tls-verify: true\n    x",
            ),
            "insecure-skip-tls-verify is refused",
        ),
    ] {
        let path = dir.path().join("edited");
        std::fs::write(&path, edit).expect("write");
        let error =
            KubernetesAccess::from_kubeconfig(&path, Duration::from_secs(5)).expect_err("refused");
        assert!(error.contains(expected), "{expected}: {error}");
    }
}

#[test]
fn kubernetes_access_refuses_an_untrusted_api_server() {
    let (server, token) = kubernetes_server();
    let other_ca = TestTls::new().ca_pem;
    let dir = tempfile::tempdir().expect("tempdir");
    let access = KubernetesAccess::new(
        &server.url(),
        other_ca.as_bytes(),
        write_token(dir.path(), server.client_token()),
        Duration::from_secs(5),
    )
    .expect("access");
    let plugin = capabilities(
        &host(),
        Grants::default()
            .with_kubernetes("prod", access)
            .with_http_allow("http://127.0.0.1:1/")
            .with_file("f", "/dev/null"),
        Limits::default(),
    );
    let error = run(&plugin, &format!("review prod {token}")).expect_err("TLS fails");
    assert!(error.to_string().contains("unavailable"), "{error}");
    assert!(
        server.requests().is_empty(),
        "no request was sent in the clear"
    );
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
                "prod",
                KubernetesAccess::new(
                    "https://127.0.0.1:1",
                    TestTls::new().ca_pem.as_bytes(),
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
    let tls = TestTls::new();
    let ca_pem = tls.ca_pem.clone();
    let kubelet = TestServer::tls(
        &tls,
        Arc::new(move |request: &Request| match request.path() {
            "/pods" => Response::json(200, pods.clone()),
            _ => Response::json(404, ""),
        }),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let access = KubeletAccess::new(
        &kubelet.url(""),
        ca_pem.as_bytes(),
        Some(write_token(dir.path(), "node-token")),
        Duration::from_secs(5),
    )
    .expect("access")
    // The container "d" below runs in no pod: two quick polls, not SPIRE's 60 × 500 ms.
    .with_polling(2, Duration::from_millis(20));
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
    let pod = selectors
        .iter()
        .map(ToString::to_string)
        .find(|s| s.starts_with("k8s:pod:"))
        .expect("a pod");
    assert!(pod.contains("web-0") && !pod.contains("other"), "{pod}");
    let container = selectors
        .iter()
        .map(ToString::to_string)
        .find(|s| s.starts_with("k8s:container:"))
        .expect("the matched container status");
    assert!(container.contains(&running), "{container}");
    assert_eq!(kubelet.requests()[0].bearer(), Some("node-token"));

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
