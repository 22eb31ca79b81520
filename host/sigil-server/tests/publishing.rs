//! Bundle publishing with a real server in process: `BundlePublisher "k8s_configmap"` and
//! SPIRE's `Notifier "k8sbundle"` keep ConfigMaps of the Kubernetes API server stand-in
//! (sigil-testkit; no cluster can run here) equal to the trust bundle, and `disk` keeps a
//! file; a change of the bundle reaches them; a failing target keeps its last bundle and
//! catches up when it works again.

use std::path::Path;
use std::time::Duration;

use sigil_proto::spire::api::server::bundle::v1 as bundle_api;
use sigil_proto::spire::api::types as wire;
use sigil_testkit::WAIT;
use sigil_testkit::conf::{JOIN_TOKEN_ATTESTOR, ServerConf};
use sigil_testkit::kube::ApiServer;
use sigil_testkit::server::{InProcessServer, uds_channel};

fn publishers(kubeconfig: &Path, pem_file: &Path) -> String {
    let kubeconfig = kubeconfig.display();
    format!(
        r#"{JOIN_TOKEN_ATTESTOR}
    BundlePublisher "k8s_configmap" {{
        plugin_data {{
            clusters = {{
                "east" = {{
                    configmap_name = "trust-bundle"
                    configmap_key = "bundle.spiffe"
                    namespace = "apps"
                    kubeconfig_path = "{kubeconfig}"
                    format = "spiffe"
                    refresh_hint = "10m"
                }}
            }}
        }}
    }}
    BundlePublisher "disk" {{
        plugin_data {{
            file_path = "{pem}"
            format = "pem"
        }}
    }}
    Notifier "k8sbundle" {{
        plugin_data {{
            kube_config_file_path = "{kubeconfig}"
        }}
    }}"#,
        pem = pem_file.display()
    )
}

/// Wait until `check` holds, or fail with `what`.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn data(api: &ApiServer, namespace: &str, name: &str, key: &str) -> Option<String> {
    api.config_map(namespace, name)?.data?.get(key).cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publishers_keep_configmaps_and_files_equal_to_the_bundle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let api = ApiServer::start();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let pem_file = dir.path().join("bundle.pem");
    let server = InProcessServer::start_conf(&ServerConf {
        node_attestor: publishers(&kubeconfig, &pem_file),
        ..ServerConf::in_dir(dir.path())
    })
    .await;

    // k8sbundle: SPIRE's defaults, spire/spire-bundle key bundle.crt, PEM.
    eventually("the k8sbundle ConfigMap is written", || {
        data(&api, "spire", "spire-bundle", "bundle.crt").is_some()
    })
    .await;
    let pem = data(&api, "spire", "spire-bundle", "bundle.crt").expect("pem");
    assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 1, "{pem}");
    eventually("the disk publisher writes its file", || pem_file.exists()).await;
    assert_eq!(std::fs::read_to_string(&pem_file).expect("read"), pem);
    eventually("the k8s_configmap ConfigMap is written", || {
        data(&api, "apps", "trust-bundle", "bundle.spiffe").is_some()
    })
    .await;
    let document: serde_json::Value =
        serde_json::from_str(&data(&api, "apps", "trust-bundle", "bundle.spiffe").expect("spiffe"))
            .expect("a JSON bundle document");
    assert_eq!(document["spiffe_refresh_hint"], 600, "{document}");
    let writes = api
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect::<Vec<_>>();
    assert!(
        writes
            .iter()
            .all(|r| r.query("fieldManager") == Some("sigil-server")
                && r.header("content-type") == Some("application/apply-patch+yaml")
                && r.bearer() == Some(api.client_token())),
        "server-side apply with the kubeconfig's token: {writes:?}"
    );

    // A change of the bundle reaches every target; a failing cluster keeps the old one.
    api.fail_config_map_writes(Some(500));
    let channel = uds_channel(&server.socket).await;
    let mut bundles = bundle_api::bundle_client::BundleClient::new(channel);
    bundles
        .append_bundle(bundle_api::AppendBundleRequest {
            x509_authorities: vec![wire::X509Certificate {
                asn1: sigil_testkit::certs::self_signed_ca_der(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .expect("AppendBundle");
    let two_roots = |text: &str| text.matches("BEGIN CERTIFICATE").count() == 2;
    eventually("the file gets the new authority", || {
        std::fs::read_to_string(&pem_file).is_ok_and(|t| two_roots(&t))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        data(&api, "spire", "spire-bundle", "bundle.crt").as_deref(),
        Some(pem.as_str()),
        "a failed write leaves the last bundle in place"
    );
    api.fail_config_map_writes(None);
    eventually("the ConfigMaps catch up once the API server works", || {
        data(&api, "spire", "spire-bundle", "bundle.crt").is_some_and(|t| two_roots(&t))
            && data(&api, "apps", "trust-bundle", "bundle.spiffe")
                .is_some_and(|t| t.matches("x5c").count() == 2)
    })
    .await;
}

#[tokio::test]
async fn a_publisher_without_a_target_or_with_unknown_keys_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (block, expected) in [
        (
            "BundlePublisher \"disk\" {\n plugin_data {\n format = \"pem\"\n }\n }",
            "file_path is required",
        ),
        (
            "Notifier \"k8sbundle\" {\n plugin_data {\n kube_config_file_path = \"/x\"\n config_map_name = \"y\"\n }\n }",
            "unknown key \"config_map_name\"",
        ),
        (
            "BundlePublisher \"k8s_configmap\" {\n plugin_data {\n clusters = {\n a = { kubeconfig_path = \"/nonexistent\" }\n }\n }\n }",
            "cluster \"a\"",
        ),
    ] {
        let conf = ServerConf {
            node_attestor: format!("{JOIN_TOKEN_ATTESTOR}\n    {block}"),
            ..ServerConf::in_dir(dir.path())
        };
        let config = sigil_config::ServerConfig::parse(&conf.text(), "server.conf", false)
            .expect("the configuration reads");
        let error = sigil_server::Server::start(config)
            .await
            .map(|_| ())
            .expect_err(expected)
            .to_string();
        assert!(error.contains(expected), "{expected}: {error}");
    }
}
