//! `agent.conf`: the `agent` block, the agent's `plugins`, and the top-level
//! `health_checks` and `telemetry` blocks, with SPIRE's keys and defaults.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use sigil_types::{KeyType, SpiffeId, TrustDomain};

use crate::common::{
    HealthChecks, LogConfig, UnsupportedSection, read_health_checks, read_key_type, read_log,
    read_unsupported, refuse_misplaced,
};
use crate::hcl::{Node, Section};
use crate::plugins::{
    Catalogue, PluginConfig, PluginKind, PluginSource, RawPlugin, native_data, of_kind,
    read_plugins,
};
use crate::read::{Ctx, Fields};
use crate::{ConfigError, load};

/// A validated `agent.conf`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AgentConfig {
    /// `data_dir` (required).
    pub data_dir: PathBuf,
    /// `log_level`, `log_format`, `log_file`.
    pub log: LogConfig,
    /// `server_address` (required).
    pub server_address: String,
    /// `server_port` (default 8081).
    pub server_port: u16,
    /// `socket_path` (default `/tmp/spire-agent/public/api.sock`): the Workload API socket.
    pub socket_path: PathBuf,
    /// `trust_domain` (required).
    pub trust_domain: TrustDomain,
    /// How the agent gets its first trust bundle.
    pub trust_bundle: TrustBundleSource,
    /// `trust_bundle_format` (default `pem`).
    pub trust_bundle_format: TrustBundleFormat,
    /// `join_token`, for the `join_token` node attestor.
    pub join_token: Option<String>,
    /// `admin_socket_path`: the admin API (Delegated Identity) socket, when enabled.
    pub admin_socket_path: Option<PathBuf>,
    /// `authorized_delegates`: SPIFFE IDs allowed to use the Delegated Identity API.
    pub authorized_delegates: Vec<SpiffeId>,
    /// `sds`: names for Envoy SDS.
    pub sds: SdsConfig,
    /// `workload_x509_svid_key_type` (default `ec-p256`; `rsa-2048` also accepted).
    pub workload_x509_svid_key_type: KeyType,
    /// `allow_unauthenticated_verifiers` (default false).
    pub allow_unauthenticated_verifiers: bool,
    /// `x509_svid_cache_max_size` (default 1000): SPIRE's soft limit on the X509-SVIDs the
    /// agent keeps. SVIDs of entries a workload is subscribed to are always kept; beyond the
    /// limit the least recently used others are dropped. 0 means the default, as in SPIRE.
    pub x509_svid_cache_max_size: usize,
    /// `jwt_svid_cache_max_size` (default 1000): SPIRE's hard limit on the JWT-SVIDs the agent
    /// caches; the least recently used one is dropped first. 0 means the default, as in SPIRE.
    pub jwt_svid_cache_max_size: usize,
    /// `experimental` inside `agent`: accepted but not acted on.
    pub experimental: Option<UnsupportedSection>,
    /// Bounds of the Workload API socket (sigil's own keys; SPIRE has none).
    pub workload_api_limits: WorkloadApiLimits,
    /// The top-level `health_checks` block.
    pub health_checks: HealthChecks,
    /// The top-level `telemetry` block, accepted but not acted on yet.
    pub telemetry: Option<UnsupportedSection>,
    /// The `plugins` block.
    pub plugins: AgentPlugins,
}

/// Bounds of the Workload API socket: `workload_api_max_connections` (default 1024),
/// `workload_api_max_connections_per_uid` (default 256) and `workload_api_idle_timeout` (a Go
/// duration, default `5m`: a connection without an open call for that long is closed; a
/// watch stream is an open call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadApiLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Connections open at once from one uid.
    pub max_connections_per_uid: usize,
    /// How long a connection may stay without an open call.
    pub idle_timeout: std::time::Duration,
}

impl Default for WorkloadApiLimits {
    fn default() -> Self {
        WorkloadApiLimits {
            max_connections: 1024,
            max_connections_per_uid: 256,
            idle_timeout: std::time::Duration::from_secs(300),
        }
    }
}

/// Where the agent's bootstrap trust bundle comes from: exactly one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrustBundleSource {
    /// `trust_bundle_path`
    Path(PathBuf),
    /// `trust_bundle_url` (https only).
    Url(String),
    /// `insecure_bootstrap = true`: trust the first server certificate seen.
    InsecureBootstrap,
}

/// `trust_bundle_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TrustBundleFormat {
    /// `pem`
    #[default]
    Pem,
    /// `spiffe`: a SPIFFE bundle (JWK set).
    Spiffe,
}

/// The `sds` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdsConfig {
    /// `default_svid_name` (default `default`).
    pub default_svid_name: String,
    /// `default_bundle_name` (default `ROOTCA`).
    pub default_bundle_name: String,
    /// `default_all_bundles_name` (default `ALL`).
    pub default_all_bundles_name: String,
    /// `disable_spiffe_cert_validation` (default false).
    pub disable_spiffe_cert_validation: bool,
}

impl Default for SdsConfig {
    fn default() -> Self {
        SdsConfig {
            default_svid_name: "default".to_owned(),
            default_bundle_name: "ROOTCA".to_owned(),
            default_all_bundles_name: "ALL".to_owned(),
            disable_spiffe_cert_validation: false,
        }
    }
}

/// The agent's plugins.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AgentPlugins {
    /// The one `NodeAttestor`.
    pub node_attestor: PluginConfig,
    /// The one `KeyManager`.
    pub key_manager: AgentKeyManagerConfig,
    /// One or more `WorkloadAttestor`s (built in: `unix`; others via WASM).
    pub workload_attestors: Vec<PluginConfig>,
}

/// The agent's `KeyManager`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AgentKeyManagerConfig {
    /// `KeyManager "memory"`.
    Memory,
    /// `KeyManager "disk"` with `directory`.
    Disk {
        /// `directory`
        directory: PathBuf,
    },
}

const TOP_KEYS: [&str; 4] = ["agent", "plugins", "health_checks", "telemetry"];
/// SPIRE's default for `x509_svid_cache_max_size` and `jwt_svid_cache_max_size`
/// (`DefaultSVIDCacheMaxSize`).
pub(crate) const DEFAULT_SVID_CACHE_MAX_SIZE: usize = 1000;

const AGENT_KEYS: [&str; 24] = [
    "data_dir",
    "log_level",
    "log_format",
    "log_file",
    "server_address",
    "server_port",
    "socket_path",
    "trust_domain",
    "trust_bundle_path",
    "trust_bundle_url",
    "trust_bundle_format",
    "insecure_bootstrap",
    "join_token",
    "admin_socket_path",
    "authorized_delegates",
    "sds",
    "workload_x509_svid_key_type",
    "allow_unauthenticated_verifiers",
    "x509_svid_cache_max_size",
    "jwt_svid_cache_max_size",
    "experimental",
    "workload_api_max_connections",
    "workload_api_max_connections_per_uid",
    "workload_api_idle_timeout",
];
const SDS_KEYS: [&str; 4] = [
    "default_svid_name",
    "default_bundle_name",
    "default_all_bundles_name",
    "disable_spiffe_cert_validation",
];
const CATALOGUE: &Catalogue = &[
    (
        PluginKind::NodeAttestor,
        &["join_token", "x509pop", "k8s_psat"],
    ),
    (PluginKind::KeyManager, &["memory", "disk"]),
    (PluginKind::WorkloadAttestor, &["unix", "k8s"]),
];

impl AgentConfig {
    /// Reads and validates `path`; with `expand_env`, `$VAR` / `${VAR}` are substituted first.
    pub fn from_file(path: impl AsRef<Path>, expand_env: bool) -> Result<AgentConfig, ConfigError> {
        let (text, file) = load::read(path.as_ref())?;
        AgentConfig::parse(&text, &file, expand_env)
    }

    /// Parses and validates config text; `file` names it in errors.
    pub fn parse(text: &str, file: &str, expand_env: bool) -> Result<AgentConfig, ConfigError> {
        let text = load::maybe_expand(text, expand_env);
        let tree = crate::hcl::parse(&text, file, "")?;
        read(Ctx { file }, &tree)
    }
}

fn read(ctx: Ctx<'_>, tree: &Section) -> Result<AgentConfig, ConfigError> {
    let top = Fields::new(ctx, "", tree, &TOP_KEYS)?;
    refuse_misplaced(&top, "agent")?;
    let agent = top
        .section("agent", &AGENT_KEYS)?
        .ok_or_else(|| ctx.missing(1, "agent"))?;
    let (td_text, td_line) = agent.required_string("trust_domain")?;
    let trust_domain = TrustDomain::new(&td_text).map_err(|e| {
        ctx.invalid(
            td_line,
            &agent.key("trust_domain"),
            format!("{td_text:?} is not a trust domain name: {e}"),
        )
    })?;
    let socket_path: PathBuf = agent
        .string_or("socket_path", "/tmp/spire-agent/public/api.sock")?
        .into();
    let admin_socket_path = agent.path("admin_socket_path")?;
    // As SPIRE: the admin socket may not be in the Workload API socket's directory or below
    // it, comparing absolute paths (a workload could otherwise reach the admin socket
    // through the directory that is open to every workload).
    if let Some(admin) = &admin_socket_path
        && let Some(workload_dir) = in_directory_of(admin, &socket_path)
    {
        let line = agent
            .entry("admin_socket_path")
            .map_or(agent.section.line, |e| e.line);
        return Err(ctx.conflict(
            line,
            &agent.key("admin_socket_path"),
            format!(
                "the admin socket must not be in the Workload API socket's directory ({}) \
                 or below it",
                workload_dir.display()
            ),
        ));
    }
    let format = match agent.choice("trust_bundle_format", &["pem", "spiffe"])? {
        Some(1) => TrustBundleFormat::Spiffe,
        _ => TrustBundleFormat::Pem,
    };
    Ok(AgentConfig {
        data_dir: agent.required_string("data_dir")?.0.into(),
        log: read_log(&agent)?,
        server_address: agent.required_string("server_address")?.0,
        server_port: agent.port("server_port", 8081)?,
        socket_path,
        trust_domain,
        trust_bundle: read_trust_bundle(&agent)?,
        trust_bundle_format: format,
        join_token: agent
            .string("join_token")?
            .map(|(s, _)| s)
            .filter(|s| !s.is_empty()),
        admin_socket_path,
        authorized_delegates: read_delegates(&agent)?,
        sds: read_sds(&agent)?,
        workload_x509_svid_key_type: read_key_type(
            &agent,
            "workload_x509_svid_key_type",
            &[KeyType::EcP256, KeyType::Rsa2048],
        )?,
        allow_unauthenticated_verifiers: agent.bool("allow_unauthenticated_verifiers", false)?,
        x509_svid_cache_max_size: read_cache_size(&agent, "x509_svid_cache_max_size")?,
        jwt_svid_cache_max_size: read_cache_size(&agent, "jwt_svid_cache_max_size")?,
        experimental: read_unsupported(&agent, "experimental")?,
        workload_api_limits: read_workload_api_limits(&agent)?,
        health_checks: read_health_checks(&top)?,
        telemetry: read_unsupported(&top, "telemetry")?,
        plugins: read_agent_plugins(ctx, &top)?,
    })
}

fn read_workload_api_limits(agent: &Fields<'_>) -> Result<WorkloadApiLimits, ConfigError> {
    let defaults = WorkloadApiLimits::default();
    Ok(WorkloadApiLimits {
        max_connections: agent.count("workload_api_max_connections", defaults.max_connections)?,
        max_connections_per_uid: agent.count(
            "workload_api_max_connections_per_uid",
            defaults.max_connections_per_uid,
        )?,
        idle_timeout: agent
            .ttl("workload_api_idle_timeout")?
            .unwrap_or(defaults.idle_timeout),
    })
}

/// The directory of `socket` when `path` is in it or below it, comparing absolute paths.
fn in_directory_of(path: &Path, socket: &Path) -> Option<PathBuf> {
    let path = std::path::absolute(path).ok()?;
    let socket = std::path::absolute(socket).ok()?;
    let dir = socket.parent()?;
    path.parent()
        .is_some_and(|own| own.starts_with(dir))
        .then(|| dir.to_owned())
}

/// An SVID cache size: an integer (or a quoted one, as HCL 1 decodes it), negative refused
/// and 0 taken as [`DEFAULT_SVID_CACHE_MAX_SIZE`], as SPIRE's agent does (`run.go` refuses a
/// negative size; its caches replace 0 with the default).
fn read_cache_size(agent: &Fields<'_>, key: &str) -> Result<usize, ConfigError> {
    let Some(entry) = agent.entry(key) else {
        return Ok(DEFAULT_SVID_CACHE_MAX_SIZE);
    };
    let value = match &entry.value {
        Node::Int(i) => Some(*i),
        Node::Str(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    let invalid = |reason: String| agent.ctx.invalid(entry.line, &agent.key(key), reason);
    match value {
        None => Err(invalid(format!(
            "expected a number of SVIDs, found {}",
            entry.value.type_name()
        ))),
        Some(size) if size < 0 => Err(invalid(format!(
            "{size} is negative; a cache size is a number of SVIDs (0 means the default, \
             {DEFAULT_SVID_CACHE_MAX_SIZE})"
        ))),
        Some(0) => Ok(DEFAULT_SVID_CACHE_MAX_SIZE),
        Some(size) => usize::try_from(size)
            .map_err(|_| invalid(format!("{size} is too large for this platform"))),
    }
}

fn read_trust_bundle(agent: &Fields<'_>) -> Result<TrustBundleSource, ConfigError> {
    let path = agent.path("trust_bundle_path")?;
    let url = agent.string("trust_bundle_url")?;
    let insecure = agent.bool("insecure_bootstrap", false)?;
    let line_of = |key: &str| agent.entry(key).map_or(agent.section.line, |e| e.line);
    // A conflict is reported at the later of the two keys.
    let conflict = |a: &str, b: &str, reason: &str| {
        let (line, key) = if line_of(a) > line_of(b) {
            (line_of(a), a)
        } else {
            (line_of(b), b)
        };
        agent.ctx.conflict(line, &agent.key(key), reason)
    };
    match (path, url, insecure) {
        (Some(_), Some(_), _) => Err(conflict(
            "trust_bundle_path",
            "trust_bundle_url",
            "set trust_bundle_path or trust_bundle_url, not both",
        )),
        (Some(_), None, true) => Err(conflict(
            "trust_bundle_path",
            "insecure_bootstrap",
            "insecure_bootstrap = true and trust_bundle_path exclude each other",
        )),
        (None, Some(_), true) => Err(conflict(
            "trust_bundle_url",
            "insecure_bootstrap",
            "insecure_bootstrap = true and trust_bundle_url exclude each other",
        )),
        (Some(p), None, false) => Ok(TrustBundleSource::Path(p)),
        (None, Some((u, line)), false) => {
            if !u.starts_with("https://") || u.len() <= "https://".len() {
                return Err(agent.ctx.invalid(
                    line,
                    &agent.key("trust_bundle_url"),
                    format!("{u:?} is not an https:// URL"),
                ));
            }
            Ok(TrustBundleSource::Url(u))
        }
        (None, None, true) => Ok(TrustBundleSource::InsecureBootstrap),
        (None, None, false) => Err(agent.ctx.conflict(
            agent.section.line,
            &agent.key("trust_bundle_path"),
            "one of trust_bundle_path, trust_bundle_url or insecure_bootstrap = true is required",
        )),
    }
}

fn read_delegates(agent: &Fields<'_>) -> Result<Vec<SpiffeId>, ConfigError> {
    let Some((ids, line)) = agent.strings("authorized_delegates")? else {
        return Ok(Vec::new());
    };
    ids.iter()
        .map(|id| {
            SpiffeId::from_str(id).map_err(|e| {
                agent.ctx.invalid(
                    line,
                    &agent.key("authorized_delegates"),
                    format!("{id:?} is not a SPIFFE ID: {e}"),
                )
            })
        })
        .collect()
}

fn read_sds(agent: &Fields<'_>) -> Result<SdsConfig, ConfigError> {
    let defaults = SdsConfig::default();
    let Some(sds) = agent.section("sds", &SDS_KEYS)? else {
        return Ok(defaults);
    };
    Ok(SdsConfig {
        default_svid_name: sds.string_or("default_svid_name", &defaults.default_svid_name)?,
        default_bundle_name: sds.string_or("default_bundle_name", &defaults.default_bundle_name)?,
        default_all_bundles_name: sds.string_or(
            "default_all_bundles_name",
            &defaults.default_all_bundles_name,
        )?,
        disable_spiffe_cert_validation: sds.bool("disable_spiffe_cert_validation", false)?,
    })
}

fn read_agent_plugins(ctx: Ctx<'_>, top: &Fields<'_>) -> Result<AgentPlugins, ConfigError> {
    let Some(entry) = top.entry("plugins") else {
        return Err(ctx.missing(1, "plugins"));
    };
    let section = entry
        .value
        .as_section()
        .ok_or_else(|| ctx.invalid(entry.line, "plugins", "expected a block"))?;
    let raw = read_plugins(ctx, section, CATALOGUE)?;
    let line = entry.line;
    let node_attestor = of_kind(ctx, &raw, line, PluginKind::NodeAttestor, 1, 1)?;
    let key_manager = of_kind(ctx, &raw, line, PluginKind::KeyManager, 1, 1)?;
    let workload = of_kind(ctx, &raw, line, PluginKind::WorkloadAttestor, 1, usize::MAX)?;
    for plugin in &workload {
        if plugin.config.name == "unix"
            && plugin.config.source == PluginSource::Builtin
            && plugin.config.data_file.is_none()
        {
            let empty = Section {
                line: plugin.config.line,
                entries: Vec::new(),
            };
            let data = native_data(ctx, plugin, &["discover_workload_path"], &empty)?;
            data.bool("discover_workload_path", false)?;
        }
    }
    Ok(AgentPlugins {
        node_attestor: node_attestor[0].config.clone(),
        key_manager: read_key_manager(ctx, key_manager[0])?,
        workload_attestors: workload.into_iter().map(|p| p.config.clone()).collect(),
    })
}

fn read_key_manager(
    ctx: Ctx<'_>,
    plugin: &RawPlugin<'_>,
) -> Result<AgentKeyManagerConfig, ConfigError> {
    let empty = Section {
        line: plugin.config.line,
        entries: Vec::new(),
    };
    if plugin.config.name == "memory" {
        native_data(ctx, plugin, &[], &empty)?;
        return Ok(AgentKeyManagerConfig::Memory);
    }
    let data = native_data(ctx, plugin, &["directory"], &empty)?;
    let (directory, _) = data.required_string("directory")?;
    Ok(AgentKeyManagerConfig::Disk {
        directory: directory.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_socket_stays_out_of_the_workload_socket_directory() {
        let workload = Path::new("/run/spire/public/api.sock");
        let refused = |admin: &str| in_directory_of(Path::new(admin), workload);
        let dir = Some(PathBuf::from("/run/spire/public"));
        assert_eq!(refused("/run/spire/public/admin.sock"), dir);
        assert_eq!(refused("/run/spire/public/admin/admin.sock"), dir);
        assert_eq!(refused("/run/spire/admin/admin.sock"), None);
        assert_eq!(refused("/run/spire/admin.sock"), None);
        // Relative paths are compared from the working directory, as SPIRE does.
        assert!(in_directory_of(Path::new("admin.sock"), Path::new("api.sock")).is_some());
        assert_eq!(
            in_directory_of(Path::new("/run/admin.sock"), Path::new("api.sock")),
            None
        );
    }

    #[test]
    fn a_refused_admin_socket_names_the_key_and_line() {
        let text = r#"agent {
  data_dir = "/var/lib/sigil-agent"
  server_address = "sigil-server"
  trust_domain = "example.org"
  trust_bundle_path = "/etc/sigil/bundle.pem"
  socket_path = "/run/spire/public/api.sock"
  admin_socket_path = "/run/spire/public/admin.sock"
  authorized_delegates = ["spiffe://example.org/delegate"]
}
plugins {
  NodeAttestor "join_token" {}
  KeyManager "memory" {}
  WorkloadAttestor "unix" {}
}
"#;
        let err = AgentConfig::parse(text, "agent.conf", false).expect_err("refused");
        assert_eq!(
            (err.line(), err.key()),
            (Some(7), Some("agent.admin_socket_path"))
        );
        assert!(err.to_string().contains("/run/spire/public"), "{err}");
        let moved = text.replace("public/admin.sock", "admin/admin.sock");
        let config = AgentConfig::parse(&moved, "agent.conf", false).expect("accepted");
        assert_eq!(
            config.admin_socket_path,
            Some(PathBuf::from("/run/spire/admin/admin.sock"))
        );
        assert_eq!(
            config.authorized_delegates,
            ["spiffe://example.org/delegate"
                .parse::<SpiffeId>()
                .expect("id")]
        );
    }
}
