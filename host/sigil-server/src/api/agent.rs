//! `spire.api.server.agent.v1.Agent` on the admin socket: join tokens (with SPIRE's alias
//! entry when an agent ID is given) and the agent listing and eviction calls. `AttestAgent`
//! and `RenewAgent` belong to the agent-facing TCP API (`agent_api/attest.rs`).

use std::sync::Arc;
use std::time::Duration;

use sigil_proto::spire::api::server::agent::v1 as api;
use sigil_proto::spire::api::types as wire;
use sigil_store::{AgentFilter, AgentMask};
use sigil_types::{JoinToken, RegistrationEntry, Selector, SpiffeId, TrustDomain};
use tonic::{Request, Response, Status};

use super::entry_rules::check_workload_id;
use super::spiffe_id;
use crate::api_error::ApiError;
use crate::setup::Server;
use crate::tokens::now;

/// SPIRE's default join-token lifetime.
const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(600);
/// The agent service.
pub(crate) struct AgentApi(pub(crate) Arc<Server>);

#[tonic::async_trait]
impl api::agent_server::Agent for AgentApi {
    async fn count_agents(
        &self,
        request: Request<api::CountAgentsRequest>,
    ) -> Result<Response<api::CountAgentsResponse>, Status> {
        let filter = request.into_inner().filter.unwrap_or_default();
        let filter = agent_filter(
            filter.by_attestation_type,
            filter.by_banned,
            filter.by_can_reattest,
        );
        let count = self
            .0
            .store
            .count_agents(&filter)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(api::CountAgentsResponse {
            count: i32::try_from(count).unwrap_or(i32::MAX),
        }))
    }

    async fn list_agents(
        &self,
        request: Request<api::ListAgentsRequest>,
    ) -> Result<Response<api::ListAgentsResponse>, Status> {
        let request = request.into_inner();
        let filter = request.filter.unwrap_or_default();
        let filter = agent_filter(
            filter.by_attestation_type,
            filter.by_banned,
            filter.by_can_reattest,
        );
        let page = super::page_request(request.page_size, request.page_token)?;
        let page = self
            .0
            .store
            .list_agents(&filter, Some(&page))
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(api::ListAgentsResponse {
            agents: page.items.iter().map(wire::Agent::from).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    async fn get_agent(
        &self,
        request: Request<api::GetAgentRequest>,
    ) -> Result<Response<wire::Agent>, Status> {
        let id = spiffe_id("id", request.into_inner().id.as_ref())?;
        match self.0.store.fetch_agent(&id).await {
            Ok(Some(agent)) => Ok(Response::new(wire::Agent::from(&agent))),
            Ok(None) => Err(ApiError::not_found(format!("agent {id} not found")).into()),
            Err(error) => Err(ApiError::from(error).into()),
        }
    }

    async fn delete_agent(
        &self,
        request: Request<api::DeleteAgentRequest>,
    ) -> Result<Response<()>, Status> {
        let id = spiffe_id("id", request.into_inner().id.as_ref())?;
        self.0
            .store
            .delete_agent(&id)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(agent = %id, "agent evicted");
        Ok(Response::new(()))
    }

    async fn ban_agent(
        &self,
        request: Request<api::BanAgentRequest>,
    ) -> Result<Response<()>, Status> {
        let id = spiffe_id("id", request.into_inner().id.as_ref())?;
        let Some(mut agent) = self
            .0
            .store
            .fetch_agent(&id)
            .await
            .map_err(ApiError::from)?
        else {
            return Err(ApiError::not_found(format!("agent {id} not found")).into());
        };
        agent.banned = true;
        let mask = AgentMask {
            banned: true,
            ..AgentMask::default()
        };
        self.0
            .store
            .update_agent(agent, &mask)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(agent = %id, "agent banned");
        Ok(Response::new(()))
    }

    type AttestAgentStream = tokio_stream::Empty<Result<api::AttestAgentResponse, Status>>;

    async fn attest_agent(
        &self,
        _request: Request<tonic::Streaming<api::AttestAgentRequest>>,
    ) -> Result<Response<Self::AttestAgentStream>, Status> {
        Err(ApiError::unimplemented(
            "AttestAgent is served on the agent API (bind_address:bind_port), not on the admin \
             socket",
        )
        .into())
    }

    async fn renew_agent(
        &self,
        _request: Request<api::RenewAgentRequest>,
    ) -> Result<Response<api::RenewAgentResponse>, Status> {
        Err(ApiError::unimplemented(
            "RenewAgent is served on the agent API (bind_address:bind_port), not on the admin \
             socket",
        )
        .into())
    }

    async fn create_join_token(
        &self,
        request: Request<api::CreateJoinTokenRequest>,
    ) -> Result<Response<wire::JoinToken>, Status> {
        let request = request.into_inner();
        let ttl = match u64::try_from(request.ttl) {
            Ok(0) => DEFAULT_TOKEN_TTL,
            Ok(seconds) => Duration::from_secs(seconds),
            Err(_) => return Err(ApiError::invalid_argument("ttl must not be negative").into()),
        };
        let token = if request.token.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            request.token
        };
        // SPIRE checks the alias before it stores anything: a workload ID of this trust
        // domain.
        let alias = request
            .agent_id
            .as_ref()
            .map(|alias| {
                let alias = spiffe_id("agent_id", Some(alias))?;
                check_workload_id(&self.0.trust_domain, "agent_id", &alias)?;
                alias_entry(&self.0.trust_domain, alias, &token)
            })
            .transpose()?;
        let expires_at = now().saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
        let join_token = JoinToken {
            token: token.clone(),
            expires_at,
        };
        self.0
            .store
            .create_join_token(join_token)
            .await
            .map_err(ApiError::from)?;
        if let Some(alias) = alias {
            self.0
                .store
                .create_entry(alias)
                .await
                .map_err(ApiError::from)?;
        }
        Ok(Response::new(wire::JoinToken {
            value: token,
            expires_at,
        }))
    }

    async fn post_status(
        &self,
        _request: Request<api::PostStatusRequest>,
    ) -> Result<Response<api::PostStatusResponse>, Status> {
        Err(ApiError::unimplemented("PostStatus is not supported").into())
    }
}

/// SPIRE's entry for a join token created with an agent ID: that ID, parented to the agent
/// the token will attest (`spiffe://<td>/spire/agent/join_token/<token>`), with the single
/// selector `spiffe_id:<that agent ID>`. Workload entries parented to the alias ID then reach
/// the agent as descendants of an entry parented to it.
fn alias_entry(
    trust_domain: &TrustDomain,
    alias: SpiffeId,
    token: &str,
) -> Result<RegistrationEntry, ApiError> {
    let agent_id = SpiffeId::new(trust_domain, &format!("/spire/agent/join_token/{token}"))
        .map_err(|e| ApiError::invalid_argument(format!("token: {e}")))?;
    let selector = Selector::new("spiffe_id", agent_id.as_str())
        .map_err(|e| ApiError::invalid_argument(format!("token: {e}")))?;
    Ok(RegistrationEntry::new(alias, agent_id, vec![selector]))
}

fn agent_filter(
    attestation_type: String,
    banned: Option<bool>,
    can_reattest: Option<bool>,
) -> AgentFilter {
    AgentFilter {
        by_attestation_type: (!attestation_type.is_empty()).then_some(attestation_type),
        by_banned: banned,
        by_can_reattest: can_reattest,
        ..AgentFilter::default()
    }
}
