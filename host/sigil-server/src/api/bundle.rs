//! `spire.api.server.bundle.v1.Bundle` on the admin socket: the own bundle and federated
//! bundles.

use std::sync::Arc;

use sigil_proto::spire::api::server::bundle::v1 as api;
use sigil_proto::spire::api::types as wire;
use sigil_store::{BundleMask, DeleteMode};
use sigil_types::{Bundle, TrustDomain};
use tonic::{Request, Response, Status};

use crate::api_error::{ApiError, item_status, ok_status};
use crate::setup::Server;

/// The bundle service.
pub(crate) struct BundleApi(pub(crate) Arc<Server>);

#[tonic::async_trait]
impl api::bundle_server::Bundle for BundleApi {
    async fn count_bundles(
        &self,
        _request: Request<api::CountBundlesRequest>,
    ) -> Result<Response<api::CountBundlesResponse>, Status> {
        let count = self.0.store.count_bundles().await.map_err(ApiError::from)?;
        Ok(Response::new(api::CountBundlesResponse {
            count: i32::try_from(count).unwrap_or(i32::MAX),
        }))
    }

    async fn get_bundle(
        &self,
        request: Request<api::GetBundleRequest>,
    ) -> Result<Response<wire::Bundle>, Status> {
        let mask = request.into_inner().output_mask;
        self.bundle_of(&self.0.trust_domain, mask.as_ref()).await
    }

    async fn append_bundle(
        &self,
        request: Request<api::AppendBundleRequest>,
    ) -> Result<Response<wire::Bundle>, Status> {
        let request = request.into_inner();
        if request.x509_authorities.is_empty() && request.jwt_authorities.is_empty() {
            return Err(ApiError::invalid_argument(
                "nothing to append: give x509_authorities or jwt_authorities",
            )
            .into());
        }
        // Checked through the wire bundle's conversion, so a bad certificate or key is named
        // by field before anything is written.
        let appended = Bundle::try_from(&wire::Bundle {
            trust_domain: self.0.trust_domain.name().to_owned(),
            x509_authorities: request.x509_authorities,
            jwt_authorities: request.jwt_authorities,
            refresh_hint: 0,
            sequence_number: 0,
            // Dropped by the conversion, as SPIRE's AppendBundle drops them.
            wit_authorities: request.wit_authorities,
        })
        .map_err(|e| ApiError::invalid_argument(e.to_string()))?;
        let bundle = self
            .0
            .store
            .append_bundle(appended)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(masked(&bundle, request.output_mask.as_ref())))
    }

    async fn publish_jwt_authority(
        &self,
        _request: Request<api::PublishJwtAuthorityRequest>,
    ) -> Result<Response<api::PublishJwtAuthorityResponse>, Status> {
        Err(ApiError::permission_denied(
            "PublishJWTAuthority is for downstream servers, over the agent API with a \
             downstream entry's SVID",
        )
        .into())
    }

    async fn publish_wit_authority(
        &self,
        _request: Request<api::PublishWitAuthorityRequest>,
    ) -> Result<Response<api::PublishWitAuthorityResponse>, Status> {
        Err(ApiError::wit_unsupported().into())
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
            .map_err(ApiError::from)?;
        Ok(Response::new(api::ListFederatedBundlesResponse {
            bundles: page
                .items
                .iter()
                .filter(|b| b.trust_domain != self.0.trust_domain)
                .map(|b| masked(b, request.output_mask.as_ref()))
                .collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    async fn get_federated_bundle(
        &self,
        request: Request<api::GetFederatedBundleRequest>,
    ) -> Result<Response<wire::Bundle>, Status> {
        let request = request.into_inner();
        let trust_domain = self.federated(&request.trust_domain)?;
        self.bundle_of(&trust_domain, request.output_mask.as_ref())
            .await
    }

    async fn batch_create_federated_bundle(
        &self,
        request: Request<api::BatchCreateFederatedBundleRequest>,
    ) -> Result<Response<api::BatchCreateFederatedBundleResponse>, Status> {
        let request = request.into_inner();
        let mut results = Vec::new();
        for bundle in &request.bundle {
            let created = match self.federated_bundle(bundle) {
                Ok(bundle) => self
                    .0
                    .store
                    .create_bundle(bundle)
                    .await
                    .map_err(ApiError::from),
                Err(status) => Err(status),
            };
            results.push(match created {
                Ok(bundle) => api::batch_create_federated_bundle_response::Result {
                    status: Some(ok_status()),
                    bundle: Some(masked(&bundle, request.output_mask.as_ref())),
                },
                Err(status) => api::batch_create_federated_bundle_response::Result {
                    status: Some(item_status(status)),
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
        request: Request<api::BatchUpdateFederatedBundleRequest>,
    ) -> Result<Response<api::BatchUpdateFederatedBundleResponse>, Status> {
        let request = request.into_inner();
        // As in SPIRE, no input mask means every field.
        let mask = request
            .input_mask
            .as_ref()
            .map_or(BundleMask::ALL, |m| BundleMask {
                x509_authorities: m.x509_authorities,
                jwt_authorities: m.jwt_authorities,
                refresh_hint: m.refresh_hint,
                sequence_number: m.sequence_number,
            });
        let mut results = Vec::new();
        for bundle in &request.bundle {
            let updated = match self.federated_bundle(bundle) {
                Ok(bundle) => self
                    .0
                    .store
                    .update_bundle(bundle, &mask)
                    .await
                    .map_err(ApiError::from),
                Err(status) => Err(status),
            };
            results.push(match updated {
                Ok(bundle) => api::batch_update_federated_bundle_response::Result {
                    status: Some(ok_status()),
                    bundle: Some(masked(&bundle, request.output_mask.as_ref())),
                },
                Err(status) => api::batch_update_federated_bundle_response::Result {
                    status: Some(item_status(status)),
                    bundle: None,
                },
            });
        }
        Ok(Response::new(api::BatchUpdateFederatedBundleResponse {
            results,
        }))
    }

    async fn batch_set_federated_bundle(
        &self,
        request: Request<api::BatchSetFederatedBundleRequest>,
    ) -> Result<Response<api::BatchSetFederatedBundleResponse>, Status> {
        let request = request.into_inner();
        let mut results = Vec::new();
        for bundle in &request.bundle {
            let set = match self.federated_bundle(bundle) {
                Ok(bundle) => self
                    .0
                    .store
                    .set_bundle(bundle)
                    .await
                    .map_err(ApiError::from),
                Err(status) => Err(status),
            };
            results.push(match set {
                Ok(bundle) => api::batch_set_federated_bundle_response::Result {
                    status: Some(ok_status()),
                    bundle: Some(masked(&bundle, request.output_mask.as_ref())),
                },
                Err(status) => api::batch_set_federated_bundle_response::Result {
                    status: Some(item_status(status)),
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
            other => return Err(ApiError::invalid_argument(format!("unknown mode {other}")).into()),
        };
        let mut results = Vec::new();
        for name in request.trust_domains {
            let deleted = match self.federated(&name) {
                Ok(trust_domain) => self
                    .0
                    .store
                    .delete_bundle(&trust_domain, mode)
                    .await
                    .map_err(ApiError::from),
                Err(status) => Err(status),
            };
            results.push(api::batch_delete_federated_bundle_response::Result {
                status: Some(match deleted {
                    Ok(()) => ok_status(),
                    Err(status) => item_status(status),
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
        mask: Option<&wire::BundleMask>,
    ) -> Result<Response<wire::Bundle>, Status> {
        match self.0.store.fetch_bundle(trust_domain).await {
            Ok(Some(bundle)) => Ok(Response::new(masked(&bundle, mask))),
            Ok(None) => Err(ApiError::not_found(format!("no bundle for {trust_domain}")).into()),
            Err(error) => Err(ApiError::from(error).into()),
        }
    }

    /// A trust domain name (with or without `spiffe://`) that is not our own.
    fn federated(&self, name: &str) -> Result<TrustDomain, ApiError> {
        let trust_domain = TrustDomain::new(name.strip_prefix("spiffe://").unwrap_or(name))
            .map_err(|e| ApiError::invalid_argument(format!("trust_domain: {e}")))?;
        if trust_domain == self.0.trust_domain {
            return Err(ApiError::invalid_argument(format!(
                "{trust_domain} is this server's own trust domain, not a federated one"
            )));
        }
        Ok(trust_domain)
    }

    fn federated_bundle(&self, bundle: &wire::Bundle) -> Result<Bundle, ApiError> {
        self.federated(&bundle.trust_domain)?;
        Bundle::try_from(bundle).map_err(|e| ApiError::invalid_argument(e.to_string()))
    }
}

/// The bundle with only the fields `mask` asks for (all of them without a mask); the trust
/// domain is always set.
pub(crate) fn masked(bundle: &Bundle, mask: Option<&wire::BundleMask>) -> wire::Bundle {
    let mut out = wire::Bundle::from(bundle);
    if let Some(mask) = mask {
        if !mask.x509_authorities {
            out.x509_authorities.clear();
        }
        if !mask.jwt_authorities {
            out.jwt_authorities.clear();
        }
        if !mask.refresh_hint {
            out.refresh_hint = 0;
        }
        if !mask.sequence_number {
            out.sequence_number = 0;
        }
    }
    out
}
