//! Parsing and rendering of ClusterSPIFFEID templates (see the crate documentation).

use sigil_pdk::{ObjectMeta, RenderInput};

/// A parsed template: literal text and field references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template(Vec<Part>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(Field),
}

/// Every field a template may name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    TrustDomain,
    ClusterName,
    ClusterDomain,
    PodName,
    PodNamespace,
    PodUid,
    ServiceAccountName,
    NodeName,
    Hostname,
    Subdomain,
    NodeMetaName,
    NodeMetaUid,
    PodCidr,
    ProviderId,
    PodLabel(String),
    PodAnnotation(String),
    NodeLabel(String),
    NodeAnnotation(String),
}

impl Template {
    /// Parse `text`; errors name the action that is wrong.
    pub(crate) fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            let (literal, after) = rest.split_at(start);
            if !literal.is_empty() {
                parts.push(Part::Text(literal.to_owned()));
            }
            let after = after.get(2..).unwrap_or_default();
            let end = after
                .find("}}")
                .ok_or("template: `{{` without a closing `}}`")?;
            let (action, tail) = after.split_at(end);
            parts.push(Part::Field(parse_action(action.trim())?));
            rest = tail.get(2..).unwrap_or_default();
        }
        if rest.contains("}}") {
            return Err("template: `}}` without an opening `{{`".into());
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template(parts))
    }

    /// Render for `input`; a missing label or annotation is an error naming it.
    pub(crate) fn render(&self, trust_domain: &str, input: &RenderInput) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Field(field) => out.push_str(&value(field, trust_domain, input)?),
            }
        }
        Ok(out)
    }
}

fn parse_action(action: &str) -> Result<Field, String> {
    let unknown = || format!("template: unknown field in {{{{ {action} }}}}");
    // `index .PodMeta.Labels "key"` or `.PodMeta.Labels "key"`.
    let lookup = action
        .strip_prefix("index ")
        .map(str::trim_start)
        .unwrap_or(action);
    if let Some((path, key)) = lookup.split_once(char::is_whitespace) {
        let key = key
            .trim()
            .strip_prefix('"')
            .and_then(|k| k.strip_suffix('"'))
            .ok_or_else(|| {
                format!("template: the key in {{{{ {action} }}}} must be a quoted string")
            })?
            .to_owned();
        return match path {
            ".PodMeta.Labels" => Ok(Field::PodLabel(key)),
            ".PodMeta.Annotations" => Ok(Field::PodAnnotation(key)),
            ".NodeMeta.Labels" => Ok(Field::NodeLabel(key)),
            ".NodeMeta.Annotations" => Ok(Field::NodeAnnotation(key)),
            _ => Err(unknown()),
        };
    }
    Ok(match action {
        ".TrustDomain" => Field::TrustDomain,
        ".ClusterName" => Field::ClusterName,
        ".ClusterDomain" => Field::ClusterDomain,
        ".PodMeta.Name" => Field::PodName,
        ".PodMeta.Namespace" => Field::PodNamespace,
        ".PodMeta.UID" => Field::PodUid,
        ".PodSpec.ServiceAccountName" => Field::ServiceAccountName,
        ".PodSpec.NodeName" => Field::NodeName,
        ".PodSpec.Hostname" => Field::Hostname,
        ".PodSpec.Subdomain" => Field::Subdomain,
        ".NodeMeta.Name" => Field::NodeMetaName,
        ".NodeMeta.UID" => Field::NodeMetaUid,
        ".NodeSpec.PodCIDR" => Field::PodCidr,
        ".NodeSpec.ProviderID" => Field::ProviderId,
        _ => return Err(unknown()),
    })
}

fn value(field: &Field, trust_domain: &str, input: &RenderInput) -> Result<String, String> {
    let found = |s: &str| Ok(s.to_owned());
    match field {
        Field::TrustDomain => found(trust_domain),
        Field::ClusterName => found(&input.cluster_name),
        Field::ClusterDomain => found(&input.cluster_domain),
        Field::PodName => found(&input.pod_meta.name),
        Field::PodNamespace => found(&input.pod_meta.namespace),
        Field::PodUid => found(&input.pod_meta.uid),
        Field::ServiceAccountName => found(&input.pod_spec.service_account_name),
        Field::NodeName => found(&input.pod_spec.node_name),
        Field::Hostname => found(&input.pod_spec.hostname),
        Field::Subdomain => found(&input.pod_spec.subdomain),
        Field::NodeMetaName => found(&input.node_meta.name),
        Field::NodeMetaUid => found(&input.node_meta.uid),
        Field::PodCidr => found(&input.node_spec.pod_cidr),
        Field::ProviderId => found(&input.node_spec.provider_id),
        Field::PodLabel(key) => lookup(&input.pod_meta, "pod label", &input.pod_meta.labels, key),
        Field::PodAnnotation(key) => lookup(
            &input.pod_meta,
            "pod annotation",
            &input.pod_meta.annotations,
            key,
        ),
        Field::NodeLabel(key) => {
            lookup(&input.node_meta, "node label", &input.node_meta.labels, key)
        }
        Field::NodeAnnotation(key) => lookup(
            &input.node_meta,
            "node annotation",
            &input.node_meta.annotations,
            key,
        ),
    }
}

fn lookup(
    meta: &ObjectMeta,
    what: &str,
    pairs: &[(String, String)],
    key: &str,
) -> Result<String, String> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .ok_or_else(|| format!("{what} {key:?} is missing on {}", meta.name))
}

#[cfg(test)]
mod tests {
    use super::{Field, Part, Template};

    #[test]
    fn istio_template_parses() {
        let template = Template::parse(
            "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}",
        );
        assert_eq!(
            template.map(|t| t.0.len()),
            Ok(6),
            "three literals and three fields"
        );
    }

    #[test]
    fn label_lookups_parse_in_both_forms() {
        let go = Template::parse("{{ index .PodMeta.Labels \"app\" }}");
        let short = Template::parse("{{ .PodMeta.Labels \"app\" }}");
        let expected = Template(vec![Part::Field(Field::PodLabel("app".into()))]);
        assert_eq!(go, Ok(expected.clone()));
        assert_eq!(short, Ok(expected));
    }

    #[test]
    fn unknown_fields_and_unclosed_actions_are_errors() {
        assert!(
            Template::parse("{{ .PodMeta.Nmespace }}")
                .is_err_and(|e| e.contains(".PodMeta.Nmespace"))
        );
        assert!(
            Template::parse("{{ .Spec.Labels \"a\" }}").is_err_and(|e| e.contains("unknown field"))
        );
        assert!(Template::parse("spiffe://{{ .TrustDomain").is_err_and(|e| e.contains("closing")));
        assert!(Template::parse("{{ .PodMeta.Labels app }}").is_err_and(|e| e.contains("quoted")));
    }
}
