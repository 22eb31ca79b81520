//! The agent's plugins: the plugin host (with its artifact cache in `data_dir`), the
//! workload attestors, and the node attestor with its `plugin_data`.

use sigil_config::{AgentConfig, PluginConfig, PluginSource};
use sigil_plugins::{Grants, HostConfig, NodeAttestorAgent, PluginHost, WorkloadAttestor};

use crate::RunOptions;
use crate::error::AgentError;
use crate::k8s;
use crate::storage::DataDir;

/// Where k8s_psat's agent side reads the projected service-account token by default.
const K8S_PSAT_TOKEN_PATH: &str = "/var/run/secrets/tokens/spire-agent";

/// The plugin host (its artifact cache in `data_dir`) and the workload attestors.
pub(crate) fn load_plugins(
    data: &DataDir,
    config: &AgentConfig,
) -> Result<(PluginHost, Vec<WorkloadAttestor>), AgentError> {
    let plugins = PluginHost::new(
        HostConfig::default().with_artifact_cache(data.path().join("plugin-cache")),
    )
    .map_err(|source| AgentError::Plugin {
        name: "(host)".into(),
        source,
    })?;
    let mut attestors = Vec::new();
    for plugin in &config.plugins.workload_attestors {
        let mut spec = sigil_daemon::plugin_spec(plugin, &plugin.data_text);
        if plugin.name == "k8s" && plugin.source == PluginSource::Builtin {
            spec = spec.with_grants(Grants::default().with_kubelet(kubelet(plugin)?));
        }
        let loaded = plugins
            .load_workload_attestor(&config.trust_domain, &spec)
            .map_err(|source| AgentError::Plugin {
                name: plugin.name.clone(),
                source,
            })?;
        attestors.push(loaded);
    }
    Ok((plugins, attestors))
}

/// The built-in `k8s` attestor's kubelet access, from SPIRE's keys in its `plugin_data`.
fn kubelet(plugin: &PluginConfig) -> Result<sigil_plugins::KubeletAccess, AgentError> {
    let refuse = |reason: String| AgentError::Unsupported {
        key: "plugins.WorkloadAttestor.k8s.plugin_data",
        reason,
    };
    if let Some(file) = &plugin.data_file {
        // The agent reads the kubelet settings itself, from the inline block only.
        return Err(refuse(format!(
            "plugin_data_file {}: write the k8s attestor's settings in plugin_data",
            file.display()
        )));
    }
    let settings =
        k8s::kubelet_settings(&plugin.data, |name| std::env::var(name).ok()).map_err(refuse)?;
    for (key, why) in &settings.no_effect {
        tracing::warn!(key = %key, "WorkloadAttestor k8s: {key} has no effect in sigil: {why}");
    }
    let access = k8s::kubelet_access(&settings).map_err(refuse)?;
    // No agent-wide deadline bounds an attestation; this is how long one may wait for a
    // starting pod (it holds a plugin slot meanwhile).
    tracing::info!(
        url = %settings.url,
        verify = settings.ca_path.is_some(),
        max_poll_attempts = settings.max_poll_attempts,
        poll_retry_interval = ?settings.poll_retry_interval,
        max_wait = ?access.max_wait(),
        "WorkloadAttestor k8s: kubelet access"
    );
    Ok(access)
}

/// The node attestor; `join_token` gets the token (`-joinToken`, else `join_token`) as its
/// `plugin_data`.
pub(crate) fn node_attestor(
    plugins: &PluginHost,
    config: &AgentConfig,
    options: &RunOptions,
) -> Result<NodeAttestorAgent, AgentError> {
    let plugin = &config.plugins.node_attestor;
    let data = if plugin.name == "join_token" {
        let token = options
            .join_token
            .clone()
            .or_else(|| config.join_token.clone())
            .filter(|t| !t.is_empty())
            .ok_or(AgentError::Unsupported {
                key: "agent.join_token",
                reason: "NodeAttestor join_token needs a token: set join_token or pass -joinToken"
                    .into(),
            })?;
        if token
            .chars()
            .any(|c| c == '"' || c == '\\' || c.is_control())
        {
            return Err(AgentError::Unsupported {
                key: "agent.join_token",
                reason: "the token holds a quote, backslash or control character".into(),
            });
        }
        format!("join_token = \"{token}\"")
    } else {
        plugin.data_text.clone()
    };
    let spec = sigil_daemon::plugin_spec(plugin, &data);
    // SPIRE's agent reads the projected token from this path unless `token_path` says
    // otherwise; a `token_path` in plugin_data is granted like every built-in `*_path`.
    let spec = if plugin.name == "k8s_psat" && plugin.data.get("token_path").is_none() {
        spec.with_grants(Grants::default().with_file("token_path", K8S_PSAT_TOKEN_PATH))
    } else {
        spec
    };
    plugins
        .load_node_attestor_agent(&config.trust_domain, &spec)
        .map_err(|source| AgentError::Plugin {
            name: plugin.name.clone(),
            source,
        })
}
