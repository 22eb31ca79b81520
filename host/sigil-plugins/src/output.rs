//! The host's rules for what a plugin returns: selectors get the configured plugin name as
//! their type and obey count and length limits; SPIFFE IDs must parse and be in the
//! configured trust domain; agent IDs must also follow SPIRE's agent-ID form.

use std::str::FromStr;

use sigil_types::{Selector, SpiffeId, TrustDomain};

use crate::error::PluginError;
use crate::limits::Limits;
use crate::state::truncate;

/// Typed, checked selectors from a plugin's selector values.
pub(crate) fn selectors(
    plugin: &str,
    limits: &Limits,
    values: &[String],
) -> Result<Vec<Selector>, PluginError> {
    if values.len() > limits.max_selectors {
        return Err(invalid(
            plugin,
            format!(
                "{} selectors, more than the limit of {}",
                values.len(),
                limits.max_selectors
            ),
        ));
    }
    values
        .iter()
        .map(|value| {
            if value.len() > limits.max_selector_len {
                return Err(invalid(
                    plugin,
                    format!(
                        "a selector value of {} bytes, longer than the limit of {}",
                        value.len(),
                        limits.max_selector_len
                    ),
                ));
            }
            Selector::new(plugin, value).map_err(|e| {
                invalid(
                    plugin,
                    format!("selector value {:?}: {e}", truncate(value, 128)),
                )
            })
        })
        .collect()
}

/// A SPIFFE ID in `trust_domain`.
pub(crate) fn spiffe_id(
    plugin: &str,
    trust_domain: &TrustDomain,
    id: &str,
) -> Result<SpiffeId, PluginError> {
    let parsed = SpiffeId::from_str(id).map_err(|e| {
        invalid(
            plugin,
            format!("malformed SPIFFE ID {:?}: {e}", truncate(id, 256)),
        )
    })?;
    if !parsed.is_member_of(trust_domain) {
        return Err(invalid(
            plugin,
            format!(
                "SPIFFE ID {parsed} is not in the trust domain {}",
                trust_domain.name()
            ),
        ));
    }
    Ok(parsed)
}

/// An agent ID: a SPIFFE ID in `trust_domain` of the form
/// `spiffe://<trust domain>/spire/agent/<plugin>/<suffix>` with a non-empty suffix.
pub(crate) fn agent_id(
    plugin: &str,
    trust_domain: &TrustDomain,
    id: &str,
) -> Result<SpiffeId, PluginError> {
    let parsed = spiffe_id(plugin, trust_domain, id)?;
    let prefix = format!("/spire/agent/{plugin}/");
    match parsed.path().strip_prefix(&prefix) {
        Some(suffix) if !suffix.is_empty() => Ok(parsed),
        _ => Err(invalid(
            plugin,
            format!(
                "agent ID {parsed} does not have the form spiffe://{}{prefix}<suffix>",
                trust_domain.name()
            ),
        )),
    }
}

/// At most `limits.max_message_bytes` of opaque bytes (payloads, challenges, state).
pub(crate) fn message(
    plugin: &str,
    limits: &Limits,
    what: &str,
    bytes: Vec<u8>,
) -> Result<Vec<u8>, PluginError> {
    if bytes.len() > limits.max_message_bytes {
        return Err(invalid(
            plugin,
            format!(
                "a {what} of {} bytes, longer than the limit of {}",
                bytes.len(),
                limits.max_message_bytes
            ),
        ));
    }
    Ok(bytes)
}

fn invalid(plugin: &str, reason: String) -> PluginError {
    PluginError::InvalidOutput {
        plugin: plugin.to_owned(),
        reason,
    }
}
