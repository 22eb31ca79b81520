//! Which agent is calling, checked on every agent call as SPIRE's agent authorizer does: the
//! caller's SVID must be unexpired and be the agent's *active* SVID. An attested agent has a
//! current SVID serial and, after `RenewAgent`, the serial of the SVID just issued. Both are
//! accepted during the handover; the first call with the new SVID makes it current and clears
//! the new serial, so the old SVID is refused from then on. Attesting again replaces the
//! current serial the same way.

use sigil_proto::denied::DeniedReason;
use sigil_store::AgentMask;
use sigil_types::{AttestedAgent, SpiffeId};
use tonic::Request;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::caller_id;
use crate::api_error::ApiError;
use crate::setup::Server;
use crate::tokens::now;

/// The calling agent: the SPIFFE ID of its client certificate, which must be the active
/// SVID of an attested agent that is not banned.
///
/// The certificate is read before the returned future starts, so the future does not hold
/// the request (a streaming request is not `Sync`).
pub(crate) fn calling_agent<'a, T>(
    server: &'a Server,
    request: &Request<T>,
) -> impl Future<Output = Result<SpiffeId, ApiError>> + Send + use<'a, T> {
    let caller = caller_id(request).and_then(|id| Ok((id, presented_svid(request)?)));
    async move {
        let (id, presented) = caller?;
        active_agent(server, id, presented).await
    }
}

async fn active_agent(
    server: &Server,
    id: SpiffeId,
    presented: PresentedSvid,
) -> Result<SpiffeId, ApiError> {
    if presented.not_after < now() {
        return Err(ApiError::agent_denied(
            DeniedReason::AgentExpired,
            format!("agent {id} SVID is expired"),
        ));
    }
    // The cache answers the common case without the datastore: the current SVID.
    if let Some(cached) = server.cache.agent(&id) {
        if cached.banned {
            return Err(ApiError::agent_denied(
                DeniedReason::AgentBanned,
                format!("agent {id} is banned"),
            ));
        }
        if !cached.cert_serial_number.is_empty() && cached.cert_serial_number == presented.serial {
            return Ok(id);
        }
    }
    // Anything else (a new SVID, a cache that has not seen the agent yet, an old SVID) is
    // decided on the datastore's record.
    let agent = server
        .store
        .fetch_agent(&id)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| {
            ApiError::agent_denied(
                DeniedReason::AgentNotAttested,
                format!("{id} is not an attested agent"),
            )
        })?;
    if agent.banned {
        return Err(ApiError::agent_denied(
            DeniedReason::AgentBanned,
            format!("agent {id} is banned"),
        ));
    }
    if agent.cert_serial_number == presented.serial {
        return Ok(id);
    }
    if !agent.new_cert_serial_number.is_empty() && agent.new_cert_serial_number == presented.serial
    {
        activate_new_svid(server, agent).await?;
        return Ok(id);
    }
    tracing::info!(
        agent = %id,
        serial = %presented.serial,
        current = %agent.cert_serial_number,
        "agent SVID is not active"
    );
    Err(ApiError::agent_denied(
        DeniedReason::AgentNotActive,
        format!(
            "agent {id} expected to have serial number {:?}; has {:?}",
            agent.cert_serial_number, presented.serial
        ),
    ))
}

/// What the per-call check reads from the caller's leaf certificate.
struct PresentedSvid {
    /// Decimal, as the datastore stores it.
    serial: String,
    not_after: i64,
}

fn presented_svid<T>(request: &Request<T>) -> Result<PresentedSvid, ApiError> {
    let certs = request.peer_certs();
    let leaf = certs
        .as_deref()
        .and_then(|chain| chain.first())
        .ok_or_else(|| ApiError::unauthenticated("this call needs an X509-SVID (mTLS)"))?;
    // The TLS layer has verified this chain, so it parses.
    let (_, cert) = X509Certificate::from_der(leaf.as_ref())
        .map_err(|_| ApiError::unauthenticated("the client certificate cannot be read"))?;
    Ok(PresentedSvid {
        serial: serial_number(&cert),
        not_after: cert.validity().not_after.timestamp(),
    })
}

/// A certificate's serial number in decimal, SPIRE's form for the datastore.
pub(crate) fn serial_number(cert: &X509Certificate<'_>) -> String {
    cert.serial.to_str_radix(10)
}

/// The agent has used its new SVID: it becomes the current one and the old one is refused
/// from now on.
async fn activate_new_svid(server: &Server, agent: AttestedAgent) -> Result<(), ApiError> {
    let id = agent.spiffe_id.clone();
    let serial = agent.new_cert_serial_number.clone();
    let active = AttestedAgent {
        cert_serial_number: agent.new_cert_serial_number,
        cert_not_after: agent.new_cert_not_after,
        new_cert_serial_number: String::new(),
        new_cert_not_after: 0,
        ..agent
    };
    server
        .store
        .update_agent(active, &CERTIFICATE_MASK)
        .await
        .map_err(ApiError::from)?;
    // This server's next call from the agent must see the change (other servers follow the
    // event log within a second).
    if let Err(error) = server.cache.sync_once(server.store.as_ref()).await {
        tracing::warn!(error = %error, "entry cache sync after an agent SVID activation failed");
    }
    tracing::info!(agent = %id, %serial, "agent SVID activated");
    Ok(())
}

/// The certificate fields of an attested agent (SPIRE's `UpdateAttestedNodeCertificateMask`).
pub(crate) const CERTIFICATE_MASK: AgentMask = AgentMask {
    cert_serial_number: true,
    cert_not_after: true,
    new_cert_serial_number: true,
    new_cert_not_after: true,
    can_reattest: true,
    selectors: false,
    banned: false,
    agent_version: false,
};
