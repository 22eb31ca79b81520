//! Bundle publishing: every configured `BundlePublisher` (and SPIRE's `Notifier
//! "k8sbundle"`, run as the `k8s_configmap` publisher) gets the trust domain's bundle each
//! time it changes, at every publish target the server granted it.
//!
//! Targets come from the configuration, never from the plugin: `file_path` is a file;
//! `k8s_configmap`'s `clusters` are ConfigMap keys reached with each cluster's
//! `kubeconfig_path` or the in-cluster service account.
//!
//! The bundle is read from the datastore every [`POLL`], so a change made by any server
//! sharing the database is published. A target that fails is retried with a doubling
//! delay (up to [`MAX_BACKOFF`]), independently of the others; the last bundle written stays
//! in place meanwhile.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sigil_config::{DataEntry, DataValue, PluginConfig, ServerConfig};
use sigil_plugins::{
    BundlePublisher, ConfigMapTarget, KubernetesAccess, PluginHost, PluginSpec, PublishTarget,
};
use sigil_store::DataStore;
use sigil_types::{Bundle, TrustDomain};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::ServerError;

/// How often the bundle is read to see whether it changed.
pub(crate) const POLL: Duration = Duration::from_secs(1);
/// The longest wait before a failed target is tried again.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A map's members, in file order.
type Settings = Vec<(String, DataValue)>;

/// One publisher and the targets granted to it.
#[derive(Debug, Clone)]
pub(crate) struct Publisher {
    plugin: BundlePublisher,
    targets: Vec<PublishTarget>,
}

/// Load every configured publisher and notifier with its targets.
pub(crate) fn load(
    config: &ServerConfig,
    host: &PluginHost,
) -> Result<Vec<Publisher>, ServerError> {
    let mut loaded = Vec::new();
    for plugin in &config.plugins.bundle_publishers {
        let timeout = sigil_plugins::Limits::default().io_timeout;
        let targets = if plugin.name == "k8s_configmap" {
            configmap_targets(plugin, &clusters(plugin)?, "kubeconfig_path", timeout)?
        } else {
            file_target(plugin)?
        };
        let spec = sigil_daemon::plugin_spec(plugin, &plugin.data_text);
        loaded.push(Publisher {
            plugin: host.load_bundle_publisher(&config.trust_domain, &spec)?,
            targets,
        });
    }
    for notifier in &config.plugins.notifiers {
        loaded.push(k8sbundle(config, host, notifier)?);
    }
    Ok(loaded)
}

/// `file_path`: the one file a publisher writes.
fn file_target(plugin: &PluginConfig) -> Result<Vec<PublishTarget>, ServerError> {
    match plugin.data.get("file_path") {
        Some(DataValue::String(path)) if !path.is_empty() => {
            Ok(vec![PublishTarget::File(PathBuf::from(path))])
        }
        _ => Err(refused(
            plugin,
            "file_path is required: the file the bundle is published to",
        )),
    }
}

/// The `clusters` map of a publisher's data, as (id, settings).
fn clusters(plugin: &PluginConfig) -> Result<Vec<(String, Settings)>, ServerError> {
    let members = match plugin.data.get("clusters") {
        None => return Ok(Vec::new()),
        Some(DataValue::Object(members)) => members.clone(),
        Some(DataValue::Block(entries)) => pairs(entries),
        Some(_) => return Err(refused(plugin, "clusters must be a map of cluster names")),
    };
    members
        .into_iter()
        .map(|(id, value)| match value {
            DataValue::Object(settings) => Ok((id, settings)),
            DataValue::Block(entries) => Ok((id, pairs(&entries))),
            _ => Err(refused(
                plugin,
                &format!("cluster {id:?}: its settings must be a map"),
            )),
        })
        .collect()
}

fn pairs(entries: &[DataEntry]) -> Settings {
    entries
        .iter()
        .map(|e| (e.key.clone(), e.value.clone()))
        .collect()
}

/// One ConfigMap target per cluster; the cluster's kubeconfig is under `kubeconfig_key`.
fn configmap_targets(
    plugin: &PluginConfig,
    clusters: &[(String, Settings)],
    kubeconfig_key: &str,
    timeout: Duration,
) -> Result<Vec<PublishTarget>, ServerError> {
    let mut targets = Vec::new();
    for (id, settings) in clusters {
        let text = |key: &str| -> Option<String> {
            settings
                .iter()
                .find(|(k, _)| k == key)
                .and_then(|(_, v)| match v {
                    DataValue::String(s) if !s.is_empty() => Some(s.clone()),
                    _ => None,
                })
        };
        let required = |key: &str| {
            text(key).ok_or_else(|| refused(plugin, &format!("cluster {id:?}: {key} is required")))
        };
        let access = match text(kubeconfig_key) {
            Some(path) => KubernetesAccess::from_kubeconfig(std::path::Path::new(&path), timeout),
            None => KubernetesAccess::in_cluster(timeout).map_err(|e| {
                format!("{e} (set {kubeconfig_key} when the server runs outside the cluster)")
            }),
        }
        .map_err(|why| refused(plugin, &format!("cluster {id:?}: {why}")))?;
        targets.push(PublishTarget::ConfigMap(ConfigMapTarget {
            id: id.clone(),
            access,
            namespace: required("namespace")?,
            name: required("configmap_name")?,
            key: required("configmap_key")?,
        }));
    }
    Ok(targets)
}

/// SPIRE's `Notifier "k8sbundle"` (namespace `spire`, ConfigMap `spire-bundle`, key
/// `bundle.crt` by default, `kube_config_file_path`, and more `clusters` of the same
/// shape), run as the `k8s_configmap` publisher writing PEM to each.
fn k8sbundle(
    config: &ServerConfig,
    host: &PluginHost,
    notifier: &PluginConfig,
) -> Result<Publisher, ServerError> {
    const KNOWN: &[&str] = &[
        "namespace",
        "config_map",
        "config_map_key",
        "kube_config_file_path",
        "api_service_label",
        "webhook_label",
        "clusters",
    ];
    let root = pairs(&notifier.data.entries);
    let mut sections = vec![root.clone()];
    if let Some((_, value)) = root.iter().find(|(k, _)| k == "clusters") {
        let DataValue::List(items) = value else {
            return Err(refused(
                notifier,
                "clusters must be a list of cluster settings",
            ));
        };
        for item in items {
            match item {
                DataValue::Object(settings) => sections.push(settings.clone()),
                DataValue::Block(entries) => sections.push(pairs(entries)),
                _ => {
                    return Err(refused(
                        notifier,
                        "each of clusters must be a map of settings",
                    ));
                }
            }
        }
    }
    let mut clusters = Vec::new();
    for (index, section) in sections.iter().enumerate() {
        for (key, value) in section {
            if !KNOWN.contains(&key.as_str()) || (index > 0 && key == "clusters") {
                return Err(refused(notifier, &format!("unknown key {key:?}")));
            }
            if matches!(key.as_str(), "api_service_label" | "webhook_label")
                && matches!(value, DataValue::String(s) if !s.is_empty())
            {
                tracing::warn!(
                    key = %key,
                    "Notifier \"k8sbundle\": {key} has no effect in sigil: it does not \
                     rotate CA bundles in webhooks or API services (SPIRE's k8s_configmap \
                     BundlePublisher does not either)"
                );
            }
        }
        let text = |key: &str, default: &str| -> String {
            section
                .iter()
                .find(|(k, _)| k == key)
                .and_then(|(_, v)| match v {
                    DataValue::String(s) if !s.is_empty() => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| default.to_owned())
        };
        let id = if index == 0 {
            "k8sbundle".to_owned()
        } else {
            format!("k8sbundle-{index}")
        };
        let mut settings = vec![
            (
                "namespace".to_owned(),
                DataValue::String(text("namespace", "spire")),
            ),
            (
                "configmap_name".to_owned(),
                DataValue::String(text("config_map", "spire-bundle")),
            ),
            (
                "configmap_key".to_owned(),
                DataValue::String(text("config_map_key", "bundle.crt")),
            ),
            ("format".to_owned(), DataValue::String("pem".to_owned())),
        ];
        let kubeconfig = text("kube_config_file_path", "");
        if !kubeconfig.is_empty() {
            settings.push(("kubeconfig_path".to_owned(), DataValue::String(kubeconfig)));
        }
        clusters.push((id, settings));
    }
    let targets = configmap_targets(
        notifier,
        &clusters,
        "kubeconfig_path",
        sigil_plugins::Limits::default().io_timeout,
    )?;
    let data = sigil_config::PluginData {
        entries: vec![DataEntry {
            key: "clusters".to_owned(),
            labels: Vec::new(),
            value: DataValue::Object(
                clusters
                    .into_iter()
                    .map(|(id, settings)| (id, DataValue::Object(settings)))
                    .collect(),
            ),
        }],
    };
    let spec = PluginSpec::builtin("k8s_configmap", &data.to_hcl());
    Ok(Publisher {
        plugin: host.load_bundle_publisher(&config.trust_domain, &spec)?,
        targets,
    })
}

fn refused(plugin: &PluginConfig, why: &str) -> ServerError {
    ServerError::Unsupported(format!(
        "{} \"{}\" (line {}): {why}",
        plugin.kind, plugin.name, plugin.line
    ))
}

/// Where one target stands.
#[derive(Debug)]
struct TargetState {
    publisher: usize,
    target: usize,
    /// The bundle last written here.
    published: Option<Bundle>,
    failures: u32,
    next_attempt: Instant,
}

/// Publish `trust_domain`'s bundle to every target whenever it changes, until `stop`.
pub(crate) async fn run(
    publishers: Vec<Publisher>,
    store: Arc<dyn DataStore>,
    trust_domain: TrustDomain,
    mut stop: watch::Receiver<bool>,
) {
    let publishers = Arc::new(publishers);
    let mut states: Vec<TargetState> = publishers
        .iter()
        .enumerate()
        .flat_map(|(p, publisher)| {
            (0..publisher.targets.len()).map(move |t| TargetState {
                publisher: p,
                target: t,
                published: None,
                failures: 0,
                next_attempt: Instant::now(),
            })
        })
        .collect();
    if states.is_empty() {
        return;
    }
    loop {
        match store.fetch_bundle(&trust_domain).await {
            Ok(Some(bundle)) => {
                for state in &mut states {
                    if state.published.as_ref() == Some(&bundle)
                        || Instant::now() < state.next_attempt
                    {
                        continue;
                    }
                    publish_one(&publishers, state, &bundle).await;
                }
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "cannot read the bundle to publish it"),
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

async fn publish_one(publishers: &Arc<Vec<Publisher>>, state: &mut TargetState, bundle: &Bundle) {
    let (p, t) = (state.publisher, state.target);
    let (all, owned) = (publishers.clone(), bundle.clone());
    // Plugin calls are synchronous (wasmtime): off the async workers.
    let result = tokio::task::spawn_blocking(move || {
        let publisher = &all[p];
        publisher.plugin.publish(&owned, &publisher.targets[t])
    })
    .await;
    let publisher = &publishers[p];
    let target = publisher.targets[t].describe();
    match result {
        Ok(Ok(())) => {
            tracing::info!(
                publisher = publisher.plugin.name(),
                target = %target,
                sequence = bundle.sequence_number,
                "bundle published"
            );
            state.published = Some(bundle.clone());
            state.failures = 0;
        }
        Ok(Err(error)) => {
            state.failures = state.failures.saturating_add(1);
            let delay = backoff(state.failures);
            tracing::warn!(
                publisher = publisher.plugin.name(),
                target = %target,
                %error,
                retry_in_ms = delay.as_millis(),
                "cannot publish the bundle"
            );
            state.next_attempt = Instant::now() + delay;
        }
        Err(join) => {
            tracing::error!(%join, "the bundle publisher's task failed");
            state.failures = state.failures.saturating_add(1);
            state.next_attempt = Instant::now() + backoff(state.failures);
        }
    }
}

/// 1 s, 2 s, 4 s … up to [`MAX_BACKOFF`].
fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    Duration::from_secs(1u64 << exponent).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        let delays: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }
}
