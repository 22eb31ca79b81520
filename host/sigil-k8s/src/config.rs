//! spire-controller-manager's configuration file (`ControllerManagerConfig`, YAML), read
//! with its key names and the defaults its `main` applies.

use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("could not read file at {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The YAML does not decode into a `ControllerManagerConfig`.
    #[error("could not decode the configuration: {0}")]
    Decode(String),
    /// A value is wrong.
    #[error("{0}")]
    Invalid(String),
}

const DEFAULT_SOCKET: &str = "/spire-server/api.sock";
const DEFAULT_GC_INTERVAL: Duration = Duration::from_secs(10);

/// The file as written (the keys sigil uses; others are accepted and ignored, as upstream's
/// non-strict decoder does).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfig {
    #[serde(default)]
    cluster_name: String,
    #[serde(default)]
    cluster_domain: String,
    #[serde(default)]
    trust_domain: String,
    ignore_namespaces: Option<Vec<String>>,
    gc_interval: Option<GoDuration>,
    #[serde(default)]
    spire_server_socket_path: String,
    #[serde(default)]
    class_name: String,
    #[serde(default)]
    watch_classless: bool,
    #[serde(default, rename = "parentIDTemplate")]
    parent_id_template: String,
    reconcile: Option<RawReconcile>,
    #[serde(default, rename = "entryIDPrefix")]
    entry_id_prefix: String,
    #[serde(rename = "entryIDPrefixCleanup")]
    entry_id_prefix_cleanup: Option<String>,
    static_manifest_path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawReconcile {
    #[serde(default, rename = "clusterSPIFFEIDs")]
    cluster_spiffe_ids: bool,
    #[serde(default, rename = "clusterFederatedTrustDomains")]
    cluster_federated_trust_domains: bool,
    #[serde(default, rename = "clusterStaticEntries")]
    cluster_static_entries: bool,
}

/// Go's `time.Duration` in JSON is an integer of nanoseconds; a duration string (`10s`) is
/// accepted too.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum GoDuration {
    Nanos(i64),
    Text(String),
}

/// Which kinds are reconciled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileKinds {
    /// ClusterSPIFFEIDs.
    pub cluster_spiffe_ids: bool,
    /// ClusterFederatedTrustDomains.
    pub cluster_federated_trust_domains: bool,
    /// ClusterStaticEntries.
    pub cluster_static_entries: bool,
}

/// The configuration, defaults applied and values checked.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// The cluster's name (in the default parent ID).
    pub cluster_name: String,
    /// The cluster's DNS domain (`cluster.local`), for DNS names; may be empty.
    pub cluster_domain: String,
    /// The trust domain name.
    pub trust_domain: String,
    /// Namespaces whose pods get no entries (unanchored regular expressions, as Go's
    /// `MatchString`).
    pub ignore_namespaces: Vec<Regex>,
    /// How often to reconcile when nothing changed.
    pub gc_interval: Duration,
    /// The server's admin socket.
    pub spire_server_socket_path: PathBuf,
    /// The class handled; objects of another class are left alone.
    pub class_name: String,
    /// Objects without a class are handled too.
    pub watch_classless: bool,
    /// Template of the parent ID (none: the k8s_psat agent ID).
    pub parent_id_template: Option<String>,
    /// What is reconciled.
    pub reconcile: ReconcileKinds,
    /// Prefix of the IDs of entries created (with its `.`); empty: every entry is owned.
    pub entry_id_prefix: String,
    /// Entries with this prefix (with its `.`) are deleted; `Some("")`: every unprefixed one.
    pub entry_id_prefix_cleanup: Option<String>,
}

impl ControllerConfig {
    /// Read and check the file at `path`; with `expand_env`, `$VAR` and `${VAR}` are
    /// replaced by the environment first (upstream's `-expand-env`).
    pub fn load(path: &Path, expand_env: bool) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        if expand_env {
            Self::parse(&expand(&text, |name| std::env::var(name).ok()))
        } else {
            Self::parse(&text)
        }
    }

    /// Parse and check a configuration.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig =
            serde_saphyr::from_str(text).map_err(|e| ConfigError::Decode(e.to_string()))?;
        if raw.static_manifest_path.is_some() {
            return Err(ConfigError::Invalid(
                "staticManifestPath is not supported: sigil reads the objects from Kubernetes"
                    .into(),
            ));
        }
        let gc_interval = match raw.gc_interval {
            None => DEFAULT_GC_INTERVAL,
            Some(GoDuration::Nanos(n)) if n <= 0 => DEFAULT_GC_INTERVAL,
            Some(GoDuration::Nanos(n)) => Duration::from_nanos(n.unsigned_abs()),
            Some(GoDuration::Text(text)) => {
                let parsed: kube::core::Duration = text
                    .parse()
                    .map_err(|e| ConfigError::Invalid(format!("gcInterval {text:?}: {e}")))?;
                if parsed.is_negative() {
                    DEFAULT_GC_INTERVAL
                } else {
                    let parsed = Duration::from(parsed);
                    if parsed.is_zero() {
                        DEFAULT_GC_INTERVAL
                    } else {
                        parsed
                    }
                }
            }
        };
        let ignore_namespaces = raw
            .ignore_namespaces
            .unwrap_or_else(|| {
                ["kube-system", "kube-public", "spire-system"]
                    .map(str::to_owned)
                    .to_vec()
            })
            .iter()
            .map(|pattern| {
                Regex::new(pattern).map_err(|e| {
                    ConfigError::Invalid(format!(
                        "unable to compile ignore namespaces regex {pattern:?}: {e}"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if raw.trust_domain.is_empty() {
            return Err(ConfigError::Invalid("trustDomain is required".into()));
        }
        sigil_types::TrustDomain::new(&raw.trust_domain).map_err(|e| {
            ConfigError::Invalid(format!("trustDomain {:?}: {e}", raw.trust_domain))
        })?;
        let reconcile = match raw.reconcile {
            None => ReconcileKinds {
                cluster_spiffe_ids: true,
                cluster_federated_trust_domains: true,
                cluster_static_entries: true,
            },
            Some(r) => ReconcileKinds {
                cluster_spiffe_ids: r.cluster_spiffe_ids,
                cluster_federated_trust_domains: r.cluster_federated_trust_domains,
                cluster_static_entries: r.cluster_static_entries,
            },
        };
        let entry_id_prefix = add_dot_suffix(raw.entry_id_prefix);
        let entry_id_prefix_cleanup = raw.entry_id_prefix_cleanup.map(add_dot_suffix);
        if !entry_id_prefix.is_empty()
            && entry_id_prefix_cleanup.as_deref() == Some(entry_id_prefix.as_str())
        {
            return Err(ConfigError::Invalid(
                "if entryIDPrefixCleanup is specified, it can not be the same value as entryIDPrefix"
                    .into(),
            ));
        }
        let spire_server_socket_path = if raw.spire_server_socket_path.is_empty() {
            PathBuf::from(DEFAULT_SOCKET)
        } else {
            PathBuf::from(raw.spire_server_socket_path)
        };
        Ok(ControllerConfig {
            cluster_name: raw.cluster_name,
            cluster_domain: raw.cluster_domain,
            trust_domain: raw.trust_domain,
            ignore_namespaces,
            gc_interval,
            spire_server_socket_path,
            class_name: raw.class_name,
            watch_classless: raw.watch_classless,
            parent_id_template: (!raw.parent_id_template.is_empty())
                .then_some(raw.parent_id_template),
            reconcile,
            entry_id_prefix,
            entry_id_prefix_cleanup,
        })
    }

    /// Whether objects of `class` are this controller's: its class, or classless ones when
    /// `watchClassless` is set.
    pub fn handles_class(&self, class: &str) -> bool {
        (class.is_empty() && self.watch_classless) || class == self.class_name
    }
}

/// Go's `os.Expand`: `${name}`, `$name` (letters, digits, `_`) and the one-character shell
/// names (`$1`, `$*`, …) are replaced by `lookup` (unset: empty); `${}` is dropped; any
/// other `$` is kept.
pub fn expand(text: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, used) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                // Unterminated: Go drops the `{`; keep the text instead of losing it.
                None => {
                    out.push('$');
                    rest = after;
                    continue;
                }
            }
        } else if after.starts_with(|c: char| "*#$@!?-".contains(c) || c.is_ascii_digit()) {
            (&after[..1], 1)
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if end == 0 {
                out.push('$');
                rest = after;
                continue;
            }
            (&after[..end], end)
        };
        if !name.is_empty() {
            out.push_str(&lookup(name).unwrap_or_default());
        }
        rest = &after[used..];
    }
    out.push_str(rest);
    out
}

fn add_dot_suffix(value: String) -> String {
    if value.is_empty() || value.ends_with('.') {
        value
    } else {
        value + "."
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_defaults_apply() {
        let config = ControllerConfig::parse(
            "apiVersion: spire.spiffe.io/v1alpha1\nkind: ControllerManagerConfig\n\
             metrics:\n  bindAddress: 127.0.0.1:8082\nclusterName: demo\ntrustDomain: example.org\n",
        )
        .expect("parse");
        assert_eq!(config.cluster_name, "demo");
        assert_eq!(config.gc_interval, Duration::from_secs(10));
        assert_eq!(config.spire_server_socket_path, Path::new(DEFAULT_SOCKET));
        let ignored: Vec<&str> = config.ignore_namespaces.iter().map(Regex::as_str).collect();
        assert_eq!(ignored, ["kube-system", "kube-public", "spire-system"]);
        assert!(config.reconcile.cluster_spiffe_ids && config.reconcile.cluster_static_entries);
        assert_eq!(config.entry_id_prefix, "");
        assert_eq!(config.entry_id_prefix_cleanup, None);
        // Empty className and watchClassless unset: only classless objects (className "").
        assert!(config.handles_class(""));
        assert!(!config.handles_class("other"));
    }

    #[test]
    fn keys_are_read() {
        let config = ControllerConfig::parse(
            "trustDomain: example.org\nclusterName: c\nclusterDomain: cluster.local\n\
             ignoreNamespaces: [\"^istio-.*\"]\ngcInterval: 30000000000\n\
             spireServerSocketPath: /run/sigil/admin.sock\nclassName: mine\nwatchClassless: true\n\
             parentIDTemplate: \"spiffe://{{ .TrustDomain }}/node/{{ .NodeMeta.Name }}\"\n\
             reconcile:\n  clusterSPIFFEIDs: true\nentryIDPrefix: sigil\nentryIDPrefixCleanup: \"\"\n",
        )
        .expect("parse");
        assert_eq!(config.gc_interval, Duration::from_secs(30));
        assert_eq!(config.ignore_namespaces.len(), 1);
        assert!(config.handles_class("mine") && config.handles_class(""));
        assert!(!config.handles_class("theirs"));
        assert_eq!(
            config.parent_id_template.as_deref(),
            Some("spiffe://{{ .TrustDomain }}/node/{{ .NodeMeta.Name }}")
        );
        assert!(config.reconcile.cluster_spiffe_ids && !config.reconcile.cluster_static_entries);
        assert_eq!(config.entry_id_prefix, "sigil.");
        assert_eq!(config.entry_id_prefix_cleanup.as_deref(), Some(""));
    }

    #[test]
    fn environment_expansion_follows_go() {
        let env = |name: &str| match name {
            "TD" => Some("example.org".to_owned()),
            "CLUSTER_NAME" => Some("demo".to_owned()),
            "1" => Some("one".to_owned()),
            _ => None,
        };
        assert_eq!(
            expand("trustDomain: $TD\nclusterName: ${CLUSTER_NAME}-x\n", env),
            "trustDomain: example.org\nclusterName: demo-x\n"
        );
        assert_eq!(
            expand("a $UNSET b ${} c $1 d $ e ${open", env),
            "a  b  c one d $ e ${open"
        );
        let config = ControllerConfig::parse(&expand(
            "trustDomain: ${TD}\nclusterName: $CLUSTER_NAME\n",
            env,
        ))
        .expect("parse");
        assert_eq!(
            (config.trust_domain.as_str(), config.cluster_name.as_str()),
            ("example.org", "demo")
        );
    }

    #[test]
    fn bad_values_are_named() {
        let err = ControllerConfig::parse("trustDomain: td\nignoreNamespaces: [\"(\"]\n")
            .expect_err("bad regex");
        assert!(err.to_string().contains("ignore namespaces regex"), "{err}");
        let err = ControllerConfig::parse(
            "trustDomain: td\nentryIDPrefix: a\nentryIDPrefixCleanup: a.\n",
        )
        .expect_err("same prefixes");
        assert!(err.to_string().contains("entryIDPrefixCleanup"), "{err}");
        let err = ControllerConfig::parse("clusterName: c\n").expect_err("no trust domain");
        assert!(err.to_string().contains("trustDomain"), "{err}");
        let err = ControllerConfig::parse("trustDomain: [\n").expect_err("bad yaml");
        assert!(matches!(err, ConfigError::Decode(_)), "{err}");
    }
}
