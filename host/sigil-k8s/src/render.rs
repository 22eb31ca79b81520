//! [`Templates`] on the built-in `k8s_template` renderer plugin: one loaded renderer per
//! distinct template, kept in a bounded cache.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use sigil_plugins::{HostConfig, IdRenderer, PluginHost, PluginSpec};
use sigil_types::{SpiffeId, TrustDomain};

use crate::core::{TemplateData, Templates};

/// Most templates kept loaded; a cluster has a handful (one per ClusterSPIFFEID plus the
/// parent ID), so hitting this means churn, and the cache simply starts over.
const MAX_RENDERERS: usize = 256;

/// Renders through the `k8s_template` plugin.
pub struct PluginTemplates {
    host: PluginHost,
    renderers: Mutex<HashMap<(String, String), IdRenderer>>,
}

impl std::fmt::Debug for PluginTemplates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginTemplates").finish_non_exhaustive()
    }
}

impl PluginTemplates {
    /// A plugin host with default limits.
    pub fn new() -> Result<Self, String> {
        let host =
            PluginHost::new(HostConfig::default()).map_err(|e| format!("plugin host: {e}"))?;
        Ok(PluginTemplates {
            host,
            renderers: Mutex::new(HashMap::new()),
        })
    }

    fn renderer(&self, trust_domain: &TrustDomain, template: &str) -> Result<IdRenderer, String> {
        let key = (trust_domain.name().to_owned(), template.to_owned());
        let mut renderers = self
            .renderers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(renderer) = renderers.get(&key) {
            return Ok(renderer.clone());
        }
        let data = format!("template = \"{}\"", escape(template));
        let renderer = self
            .host
            .load_id_renderer(trust_domain, &PluginSpec::builtin("k8s_template", &data))
            .map_err(|e| format!("template {template:?}: {e}"))?;
        if renderers.len() >= MAX_RENDERERS {
            renderers.clear();
        }
        renderers.insert(key, renderer.clone());
        Ok(renderer)
    }
}

impl Templates for PluginTemplates {
    fn spiffe_id(&self, template: &str, data: &TemplateData) -> Result<SpiffeId, String> {
        self.renderer(&data.trust_domain, template)?
            .render(&data.input)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("template {template:?} renders no SPIFFE ID for this pod"))
    }

    /// Only literal text: the plugin renders SPIFFE IDs, and DNS names or selectors are
    /// not SPIFFE IDs. A template with actions is refused, by name.
    fn text(&self, template: &str, _data: &TemplateData) -> Result<String, String> {
        if template.contains("{{") {
            return Err(format!(
                "template {template:?}: template actions in dnsNameTemplates and \
                 workloadSelectorTemplates are not supported yet (literal text is)"
            ));
        }
        Ok(template.to_owned())
    }
}

/// An HCL double-quoted string body: `\` and `"` escaped.
fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}
