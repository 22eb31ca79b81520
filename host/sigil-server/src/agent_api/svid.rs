//! `BatchNewX509SVID` for agents: one SVID per entry the calling agent is authorized for.

use std::collections::HashMap;
use std::sync::Arc;

use sigil_ca::X509SvidParams;
use sigil_proto::spire::api::server::svid::v1 as api;
use sigil_proto::spire::api::types as wire;
use sigil_types::RegistrationEntry;
use tonic::{Request, Response, Status};

use crate::api::{item_status, ok_status};
use crate::setup::Server;
use crate::tokens::now;

/// The SVID service as agents see it on the TCP API.
pub(crate) struct SvidPeerApi(pub(crate) Arc<Server>);

#[tonic::async_trait]
impl api::svid_server::Svid for SvidPeerApi {
    async fn mint_x509svid(
        &self,
        _request: Request<api::MintX509svidRequest>,
    ) -> Result<Response<api::MintX509svidResponse>, Status> {
        Err(Status::permission_denied("MintX509SVID is an admin call"))
    }

    async fn mint_jwtsvid(
        &self,
        _request: Request<api::MintJwtsvidRequest>,
    ) -> Result<Response<api::MintJwtsvidResponse>, Status> {
        Err(Status::permission_denied("MintJWTSVID is an admin call"))
    }

    async fn batch_new_x509svid(
        &self,
        request: Request<api::BatchNewX509svidRequest>,
    ) -> Result<Response<api::BatchNewX509svidResponse>, Status> {
        let agent_id = super::calling_agent(&self.0, &request)?;
        // One lookup table per call: a batch of n entries would otherwise scan the authorized
        // set n times.
        let entries = self.0.cache.authorized_entries(&agent_id);
        let authorized: HashMap<&str, &RegistrationEntry> =
            entries.iter().map(|e| (e.id.as_str(), &**e)).collect();
        let mut results = Vec::new();
        for params in request.into_inner().params {
            let minted = match authorized.get(params.entry_id.as_str()) {
                None => Err(Status::permission_denied(match sigil_types::EntryId::new(
                    &params.entry_id,
                )
                .ok()
                .and_then(|id| self.0.cache.entry(&id))
                {
                    Some(entry) => format!(
                        "agent {agent_id} is not authorized for {} (entry {})",
                        entry.spiffe_id, params.entry_id
                    ),
                    None => format!(
                        "agent {agent_id} is not authorized for entry {:?}",
                        params.entry_id
                    ),
                })),
                Some(entry) => {
                    let mut svid = X509SvidParams::new(entry.spiffe_id.clone());
                    if entry.x509_svid_ttl > 0 {
                        svid.ttl = Some(std::time::Duration::from_secs(u64::from(
                            entry.x509_svid_ttl,
                        )));
                    }
                    svid.dns_names = entry.dns_names.clone();
                    self.0
                        .ca
                        .mint_x509_svid(&params.csr, &svid, now())
                        .map(|issued| wire::X509svid {
                            cert_chain: issued.cert_chain,
                            id: Some(wire::Spiffeid::from(&entry.spiffe_id)),
                            expires_at: issued.expires_at,
                            hint: entry.hint.clone(),
                        })
                        .map_err(|e| Status::invalid_argument(format!("csr: {e}")))
                }
            };
            results.push(match minted {
                Ok(svid) => api::batch_new_x509svid_response::Result {
                    status: Some(ok_status()),
                    svid: Some(svid),
                },
                Err(status) => api::batch_new_x509svid_response::Result {
                    status: Some(item_status(&status)),
                    svid: None,
                },
            });
        }
        Ok(Response::new(api::BatchNewX509svidResponse { results }))
    }

    async fn new_jwtsvid(
        &self,
        _request: Request<api::NewJwtsvidRequest>,
    ) -> Result<Response<api::NewJwtsvidResponse>, Status> {
        Err(Status::unimplemented("NewJWTSVID is not implemented yet"))
    }

    async fn new_downstream_x509ca(
        &self,
        _request: Request<api::NewDownstreamX509caRequest>,
    ) -> Result<Response<api::NewDownstreamX509caResponse>, Status> {
        Err(Status::unimplemented(
            "downstream servers are not supported yet",
        ))
    }
}
