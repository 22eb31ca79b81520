//! The `k8s_template` SPIFFE-ID renderer: spire-controller-manager's ClusterSPIFFEID
//! template language, the subset its templates use.
//!
//! `plugin_data` is one HCL attribute, `template = "…"` (`\"` and `\\` escapes), for example
//! `template = "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}"`.
//!
//! Actions (`{{ … }}`) are field accesses: `.TrustDomain`, `.ClusterName`, `.ClusterDomain`,
//! `.PodMeta.{Name,Namespace,UID}`, `.PodSpec.{ServiceAccountName,NodeName,Hostname,Subdomain}`,
//! `.NodeMeta.{Name,UID}`, `.NodeSpec.{PodCIDR,ProviderID}`, and label or annotation
//! lookups, `index .PodMeta.Labels "app"` (Go's form) or `.PodMeta.Labels "app"`, on
//! `PodMeta` and `NodeMeta`. The template is parsed in `configure`, so an unknown field
//! fails at load with its name. A lookup of a missing label or annotation fails the render
//! (Go would render an empty string and so an invalid SPIFFE ID); an empty result renders
//! no ID.

use sigil_pdk::{IdRenderer, PluginError, RenderError, RenderInput};

mod template;

use template::Template;

/// The plugin: the parsed template and the trust domain.
#[derive(Debug)]
pub struct K8sTemplate {
    template: Template,
    trust_domain: String,
}

impl IdRenderer for K8sTemplate {
    fn configure(trust_domain: &str, config: &str) -> Result<Self, PluginError> {
        let text = template_attribute(config).map_err(PluginError::InvalidArgument)?;
        let template = Template::parse(&text).map_err(PluginError::InvalidArgument)?;
        Ok(K8sTemplate {
            template,
            trust_domain: trust_domain.to_owned(),
        })
    }

    fn render(&self, input: &RenderInput) -> Result<Option<String>, RenderError> {
        let rendered = self
            .template
            .render(&self.trust_domain, input)
            .map_err(RenderError::Input)?;
        Ok((!rendered.is_empty()).then_some(rendered))
    }
}

sigil_pdk::export_id_renderer!(K8sTemplate);

/// The value of `template = "…"`; any other attribute is an error.
fn template_attribute(config: &str) -> Result<String, String> {
    let mut template = None;
    for line in config.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with("//") {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or("plugin_data: expected `template = \"…\"`")?;
        if key.trim() != "template" {
            return Err(format!("plugin_data: unknown key {:?}", key.trim()));
        }
        template = Some(unquote(value.trim())?);
    }
    template.ok_or_else(|| "plugin_data: `template` is required".to_owned())
}

/// An HCL double-quoted string with `\"` and `\\` escapes.
fn unquote(value: &str) -> Result<String, String> {
    let inner = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .ok_or("plugin_data: template must be a double-quoted string")?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(escaped @ ('"' | '\\')) => out.push(escaped),
                Some(other) => return Err(format!("plugin_data: unsupported escape \\{other}")),
                None => return Err("plugin_data: template ends with a lone backslash".into()),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}
