//! `Agent` and `JoinToken`.

use sigil_types::{AttestedAgent, JoinToken};

use super::entry::selectors;
use super::{ConvertError, required_spiffe_id};
use crate::spire::api::types as wire;

impl TryFrom<&wire::Agent> for AttestedAgent {
    type Error = ConvertError;

    /// SPIRE's `Agent` carries only the current SVID; a renewal in flight
    /// (`new_cert_serial_number`) is server-internal and comes back empty.
    fn try_from(a: &wire::Agent) -> Result<Self, Self::Error> {
        Ok(Self {
            spiffe_id: required_spiffe_id("id", a.id.as_ref())?,
            attestation_type: a.attestation_type.clone(),
            cert_serial_number: a.x509svid_serial_number.clone(),
            cert_not_after: a.x509svid_expires_at,
            new_cert_serial_number: String::new(),
            new_cert_not_after: 0,
            selectors: selectors("selectors", &a.selectors)?,
            banned: a.banned,
            can_reattest: a.can_reattest,
            agent_version: a.agent_version.clone(),
        })
    }
}

impl From<&AttestedAgent> for wire::Agent {
    fn from(a: &AttestedAgent) -> Self {
        Self {
            id: Some((&a.spiffe_id).into()),
            attestation_type: a.attestation_type.clone(),
            x509svid_serial_number: a.cert_serial_number.clone(),
            x509svid_expires_at: a.cert_not_after,
            selectors: a.selectors.iter().map(Into::into).collect(),
            banned: a.banned,
            can_reattest: a.can_reattest,
            agent_version: a.agent_version.clone(),
        }
    }
}

impl TryFrom<&wire::JoinToken> for JoinToken {
    type Error = ConvertError;

    fn try_from(t: &wire::JoinToken) -> Result<Self, Self::Error> {
        if t.value.is_empty() {
            return Err(ConvertError::field("value", "is required"));
        }
        if t.value.chars().any(char::is_control) {
            return Err(ConvertError::field("value", "contains a control character"));
        }
        Ok(Self {
            token: t.value.clone(),
            expires_at: t.expires_at,
        })
    }
}

impl From<&JoinToken> for wire::JoinToken {
    fn from(t: &JoinToken) -> Self {
        Self {
            value: t.token.clone(),
            expires_at: t.expires_at,
        }
    }
}
