//! The bundle and trust-domain services on the TCP API, under SPIRE's authorization policy:
//! `GetBundle` for anyone, `GetFederatedBundle` for agents and admins, `PublishJWTAuthority`
//! for downstream servers, everything else for admins only.

use std::sync::Arc;

use sigil_proto::spire::api::server::bundle::v1 as api;
use sigil_proto::spire::api::server::trustdomain::v1 as td;
use sigil_proto::spire::api::types as wire;
use sigil_types::{Bundle, JwtAuthority};
use tonic::{Request, Response, Status};

use crate::api::bundle::BundleApi;
use crate::api::trustdomain::TrustDomainApi;
use crate::api_error::ApiError;
use crate::setup::Server;

/// The bundle service on the TCP API.
pub(crate) struct BundlePeerApi(pub(crate) Arc<Server>);

impl BundlePeerApi {
    fn admin_api(&self) -> BundleApi {
        BundleApi(self.0.clone())
    }
}

#[tonic::async_trait]
impl api::bundle_server::Bundle for BundlePeerApi {
    async fn get_bundle(
        &self,
        request: Request<api::GetBundleRequest>,
    ) -> Result<Response<wire::Bundle>, Status> {
        // The bundle is public: agents fetch it before they have an SVID.
        self.admin_api().get_bundle(request).await
    }

    async fn get_federated_bundle(
        &self,
        request: Request<api::GetFederatedBundleRequest>,
    ) -> Result<Response<wire::Bundle>, Status> {
        if super::calling_agent(&self.0, &request).await.is_err() {
            super::calling_admin(&self.0, &request).await?;
        }
        self.admin_api().get_federated_bundle(request).await
    }

    async fn publish_jwt_authority(
        &self,
        request: Request<api::PublishJwtAuthorityRequest>,
    ) -> Result<Response<api::PublishJwtAuthorityResponse>, Status> {
        let downstream = super::calling_downstream(&self.0, &request).await?;
        let key = request
            .into_inner()
            .jwt_authority
            .ok_or_else(|| ApiError::invalid_argument("jwt_authority is required"))?;
        let mut published = Bundle::new(self.0.trust_domain.clone());
        published.jwt_authorities.push(JwtAuthority::from(&key));
        published
            .validate()
            .map_err(|e| ApiError::invalid_argument(format!("jwt_authority: {e}")))?;
        let bundle = self
            .0
            .store
            .append_bundle(published)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(
            downstream = %downstream.spiffe_id,
            key_id = %key.key_id,
            "published a downstream JWT authority"
        );
        Ok(Response::new(api::PublishJwtAuthorityResponse {
            jwt_authorities: bundle.jwt_authorities.iter().map(Into::into).collect(),
        }))
    }

    async fn publish_wit_authority(
        &self,
        _request: Request<api::PublishWitAuthorityRequest>,
    ) -> Result<Response<api::PublishWitAuthorityResponse>, Status> {
        Err(ApiError::wit_unsupported().into())
    }

    async fn append_bundle(
        &self,
        request: Request<api::AppendBundleRequest>,
    ) -> Result<Response<wire::Bundle>, Status> {
        super::calling_admin(&self.0, &request).await?;
        self.admin_api().append_bundle(request).await
    }

    async fn count_bundles(
        &self,
        request: Request<api::CountBundlesRequest>,
    ) -> Result<Response<api::CountBundlesResponse>, Status> {
        super::calling_admin(&self.0, &request).await?;
        self.admin_api().count_bundles(request).await
    }

    async fn list_federated_bundles(
        &self,
        request: Request<api::ListFederatedBundlesRequest>,
    ) -> Result<Response<api::ListFederatedBundlesResponse>, Status> {
        super::calling_admin(&self.0, &request).await?;
        self.admin_api().list_federated_bundles(request).await
    }

    async fn batch_create_federated_bundle(
        &self,
        request: Request<api::BatchCreateFederatedBundleRequest>,
    ) -> Result<Response<api::BatchCreateFederatedBundleResponse>, Status> {
        super::calling_admin(&self.0, &request).await?;
        self.admin_api()
            .batch_create_federated_bundle(request)
            .await
    }

    async fn batch_update_federated_bundle(
        &self,
        request: Request<api::BatchUpdateFederatedBundleRequest>,
    ) -> Result<Response<api::BatchUpdateFederatedBundleResponse>, Status> {
        super::calling_admin(&self.0, &request).await?;
        self.admin_api()
            .batch_update_federated_bundle(request)
            .await
    }

    async fn batch_set_federated_bundle(
        &self,
        request: Request<api::BatchSetFederatedBundleRequest>,
    ) -> Result<Response<api::BatchSetFederatedBundleResponse>, Status> {
        super::calling_admin(&self.0, &request).await?;
        self.admin_api().batch_set_federated_bundle(request).await
    }

    async fn batch_delete_federated_bundle(
        &self,
        request: Request<api::BatchDeleteFederatedBundleRequest>,
    ) -> Result<Response<api::BatchDeleteFederatedBundleResponse>, Status> {
        super::calling_admin(&self.0, &request).await?;
        self.admin_api()
            .batch_delete_federated_bundle(request)
            .await
    }
}

/// The trust-domain service on the TCP API: admins only.
pub(crate) struct TrustDomainPeerApi(pub(crate) Arc<Server>);

impl TrustDomainPeerApi {
    fn admin_api(&self) -> TrustDomainApi {
        TrustDomainApi(self.0.clone())
    }
}

#[tonic::async_trait]
impl td::trust_domain_server::TrustDomain for TrustDomainPeerApi {
    async fn list_federation_relationships(
        &self,
        request: Request<td::ListFederationRelationshipsRequest>,
    ) -> Result<Response<td::ListFederationRelationshipsResponse>, Status> {
        super::calling_admin(&self.0, &request).await?;
        self.admin_api()
            .list_federation_relationships(request)
            .await
    }

    async fn get_federation_relationship(
        &self,
        request: Request<td::GetFederationRelationshipRequest>,
    ) -> Result<Response<wire::FederationRelationship>, Status> {
        super::calling_admin(&self.0, &request).await?;
        self.admin_api().get_federation_relationship(request).await
    }

    async fn batch_create_federation_relationship(
        &self,
        request: Request<td::BatchCreateFederationRelationshipRequest>,
    ) -> Result<Response<td::BatchCreateFederationRelationshipResponse>, Status> {
        super::calling_admin(&self.0, &request).await?;
        self.admin_api()
            .batch_create_federation_relationship(request)
            .await
    }

    async fn batch_update_federation_relationship(
        &self,
        request: Request<td::BatchUpdateFederationRelationshipRequest>,
    ) -> Result<Response<td::BatchUpdateFederationRelationshipResponse>, Status> {
        super::calling_admin(&self.0, &request).await?;
        self.admin_api()
            .batch_update_federation_relationship(request)
            .await
    }

    async fn batch_delete_federation_relationship(
        &self,
        request: Request<td::BatchDeleteFederationRelationshipRequest>,
    ) -> Result<Response<td::BatchDeleteFederationRelationshipResponse>, Status> {
        super::calling_admin(&self.0, &request).await?;
        self.admin_api()
            .batch_delete_federation_relationship(request)
            .await
    }

    async fn refresh_bundle(
        &self,
        request: Request<td::RefreshBundleRequest>,
    ) -> Result<Response<()>, Status> {
        super::calling_admin(&self.0, &request).await?;
        self.admin_api().refresh_bundle(request).await
    }
}
