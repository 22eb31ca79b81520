//! The `unix` workload attestor, with SPIRE's selectors.
//!
//! For the calling process: `uid:<n>`, `user:<name>`, `gid:<n>`, `group:<name>`,
//! `supplementary_gid:<n>` and `supplementary_group:<name>` for each supplementary group,
//! and, only with `discover_workload_path = true`, `path:<exe path>` and `sha256:<hex>`.
//! Names appear only when the node's databases have them (the host resolves them).
//!
//! Configuration (`plugin_data`, HCL attributes): `discover_workload_path = true|false`
//! (default false). Any other key is refused.

use sigil_pdk::{PluginError, WorkloadAttestor, WorkloadProcess};

mod config;

pub use config::Config;

/// The plugin: its configuration.
#[derive(Debug)]
pub struct Unix {
    config: Config,
}

impl WorkloadAttestor for Unix {
    fn configure(_trust_domain: &str, config: &str) -> Result<Self, PluginError> {
        let config = Config::parse(config).map_err(PluginError::InvalidArgument)?;
        Ok(Unix { config })
    }

    fn attest(&self, process: &WorkloadProcess) -> Result<Vec<String>, PluginError> {
        let mut selectors = Vec::new();
        let uid = process.uid();
        selectors.push(format!("uid:{uid}"));
        if let Some(user) = process.user_name() {
            selectors.push(format!("user:{user}"));
        }
        let gid = process.gid();
        selectors.push(format!("gid:{gid}"));
        if let Some(group) = process.group_name(gid) {
            selectors.push(format!("group:{group}"));
        }
        for gid in process.supplementary_gids() {
            selectors.push(format!("supplementary_gid:{gid}"));
            if let Some(group) = process.group_name(gid) {
                selectors.push(format!("supplementary_group:{group}"));
            }
        }
        if self.config.discover_workload_path {
            selectors.push(format!("path:{}", process.exe_path()?));
            selectors.push(format!("sha256:{}", process.exe_sha256()?));
        }
        Ok(selectors)
    }
}

sigil_pdk::export_workload_attestor!(Unix);
