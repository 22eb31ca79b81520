//! `server.conf` for tests, in process or as a process: trust domain `example.org`, a SQL
//! DataStore, a KeyManager, a NodeAttestor, and whatever the test adds.

use std::path::{Path, PathBuf};

/// The parts of a test server's HCL configuration. [`ServerConf::in_dir`] gives the
/// defaults; a test changes the fields it cares about (`ServerConf { bind_port: Some(0),
/// ..ServerConf::in_dir(dir) }`).
#[derive(Debug, Clone)]
pub struct ServerConf {
    /// `socket_path`: the admin socket.
    pub socket: PathBuf,
    /// `data_dir`.
    pub data_dir: PathBuf,
    /// `bind_address = "127.0.0.1"` and this `bind_port`, for a server process (0: the server
    /// picks one and logs it, see [`crate::process::ServerProcess::agent_api`]). `None` for
    /// an in-process server, which serves the agent API on a listener it is handed.
    pub bind_port: Option<u16>,
    /// `log_level`, when set. A process whose bound addresses a test reads needs INFO or
    /// DEBUG.
    pub log_level: Option<&'static str>,
    /// The DataStore's `plugin_data` body ([`sqlite_data_store`], [`postgres_data_store`]).
    pub data_store: String,
    /// The KeyManager block ([`MEMORY_KEY_MANAGER`], [`disk_key_manager`]).
    pub key_manager: String,
    /// The NodeAttestor block ([`JOIN_TOKEN_ATTESTOR`] by default).
    pub node_attestor: String,
    /// More lines of the `server` block (`ca_subject { … }`, `ca_ttl = …`).
    pub server_extra: String,
    /// More top-level blocks after `plugins` (`health_checks { … }`).
    pub tail: String,
}

/// The in-memory KeyManager block.
pub const MEMORY_KEY_MANAGER: &str = "KeyManager \"memory\" {\n        plugin_data {}\n    }";

/// The join-token NodeAttestor block.
pub const JOIN_TOKEN_ATTESTOR: &str =
    "NodeAttestor \"join_token\" {\n        plugin_data {}\n    }";

impl ServerConf {
    /// A server in `dir`: admin socket `dir/server.sock`, data in `dir/server-data`, SQLite
    /// there, keys in memory, join-token attestation, no agent API port of its own.
    pub fn in_dir(dir: &Path) -> ServerConf {
        let data_dir = dir.join("server-data");
        ServerConf {
            socket: dir.join("server.sock"),
            data_store: sqlite_data_store(&data_dir),
            data_dir,
            bind_port: None,
            log_level: None,
            key_manager: MEMORY_KEY_MANAGER.to_owned(),
            node_attestor: JOIN_TOKEN_ATTESTOR.to_owned(),
            server_extra: String::new(),
            tail: String::new(),
        }
    }

    /// The HCL text.
    pub fn text(&self) -> String {
        let bind = self.bind_port.map_or_else(String::new, |port| {
            format!("bind_address = \"127.0.0.1\"\n    bind_port = \"{port}\"\n    ")
        });
        let log_level = self.log_level.map_or_else(String::new, |level| {
            format!("log_level = \"{level}\"\n    ")
        });
        format!(
            r#"server {{
    {bind}socket_path = "{socket}"
    trust_domain = "example.org"
    data_dir = "{data}"
    {log_level}{server_extra}
}}
plugins {{
    DataStore "sql" {{
        plugin_data {{
            {data_store}
        }}
    }}
    {key_manager}
    {node_attestor}
}}
{tail}"#,
            socket = self.socket.display(),
            data = self.data_dir.display(),
            server_extra = self.server_extra,
            data_store = self.data_store,
            key_manager = self.key_manager,
            node_attestor = self.node_attestor,
            tail = self.tail,
        )
    }

    /// Writes the HCL text to `path`.
    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.text())
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}

/// The DataStore `plugin_data` body for a SQLite database in `data_dir`.
pub fn sqlite_data_store(data_dir: &Path) -> String {
    format!(
        "database_type = \"sqlite3\"\n            connection_string = \"{}/datastore.sqlite3\"",
        data_dir.display()
    )
}

/// The DataStore `plugin_data` body for the PostgreSQL database at `url` (a
/// [`crate::postgres::Schema::store_url`]).
pub fn postgres_data_store(url: &str) -> String {
    format!("database_type = \"postgres\"\n            connection_string = \"{url}\"")
}

/// The disk KeyManager block, keys in `dir`.
pub fn disk_key_manager(dir: &Path) -> String {
    format!(
        "KeyManager \"disk\" {{\n        plugin_data {{\n            keys_path = \"{}\"\n        }}\n    }}",
        dir.display()
    )
}
