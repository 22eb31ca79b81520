//! Attested agents and join tokens.

use std::fmt;

use crate::{Selector, SpiffeId, UnixTime};

/// A node whose agent has attested to the server.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AttestedAgent {
    /// The agent's SPIFFE ID, `spiffe://<td>/spire/agent/<plugin>/<suffix>`.
    pub spiffe_id: SpiffeId,
    /// The node attestor that attested it (`join_token`, `x509pop`…).
    pub attestation_type: String,
    /// Serial number (decimal) of the agent's current SVID.
    pub cert_serial_number: String,
    /// Expiry of the agent's current SVID.
    pub cert_not_after: UnixTime,
    /// Serial number of an SVID issued but not yet used by the agent (renewal in flight).
    pub new_cert_serial_number: String,
    /// Expiry of that SVID; 0 when none.
    pub new_cert_not_after: UnixTime,
    /// Selectors the node attestor produced.
    pub selectors: Vec<Selector>,
    /// A banned agent is refused until it is deleted and attests again.
    pub banned: bool,
    /// The agent may re-attest with its node attestor instead of renewing.
    pub can_reattest: bool,
    /// The software version the agent last reported (SPIRE's `PostStatus`); empty if none.
    pub agent_version: String,
}

/// A one-time token an agent presents with the `join_token` node attestor.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// The secret token. Never printed by `Debug`.
    pub token: String,
    /// After this the token is refused and pruned.
    pub expires_at: UnixTime,
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}
