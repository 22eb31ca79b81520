//! The built-in `k8s_psat` node attestor, both sides, against the Kubernetes API server
//! stand-in of sigil-testkit (no cluster can run here; the stand-in speaks the API server's
//! REST paths, JSON and TokenReview semantics over HTTPS with bearer tokens).

use std::path::Path;

use sigil_plugins::{Grants, KubernetesAccess, NodeAttestorAgent};
use sigil_testkit::kube::{self, ApiServer, ServiceAccountToken};

use super::*;

/// The stand-in with node `node-a` and the agent pod `spire/agent-1` on it.
fn cluster() -> ApiServer {
    let api = ApiServer::start();
    api.put_node(kube::node("node-a", "node-uid-a", &[("zone", "z1")]));
    api.put_pod(kube::pod(
        "spire",
        "agent-1",
        "pod-uid-1",
        "node-a",
        "10.0.0.9",
        &[("app", "agent")],
    ));
    api
}

fn token(api: &ApiServer, namespace: &str, service_account: &str, audience: &str) -> String {
    api.issue_token(ServiceAccountToken {
        namespace: namespace.into(),
        service_account: service_account.into(),
        pod_name: "agent-1".into(),
        pod_uid: "pod-uid-1".into(),
        audiences: vec![audience.into()],
    })
}

fn server_side(api: &ApiServer, dir: &Path, cluster_settings: &str) -> NodeAttestorServer {
    let access =
        KubernetesAccess::from_kubeconfig(&api.write_kubeconfig(dir), Duration::from_secs(5))
            .expect("kubeconfig");
    let data = format!(
        "clusters = {{\n  \"demo\" = {{\n    service_account_allow_list = [\"spire:spire-agent\"]\n{cluster_settings}  }}\n}}\n"
    );
    let spec = PluginSpec::builtin("k8s_psat", &data)
        .with_grants(Grants::default().with_kubernetes("demo", access));
    host()
        .load_node_attestor_server(&td(), &spec)
        .expect("k8s_psat server side loads")
}

/// The agent side's payload for the token in a file, as the agent grants it.
fn payload(dir: &Path, token: &str) -> Vec<u8> {
    let path = dir.join("token");
    std::fs::write(&path, format!("{token}\n")).expect("write the token");
    let spec = PluginSpec::builtin(
        "k8s_psat",
        &format!("cluster = \"demo\"\ntoken_path = \"{}\"\n", path.display()),
    );
    let agent: NodeAttestorAgent = host()
        .load_node_attestor_agent(&td(), &spec)
        .expect("k8s_psat agent side loads");
    agent.payload().expect("payload")
}

fn attest(
    server: &NodeAttestorServer,
    payload: &[u8],
) -> Result<sigil_plugins::AttestedNode, PluginError> {
    match server.attest(payload)? {
        AttestationStep::Done(node) => Ok(node),
        other => panic!("k8s_psat has no challenge: {other:?}"),
    }
}

#[test]
fn a_projected_token_of_an_allowed_agent_attests_the_node() {
    let api = cluster();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server_side(&api, dir.path(), "    allowed_pod_label_keys = [\"app\"]\n");
    let payload = payload(
        dir.path(),
        &token(&api, "spire", "spire-agent", "spire-server"),
    );
    let wire: serde_json::Value = serde_json::from_slice(&payload).expect("JSON payload");
    assert_eq!(wire["cluster"], "demo", "SPIRE's payload shape: {wire}");
    assert!(
        wire["token"]
            .as_str()
            .is_some_and(|t| !t.is_empty() && !t.ends_with('\n'))
    );

    let node = attest(&server, &payload).expect("attested");
    assert_eq!(
        node.agent_id.to_string(),
        "spiffe://example.org/spire/agent/k8s_psat/demo/node-uid-a"
    );
    assert!(node.can_reattest);
    let selectors: Vec<String> = node.selectors.iter().map(ToString::to_string).collect();
    assert_eq!(
        selectors,
        [
            "k8s_psat:cluster:demo",
            "k8s_psat:agent_ns:spire",
            "k8s_psat:agent_sa:spire-agent",
            "k8s_psat:agent_pod_name:agent-1",
            "k8s_psat:agent_pod_uid:pod-uid-1",
            "k8s_psat:agent_node_ip:10.0.0.9",
            "k8s_psat:agent_node_name:node-a",
            "k8s_psat:agent_node_uid:node-uid-a",
            "k8s_psat:agent_pod_label:app:agent",
        ]
    );
}

#[test]
fn use_pod_uid_for_agent_id_names_the_pod() {
    let api = cluster();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server_side(&api, dir.path(), "    use_pod_uid_for_agent_id = true\n");
    let payload = payload(
        dir.path(),
        &token(&api, "spire", "spire-agent", "spire-server"),
    );
    assert_eq!(
        attest(&server, &payload)
            .expect("attested")
            .agent_id
            .to_string(),
        "spiffe://example.org/spire/agent/k8s_psat/demo/pod/pod-uid-1"
    );
}

#[test]
fn refusals_name_what_was_wrong() {
    let api = cluster();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server_side(&api, dir.path(), "");
    let expect_refusal = |payload: &[u8], expected: &str| {
        let error = attest(&server, payload).expect_err(expected).to_string();
        assert!(error.contains(expected), "{expected}: {error}");
    };

    // A token for another audience: the API server does not authenticate it.
    expect_refusal(
        &payload(dir.path(), &token(&api, "spire", "spire-agent", "vault")),
        "token not authenticated according to TokenReview API for cluster \"demo\"",
    );
    // A service account outside the allow list.
    expect_refusal(
        &payload(dir.path(), &token(&api, "default", "web", "spire-server")),
        "\"default:web\" is not an allowed service account for cluster \"demo\"",
    );
    // The token's pod was replaced by another of the same name: the UIDs differ.
    let good = token(&api, "spire", "spire-agent", "spire-server");
    api.put_pod(kube::pod(
        "spire",
        "agent-1",
        "pod-uid-2",
        "node-a",
        "10.0.0.9",
        &[],
    ));
    expect_refusal(
        &payload(dir.path(), &good),
        "pod UID mismatch for pod \"agent-1\" in cluster \"demo\": token bound to pod UID \"pod-uid-1\"",
    );
    // The TokenReview API fails.
    api.fail_token_reviews(Some(500));
    expect_refusal(
        &payload(dir.path(), &good),
        "unable to validate token with TokenReview API for cluster \"demo\"",
    );
    api.fail_token_reviews(None);
    // A cluster the server does not know, and payloads that are not SPIRE's.
    expect_refusal(
        br#"{"cluster":"other","token":"t"}"#,
        "not configured for cluster \"other\"",
    );
    expect_refusal(br#"{"token":"t"}"#, "missing cluster in attestation data");
    expect_refusal(
        br#"{"cluster":"demo"}"#,
        "missing token in attestation data",
    );
    expect_refusal(b"not json", "failed to unmarshal data payload");
}

#[test]
fn the_agent_side_needs_a_cluster_and_a_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let error = host()
        .load_node_attestor_agent(&td(), &PluginSpec::builtin("k8s_psat", ""))
        .expect_err("no cluster")
        .to_string();
    assert!(error.contains("cluster is required"), "{error}");
    let missing = dir.path().join("missing-token");
    let agent = host()
        .load_node_attestor_agent(
            &td(),
            &PluginSpec::builtin(
                "k8s_psat",
                &format!(
                    "cluster = \"demo\"\ntoken_path = \"{}\"\n",
                    missing.display()
                ),
            ),
        )
        .expect("configured: the token is read at attestation");
    let error = agent.payload().expect_err("no token file").to_string();
    assert!(error.contains("token_path"), "{error}");
}
