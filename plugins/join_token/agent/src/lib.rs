//! The built-in `join_token` node attestor, agent side: sends the join token as the
//! payload. The agent passes the token (its `join_token` setting or `-joinToken` flag) in
//! `plugin_data` as `join_token = "<token>"`.

use sigil_pdk::{NodeAttestorAgent, PluginError};

/// The plugin: the token to present.
#[derive(Debug)]
struct JoinToken {
    token: String,
}

impl NodeAttestorAgent for JoinToken {
    fn configure(_trust_domain: &str, config: &str) -> Result<Self, PluginError> {
        let mut token = None;
        for line in config.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with("//") {
                continue;
            }
            let (key, value) = line.split_once('=').ok_or_else(|| {
                PluginError::InvalidArgument(format!("expected `key = value`, found {line:?}"))
            })?;
            match key.trim() {
                "join_token" => {
                    let value = value.trim();
                    let unquoted = value
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or(value);
                    token = Some(unquoted.to_owned());
                }
                other => {
                    return Err(PluginError::InvalidArgument(format!(
                        "unknown key {other:?} (join_token knows only join_token)"
                    )));
                }
            }
        }
        match token {
            Some(token) if !token.is_empty() => Ok(JoinToken { token }),
            _ => Err(PluginError::InvalidArgument(
                "no join token: set join_token in the agent configuration or pass -joinToken"
                    .into(),
            )),
        }
    }

    fn payload(&self) -> Result<Vec<u8>, PluginError> {
        Ok(self.token.clone().into_bytes())
    }

    fn answer(&self, _challenge: Vec<u8>) -> Result<Vec<u8>, PluginError> {
        Err(PluginError::InvalidArgument(
            "join_token attestation has no challenge".into(),
        ))
    }
}

sigil_pdk::export_node_attestor_agent!(JoinToken);
