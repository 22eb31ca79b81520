//! Each kind of mistake gives `file:line: key: reason`, with the line of the mistake.

use sigil_config::{AgentConfig, ConfigError, ServerConfig};

/// A valid server.conf; line numbers below refer to it (line 1 is `server {`).
const SERVER: &str = r#"server {
  trust_domain = "example.org"
  data_dir = "/var/lib/sigil"
  ca_ttl = "24h"
}
plugins {
  DataStore "sql" {
    plugin_data {
      database_type = "sqlite3"
      connection_string = "/var/lib/sigil/datastore.sqlite3"
    }
  }
  KeyManager "memory" {}
  NodeAttestor "join_token" {}
}
"#;

/// A valid agent.conf; line 1 is `agent {`.
const AGENT: &str = r#"agent {
  data_dir = "/var/lib/sigil-agent"
  server_address = "sigil-server"
  trust_domain = "example.org"
  trust_bundle_path = "/etc/sigil/bundle.pem"
}
plugins {
  NodeAttestor "join_token" {}
  KeyManager "memory" {}
  WorkloadAttestor "unix" {}
}
"#;

fn server_error(text: &str) -> ConfigError {
    match ServerConfig::parse(text, "server.conf", false) {
        Ok(config) => panic!("config should be refused, got {config:?}"),
        Err(err) => err,
    }
}

fn agent_error(text: &str) -> ConfigError {
    match AgentConfig::parse(text, "agent.conf", false) {
        Ok(config) => panic!("config should be refused, got {config:?}"),
        Err(err) => err,
    }
}

/// `SERVER` with `from` replaced by `to` (which must occur).
fn server_with(from: &str, to: &str) -> String {
    assert!(SERVER.contains(from), "{from:?} not in SERVER");
    SERVER.replacen(from, to, 1)
}

fn agent_with(from: &str, to: &str) -> String {
    assert!(AGENT.contains(from), "{from:?} not in AGENT");
    AGENT.replacen(from, to, 1)
}

#[test]
fn the_base_configs_are_valid() {
    ServerConfig::parse(SERVER, "server.conf", false).unwrap();
    AgentConfig::parse(AGENT, "agent.conf", false).unwrap();
}

#[test]
fn bad_duration() {
    let err = server_error(&server_with("\"24h\"", "\"3x\""));
    assert_eq!(
        err.to_string(),
        "server.conf:4: server.ca_ttl: \"3x\" is not a duration (use e.g. 24h, 30m, 90s)"
    );
    assert_eq!((err.line(), err.key()), (Some(4), Some("server.ca_ttl")));

    let err = server_error(&server_with("\"24h\"", "\"1500ms\""));
    assert_eq!(
        err.to_string(),
        "server.conf:4: server.ca_ttl: \"1500ms\" is not a whole number of seconds; TTLs have \
         second precision"
    );
}

#[test]
fn unknown_key() {
    let err = server_error(&server_with("  ca_ttl", "  ca_tll"));
    let text = err.to_string();
    assert!(
        text.starts_with(
            "server.conf:4: server.ca_tll: unknown key (accepted here: bind_address, bind_port,"
        ),
        "{text}"
    );
    assert!(text.contains("ca_ttl"), "{text}");
    assert!(
        text.ends_with("jwt_issuer, agent_ttl, audit_log_enabled)"),
        "{text}"
    );

    let err = server_error(&format!("{SERVER}federation {{\n}}\n"));
    assert_eq!(
        err.to_string(),
        "server.conf:16: federation: unknown key (accepted here: server, plugins, \
         health_checks, telemetry)"
    );

    let err = server_error(&server_with(
        "database_type = \"sqlite3\"",
        "database_type = \"sqlite3\"\n      max_open_conns = 10",
    ));
    assert_eq!(
        err.to_string(),
        "server.conf:10: plugins.DataStore.sql.plugin_data.max_open_conns: unknown key \
         (accepted here: database_type, connection_string)"
    );
}

#[test]
fn bad_native_plugin_value() {
    let err = server_error(&server_with("\"sqlite3\"", "\"mysql\""));
    assert_eq!(
        err.to_string(),
        "server.conf:9: plugins.DataStore.sql.plugin_data.database_type: \"mysql\" is not one \
         of sqlite3, postgres"
    );
    let err = server_error(&server_with(
        "KeyManager \"memory\" {}",
        "KeyManager \"disk\" {}",
    ));
    assert_eq!(
        err.to_string(),
        "server.conf:13: plugins.KeyManager.disk.plugin_data.keys_path: required but not set"
    );
}

#[test]
fn unknown_plugin_name_and_kind() {
    let err = server_error(&server_with("\"join_token\"", "\"aws_iid\""));
    assert_eq!(
        err.to_string(),
        "server.conf:14: plugins.NodeAttestor.aws_iid: unknown NodeAttestor plugin \"aws_iid\" \
         (built-in: join_token, x509pop, k8s_psat; load any other with plugin_wasm = \"/path/plugin.wasm\")"
    );
    let err = server_error(&server_with(
        "KeyManager \"memory\"",
        "KeyManager \"aws_kms\"",
    ));
    assert_eq!(
        err.to_string(),
        "server.conf:13: plugins.KeyManager.aws_kms: unknown KeyManager plugin \"aws_kms\" \
         (accepted: memory, disk)"
    );
    // Notifier is SPIRE's k8sbundle only (run as the k8s_configmap publisher).
    let err = server_error(&server_with(
        "  NodeAttestor \"join_token\" {}",
        "  NodeAttestor \"join_token\" {}\n  Notifier \"gcs_bundle\" {}",
    ));
    assert_eq!(
        err.to_string(),
        "server.conf:15: plugins.Notifier.gcs_bundle: unknown Notifier plugin \"gcs_bundle\" \
         (accepted: k8sbundle)"
    );
    let err = server_error(&server_with(
        "  NodeAttestor \"join_token\" {}",
        "  NodeAttestor \"join_token\" {}\n  SVIDStore \"aws_secretsmanager\" {}",
    ));
    assert_eq!(
        err.to_string(),
        "server.conf:15: plugins.SVIDStore: unknown plugin type (accepted here: DataStore, \
         KeyManager, NodeAttestor, UpstreamAuthority, BundlePublisher, Notifier)"
    );
    // WorkloadAttestor is an agent plugin.
    let err = server_error(&server_with(
        "  NodeAttestor \"join_token\" {}",
        "  NodeAttestor \"join_token\" {}\n  WorkloadAttestor \"unix\" {}",
    ));
    assert!(
        matches!(err, ConfigError::UnknownPluginKind { line: 15, .. }),
        "{err}"
    );
}

#[test]
fn bad_trust_domain() {
    let err = server_error(&server_with("\"example.org\"", "\"Example Org\""));
    let text = err.to_string();
    assert!(
        text.starts_with(
            "server.conf:2: server.trust_domain: \"Example Org\" is not a trust domain name"
        ),
        "{text}"
    );
    let err = agent_error(&agent_with("\"example.org\"", "\"spiffe://example.org/x\""));
    assert!(
        err.to_string()
            .starts_with("agent.conf:4: agent.trust_domain: "),
        "{err}"
    );
}

#[test]
fn missing_required_key() {
    let err = server_error(&server_with("  data_dir = \"/var/lib/sigil\"\n", ""));
    assert_eq!(
        err.to_string(),
        "server.conf:1: server.data_dir: required but not set"
    );
    let err = server_error(&server_with("  trust_domain = \"example.org\"\n", ""));
    assert_eq!(
        err.to_string(),
        "server.conf:1: server.trust_domain: required but not set"
    );
    let err = agent_error(&agent_with("  server_address = \"sigil-server\"\n", ""));
    assert_eq!(
        err.to_string(),
        "agent.conf:1: agent.server_address: required but not set"
    );
    let err = server_error("plugins {\n}\n");
    assert_eq!(
        err.to_string(),
        "server.conf:1: server: required but not set"
    );
}

#[test]
fn plugin_counts() {
    let err = server_error(&server_with(
        "  KeyManager \"memory\" {}",
        "  KeyManager \"memory\" {}\n  KeyManager \"disk\" {\n    plugin_data { keys_path = \"/k\" }\n  }",
    ));
    assert_eq!(
        err.to_string(),
        "server.conf:14: plugins.KeyManager: exactly one KeyManager plugin is required, found 2"
    );
    let err = server_error(&server_with("  NodeAttestor \"join_token\" {}\n", ""));
    assert_eq!(
        err.to_string(),
        "server.conf:6: plugins.NodeAttestor: at least 1 NodeAttestor plugin(s) are required, \
         found 0"
    );
    let err = server_error(&server_with(
        "  NodeAttestor \"join_token\" {}",
        "  NodeAttestor \"join_token\" {\n    enabled = false\n  }",
    ));
    assert!(
        matches!(err, ConfigError::PluginCount { line: 6, .. }),
        "{err}"
    );
}

#[test]
fn two_datastores() {
    let text = server_with("  KeyManager", "  DataStore \"sql2\" {}\n  KeyManager");
    // `sql2` is not a data store sigil has: refused by name before counting.
    assert!(matches!(
        server_error(&text),
        ConfigError::UnknownPlugin { line: 13, .. }
    ));
    // Two DataStore blocks of the one kind sigil has.
    let text = SERVER.replace(
        "  KeyManager \"memory\" {}",
        "  DataStore \"sql\" {\n  }\n  KeyManager \"memory\" {}",
    );
    let err = server_error(&text);
    assert_eq!(
        err.to_string(),
        "server.conf:13: plugins.DataStore.sql: set more than once (first at line 7)"
    );
}

#[test]
fn plugin_cmd_is_refused() {
    let err = server_error(&server_with(
        "  NodeAttestor \"join_token\" {}",
        "  NodeAttestor \"aws_iid\" {\n    plugin_cmd = \"/opt/aws_iid\"\n  }",
    ));
    assert_eq!(
        err.to_string(),
        "server.conf:15: plugins.NodeAttestor.aws_iid.plugin_cmd: plugin_cmd is not supported: \
         sigil loads WebAssembly plugins via plugin_wasm = \"/path/plugin.wasm\" (with \
         plugin_checksum = \"<sha256 hex>\")"
    );
}

#[test]
fn wasm_only_for_wasm_kinds_and_checksums_are_sha256() {
    let err = server_error(&server_with(
        "KeyManager \"memory\" {}",
        "KeyManager \"vault\" {\n    plugin_wasm = \"/opt/vault.wasm\"\n  }",
    ));
    assert_eq!(err.line(), Some(14), "{err}");
    assert!(
        err.to_string()
            .contains("KeyManager plugins are native in sigil"),
        "{err}"
    );
    let err = server_error(&server_with(
        "NodeAttestor \"join_token\" {}",
        "NodeAttestor \"tpm\" {\n    plugin_wasm = \"/opt/tpm.wasm\"\n    plugin_checksum = \"abc\"\n  }",
    ));
    assert_eq!(
        err.to_string(),
        "server.conf:16: plugins.NodeAttestor.tpm.plugin_checksum: \"abc\" is not a SHA-256 \
         digest (64 hex digits)"
    );
}

#[test]
fn trust_bundle_path_and_url_both_set() {
    let err = agent_error(&agent_with(
        "  trust_bundle_path = \"/etc/sigil/bundle.pem\"",
        "  trust_bundle_path = \"/etc/sigil/bundle.pem\"\n  trust_bundle_url = \"https://bundle.example.org\"",
    ));
    assert_eq!(
        err.to_string(),
        "agent.conf:6: agent.trust_bundle_url: set trust_bundle_path or trust_bundle_url, not both"
    );
    let err = agent_error(&agent_with(
        "  trust_bundle_path = \"/etc/sigil/bundle.pem\"",
        "  insecure_bootstrap = true\n  trust_bundle_path = \"/etc/sigil/bundle.pem\"",
    ));
    assert_eq!(
        err.to_string(),
        "agent.conf:6: agent.trust_bundle_path: insecure_bootstrap = true and \
         trust_bundle_path exclude each other"
    );
    let err = agent_error(&agent_with(
        "  trust_bundle_path = \"/etc/sigil/bundle.pem\"\n",
        "",
    ));
    assert_eq!(
        err.to_string(),
        "agent.conf:1: agent.trust_bundle_path: one of trust_bundle_path, trust_bundle_url or \
         insecure_bootstrap = true is required"
    );
    let err = agent_error(&agent_with(
        "trust_bundle_path = \"/etc/sigil/bundle.pem\"",
        "trust_bundle_url = \"http://bundle.example.org\"",
    ));
    assert!(
        err.to_string()
            .starts_with("agent.conf:5: agent.trust_bundle_url: "),
        "{err}"
    );
}

#[test]
fn agent_value_errors() {
    let err = agent_error(&agent_with(
        "  trust_domain",
        "  authorized_delegates = [\"spiffe://example.org/ok\", \"not-an-id\"]\n  trust_domain",
    ));
    assert!(
        err.to_string().starts_with(
            "agent.conf:4: agent.authorized_delegates: \"not-an-id\" is not a SPIFFE ID"
        ),
        "{err}"
    );
    let err = agent_error(&agent_with(
        "  trust_domain",
        "  server_port = 70000\n  trust_domain",
    ));
    assert_eq!(
        err.to_string(),
        "agent.conf:4: agent.server_port: 70000 is not a port number (0-65535)"
    );
    let err = agent_error(&agent_with(
        "  trust_domain",
        "  admin_socket_path = \"/tmp/spire-agent/public/admin.sock\"\n  trust_domain",
    ));
    assert!(
        err.to_string()
            .starts_with("agent.conf:4: agent.admin_socket_path: "),
        "{err}"
    );
    let err = agent_error(&agent_with(
        "WorkloadAttestor \"unix\" {}",
        "WorkloadAttestor \"unix\" {\n    plugin_data { discover_workload_path = \"yes\" }\n  }",
    ));
    assert_eq!(
        err.to_string(),
        "agent.conf:11: plugins.WorkloadAttestor.unix.plugin_data.discover_workload_path: \
         expected true or false, found a string"
    );
    let err = agent_error(&agent_with(
        "  trust_domain",
        "  workload_x509_svid_key_type = \"ec-p384\"\n  trust_domain",
    ));
    assert_eq!(
        err.to_string(),
        "agent.conf:4: agent.workload_x509_svid_key_type: \"ec-p384\" is not one of ec-p256, \
         rsa-2048"
    );
}

#[test]
fn a_negative_or_non_numeric_svid_cache_size_is_refused_with_its_key() {
    for key in ["x509_svid_cache_max_size", "jwt_svid_cache_max_size"] {
        let err = agent_error(&agent_with(
            "  trust_domain",
            &format!("  {key} = -1\n  trust_domain"),
        ));
        assert_eq!(
            err.to_string(),
            format!(
                "agent.conf:4: agent.{key}: -1 is negative; a cache size is a number of SVIDs \
                 (0 means the default, 1000)"
            )
        );
        assert_eq!(err.key(), Some(format!("agent.{key}").as_str()));
        let err = agent_error(&agent_with(
            "  trust_domain",
            &format!("  {key} = \"many\"\n  trust_domain"),
        ));
        assert_eq!(
            err.to_string(),
            format!("agent.conf:4: agent.{key}: expected a number of SVIDs, found a string")
        );
    }
}

#[test]
fn syntax_and_structure_errors() {
    let err = server_error(&server_with("ca_ttl = \"24h\"", "ca_ttl = \"24h"));
    assert!(matches!(err, ConfigError::Syntax { line: 4, .. }), "{err}");
    assert!(
        err.to_string().starts_with("server.conf:4: syntax error: "),
        "{err}"
    );

    let err = server_error(&server_with(
        "  ca_ttl = \"24h\"",
        "  ca_ttl = \"24h\"\n  ca_ttl = \"1h\"",
    ));
    assert_eq!(err.line(), Some(5), "{err}");

    let err = server_error(&format!(
        "{SERVER}health_checks {{\n  bind_port = \"http\"\n}}\n"
    ));
    assert_eq!(
        err.to_string(),
        "server.conf:17: health_checks.bind_port: \"http\" is not a port number (0-65535)"
    );
    let err = server_error(&server_with("  ca_ttl", "  health_checks {}\n  ca_ttl"));
    assert_eq!(
        err.to_string(),
        "server.conf:4: server.health_checks: health_checks is a top-level block, not part of server"
    );
    let err = server_error(&server_with("\"24h\"", "upper(\"24h\")"));
    assert!(
        err.to_string()
            .starts_with("server.conf:4: server.ca_ttl: expressions are not supported"),
        "{err}"
    );
    let err = server_error(&server_with("  ca_ttl = \"24h\"", "  bind_port = true"));
    assert_eq!(
        err.to_string(),
        "server.conf:4: server.bind_port: expected a port number, found a bool"
    );
}
