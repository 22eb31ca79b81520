//! Settings the server and the agent share: logging, key types, the top-level
//! `health_checks` block and the recorded-but-unsupported sections (`telemetry`).

use sigil_types::KeyType;

use crate::ConfigError;
use crate::read::Fields;

/// `log_level`: SPIRE's names, case-insensitive in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LogLevel {
    /// `DEBUG`
    Debug,
    /// `INFO`, the default.
    #[default]
    Info,
    /// `WARN`
    Warn,
    /// `ERROR`
    Error,
}

/// `log_format`: `text` (default) or `json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Where and how the daemon logs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogConfig {
    /// `log_level`
    pub level: LogLevel,
    /// `log_format`
    pub format: LogFormat,
    /// `log_file`: log to this file instead of standard error.
    pub file: Option<std::path::PathBuf>,
}

/// The top-level `health_checks` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthChecks {
    /// `listener_enabled` (default false): serve the health endpoints.
    pub listener_enabled: bool,
    /// `bind_address` (default `localhost`).
    pub bind_address: String,
    /// `bind_port` (default 80).
    pub bind_port: u16,
    /// `live_path` (default `/live`).
    pub live_path: String,
    /// `ready_path` (default `/ready`).
    pub ready_path: String,
}

impl Default for HealthChecks {
    fn default() -> Self {
        HealthChecks {
            listener_enabled: false,
            bind_address: "localhost".to_owned(),
            bind_port: 80,
            live_path: "/live".to_owned(),
            ready_path: "/ready".to_owned(),
        }
    }
}

/// A section that real SPIRE configs carry and sigil accepts but does not act on yet
/// (`telemetry`, the agent's `experimental`): the daemon should warn that it is ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedSection {
    /// The section's key (`telemetry`).
    pub key: String,
    /// The line it starts on.
    pub line: usize,
}

// === reading ===

/// Reads `log_level`, `log_format` and `log_file` from a `server` or `agent` block.
pub(crate) fn read_log(fields: &Fields<'_>) -> Result<LogConfig, ConfigError> {
    const LEVELS: [(&str, LogLevel); 4] = [
        ("DEBUG", LogLevel::Debug),
        ("INFO", LogLevel::Info),
        ("WARN", LogLevel::Warn),
        ("ERROR", LogLevel::Error),
    ];
    let names = LEVELS.map(|(name, _)| name);
    let level = fields
        .choice("log_level", &names)?
        .map_or(LogLevel::Info, |i| LEVELS[i].1);
    let format = match fields.choice("log_format", &["text", "json"])? {
        Some(1) => LogFormat::Json,
        _ => LogFormat::Text,
    };
    Ok(LogConfig {
        level,
        format,
        file: fields.path("log_file")?,
    })
}

/// Reads a key type setting restricted to `allowed`.
pub(crate) fn read_key_type(
    fields: &Fields<'_>,
    key: &str,
    allowed: &[KeyType],
) -> Result<KeyType, ConfigError> {
    let names: Vec<&str> = allowed.iter().map(|k| k.as_str()).collect();
    Ok(fields
        .choice(key, &names)?
        .and_then(|i| allowed.get(i).copied())
        .unwrap_or_default())
}

/// Reads the top-level `health_checks` block, if present.
pub(crate) fn read_health_checks(top: &Fields<'_>) -> Result<HealthChecks, ConfigError> {
    const KEYS: [&str; 5] = [
        "listener_enabled",
        "bind_address",
        "bind_port",
        "live_path",
        "ready_path",
    ];
    let Some(block) = top.section("health_checks", &KEYS)? else {
        return Ok(HealthChecks::default());
    };
    let defaults = HealthChecks::default();
    Ok(HealthChecks {
        listener_enabled: block.bool("listener_enabled", false)?,
        bind_address: block.string_or("bind_address", &defaults.bind_address)?,
        bind_port: block.port("bind_port", defaults.bind_port)?,
        live_path: block.string_or("live_path", &defaults.live_path)?,
        ready_path: block.string_or("ready_path", &defaults.ready_path)?,
    })
}

/// Records a section that is accepted but not acted on.
pub(crate) fn read_unsupported(
    fields: &Fields<'_>,
    key: &str,
) -> Result<Option<UnsupportedSection>, ConfigError> {
    let Some(entry) = fields.entry(key) else {
        return Ok(None);
    };
    if entry.value.as_section().is_none() {
        return Err(fields.ctx.invalid(
            entry.line,
            &fields.key(key),
            format!("expected a block, found {}", entry.value.type_name()),
        ));
    }
    Ok(Some(UnsupportedSection {
        key: fields.key(key),
        line: entry.line,
    }))
}

/// Refuses `health_checks` or `telemetry` written inside the `server` / `agent` block: in
/// SPIRE they are top-level blocks.
pub(crate) fn refuse_misplaced(top: &Fields<'_>, block: &str) -> Result<(), ConfigError> {
    let Some(section) = top.entry(block).and_then(|e| e.value.as_section()) else {
        return Ok(());
    };
    match section
        .entries
        .iter()
        .find(|e| e.key == "health_checks" || e.key == "telemetry")
    {
        Some(misplaced) => Err(top.ctx.invalid(
            misplaced.line,
            &format!("{block}.{}", misplaced.key),
            format!(
                "{} is a top-level block, not part of {block}",
                misplaced.key
            ),
        )),
        None => Ok(()),
    }
}
