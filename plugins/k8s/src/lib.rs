//! The `k8s` workload attestor, with SPIRE's selectors.
//!
//! The host finds the pod that runs the calling process on this node's kubelet
//! (`pod-lookup`, which the agent grants from this plugin's `plugin_data`: SPIRE's kubelet
//! keys) and this plugin turns it into SPIRE's selector values: `sa`, `ns`, `node-name`,
//! `pod-uid`, `pod-name`, `pod-label:<key>:<value>`, `pod-owner:<Kind>:<name>`,
//! `pod-owner-uid:<Kind>:<uid>`, `pod-image`, `pod-init-image`, `pod-image-count`,
//! `pod-init-image-count`, and for the process's own container `container-name` and
//! `container-image` (unless `disable_container_selectors = true`).
//!
//! A process that is not in a container gets no selectors. One whose container no pod on
//! the node runs, after the configured polling, gets none either and a warning in the log:
//! SPIRE's plugin fails that call and SPIRE's agent then drops the plugin's selectors and
//! keeps the other attestors', which is the same outcome; sigil's agent fails the whole
//! attestation when one attestor fails, so the plugin reports "no pod" instead.

use sigil_pdk::{PluginError, WorkloadAttestor, WorkloadProcess, log, pods};

mod config;
mod selectors;

pub use config::Config;
pub use selectors::{ContainerStatus, Pod, container_selectors, pod_selectors};

/// The plugin: its configuration.
#[derive(Debug)]
pub struct K8s {
    config: Config,
}

impl K8s {
    /// The selector values for a found pod and, when the host matched it, the workload's
    /// container status (both the kubelet's JSON).
    pub fn selectors(
        &self,
        pod_json: &str,
        container_json: Option<&str>,
    ) -> Result<Vec<String>, String> {
        let pod = Pod::from_json(pod_json)?;
        let mut values = pod_selectors(&pod);
        if !self.config.disable_container_selectors {
            // The host only answers without a container status when asked not to require
            // one; anything else is a host fault worth naming.
            let json = container_json.ok_or_else(|| {
                "the host found the pod but not the workload's container status".to_owned()
            })?;
            values.extend(container_selectors(&ContainerStatus::from_json(json)?));
        }
        Ok(values)
    }
}

impl WorkloadAttestor for K8s {
    fn configure(_trust_domain: &str, config: &str) -> Result<Self, PluginError> {
        let config = Config::parse(config).map_err(PluginError::InvalidArgument)?;
        Ok(K8s { config })
    }

    fn attest(&self, process: &WorkloadProcess) -> Result<Vec<String>, PluginError> {
        let required = !self.config.disable_container_selectors;
        // Asked even without a container ID: the host answers `none` for a process outside
        // any container, and an error for cgroups that name two containers or pods.
        let Some(found) = pods::pod_of(process, required)? else {
            match process.container_id() {
                None => log::debug(&format!(
                    "process {} is not in a container: no k8s selectors",
                    process.pid()
                )),
                Some(container_id) => log::warn(&format!(
                    "no pod on this node runs container {container_id} (pod UID {}) of process {}: no k8s selectors",
                    process.pod_uid().as_deref().unwrap_or("unknown"),
                    process.pid()
                )),
            }
            return Ok(Vec::new());
        };
        self.selectors(&found.pod, found.container_status.as_deref())
            .map_err(PluginError::Unavailable)
    }
}

sigil_pdk::export_workload_attestor!(K8s);

#[cfg(test)]
mod tests;
