//! `spire.api.server.svid.v1.SVID` on the admin socket: the one-off mints of `x509 mint`
//! and `jwt mint`. The agent calls live in `agent_api/svid.rs`.

use std::sync::Arc;
use std::time::Duration;

use sigil_ca::X509SvidParams;
use sigil_proto::spire::api::server::svid::v1 as api;
use sigil_proto::spire::api::types as wire;
use sigil_types::SpiffeId;
use tonic::{Request, Response, Status};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use super::spiffe_id;
use crate::api_error::ApiError;
use crate::setup::Server;
use crate::tokens::now;

/// The SVID service for admins.
pub(crate) struct SvidAdminApi(pub(crate) Arc<Server>);

#[tonic::async_trait]
impl api::svid_server::Svid for SvidAdminApi {
    async fn mint_x509svid(
        &self,
        request: Request<api::MintX509svidRequest>,
    ) -> Result<Response<api::MintX509svidResponse>, Status> {
        let request = request.into_inner();
        let id = csr_spiffe_id(&request.csr)?;
        if !id.is_member_of(&self.0.trust_domain) {
            return Err(ApiError::invalid_argument(format!(
                "csr: {id} is not in trust domain {}",
                self.0.trust_domain
            ))
            .into());
        }
        let mut params = X509SvidParams::new(id.clone());
        params.ttl = ttl(request.ttl)?;
        let issued = self
            .0
            .ca
            .mint_x509_svid(&request.csr, &params, now())
            .map_err(ApiError::from)?;
        Ok(Response::new(api::MintX509svidResponse {
            svid: Some(wire::X509svid {
                cert_chain: issued.cert_chain,
                id: Some(wire::Spiffeid::from(&id)),
                expires_at: issued.expires_at,
                hint: String::new(),
            }),
        }))
    }

    async fn mint_jwtsvid(
        &self,
        request: Request<api::MintJwtsvidRequest>,
    ) -> Result<Response<api::MintJwtsvidResponse>, Status> {
        let request = request.into_inner();
        let id = spiffe_id("id", request.id.as_ref())?;
        if !id.is_member_of(&self.0.trust_domain) {
            return Err(ApiError::invalid_argument(format!(
                "id: {id} is not in trust domain {}",
                self.0.trust_domain
            ))
            .into());
        }
        if request.audience.is_empty() {
            return Err(ApiError::invalid_argument("at least one audience is required").into());
        }
        sigil_types::check_audience(&request.audience)
            .map_err(|e| ApiError::invalid_argument(e.to_string()))?;
        let svid = self
            .0
            .ca
            .mint_jwt_svid(&id, &request.audience, ttl(request.ttl)?, now())
            .map_err(ApiError::from)?;
        Ok(Response::new(api::MintJwtsvidResponse {
            svid: Some(wire::Jwtsvid::from(&svid)),
        }))
    }

    async fn batch_new_x509svid(
        &self,
        _request: Request<api::BatchNewX509svidRequest>,
    ) -> Result<Response<api::BatchNewX509svidResponse>, Status> {
        Err(agent_only())
    }

    async fn new_jwtsvid(
        &self,
        _request: Request<api::NewJwtsvidRequest>,
    ) -> Result<Response<api::NewJwtsvidResponse>, Status> {
        Err(agent_only())
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

    async fn new_downstream_x509ca(
        &self,
        _request: Request<api::NewDownstreamX509caRequest>,
    ) -> Result<Response<api::NewDownstreamX509caResponse>, Status> {
        Err(ApiError::permission_denied(
            "NewDownstreamX509CA is for downstream servers, over the agent API with a \
             downstream entry's SVID",
        )
        .into())
    }
}

fn agent_only() -> Status {
    ApiError::permission_denied("this call is for agents, over the agent API with an agent SVID")
        .into()
}

/// `ttl` seconds, or the default when 0.
fn ttl(seconds: i32) -> Result<Option<Duration>, ApiError> {
    match u64::try_from(seconds) {
        Ok(0) => Ok(None),
        Ok(seconds) => Ok(Some(Duration::from_secs(seconds))),
        Err(_) => Err(ApiError::invalid_argument("ttl must not be negative")),
    }
}

/// The one URI SAN of a CSR, as a SPIFFE ID.
fn csr_spiffe_id(csr: &[u8]) -> Result<SpiffeId, ApiError> {
    let invalid = |why: &str| ApiError::invalid_argument(format!("csr: {why}"));
    let (_, request) =
        X509CertificationRequest::from_der(csr).map_err(|_| invalid("not a DER CSR"))?;
    let mut uris = Vec::new();
    for extension in request.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = extension {
            for name in &san.general_names {
                if let GeneralName::URI(uri) = name {
                    uris.push((*uri).to_owned());
                }
            }
        }
    }
    match uris.as_slice() {
        [uri] => uri
            .parse()
            .map_err(|e| invalid(&format!("the URI SAN is not a SPIFFE ID: {e}"))),
        _ => Err(invalid("it must carry exactly one URI SAN, the SPIFFE ID")),
    }
}
