//! `server.conf`: the `server` block, the server's `plugins`, and the top-level
//! `health_checks` and `telemetry` blocks, with SPIRE's keys and defaults.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sigil_types::{KeyType, TrustDomain};

use crate::common::{
    HealthChecks, LogConfig, UnsupportedSection, read_health_checks, read_key_type, read_log,
    read_unsupported, refuse_misplaced,
};
use crate::hcl::Section;
use crate::plugins::{
    Catalogue, PluginConfig, PluginKind, RawPlugin, native_data, of_kind, read_plugins,
};
use crate::read::{Ctx, Fields};
use crate::{ConfigError, load};

/// A validated `server.conf`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// `bind_address` (default `0.0.0.0`): where agents connect.
    pub bind_address: String,
    /// `bind_port` (default 8081).
    pub bind_port: u16,
    /// `socket_path` (default `/tmp/spire-server/private/api.sock`): the admin API socket.
    pub socket_path: PathBuf,
    /// `trust_domain` (required).
    pub trust_domain: TrustDomain,
    /// `data_dir` (required).
    pub data_dir: PathBuf,
    /// `log_level`, `log_format`, `log_file`.
    pub log: LogConfig,
    /// `ca_key_type` (default `ec-p256`).
    pub ca_key_type: KeyType,
    /// `ca_ttl` (default 24h).
    pub ca_ttl: Duration,
    /// `ca_subject` (default country US, organization SPIFFE, as SPIRE).
    pub ca_subject: CaSubject,
    /// `default_x509_svid_ttl` (default 1h).
    pub default_x509_svid_ttl: Duration,
    /// `default_jwt_svid_ttl` (default 5m).
    pub default_jwt_svid_ttl: Duration,
    /// `jwt_issuer`: the `iss` claim of JWT-SVIDs, when set.
    pub jwt_issuer: Option<String>,
    /// `agent_ttl`: the lifetime of agent SVIDs, when set (else the X509-SVID TTL).
    pub agent_ttl: Option<Duration>,
    /// `audit_log_enabled` (default false).
    pub audit_log_enabled: bool,
    /// The top-level `health_checks` block.
    pub health_checks: HealthChecks,
    /// The top-level `telemetry` block, accepted but not acted on yet.
    pub telemetry: Option<UnsupportedSection>,
    /// The `plugins` block.
    pub plugins: ServerPlugins,
}

/// `ca_subject`: the subject of CA certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaSubject {
    /// `country`
    pub country: Vec<String>,
    /// `organization`
    pub organization: Vec<String>,
    /// `common_name`
    pub common_name: String,
}

impl Default for CaSubject {
    fn default() -> Self {
        CaSubject {
            country: vec!["US".to_owned()],
            organization: vec!["SPIFFE".to_owned()],
            common_name: String::new(),
        }
    }
}

/// The server's plugins.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ServerPlugins {
    /// The one `DataStore "sql"`.
    pub data_store: DataStoreConfig,
    /// The one `KeyManager`.
    pub key_manager: KeyManagerConfig,
    /// One or more `NodeAttestor`s (built in: `join_token`, `x509pop`; others via WASM).
    pub node_attestors: Vec<PluginConfig>,
    /// At most one `UpstreamAuthority "disk"`.
    pub upstream_authority: Option<UpstreamAuthorityConfig>,
    /// Any `BundlePublisher`s (built in: `disk`, `k8s_configmap`; others via WASM).
    pub bundle_publishers: Vec<PluginConfig>,
    /// Any `Notifier`s (built in: `k8sbundle`).
    pub notifiers: Vec<PluginConfig>,
}

/// `DataStore "sql"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataStoreConfig {
    /// `database_type`
    pub database_type: DatabaseType,
    /// `connection_string`: a file path for SQLite, a libpq string or URL for PostgreSQL.
    pub connection_string: String,
}

/// `database_type` of the sql data store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DatabaseType {
    /// `sqlite3`
    Sqlite3,
    /// `postgres`
    Postgres,
}

/// The server's `KeyManager`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyManagerConfig {
    /// `KeyManager "memory"`: keys die with the process.
    Memory,
    /// `KeyManager "disk"` with `keys_path`.
    Disk {
        /// `keys_path`
        keys_path: PathBuf,
    },
}

/// `UpstreamAuthority "disk"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamAuthorityConfig {
    /// `cert_file_path`
    pub cert_file_path: PathBuf,
    /// `key_file_path`
    pub key_file_path: PathBuf,
    /// `bundle_file_path`: the upstream roots, when not just the certificate's chain.
    pub bundle_file_path: Option<PathBuf>,
}

const TOP_KEYS: [&str; 4] = ["server", "plugins", "health_checks", "telemetry"];
const SERVER_KEYS: [&str; 16] = [
    "bind_address",
    "bind_port",
    "socket_path",
    "trust_domain",
    "data_dir",
    "log_level",
    "log_format",
    "log_file",
    "ca_key_type",
    "ca_ttl",
    "ca_subject",
    "default_x509_svid_ttl",
    "default_jwt_svid_ttl",
    "jwt_issuer",
    "agent_ttl",
    "audit_log_enabled",
];
const CATALOGUE: &Catalogue = &[
    (PluginKind::DataStore, &["sql"]),
    (PluginKind::KeyManager, &["memory", "disk"]),
    (
        PluginKind::NodeAttestor,
        &["join_token", "x509pop", "k8s_psat"],
    ),
    (PluginKind::UpstreamAuthority, &["disk"]),
    (PluginKind::BundlePublisher, &["disk", "k8s_configmap"]),
    (PluginKind::Notifier, &["k8sbundle"]),
];

impl ServerConfig {
    /// Reads and validates `path`; with `expand_env`, `$VAR` / `${VAR}` are substituted first.
    pub fn from_file(
        path: impl AsRef<Path>,
        expand_env: bool,
    ) -> Result<ServerConfig, ConfigError> {
        let (text, file) = load::read(path.as_ref())?;
        ServerConfig::parse(&text, &file, expand_env)
    }

    /// Parses and validates config text; `file` names it in errors.
    pub fn parse(text: &str, file: &str, expand_env: bool) -> Result<ServerConfig, ConfigError> {
        let text = load::maybe_expand(text, expand_env);
        let tree = crate::hcl::parse(&text, file, "")?;
        read(Ctx { file }, &tree)
    }
}

fn read(ctx: Ctx<'_>, tree: &Section) -> Result<ServerConfig, ConfigError> {
    let top = Fields::new(ctx, "", tree, &TOP_KEYS)?;
    refuse_misplaced(&top, "server")?;
    let server = top
        .section("server", &SERVER_KEYS)?
        .ok_or_else(|| ctx.missing(1, "server"))?;
    let (td_text, td_line) = server.required_string("trust_domain")?;
    let trust_domain = TrustDomain::new(&td_text).map_err(|e| {
        ctx.invalid(
            td_line,
            &server.key("trust_domain"),
            format!("{td_text:?} is not a trust domain name: {e}"),
        )
    })?;
    let (data_dir, _) = server.required_string("data_dir")?;
    let defaults = |d: Option<Duration>, secs| d.unwrap_or(Duration::from_secs(secs));
    Ok(ServerConfig {
        bind_address: server.string_or("bind_address", "0.0.0.0")?,
        bind_port: server.port("bind_port", 8081)?,
        socket_path: server
            .string_or("socket_path", "/tmp/spire-server/private/api.sock")?
            .into(),
        trust_domain,
        data_dir: data_dir.into(),
        log: read_log(&server)?,
        ca_key_type: read_key_type(&server, "ca_key_type", &KeyType::ALL)?,
        ca_ttl: defaults(server.ttl("ca_ttl")?, 24 * 3600),
        ca_subject: read_ca_subject(&server)?,
        default_x509_svid_ttl: defaults(server.ttl("default_x509_svid_ttl")?, 3600),
        default_jwt_svid_ttl: defaults(server.ttl("default_jwt_svid_ttl")?, 300),
        jwt_issuer: server.string("jwt_issuer")?.map(|(s, _)| s),
        agent_ttl: server.ttl("agent_ttl")?,
        audit_log_enabled: server.bool("audit_log_enabled", false)?,
        health_checks: read_health_checks(&top)?,
        telemetry: read_unsupported(&top, "telemetry")?,
        plugins: read_server_plugins(ctx, &top)?,
    })
}

fn read_ca_subject(server: &Fields<'_>) -> Result<CaSubject, ConfigError> {
    let Some(subject) =
        server.section("ca_subject", &["country", "organization", "common_name"])?
    else {
        return Ok(CaSubject::default());
    };
    Ok(CaSubject {
        country: subject
            .strings("country")?
            .map(|(l, _)| l)
            .unwrap_or_default(),
        organization: subject
            .strings("organization")?
            .map(|(l, _)| l)
            .unwrap_or_default(),
        common_name: subject.string_or("common_name", "")?,
    })
}

fn read_server_plugins(ctx: Ctx<'_>, top: &Fields<'_>) -> Result<ServerPlugins, ConfigError> {
    let Some(entry) = top.entry("plugins") else {
        return Err(ctx.missing(1, "plugins"));
    };
    let section = entry
        .value
        .as_section()
        .ok_or_else(|| ctx.invalid(entry.line, "plugins", "expected a block"))?;
    let raw = read_plugins(ctx, section, CATALOGUE)?;
    let line = entry.line;
    let data_store = of_kind(ctx, &raw, line, PluginKind::DataStore, 1, 1)?;
    let key_manager = of_kind(ctx, &raw, line, PluginKind::KeyManager, 1, 1)?;
    let upstream = of_kind(ctx, &raw, line, PluginKind::UpstreamAuthority, 0, 1)?;
    let collect = |kind, min| -> Result<Vec<PluginConfig>, ConfigError> {
        let found = of_kind(ctx, &raw, line, kind, min, usize::MAX)?;
        Ok(found.into_iter().map(|p| p.config.clone()).collect())
    };
    Ok(ServerPlugins {
        data_store: read_data_store(ctx, data_store[0])?,
        key_manager: read_key_manager(ctx, key_manager[0])?,
        node_attestors: collect(PluginKind::NodeAttestor, 1)?,
        upstream_authority: upstream
            .first()
            .map(|p| read_upstream(ctx, p))
            .transpose()?,
        bundle_publishers: collect(PluginKind::BundlePublisher, 0)?,
        notifiers: collect(PluginKind::Notifier, 0)?,
    })
}

fn read_data_store(ctx: Ctx<'_>, plugin: &RawPlugin<'_>) -> Result<DataStoreConfig, ConfigError> {
    let empty = Section {
        line: plugin.config.line,
        entries: Vec::new(),
    };
    let data = native_data(ctx, plugin, &["database_type", "connection_string"], &empty)?;
    if data.entry("database_type").is_none() {
        return Err(ctx.missing(plugin.config.line, &data.key("database_type")));
    }
    let database_type = match data.choice("database_type", &["sqlite3", "postgres"])? {
        Some(1) => DatabaseType::Postgres,
        _ => DatabaseType::Sqlite3,
    };
    let (connection_string, _) = data.required_string("connection_string")?;
    Ok(DataStoreConfig {
        database_type,
        connection_string,
    })
}

fn read_key_manager(ctx: Ctx<'_>, plugin: &RawPlugin<'_>) -> Result<KeyManagerConfig, ConfigError> {
    let empty = Section {
        line: plugin.config.line,
        entries: Vec::new(),
    };
    if plugin.config.name == "memory" {
        native_data(ctx, plugin, &[], &empty)?;
        return Ok(KeyManagerConfig::Memory);
    }
    let data = native_data(ctx, plugin, &["keys_path"], &empty)?;
    let (keys_path, _) = data.required_string("keys_path")?;
    Ok(KeyManagerConfig::Disk {
        keys_path: keys_path.into(),
    })
}

fn read_upstream(
    ctx: Ctx<'_>,
    plugin: &RawPlugin<'_>,
) -> Result<UpstreamAuthorityConfig, ConfigError> {
    let empty = Section {
        line: plugin.config.line,
        entries: Vec::new(),
    };
    let keys = ["cert_file_path", "key_file_path", "bundle_file_path"];
    let data = native_data(ctx, plugin, &keys, &empty)?;
    Ok(UpstreamAuthorityConfig {
        cert_file_path: data.required_string("cert_file_path")?.0.into(),
        key_file_path: data.required_string("key_file_path")?.0.into(),
        bundle_file_path: data.path("bundle_file_path")?,
    })
}
