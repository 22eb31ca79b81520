//! The SVID service on the TCP API: `BatchNewX509SVID` and `NewJWTSVID` for agents (one SVID
//! per entry the calling agent is authorized for), `NewDownstreamX509CA` for nested servers,
//! the mints for admins.

use std::collections::HashMap;
use std::sync::Arc;

use sigil_ca::X509SvidParams;
use sigil_proto::spire::api::server::svid::v1 as api;
use sigil_proto::spire::api::types as wire;
use sigil_types::{EntryId, RegistrationEntry, SpiffeId};
use tonic::{Request, Response, Status};

use crate::api::svid::SvidAdminApi;
use crate::api_error::{ApiError, item_status, ok_status};
use crate::setup::Server;
use crate::tokens::now;

/// The SVID service as agents see it on the TCP API.
pub(crate) struct SvidPeerApi(pub(crate) Arc<Server>);

#[tonic::async_trait]
impl api::svid_server::Svid for SvidPeerApi {
    async fn mint_x509svid(
        &self,
        request: Request<api::MintX509svidRequest>,
    ) -> Result<Response<api::MintX509svidResponse>, Status> {
        super::calling_admin(&self.0, &request).await?;
        SvidAdminApi(self.0.clone()).mint_x509svid(request).await
    }

    async fn mint_jwtsvid(
        &self,
        request: Request<api::MintJwtsvidRequest>,
    ) -> Result<Response<api::MintJwtsvidResponse>, Status> {
        super::calling_admin(&self.0, &request).await?;
        SvidAdminApi(self.0.clone()).mint_jwtsvid(request).await
    }

    async fn mint_witsvid(
        &self,
        _request: Request<api::MintWitsvidRequest>,
    ) -> Result<Response<api::MintWitsvidResponse>, Status> {
        Err(ApiError::wit_unsupported().into())
    }

    async fn batch_new_witsvid(
        &self,
        _request: Request<api::BatchNewWitsvidRequest>,
    ) -> Result<Response<api::BatchNewWitsvidResponse>, Status> {
        Err(ApiError::wit_unsupported().into())
    }

    async fn batch_new_x509svid(
        &self,
        request: Request<api::BatchNewX509svidRequest>,
    ) -> Result<Response<api::BatchNewX509svidResponse>, Status> {
        let agent_id = super::calling_agent(&self.0, &request).await?;
        let params = request.into_inner().params;
        let server = self.0.clone();
        // A mint is a signature check and a signature: CPU work that would stall this
        // runtime's worker for the whole batch, so it runs on the blocking pool, split over
        // the cores.
        let results = tokio::task::spawn_blocking(move || mint_batch(&server, &agent_id, &params))
            .await
            .map_err(|e| ApiError::internal("minting the batch failed", e))?;
        Ok(Response::new(api::BatchNewX509svidResponse { results }))
    }

    async fn new_jwtsvid(
        &self,
        request: Request<api::NewJwtsvidRequest>,
    ) -> Result<Response<api::NewJwtsvidResponse>, Status> {
        let agent_id = super::calling_agent(&self.0, &request).await?;
        let request = request.into_inner();
        if request.audience.is_empty() {
            return Err(ApiError::invalid_argument("at least one audience is required").into());
        }
        sigil_types::check_audience(&request.audience)
            .map_err(|e| ApiError::invalid_argument(e.to_string()))?;
        let entry = authorized(&self.0, &agent_id, &request.entry_id)?;
        let ttl = (entry.jwt_svid_ttl > 0)
            .then(|| std::time::Duration::from_secs(u64::from(entry.jwt_svid_ttl)));
        let svid = self
            .0
            .ca
            .mint_jwt_svid(&entry.spiffe_id, &request.audience, ttl, now())
            .map_err(ApiError::from)?;
        let mut svid = wire::Jwtsvid::from(&svid);
        svid.hint = entry.hint.clone();
        Ok(Response::new(api::NewJwtsvidResponse { svid: Some(svid) }))
    }

    async fn new_downstream_x509ca(
        &self,
        request: Request<api::NewDownstreamX509caRequest>,
    ) -> Result<Response<api::NewDownstreamX509caResponse>, Status> {
        let entry = super::calling_downstream(&self.0, &request).await?;
        let request = request.into_inner();
        let config = self.0.ca.config();
        let ttl = match u64::try_from(request.preferred_ttl) {
            Ok(0) => config.ca_ttl,
            Ok(seconds) => std::time::Duration::from_secs(seconds),
            Err(_) => {
                return Err(
                    ApiError::invalid_argument("preferred_ttl must not be negative").into(),
                );
            }
        };
        let issued = self
            .0
            .ca
            .current()
            .x509_ca()
            .mint_downstream_ca(&request.csr, &config.subject, ttl, now())
            .map_err(ApiError::from)?;
        tracing::info!(
            downstream = %entry.spiffe_id,
            expires_at = issued.expires_at,
            "signed a downstream CA"
        );
        let x509_authorities = self
            .0
            .ca
            .bundle()
            .map(|b| b.x509_authorities.into_iter().map(|a| a.der).collect())
            .unwrap_or_default();
        Ok(Response::new(api::NewDownstreamX509caResponse {
            ca_cert_chain: issued.cert_chain,
            x509_authorities,
        }))
    }
}

/// Batches at least this long are split over the cores; below it a thread costs more than it
/// saves.
const PARALLEL_BATCH: usize = 32;

/// One result per `params` item, in order: an SVID for each entry the agent is authorized
/// for, a per-item status for the rest.
fn mint_batch(
    server: &Server,
    agent_id: &SpiffeId,
    params: &[api::NewX509svidParams],
) -> Vec<api::batch_new_x509svid_response::Result> {
    // One lookup table per call: a batch of n entries would otherwise scan the authorized set
    // n times.
    let entries = server.cache.authorized_entries(agent_id);
    let authorized: HashMap<&str, &RegistrationEntry> =
        entries.iter().map(|e| (e.id.as_str(), &**e)).collect();
    let now = now();
    let mint = |params: &api::NewX509svidParams| {
        let minted = match authorized.get(params.entry_id.as_str()) {
            None => Err(denied(server, agent_id, &params.entry_id)),
            Some(entry) => mint_one(server, entry, &params.csr, now),
        };
        match minted {
            Ok(svid) => api::batch_new_x509svid_response::Result {
                status: Some(ok_status()),
                svid: Some(svid),
            },
            Err(status) => api::batch_new_x509svid_response::Result {
                status: Some(item_status(status)),
                svid: None,
            },
        }
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(params.len() / PARALLEL_BATCH)
        .max(1);
    if threads == 1 {
        return params.iter().map(mint).collect();
    }
    let chunk = params.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = params
            .chunks(chunk)
            .map(|items| {
                (
                    items.len(),
                    scope.spawn(|| items.iter().map(mint).collect::<Vec<_>>()),
                )
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|(len, worker)| {
                worker.join().unwrap_or_else(|_| {
                    let failed = item_status(ApiError::internal(
                        "minting failed",
                        "a minting thread panicked",
                    ));
                    vec![
                        api::batch_new_x509svid_response::Result {
                            status: Some(failed),
                            svid: None,
                        };
                        len
                    ]
                })
            })
            .collect()
    })
}

/// An X509-SVID for `entry` with the key of `csr`.
fn mint_one(
    server: &Server,
    entry: &RegistrationEntry,
    csr: &[u8],
    now: sigil_types::UnixTime,
) -> Result<wire::X509svid, ApiError> {
    let mut svid = X509SvidParams::new(entry.spiffe_id.clone());
    if entry.x509_svid_ttl > 0 {
        svid.ttl = Some(std::time::Duration::from_secs(u64::from(
            entry.x509_svid_ttl,
        )));
    }
    svid.dns_names = entry.dns_names.clone();
    server
        .ca
        .mint_x509_svid(csr, &svid, now)
        .map(|issued| wire::X509svid {
            cert_chain: issued.cert_chain,
            id: Some(wire::Spiffeid::from(&entry.spiffe_id)),
            expires_at: issued.expires_at,
            hint: entry.hint.clone(),
        })
        .map_err(ApiError::from)
}

/// The entry `entry_id` if the agent is authorized for it.
fn authorized(
    server: &Server,
    agent_id: &SpiffeId,
    entry_id: &str,
) -> Result<Arc<RegistrationEntry>, ApiError> {
    server
        .cache
        .authorized_entries(agent_id)
        .into_iter()
        .find(|e| e.id.as_str() == entry_id)
        .ok_or_else(|| denied(server, agent_id, entry_id))
}

/// PermissionDenied for an entry the agent is not authorized for, naming the entry's SPIFFE
/// ID when the entry exists.
fn denied(server: &Server, agent_id: &SpiffeId, entry_id: &str) -> ApiError {
    let known = EntryId::new(entry_id)
        .ok()
        .and_then(|id| server.cache.entry(&id));
    ApiError::permission_denied(match known {
        Some(entry) => format!(
            "agent {agent_id} is not authorized for {} (entry {entry_id})",
            entry.spiffe_id
        ),
        None => format!("agent {agent_id} is not authorized for entry {entry_id:?}"),
    })
}
