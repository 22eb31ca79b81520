//! sigil-config against SPIRE-style config files: full server and agent configs parse with
//! every field checked, and each kind of mistake is refused with `file:line: key: reason`.

use std::path::PathBuf;
use std::time::Duration;

use sigil_config::{
    AgentConfig, AgentKeyManagerConfig, ConfigError, DataValue, DatabaseType, KeyManagerConfig,
    KeyType, LogFormat, LogLevel, PluginData, PluginKind, PluginSource, ServerConfig,
    TrustBundleFormat, TrustBundleSource,
};

/// A server.conf in the shape of SPIRE's Kubernetes quickstart and the Istio SPIRE guide.
const SERVER_CONF: &str = r#"
# SPIRE server configuration
server {
    bind_address = "0.0.0.0"
    bind_port = "8081"
    socket_path = "/tmp/spire-server/private/api.sock"
    trust_domain = "example.org"
    data_dir = "/run/spire/data"
    log_level = "DEBUG"
    log_format = "json"
    ca_key_type = "ec-p384"
    ca_ttl = "168h"
    default_x509_svid_ttl = "2h"
    default_jwt_svid_ttl = "10m"
    jwt_issuer = "https://oidc.example.org"
    agent_ttl = "72h"
    audit_log_enabled = true
    ca_subject = {
        country = ["US"],
        organization = ["SPIFFE"],
        common_name = "",
    }
}

plugins {
    DataStore "sql" {
        plugin_data {
            database_type = "sqlite3"
            connection_string = "/run/spire/data/datastore.sqlite3"
        }
    }

    KeyManager "disk" {
        plugin_data {
            keys_path = "/run/spire/data/keys.json"
        }
    }

    NodeAttestor "join_token" { plugin_data {} }

    NodeAttestor "k8s_psat" {
        plugin_wasm = "/opt/sigil/plugins/k8s_psat.wasm"
        plugin_checksum = "ABCDEF0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789"
        plugin_data {
            clusters = {
                "demo-cluster" = {
                    service_account_allow_list = ["spire:spire-agent"]
                }
            }
        }
    }

    NodeAttestor "x509pop" {
        enabled = false
    }

    UpstreamAuthority "disk" {
        plugin_data {
            cert_file_path = "/run/spire/upstream/ca.crt"
            key_file_path = "/run/spire/upstream/ca.key"
        }
    }

    BundlePublisher "disk" {
        plugin_data { format = "spiffe" }
    }
}

health_checks {
    listener_enabled = true
    bind_address = "0.0.0.0"
    bind_port = "8080"
    live_path = "/live"
    ready_path = "/ready"
}

telemetry {
    Prometheus {
        port = 9988
    }
}
"#;

#[test]
fn full_server_conf_parses_with_every_field() {
    let config = ServerConfig::parse(SERVER_CONF, "server.conf", false).unwrap();
    assert_eq!(config.bind_address, "0.0.0.0");
    assert_eq!(config.bind_port, 8081);
    assert_eq!(
        config.socket_path,
        PathBuf::from("/tmp/spire-server/private/api.sock")
    );
    assert_eq!(config.trust_domain.name(), "example.org");
    assert_eq!(config.data_dir, PathBuf::from("/run/spire/data"));
    assert_eq!(config.log.level, LogLevel::Debug);
    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!(config.log.file, None);
    assert_eq!(config.ca_key_type, KeyType::EcP384);
    assert_eq!(config.ca_ttl, Duration::from_secs(168 * 3600));
    assert_eq!(config.default_x509_svid_ttl, Duration::from_secs(7200));
    assert_eq!(config.default_jwt_svid_ttl, Duration::from_secs(600));
    assert_eq!(
        config.jwt_issuer.as_deref(),
        Some("https://oidc.example.org")
    );
    assert_eq!(config.agent_ttl, Some(Duration::from_secs(72 * 3600)));
    assert!(config.audit_log_enabled);
    assert_eq!(config.ca_subject.country, ["US"]);
    assert_eq!(config.ca_subject.organization, ["SPIFFE"]);
    assert_eq!(config.ca_subject.common_name, "");

    let hc = &config.health_checks;
    assert!(hc.listener_enabled);
    assert_eq!((hc.bind_address.as_str(), hc.bind_port), ("0.0.0.0", 8080));
    assert_eq!(
        (hc.live_path.as_str(), hc.ready_path.as_str()),
        ("/live", "/ready")
    );
    let telemetry = config.telemetry.as_ref().unwrap();
    assert_eq!((telemetry.key.as_str(), telemetry.line), ("telemetry", 77));

    let plugins = &config.plugins;
    assert_eq!(plugins.data_store.database_type, DatabaseType::Sqlite3);
    assert_eq!(
        plugins.data_store.connection_string,
        "/run/spire/data/datastore.sqlite3"
    );
    assert_eq!(
        plugins.key_manager,
        KeyManagerConfig::Disk {
            keys_path: "/run/spire/data/keys.json".into()
        }
    );
    let upstream = plugins.upstream_authority.as_ref().unwrap();
    assert_eq!(
        upstream.cert_file_path,
        PathBuf::from("/run/spire/upstream/ca.crt")
    );
    assert_eq!(
        upstream.key_file_path,
        PathBuf::from("/run/spire/upstream/ca.key")
    );
    assert_eq!(upstream.bundle_file_path, None);

    // x509pop is disabled, so two node attestors remain, in file order.
    let names: Vec<&str> = plugins
        .node_attestors
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["join_token", "k8s_psat"]);
    let join_token = &plugins.node_attestors[0];
    assert_eq!(join_token.kind, PluginKind::NodeAttestor);
    assert_eq!(join_token.source, PluginSource::Builtin);
    assert_eq!(join_token.data_text, "");
    assert_eq!(join_token.line, 39);
    let psat = &plugins.node_attestors[1];
    assert_eq!(
        psat.source,
        PluginSource::Wasm {
            path: "/opt/sigil/plugins/k8s_psat.wasm".into(),
            checksum: Some(
                "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789".into()
            ),
        }
    );
    assert_eq!(
        psat.data_text,
        "clusters = {\n  \"demo-cluster\" = {\n    service_account_allow_list = [\"spire:spire-agent\"]\n  }\n}\n"
    );
    assert_eq!(psat.line, 41);
    let publisher = &plugins.bundle_publishers[0];
    assert_eq!(
        (publisher.name.as_str(), publisher.data_text.as_str()),
        ("disk", "format = \"spiffe\"\n")
    );
}

#[test]
fn server_defaults_are_spires() {
    let text = r#"
server {
  trust_domain = "example.org"
  data_dir = "/var/lib/sigil"
}
plugins {
  DataStore "sql" { plugin_data { database_type = "postgres"
    connection_string = "dbname=spire" } }
  KeyManager "memory" {
    plugin_data = {}
  }
  NodeAttestor "x509pop" {}
}
"#;
    let config = ServerConfig::parse(text, "server.conf", false).unwrap();
    assert_eq!(config.bind_address, "0.0.0.0");
    assert_eq!(config.bind_port, 8081);
    assert_eq!(
        config.socket_path,
        PathBuf::from("/tmp/spire-server/private/api.sock")
    );
    assert_eq!(config.log.level, LogLevel::Info);
    assert_eq!(config.log.format, LogFormat::Text);
    assert_eq!(config.ca_key_type, KeyType::EcP256);
    assert_eq!(config.ca_ttl, Duration::from_secs(86_400));
    assert_eq!(config.default_x509_svid_ttl, Duration::from_secs(3600));
    assert_eq!(config.default_jwt_svid_ttl, Duration::from_secs(300));
    assert_eq!(config.ca_subject.organization, ["SPIFFE"]);
    assert_eq!((config.jwt_issuer, config.agent_ttl), (None, None));
    assert!(!config.audit_log_enabled);
    assert!(!config.health_checks.listener_enabled);
    assert_eq!(config.health_checks.bind_address, "localhost");
    assert_eq!(config.health_checks.bind_port, 80);
    assert_eq!(config.telemetry, None);
    assert_eq!(
        config.plugins.data_store.database_type,
        DatabaseType::Postgres
    );
    assert_eq!(config.plugins.key_manager, KeyManagerConfig::Memory);
    assert_eq!(config.plugins.upstream_authority, None);
    assert!(config.plugins.bundle_publishers.is_empty());
}

const AGENT_CONF: &str = r#"
agent {
    data_dir = "/run/spire"
    log_level = "warn"
    server_address = "spire-server.spire"
    server_port = "8081"
    socket_path = "/run/secrets/workload-spiffe-uds/socket"
    trust_bundle_path = "/run/spire/bundle/bundle.crt"
    trust_bundle_format = "spiffe"
    trust_domain = "example.org"
    join_token = "3d4c7e2a-5b1f-4c7d-9e8a-1f2b3c4d5e6f"
    admin_socket_path = "/run/spire/admin/admin.sock"
    authorized_delegates = ["spiffe://example.org/ns/kube-system/sa/ztunnel"]
    workload_x509_svid_key_type = "rsa-2048"
    allow_unauthenticated_verifiers = false
    sds {
        default_svid_name = "default"
        default_bundle_name = "ROOTCA"
        default_all_bundles_name = "ALL"
        disable_spiffe_cert_validation = true
    }
}

plugins {
    NodeAttestor "join_token" {
        plugin_data {}
    }
    KeyManager "disk" {
        plugin_data { directory = "/run/spire/keys" }
    }
    WorkloadAttestor "unix" {
        plugin_data {
            discover_workload_path = true
        }
    }
    WorkloadAttestor "k8s" {
        plugin_wasm = "/opt/sigil/k8s.wasm"
        plugin_data_file = "/etc/sigil/k8s.hcl"
    }
}

health_checks {
    listener_enabled = true
    bind_port = "8080"
}
"#;

#[test]
fn full_agent_conf_parses_with_every_field() {
    let config = AgentConfig::parse(AGENT_CONF, "agent.conf", false).unwrap();
    assert_eq!(config.data_dir, PathBuf::from("/run/spire"));
    assert_eq!(config.log.level, LogLevel::Warn);
    assert_eq!(config.server_address, "spire-server.spire");
    assert_eq!(config.server_port, 8081);
    assert_eq!(
        config.socket_path,
        PathBuf::from("/run/secrets/workload-spiffe-uds/socket")
    );
    assert_eq!(config.trust_domain.name(), "example.org");
    assert_eq!(
        config.trust_bundle,
        TrustBundleSource::Path("/run/spire/bundle/bundle.crt".into())
    );
    assert_eq!(config.trust_bundle_format, TrustBundleFormat::Spiffe);
    assert_eq!(
        config.join_token.as_deref(),
        Some("3d4c7e2a-5b1f-4c7d-9e8a-1f2b3c4d5e6f")
    );
    assert_eq!(
        config.admin_socket_path,
        Some("/run/spire/admin/admin.sock".into())
    );
    let delegates: Vec<&str> = config
        .authorized_delegates
        .iter()
        .map(|d| d.as_str())
        .collect();
    assert_eq!(
        delegates,
        ["spiffe://example.org/ns/kube-system/sa/ztunnel"]
    );
    assert_eq!(config.workload_x509_svid_key_type, KeyType::Rsa2048);
    assert!(!config.allow_unauthenticated_verifiers);
    assert_eq!(config.sds.default_svid_name, "default");
    assert_eq!(config.sds.default_bundle_name, "ROOTCA");
    assert_eq!(config.sds.default_all_bundles_name, "ALL");
    assert!(config.sds.disable_spiffe_cert_validation);
    assert_eq!(config.experimental, None);
    assert!(config.health_checks.listener_enabled);
    assert_eq!(config.health_checks.bind_port, 8080);
    assert_eq!(config.health_checks.live_path, "/live");

    let plugins = &config.plugins;
    assert_eq!(plugins.node_attestor.name, "join_token");
    assert_eq!(
        plugins.key_manager,
        AgentKeyManagerConfig::Disk {
            directory: "/run/spire/keys".into()
        }
    );
    let unix = &plugins.workload_attestors[0];
    assert_eq!((unix.name.as_str(), unix.line), ("unix", 31));
    assert_eq!(unix.data_text, "discover_workload_path = true\n");
    assert_eq!(
        unix.data.get("discover_workload_path"),
        Some(&DataValue::Bool(true))
    );
    let k8s = &plugins.workload_attestors[1];
    assert_eq!(k8s.data_file, Some("/etc/sigil/k8s.hcl".into()));
    assert_eq!(k8s.data_text, "");
}

#[test]
fn agent_defaults_and_insecure_bootstrap() {
    let text = r#"
agent {
  data_dir = "/var/lib/sigil-agent"
  server_address = "127.0.0.1"
  trust_domain = "example.org"
  insecure_bootstrap = true
}
plugins {
  NodeAttestor "join_token" {}
  KeyManager "memory" {}
  WorkloadAttestor "unix" {}
}
"#;
    let config = AgentConfig::parse(text, "agent.conf", false).unwrap();
    assert_eq!(config.trust_bundle, TrustBundleSource::InsecureBootstrap);
    assert_eq!(config.server_port, 8081);
    assert_eq!(
        config.socket_path,
        PathBuf::from("/tmp/spire-agent/public/api.sock")
    );
    assert_eq!(config.trust_bundle_format, TrustBundleFormat::Pem);
    assert_eq!(config.workload_x509_svid_key_type, KeyType::EcP256);
    assert_eq!(config.sds.default_bundle_name, "ROOTCA");
    assert!(!config.sds.disable_spiffe_cert_validation);
    assert_eq!(config.join_token, None);
    assert!(config.authorized_delegates.is_empty());
    assert_eq!(config.plugins.key_manager, AgentKeyManagerConfig::Memory);
}

#[test]
fn svid_cache_sizes_are_spires_keys_with_spires_defaults() {
    let base = r#"
agent {
  data_dir = "/var/lib/sigil-agent"
  server_address = "127.0.0.1"
  trust_domain = "example.org"
  insecure_bootstrap = true
  EXTRA
}
plugins {
  NodeAttestor "join_token" {}
  KeyManager "memory" {}
  WorkloadAttestor "unix" {}
}
"#;
    let sizes = |extra: &str| {
        let config = AgentConfig::parse(&base.replace("EXTRA", extra), "agent.conf", false)
            .unwrap_or_else(|e| panic!("{extra}: {e}"));
        (
            config.x509_svid_cache_max_size,
            config.jwt_svid_cache_max_size,
        )
    };
    assert_eq!(sizes(""), (1000, 1000));
    assert_eq!(
        sizes(
            "x509_svid_cache_max_size = 50
  jwt_svid_cache_max_size = \"7\""
        ),
        (50, 7)
    );
    // 0 is SPIRE's "unset": the default.
    assert_eq!(
        sizes(
            "x509_svid_cache_max_size = 0
  jwt_svid_cache_max_size = 0"
        ),
        (1000, 1000)
    );
}

// === errors ===

#[path = "config/errors.rs"]
mod errors;

#[test]
fn from_file_reads_and_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.conf");
    std::fs::write(&path, SERVER_CONF.replace("\"168h\"", "\"3x\"")).unwrap();
    let err = ServerConfig::from_file(&path, false).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:12: server.ca_ttl: \"3x\" is not a duration (use e.g. 24h, 30m, 90s)",
            path.display()
        )
    );
    assert_eq!(ConfigError::EXIT_CODE, 64);

    let missing = dir.path().join("nope.conf");
    let err = AgentConfig::from_file(&missing, false).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("{}: cannot read", missing.display()))
    );
}

#[test]
fn plugin_data_round_trips_through_its_text() {
    let text = r#"
plain = "value with \"quotes\", a \\ backslash,
 and $${not_a_template} %%{nor_this}"
number = 42
negative = -7
ratio = 0.25
flag = false
nothing = null
list = ["a", 1, true, [2.5]]
object = { "key with space" = "x", nested = { deep = [1] } }
block "label one" "two" {
  inner = "v"
  deeper {
    n = 1
  }
}
"#
    .replace(",\n and", ",\\n and");
    let data = PluginData::parse(&text).unwrap();
    assert_eq!(data.entries.len(), 9);
    assert_eq!(
        data.get("plain"),
        Some(&DataValue::String(
            "value with \"quotes\", a \\ backslash,\n and ${not_a_template} %{nor_this}".into()
        ))
    );
    assert_eq!(data.get("negative"), Some(&DataValue::Integer(-7)));
    assert_eq!(data.get("ratio"), Some(&DataValue::Float(0.25)));
    let rendered = data.to_hcl();
    let again = PluginData::parse(&rendered).unwrap();
    assert_eq!(again, data, "rendered:\n{rendered}");
    assert_eq!(again.to_hcl(), rendered);
    assert_eq!(PluginData::default().to_hcl(), "");
}

#[test]
fn expand_env_substitutes_and_unset_vars_become_empty() {
    // A variable that is set in this process, with a value that is a usable string.
    let (name, value) = std::env::vars()
        .find(|(k, v)| {
            !v.is_empty()
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b))
        })
        .expect("some environment variable with a plain value");
    let unset = "SIGIL_CONFIG_TEST_SURELY_UNSET_7F3A";
    assert!(std::env::var(unset).is_err());
    let text = SERVER_CONF
        .replace("\"/run/spire/data\"", &format!("\"${{{name}}}/data\""))
        .replace(
            "\"https://oidc.example.org\"",
            &format!("\"https://oidc${unset}.org\""),
        );
    let config = ServerConfig::parse(&text, "server.conf", true).unwrap();
    assert_eq!(config.data_dir, PathBuf::from(format!("{value}/data")));
    assert_eq!(config.jwt_issuer.as_deref(), Some("https://oidc.org"));

    // Without -expandEnv the text is taken as written, and `${` is refused with a pointer.
    let err = ServerConfig::parse(&text, "server.conf", false).unwrap_err();
    assert_eq!(err.line(), Some(8), "{err}");
    assert!(err.to_string().contains("-expandEnv"), "{err}");
}

/// The `name: |` block of a ConfigMap in a manifest of `deploy/`, unindented.
#[expect(
    clippy::expect_used,
    reason = "test set-up: a missing manifest must fail the test"
)]
fn manifest_block(manifest: &str, name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(manifest);
    let text = std::fs::read_to_string(&path).expect("read the manifest");
    let header = format!("{name}: |");
    let mut lines = text.lines().skip_while(|l| l.trim() != header);
    let indent = lines
        .next()
        .map(|l| l.len() - l.trim_start().len())
        .expect("the block")
        + 2;
    lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() >= indent)
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_deployed_server_conf_loads() {
    let text = manifest_block("base/30-server.yaml", "server.conf");
    let config = ServerConfig::parse(&text, "deploy/base/30-server.yaml", false)
        .expect("the server.conf of deploy/ loads");
    assert_eq!(config.plugins.node_attestors[0].name, "k8s_psat");
    assert_eq!(config.plugins.notifiers[0].name, "k8sbundle");
}

#[test]
fn the_deployed_agent_conf_loads() {
    let text = manifest_block("base/40-agent.yaml", "agent.conf");
    let config = AgentConfig::parse(&text, "deploy/base/40-agent.yaml", false)
        .expect("the agent.conf of deploy/ loads");
    assert_eq!(config.plugins.node_attestor.name, "k8s_psat");
    assert!(
        config
            .plugins
            .workload_attestors
            .iter()
            .any(|p| p.name == "k8s"),
        "{:?}",
        config.plugins.workload_attestors
    );
}
