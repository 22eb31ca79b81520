//! How a plugin is named and where its component comes from: SPIRE's `plugin_cmd` shape,
//! as `plugin_wasm`, `plugin_checksum` and `plugin_data`.

use std::path::PathBuf;

use crate::capabilities::{Grants, builtin_file_grants};
use crate::limits::Limits;

/// Where a plugin's component comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PluginSource {
    /// The built-in plugin of the configured name, embedded in the binary.
    Builtin,
    /// `plugin_wasm = "path"`: a component file.
    File(PathBuf),
    /// Component bytes the caller already holds.
    Bytes(Vec<u8>),
}

/// One configured plugin.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PluginSpec {
    /// The configured name, which is also the type of every selector the plugin produces.
    pub name: String,
    /// Where the component comes from.
    pub source: PluginSource,
    /// `plugin_checksum`: SHA-256 of the component in hex. Checked before compiling.
    pub checksum: Option<String>,
    /// `plugin_data`, passed to the plugin's `configure` verbatim.
    pub data: String,
    /// Per-call limits.
    pub limits: Limits,
    /// The capabilities it may import.
    pub grants: Grants,
}

impl PluginSpec {
    /// The built-in plugin `name`. It is granted the files its `plugin_data` names in
    /// `*_path` keys (SPIRE's keys, such as x509pop's `ca_bundle_path`), under the key's
    /// name; other grants are added with [`with_grants`](Self::with_grants).
    pub fn builtin(name: &str, data: &str) -> Self {
        let mut spec = Self::new(name, PluginSource::Builtin, data);
        spec.grants.files = builtin_file_grants(data);
        spec.grants.files_from_data = true;
        spec
    }

    /// A plugin loaded from a component file (`plugin_wasm`).
    pub fn file(name: &str, path: impl Into<PathBuf>, data: &str) -> Self {
        Self::new(name, PluginSource::File(path.into()), data)
    }

    /// A plugin from component bytes.
    pub fn bytes(name: &str, wasm: impl Into<Vec<u8>>, data: &str) -> Self {
        Self::new(name, PluginSource::Bytes(wasm.into()), data)
    }

    /// Require the component's SHA-256 to be `checksum` (hex).
    #[must_use]
    pub fn with_checksum(mut self, checksum: &str) -> Self {
        self.checksum = Some(checksum.to_owned());
        self
    }

    /// Grant the plugin `grants`; the files it names are added to those it already has.
    #[must_use]
    pub fn with_grants(mut self, grants: Grants) -> Self {
        let mut files = std::mem::take(&mut self.grants.files);
        files.extend(grants.files.clone());
        let files_from_data = self.grants.files_from_data;
        self.grants = grants;
        self.grants.files = files;
        self.grants.files_from_data = files_from_data;
        self
    }

    /// Use `limits` instead of the defaults.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    fn new(name: &str, source: PluginSource, data: &str) -> Self {
        PluginSpec {
            name: name.to_owned(),
            source,
            checksum: None,
            data: data.to_owned(),
            limits: Limits::default(),
            grants: Grants::default(),
        }
    }
}
