//! The built-in `k8s_psat` node attestor, agent side: sends the pod's projected
//! service-account token and the configured cluster name, as SPIRE's agent does
//! (payload `{"cluster": "…", "token": "…"}`).
//!
//! `plugin_data` (SPIRE's keys): `cluster` (required: a cluster name the server's
//! `k8s_psat` knows) and `token_path` (default `/var/run/secrets/tokens/spire-agent`).
//! The token is read at every attestation, so the kubelet's rotation of the projected
//! token is picked up.
//!
//! Grants: the file `token_path` (the agent grants the default path when the key is unset).

use serde::{Deserialize, Serialize};
use sigil_pdk::{NodeAttestorAgent, PluginError, files};

/// The plugin: the cluster to name.
#[derive(Debug)]
struct K8sPsat {
    cluster: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    cluster: String,
    /// Read by the host, which grants the file under this name.
    #[serde(default)]
    #[expect(
        dead_code,
        reason = "the host grants the file; the plugin reads it by name"
    )]
    token_path: Option<String>,
}

/// The attestation payload, SPIRE's `PSATAttestationData`.
#[derive(Debug, Serialize)]
struct Payload<'a> {
    cluster: &'a str,
    token: &'a str,
}

impl NodeAttestorAgent for K8sPsat {
    fn configure(_trust_domain: &str, config: &str) -> Result<Self, PluginError> {
        let config: Config =
            sigil_pdk::config::from_hcl(config).map_err(PluginError::InvalidArgument)?;
        if config.cluster.is_empty() {
            return Err(PluginError::InvalidArgument(
                "cluster is required: the name of a cluster the server's k8s_psat configures"
                    .into(),
            ));
        }
        Ok(K8sPsat {
            cluster: config.cluster,
        })
    }

    fn payload(&self) -> Result<Vec<u8>, PluginError> {
        let token = files::read("token_path")?;
        let token = String::from_utf8(token).map_err(|_| {
            PluginError::InvalidArgument("the service-account token is not text".into())
        })?;
        let token = token.trim();
        if token.is_empty() {
            return Err(PluginError::Unavailable(
                "the service-account token file is empty".into(),
            ));
        }
        serde_json::to_vec(&Payload {
            cluster: &self.cluster,
            token,
        })
        .map_err(|e| PluginError::Internal(format!("cannot encode the payload: {e}")))
    }

    fn answer(&self, _challenge: Vec<u8>) -> Result<Vec<u8>, PluginError> {
        Err(PluginError::InvalidArgument(
            "k8s_psat attestation has no challenge".into(),
        ))
    }
}

sigil_pdk::export_node_attestor_agent!(K8sPsat);
