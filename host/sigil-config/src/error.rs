//! [`ConfigError`]: every way a config file can be refused, each naming the file, the line,
//! the dotted key (`server.ca_ttl`, `plugins.DataStore.sql.plugin_data.database_type`) and
//! the reason, so an operator can fix the file without reading sigil's source.

use std::io;

/// Why a config file was refused.
///
/// Every variant but [`ConfigError::Read`] carries `file`, `line` (1-based) and, except for
/// [`ConfigError::Syntax`], the dotted `key`. Display gives `file:line: key: reason`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read config file: {source}")]
    Read {
        /// The path as given.
        file: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The text is not HCL.
    #[error("{file}:{line}: syntax error: {message}")]
    Syntax {
        /// The file name used in messages.
        file: String,
        /// The line of the error.
        line: usize,
        /// What the parser expected.
        message: String,
    },
    /// A key the enclosing block does not accept.
    #[error("{file}:{line}: {key}: unknown key (accepted here: {accepted})")]
    UnknownKey {
        /// The file name used in messages.
        file: String,
        /// The line of the key.
        line: usize,
        /// The dotted key.
        key: String,
        /// The keys that are accepted in that block, comma separated.
        accepted: String,
    },
    /// A required key or block is not set.
    #[error("{file}:{line}: {key}: required but not set")]
    MissingKey {
        /// The file name used in messages.
        file: String,
        /// The line of the enclosing block (1 for a missing top-level block).
        line: usize,
        /// The dotted key.
        key: String,
    },
    /// A key that may appear once appears again.
    #[error("{file}:{line}: {key}: set more than once (first at line {first_line})")]
    DuplicateKey {
        /// The file name used in messages.
        file: String,
        /// The line of the second occurrence.
        line: usize,
        /// The dotted key.
        key: String,
        /// The line of the first occurrence.
        first_line: usize,
    },
    /// A value of the wrong type, out of range, or otherwise not acceptable.
    #[error("{file}:{line}: {key}: {reason}")]
    InvalidValue {
        /// The file name used in messages.
        file: String,
        /// The line of the value.
        line: usize,
        /// The dotted key.
        key: String,
        /// Why the value was refused.
        reason: String,
    },
    /// Two keys that exclude each other are both set, or one of a required pair is missing.
    #[error("{file}:{line}: {key}: {reason}")]
    Conflict {
        /// The file name used in messages.
        file: String,
        /// The line of the later key (or of the enclosing block).
        line: usize,
        /// The dotted key.
        key: String,
        /// Which keys conflict.
        reason: String,
    },
    /// A plugin kind that is not known on this side (server or agent).
    #[error("{file}:{line}: {key}: unknown plugin type (accepted here: {accepted})")]
    UnknownPluginKind {
        /// The file name used in messages.
        file: String,
        /// The line of the plugin block.
        line: usize,
        /// The dotted key (`plugins.Notifier`).
        key: String,
        /// The plugin types accepted, comma separated.
        accepted: String,
    },
    /// A plugin name that is neither built in nor loaded from a `plugin_wasm` file.
    #[error("{file}:{line}: {key}: unknown {kind} plugin \"{name}\" ({hint})")]
    UnknownPlugin {
        /// The file name used in messages.
        file: String,
        /// The line of the plugin block.
        line: usize,
        /// The dotted key (`plugins.NodeAttestor.aws_iid`).
        key: String,
        /// The plugin type.
        kind: &'static str,
        /// The plugin name.
        name: String,
        /// What is accepted instead.
        hint: String,
    },
    /// SPIRE's `plugin_cmd`: sigil does not run plugin executables.
    #[error(
        "{file}:{line}: {key}: plugin_cmd is not supported: sigil loads WebAssembly plugins via \
         plugin_wasm = \"/path/plugin.wasm\" (with plugin_checksum = \"<sha256 hex>\")"
    )]
    PluginCmd {
        /// The file name used in messages.
        file: String,
        /// The line of `plugin_cmd`.
        line: usize,
        /// The dotted key (`plugins.NodeAttestor.aws_iid.plugin_cmd`).
        key: String,
    },
    /// Too few or too many plugins of one type.
    #[error("{file}:{line}: {key}: {reason}")]
    PluginCount {
        /// The file name used in messages.
        file: String,
        /// The line of the extra plugin (or of the `plugins` block when one is missing).
        line: usize,
        /// The dotted key (`plugins.DataStore`).
        key: String,
        /// How many are allowed.
        reason: String,
    },
}

impl ConfigError {
    /// The process exit code for a refused config file (`EX_USAGE` from sysexits.h).
    pub const EXIT_CODE: i32 = 64;

    /// The line the error points at, when it points at one.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Syntax { line, .. }
            | ConfigError::UnknownKey { line, .. }
            | ConfigError::MissingKey { line, .. }
            | ConfigError::DuplicateKey { line, .. }
            | ConfigError::InvalidValue { line, .. }
            | ConfigError::Conflict { line, .. }
            | ConfigError::UnknownPluginKind { line, .. }
            | ConfigError::UnknownPlugin { line, .. }
            | ConfigError::PluginCmd { line, .. }
            | ConfigError::PluginCount { line, .. } => Some(*line),
        }
    }

    /// The dotted key the error is about, when it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Read { .. } | ConfigError::Syntax { .. } => None,
            ConfigError::UnknownKey { key, .. }
            | ConfigError::MissingKey { key, .. }
            | ConfigError::DuplicateKey { key, .. }
            | ConfigError::InvalidValue { key, .. }
            | ConfigError::Conflict { key, .. }
            | ConfigError::UnknownPluginKind { key, .. }
            | ConfigError::UnknownPlugin { key, .. }
            | ConfigError::PluginCmd { key, .. }
            | ConfigError::PluginCount { key, .. } => Some(key),
        }
    }
}
