//! Loading the configured node attestors, with the capabilities each built-in needs:
//! `join_token` redeems tokens in the datastore; `k8s_psat` reaches each configured
//! cluster's API server with the server's credentials for it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use sigil_config::{DataValue, PluginData, ServerConfig};
use sigil_plugins::{Grants, KubernetesAccess, NodeAttestorServer, PluginHost};
use sigil_store::DataStore;
use tokio::runtime::Handle;

use crate::error::ServerError;
use crate::tokens::StoreTokens;

/// Load every configured node attestor, by name.
pub(crate) fn load(
    config: &ServerConfig,
    plugins: &PluginHost,
    store: &Arc<dyn DataStore>,
) -> Result<BTreeMap<String, NodeAttestorServer>, ServerError> {
    let mut loaded = BTreeMap::new();
    for plugin in &config.plugins.node_attestors {
        let spec = sigil_daemon::plugin_spec(plugin, &plugin.data_text);
        let grants = match plugin.name.as_str() {
            "join_token" => Grants::default().with_join_tokens(Arc::new(StoreTokens {
                store: store.clone(),
                runtime: Handle::current(),
            })),
            "k8s_psat" => kubernetes_grants(&plugin.data, plugin.line, spec.limits.io_timeout)?,
            _ => Grants::default(),
        };
        let attestor =
            plugins.load_node_attestor_server(&config.trust_domain, &spec.with_grants(grants))?;
        loaded.insert(plugin.name.clone(), attestor);
    }
    Ok(loaded)
}

/// One Kubernetes access per cluster of k8s_psat's `clusters`: from the cluster's
/// `kube_config_file`, or the in-cluster service account when it is unset or empty (as
/// SPIRE does). A cluster whose access cannot be built stops the server, naming it.
fn kubernetes_grants(
    data: &PluginData,
    line: usize,
    timeout: std::time::Duration,
) -> Result<Grants, ServerError> {
    let fail = |cluster: &str, why: String| {
        ServerError::Unsupported(format!(
            "NodeAttestor \"k8s_psat\" (line {line}): cluster {cluster:?}: {why}"
        ))
    };
    let mut grants = Grants::default();
    let clusters = match data.get("clusters") {
        None => return Ok(grants),
        Some(DataValue::Object(members)) => members.clone(),
        Some(DataValue::Block(entries)) => entries
            .iter()
            .map(|e| (e.key.clone(), e.value.clone()))
            .collect(),
        Some(_) => {
            return Err(ServerError::Unsupported(format!(
                "NodeAttestor \"k8s_psat\" (line {line}): clusters must be a map of cluster names"
            )));
        }
    };
    for (name, cluster) in clusters {
        let kubeconfig = match &cluster {
            DataValue::Object(members) => members
                .iter()
                .find(|(k, _)| k == "kube_config_file")
                .map(|(_, v)| v.clone()),
            DataValue::Block(entries) => entries
                .iter()
                .find(|e| e.key == "kube_config_file")
                .map(|e| e.value.clone()),
            _ => return Err(fail(&name, "the cluster's settings must be a map".into())),
        };
        let access = match kubeconfig {
            Some(DataValue::String(path)) if !path.is_empty() => {
                KubernetesAccess::from_kubeconfig(Path::new(&path), timeout)
            }
            None | Some(DataValue::String(_)) => {
                KubernetesAccess::in_cluster(timeout).map_err(|e| {
                    format!("{e} (set kube_config_file when the server runs outside the cluster)")
                })
            }
            Some(_) => Err("kube_config_file must be a string".into()),
        }
        .map_err(|why| fail(&name, why))?;
        grants = grants.with_kubernetes(&name, access);
    }
    Ok(grants)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_outside_the_cluster_needs_a_kubeconfig() {
        let data = PluginData::parse(
            "clusters = {\n  \"prod\" = {\n    service_account_allow_list = [\"a:b\"]\n  }\n}\n",
        )
        .expect("data");
        // The test process is not in a pod: no KUBERNETES_SERVICE_HOST.
        let error = kubernetes_grants(&data, 7, std::time::Duration::from_secs(1))
            .expect_err("not in a pod");
        let text = error.to_string();
        assert!(
            text.contains("cluster \"prod\"") && text.contains("KUBERNETES_SERVICE_HOST"),
            "{text}"
        );
    }
}
