//! A configured plugin as the plugin host loads it.

use sigil_config::{PluginConfig, PluginSource};
use sigil_plugins::PluginSpec;

/// The spec of `plugin` with `data` as its `plugin_data` (a daemon may pass other data than
/// the file's, as the agent does for `join_token`): the built-in of that name, or the
/// `plugin_wasm` component with its `plugin_checksum`.
pub fn plugin_spec(plugin: &PluginConfig, data: &str) -> PluginSpec {
    match &plugin.source {
        PluginSource::Builtin => PluginSpec::builtin(&plugin.name, data),
        PluginSource::Wasm { path, checksum } => {
            let spec = PluginSpec::file(&plugin.name, path, data);
            match checksum {
                Some(sum) => spec.with_checksum(sum),
                None => spec,
            }
        }
    }
}
