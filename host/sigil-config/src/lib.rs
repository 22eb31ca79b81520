#![doc = "SPIRE-format HCL config files for sigil's server and agent, parsed into typed,"]
#![doc = "validated settings."]
//!
//! [`ServerConfig::from_file`] and [`AgentConfig::from_file`] read `server.conf` and
//! `agent.conf` as SPIRE writes them (the `server` / `agent` block, the `plugins` block, the
//! top-level `health_checks` and `telemetry` blocks), with SPIRE's keys, defaults and
//! duration syntax. Every refusal is a [`ConfigError`] whose message names the file, the line,
//! the dotted key and the reason:
//!
//! ```text
//! server.conf:12: server.ca_ttl: "3x" is not a duration (use e.g. 24h, 30m, 90s)
//! ```
//!
//! Binaries exit with [`ConfigError::EXIT_CODE`] (64) on such an error. Unknown keys, plugin
//! types and plugin names are errors, never silently ignored; the `telemetry` block is the
//! exception SPIRE configs need, recorded as [`UnsupportedSection`] so the daemon can warn.
//!
//! Plugins are built in or WebAssembly components (`plugin_wasm`); SPIRE's `plugin_cmd` is
//! refused. A WASM or built-in attestor gets its `plugin_data` as HCL text
//! ([`PluginConfig::data_text`]); native plugins (data store, key manager, upstream authority)
//! are read into typed settings here.
//!
//! The crate does file I/O only in the `from_file` constructors, and reads the environment
//! only when asked to expand it (SPIRE's `-expandEnv`, [`expand_env`]).

mod agent;
mod common;
mod data;
mod duration;
mod env;
mod error;
mod hcl;
mod plugins;
mod read;
mod server;

pub use agent::{
    AgentConfig, AgentKeyManagerConfig, AgentPlugins, SdsConfig, TrustBundleFormat,
    TrustBundleSource, WorkloadApiLimits,
};
pub use common::{HealthChecks, LogConfig, LogFormat, LogLevel, UnsupportedSection};
pub use data::{DataEntry, DataValue, PluginData};
pub use duration::{parse_go_duration, parse_ttl};
pub use env::{expand_env, expand_env_with};
pub use error::ConfigError;
pub use plugins::{PluginConfig, PluginKind, PluginSource};
pub use server::{
    CaSubject, DataStoreConfig, DatabaseType, KeyManagerConfig, ServerConfig, ServerPlugins,
    UpstreamAuthorityConfig,
};
/// Re-exported: the key types the config names (`ca_key_type`, `workload_x509_svid_key_type`).
pub use sigil_types::KeyType;

/// Reading the file and the optional environment expansion, shared by both configs.
mod load {
    use std::borrow::Cow;
    use std::path::Path;

    use crate::ConfigError;

    /// The file's text and its name for messages.
    pub(crate) fn read(path: &Path) -> Result<(String, String), ConfigError> {
        let file = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Ok((text, file)),
            Err(source) => Err(ConfigError::Read { file, source }),
        }
    }

    /// `text` with `$VAR` / `${VAR}` expanded when `expand` is set.
    pub(crate) fn maybe_expand(text: &str, expand: bool) -> Cow<'_, str> {
        if expand {
            Cow::Owned(crate::expand_env(text))
        } else {
            Cow::Borrowed(text)
        }
    }
}
