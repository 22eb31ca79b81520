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

    /// The plugin renders SPIFFE IDs only, so each action is rendered on its own as the
    /// last path segment of a SPIFFE ID and taken back out: values that are valid in a
    /// SPIFFE ID path (Kubernetes names, label values, DNS labels) render; others fail,
    /// named. Text between actions is kept as written.
    fn text(&self, template: &str, data: &TemplateData) -> Result<String, String> {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let end = rest[start..]
                .find("}}")
                .map(|at| start + at + 2)
                .ok_or_else(|| format!("template {template:?}: an action is not closed"))?;
            let action = &rest[start..end];
            let carrier = format!("spiffe://{}/{VALUE_MARK}{action}", data.trust_domain.name());
            let id = self.spiffe_id(&carrier, data).map_err(|e| {
                format!(
                    "template {template:?}: {action} renders no value usable here (only values \
                     valid in a SPIFFE ID path are supported in DNS name and selector \
                     templates): {e}"
                )
            })?;
            let value = id
                .path()
                .strip_prefix('/')
                .and_then(|p| p.strip_prefix(VALUE_MARK))
                .ok_or_else(|| format!("template {template:?}: {action} rendered {id}"))?;
            out.push_str(value);
            rest = &rest[end..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// Leads the rendered value in its carrier SPIFFE ID, so an empty value still leaves a
/// valid path.
const VALUE_MARK: &str = "v";

/// An HCL double-quoted string body: `\` and `"` escaped.
fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}
