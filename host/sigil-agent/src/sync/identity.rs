//! The agent's own identity inside the sync loop: renewal at half-life (by attesting again
//! when the agent is reattestable, as SPIRE's agent does, else by `RenewAgent`), and
//! recovery when the server refuses the agent (evicted or banned).

use sigil_types::x509::validity;

use super::Syncer;
use crate::attest;
use crate::error::AgentError;
use crate::storage::AgentSvid;

impl Syncer {
    /// A new agent SVID when the current one is past half-life on the injected clock.
    pub(super) async fn renew_agent_if_due(&mut self) -> Result<(), AgentError> {
        let leaf = self
            .agent
            .chain
            .first()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let (not_before, not_after) =
            validity(leaf).map_err(|e| AgentError::bad("RenewAgent", e))?;
        if self.clock.now() < not_before + (not_after - not_before) / 2 {
            return Ok(());
        }
        let renewed = match &self.attestor {
            Some(attestor) => attest::attest(&self.client, attestor).await?,
            None => attest::renew(&self.client).await?,
        };
        self.adopt(renewed)?;
        tracing::info!(spiffe_id = %self.agent.spiffe_id, reattested = self.attestor.is_some(), "agent SVID renewed");
        Ok(())
    }

    /// The server refused the agent itself (evicted or banned). A reattestable agent that is
    /// not banned attests again; otherwise, as SPIRE's agent does, the stored SVID is removed
    /// and the agent stops, so that its next start attests anew.
    pub(super) async fn recover(&mut self, error: &AgentError) -> Result<(), AgentError> {
        let reason = refused(error).unwrap_or_default().to_owned();
        if let Some(attestor) = self.attestor.as_ref().filter(|_| !banned(error)) {
            tracing::warn!(spiffe_id = %self.agent.spiffe_id, %reason, "the server no longer accepts the agent; attesting again");
            match attest::attest(&self.client, attestor).await {
                Ok(svid) => {
                    self.adopt(svid)?;
                    tracing::info!(spiffe_id = %self.agent.spiffe_id, "node attested again");
                    return Ok(());
                }
                // Refused attestation ends the agent like an eviction; anything else is
                // retried by the loop.
                Err(failed) if refused(&failed).is_none() => return Ok(()),
                Err(failed) => tracing::error!(error = %failed, "attesting again was refused"),
            }
        }
        tracing::error!(spiffe_id = %self.agent.spiffe_id, %reason, "the server no longer accepts the agent; removing its SVID and stopping");
        self.data.remove_agent_svid()?;
        Err(AgentError::Evicted {
            spiffe_id: self.agent.spiffe_id.to_string(),
            reason,
        })
    }

    /// Takes `svid` as the agent's identity: stored, and used from the next connection on.
    fn adopt(&mut self, svid: AgentSvid) -> Result<(), AgentError> {
        self.data.store_agent_svid(&svid)?;
        self.client.set_identity(&svid.chain, &svid.key)?;
        self.client.reconnect();
        self.agent = svid;
        Ok(())
    }
}

/// Whether the server refused the agent as banned (then it must not attest again on its own):
/// SPIRE's typed `PermissionDeniedDetails` reason decides, not the message text.
fn banned(error: &AgentError) -> bool {
    matches!(error, AgentError::Server { status, .. } if sigil_proto::denied::is_banned(status))
}

/// The server's message when it refused the agent itself: a call the agent makes with its
/// SVID answered PermissionDenied (the server does not know the agent any more, or it is
/// banned). Refusals of single SVIDs come inside `BatchNewX509SVID`'s results, not here.
pub(super) fn refused(error: &AgentError) -> Option<&str> {
    match error {
        AgentError::Server { call, status }
            if status.code() == tonic::Code::PermissionDenied && *call != "GetBundle" =>
        {
            Some(status.message())
        }
        _ => None,
    }
}
