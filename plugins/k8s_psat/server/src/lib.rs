//! The built-in `k8s_psat` node attestor, server side, with SPIRE's configuration and
//! behaviour: the agent's projected service-account token is checked with the cluster's
//! TokenReview API (authenticated, for one of the configured audiences, bound to an allowed
//! service account); the pod the token is bound to is fetched and its UID compared with the
//! token's; the pod's node is fetched for its UID.
//!
//! `plugin_data`:
//!
//! ```hcl
//! clusters = {
//!     "<name>" = {
//!         service_account_allow_list = ["<namespace>:<service account>"]  # required
//!         audience = ["spire-server"]          # the default; [] asks for the API server's
//!         kube_config_file = "…"               # read by the host; in-cluster when unset
//!         allowed_node_label_keys = ["…"]
//!         allowed_pod_label_keys = ["…"]
//!         use_pod_uid_for_agent_id = false
//!     }
//! }
//! ```
//!
//! Agent ID: `spiffe://<td>/spire/agent/k8s_psat/<cluster>/<node UID>`, or
//! `…/<cluster>/pod/<pod UID>` with `use_pod_uid_for_agent_id`. The agent may re-attest.
//! Selectors (typed `k8s_psat` by the host): `cluster:`, `agent_ns:`, `agent_sa:`,
//! `agent_pod_name:`, `agent_pod_uid:`, `agent_node_ip:`, `agent_node_name:`,
//! `agent_node_uid:`, and `agent_node_label:<key>:<value>` / `agent_pod_label:<key>:<value>`
//! for the allowed label keys.
//!
//! Grants: `kubernetes`, one access per configured cluster (the server builds it from
//! `kube_config_file` or the in-cluster service account).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::Value;
use sigil_pdk::{AgentAttributes, NodeAttestorServer, PluginError, Step, kubernetes};

/// SPIRE's default audience for the agent's token.
const DEFAULT_AUDIENCE: &str = "spire-server";
/// The TokenReview extras that bind a projected token to its pod.
const POD_NAME_EXTRA: &str = "authentication.kubernetes.io/pod-name";
const POD_UID_EXTRA: &str = "authentication.kubernetes.io/pod-uid";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    clusters: BTreeMap<String, ClusterConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterConfig {
    #[serde(default)]
    service_account_allow_list: Vec<String>,
    /// `None`: the default audience; `Some([])`: the API server's own.
    audience: Option<Vec<String>>,
    /// The host reads it to build the cluster's access.
    #[serde(default)]
    #[expect(dead_code, reason = "the host builds the cluster's access from it")]
    kube_config_file: String,
    #[serde(default)]
    allowed_node_label_keys: BTreeSet<String>,
    #[serde(default)]
    allowed_pod_label_keys: BTreeSet<String>,
    #[serde(default)]
    use_pod_uid_for_agent_id: bool,
}

/// The plugin: the trust domain and the clusters.
#[derive(Debug)]
struct K8sPsat {
    trust_domain: String,
    clusters: BTreeMap<String, ClusterConfig>,
}

/// The agent's payload, SPIRE's `PSATAttestationData`.
#[derive(Debug, Deserialize)]
struct Payload {
    #[serde(default)]
    cluster: String,
    #[serde(default)]
    token: String,
}

impl NodeAttestorServer for K8sPsat {
    fn configure(trust_domain: &str, config: &str) -> Result<Self, PluginError> {
        let config: Config =
            sigil_pdk::config::from_hcl(config).map_err(PluginError::InvalidArgument)?;
        if config.clusters.is_empty() {
            sigil_pdk::log::warn(
                "no clusters configured: k8s_psat attestation is effectively disabled",
            );
        }
        for (name, cluster) in &config.clusters {
            if cluster.service_account_allow_list.is_empty() {
                return Err(PluginError::InvalidArgument(format!(
                    "cluster {name:?} configuration must have at least one service account allowed"
                )));
            }
            if let Some(bad) = cluster.service_account_allow_list.iter().find(|sa| {
                sa.split_once(':')
                    .is_none_or(|(ns, n)| ns.is_empty() || n.is_empty())
            }) {
                return Err(PluginError::InvalidArgument(format!(
                    "cluster {name:?}: service account {bad:?} is not \"<namespace>:<name>\""
                )));
            }
        }
        Ok(K8sPsat {
            trust_domain: trust_domain.to_owned(),
            clusters: config.clusters,
        })
    }

    fn attest(&self, payload: Vec<u8>) -> Result<Step, PluginError> {
        let payload: Payload = serde_json::from_slice(&payload).map_err(|e| {
            PluginError::InvalidArgument(format!("failed to unmarshal data payload: {e}"))
        })?;
        if payload.cluster.is_empty() {
            return Err(invalid("missing cluster in attestation data"));
        }
        if payload.token.is_empty() {
            return Err(invalid("missing token in attestation data"));
        }
        let name = payload.cluster.as_str();
        let cluster = self
            .clusters
            .get(name)
            .ok_or_else(|| invalid(&format!("not configured for cluster {name:?}")))?;
        let audiences = cluster
            .audience
            .clone()
            .unwrap_or_else(|| vec![DEFAULT_AUDIENCE.to_owned()]);

        let review = kubernetes::review_token(name, &payload.token, &audiences).map_err(|e| {
            PluginError::Unavailable(format!(
                "unable to validate token with TokenReview API for cluster {name:?}: {}",
                reason(&e)
            ))
        })?;
        let identity = check_review(name, cluster, &audiences, &review)?;

        let pod = kubernetes::pod(name, &identity.namespace, &identity.pod_name).map_err(|e| {
            PluginError::Unavailable(format!(
                "failed to get pod from k8s API server for cluster {name:?}: {}",
                reason(&e)
            ))
        })?;
        let pod = Object::parse("pod", &pod)?;
        if pod.uid != identity.pod_uid {
            return Err(PluginError::PermissionDenied(format!(
                "pod UID mismatch for pod {:?} in cluster {name:?}: token bound to pod UID {:?}",
                identity.pod_name, identity.pod_uid
            )));
        }
        let node_name = pod.node_name.clone().unwrap_or_default();
        if node_name.is_empty() {
            return Err(PluginError::Unavailable(format!(
                "pod {:?} in cluster {name:?} is not scheduled on a node",
                identity.pod_name
            )));
        }
        let node = kubernetes::node(name, &node_name).map_err(|e| {
            PluginError::Unavailable(format!(
                "failed to get node from k8s API server for cluster {name:?}: {}",
                reason(&e)
            ))
        })?;
        let node = Object::parse("node", &node)?;
        if node.uid.is_empty() {
            return Err(PluginError::Internal(format!(
                "node UID is empty for cluster {name:?}"
            )));
        }

        let suffix = if cluster.use_pod_uid_for_agent_id {
            format!("pod/{}", identity.pod_uid)
        } else {
            node.uid.clone()
        };
        Ok(Step::Done(AgentAttributes {
            agent_id: format!(
                "spiffe://{}/spire/agent/k8s_psat/{name}/{suffix}",
                self.trust_domain
            ),
            selectors: selectors(name, cluster, &identity, &pod, &node_name, &node),
            can_reattest: true,
        }))
    }

    fn resume(&self, _state: Vec<u8>, _response: Vec<u8>) -> Result<Step, PluginError> {
        Err(invalid("k8s_psat attestation has no challenge"))
    }
}

/// Who the token says the agent is.
#[derive(Debug, PartialEq, Eq)]
struct Identity {
    namespace: String,
    service_account: String,
    pod_name: String,
    pod_uid: String,
}

/// Check a TokenReview as SPIRE does: authenticated, for one of `audiences` (when any
/// were asked for), a service account in the allow list, bound to one pod.
fn check_review(
    name: &str,
    cluster: &ClusterConfig,
    audiences: &[String],
    review: &kubernetes::TokenReview,
) -> Result<Identity, PluginError> {
    if !review.authenticated {
        let why = if review.error.is_empty() {
            String::new()
        } else {
            format!(": {}", review.error)
        };
        return Err(PluginError::PermissionDenied(format!(
            "token not authenticated according to TokenReview API for cluster {name:?}{why}"
        )));
    }
    // The API server may answer for a subset of the audiences asked for; it must have
    // confirmed at least one of them.
    if !audiences.is_empty() && !audiences.iter().any(|a| review.audiences.contains(a)) {
        return Err(PluginError::PermissionDenied(format!(
            "token review API did not validate audience for cluster {name:?}: wanted one of \
             {audiences:?} but got {:?}",
            review.audiences
        )));
    }
    let (namespace, service_account) = service_account(&review.username).ok_or_else(|| {
        PluginError::PermissionDenied(format!(
            "the token of cluster {name:?} is not a service account's: username {:?}",
            review.username
        ))
    })?;
    let qualified = format!("{namespace}:{service_account}");
    if !cluster.service_account_allow_list.contains(&qualified) {
        return Err(PluginError::PermissionDenied(format!(
            "{qualified:?} is not an allowed service account for cluster {name:?}"
        )));
    }
    let extra = |key: &str, what: &str| -> Result<String, PluginError> {
        match review
            .extra
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
        {
            Some([value]) if !value.is_empty() => Ok(value.clone()),
            Some([_]) => Err(PluginError::PermissionDenied(format!("{what} is empty"))),
            Some(values) => Err(PluginError::PermissionDenied(format!(
                "expected 1 {what} but got: {}",
                values.len()
            ))),
            None => Err(PluginError::PermissionDenied(format!(
                "missing {what}: the token of cluster {name:?} is not bound to a pod (a \
                 projected service-account token is needed)"
            ))),
        }
    };
    Ok(Identity {
        pod_name: extra(POD_NAME_EXTRA, "pod name")?,
        pod_uid: extra(POD_UID_EXTRA, "pod UID")?,
        namespace: namespace.to_owned(),
        service_account: service_account.to_owned(),
    })
}

/// `system:serviceaccount:<namespace>:<name>` → (namespace, name).
fn service_account(username: &str) -> Option<(&str, &str)> {
    match username.split(':').collect::<Vec<_>>().as_slice() {
        ["system", "serviceaccount", namespace, name]
            if !namespace.is_empty() && !name.is_empty() =>
        {
            Some((namespace, name))
        }
        _ => None,
    }
}

/// What the plugin reads of a pod or a node.
#[derive(Debug, Default)]
struct Object {
    uid: String,
    labels: BTreeMap<String, String>,
    node_name: Option<String>,
    host_ip: Option<String>,
}

impl Object {
    fn parse(what: &str, json: &str) -> Result<Self, PluginError> {
        let value: Value = serde_json::from_str(json).map_err(|e| {
            PluginError::Unavailable(format!("the API server's {what} is not JSON: {e}"))
        })?;
        let text = |v: &Value| v.as_str().map(str::to_owned);
        Ok(Object {
            uid: text(&value["metadata"]["uid"]).unwrap_or_default(),
            labels: value["metadata"]["labels"]
                .as_object()
                .map(|labels| {
                    labels
                        .iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                        .collect()
                })
                .unwrap_or_default(),
            node_name: text(&value["spec"]["nodeName"]),
            host_ip: text(&value["status"]["hostIP"]),
        })
    }
}

/// SPIRE's selectors, in SPIRE's order; labels by key.
fn selectors(
    name: &str,
    cluster: &ClusterConfig,
    identity: &Identity,
    pod: &Object,
    node_name: &str,
    node: &Object,
) -> Vec<String> {
    let mut selectors = vec![
        format!("cluster:{name}"),
        format!("agent_ns:{}", identity.namespace),
        format!("agent_sa:{}", identity.service_account),
        format!("agent_pod_name:{}", identity.pod_name),
        format!("agent_pod_uid:{}", identity.pod_uid),
        format!(
            "agent_node_ip:{}",
            pod.host_ip.as_deref().unwrap_or_default()
        ),
        format!("agent_node_name:{node_name}"),
        format!("agent_node_uid:{}", node.uid),
    ];
    selectors.extend(
        node.labels
            .iter()
            .filter(|(k, _)| cluster.allowed_node_label_keys.contains(*k))
            .map(|(k, v)| format!("agent_node_label:{k}:{v}")),
    );
    selectors.extend(
        pod.labels
            .iter()
            .filter(|(k, _)| cluster.allowed_pod_label_keys.contains(*k))
            .map(|(k, v)| format!("agent_pod_label:{k}:{v}")),
    );
    selectors
}

fn invalid(message: &str) -> PluginError {
    PluginError::InvalidArgument(message.to_owned())
}

/// The message of a capability error, without its case (the caller picks its own).
fn reason(error: &PluginError) -> &str {
    match error {
        PluginError::InvalidArgument(m)
        | PluginError::PermissionDenied(m)
        | PluginError::NotFound(m)
        | PluginError::Unavailable(m)
        | PluginError::Internal(m) => m,
    }
}

sigil_pdk::export_node_attestor_server!(K8sPsat);

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(allow: &[&str]) -> ClusterConfig {
        ClusterConfig {
            service_account_allow_list: allow.iter().map(|s| (*s).to_owned()).collect(),
            audience: None,
            kube_config_file: String::new(),
            allowed_node_label_keys: BTreeSet::from(["zone".to_owned()]),
            allowed_pod_label_keys: BTreeSet::from(["app".to_owned()]),
            use_pod_uid_for_agent_id: false,
        }
    }

    fn review(
        username: &str,
        audiences: &[&str],
        extra: &[(&str, &[&str])],
    ) -> kubernetes::TokenReview {
        kubernetes::TokenReview {
            authenticated: true,
            error: String::new(),
            username: username.to_owned(),
            uid: "u".into(),
            groups: Vec::new(),
            audiences: audiences.iter().map(|s| (*s).to_owned()).collect(),
            extra: extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
                .collect(),
        }
    }

    const BOUND: &[(&str, &[&str])] =
        &[(POD_NAME_EXTRA, &["agent-x"]), (POD_UID_EXTRA, &["uid-1"])];

    #[test]
    fn a_bound_token_of_an_allowed_account_names_its_pod() {
        let identity = check_review(
            "prod",
            &cluster(&["spire:spire-agent"]),
            &["spire-server".into()],
            &review(
                "system:serviceaccount:spire:spire-agent",
                &["spire-server"],
                BOUND,
            ),
        )
        .expect("accepted");
        assert_eq!(
            identity,
            Identity {
                namespace: "spire".into(),
                service_account: "spire-agent".into(),
                pod_name: "agent-x".into(),
                pod_uid: "uid-1".into(),
            }
        );
    }

    #[test]
    fn refusals_say_what_failed() {
        let allowed = cluster(&["spire:spire-agent"]);
        let spire = ["spire-server".to_owned()];
        let user = "system:serviceaccount:spire:spire-agent";
        let mut unauthenticated = review(user, &[], BOUND);
        unauthenticated.authenticated = false;
        unauthenticated.error = "invalid bearer token".into();
        for (review, expected) in [
            (
                unauthenticated,
                "token not authenticated according to TokenReview API for cluster \"prod\": invalid bearer token",
            ),
            (review(user, &["other"], BOUND), "did not validate audience"),
            (
                review(
                    "system:serviceaccount:default:web",
                    &["spire-server"],
                    BOUND,
                ),
                "\"default:web\" is not an allowed service account for cluster \"prod\"",
            ),
            (
                review("alice", &["spire-server"], BOUND),
                "is not a service account's",
            ),
            (
                review(user, &["spire-server"], &[(POD_UID_EXTRA, &["u"])]),
                "missing pod name",
            ),
            (
                review(
                    user,
                    &["spire-server"],
                    &[(POD_NAME_EXTRA, &["a", "b"]), (POD_UID_EXTRA, &["u"])],
                ),
                "expected 1 pod name but got: 2",
            ),
        ] {
            let error = check_review("prod", &allowed, &spire, &review).expect_err(expected);
            let PluginError::PermissionDenied(message) = &error else {
                panic!("{expected}: {error:?}");
            };
            assert!(message.contains(expected), "{expected}: {message}");
        }
        // An empty audience list asks for the API server's own: any confirmed audience does.
        check_review(
            "prod",
            &allowed,
            &[],
            &review(user, &["https://kubernetes.default.svc"], BOUND),
        )
        .expect("the API server's audience");
    }

    #[test]
    fn selectors_are_spires_with_only_the_allowed_labels() {
        let pod = Object::parse(
            "pod",
            r#"{"metadata":{"uid":"uid-1","labels":{"app":"agent","secret":"x"}},
                "spec":{"nodeName":"node-a"},"status":{"hostIP":"10.1.2.3"}}"#,
        )
        .expect("pod");
        let node = Object::parse(
            "node",
            r#"{"metadata":{"uid":"node-uid","labels":{"zone":"z1","kubernetes.io/os":"linux"}}}"#,
        )
        .expect("node");
        let identity = Identity {
            namespace: "spire".into(),
            service_account: "spire-agent".into(),
            pod_name: "agent-x".into(),
            pod_uid: "uid-1".into(),
        };
        assert_eq!(
            selectors(
                "prod",
                &cluster(&["spire:spire-agent"]),
                &identity,
                &pod,
                "node-a",
                &node
            ),
            [
                "cluster:prod",
                "agent_ns:spire",
                "agent_sa:spire-agent",
                "agent_pod_name:agent-x",
                "agent_pod_uid:uid-1",
                "agent_node_ip:10.1.2.3",
                "agent_node_name:node-a",
                "agent_node_uid:node-uid",
                "agent_node_label:zone:z1",
                "agent_pod_label:app:agent",
            ]
        );
    }

    #[test]
    fn configuration_is_spires() {
        let plugin = K8sPsat::configure(
            "example.org",
            "clusters = {\n  \"MyCluster\" = {\n    service_account_allow_list = [\"production:spire-agent\"]\n    audience = []\n    use_pod_uid_for_agent_id = true\n  }\n}\n",
        )
        .expect("configured");
        let cluster = &plugin.clusters["MyCluster"];
        assert_eq!(cluster.audience, Some(Vec::new()));
        assert!(cluster.use_pod_uid_for_agent_id);
        for (text, expected) in [
            (
                "clusters = { a = { } }",
                "must have at least one service account allowed",
            ),
            (
                "clusters = { a = { service_account_allow_list = [\"nonamespace\"] } }",
                "is not \"<namespace>:<name>\"",
            ),
            (
                "clusters = { a = { service_account_allow_list = [\"a:b\"], audiences = [] } }",
                "audiences",
            ),
        ] {
            let error = K8sPsat::configure("example.org", text).expect_err(expected);
            assert!(reason(&error).contains(expected), "{expected}: {error:?}");
        }
    }
}
