//! How a plugin is named and where its component comes from: SPIRE's `plugin_cmd` shape,
//! as `plugin_wasm`, `plugin_checksum` and `plugin_data`.

use std::path::PathBuf;

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
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

impl PluginSpec {
    /// The built-in plugin `name`.
    pub fn builtin(name: &str, data: &str) -> Self {
        Self::new(name, PluginSource::Builtin, data)
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
        }
    }
}
