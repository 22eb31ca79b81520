//! `spire.api.server.trustdomain.v1.TrustDomain`: federation relationships with foreign trust
//! domains (where their bundle endpoint is and how it is authenticated).

use std::sync::Arc;

use sigil_proto::spire::api::server::trustdomain::v1 as api;
use sigil_proto::spire::api::types as wire;
use sigil_store::FederationRelationshipMask;
use sigil_types::{FederationRelationship, TrustDomain};
use tonic::{Request, Response, Status};

use super::page_request;
use crate::api_error::{ApiError, item_status, ok_status};
use crate::setup::Server;

/// The trust-domain service.
pub(crate) struct TrustDomainApi(pub(crate) Arc<Server>);

#[tonic::async_trait]
impl api::trust_domain_server::TrustDomain for TrustDomainApi {
    async fn list_federation_relationships(
        &self,
        request: Request<api::ListFederationRelationshipsRequest>,
    ) -> Result<Response<api::ListFederationRelationshipsResponse>, Status> {
        let request = request.into_inner();
        let page = page_request(request.page_size, request.page_token)?;
        let page = self
            .0
            .store
            .list_federation_relationships(Some(&page))
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(api::ListFederationRelationshipsResponse {
            federation_relationships: page
                .items
                .iter()
                .map(|r| masked(r, request.output_mask.as_ref()))
                .collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    async fn get_federation_relationship(
        &self,
        request: Request<api::GetFederationRelationshipRequest>,
    ) -> Result<Response<wire::FederationRelationship>, Status> {
        let request = request.into_inner();
        let trust_domain = self.foreign(&request.trust_domain)?;
        match self
            .0
            .store
            .fetch_federation_relationship(&trust_domain)
            .await
        {
            Ok(Some(relationship)) => Ok(Response::new(masked(
                &relationship,
                request.output_mask.as_ref(),
            ))),
            Ok(None) => Err(ApiError::not_found(format!(
                "no federation relationship with {trust_domain}"
            ))
            .into()),
            Err(error) => Err(ApiError::from(error).into()),
        }
    }

    async fn batch_create_federation_relationship(
        &self,
        request: Request<api::BatchCreateFederationRelationshipRequest>,
    ) -> Result<Response<api::BatchCreateFederationRelationshipResponse>, Status> {
        let request = request.into_inner();
        let mut results = Vec::new();
        for relationship in &request.federation_relationships {
            let created = match self.relationship(relationship) {
                Ok(relationship) => self
                    .0
                    .store
                    .create_federation_relationship(relationship)
                    .await
                    .map_err(ApiError::from),
                Err(status) => Err(status),
            };
            let (status, federation_relationship) = outcome(created, request.output_mask.as_ref());
            results.push(api::batch_create_federation_relationship_response::Result {
                status: Some(status),
                federation_relationship,
            });
        }
        Ok(Response::new(
            api::BatchCreateFederationRelationshipResponse { results },
        ))
    }

    async fn batch_update_federation_relationship(
        &self,
        request: Request<api::BatchUpdateFederationRelationshipRequest>,
    ) -> Result<Response<api::BatchUpdateFederationRelationshipResponse>, Status> {
        let request = request.into_inner();
        // As in SPIRE, no input mask means every field.
        let mask = request
            .input_mask
            .as_ref()
            .map_or(FederationRelationshipMask::ALL, |m| {
                FederationRelationshipMask {
                    bundle_endpoint_url: m.bundle_endpoint_url,
                    profile: m.bundle_endpoint_profile,
                    trust_domain_bundle: m.trust_domain_bundle,
                }
            });
        let mut results = Vec::new();
        for relationship in &request.federation_relationships {
            let updated = match self.relationship(relationship) {
                Ok(relationship) => self
                    .0
                    .store
                    .update_federation_relationship(relationship, &mask)
                    .await
                    .map_err(ApiError::from),
                Err(status) => Err(status),
            };
            let (status, federation_relationship) = outcome(updated, request.output_mask.as_ref());
            results.push(api::batch_update_federation_relationship_response::Result {
                status: Some(status),
                federation_relationship,
            });
        }
        Ok(Response::new(
            api::BatchUpdateFederationRelationshipResponse { results },
        ))
    }

    async fn batch_delete_federation_relationship(
        &self,
        request: Request<api::BatchDeleteFederationRelationshipRequest>,
    ) -> Result<Response<api::BatchDeleteFederationRelationshipResponse>, Status> {
        let mut results = Vec::new();
        for name in request.into_inner().trust_domains {
            let deleted = match self.foreign(&name) {
                Ok(trust_domain) => self
                    .0
                    .store
                    .delete_federation_relationship(&trust_domain)
                    .await
                    .map_err(ApiError::from),
                Err(status) => Err(status),
            };
            results.push(api::batch_delete_federation_relationship_response::Result {
                status: Some(match deleted {
                    Ok(()) => ok_status(),
                    Err(status) => item_status(status),
                }),
                trust_domain: name,
            });
        }
        Ok(Response::new(
            api::BatchDeleteFederationRelationshipResponse { results },
        ))
    }

    async fn refresh_bundle(
        &self,
        request: Request<api::RefreshBundleRequest>,
    ) -> Result<Response<()>, Status> {
        // Refreshing means fetching the foreign bundle endpoint, which arrives with the
        // federation work; saying so beats pretending the bundle was refreshed.
        let trust_domain = self.foreign(&request.into_inner().trust_domain)?;
        Err(ApiError::unimplemented(format!(
            "RefreshBundle for {trust_domain}: this server does not fetch bundle endpoints yet; \
             set the bundle with `bundle set` or BatchSetFederatedBundle"
        ))
        .into())
    }
}

impl TrustDomainApi {
    /// A trust domain name (with or without `spiffe://`) that is not this server's own.
    fn foreign(&self, name: &str) -> Result<TrustDomain, ApiError> {
        let trust_domain: TrustDomain = name
            .parse()
            .map_err(|e| ApiError::invalid_argument(format!("trust_domain: {e}")))?;
        if trust_domain == self.0.trust_domain {
            return Err(ApiError::invalid_argument(format!(
                "trust_domain: {trust_domain} is this server's own trust domain"
            )));
        }
        Ok(trust_domain)
    }

    fn relationship(
        &self,
        relationship: &wire::FederationRelationship,
    ) -> Result<FederationRelationship, ApiError> {
        let relationship = FederationRelationship::try_from(relationship)
            .map_err(|e| ApiError::invalid_argument(e.to_string()))?;
        self.foreign(relationship.trust_domain.name())?;
        Ok(relationship)
    }
}

/// A batch item's status and, when it succeeded, the relationship under the output mask.
fn outcome(
    result: Result<FederationRelationship, ApiError>,
    mask: Option<&wire::FederationRelationshipMask>,
) -> (wire::Status, Option<wire::FederationRelationship>) {
    match result {
        Ok(relationship) => (ok_status(), Some(masked(&relationship, mask))),
        Err(status) => (item_status(status), None),
    }
}

/// The relationship with only the fields `mask` asks for (all of them without a mask); the
/// trust domain is always set.
fn masked(
    relationship: &FederationRelationship,
    mask: Option<&wire::FederationRelationshipMask>,
) -> wire::FederationRelationship {
    let mut out = wire::FederationRelationship::from(relationship);
    if let Some(mask) = mask {
        if !mask.bundle_endpoint_url {
            out.bundle_endpoint_url.clear();
        }
        if !mask.bundle_endpoint_profile {
            out.bundle_endpoint_profile = None;
        }
        if !mask.trust_domain_bundle {
            out.trust_domain_bundle = None;
        }
    }
    out
}
