//! The `plugins { … }` block: `Kind "name" { plugin_data { … } }` per plugin, built in or
//! loaded from a WebAssembly component (`plugin_wasm`, `plugin_checksum`). SPIRE's
//! `plugin_cmd` is refused with a pointer to `plugin_wasm`; `enabled = false` skips a plugin.

use std::fmt;
use std::path::PathBuf;

use crate::ConfigError;
use crate::data::PluginData;
use crate::hcl::{Section, join};
use crate::read::{Ctx, Fields};

/// A plugin type, as SPIRE names it in the `plugins` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PluginKind {
    /// `DataStore` (server; native).
    DataStore,
    /// `KeyManager` (server and agent; native).
    KeyManager,
    /// `NodeAttestor` (server and agent).
    NodeAttestor,
    /// `UpstreamAuthority` (server; native).
    UpstreamAuthority,
    /// `BundlePublisher` (server).
    BundlePublisher,
    /// `Notifier` (server; SPIRE deprecates it for BundlePublisher): `k8sbundle`, run as
    /// the `k8s_configmap` publisher.
    Notifier,
    /// `WorkloadAttestor` (agent).
    WorkloadAttestor,
}

impl PluginKind {
    /// The name used in config files.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::DataStore => "DataStore",
            PluginKind::KeyManager => "KeyManager",
            PluginKind::NodeAttestor => "NodeAttestor",
            PluginKind::UpstreamAuthority => "UpstreamAuthority",
            PluginKind::BundlePublisher => "BundlePublisher",
            PluginKind::Notifier => "Notifier",
            PluginKind::WorkloadAttestor => "WorkloadAttestor",
        }
    }

    /// Whether plugins of this kind may be WebAssembly components (`plugin_wasm`). Data
    /// stores, key managers and upstream authorities are native in sigil; notifiers are
    /// only SPIRE's `k8sbundle`, kept for its configuration shape.
    pub fn loads_wasm(self) -> bool {
        matches!(
            self,
            PluginKind::NodeAttestor | PluginKind::BundlePublisher | PluginKind::WorkloadAttestor
        )
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a plugin's code comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// Built into sigil, chosen by name.
    Builtin,
    /// A WebAssembly component file.
    Wasm {
        /// `plugin_wasm`
        path: PathBuf,
        /// `plugin_checksum`: lower-case hex SHA-256 of the file, verified at load when set.
        checksum: Option<String>,
    },
}

/// One enabled plugin from the `plugins` block.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PluginConfig {
    /// The plugin type.
    pub kind: PluginKind,
    /// The plugin name (the block label): also the selector type of an attestor.
    pub name: String,
    /// Built in or a WASM file.
    pub source: PluginSource,
    /// `plugin_data` as HCL text for the plugin's `configure` ("" when absent).
    pub data_text: String,
    /// `plugin_data` as values.
    pub data: PluginData,
    /// `plugin_data_file`: a file holding the plugin data, recorded, not read.
    pub data_file: Option<PathBuf>,
    /// The line of the plugin block.
    pub line: usize,
}

/// What one side (server or agent) accepts: each kind with its built-in names.
pub(crate) type Catalogue = [(PluginKind, &'static [&'static str])];

/// A plugin read from the file, with its `plugin_data` section for native settings.
#[derive(Debug)]
pub(crate) struct RawPlugin<'a> {
    pub(crate) config: PluginConfig,
    /// The `plugin_data` section, when given inline.
    pub(crate) data: Option<&'a Section>,
    /// The dotted key of the plugin (`plugins.DataStore.sql`).
    pub(crate) path: String,
}

const PLUGIN_KEYS: [&str; 6] = [
    "plugin_wasm",
    "plugin_checksum",
    "plugin_data",
    "plugin_data_file",
    "enabled",
    "plugin_cmd",
];

/// Reads every enabled plugin of the `plugins` block, in file order.
pub(crate) fn read_plugins<'a>(
    ctx: Ctx<'a>,
    plugins: &'a Section,
    catalogue: &Catalogue,
) -> Result<Vec<RawPlugin<'a>>, ConfigError> {
    let mut out: Vec<RawPlugin<'a>> = Vec::new();
    for entry in &plugins.entries {
        let kind_key = join("plugins", &entry.key);
        let Some((kind, builtins)) = catalogue.iter().find(|(k, _)| k.as_str() == entry.key) else {
            let accepted: Vec<&str> = catalogue.iter().map(|(k, _)| k.as_str()).collect();
            return Err(ConfigError::UnknownPluginKind {
                file: ctx.file.to_owned(),
                line: entry.line,
                key: kind_key,
                accepted: accepted.join(", "),
            });
        };
        let (name, section) = match (entry.labels.as_slice(), entry.value.as_section()) {
            ([name], Some(section)) => (name.clone(), section),
            _ => {
                return Err(ctx.invalid(
                    entry.line,
                    &kind_key,
                    format!("expected `{} \"<name>\" {{ ... }}`", entry.key),
                ));
            }
        };
        let path = join(&kind_key, &name);
        let fields = Fields::new(ctx, &path, section, &PLUGIN_KEYS)?;
        if !fields.bool("enabled", true)? {
            continue;
        }
        if let Some(cmd) = fields.entry("plugin_cmd") {
            return Err(ConfigError::PluginCmd {
                file: ctx.file.to_owned(),
                line: cmd.line,
                key: fields.key("plugin_cmd"),
            });
        }
        if let Some(first) = out.iter().find(|p| p.path == path) {
            return Err(ConfigError::DuplicateKey {
                file: ctx.file.to_owned(),
                line: entry.line,
                key: path,
                first_line: first.config.line,
            });
        }
        let source = read_source(&fields, *kind, &name, builtins, entry.line)?;
        let data = match fields.entry("plugin_data") {
            Some(e) => Some(e.value.as_section().ok_or_else(|| {
                ctx.invalid(e.line, &fields.key("plugin_data"), "expected a block")
            })?),
            None => None,
        };
        let data_file = fields.path("plugin_data_file")?;
        if let (Some(_), Some(file_entry)) = (data, fields.entry("plugin_data_file")) {
            return Err(ctx.conflict(
                file_entry.line,
                &fields.key("plugin_data_file"),
                "set plugin_data or plugin_data_file, not both",
            ));
        }
        let values = data.map(PluginData::from_section).unwrap_or_default();
        out.push(RawPlugin {
            config: PluginConfig {
                kind: *kind,
                name,
                source,
                data_text: values.to_hcl(),
                data: values,
                data_file,
                line: entry.line,
            },
            data,
            path,
        });
    }
    Ok(out)
}

/// Built in or WASM, checked against the kind and the built-in names.
fn read_source(
    fields: &Fields<'_>,
    kind: PluginKind,
    name: &str,
    builtins: &[&str],
    line: usize,
) -> Result<PluginSource, ConfigError> {
    let wasm = fields.path("plugin_wasm")?;
    let checksum = fields.string("plugin_checksum")?;
    let Some(path) = wasm else {
        if let Some((_, checksum_line)) = checksum {
            return Err(fields.ctx.conflict(
                checksum_line,
                &fields.key("plugin_checksum"),
                "plugin_checksum is only used with plugin_wasm",
            ));
        }
        if builtins.contains(&name) {
            return Ok(PluginSource::Builtin);
        }
        let hint = if kind.loads_wasm() {
            format!(
                "built-in: {}; load any other with plugin_wasm = \"/path/plugin.wasm\"",
                builtins.join(", ")
            )
        } else {
            format!("accepted: {}", builtins.join(", "))
        };
        return Err(ConfigError::UnknownPlugin {
            file: fields.ctx.file.to_owned(),
            line,
            key: fields.path.clone(),
            kind: kind.as_str(),
            name: name.to_owned(),
            hint,
        });
    };
    let wasm_line = fields.entry("plugin_wasm").map_or(line, |e| e.line);
    if !kind.loads_wasm() {
        return Err(fields.ctx.invalid(
            wasm_line,
            &fields.key("plugin_wasm"),
            format!(
                "{kind} plugins are native in sigil ({}); plugin_wasm is for NodeAttestor, \
                 WorkloadAttestor and BundlePublisher plugins",
                builtins.join(", ")
            ),
        ));
    }
    let checksum = match checksum {
        Some((hex, checksum_line)) => {
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(fields.ctx.invalid(
                    checksum_line,
                    &fields.key("plugin_checksum"),
                    format!("{hex:?} is not a SHA-256 digest (64 hex digits)"),
                ));
            }
            Some(hex.to_ascii_lowercase())
        }
        None => None,
    };
    Ok(PluginSource::Wasm { path, checksum })
}

/// The plugins of `kind`, checked to number between `min` and `max`.
pub(crate) fn of_kind<'p, 'a>(
    ctx: Ctx<'_>,
    plugins: &'p [RawPlugin<'a>],
    plugins_line: usize,
    kind: PluginKind,
    min: usize,
    max: usize,
) -> Result<Vec<&'p RawPlugin<'a>>, ConfigError> {
    let found: Vec<&RawPlugin<'a>> = plugins.iter().filter(|p| p.config.kind == kind).collect();
    let key = join("plugins", kind.as_str());
    let expected = match (min, max) {
        (1, 1) => format!("exactly one {kind} plugin is required"),
        (0, 1) => format!("at most one {kind} plugin is allowed"),
        _ => format!("at least {min} {kind} plugin(s) are required"),
    };
    if found.len() > max {
        let extra = found.get(max).map_or(plugins_line, |p| p.config.line);
        return Err(ConfigError::PluginCount {
            file: ctx.file.to_owned(),
            line: extra,
            key,
            reason: format!("{expected}, found {}", found.len()),
        });
    }
    if found.len() < min {
        return Err(ConfigError::PluginCount {
            file: ctx.file.to_owned(),
            line: plugins_line,
            key,
            reason: format!("{expected}, found {}", found.len()),
        });
    }
    Ok(found)
}

/// The `plugin_data` fields of a native plugin, checked against `accepted`.
pub(crate) fn native_data<'a>(
    ctx: Ctx<'a>,
    plugin: &RawPlugin<'a>,
    accepted: &[&str],
    empty: &'a Section,
) -> Result<Fields<'a>, ConfigError> {
    let path = join(&plugin.path, "plugin_data");
    if let Some(file) = &plugin.config.data_file {
        return Err(ctx.invalid(
            plugin.config.line,
            &join(&plugin.path, "plugin_data_file"),
            format!(
                "{} is read by sigil itself: write its settings in plugin_data, not in {}",
                plugin.path,
                file.display()
            ),
        ));
    }
    Fields::new(ctx, &path, plugin.data.unwrap_or(empty), accepted)
}
