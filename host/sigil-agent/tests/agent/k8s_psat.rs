//! `k8s_psat` end to end: the real agent process presents a projected token; the server
//! (in process) checks it with the API server stand-in of sigil-testkit (no cluster can
//! run here: the stand-in speaks the API server's REST paths, JSON and TokenReview
//! semantics over HTTPS) through a kubeconfig, and names the agent after the node.

#![expect(
    clippy::expect_used,
    reason = "test set-up outside #[test] functions: a failed step must fail the test"
)]

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use sigil_testkit::kube::{self, ApiServer, ServiceAccountToken};

use crate::common::{self, Agent, Server, WAIT, fetch_x509};

/// A cluster with one node and the agent's pod on it, in the API server stand-in (no
/// cluster can run here: the stand-in speaks the API server's REST paths and JSON).
struct Cluster {
    api: ApiServer,
    kubeconfig: std::path::PathBuf,
}

impl Cluster {
    fn start(dir: &Path) -> Cluster {
        let api = ApiServer::start();
        api.put_node(kube::node(
            "node-a",
            "node-uid-a",
            &[("zone", "z1"), ("os", "linux")],
        ));
        api.put_pod(kube::pod(
            "spire",
            "spire-agent-x7",
            "pod-uid-x7",
            "node-a",
            "10.0.0.7",
            &[("app", "spire-agent")],
        ));
        let kubeconfig = api.write_kubeconfig(dir);
        Cluster { api, kubeconfig }
    }

    /// A projected token of `namespace:service_account` bound to the agent's pod, for
    /// `audience`, written to `dir/token`.
    fn token(
        &self,
        dir: &Path,
        service_account: (&str, &str),
        audience: &str,
    ) -> std::path::PathBuf {
        let token = self.api.issue_token(ServiceAccountToken {
            namespace: service_account.0.into(),
            service_account: service_account.1.into(),
            pod_name: "spire-agent-x7".into(),
            pod_uid: "pod-uid-x7".into(),
            audiences: vec![audience.into()],
        });
        let path = dir.join("token");
        std::fs::write(&path, token).expect("write the token");
        path
    }

    fn node_attestor(&self) -> String {
        format!(
            "NodeAttestor \"k8s_psat\" {{\n        plugin_data {{\n            clusters = {{\n                \"demo\" = {{\n                    service_account_allow_list = [\"spire:spire-agent\"]\n                    kube_config_file = \"{}\"\n                    allowed_node_label_keys = [\"zone\"]\n                }}\n            }}\n        }}\n    }}",
            self.kubeconfig.display()
        )
    }
}

fn k8s_psat_agent_conf(dir: &Path, port: u16, token: &Path) -> std::path::PathBuf {
    let conf = dir.join("agent.conf");
    std::fs::write(
        &conf,
        common::agent_conf_with(
            dir,
            port,
            "insecure_bootstrap = true",
            &format!(
                "NodeAttestor \"k8s_psat\" {{\n        plugin_data {{\n            cluster = \"demo\"\n            token_path = \"{}\"\n        }}\n    }}",
                token.display()
            ),
        ),
    )
    .expect("write config");
    conf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn k8s_psat_attests_through_the_token_review_api_and_names_the_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::start(dir.path());
    let server = Server::start_with(dir.path(), "", &cluster.node_attestor()).await;
    let token = cluster.token(dir.path(), ("spire", "spire-agent"), "spire-server");
    let agent_id = "spiffe://example.org/spire/agent/k8s_psat/demo/node-uid-a";
    let uid = std::fs::metadata("/proc/self").expect("proc").uid();
    server
        .cli_out(&[
            "entry",
            "create",
            "-spiffeID",
            "spiffe://example.org/ns/default/sa/web",
            "-parentID",
            agent_id,
            "-selector",
            &format!("unix:uid:{uid}"),
        ])
        .await;
    let conf = k8s_psat_agent_conf(dir.path(), server.address.port(), &token);
    let mut agent = Agent::start(&conf, None, dir.path(), "k8s_psat");
    let fetched = fetch_x509(&dir.path().join("agent.sock"), &mut agent).await;
    assert_eq!(fetched.ids, ["spiffe://example.org/ns/default/sa/web"]);

    let shown = server
        .cli_out(&["agent", "show", "-spiffeID", agent_id])
        .await;
    for selector in [
        "k8s_psat:cluster:demo",
        "k8s_psat:agent_ns:spire",
        "k8s_psat:agent_sa:spire-agent",
        "k8s_psat:agent_pod_name:spire-agent-x7",
        "k8s_psat:agent_pod_uid:pod-uid-x7",
        "k8s_psat:agent_node_ip:10.0.0.7",
        "k8s_psat:agent_node_name:node-a",
        "k8s_psat:agent_node_uid:node-uid-a",
        "k8s_psat:agent_node_label:zone:z1",
    ] {
        assert!(shown.contains(selector), "{selector}: {shown}");
    }
    assert!(!shown.contains("os:linux"), "only allowed labels: {shown}");
    // The server asked the cluster with its kubeconfig's credentials, for SPIRE's audience.
    let review = cluster
        .api
        .requests()
        .into_iter()
        .find(|r| r.path().ends_with("/tokenreviews"))
        .expect("a TokenReview");
    assert_eq!(review.bearer(), Some(cluster.api.client_token()));
    assert!(
        String::from_utf8_lossy(&review.body).contains("\"audiences\":[\"spire-server\"]"),
        "{review:?}"
    );
    agent.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn k8s_psat_refuses_a_token_for_another_audience_and_the_agent_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::start(dir.path());
    let server = Server::start_with(dir.path(), "", &cluster.node_attestor()).await;
    let token = cluster.token(dir.path(), ("spire", "spire-agent"), "some-other-service");
    let conf = k8s_psat_agent_conf(dir.path(), server.address.port(), &token);
    let mut agent = Agent::start(&conf, None, dir.path(), "k8s_psat");
    let status = agent.wait_exit(WAIT);
    assert!(!status.success(), "{}", agent.log());
    let log = agent.log();
    assert!(
        log.contains(
            "token not authenticated according to TokenReview API for cluster \\\"demo\\\""
        ) || log
            .contains("token not authenticated according to TokenReview API for cluster \"demo\""),
        "{log}"
    );
    assert!(log.contains("invalid for the target audiences"), "{log}");
    let agents = server.cli_out(&["agent", "list"]).await;
    assert!(!agents.contains("k8s_psat"), "{agents}");
}
