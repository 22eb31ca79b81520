//! The built-in `k8s_configmap` bundle publisher (SPIRE's `BundlePublisher
//! "k8s_configmap"`): the trust bundle in a key of a Kubernetes ConfigMap, in each
//! configured cluster, in the format each cluster asks for.
//!
//! `plugin_data`, SPIRE's keys:
//!
//! ```hcl
//! clusters = {
//!     "<id>" = {
//!         configmap_name = "spire-bundle"    # required
//!         configmap_key = "bundle.crt"       # required
//!         namespace = "spire"                # required
//!         kubeconfig_path = "…"              # read by the host; in-cluster when unset
//!         format = "pem"                     # required: spiffe | jwks | pem
//!         refresh_hint = "5m"                # spiffe format only
//!     }
//! }
//! ```
//!
//! The ConfigMaps are the publish targets the server grants (one per cluster, its `id` the
//! cluster's key): the plugin formats, the host applies. Formats as SPIRE writes them:
//! `spiffe` the SPIFFE bundle document (X.509 and JWT authorities, `spiffe_sequence`,
//! `spiffe_refresh_hint`); `jwks` the same keys as a plain JWK set (no `use`, no SPIFFE
//! members); `pem` the X.509 authorities only.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use sigil_pdk::{Bundle, BundlePublisher, PluginError, Target};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    clusters: BTreeMap<String, Cluster>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cluster {
    #[serde(default)]
    configmap_name: String,
    #[serde(default)]
    configmap_key: String,
    #[serde(default)]
    namespace: String,
    /// The host builds the cluster's access from it.
    #[serde(default)]
    #[expect(dead_code, reason = "the host builds the cluster's access from it")]
    kubeconfig_path: String,
    #[serde(default)]
    format: String,
    #[serde(default)]
    refresh_hint: Option<String>,
}

/// How one cluster's bundle is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Spiffe { refresh_hint: Option<u64> },
    Jwks,
    Pem,
}

/// The plugin: each cluster's format, by id.
#[derive(Debug)]
struct K8sConfigMap {
    formats: BTreeMap<String, Format>,
}

impl BundlePublisher for K8sConfigMap {
    fn configure(_trust_domain: &str, config: &str) -> Result<Self, PluginError> {
        let config: Config =
            sigil_pdk::config::from_hcl(config).map_err(PluginError::InvalidArgument)?;
        if config.clusters.is_empty() {
            sigil_pdk::log::warn("no clusters configured: the bundle is not published");
        }
        let mut formats = BTreeMap::new();
        for (id, cluster) in config.clusters {
            let invalid =
                |what: &str| PluginError::InvalidArgument(format!("cluster {id:?}: {what}"));
            for (key, value) in [
                ("configmap_name", &cluster.configmap_name),
                ("configmap_key", &cluster.configmap_key),
                ("namespace", &cluster.namespace),
                ("format", &cluster.format),
            ] {
                if value.is_empty() {
                    return Err(invalid(&format!("{key} is required")));
                }
            }
            let refresh_hint = cluster
                .refresh_hint
                .as_deref()
                .map(|text| {
                    go_duration_seconds(text).map_err(|e| invalid(&format!("refresh_hint: {e}")))
                })
                .transpose()?;
            let format = match cluster.format.as_str() {
                "spiffe" => Format::Spiffe { refresh_hint },
                "jwks" | "pem" if refresh_hint.is_some() => {
                    return Err(invalid("refresh_hint applies to the spiffe format only"));
                }
                "jwks" => Format::Jwks,
                "pem" => Format::Pem,
                other => {
                    return Err(invalid(&format!(
                        "format {other:?} is not one of spiffe, jwks, pem"
                    )));
                }
            };
            formats.insert(id, format);
        }
        Ok(K8sConfigMap { formats })
    }

    fn publish(&self, bundle: &Bundle, target: &Target) -> Result<(), PluginError> {
        let id = target.id();
        let format = self.formats.get(&id).ok_or_else(|| {
            PluginError::InvalidArgument(format!("no cluster {id:?} is configured"))
        })?;
        let contents = render(bundle, *format)?;
        target.write(contents.as_bytes())?;
        sigil_pdk::log::info(&format!(
            "published bundle {} of {} to {}",
            bundle.sequence_number,
            bundle.trust_domain,
            target.describe()
        ));
        Ok(())
    }
}

/// The bundle in `format`.
fn render(bundle: &Bundle, format: Format) -> Result<String, PluginError> {
    let document = || -> Result<Value, PluginError> {
        serde_json::from_str(&bundle.spiffe_bundle_json).map_err(|e| {
            PluginError::Internal(format!("the host's bundle document is not JSON: {e}"))
        })
    };
    let text = |value: &Value| {
        serde_json::to_string_pretty(value)
            .map_err(|e| PluginError::Internal(format!("cannot encode the bundle: {e}")))
    };
    match format {
        Format::Pem => Ok(bundle.x509_authorities_pem.clone()),
        Format::Spiffe { refresh_hint: None } => Ok(bundle.spiffe_bundle_json.clone()),
        Format::Spiffe {
            refresh_hint: Some(seconds),
        } => {
            let mut document = document()?;
            document["spiffe_refresh_hint"] = Value::from(seconds);
            text(&document)
        }
        Format::Jwks => {
            let mut document = document()?;
            if let Some(members) = document.as_object_mut() {
                members.retain(|name, _| !name.starts_with("spiffe_"));
            }
            if let Some(keys) = document["keys"].as_array_mut() {
                for key in keys.iter_mut().filter_map(Value::as_object_mut) {
                    key.remove("use");
                }
            }
            text(&document)
        }
    }
}

/// Whole seconds of a Go duration (`"1h30m"`, `"90s"`, `"5m"`); SPIRE parses these keys
/// with `time.ParseDuration`.
fn go_duration_seconds(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a duration such as \"5m\" or \"1h30m\"");
    let mut seconds = 0u64;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600,
            "m" => 60,
            "s" => 1,
            _ => return Err(bad()),
        };
        seconds = number
            .checked_mul(scale)
            .and_then(|n| seconds.checked_add(n))
            .ok_or_else(bad)?;
        rest = &rest[unit_len..];
    }
    Ok(seconds)
}

sigil_pdk::export_bundle_publisher!(K8sConfigMap);

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle() -> Bundle {
        Bundle {
            trust_domain: "example.org".into(),
            sequence_number: 7,
            refresh_hint: 0,
            x509_authorities: Vec::new(),
            x509_authorities_pem: "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n".into(),
            spiffe_bundle_json: r#"{"keys":[{"use":"x509-svid","kty":"EC","x5c":["AA=="]},{"use":"jwt-svid","kid":"k1","kty":"EC"}],"spiffe_sequence":7,"spiffe_refresh_hint":300}"#.into(),
        }
    }

    #[test]
    fn formats_are_spires() {
        assert!(
            render(&bundle(), Format::Pem)
                .expect("pem")
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        let jwks: Value =
            serde_json::from_str(&render(&bundle(), Format::Jwks).expect("jwks")).expect("JSON");
        assert!(
            jwks.get("spiffe_sequence").is_none() && jwks.get("spiffe_refresh_hint").is_none(),
            "{jwks}"
        );
        assert!(
            jwks["keys"]
                .as_array()
                .expect("keys")
                .iter()
                .all(|k| k.get("use").is_none()),
            "{jwks}"
        );
        assert_eq!(jwks["keys"][1]["kid"], "k1");
        let spiffe: Value = serde_json::from_str(
            &render(
                &bundle(),
                Format::Spiffe {
                    refresh_hint: Some(600),
                },
            )
            .expect("spiffe"),
        )
        .expect("JSON");
        assert_eq!(spiffe["spiffe_refresh_hint"], 600);
        assert_eq!(spiffe["spiffe_sequence"], 7);
        assert_eq!(spiffe["keys"][0]["use"], "x509-svid");
    }

    #[test]
    fn configuration_is_checked() {
        let plugin = K8sConfigMap::configure(
            "example.org",
            "clusters = {\n  a = {\n    configmap_name = \"spire-bundle\"\n    configmap_key = \"bundle.spiffe\"\n    namespace = \"spire\"\n    format = \"spiffe\"\n    refresh_hint = \"1h30m\"\n  }\n}\n",
        )
        .expect("configured");
        assert_eq!(
            plugin.formats["a"],
            Format::Spiffe {
                refresh_hint: Some(5400)
            }
        );
        for (text, expected) in [
            (
                "clusters = { a = { configmap_key = \"k\", namespace = \"n\", format = \"pem\" } }",
                "configmap_name is required",
            ),
            (
                "clusters = { a = { configmap_name = \"c\", configmap_key = \"k\", namespace = \"n\", format = \"der\" } }",
                "format \"der\" is not one of",
            ),
            (
                "clusters = { a = { configmap_name = \"c\", configmap_key = \"k\", namespace = \"n\", format = \"pem\", refresh_hint = \"5m\" } }",
                "spiffe format only",
            ),
            (
                "clusters = { a = { configmap_name = \"c\", configmap_key = \"k\", namespace = \"n\", format = \"spiffe\", refresh_hint = \"5 minutes\" } }",
                "is not a duration",
            ),
            (
                "clusters = { a = { configmap_name = \"c\", configmap_key = \"k\", namespace = \"n\", format = \"pem\", webhook_label = \"x\" } }",
                "webhook_label",
            ),
        ] {
            let PluginError::InvalidArgument(message) =
                K8sConfigMap::configure("example.org", text).expect_err(expected)
            else {
                panic!("{expected}: not InvalidArgument");
            };
            assert!(message.contains(expected), "{expected}: {message}");
        }
    }
}
