//! `spire.api.server.bundle.v1.Bundle` on the admin socket: the own bundle and federated
//! bundles.

use std::sync::Arc;

use sigil_proto::spire::api::server::bundle::v1 as api;
use sigil_proto::spire::api::types as wire;
use sigil_store::DeleteMode;
use sigil_types::{Bundle, TrustDomain};
use tonic::{Request, Response, Status};

use super::{item_status, ok_status, store_status};
use crate::setup::Server;

/// The bundle service.
pub(crate) struct BundleApi(pub(crate) Arc<Server>);

#[tonic::async_trait]
impl api::bundle_server::Bundle for BundleApi {
    async fn count_bundles(
        &self,
        _request: Request<api::CountBundlesRequest>,
    ) -> Result<Response<api::CountBundlesResponse>, Status> {
        let count = self
            .0
            .store
            .count_bundles()
            .await
            .map_err(|e| store_status(&e))?;
        Ok(Response::new(api::CountBundlesResponse {
            count: i32::try_from(count).unwrap_or(i32::MAX),
        }))
    }

    async fn get_bundle(
        &self,
        _request: Request<api::GetBundleRequest>,
    ) -> Result<Response<wire::Bundle>, Status> {
        self.bundle_of(&self.0.trust_domain).await
    }

    async fn append_bundle(
        &self,
        _request: Request<api::AppendBundleRequest>,
    ) -> Result<Response<wire::Bundle>, Status> {
        Err(Status::unimplemented("AppendBundle is not implemented yet"))
    }

    async fn publish_jwt_authority(
        &self,
        _request: Request<api::PublishJwtAuthorityRequest>,
    ) -> Result<Response<api::PublishJwtAuthorityResponse>, Status> {
        Err(Status::unimplemented(
            "PublishJWTAuthority is for downstream servers, which are not supported yet",
        ))
    }

    async fn list_federated_bundles(
        &self,
        request: Request<api::ListFederatedBundlesRequest>,
    ) -> Result<Response<api::ListFederatedBundlesResponse>, Status> {
        let request = request.into_inner();
        let page = super::page_request(request.page_size, request.page_token)?;
        let page = self
            .0
            .store
            .list_bundles(Some(&page))
            .await
            .map_err(|e| store_status(&e))?;
        Ok(Response::new(api::ListFederatedBundlesResponse {
            bundles: page
                .items
                .iter()
                .filter(|b| b.trust_domain != self.0.trust_domain)
                .map(wire::Bundle::from)
                .collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    async fn get_federated_bundle(
        &self,
        request: Request<api::GetFederatedBundleRequest>,
    ) -> Result<Response<wire::Bundle>, Status> {
        let trust_domain = self.federated(&request.into_inner().trust_domain)?;
        self.bundle_of(&trust_domain).await
    }

    async fn batch_create_federated_bundle(
        &self,
        request: Request<api::BatchCreateFederatedBundleRequest>,
    ) -> Result<Response<api::BatchCreateFederatedBundleResponse>, Status> {
        let mut results = Vec::new();
        for bundle in &request.into_inner().bundle {
            let created = match self.federated_bundle(bundle) {
                Ok(bundle) => self
                    .0
                    .store
                    .create_bundle(bundle)
                    .await
                    .map_err(|e| store_status(&e)),
                Err(status) => Err(status),
            };
            results.push(match created {
                Ok(bundle) => api::batch_create_federated_bundle_response::Result {
                    status: Some(ok_status()),
                    bundle: Some(wire::Bundle::from(&bundle)),
                },
                Err(status) => api::batch_create_federated_bundle_response::Result {
                    status: Some(item_status(&status)),
                    bundle: None,
                },
            });
        }
        Ok(Response::new(api::BatchCreateFederatedBundleResponse {
            results,
        }))
    }

    async fn batch_update_federated_bundle(
        &self,
        _request: Request<api::BatchUpdateFederatedBundleRequest>,
    ) -> Result<Response<api::BatchUpdateFederatedBundleResponse>, Status> {
        Err(Status::unimplemented(
            "BatchUpdateFederatedBundle is not implemented yet; use BatchSetFederatedBundle",
        ))
    }

    async fn batch_set_federated_bundle(
        &self,
        request: Request<api::BatchSetFederatedBundleRequest>,
    ) -> Result<Response<api::BatchSetFederatedBundleResponse>, Status> {
        let mut results = Vec::new();
        for bundle in &request.into_inner().bundle {
            let set = match self.federated_bundle(bundle) {
                Ok(bundle) => self
                    .0
                    .store
                    .set_bundle(bundle)
                    .await
                    .map_err(|e| store_status(&e)),
                Err(status) => Err(status),
            };
            results.push(match set {
                Ok(bundle) => api::batch_set_federated_bundle_response::Result {
                    status: Some(ok_status()),
                    bundle: Some(wire::Bundle::from(&bundle)),
                },
                Err(status) => api::batch_set_federated_bundle_response::Result {
                    status: Some(item_status(&status)),
                    bundle: None,
                },
            });
        }
        Ok(Response::new(api::BatchSetFederatedBundleResponse {
            results,
        }))
    }

    async fn batch_delete_federated_bundle(
        &self,
        request: Request<api::BatchDeleteFederatedBundleRequest>,
    ) -> Result<Response<api::BatchDeleteFederatedBundleResponse>, Status> {
        let request = request.into_inner();
        let mode = match request.mode {
            0 => DeleteMode::Restrict,
            1 => DeleteMode::Delete,
            2 => DeleteMode::Dissociate,
            other => return Err(Status::invalid_argument(format!("unknown mode {other}"))),
        };
        let mut results = Vec::new();
        for name in request.trust_domains {
            let deleted = match self.federated(&name) {
                Ok(trust_domain) => self
                    .0
                    .store
                    .delete_bundle(&trust_domain, mode)
                    .await
                    .map_err(|e| store_status(&e)),
                Err(status) => Err(status),
            };
            results.push(api::batch_delete_federated_bundle_response::Result {
                status: Some(match deleted {
                    Ok(()) => ok_status(),
                    Err(status) => item_status(&status),
                }),
                trust_domain: name,
            });
        }
        Ok(Response::new(api::BatchDeleteFederatedBundleResponse {
            results,
        }))
    }
}

impl BundleApi {
    async fn bundle_of(
        &self,
        trust_domain: &TrustDomain,
    ) -> Result<Response<wire::Bundle>, Status> {
        match self.0.store.fetch_bundle(trust_domain).await {
            Ok(Some(bundle)) => Ok(Response::new(wire::Bundle::from(&bundle))),
            Ok(None) => Err(Status::not_found(format!("no bundle for {trust_domain}"))),
            Err(error) => Err(store_status(&error)),
        }
    }

    /// A trust domain name (with or without `spiffe://`) that is not our own.
    fn federated(&self, name: &str) -> Result<TrustDomain, Status> {
        let trust_domain = TrustDomain::new(name.strip_prefix("spiffe://").unwrap_or(name))
            .map_err(|e| Status::invalid_argument(format!("trust_domain: {e}")))?;
        if trust_domain == self.0.trust_domain {
            return Err(Status::invalid_argument(format!(
                "{trust_domain} is this server's own trust domain, not a federated one"
            )));
        }
        Ok(trust_domain)
    }

    fn federated_bundle(&self, bundle: &wire::Bundle) -> Result<Bundle, Status> {
        self.federated(&bundle.trust_domain)?;
        Bundle::try_from(bundle).map_err(|e| Status::invalid_argument(e.to_string()))
    }
}
