//! Stand-ins for a Kubernetes cluster, which cannot run on the test machines: an API server
//! ([`ApiServer`]) that speaks the real REST paths and JSON (k8s-openapi types) over HTTPS
//! with bearer tokens, for the real clients (sigil's plugins, kube-rs) to talk to, and a
//! node's kubelet ([`Kubelet`]: its `/pods` list).
//!
//! These are test code. They implement what sigil calls, with the API server's observable
//! behaviour (status codes, `Status` bodies, TokenReview semantics), not a cluster.

mod api;
mod kubelet;

pub use api::{ApiServer, ServiceAccountToken};
pub use kubelet::{Kubelet, container_status, owner, with_statuses};

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeSpec, NodeStatus, Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// A pod as the API server returns it: `namespace/name` with `uid`, scheduled on `node` with
/// the node's `host_ip`, labelled `labels`, running as service account `service_account`.
pub fn pod(
    namespace: &str,
    name: &str,
    uid: &str,
    node: &str,
    host_ip: &str,
    labels: &[(&str, &str)],
) -> Pod {
    Pod {
        metadata: ObjectMeta {
            namespace: Some(namespace.to_owned()),
            name: Some(name.to_owned()),
            uid: Some(uid.to_owned()),
            labels: Some(string_map(labels)),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.to_owned()),
            service_account_name: Some("default".to_owned()),
            ..PodSpec::default()
        }),
        status: Some(PodStatus {
            host_ip: Some(host_ip.to_owned()),
            phase: Some("Running".to_owned()),
            ..PodStatus::default()
        }),
    }
}

/// A node `name` with `uid` and `labels`.
pub fn node(name: &str, uid: &str, labels: &[(&str, &str)]) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            uid: Some(uid.to_owned()),
            labels: Some(string_map(labels)),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus::default()),
    }
}

fn string_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}
