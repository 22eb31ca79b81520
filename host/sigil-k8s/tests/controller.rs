//! The controller with real parts: the Kubernetes API server stand-in (sigil-testkit; a
//! stand-in, not a cluster) serving list and watch over HTTPS, an in-process sigil server
//! with its admin socket, and the controller between them, as it runs in a cluster.

#![expect(
    clippy::expect_used,
    reason = "test helpers outside #[test] functions: a failed setup step must fail the test"
)]

use std::time::{Duration, Instant};

use serde_json::json;
use sigil_k8s::core::Entry;
use sigil_k8s::{Controller, ControllerConfig, EntryApi, PluginTemplates};
use sigil_testkit::kube::{ApiServer, node, pod};
use sigil_testkit::server::InProcessServer;
use tokio::sync::oneshot;

const MESH_LABEL: &str = "spiffe.io/spire-managed-identity";

fn namespace(name: &str) -> serde_json::Value {
    json!({"metadata": {"name": name}})
}

/// The ClusterSPIFFEID of the Istio guides (seeds 000/004).
fn istio_cluster_spiffe_id() -> serde_json::Value {
    json!({
        "metadata": {"name": "istio"},
        "spec": {
            "spiffeIDTemplate": "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}",
            "podSelector": {"matchLabels": {MESH_LABEL: "true"}},
        }
    })
}

async fn kube_client(api: &ApiServer, dir: &std::path::Path) -> kube::Client {
    let path = api.write_kubeconfig(dir);
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).expect("read the kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("client config");
    sigil_k8s::kubeclient::client(config).expect("client")
}

/// Poll the server's entries until `done` holds; the entries then, and how long it took.
async fn wait_for(
    entries: &EntryApi,
    what: &str,
    done: impl Fn(&[Entry]) -> bool,
) -> (Vec<Entry>, Duration) {
    let start = Instant::now();
    loop {
        let now = entries.list().await.expect("list entries");
        if done(&now) {
            return (now, start.elapsed());
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn wait_for_relationships(
    entries: &EntryApi,
    done: impl Fn(&[sigil_types::FederationRelationship]) -> bool,
) -> (Vec<sigil_types::FederationRelationship>, Duration) {
    let start = Instant::now();
    loop {
        let now = entries
            .list_relationships()
            .await
            .expect("list relationships");
        if done(&now) {
            return (now, start.elapsed());
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn with_pod_uid<'a>(entries: &'a [Entry], uid: &str) -> Vec<&'a Entry> {
    let selector = ("k8s".to_owned(), format!("pod-uid:{uid}"));
    entries
        .iter()
        .filter(|e| e.selectors.contains(&selector))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_get_entries_from_a_cluster_spiffe_id_and_lose_them_when_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = InProcessServer::start(dir.path()).await;
    let api = ApiServer::start();
    api.put("namespaces", namespace("prod"));
    api.put("namespaces", namespace("kube-system"));
    api.put_node(node("node-1", "node-uid-1", &[]));
    api.put("clusterspiffeids", istio_cluster_spiffe_id());
    // A pod present before the controller starts.
    let mut early = pod(
        "prod",
        "early",
        "uid-early",
        "node-1",
        "10.0.0.1",
        &[(MESH_LABEL, "true")],
    );
    if let Some(spec) = early.spec.as_mut() {
        spec.service_account_name = Some("early-sa".into());
    }
    api.put_pod(early);

    let config = ControllerConfig::parse(&format!(
        "apiVersion: spire.spiffe.io/v1alpha1\nkind: ControllerManagerConfig\n\
         clusterName: demo\ntrustDomain: example.org\nentryIDPrefix: sigil\n\
         spireServerSocketPath: {}\n",
        server.socket.display()
    ))
    .expect("config");
    let entries = EntryApi::connect(&config.spire_server_socket_path).expect("entry api");
    let controller = Controller::new(
        config,
        kube_client(&api, dir.path()).await,
        entries.clone(),
        std::sync::Arc::new(PluginTemplates::new().expect("templates")),
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(controller.run(async {
        let _ = stopped.await;
    }));

    let (now, _) = wait_for(&entries, "the early pod's entry", |e| {
        !with_pod_uid(e, "uid-early").is_empty()
    })
    .await;
    let early = with_pod_uid(&now, "uid-early");
    assert_eq!(early.len(), 1, "{now:?}");
    assert_eq!(
        early[0].spiffe_id,
        "spiffe://example.org/ns/prod/sa/early-sa"
    );
    assert_eq!(
        early[0].parent_id,
        "spiffe://example.org/spire/agent/k8s_psat/demo/node-uid-1"
    );
    assert_eq!(early[0].selectors.len(), 1);
    assert!(early[0].id.starts_with("sigil."), "{}", early[0].id);

    // A new selected pod: the watch should bring its entry well under a second.
    let created = Instant::now();
    api.put_pod(pod(
        "prod",
        "web",
        "uid-web",
        "node-1",
        "10.0.0.1",
        &[(MESH_LABEL, "true")],
    ));
    let (now, _) = wait_for(&entries, "the new pod's entry", |e| {
        !with_pod_uid(e, "uid-web").is_empty()
    })
    .await;
    let lag = created.elapsed();
    println!("pod creation to entry: {lag:?}");
    assert!(lag < Duration::from_secs(1), "lag {lag:?}");
    assert_eq!(
        with_pod_uid(&now, "uid-web")[0].spiffe_id,
        "spiffe://example.org/ns/prod/sa/default"
    );

    // A pod without the label, and a labelled one in an ignored namespace: no entries.
    api.put_pod(pod("prod", "batch", "uid-batch", "node-1", "10.0.0.1", &[]));
    api.put_pod(pod(
        "kube-system",
        "dns",
        "uid-dns",
        "node-1",
        "10.0.0.1",
        &[(MESH_LABEL, "true")],
    ));

    // Deleting a pod removes its entry.
    let deleted = Instant::now();
    api.delete_pod("prod", "early");
    let (now, _) = wait_for(&entries, "the deleted pod's entry to go", |e| {
        with_pod_uid(e, "uid-early").is_empty()
    })
    .await;
    println!("pod deletion to entry deletion: {:?}", deleted.elapsed());
    assert!(with_pod_uid(&now, "uid-batch").is_empty(), "{now:?}");
    assert!(with_pod_uid(&now, "uid-dns").is_empty(), "{now:?}");
    assert_eq!(now.len(), 1, "only the web pod's entry is left: {now:?}");

    // The status subresource carries the stats of the last reconcile.
    let start = Instant::now();
    let stats = loop {
        let object = api
            .get("clusterspiffeids", "", "istio")
            .expect("the object");
        let stats = object["status"]["stats"].clone();
        if stats["podsSelected"] == 1 && stats["namespacesIgnored"] == 1 {
            break stats;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "status never settled: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(stats["namespacesSelected"], 2, "{stats}");
    assert_eq!(stats["entriesToSet"], 1, "{stats}");
    assert_eq!(stats["podEntryRenderFailures"], 0, "{stats}");

    // Deleting the ClusterSPIFFEID removes the entries it declared.
    api.delete("clusterspiffeids", "", "istio");
    wait_for(&entries, "every entry to go", <[Entry]>::is_empty).await;

    let _ = stop.send(());
    running.await.expect("join").expect("controller");
    let watches = api
        .requests()
        .iter()
        .filter(|r| r.target.contains("watch=true"))
        .count();
    assert!(watches >= 6, "the controller watches every kind: {watches}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_of_others_are_left_alone_and_static_entries_and_federation_applied() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = InProcessServer::start(dir.path()).await;
    let api = ApiServer::start();
    api.put(
        "clusterstaticentries",
        json!({
            "metadata": {"name": "db"},
            "spec": {
                "spiffeID": "spiffe://example.org/db",
                "parentID": "spiffe://example.org/spire/agent/k8s_psat/demo/node-uid-1",
                "selectors": ["unix:uid:1001"],
            }
        }),
    );
    api.put(
        "clusterfederatedtrustdomains",
        json!({
            "metadata": {"name": "partner"},
            "spec": {
                "trustDomain": "partner.org",
                "bundleEndpointURL": "https://127.0.0.1:1/bundle",
                "bundleEndpointProfile": {
                    "type": "https_spiffe",
                    "endpointSPIFFEID": "spiffe://partner.org/spire/server",
                },
            }
        }),
    );
    // An entry made by hand, with no prefix: the controller (with a prefix) must keep it.
    server
        .cli_out(&[
            "entry",
            "create",
            "-spiffeID",
            "spiffe://example.org/hand",
            "-parentID",
            "spiffe://example.org/agent",
            "-selector",
            "unix:uid:0",
        ])
        .await;
    let config = ControllerConfig::parse(&format!(
        "clusterName: demo\ntrustDomain: example.org\nentryIDPrefix: sigil\n\
         spireServerSocketPath: {}\n",
        server.socket.display()
    ))
    .expect("config");
    let entries = EntryApi::connect(&config.spire_server_socket_path).expect("entry api");
    let controller = Controller::new(
        config,
        kube_client(&api, dir.path()).await,
        entries.clone(),
        std::sync::Arc::new(PluginTemplates::new().expect("templates")),
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(controller.run(async {
        let _ = stopped.await;
    }));
    let (now, _) = wait_for(&entries, "the static entry", |e| {
        e.iter().any(|e| e.spiffe_id == "spiffe://example.org/db")
    })
    .await;
    assert!(
        now.iter()
            .any(|e| e.spiffe_id == "spiffe://example.org/hand"),
        "{now:?}"
    );
    let start = Instant::now();
    loop {
        let status = api.get("clusterstaticentries", "", "db").expect("object")["status"].clone();
        if status["rendered"] == true && status["set"] == true {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "status never set: {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The federation relationship follows its object, in and out.
    let (relationships, _) = wait_for_relationships(&entries, |r| r.len() == 1).await;
    assert_eq!(relationships[0].trust_domain.name(), "partner.org");
    assert_eq!(
        relationships[0].bundle_endpoint_url,
        "https://127.0.0.1:1/bundle"
    );
    api.delete("clusterfederatedtrustdomains", "", "partner");
    wait_for_relationships(&entries, <[_]>::is_empty).await;
    let _ = stop.send(());
    running.await.expect("join").expect("controller");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_reads_its_config_file_and_the_kubeconfig() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = InProcessServer::start(dir.path()).await;
    let api = ApiServer::start();
    api.put("namespaces", namespace("prod"));
    api.put_node(node("node-1", "node-uid-1", &[]));
    api.put("clusterspiffeids", istio_cluster_spiffe_id());
    api.put_pod(pod(
        "prod",
        "web",
        "uid-web",
        "node-1",
        "10.0.0.1",
        &[(MESH_LABEL, "true")],
    ));
    let kubeconfig = api.write_kubeconfig(dir.path());
    let config = dir.path().join("controller-manager-config.yaml");
    std::fs::write(
        &config,
        format!(
            "apiVersion: spire.spiffe.io/v1alpha1\nkind: ControllerManagerConfig\n\
             metrics:\n  bindAddress: 127.0.0.1:8082\n\
             clusterName: ${{SIGIL_TEST_CLUSTER}}\ntrustDomain: example.org\n\
             ignoreNamespaces:\n  - kube-system\n\
             spireServerSocketPath: {}\n",
            server.socket.display()
        ),
    )
    .expect("write the config");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sigil-controller"))
        .arg("--config")
        .arg(&config)
        .arg("-expand-env")
        .env("KUBECONFIG", &kubeconfig)
        .env("SIGIL_TEST_CLUSTER", "demo")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start sigil-controller");
    let entries = EntryApi::connect(&server.socket).expect("entry api");
    let (now, _) = wait_for(&entries, "the pod's entry", |e| {
        !with_pod_uid(e, "uid-web").is_empty()
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(now[0].spiffe_id, "spiffe://example.org/ns/prod/sa/default");
    // The cluster name came from the environment.
    assert_eq!(
        now[0].parent_id,
        "spiffe://example.org/spire/agent/k8s_psat/demo/node-uid-1"
    );
}

#[test]
fn the_binary_names_a_bad_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("bad.yaml");
    std::fs::write(
        &config,
        "trustDomain: example.org\nignoreNamespaces: [\"(\"]\n",
    )
    .expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sigil-controller"))
        .arg(format!("-config={}", config.display()))
        .output()
        .expect("run sigil-controller");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ignore namespaces regex"), "{stderr}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sigil-controller"))
        .output()
        .expect("run sigil-controller");
    assert_eq!(out.status.code(), Some(2));
}
