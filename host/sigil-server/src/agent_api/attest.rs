//! `AttestAgent` and `RenewAgent`: node attestation through the configured node attestor
//! plugin, over as many challenge rounds as it asks for, then the agent's X509-SVID.

use std::sync::Arc;
use std::time::Duration;

use sigil_ca::{CaManager, X509SvidParams};
use sigil_plugins::{AttestationStep, AttestedNode, NodeAttestorServer};
use sigil_proto::denied::DeniedReason;
use sigil_proto::spire::api::server::agent::v1 as api;
use sigil_proto::spire::api::types as wire;
use sigil_store::AgentMask;
use sigil_types::AttestedAgent;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::caller::{CERTIFICATE_MASK, serial_number};
use crate::api::agent::AgentApi;
use crate::api_error::ApiError;
use crate::setup::Server;
use crate::tokens::now;

/// Most challenge rounds one attestation may take.
const MAX_ROUNDS: usize = 8;
/// How long the server waits for an agent's answer to a challenge.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// The agent service as agents see it on the TCP API.
pub(crate) struct AgentPeerApi(pub(crate) Arc<Server>);

type Sender = mpsc::Sender<Result<api::AttestAgentResponse, Status>>;

#[tonic::async_trait]
impl api::agent_server::Agent for AgentPeerApi {
    type AttestAgentStream = ReceiverStream<Result<api::AttestAgentResponse, Status>>;

    async fn attest_agent(
        &self,
        request: Request<Streaming<api::AttestAgentRequest>>,
    ) -> Result<Response<Self::AttestAgentStream>, Status> {
        let mut stream = request.into_inner();
        let (send, receive) = mpsc::channel(2);
        let server = self.0.clone();
        tokio::spawn(async move {
            let result = attest(&server, &mut stream, &send).await;
            let message = match result {
                Ok((svid, reattestable)) => Ok(api::AttestAgentResponse {
                    step: Some(api::attest_agent_response::Step::Result(
                        api::attest_agent_response::Result {
                            svid: Some(svid),
                            reattestable,
                        },
                    )),
                }),
                Err(error) => {
                    let status: Status = error.into();
                    tracing::info!(code = ?status.code(), message = status.message(), "agent attestation refused");
                    Err(status)
                }
            };
            let _ = send.send(message).await;
        });
        Ok(Response::new(ReceiverStream::new(receive)))
    }

    async fn renew_agent(
        &self,
        request: Request<api::RenewAgentRequest>,
    ) -> Result<Response<api::RenewAgentResponse>, Status> {
        let agent_id = super::calling_agent(&self.0, &request).await?;
        let csr = request
            .into_inner()
            .params
            .ok_or_else(|| ApiError::invalid_argument("params are required"))?
            .csr;
        let svid = renew(&self.0, &agent_id, &csr).await?;
        Ok(Response::new(api::RenewAgentResponse { svid: Some(svid) }))
    }

    async fn count_agents(
        &self,
        request: Request<api::CountAgentsRequest>,
    ) -> Result<Response<api::CountAgentsResponse>, Status> {
        super::calling_admin(&self.0, &request).await?;
        AgentApi(self.0.clone()).count_agents(request).await
    }

    async fn list_agents(
        &self,
        request: Request<api::ListAgentsRequest>,
    ) -> Result<Response<api::ListAgentsResponse>, Status> {
        super::calling_admin(&self.0, &request).await?;
        AgentApi(self.0.clone()).list_agents(request).await
    }

    async fn get_agent(
        &self,
        request: Request<api::GetAgentRequest>,
    ) -> Result<Response<wire::Agent>, Status> {
        super::calling_admin(&self.0, &request).await?;
        AgentApi(self.0.clone()).get_agent(request).await
    }

    async fn delete_agent(
        &self,
        request: Request<api::DeleteAgentRequest>,
    ) -> Result<Response<()>, Status> {
        super::calling_admin(&self.0, &request).await?;
        AgentApi(self.0.clone()).delete_agent(request).await
    }

    async fn ban_agent(
        &self,
        request: Request<api::BanAgentRequest>,
    ) -> Result<Response<()>, Status> {
        super::calling_admin(&self.0, &request).await?;
        AgentApi(self.0.clone()).ban_agent(request).await
    }

    async fn create_join_token(
        &self,
        request: Request<api::CreateJoinTokenRequest>,
    ) -> Result<Response<wire::JoinToken>, Status> {
        super::calling_admin(&self.0, &request).await?;
        AgentApi(self.0.clone()).create_join_token(request).await
    }

    /// As SPIRE: a calling agent's non-empty `agent_version` (at most 255 characters) is
    /// stored on its record, and `Agent.agent_version` shows it; the bundle serial is not kept.
    async fn post_status(
        &self,
        request: Request<api::PostStatusRequest>,
    ) -> Result<Response<api::PostStatusResponse>, Status> {
        let id = super::calling_agent(&self.0, &request).await?;
        let version = request.into_inner().agent_version;
        if version.is_empty() {
            return Ok(Response::new(api::PostStatusResponse {}));
        }
        if version.chars().count() > MAX_AGENT_VERSION {
            return Err(ApiError::invalid_argument(format!(
                "agent_version is longer than {MAX_AGENT_VERSION} characters"
            ))
            .into());
        }
        let Some(mut agent) = self
            .0
            .store
            .fetch_agent(&id)
            .await
            .map_err(ApiError::from)?
        else {
            return Err(
                ApiError::permission_denied(format!("{id} is not an attested agent")).into(),
            );
        };
        agent.agent_version = version;
        let mask = AgentMask {
            agent_version: true,
            ..AgentMask::default()
        };
        self.0
            .store
            .update_agent(agent, &mask)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(api::PostStatusResponse {}))
    }
}

/// Longest `PostStatusRequest.agent_version` stored, as in SPIRE.
const MAX_AGENT_VERSION: usize = 255;

/// Run the attestation to the end and return the agent's SVID and whether it may
/// re-attest.
async fn attest(
    server: &Server,
    stream: &mut Streaming<api::AttestAgentRequest>,
    send: &Sender,
) -> Result<(wire::X509svid, bool), ApiError> {
    let first = stream
        .message()
        .await
        .map_err(ApiError::stream)?
        .ok_or_else(|| ApiError::invalid_argument("the stream ended before the first message"))?;
    let Some(api::attest_agent_request::Step::Params(params)) = first.step else {
        return Err(ApiError::invalid_argument(
            "the first message must carry params",
        ));
    };
    let data = params
        .data
        .ok_or_else(|| ApiError::invalid_argument("params.data is required"))?;
    let csr = params
        .params
        .ok_or_else(|| ApiError::invalid_argument("params.params is required"))?
        .csr;
    let plugin = server
        .node_attestors
        .get(&data.r#type)
        .cloned()
        .ok_or_else(|| {
            ApiError::invalid_argument(format!(
                "no node attestor named {:?} is configured",
                data.r#type
            ))
        })?;

    let mut step = run_plugin(&plugin, Round::Attest(data.payload)).await?;
    for _ in 0..MAX_ROUNDS {
        let (challenge, state) = match step {
            AttestationStep::Done(node) => return finish(server, &plugin, node, &csr).await,
            AttestationStep::Challenge { challenge, state } => (challenge, state),
            _ => {
                return Err(ApiError::internal(
                    "the node attestor failed",
                    "unknown attestation step",
                ));
            }
        };
        send.send(Ok(api::AttestAgentResponse {
            step: Some(api::attest_agent_response::Step::Challenge(challenge)),
        }))
        .await
        .map_err(|_| ApiError::Cancelled("the agent went away".into()))?;
        let answer = tokio::time::timeout(ANSWER_TIMEOUT, stream.next())
            .await
            .map_err(|_| ApiError::DeadlineExceeded("no answer to the challenge in time".into()))?
            .ok_or_else(|| ApiError::invalid_argument("the stream ended before the answer"))?
            .map_err(ApiError::stream)?;
        let Some(api::attest_agent_request::Step::ChallengeResponse(response)) = answer.step else {
            return Err(ApiError::invalid_argument("expected a challenge response"));
        };
        step = run_plugin(&plugin, Round::Resume(state, response)).await?;
    }
    Err(ApiError::permission_denied(format!(
        "node attestor {} asked for more than {MAX_ROUNDS} rounds",
        plugin.name()
    )))
}

enum Round {
    Attest(Vec<u8>),
    Resume(Vec<u8>, Vec<u8>),
}

/// One plugin call on a blocking thread (plugin calls are synchronous and may block on
/// capability I/O).
async fn run_plugin(
    plugin: &NodeAttestorServer,
    round: Round,
) -> Result<AttestationStep, ApiError> {
    let plugin = plugin.clone();
    tokio::task::spawn_blocking(move || match round {
        Round::Attest(payload) => plugin.attest(&payload),
        Round::Resume(state, response) => plugin.resume(&state, &response),
    })
    .await
    .map_err(|e| ApiError::internal("the node attestor failed", e))?
    .map_err(ApiError::from)
}

/// The node is attested: refuse a banned agent, store it, sign its SVID.
async fn finish(
    server: &Server,
    plugin: &NodeAttestorServer,
    node: AttestedNode,
    csr: &[u8],
) -> Result<(wire::X509svid, bool), ApiError> {
    let existing = server
        .store
        .fetch_agent(&node.agent_id)
        .await
        .map_err(ApiError::from)?;
    if existing.as_ref().is_some_and(|agent| agent.banned) {
        return Err(ApiError::permission_denied(format!(
            "agent {} is banned",
            node.agent_id
        )));
    }
    let svid = agent_svid(server, &node.agent_id, csr)?;
    let serial = serial_of(&svid)?;
    let reattestable = node.can_reattest;
    let agent = AttestedAgent {
        spiffe_id: node.agent_id.clone(),
        attestation_type: plugin.name().to_owned(),
        cert_serial_number: serial,
        cert_not_after: svid.expires_at,
        new_cert_serial_number: String::new(),
        new_cert_not_after: 0,
        selectors: node.selectors,
        banned: false,
        can_reattest: node.can_reattest,
        agent_version: String::new(),
    };
    let stored = match existing {
        None => server.store.create_agent(agent).await,
        Some(_) => {
            // A new attestation replaces the current SVID and drops one issued by a
            // renewal the agent never used.
            let mask = AgentMask {
                selectors: true,
                ..CERTIFICATE_MASK
            };
            server.store.update_agent(agent, &mask).await
        }
    };
    stored.map_err(ApiError::from)?;
    // The agent's next call must find itself in the cache.
    if let Err(error) = server.cache.sync_once(server.store.as_ref()).await {
        tracing::warn!(error = %error, "entry cache sync after attestation failed");
    }
    tracing::info!(agent = %node.agent_id, attestor = plugin.name(), "agent attested");
    Ok((svid, reattestable))
}

/// Sign the agent's CSR as `agent_id` with the agent TTL.
pub(crate) fn agent_svid(
    server: &Server,
    agent_id: &sigil_types::SpiffeId,
    csr: &[u8],
) -> Result<wire::X509svid, ApiError> {
    mint_agent_svid(&server.ca, server.config.agent_ttl, agent_id, csr, now())
}

/// The agent SVID `ca` signs for `csr`. A CSR the CA refuses is the agent's to fix
/// (InvalidArgument naming the rule); a failure of the CA itself is logged and reaches the
/// agent as Internal without its cause.
fn mint_agent_svid(
    ca: &CaManager,
    ttl: Option<Duration>,
    agent_id: &sigil_types::SpiffeId,
    csr: &[u8],
    now: sigil_types::UnixTime,
) -> Result<wire::X509svid, ApiError> {
    let mut params = X509SvidParams::new(agent_id.clone());
    params.ttl = ttl;
    let issued = ca.mint_x509_svid(csr, &params, now)?;
    Ok(wire::X509svid {
        cert_chain: issued.cert_chain,
        id: Some(wire::Spiffeid::from(agent_id)),
        expires_at: issued.expires_at,
        hint: String::new(),
    })
}

/// `RenewAgent`: a new SVID for the calling agent, recorded as its *new* SVID. The current
/// one stays valid until the agent first uses the new one (see `caller.rs`). As in SPIRE, an
/// agent that can attest again must do that instead.
async fn renew(
    server: &Server,
    agent_id: &sigil_types::SpiffeId,
    csr: &[u8],
) -> Result<wire::X509svid, ApiError> {
    let agent = server
        .store
        .fetch_agent(agent_id)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| ApiError::not_found(format!("agent {agent_id} not found")))?;
    if agent.can_reattest {
        return Err(ApiError::agent_denied(
            DeniedReason::AgentMustReattest,
            "agent must reattest instead of renew",
        ));
    }
    if csr.is_empty() {
        return Err(ApiError::invalid_argument("missing CSR"));
    }
    let svid = agent_svid(server, agent_id, csr)?;
    let renewed = AttestedAgent {
        new_cert_serial_number: serial_of(&svid)?,
        new_cert_not_after: svid.expires_at,
        ..agent
    };
    let mask = AgentMask {
        new_cert_serial_number: true,
        new_cert_not_after: true,
        ..AgentMask::default()
    };
    server
        .store
        .update_agent(renewed, &mask)
        .await
        .map_err(ApiError::from)?;
    tracing::info!(agent = %agent_id, "agent SVID renewed");
    Ok(svid)
}

/// The serial number of the SVID's leaf, in the datastore's form.
fn serial_of(svid: &wire::X509svid) -> Result<String, ApiError> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let leaf = svid.cert_chain.first().ok_or_else(|| {
        ApiError::internal(
            "the CA could not issue the certificate",
            "the CA returned no certificate",
        )
    })?;
    let (_, cert) = X509Certificate::from_der(leaf).map_err(|e| {
        ApiError::internal(
            "the CA could not issue the certificate",
            format!("the CA returned an unreadable certificate: {e}"),
        )
    })?;
    Ok(serial_number(&cert))
}

#[cfg(test)]
mod tests;
