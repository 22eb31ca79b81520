//! An in-memory test double of the server's admin API (Entry, Bundle, Agent, SVID,
//! TrustDomain, grpc.health.v1) on a temporary Unix socket. Every request it receives is
//! recorded so tests can assert on what the CLI sent.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sigil_proto::spire::api::server::agent::v1 as agentv1;
use sigil_proto::spire::api::server::bundle::v1 as bundlev1;
use sigil_proto::spire::api::server::entry::v1 as entryv1;
use sigil_proto::spire::api::server::svid::v1 as svidv1;
use sigil_proto::spire::api::server::trustdomain::v1 as tdv1;
use sigil_proto::spire::api::types as wire;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::Server;
use tonic::{Request, Response, Status};
use tonic_health::ServingStatus;

/// One request the double received.
#[derive(Debug, Clone)]
#[expect(
    dead_code,
    reason = "every request is recorded whole; each test reads the fields it asserts on"
)]
pub(crate) enum Req {
    CreateEntries(entryv1::BatchCreateEntryRequest),
    ListEntries(entryv1::ListEntriesRequest),
    GetEntry(entryv1::GetEntryRequest),
    UpdateEntries(entryv1::BatchUpdateEntryRequest),
    DeleteEntries(entryv1::BatchDeleteEntryRequest),
    CountEntries(entryv1::CountEntriesRequest),
    ListAgents(agentv1::ListAgentsRequest),
    GetAgent(agentv1::GetAgentRequest),
    DeleteAgent(agentv1::DeleteAgentRequest),
    BanAgent(agentv1::BanAgentRequest),
    CountAgents(agentv1::CountAgentsRequest),
    CreateJoinToken(agentv1::CreateJoinTokenRequest),
    GetBundle,
    ListFederatedBundles(bundlev1::ListFederatedBundlesRequest),
    SetFederatedBundles(bundlev1::BatchSetFederatedBundleRequest),
    DeleteFederatedBundles(bundlev1::BatchDeleteFederatedBundleRequest),
    MintX509(svidv1::MintX509svidRequest),
    MintJwt(svidv1::MintJwtsvidRequest),
    CreateRelationships(tdv1::BatchCreateFederationRelationshipRequest),
    UpdateRelationships(tdv1::BatchUpdateFederationRelationshipRequest),
    DeleteRelationships(tdv1::BatchDeleteFederationRelationshipRequest),
}

/// What the double holds and how it misbehaves.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) requests: Vec<Req>,
    pub(crate) entries: Vec<wire::Entry>,
    pub(crate) agents: Vec<wire::Agent>,
    pub(crate) bundle: wire::Bundle,
    pub(crate) federated: Vec<wire::Bundle>,
    /// Entries with this SPIFFE ID path fail to create with ALREADY_EXISTS.
    pub(crate) conflicting_path: Option<String>,
    /// Every RPC fails with this status.
    pub(crate) fail: Option<Status>,
    /// Entries per ListEntries page (0 = all).
    pub(crate) page_size: usize,
    next_id: usize,
}

/// A handle on the double; cloned into every service.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fake(pub(crate) Arc<Mutex<State>>);

impl Fake {
    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap()
    }

    pub(crate) fn requests(&self) -> Vec<Req> {
        self.state().requests.clone()
    }

    fn record(&self, req: Req) -> Result<(), Status> {
        let mut state = self.state();
        state.requests.push(req);
        state.fail.clone().map_or(Ok(()), Err)
    }
}

fn ok() -> Option<wire::Status> {
    Some(wire::Status {
        code: 0,
        message: "OK".into(),
    })
}

fn failed(code: tonic::Code, message: &str) -> Option<wire::Status> {
    Some(wire::Status {
        code: code as i32,
        message: message.into(),
    })
}

/// A running double.
#[derive(Debug)]
pub(crate) struct Running {
    pub(crate) fake: Fake,
    pub(crate) socket: PathBuf,
    pub(crate) health: tonic_health::server::HealthReporter,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Starts the double on a fresh socket.
pub(crate) async fn start() -> Running {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let fake = Fake::default();
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_service_status("", ServingStatus::Serving).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(
        Server::builder()
            .add_service(entryv1::entry_server::EntryServer::new(fake.clone()))
            .add_service(bundlev1::bundle_server::BundleServer::new(fake.clone()))
            .add_service(agentv1::agent_server::AgentServer::new(fake.clone()))
            .add_service(svidv1::svid_server::SvidServer::new(fake.clone()))
            .add_service(tdv1::trust_domain_server::TrustDomainServer::new(
                fake.clone(),
            ))
            .add_service(health_service)
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
                let _ = stopped.await;
            }),
    );
    Running {
        fake,
        socket,
        health,
        _dir: dir,
        _stop: stop,
    }
}

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not in the test double"))
}

#[tonic::async_trait]
impl entryv1::entry_server::Entry for Fake {
    async fn count_entries(
        &self,
        r: Request<entryv1::CountEntriesRequest>,
    ) -> Result<Response<entryv1::CountEntriesResponse>, Status> {
        self.record(Req::CountEntries(r.into_inner()))?;
        let count = i32::try_from(self.state().entries.len()).unwrap();
        Ok(Response::new(entryv1::CountEntriesResponse { count }))
    }

    async fn list_entries(
        &self,
        r: Request<entryv1::ListEntriesRequest>,
    ) -> Result<Response<entryv1::ListEntriesResponse>, Status> {
        let req = r.into_inner();
        self.record(Req::ListEntries(req.clone()))?;
        let state = self.state();
        let start: usize = if req.page_token.is_empty() {
            0
        } else {
            req.page_token.parse().unwrap()
        };
        let size = if state.page_size == 0 {
            state.entries.len()
        } else {
            state.page_size
        };
        let end = (start + size).min(state.entries.len());
        let next = if end < state.entries.len() {
            end.to_string()
        } else {
            String::new()
        };
        Ok(Response::new(entryv1::ListEntriesResponse {
            entries: state.entries[start..end].to_vec(),
            next_page_token: next,
        }))
    }

    async fn get_entry(
        &self,
        r: Request<entryv1::GetEntryRequest>,
    ) -> Result<Response<wire::Entry>, Status> {
        let req = r.into_inner();
        self.record(Req::GetEntry(req.clone()))?;
        let state = self.state();
        let entry = state.entries.iter().find(|e| e.id == req.id).cloned();
        entry
            .map(Response::new)
            .ok_or_else(|| Status::not_found("entry not found"))
    }

    async fn batch_create_entry(
        &self,
        r: Request<entryv1::BatchCreateEntryRequest>,
    ) -> Result<Response<entryv1::BatchCreateEntryResponse>, Status> {
        let req = r.into_inner();
        self.record(Req::CreateEntries(req.clone()))?;
        let mut state = self.state();
        let mut results = Vec::new();
        for mut entry in req.entries {
            let path = entry.spiffe_id.as_ref().map(|id| id.path.clone());
            if path.is_some() && path == state.conflicting_path {
                results.push(entryv1::batch_create_entry_response::Result {
                    status: failed(tonic::Code::AlreadyExists, "similar entry already exists"),
                    entry: None,
                });
                continue;
            }
            if entry.id.is_empty() {
                state.next_id += 1;
                entry.id = format!("entry-{}", state.next_id);
            }
            state.entries.push(entry.clone());
            results.push(entryv1::batch_create_entry_response::Result {
                status: ok(),
                entry: Some(entry),
            });
        }
        Ok(Response::new(entryv1::BatchCreateEntryResponse { results }))
    }

    async fn batch_update_entry(
        &self,
        r: Request<entryv1::BatchUpdateEntryRequest>,
    ) -> Result<Response<entryv1::BatchUpdateEntryResponse>, Status> {
        let req = r.into_inner();
        self.record(Req::UpdateEntries(req.clone()))?;
        let state = self.state();
        let results = req
            .entries
            .into_iter()
            .map(
                |entry| match state.entries.iter().find(|e| e.id == entry.id) {
                    Some(_) => entryv1::batch_update_entry_response::Result {
                        status: ok(),
                        entry: Some(entry),
                    },
                    None => entryv1::batch_update_entry_response::Result {
                        status: failed(tonic::Code::NotFound, "entry not found"),
                        entry: None,
                    },
                },
            )
            .collect();
        Ok(Response::new(entryv1::BatchUpdateEntryResponse { results }))
    }

    async fn batch_delete_entry(
        &self,
        r: Request<entryv1::BatchDeleteEntryRequest>,
    ) -> Result<Response<entryv1::BatchDeleteEntryResponse>, Status> {
        let req = r.into_inner();
        self.record(Req::DeleteEntries(req.clone()))?;
        let mut state = self.state();
        let mut results = Vec::new();
        for id in req.ids {
            let before = state.entries.len();
            state.entries.retain(|e| e.id != id);
            let status = if state.entries.len() < before {
                ok()
            } else {
                failed(tonic::Code::NotFound, "entry not found")
            };
            results.push(entryv1::batch_delete_entry_response::Result { status, id });
        }
        Ok(Response::new(entryv1::BatchDeleteEntryResponse { results }))
    }

    async fn get_authorized_entries(
        &self,
        _: Request<entryv1::GetAuthorizedEntriesRequest>,
    ) -> Result<Response<entryv1::GetAuthorizedEntriesResponse>, Status> {
        unimplemented()
    }

    type SyncAuthorizedEntriesStream =
        tokio_stream::Empty<Result<entryv1::SyncAuthorizedEntriesResponse, Status>>;

    async fn sync_authorized_entries(
        &self,
        _: Request<tonic::Streaming<entryv1::SyncAuthorizedEntriesRequest>>,
    ) -> Result<Response<Self::SyncAuthorizedEntriesStream>, Status> {
        unimplemented()
    }
}

#[tonic::async_trait]
impl agentv1::agent_server::Agent for Fake {
    async fn count_agents(
        &self,
        r: Request<agentv1::CountAgentsRequest>,
    ) -> Result<Response<agentv1::CountAgentsResponse>, Status> {
        self.record(Req::CountAgents(r.into_inner()))?;
        let count = i32::try_from(self.state().agents.len()).unwrap();
        Ok(Response::new(agentv1::CountAgentsResponse { count }))
    }

    async fn list_agents(
        &self,
        r: Request<agentv1::ListAgentsRequest>,
    ) -> Result<Response<agentv1::ListAgentsResponse>, Status> {
        self.record(Req::ListAgents(r.into_inner()))?;
        let agents = self.state().agents.clone();
        Ok(Response::new(agentv1::ListAgentsResponse {
            agents,
            next_page_token: String::new(),
        }))
    }

    async fn get_agent(
        &self,
        r: Request<agentv1::GetAgentRequest>,
    ) -> Result<Response<wire::Agent>, Status> {
        let req = r.into_inner();
        self.record(Req::GetAgent(req.clone()))?;
        let state = self.state();
        let agent = state.agents.iter().find(|a| a.id == req.id).cloned();
        agent
            .map(Response::new)
            .ok_or_else(|| Status::not_found("agent not found"))
    }

    async fn delete_agent(
        &self,
        r: Request<agentv1::DeleteAgentRequest>,
    ) -> Result<Response<()>, Status> {
        self.record(Req::DeleteAgent(r.into_inner()))?;
        Ok(Response::new(()))
    }

    async fn ban_agent(
        &self,
        r: Request<agentv1::BanAgentRequest>,
    ) -> Result<Response<()>, Status> {
        self.record(Req::BanAgent(r.into_inner()))?;
        Ok(Response::new(()))
    }

    type AttestAgentStream = tokio_stream::Empty<Result<agentv1::AttestAgentResponse, Status>>;

    async fn attest_agent(
        &self,
        _: Request<tonic::Streaming<agentv1::AttestAgentRequest>>,
    ) -> Result<Response<Self::AttestAgentStream>, Status> {
        unimplemented()
    }

    async fn renew_agent(
        &self,
        _: Request<agentv1::RenewAgentRequest>,
    ) -> Result<Response<agentv1::RenewAgentResponse>, Status> {
        unimplemented()
    }

    async fn create_join_token(
        &self,
        r: Request<agentv1::CreateJoinTokenRequest>,
    ) -> Result<Response<wire::JoinToken>, Status> {
        self.record(Req::CreateJoinToken(r.into_inner()))?;
        Ok(Response::new(wire::JoinToken {
            value: "token-abc".into(),
            expires_at: 1_700_000_600,
        }))
    }

    async fn post_status(
        &self,
        _: Request<agentv1::PostStatusRequest>,
    ) -> Result<Response<agentv1::PostStatusResponse>, Status> {
        unimplemented()
    }
}

#[tonic::async_trait]
impl bundlev1::bundle_server::Bundle for Fake {
    async fn count_bundles(
        &self,
        _: Request<bundlev1::CountBundlesRequest>,
    ) -> Result<Response<bundlev1::CountBundlesResponse>, Status> {
        let count = i32::try_from(self.state().federated.len() + 1).unwrap();
        Ok(Response::new(bundlev1::CountBundlesResponse { count }))
    }

    async fn get_bundle(
        &self,
        _: Request<bundlev1::GetBundleRequest>,
    ) -> Result<Response<wire::Bundle>, Status> {
        self.record(Req::GetBundle)?;
        Ok(Response::new(self.state().bundle.clone()))
    }

    async fn append_bundle(
        &self,
        _: Request<bundlev1::AppendBundleRequest>,
    ) -> Result<Response<wire::Bundle>, Status> {
        unimplemented()
    }

    async fn publish_jwt_authority(
        &self,
        _: Request<bundlev1::PublishJwtAuthorityRequest>,
    ) -> Result<Response<bundlev1::PublishJwtAuthorityResponse>, Status> {
        unimplemented()
    }

    async fn publish_wit_authority(
        &self,
        _: Request<bundlev1::PublishWitAuthorityRequest>,
    ) -> Result<Response<bundlev1::PublishWitAuthorityResponse>, Status> {
        unimplemented()
    }

    async fn list_federated_bundles(
        &self,
        r: Request<bundlev1::ListFederatedBundlesRequest>,
    ) -> Result<Response<bundlev1::ListFederatedBundlesResponse>, Status> {
        self.record(Req::ListFederatedBundles(r.into_inner()))?;
        let bundles = self.state().federated.clone();
        Ok(Response::new(bundlev1::ListFederatedBundlesResponse {
            bundles,
            next_page_token: String::new(),
        }))
    }

    async fn get_federated_bundle(
        &self,
        r: Request<bundlev1::GetFederatedBundleRequest>,
    ) -> Result<Response<wire::Bundle>, Status> {
        let td = r.into_inner().trust_domain;
        let state = self.state();
        let bundle = state
            .federated
            .iter()
            .find(|b| b.trust_domain == td)
            .cloned();
        bundle
            .map(Response::new)
            .ok_or_else(|| Status::not_found("bundle not found"))
    }

    async fn batch_create_federated_bundle(
        &self,
        _: Request<bundlev1::BatchCreateFederatedBundleRequest>,
    ) -> Result<Response<bundlev1::BatchCreateFederatedBundleResponse>, Status> {
        unimplemented()
    }

    async fn batch_update_federated_bundle(
        &self,
        _: Request<bundlev1::BatchUpdateFederatedBundleRequest>,
    ) -> Result<Response<bundlev1::BatchUpdateFederatedBundleResponse>, Status> {
        unimplemented()
    }

    async fn batch_set_federated_bundle(
        &self,
        r: Request<bundlev1::BatchSetFederatedBundleRequest>,
    ) -> Result<Response<bundlev1::BatchSetFederatedBundleResponse>, Status> {
        let req = r.into_inner();
        self.record(Req::SetFederatedBundles(req.clone()))?;
        let results = req
            .bundle
            .into_iter()
            .map(|b| bundlev1::batch_set_federated_bundle_response::Result {
                status: ok(),
                bundle: Some(b),
            })
            .collect();
        Ok(Response::new(bundlev1::BatchSetFederatedBundleResponse {
            results,
        }))
    }

    async fn batch_delete_federated_bundle(
        &self,
        r: Request<bundlev1::BatchDeleteFederatedBundleRequest>,
    ) -> Result<Response<bundlev1::BatchDeleteFederatedBundleResponse>, Status> {
        let req = r.into_inner();
        self.record(Req::DeleteFederatedBundles(req.clone()))?;
        let state = self.state();
        let results = req
            .trust_domains
            .into_iter()
            .map(|td| {
                let known = state.federated.iter().any(|b| b.trust_domain == td);
                let status = if known {
                    ok()
                } else {
                    failed(tonic::Code::NotFound, "no such bundle")
                };
                bundlev1::batch_delete_federated_bundle_response::Result {
                    status,
                    trust_domain: td,
                }
            })
            .collect();
        Ok(Response::new(
            bundlev1::BatchDeleteFederatedBundleResponse { results },
        ))
    }
}

#[tonic::async_trait]
impl svidv1::svid_server::Svid for Fake {
    async fn mint_x509svid(
        &self,
        r: Request<svidv1::MintX509svidRequest>,
    ) -> Result<Response<svidv1::MintX509svidResponse>, Status> {
        self.record(Req::MintX509(r.into_inner()))?;
        let chain = self
            .state()
            .bundle
            .x509_authorities
            .iter()
            .map(|a| a.asn1.clone())
            .collect();
        Ok(Response::new(svidv1::MintX509svidResponse {
            svid: Some(wire::X509svid {
                cert_chain: chain,
                id: None,
                expires_at: 0,
                hint: String::new(),
            }),
        }))
    }

    async fn mint_jwtsvid(
        &self,
        r: Request<svidv1::MintJwtsvidRequest>,
    ) -> Result<Response<svidv1::MintJwtsvidResponse>, Status> {
        let req = r.into_inner();
        self.record(Req::MintJwt(req.clone()))?;
        Ok(Response::new(svidv1::MintJwtsvidResponse {
            svid: Some(wire::Jwtsvid {
                token: "header.payload.signature".into(),
                id: req.id,
                ..Default::default()
            }),
        }))
    }

    async fn batch_new_x509svid(
        &self,
        _: Request<svidv1::BatchNewX509svidRequest>,
    ) -> Result<Response<svidv1::BatchNewX509svidResponse>, Status> {
        unimplemented()
    }

    async fn new_jwtsvid(
        &self,
        _: Request<svidv1::NewJwtsvidRequest>,
    ) -> Result<Response<svidv1::NewJwtsvidResponse>, Status> {
        unimplemented()
    }

    async fn mint_witsvid(
        &self,
        _: Request<svidv1::MintWitsvidRequest>,
    ) -> Result<Response<svidv1::MintWitsvidResponse>, Status> {
        unimplemented()
    }

    async fn batch_new_witsvid(
        &self,
        _: Request<svidv1::BatchNewWitsvidRequest>,
    ) -> Result<Response<svidv1::BatchNewWitsvidResponse>, Status> {
        unimplemented()
    }

    async fn new_downstream_x509ca(
        &self,
        _: Request<svidv1::NewDownstreamX509caRequest>,
    ) -> Result<Response<svidv1::NewDownstreamX509caResponse>, Status> {
        unimplemented()
    }
}

#[tonic::async_trait]
impl tdv1::trust_domain_server::TrustDomain for Fake {
    async fn list_federation_relationships(
        &self,
        _: Request<tdv1::ListFederationRelationshipsRequest>,
    ) -> Result<Response<tdv1::ListFederationRelationshipsResponse>, Status> {
        unimplemented()
    }

    async fn get_federation_relationship(
        &self,
        _: Request<tdv1::GetFederationRelationshipRequest>,
    ) -> Result<Response<wire::FederationRelationship>, Status> {
        unimplemented()
    }

    async fn batch_create_federation_relationship(
        &self,
        r: Request<tdv1::BatchCreateFederationRelationshipRequest>,
    ) -> Result<Response<tdv1::BatchCreateFederationRelationshipResponse>, Status> {
        let req = r.into_inner();
        self.record(Req::CreateRelationships(req.clone()))?;
        let results = req
            .federation_relationships
            .into_iter()
            .map(
                |fr| tdv1::batch_create_federation_relationship_response::Result {
                    status: ok(),
                    federation_relationship: Some(fr),
                },
            )
            .collect();
        Ok(Response::new(
            tdv1::BatchCreateFederationRelationshipResponse { results },
        ))
    }

    async fn batch_update_federation_relationship(
        &self,
        r: Request<tdv1::BatchUpdateFederationRelationshipRequest>,
    ) -> Result<Response<tdv1::BatchUpdateFederationRelationshipResponse>, Status> {
        let req = r.into_inner();
        self.record(Req::UpdateRelationships(req.clone()))?;
        let results = req
            .federation_relationships
            .into_iter()
            .map(
                |_| tdv1::batch_update_federation_relationship_response::Result {
                    status: failed(tonic::Code::NotFound, "federation relationship not found"),
                    federation_relationship: None,
                },
            )
            .collect();
        Ok(Response::new(
            tdv1::BatchUpdateFederationRelationshipResponse { results },
        ))
    }

    async fn batch_delete_federation_relationship(
        &self,
        r: Request<tdv1::BatchDeleteFederationRelationshipRequest>,
    ) -> Result<Response<tdv1::BatchDeleteFederationRelationshipResponse>, Status> {
        let req = r.into_inner();
        self.record(Req::DeleteRelationships(req.clone()))?;
        let results = req
            .trust_domains
            .into_iter()
            .map(
                |td| tdv1::batch_delete_federation_relationship_response::Result {
                    status: ok(),
                    trust_domain: td,
                },
            )
            .collect();
        Ok(Response::new(
            tdv1::BatchDeleteFederationRelationshipResponse { results },
        ))
    }

    async fn refresh_bundle(
        &self,
        _: Request<tdv1::RefreshBundleRequest>,
    ) -> Result<Response<()>, Status> {
        unimplemented()
    }
}
