//! SPIRE's kubelet keys and defaults, and the refusals that name the key.

use std::path::PathBuf;
use std::time::Duration;

use sigil_config::PluginData;

use super::{KubeletSettings, kubelet_settings};

fn settings(text: &str, env: &[(&str, &str)]) -> Result<KubeletSettings, String> {
    let data = PluginData::parse(text).expect("plugin_data parses");
    kubelet_settings(&data, |name| {
        env.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    })
}

fn sa(file: &str) -> PathBuf {
    PathBuf::from("/var/run/secrets/kubernetes.io/serviceaccount").join(file)
}

#[test]
fn defaults_are_spires() {
    let s = settings("", &[]).expect("defaults");
    assert_eq!(s.url, "https://127.0.0.1:10250");
    assert_eq!(s.ca_path, Some(sa("ca.crt")));
    assert_eq!(s.token_path, Some(sa("token")));
    assert_eq!(s.client, None);
    assert_eq!(s.max_poll_attempts, 60);
    assert_eq!(s.poll_retry_interval, Duration::from_millis(500));
    assert!(s.no_effect.is_empty());
}

#[test]
fn the_node_name_comes_from_the_setting_else_the_environment() {
    let env = [("MY_NODE_NAME", "node-a"), ("OTHER", "node-b")];
    assert_eq!(settings("", &env).expect("env").url, "https://node-a:10250");
    assert_eq!(
        settings("node_name_env = \"OTHER\"", &env)
            .expect("other env")
            .url,
        "https://node-b:10250"
    );
    assert_eq!(
        settings("node_name = \"node-c\"\nkubelet_secure_port = 11250", &env)
            .expect("name")
            .url,
        "https://node-c:11250"
    );
    // An empty variable is no node name.
    assert_eq!(
        settings("", &[("MY_NODE_NAME", "")]).expect("empty").url,
        "https://127.0.0.1:10250"
    );
    let error = settings("node_name = \"evil/path?x\"", &[]).expect_err("not a host");
    assert!(error.starts_with("node_name:"), "{error}");
}

#[test]
fn the_read_only_port_is_plain_http_on_localhost() {
    let s =
        settings("kubelet_read_only_port = 10255", &[("MY_NODE_NAME", "n")]).expect("read-only");
    assert_eq!(s.url, "http://127.0.0.1:10255");
    assert_eq!(s.token_path, None);
    let error = settings(
        "kubelet_read_only_port = 10255\nkubelet_secure_port = 10250",
        &[],
    )
    .expect_err("both ports");
    assert!(error.contains("cannot use both"), "{error}");
}

#[test]
fn verification_and_authentication_choices() {
    let s = settings(
        "skip_kubelet_verification = true\ntoken_path = \"/t\"\nkubelet_ca_path = \"/ca\"",
        &[],
    )
    .expect("skip");
    assert_eq!((s.ca_path, s.token_path), (None, Some(PathBuf::from("/t"))));
    let s = settings("kubelet_ca_path = \"/ca.pem\"", &[]).expect("ca");
    assert_eq!(s.ca_path, Some(PathBuf::from("/ca.pem")));
    let s = settings(
        "certificate_path = \"/c.pem\"\nprivate_key_path = \"/k.pem\"",
        &[],
    )
    .expect("client cert");
    assert_eq!(s.token_path, None);
    assert_eq!(
        s.client,
        Some((PathBuf::from("/c.pem"), PathBuf::from("/k.pem")))
    );
    let error = settings("certificate_path = \"/c.pem\"", &[]).expect_err("no key");
    assert!(error.starts_with("private_key_path:"), "{error}");
    let s = settings("use_anonymous_authentication = true", &[]).expect("anonymous");
    assert_eq!((s.token_path, s.client), (None, None));
}

#[test]
fn polling_settings_and_go_defaults_for_zero() {
    let s =
        settings("max_poll_attempts = 3\npoll_retry_interval = \"1.5s\"", &[]).expect("polling");
    assert_eq!(
        (s.max_poll_attempts, s.poll_retry_interval),
        (3, Duration::from_millis(1500))
    );
    let s = settings("max_poll_attempts = 0\npoll_retry_interval = \"0\"", &[]).expect("zero");
    assert_eq!(
        (s.max_poll_attempts, s.poll_retry_interval),
        (60, Duration::from_millis(500))
    );
}

#[test]
fn bad_values_are_refused_naming_the_key() {
    for (text, key) in [
        ("poll_retry_interval = \"soon\"", "poll_retry_interval:"),
        ("max_poll_attempts = \"3\"", "max_poll_attempts:"),
        ("kubelet_secure_port = 70000", "kubelet_secure_port:"),
        (
            "skip_kubelet_verification = \"yes\"",
            "skip_kubelet_verification:",
        ),
        (
            "disable_container_selectors = 1",
            "disable_container_selectors:",
        ),
        ("token_path = 5", "token_path:"),
        ("reload_interval = \"often\"", "reload_interval:"),
        ("kubelet_port = 10250", "kubelet_port:"),
        ("disable_kubelet_client = true", "disable_kubelet_client:"),
        ("enable_namespace_labels = true", "enable_namespace_labels:"),
    ] {
        let error = settings(text, &[]).expect_err(text);
        assert!(error.starts_with(key), "{text}: {error}");
    }
}

#[test]
fn spire_keys_without_effect_are_accepted_and_listed() {
    let s = settings(
        "reload_interval = \"1m\"\nuse_new_container_locator = true\n\
         verbose_container_locator_logs = false\n\
         sigstore {\n  allowed_identities = {}\n}\n\
         experimental {\n  api_server {\n    cache {\n      enabled = true\n    }\n  }\n}\n",
        &[],
    )
    .expect("accepted");
    let keys: Vec<&str> = s.no_effect.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "reload_interval",
            "use_new_container_locator",
            "verbose_container_locator_logs",
            "sigstore",
            "experimental"
        ]
    );
}

/// The agent's configuration path end to end: `WorkloadAttestor "k8s"` with SPIRE's keys
/// loads the built-in plugin with the kubelet granted, and it attests a process in a pod
/// through the stand-in kubelet (HTTPS to `localhost`, checked against the CA file, with
/// the token file).
#[test]
fn the_configured_k8s_attestor_reaches_the_kubelet() {
    use sigil_plugins::{ProcRoots, ProcessFacts};
    use sigil_testkit::kube::{self, Kubelet, container_status, with_statuses};

    const UID: &str = "a2830d0d-b0f0-4ff0-81b5-0ee4e299cf80";
    let cid = "7".repeat(64);
    let kubelet = Kubelet::start();
    kubelet.put_pod(with_statuses(
        kube::pod(
            "prod",
            "web-0",
            UID,
            "node-1",
            "10.0.0.5",
            &[("app", "web")],
        ),
        vec![container_status(
            "web",
            "registry.example/web:1",
            "registry.example/web@sha256:00",
            &format!("cri-o://{cid}"),
        )],
        vec![],
    ));
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("kubelet-ca.pem");
    std::fs::write(&ca, kubelet.ca_pem()).expect("CA file");
    let token = dir.path().join("token");
    std::fs::write(&token, kubelet.token()).expect("token file");
    let text = format!(
        r#"agent {{
    data_dir = "{data}"
    server_address = "127.0.0.1"
    server_port = 8081
    socket_path = "{data}/agent.sock"
    trust_domain = "example.org"
    trust_bundle_path = "{data}/bundle.pem"
}}
plugins {{
    NodeAttestor "join_token" {{
        plugin_data {{}}
    }}
    KeyManager "memory" {{
        plugin_data {{}}
    }}
    WorkloadAttestor "k8s" {{
        plugin_data {{
            kubelet_secure_port = {port}
            node_name = "localhost"
            kubelet_ca_path = "{ca}"
            token_path = "{token}"
            max_poll_attempts = 2
            poll_retry_interval = "20ms"
            reload_interval = "1m"
        }}
    }}
}}
"#,
        data = dir.path().display(),
        port = kubelet.port(),
        ca = ca.display(),
        token = token.display(),
    );
    let config = sigil_config::AgentConfig::parse(&text, "agent.conf", false).expect("config");
    let data = crate::storage::DataDir::open(&dir.path().join("data")).expect("data dir");
    let (_host, attestors) = crate::plugins::load_plugins(&data, &config).expect("plugins load");
    let [k8s] = attestors.as_slice() else {
        panic!("one workload attestor, not {}", attestors.len());
    };

    let proc_dir = dir.path().join("proc/77");
    std::fs::create_dir_all(&proc_dir).expect("proc");
    std::fs::write(
        proc_dir.join("stat"),
        "77 (app) S 1 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5555 0 0",
    )
    .expect("stat");
    std::fs::write(
        proc_dir.join("status"),
        "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t\n",
    )
    .expect("status");
    std::fs::write(
        proc_dir.join("cgroup"),
        format!(
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/crio-{cid}.scope\n",
            UID.replace('-', "_")
        ),
    )
    .expect("cgroup");
    let roots = ProcRoots {
        proc: dir.path().join("proc"),
        etc: dir.path().join("etc"),
    };
    let facts = ProcessFacts::resolve_in(&roots, 77).expect("facts");
    let selectors: Vec<String> = k8s
        .attest_process(facts)
        .expect("attested")
        .iter()
        .map(ToString::to_string)
        .collect();
    for want in [
        "k8s:ns:prod",
        "k8s:pod-name:web-0",
        &format!("k8s:pod-uid:{UID}"),
        "k8s:container-name:web",
        "k8s:pod-label:app:web",
    ] {
        assert!(
            selectors.iter().any(|s| s == want),
            "{want} in {selectors:#?}"
        );
    }
    assert_eq!(
        kubelet.requests()[0].bearer(),
        Some(kubelet.token()),
        "the token file's token"
    );
}
