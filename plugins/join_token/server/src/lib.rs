//! The built-in `join_token` node attestor, server side.
//!
//! The agent's payload is a join token an operator generated (`sigil-server token
//! generate`). The host redeems it (the token is deleted as it is checked, so it works
//! once, and an expired one is refused); the agent ID is SPIRE's
//! `spiffe://<trust domain>/spire/agent/join_token/<token>`. No selectors, and no
//! re-attestation: a used token cannot attest again.
//!
//! Grants: `join-tokens` (the server grants it to this plugin).

use sigil_pdk::{AgentAttributes, NodeAttestorServer, PluginError, Step, join_tokens};

/// Longest token accepted; the server generates 36-character UUIDs.
const MAX_TOKEN_LEN: usize = 256;

/// The plugin: the trust domain the agent IDs belong to.
#[derive(Debug)]
struct JoinToken {
    trust_domain: String,
}

impl NodeAttestorServer for JoinToken {
    fn configure(trust_domain: &str, config: &str) -> Result<Self, PluginError> {
        if let Some(line) = config
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("//"))
        {
            return Err(PluginError::InvalidArgument(format!(
                "join_token takes no plugin_data, found {line:?}"
            )));
        }
        Ok(JoinToken {
            trust_domain: trust_domain.to_owned(),
        })
    }

    fn attest(&self, payload: Vec<u8>) -> Result<Step, PluginError> {
        let token = String::from_utf8(payload)
            .map_err(|_| PluginError::InvalidArgument("the join token is not UTF-8".into()))?;
        check_token(&token)?;
        join_tokens::redeem(&token)?;
        Ok(Step::Done(AgentAttributes {
            agent_id: format!(
                "spiffe://{}/spire/agent/join_token/{token}",
                self.trust_domain
            ),
            selectors: Vec::new(),
            can_reattest: false,
        }))
    }

    fn resume(&self, _state: Vec<u8>, _response: Vec<u8>) -> Result<Step, PluginError> {
        Err(PluginError::InvalidArgument(
            "join_token attestation has no challenge".into(),
        ))
    }
}

/// A token becomes a path segment of the agent ID: letters, digits, `-`, `_` and `.` only.
fn check_token(token: &str) -> Result<(), PluginError> {
    if token.is_empty() {
        return Err(PluginError::InvalidArgument(
            "the join token is empty".into(),
        ));
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(PluginError::InvalidArgument(format!(
            "the join token is longer than {MAX_TOKEN_LEN} bytes"
        )));
    }
    let valid = token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && token != "."
        && token != "..";
    if valid {
        Ok(())
    } else {
        Err(PluginError::InvalidArgument(
            "the join token has characters other than letters, digits, '-', '_' and '.'".into(),
        ))
    }
}

sigil_pdk::export_node_attestor_server!(JoinToken);
