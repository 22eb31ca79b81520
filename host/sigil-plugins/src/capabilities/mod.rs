//! The capabilities of `sdk/wit/capabilities.wit`: what one plugin was granted, and the
//! host side of each capability import.
//!
//! A world says which capabilities its plugins may import (`grants::Kind`); [`Grants`]
//! says which of those one configured plugin actually gets. Both are checked at load (an
//! imported capability that is not granted refuses the load, naming the import), and every
//! call checks its arguments against the grant again (the URL against the allow-list, the
//! file name against the granted names).

mod files;
mod http;
mod imports;
mod join_tokens;
mod kubelet;
mod kubernetes;
mod x509;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

pub use join_tokens::{JoinTokenRedeemer, RedeemError};
pub use kubelet::{KubeletAccess, KubeletTrust};
pub use kubernetes::KubernetesAccess;

pub(crate) use kubelet::PodMatch;

pub(crate) use http::HttpClients;

/// Why a capability call failed; each case becomes the WIT `plugin-error` case of the
/// same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CapabilityError {
    /// The arguments are malformed.
    Invalid(String),
    /// Not granted, or refused by the other side.
    Denied(String),
    /// What was asked for does not exist.
    NotFound(String),
    /// The other side could not be reached or did not answer in time.
    Unavailable(String),
}

impl std::fmt::Display for CapabilityError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CapabilityError::Invalid(m)
            | CapabilityError::Denied(m)
            | CapabilityError::NotFound(m)
            | CapabilityError::Unavailable(m) => f.write_str(m),
        }
    }
}

/// What one plugin may reach beyond its sandbox. Empty by default: a plugin gets `log`,
/// the resources its world hands it, and the pure `x509` checks, nothing else.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct Grants {
    /// `granted-files`: files by the name the plugin asks for.
    pub files: BTreeMap<String, PathBuf>,
    /// `http-client`: URL prefixes the plugin may request (`https://host/path/`).
    pub http_allow: Vec<String>,
    /// `kubernetes`: each cluster's API server and the credentials to use, by the name
    /// the plugin asks for (k8s_psat's cluster names).
    pub kubernetes: BTreeMap<String, KubernetesAccess>,
    /// `pod-lookup`: the node's kubelet.
    pub kubelet: Option<KubeletAccess>,
    /// `join-tokens`: where tokens are redeemed (the server's datastore).
    pub join_tokens: Option<Arc<dyn JoinTokenRedeemer>>,
    /// A built-in plugin's files come from its `plugin_data`: it may import
    /// `granted-files` even with none granted, so a missing `*_path` key is reported by
    /// the plugin's own configuration check, naming the key.
    pub(crate) files_from_data: bool,
}

impl Grants {
    /// Grant the file at `path` under `name`.
    #[must_use]
    pub fn with_file(mut self, name: &str, path: impl Into<PathBuf>) -> Self {
        self.files.insert(name.to_owned(), path.into());
        self
    }

    /// Allow HTTP requests to URLs starting with `prefix`.
    #[must_use]
    pub fn with_http_allow(mut self, prefix: &str) -> Self {
        self.http_allow.push(prefix.to_owned());
        self
    }

    /// Grant access to the Kubernetes API of the cluster the plugin calls `cluster`.
    #[must_use]
    pub fn with_kubernetes(mut self, cluster: &str, access: KubernetesAccess) -> Self {
        self.kubernetes.insert(cluster.to_owned(), access);
        self
    }

    /// Grant pod lookups on the node's kubelet.
    #[must_use]
    pub fn with_kubelet(mut self, access: KubeletAccess) -> Self {
        self.kubelet = Some(access);
        self
    }

    /// Grant join-token redemption through `redeemer`.
    #[must_use]
    pub fn with_join_tokens(mut self, redeemer: Arc<dyn JoinTokenRedeemer>) -> Self {
        self.join_tokens = Some(redeemer);
        self
    }

    /// Whether the capability interface `name` (`sigil:plugin/http-client`, no version)
    /// is granted. Interfaces that are not capabilities are not this type's business.
    pub(crate) fn grants(&self, name: &str) -> Option<bool> {
        Some(match name {
            "sigil:plugin/granted-files" => self.files_from_data || !self.files.is_empty(),
            "sigil:plugin/http-client" => !self.http_allow.is_empty(),
            "sigil:plugin/kubernetes" => !self.kubernetes.is_empty(),
            "sigil:plugin/pod-lookup" => self.kubelet.is_some(),
            "sigil:plugin/join-tokens" => self.join_tokens.is_some(),
            // Pure computation over the arguments: nothing to grant.
            "sigil:plugin/x509" => true,
            _ => return None,
        })
    }

    /// The `plugin_data` setting that grants `interface`, for error messages.
    pub(crate) fn how_to_grant(interface: &str) -> &'static str {
        match interface {
            "sigil:plugin/granted-files" => "grant files by name (granted_files)",
            "sigil:plugin/http-client" => "allow URL prefixes (http_allow)",
            "sigil:plugin/kubernetes" => "configure the clusters' API server access",
            "sigil:plugin/pod-lookup" => "configure the kubelet access",
            "sigil:plugin/join-tokens" => "only the server's join_token attestor redeems tokens",
            _ => "this interface is not a capability of the world",
        }
    }
}

impl std::fmt::Debug for Grants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grants")
            .field("files", &self.files)
            .field("http_allow", &self.http_allow)
            .field("kubernetes", &self.kubernetes)
            .field("kubelet", &self.kubelet)
            .field("join_tokens", &self.join_tokens.is_some())
            .field("files_from_data", &self.files_from_data)
            .finish()
    }
}

/// The file grants of a built-in plugin: every `*_path` key of its `plugin_data` (SPIRE's
/// keys, such as x509pop's `ca_bundle_path`) grants that file under the key's name. The
/// built-ins read their files by those names, so a SPIRE configuration works unchanged.
pub(crate) fn builtin_file_grants(data: &str) -> BTreeMap<String, PathBuf> {
    data.lines()
        .filter_map(|line| {
            let (key, value) = line.split_once('=')?;
            let key = key.trim();
            let value = value.trim().strip_prefix('"')?.strip_suffix('"')?;
            (key.ends_with("_path") && !value.is_empty())
                .then(|| (key.to_owned(), PathBuf::from(value)))
        })
        .collect()
}
